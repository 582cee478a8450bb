//! Every kind of secret target (SPEC §4) and one token into many targets in one run:
//! organization secrets and their access lists, environments with awkward names,
//! Dependabot and Codespaces keys, fan-out, partial failure.

mod common;

use common::*;

fn repo(r: &str) -> SecretScope {
    SecretScope::Repo {
        owner: OWNER.into(),
        repo: r.into(),
    }
}

fn org() -> SecretScope {
    SecretScope::Org { org: OWNER.into() }
}

fn count(w: &World, method: &str, needle: &str) -> usize {
    w.sb.requests()
        .iter()
        .filter(|r| r.method == method && r.path.contains(needle))
        .count()
}

#[test]
fn organization_secret_with_selected_repositories() {
    let w = World::new();
    w.sb.add_org(OWNER);
    let web = w.sb.add_repo(OWNER, "web");
    let app = w.sb.repo_id(OWNER, REPO).unwrap();
    let run = w.run(
        &[
            ("INPUT_ORGANIZATION", OWNER),
            ("INPUT_VISIBILITY", "selected"),
            ("INPUT_SELECTED-REPOSITORIES", "app\nocto/web"),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    let s = w.sb.secret(&org(), SECRET).unwrap();
    assert_eq!(s.visibility.as_deref(), Some("selected"));
    let mut ids = s.selected_repository_ids.clone();
    ids.sort();
    let mut want = vec![app, web];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(
        w.live_token_in(&org(), SECRET).id.to_string(),
        run.out("token-id")
    );
    assert_eq!(run.out("updated-targets"), "org:octo");
    w.assert_no_leak(&run, false);
}

#[test]
fn an_existing_org_secret_keeps_its_access_list_without_visibility() {
    let w = World::new();
    w.sb.add_org(OWNER);
    let web = w.sb.add_repo(OWNER, "web");
    let old = w.sb.create_token(w.user, "ci-20250101-000000");
    w.sb.put_secret_plain(&org(), SECRET, &old.value, Some("selected"), &[web]);
    let run = w.run(&[("INPUT_ORGANIZATION", OWNER)], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let s = w.sb.secret(&org(), SECRET).unwrap();
    assert_eq!(s.visibility.as_deref(), Some("selected"));
    assert_eq!(s.selected_repository_ids, [web]);
    assert!(!w.sb.is_live(&old.value));
    w.live_token_in(&org(), SECRET);
    // `all` stays `all`; a new secret without visibility becomes `private`.
    w.sb.put_secret_plain(&org(), "SHARED", "x", Some("all"), &[]);
    let run = w.run(&[("INPUT_TARGETS", "org:octo=SHARED\norg:octo=FRESH")], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(
        w.sb.secret(&org(), "SHARED").unwrap().visibility.as_deref(),
        Some("all")
    );
    assert_eq!(
        w.sb.secret(&org(), "FRESH").unwrap().visibility.as_deref(),
        Some("private")
    );
    // An explicit visibility replaces the current one.
    let run = w.run(
        &[("INPUT_ORGANIZATION", OWNER), ("INPUT_VISIBILITY", "all")],
        &[],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(
        w.sb.secret(&org(), SECRET).unwrap().visibility.as_deref(),
        Some("all")
    );
}

#[test]
fn environment_names_with_spaces_and_slashes() {
    let w = World::new();
    let env = "prod eu/1";
    w.sb.add_environment(OWNER, REPO, env);
    let run = w.run(&[("INPUT_TARGETS", "env:octo/app/prod eu/1")], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let scope = SecretScope::Environment {
        owner: OWNER.into(),
        repo: REPO.into(),
        env: env.into(),
    };
    w.live_token_in(&scope, SECRET);
    assert_eq!(
        count(
            &w,
            "PUT",
            "/environments/prod%20eu%2F1/secrets/TOWER_ACCESS_TOKEN"
        ),
        1,
        "{:?}",
        w.sb.requests()
    );
    assert_eq!(run.out("updated-targets"), "env:octo/app/prod eu/1");
}

#[test]
fn dependabot_and_codespaces_use_their_own_keys() {
    let w = World::new();
    let run = w.run(
        &[(
            "INPUT_TARGETS",
            "dependabot:octo/app\ncodespaces:octo/app=SEQERA",
        )],
        &[],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    let d = w.live_token_in(
        &SecretScope::Dependabot {
            owner: OWNER.into(),
            repo: REPO.into(),
        },
        SECRET,
    );
    let c = w.live_token_in(
        &SecretScope::Codespaces {
            owner: OWNER.into(),
            repo: REPO.into(),
        },
        "SEQERA",
    );
    assert_eq!(d.id, c.id);
    assert_eq!(
        count(&w, "GET", "/repos/octo/app/dependabot/secrets/public-key"),
        1
    );
    assert_eq!(
        count(&w, "GET", "/repos/octo/app/codespaces/secrets/public-key"),
        1
    );
    assert_eq!(count(&w, "GET", "/actions/secrets/public-key"), 0);
    assert_eq!(
        run.out("updated-targets"),
        "dependabot:octo/app,codespaces:octo/app=SEQERA"
    );
}

const TEN: &str = "\
# every kind, and two secrets sharing a key owner
repo:octo/app
repo:octo/app=OTHER_NAME
env:octo/app/production
env:octo/app/staging
org:octo
dependabot:octo/app
codespaces:octo/app
repo:octo/web
repo:octo/api
dependabot:octo/web
";

fn ten_world() -> World {
    let w = World::new();
    w.sb.add_org(OWNER);
    w.sb.add_repo(OWNER, "web");
    w.sb.add_repo(OWNER, "api");
    w.sb.add_environment(OWNER, REPO, "production");
    w.sb.add_environment(OWNER, REPO, "staging");
    w
}

fn ten_scopes() -> Vec<(SecretScope, &'static str)> {
    let env = |e: &str| SecretScope::Environment {
        owner: OWNER.into(),
        repo: REPO.into(),
        env: e.into(),
    };
    vec![
        (repo(REPO), SECRET),
        (repo(REPO), "OTHER_NAME"),
        (env("production"), SECRET),
        (env("staging"), SECRET),
        (org(), SECRET),
        (
            SecretScope::Dependabot {
                owner: OWNER.into(),
                repo: REPO.into(),
            },
            SECRET,
        ),
        (
            SecretScope::Codespaces {
                owner: OWNER.into(),
                repo: REPO.into(),
            },
            SECRET,
        ),
        (repo("web"), SECRET),
        (repo("api"), SECRET),
        (
            SecretScope::Dependabot {
                owner: OWNER.into(),
                repo: "web".into(),
            },
            SECRET,
        ),
    ]
}

#[test]
fn ten_targets_of_mixed_kinds_in_one_run() {
    let w = ten_world();
    let run = w.run(
        &[("INPUT_TARGETS", TEN), ("INPUT_MAX-CONCURRENCY", "3")],
        &[],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(count(&w, "POST", "/api/tokens"), 1, "one token created");
    let id = run.out("token-id").to_string();
    for (scope, name) in ten_scopes() {
        assert_eq!(
            w.live_token_in(&scope, name).id.to_string(),
            id,
            "{scope:?} {name}"
        );
    }
    // One public key per key owner (nine: the two repo:octo/app secrets share one), one write per target.
    assert_eq!(count(&w, "GET", "/public-key"), 9, "{:?}", w.sb.requests());
    assert_eq!(count(&w, "PUT", "/secrets/"), 10);
    let labels = "repo:octo/app,repo:octo/app=OTHER_NAME,env:octo/app/production,env:octo/app/staging,org:octo,\
dependabot:octo/app,codespaces:octo/app,repo:octo/web,repo:octo/api,dependabot:octo/web";
    assert_eq!(run.out("updated-targets"), labels, "input order");
    for label in labels.split(',') {
        assert!(
            // Labels are shown as code, escaped for Markdown (`_` → `\_`).
            run.summary
                .contains(&format!("| <code>{}</code> |", label.replace('_', "\\_"))),
            "summary row for {label}: {}",
            run.summary
        );
    }
    w.assert_no_leak(&run, false);
}

#[test]
fn one_failing_target_among_three_revokes_nothing() {
    let w = ten_world();
    let three = "repo:octo/app\nrepo:octo/web\nrepo:octo/api";
    assert_eq!(w.run(&[("INPUT_TARGETS", three)], &[]).code, 0);
    let old = w.live_token_in(&repo("web"), SECRET);
    w.sb.add_fault(always(
        Api::Github,
        "PUT",
        "/repos/octo/web/",
        FaultAction::status(502),
    ));
    let run = w.run(&[("INPUT_TARGETS", three)], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let new = w.live_token_in(&repo(REPO), SECRET);
    assert_ne!(new.id, old.id);
    assert_eq!(w.live_token_in(&repo("api"), SECRET).id, new.id);
    assert_eq!(
        w.live_token_in(&repo("web"), SECRET).id,
        old.id,
        "the failed target keeps its old, live token"
    );
    assert!(w.sb.is_live(&old.value), "nothing revoked");
    assert_eq!(run.out("revoked-token-ids"), "");
    assert_eq!(run.out("updated-targets"), "repo:octo/app,repo:octo/api");
    assert!(
        run.summary
            .contains("| <code>repo:octo/web</code> | ⚠️ no clear answer"),
        "{}",
        run.summary
    );
    assert!(run.all().contains("repo:octo/web"), "{}", run.all());
    // The next run, with the fault gone, repairs everything and cleans up.
    w.sb.clear_faults();
    let run = w.run(&[("INPUT_TARGETS", three)], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let now = w.live_token_in(&repo("web"), SECRET);
    assert_eq!(
        w.live_managed().iter().map(|t| t.id).collect::<Vec<_>>(),
        [now.id]
    );
}

#[test]
fn bad_targets_lines_exit_2_with_the_line_number() {
    let w = World::new();
    for (text, needle) in [
        (
            "repo:octo/app\nsecrets:octo/app",
            "line 2: unknown kind `secrets`",
        ),
        ("# c\n\nenv:octo/app", "line 3"),
        ("repo:octo", "line 1"),
        ("repo:octo/app\ndependabot:octo/app=2FA", "line 2"),
        (
            "repo:octo/app\n  repo:octo/app  # same",
            "line 2: `repo:octo/app` is the same target as line 1",
        ),
        ("org:", "line 1"),
    ] {
        let run = w.run(&[("INPUT_TARGETS", text)], &[]);
        assert_eq!(run.code, 2, "{text}: {run:#?}");
        assert!(run.all().contains(needle), "{text}: {}", run.all());
        assert!(w.sb.requests().is_empty());
    }
}
