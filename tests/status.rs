//! `status` (SPEC §6), the dead man's switch, and the `--json` documents of `list` and
//! `status`: the real binary against the sandbox, with its clock moved forward instead of
//! waiting. Every case checks that nothing was changed and that no token value shows.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const DAY: Duration = Duration::from_secs(86_400);
const MAX_AGE: (&str, &str) = ("INPUT_MAX-AGE", "8d");

/// Runs `status` and checks it changed nothing and leaked nothing.
fn status(w: &World, extra: &[(&str, &str)]) -> Run {
    w.sb.clear_requests();
    let run = w.run(extra, &["status"]);
    assert!(
        w.mutations().is_empty(),
        "status changed something: {:?}",
        w.mutations()
    );
    w.assert_no_leak(&run, false);
    run
}

fn errors(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("::error::"))
        .collect()
}

#[test]
fn healthy_after_a_rotation() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    let run = status(&w, &[MAX_AGE]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("healthy"), "true");
    assert_eq!(run.out("problems"), "");
    assert!(errors(&run).is_empty(), "{}", run.stdout);
    assert!(run.summary.contains("healthy"), "{}", run.summary);
    assert!(run.summary.contains("repo:octo/app"), "{}", run.summary);
    // It read what preflight reads, and no public key.
    let paths: Vec<String> = w.sb.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().any(|p| p.ends_with("/user-info")), "{paths:?}");
    assert!(
        paths.iter().all(|p| !p.ends_with("/public-key")),
        "{paths:?}"
    );
}

#[test]
fn overdue_when_the_rotation_has_stopped() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    let token = w.live_managed()[0].clone();
    w.sb.advance_clock(9 * DAY);
    let run = status(&w, &[MAX_AGE]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.out("healthy"), "false");
    let problems = run.out("problems");
    assert_eq!(problems.lines().count(), 1, "{problems}");
    assert!(
        problems.contains("overdue") && problems.contains(&token.name),
        "{problems}"
    );
    assert_eq!(errors(&run).len(), 1, "{}", run.stdout);
    assert!(run.summary.contains("unhealthy"), "{}", run.summary);
    // Without max-age, age alone is no problem.
    assert_eq!(status(&w, &[]).code, 0);
}

