//! HTTP/1.1 plumbing shared by the fakes: the accept loop, the per-request
//! pipeline (record → fault → latency → handler), and response helpers.
//!
//! Each request is processed in its own task, detached from the connection: if a
//! client times out and hangs up, the server still finishes (and commits) the
//! operation, as a real server would. That is what makes timeouts ambiguous.
//!
//! Every answer gets a `Date` header from the fakes' clock (unless a fault set its own).

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, DATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::faults::FaultAction;
use crate::{clock, github, gitlab, lock, seqera, Api, RequestRecord, Shared};

/// Every response the handlers produce (a whole body).
pub(crate) type Resp = Response<Full<Bytes>>;

/// What goes on the wire: a whole body, or an endless stream.
type WireResp = Response<BoxBody<Bytes, Infallible>>;

/// A fully read request.
pub(crate) struct Req {
    pub(crate) method: Method,
    /// Path as received (percent-encoded), without the query.
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Req {
    /// A header's value, if present and visible ASCII.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter's raw value.
    pub(crate) fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }

    fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Returned from the service to make hyper close the connection without writing
/// a response.
#[derive(Debug)]
struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sandbox fault: connection dropped without a response")
    }
}

impl std::error::Error for DropConnection {}

/// Accepts connections forever, serving each on its own task.
pub(crate) async fn serve(listener: TcpListener, api: Api, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Transient (e.g. out of file descriptors): back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(api, Arc::clone(&shared), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    api: Api,
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<WireResp, DropConnection> {
    let (parts, body) = req.into_parts();
    // Read the whole body first, so a dropped answer is never mistaken for a
    // half-sent request.
    let body = body.collect().await.map_err(|_| DropConnection)?.to_bytes();
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    match tokio::spawn(process(api, shared, req)).await {
        Ok(Some(resp)) => Ok(resp),
        _ => Err(DropConnection),
    }
}

/// Record, apply faults and latency, dispatch. `None` means "close without answering".
async fn process(api: Api, shared: Arc<Shared>, req: Req) -> Option<WireResp> {
    let seq = record(&shared, api, &req);
    let action = lock(&shared.faults).select(api, req.method.as_str(), &req.path, seq);
    let latency = *lock(&shared.latency);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = match action {
        None => Some(dispatch(api, &shared, &req)),
        Some(FaultAction::Delay(d)) => {
            tokio::time::sleep(d).await;
            Some(dispatch(api, &shared, &req))
        }
        Some(FaultAction::Drop) => None,
        Some(FaultAction::PerformThenDrop) => {
            let _ = dispatch(api, &shared, &req);
            None
        }
        Some(FaultAction::PerformThenStatus { status, delay }) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let _ = dispatch(api, &shared, &req);
            Some(reason_json(status))
        }
        Some(FaultAction::Status {
            status,
            headers,
            body,
        }) => {
            let has_content_type = headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
            let json_body = !has_content_type && !body.is_empty();
            let mut resp = bytes_response(status, body.into());
            if json_body {
                resp = with_header(resp, "content-type", "application/json; charset=utf-8");
            }
            for (name, value) in &headers {
                resp = with_header(resp, name, value);
            }
            Some(decorate(api, &shared, &req, resp))
        }
        Some(FaultAction::MalformedJson) => {
            let resp = with_header(
                bytes_response(200, Bytes::from_static(b"{\"message\":\"partial respo")),
                "content-type",
                "application/json",
            );
            Some(decorate(api, &shared, &req, resp))
        }
        Some(FaultAction::HtmlPage) => Some(with_header(
            bytes_response(
                502,
                Bytes::from_static(
                    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                      <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                      </body>\r\n</html>\r\n",
                ),
            ),
            "content-type",
            "text/html",
        )),
        Some(FaultAction::EchoAuthorization {
            status,
            content_type,
            before,
            after,
        }) => {
            let mut body = before.into_bytes();
            body.extend_from_slice(b"Authorization: ");
            if let Some(v) = req.headers.get("authorization") {
                body.extend_from_slice(v.as_bytes());
            }
            body.extend_from_slice(after.as_bytes());
            Some(with_header(
                bytes_response(status, body.into()),
                "content-type",
                &content_type,
            ))
        }
        Some(FaultAction::Endless { content_length }) => {
            set_status(&shared, seq, Some(200));
            return Some(dated(endless(&shared, content_length)));
        }
        Some(FaultAction::Hold) => {
            lock(&shared.faults).held += 1;
            std::future::pending::<()>().await;
            None
        }
        Some(FaultAction::PerformThenHold) => {
            let _ = dispatch(api, &shared, &req);
            lock(&shared.faults).held += 1;
            std::future::pending::<()>().await;
            None
        }
        Some(FaultAction::CommitLater { status, after }) => {
            lock(&shared.faults).late_pending += 1;
            let answer = status.map(reason_json);
            let later = Arc::clone(&shared);
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = dispatch(api, &later, &req);
                lock(&later.faults).late_pending -= 1;
            });
            answer
        }
        Some(FaultAction::SkewDate(secs)) => {
            let resp = dispatch(api, &shared, &req);
            let at = clock::now()
                .checked_add(time::Duration::seconds(secs))
                .unwrap_or_else(clock::now);
            Some(with_header(resp, "date", &clock::http_date(at)))
        }
        Some(FaultAction::OmitNewestToken) => {
            let resp = dispatch(api, &shared, &req);
            Some(
                rewrite_tokens(resp, |tokens| {
                    let newest = tokens
                        .iter()
                        .enumerate()
                        .max_by_key(|(_, t)| t["id"].as_u64().unwrap_or(0))
                        .map(|(i, _)| i);
                    if let Some(i) = newest {
                        tokens.remove(i);
                    }
                })
                .await,
            )
        }
        Some(FaultAction::ExtraToken { id, name }) => {
            let resp = dispatch(api, &shared, &req);
            Some(
                rewrite_tokens(resp, |tokens| {
                    // The same moment as the newest real token: a tie no clock can break.
                    let created = tokens
                        .iter()
                        .max_by_key(|t| t["id"].as_u64().unwrap_or(0))
                        .map(|t| t["dateCreated"].clone())
                        .unwrap_or_else(|| clock::seqera(clock::now()).into());
                    tokens.push(serde_json::json!({
                        "id": id,
                        "name": name,
                        "dateCreated": created,
                        "lastUsed": null,
                    }));
                })
                .await,
            )
        }
    };
    set_status(&shared, seq, resp.as_ref().map(|r| r.status().as_u16()));
    resp.map(|r| dated(r.map(BodyExt::boxed)))
}

