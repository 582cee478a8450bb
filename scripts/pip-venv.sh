#!/usr/bin/env bash
# pip-venv.sh VENV REQUIREMENT...: makes VENV a Python venv holding exactly these pinned
# requirements (PyPI), unless it already does (VENV/.installed records them; a different
# list reinstalls from scratch). One install at a time per VENV (flock, where util-linux has
# it). Progress goes to stderr; stdout stays empty. Exit 2 when python3, venv or pip fails.
# Used by every script that installs a tool: lint.sh, act.sh, moto.sh, bao.sh.
set -euo pipefail

[[ $# -ge 2 ]] || { echo "usage: pip-venv.sh VENV REQUIREMENT..." >&2; exit 2; }
venv="$1"
shift
wanted="$*"

mkdir -p "$(dirname "$venv")"
if command -v flock > /dev/null; then
    exec 9> "$venv.lock"
    flock 9
fi
if [[ -x "$venv/bin/python" && "$(cat "$venv/.installed" 2>/dev/null)" == "$wanted" ]]; then
    exit 0
fi
command -v python3 > /dev/null || { echo "pip-venv.sh: python3 is needed to install $wanted" >&2; exit 2; }
echo "pip-venv.sh: installing from PyPI into $venv: $wanted" >&2
rm -rf "$venv"
python3 -m venv "$venv" >&2 \
    || { echo "pip-venv.sh: python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 2; }
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$@" >&2 \
    || { echo "pip-venv.sh: pip install $wanted failed" >&2; exit 2; }
printf '%s' "$wanted" > "$venv/.installed"
