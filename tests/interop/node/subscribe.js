// Scenario e: subscribe to `<root>.jobs` with node ddp and print what ddp.observe() reports.
//   node subscribe.js WS_URL [REMOVALS]
// Prints "ready" (with the documents node ddp holds) once the subscription is ready, then one
// line per added / changed / removed callback; exits 0 after REMOVALS (default 1) removals.
// Subscribing needs the admin or manager group, so it logs in first.

"use strict";

const lib = require("./lib");

async function main() {
  const ddp = await lib.connect();
  const res = await lib.login(ddp);
  lib.emit("login", { id: res.id, type: res.type });
  const name = `${lib.config.root}.jobs`;
  const removals = Number(lib.config.args[0] || 1);
  let removed = 0;
  ddp.observe(
    name,
    (id) => lib.emit("added", { id, doc: ddp.collections[name][id] }),
    (id, oldFields, cleared, newFields) =>
      lib.emit("changed", { id, fields: newFields, cleared, old: oldFields }),
    (id, oldValue) => {
      lib.emit("removed", { id, old: oldValue });
      if (++removed >= removals) {
        ddp.close();
        lib.finish();
      }
    },
  );
  ddp.subscribe(name, [], (err) => {
    if (err) lib.die(`subscribe ${name}: ${JSON.stringify(lib.errorFields(err))}`);
    lib.emit("ready", { docs: ddp.collections[name] || {} });
  });
}

main().catch((err) => lib.die(JSON.stringify(lib.errorFields(err))));
