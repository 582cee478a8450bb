//! Fault injection: each action does what it says, as a real client sees it
//! (including over a reused keep-alive connection), occurrences count per rule,
//! and the request log records what was answered.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{body_json, client, gh, header, sandbox, sealed_body, sq, READER, WRITER};
use reqwest::Method;
use seqera_sandbox::{Api, FaultAction, FaultRule, Occurrence, PathMatch, SecretScope};
use serde_json::json;

fn seqera_rule(method: &str, path: &str, when: Occurrence, action: FaultAction) -> FaultRule {
    FaultRule::seqera(method, PathMatch::Exact(path.to_owned()), when, action)
}

#[tokio::test]
async fn drop_closes_a_kept_alive_connection_without_answering() {
    let (sb, _, token) = sandbox();
    let c = client();
    // Open a pooled keep-alive connection first, so the drop must hit a reused one.
    assert_eq!(
        sq(&c, &sb, Method::GET, "/user-info", &token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    sb.add_fault(seqera_rule(
        "POST",
        "/api/tokens",
        Occurrence::Nth(1),
        FaultAction::Drop,
    ));
    let before = sb.tokens().len();
    let err = sq(&c, &sb, Method::POST, "/tokens", &token)
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout() && err.status().is_none(), "{err:?}");
    assert_eq!(
        sb.tokens().len(),
        before,
        "a dropped request is not performed"
    );
    let post = sb
        .requests()
        .into_iter()
        .rfind(|r| r.method == "POST")
        .unwrap();
    assert_eq!(post.status, None);
    // The next request works again (on a new connection).
    let ok = sq(&c, &sb, Method::POST, "/tokens", &token)
        .json(&json!({ "name": "ci" }))
        .send();
    assert_eq!(ok.await.unwrap().status(), 200);
}

/// What a raw socket sees: the server closes without writing a single byte, even
/// on the second request of a keep-alive connection.
#[test]
fn drop_writes_nothing_on_the_wire() {
    let (sb, _, token) = sandbox();
    sb.add_fault(seqera_rule(
        "GET",
        "/api/user-info",
        Occurrence::Nth(2),
        FaultAction::Drop,
    ));
    let mut stream = TcpStream::connect(sb.seqera_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = format!(
        "GET /api/user-info HTTP/1.1\r\nHost: sandbox\r\nAuthorization: Bearer {token}\r\n\r\n"
    );

    stream.write_all(request.as_bytes()).unwrap();
    let first = read_response(&mut stream);
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");

    stream.write_all(request.as_bytes()).unwrap();
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "got {:?}", String::from_utf8_lossy(&rest)),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

/// Reads one response with a `content-length` body from a raw stream.
fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "connection closed early"
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

#[tokio::test]
async fn perform_then_drop_changes_state_but_the_client_sees_an_error() {
    let (sb, alice, token) = sandbox();
    sb.add_fault(seqera_rule(
        "POST",
        "/api/tokens",
        Occurrence::Always,
        FaultAction::PerformThenDrop,
    ));
    let err = sq(&client(), &sb, Method::POST, "/tokens", &token)
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap_err();
    assert!(err.status().is_none(), "{err:?}");
    let names: Vec<String> = sb.live_tokens(alice).into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["bootstrap", "ci"]);
    assert_eq!(sb.requests().last().unwrap().status, None);
}

#[tokio::test]
async fn perform_then_drop_on_a_secret_write() {
    let (sb, _, _) = sandbox();
    let scope = SecretScope::repo("octo", "app");
    sb.add_fault(FaultRule::github(
        "PUT",
        PathMatch::Prefix(scope.secrets_path()),
        Occurrence::Nth(1),
        FaultAction::PerformThenDrop,
    ));
    let put = gh(
        &client(),
        &sb,
        Method::PUT,
        &format!("{}/S", scope.secrets_path()),
        WRITER,
    )
    .json(&sealed_body(&sb, &scope, "v"))
    .send()
    .await;
    assert!(put.is_err());
    assert_eq!(sb.secret(&scope, "S").unwrap().plaintext, "v");
}

#[tokio::test]
async fn delay_waits_then_answers_normally() {
    let (sb, _, token) = sandbox();
    sb.add_fault(seqera_rule(
        "GET",
        "/api/user-info",
        Occurrence::Nth(1),
        FaultAction::Delay(Duration::from_millis(300)),
    ));
    let c = client();
    let start = Instant::now();
    let resp = sq(&c, &sb, Method::GET, "/user-info", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    let start = Instant::now();
    sq(&c, &sb, Method::GET, "/user-info", &token)
        .send()
        .await
        .unwrap();
    assert!(start.elapsed() < Duration::from_millis(300));
}

/// A slow server finishes the operation even when the client has given up: the
/// ambiguous create the tool must recover from.
#[tokio::test]
async fn delay_past_a_client_timeout_still_commits() {
    let (sb, alice, token) = sandbox();
    sb.add_fault(seqera_rule(
        "POST",
        "/api/tokens",
        Occurrence::Always,
        FaultAction::Delay(Duration::from_millis(400)),
    ));
    common::install_crypto();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = sq(&impatient, &sb, Method::POST, "/tokens", &token)
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(sb.live_tokens(alice).len(), 1, "not yet performed");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sb.live_tokens(alice).len(), 2, "performed after the delay");
    assert_eq!(sb.requests().last().unwrap().status, Some(200));
}

#[tokio::test]
async fn nth_hits_only_the_nth_matching_request() {
    let (sb, _, token) = sandbox();
    sb.add_fault(seqera_rule(
        "GET",
        "/api/user-info",
        Occurrence::Nth(2),
        FaultAction::status(503),
    ));
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        // Requests to other paths do not count.
        sq(&c, &sb, Method::GET, "/tokens", &token)
            .send()
            .await
            .unwrap();
        statuses.push(
            sq(&c, &sb, Method::GET, "/user-info", &token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 503, 200]);
}

#[tokio::test]
async fn first_n_always_and_clear() {
    let (sb, _, token) = sandbox();
    let c = client();
    sb.add_fault(FaultRule::seqera(
        "*",
        PathMatch::Suffix("/user-info".into()),
        Occurrence::FirstN(2),
        FaultAction::status(500),
    ));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            sq(&c, &sb, Method::GET, "/user-info", &token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [500, 500, 200]);

    sb.add_fault(FaultRule::seqera(
        "get",
        PathMatch::Contains("token".into()),
        Occurrence::Always,
        FaultAction::status(502),
    ));
    for _ in 0..2 {
        assert_eq!(
            sq(&c, &sb, Method::GET, "/tokens", &token)
                .send()
                .await
                .unwrap()
                .status(),
            502
        );
    }
    sb.clear_faults();
    assert_eq!(
        sq(&c, &sb, Method::GET, "/tokens", &token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn status_faults_do_not_perform() {
    let (sb, _, _) = sandbox();
    let scope = SecretScope::repo("octo", "app");
    sb.add_fault(FaultRule::github(
        "PUT",
        PathMatch::Prefix("/repos/".into()),
        Occurrence::Always,
        FaultAction::status(503),
    ));
    let resp = gh(
        &client(),
        &sb,
        Method::PUT,
        &format!("{}/S", scope.secrets_path()),
        WRITER,
    )
    .json(&sealed_body(&sb, &scope, "v"))
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(header(&resp, "content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(header(&resp, "x-ratelimit-limit"), Some("5000"));
    assert_eq!(body_json(resp).await["message"], "Service Unavailable");
    assert!(sb.secret(&scope, "S").is_none());
}

#[tokio::test]
async fn github_rate_limit_helpers() {
    let (sb, _, _) = sandbox();
    let c = client();
    let path = "/repos/octo/app";
    let rule = |action| {
        FaultRule::github(
            "GET",
            PathMatch::Exact(path.into()),
            Occurrence::Nth(1),
            action,
        )
    };

    sb.add_fault(rule(FaultAction::github_secondary_rate_limit(7)));
    let resp = gh(&c, &sb, Method::GET, path, WRITER).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(header(&resp, "retry-after"), Some("7"));
    assert_ne!(header(&resp, "x-ratelimit-remaining"), Some("0"));
    assert!(body_json(resp).await["message"]
        .as_str()
        .unwrap()
        .contains("secondary rate limit"));

    sb.clear_faults();
    sb.add_fault(rule(
        FaultAction::github_secondary_rate_limit_without_retry_after(),
    ));
    let resp = gh(&c, &sb, Method::GET, path, WRITER).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(header(&resp, "retry-after"), None);

    sb.clear_faults();
    sb.add_fault(rule(FaultAction::github_primary_rate_limit(1_900_000_000)));
    let resp = gh(&c, &sb, Method::GET, path, WRITER).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(header(&resp, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&resp, "x-ratelimit-reset"), Some("1900000000"));
    assert!(body_json(resp).await["message"]
        .as_str()
        .unwrap()
        .starts_with("API rate limit exceeded"));

    sb.clear_faults();
    sb.add_fault(rule(FaultAction::too_many_requests(3)));
    let resp = gh(&c, &sb, Method::GET, path, WRITER).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "retry-after"), Some("3"));
}

#[tokio::test]
async fn malformed_json_and_html_pages() {
    let (sb, alice, token) = sandbox();
    let c = client();
    sb.add_fault(seqera_rule(
        "POST",
        "/api/tokens",
        Occurrence::Nth(1),
        FaultAction::MalformedJson,
    ));
    sb.add_fault(seqera_rule(
        "POST",
        "/api/tokens",
        Occurrence::Nth(2),
        FaultAction::HtmlPage,
    ));
    let post = || {
        sq(&c, &sb, Method::POST, "/tokens", &token)
            .json(&json!({ "name": "ci" }))
            .send()
    };

    let resp = post().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "content-type")
        .unwrap()
        .starts_with("application/json"));
    assert!(serde_json::from_str::<serde_json::Value>(&resp.text().await.unwrap()).is_err());

    let resp = post().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert!(header(&resp, "content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(resp.text().await.unwrap().contains("<html>"));

    assert_eq!(
        sb.live_tokens(alice).len(),
        1,
        "neither fault performs the create"
    );
    assert_eq!(post().await.unwrap().status(), 200);
}

#[tokio::test]
async fn latency_applies_to_both_apis() {
    let (sb, _, token) = sandbox();
    sb.set_latency(Duration::from_millis(150));
    let c = client();
    let start = Instant::now();
    sq(&c, &sb, Method::GET, "/user-info", &token)
        .send()
        .await
        .unwrap();
    gh(&c, &sb, Method::GET, "/repos/octo/app", WRITER)
        .send()
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    sb.set_latency(Duration::ZERO);
}

#[tokio::test]
async fn faults_match_the_encoded_path_as_received() {
    let (sb, _, _) = sandbox();
    sb.add_environment("octo", "app", "a/b");
    sb.add_fault(FaultRule::github(
        "GET",
        PathMatch::Contains("a%2Fb".into()),
        Occurrence::Always,
        FaultAction::status(500),
    ));
    let resp = gh(
        &client(),
        &sb,
        Method::GET,
        "/repos/octo/app/environments/a%2Fb/secrets/public-key",
        READER,
    );
    assert_eq!(resp.send().await.unwrap().status(), 500);
}

#[tokio::test]
async fn the_request_log_records_what_happened() {
    let (sb, _, token) = sandbox();
    let c = client();
    sq(&c, &sb, Method::GET, "/tokens?max=5", &token)
        .send()
        .await
        .unwrap();
    gh(&c, &sb, Method::GET, "/repos/octo/nope", READER)
        .send()
        .await
        .unwrap();
    let log = sb.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].api, log[0].method.as_str(), log[0].path.as_str()),
        (Api::Seqera, "GET", "/api/tokens?max=5")
    );
    assert_eq!(log[0].status, Some(200));
    assert_eq!(
        log[0].authorization.as_deref(),
        Some(format!("Bearer {token}").as_str())
    );
    assert_eq!((log[1].api, log[1].status), (Api::Github, Some(404)));
    assert_eq!(log[1].header("User-Agent"), Some(common::UA));
    assert!(log[0].received_at <= log[1].received_at);
    sb.clear_requests();
    assert!(sb.requests().is_empty());
}

#[test]
#[should_panic(expected = "invalid status code")]
fn invalid_fault_status_panics_in_the_test() {
    let (sb, _, _) = sandbox();
    sb.add_fault(FaultRule::github(
        "*",
        PathMatch::Prefix("/".into()),
        Occurrence::Always,
        FaultAction::Status {
            status: 42,
            headers: vec![],
            body: String::new(),
        },
    ));
}

// ----- hostile servers -----

#[tokio::test]
async fn perform_then_status_commits_the_write_and_answers_the_status() {
    let (sb, _, _) = sandbox();
    let scope = SecretScope::repo("octo", "app");
    let path = format!("{}/S", scope.secrets_path());
    sb.add_fault(FaultRule::github(
        "PUT",
        PathMatch::Exact(path.clone()),
        Occurrence::Nth(1),
        FaultAction::perform_then(504),
    ));
    let c = client();
    let resp = gh(&c, &sb, Method::PUT, &path, WRITER)
        .json(&sealed_body(&sb, &scope, "v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert!(header(&resp, "content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        body_json(resp).await,
        json!({ "message": "Gateway Timeout" })
    );
    let stored = sb.secret(&scope, "S").expect("the write was performed");
    assert_eq!((stored.plaintext.as_str(), stored.writes), ("v1", 1));
    assert_eq!(sb.requests().last().unwrap().status, Some(504));
    // The retry is a normal write (an update).
    let resp = gh(&c, &sb, Method::PUT, &path, WRITER)
        .json(&sealed_body(&sb, &scope, "v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

#[tokio::test]
async fn perform_then_status_waits_first_and_a_retried_delete_finds_nothing() {
    let (sb, alice, token) = sandbox();
    let victim = sb.create_token(alice, "ci-1");
    let path = format!("/api/tokens/{}", victim.id);
    sb.add_fault(seqera_rule(
        "DELETE",
        &path,
        Occurrence::Always,
        FaultAction::PerformThenStatus {
            status: 502,
            delay: Duration::from_millis(200),
        },
    ));
    let c = client();
    let start = Instant::now();
    let resp = sq(
        &c,
        &sb,
        Method::DELETE,
        &format!("/tokens/{}", victim.id),
        &token,
    )
    .send()
    .await
    .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(resp.status(), 502);
    assert!(!sb.is_live(&victim.value), "the delete was performed");
    sb.clear_faults();
    let again = sq(
        &c,
        &sb,
        Method::DELETE,
        &format!("/tokens/{}", victim.id),
        &token,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(again.status(), 404, "already revoked");
}

#[tokio::test]
async fn echo_authorization_returns_the_header_verbatim_and_performs_nothing() {
    let (sb, alice, token) = sandbox();
    sb.add_fault(seqera_rule(
        "POST",
        "/api/tokens",
        Occurrence::Nth(1),
        FaultAction::EchoAuthorization {
            status: 400,
            content_type: "text/plain".into(),
            before: "Bad request. Headers received:\n".into(),
            after: "\nHost: sandbox\n".into(),
        },
    ));
    let resp = sq(&client(), &sb, Method::POST, "/tokens", &token)
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(header(&resp, "content-type"), Some("text/plain"));
    assert_eq!(
        resp.text().await.unwrap(),
        format!("Bad request. Headers received:\nAuthorization: Bearer {token}\nHost: sandbox\n")
    );
    assert_eq!(sb.live_tokens(alice).len(), 1, "not performed");
}

#[tokio::test]
async fn endless_body_with_a_huge_content_length_streams_lazily() {
    let (sb, _, token) = sandbox();
    sb.add_fault(seqera_rule(
        "GET",
        "/api/tokens",
        Occurrence::Nth(1),
        FaultAction::Endless {
            content_length: Some(8_000_000_000),
        },
    ));
    let c = client();
    let mut resp = sq(&c, &sb, Method::GET, "/tokens", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), Some("8000000000"));
    assert_eq!(header(&resp, "content-type"), Some("application/json"));
    assert!(header(&resp, "date").is_some());
    // A client with a cap: read 1 MiB, then give up.
    let mut got = Vec::new();
    while got.len() < 1 << 20 {
        let chunk = resp.chunk().await.unwrap().expect("the body does not end");
        got.extend_from_slice(&chunk);
    }
    assert!(got.starts_with(b"{\"filler\":\"xxx"));
    drop(resp);
    // The sandbox goes on serving (the stream's end is checked in the crate's unit tests).
    let ok = sq(&c, &sb, Method::GET, "/tokens", &token).send().await;
    assert_eq!(ok.unwrap().status(), 200);
}

#[tokio::test]
async fn endless_body_without_a_length_is_chunked() {
    let (sb, _, token) = sandbox();
    sb.add_fault(seqera_rule(
        "GET",
        "/api/user-info",
        Occurrence::Always,
        FaultAction::Endless {
            content_length: None,
        },
    ));
    let mut resp = sq(&client(), &sb, Method::GET, "/user-info", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "transfer-encoding"), Some("chunked"));
    assert!(header(&resp, "content-length").is_none());
    let mut n = 0;
    while n < 1 << 20 {
        n += resp.chunk().await.unwrap().expect("no end").len();
    }
}

fn parse_date(resp: &reqwest::Response) -> std::time::SystemTime {
    let date = header(resp, "date").expect("a Date header");
    httpdate::parse_http_date(date).unwrap_or_else(|e| panic!("not an IMF-fixdate: {date}: {e}"))
}

fn parse_rfc3339(s: &str) -> std::time::SystemTime {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .into()
}

fn seconds_apart(a: std::time::SystemTime, b: std::time::SystemTime) -> u64 {
    a.duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn every_answer_carries_a_date_from_the_fakes_clock() {
    let (sb, _, token) = sandbox();
    let scope = SecretScope::repo("octo", "app");
    let path = format!("{}/S", scope.secrets_path());
    let c = client();
    let put = gh(&c, &sb, Method::PUT, &path, WRITER)
        .json(&sealed_body(&sb, &scope, "v"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let put_date = parse_date(&put);
    let meta = gh(&c, &sb, Method::GET, &path, WRITER)
        .send()
        .await
        .unwrap();
    let meta_date = parse_date(&meta);
    let updated = parse_rfc3339(body_json(meta).await["updated_at"].as_str().unwrap());
    assert!(seconds_apart(put_date, updated) <= 1);
    assert!(
        updated <= meta_date,
        "updated_at is never after a later Date"
    );

    let created = sq(&c, &sb, Method::POST, "/tokens", &token)
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap();
    let date = parse_date(&created);
    let token_created = parse_rfc3339(
        body_json(created).await["token"]["dateCreated"]
            .as_str()
            .unwrap(),
    );
    assert!(seconds_apart(date, token_created) <= 1);

    // Faults are dated too; a Status fault may send its own Date.
    sb.add_fault(seqera_rule(
        "GET",
        "/api/user-info",
        Occurrence::Nth(1),
        FaultAction::status(503),
    ));
    sb.add_fault(seqera_rule(
        "GET",
        "/api/user-info",
        Occurrence::Nth(2),
        FaultAction::Status {
            status: 500,
            headers: vec![("date".into(), "Thu, 01 Jan 1970 00:00:00 GMT".into())],
            body: String::new(),
        },
    ));
    let r = sq(&c, &sb, Method::GET, "/user-info", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(seconds_apart(parse_date(&r), std::time::SystemTime::now()) <= 2);
    let r = sq(&c, &sb, Method::GET, "/user-info", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "date"), Some("Thu, 01 Jan 1970 00:00:00 GMT"));
}

#[tokio::test]
async fn backdate_secret_moves_both_timestamps() {
    let (sb, _, _) = sandbox();
    let scope = SecretScope::repo("octo", "app");
    sb.put_secret_plain(&scope, "S", "v", None, &[]);
    let before = sb.secret(&scope, "S").unwrap();
    let by = Duration::from_secs(3 * 24 * 3600);
    sb.backdate_secret(&scope, "s", by);
    let after = sb.secret(&scope, "S").unwrap();
    for (was, now) in [
        (&before.created_at, &after.created_at),
        (&before.updated_at, &after.updated_at),
    ] {
        assert_eq!(
            parse_rfc3339(was)
                .duration_since(parse_rfc3339(now))
                .unwrap(),
            by
        );
    }
    let meta = gh(
        &client(),
        &sb,
        Method::GET,
        &format!("{}/S", scope.secrets_path()),
        WRITER,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(body_json(meta).await["updated_at"], json!(after.updated_at));
}

#[test]
#[should_panic(expected = "no secret")]
fn backdating_a_missing_secret_panics() {
    let (sb, _, _) = sandbox();
    sb.backdate_secret(
        &SecretScope::repo("octo", "app"),
        "NOPE",
        Duration::from_secs(1),
    );
}

#[tokio::test]
async fn hostile_token_names_and_values() {
    let sb = seqera_sandbox::Sandbox::start().unwrap();
    let hostile_user = "ci-bot\n::stop-commands::x\n::warning::y";
    let user = sb.add_user(hostile_user);
    let token = sb.create_token(user, "bootstrap").value;
    let c = client();
    let info = body_json(
        sq(&c, &sb, Method::GET, "/user-info", &token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(info["user"]["userName"], json!(hostile_user));

    let reported = "ci\n::add-mask::\n::error::<b>x</b>";
    sb.set_created_token_name(Some(reported));
    sb.set_access_key_suffix(Some("::warning::z"));
    let created = body_json(
        sq(&c, &sb, Method::POST, "/tokens", &token)
            .json(&json!({ "name": "ci-20240501-000000" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created["token"]["name"], json!(reported));
    let value = created["accessKey"].as_str().unwrap().to_owned();
    assert!(value.ends_with("::warning::z"), "{value}");
    let stored = sb.token_by_value(&value).expect("stored with the suffix");
    assert_eq!(stored.name, "ci-20240501-000000");
    // The value works verbatim.
    let resp = sq(&c, &sb, Method::GET, "/user-info", &value)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Listing shows the real name.
    let list = body_json(
        sq(&c, &sb, Method::GET, "/tokens", &token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == json!("ci-20240501-000000")));
    // Direct mints are not affected; `None` restores honest answers.
    assert!(!sb
        .create_token(user, "direct")
        .value
        .ends_with("::warning::z"));
    sb.set_created_token_name(None);
    sb.set_access_key_suffix(None);
    let created = body_json(
        sq(&c, &sb, Method::POST, "/tokens", &token)
            .json(&json!({ "name": "ci-2" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created["token"]["name"], json!("ci-2"));
    assert!(!created["accessKey"].as_str().unwrap().contains("::"));
}

// ----- for the fault explorer (tests/explore.rs): placement, crashes, late commits, clocks,
// lying token lists -----

#[tokio::test]
async fn at_request_hits_the_kth_request_overall_whichever_api_it_goes_to() {
    let (sb, _, token) = sandbox();
    let c = client();
    let next = sb.requests_received() + 1;
    // The 2nd request from now, to either API: one rule per API, only one can match it.
    for api in [Api::Seqera, Api::Github] {
        sb.add_fault(FaultRule::at_request(
            api,
            next + 1,
            FaultAction::status(418),
        ));
    }
    let first = sq(&c, &sb, Method::GET, "/user-info", &token)
        .send()
        .await
        .unwrap();
    let second = gh(
        &c,
        &sb,
        Method::GET,
        "/repos/octo/app/actions/secrets/public-key",
        WRITER,
    )
    .send()
    .await
    .unwrap();
    let third = sq(&c, &sb, Method::GET, "/user-info", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        [first.status(), second.status(), third.status()].map(|s| s.as_u16()),
        [200, 418, 200]
    );
    assert_eq!(sb.requests_received(), next + 2);
    sb.clear_requests();
    assert_eq!(sb.requests_received(), next + 2, "never reset");
}

#[tokio::test]
async fn from_hits_the_nth_and_every_later_request() {
    let (sb, _, token) = sandbox();
    let c = client();
    sb.add_fault(seqera_rule(
        "GET",
        "/api/user-info",
        Occurrence::From(2),
        FaultAction::status(503),
    ));
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(
            sq(&c, &sb, Method::GET, "/user-info", &token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(got, [200, 503, 503, 503]);
}

/// A client that gives up after 300 ms.
fn impatient_client() -> reqwest::Client {
    common::install_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

#[tokio::test]
async fn hold_never_answers_nor_performs_and_is_counted() {
    let (sb, alice, token) = sandbox();
    sb.add_fault(seqera_rule(
        "POST",
        "/api/tokens",
        Occurrence::Nth(1),
        FaultAction::Hold,
    ));
    assert_eq!(sb.held_requests(), 0);
    let c = impatient_client();
    let err = sq(&c, &sb, Method::POST, "/tokens", &token)
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(sb.held_requests(), 1);
    assert_eq!(sb.live_tokens(alice).len(), 1, "not performed");
    assert_eq!(sb.requests().last().unwrap().status, None);
}

#[tokio::test]
async fn perform_then_hold_performs_then_never_answers() {
    let (sb, alice, token) = sandbox();
    sb.add_fault(seqera_rule(
        "POST",
        "/api/tokens",
        Occurrence::Nth(1),
        FaultAction::PerformThenHold,
    ));
    let c = impatient_client();
    let err = sq(&c, &sb, Method::POST, "/tokens", &token)
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(sb.held_requests(), 1);
    let names: Vec<String> = sb.live_tokens(alice).into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["bootstrap", "ci"], "performed before it was held");
}

#[tokio::test]
async fn commit_later_answers_now_and_performs_after_the_delay() {
    let (sb, _, _) = sandbox();
    let scope = SecretScope::repo("octo", "app");
    let path = format!("{}/S", scope.secrets_path());
    let c = client();
    for (status, sees) in [(Some(504), Some(504)), (None, None)] {
        sb.clear_faults();
        sb.add_fault(FaultRule::github(
            "PUT",
            PathMatch::Exact(path.clone()),
            Occurrence::Nth(1),
            FaultAction::CommitLater {
                status,
                after: Duration::from_millis(400),
            },
        ));
        let value = format!("v{status:?}");
        let put = gh(&c, &sb, Method::PUT, &path, WRITER)
            .json(&sealed_body(&sb, &scope, &value))
            .send()
            .await;
        assert_eq!(put.ok().map(|r| r.status().as_u16()), sees);
        assert_eq!(sb.late_commits_pending(), 1);
        assert_ne!(
            sb.secret(&scope, "S").map(|s| s.plaintext),
            Some(value.clone()),
            "not yet"
        );
        let start = Instant::now();
        while sb.late_commits_pending() > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the late commit never landed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            sb.secret(&scope, "S").unwrap().plaintext,
            value,
            "landed late"
        );
    }
}

#[tokio::test]
async fn skew_date_performs_and_shifts_only_that_answers_date() {
    let (sb, _, token) = sandbox();
    let c = client();
    for (secs, off) in [(30i64, 30u64), (-86_400, 86_400)] {
        sb.clear_faults();
        sb.add_fault(seqera_rule(
            "GET",
            "/api/user-info",
            Occurrence::Nth(1),
            FaultAction::SkewDate(secs),
        ));
        let skewed = sq(&c, &sb, Method::GET, "/user-info", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(skewed.status(), 200, "answered normally");
        let normal = sq(&c, &sb, Method::GET, "/user-info", &token)
            .send()
            .await
            .unwrap();
        let apart = seconds_apart(parse_date(&skewed), parse_date(&normal));
        assert!(apart.abs_diff(off) <= 1, "{secs}: {apart} s apart");
        let ahead = parse_date(&skewed) > parse_date(&normal);
        assert_eq!(ahead, secs > 0);
    }
}

#[tokio::test]
async fn token_lists_that_lie() {
    let (sb, alice, token) = sandbox();
    let newest = sb.create_token(alice, "ci-20260101-000000");
    let c = client();
    let ids = |doc: &serde_json::Value| -> Vec<u64> {
        doc["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap())
            .collect()
    };
    sb.add_fault(seqera_rule(
        "GET",
        "/api/tokens",
        Occurrence::Nth(1),
        FaultAction::OmitNewestToken,
    ));
    sb.add_fault(seqera_rule(
        "GET",
        "/api/tokens",
        Occurrence::Nth(2),
        FaultAction::ExtraToken {
            id: 1_000_000_000_000_000,
            name: "ci-20991231-235959".into(),
        },
    ));
    let omitted = body_json(
        sq(&c, &sb, Method::GET, "/tokens", &token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(!ids(&omitted).contains(&newest.id), "{omitted}");
    assert_eq!(ids(&omitted).len(), 1);
    let extra = body_json(
        sq(&c, &sb, Method::GET, "/tokens", &token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ids(&extra).len(), 3, "{extra}");
    let listed = &extra["tokens"][2];
    assert_eq!(listed["name"], "ci-20991231-235959");
    assert_eq!(
        listed["dateCreated"], extra["tokens"][1]["dateCreated"],
        "a tie with the newest"
    );
    assert!(
        sb.tokens().iter().all(|t| t.id != 1_000_000_000_000_000),
        "nothing behind it"
    );
    // An answer without a token list (an error) is passed on unchanged.
    sb.add_fault(seqera_rule(
        "GET",
        "/api/tokens",
        Occurrence::Nth(1),
        FaultAction::OmitNewestToken,
    ));
    let unauthorized = sq(&c, &sb, Method::GET, "/tokens", "not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
}
