#!/usr/bin/env bash
# Installs moto's server (PyPI `moto[server]`, pinned) into .tools/venv-moto on first use
# and prints the path of its `moto_server`: the AWS emulator the tests of the AWS stores
# start (tests/common/servers.rs reads it from SEQERA_TOKEN_ROTATE_MOTO_SERVER, or runs this
# script itself). A version bump below reinstalls. Progress goes to stderr; stdout is the
# path alone.
set -euo pipefail

MOTO_VERSION=5.2.5

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LINT_TOOLS_DIR:-$root/.tools}/venv-moto"
"$root/scripts/pip-venv.sh" "$venv" "moto[server]==$MOTO_VERSION"
echo "$venv/bin/moto_server"
