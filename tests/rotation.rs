//! The rotation protocol end to end (SPEC §5): the real binary against the sandbox, with
//! assertions on the resulting state — live tokens, what each secret decrypts to, outputs.

mod common;

use std::time::Duration;

use common::*;

fn is_stamped(name: &str) -> bool {
    let rest = name.strip_prefix("ci-").unwrap_or("");
    rest.len() == 15
        && rest
            .chars()
            .enumerate()
            .all(|(i, c)| if i == 8 { c == '-' } else { c.is_ascii_digit() })
}

#[test]
fn first_run_creates_stores_and_reports() {
    let w = World::new();
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let live = w.live_managed();
    assert_eq!(live.len(), 1);
    let new = &live[0];
    assert!(is_stamped(&new.name), "{}", new.name);
    assert_eq!(w.live_token_in(&World::repo_scope(), SECRET).id, new.id);
    assert_eq!(run.out("rotated"), "true");
    assert_eq!(run.out("token-id"), new.id.to_string());
    assert_eq!(run.out("token-name"), new.name);
    assert_eq!(run.out("updated-targets"), "repo:octo/app");
    assert_eq!(run.out("revoked-token-ids"), "");
    assert!(!run.outputs.contains_key("access-key"));
    // The value is masked before anything else is printed about it.
    let first_mention = run
        .stdout
        .lines()
        .position(|l| l.contains(&new.name))
        .unwrap();
    let mask = run
        .stdout
        .lines()
        .position(|l| l == format!("::add-mask::{}", new.value))
        .expect("masked");
    assert!(mask < first_mention, "{}", run.stdout);
    assert!(
        run.summary.contains(&new.name) && run.summary.contains("repo:octo/app"),
        "{}",
        run.summary
    );
    // The personal access token is not managed: untouched.
    assert!(w.sb.is_live(&w.access.value));
    assert!(!w.sb.delete_all_called());
    w.assert_no_leak(&run, false);
}

#[test]
fn second_run_revokes_the_first_token() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    let first = w.live_managed()[0].clone();
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let live = w.live_managed();
    assert_eq!(live.len(), 1);
    assert!(live[0].id > first.id);
    assert!(!w.sb.is_live(&first.value));
    assert_eq!(w.live_token_in(&World::repo_scope(), SECRET).id, live[0].id);
    assert_eq!(run.out("revoked-token-ids"), first.id.to_string());
    assert_eq!(w.sb.secret(&World::repo_scope(), SECRET).unwrap().writes, 2);
    // The old token was revoked with the new one.
    let delete =
        w.sb.requests()
            .into_iter()
            .find(|r| r.method == "DELETE")
            .unwrap();
    assert_eq!(
        delete.authorization.as_deref(),
        Some(format!("Bearer {}", live[0].value).as_str())
    );
    w.assert_no_leak(&run, false);
}

#[test]
fn self_rotation_replaces_the_access_token_itself() {
    let w = World::new();
    // The access token is a managed token, and it is what the secret holds.
    let current = w.sb.create_token(w.user, "ci-20250101-000000");
    w.sb.put_secret_plain(&World::repo_scope(), SECRET, &current.value, None, &[]);
    let run = w.run(
        &[("INPUT_SEQERA-ACCESS-TOKEN", current.value.as_str())],
        &[],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        !w.sb.is_live(&current.value),
        "the old access token is revoked"
    );
    let now = w.live_token_in(&World::repo_scope(), SECRET);
    assert_ne!(now.id, current.id);
    assert_eq!(
        w.live_managed().iter().map(|t| t.id).collect::<Vec<_>>(),
        [now.id]
    );
    assert_eq!(run.out("revoked-token-ids"), current.id.to_string());
    // The next run can use the token from the secret.
    let run2 = w.run(&[("INPUT_SEQERA-ACCESS-TOKEN", now.value.as_str())], &[]);
    assert_eq!(run2.code, 0, "{run2:#?}");
    assert!(!w.sb.is_live(&now.value));
    w.assert_no_leak(&run, false);
    w.assert_no_leak(&run2, false);
}

