//! moto in server mode (PyPI `moto[server]`), a widely used AWS emulator: started on a free
//! loopback port by the test that needs it, stopped when the guard drops. The binary is
//! `$SEQERA_TOKEN_ROTATE_MOTO_SERVER`, else what `scripts/moto.sh` installs (pinned, into
//! `.tools/venv-moto`), else `moto_server` on `PATH` (see `servers.rs`). In CI (`CI=true`) a
//! missing moto fails the test; elsewhere the test is skipped, loudly.
//!
//! The test reads and seeds moto's state over its HTTP API, unsigned (moto does not check
//! signatures; the region comes from the credential scope of the `Authorization` header).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The credentials the binary gets; never valid anywhere, and checked not to leak.
pub const AWS_KEY_ID: &str = "AKIATESTINGMOTO00001";
pub const AWS_SECRET_KEY: &str = "mOtOsEcReTkEy/0123456789abcdefghijklmnopq";
pub const AWS_SESSION_TOKEN: &str = "FwoGZXIvYXdzEMotoSessionToken0123456789abcdefghijkl";

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Starts moto, or returns None (after saying so) when it is not installed here.
    pub fn start() -> Option<Moto> {
        Self::start_with(&[])
    }

    /// Starts moto with extra environment, e.g. `INITIAL_NO_AUTH_ACTION_COUNT`: moto then
    /// checks signatures and IAM policies after that many unauthenticated actions.
    pub fn start_with(env: &[(&str, &str)]) -> Option<Moto> {
        let bin = super::servers::MOTO.binary_or_skip()?;
        let bin = bin.display().to_string();
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) => panic!("cannot start {bin}: {e}"),
            };
            let mut moto = Moto { child, port };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = moto.child.try_wait() {
                    break; // the port was taken in between: try another
                }
                if moto.raw("GET", "/moto-api/", &[], "").is_some() {
                    return Some(moto);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("moto_server did not start");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the binary needs to talk to this moto (an `AWS_REGION` the lines override).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url()),
            ("AWS_ACCESS_KEY_ID", AWS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_KEY.into()),
            ("AWS_SESSION_TOKEN", AWS_SESSION_TOKEN.into()),
            ("AWS_REGION", "ap-south-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> Option<(u16, String)> {
        http(self.port, method, path, headers, body)
    }

    /// One JSON-protocol call: `target` like `secretsmanager.GetSecretValue`.
    pub fn call(&self, region: &str, service: &str, target: &str, body: Value) -> (u16, Value) {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=0"
        );
        let (status, text) = self
            .raw(
                "POST",
                "/",
                &[
                    ("Content-Type", "application/x-amz-json-1.1".into()),
                    ("X-Amz-Target", target.into()),
                    ("Authorization", auth),
                ],
                &body.to_string(),
            )
            .expect("moto answers");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// One query-protocol call (IAM): form parameters in, the XML answer out.
    pub fn query(&self, service: &str, params: &[(&str, &str)]) -> (u16, String) {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
        );
        let body: Vec<String> = params
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .collect();
        self.raw(
            "POST",
            "/",
            &[
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8".into(),
                ),
                ("Authorization", auth),
            ],
            &body.join("&"),
        )
        .expect("moto answers")
    }

    /// An IAM user whose only policy is `policy`; its access key id and secret key.
    /// Three actions, unauthenticated: count them in `INITIAL_NO_AUTH_ACTION_COUNT`.
    pub fn iam_user(&self, name: &str, policy: &Value) -> (String, String) {
        let (status, text) = self.query(
            "iam",
            &[
                ("Action", "CreateUser"),
                ("Version", "2010-05-08"),
                ("UserName", name),
            ],
        );
        assert_eq!(status, 200, "CreateUser: {text}");
        let (status, text) = self.query(
            "iam",
            &[
                ("Action", "CreateAccessKey"),
                ("Version", "2010-05-08"),
                ("UserName", name),
            ],
        );
        assert_eq!(status, 200, "CreateAccessKey: {text}");
        let tag = |t: &str| {
            let open = format!("<{t}>");
            let start = text.find(&open).expect(t) + open.len();
            let end = start + text[start..].find('<').unwrap();
            text[start..end].to_string()
        };
        let (id, secret) = (tag("AccessKeyId"), tag("SecretAccessKey"));
        let (status, text) = self.query(
            "iam",
            &[
                ("Action", "PutUserPolicy"),
                ("Version", "2010-05-08"),
                ("UserName", name),
                ("PolicyName", "only"),
                ("PolicyDocument", &policy.to_string()),
            ],
        );
        assert_eq!(status, 200, "PutUserPolicy: {text}");
        (id, secret)
    }

    /// A Secrets Manager call that must succeed.
    pub fn sm(&self, region: &str, action: &str, body: Value) -> Value {
        let (status, v) = self.call(
            region,
            "secretsmanager",
            &format!("secretsmanager.{action}"),
            body,
        );
        assert_eq!(status, 200, "secretsmanager {action}: {v}");
        v
    }

    /// A Parameter Store call that must succeed.
    pub fn ssm(&self, region: &str, action: &str, body: Value) -> Value {
        let (status, v) = self.call(region, "ssm", &format!("AmazonSSM.{action}"), body);
        assert_eq!(status, 200, "ssm {action}: {v}");
        v
    }

    /// The secret's value at a staging label, if there is such a secret.
    pub fn secret_at(&self, region: &str, name: &str, stage: &str) -> Option<String> {
        let (status, v) = self.call(
            region,
            "secretsmanager",
            "secretsmanager.GetSecretValue",
            serde_json::json!({"SecretId": name, "VersionStage": stage}),
        );
        (status == 200).then(|| v["SecretString"].as_str().unwrap_or_default().to_string())
    }

    /// The parameter's decrypted value, if there is such a parameter.
    pub fn parameter(&self, region: &str, name: &str) -> Option<String> {
        let (status, v) = self.call(
            region,
            "ssm",
            "AmazonSSM.GetParameter",
            serde_json::json!({"Name": name, "WithDecryption": true}),
        );
        (status == 200).then(|| v["Parameter"]["Value"].as_str().unwrap().to_string())
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (`Connection: close`), or None if nothing
/// listens there.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// What the gateway does to the requests it faults.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward, throw moto's answer away, answer 502: performed, then a gateway error.
    PerformedThen502,
    /// Do not forward; answer 400 `ThrottlingException`: clearly not performed.
    Throttle,
}

