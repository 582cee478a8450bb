//! The `sandbox` command (SPEC §6): serves the built-in sandbox (fake Seqera Platform and
//! fake GitHub, the same fakes `demo` uses) on loopback until stopped, so the Action itself
//! can be tried in a workflow — and tested on every runner — without real credentials.
//!
//! On start it prints ONE JSON line on stdout and nothing else there:
//!
//! ```text
//! {"seqeraApiUrl":"http://127.0.0.1:P/api","githubApiUrl":"http://127.0.0.1:Q",
//!  "controlUrl":"http://127.0.0.1:R","seqeraAccessToken":"…","githubToken":"…",
//!  "repository":"octo-org/pipelines","environment":"production","organization":"octo-org",
//!  "pid":N}
//! ```
//!
//! The credentials are throwaway values minted by this process; they open nothing but these
//! fakes. Notes go to stderr, in and out of Actions alike.
//!
//! The control URL answers questions a workflow step can assert on without ever seeing a
//! token value (each answer is one JSON document):
//!
//! - `GET /holder?target=LINE[&expect=ID]`: which Seqera token the secret of a `targets` line
//!   (SPEC §4, e.g. `repo:octo-org/pipelines`, `env:octo-org/pipelines/production=NAME`;
//!   default: the sandbox repository's `TOWER_ACCESS_TOKEN`) decrypts to: `present`,
//!   `tokenId`, `tokenName`, `live`. With `expect`: 200 only if the secret holds the live token
//!   with that id, else 409, so `curl --fail` is the assertion.
//! - `GET /tokens`: every token of the sandbox user: `id`, `name`, `live`.
//! - `POST /scan` (body: any text, e.g. a log or the step outputs): how many of the
//!   sandbox's credential values — whole or any 16-character piece — the text carries;
//!   200 when none, 409 otherwise. The answer never repeats what it found.
//! - `POST /stop`: stops the sandbox (as SIGTERM, SIGINT or Ctrl-C do).
//!
//! The only other library code that depends on the sandbox, with `demo`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use seqera_sandbox::{Sandbox, SecretScope};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::app::{EXIT_FAILED, EXIT_OK};
use crate::report::Report;
use crate::target::{parse_targets, Scope, SecretName};
use crate::text::Scrubber;

const OWNER: &str = "octo-org";
const REPO: &str = "pipelines";
const ENVIRONMENT: &str = "production";
const USER: &str = "sandbox-user";
const DEFAULT_SECRET: &str = "TOWER_ACCESS_TOKEN";
/// The credential piece length no text may carry (SPEC §8), as the test suite checks it.
const FRAGMENT: usize = 16;
/// The largest request the control endpoint reads (a scanned log).
const MAX_REQUEST: usize = 8 << 20;

/// `sandbox`, with its own help (the control endpoints are its interface).
pub fn command() -> clap::Command {
    clap::Command::new("sandbox")
        .about("Serve a local sandbox (fake Seqera and GitHub on loopback) until stopped, to try the Action safely")
        .long_about(LONG_ABOUT)
}

