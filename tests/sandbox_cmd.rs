//! The `sandbox` command as a workflow uses it: the real binary serves the fakes, prints one
//! JSON line, a real rotation runs against it, its control URL tells which token the secret
//! holds, finds credentials in a text, and it stops cleanly on request and on SIGTERM.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, Command, Stdio};

use common::run_binary;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_seqera-token-rotate");

/// A running `seqera-token-rotate sandbox`; killed on drop if a test failed before stopping it.
struct Served {
    child: Child,
    stderr: ChildStderr,
    /// The rest of stdout after the JSON line, read to the end in the background.
    rest: Option<std::thread::JoinHandle<String>>,
    info: Value,
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn serve() -> Served {
    let mut child = Command::new(BIN)
        .arg("sandbox")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        rest
    });
    let stderr = child.stderr.take().unwrap();
    Served {
        child,
        stderr,
        rest: Some(rest),
        info,
    }
}

impl Served {
    fn s(&self, key: &str) -> String {
        self.info[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {}", self.info))
            .to_string()
    }

    /// One request to the control URL: (status, JSON answer).
    fn control(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let url = self.s("controlUrl");
        let addr = url.strip_prefix("http://").unwrap();
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp.split(' ').nth(1).unwrap().parse().unwrap();
        let json = resp.split_once("\r\n\r\n").unwrap().1;
        (status, serde_json::from_str(json).unwrap())
    }

    /// The Action's inputs for this sandbox.
    fn inputs(&self, token_name: &str) -> HashMap<String, String> {
        [
            ("INPUT_SEQERA-ACCESS-TOKEN", self.s("seqeraAccessToken")),
            ("INPUT_SEQERA-API-URL", self.s("seqeraApiUrl")),
            ("INPUT_GITHUB-TOKEN", self.s("githubToken")),
            ("INPUT_GITHUB-API-URL", self.s("githubApiUrl")),
            ("INPUT_REPOSITORY", self.s("repository")),
            ("INPUT_TOKEN-NAME", token_name.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Waits for the process to end: (exit code, its stderr).
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        self.stderr.read_to_string(&mut err).unwrap();
        // Exactly one line on stdout, the JSON: nothing followed it.
        let rest = self.rest.take().unwrap().join().unwrap();
        assert_eq!(rest, "", "more than one line on stdout");
        (status.code(), err)
    }
}

#[test]
fn sandbox_serves_a_real_rotation_and_tells_which_token_the_secret_holds() {
    let sb = serve();
    for key in ["seqeraApiUrl", "githubApiUrl", "controlUrl"] {
        assert!(
            sb.s(key).starts_with("http://127.0.0.1:"),
            "{key} is not on loopback: {}",
            sb.info
        );
    }
    assert_eq!(sb.s("repository"), "octo-org/pipelines");
    let dir = tempfile::tempdir().unwrap();

    // Nothing stored yet.
    let (code, doc) = sb.control("GET", "/holder", "");
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc["present"], false, "{doc}");
    assert_eq!(sb.control("GET", "/holder?expect=1", "").0, 409);

    let mut previous: Option<String> = None;
    for round in 1..=2 {
        let run = run_binary(&sb.inputs("ci-try"), &["rotate"], dir.path(), true);
        assert_eq!(run.code, 0, "round {round}: {}{}", run.stdout, run.stderr);
        assert_eq!(run.out("rotated"), "true");
        let id = run.out("token-id").to_string();
        let (code, doc) = sb.control(
            "GET",
            &format!("/holder?target=repo%3Aocto-org%2Fpipelines&expect={id}"),
            "",
        );
        assert_eq!(code, 200, "round {round}: {doc}");
        assert_eq!(doc["tokenId"].as_u64().unwrap().to_string(), id);
        assert_eq!(doc["tokenName"], run.out("token-name"));
        assert_eq!(doc["live"], true);
        // The answer names the token, never its value.
        assert!(!doc.to_string().contains(&sb.s("seqeraAccessToken")));
        if let Some(prev) = &previous {
            assert_eq!(run.out("revoked-token-ids"), prev);
            // Asking for the old token now fails: it is neither held nor live.
            let (code, doc) = sb.control("GET", &format!("/holder?expect={prev}"), "");
            assert_eq!(code, 409, "{doc}");
            let (_, toks) = sb.control("GET", "/tokens", "");
            let old = toks["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["id"].as_u64().unwrap().to_string() == *prev)
                .unwrap();
            assert_eq!(old["live"], false, "{toks}");
        }
        // Nothing the rotation printed or wrote carries a sandbox credential: ask the sandbox.
        let (code, doc) = sb.control("POST", "/scan", &run.all());
        assert_eq!(code, 200, "round {round}: {doc}");
        assert_eq!(doc["leaks"], 0);
        previous = Some(id);
    }

    // A text carrying a 16-character piece of a credential is caught, and the answer does
    // not repeat it.
    let value = sb.s("seqeraAccessToken");
    let piece = &value[3..3 + 16];
    let (code, doc) = sb.control("POST", "/scan", &format!("log line\nleaked {piece} here\n"));
    assert_eq!(code, 409, "{doc}");
    assert_eq!(doc["leaks"], 1);
    assert!(!doc.to_string().contains(piece));
    // ...but not in the `::add-mask::` line, where a value belongs.
    let (code, _) = sb.control("POST", "/scan", &format!("::add-mask::{value}\n"));
    assert_eq!(code, 200);

    // A bad target line is a 400 naming the problem, an unknown path a 404.
    assert_eq!(sb.control("GET", "/holder?target=nope", "").0, 400);
    assert_eq!(sb.control("GET", "/secrets", "").0, 404);

    let (code, _) = sb.control("POST", "/stop", "");
    assert_eq!(code, 200);
    let (exit, err) = sb.finish();
    assert_eq!(exit, Some(0), "{err}");
    assert!(err.contains("Sandbox stopped (POST /stop)"), "{err}");
}

#[cfg(unix)]
#[test]
fn sandbox_stops_cleanly_on_sigterm_and_frees_its_ports() {
    let sb = serve();
    let urls: Vec<String> = ["seqeraApiUrl", "githubApiUrl", "controlUrl"]
        .iter()
        .map(|k| sb.s(k))
        .collect();
    let pid = sb.child.id();
    assert_eq!(sb.info["pid"].as_u64(), Some(u64::from(pid)));
    // SAFETY: kill(2) on our own child, which has not been waited for, so the pid is ours.
    assert_eq!(
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) },
        0,
        "kill"
    );
    let (exit, err) = sb.finish();
    assert_eq!(exit, Some(0), "{err}");
    assert!(err.contains("Sandbox stopped (SIGTERM)"), "{err}");
    for url in urls {
        let addr = url
            .strip_prefix("http://")
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        assert!(
            TcpStream::connect(&addr).is_err(),
            "{addr} still accepts connections after the stop"
        );
    }
}

#[test]
fn sandbox_is_in_the_help() {
    let o = Command::new(BIN)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("sandbox"), "{help}");
    let o = Command::new(BIN)
        .args(["sandbox", "--help"])
        .env_clear()
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for needle in ["/holder", "/scan", "/stop", "controlUrl"] {
        assert!(help.contains(needle), "{needle} not in: {help}");
    }
}
