//! Hostile servers and careless users (issue 9, SPEC §2 and §8): the real binary against a
//! sandbox that answers with injected workflow commands, echoed credentials, absurd wait
//! hints, lists that never end, bodies that never end, low-order keys and Markdown; and with
//! settings that must exit 2. Each regression test is named after the defect it pins, and
//! checks the resulting state (live tokens, what the secret decrypts to) as well as the text.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};

use base64::Engine as _;
use common::*;
use proptest::prelude::*;

/// Workflow commands the tool itself writes; any other line starting with `::` came from
/// someone else's text.
const OWN_COMMANDS: &[&str] = &[
    "::add-mask::",
    "::error::",
    "::warning::",
    "::group::",
    "::endgroup::",
];

fn assert_no_foreign_command(run: &Run) {
    for line in run.stdout.lines() {
        let t = line.trim_start();
        if t.starts_with("::") {
            assert!(
                OWN_COMMANDS.iter().any(|c| t.starts_with(c)),
                "a workflow command the tool did not write: {line}\n{run:#?}"
            );
        }
        assert!(!t.contains("##["), "an old-style workflow command: {line}");
        for c in ["stop-commands", "::warning::y", "::warning::tail"] {
            if !t.starts_with("::add-mask::") {
                // Allowed only in the middle of one of our own lines, never at a line start.
                assert!(!t.starts_with(c), "{line}");
            }
        }
        assert!(
            !line.contains('\u{1b}'),
            "an escape sequence reached the log: {line:?}"
        );
    }
}

fn repo() -> SecretScope {
    World::repo_scope()
}

fn put_rule(action: FaultAction) -> FaultRule {
    always(
        Api::Github,
        "PUT",
        &format!("{}/{SECRET}", repo().secrets_path()),
        action,
    )
}

fn status(status: u16, headers: &[(&str, &str)], content_type: &str, body: &str) -> FaultAction {
    let mut h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    h.push(("content-type".into(), content_type.into()));
    FaultAction::Status {
        status,
        headers: h,
        body: body.into(),
    }
}

// ----- defect 2: workflow-command injection -----

