#!/usr/bin/env bash
# Installs moto's server (PyPI `moto[server]`, pinned) into .tools/venv-moto on first use
# and prints the path of its `moto_server`: the AWS emulator the tests of the AWS stores
# start (tests/common/moto.rs reads it from SEQERA_TOKEN_ROTATE_MOTO_SERVER, or runs this
# script itself). A version
# bump below reinstalls. Progress goes to stderr; stdout is the path alone.
set -euo pipefail

MOTO_VERSION=5.2.5

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LINT_TOOLS_DIR:-$root/.tools}/venv-moto"
wanted="moto[server]==$MOTO_VERSION"

mkdir -p "$(dirname "$venv")"
# One install at a time (test binaries, or two checkouts' runs, may ask at once); flock is
# util-linux, so elsewhere the install simply runs unlocked.
if command -v flock > /dev/null; then
    exec 9> "$venv.lock"
    flock 9
fi
if [[ ! -x "$venv/bin/moto_server" || "$(cat "$venv/.installed" 2>/dev/null)" != "$wanted" ]]; then
    command -v python3 > /dev/null || { echo "moto.sh: python3 is needed" >&2; exit 2; }
    echo "moto.sh: installing $wanted into ${venv#"$root"/}" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 \
        || { echo "moto.sh: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 2; }
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$wanted" >&2 \
        || { echo "moto.sh: pip install failed" >&2; exit 2; }
    echo "$wanted" > "$venv/.installed"
fi
echo "$venv/bin/moto_server"
