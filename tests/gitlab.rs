//! `gitlab:` and `gitlab-group:` targets against the sandbox's GitLab fake: the variable ends
//! holding the new live token, an existing variable keeps its flags, a new one is masked,
//! hidden and raw, a hidden one is not read back (a readable one is), preflight refusals
//! change nothing, 429 with `Retry-After` is retried, and the GitLab token shows nowhere.

mod common;

use common::*;
use seqera_sandbox::GitlabVariable;

const GL_TOKEN: &str = "glpat-test-token-for-the-fake-0123456789";
const PROJECT: &str = "grp/sub/app";
const GROUP: &str = "grp";

fn world() -> World {
    let w = World::new();
    w.sb.add_gitlab_token(GL_TOKEN, true);
    w.sb.add_gitlab_project(PROJECT);
    w.sb.add_gitlab_group(GROUP);
    w
}

fn gitlab_env<'a>(w: &'a World, url: &'a str, targets: &'a str) -> Vec<(&'a str, &'a str)> {
    let _ = w;
    vec![
        ("INPUT_TARGETS", targets),
        ("INPUT_GITLAB-TOKEN", GL_TOKEN),
        ("INPUT_GITLAB-API-URL", url),
    ]
}

/// The live token the variable holds (its real value, as the fake keeps it).
fn live_in(w: &World, owner: &str, key: &str) -> (SeqeraToken, GitlabVariable) {
    let v =
        w.sb.gitlab_variable(owner, key)
            .expect("the variable exists");
    assert!(
        w.sb.is_live(&v.value),
        "{owner}/{key} holds a token that is not live"
    );
    (w.sb.token_by_value(&v.value).expect("a Seqera token"), v)
}

fn gitlab_requests(w: &World) -> Vec<(String, String)> {
    w.sb.requests()
        .into_iter()
        .filter(|r| r.api == Api::Gitlab)
        .map(|r| (r.method, r.path))
        .collect()
}

#[test]
fn a_rotation_creates_project_and_group_variables_masked_hidden_and_raw() {
    let w = world();
    let url = w.sb.gitlab_url();
    let targets = "gitlab:grp/sub/app\ngitlab-group:grp=SEQERA_TOKEN";
    let r = w.run(&gitlab_env(&w, &url, targets), &[]);
    assert_eq!(r.code, 0, "{r:#?}");
    let (t, v) = live_in(&w, PROJECT, SECRET);
    assert_eq!(r.out("token-id"), t.id.to_string());
    let (t2, g) = live_in(&w, GROUP, "SEQERA_TOKEN");
    assert_eq!(t2.id, t.id);
    for v in [&v, &g] {
        assert!(v.masked && v.hidden && v.raw, "{v:?}");
        assert!(!v.protected, "{v:?}");
        assert_eq!(v.environment_scope, "*");
        assert_eq!(v.writes, 1, "one write: {v:?}");
    }
    assert_eq!(
        r.out("updated-targets"),
        "gitlab:grp/sub/app,gitlab-group:grp=SEQERA_TOKEN"
    );
    // The project is addressed by its URL-encoded full path.
    let reqs = gitlab_requests(&w);
    assert!(
        reqs.iter()
            .any(|(m, p)| m == "POST" && p.contains("/projects/grp%2Fsub%2Fapp/variables")),
        "{reqs:?}"
    );
    // A hidden variable cannot be read back: no GET after the create.
    let last_post = reqs.iter().rposition(|(m, _)| m == "POST").unwrap();
    assert!(
        !reqs[last_post..].iter().any(|(m, _)| m == "GET"),
        "{reqs:?}"
    );
    // `status`: a hidden variable is judged by the record alone.
    let s = w.run_terminal(&gitlab_env(&w, &url, targets), &["status", "--json"]);
    assert_eq!(s.code, 0, "{s:#?}");
    for run in [&r, &s] {
        w.assert_no_leak_of(run, &[GL_TOKEN]);
    }
}