/// Adds the `Date` header from the fakes' clock, unless the answer has one already
/// (a `Status` fault may send its own).
fn dated(mut resp: WireResp) -> WireResp {
    if !resp.headers().contains_key(DATE) {
        if let Ok(v) = HeaderValue::from_str(&clock::http_date(clock::now())) {
            resp.headers_mut().insert(DATE, v);
        }
    }
    resp
}

/// The same answer with `edit` applied to the `tokens` array of its JSON body; an answer
/// without one (an error) is passed on unchanged.
async fn rewrite_tokens(resp: Resp, edit: impl FnOnce(&mut Vec<serde_json::Value>)) -> Resp {
    let (mut parts, body) = resp.into_parts();
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(never) => match never {},
    };
    let mut doc: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Response::from_parts(parts, Full::new(bytes)),
    };
    let Some(tokens) = doc.get_mut("tokens").and_then(|t| t.as_array_mut()) else {
        return Response::from_parts(parts, Full::new(bytes));
    };
    edit(tokens);
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Full::new(Bytes::from(doc.to_string())))
}

/// `status` with `{"message": <reason phrase>}`.
fn reason_json(status: u16) -> Resp {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    json(status, &serde_json::json!({ "message": reason }))
}

/// The answer of an `Endless` fault.
fn endless(shared: &Arc<Shared>, content_length: Option<u64>) -> WireResp {
    let body = Filler::new(Arc::clone(&shared.endless_bodies), content_length);
    let mut resp = Response::new(body.boxed());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(n) = content_length {
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
    resp
}

/// Bytes of filler per frame, served from a static buffer: nothing is allocated per frame.
const FILLER_CHUNK: usize = 64 * 1024;
static FILLER: [u8; FILLER_CHUNK] = [b'x'; FILLER_CHUNK];
/// How the endless body starts, so it looks like the beginning of a JSON document.
const FILLER_HEAD: &[u8] = b"{\"filler\":\"";

/// A body of `remaining` bytes (or without end), produced only as hyper asks for more,
/// i.e. as fast as the client reads. Counted in `open` while alive, so a test can see
/// the stream stop once the client has gone away.
struct Filler {
    remaining: Option<u64>,
    started: bool,
    open: Arc<AtomicUsize>,
}

impl Filler {
    fn new(open: Arc<AtomicUsize>, remaining: Option<u64>) -> Filler {
        open.fetch_add(1, Ordering::SeqCst);
        Filler {
            remaining,
            started: false,
            open,
        }
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Body for Filler {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let source: &'static [u8] = if this.started { &FILLER } else { FILLER_HEAD };
        this.started = true;
        let n = match this.remaining {
            Some(0) => return Poll::Ready(None),
            // Bounded by `source.len()`, so the cast back cannot truncate.
            Some(r) => r.min(source.len() as u64) as usize,
            None => source.len(),
        };
        if let Some(r) = &mut this.remaining {
            *r -= n as u64;
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&source[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

fn dispatch(api: Api, shared: &Shared, req: &Req) -> Resp {
    match api {
        Api::Seqera => seqera::handle(shared, req),
        Api::Github => github::handle(shared, req),
        Api::Gitlab => gitlab::handle(shared, req),
    }
}

/// Headers the real service adds to every answer (GitHub's rate-limit headers),
/// also on injected faults.
fn decorate(api: Api, shared: &Shared, req: &Req, resp: Resp) -> Resp {
    match api {
        Api::Seqera | Api::Gitlab => resp,
        Api::Github => lock(&shared.github).decorate(req, resp),
    }
}

fn record(shared: &Shared, api: Api, req: &Req) -> u64 {
    let record = RequestRecord {
        api,
        method: req.method.as_str().to_owned(),
        path: req.path_and_query(),
        status: None,
        authorization: req.header("authorization").map(str::to_owned),
        headers: req
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        received_at: Instant::now(),
    };
    let mut log = lock(&shared.log);
    log.0 += 1;
    let seq = log.0;
    log.1.push((seq, record));
    seq
}

fn set_status(shared: &Shared, seq: u64, status: Option<u16>) {
    let mut log = lock(&shared.log);
    if let Some((_, r)) = log.1.iter_mut().rev().find(|(s, _)| *s == seq) {
        r.status = status;
    }
}

// ----- response helpers -----

fn bytes_response(status: u16, body: Bytes) -> Resp {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

/// A JSON answer.
pub(crate) fn json(status: u16, value: &serde_json::Value) -> Resp {
    with_header(
        bytes_response(status, Bytes::from(value.to_string())),
        CONTENT_TYPE.as_str(),
        "application/json; charset=utf-8",
    )
}

/// An answer without a body (e.g. 204).
pub(crate) fn empty(status: u16) -> Resp {
    bytes_response(status, Bytes::new())
}

/// A plain-text answer.
pub(crate) fn text(status: u16, body: &str) -> Resp {
    with_header(
        bytes_response(status, Bytes::from(body.to_owned())),
        CONTENT_TYPE.as_str(),
        "text/plain; charset=utf-8",
    )
}

/// Sets (replaces) a header. Names and values come from this crate or were
/// checked by `FaultAction::validate`, so invalid ones are skipped, not fatal.
pub(crate) fn with_header(mut resp: Resp, name: &str, value: &str) -> Resp {
    if let (Ok(n), Ok(v)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        resp.headers_mut().insert(n, v);
    }
    resp
}

/// Sets a header only if the response does not have it yet.
pub(crate) fn with_default_header(resp: Resp, name: &str, value: &str) -> Resp {
    if resp.headers().contains_key(name) {
        resp
    } else {
        with_header(resp, name, value)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use crate::{FaultAction, FaultRule, Occurrence, PathMatch, Sandbox};

    /// Reads at least `n` bytes of a raw answer, returns the head (lower-cased).
    fn read_some(stream: &mut TcpStream, n: usize) -> String {
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = Vec::new();
        while got.len() < n {
            let k = stream.read(&mut buf).unwrap();
            assert!(k > 0, "the endless body ended");
            got.extend_from_slice(&buf[..k]);
        }
        let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        String::from_utf8_lossy(&got[..end]).to_lowercase()
    }

    fn open_streams(sb: &Sandbox) -> usize {
        sb.shared.endless_bodies.load(Ordering::SeqCst)
    }

    fn wait_for_no_stream(sb: &Sandbox) {
        let start = Instant::now();
        while open_streams(sb) != 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the endless body is still streamed after the client went away"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn an_endless_body_stops_when_the_client_goes_away() {
        for (content_length, want) in [
            (Some(8_000_000_000), "content-length: 8000000000"),
            (None, "transfer-encoding: chunked"),
        ] {
            let sb = Sandbox::start().unwrap();
            sb.add_fault(FaultRule::seqera(
                "GET",
                PathMatch::Exact("/api/tokens".into()),
                Occurrence::Always,
                FaultAction::Endless { content_length },
            ));
            let mut stream = TcpStream::connect(sb.seqera_addr()).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            stream
                .write_all(b"GET /api/tokens HTTP/1.1\r\nHost: sandbox\r\n\r\n")
                .unwrap();
            let head = read_some(&mut stream, 4 << 20);
            assert!(head.starts_with("http/1.1 200 ok"), "{head}");
            assert!(head.contains(want), "{head}");
            assert!(head.contains("\r\ndate: "), "{head}");
            assert_eq!(open_streams(&sb), 1);
            drop(stream);
            wait_for_no_stream(&sb);
        }
    }
}
