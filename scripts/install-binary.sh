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
#   `cargo build --release --locked`, isolated from the caller's workspace and environment
#   (see that section below).
#
# Fails closed: an unsupported platform, a missing or malformed pin, a failed download or
# a checksum mismatch stop the step (exit 1) and leave no binary behind.
#
# Environment (all set by action.yml; the runner provides RUNNER_* and GITHUB_*):
#   SEQERA_TOKEN_ROTATE_VERSION       release version without `v`, empty = build from source
#   SEQERA_TOKEN_ROTATE_DOWNLOAD_URL  base URL of the release assets (https://, or file:// in tests)
#   SEQERA_TOKEN_ROTATE_SHA256_{LINUX_X64,LINUX_ARM64,MACOS_X64,MACOS_ARM64,WINDOWS_X64}
#   RUNNER_OS, RUNNER_ARCH, RUNNER_TEMP, GITHUB_OUTPUT, GITHUB_ACTION_PATH
# Optional, for runners without github.com (README "Runners without github.com"); either
# way the archive must match the pin above, exactly as a download must:
#   RUNNER_TOOL_CACHE/seqera-token-rotate/<version>/<x64|arm64>/<asset>  a pre-seeded archive
#   SEQERA_TOKEN_ROTATE_MIRROR        (job env) base URL of a mirror of the release assets
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

# ...and a Windows program (cargo.exe) reading a path from its environment wants D:\a\_temp.
native_path() {
    if command -v cygpath > /dev/null; then cygpath -w "$1"; else printf '%s\n' "$1"; fi
}

: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: run this from the Action}"
tmp="$(unix_path "${RUNNER_TEMP:-${TMPDIR:-/tmp}}")"
exe=""
[[ "${RUNNER_OS:-}" == Windows ]] && exe=".exe"

version="${SEQERA_TOKEN_ROTATE_VERSION:-}"

# --- unreleased ref: build from source --------------------------------------------------
# The build must depend on this action's own files only: nothing of the caller's workspace
# (a pull-request checkout is enough to plant files there) nor of the job's environment may
# run code during it or choose the binary that then receives both tokens. So cargo runs in
# the action's directory (cargo and rustup look for `.cargo/config.toml` and
# `rust-toolchain.toml` from the working directory up), with a CARGO_HOME of its own (no
# config.toml; crates are downloaded into it and checked against Cargo.lock), the toolchain
# pinned below (RUSTUP_TOOLCHAIN outranks every toolchain file), and none of the variables
# that steer cargo, rustc or the C compiler of a build script (CARGO_*, RUST*, CC, CFLAGS,
# ...): they are removed from its environment, not just overridden.
if [[ -z "$version" ]]; then
    # The toolchain this ref is developed and tested with (RUST_TOOLCHAIN in ci.yml).
    toolchain=1.95.0
    src="$(unix_path "${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set}")"
    command -v cargo > /dev/null \
        || fail "this ref of the Action is not a release, so it builds from source, but cargo is not installed; use a release (uses: OWNER/seqera-token-rotate@v1) or install Rust first"
    target_dir="$tmp/$name-build"
    cargo_home="$tmp/$name-cargo-home"
    mkdir -p "$cargo_home"
    # `env -u NAME` for every variable that could reach the build. Names are read from
    # `env` itself: on Windows some (ProgramFiles(x86)) are not valid shell names.
    unset_args=()
    while IFS= read -r var; do
        case "$var" in
            CARGO_* | RUST* | RUSTUP_* | CC | CXX | AR | LD | RANLIB | CFLAGS | CXXFLAGS | CPPFLAGS | LDFLAGS \
                | CC_* | CXX_* | AR_* | CFLAGS_* | CXXFLAGS_* | CPPFLAGS_* | LDFLAGS_* | RANLIB_* \
                | TARGET_* | HOST_* | CRATE_CC_NO_DEFAULTS | LD_PRELOAD | LD_LIBRARY_PATH \
                | DYLD_* | MAKEFLAGS | CARGO | RUSTC | RUSTDOC | RUSTC_WRAPPER | RUSTC_WORKSPACE_WRAPPER)
                # RUSTUP_HOME stays: where the runner's toolchains are installed.
                [[ "$var" == RUSTUP_HOME ]] || unset_args+=(-u "$var")
                ;;
        esac
    done < <(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | sort -u)
    # (The ${a[@]+...} form: bash 3.2, macOS's /bin/bash, calls an empty array unbound.)
    build_env=(env ${unset_args[@]+"${unset_args[@]}"} CARGO_HOME="$(native_path "$cargo_home")" CARGO_TERM_COLOR=never)
    if command -v rustup > /dev/null; then
        build_env+=(RUSTUP_TOOLCHAIN="$toolchain")
        if ! "${build_env[@]}" rustup toolchain list | grep -q "^$toolchain-"; then
            echo "Installing Rust $toolchain (the toolchain this ref is built with)"
            (cd "$src" && "${build_env[@]}" rustup toolchain install "$toolchain" --profile minimal) \
                || fail "could not install Rust $toolchain with rustup"
        fi
    fi
    echo "Not a release: building $name from source (cargo build --release --locked, Rust $toolchain where rustup is installed, in the action's own directory: the workspace's Cargo configuration, toolchain file and CARGO_*/RUST* variables do not apply)"
    (cd "$src" && "${build_env[@]}" cargo build --release --locked --bin "$name" \
        --manifest-path "$src/Cargo.toml" --target-dir "$target_dir") \
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

# Runners that cannot reach github.com (GitHub Enterprise Server, private networks) have two
# ways in, both held to the same pin: an archive pre-seeded in the runner's tool cache, or
# a mirror of the release assets named by the job (SEQERA_TOKEN_ROTATE_MIRROR).
arch_dir="$(printf '%s' "${RUNNER_ARCH}" | tr '[:upper:]' '[:lower:]')"
cached=""
if [[ -n "${RUNNER_TOOL_CACHE:-}" ]]; then
    cached="$(unix_path "$RUNNER_TOOL_CACHE")/$name/$version/$arch_dir/$asset"
fi
mirror="${SEQERA_TOKEN_ROTATE_MIRROR:-}"
if [[ -n "$cached" && -f "$cached" ]]; then
    echo "Using $asset from the runner's tool cache ($cached)"
    cp -- "$cached" "$dest/$asset" || { rm -rf "$dest"; fail "could not copy $cached"; }
else
    if [[ -n "$mirror" ]]; then
        [[ "$mirror" =~ ^(https|file):// ]] \
            || { rm -rf "$dest"; fail "SEQERA_TOKEN_ROTATE_MIRROR '$mirror' is not an https:// URL"; }
        base="$mirror"
        echo "Downloading $asset from the mirror SEQERA_TOKEN_ROTATE_MIRROR ($name $version for ${RUNNER_OS}/${RUNNER_ARCH})"
    else
        echo "Downloading $asset ($name $version for ${RUNNER_OS}/${RUNNER_ARCH})"
    fi
    curl --fail --silent --show-error --location --retry 3 \
        --proto '=https,file' --proto-redir '=https' \
        --output "$dest/$asset" "${base%/}/$asset" \
        || { rm -rf "$dest"; fail "could not download ${base%/}/$asset"; }
fi

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
