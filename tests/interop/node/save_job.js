// Scenario b: build a job with meteor-job, save it, read it back with Job.getJob.
//   node save_job.js WS_URL TYPE
// Prints: login, built (the document as sent), saved (the returned id), fetched (getJob with
// getLog), and refreshed (job.refresh(): the local Job replaced by the stored document).

"use strict";

const Job = require("meteor-job");
const lib = require("./lib");

async function main() {
  const ddp = await lib.connect();
  Job.setDDP(ddp);
  const res = await lib.login(ddp);
  lib.emit("login", { id: res.id, type: res.type });
  const type = lib.config.args[0] || "interopSave";
  const data = { to: "bozo@clowns.com", when: new Date(Date.UTC(2020, 1, 29, 12)), n: 3.5 };
  const job = new Job(lib.config.root, type, data).retry({ retries: 2, wait: 1000 }).delay(500);
  lib.emit("built", { doc: job.doc });
  const id = await lib.call(job.save.bind(job));
  lib.emit("saved", { id: id, docId: job.doc._id });
  const fetched = await lib.call(Job.getJob, lib.config.root, id, { getLog: true });
  if (!(fetched instanceof Job)) lib.die(`getJob returned ${JSON.stringify(lib.plain(fetched))}`);
  lib.emit("fetched", { doc: fetched.doc, dataDateIsDate: fetched.data.when instanceof Date });
  const refreshed = await lib.call(job.refresh.bind(job));
  lib.emit("refreshed", { ok: refreshed === job, doc: job.doc });
  const missing = await lib.call(Job.getJob, lib.config.root, "notAnIdOfAnyJob00");
  lib.emit("missing", { result: missing === undefined ? "undefined" : missing });

  // EJSON round trip of user data: binary, +-Infinity, NaN, literal "$" keys (sent escaped).
  const EJSON = ddp.EJSON;
  const bin = EJSON.newBinary(4);
  [1, 255, 0, 62].forEach((byte, i) => (bin[i] = byte));
  const exotic = {
    bin,
    inf: Infinity,
    ninf: -Infinity,
    nan: NaN,
    lit: { $date: 5 },
    lit2: { $type: "x", $value: 1 },
    nested: [{ d: new Date(1) }],
    text: "\u00e9\u2603\u0000",
    big: Number.MAX_SAFE_INTEGER,
  };
  const other = new Job(lib.config.root, `${type}-ejson`, exotic);
  const otherId = await lib.call(other.save.bind(other));
  const back = await lib.call(Job.getJob, lib.config.root, otherId);
  lib.emit("ejson", {
    id: otherId,
    equal: EJSON.equals(back.data, exotic),
    sent: EJSON.stringify(exotic),
    got: EJSON.stringify(back.data),
  });
  ddp.close();
  lib.finish();
}

main().catch((err) => lib.die(JSON.stringify(lib.errorFields(err))));
