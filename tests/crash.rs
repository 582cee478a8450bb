//! The process dies mid-rotation (SIGKILL: no cleanup code runs) — SPEC §5 "Invariant":
//! whatever fails and wherever the process dies, every target holds a token that is still
//! valid, and a later run cleans up what the interrupted one left behind.
//!
//! Each test holds one answer back with a `Delay` fault, waits (polling the fakes' request
//! log) until the run has reached the point of interest, kills the binary, checks the
//! invariant, then runs the tool again normally.

mod common;

use std::time::Duration;

use common::*;

/// Long enough that the delayed answer never arrives before the kill.
const HOLD: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_secs(30);

fn scope() -> SecretScope {
    World::repo_scope()
}

/// One successful run, so the secret holds a previous token; returns it.
fn rotated_once(w: &World) -> SeqeraToken {
    let setup = w.run(&[], &[]);
    assert_eq!(setup.code, 0, "setup run: {setup:#?}");
    w.sb.clear_requests();
    w.live_token_in(&scope(), SECRET)
}

/// Whether a request `method` on a path ending with `suffix` was answered with a status.
fn answered(w: &World, method: &str, suffix: &str) -> bool {
    w.sb.requests()
        .iter()
        .any(|r| r.method == method && r.path.ends_with(suffix) && r.status.is_some())
}

fn received(w: &World, method: &str, suffix: &str) -> bool {
    w.sb.requests()
        .iter()
        .any(|r| r.method == method && r.path.ends_with(suffix))
}

/// Kills the process (SIGKILL on Unix) and checks it really died of it.
fn kill(child: Spawned) -> Run {
    let mut child = child;
    child.child.kill().expect("kill");
    let run = child.finish();
    assert_ne!(
        run.code, 0,
        "the process was killed, not finished: {run:#?}"
    );
    run
}

/// The run after the crash: exit 0, a live token in the secret, and it is the only live
/// managed token (everything the killed run left behind was revoked).
fn recover(w: &World, crashed: &Run) -> SeqeraToken {
    w.sb.clear_faults();
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 0, "the run after the crash: {run:#?}");
    let now = w.live_token_in(&scope(), SECRET);
    assert_eq!(
        w.live_managed_ids(),
        [now.id],
        "orphans after recovery: {:?}",
        w.live_managed()
    );
    w.assert_no_leak(&run, false);
    w.assert_no_leak(crashed, false);
    now
}

#[test]
fn killed_after_create_before_verify() {
    let w = World::new();
    let prev = rotated_once(&w);
    // Hold the verification (the second user-info) back; kill once the create was answered.
    w.sb.add_fault(FaultRule::seqera(
        "GET",
        PathMatch::Exact("/api/user-info".into()),
        Occurrence::Nth(2),
        FaultAction::Delay(HOLD),
    ));
    let child = w.spawn(&[], &[]);
    wait_until(DEADLINE, "the create was answered and verify sent", || {
        answered(&w, "POST", "/api/tokens")
            && w.sb
                .requests()
                .iter()
                .filter(|r| r.path == "/api/user-info")
                .count()
                >= 2
    });
    let crashed = kill(child);
    // A new token exists, but the secret still holds the previous one, which is still live.
    let created: Vec<SeqeraToken> = w
        .live_managed()
        .into_iter()
        .filter(|t| t.id > prev.id)
        .collect();
    assert_eq!(created.len(), 1, "{:?}", w.live_managed());
    assert_eq!(w.live_token_in(&scope(), SECRET).id, prev.id);
    let now = recover(&w, &crashed);
    assert!(now.id > created[0].id);
    assert!(!w.sb.is_live(&created[0].value), "the orphan was revoked");
    assert!(!w.sb.is_live(&prev.value));
}

#[test]
fn killed_after_store_before_revoke() {
    let w = World::new();
    let prev = rotated_once(&w);
    // Hold the revoke of the previous token back; kill once the secret write was answered.
    w.sb.add_fault(FaultRule::seqera(
        "DELETE",
        PathMatch::Prefix("/api/tokens/".into()),
        Occurrence::Nth(1),
        FaultAction::Delay(HOLD),
    ));
    let child = w.spawn(&[], &[]);
    wait_until(
        DEADLINE,
        "the secret write was answered and the revoke sent",
        || answered(&w, "PUT", SECRET) && received(&w, "DELETE", &prev.id.to_string()),
    );
    let crashed = kill(child);
    // The secret already holds the new, live token; the previous one is live too.
    let stored = w.live_token_in(&scope(), SECRET);
    assert!(stored.id > prev.id);
    assert!(w.sb.is_live(&prev.value));
    assert_eq!(w.live_managed_ids(), [prev.id, stored.id]);
    let now = recover(&w, &crashed);
    assert!(now.id > stored.id);
    assert!(!w.sb.is_live(&prev.value) && !w.sb.is_live(&stored.value));
}

#[test]
fn killed_while_the_create_is_in_flight() {
    let w = World::new();
    let prev = rotated_once(&w);
    // The create is performed by the server after the client is gone: a token nobody holds.
    w.sb.add_fault(FaultRule::seqera(
        "POST",
        PathMatch::Exact("/api/tokens".into()),
        Occurrence::Nth(1),
        FaultAction::Delay(Duration::from_millis(500)),
    ));
    let child = w.spawn(&[], &[]);
    wait_until(DEADLINE, "the create was sent", || {
        received(&w, "POST", "/api/tokens")
    });
    let crashed = kill(child);
    wait_until(DEADLINE, "the server performed the create", || {
        answered(&w, "POST", "/api/tokens")
    });
    let orphans: Vec<SeqeraToken> = w
        .live_managed()
        .into_iter()
        .filter(|t| t.id > prev.id)
        .collect();
    assert_eq!(orphans.len(), 1, "{:?}", w.live_managed());
    assert_eq!(w.live_token_in(&scope(), SECRET).id, prev.id);
    recover(&w, &crashed);
    assert!(!w.sb.is_live(&orphans[0].value));
}

#[test]
fn killed_while_the_secret_write_is_in_flight() {
    let w = World::new();
    let prev = rotated_once(&w);
    // The write lands after the client is gone: either token in the secret is live.
    w.sb.add_fault(FaultRule::github(
        "PUT",
        PathMatch::Suffix(format!("/{SECRET}")),
        Occurrence::Nth(1),
        // Long enough for the kill and the check below to come first.
        FaultAction::Delay(Duration::from_secs(2)),
    ));
    let child = w.spawn(&[], &[]);
    wait_until(DEADLINE, "the secret write was sent", || {
        received(&w, "PUT", SECRET)
    });
    let crashed = kill(child);
    assert_eq!(w.live_token_in(&scope(), SECRET).id, prev.id);
    wait_until(DEADLINE, "the server performed the write", || {
        answered(&w, "PUT", SECRET)
    });
    let stored = w.live_token_in(&scope(), SECRET);
    assert!(stored.id > prev.id);
    assert!(w.sb.is_live(&prev.value));
    recover(&w, &crashed);
}
