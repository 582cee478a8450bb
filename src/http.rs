//! The one HTTP client of both APIs: common headers, per-request timeout, the retry /
//! backoff / rate-limit policy of SPEC §5, error classification, and scrubbing of token
//! values from anything quoted back to the user. Knows nothing of the protocol.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER,
    USER_AGENT,
};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use thiserror::Error;
use url::Url;
use zeroize::Zeroizing;

use crate::pace::Pacer;
use crate::text::printable;

/// The longest answer body read (far above any real answer of these APIs: a page of 100
/// repositories is under 1 MiB); a longer one is refused unread.
pub const MAX_BODY: usize = 8 << 20;
/// How much of a server's message an error quotes (after scrubbing the whole message).
const MAX_MESSAGE: usize = 300;

/// Which API a request goes to: decides the headers and how a 403 is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Seqera Platform.
    Seqera,
    /// GitHub REST.
    Github,
    /// HashiCorp Vault / OpenBao: the token goes in `X-Vault-Token` (none before login).
    Vault,
    /// GitLab REST: `Authorization: Bearer`, which takes every kind of GitLab token
    /// (personal, project, group and OAuth access tokens; `PRIVATE-TOKEN` takes no OAuth one).
    Gitlab,
    /// The runner's OIDC token service (`ACTIONS_ID_TOKEN_REQUEST_URL`), bearer auth.
    Actions,
}

/// The `User-Agent` of every request.
pub const USER_AGENT_VALUE: &str = concat!("seqera-token-rotate/", env!("CARGO_PKG_VERSION"));

pub use crate::text::Scrubber;

/// How a request may be repeated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// GET, PUT, DELETE: retried on transient failures (SPEC §5 "Retries").
    Idempotent,
    /// POST /tokens: never blindly retried; only an explicit 429 (not performed) is repeated.
    Never,
}

/// The retry budget and backoff shape.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Retries without a server hint.
    pub max_retries: u32,
    /// First backoff step (full jitter over base × 2^attempt).
    pub backoff_base: Duration,
    /// All waiting in one run, together.
    pub wait_cap: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The proxy variables; none unless given.
    pub proxies: Proxies,
}

impl Policy {
    /// SPEC §5: 4 retries, 0.5 s base, 5 minutes in all; no proxy.
    pub fn new(timeout: Duration) -> Self {
        Self {
            max_retries: 4,
            backoff_base: Duration::from_millis(500),
            wait_cap: Duration::from_secs(300),
            timeout,
            proxies: Proxies::default(),
        }
    }
}

/// Hosts no proxy is ever used for (SPEC §8), in `NO_PROXY` syntax: `localhost` (and its
/// subdomains), `127.0.0.0/8`, `[::1]`.
const LOOPBACK: &str = "localhost,127.0.0.0/8,::1";

/// The proxy variables (SPEC §8): honoured for remote hosts, never for loopback ones, so a
/// bearer token sent over `http://` to a local server never passes through a proxy in clear
/// text. Read like curl and reqwest read them: upper case first, then lower case; `NO_PROXY`
/// adds hosts to the loopback ones.
#[derive(Clone, Default)]
pub struct Proxies {
    /// `HTTP_PROXY`: for `http://` URLs.
    pub http: Option<String>,
    /// `HTTPS_PROXY`: for `https://` URLs.
    pub https: Option<String>,
    /// `ALL_PROXY`: for either, when the scheme's own is not set.
    pub all: Option<String>,
    /// `NO_PROXY`: hosts reached directly.
    pub no: Option<String>,
}

impl std::fmt::Debug for Proxies {
    // A proxy URL may carry a password: say only which are set.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxies")
            .field("http", &self.http.is_some())
            .field("https", &self.https.is_some())
            .field("all", &self.all.is_some())
            .field("no", &self.no.is_some())
            .finish()
    }
}

impl Proxies {
    /// From the environment (an empty value is unset).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| {
            [name.to_ascii_uppercase(), name.to_ascii_lowercase()]
                .iter()
                .find_map(|n| env(n).filter(|v| !v.trim().is_empty()))
        };
        Self {
            http: var("http_proxy"),
            https: var("https_proxy"),
            all: var("all_proxy"),
            no: var("no_proxy"),
        }
    }

    /// The client's proxies: only these (never the system's own rules), each skipping the
    /// loopback hosts and `NO_PROXY`. The first that applies wins: the scheme's own, then
    /// `ALL_PROXY`. A value that is not a URL is ignored, as reqwest ignores it.
    fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        let mut builder = builder.no_proxy();
        let direct = format!("{LOOPBACK},{}", self.no.as_deref().unwrap_or_default());
        let direct = reqwest::NoProxy::from_string(&direct);
        let proxies = [
            self.http.as_deref().map(reqwest::Proxy::http),
            self.https.as_deref().map(reqwest::Proxy::https),
            self.all.as_deref().map(reqwest::Proxy::all),
        ];
        for p in proxies.into_iter().flatten().flatten() {
            builder = builder.proxy(p.no_proxy(direct.clone()));
        }
        builder
    }
}

