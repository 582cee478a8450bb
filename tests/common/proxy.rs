//! The one loopback fault proxy of the tests: a keep-alive HTTP/1.1 server that reads each
//! request, asks a hook what to do with it, and forwards it (as HTTP/1.0, one connection
//! per request, so any upstream's answer ends at its close) to the upstream the hook names —
//! or answers it itself, cuts the connection, or holds it, before or after forwarding.
//! Used in front of OpenBao (`bao::proxy`), moto (`moto::FaultyGateway`) and by the fault
//! explorer (tests/explore.rs), whose hooks place faults at named requests.
//! Stops accepting, and lets every held request go, when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as a loopback server received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// What a server answers: status, content type, body.
pub type Reply = (u16, &'static str, Vec<u8>);

/// Where held requests wait, unanswered, until the gate opens (or the proxy stops); then
/// their connections close.
#[derive(Default)]
pub struct Gate {
    open: AtomicBool,
    held: AtomicUsize,
}

impl Gate {
    /// How many requests reached their hold point (after forwarding, for `ForwardThenHold`).
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// What the proxy does with one request.
pub enum Act {
    /// Forward it and pass the answer on.
    Forward,
    /// Answer this, not forwarded.
    Answer(Reply),
    /// Close the connection, not forwarded, no answer.
    Cut,
    /// Forward it, throw the answer away, answer this.
    ForwardThen(Reply),
    /// Forward it, then close the connection without an answer.
    ForwardThenCut,
    /// Keep it unanswered (not forwarded) until the gate opens.
    Hold(Arc<Gate>),
    /// Forward it, then keep it unanswered until the gate opens.
    ForwardThenHold(Arc<Gate>),
}

type Hook = dyn Fn(&Seen) -> (SocketAddr, Act) + Send + Sync;

pub struct FaultProxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
    }
}

impl FaultProxy {
    /// A proxy to `upstream`; `hook` decides what happens to each request.
    pub fn to(
        upstream: SocketAddr,
        hook: impl Fn(&Seen) -> Act + Send + Sync + 'static,
    ) -> FaultProxy {
        Self::routed(move |req| (upstream, hook(req)))
    }

    /// A proxy whose `hook` names the upstream of each request too.
    pub fn routed(hook: impl Fn(&Seen) -> (SocketAddr, Act) + Send + Sync + 'static) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let hook: Arc<Hook> = Arc::new(hook);
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (hook, seen, stop) =
                    (Arc::clone(&hook), Arc::clone(&seen2), Arc::clone(&stop2));
                std::thread::spawn(move || serve(conn, &*hook, &seen, &stop));
            }
        });
        FaultProxy { addr, seen, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one request (head, then a `Content-Length` body); None at the connection's end.
pub fn read_request(r: &mut impl BufRead) -> Option<Seen> {
    let mut first = String::new();
    if r.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    let mut parts = first.split_whitespace();
    Some(Seen {
        method: parts.next().unwrap_or_default().to_string(),
        target: parts.next().unwrap_or_default().to_string(),
        headers,
        body,
    })
}

/// Writes an answer (keep-alive: framed by `Content-Length`).
pub fn write_reply(w: &mut impl Write, (status, ctype, body): &Reply) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
        reason(*status),
        body.len()
    );
    w.write_all(head.as_bytes())?;
    w.write_all(body)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// An upstream's answer: status, headers, body.
struct Upstream {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Forwards `req` to `to` as HTTP/1.0 (the upstream closes after its answer).
fn forward(to: SocketAddr, req: &Seen) -> std::io::Result<Upstream> {
    let mut up = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
    up.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{} {} HTTP/1.0\r\nHost: {to}\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        if !matches!(
            k.as_str(),
            "host" | "connection" | "keep-alive" | "content-length" | "transfer-encoding"
        ) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", req.body.len()));
    up.write_all(head.as_bytes())?;
    up.write_all(&req.body)?;
    let mut all = Vec::new();
    up.read_to_end(&mut all)?;
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of head"))?;
    let text = String::from_utf8_lossy(&all[..split]).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Upstream {
        status,
        headers,
        body: all[split + 4..].to_vec(),
    })
}

/// Passes an upstream answer on, keep-alive (its own framing headers replaced).
fn pass_on(w: &mut impl Write, a: &Upstream) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", a.status, reason(a.status));
    for (k, v) in &a.headers {
        let lower = k.to_ascii_lowercase();
        if !matches!(
            lower.as_str(),
            "connection" | "keep-alive" | "content-length" | "transfer-encoding"
        ) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", a.body.len()));
    w.write_all(head.as_bytes())?;
    w.write_all(&a.body)
}

fn hold(gate: &Gate, stop: &AtomicBool) {
    gate.held.fetch_add(1, Ordering::SeqCst);
    while !gate.open.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

const UPSTREAM_FAILED: Reply = (502, "text/plain", Vec::new());

/// Serves every request of one client connection, one at a time.
fn serve(conn: TcpStream, hook: &Hook, seen: &Mutex<Vec<Seen>>, stop: &AtomicBool) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let Ok(mut w) = conn.try_clone() else { return };
    let mut r = BufReader::new(conn);
    while let Some(req) = read_request(&mut r) {
        seen.lock().unwrap().push(req.clone());
        let (to, act) = hook(&req);
        let written = match act {
            Act::Forward => match forward(to, &req) {
                Ok(a) => pass_on(&mut w, &a),
                Err(_) => write_reply(&mut w, &UPSTREAM_FAILED),
            },
            Act::Answer(reply) => write_reply(&mut w, &reply),
            Act::Cut => return,
            Act::ForwardThen(reply) => {
                let _ = forward(to, &req);
                write_reply(&mut w, &reply)
            }
            Act::ForwardThenCut => {
                let _ = forward(to, &req);
                return;
            }
            Act::Hold(gate) => return hold(&gate, stop),
            Act::ForwardThenHold(gate) => {
                let _ = forward(to, &req);
                return hold(&gate, stop);
            }
        };
        if written.is_err() {
            return;
        }
    }
}

/// Forwards `req` to `to` and returns the answer (a 502 if the upstream failed), for hooks
/// that forward themselves.
pub fn forward_reply(to: SocketAddr, req: &Seen) -> Reply {
    match forward(to, req) {
        Ok(a) => (a.status, "application/json", a.body),
        Err(_) => (502, "text/plain", b"proxy: upstream failed".to_vec()),
    }
}