/// A loopback proxy in front of moto that forwards every request, except that the requests
/// whose `X-Amz-Target` ends with one of `fail` get `fault`. Stops when dropped.
pub struct FaultyGateway {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub faulted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultyGateway {
    pub fn start(upstream: u16, fail: &'static [&'static str]) -> Self {
        Self::with(upstream, fail, Fault::PerformedThen502)
    }

    pub fn with(upstream: u16, fail: &'static [&'static str], fault: Fault) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let faulted = Arc::new(AtomicUsize::new(0));
        let (stop2, faulted2) = (stop.clone(), faulted.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let faulted = faulted2.clone();
                        std::thread::spawn(move || serve(conn, upstream, fail, fault, &faulted));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            stop,
            faulted,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultyGateway {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves every request of one client connection (keep-alive), one at a time.
fn serve(
    mut conn: TcpStream,
    upstream: u16,
    fail: &[&str],
    fault: Fault,
    faulted: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    loop {
        // Read the head, then the body by Content-Length.
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            if conn.read(&mut byte)? == 0 {
                return Ok(());
            }
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body)?;
        let target = header("x-amz-target").unwrap_or_default();
        let faulty = fail.iter().any(|f| target.ends_with(f));
        if faulty && fault == Fault::Throttle {
            faulted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
            write!(
                conn,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
            continue;
        }
        // Forward as is (moto checks no signature), one connection per request.
        let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
        let head_close = head.replacen("\r\n", "\r\nConnection: close\r\n", 1);
        up.write_all(head_close.as_bytes())?;
        up.write_all(&body)?;
        let mut answer = Vec::new();
        up.read_to_end(&mut answer)?;
        if faulty {
            faulted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let page = "<html><body>502 Bad Gateway</body></html>";
            write!(
                conn,
                "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{page}",
                page.len()
            )?;
        } else {
            // moto's answer, but keep-alive towards the client: drop its Connection header.
            let text = String::from_utf8_lossy(&answer).to_string();
            let (h, b) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let mut out = String::new();
            for l in h.lines() {
                let lower = l.to_ascii_lowercase();
                if lower.starts_with("connection:")
                    || lower.starts_with("content-length:")
                    || lower.starts_with("transfer-encoding:")
                {
                    continue;
                }
                out.push_str(l);
                out.push_str("\r\n");
            }
            out.push_str(&format!("Content-Length: {}\r\n\r\n", b.len()));
            conn.write_all(out.as_bytes())?;
            conn.write_all(b.as_bytes())?;
        }
    }
}
