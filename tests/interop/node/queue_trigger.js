// Scenario g: a JobQueue without polling, woken by ddp.observe() on `<root>.jobs` (the idiom of
// meteor-job's README: queue.trigger() when a job becomes ready).
//   node queue_trigger.js WS_URL TYPE COUNT
// processJobs(root, TYPE, {pollInterval: false, concurrency: 2, payload: 2, prefetch: 1}).
// Prints "ready" once subscribed (the test then saves COUNT jobs of TYPE from another client),
// one "batch" per worker call, and "end" after COUNT jobs are done and the queue has shut down.

"use strict";

const Job = require("meteor-job");
const lib = require("./lib");

async function main() {
  const ddp = await lib.connect();
  Job.setDDP(ddp);
  await lib.login(ddp);
  const root = lib.config.root;
  const name = `${root}.jobs`;
  const type = lib.config.args[0] || "interopTrigger";
  const count = Number(lib.config.args[1] || 5);
  const done = [];
  let triggers = 0;
  const options = { pollInterval: false, concurrency: 2, payload: 2, prefetch: 1 };
  const queue = Job.processJobs(root, type, options, (jobs, cb) => {
    lib.emit("batch", { ids: jobs.map((job) => job.doc._id), running: queue.running() });
    let left = jobs.length;
    for (const job of jobs) {
      job.done({ by: "node" }, (err, res) => {
        if (err || res !== true) lib.die(`done: ${JSON.stringify(lib.errorFields(err) || res)}`);
        done.push(job.doc._id);
        if (--left === 0) cb();
        if (done.length === count) {
          queue.shutdown({ quiet: true }, () => {
            lib.emit("end", { done, triggers });
            ddp.close();
            lib.finish();
          });
        }
      });
    }
  });
  const wake = (doc) => {
    if (doc && doc.type === type && doc.status === "ready") {
      triggers += 1;
      queue.trigger();
    }
  };
  ddp.observe(
    name,
    (id) => wake(ddp.collections[name][id]),
    (id) => wake(ddp.collections[name][id]),
  );
  ddp.subscribe(name, [], (err) => {
    if (err) lib.die(`subscribe ${name}: ${JSON.stringify(lib.errorFields(err))}`);
    lib.emit("ready", {});
  });
}

main().catch((err) => lib.die(JSON.stringify(lib.errorFields(err))));
