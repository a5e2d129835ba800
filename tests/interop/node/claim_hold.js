// Scenario: a node worker claims one job and holds it until it is killed.
//   node claim_hold.js WS_URL TYPE
// Prints {"event": "claimed", "id", "runId"} once it holds a job (or "none"), then waits.

"use strict";

const Job = require("meteor-job");
const lib = require("./lib");

async function main() {
  const ddp = await lib.connect();
  Job.setDDP(ddp);
  await lib.login(ddp);
  const jobs = await lib.call(Job.getWork, lib.config.root, lib.config.args[0], { maxJobs: 1 });
  if (!jobs || jobs.length === 0) {
    lib.emit("none", {});
    lib.finish();
    return;
  }
  const job = Array.isArray(jobs) ? jobs[0] : jobs;
  lib.emit("claimed", { id: job.doc._id, runId: job.doc.runId });
  setInterval(() => {}, 1000); // hold the job (and the connection) until killed
}

main().catch((err) => lib.die(JSON.stringify(lib.errorFields(err))));
