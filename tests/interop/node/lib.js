// Shared plumbing for the interop scenarios: configuration, JSON-line output, hard timeout,
// connecting and logging in with the real npm clients (ddp 0.12.1, ddp-login 1.0.10).
//
// Every scenario is `node SCRIPT.js WS_URL [ARGS...]`; the rest comes from the environment:
//   JC_ROOT        collection root (default "myJobQueue")
//   JC_ACCOUNT     account (username or e-mail) and JC_PASSWORD its password, for ddp-login;
//   METEOR_TOKEN   ddp-login's resume token (tried first when set)
//   JC_TIMEOUT_MS  hard timeout of the whole script (default 45000)
// Output: one JSON object per line on stdout (EJSON dates as {"$date": ms}); exit 0 when the
// scenario ran to its end, 1 with a message on stderr otherwise.

"use strict";

const DDP = require("ddp");
const DDPlogin = require("ddp-login");

const url = new URL(process.argv[2] || "ws://127.0.0.1:3000/websocket");
const config = {
  url: url.href,
  host: url.hostname,
  port: Number(url.port),
  root: process.env.JC_ROOT || "myJobQueue",
  account: process.env.JC_ACCOUNT || null,
  pass: process.env.JC_PASSWORD || null,
  args: process.argv.slice(3),
};

const timeoutMs = Number(process.env.JC_TIMEOUT_MS || 45000);
setTimeout(() => die(`hard timeout after ${timeoutMs} ms`), timeoutMs).unref();

// Dates become {"$date": ms}, meteor-job Jobs their documents, errors their fields.
function plain(value) {
  if (value instanceof Date) return { $date: value.getTime() };
  if (value === undefined) return null;
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(plain);
  if (value.doc !== undefined && value.root !== undefined) return plain(value.doc); // a Job
  if (value instanceof Error) {
    return { error: value.error, reason: value.reason, message: value.message };
  }
  const out = {};
  for (const [key, item] of Object.entries(value)) out[key] = plain(item);
  return out;
}

function emit(event, fields) {
  process.stdout.write(JSON.stringify(plain({ event, ...fields })) + "\n");
}

function errorFields(err) {
  if (err === null || err === undefined) return null;
  if (typeof err !== "object") return { message: String(err) };
  return {
    error: err.error === undefined ? null : err.error,
    reason: err.reason === undefined ? null : err.reason,
    details: err.details === undefined ? null : err.details,
    message: err.message === undefined ? null : err.message,
    errorType: err.errorType === undefined ? null : err.errorType,
  };
}

function die(message) {
  process.stderr.write(`${process.argv[1]}: ${message}\n`);
  process.exit(1);
}

function finish() {
  process.exit(0);
}

// Resolves with a connected DDPClient (no automatic reconnects: a drop is a failure).
function connect(extra) {
  return new Promise((resolve, reject) => {
    const ddp = new DDP({
      host: config.host,
      port: config.port,
      autoReconnect: false,
      ...(extra || {}),
    });
    ddp.on("socket-close", (code, reason) => {
      if (!ddp._isClosing) die(`socket closed by the server: ${code} ${reason || ""}`);
    });
    ddp.connect((err) => (err ? reject(new Error(`connect failed: ${err}`)) : resolve(ddp)));
  });
}

// ddp-login with the configured account/password (never prompts: stdin is not a terminal and
// the test closes it); resolves with the login result or rejects with the server's error.
function login(ddp, options) {
  const opts = { retry: 1, ...(options || {}) };
  if (config.account !== null) opts.account = config.account;
  if (config.pass !== null) opts.pass = config.pass;
  return new Promise((resolve, reject) => {
    DDPlogin(ddp, opts, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

// A node-style (err, res) method as a promise.
function call(fn, ...args) {
  return new Promise((resolve, reject) => {
    fn(...args, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

module.exports = { config, plain, emit, errorFields, die, finish, connect, login, call };
