// Scenario c: repeating jobs on later.js schedules, saved from node.
//   node schedule.js WS_URL TYPE
// Saves TYPE with repeat({schedule: later.parse.text('every 5 mins')}) and TYPE-cron with
// repeat({schedule: later.parse.cron('0 9 * * 1-5'), repeats: 2}); prints each around its save.
// Then runs the first once (jobReady with time = its `after`, getWork, done with repeatId) and
// prints the repeat job the server created.

"use strict";

const Job = require("meteor-job");
const later = require("later");
const lib = require("./lib");

async function save(type, repeat) {
  const job = new Job(lib.config.root, type, { kind: type }).repeat(repeat);
  const sent = lib.plain(job.doc);
  const before = Date.now();
  const id = await lib.call(job.save.bind(job));
  const after = Date.now();
  if (typeof id !== "string") lib.die(`save(${type}) returned ${JSON.stringify(id)}`);
  const stored = await lib.call(Job.getJob, lib.config.root, id);
  lib.emit("saved", { type, id, before, after, sent, stored: stored.doc });
  return stored;
}

async function main() {
  const ddp = await lib.connect();
  Job.setDDP(ddp);
  await lib.login(ddp);
  const type = lib.config.args[0] || "interopSchedule";
  const every5 = later.parse.text("every 5 mins");
  lib.emit("parsed", { text: every5, cron: later.parse.cron("0 9 * * 1-5") });
  const job = await save(type, { schedule: every5 });
  await save(`${type}-cron`, { schedule: later.parse.cron("0 9 * * 1-5"), repeats: 2 });

  const readied = await lib.call(Job.readyJobs, lib.config.root, [job.doc._id], {
    time: job.doc.after,
  });
  const work = await lib.call(Job.getWork, lib.config.root, type);
  if (!(work instanceof Job)) lib.die(`getWork(${type}) returned ${JSON.stringify(work)}`);
  const doneAt = Date.now();
  const repeatId = await lib.call(work.done.bind(work), { ok: true }, { repeatId: true });
  const repeat = await lib.call(Job.getJob, lib.config.root, repeatId);
  lib.emit("repeated", { readied, claimed: work.doc, doneAt, repeatId, repeat: repeat && repeat.doc });
  ddp.close();
  lib.finish();
}

main().catch((err) => lib.die(JSON.stringify(lib.errorFields(err))));
