#!/usr/bin/env bash
# The steps around `uses: ./` in ci.yml's `action` job, which runs the Action on every
# runner (Linux x64/arm64, macOS arm64/x64, Windows x64) against the `sandbox` command: no
# network beyond loopback, no real credentials. scripts/act.sh runs the same job locally
# with nektos/act. Subcommands, each one workflow step (bash, Git Bash on Windows):
#
#   prepare source    build the binary that serves the sandbox (debug: the Action builds
#                     its own release binary from source, isolated)
#   prepare release   build that binary and pack it as release.yml does; write
#                     .action-under-test/ = action.yml + scripts/, pinned as a release
#                     commit pins it: this version, a file:// URL to the archive and its
#                     SHA-256, so the Action's download-and-verify path runs
#   start             start `seqera-token-rotate sandbox` in the background; mask its
#                     throwaway credentials; put them and its URLs in GITHUB_ENV
#   check             assert on the Action's outputs (env, see below) and ask the sandbox
#                     which token the secret holds (curl --fail: the live new token) and
#                     whether the outputs carry any credential
#   stop              stop the sandbox and wait until it says so
#
# State: SANDBOX_STATE_DIR (default RUNNER_TEMP/sandbox): the JSON line and the log.
set -euo pipefail

fail() {
    echo "::error title=try-action::$*"
    exit 1
}

unix_path() {
    if command -v cygpath > /dev/null; then cygpath -u "$1"; else printf '%s\n' "$1"; fi
}

# Git Bash: pass arguments to native programs (curl, jq) as written; a URL with
# `repo:owner/name` in it is not a path list.
export MSYS_NO_PATHCONV=1 MSYS2_ARG_CONV_EXCL='*'

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="$(unix_path "${SANDBOX_STATE_DIR:-${RUNNER_TEMP:?}/sandbox}")"
exe=""
[[ "${RUNNER_OS:-}" == Windows ]] && exe=".exe"
name=seqera-token-rotate

sha256_of() {
    if command -v sha256sum > /dev/null; then
        sha256sum -- "$1" | cut -d' ' -f1
    else
        shasum -a 256 -- "$1" | cut -d' ' -f1
    fi
}

# The JSON line's field $1. On stdin: jq on Windows is a native program, and arguments
# are not rewritten into Windows paths here (below); it may also end lines with CR.
field() {
    jq -r --arg k "$1" '.[$k]' < "$state/sandbox.json" | tr -d '\r'
}

prepare() {
    cd "$root"
    # The binary that serves the sandbox, and that the release-style path packs: a debug
    # build (what the install path does with it does not depend on the profile).
    # CARGO_TARGET_DIR: scripts/act.sh points it at the repository's warm target/.
    cargo build --locked --bin "$name"
    local bin
    bin="$(unix_path "${CARGO_TARGET_DIR:-$root/target}")/debug/$name$exe"
    case "${1:-}" in
        source)
            echo "SANDBOX_BIN=$bin" >> "$GITHUB_ENV"
            ;;
        release)
            local key target
            # As scripts/install-binary.sh maps the runner to an archive and its pin.
            case "$RUNNER_OS/$RUNNER_ARCH" in
                Linux/X64) key=LINUX_X64 target=x86_64-unknown-linux-musl ;;
                Linux/ARM64) key=LINUX_ARM64 target=aarch64-unknown-linux-musl ;;
                macOS/X64) key=MACOS_X64 target=x86_64-apple-darwin ;;
                macOS/ARM64) key=MACOS_ARM64 target=aarch64-apple-darwin ;;
                Windows/X64) key=WINDOWS_X64 target=x86_64-pc-windows-msvc ;;
                *) fail "no release platform for $RUNNER_OS/$RUNNER_ARCH" ;;
            esac
            # The archive as release.yml packs it (binary and README in <name>-<target>/).
            local dist="$root/.action-under-test/dist" dir="$name-$target"
            rm -rf "$root/.action-under-test"
            mkdir -p "$dist/$dir" "$root/.action-under-test/scripts"
            cp "$bin" README.md "$dist/$dir/"
            (cd "$dist" && tar -czf "$dir.tar.gz" "$dir" && rm -rf "$dir")
            local sha url version
            sha="$(sha256_of "$dist/$dir.tar.gz")"
            version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
            if command -v cygpath > /dev/null; then
                url="file:///$(cygpath -m "$dist")"
            else
                url="file://$dist"
            fi
            # The pin lines, as release.yml's publish job writes them; the other platforms
            # get a pin no archive matches.
            cp scripts/install-binary.sh "$root/.action-under-test/scripts/"
            cp action.yml "$root/.action-under-test/action.yml"
            pin() {
                sed -i.bak -E "s|^(        $1: )\"\"\$|\\1\"$2\"|" "$root/.action-under-test/action.yml"
                grep -qxF "        $1: \"$2\"" "$root/.action-under-test/action.yml" \
                    || fail "could not pin $1"
            }
            pin SEQERA_TOKEN_ROTATE_VERSION "$version"
            pin SEQERA_TOKEN_ROTATE_DOWNLOAD_URL "$url"
            local k
            for k in LINUX_X64 LINUX_ARM64 MACOS_X64 MACOS_ARM64 WINDOWS_X64; do
                if [[ "$k" == "$key" ]]; then
                    pin "SEQERA_TOKEN_ROTATE_SHA256_$k" "$sha"
                else
                    pin "SEQERA_TOKEN_ROTATE_SHA256_$k" "$(printf '0%.0s' {1..64})"
                fi
            done
            rm -f "$root/.action-under-test/action.yml.bak"
            echo "Pinned .action-under-test/action.yml to $dir.tar.gz, SHA-256 $sha, at $url"
            echo "SANDBOX_BIN=$bin" >> "$GITHUB_ENV"
            ;;
        *) fail "prepare source|release" ;;
    esac
}

