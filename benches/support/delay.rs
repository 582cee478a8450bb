//! A loopback delay line in front of a real server (moto, OpenBao), so that every request to
//! it waits the same one-way latency as the sandbox's answers do: each request, once it has
//! fully arrived (head, then a `Content-Length` body), is forwarded `latency` later; answers
//! flow back at once. Thread per connection, no pipelining assumed beyond what HTTP/1.1
//! clients do (one request at a time per connection). Every request is logged (method,
//! path, `X-Amz-Target`; never a header value or a body) with when it arrived, when it was
//! forwarded and when the first byte of its answer came back.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request as the delay line saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The AWS JSON protocol's operation (`secretsmanager.GetSecretValue`), if any.
    pub amz_target: Option<String>,
    /// The whole request has arrived from the client.
    pub received: Instant,
    /// Sent on to the server (`received` + latency).
    pub forwarded: Option<Instant>,
    /// The first byte of the server's answer came back.
    pub answered: Option<Instant>,
    /// The answer's status code.
    pub status: Option<u16>,
}

type Log = Arc<Mutex<Vec<Logged>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The delay line; stops accepting when dropped (open connections end with their client).
pub struct DelayProxy {
    pub port: u16,
    log: Log,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl DelayProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to 127.0.0.1:`upstream`.
    pub fn start(upstream: u16, latency: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("bound").port();
        let log: Log = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (Arc::clone(&log), Arc::clone(&stop));
        // Blocking accept (no polling to wake the shared CPUs); `drop` wakes it to stop.
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let log = Arc::clone(&log2);
                std::thread::spawn(move || connection(conn, upstream, latency, &log));
            }
        });
        Self {
            port,
            log,
            stop,
            accept: Some(accept),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request so far, in order of arrival.
    pub fn log(&self) -> Vec<Logged> {
        lock(&self.log).clone()
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// The length of the first complete request in `buf` (head and body), if it is all there.
fn complete(buf: &[u8]) -> Option<(usize, String)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    assert!(
        header("transfer-encoding").is_none(),
        "the delay proxy frames requests by Content-Length; a chunked request came"
    );
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (buf.len() >= end + len).then_some((end + len, head))
}

fn logged(head: &str, received: Instant) -> Logged {
    let mut first = head.lines().next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let amz_target = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("x-amz-target")
            .then(|| v.trim().to_string())
    });
    Logged {
        method,
        path,
        amz_target,
        received,
        forwarded: None,
        answered: None,
        status: None,
    }
}

/// One client connection: a reader that frames requests and queues them with their due
/// time, a writer that sends each on when due, and a copier of the answers back.
fn connection(mut client: TcpStream, upstream: u16, latency: Duration, log: &Log) {
    let _ = client.set_nodelay(true);
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return; // the client sees the connection close
    };
    let _ = up.set_nodelay(true);
    // A server that never closes a connection the client has left must not keep threads.
    let _ = up.set_read_timeout(Some(Duration::from_secs(60)));
    let (Ok(mut up_w), Ok(mut client_w)) = (up.try_clone(), client.try_clone()) else {
        return;
    };
    // Requests forwarded and not yet answered, oldest first (indices into the log).
    let waiting: Arc<Mutex<VecDeque<usize>>> = Arc::default();
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>, usize)>();

    let (log_w, waiting_w) = (Arc::clone(log), Arc::clone(&waiting));
    let writer = std::thread::spawn(move || {
        for (due, bytes, i) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            lock(&waiting_w).push_back(i);
            lock(&log_w)[i].forwarded = Some(Instant::now());
            if up_w.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = up_w.shutdown(Shutdown::Write);
    });

    let (log_a, waiting_a) = (Arc::clone(log), Arc::clone(&waiting));
    let answers = std::thread::spawn(move || {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match up.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // The client sends its next request only after this answer: any bytes
                    // now belong to the oldest request not yet answered.
                    if let Some(i) = lock(&waiting_a).pop_front() {
                        let mut l = lock(&log_a);
                        l[i].answered = Some(Instant::now());
                        // `HTTP/1.1 200 OK`: the status line starts the answer's first bytes.
                        l[i].status = std::str::from_utf8(&chunk[..n.min(16)])
                            .ok()
                            .and_then(|h| h.split(' ').nth(1))
                            .and_then(|c| c.parse().ok());
                    }
                    if client_w.write_all(&chunk[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = client_w.shutdown(Shutdown::Both);
    });

    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        while let Some((len, head)) = complete(&buf) {
            let now = Instant::now();
            let i = {
                let mut l = lock(log);
                l.push(logged(&head, now));
                l.len() - 1
            };
            let bytes: Vec<u8> = buf.drain(..len).collect();
            if tx.send((now + latency, bytes, i)).is_err() {
                break;
            }
        }
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    drop(tx);
    let _ = writer.join();
    let _ = answers.join();
}