#[test]
fn an_exact_name_token_is_adopted_and_others_are_never_touched() {
    let w = World::new();
    let adopted = w.sb.create_token(w.user, "ci");
    let lookalikes: Vec<_> = [
        "ci-prod",
        "ci-2025",
        "cix-20250101-000000",
        "ci-20250101-000000-old",
    ]
    .iter()
    .map(|n| w.sb.create_token(w.user, n))
    .collect();
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(!w.sb.is_live(&adopted.value));
    assert_eq!(run.out("revoked-token-ids"), adopted.id.to_string());
    for t in &lookalikes {
        assert!(w.sb.is_live(&t.value), "{} must not be revoked", t.name);
    }
    assert!(w.sb.is_live(&w.access.value));
}

#[test]
fn keep_previous_leaves_exactly_that_many_older_tokens() {
    let w = World::new();
    let a = w.sb.create_token(w.user, "ci-20250101-000000");
    let b = w.sb.create_token(w.user, "ci-20250201-000000");
    let c = w.sb.create_token(w.user, "ci-20250301-000000");
    let run = w.run(&[("INPUT_KEEP-PREVIOUS", "1")], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let live: Vec<u64> = w.live_managed().iter().map(|t| t.id).collect();
    let new = w.live_token_in(&World::repo_scope(), SECRET).id;
    assert_eq!(live, [c.id, new]);
    assert!(!w.sb.is_live(&a.value) && !w.sb.is_live(&b.value));
    let mut revoked: Vec<&str> = run.out("revoked-token-ids").split(',').collect();
    revoked.sort();
    let mut want = vec![a.id.to_string(), b.id.to_string()];
    want.sort();
    assert_eq!(revoked, want);
}

#[test]
fn min_age_skips_when_not_due_and_force_overrides() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    let first = w.live_managed()[0].clone();
    w.sb.clear_requests();
    let run = w.run(&[("INPUT_MIN-AGE", "1h")], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("rotated"), "false");
    // SPEC §5.3: a run that is not due writes `rotated=false` and `revoked-token-ids`
    // (what it retired: nothing here).
    assert_eq!(run.outputs.len(), 2, "{:?}", run.outputs);
    assert_eq!(run.out("revoked-token-ids"), "");
    assert!(run.all().contains("Not due"), "{run:#?}");
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    assert_eq!(w.live_managed().len(), 1);
    // Due once the token is old enough.
    w.sb.backdate_token(first.id, Duration::from_secs(2 * 3600));
    let run = w.run(&[("INPUT_MIN-AGE", "1h")], &[]);
    assert_eq!(run.out("rotated"), "true", "{run:#?}");
    let second = w.live_managed()[0].clone();
    // Not due again; force rotates anyway.
    let run = w.run(&[("INPUT_MIN-AGE", "30d"), ("INPUT_FORCE", "true")], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("rotated"), "true");
    assert!(!w.sb.is_live(&second.value));
    assert_ne!(w.live_token_in(&World::repo_scope(), SECRET).id, second.id);
}