#[test]
fn stale_and_missing_targets_are_named() {
    let w = World::new();
    w.sb.add_repo(OWNER, "other");
    w.sb.add_repo(OWNER, "third");
    let two = "repo:octo/app\nrepo:octo/other";
    assert_eq!(w.run(&[("INPUT_TARGETS", two)], &[]).code, 0);
    w.sb.backdate_secret(
        &SecretScope::repo(OWNER, "other"),
        SECRET,
        Duration::from_secs(3600),
    );
    let three = "repo:octo/app\nrepo:octo/other\nrepo:octo/third";
    let run = status(&w, &[("INPUT_TARGETS", three), MAX_AGE]);
    assert_eq!(run.code, 1, "{run:#?}");
    let problems: Vec<&str> = run.out("problems").lines().collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    // The record was written for two targets; status is asked about three.
    assert!(problems[0].contains("targets changed"), "{problems:?}");
    let problems = &problems[1..];
    assert!(
        problems[0].contains("repo:octo/other is stale"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("repo:octo/third is missing"),
        "{problems:?}"
    );
    assert_eq!(errors(&run).len(), 3, "{}", run.stdout);
}

#[test]
fn a_rejected_access_token_and_a_token_past_its_time_are_problems() {
    let w = World::new();
    let old = w.sb.create_token(w.user, "ci-20250101-000000");
    let new = w.sb.create_token(w.user, "ci-20250201-000000");
    w.sb.put_secret_plain(&World::repo_scope(), SECRET, &new.value, None, &[]);
    // No grace period: the superseded token should be gone already.
    let run = status(&w, &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let problems = run.out("problems");
    assert!(
        problems.contains(&format!("`{}` (id {})", old.name, old.id))
            && problems.contains("past its time"),
        "{problems}"
    );
    // In its grace period it is fine.
    assert_eq!(status(&w, &[("INPUT_GRACE-PERIOD", "6h")]).code, 0);
    w.sb.revoke_token(w.access.id);
    let run = status(&w, &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.out("problems").contains("access token does not work"),
        "{run:#?}"
    );
}

#[test]
fn no_managed_token_is_a_problem_and_invalid_settings_exit_2() {
    let w = World::new();
    let run = status(&w, &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.out("problems").contains("no managed token"), "{run:#?}");
    w.sb.clear_requests();
    let run = w.run(&[("INPUT_MAX-AGE", "soon")], &["status"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(w.sb.requests().is_empty());
}

fn json_doc(run: &Run) -> Value {
    // Outside Actions, stdout holds the one document and nothing else.
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn assert_token_shape(t: &Value) {
    let mut keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["dateCreated", "id", "lastUsed", "name"]);
    assert!(t["id"].is_u64() && t["name"].is_string());
    assert!(t["dateCreated"].is_string());
    assert!(t["lastUsed"].is_string() || t["lastUsed"].is_null());
}

#[test]
fn json_documents_have_the_spec_shapes() {
    let w = World::new();
    w.sb.add_repo(OWNER, "other");
    assert_eq!(w.run(&[], &[]).code, 0);
    assert_eq!(w.run(&[], &[]).code, 0);
    let tokens = w.live_managed();
    let run = w.run_terminal(&[], &["list", "--json"]);
    assert_eq!(run.code, 0, "{run:#?}");
    w.assert_no_leak(&run, false);
    let doc = json_doc(&run);
    let list = doc["tokens"].as_array().unwrap();
    assert_eq!(doc.as_object().unwrap().len(), 1);
    assert_eq!(list.len(), tokens.len());
    assert_eq!(list[0]["id"], tokens.last().unwrap().id, "newest first");
    list.iter().for_each(assert_token_shape);

    let targets = "repo:octo/app\nrepo:octo/other";
    let run = w.run_terminal(&[("INPUT_TARGETS", targets)], &["status", "--json"]);
    assert_eq!(run.code, 1, "{run:#?}");
    w.assert_no_leak(&run, false);
    let doc = json_doc(&run);
    let mut keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["healthy", "problems", "record", "targets", "tokens"]);
    assert_eq!(doc["healthy"], false);
    let record = doc["record"].as_object().expect("the record");
    let mut rkeys: Vec<&str> = record.keys().map(String::as_str).collect();
    rkeys.sort_unstable();
    assert_eq!(rkeys, ["at", "live", "tokenId"]);
    assert_eq!(doc["record"]["live"], true);
    // octo/other is missing, and the record spoke of one target, not two.
    assert_eq!(doc["problems"].as_array().unwrap().len(), 2, "{doc}");
    assert!(doc["problems"][0]
        .as_str()
        .unwrap()
        .contains("targets changed"));
    assert!(doc["problems"][1]
        .as_str()
        .unwrap()
        .contains("repo:octo/other"));
    doc["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .for_each(assert_token_shape);
    let t = doc["targets"].as_array().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[0]["label"].as_str(), t[0]["state"].as_str()),
        (Some("repo:octo/app"), Some("current"))
    );
    assert!(t[0]["updatedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        (
            t[1]["label"].as_str(),
            t[1]["state"].as_str(),
            &t[1]["updatedAt"]
        ),
        (Some("repo:octo/other"), Some("missing"), &Value::Null)
    );
    // The problems also went to stderr, as log lines.
    assert!(
        run.stderr
            .contains("error: target repo:octo/other is missing"),
        "{}",
        run.stderr
    );
}

#[test]
fn list_marks_retiring_tokens() {
    let w = World::new();
    let g = [("INPUT_GRACE-PERIOD", "6h")];
    assert_eq!(w.run(&g, &[]).code, 0);
    assert_eq!(w.run(&g, &[]).code, 0);
    let ids = w.live_managed_ids();
    let run = w.run(&g, &["list"]);
    assert_eq!(run.code, 0, "{run:#?}");
    let row = |id: u64| {
        run.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&id.to_string()))
            .unwrap_or_else(|| panic!("{}", run.stdout))
            .to_string()
    };
    assert!(row(ids[0]).contains("retiring"), "{}", run.stdout);
    assert!(!row(ids[1]).contains("retiring"), "{}", run.stdout);
    w.assert_no_leak(&run, false);
}

/// The Action runs the binary without a command on the command line: `command: status`
/// (INPUT_COMMAND) selects the check, with the same result as `status` itself.
#[test]
fn the_command_input_runs_status_from_the_action() {
    let w = World::new();
    assert_eq!(w.run(&[], &[]).code, 0);
    w.sb.advance_clock(9 * DAY);
    w.sb.clear_requests();
    let run = w.run(&[MAX_AGE, ("INPUT_COMMAND", "status")], &[]);
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.out("healthy"), "false");
    assert_eq!(errors(&run).len(), 1, "{}", run.stdout);
    w.assert_no_leak(&run, false);
    // `list` too, and a command on the command line wins over the input.
    let run = w.run(&[("INPUT_COMMAND", "list")], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(w.mutations().is_empty());
    let run = w.run(&[("INPUT_COMMAND", "status")], &["list"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.outputs.is_empty(), "list ran, not status: {run:#?}");
    assert!(run.stdout.contains("managed token(s) of `ci`"), "{run:#?}");
}

#[test]
fn an_unknown_command_input_exits_2_and_sends_nothing() {
    let w = World::new();
    for bad in ["revoke", "demo", "rotate; rm -rf /"] {
        let run = w.run(&[("INPUT_COMMAND", bad)], &[]);
        assert_eq!(run.code, 2, "{bad}: {run:#?}");
        assert!(
            run.all().contains("invalid `command` (from INPUT_COMMAND)")
                && run.all().contains("is not one of rotate, status, list"),
            "{}",
            run.all()
        );
    }
    assert!(w.sb.requests().is_empty());
    // Upper case and blanks are forgiven, as for the other settings.
    let run = w.run(&[("INPUT_COMMAND", " Rotate ")], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
}