start() {
    local bin="${SANDBOX_BIN:?run prepare first}"
    mkdir -p "$state"
    rm -f "$state/sandbox.json" "$state/sandbox.log"
    # In the background, past the end of this step; stdin closed, stdout to the file. Its
    # own session where setsid exists: act ends a step by killing its process group
    # (GitHub's runner leaves it running until the job ends).
    local detach=()
    command -v setsid > /dev/null && detach=(setsid)
    ${detach[@]+"${detach[@]}"} "$bin" sandbox > "$state/sandbox.json" 2> "$state/sandbox.log" < /dev/null &
    local i
    for ((i = 0; i < 300; i++)); do
        [[ -s "$state/sandbox.json" ]] && break
        sleep 0.1
    done
    [[ -s "$state/sandbox.json" ]] || { cat "$state/sandbox.log" >&2; fail "the sandbox did not start"; }
    local seqera_token github_token
    seqera_token="$(field seqeraAccessToken)"
    github_token="$(field githubToken)"
    # Throwaway values, but they get the treatment of real ones.
    echo "::add-mask::$seqera_token"
    echo "::add-mask::$github_token"
    {
        echo "SANDBOX_SEQERA_API_URL=$(field seqeraApiUrl)"
        echo "SANDBOX_GITHUB_API_URL=$(field githubApiUrl)"
        echo "SANDBOX_CONTROL_URL=$(field controlUrl)"
        echo "SANDBOX_REPOSITORY=$(field repository)"
        echo "SANDBOX_SEQERA_TOKEN=$seqera_token"
        echo "SANDBOX_GITHUB_TOKEN=$github_token"
    } >> "$GITHUB_ENV"
    echo "Sandbox: Seqera $(field seqeraApiUrl), GitHub $(field githubApiUrl), control $(field controlUrl)"
}

check() {
    local control="${SANDBOX_CONTROL_URL:?}"
    [[ "${ROTATED:-}" == true ]] || fail "output rotated is '${ROTATED:-}', not true"
    [[ "${TOKEN_ID:-}" =~ ^[0-9]+$ ]] || fail "output token-id '${TOKEN_ID:-}' is not an id"
    [[ "${TOKEN_NAME:-}" =~ ^ci-sandbox-[0-9]{8}-[0-9]{6}$ ]] \
        || fail "output token-name '${TOKEN_NAME:-}' is not ci-sandbox-YYYYMMDD-HHMMSS"
    [[ "${UPDATED_TARGETS:-}" == "repo:${SANDBOX_REPOSITORY:?}" ]] \
        || fail "output updated-targets is '${UPDATED_TARGETS:-}'"
    [[ "${HEALTHY:-}" == true ]] || fail "status: healthy is '${HEALTHY:-}': ${PROBLEMS:-}"
    [[ -z "${PROBLEMS:-}" ]] || fail "status problems: $PROBLEMS"
    # The secret decrypts (with the fake GitHub's key) to the live token this run created.
    curl --fail-with-body --silent --show-error \
        "$control/holder?target=repo:$SANDBOX_REPOSITORY&expect=$TOKEN_ID" \
        || fail "the secret does not hold the live token $TOKEN_ID"
    echo
    # No credential, nor a 16-character piece of one, in anything the Action handed on.
    printf '%s\n' "$ROTATED" "$TOKEN_ID" "$TOKEN_NAME" "${REVOKED:-}" "$UPDATED_TARGETS" \
        "$HEALTHY" "${PROBLEMS:-}" "${ACCESS_KEY:-}" \
        | curl --fail-with-body --silent --show-error --data-binary @- "$control/scan" \
        || fail "a sandbox credential is in the Action's outputs"
    echo
    echo "Checked: rotated, status healthy, the secret holds the live token $TOKEN_ID ($TOKEN_NAME), no credential in the outputs"
}

stop() {
    [[ -s "$state/sandbox.json" ]] || { echo "no sandbox was started"; return 0; }
    curl --fail --silent --show-error --request POST "$(field controlUrl)/stop" > /dev/null \
        || echo "the sandbox did not answer /stop (already gone?)"
    local i
    for ((i = 0; i < 100; i++)); do
        grep -q "Sandbox stopped" "$state/sandbox.log" && break
        sleep 0.1
    done
    cat "$state/sandbox.log"
    grep -q "Sandbox stopped" "$state/sandbox.log" || fail "the sandbox did not stop"
}

case "${1:-}" in
    prepare) prepare "${2:-}" ;;
    start) start ;;
    check) check ;;
    stop) stop ;;
    *) fail "usage: $0 prepare source|release | start | check | stop" ;;
esac