#[test]
fn dry_run_makes_no_mutating_request() {
    let w = World::new();
    let old = w.sb.create_token(w.user, "ci-20250101-000000");
    let run = w.run(&[("INPUT_DRY-RUN", "true")], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    assert!(w.sb.is_live(&old.value));
    assert!(w.sb.secret(&World::repo_scope(), SECRET).is_none());
    assert_eq!(run.out("rotated"), "false");
    assert_eq!(
        run.outputs.len(),
        1,
        "a dry run writes only rotated=false: {:?}",
        run.outputs
    );
    let all = run.all();
    assert!(all.contains("create Seqera token `ci-"), "{all}");
    assert!(all.contains("repo:octo/app"), "{all}");
    assert!(
        all.contains(&format!(
            "revoke token `ci-20250101-000000` (id {})",
            old.id
        )),
        "{all}"
    );
}

#[test]
fn environment_secret_target() {
    let w = World::new();
    w.sb.add_environment(OWNER, REPO, "production");
    let run = w.run(&[("INPUT_ENVIRONMENT", "production")], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let scope = SecretScope::Environment {
        owner: OWNER.into(),
        repo: REPO.into(),
        env: "production".into(),
    };
    let t = w.live_token_in(&scope, SECRET);
    assert_eq!(run.out("updated-targets"), "env:octo/app/production");
    assert_eq!(run.out("token-id"), t.id.to_string());
    assert!(
        w.sb.secret(&World::repo_scope(), SECRET).is_none(),
        "no repository secret"
    );
}

#[test]
fn store_failure_rolls_back_and_the_secret_keeps_the_old_live_token() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    let old = w.live_token_in(&World::repo_scope(), SECRET);
    w.sb.add_fault(always(
        Api::Github,
        "PUT",
        "/secrets/",
        FaultAction::status(403),
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.out("rotated"), "false");
    assert_eq!(run.out("token-id"), "");
    // The token this run created was revoked again; the old one is still in place and live.
    assert_eq!(
        w.live_managed().iter().map(|t| t.id).collect::<Vec<_>>(),
        [old.id]
    );
    assert_eq!(w.live_token_in(&World::repo_scope(), SECRET).id, old.id);
    let all = run.all();
    assert!(all.contains("::error::"), "{all}");
    assert!(all.contains("repo:octo/app"), "{all}");
    assert!(all.contains("previous"), "{all}");
    w.assert_no_leak(&run, false);
}

#[test]
fn verify_failure_revokes_the_new_token() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    let old = w.live_token_in(&World::repo_scope(), SECRET);
    // The second user-info call of the run is the verification with the new token.
    w.sb.add_fault(FaultRule {
        api: Api::Seqera,
        method: "GET".into(),
        path: PathMatch::Suffix("/user-info".into()),
        when: Occurrence::Always,
        action: FaultAction::status(401),
    });
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(
        w.live_managed().iter().map(|t| t.id).collect::<Vec<_>>(),
        [old.id]
    );
    assert_eq!(w.live_token_in(&World::repo_scope(), SECRET).id, old.id);
}

#[test]
fn expose_access_key_writes_the_masked_output() {
    let w = World::new();
    let run = w.run(&[("INPUT_EXPOSE-ACCESS-KEY", "true")], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let t = w.live_token_in(&World::repo_scope(), SECRET);
    assert_eq!(run.out("access-key"), t.value);
    assert!(run.stdout.contains(&format!("::add-mask::{}", t.value)));
    w.assert_no_leak(&run, true);
}

#[test]
fn requests_carry_the_required_headers() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    for r in w.sb.requests() {
        assert!(
            r.header("user-agent")
                .is_some_and(|ua| ua.starts_with("seqera-token-rotate/")),
            "{r:?}"
        );
        assert!(
            r.authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Bearer ")),
            "{r:?}"
        );
        if r.api == Api::Github {
            assert_eq!(
                r.header("accept"),
                Some("application/vnd.github+json"),
                "{r:?}"
            );
            assert_eq!(
                r.header("x-github-api-version"),
                Some("2022-11-28"),
                "{r:?}"
            );
        }
    }
}

#[test]
fn malformed_public_keys_fail_preflight_and_change_nothing() {
    let w = World::new();
    for (body, needle) in [
        (r#"{"key_id":"k1","key":"not base64!"}"#, "not valid base64"),
        (
            r#"{"key_id":"k1","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}"#,
            "31 bytes",
        ),
        (
            r#"{"key_id":"","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#,
            "empty key_id",
        ),
        (
            r#"{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#,
            "expected JSON",
        ),
    ] {
        w.sb.clear_faults();
        w.sb.clear_requests();
        w.sb.add_fault(always(
            Api::Github,
            "GET",
            "/public-key",
            FaultAction::Status {
                status: 200,
                headers: vec![],
                body: body.into(),
            },
        ));
        let run = w.run(&[], &[]);
        assert_eq!(run.code, 1, "{body}: {run:#?}");
        assert!(run.all().contains(needle), "{body}: {}", run.all());
        assert!(
            run.all().contains("preflight failed, nothing was changed"),
            "{}",
            run.all()
        );
        assert!(w.mutations().is_empty(), "{body}: {:?}", w.mutations());
        assert!(w.live_managed().is_empty());
    }
}

#[test]
fn a_create_that_commits_after_the_timeout_is_swept_by_the_same_run() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    // The server commits the first create 1.5 s in; the client gives up after 1 s, finds no
    // such token yet, and creates another under a fresh name.
    w.sb.add_fault(FaultRule {
        api: Api::Seqera,
        method: "POST".into(),
        path: PathMatch::Suffix("/tokens".into()),
        when: Occurrence::Nth(1),
        action: FaultAction::Delay(Duration::from_millis(1500)),
    });
    let run = w.run(&[("INPUT_TIMEOUT", "1s")], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let in_secret = w.live_token_in(&World::repo_scope(), SECRET);
    assert_eq!(
        w.live_managed().iter().map(|t| t.id).collect::<Vec<_>>(),
        [in_secret.id],
        "no orphan"
    );
    assert_eq!(
        w.sb.tokens()
            .iter()
            .filter(|t| t.name.starts_with("ci-"))
            .count(),
        3,
        "first run, late commit, this run"
    );
    assert!(run.all().contains("committed late"), "{}", run.all());
    w.assert_no_leak(&run, false);
}

#[test]
fn many_revocations_stay_under_seqeras_rate_limit() {
    let w = World::new();
    for m in 1..=9 {
        w.sb.create_token(w.user, &format!("ci-202501{m:02}-000000"));
    }
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("revoked-token-ids").split(',').count(), 9);
    let at: Vec<_> =
        w.sb.requests()
            .into_iter()
            .filter(|r| r.method == "DELETE")
            .map(|r| r.received_at)
            .collect();
    assert_eq!(at.len(), 9);
    // Seqera allows about 20 requests/s per token: 9 revocations take at least 8 × 50 ms.
    let span = *at.iter().max().unwrap() - *at.iter().min().unwrap();
    assert!(
        span >= Duration::from_millis(390),
        "9 revocations within {span:?}"
    );
    assert_eq!(w.live_managed().len(), 1);
}

#[test]
fn a_new_token_of_another_user_fails_verification_and_is_rolled_back() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    let old = w.live_token_in(&World::repo_scope(), SECRET);
    // The verification call (2nd user-info) answers for somebody else.
    w.sb.add_fault(FaultRule {
        api: Api::Seqera,
        method: "GET".into(),
        path: PathMatch::Suffix("/user-info".into()),
        when: Occurrence::Nth(2),
        action: FaultAction::Status {
            status: 200,
            headers: vec![],
            body: r#"{"user":{"id":999,"userName":"mallory"}}"#.into(),
        },
    });
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.all().contains("belongs to user id 999"),
        "{}",
        run.all()
    );
    assert_eq!(
        w.live_managed().iter().map(|t| t.id).collect::<Vec<_>>(),
        [old.id]
    );
    assert_eq!(w.live_token_in(&World::repo_scope(), SECRET).id, old.id);
}

#[test]
fn a_revoke_answered_404_counts_as_already_revoked() {
    let w = World::new();
    let gone = w.sb.create_token(w.user, "ci-20250101-000000");
    w.sb.add_fault(always(
        Api::Seqera,
        "DELETE",
        "/tokens/",
        FaultAction::status(404),
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("revoked-token-ids"), gone.id.to_string());
    assert!(run.all().contains("already gone"), "{}", run.all());
}
