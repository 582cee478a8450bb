//! Invalid settings (SPEC §2): each exits 2 with a message naming the setting, and the
//! sandbox sees zero requests. Also: the runner's `INPUT_*` conventions end to end.

mod common;

use common::*;

#[test]
fn invalid_settings_exit_2_and_send_nothing() {
    let w = World::new();
    let long_name = "x".repeat(35);
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("INPUT_SEQERA-ACCESS-TOKEN", "")],
            vec![],
            "seqera-access-token",
        ),
        (vec![("INPUT_TOKEN-NAME", "")], vec![], "token-name"),
        (
            vec![("INPUT_TOKEN-NAME", long_name.as_str())],
            vec![],
            "1-34",
        ),
        (vec![("INPUT_TOKEN-NAME", "ci name")], vec![], "token-name"),
        (vec![("INPUT_GITHUB-TOKEN", "")], vec![], "github-token"),
        (
            vec![("INPUT_SEQERA-API-URL", "http://seqera.example.com/api")],
            vec![],
            "https://",
        ),
        (
            vec![("INPUT_GITHUB-API-URL", "ftp://127.0.0.1/")],
            vec![],
            "github-api-url",
        ),
        (
            vec![("INPUT_SEQERA-API-URL", "https://x.example/api?x=1")],
            vec![],
            "query",
        ),
        (vec![("GITHUB_REPOSITORY", "")], vec![], "repository"),
        (vec![("GITHUB_REPOSITORY", "octo")], vec![], "OWNER/REPO"),
        (vec![("INPUT_SECRET-NAME", "GITHUB_PAT")], vec![], "GITHUB_"),
        (vec![("INPUT_SECRET-NAME", "1TOKEN")], vec![], "digit"),
        (
            vec![("INPUT_SECRET-NAME", "MY-TOKEN")],
            vec![],
            "secret-name",
        ),
        (
            vec![("INPUT_KEEP-PREVIOUS", "two")],
            vec![],
            "keep-previous",
        ),
        (vec![("INPUT_MIN-AGE", "soon")], vec![], "min-age"),
        (vec![("INPUT_MIN-AGE", "12")], vec![], "no unit"),
        (vec![("INPUT_FORCE", "yesplease")], vec![], "force"),
        (vec![("INPUT_DRY-RUN", "2")], vec![], "dry-run"),
        (
            vec![("INPUT_MAX-CONCURRENCY", "0")],
            vec![],
            "max-concurrency",
        ),
        (
            vec![("INPUT_MAX-CONCURRENCY", "100")],
            vec![],
            "max-concurrency",
        ),
        (vec![("INPUT_TIMEOUT", "forever")], vec![], "timeout"),
        (
            vec![
                ("INPUT_VISIBILITY", "public"),
                ("INPUT_ORGANIZATION", "octo"),
            ],
            vec![],
            "visibility",
        ),
        (
            vec![("INPUT_VISIBILITY", "private")],
            vec![],
            "organization",
        ),
        (
            vec![
                ("INPUT_SELECTED-REPOSITORIES", "app"),
                ("INPUT_ORGANIZATION", "octo"),
            ],
            vec![],
            "selected-repositories",
        ),
        (
            vec![("INPUT_TARGETS", "repo:octo/app\nvault:octo/app")],
            vec![],
            "line 2",
        ),
        (
            vec![("INPUT_TARGETS", "repo:octo/app\n# again\nrepo:octo/app")],
            vec![],
            "line 3",
        ),
        (vec![("INPUT_TARGETS", "env:octo/app")], vec![], "line 1"),
        (
            vec![("INPUT_TARGETS", "repo:octo/app=GITHUB_X")],
            vec![],
            "line 1",
        ),
        (
            vec![("INPUT_ORGANIZATION", "bad_org!")],
            vec![],
            "organization",
        ),
        (vec![], vec!["--timeout=-5s"], "timeout"),
        (vec![], vec!["--no-such-flag"], "no-such-flag"),
    ];
    assert!(cases.len() >= 15);
    for (env, args, needle) in &cases {
        let run = w.run(env, args);
        assert_eq!(run.code, 2, "{env:?} {args:?}: {run:#?}");
        assert!(
            run.all().contains(needle),
            "{env:?} {args:?}: message lacks {needle:?}: {}",
            run.all()
        );
        assert!(
            w.sb.requests().is_empty(),
            "{env:?} {args:?} sent {:?}",
            w.sb.requests()
        );
        assert!(
            run.outputs_raw.is_empty(),
            "{env:?}: outputs written on a usage error"
        );
        w.assert_no_leak(&run, false);
    }
}

#[test]
fn flags_override_inputs_which_override_conventional_variables() {
    let w = World::new();
    w.sb.add_repo(OWNER, "other");
    // INPUT_REPOSITORY beats GITHUB_REPOSITORY; the flag beats both.
    let run = w.run(
        &[("INPUT_REPOSITORY", "octo/other")],
        &["--secret-name", "FROM_FLAG"],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("updated-targets"), "repo:octo/other");
    let other = SecretScope::Repo {
        owner: OWNER.into(),
        repo: "other".into(),
    };
    assert!(w.sb.secret(&other, "FROM_FLAG").is_some());
    // Conventional variables alone are enough (terminal use).
    let mut env = std::collections::HashMap::new();
    env.insert("TOWER_ACCESS_TOKEN".to_string(), w.access.value.clone());
    env.insert("TOWER_API_ENDPOINT".to_string(), w.sb.seqera_url());
    env.insert("GH_TOKEN".to_string(), GH_TOKEN.to_string());
    env.insert("GITHUB_API_URL".to_string(), w.sb.github_url());
    env.insert("GITHUB_REPOSITORY".to_string(), "octo/app".to_string());
    let dir = tempfile::tempdir().unwrap();
    let run = run_binary(&env, &["--token-name", "ci"], dir.path(), false);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        !run.stdout.contains("::"),
        "no workflow commands outside Actions: {}",
        run.stdout
    );
    assert!(run.stdout.contains("rotated=true"), "{}", run.stdout);
    w.live_token_in(&World::repo_scope(), SECRET);
}
