//! HTTP/1.1 plumbing shared by both fakes: the accept loop, the per-request
//! pipeline (record → fault → latency → handler), and response helpers.
//!
//! Each request is processed in its own task, detached from the connection: if a
//! client times out and hangs up, the server still finishes (and commits) the
//! operation, as a real server would. That is what makes timeouts ambiguous.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::faults::FaultAction;
use crate::{github, lock, seqera, Api, RequestRecord, Shared};

/// Every response the fakes produce.
pub(crate) type Resp = Response<Full<Bytes>>;

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
) -> Result<Resp, DropConnection> {
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
async fn process(api: Api, shared: Arc<Shared>, req: Req) -> Option<Resp> {
    let seq = record(&shared, api, &req);
    let action = lock(&shared.faults).select(api, req.method.as_str(), &req.path);
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
    };
    set_status(&shared, seq, resp.as_ref().map(|r| r.status().as_u16()));
    resp
}

fn dispatch(api: Api, shared: &Shared, req: &Req) -> Resp {
    match api {
        Api::Seqera => seqera::handle(shared, req),
        Api::Github => github::handle(shared, req),
    }
}

/// Headers the real service adds to every answer (GitHub's rate-limit headers),
/// also on injected faults.
fn decorate(api: Api, shared: &Shared, req: &Req, resp: Resp) -> Resp {
    match api {
        Api::Seqera => resp,
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
