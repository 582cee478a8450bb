//! The command line as a user meets it: `demo`, `--version`, `list`, `revoke`.

mod common;

use std::process::Command;

use common::*;

#[test]
fn demo_runs_a_full_rotation_offline_and_exits_0() {
    let o = Command::new(BIN).arg("demo").env_clear().output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("Rotation 1 of 2") && text.contains("Rotation 2 of 2"),
        "{text}"
    );
    assert!(text.contains("is revoked"), "{text}");
    assert!(text.contains("Demo complete"), "{text}");
}

#[test]
fn version() {
    let o = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("seqera-token-rotate {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn list_shows_managed_tokens_newest_first() {
    let w = World::new();
    let a = w.sb.create_token(w.user, "ci-20250101-000000");
    let b = w.sb.create_token(w.user, "ci");
    w.sb.create_token(w.user, "unrelated");
    let run = w.run(&[], &["list"]);
    assert_eq!(run.code, 0, "{run:#?}");
    let rows: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| !l.starts_with("::") && l.contains(" ci"))
        .collect();
    assert_eq!(rows.len(), 2, "{}", run.stdout);
    assert!(
        rows[0].contains(&b.id.to_string()) && rows[1].contains(&a.id.to_string()),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("unrelated"));
    assert!(w.mutations().is_empty());
    w.assert_no_leak(&run, false);
}

#[test]
fn revoke_keeps_the_newest_and_respects_dry_run() {
    let w = World::new();
    let a = w.sb.create_token(w.user, "ci-20250101-000000");
    let b = w.sb.create_token(w.user, "ci-20250201-000000");
    let c = w.sb.create_token(w.user, "ci-20250301-000000");
    let run = w.run(&[("INPUT_DRY-RUN", "true")], &["revoke"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(w.mutations().is_empty());
    assert!(run.stdout.contains("would revoke"), "{}", run.stdout);
    let run = w.run(&[], &["revoke", "--keep", "1"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(!w.sb.is_live(&a.value) && !w.sb.is_live(&b.value));
    assert!(w.sb.is_live(&c.value) && w.sb.is_live(&w.access.value));
    let run = w.run(&[], &["revoke", "--keep", "0", "--older-than", "soon"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(w.sb.is_live(&c.value));
}

#[test]
fn revoke_older_than_spares_recent_tokens_and_revokes_the_access_token_last() {
    let w = World::new();
    let old = w.sb.create_token(w.user, "ci-20240101-000000");
    let recent = w.sb.create_token(w.user, "ci-20261101-000000");
    // The access token is itself a managed token, older than 30 days.
    let me = w.sb.create_token(w.user, "ci");
    w.sb.backdate_token(old.id, std::time::Duration::from_secs(90 * 86400));
    w.sb.backdate_token(me.id, std::time::Duration::from_secs(60 * 86400));
    let run = w.run(
        &[("INPUT_SEQERA-ACCESS-TOKEN", me.value.as_str())],
        &["revoke", "--keep", "0", "--older-than", "30d"],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(!w.sb.is_live(&old.value) && !w.sb.is_live(&me.value));
    assert!(w.sb.is_live(&recent.value), "younger than 30 days");
    let deletes: Vec<String> =
        w.sb.requests()
            .into_iter()
            .filter(|r| r.method == "DELETE")
            .map(|r| r.path)
            .collect();
    assert_eq!(
        deletes.last().unwrap(),
        &format!("/api/tokens/{}", me.id),
        "own token last: {deletes:?}"
    );
    w.assert_no_leak(&run, false);
}

#[test]
fn an_unwritable_github_output_fails_the_run_after_a_good_rotation() {
    let w = World::new();
    let run = w.run(&[("GITHUB_OUTPUT", "/nonexistent-dir/output")], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout
            .contains("::error::could not write the step outputs"),
        "{}",
        run.stdout
    );
    // The rotation itself is complete and safe.
    w.live_token_in(&World::repo_scope(), SECRET);
}

/// The exact message and exit status a user sees for bad settings on a terminal.
#[test]
fn usage_errors_on_a_terminal_snapshot() {
    let o = Command::new(BIN)
        .env_clear()
        .env("INPUT_TOKEN-NAME", "a name with spaces")
        .env("INPUT_MIN-AGE", "7")
        .env("INPUT_TARGETS", "repo:octo/app\nvault:octo")
        .env("TOWER_ACCESS_TOKEN", "x-secret-value")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert!(!stderr.contains("x-secret-value"));
    insta::assert_snapshot!("usage_errors", stderr);
}
