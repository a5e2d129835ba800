// A meteor-job worker for benchmarks/scale_out.py (the original's node client, meteor-job
// 1.5.2 over ddp 0.12.1; NODE_PATH points at their node_modules).
//   node scale_worker.js WS_URL ROOT TYPE CONCURRENCY WORK_TIMEOUT_MS
// Prints one line per run as it starts: "run JOB_ID RUN_ID" (the campaign counts the runs of
// each (job, run) across all workers), and "connected" at each (re)connection. A job whose
// data says failOnce fails its first run. The ddp client reconnects by itself when its server
// goes away (a pending job.done() is then lost: that job fails after its workTimeout and is
// retried). Runs until killed.
//
// ddp 0.12.1 fails the calls pending when its socket closes, but a call made while the socket
// is closed (meteor-job's next getWork, a job.done() during the outage) is written to the dead
// socket and its callback kept forever: the queue would wait for it and never ask for work
// again. Such calls never reached a server, so at each reconnection the script fails them the
// way ddp fails the others (`_endPendingMethodCalls`, before any call on the new connection).

"use strict";

const DDP = require("ddp");
const Job = require("meteor-job");

const url = new URL(process.argv[2]);
const root = process.argv[3];
const type = process.argv[4];
const concurrency = Number(process.argv[5]);
const workTimeout = Number(process.argv[6]);

const ddp = new DDP({
  host: url.hostname,
  port: Number(url.port),
  autoReconnect: true,
  autoReconnectTimer: 200,
});
Job.setDDP(ddp);

function say(line) {
  process.stdout.write(line + "\n");
}

function work(job, cb) {
  say(`run ${job.doc._id} ${job.doc.runId}`);
  const finished = () => cb();
  if (job.data.failOnce && job.doc.retried === 1) {
    job.fail("failOnce: the first run fails", finished);
  } else {
    job.done({ by: "node" }, finished);
  }
}

let queue = null;
const bell = `${root}.readyTypes`;
ddp.observe(bell, () => queue && queue.trigger());
// Listened to rather than passed to connect(): ddp 0.12.1 stops reconnecting after a failed
// attempt when connect() was given a callback, and a restarting server refuses for a moment.
ddp.on("connected", () => {
  say("connected");
  ddp._endPendingMethodCalls();
  ddp.subscribe(bell, [[type]]);
  if (queue === null) {
    const options = { concurrency, pollInterval: 500, workTimeout, errorCallback: () => {} };
    queue = Job.processJobs(root, type, options, work);
  } else {
    queue.trigger();
  }
});
ddp.connect();