#[test]
fn a_user_name_with_workflow_commands_is_printed_as_plain_text() {
    let w = World::new();
    let evil =
        w.sb.add_user("ci-bot\n::stop-commands::x\n::warning::y\u{1b}[31m");
    let access = w.sb.create_token(evil, "evil-personal");
    let run = w.run(&[("INPUT_SEQERA-ACCESS-TOKEN", &access.value)], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_no_foreign_command(&run);
    assert!(
        run.stdout
            .contains("Seqera user ci-bot ::stop-commands::x ::warning::y [31m (id"),
        "{}",
        run.stdout
    );
    // And the rotation still did its job.
    let t = w.live_token_in(&repo(), SECRET);
    assert_eq!(t.user_id, evil);
    w.assert_no_leak(&run, false);
}

// ----- defect 3: cut before scrub -----

#[test]
fn a_403_echoing_the_bearer_near_the_cut_leaks_no_fragment() {
    for pad in [250, 270, 285, 295, 300] {
        let w = World::new();
        let body = format!("{}Authorization: Bearer {GH_TOKEN}\nmore", "x".repeat(pad));
        w.sb.add_fault(put_rule(status(403, &[], "text/plain", &body)));
        let run = w.run(&[], &[]);
        assert_eq!(run.code, 1, "{run:#?}");
        assert_no_fragment(&run, &w.all_secret_values(), "hostile");
        // A refused write was rolled back: the old state stands, nothing is left live.
        assert!(w.sb.secret(&repo(), SECRET).is_none());
        assert_eq!(w.live_managed_ids(), Vec::<u64>::new(), "rolled back");
    }
}

#[test]
fn a_json_message_quoting_the_seqera_token_leaks_no_fragment() {
    let w = World::new();
    let body = serde_json::json!({
        "message": format!("{} token {} is not allowed here", "y".repeat(262), w.access.value)
    })
    .to_string();
    w.sb.add_fault(always(
        Api::Seqera,
        "GET",
        "/api/tokens",
        status(400, &[], "application/json", &body),
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_no_fragment(&run, &w.all_secret_values(), "hostile");
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
}

// ----- defect 4: panics on absurd hints -----

#[test]
fn absurd_wait_hints_fail_the_run_cleanly_with_outputs_and_summary() {
    let hints: &[&[(&str, &str)]] = &[
        &[("retry-after", "300000000000")],
        &[("retry-after", "18446744073709551615")],
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "99999999999999"),
        ],
    ];
    for h in hints {
        let w = World::new();
        let code = if h[0].0 == "retry-after" { 429 } else { 403 };
        w.sb.add_fault(put_rule(status(
            code,
            h,
            "application/json",
            r#"{"message":"API rate limit exceeded"}"#,
        )));
        let run = w.run(&[], &[]);
        assert_eq!(run.code, 1, "{h:?}: {run:#?}");
        assert!(!run.all().contains("panicked"), "{run:#?}");
        assert!(
            run.all().contains("more than this run may wait"),
            "{run:#?}"
        );
        assert_eq!(run.out("rotated"), "false", "outputs are written: {run:#?}");
        assert!(run.summary.contains("Seqera token rotation"), "{run:#?}");
        assert_eq!(w.live_managed_ids(), Vec::<u64>::new(), "rolled back");
    }
    // One hint, then one that overflows the sum of the waits.
    let w = World::new();
    let put = format!("{}/{SECRET}", repo().secrets_path());
    w.sb.add_fault(FaultRule::github(
        "PUT",
        PathMatch::Exact(put.clone()),
        Occurrence::Nth(1),
        FaultAction::too_many_requests(1),
    ));
    w.sb.add_fault(FaultRule::github(
        "PUT",
        PathMatch::Exact(put),
        Occurrence::Always,
        status(
            429,
            &[("retry-after", "18446744073709551615")],
            "application/json",
            "{}",
        ),
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(!run.all().contains("panicked"), "{run:#?}");
}

// ----- defect 5: no limits -----

#[test]
fn an_endless_repository_list_stops_at_the_page_cap() {
    let w = World::new();
    w.sb.add_org("octo");
    let id = w.sb.repo_id(OWNER, REPO).unwrap();
    w.sb.put_secret_plain(
        &SecretScope::org("octo"),
        SECRET,
        "old",
        Some("selected"),
        &[id],
    );
    let page = serde_json::json!({
        "total_count": 1_000_000,
        "repositories": (0..100).map(|i| serde_json::json!({"id": i + 1})).collect::<Vec<_>>(),
    })
    .to_string();
    w.sb.add_fault(always(
        Api::Github,
        "GET",
        &format!(
            "{}/{SECRET}/repositories",
            SecretScope::org("octo").secrets_path()
        ),
        status(200, &[], "application/json", &page),
    ));
    let run = w.run(&[("INPUT_ORGANIZATION", "octo")], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.all().contains("past 100 pages"), "{run:#?}");
    let pages =
        w.sb.requests()
            .iter()
            .filter(|r| r.path.contains("/repositories"))
            .count();
    assert_eq!(pages, 100, "read exactly the cap");
    assert!(
        w.mutations().is_empty(),
        "preflight failed: {:?}",
        w.mutations()
    );
}

#[test]
fn ten_thousand_targets_lines_exit_2_naming_the_line_past_the_cap() {
    let w = World::new();
    let lines: String = (0..10_000).map(|i| format!("repo:o/{i}\n")).collect();
    let run = w.run(&[("INPUT_TARGETS", &lines)], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.all()
            .contains("targets line 5001: more than 5000 targets"),
        "{}",
        run.all()
    );
    assert!(w.sb.requests().is_empty());
}

// ----- defect 6: low-order public key -----

#[test]
fn a_low_order_public_key_fails_preflight_and_nothing_is_created() {
    let w = World::new();
    let zeros = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
    w.sb.add_fault(always(
        Api::Github,
        "GET",
        &format!("{}/public-key", repo().secrets_path()),
        status(
            200,
            &[],
            "application/json",
            &serde_json::json!({"key_id": "k1", "key": zeros}).to_string(),
        ),
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.all().contains("low-order point"), "{run:#?}");
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    assert_eq!(w.sb.tokens().len(), 1, "only the access token exists");
}

// ----- defect 7: settings that should exit 2 -----

fn run_raw(env: &[(&str, OsString)], args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_non_utf8_seqera_api_url_exits_2_instead_of_falling_back() {
    let w = World::new();
    let mut env: Vec<(&str, OsString)> = vec![
        ("INPUT_SEQERA-ACCESS-TOKEN", w.access.value.clone().into()),
        (
            "INPUT_SEQERA-API-URL",
            OsString::from_vec(b"http://127.0.0.1:1/\xff".to_vec()),
        ),
        ("TOWER_API_ENDPOINT", w.sb.seqera_url().into()),
        ("INPUT_GITHUB-TOKEN", GH_TOKEN.into()),
        ("INPUT_GITHUB-API-URL", w.sb.github_url().into()),
        ("GITHUB_REPOSITORY", "octo/app".into()),
        ("INPUT_TOKEN-NAME", "ci".into()),
    ];
    let (code, _, err) = run_raw(&env, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`seqera-api-url` (from INPUT_SEQERA-API-URL): the value is not valid UTF-8"),
        "{err}"
    );
    assert!(
        w.sb.requests().is_empty(),
        "nothing sent to TOWER_API_ENDPOINT"
    );
    env.retain(|(k, _)| *k != "INPUT_SEQERA-API-URL");
    let (code, _, err) = run_raw(&env, &["--dry-run"]);
    assert_eq!(code, 0, "the fallback itself works: {err}");
}

#[test]
fn settings_that_must_exit_2_and_send_nothing() {
    let w = World::new();
    w.sb.add_environment(OWNER, REPO, "prod");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("INPUT_ENVIRONMENT", ".")], "not an environment name"),
        (&[("INPUT_ENVIRONMENT", "..")], "not an environment name"),
        (
            &[("INPUT_TARGETS", "env:octo/app/..")],
            "not an environment name",
        ),
        (
            &[
                ("INPUT_ORGANIZATION", "octo"),
                ("INPUT_VISIBILITY", "selected"),
                ("INPUT_SELECTED-REPOSITORIES", "other/app"),
            ],
            "another organization",
        ),
        (
            &[(
                "INPUT_GITHUB-API-URL",
                "https://bob:hunter2pass@ghe.example/api/v3",
            )],
            "user name or password",
        ),
        (
            &[(
                "INPUT_SEQERA-API-URL",
                "https://seqera.example/api?access_token=qs3cret",
            )],
            "query or fragment",
        ),
    ];
    for (extra, needle) in cases {
        let run = w.run(extra, &[]);
        assert_eq!(run.code, 2, "{extra:?}: {run:#?}");
        assert!(run.all().contains(needle), "{extra:?}: {}", run.all());
        for secret in ["hunter2pass", "qs3cret", "bob:"] {
            assert!(
                !run.all().contains(secret),
                "{extra:?} repeated {secret}: {}",
                run.all()
            );
        }
        assert!(w.sb.requests().is_empty(), "{extra:?} sent requests");
    }
}

#[test]
fn a_pasted_token_as_a_stray_argument_is_not_echoed() {
    let w = World::new();
    let run = w.run(&[], &[&w.access.value]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.all().contains("unexpected argument (not shown"),
        "{}",
        run.all()
    );
    assert_no_fragment(&run, std::slice::from_ref(&w.access.value), "hostile");
    assert!(w.sb.requests().is_empty());
    let run = w.run(&[], &[&format!("--token={}", w.access.value)]);
    assert_eq!(run.code, 2);
    assert!(
        run.all().contains("unknown flag `--token`"),
        "{}",
        run.all()
    );
    assert_no_fragment(&run, std::slice::from_ref(&w.access.value), "hostile");
}

#[test]
fn env_target_with_an_equals_sign_is_environment_then_secret_name() {
    let w = World::new();
    w.sb.add_environment(OWNER, REPO, "a");
    let run = w.run(&[("INPUT_TARGETS", "env:octo/app/a=B")], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("updated-targets"), "env:octo/app/a=B");
    let t = w.live_token_in(&SecretScope::environment(OWNER, REPO, "a"), "B");
    assert_eq!(run.out("token-id"), t.id.to_string());
}

// ----- defect 8: summary injection -----

#[test]
fn server_markup_and_backticks_are_escaped_in_the_summary() {
    let w = World::new();
    let env = "pro`d <b>x</b>";
    w.sb.add_environment(OWNER, REPO, env);
    let scope = SecretScope::environment(OWNER, REPO, env);
    w.sb.add_fault(always(
        Api::Github,
        "PUT",
        &format!("{}/{SECRET}", scope.secrets_path()),
        status(
            422,
            &[],
            "application/json",
            r#"{"message":"<img src=x onerror=alert(1)><details open>[click](https://evil.example) ![i](https://evil.example/p.png) | x"}"#,
        ),
    ));
    let run = w.run(
        &[(
            "INPUT_TARGETS",
            &format!("repo:octo/app\nenv:octo/app/{env}"),
        )],
        &[],
    );
    assert_eq!(run.code, 1, "{run:#?}");
    let s = &run.summary;
    for bad in ["<img", "<details", "<b>", "](https://", "![i]"] {
        assert!(!s.contains(bad), "{bad} in the summary:\n{s}");
    }
    assert!(s.contains("&lt;img src=x onerror=alert\\(1\\)&gt;"), "{s}");
    // The label is one code element; its backtick cannot end it.
    assert!(
        s.contains("<code>env:octo/app/pro\\`d &lt;b&gt;x&lt;/b&gt;</code>"),
        "{s}"
    );
    // Every table row still has exactly its two cells.
    for row in s.lines().filter(|l| l.starts_with("| <code>")) {
        let cells = row.replace("\\|", "").matches('|').count();
        assert_eq!(cells, 3, "{row}");
    }
    // The repository target holds the new token; nothing was revoked (partial failure).
    let t = w.live_token_in(&repo(), SECRET);
    assert_eq!(run.out("token-id"), t.id.to_string());
}

// ----- property tests on the binary -----

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// (a) A credential embedded anywhere in a server body, at any length and cut, leaves no
    /// 16-character fragment in any output.
    #[test]
    fn no_credential_fragment_from_any_server_body(
        before in "[ -~]{0,400}",
        after in "[ -~]{0,100}",
        which in 0usize..2,
        json in any::<bool>(),
    ) {
        let w = World::new();
        let cred = if which == 0 { GH_TOKEN.to_string() } else { w.access.value.clone() };
        let text = format!("{before}{cred}{after}");
        let (ctype, body) = if json {
            ("application/json", serde_json::json!({ "message": text }).to_string())
        } else {
            ("text/plain", text)
        };
        w.sb.add_fault(put_rule(status(400, &[], ctype, &body)));
        let run = w.run(&[], &[]);
        prop_assert_eq!(run.code, 1);
        assert_no_fragment(&run, &w.all_secret_values(), "hostile");
        assert_no_foreign_command(&run);
    }

    /// (b) No server-supplied string yields a line starting with `::` that the tool did not
    /// write.
    #[test]
    fn no_foreign_workflow_command_from_any_server_text(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("\n".to_string()), Just("\r\n".to_string()), Just("\r".to_string()),
                Just("\u{2028}".to_string()), Just("\u{85}".to_string()), Just("::".to_string()),
                Just("::stop-commands::x".to_string()), Just("::add-mask::".to_string()),
                Just("##[error]".to_string()), Just(" ".to_string()), "[a-z:]{0,6}",
            ],
            1..10,
        ),
    ) {
        let w = World::new();
        let text: String = parts.concat();
        let user = w.sb.add_user(&text);
        let access = w.sb.create_token(user, "p");
        let body = serde_json::json!({ "message": text }).to_string();
        w.sb.add_fault(put_rule(status(400, &[], "application/json", &body)));
        let run = w.run(&[("INPUT_SEQERA-ACCESS-TOKEN", &access.value)], &[]);
        prop_assert_eq!(run.code, 1);
        assert_no_foreign_command(&run);
    }
}

