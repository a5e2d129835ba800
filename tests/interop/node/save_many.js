// Pipelining: save COUNT jobs on one connection without waiting for any answer (as the
// original's own test suite does with 500), then wait for every callback.
//   node save_many.js WS_URL COUNT [TYPE]
// Prints: login, then `ids` lines (500 ids each), then saved {count, errors} once every save
// has called back.

"use strict";

const Job = require("meteor-job");
const lib = require("./lib");

async function main() {
  const ddp = await lib.connect();
  Job.setDDP(ddp);
  await lib.login(ddp);
  lib.emit("login", {});
  const count = Number(lib.config.args[0] || 500);
  const type = lib.config.args[1] || "pipelined";
  const ids = [];
  const errors = [];
  await new Promise((resolve) => {
    let answered = 0;
    for (let n = 0; n < count; n++) {
      new Job(lib.config.root, type, { n }).save((err, id) => {
        if (err) errors.push(lib.errorFields(err));
        else ids.push(id);
        if (++answered === count) resolve();
      });
    }
  });
  for (let start = 0; start < ids.length; start += 500) {
    lib.emit("ids", { ids: ids.slice(start, start + 500) });
  }
  lib.emit("saved", { count: ids.length, errors: errors.slice(0, 5), failed: errors.length });
  ddp.close();
  process.stdout.write("", lib.finish); // exit once the lines above have left the pipe
}

main().catch((err) => lib.die(JSON.stringify(lib.errorFields(err))));