#[test]
fn an_existing_variable_keeps_its_flags_and_a_readable_one_is_read_back() {
    let w = world();
    let mut existing = GitlabVariable::new(SECRET, "not-a-token-yet");
    existing.protected = true;
    existing.description = Some("kept".into());
    w.sb.put_gitlab_variable(PROJECT, existing);
    let url = w.sb.gitlab_url();
    let r = w.run(&gitlab_env(&w, &url, "gitlab:grp/sub/app"), &[]);
    assert_eq!(r.code, 0, "{r:#?}");
    let (t, v) = live_in(&w, PROJECT, SECRET);
    assert_eq!(r.out("token-id"), t.id.to_string());
    assert!(v.protected, "protected is kept: {v:?}");
    assert!(!v.masked && !v.hidden && !v.raw, "no flag is added: {v:?}");
    assert_eq!(v.description.as_deref(), Some("kept"));
    assert_eq!(v.writes, 1);
    // Updated in place (PUT, scope `*`), then read back.
    let reqs = gitlab_requests(&w);
    let put = reqs
        .iter()
        .position(|(m, p)| {
            m == "PUT"
                && p.ends_with("/variables/TOWER_ACCESS_TOKEN?filter%5Benvironment_scope%5D=*")
        })
        .unwrap_or_else(|| panic!("{reqs:?}"));
    assert!(
        reqs[put..].iter().any(|(m, _)| m == "GET"),
        "read back: {reqs:?}"
    );
    assert!(!reqs.iter().any(|(m, _)| m == "POST"), "{reqs:?}");

    // `status` reads the token id it carries.
    let s = w.run_terminal(
        &gitlab_env(&w, &url, "gitlab:grp/sub/app"),
        &["status", "--json"],
    );
    let doc: serde_json::Value =
        serde_json::from_str(&s.stdout).unwrap_or_else(|e| panic!("{e}: {s:#?}"));
    assert_eq!(doc["targets"][0]["tokenId"], t.id, "{doc}");
    for run in [&r, &s] {
        w.assert_no_leak_of(run, &[GL_TOKEN]);
    }
}

#[test]
fn a_hidden_variable_is_updated_without_a_read_back() {
    let w = world();
    let mut existing = GitlabVariable::new(SECRET, "previousvalue123");
    existing.masked = true;
    existing.hidden = true;
    w.sb.put_gitlab_variable(PROJECT, existing);
    let url = w.sb.gitlab_url();
    let r = w.run(&gitlab_env(&w, &url, "gitlab:grp/sub/app"), &[]);
    assert_eq!(r.code, 0, "{r:#?}");
    let (_, v) = live_in(&w, PROJECT, SECRET);
    assert!(v.hidden && v.masked && !v.raw, "{v:?}");
    let reqs = gitlab_requests(&w);
    let put = reqs
        .iter()
        .position(|(m, _)| m == "PUT")
        .unwrap_or_else(|| panic!("{reqs:?}"));
    assert!(!reqs[put..].iter().any(|(m, _)| m == "GET"), "{reqs:?}");
    w.assert_no_leak_of(&r, &[GL_TOKEN]);
}

#[test]
fn a_403_in_preflight_changes_nothing_and_names_the_scope_and_role() {
    let w = world();
    w.sb.put_gitlab_variable(PROJECT, GitlabVariable::new(SECRET, "untouched"));
    w.sb.add_fault(always(
        Api::Gitlab,
        "GET",
        "/variables/",
        FaultAction::Status {
            status: 403,
            headers: vec![],
            body: r#"{"message":"403 Forbidden"}"#.into(),
        },
    ));
    let url = w.sb.gitlab_url();
    let r = w.run(
        &gitlab_env(&w, &url, "repo:octo/app\ngitlab:grp/sub/app"),
        &[],
    );
    assert_eq!(r.code, 1, "{r:#?}");
    let all = r.all();
    assert!(
        all.contains("`api` scope") && all.contains("Maintainer"),
        "{all}"
    );
    assert_eq!(w.sb.tokens().len(), 1, "no token was created");
    assert_eq!(
        w.sb.gitlab_variable(PROJECT, SECRET).unwrap().value,
        "untouched"
    );
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    w.assert_no_leak_of(&r, &[GL_TOKEN]);
}

