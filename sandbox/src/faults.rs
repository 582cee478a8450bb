//! Fault injection: rules that pick requests by API, method, path and occurrence,
//! and what to do to them instead of (or before) answering normally.
//!
//! Paths are matched against the path exactly as received, without the query
//! string: still percent-encoded, and for Seqera including the `/api` prefix, for GitLab
//! the `/api/v4` prefix (e.g. `/api/tokens`, `/repos/o/r/environments/prod%2Feu/secrets/X`,
//! `/api/v4/projects/grp%2Fproj/variables/X`).

use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use hyper::StatusCode;

use crate::Api;

/// When a rule applies: which request, among those it matches, is hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Occurrence {
    /// Only the n-th matching request (1-based).
    Nth(u32),
    /// The first n matching requests.
    FirstN(u32),
    /// Every matching request.
    Always,
    /// The n-th matching request (1-based) and every later one: a service that stays down.
    From(u32),
    /// The request with this sequence number among *all* requests the sandbox received,
    /// both APIs, 1-based, counted since it started (never reset; see
    /// [`crate::Sandbox::requests_received`]), if the rule matches it. With
    /// [`FaultRule::at_request`] it hits "the k-th request from now", whatever it is: how a
    /// fault explorer places a fault at every request index of a run.
    Overall(u64),
}

impl Occurrence {
    /// Whether the `n`-th matching request (1-based), the `seq`-th received overall, is hit.
    fn fires(&self, n: u32, seq: u64) -> bool {
        match *self {
            Occurrence::Nth(k) => n == k,
            Occurrence::FirstN(k) => n <= k,
            Occurrence::Always => true,
            Occurrence::From(k) => n >= k,
            Occurrence::Overall(k) => seq == k,
        }
    }
}

/// How a rule picks requests by path (see the module docs for what is matched).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// The whole path equals this.
    Exact(String),
    /// The path starts with this.
    Prefix(String),
    /// The path ends with this.
    Suffix(String),
    /// The path contains this.
    Contains(String),
    /// Any path.
    Any,
}

impl PathMatch {
    /// Whether `path` (as received; a `?query` is ignored, as the fakes do) matches.
    pub fn matches(&self, path: &str) -> bool {
        let path = path.split('?').next().unwrap_or(path);
        match self {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Suffix(p) => path.ends_with(p.as_str()),
            PathMatch::Contains(p) => path.contains(p.as_str()),
            PathMatch::Any => true,
        }
    }
}

