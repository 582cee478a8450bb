//! Issue 15: evidence, not clocks. A token is revoked only on evidence that no target holds
//! it: this run wrote a newer token to every target, or the record says an earlier run did.
//! Each defect of the review is pinned here on the real binary, then the record (SPEC §5,
//! *The record*): when it is written, what it says, what runs that are not due may do with
//! it, and what `status` makes of it.

mod common;

use std::time::Duration;

use common::*;

const RECORD: &str = "SEQERA_TOKEN_ROTATE_CI";

fn repo() -> SecretScope {
    World::repo_scope()
}

fn put_rule(when: Occurrence, action: FaultAction) -> FaultRule {
    FaultRule::github(
        "PUT",
        PathMatch::Prefix(repo().secrets_path()),
        when,
        action,
    )
}

/// A 422 "about the key", as GitHub answers a write sealed for a replaced public key.
fn key_rejected() -> FaultAction {
    FaultAction::Status {
        status: 422,
        headers: Vec::new(),
        body: serde_json::json!({
            "message": "Invalid request.\n\nkey_id does not match the current public key",
            "documentation_url": "https://docs.github.com/rest/actions/secrets"
        })
        .to_string(),
    }
}

/// The record the run left, parsed.
fn record(w: &World) -> Option<serde_json::Value> {
    w.sb.variable(OWNER, REPO, RECORD)
        .map(|v| serde_json::from_str(&v).expect("the record is JSON"))
}

/// Every target of the world holds a live token (the invariant, after any run).
fn assert_target_live(w: &World) -> SeqeraToken {
    w.live_token_in(&repo(), SECRET)
}

// ----- the defects of the review -----

// Defect 1: a proxy's error page stamped 30 s ahead, on a public-key read that was retried,
// made GitHub's "clock" run ahead of `updated_at`: a write that GitHub committed and answered
// 502 looked "not written", and the new token was revoked while the secret held it.
#[test]
fn a_date_ahead_of_the_metadata_clock_never_rolls_back_a_committed_write() {
    let w = World::new();
    let ahead = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
    w.sb.add_fault(FaultRule::github(
        "GET",
        PathMatch::Suffix("/public-key".into()),
        Occurrence::Nth(1),
        FaultAction::Status {
            status: 503,
            headers: vec![("date".into(), ahead)],
            body: "<html>upstream unavailable</html>".into(),
        },
    ));
    w.sb.add_fault(put_rule(Occurrence::Always, FaultAction::perform_then(502)));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let held = assert_target_live(&w);
    assert!(
        held.name.starts_with("ci-"),
        "the secret holds the new token"
    );
    assert!(w.sb.is_live(&w.access.value), "nothing was revoked");
    assert!(
        run.all()
            .contains("holds the new token or its previous one"),
        "{run:#?}"
    );
    assert_eq!(record(&w), None, "no record before every target is written");
    w.assert_no_leak(&run, false);
}

// Defect 3: a write committed behind a 502, its retry answered 422 about the key, and the
// retry after the key refetch was clearly refused: "may have been stored" was forgotten and
// the new token rolled back while the secret held it.
#[test]
fn may_have_been_stored_survives_a_422_about_the_key_and_a_clean_refusal() {
    let w = World::new();
    w.sb.add_fault(put_rule(Occurrence::Nth(1), FaultAction::perform_then(502)));
    w.sb.add_fault(put_rule(Occurrence::Nth(2), key_rejected()));
    w.sb.add_fault(put_rule(Occurrence::Nth(3), FaultAction::status(403)));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let held = assert_target_live(&w);
    assert!(
        held.name.starts_with("ci-"),
        "the first attempt stored the new token"
    );
    assert!(run.all().contains("no clear answer"), "{run:#?}");
    // The next run repairs: every target written, the record written, the old ones revoked.
    let repair = w.run(&[], &[]);
    assert_eq!(repair.code, 0, "{repair:#?}");
    let now = assert_target_live(&w);
    let live: Vec<u64> = w.live_managed().iter().map(|t| t.id).collect();
    assert_eq!(live, vec![now.id]);
    assert_eq!(record(&w).unwrap()["tokenId"], now.id);
}

