//! seqera-token-rotate: keeps a Seqera Platform access token fresh inside GitHub secrets.
//! The protocol (SPEC §5) lives in [`rotate`]; a token value travels one road:
//! settings → Seqera client → seal → GitHub client.
//!
//! Modules:
//! - [`settings`]: flags / `INPUT_*` / env → validated settings
//! - [`target`]: secret targets: kinds, `targets` lines, labels, API paths
//! - [`naming`]: managed token names, which tokens are older, which to revoke
//! - [`lifecycle`]: grace periods (retiring tokens) and drift (targets not holding the newest token)
//! - [`seal`]: libsodium `crypto_box_seal`
//! - [`http`]: the one HTTP client: headers, retries, rate limits, scrubbing
//! - [`pace`]: GitHub's write limits: the pacer, how long a fan-out takes, its progress
//! - [`seqera`]: Seqera Platform API: user-info, tokens
//! - [`github`]: GitHub secrets API: public keys, secret writes, org secret access
//! - [`rotate`]: the rotation protocol of SPEC §5
//! - [`record`]: the record of which token every target holds (an Actions variable)
//! - [`store`]: the places a token is kept, one module per store, behind one interface
//! - [`text`]: outside text → printable text: scrubbing, control characters, escaping
//! - [`status`]: the `status` health check and the `--json` documents of `list` and `status`
//! - [`report`]: the one output layer: logs, workflow commands, outputs, summary
//! - [`app`]: one command: settings → clients → run → outputs → exit code
//! - [`demo`]: the `demo` command, a full rotation against the built-in sandbox
//! - [`sandbox_cmd`]: the `sandbox` command, that sandbox served on loopback until stopped
//! - [`generate`]: the hidden `generate` command: shell completions and the man page
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod app;
pub mod demo;
pub mod generate;
pub mod github;
pub mod http;
pub mod lifecycle;
pub mod naming;
pub mod pace;
pub mod record;
pub mod report;
pub mod rotate;
pub mod sandbox_cmd;
pub mod seal;
pub mod seqera;
pub mod settings;
pub mod status;
pub mod store;
pub mod target;
pub mod text;
