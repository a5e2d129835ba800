// Benchmark worker: the original's node client (meteor-job JobQueue over ddp) against our server.
// Usage: node remote_worker.js PORT ROOT TYPE COUNT CONCURRENCY PAYLOAD MODE
//   MODE "rate":    process COUNT jobs already queued; prints {"processed", "seconds"}.
//   MODE "latency": a waiting worker triggered by the `<ROOT>.jobs` publication; each job's
//                   data.t is its enqueue time (epoch ms); prints {"latencies_ms": [...]}.
'use strict';
const DDP = require('ddp');
const Job = require('meteor-job');

const [port, root, type, count, concurrency, payload, mode] = process.argv.slice(2);
const total = Number(count);
const now = () => performance.timeOrigin + performance.now();
setTimeout(() => { console.error('timed out'); process.exit(3); }, 120000).unref();

const ddp = new DDP({ host: '127.0.0.1', port: Number(port), useSockJs: false,
                      autoReconnect: false, maintainCollections: true });
Job.setDDP(ddp);
ddp.connect((err) => {
  if (err) { console.error('connect failed', err); process.exit(2); }
  const latencies = [];
  let done = 0;
  let started = null;
  const options = { concurrency: Number(concurrency), payload: Number(payload),
                    pollInterval: mode === 'latency' ? 1000000000 : 5000 };
  const finish = () => {
    const out = mode === 'latency' ? { latencies_ms: latencies }
      : { processed: done, seconds: (now() - started) / 1000 };
    console.log(JSON.stringify(out));
    queue.shutdown({ level: 'soft', quiet: true }, () => { ddp.close(); process.exit(0); });
  };
  const work = (jobs, cb) => {
    const batch = Array.isArray(jobs) ? jobs : [jobs];
    let pending = batch.length;
    for (const job of batch) {
      if (mode === 'latency') latencies.push(now() - job.data.t);
      job.done({}, () => {
        done += 1;
        if (--pending === 0) cb();
        if (done === total) finish();
      });
    }
  };
  started = now();
  const queue = Job.processJobs(root, type, options, work);
  if (mode === 'latency') {
    ddp.subscribe(`${root}.jobs`, [{ type: type, status: 'ready' }], () => {
      console.log(JSON.stringify({ ready: true }));
    });
    ddp.observe(`${root}.jobs`).added = () => queue.trigger();
  }
});