// Defect 3, the other way in: the key refetch itself fails after an unclear attempt.
#[test]
fn may_have_been_stored_survives_a_failed_key_refetch() {
    let w = World::new();
    w.sb.add_fault(put_rule(Occurrence::Nth(1), FaultAction::PerformThenDrop));
    w.sb.add_fault(put_rule(Occurrence::Nth(2), key_rejected()));
    w.sb.add_fault(FaultRule::github(
        "GET",
        PathMatch::Suffix("/public-key".into()),
        Occurrence::Nth(2),
        FaultAction::status(404),
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(assert_target_live(&w).name.starts_with("ci-"));
}

// Defect 4: a write that commits after the old "second look" (timeout + up to 10 s): judged
// not written and rolled back, then it landed with the revoked token.
#[test]
fn a_write_that_commits_late_is_never_rolled_back() {
    let w = World::new();
    // The first attempt commits 2.5 s later; the client gives up at 1 s, and every retry is
    // clearly refused. Only the late commit stores anything.
    w.sb.add_fault(put_rule(
        Occurrence::Nth(1),
        FaultAction::Delay(Duration::from_millis(2500)),
    ));
    w.sb.add_fault(put_rule(Occurrence::Always, FaultAction::status(503)));
    let run = w.run(&[("INPUT_TIMEOUT", "1s")], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    std::thread::sleep(Duration::from_millis(2000));
    let held = assert_target_live(&w);
    assert!(
        held.name.starts_with("ci-"),
        "the late commit stored the new token"
    );
    assert!(w.sb.is_live(&w.access.value));
}

// Defect 2: a managed token newer than the one the targets hold (a create that committed late
// and whose sweep could not run), stamped no later than the secret's last write: the
// next `min-age` run found the target "current" by timestamps, revoked the token the secret
// held, and stayed "not due". With the record the run is due; without one, it revokes nothing.
#[test]
fn a_not_due_run_never_revokes_the_token_the_targets_hold() {
    for keep_record in [true, false] {
        let w = World::new();
        let state = if keep_record { "" } else { "none" };
        let first = w.run(&[("INPUT_STATE-VARIABLE", state)], &[]);
        assert_eq!(first.code, 0, "{first:#?}");
        let held = assert_target_live(&w);
        // The orphan: newer by id, but by the clocks created before the secret was written.
        let orphan = w.sb.create_token(w.user, "ci-20250101-000000");
        w.sb.backdate_token(orphan.id, Duration::from_secs(2));
        let run = w.run(
            &[("INPUT_MIN-AGE", "1h"), ("INPUT_STATE-VARIABLE", state)],
            &[],
        );
        assert_eq!(run.code, 0, "record {keep_record}: {run:#?}");
        let now = assert_target_live(&w);
        if keep_record {
            assert!(run.all().contains("a run did not finish"), "{run:#?}");
            assert!(now.id > orphan.id, "the run was due and rotated");
            assert!(!w.sb.is_live(&held.value) && !w.sb.is_live(&orphan.value));
        } else {
            assert_eq!(now.id, held.id, "not due: nothing written");
            assert!(
                w.sb.is_live(&held.value),
                "without a record nothing is retired"
            );
            assert_eq!(run.out("revoked-token-ids"), "");
        }
        w.assert_no_leak(&run, false);
    }
}

// ----- the record -----

#[test]
fn the_record_is_written_after_every_target_and_says_what_they_hold() {
    let w = World::new();
    w.sb.add_repo(OWNER, "lib");
    let targets = "repo:octo/lib\nrepo:octo/app";
    let run = w.run(&[("INPUT_TARGETS", targets)], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let held = assert_target_live(&w);
    let r = record(&w).expect("a record");
    assert_eq!(r["tokenId"], held.id);
    assert!(
        run.summary.contains(&format!(
            "| Record | written: every target holds id {} |",
            held.id
        )),
        "{}",
        run.summary
    );
    assert_eq!(r["tokenName"], held.name.as_str());
    assert_eq!(r["count"], 2);
    // sha256 of the sorted labels joined by a newline.
    let expected = {
        use std::process::{Command, Stdio};
        let mut c = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        c.stdin
            .take()
            .unwrap()
            .write_all(b"repo:octo/app\nrepo:octo/lib")
            .unwrap();
        let out = c.wait_with_output().unwrap();
        format!(
            "sha256:{}",
            String::from_utf8(out.stdout)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
        )
    };
    assert_eq!(r["targets"], expected.as_str());
    assert!(time::OffsetDateTime::parse(
        r["at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339
    )
    .is_ok());
    // Request order: the record's write comes after every secret write.
    let reqs = w.sb.requests();
    let last_put = reqs
        .iter()
        .rposition(|r| r.method == "PUT" && r.path.contains("/actions/secrets/"))
        .unwrap();
    let record_write = reqs
        .iter()
        .position(|r| r.method != "GET" && r.path.contains("/actions/variables"))
        .unwrap();
    assert!(record_write > last_put, "record before a secret write");
    // A second rotation updates it (PATCH) with the new token.
    let second = w.run(&[("INPUT_TARGETS", targets)], &[]);
    assert_eq!(second.code, 0, "{second:#?}");
    assert_eq!(record(&w).unwrap()["tokenId"], assert_target_live(&w).id);
    assert!(w.mutations().iter().any(|m| m.starts_with("PATCH ")));
}

#[test]
fn no_record_is_written_when_a_target_is_not_surely_written() {
    let w = World::new();
    w.sb.add_repo(OWNER, "lib");
    let first = w.run(&[], &[]);
    assert_eq!(first.code, 0);
    let before = record(&w).unwrap();
    w.sb.add_fault(FaultRule::github(
        "PUT",
        PathMatch::Prefix(SecretScope::repo(OWNER, "lib").secrets_path()),
        Occurrence::Always,
        FaultAction::status(403),
    ));
    let run = w.run(&[("INPUT_TARGETS", "repo:octo/app\nrepo:octo/lib")], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(
        record(&w).unwrap(),
        before,
        "the record still names the older token"
    );
    assert!(
        run.all().contains("keeps its previous, still live token"),
        "{run:#?}"
    );
}

#[test]
fn a_not_due_run_retires_only_tokens_older_than_the_record() {
    let w = World::new();
    let grace = [("INPUT_GRACE-PERIOD", "1h")];
    let a = w.run(&grace, &[]);
    assert_eq!(a.code, 0, "{a:#?}");
    let token_a = assert_target_live(&w);
    let b = w.run(
        &[("INPUT_GRACE-PERIOD", "1h"), ("INPUT_FORCE", "true")],
        &[],
    );
    assert_eq!(b.code, 0, "{b:#?}");
    let token_b = assert_target_live(&w);
    assert!(w.sb.is_live(&token_a.value), "A is retiring");
    // An hour later A's grace is over; B is what the record names. Not due (min-age 1d).
    w.sb.advance_clock(Duration::from_secs(3700));
    let c = w.run(
        &[("INPUT_GRACE-PERIOD", "1h"), ("INPUT_MIN-AGE", "1d")],
        &[],
    );
    assert_eq!(c.code, 0, "{c:#?}");
    assert_eq!(c.out("rotated"), "false");
    assert_eq!(c.out("revoked-token-ids"), token_a.id.to_string());
    assert!(!w.sb.is_live(&token_a.value));
    assert!(
        w.sb.is_live(&token_b.value),
        "the record's token is never retired"
    );
    assert_eq!(assert_target_live(&w).id, token_b.id);
}

#[test]
fn without_the_variables_permission_one_warning_and_a_good_rotation() {
    let w = World::new();
    w.sb.set_variables_access(GH_TOKEN, false);
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let warnings: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::warning") && l.contains("Variables: Read and write"))
        .collect();
    assert_eq!(warnings.len(), 1, "{run:#?}");
    let held = assert_target_live(&w);
    let live: Vec<u64> = w.live_managed().iter().map(|t| t.id).collect();
    assert_eq!(live, vec![held.id]);
    assert_eq!(record(&w), None);
    // The next rotation, still without the permission, works the same way.
    let again = w.run(&[], &[]);
    assert_eq!(again.code, 0, "{again:#?}");
    let live: Vec<u64> = w.live_managed().iter().map(|t| t.id).collect();
    assert_eq!(live, vec![assert_target_live(&w).id]);
}

#[test]
fn a_dead_recorded_token_makes_status_critical_and_the_next_run_due() {
    let w = World::new();
    let first = w.run(&[], &[]);
    assert_eq!(first.code, 0);
    // A second rotation keeps the first token live (keep-previous), so a young managed token
    // stays when the recorded one goes: only the record can tell the run is due.
    let second = w.run(&[("INPUT_KEEP-PREVIOUS", "1")], &[]);
    assert_eq!(second.code, 0, "{second:#?}");
    let held = assert_target_live(&w);
    // Someone revokes the token every target holds.
    w.sb.revoke_token(held.id);
    let status = w.run(&[], &["status", "--json"]);
    assert_eq!(status.code, 1, "{status:#?}");
    let doc: serde_json::Value = serde_json::from_str(
        status
            .stdout
            .lines()
            .find(|l| l.starts_with('{'))
            .expect("a JSON document"),
    )
    .unwrap();
    assert_eq!(doc["record"]["tokenId"], held.id);
    assert_eq!(doc["record"]["live"], false);
    let first_problem = doc["problems"][0].as_str().unwrap();
    assert!(first_problem.starts_with("critical:"), "{doc}");
    // A min-age run is due although the (dead) token is young, and repairs.
    let run = w.run(
        &[("INPUT_MIN-AGE", "1d"), ("INPUT_KEEP-PREVIOUS", "1")],
        &[],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.all().contains("no longer live"), "{run:#?}");
    let now = assert_target_live(&w);
    assert!(now.id > held.id);
    let healthy = w.run(&[("INPUT_KEEP-PREVIOUS", "1")], &["status"]);
    assert_eq!(healthy.code, 0, "{healthy:#?}");
}

#[test]
fn a_dry_run_writes_no_record() {
    let w = World::new();
    let run = w.run(&[("INPUT_DRY-RUN", "true")], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(record(&w), None);
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
}

#[test]
fn revoke_keeps_the_recorded_token_and_every_newer_one() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    let a = assert_target_live(&w);
    assert_eq!(w.run(&[("INPUT_KEEP-PREVIOUS", "1")], &[]).code, 0);
    let b = assert_target_live(&w);
    // A token newer than the record's: a run that did not finish may have written it.
    let c = w.sb.create_token(w.user, "ci-20250101-000000");
    let run = w.run(&[], &["revoke", "--keep", "0"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.all()
            .contains("it and every newer managed token are kept"),
        "{run:#?}"
    );
    assert!(!w.sb.is_live(&a.value), "older than the record: revoked");
    assert!(w.sb.is_live(&b.value) && w.sb.is_live(&c.value));
    assert_eq!(assert_target_live(&w).id, b.id);
    w.assert_no_leak(&run, false);
}

// `revoke` reads the record from `repository`, `state-variable` and the GitHub settings
// alone: a target's credential that `revoke` does not need (here GitLab's) used to make it
// skip the record without a word, and revoke the token the targets hold.
#[test]
fn revoke_reads_the_record_whatever_the_targets_need() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    let held = assert_target_live(&w);
    // A newer token from a run that did not finish: `--keep 1` keeps it, not `held`.
    let newer = w.sb.create_token(w.user, "ci-20250101-000000");
    let targets = format!("repo:{OWNER}/{REPO}\ngitlab:grp/app");
    let run = w.run(&[("INPUT_TARGETS", &targets)], &["revoke", "--keep", "1"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.all()
            .contains("it and every newer managed token are kept"),
        "{run:#?}"
    );
    assert!(w.sb.is_live(&held.value) && w.sb.is_live(&newer.value));
    assert_eq!(assert_target_live(&w).id, held.id);
    w.assert_no_leak(&run, false);
}

// Without a GitHub token `revoke` cannot read the record: it says so, once, naming the
// variable and the permission, and does what --keep says (SPEC §6 needs only Seqera).
#[test]
fn revoke_without_a_github_token_says_the_record_is_not_read() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    w.sb.clear_requests();
    let run = w.run(&[("INPUT_GITHUB-TOKEN", "")], &["revoke", "--keep", "1"]);
    assert_eq!(run.code, 0, "{run:#?}");
    let warnings: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::warning") && l.contains("is not read"))
        .collect();
    assert_eq!(warnings.len(), 1, "{run:#?}");
    assert!(
        warnings[0].contains(RECORD) && warnings[0].contains("Variables: Read and write"),
        "{run:#?}"
    );
    assert!(
        !w.sb
            .requests()
            .iter()
            .any(|r| r.path.contains("/actions/variables")),
        "no GitHub request without a GitHub token"
    );
    w.assert_no_leak(&run, false);
}

// A variable that holds something else than a record: runs go on without one (one
// warning), and the next complete rotation replaces it with a record, as the warning says.
#[test]
fn a_variable_holding_no_record_is_replaced_by_the_next_complete_rotation() {
    let w = World::new();
    w.sb.set_variable(OWNER, REPO, RECORD, "not a record");
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("::warning") && l.contains("does not hold a record")),
        "{run:#?}"
    );
    let held = assert_target_live(&w);
    let r = record(&w).expect("replaced by a record");
    assert_eq!(r["tokenId"], held.id, "{r}");
    // And from then on it is the record: the next run finds it.
    let next = w.run(&[("INPUT_MIN-AGE", "1h")], &[]);
    assert_eq!(next.code, 0, "{next:#?}");
    assert!(!next.all().contains("does not hold a record"), "{next:#?}");
    assert!(
        next.all().contains(&format!("(id {})", held.id)),
        "{next:#?}"
    );
    w.assert_no_leak(&next, false);
}

// The record's first write is a POST; retried after a 502 whose attempt had landed, it is
// answered 409 "already exists". That used to be a warning ("the record cannot be written")
// and made the next run due; the same value now goes by PATCH.
#[test]
fn a_record_post_that_landed_before_its_retry_is_not_a_failure() {
    let w = World::new();
    w.sb.add_fault(FaultRule::github(
        "POST",
        PathMatch::Prefix(format!("/repos/{OWNER}/{REPO}/actions/variables")),
        Occurrence::Nth(1),
        FaultAction::perform_then(502),
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(!run.stdout.contains("::warning"), "{run:#?}");
    let held = assert_target_live(&w);
    assert_eq!(record(&w).expect("a record")["tokenId"], held.id);
    let writes: Vec<String> = w
        .mutations()
        .into_iter()
        .filter(|m| m.contains("/actions/variables"))
        .collect();
    assert_eq!(writes.len(), 3, "POST (502), POST (409), PATCH: {writes:?}");
    assert!(writes[2].starts_with("PATCH "), "{writes:?}");
    w.assert_no_leak(&run, false);
}
