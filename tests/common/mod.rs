//! Test harness: a sandbox world (fake Seqera + fake GitHub on loopback), the real binary run
//! with `INPUT_*` variables like the Actions runner sets them, and readers for what it left:
//! outputs, summary, logs. The sandbox stops when the `World` is dropped.
#![allow(dead_code)]

pub mod bao;
pub mod moto;
pub mod proxy;
pub mod servers;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

pub use seqera_sandbox::{
    Api, FaultAction, FaultRule, Occurrence, PathMatch, Sandbox, SecretScope, SeqeraToken,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_seqera-token-rotate");
pub const GH_TOKEN: &str = "ghs_test_installation_token_0123456789";
pub const OWNER: &str = "octo";
pub const REPO: &str = "app";
pub const SECRET: &str = "TOWER_ACCESS_TOKEN";
pub const NAME: &str = "ci";
/// The record's Actions variable for `NAME` (SPEC §2's default).
pub const RECORD_VARIABLE: &str = "SEQERA_TOKEN_ROTATE_CI";

/// A sandbox with one Seqera user, their personal access token, a GitHub token that may
/// write secrets, and the repository octo/app.
pub struct World {
    pub sb: Sandbox,
    pub user: u64,
    pub access: SeqeraToken,
    dir: tempfile::TempDir,
}

/// What one run of the binary left behind.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub outputs: HashMap<String, String>,
    pub outputs_raw: String,
    pub summary: String,
}