const LONG_ABOUT: &str = "\
Serve the built-in sandbox (a fake Seqera Platform and a fake GitHub, on 127.0.0.1) until
stopped, to try the Action in a workflow, or the tool in a shell, before pointing it at real
credentials. Prints ONE JSON line on stdout:

  {\"seqeraApiUrl\",\"githubApiUrl\",\"controlUrl\",\"seqeraAccessToken\",\"githubToken\",
   \"repository\",\"environment\",\"organization\",\"pid\"}

The credentials are throwaway values that open only this sandbox. Pass them as the Action's
seqera-api-url, seqera-access-token, github-api-url, github-token and repository.

The control URL answers (JSON; never a token value):
  GET  /holder?target=LINE[&expect=ID]  which token the secret of a targets line (default
       repo:octo-org/pipelines) decrypts to: tokenId, tokenName, live; with expect, HTTP 200
       only if it holds the live token ID, else 409 (so `curl --fail` asserts it)
  GET  /tokens                          the sandbox user's tokens: id, name, live
  POST /scan                            the body (a log, outputs): 200 if it carries no
       sandbox credential nor a 16-character piece of one, else 409
  POST /stop                            stop (as do SIGTERM and Ctrl-C)";

/// Runs the sandbox until stopped; exit 0 after a clean stop, 1 if it could not start.
pub async fn run(_out: &Report) -> u8 {
    // Stdout carries the JSON line only, stderr the notes, whether or not in Actions: a
    // workflow starts this in the background with stdout going to a file.
    let out = Report::with_sinks(
        false,
        Scrubber::default(),
        Arc::new(Mutex::new(std::io::stdout())),
        Arc::new(Mutex::new(std::io::stderr())),
    );
    let sandbox = match Sandbox::start() {
        Ok(s) => s,
        Err(e) => {
            out.error(&format!("cannot start the local sandbox: {e}"));
            return EXIT_FAILED;
        }
    };
    let control = match TcpListener::bind(("127.0.0.1", 0)).await {
        Ok(l) => l,
        Err(e) => {
            out.error(&format!("cannot listen on 127.0.0.1: {e}"));
            return EXIT_FAILED;
        }
    };
    let control_url = match control.local_addr() {
        Ok(a) => format!("http://{a}"),
        Err(e) => {
            out.error(&format!("cannot listen on 127.0.0.1: {e}"));
            return EXIT_FAILED;
        }
    };
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            out.error(&format!("cannot listen for stop signals: {e}"));
            return EXIT_FAILED;
        }
    };
    let user = sandbox.add_user(USER);
    let access = sandbox.create_token(user, "sandbox-personal-token");
    let github_token = format!(
        "ghs_sandbox_{}",
        Alphanumeric.sample_string(&mut rand::rng(), 28)
    );
    sandbox.add_github_token(&github_token, true);
    sandbox.add_repo(OWNER, REPO);
    sandbox.add_environment(OWNER, REPO, ENVIRONMENT);
    sandbox.add_org(OWNER);
    out.json(&json!({
        "seqeraApiUrl": sandbox.seqera_url(),
        "githubApiUrl": sandbox.github_url(),
        "controlUrl": control_url,
        "seqeraAccessToken": access.value,
        "githubToken": github_token,
        "repository": format!("{OWNER}/{REPO}"),
        "environment": ENVIRONMENT,
        "organization": OWNER,
        "pid": std::process::id(),
    }));
    out.step(&format!(
        "Sandbox serving: fake Seqera at {}, fake GitHub at {}, control at {control_url}. Stop it with POST {control_url}/stop, SIGTERM or Ctrl-C.",
        sandbox.seqera_url(),
        sandbox.github_url()
    ));
    let state = Control {
        sandbox,
        user,
        github_token,
    };
    let stopped_by = serve(&control, &state, &mut signals).await;
    drop(control);
    state.sandbox.shutdown();
    out.step(&format!("Sandbox stopped ({stopped_by})."));
    EXIT_OK
}

struct Control {
    sandbox: Sandbox,
    user: u64,
    github_token: String,
}

/// Answers control requests, one at a time, until asked to stop; returns what stopped it.
async fn serve(listener: &TcpListener, state: &Control, signals: &mut Signals) -> &'static str {
    loop {
        tokio::select! {
            what = signals.recv() => return what,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                // One slow client must not hold the sandbox: each exchange has a deadline.
                let exchange = tokio::time::timeout(Duration::from_secs(30), answer(stream, state));
                if let Ok(Some(Stop)) = exchange.await {
                    return "POST /stop";
                }
            }
        }
    }
}

/// SIGTERM and SIGINT (Ctrl-C on Windows), listened for from creation on: created before
/// the JSON line is printed, so a stop sent right after reading it is never missed.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(windows)]
    ctrl_c: tokio::signal::windows::CtrlC,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(windows)]
        {
            Ok(Self {
                ctrl_c: tokio::signal::windows::ctrl_c()?,
            })
        }
    }

    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(windows)]
        {
            let _ = self.ctrl_c.recv().await;
            "Ctrl-C"
        }
    }
}

struct Stop;

/// Reads one HTTP/1.1 request, writes one JSON answer and closes the connection.
async fn answer(mut stream: TcpStream, state: &Control) -> Option<Stop> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, body_len) = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).into_owned();
            let len = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (i + 4, len);
        }
        if buf.len() > 64 << 10 {
            return None;
        }
    };
    if body_len > MAX_REQUEST {
        let _ = write(&mut stream, 413, &json!({"error": "request too large"})).await;
        return None;
    }
    while buf.len() < head_end + body_len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let body = &buf[head_end..buf.len().min(head_end + body_len)];
    let mut request_line = head.lines().next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("");
    let target = request_line.next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, doc, stop) = match (method, path) {
        ("GET", "/holder") => {
            let (s, d) = holder(state, query);
            (s, d, false)
        }
        ("GET", "/tokens") => (200, tokens(state), false),
        ("POST", "/scan") => {
            let (s, d) = scan(state, &String::from_utf8_lossy(body));
            (s, d, false)
        }
        ("POST", "/stop") => (200, json!({"stopping": true}), true),
        _ => (
            404,
            json!({"error": "unknown request; see `seqera-token-rotate sandbox --help`"}),
            false,
        ),
    };
    let _ = write(&mut stream, status, &doc).await;
    stop.then_some(Stop)
}

