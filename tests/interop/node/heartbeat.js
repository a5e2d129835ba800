// Checklist 1: the server's heartbeat against node ddp (which answers pings, never sends any).
//   node heartbeat.js WS_URL IDLE_MS
// Connects, stays silent for IDLE_MS, then calls <root>_getJob. Prints every ping received and
// pong sent (with the time since connecting) and the call's outcome: an idle connection survives
// because node ddp answers the server's pings.

"use strict";

const lib = require("./lib");

async function main() {
  const ddp = await lib.connect();
  const start = Date.now();
  const send = ddp._send.bind(ddp);
  ddp._send = (message) => {
    if (message.msg === "pong") lib.emit("pong", { at: Date.now() - start, id: message.id });
    send(message);
  };
  ddp.on("message", (text) => {
    const message = JSON.parse(text);
    if (message.msg === "ping") lib.emit("ping", { at: Date.now() - start, id: message.id });
  });
  const idle = Number(lib.config.args[0] || 33000);
  setTimeout(() => {
    ddp.call(`${lib.config.root}_getJob`, ["noSuchJob"], (err, res) => {
      lib.emit("call", { at: Date.now() - start, error: lib.errorFields(err), result: res });
      ddp.close();
      lib.finish();
    });
  }, idle);
}

main().catch((err) => lib.die(JSON.stringify(lib.errorFields(err))));