impl World {
    pub fn new() -> Self {
        let sb = Sandbox::start().expect("sandbox starts");
        let user = sb.add_user("alice");
        let access = sb.create_token(user, "alice-personal");
        sb.add_github_token(GH_TOKEN, true);
        sb.add_repo(OWNER, REPO);
        Self {
            sb,
            user,
            access,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn repo_scope() -> SecretScope {
        SecretScope::Repo {
            owner: OWNER.into(),
            repo: REPO.into(),
        }
    }

    /// The settings a workflow step would pass, as the runner sets them.
    pub fn base_env(&self) -> Vec<(String, String)> {
        [
            ("INPUT_SEQERA-ACCESS-TOKEN", self.access.value.clone()),
            ("INPUT_SEQERA-API-URL", self.sb.seqera_url()),
            ("INPUT_GITHUB-TOKEN", GH_TOKEN.to_string()),
            ("INPUT_GITHUB-API-URL", self.sb.github_url()),
            ("GITHUB_REPOSITORY", format!("{OWNER}/{REPO}")),
            ("INPUT_TOKEN-NAME", NAME.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Runs the binary in Actions mode with the base settings plus `extra` (an empty value
    /// removes a base setting) and `args`.
    pub fn run(&self, extra: &[(&str, &str)], args: &[&str]) -> Run {
        let mut env: HashMap<String, String> = self.base_env().into_iter().collect();
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        run_binary(&env, args, self.dir.path(), true)
    }

    /// Like `run`, but as from a terminal: no `GITHUB_ACTIONS`, no output or summary file.
    pub fn run_terminal(&self, extra: &[(&str, &str)], args: &[&str]) -> Run {
        let mut env: HashMap<String, String> = self.base_env().into_iter().collect();
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        run_binary(&env, args, self.dir.path(), false)
    }

    /// Writes the record (SPEC §5, *The record*) a complete rotation of `token` to the
    /// targets `labels` would have left, as the Actions variable of octo/app.
    pub fn set_record(&self, token: &SeqeraToken, labels: &[&str]) {
        let mut sorted = labels.to_vec();
        sorted.sort_unstable();
        let d = ring::digest::digest(&ring::digest::SHA256, sorted.join("\n").as_bytes());
        let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let record = serde_json::json!({
            "tokenId": token.id,
            "tokenName": token.name,
            "targets": format!("sha256:{hex}"),
            "count": labels.len(),
            "at": "2026-01-01T00:00:00Z",
        });
        self.sb
            .set_variable(OWNER, REPO, RECORD_VARIABLE, &record.to_string());
    }

    /// Every token value the sandbox ever issued, plus the GitHub token.
    pub fn all_secret_values(&self) -> Vec<String> {
        let mut v: Vec<String> = self.sb.tokens().into_iter().map(|t| t.value).collect();
        v.push(GH_TOKEN.to_string());
        v
    }

    /// The value in the repository secret, decrypted by the fake with its own key.
    pub fn secret_value(&self, scope: &SecretScope, name: &str) -> Option<String> {
        self.sb.secret(scope, name).map(|s| s.plaintext)
    }

    /// The live token the secret decrypts to; panics if it is not a live token.
    pub fn live_token_in(&self, scope: &SecretScope, name: &str) -> SeqeraToken {
        let v = self.secret_value(scope, name).expect("secret exists");
        assert!(
            self.sb.is_live(&v),
            "secret {scope:?}/{name} holds a token that is not live"
        );
        self.sb
            .token_by_value(&v)
            .expect("secret holds a Seqera token")
    }

    /// Live tokens of the user whose name is managed by `ci`.
    pub fn live_managed(&self) -> Vec<SeqeraToken> {
        self.sb
            .live_tokens(self.user)
            .into_iter()
            .filter(|t| t.name == NAME || t.name.starts_with("ci-"))
            .collect()
    }

    /// Mutating requests seen (anything but GET).
    pub fn mutations(&self) -> Vec<String> {
        self.sb
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Asserts no token value appears anywhere in what the run printed or wrote, except on
    /// `::add-mask::` lines (and the `access-key` output when `allow_access_key`).
    pub fn assert_no_leak(&self, run: &Run, allow_access_key: bool) {
        let values = self.all_secret_values();
        let outputs_checked = if allow_access_key {
            run.outputs
                .iter()
                .filter(|(k, _)| *k != "access-key")
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            run.outputs_raw.clone()
        };
        for (what, text) in [
            ("stdout", run.stdout.as_str()),
            ("stderr", &run.stderr),
            ("outputs", &outputs_checked),
            ("summary", &run.summary),
        ] {
            for line in text.lines().filter(|l| !l.starts_with("::add-mask::")) {
                for v in &values {
                    assert!(
                        !line.contains(v.as_str()),
                        "a token value leaked into {what}: {line}"
                    );
                }
            }
        }
    }
}

pub fn run_binary(env: &HashMap<String, String>, args: &[&str], dir: &Path, actions: bool) -> Run {
    let out_file = dir.join(format!("output-{}", rand_suffix()));
    let sum_file = dir.join(format!("summary-{}", rand_suffix()));
    let mut cmd = Command::new(BIN);
    cmd.env_clear().args(args).stdin(Stdio::null());
    cmd.env("SEQERA_TOKEN_ROTATE_TEST_BACKOFF_MS", "10");
    if actions {
        cmd.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", &out_file)
            .env("GITHUB_STEP_SUMMARY", &sum_file);
    }
    for (k, v) in env {
        if !v.is_empty() {
            cmd.env(k, v);
        }
    }
    let o = cmd.output().expect("binary runs");
    let outputs_raw = std::fs::read_to_string(&out_file).unwrap_or_default();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        outputs: parse_outputs(&outputs_raw),
        outputs_raw,
        summary: std::fs::read_to_string(&sum_file).unwrap_or_default(),
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Parses `name<<DELIM\nvalue\nDELIM\n` blocks.
pub fn parse_outputs(raw: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut lines = raw.lines();
    while let Some(head) = lines.next() {
        let (name, delim) = head
            .split_once("<<")
            .unwrap_or_else(|| panic!("not a delimited output: {head}"));
        let mut value = Vec::new();
        for l in lines.by_ref() {
            if l == delim {
                break;
            }
            value.push(l);
        }
        map.insert(name.to_string(), value.join("\n"));
    }
    map
}

impl Run {
    pub fn out(&self, name: &str) -> &str {
        self.outputs
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no output {name}; run: {self:#?}"))
    }

    /// Everything printed, for message checks.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Everything the run printed or wrote, by name: stdout, stderr, outputs, summary.
    pub fn texts(&self) -> [(&'static str, &str); 4] {
        [
            ("stdout", &self.stdout),
            ("stderr", &self.stderr),
            ("outputs", &self.outputs_raw),
            ("summary", &self.summary),
        ]
    }
}

/// A fault rule that always answers `status` for `method` requests whose path contains `path`.
pub fn always(api: Api, method: &str, path: &str, action: FaultAction) -> FaultRule {
    FaultRule {
        api,
        method: method.into(),
        path: PathMatch::Contains(path.into()),
        when: Occurrence::Always,
        action,
    }
}

// ----- helpers for the fault-injection and crash tests (tests/faults.rs, tests/crash.rs) -----

/// The binary started in the background (for crash tests), set up exactly like `World::run`
/// but with stdout/stderr piped; `finish` waits for it and collects what it left.
pub struct Spawned {
    pub child: std::process::Child,
    out_file: std::path::PathBuf,
    sum_file: std::path::PathBuf,
}

impl Spawned {
    /// Waits for the process (killed or not) and reads its output, outputs and summary.
    pub fn finish(self) -> Run {
        let o = self.child.wait_with_output().expect("binary is waited for");
        let outputs_raw = std::fs::read_to_string(&self.out_file).unwrap_or_default();
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            // A killed run may leave a half-written output file: parse only complete blocks.
            outputs: parse_complete_outputs(&outputs_raw),
            outputs_raw,
            summary: std::fs::read_to_string(&self.sum_file).unwrap_or_default(),
        }
    }
}

/// Like `parse_outputs`, but ignores a last block without its closing delimiter.
pub fn parse_complete_outputs(raw: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut lines = raw.lines();
    while let Some(head) = lines.next() {
        let Some((name, delim)) = head.split_once("<<") else {
            break;
        };
        let mut value = Vec::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if l == delim {
                closed = true;
                break;
            }
            value.push(l);
        }
        if closed {
            map.insert(name.to_string(), value.join("\n"));
        }
    }
    map
}

impl World {
    /// Starts the binary like `run` does, without waiting for it.
    pub fn spawn(&self, extra: &[(&str, &str)], args: &[&str]) -> Spawned {
        let mut env: HashMap<String, String> = self.base_env().into_iter().collect();
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let out_file = self.dir.path().join(format!("output-{}", rand_suffix()));
        let sum_file = self.dir.path().join(format!("summary-{}", rand_suffix()));
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("SEQERA_TOKEN_ROTATE_TEST_BACKOFF_MS", "10")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", &out_file)
            .env("GITHUB_STEP_SUMMARY", &sum_file);
        for (k, v) in &env {
            if !v.is_empty() {
                cmd.env(k, v);
            }
        }
        Spawned {
            child: cmd.spawn().expect("binary starts"),
            out_file,
            sum_file,
        }
    }

    /// Waits until every request the fakes received has been answered (or deliberately left
    /// unanswered by a `Drop` fault, which never gets a status: don't use it then). A `Delay`
    /// fault keeps working after the client gave up, so state is only final once this returns.
    pub fn settle(&self, deadline: std::time::Duration) {
        wait_until(deadline, "every request to the fakes is answered", || {
            self.sb.requests().iter().all(|r| r.status.is_some())
        });
    }

    /// `assert_no_leak`, also checking values the sandbox did not issue (e.g. a second
    /// GitHub token).
    pub fn assert_no_leak_of(&self, run: &Run, extra: &[&str]) {
        self.assert_no_leak(run, false);
        for (what, text) in run.texts() {
            for line in text.lines().filter(|l| !l.starts_with("::add-mask::")) {
                for v in extra {
                    assert!(
                        !line.contains(v),
                        "a secret value leaked into {what}: {line}"
                    );
                }
            }
        }
    }

    /// Ids of the live managed tokens, ascending.
    pub fn live_managed_ids(&self) -> Vec<u64> {
        self.live_managed().iter().map(|t| t.id).collect()
    }
}

/// Polls `done` every 10 ms until it holds; panics after `deadline` naming `what`.
pub fn wait_until(deadline: std::time::Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < deadline,
            "gave up after {deadline:?} waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The fragment length no output may carry of a credential (SPEC §8: not even a fragment).
pub const FRAGMENT: usize = 16;

/// No `FRAGMENT`-character run of any of `secrets` in anything the run printed or wrote,
/// except `::add-mask::` lines; `context` names the run in the failure.
pub fn assert_no_fragment(run: &Run, secrets: &[String], context: &str) {
    let pieces: Vec<&str> = secrets
        .iter()
        .flat_map(|v| {
            (0..v.len().saturating_sub(FRAGMENT - 1)).filter_map(|i| v.get(i..i + FRAGMENT))
        })
        .collect();
    for (what, text) in run.texts() {
        for line in text.lines().filter(|l| !l.starts_with("::add-mask::")) {
            if let Some(p) = pieces.iter().find(|p| line.contains(**p)) {
                panic!("{context}: a piece of a credential ({p:?}) leaked into {what}: {line}");
            }
        }
    }
}

/// The token id carried by a Seqera token value (`base64({"tid":N}.…)`).
pub fn tid_of(value: &str) -> u64 {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value)
        .expect("a Seqera token is base64");
    let head = raw.split(|b| *b == b'.').next().unwrap();
    serde_json::from_slice::<serde_json::Value>(head).unwrap()["tid"]
        .as_u64()
        .expect("a tid")
}
