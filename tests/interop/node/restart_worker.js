// A meteor-job worker that stays up while the server restarts again and again.
//   node restart_worker.js WS_URL TYPE WORK_MS
// The ddp client reconnects by itself (autoReconnectTimer 100 ms) and never resends a call
// (ddp 0.12.1 fails every pending callback when its socket closes). On each (re)connect the
// script follows the `<root>.readyTypes` doorbell to trigger the queue (it also polls).
// Prints one line per event: connected, run {id, runId} as a job starts, done {id, result},
// done_error {id, error} when job.done() fails (its outcome is then unknown), queue_error.
// Runs until killed (or the JC_TIMEOUT_MS hard timeout).

"use strict";

const DDP = require("ddp");
const Job = require("meteor-job");
const lib = require("./lib");

const type = lib.config.args[0] || "restart";
const workMs = Number(lib.config.args[1] || 20);
const bell = `${lib.config.root}.readyTypes`;

const ddp = new DDP({
  host: lib.config.host,
  port: lib.config.port,
  autoReconnect: true,
  autoReconnectTimer: 100,
});
Job.setDDP(ddp);

let queue = null;
const options = {
  concurrency: 2,
  pollInterval: 250,
  errorCallback: (err) => lib.emit("queue_error", { message: String(err) }),
};

function work(job, cb) {
  lib.emit("run", { id: job.doc._id, runId: job.doc.runId });
  setTimeout(() => {
    job.done({ by: "node" }, (err, result) => {
      if (err) lib.emit("done_error", { id: job.doc._id, error: lib.errorFields(err) });
      else lib.emit("done", { id: job.doc._id, result });
      cb();
    });
  }, workMs);
}

ddp.observe(bell, () => queue && queue.trigger());
ddp.on("socket-close", (code, reason) => lib.emit("socket_close", { code, reason }));
// "connected" is listened to, rather than passed to connect(): ddp 0.12.1 stops reconnecting
// after a failed attempt when connect() was given a callback (its "failed" listener sets
// _connectionFailed), and a restarting server refuses connections for a moment.
ddp.on("connected", () => {
  lib.emit("connected", {});
  ddp.subscribe(bell, [[type]]);
  if (queue === null) queue = Job.processJobs(lib.config.root, type, options, work);
  else queue.trigger();
});
ddp.connect();