/// What happens to a request a rule hits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer this instead; the operation is not performed. Without a
    /// `content-type` header, a non-empty body is sent as `application/json`.
    /// GitHub answers also get the usual rate-limit headers unless given here.
    Status {
        /// HTTP status code.
        status: u16,
        /// Extra response headers.
        headers: Vec<(String, String)>,
        /// Response body.
        body: String,
    },
    /// Wait, then behave normally. Models a slow server: the operation completes
    /// (and changes state) even if the client gives up waiting.
    Delay(Duration),
    /// Close the connection without answering; the operation is not performed.
    Drop,
    /// Perform the operation (state changes!), then close without answering: the
    /// ambiguous outcome of a connection cut after the server committed.
    PerformThenDrop,
    /// Answer 200 with `content-type: application/json` and a truncated, invalid
    /// JSON body; the operation is not performed.
    MalformedJson,
    /// Answer 502 with an HTML error page (`text/html`), as a proxy in front of the
    /// service would; the operation is not performed.
    HtmlPage,
    /// Wait `delay`, perform the operation (state changes!), then answer `status`
    /// with the JSON body `{"message": <reason phrase>}` instead of the real answer:
    /// a gateway that lets the write through and answers 504 anyway. The answer
    /// carries no service headers (no GitHub rate-limit headers), only `Date`.
    PerformThenStatus {
        /// HTTP status code of the answer the client sees.
        status: u16,
        /// How long to wait before performing the operation.
        delay: Duration,
    },
    /// Not performed. Answer `status` with the body `before + "Authorization: " +
    /// <the request's Authorization header value, verbatim> + after` and this
    /// `content-type`: a broken proxy that echoes the request headers back.
    EchoAuthorization {
        /// HTTP status code.
        status: u16,
        /// The `content-type` of the answer, e.g. `text/plain` or `application/json`.
        content_type: String,
        /// Text before the echoed header.
        before: String,
        /// Text after the echoed header value.
        after: String,
    },
    /// Not performed. Answer 200 with `content-type: application/json` and a body
    /// that never ends: with `Some(n)`, a declared `content-length: n` (e.g.
    /// 8 000 000 000) and filler streamed lazily; with `None`, chunked transfer of
    /// filler forever. Nothing is allocated up front, the stream only advances as
    /// fast as the client reads, and it stops when the client goes away.
    Endless {
        /// The declared `content-length`, or `None` for chunked transfer.
        content_length: Option<u64>,
    },
    /// Not performed, never answered (until the sandbox stops): the server is stuck
    /// before it performs the request. Counted in [`crate::Sandbox::held_requests`] once
    /// held, so a test can stop the client exactly there (a crash "before request k").
    Hold,
    /// Performed (state changes!), then never answered: counted in
    /// [`crate::Sandbox::held_requests`] once performed, so a test can stop the client
    /// exactly there (a crash "after the server performed request k, before the answer").
    PerformThenHold,
    /// Answer now without performing the request, then perform it `after` this long (state
    /// changes, long after the client gave up on it): a write that lands late. The answer is
    /// `status` with `{"message": <reason phrase>}`, or with `None` a closed connection.
    /// [`crate::Sandbox::late_commits_pending`] counts those not performed yet.
    CommitLater {
        /// The answer the client sees now; `None`: the connection is closed without one.
        status: Option<u16>,
        /// How long after the answer the operation is performed.
        after: Duration,
    },
    /// Performed and answered normally, but the answer's `Date` header is this many
    /// seconds off the fakes' clock (ahead if positive, behind if negative): a host or a
    /// proxy with a wrong clock.
    SkewDate(i64),
    /// Performed and answered normally, but from a JSON answer's `tokens` array (Seqera's
    /// `GET /tokens`) the entry with the highest `id` is left out: a token list that lies
    /// by omitting the newest token (e.g. one a replica has not seen yet).
    OmitNewestToken,
    /// Performed and answered normally, but a JSON answer's `tokens` array gets one more
    /// entry, `{"id": id, "name": name, "dateCreated": …, "lastUsed": null}`, with no token
    /// behind it: a token list that lies (e.g. a huge id). Its `dateCreated` is that of the
    /// newest listed token (a same-moment tie), or now if the list is empty.
    ExtraToken {
        /// The listed id.
        id: u64,
        /// The listed name.
        name: String,
    },
}

impl FaultAction {
    /// Answer `code` with a JSON body `{"message": <reason phrase>}`.
    pub fn status(code: u16) -> FaultAction {
        let reason = StatusCode::from_u16(code)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        FaultAction::Status {
            status: code,
            headers: Vec::new(),
            body: serde_json::json!({ "message": reason }).to_string(),
        }
    }

    /// Perform the operation, then answer `code` (no delay): see
    /// [`FaultAction::PerformThenStatus`].
    pub fn perform_then(code: u16) -> FaultAction {
        FaultAction::PerformThenStatus {
            status: code,
            delay: Duration::ZERO,
        }
    }

    /// 429 Too Many Requests with `Retry-After: secs`.
    pub fn too_many_requests(retry_after_secs: u64) -> FaultAction {
        FaultAction::Status {
            status: 429,
            headers: vec![("retry-after".into(), retry_after_secs.to_string())],
            body: serde_json::json!({ "message": "Too Many Requests" }).to_string(),
        }
    }

    /// GitHub's secondary rate limit: 403 with the "secondary rate limit" message
    /// and `retry-after: secs`.
    pub fn github_secondary_rate_limit(retry_after_secs: u64) -> FaultAction {
        let mut action = Self::github_secondary_rate_limit_without_retry_after();
        if let FaultAction::Status { headers, .. } = &mut action {
            headers.push(("retry-after".into(), retry_after_secs.to_string()));
        }
        action
    }

    /// GitHub's secondary rate limit without a `retry-after` header (clients are
    /// then expected to wait a minute).
    pub fn github_secondary_rate_limit_without_retry_after() -> FaultAction {
        FaultAction::Status {
            status: 403,
            headers: Vec::new(),
            body: secondary_rate_limit_body(),
        }
    }

