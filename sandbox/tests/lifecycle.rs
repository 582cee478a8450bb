//! Starting and stopping: the sync API works from plain tests and from inside a
//! tokio runtime, and dropping the sandbox frees its ports and its thread even
//! with connections open and requests in flight.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{client, sq};
use reqwest::Method;
use seqera_sandbox::{FaultAction, FaultRule, Occurrence, PathMatch, Sandbox};

/// These tests count the process's sandbox threads, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn refused(addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        Ok(_) => false,
    }
}

/// Waits briefly for the number of sandbox threads to settle at `expected` (a
/// joined thread can linger in `/proc` for an instant) and returns the count.
fn sandbox_threads_settle(expected: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let n = sandbox_threads();
        if n == expected || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Threads of this process named like the sandbox's runtime thread.
fn sandbox_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0; // not Linux: nothing to count
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "seqera-sandbox")
        .count()
}

#[test]
fn works_from_a_plain_test_and_drop_frees_ports_and_thread() {
    let _serial = serial();
    let sb = Sandbox::start().unwrap();
    let (seqera, github) = (sb.seqera_addr(), sb.github_addr());
    assert_ne!(seqera.port(), github.port());
    assert_eq!(
        sb.seqera_url(),
        format!("http://127.0.0.1:{}/api", seqera.port())
    );
    assert_eq!(
        sb.github_url(),
        format!("http://127.0.0.1:{}", github.port())
    );
    assert_eq!(sandbox_threads_settle(1), 1);

    let mut stream = TcpStream::connect(seqera).unwrap();
    stream
        .write_all(b"GET /api/service-info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");

    // A kept-alive connection left open must not keep the server alive.
    let mut idle = TcpStream::connect(github).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    drop(sb);
    assert!(refused(seqera), "seqera port still open");
    assert!(refused(github), "github port still open");
    let mut buf = [0u8; 1];
    assert!(
        matches!(idle.read(&mut buf), Ok(0) | Err(_)),
        "idle connection still open"
    );
    assert_eq!(sandbox_threads_settle(0), 0);
}

#[test]
fn shutdown_does_not_wait_for_requests_in_flight() {
    let _serial = serial();
    let sb = Sandbox::start().unwrap();
    sb.add_fault(FaultRule::seqera(
        "*",
        PathMatch::Prefix("/".into()),
        Occurrence::Always,
        FaultAction::Delay(Duration::from_secs(30)),
    ));
    let addr = sb.seqera_addr();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /api/service-info HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Wait until the request is in flight.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sb.requests().is_empty() {
        assert!(Instant::now() < deadline, "request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    let start = Instant::now();
    sb.shutdown();
    assert!(start.elapsed() < Duration::from_secs(5));
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "answered after shutdown");
    assert!(refused(addr));
}

/// Starting, using and dropping the sandbox from async code, as the binary's
/// `demo` does. (Sync tests that build a runtime, so the serialising guard is
/// never held across an `.await`.)
async fn use_from_async() {
    let (sb, alice, token) = common::sandbox();
    let resp = sq(&client(), &sb, Method::GET, "/user-info", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sb.live_tokens(alice).len(), 1);
    let addr = sb.github_addr();
    drop(sb);
    assert!(refused(addr));
}

#[test]
fn works_inside_a_multi_thread_runtime() {
    let _serial = serial();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(use_from_async());
    assert_eq!(sandbox_threads_settle(0), 0);
}

#[test]
fn works_inside_a_current_thread_runtime() {
    let _serial = serial();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(use_from_async());
    assert_eq!(sandbox_threads_settle(0), 0);
}

#[test]
fn sandboxes_are_independent() {
    let _serial = serial();
    let a = Sandbox::start().unwrap();
    let b = Sandbox::start().unwrap();
    assert_ne!(a.seqera_addr(), b.seqera_addr());
    let user = a.add_user("u");
    a.create_token(user, "t");
    assert_eq!(a.tokens().len(), 1);
    assert!(b.tokens().is_empty());
    assert_eq!(sandbox_threads_settle(2), 2);
    drop(a);
    drop(b);
    assert_eq!(sandbox_threads_settle(0), 0);
}
