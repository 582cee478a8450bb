//! Rotation over months (SPEC §5 steps 3 and 7): grace periods for running workflows and
//! drift repair. The real binary against the sandbox, whose clock is moved forward
//! (`advance_clock`) instead of waiting; assertions on live tokens and secret contents.

mod common;

use std::time::Duration;

use common::*;

const HOUR: Duration = Duration::from_secs(3600);

fn grace<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![("INPUT_GRACE-PERIOD", "6h")];
    v.extend_from_slice(extra);
    v
}

/// A scheduled run that is not due by age (`min-age` 1 day).
const NOT_DUE: (&str, &str) = ("INPUT_MIN-AGE", "1d");

fn deletes(w: &World) -> Vec<(String, Option<String>)> {
    w.sb.requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| (r.path, r.authorization))
        .collect()
}

#[test]
fn the_previous_token_stays_live_until_its_successor_is_grace_period_old() {
    let w = World::new();
    assert_eq!(w.run(&grace(&[]), &[]).code, 0);
    let a = w.live_managed()[0].clone();
    // The rotation: B replaces A, and A is retiring, not revoked.
    let run = w.run(&grace(&[]), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let b = w.live_token_in(&World::repo_scope(), SECRET);
    assert_ne!(a.id, b.id);
    assert_eq!(w.live_managed_ids(), [a.id, b.id]);
    assert_eq!(run.out("revoked-token-ids"), "");
    assert!(
        run.stdout
            .contains(&format!("Retiring `{}` (id {})", a.name, a.id)),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("last used"), "{}", run.stdout);
    assert!(run.summary.contains("Retiring token"), "{}", run.summary);
    w.assert_no_leak(&run, false);

    // A consumer that never got B keeps using A (here: `list` with A), a few seconds later
    // (uses are compared in whole seconds).
    w.sb.advance_clock(Duration::from_secs(3));
    assert_eq!(
        w.run(
            &[("INPUT_SEQERA-ACCESS-TOKEN", a.value.as_str())],
            &["list"]
        )
        .code,
        0
    );

    // One hour later, a scheduled run that is not due: A is kept, nothing changes.
    w.sb.advance_clock(HOUR);
    w.sb.clear_requests();
    let run = w.run(&grace(&[NOT_DUE]), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("rotated"), "false");
    assert_eq!(run.out("revoked-token-ids"), "");
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    assert!(w.sb.is_live(&a.value));
    assert!(run.stdout.contains("Retiring"), "{}", run.stdout);

    // Seven hours after the rotation, a dry run only says what it would do …
    w.sb.advance_clock(6 * HOUR);
    w.sb.clear_requests();
    let run = w.run(&grace(&[NOT_DUE, ("INPUT_DRY-RUN", "true")]), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    assert!(run.stdout.contains("would revoke"), "{}", run.stdout);
    assert_eq!(run.outputs.keys().collect::<Vec<_>>(), ["rotated"]);

    // … and the scheduled run revokes A with the access token, exit 0, rotated=false.
    let run = w.run(&grace(&[NOT_DUE]), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("rotated"), "false");
    assert_eq!(run.out("revoked-token-ids"), a.id.to_string());
    assert!(!w.sb.is_live(&a.value));
    assert_eq!(w.live_managed_ids(), [b.id]);
    assert_eq!(w.live_token_in(&World::repo_scope(), SECRET).id, b.id);
    assert_eq!(
        deletes(&w),
        [(
            format!("/api/tokens/{}", a.id),
            Some(format!("Bearer {}", w.access.value))
        )]
    );
    // A was used after B existed: someone did not get the new value, and is told so.
    assert!(
        run.stdout.contains("::warning::") && run.stdout.contains("after its successor"),
        "{}",
        run.stdout
    );
    assert!(run.summary.contains(&a.id.to_string()), "{}", run.summary);
    w.assert_no_leak(&run, false);
}

#[test]
fn a_rotating_run_revokes_retiring_tokens_whose_time_has_come() {
    let w = World::new();
    assert_eq!(w.run(&grace(&[]), &[]).code, 0);
    let a = w.live_managed()[0].clone();
    assert_eq!(w.run(&grace(&[]), &[]).code, 0);
    let b = w.live_managed()[1].clone();
    assert_eq!(w.live_managed_ids(), [a.id, b.id]);
    w.sb.advance_clock(7 * HOUR);
    // Rotation C: A's successor B is 7 h old, so A goes (with C); B is retiring now.
    let run = w.run(&grace(&[]), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let c = w.live_token_in(&World::repo_scope(), SECRET);
    assert_eq!(run.out("revoked-token-ids"), a.id.to_string());
    assert_eq!(w.live_managed_ids(), [b.id, c.id]);
    let (_, auth) = deletes(&w).pop().unwrap();
    assert_eq!(auth, Some(format!("Bearer {}", c.value)));
}

#[test]
fn self_rotation_with_a_grace_period() {
    let w = World::new();
    // The access token is the managed token the secret holds.
    let old = w.sb.create_token(w.user, "ci-20250101-000000");
    w.sb.put_secret_plain(&World::repo_scope(), SECRET, &old.value, None, &[]);
    let as_old = ("INPUT_SEQERA-ACCESS-TOKEN", old.value.as_str());
    let run = w.run(&grace(&[as_old]), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let new = w.live_token_in(&World::repo_scope(), SECRET);
    assert!(
        w.sb.is_live(&old.value),
        "the replaced access token is retiring"
    );

    // A run queued before the rotation still has the old value: at 1 h it keeps itself …
    w.sb.advance_clock(HOUR);
    let run = w.run(&grace(&[as_old, NOT_DUE]), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(w.sb.is_live(&old.value));
    // … and at 7 h it revokes itself, exit 0.
    w.sb.advance_clock(6 * HOUR);
    w.sb.clear_requests();
    let run = w.run(&grace(&[as_old, NOT_DUE]), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("revoked-token-ids"), old.id.to_string());
    assert!(!w.sb.is_live(&old.value));
    assert_eq!(w.live_managed_ids(), [new.id]);
    // Its own use is this run's, not a consumer left behind.
    assert!(
        !run.stdout.contains("after its successor"),
        "{}",
        run.stdout
    );
    // The next scheduled run uses the secret's value and is simply not due.
    let as_new = ("INPUT_SEQERA-ACCESS-TOKEN", new.value.as_str());
    let run = w.run(&grace(&[as_new, NOT_DUE]), &[]);
    assert_eq!((run.code, run.out("rotated")), (0, "false"), "{run:#?}");
    assert!(w.sb.is_live(&new.value));
    w.assert_no_leak(&run, false);
}

#[test]
fn a_not_due_run_revokes_the_access_token_itself_last() {
    let w = World::new();
    let t1 = w.sb.create_token(w.user, "ci-20250101-000000");
    let t2 = w.sb.create_token(w.user, "ci-20250201-000000");
    let t3 = w.sb.create_token(w.user, "ci-20250301-000000");
    w.sb.put_secret_plain(&World::repo_scope(), SECRET, &t3.value, None, &[]);
    // The record a complete rotation to t3 would have left: the evidence to retire by.
    w.set_record(&t3, &["repo:octo/app"]);
    w.sb.advance_clock(7 * HOUR);
    let run = w.run(
        &grace(&[("INPUT_SEQERA-ACCESS-TOKEN", t2.value.as_str()), NOT_DUE]),
        &[],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("rotated"), "false");
    assert_eq!(run.out("revoked-token-ids"), format!("{},{}", t1.id, t2.id));
    let bearer = Some(format!("Bearer {}", t2.value));
    assert_eq!(
        deletes(&w),
        [
            (format!("/api/tokens/{}", t1.id), bearer.clone()),
            (format!("/api/tokens/{}", t2.id), bearer)
        ]
    );
    assert_eq!(w.live_managed_ids(), [t3.id]);
    w.assert_no_leak(&run, false);
}

#[test]
fn keep_previous_and_grace_period_together() {
    let w = World::new();
    let both = grace(&[("INPUT_KEEP-PREVIOUS", "1")]);
    for _ in 0..3 {
        assert_eq!(w.run(&both, &[]).code, 0);
    }
    // A (retiring: its successor B is seconds old), B (kept), C (newest).
    let ids = w.live_managed_ids();
    assert_eq!(ids.len(), 3, "{ids:?}");
    w.sb.advance_clock(7 * HOUR);
    let mut not_due = both.clone();
    not_due.push(NOT_DUE);
    let run = w.run(&not_due, &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("revoked-token-ids"), ids[0].to_string());
    // B is kept by keep-previous whatever its age.
    assert_eq!(w.live_managed_ids(), ids[1..]);
    // A fourth rotation: C becomes the kept one, B's successor C is 7 h old, so B goes.
    let run = w.run(&both, &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("revoked-token-ids"), ids[1].to_string());
    let live = w.live_managed_ids();
    assert_eq!(live.len(), 2);
    assert_eq!(live[0], ids[2]);
}

#[test]
fn a_new_target_gets_the_token_on_the_next_scheduled_run() {
    let w = World::new();
    w.sb.add_repo(OWNER, "other");
    let one = "repo:octo/app";
    let two = "repo:octo/app\nrepo:octo/other";
    assert_eq!(w.run(&[("INPUT_TARGETS", one)], &[]).code, 0);
    let first = w.live_token_in(&World::repo_scope(), SECRET);
    // min-age is not reached, but octo/other has no secret: the rotation is due.
    let run = w.run(&[("INPUT_TARGETS", two), NOT_DUE], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("rotated"), "true");
    assert!(
        run.stdout.contains("repo:octo/other holds no value"),
        "{}",
        run.stdout
    );
    let new = w.live_token_in(&World::repo_scope(), SECRET);
    assert_ne!(new.id, first.id);
    let other = SecretScope::repo(OWNER, "other");
    assert_eq!(w.live_token_in(&other, SECRET).id, new.id);
    // With every target current, a scheduled run changes nothing at all.
    w.sb.clear_requests();
    let run = w.run(&[("INPUT_TARGETS", two), NOT_DUE], &[]);
    assert_eq!((run.code, run.out("rotated")), (0, "false"), "{run:#?}");
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    // It did read both secrets' metadata.
    let reads =
        w.sb.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(&format!("/secrets/{SECRET}")))
            .count();
    assert_eq!(reads, 2);
    w.assert_no_leak(&run, false);
}

#[test]
fn a_stale_target_makes_the_rotation_due_and_says_why() {
    let w = World::new();
    w.sb.add_repo(OWNER, "other");
    let two = "repo:octo/app\nrepo:octo/other";
    assert_eq!(w.run(&[("INPUT_TARGETS", two)], &[]).code, 0);
    let first = w.live_token_in(&World::repo_scope(), SECRET);
    // As if a partial rotation had left octo/other with an older value.
    let other = SecretScope::repo(OWNER, "other");
    w.sb.backdate_secret(&other, SECRET, HOUR);
    let run = w.run(&[("INPUT_TARGETS", two), NOT_DUE], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("rotated"), "true");
    assert!(
        run.stdout.contains("repo:octo/other was last updated") && run.stdout.contains(&first.name),
        "{}",
        run.stdout
    );
    let new = w.live_token_in(&other, SECRET);
    assert_ne!(new.id, first.id);
    assert_eq!(w.live_token_in(&World::repo_scope(), SECRET).id, new.id);
}

#[test]
fn force_skips_the_metadata_reads() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    w.sb.clear_requests();
    let run = w.run(&[NOT_DUE, ("INPUT_FORCE", "true")], &[]);
    assert_eq!((run.code, run.out("rotated")), (0, "true"), "{run:#?}");
    let reads =
        w.sb.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(&format!("/secrets/{SECRET}")))
            .count();
    assert_eq!(reads, 0);
}
