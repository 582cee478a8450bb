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
            vec![("INPUT_TARGETS", "repo:octo/app\nvault:octo")],
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

/// Credentials of the other stores that the cases below pass; none may show in any output.
const STORE_SECRETS: &[&str] = &[
    "glpat-storesecret1",
    "hvs.storesecret1",
    "oidc-storesecret1",
    "qstoresecret1",
    "pwstoresecret1",
];

fn assert_exit_2_nothing_sent(w: &World, env: &[(&str, &str)], needle: &str) {
    let run = w.run(env, &[]);
    assert_eq!(run.code, 2, "{env:?}: {run:#?}");
    assert!(
        run.all().contains(needle),
        "{env:?}: message lacks {needle:?}: {}",
        run.all()
    );
    assert!(
        w.sb.requests().is_empty(),
        "{env:?} sent {:?}",
        w.sb.requests()
    );
    assert!(run.outputs_raw.is_empty(), "{env:?}: outputs written");
    w.assert_no_leak(&run, false);
    for s in STORE_SECRETS {
        let shown = run
            .all()
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .any(|l| l.contains(s));
        assert!(!shown, "{env:?}: {s} shown: {}", run.all());
    }
}

// SPEC §2/§9: the settings of the other stores, each invalid case exits 2 and sends nothing.
#[test]
fn invalid_store_settings_exit_2_and_send_nothing() {
    let w = World::new();
    let vault = ("INPUT_TARGETS", "repo:octo/app\nvault:secret/ci");
    let addr = ("VAULT_ADDR", "https://vault.example:8200");
    let tok = ("VAULT_TOKEN", "hvs.storesecret1");
    let gitlab = ("INPUT_TARGETS", "gitlab:grp/sub/proj");
    let gtok = ("GITLAB_TOKEN", "glpat-storesecret1");
    let aws = ("INPUT_TARGETS", "aws-sm:eu-west-1/seqera=token");
    let oidc = [
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "https://token.example/id?sig=qstoresecret1",
        ),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc-storesecret1"),
    ];
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("INPUT_TARGETS", "aws-sm:useast1/x")],
            "not an AWS region",
        ),
        (
            vec![("INPUT_TARGETS", "aws-ssm:us-east-1/a/b")],
            "start with `/`",
        ),
        (
            vec![("INPUT_TARGETS", "aws-ssm:us-east-1//a=K")],
            "takes no =NAME",
        ),
        (vec![("INPUT_TARGETS", "vault:kv/a/../b")], "`..` segment"),
        (
            vec![("INPUT_TARGETS", "gitlab:grp")],
            "gitlab:GROUP/PROJECT",
        ),
        (
            vec![("INPUT_TARGETS", "gitlab-group:grp=A-B")],
            "contains `-`",
        ),
        (
            vec![("INPUT_TARGETS", "vault:kv/app\n\nvault:kv/app=other")],
            "line 3",
        ),
        (
            vec![("INPUT_TARGETS", "aws-sm:us-east-1/s\naws-sm:us-east-1/s=k")],
            "same target as line 1",
        ),
        (vec![gitlab], "gitlab-token"),
        (
            vec![gitlab, ("GITLAB_TOKEN", "glpat-storesecret1 x")],
            "white space",
        ),
        (
            vec![
                gitlab,
                gtok,
                ("CI_API_V4_URL", "http://gitlab.example/api/v4"),
            ],
            "gitlab-api-url",
        ),
        (
            vec![
                gitlab,
                gtok,
                (
                    "INPUT_GITLAB-API-URL",
                    "https://gitlab.example/api/v4?private_token=qstoresecret1",
                ),
            ],
            "query",
        ),
        (vec![vault, tok], "vault-addr"),
        (
            vec![
                vault,
                tok,
                ("VAULT_ADDR", "https://u:pwstoresecret1@vault.example"),
            ],
            "password",
        ),
        (vec![vault, addr], "vault-role"),
        (
            vec![vault, addr, tok, ("INPUT_VAULT-ROLE", "rotator")],
            "not both",
        ),
        (
            vec![vault, addr, oidc[1], ("INPUT_VAULT-ROLE", "rotator")],
            "permissions: id-token: write",
        ),
        (
            vec![
                vault,
                addr,
                oidc[0],
                oidc[1],
                ("INPUT_VAULT-ROLE", "rotator"),
                ("INPUT_VAULT-AUTH-PATH", ".."),
            ],
            "vault-auth-path",
        ),
        (
            vec![aws, ("AWS_ENDPOINT_URL", "http://aws.example:4566")],
            "AWS_ENDPOINT_URL",
        ),
        (
            vec![
                aws,
                (
                    "AWS_ENDPOINT_URL_STS",
                    "https://sts.example/?X-Amz-Signature=qstoresecret1",
                ),
            ],
            "AWS_ENDPOINT_URL_STS",
        ),
        (
            vec![("INPUT_STATE-VARIABLE", "GITHUB_RECORD")],
            "state-variable",
        ),
        // The record lives in `repository`'s variables: the GitHub token is needed for it even
        // without a GitHub target.
        (
            vec![gitlab, gtok, ("INPUT_GITHUB-TOKEN", "")],
            "state-variable: none",
        ),
    ];
    for (env, needle) in &cases {
        assert_exit_2_nothing_sent(&w, env, needle);
    }
}