// ----- the hostile-server mode of the sandbox -----

#[test]
fn a_created_token_name_with_workflow_commands_is_printed_as_plain_text() {
    let w = World::new();
    w.sb.set_created_token_name(Some("ci-x\n::stop-commands::abc\n::warning::y"));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_no_foreign_command(&run);
    assert!(
        run.stdout.contains("::warning::Seqera names the new token"),
        "{}",
        run.stdout
    );
    // The output carries the name as one line.
    assert_eq!(
        run.out("token-name"),
        "ci-x ::stop-commands::abc ::warning::y"
    );
    w.live_token_in(&repo(), SECRET);
}

#[test]
fn an_access_key_with_a_line_break_is_masked_never_used_and_revoked() {
    let w = World::new();
    w.sb.set_access_key_suffix(Some("\n::warning::tail-of-the-value"));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_no_foreign_command(&run);
    assert!(run.all().contains("not in the token format"), "{run:#?}");
    // Both pieces were masked before anything else was printed, and neither shows elsewhere.
    let masks: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::add-mask::"))
        .collect();
    assert!(
        masks.contains(&"::add-mask::::warning::tail-of-the-value"),
        "{masks:?}"
    );
    let created: Vec<SeqeraToken> =
        w.sb.tokens()
            .into_iter()
            .filter(|t| t.id > w.access.id)
            .collect();
    assert_eq!(created.len(), 1);
    assert!(created[0].revoked, "the malformed token was revoked by id");
    assert!(w.sb.secret(&repo(), SECRET).is_none(), "never stored");
    assert!(w.sb.is_live(&w.access.value));
    assert_no_fragment(&run, &w.all_secret_values(), "hostile");
    for line in run
        .stdout
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
    {
        assert!(!line.contains("tail-of-the-value"), "{line}");
    }
}