// A `read_api` token reads every variable but can write none: preflight asks GitLab for
// the token's scopes, so the run stops before a Seqera token is created (it once created
// one, was refused at the write and rolled it back).
#[test]
fn a_token_that_may_only_read_fails_preflight_naming_the_scope_and_nothing_is_created() {
    let w = World::new();
    w.sb.add_gitlab_token(GL_TOKEN, false);
    w.sb.add_gitlab_project(PROJECT);
    w.sb.put_gitlab_variable(PROJECT, GitlabVariable::new(SECRET, "untouched"));
    let url = w.sb.gitlab_url();
    let r = w.run(&gitlab_env(&w, &url, "gitlab:grp/sub/app"), &[]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        r.all()
            .contains("the GitLab token has the scopes [read_api]")
            && r.all().contains("`api` scope"),
        "{r:#?}"
    );
    assert_eq!(
        w.sb.gitlab_variable(PROJECT, SECRET).unwrap().value,
        "untouched"
    );
    assert_eq!(w.sb.tokens().len(), 1, "no Seqera token was created");
    let writes = gitlab_requests(&w)
        .into_iter()
        .filter(|(m, _)| m != "GET")
        .count();
    assert_eq!(writes, 0, "nothing was sent to GitLab but reads");
    w.assert_no_leak_of(&r, &[GL_TOKEN]);
}

// A token GitLab's `personal_access_tokens/self` does not describe (an OAuth token, an
// older GitLab: 404) passes on to the reads; the write is then the check, and a refused
// write rolls the new token back.
#[test]
fn a_token_the_self_endpoint_does_not_describe_is_judged_by_the_write() {
    let w = World::new();
    w.sb.add_gitlab_token(GL_TOKEN, false);
    w.sb.add_gitlab_project(PROJECT);
    w.sb.put_gitlab_variable(PROJECT, GitlabVariable::new(SECRET, "untouched"));
    w.sb.add_fault(FaultRule {
        api: Api::Gitlab,
        method: "GET".into(),
        path: PathMatch::Contains("/personal_access_tokens/self".into()),
        when: Occurrence::Always,
        action: FaultAction::status(404),
    });
    let url = w.sb.gitlab_url();
    let r = w.run(&gitlab_env(&w, &url, "gitlab:grp/sub/app"), &[]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.all().contains("`api` scope"), "{r:#?}");
    assert_eq!(
        w.sb.gitlab_variable(PROJECT, SECRET).unwrap().value,
        "untouched"
    );
    assert!(w.live_managed().is_empty(), "rolled back");
    w.assert_no_leak_of(&r, &[GL_TOKEN]);
}

#[test]
fn gitlabs_429_with_retry_after_is_retried() {
    let w = world();
    w.sb.add_fault(FaultRule {
        api: Api::Gitlab,
        method: "POST".into(),
        path: PathMatch::Contains("/variables".into()),
        when: Occurrence::Nth(1),
        action: FaultAction::too_many_requests(1),
    });
    let url = w.sb.gitlab_url();
    let r = w.run(&gitlab_env(&w, &url, "gitlab:grp/sub/app"), &[]);
    assert_eq!(r.code, 0, "{r:#?}");
    let (_, v) = live_in(&w, PROJECT, SECRET);
    assert_eq!(v.writes, 1);
    let posts: Vec<std::time::Instant> =
        w.sb.requests()
            .into_iter()
            .filter(|q| q.api == Api::Gitlab && q.method == "POST")
            .map(|q| q.received_at)
            .collect();
    assert_eq!(posts.len(), 2, "refused once, then written");
    assert!(
        posts[1] - posts[0] >= std::time::Duration::from_millis(900),
        "Retry-After is honoured"
    );
    w.assert_no_leak_of(&r, &[GL_TOKEN]);
}

// A create that landed but whose answer was lost: its retry meets "already taken" and
// updates the variable instead; the variable holds the new token.
#[test]
fn a_create_performed_then_5xx_ends_as_an_update() {
    let w = world();
    w.sb.add_fault(FaultRule {
        api: Api::Gitlab,
        method: "POST".into(),
        path: PathMatch::Contains("/variables".into()),
        when: Occurrence::Nth(1),
        action: FaultAction::perform_then(502),
    });
    let url = w.sb.gitlab_url();
    let r = w.run(&gitlab_env(&w, &url, "gitlab:grp/sub/app"), &[]);
    assert_eq!(r.code, 0, "{r:#?}");
    let (_, v) = live_in(&w, PROJECT, SECRET);
    assert!(v.hidden && v.masked && v.raw, "{v:?}");
    w.assert_no_leak_of(&r, &[GL_TOKEN]);
}