// SPEC §9: `vault-role` outside a job that can request an OIDC token is a setting error that
// says what the job needs.
#[test]
fn vault_role_without_id_token_permission_is_a_setting_error() {
    let w = World::new();
    let run = w.run(
        &[
            ("INPUT_TARGETS", "vault:secret/ci"),
            ("VAULT_ADDR", "https://vault.example"),
            ("INPUT_VAULT-ROLE", "rotator"),
        ],
        &[],
    );
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stdout
            .contains("::error::invalid `vault-role` (from INPUT_VAULT-ROLE)")
            && run
                .all()
                .contains("ACTIONS_ID_TOKEN_REQUEST_URL is not set")
            && run.all().contains("`permissions: id-token: write`"),
        "{}",
        run.all()
    );
    assert!(w.sb.requests().is_empty());
}

// SPEC §2: a setting only one kind of target uses is required, and checked, only when such a
// target is present: a GitHub-only rotation inside another CI's environment (a GitLab
// runner's CI_API_V4_URL, a stray VAULT_ADDR) runs as before.
#[test]
fn store_settings_without_their_targets_are_ignored() {
    let w = World::new();
    let run = w.run(
        &[
            ("CI_API_V4_URL", "http://gitlab.internal/api/v4"),
            ("VAULT_ADDR", "http://vault.internal:8200"),
            ("INPUT_VAULT-ROLE", "rotator"),
            ("AWS_ENDPOINT_URL", "http://10.1.2.3:4566"),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.out("updated-targets"), "repo:octo/app");
    w.live_token_in(&World::repo_scope(), SECRET);
    w.assert_no_leak(&run, false);
}

// The store credentials are masked like the GitHub token before anything else is printed.
#[test]
fn store_credentials_are_masked() {
    let w = World::new();
    let run = w.run(
        &[
            ("INPUT_TARGETS", "gitlab:grp/proj\nvault:kv/app"),
            ("GITLAB_TOKEN", "glpat-storesecret1"),
            ("CI_API_V4_URL", "http://127.0.0.1:1/api/v4"),
            ("VAULT_ADDR", "http://127.0.0.1:1"),
            ("VAULT_TOKEN", "hvs.storesecret1"),
        ],
        &[],
    );
    for s in ["glpat-storesecret1", "hvs.storesecret1"] {
        assert!(
            run.stdout.contains(&format!("::add-mask::{s}")),
            "{s} not masked: {}",
            run.stdout
        );
    }
}