async fn write(stream: &mut TcpStream, status: u16, doc: &Value) -> std::io::Result<()> {
    let body = doc.to_string();
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Payload Too Large",
        _ => "Bad Request",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// `key=value` pairs of a query string, percent-decoded (`+` is a space).
fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn holder(state: &Control, query: &str) -> (u16, Value) {
    let line = query_param(query, "target").unwrap_or_else(|| format!("repo:{OWNER}/{REPO}"));
    let default_name = SecretName::parse(DEFAULT_SECRET).unwrap_or_else(|_| unreachable!());
    let target = match parse_targets(&line, &default_name) {
        Ok(mut t) if t.len() == 1 => t.remove(0),
        Ok(_) => {
            return (
                400,
                json!({"error": "target: give exactly one targets line"}),
            )
        }
        Err(e) => return (400, json!({"error": format!("target: {}", e.reason)})),
    };
    let Some((scope, secret_name)) = target.github() else {
        return (
            400,
            json!({"error": "target: the sandbox serves GitHub secrets only"}),
        );
    };
    let scope = match scope.clone() {
        Scope::Repo { owner, repo } => SecretScope::Repo { owner, repo },
        Scope::Environment { owner, repo, env } => SecretScope::Environment { owner, repo, env },
        Scope::Org { org } => SecretScope::Org { org },
        Scope::Dependabot { owner, repo } => SecretScope::Dependabot { owner, repo },
        Scope::Codespaces { owner, repo } => SecretScope::Codespaces { owner, repo },
    };
    let held = state
        .sandbox
        .secret(&scope, secret_name.as_str())
        .and_then(|s| state.sandbox.token_by_value(&s.plaintext));
    let mut doc = json!({
        "target": target.label,
        "secret": secret_name.as_str(),
        "present": state.sandbox.secret(&scope, secret_name.as_str()).is_some(),
        "tokenId": held.as_ref().map(|t| t.id),
        "tokenName": held.as_ref().map(|t| t.name.clone()),
        "live": held.as_ref().is_some_and(|t| !t.revoked),
    });
    let Some(expect) = query_param(query, "expect") else {
        return (200, doc);
    };
    let ok = held
        .as_ref()
        .is_some_and(|t| !t.revoked && t.id.to_string() == expect.trim());
    doc["expected"] = json!(expect.trim());
    (if ok { 200 } else { 409 }, doc)
}

fn tokens(state: &Control) -> Value {
    let list: Vec<Value> = state
        .sandbox
        .tokens()
        .into_iter()
        .filter(|t| t.user_id == state.user)
        .map(|t| json!({"id": t.id, "name": t.name, "live": !t.revoked}))
        .collect();
    json!({ "tokens": list })
}

/// Counts the sandbox credentials (every token ever minted, and the GitHub token) of which
/// `text` carries the whole value or a `FRAGMENT`-character piece. `::add-mask::` lines are
/// the one place a value belongs.
fn scan(state: &Control, text: &str) -> (u16, Value) {
    let mut values: Vec<String> = state
        .sandbox
        .tokens()
        .into_iter()
        .map(|t| t.value)
        .collect();
    values.push(state.github_token.clone());
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("::add-mask::"))
        .collect();
    let leaks = values
        .iter()
        .filter(|v| {
            let pieces: Vec<&str> = if v.len() <= FRAGMENT {
                vec![v.as_str()]
            } else {
                (0..=v.len() - FRAGMENT)
                    .filter_map(|i| v.get(i..i + FRAGMENT))
                    .collect()
            };
            lines.iter().any(|l| pieces.iter().any(|p| l.contains(p)))
        })
        .count();
    let doc = json!({"leaks": leaks, "credentials": values.len(), "bytes": text.len()});
    (if leaks == 0 { 200 } else { 409 }, doc)
}