#[test]
fn a_proxy_echoing_the_authorization_header_leaks_no_fragment() {
    for (pad, ctype) in [
        (240, "text/plain"),
        (280, "text/plain"),
        (290, "application/json"),
    ] {
        let w = World::new();
        w.sb.add_fault(put_rule(FaultAction::EchoAuthorization {
            status: 403,
            content_type: ctype.into(),
            before: "p".repeat(pad),
            after: " (request headers)".into(),
        }));
        let run = w.run(&[], &[]);
        assert_eq!(run.code, 1, "{run:#?}");
        assert_no_fragment(&run, &w.all_secret_values(), "hostile");
    }
}

#[test]
fn a_body_of_8_gb_or_one_that_never_ends_is_refused_without_reading_it() {
    for content_length in [Some(8_000_000_000u64), None] {
        let w = World::new();
        w.sb.add_fault(always(
            Api::Seqera,
            "GET",
            "/api/tokens",
            FaultAction::Endless { content_length },
        ));
        let run = w.run(&[], &[]);
        assert_eq!(run.code, 1, "{content_length:?}: {run:#?}");
        assert!(run.all().contains("larger than 8 MiB"), "{run:#?}");
        assert!(w.mutations().is_empty());
    }
}

// Issue 15: GitHub commits every attempt a second later and answers 504: the write is
// *unknown* (SPEC §5 step 6), whatever the secret's metadata would say: nothing is revoked,
// the run fails saying what the target holds, and the next run repairs.
#[test]
fn a_write_committed_then_answered_504_is_unknown_and_revokes_nothing() {
    let w = World::new();
    let first = w.run(&[], &[]);
    assert_eq!(first.code, 0);
    let prev = w.live_token_in(&repo(), SECRET);
    w.sb.add_fault(put_rule(FaultAction::PerformThenStatus {
        status: 504,
        delay: std::time::Duration::from_millis(1100),
    }));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.all()
            .contains("holds the new token or its previous one"),
        "{run:#?}"
    );
    let now = w.live_token_in(&repo(), SECRET);
    assert!(now.id > prev.id);
    assert_eq!(run.out("token-id"), now.id.to_string());
    assert!(w.sb.is_live(&prev.value), "nothing is revoked");
    w.assert_no_leak(&run, false);
    w.sb.clear_faults();
    let repair = w.run(&[], &[]);
    assert_eq!(repair.code, 0, "{repair:#?}");
    assert!(!w.sb.is_live(&prev.value) && !w.sb.is_live(&now.value));
    w.live_token_in(&repo(), SECRET);
}

// ----- a panic is a bug, not a leak -----

#[test]
fn a_panic_prints_one_scrubbed_line_and_no_credential() {
    let w = World::new();
    let run = w.run(&[("SEQERA_TOKEN_ROTATE_TEST_PANIC", "1")], &[]);
    assert_eq!(run.code, 101, "{run:#?}");
    assert!(
        run.stdout
            .contains("::error::internal error (a bug in seqera-token-rotate at src/app.rs:"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("deliberate test panic quoting ***"),
        "{run:#?}"
    );
    assert!(
        !run.stderr.contains("panicked at"),
        "the default report is replaced: {run:#?}"
    );
    assert_no_fragment(&run, &w.all_secret_values(), "panic");
    assert!(w.mutations().is_empty());
}
