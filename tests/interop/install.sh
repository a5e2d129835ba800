#!/usr/bin/env bash
# Install the real npm clients (meteor-job, ddp, ddp-login, later; versions pinned in
# node/package.json and node/package-lock.json) that tests/interop/test_node_clients.py runs
# against our server. Needs node >= 18 and npm. Idempotent; node/node_modules is not committed.
set -euo pipefail
cd "$(dirname "$0")/node"
command -v node >/dev/null || { echo "install.sh: node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "install.sh: npm is not installed" >&2; exit 1; }
npm ci --no-audit --no-fund --loglevel=error
node -e '
for (const [name, want] of Object.entries(require("./package.json").dependencies)) {
  const got = require(name + "/package.json").version;
  if (got !== want) { console.error(`install.sh: ${name} is ${got}, want ${want}`); process.exit(1); }
}
console.log("interop node clients installed:", Object.entries(require("./package.json").dependencies).map(([n, v]) => n + "@" + v).join(" "));
'