    /// GitHub's primary rate limit: 403 with `x-ratelimit-remaining: 0` and
    /// `x-ratelimit-reset: reset_epoch_secs`.
    pub fn github_primary_rate_limit(reset_epoch_secs: u64) -> FaultAction {
        FaultAction::Status {
            status: 403,
            headers: vec![
                ("x-ratelimit-limit".into(), "5000".into()),
                ("x-ratelimit-remaining".into(), "0".into()),
                ("x-ratelimit-reset".into(), reset_epoch_secs.to_string()),
                ("x-ratelimit-used".into(), "5000".into()),
                ("x-ratelimit-resource".into(), "core".into()),
            ],
            body: serde_json::json!({
                "message": "API rate limit exceeded for user ID 1. If you reach out to GitHub \
                            Support for help, please include the request ID \
                            0000:0000:000000:000000:00000000.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-primary-rate-limits",
                "status": "403"
            })
            .to_string(),
        }
    }

    /// Panics (in the test thread, at `add_fault`) on a status or header that
    /// could not be sent, rather than failing later inside the server.
    pub(crate) fn validate(&self) {
        let check_status = |status: u16| {
            assert!(
                StatusCode::from_u16(status).is_ok(),
                "FaultAction: invalid status code {status}"
            );
        };
        match self {
            FaultAction::Status {
                status, headers, ..
            } => {
                check_status(*status);
                for (name, value) in headers {
                    assert!(
                        HeaderName::from_bytes(name.as_bytes()).is_ok()
                            && HeaderValue::from_str(value).is_ok(),
                        "FaultAction::Status: invalid header {name:?}: {value:?}"
                    );
                }
            }
            FaultAction::PerformThenStatus { status, .. }
            | FaultAction::CommitLater {
                status: Some(status),
                ..
            } => check_status(*status),
            FaultAction::EchoAuthorization {
                status,
                content_type,
                ..
            } => {
                check_status(*status);
                assert!(
                    HeaderValue::from_str(content_type).is_ok(),
                    "FaultAction::EchoAuthorization: invalid content type {content_type:?}"
                );
            }
            _ => {}
        }
    }
}

/// The body of GitHub's secondary-rate-limit 403 (also sent by the write limits of
/// [`crate::Sandbox::set_write_limits`]).
pub(crate) fn secondary_rate_limit_body() -> String {
    serde_json::json!({
        "message": "You have exceeded a secondary rate limit. Please wait a few minutes \
                    before you try again. If you reach out to GitHub Support for help, \
                    please include the request ID 0000:0000:000000:000000:00000000.",
        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
        "status": "403"
    })
    .to_string()
}

/// A fault: which requests, and what to do to them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRule {
    /// Which fake.
    pub api: Api,
    /// HTTP method (case-insensitive), or `"*"` for any.
    pub method: String,
    /// Which paths (see the module docs).
    pub path: PathMatch,
    /// Which of the matching requests.
    pub when: Occurrence,
    /// What to do.
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule for the fake Seqera API.
    pub fn seqera(method: &str, path: PathMatch, when: Occurrence, action: FaultAction) -> Self {
        FaultRule {
            api: Api::Seqera,
            method: method.to_owned(),
            path,
            when,
            action,
        }
    }

    /// A rule for the fake GitHub API.
    pub fn github(method: &str, path: PathMatch, when: Occurrence, action: FaultAction) -> Self {
        FaultRule {
            api: Api::Github,
            method: method.to_owned(),
            path,
            when,
            action,
        }
    }

    /// A rule for the fake GitLab API (paths include `/api/v4`, e.g.
    /// `/api/v4/projects/grp%2Fproj/variables/KEY`).
    pub fn gitlab(method: &str, path: PathMatch, when: Occurrence, action: FaultAction) -> Self {
        FaultRule {
            api: Api::Gitlab,
            method: method.to_owned(),
            path,
            when,
            action,
        }
    }

    /// A rule that hits the request with sequence number `seq` (see
    /// [`Occurrence::Overall`]) if it goes to `api`, whatever its method and path. Add one
    /// for each API to hit the `seq`-th request whichever API it goes to.
    pub fn at_request(api: Api, seq: u64, action: FaultAction) -> Self {
        FaultRule {
            api,
            method: "*".to_owned(),
            path: PathMatch::Any,
            when: Occurrence::Overall(seq),
            action,
        }
    }

    fn matches(&self, api: Api, method: &str, path: &str) -> bool {
        self.api == api
            && (self.method == "*" || self.method.eq_ignore_ascii_case(method))
            && self.path.matches(path)
    }
}

