#!/usr/bin/env bash
# The Action's install step (action.yml): puts the seqera-token-rotate binary for this
# runner on disk and writes its path to the step output `path`.
#
#   Released ref (SEQERA_TOKEN_ROTATE_VERSION set, by the release commit): picks the
#   release archive of RUNNER_OS / RUNNER_ARCH, downloads it from
#   SEQERA_TOKEN_ROTATE_DOWNLOAD_URL, checks its SHA-256 against the pin for that platform
#   (SEQERA_TOKEN_ROTATE_SHA256_<OS>_<ARCH>, also written by the release commit), and only
#   then unpacks it. The pins live in action.yml itself, so a released commit can only ever
#   run the bytes it names, as an image digest would.
#   Unreleased ref (no version: main, a branch, `uses: ./`): builds from source with
#   `cargo build --release --locked`.
#
# Fails closed: an unsupported platform, a missing or malformed pin, a failed download or
# a checksum mismatch stop the step (exit 1) and leave no binary behind.
#
# Environment (all set by action.yml; the runner provides RUNNER_* and GITHUB_*):
#   SEQERA_TOKEN_ROTATE_VERSION       release version without `v`, empty = build from source
#   SEQERA_TOKEN_ROTATE_DOWNLOAD_URL  base URL of the release assets (https://, or file:// in tests)
#   SEQERA_TOKEN_ROTATE_SHA256_{LINUX_X64,LINUX_ARM64,MACOS_X64,MACOS_ARM64,WINDOWS_X64}
#   RUNNER_OS, RUNNER_ARCH, RUNNER_TEMP, GITHUB_OUTPUT, GITHUB_ACTION_PATH
#
# No input of the Action reaches this script: it needs none, and holds no secret.

set -euo pipefail

name=seqera-token-rotate

fail() {
    echo "::error title=seqera-token-rotate install::$*" >&2
    exit 1
}

# RUNNER_OS / RUNNER_ARCH (the runner's spelling) -> "<pin variable suffix> <Rust target>".
# The five platforms the release workflow builds on native runners; anything else has no
# release binary, and running some other platform's bytes is never a fallback.
platform() {
    case "$1/$2" in
        Linux/X64) echo "LINUX_X64 x86_64-unknown-linux-musl" ;;
        Linux/ARM64) echo "LINUX_ARM64 aarch64-unknown-linux-musl" ;;
        macOS/X64) echo "MACOS_X64 x86_64-apple-darwin" ;;
        macOS/ARM64) echo "MACOS_ARM64 aarch64-apple-darwin" ;;
        Windows/X64) echo "WINDOWS_X64 x86_64-pc-windows-msvc" ;;
        *) return 1 ;;
    esac
}

sha256_of() {
    if command -v sha256sum > /dev/null; then
        sha256sum -- "$1" | cut -d' ' -f1
    elif command -v shasum > /dev/null; then
        shasum -a 256 -- "$1" | cut -d' ' -f1
    else
        fail "neither sha256sum nor shasum is installed: cannot verify the download"
    fi
}

# Git Bash on Windows hands out Windows paths (D:\a\_temp); tar and friends want /d/a/_temp.
unix_path() {
    if command -v cygpath > /dev/null; then cygpath -u "$1"; else printf '%s\n' "$1"; fi
}

: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: run this from the Action}"
tmp="$(unix_path "${RUNNER_TEMP:-${TMPDIR:-/tmp}}")"
exe=""
[[ "${RUNNER_OS:-}" == Windows ]] && exe=".exe"

version="${SEQERA_TOKEN_ROTATE_VERSION:-}"

# --- unreleased ref: build from source --------------------------------------------------
if [[ -z "$version" ]]; then
    src="$(unix_path "${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set}")"
    command -v cargo > /dev/null \
        || fail "this ref of the Action is not a release, so it builds from source, but cargo is not installed; use a release (uses: OWNER/seqera-token-rotate@v1) or install Rust first"
    target_dir="$tmp/$name-build"
    echo "Not a release: building $name from source (cargo build --release --locked)"
    cargo build --release --locked --bin "$name" \
        --manifest-path "$src/Cargo.toml" --target-dir "$target_dir" \
        || fail "cargo build failed"
    bin="$target_dir/release/$name$exe"
    [[ -f "$bin" ]] || fail "cargo build did not produce $bin"
    echo "path=$bin" >> "$GITHUB_OUTPUT"
    exit 0
fi

# --- release: download, verify, unpack ---------------------------------------------------
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] \
    || fail "SEQERA_TOKEN_ROTATE_VERSION '$version' is not a version"
sel="$(platform "${RUNNER_OS:-}" "${RUNNER_ARCH:-}")" \
    || fail "no release binary for ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}: supported are Linux, macOS (X64, ARM64) and Windows (X64)"
read -r key target <<< "$sel"
pin_var="SEQERA_TOKEN_ROTATE_SHA256_$key"
pin="${!pin_var:-}"
[[ "$pin" =~ ^[0-9a-f]{64}$ ]] \
    || fail "$pin_var is not a SHA-256 (64 lower-case hex digits) in action.yml: refusing to run an unverified binary"
base="${SEQERA_TOKEN_ROTATE_DOWNLOAD_URL:-}"
[[ "$base" =~ ^(https|file):// ]] || fail "SEQERA_TOKEN_ROTATE_DOWNLOAD_URL '$base' is not an https:// URL"

asset="$name-$target.tar.gz"
dest="$tmp/$name-$version-$target"
rm -rf "$dest"
mkdir -p "$dest"
# Anything that fails from here on leaves nothing that a later step could run.
trap 'rm -rf "$dest"' ERR

echo "Downloading $asset ($name $version for ${RUNNER_OS}/${RUNNER_ARCH})"
curl --fail --silent --show-error --location --retry 3 \
    --proto '=https,file' --proto-redir '=https' \
    --output "$dest/$asset" "${base%/}/$asset" \
    || { rm -rf "$dest"; fail "could not download ${base%/}/$asset"; }

actual="$(sha256_of "$dest/$asset")"
if [[ "$actual" != "$pin" ]]; then
    rm -rf "$dest"
    fail "checksum mismatch for $asset: expected $pin (pinned in action.yml), got $actual; not running it"
fi
echo "SHA-256 $actual matches the pin in action.yml"

# Relative names only: GNU tar reads a drive letter (D:) as a remote host.
(cd "$dest" && tar -xzf "$asset" && rm -f "$asset") || { rm -rf "$dest"; fail "could not unpack $asset"; }
bin="$dest/$name-$target/$name$exe"
[[ -f "$bin" ]] || { rm -rf "$dest"; fail "$asset holds no $name-$target/$name$exe"; }
chmod +x "$bin"
trap - ERR
echo "path=$bin" >> "$GITHUB_OUTPUT"