/// A response with its body read.
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: bytes::Bytes,
}

impl Response {
    /// Decodes a JSON body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Decode {
            detail: format!(
                "status {} with a body that is not the expected JSON ({e})",
                self.status.as_u16()
            ),
        })
    }
}

/// Why a request did not succeed. Every text in it is scrubbed and capped.
#[derive(Debug, Error)]
pub enum HttpError {
    /// No answer: connection refused or cut, timeout.
    #[error("{detail}")]
    Transport {
        /// What happened.
        detail: String,
        /// The request may have reached the server (it may have been performed).
        maybe_sent: bool,
    },
    /// The server answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        /// Status code.
        status: u16,
        /// The server's message (from JSON `message`, or a short description of the body).
        message: String,
        /// GitHub's `x-accepted-github-permissions` header.
        accepted_permissions: Option<String>,
        /// An earlier attempt got no answer, so it may have been performed.
        after_unanswered: bool,
    },
    /// A wait the server asked for would pass the run's waiting cap.
    #[error("rate limited: the server asks to wait {}s, more than this run may wait; try again after {retry_at}", wait.as_secs())]
    RateLimited {
        /// The asked wait.
        wait: Duration,
        /// When to try again (UTC).
        retry_at: String,
        /// An earlier attempt got no answer, so it may have been performed.
        after_unanswered: bool,
    },
    /// The answer was not what the API document promises.
    #[error("{detail}")]
    Decode {
        /// What was wrong.
        detail: String,
    },
}

impl HttpError {
    /// Whether the request may have been performed although it failed: some attempt got no
    /// (or no usable) answer after it may have reached the server.
    pub fn maybe_performed(&self) -> bool {
        match self {
            HttpError::Transport { maybe_sent, .. } => *maybe_sent,
            HttpError::Status {
                after_unanswered, ..
            }
            | HttpError::RateLimited {
                after_unanswered, ..
            } => *after_unanswered,
            HttpError::Decode { .. } => false,
        }
    }

    /// The same error, marked as possibly performed when an earlier attempt of the same
    /// request got no clear answer: the last attempt's own answer cannot undo that.
    pub fn after(self, unanswered: bool) -> Self {
        match self {
            HttpError::Transport { detail, maybe_sent } => HttpError::Transport {
                detail,
                maybe_sent: maybe_sent || unanswered,
            },
            HttpError::Status {
                status,
                message,
                accepted_permissions,
                after_unanswered,
            } => HttpError::Status {
                status,
                message,
                accepted_permissions,
                after_unanswered: after_unanswered || unanswered,
            },
            HttpError::RateLimited {
                wait,
                retry_at,
                after_unanswered,
            } => HttpError::RateLimited {
                wait,
                retry_at,
                after_unanswered: after_unanswered || unanswered,
            },
            HttpError::Decode { detail } if unanswered => HttpError::Transport {
                detail,
                maybe_sent: true,
            },
            e @ HttpError::Decode { .. } => e,
        }
    }

    /// The status code, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The HTTP client shared by the Seqera and GitHub clients.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    policy: Policy,
    waited: Arc<Mutex<Duration>>,
    /// Paces every attempt (retries too) outside the waiting budget: GitHub secret writes.
    pacer: Option<Arc<Pacer>>,
    /// Values never to show.
    pub scrubber: Scrubber,
}

