// Scenario d: control jobs by id with meteor-job, one step per argument.
//   node control.js WS_URL STEP...
// STEP is OP:ID[,ID...]. OP is one of
//   get                      Job.getJob(root, id)           -> the job's status, or null
//   doc                      Job.getJob(root, id)           -> {status, runId}, or null
//   cancel restart remove    Job.getJob(root, id), then job.cancel() / job.restart() / ...
//   pause resume
//   cancelJobs restartJobs   Job.cancelJobs(root, ids) etc. (the bulk calls)
//   removeJobs
// Prints one "step" line per step: {op, ids, result} or {op, ids, error}.

"use strict";

const Job = require("meteor-job");
const lib = require("./lib");

const BULK = new Set(["cancelJobs", "restartJobs", "removeJobs", "pauseJobs", "resumeJobs"]);
const SINGLE = new Set(["cancel", "restart", "remove", "pause", "resume"]);

async function step(op, ids) {
  const root = lib.config.root;
  if (op === "get") {
    const job = await lib.call(Job.getJob, root, ids[0]);
    return job === undefined ? null : job.doc.status;
  }
  if (op === "doc") {
    const job = await lib.call(Job.getJob, root, ids[0]);
    return job === undefined ? null : { status: job.doc.status, runId: job.doc.runId };
  }
  if (BULK.has(op)) return lib.call(Job[op], root, ids);
  if (SINGLE.has(op)) {
    const job = await lib.call(Job.getJob, root, ids[0]);
    if (job === undefined) throw new Error(`no job ${ids[0]}`);
    return lib.call(job[op].bind(job));
  }
  throw new Error(`unknown step ${op}`);
}

async function main() {
  const ddp = await lib.connect();
  Job.setDDP(ddp);
  await lib.login(ddp);
  for (const arg of lib.config.args) {
    const [op, list] = arg.split(":");
    const ids = (list || "").split(",").filter(Boolean);
    try {
      lib.emit("step", { op, ids, result: await step(op, ids) });
    } catch (err) {
      lib.emit("step", { op, ids, error: lib.errorFields(err) });
    }
  }
  ddp.close();
  lib.finish();
}

main().catch((err) => lib.die(JSON.stringify(lib.errorFields(err))));
