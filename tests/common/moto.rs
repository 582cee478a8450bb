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

use super::proxy::{Act, FaultProxy};

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

/// A loopback proxy in front of moto (the tests' one fault proxy, `proxy::FaultProxy`) that
/// forwards every request, except that the requests whose `X-Amz-Target` ends with one of
/// `fail` get `fault`. Stops when dropped.
pub struct FaultyGateway {
    pub port: u16,
    pub faulted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _proxy: FaultProxy,
}

impl FaultyGateway {
    pub fn start(upstream: u16, fail: &'static [&'static str]) -> Self {
        Self::with(upstream, fail, Fault::PerformedThen502)
    }

    pub fn with(upstream: u16, fail: &'static [&'static str], fault: Fault) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let faulted = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&faulted);
        let proxy = FaultProxy::to(([127, 0, 0, 1], upstream).into(), move |req| {
            let target = req.header("x-amz-target").unwrap_or_default();
            if !fail.iter().any(|f| target.ends_with(f)) {
                return Act::Forward;
            }
            counted.fetch_add(1, Ordering::SeqCst);
            match fault {
                Fault::Throttle => Act::Answer((
                    400,
                    "application/x-amz-json-1.1",
                    br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_vec(),
                )),
                Fault::PerformedThen502 => Act::ForwardThen((
                    502,
                    "text/html",
                    b"<html><body>502 Bad Gateway</body></html>".to_vec(),
                )),
            }
        });
        Self {
            port: proxy.addr.port(),
            faulted,
            _proxy: proxy,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