impl Http {
    /// Builds the client: rustls with the ring provider, no redirects (so `Authorization`
    /// can never follow one to another host), the per-request timeout.
    pub fn new(policy: Policy, scrubber: Scrubber) -> Result<Self, HttpError> {
        // Installing twice is harmless; the first provider stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = policy
            .proxies
            .apply(reqwest::Client::builder())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| HttpError::Transport {
                detail: format!("cannot set up HTTPS: {e}"),
                maybe_sent: false,
            })?;
        Ok(Self {
            client,
            policy,
            waited: Arc::default(),
            pacer: None,
            scrubber,
        })
    }

    /// The same client (and waiting budget) with every attempt paced by `pacer`.
    pub fn paced(&self, pacer: Arc<Pacer>) -> Self {
        Self {
            pacer: Some(pacer),
            ..self.clone()
        }
    }

    /// Sends a request with the retry policy; returns a response with a 2xx status, or the
    /// reason there is none.
    async fn send(
        &self,
        to: &ApiClient,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        retry: Retry,
    ) -> Result<Response, HttpError> {
        let api = to.api;
        let mut attempt = 0u32;
        let mut unanswered = false;
        loop {
            if let Some(p) = &self.pacer {
                p.acquire().await;
            }
            let result = self
                .once(to, method.clone(), url.clone(), body)
                .await
                .and_then(reject_broken_success);
            // A request that reached the server and got no clear answer may have been
            // performed: a cut or timeout after sending, or a server error (a gateway that
            // committed the write and then answered 502/503/504).
            unanswered |= match &result {
                Ok(r) => maybe_performed_status(r.status),
                Err(e) => e.maybe_performed(),
            };
            let wait = match &result {
                Ok(r) if r.status.is_success() => return result,
                Ok(r) => retry_wait(
                    api,
                    retry,
                    Outcome::Answer(r),
                    attempt,
                    &self.policy,
                    now_epoch(),
                ),
                Err(e) => retry_wait(
                    api,
                    retry,
                    Outcome::NoAnswer(e),
                    attempt,
                    &self.policy,
                    now_epoch(),
                ),
            };
            let Some(wait) = wait else {
                return match result {
                    Ok(r) => Err(self.status_error(&r, unanswered)),
                    Err(e) => Err(e.after(unanswered)),
                };
            };
            self.reserve(wait, unanswered)?;
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Takes `wait` out of the run's waiting budget, or fails at once saying when to retry.
    fn reserve(&self, wait: Duration, after_unanswered: bool) -> Result<(), HttpError> {
        let mut waited = self.waited.lock().unwrap_or_else(|p| p.into_inner());
        // Checked: a server may ask for any wait at all (`Retry-After: 300000000000`).
        let total = waited
            .checked_add(wait)
            .filter(|t| *t <= self.policy.wait_cap);
        let Some(total) = total else {
            let retry_at = time::Duration::try_from(wait)
                .ok()
                .and_then(|w| time::OffsetDateTime::now_utc().checked_add(w))
                .and_then(|at| {
                    at.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| "a time too far ahead to name".into());
            return Err(HttpError::RateLimited {
                wait,
                retry_at,
                after_unanswered,
            });
        };
        *waited = total;
        Ok(())
    }

    async fn once(
        &self,
        to: &ApiClient,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, HttpError> {
        let (api, bearer) = (to.api, &to.token);
        let header = |prefix: &str| {
            let mut v = HeaderValue::from_str(&Zeroizing::new(format!(
                "{prefix}{}",
                bearer.expose_secret()
            )))
            .map_err(|_| HttpError::Decode {
                detail: "the token cannot be sent in an HTTP header".into(),
            })?;
            v.set_sensitive(true);
            Ok::<_, HttpError>(v)
        };
        let mut req = self
            .client
            .request(method, url)
            .header(USER_AGENT, USER_AGENT_VALUE);
        req = match api {
            Api::Github => req
                .header(AUTHORIZATION, header("Bearer ")?)
                .header(ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28"),
            // No token yet (the JWT login itself): no header.
            Api::Vault if bearer.expose_secret().is_empty() => {
                req.header(ACCEPT, "application/json")
            }
            Api::Vault => req
                .header("X-Vault-Token", header("")?)
                .header(ACCEPT, "application/json"),
            Api::Seqera | Api::Gitlab | Api::Actions => req
                .header(AUTHORIZATION, header("Bearer ")?)
                .header(ACCEPT, "application/json"),
        };
        req = req.headers(to.headers.clone());
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let mut resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large(status));
        }
        // Read in chunks, so a body that never ends costs at most MAX_BODY.
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_error(&e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(too_large(status));
            }
            body.extend_from_slice(&chunk);
        }
        let body = bytes::Bytes::from(body);
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn transport_error(&self, e: &reqwest::Error) -> HttpError {
        let what = if e.is_timeout() {
            format!(
                "no answer within {}s (timeout)",
                self.policy.timeout.as_secs_f32()
            )
        } else if e.is_connect() {
            "could not connect".to_string()
        } else {
            "the connection failed before a complete answer".to_string()
        };
        let detail = printable(
            &self.scrubber,
            &format!("{what}: {}", error_chain(e)),
            MAX_MESSAGE,
        );
        HttpError::Transport {
            detail,
            maybe_sent: !e.is_connect(),
        }
    }

    fn status_error(&self, r: &Response, after_unanswered: bool) -> HttpError {
        let message = if r.status.is_redirection() {
            "redirect not followed (credentials are never sent to another location)".to_string()
        } else {
            describe_body(&r.headers, &r.body)
        };
        HttpError::Status {
            status: r.status.as_u16(),
            // The whole message is scrubbed before it is cut, so no fragment survives.
            message: printable(&self.scrubber, &message, MAX_MESSAGE),
            accepted_permissions: r
                .headers
                .get("x-accepted-github-permissions")
                .and_then(|v| v.to_str().ok())
                .map(|p| printable(&self.scrubber, p, MAX_MESSAGE)),
            after_unanswered,
        }
    }
}

/// A 2xx whose JSON body does not parse was cut short or mangled on the way: it is treated
/// like a cut connection (retried when idempotent, ambiguous for a create), never a success.
fn reject_broken_success(r: Response) -> Result<Response, HttpError> {
    let json = r
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    if r.status.is_success()
        && json
        && !r.body.is_empty()
        && serde_json::from_slice::<serde::de::IgnoredAny>(&r.body).is_err()
    {
        return Err(HttpError::Transport {
            detail: format!(
                "HTTP {} with a JSON body that is cut short or invalid",
                r.status.as_u16()
            ),
            maybe_sent: true,
        });
    }
    Ok(r)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// The server's message, whole (the caller scrubs, then cuts): JSON `message`, else a note
/// on what the body was, else the body's text.
fn describe_body(headers: &HeaderMap, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        match v.get("message") {
            Some(serde_json::Value::String(m)) => return m.to_string(),
            // GitLab's validation errors: `{"message":{"key":["has already been taken"]}}`.
            Some(m @ serde_json::Value::Object(_)) => return m.to_string(),
            _ => {}
        }
        // Vault: `{"errors":["permission denied"]}`.
        if let Some(errors) = v.get("errors").and_then(|e| e.as_array()) {
            let texts: Vec<&str> = errors.iter().filter_map(|e| e.as_str()).collect();
            if !texts.is_empty() {
                return texts.join("; ");
            }
        }
        // OAuth-style (GitLab): `{"error":"insufficient_scope","error_description":"…"}`.
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            return match v.get("error_description").and_then(|d| d.as_str()) {
                Some(d) => format!("{e}: {d}"),
                None => e.to_string(),
            };
        }
    }
    let ctype = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let text = String::from_utf8_lossy(body);
    if ctype.contains("html") || text.trim_start().starts_with('<') {
        return "the server answered with an HTML page (a proxy or gateway error?)".into();
    }
    if text.trim().is_empty() {
        return "no message".into();
    }
    text.trim().to_string()
}

/// An answer longer than [`MAX_BODY`]: refused unread, like a cut connection (it may follow
/// a performed request).
fn too_large(status: StatusCode) -> HttpError {
    HttpError::Transport {
        detail: format!(
            "HTTP {} with an answer larger than {} MiB, refused unread",
            status.as_u16(),
            MAX_BODY >> 20
        ),
        maybe_sent: true,
    }
}

/// A server error other than "not implemented": the request may have been performed before
/// the error (a gateway or a crash after the commit).
fn maybe_performed_status(status: StatusCode) -> bool {
    status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What came back from one attempt.
pub enum Outcome<'a> {
    /// A (non-2xx) response.
    Answer(&'a Response),
    /// No usable response.
    NoAnswer(&'a HttpError),
}

/// The retry decision of SPEC §5 for one failed attempt: how long to wait before the next,
/// or `None` to give up. `attempt` counts retries already made.
pub fn retry_wait(
    api: Api,
    retry: Retry,
    outcome: Outcome<'_>,
    attempt: u32,
    policy: &Policy,
    now: u64,
) -> Option<Duration> {
    // Hinted waits are honoured but still bounded in count (the time cap bounds them too).
    const MAX_HINTED: u32 = 8;
    let backoff = || {
        (attempt < policy.max_retries).then(|| {
            // Checked: no base or attempt count can panic (a wait too long fails the request).
            let ceiling = policy.backoff_base.as_secs_f64() * 2f64.powi(attempt.min(64) as i32);
            Duration::try_from_secs_f64(rand::random::<f64>() * ceiling).unwrap_or(Duration::MAX)
        })
    };
    // A hint of 0 is no hint: it waits like the backoff would and counts among the unhinted
    // retries (it once gave 9 immediate attempts per write, each taking a pacing slot).
    let hinted = |d: Duration| {
        if d.is_zero() {
            backoff()
        } else {
            (attempt < MAX_HINTED).then_some(d)
        }
    };
    match outcome {
        Outcome::NoAnswer(HttpError::Transport { maybe_sent, .. }) => match retry {
            Retry::Idempotent => backoff(),
            // A connection that never opened sent nothing: safe even for a create.
            Retry::Never if !maybe_sent => backoff(),
            Retry::Never => None,
        },
        Outcome::NoAnswer(_) => None,
        Outcome::Answer(r) => {
            let status = r.status.as_u16();
            let retry_after = parse_retry_after(&r.headers, now);
            let remaining_zero = header_str(&r.headers, "x-ratelimit-remaining") == Some("0");
            let reset_wait = header_str(&r.headers, "x-ratelimit-reset")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|reset| Duration::from_secs(reset.saturating_sub(now).saturating_add(1)));
            let secondary = api == Api::Github
                && String::from_utf8_lossy(&r.body)
                    .to_ascii_lowercase()
                    .contains("secondary rate limit");
            let rate_limited = status == 429
                || (api == Api::Github && status == 403 && (remaining_zero || secondary));
            if rate_limited {
                // Explicitly refused, not performed: repeating is safe for every method.
                if let Some(d) = retry_after {
                    return hinted(d);
                }
                if remaining_zero {
                    if let Some(d) = reset_wait {
                        return hinted(d);
                    }
                }
                if secondary {
                    return hinted(Duration::from_secs(60));
                }
                return backoff();
            }
            match (retry, status) {
                (Retry::Idempotent, 500 | 502 | 503 | 504) => match retry_after {
                    Some(d) => hinted(d),
                    None => backoff(),
                },
                _ => None,
            }
        }
    }
}

fn header_str<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(h: &HeaderMap, now: u64) -> Option<Duration> {
    let v = header_str(h, RETRY_AFTER.as_str())?;
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    let epoch = when.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(epoch.saturating_sub(now)))
}

/// One API at one base URL with one bearer token: what both clients are built on.
#[derive(Clone)]
pub struct ApiClient {
    http: Http,
    api: Api,
    base: Url,
    token: SecretString,
    /// Sent on every request besides the API's own (Vault's `X-Vault-Namespace`).
    headers: HeaderMap,
}

impl ApiClient {
    /// A client for `base` (used exactly as given); the token is registered for scrubbing.
    pub fn new(http: Http, api: Api, base: Url, token: SecretString) -> Self {
        http.scrubber.add(&token);
        Self {
            http,
            api,
            base,
            token,
            headers: HeaderMap::new(),
        }
    }

    /// The same client sending `name: value` on every request.
    pub fn with_header(mut self, name: &'static str, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// The same API and token, every attempt paced by `pacer`.
    pub fn paced(&self, pacer: Arc<Pacer>) -> Self {
        Self {
            http: self.http.paced(pacer),
            ..self.clone()
        }
    }

    /// The same API authenticating with another token.
    pub fn with_token(&self, token: SecretString) -> Self {
        Self {
            headers: self.headers.clone(),
            ..Self::new(self.http.clone(), self.api, self.base.clone(), token)
        }
    }

    /// `base` + percent-encoded `segments`.
    pub fn url(&self, segments: &[&str]) -> Url {
        endpoint(&self.base, segments)
    }

    /// Sends with the retry policy of SPEC §5; a 2xx response, or the reason there is none.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        retry: Retry,
    ) -> Result<Response, HttpError> {
        self.http.send(self, method, url, body, retry).await
    }

    /// Registers another value (e.g. a token just received) for scrubbing.
    pub fn hide(&self, value: &SecretString) {
        self.http.scrubber.add(value);
    }
}

/// Appends path segments to a base URL, percent-encoding each, keeping the base path exactly
/// (`https://host/api` + `tokens` → `https://host/api/tokens`).
pub fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    {
        let mut path = url
            .path_segments_mut()
            .expect("validated base URLs have a path");
        path.pop_if_empty();
        for s in segments {
            path.push(s);
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&'static str, &str)], body: &str) -> Response {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: body.to_string().into(),
        }
    }

    fn policy() -> Policy {
        Policy::new(Duration::from_secs(30))
    }

    fn wait(api: Api, retry: Retry, r: &Response, attempt: u32) -> Option<Duration> {
        retry_wait(
            api,
            retry,
            Outcome::Answer(r),
            attempt,
            &policy(),
            1_000_000,
        )
    }

    #[test]
    fn backoff_is_full_jitter_and_bounded() {
        let r = resp(503, &[], "");
        for attempt in 0..4 {
            for _ in 0..50 {
                let d = wait(Api::Seqera, Retry::Idempotent, &r, attempt).unwrap();
                assert!(
                    d <= Duration::from_millis(500 * 2u64.pow(attempt)),
                    "{attempt}: {d:?}"
                );
            }
        }
        assert_eq!(
            wait(Api::Seqera, Retry::Idempotent, &r, 4),
            None,
            "at most 4 retries"
        );
    }

    #[test]
    fn retryable_statuses() {
        for s in [500, 502, 503, 504, 429] {
            assert!(
                wait(Api::Github, Retry::Idempotent, &resp(s, &[], ""), 0).is_some(),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 409, 422, 501] {
            assert!(
                wait(Api::Github, Retry::Idempotent, &resp(s, &[], "{}"), 0).is_none(),
                "{s}"
            );
        }
        // A create is not repeated after a server error: it may have been performed.
        assert!(wait(Api::Seqera, Retry::Never, &resp(500, &[], ""), 0).is_none());
        // ... but an explicit 429 was not performed.
        assert!(wait(Api::Seqera, Retry::Never, &resp(429, &[], ""), 0).is_some());
    }

    #[test]
    fn hints_are_honoured() {
        let r = resp(429, &[("retry-after", "7")], "");
        assert_eq!(
            wait(Api::Seqera, Retry::Idempotent, &r, 0),
            Some(Duration::from_secs(7))
        );
        // Primary GitHub limit: wait for the reset.
        let r = resp(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1000030"),
            ],
            r#"{"message":"API rate limit exceeded"}"#,
        );
        assert_eq!(
            wait(Api::Github, Retry::Idempotent, &r, 0),
            Some(Duration::from_secs(31))
        );
        // Secondary limit without retry-after: 60 s.
        let r = resp(
            403,
            &[],
            r#"{"message":"You have exceeded a secondary rate limit. Please wait"}"#,
        );
        assert_eq!(
            wait(Api::Github, Retry::Idempotent, &r, 0),
            Some(Duration::from_secs(60))
        );
        let r = resp(
            403,
            &[("retry-after", "3")],
            r#"{"message":"You have exceeded a secondary rate limit"}"#,
        );
        assert_eq!(
            wait(Api::Github, Retry::Idempotent, &r, 0),
            Some(Duration::from_secs(3))
        );
        // A plain 403 is a permission problem, and on Seqera 403 means "token not accepted".
        assert_eq!(
            wait(
                Api::Github,
                Retry::Idempotent,
                &resp(
                    403,
                    &[],
                    r#"{"message":"Resource not accessible by integration"}"#
                ),
                0
            ),
            None
        );
        assert_eq!(
            wait(
                Api::Seqera,
                Retry::Idempotent,
                &resp(403, &[("x-ratelimit-remaining", "0")], ""),
                0
            ),
            None
        );
        // HTTP-date form.
        let r = resp(503, &[("retry-after", "Mon, 12 Jan 1970 13:46:50 GMT")], "");
        assert_eq!(
            wait(Api::Seqera, Retry::Idempotent, &r, 0),
            Some(Duration::from_secs(10))
        );
    }

    // Issue 15, defect 12: `Retry-After: 0` on a 429 allowed 9 immediate attempts per
    // write. SPEC §5: a hint of 0 waits like the backoff would, within the 4 unhinted retries.
    #[test]
    fn a_zero_hint_is_an_unhinted_retry() {
        let p = Policy {
            backoff_base: Duration::from_secs(10),
            ..policy()
        };
        let zero_hints = [
            resp(429, &[("retry-after", "0")], ""),
            resp(503, &[("retry-after", "0")], ""),
            // An HTTP date in the past is a hint of 0 too.
            resp(429, &[("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT")], ""),
            resp(
                403,
                &[("retry-after", "0")],
                r#"{"message":"secondary rate limit"}"#,
            ),
        ];
        for r in &zero_hints {
            let waits: Vec<Option<Duration>> = (0..9)
                .map(|attempt| {
                    retry_wait(
                        Api::Github,
                        Retry::Idempotent,
                        Outcome::Answer(r),
                        attempt,
                        &p,
                        1_000_000,
                    )
                })
                .collect();
            assert!(waits[..4].iter().all(Option::is_some), "{waits:?}");
            assert!(
                waits[4..].iter().all(Option::is_none),
                "at most 4 retries: {waits:?}"
            );
            // Full jitter over the backoff's ceiling: 10 s, 20 s, 40 s, 80 s. Not all zero.
            for (attempt, w) in waits[..4].iter().enumerate() {
                assert!(
                    w.unwrap() <= Duration::from_secs(10 << attempt),
                    "{waits:?}"
                );
            }
            let mut any = Duration::ZERO;
            for _ in 0..20 {
                any = any.max(
                    retry_wait(
                        Api::Github,
                        Retry::Idempotent,
                        Outcome::Answer(r),
                        0,
                        &p,
                        1_000_000,
                    )
                    .unwrap(),
                );
            }
            assert!(any > Duration::ZERO, "a zero hint must not mean no wait");
        }
        // A non-zero hint is still honoured, up to 8 retries.
        let r = resp(429, &[("retry-after", "1")], "");
        let hinted = |attempt| {
            retry_wait(
                Api::Github,
                Retry::Idempotent,
                Outcome::Answer(&r),
                attempt,
                &p,
                1_000_000,
            )
        };
        assert_eq!(hinted(7), Some(Duration::from_secs(1)));
        assert_eq!(hinted(8), None);
    }

    #[test]
    fn a_backoff_base_of_any_size_does_not_panic() {
        for base in [
            Duration::MAX,
            Duration::from_millis(u64::MAX),
            Duration::ZERO,
        ] {
            let p = Policy {
                backoff_base: base,
                max_retries: u32::MAX,
                ..policy()
            };
            for attempt in [0, 3, 63, 64, 1000, u32::MAX - 1] {
                let r = resp(503, &[], "");
                let _ = retry_wait(
                    Api::Seqera,
                    Retry::Idempotent,
                    Outcome::Answer(&r),
                    attempt,
                    &p,
                    0,
                );
            }
        }
    }

    /// A loopback listener that answers each request with `204` and keeps the request heads
    /// it got (`GET http://host/x` through a proxy, `GET /x` directly, `CONNECT host:443`).
    async fn recorder() -> (String, Arc<Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let connect = head.starts_with("CONNECT");
                    seen.lock().unwrap().push(head);
                    if !connect {
                        let _ = conn
                            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                    }
                });
            }
        });
        (url, heads)
    }

    async fn get(proxies: Proxies, url: &str) -> Result<Response, HttpError> {
        let mut p = policy();
        p.proxies = proxies;
        p.timeout = Duration::from_secs(5);
        p.backoff_base = Duration::from_millis(1);
        let http = Http::new(p, Scrubber::default()).unwrap();
        let url = Url::parse(url).unwrap();
        let token = SecretString::from("ghs_bearer_of_the_test_0123456789");
        ApiClient::new(http, Api::Github, url.clone(), token)
            .send(Method::GET, url, None, Retry::Never)
            .await
    }

    // Issue 15, defect 7: HTTP_PROXY was used for loopback `http://` URLs, sending bearer
    // tokens to the proxy in clear text. SPEC §8: remote hosts through the proxy, loopback
    // ones never.
    #[tokio::test]
    async fn proxies_serve_remote_hosts_and_never_loopback_ones() {
        let (proxy, through_proxy) = recorder().await;
        let (server, direct) = recorder().await;
        let port = server.rsplit(':').next().unwrap().to_string();
        let every = |no: Option<&str>| Proxies {
            http: Some(proxy.clone()),
            https: Some(proxy.clone()),
            all: Some(proxy.clone()),
            no: no.map(String::from),
        };
        // Remote hosts (never resolved here: the proxy is asked for them).
        get(every(None), "http://api.example.com/x").await.unwrap();
        let _ = get(every(None), "https://api.example.com/y").await;
        let all_only = Proxies {
            all: Some(proxy.clone()),
            ..Proxies::default()
        };
        get(all_only, "http://api.example.com/z").await.unwrap();
        // (The tunnel is refused, so its attempt is repeated.)
        through_proxy.lock().unwrap().dedup();
        assert_eq!(
            *through_proxy.lock().unwrap(),
            [
                "GET http://api.example.com/x HTTP/1.1",
                "CONNECT api.example.com:443 HTTP/1.1",
                "GET http://api.example.com/z HTTP/1.1",
            ]
        );
        // Loopback hosts, whatever NO_PROXY says: directly.
        through_proxy.lock().unwrap().clear();
        for no in [None, Some(""), Some("other.example")] {
            for host in ["127.0.0.1", "localhost", "LocalHost"] {
                get(every(no), &format!("http://{host}:{port}/direct"))
                    .await
                    .unwrap();
            }
        }
        assert_eq!(*through_proxy.lock().unwrap(), Vec::<String>::new());
        assert_eq!(direct.lock().unwrap().len(), 9);
        assert!(direct
            .lock()
            .unwrap()
            .iter()
            .all(|h| h == "GET /direct HTTP/1.1"));
    }

    #[test]
    fn proxy_variables_upper_case_first_and_empty_is_unset() {
        let env = |k: &str| match k {
            "HTTP_PROXY" => Some("http://upper:1".to_string()),
            "http_proxy" => Some("http://lower:1".to_string()),
            "https_proxy" => Some("http://lower:2".to_string()),
            "ALL_PROXY" => Some(" ".to_string()),
            "NO_PROXY" => Some("a.example".to_string()),
            _ => None,
        };
        let p = Proxies::from_env(&env);
        assert_eq!(p.http.as_deref(), Some("http://upper:1"));
        assert_eq!(p.https.as_deref(), Some("http://lower:2"));
        assert_eq!(p.all, None);
        assert_eq!(p.no.as_deref(), Some("a.example"));
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("upper") && !shown.contains("lower"),
            "{shown}"
        );
    }

    #[test]
    fn transport_errors() {
        let sent = HttpError::Transport {
            detail: String::new(),
            maybe_sent: true,
        };
        let unsent = HttpError::Transport {
            detail: String::new(),
            maybe_sent: false,
        };
        let p = policy();
        let wait = |api, retry, e| retry_wait(api, retry, Outcome::NoAnswer(e), 0, &p, 0);
        assert!(wait(Api::Github, Retry::Idempotent, &sent).is_some());
        assert!(wait(Api::Seqera, Retry::Never, &sent).is_none());
        assert!(wait(Api::Seqera, Retry::Never, &unsent).is_some());
    }

    #[test]
    fn budget_caps_total_waiting() {
        let http = Http::new(policy(), Scrubber::default()).unwrap();
        http.reserve(Duration::from_secs(200), false).unwrap();
        let e = http.reserve(Duration::from_secs(101), true).unwrap_err();
        assert!(e.to_string().contains("try again after"), "{e}");
        assert!(e.maybe_performed());
        http.reserve(Duration::from_secs(100), false).unwrap();
    }

    #[test]
    fn bodies_are_described_whole_then_scrubbed_then_capped() {
        let h = HeaderMap::new();
        assert_eq!(
            describe_body(&h, br#"{"message":"bad tok-secret-value"}"#),
            "bad tok-secret-value"
        );
        assert!(describe_body(&h, b"<html><body>502</body></html>").contains("HTML page"));
        assert_eq!(describe_body(&h, &[b'x'; 1000]).len(), 1000, "cut later");
        let http = Http::new(policy(), Scrubber::default()).unwrap();
        let e = http.status_error(&resp(500, &[], &"x".repeat(1000)), false);
        assert_eq!(e.to_string().chars().count(), "HTTP 500: ".len() + 301);
    }

    #[test]
    fn vault_and_gitlab_error_bodies_are_quoted() {
        let h = HeaderMap::new();
        assert_eq!(
            describe_body(&h, br#"{"errors":["permission denied","2nd"]}"#),
            "permission denied; 2nd"
        );
        assert_eq!(
            describe_body(&h, br#"{"message":{"key":["(K) has already been taken"]}}"#),
            r#"{"key":["(K) has already been taken"]}"#
        );
        assert_eq!(
            describe_body(
                &h,
                br#"{"error":"insufficient_scope","error_description":"needs api","scope":"api"}"#
            ),
            "insufficient_scope: needs api"
        );
        // Vault's 404 for a missing secret has an empty list: described as the body.
        assert_eq!(describe_body(&h, br#"{"errors":[]}"#), r#"{"errors":[]}"#);
    }

    // Issue 9, defect 3: a body echoing the credential near the cut printed 60 of its 71
    // characters, because the text was cut before it was scrubbed.
    #[test]
    fn a_credential_across_the_cut_leaves_no_fragment() {
        let token = "ghs_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234";
        let http = Http::new(policy(), Scrubber::default()).unwrap();
        http.scrubber.add(&SecretString::from(token));
        for pad in 200..320 {
            let body = format!("{}Authorization: Bearer {token} trailer", "p".repeat(pad));
            let r = resp(403, &[("content-type", "text/plain")], &body);
            let text = http.status_error(&r, false).to_string();
            for w in token.as_bytes().windows(crate::text::FRAGMENT) {
                let w = std::str::from_utf8(w).unwrap();
                assert!(!text.contains(w), "pad {pad}: {w} in {text}");
            }
        }
    }

    // Issue 9, defect 4: hints too large to honour fail the request, never panic.
    #[test]
    fn absurd_wait_hints_fail_without_panicking() {
        let http = Http::new(policy(), Scrubber::default()).unwrap();
        for secs in [300_000_000_000u64, u64::MAX, 301] {
            let e = http.reserve(Duration::from_secs(secs), false).unwrap_err();
            assert!(e.to_string().contains("try again after"), "{e}");
        }
        http.reserve(Duration::from_secs(1), false).unwrap();
        assert!(http.reserve(Duration::MAX, false).is_err());
        let r = resp(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "18446744073709551615"),
            ],
            "{}",
        );
        let p = policy();
        let w = retry_wait(
            Api::Github,
            Retry::Idempotent,
            Outcome::Answer(&r),
            0,
            &p,
            0,
        );
        assert_eq!(w, Some(Duration::from_secs(u64::MAX)));
        let r = resp(429, &[("retry-after", "18446744073709551615")], "");
        let w = retry_wait(
            Api::Seqera,
            Retry::Idempotent,
            Outcome::Answer(&r),
            0,
            &p,
            0,
        );
        assert_eq!(w, Some(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn endpoints_keep_the_base_path_and_encode_segments() {
        let base = Url::parse("https://h.example/api").unwrap();
        assert_eq!(
            endpoint(&base, &["tokens", "5"]).as_str(),
            "https://h.example/api/tokens/5"
        );
        let base = Url::parse("https://h.example/api/v3/").unwrap();
        assert_eq!(
            endpoint(
                &base,
                &["repos", "o", "r", "environments", "prod eu/1", "secrets"]
            )
            .as_str(),
            "https://h.example/api/v3/repos/o/r/environments/prod%20eu%2F1/secrets"
        );
        let base = Url::parse("https://api.github.com").unwrap();
        assert_eq!(
            endpoint(&base, &["orgs", "o"]).as_str(),
            "https://api.github.com/orgs/o"
        );
    }
}
