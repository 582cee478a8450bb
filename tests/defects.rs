//! Issue 15, defects 5–12: the real binary against the sandbox. Each regression test is named
//! after the defect it pins and checks the resulting state (live tokens, what the secret
//! decrypts to, what the sandbox received) as well as the text.

mod common;

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

fn repo() -> SecretScope {
    World::repo_scope()
}

fn status(code: u16, headers: &[(&str, &str)], body: &str) -> FaultAction {
    let mut h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    h.push(("content-type".into(), "application/json".into()));
    FaultAction::Status {
        status: code,
        headers: h,
        body: body.into(),
    }
}

// ----- defect 5: outputs cut at 4,000 characters -----

#[test]
fn updated_targets_is_never_cut_at_4000_characters() {
    let w = World::new();
    // 79 targets with long labels (about 85 characters each: 6,700 in all), under GitHub's
    // 80 writes a minute, so the run does not wait for pacing.
    let labels: Vec<String> = (0..79)
        .map(|i| {
            let name = format!(
                "repository-with-a-rather-long-name-for-defect-five-{i:03}-{}",
                "x".repeat(20)
            );
            w.sb.add_repo(OWNER, &name);
            format!("repo:{OWNER}/{name}")
        })
        .collect();
    let run = w.run(&[("INPUT_TARGETS", &labels.join("\n"))], &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let expected = labels.join(",");
    assert!(expected.len() > 4000, "the case must pass the old cut");
    assert_eq!(run.out("updated-targets"), expected);
    // Every target holds the new token.
    let id = run.out("token-id");
    for l in &labels {
        let name = l.rsplit('/').next().unwrap();
        let t = w.live_token_in(&SecretScope::repo(OWNER, name), SECRET);
        assert_eq!(t.id.to_string(), id);
    }
    w.assert_no_leak(&run, false);
}

// ----- defect 6: a grace period past the calendar revoked at once -----

#[test]
fn a_grace_period_past_the_calendar_keeps_the_superseded_token() {
    let w = World::new();
    let previous = w.sb.create_token(w.user, "ci-20240101-000000");
    w.sb.put_secret_plain(&repo(), SECRET, &previous.value, None, &[]);
    // 9000 years after the new token's creation is past year 9999: never reached, so the
    // previous token is kept (retiring), not revoked at once.
    let run = w.run(&[("INPUT_GRACE-PERIOD", "9000y")], &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let new = w.live_token_in(&repo(), SECRET);
    assert_ne!(new.id, previous.id);
    assert!(
        w.sb.is_live(&previous.value),
        "the superseded token was revoked"
    );
    assert_eq!(run.out("revoked-token-ids"), "");
    assert!(
        !w.mutations().iter().any(|m| m.starts_with("DELETE")),
        "{:?}",
        w.mutations()
    );
    w.assert_no_leak(&run, false);
}

// ----- defect 7: proxies used for loopback URLs -----

/// A "proxy" on loopback that counts the connections it gets and closes each at once.
struct Proxy {
    url: String,
    contacted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let contacted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (contacted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
                        let _ = conn.read(&mut [0u8; 1024]);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            url,
            contacted,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn proxy_variables_are_never_used_for_loopback_urls() {
    let w = World::new();
    let proxy = Proxy::start();
    let vars = [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ];
    let extra: Vec<(&str, &str)> = vars.iter().map(|v| (*v, proxy.url.as_str())).collect();
    let run = w.run(&extra, &[]);
    assert_eq!(
        proxy.contacted.load(Ordering::Relaxed),
        0,
        "the bearer tokens went to the proxy:\n{}",
        run.all()
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let t = w.live_token_in(&repo(), SECRET);
    assert_eq!(run.out("token-id"), t.id.to_string());
}

// ----- defect 8: server text as live links in the summary -----

#[test]
fn server_text_never_becomes_a_link_in_the_summary() {
    let w = World::new();
    // A hostile environment name (a label in the summary) and a hostile server message.
    let env = "www.evil.example";
    w.sb.add_environment(OWNER, REPO, env);
    let scope = SecretScope::environment(OWNER, REPO, env);
    w.sb.add_fault(always(
        Api::Github,
        "PUT",
        &format!("{}/{SECRET}", scope.secrets_path()),
        status(
            422,
            &[],
            r#"{"message":"Session expired: sign in again at https://evil.example/login or WWW.Evil.Example/reset, HTTP://evil.example, ftp://x.example, mail help@evil.example"}"#,
        ),
    ));
    let run = w.run(
        &[(
            "INPUT_TARGETS",
            &format!("repo:octo/app\nenv:octo/app/{env}"),
        )],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    let s = run.summary.to_ascii_lowercase();
    assert!(s.contains("session expired"), "{}", run.summary);
    for bad in ["://", "www.", "help@evil"] {
        assert!(!s.contains(bad), "{bad} in the summary:\n{}", run.summary);
    }
    // Still readable: the host names are there.
    assert!(s.contains("evil.example/login"), "{}", run.summary);
    // The repository target holds the new token.
    let t = w.live_token_in(&repo(), SECRET);
    assert_eq!(run.out("token-id"), t.id.to_string());
}

// ----- defect 9: list and revoke accept invalid settings they do not use -----

#[test]
fn list_and_revoke_refuse_invalid_settings_before_any_request() {
    let w = World::new();
    let invalid: &[(&str, &str)] = &[
        ("INPUT_TARGETS", "bogus:line"),
        ("INPUT_GITHUB-API-URL", "http://github.example/api"),
        ("INPUT_SECRET-NAME", "GITHUB_PAT"),
        ("INPUT_MAX-CONCURRENCY", "0"),
        ("INPUT_MIN-AGE", "soon"),
        ("INPUT_VISIBILITY", "everyone"),
        ("GITHUB_REPOSITORY", "not-a-repository"),
    ];
    let commands: &[(&[&str], Option<&str>)] = &[
        (&["list"], None),
        (&["list", "--json"], None),
        (&["revoke"], None),
        (&["revoke", "--dry-run"], None),
        (&[], Some("list")),
    ];
    for (setting, value) in invalid {
        for (args, command) in commands {
            w.sb.clear_requests();
            let mut extra = vec![(*setting, *value)];
            if let Some(c) = command {
                extra.push(("INPUT_COMMAND", c));
            }
            let run = w.run(&extra, args);
            let what = format!("{args:?} command={command:?} with {setting}={value}");
            assert_eq!(run.code, 2, "{what}: {}", run.all());
            let name = setting
                .strip_prefix("INPUT_")
                .map(str::to_ascii_lowercase)
                .unwrap_or_else(|| "repository".into());
            assert!(
                run.stdout.contains(&format!("`{name}`")),
                "{what}: {}",
                run.all()
            );
            assert!(
                w.sb.requests().is_empty(),
                "{what}: requests were sent: {:?}",
                w.sb.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
            );
        }
    }
    // Without the invalid setting, `list` and `revoke` still run without a GitHub token or
    // repository (they do not use them).
    let run = w.run(
        &[("INPUT_GITHUB-TOKEN", ""), ("GITHUB_REPOSITORY", "")],
        &["list"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let run = w.run(
        &[("INPUT_GITHUB-TOKEN", ""), ("GITHUB_REPOSITORY", "")],
        &["revoke"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
}

// ----- defect 10: a credential in the wrong input echoed -----

#[test]
fn a_credential_pasted_into_another_setting_is_never_echoed() {
    let w = World::new();
    let token = w.access.value.clone();
    let with_token = |f: &dyn Fn(&str) -> String| f(&token);
    let cases: Vec<(&str, String)> = vec![
        ("INPUT_TOKEN-NAME", token.clone()),
        ("INPUT_SECRET-NAME", token.clone()),
        ("INPUT_SECRET-NAME", GH_TOKEN.to_string()),
        ("INPUT_TARGETS", token.clone()),
        (
            "INPUT_TARGETS",
            with_token(&|t| format!("repo:octo/app={t}")),
        ),
        ("INPUT_TARGETS", with_token(&|t| format!("repo:octo/{t}"))),
        ("GITHUB_REPOSITORY", token.clone()),
        ("INPUT_ENVIRONMENT", with_token(&|t| format!("{t}\u{1}"))),
        ("INPUT_ORGANIZATION", token.clone()),
        ("INPUT_VISIBILITY", token.clone()),
        ("INPUT_MIN-AGE", token.clone()),
        ("INPUT_GRACE-PERIOD", GH_TOKEN.to_string()),
        ("INPUT_KEEP-PREVIOUS", token.clone()),
        ("INPUT_FORCE", token.clone()),
        ("INPUT_COMMAND", token.clone()),
        (
            "INPUT_GITHUB-API-URL",
            with_token(&|t| format!("https://{t}/")),
        ),
    ];
    for (setting, value) in &cases {
        for args in [&[][..], &["list"][..]] {
            w.sb.clear_requests();
            let run = w.run(&[(setting, value)], args);
            let what = format!("{args:?} with the credential in {setting}");
            assert_eq!(run.code, 2, "{what}: {}", run.all());
            assert_no_fragment(&run, &[token.clone(), GH_TOKEN.to_string()], &what);
            assert!(w.sb.requests().is_empty(), "{what}: requests were sent");
        }
    }
}

// ----- defect 11: test-only variables in a release build; extreme values panic -----

#[test]
fn extreme_values_of_the_test_only_variables_do_not_panic() {
    let w = World::new();
    let max = u64::MAX.to_string();
    let paces = [
        format!("1/1s,1/1s,+{max}s"),
        format!("{max}/1s,{max}/1s"),
        format!("1/{max}s,1/{max}s"),
        format!("4294967296/1ns,4294967297/1ns,+{max}ns"),
        "1/1ns,18446744073709551615/1ns".to_string(),
        "off".to_string(),
    ];
    let backoffs = [max.as_str(), "0", "-1", "99999999999999999999999"];
    let cases = paces
        .iter()
        .map(|p| (p.as_str(), "0"))
        .chain(backoffs.iter().map(|b| ("off", *b)));
    for (pace, backoff) in cases {
        // The run's first write is refused with an unhinted 429, so the backoff runs.
        w.sb.clear_faults();
        w.sb.add_fault(FaultRule {
            when: Occurrence::Nth(1),
            ..always(Api::Github, "PUT", "/secrets/", status(429, &[], "{}"))
        });
        let run = w.run(
            &[
                ("SEQERA_TOKEN_ROTATE_TEST_PACE", pace),
                ("SEQERA_TOKEN_ROTATE_TEST_BACKOFF_MS", backoff),
            ],
            &[],
        );
        let what = format!("TEST_PACE={pace} TEST_BACKOFF_MS={backoff}");
        assert_ne!(run.code, 101, "{what} panicked: {}", run.all());
        assert!(
            !run.all().contains("internal error"),
            "{what}: {}",
            run.all()
        );
        // A wait too long to honour fails the run cleanly; any other value rotates.
        if backoff == max {
            assert_eq!(run.code, 1, "{what}: {}", run.all());
            assert!(
                run.all().contains("try again after"),
                "{what}: {}",
                run.all()
            );
        } else {
            assert_eq!(run.code, 0, "{what}: {}", run.all());
            assert_eq!(
                w.live_token_in(&repo(), SECRET).id.to_string(),
                run.out("token-id")
            );
        }
        w.assert_no_leak(&run, false);
    }
}

// ----- defect 12: `Retry-After: 0` gives 9 attempts per write -----

#[test]
fn retry_after_0_on_a_429_is_an_unhinted_retry_with_backoff() {
    let w = World::new();
    w.sb.add_fault(always(
        Api::Github,
        "PUT",
        &format!("{}/{SECRET}", repo().secrets_path()),
        status(429, &[("retry-after", "0")], r#"{"message":"slow down"}"#),
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    let puts =
        w.sb.requests()
            .into_iter()
            .filter(|r| r.method == "PUT")
            .count();
    // SPEC §5: a hint of 0 waits like the backoff would, so it counts among the 4 unhinted
    // retries: 5 attempts in all, not 9.
    assert_eq!(puts, 5, "{}", run.all());
    // A refused write is rolled back: nothing is left live, no secret was written.
    assert!(w.sb.secret(&repo(), SECRET).is_none());
    assert_eq!(w.live_managed_ids(), Vec::<u64>::new());
    w.assert_no_leak(&run, false);
}