/// The active rules, each with the number of requests it has matched so far, and what the
/// holding and late-committing actions are doing.
#[derive(Default)]
pub(crate) struct Faults {
    rules: Vec<(FaultRule, u32)>,
    /// Requests that reached their `Hold` / `PerformThenHold` point.
    pub(crate) held: u64,
    /// `CommitLater` operations not performed yet.
    pub(crate) late_pending: u64,
}

impl Faults {
    pub(crate) fn add(&mut self, rule: FaultRule) {
        self.rules.push((rule, 0));
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// Counts this request (the `seq`-th received overall) against every matching rule (so
    /// each rule's occurrences are its own), and returns the action of the first that fires.
    pub(crate) fn select(
        &mut self,
        api: Api,
        method: &str,
        path: &str,
        seq: u64,
    ) -> Option<FaultAction> {
        let mut chosen = None;
        for (rule, count) in &mut self.rules {
            if !rule.matches(api, method, path) {
                continue;
            }
            *count = count.saturating_add(1);
            if chosen.is_none() && rule.when.fires(*count, seq) {
                chosen = Some(rule.action.clone());
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occurrences_count_per_rule() {
        let mut f = Faults::default();
        f.add(FaultRule::github(
            "PUT",
            PathMatch::Suffix("/X".into()),
            Occurrence::Nth(2),
            FaultAction::Drop,
        ));
        f.add(FaultRule::github(
            "*",
            PathMatch::Prefix("/repos/".into()),
            Occurrence::FirstN(1),
            FaultAction::HtmlPage,
        ));
        // 1st: rule 1 count=1 (no), rule 2 count=1 (fires).
        assert_eq!(
            f.select(Api::Github, "put", "/repos/o/r/actions/secrets/X", 0),
            Some(FaultAction::HtmlPage)
        );
        // 2nd: rule 1 count=2 fires first.
        assert_eq!(
            f.select(Api::Github, "PUT", "/repos/o/r/actions/secrets/X", 0),
            Some(FaultAction::Drop)
        );
        assert_eq!(
            f.select(Api::Github, "PUT", "/repos/o/r/actions/secrets/X", 0),
            None
        );
        assert_eq!(
            f.select(Api::Seqera, "PUT", "/repos/o/r/actions/secrets/X", 0),
            None
        );
        f.clear();
        assert_eq!(
            f.select(Api::Github, "PUT", "/repos/o/r/actions/secrets/X", 0),
            None
        );
    }

    #[test]
    fn from_occurrence_hits_the_nth_and_every_later_request() {
        let mut f = Faults::default();
        f.add(FaultRule::seqera(
            "GET",
            PathMatch::Exact("/api/tokens".into()),
            Occurrence::From(2),
            FaultAction::Drop,
        ));
        let hits: Vec<bool> = (0..4)
            .map(|i| f.select(Api::Seqera, "GET", "/api/tokens", i).is_some())
            .collect();
        assert_eq!(hits, [false, true, true, true]);
    }

    #[test]
    fn overall_occurrence_counts_every_request_of_the_sandbox() {
        let mut f = Faults::default();
        f.add(FaultRule::at_request(Api::Seqera, 3, FaultAction::Drop));
        assert_eq!(f.select(Api::Seqera, "GET", "/api/tokens", 2), None);
        // The 3rd request overall, but to the other API: not this rule's.
        assert_eq!(f.select(Api::Github, "GET", "/repos/o/r", 3), None);
        assert_eq!(
            f.select(Api::Seqera, "DELETE", "/api/tokens/9", 3),
            Some(FaultAction::Drop)
        );
        assert_eq!(f.select(Api::Seqera, "DELETE", "/api/tokens/9", 4), None);
    }

    #[test]
    fn path_matching() {
        assert!(PathMatch::Exact("/api/tokens".into()).matches("/api/tokens"));
        assert!(!PathMatch::Exact("/api/tokens".into()).matches("/api/tokens/1"));
        assert!(PathMatch::Contains("%2F".into()).matches("/repos/o/r/environments/a%2Fb/secrets"));
        assert!(PathMatch::Any.matches("/anything?at=all"));
    }

    #[test]
    #[should_panic(expected = "invalid header")]
    fn invalid_fault_headers_panic_early() {
        FaultAction::Status {
            status: 500,
            headers: vec![("bad header".into(), "x".into())],
            body: String::new(),
        }
        .validate();
    }
}
