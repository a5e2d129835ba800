// Scenario f: logging in with ddp-login (and a few raw login/logout calls).
//   node login.js WS_URL [ACTION...]        (default actions: ddplogin probe)
// ACTION is one of
//   ddplogin       DDPlogin(ddp, {account, pass, retry: 1}) with JC_ACCOUNT / JC_PASSWORD if set;
//                  like the README it tries METEOR_TOKEN first when that is set
//   probe          call <root>_getJob(["noSuchJob"]): null if allowed, else the 403
//   logout         call logout()
//   subscribe      subscribe to <root>.jobs: "ready", or the nosub error
//   resume:TOKEN   call login([{resume: TOKEN}]) directly
// Prints one line per action: {event: ACTION, ok, result | error}. A refused login is an
// observation (exit 0); exit 1 only if the script could not run.

"use strict";

const lib = require("./lib");

async function act(ddp, action) {
  if (action === "ddplogin") return lib.login(ddp);
  if (action === "probe") return lib.call(ddp.call.bind(ddp), `${lib.config.root}_getJob`, [["noSuchJob"]]);
  if (action === "logout") return lib.call(ddp.call.bind(ddp), "logout", []);
  if (action === "subscribe") {
    return new Promise((resolve, reject) => {
      ddp.subscribe(`${lib.config.root}.jobs`, [], (err) => (err ? reject(err) : resolve("ready")));
    });
  }
  if (action.startsWith("resume:")) {
    return lib.call(ddp.call.bind(ddp), "login", [{ resume: action.slice("resume:".length) }]);
  }
  throw new Error(`unknown action ${action}`);
}

async function main() {
  const ddp = await lib.connect();
  const actions = lib.config.args.length ? lib.config.args : ["ddplogin", "probe"];
  for (const action of actions) {
    const event = action.split(":")[0];
    try {
      lib.emit(event, { ok: true, result: await act(ddp, action) });
    } catch (err) {
      lib.emit(event, { ok: false, error: lib.errorFields(err) });
    }
  }
  ddp.close();
  lib.finish();
}

main().catch((err) => lib.die(JSON.stringify(lib.errorFields(err))));
