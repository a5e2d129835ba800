// Benchmark worker: the original's node client (meteor-job JobQueue over ddp) against our server.
// Usage: node remote_worker.js PORT ROOT TYPE COUNT CONCURRENCY PAYLOAD MODE
//   MODE "rate":    process COUNT jobs already queued; prints {"processed", "seconds"}.
//   MODE "latency": a waiting worker triggered by the `<ROOT>.jobs` publication; each job's
//                   data.t is its enqueue time (epoch ms); prints {"latencies_ms": [...]}.
//   MODE "latency-bell": the same, triggered by our server's `<ROOT>.readyTypes` doorbell
//                   (one tiny message when TYPE gets ready jobs, instead of every ready job).
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
  const latency = mode.startsWith('latency');
  const options = { concurrency: Number(concurrency), payload: Number(payload),
                    pollInterval: latency ? 1000000000 : 5000 };
  const finish = () => {
    const out = latency ? { latencies_ms: latencies }
      : { processed: done, seconds: (now() - started) / 1000 };
    console.log(JSON.stringify(out));
    queue.shutdown({ level: 'soft', quiet: true }, () => { ddp.close(); process.exit(0); });
  };
  const work = (jobs, cb) => {
    const batch = Array.isArray(jobs) ? jobs : [jobs];
    let pending = batch.length;
    for (const job of batch) {
      if (latency) {
        latencies.push(now() - job.data.t);
        console.log(JSON.stringify({ started: true }));  // the saver's cue for the next sample
      }
      job.done({}, () => {
        done += 1;
        if (--pending === 0) cb();
        if (done === total) finish();
      });
    }
  };
  started = now();
  const queue = Job.processJobs(root, type, options, work);
  if (latency) {
    const [name, params] = mode === 'latency-bell'
      ? [`${root}.readyTypes`, [[type]]]
      : [`${root}.jobs`, [{ type: type, status: 'ready' }]];
    ddp.subscribe(name, params, () => { console.log(JSON.stringify({ ready: true })); });
    ddp.observe(name).added = () => queue.trigger();
  }
});
