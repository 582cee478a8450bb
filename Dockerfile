# syntax=docker/dockerfile:1
#
# seqera-token-rotate: a static musl binary in an otherwise empty image.
#
# The image for `uses: docker://ghcr.io/OWNER/seqera-token-rotate@sha256:...`
# (Linux container jobs; the Action itself is a composite action that runs the
# release binary on any runner). .github/workflows/release.yml builds it with
# buildx for linux/amd64 and linux/arm64 and pushes it to GHCR; ci.yml builds
# it with a plain `docker build` (the last stage) and runs `demo` in it.
#
# The builder is the platform's own Alpine Rust image, so the host target is
# already `<arch>-unknown-linux-musl` (static by default) and ring's C code is
# built by the image's gcc + musl-dev: no cross toolchain, no package installs.

# Pinned to the Rust release the project is developed and linted with (a bump
# here goes with the toolchain in .github/workflows/ci.yml).
FROM rust:1.95-alpine AS builder
ARG TARGETARCH
WORKDIR /src

# The Rust target of the platform being built; fails early on anything else.
RUN case "${TARGETARCH:-$(apk --print-arch)}" in \
        amd64|x86_64)  echo x86_64-unknown-linux-musl  ;; \
        arm64|aarch64) echo aarch64-unknown-linux-musl ;; \
        *) echo "unsupported TARGETARCH '${TARGETARCH}'" >&2; exit 1 ;; \
    esac > /rust-target

# 1. Dependencies only, in their own layer: the manifests of both workspace
#    members and stub sources, so this layer is rebuilt only when Cargo.toml or
#    Cargo.lock change, not on every source edit.
COPY Cargo.toml Cargo.lock ./
COPY sandbox/Cargo.toml sandbox/
RUN mkdir -p src sandbox/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs sandbox/src/lib.rs \
    && cargo build --release --locked --target "$(cat /rust-target)" \
    && rm -rf src sandbox/src

# 2. The real sources. COPY keeps the files' own timestamps, which can be older
#    than the stub build above: touch them so cargo rebuilds the two workspace
#    crates instead of reusing the stubs' fingerprints.
COPY . .
RUN find src sandbox/src -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --target "$(cat /rust-target)" \
    && cp "target/$(cat /rust-target)/release/seqera-token-rotate" /seqera-token-rotate

# `docker buildx build --target binary --output type=local,dest=DIR` exports
# just the binary.
FROM scratch AS binary
COPY --from=builder /seqera-token-rotate /seqera-token-rotate

# The Action's image: the binary and the CA bundle for TLS to Seqera and GitHub,
# nothing else (no shell, no package manager).
FROM scratch
LABEL org.opencontainers.image.title="seqera-token-rotate" \
      org.opencontainers.image.description="Rotate a Seqera Platform access token into GitHub secrets, safely" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=binary /seqera-token-rotate /seqera-token-rotate
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# No USER line, on purpose: GitHub requires Docker container actions to run as
# the image's default user (root); under another USER the action cannot use
# GITHUB_WORKSPACE nor the file commands ($GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY)
# that the runner mounts. The image holds nothing but this binary and the CA
# bundle, so root inside it has nothing else to reach.
#
# The entrypoint is the binary itself, never a shell: the Action's inputs reach
# it as INPUT_<NAME> variables whose names keep their hyphens
# (INPUT_SEQERA-ACCESS-TOKEN), which /bin/sh (dash) would silently drop. No
# arguments either: every input, secrets included, travels in the environment,
# never on a command line.
ENTRYPOINT ["/seqera-token-rotate"]
