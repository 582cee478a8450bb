//! `vault:` targets against OpenBao's real server (`bao server -dev`, started and stopped by
//! each test): the field ends holding the new live token (its `tid` read back), the other
//! fields are kept, check-and-set never overwrites a change blindly, the JWT login with the
//! workflow's OIDC token, the namespace header, preflight refusals, and no Vault credential
//! in any output.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::bao::{self, Bao, Issuer, Seen, ID_REQUEST_TOKEN, ROOT};
use common::*;
use serde_json::{json, Value};

const PATH: &str = "seqera/ci";
const TARGET: &str = "vault:secret/seqera/ci";

/// A world, an OpenBao server with `secret/seqera/ci` holding `{TOWER_ACCESS_TOKEN: "old",
/// other: "keep-me"}`, and a token with the least policy. None: no server binary (skipped).
fn setup() -> Option<(World, Bao, String)> {
    let bao = Bao::start()?;
    bao.put(
        None,
        "secret",
        PATH,
        json!({"TOWER_ACCESS_TOKEN": "old-value", "other": "keep-me"}),
    );
    let token = bao.token_with_policy(None, "rotate", &bao::least_policy("secret", PATH));
    Some((World::new(), bao, token))
}

fn vault_env<'a>(addr: &'a str, token: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("INPUT_TARGETS", TARGET),
        ("INPUT_VAULT-ADDR", addr),
        ("INPUT_VAULT-TOKEN", token),
    ]
}

/// The token the field holds; panics unless it is a live Seqera token.
fn live_in_field(w: &World, fields: &Value, field: &str) -> SeqeraToken {
    let v = fields[field].as_str().expect("the field holds a string");
    assert!(w.sb.is_live(v), "the field holds a token that is not live");
    w.sb.token_by_value(v).expect("a Seqera token")
}

fn posts_to_data(seen: &[Seen]) -> usize {
    seen.iter()
        .filter(|r| r.method == "POST" && r.target.contains("/data/"))
        .count()
}

#[test]
fn a_rotation_leaves_the_field_holding_the_new_live_token_and_keeps_the_other_fields() {
    let Some((w, bao, token)) = setup() else {
        return;
    };
    let addr = bao.url();
    let r = w.run(&vault_env(&addr, &token), &[]);
    assert_eq!(r.code, 0, "{r:#?}");
    let fields = bao.fields(None, "secret", PATH).unwrap();
    let first = live_in_field(&w, &fields, "TOWER_ACCESS_TOKEN");
    assert_eq!(r.out("token-id"), first.id.to_string());
    assert_eq!(fields["other"], "keep-me", "other fields are kept");
    assert_eq!(r.out("updated-targets"), TARGET);
    assert_eq!(bao.version("secret", PATH), 2, "one write");

    // Again, forced: the field moves on to the newer token and the first one is revoked.
    let r2 = w.run(
        &[vault_env(&addr, &token), vec![("INPUT_FORCE", "true")]].concat(),
        &[],
    );
    assert_eq!(r2.code, 0, "{r2:#?}");
    let fields = bao.fields(None, "secret", PATH).unwrap();
    let second = live_in_field(&w, &fields, "TOWER_ACCESS_TOKEN");
    assert!(second.id > first.id);
    assert_eq!(fields["other"], "keep-me");
    assert!(
        !w.sb.is_live(&first.value),
        "the superseded token is revoked"
    );
    assert_eq!(r2.out("revoked-token-ids"), first.id.to_string());

    // `status` reads the token id the field carries.
    let s = w.run_terminal(&vault_env(&addr, &token), &["status", "--json"]);
    let doc: Value = serde_json::from_str(&s.stdout).unwrap_or_else(|e| panic!("{e}: {s:#?}"));
    assert_eq!(doc["targets"][0]["label"], TARGET, "{doc}");
    assert_eq!(doc["targets"][0]["tokenId"], second.id, "{doc}");
    assert_eq!(doc["targets"][0]["state"], "current", "{doc}");

    for run in [&r, &r2, &s] {
        w.assert_no_leak_of(run, &[&token, ROOT]);
    }
}

#[test]
fn a_named_field_of_a_new_secret_is_created() {
    let Some((w, bao, _)) = setup() else { return };
    let token = bao.token_with_policy(None, "fresh", &bao::least_policy("secret", "fresh/app"));
    let addr = bao.url();
    let r = w.run(
        &[
            ("INPUT_TARGETS", "vault:secret/fresh/app=SEQERA"),
            ("INPUT_VAULT-ADDR", &addr),
            ("INPUT_VAULT-TOKEN", &token),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(r.out("updated-targets"), "vault:secret/fresh/app=SEQERA");
    let fields = bao.fields(None, "secret", "fresh/app").unwrap();
    live_in_field(&w, &fields, "SEQERA");
    assert_eq!(fields.as_object().unwrap().len(), 1, "{fields}");
    w.assert_no_leak_of(&r, &[&token, ROOT]);
}

// Someone writes the secret between the read and the write: check-and-set refuses the
// write, the store reads again and retries once, so that change is kept, not overwritten.
#[test]
fn check_and_set_refuses_a_blind_overwrite_and_the_retry_keeps_the_change() {
    let Some((w, bao, token)) = setup() else {
        return;
    };
    let bao = Arc::new(bao);
    let (b, n) = (Arc::clone(&bao), Arc::new(AtomicUsize::new(0)));
    let proxy = bao::proxy(&bao, move |req| {
        if req.method == "POST"
            && req.target.ends_with("/data/seqera/ci")
            && n.fetch_add(1, Ordering::SeqCst) == 0
        {
            b.put(
                None,
                "secret",
                PATH,
                json!({"TOWER_ACCESS_TOKEN": "old-value", "other": "changed-meanwhile"}),
            );
        }
        None
    });
    let addr = proxy.url();
    let r = w.run(&vault_env(&addr, &token), &[]);
    assert_eq!(r.code, 0, "{r:#?}");
    let fields = bao.fields(None, "secret", PATH).unwrap();
    live_in_field(&w, &fields, "TOWER_ACCESS_TOKEN");
    assert_eq!(
        fields["other"], "changed-meanwhile",
        "the other writer's change is kept"
    );
    assert_eq!(
        posts_to_data(&proxy.seen()),
        2,
        "refused once, retried once"
    );
    assert_eq!(bao.version("secret", PATH), 3, "theirs, then ours");
    w.assert_no_leak_of(&r, &[&token, ROOT]);
}

// A secret that changes before every write is never overwritten: after one retry the write
// is refused, and, every target refused, the new token is rolled back.
#[test]
fn a_secret_that_keeps_changing_is_refused_and_the_new_token_rolled_back() {
    let Some((w, bao, token)) = setup() else {
        return;
    };
    let bao = Arc::new(bao);
    let (b, n) = (Arc::clone(&bao), Arc::new(AtomicUsize::new(0)));
    let proxy = bao::proxy(&bao, move |req| {
        if req.method == "POST" && req.target.ends_with("/data/seqera/ci") {
            let i = n.fetch_add(1, Ordering::SeqCst);
            b.put(
                None,
                "secret",
                PATH,
                json!({"TOWER_ACCESS_TOKEN": "old-value", "other": format!("change {i}")}),
            );
        }
        None
    });
    let addr = proxy.url();
    let r = w.run(&vault_env(&addr, &token), &[]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.all().contains("check-and-set"), "{r:#?}");
    let fields = bao.fields(None, "secret", PATH).unwrap();
    assert_eq!(fields["TOWER_ACCESS_TOKEN"], "old-value");
    assert_eq!(fields["other"], "change 1", "the last change stands");
    assert!(w.live_managed().is_empty(), "the new token is rolled back");
    w.assert_no_leak_of(&r, &[&token, ROOT]);
}

// The first write lands, but its answer is lost (a 502 from a gateway): the retry meets a
// check-and-set conflict, and the read-back, showing the new token, decides: written.
#[test]
fn a_write_performed_then_5xx_is_resolved_by_the_read_back() {
    let Some((w, bao, token)) = setup() else {
        return;
    };
    let to = bao.addr;
    let n = Arc::new(AtomicUsize::new(0));
    let proxy = bao::proxy(&bao, move |req| {
        if req.method == "POST"
            && req.target.ends_with("/data/seqera/ci")
            && n.fetch_add(1, Ordering::SeqCst) == 0
        {
            let (status, _, _) = bao::forward(to, req);
            assert_eq!(status, 200);
            return Some((502, "text/html", b"<html>bad gateway</html>".to_vec()));
        }
        None
    });
    let addr = proxy.url();
    let r = w.run(&vault_env(&addr, &token), &[]);
    assert_eq!(r.code, 0, "{r:#?}");
    let fields = bao.fields(None, "secret", PATH).unwrap();
    let t = live_in_field(&w, &fields, "TOWER_ACCESS_TOKEN");
    assert_eq!(r.out("token-id"), t.id.to_string());
    assert_eq!(
        bao.version("secret", PATH),
        2,
        "the retry did not write again"
    );
    assert_eq!(posts_to_data(&proxy.seen()), 2);
    w.assert_no_leak_of(&r, &[&token, ROOT]);
}

#[test]
fn preflight_without_the_write_capability_changes_nothing() {
    let Some((w, bao, _)) = setup() else { return };
    let read_only = bao.token_with_policy(
        None,
        "read-only",
        "path \"secret/data/seqera/ci\" { capabilities = [\"read\"] }\npath \"secret/metadata/seqera/ci\" { capabilities = [\"read\"] }\n",
    );
    let proxy = bao::proxy(&bao, |_| None);
    let addr = proxy.url();
    let r1 = w.run(&vault_env(&addr, &read_only), &[]);
    assert_eq!(r1.code, 1, "{r1:#?}");
    let all = r1.all();
    assert!(all.contains("lacks update"), "{all}");
    assert!(
        all.contains("path \\\"secret/data/seqera/ci\\\"")
            || all.contains("path \"secret/data/seqera/ci\""),
        "the policy is named: {all}"
    );
    assert!(w.sb.tokens().len() == 1, "no token was created");
    assert_eq!(posts_to_data(&proxy.seen()), 0);
    assert_eq!(bao.version("secret", PATH), 1);

    // No policy on the path at all: the secret cannot even be read.
    let none = bao.token_with_policy(
        None,
        "nothing",
        "path \"secret/data/other\" { capabilities = [\"read\"] }\n",
    );
    let r = w.run(&vault_env(&addr, &none), &[]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        r.all().contains("capabilities = [\\\"create\\\"")
            || r.all().contains("capabilities = [\"create\""),
        "{r:#?}"
    );
    assert!(w.sb.tokens().len() == 1, "no token was created");
    assert_eq!(bao.version("secret", PATH), 1);
    for run in [&r1, &r] {
        w.assert_no_leak_of(run, &[&read_only, &none, ROOT]);
    }
}

#[test]
fn the_namespace_goes_in_the_header_of_every_request() {
    let Some((w, bao, _)) = setup() else { return };
    bao.root("POST", "/v1/sys/namespaces/team1", Some(json!({})));
    bao.root_ns(
        Some("team1"),
        "POST",
        "/v1/sys/mounts/kv",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    let token = bao.token_with_policy(Some("team1"), "rotate", &bao::least_policy("kv", "app"));
    let proxy = bao::proxy(&bao, |_| None);
    let addr = proxy.url();
    let r = w.run(
        &[
            ("INPUT_TARGETS", "vault:kv/app"),
            ("INPUT_VAULT-ADDR", &addr),
            ("INPUT_VAULT-TOKEN", &token),
            ("INPUT_VAULT-NAMESPACE", "team1"),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:#?}");
    let fields = bao
        .fields(Some("team1"), "kv", "app")
        .expect("written in the namespace");
    live_in_field(&w, &fields, "TOWER_ACCESS_TOKEN");
    let seen = proxy.seen();
    assert!(seen.len() >= 4, "{seen:?}");
    for req in &seen {
        assert_eq!(
            req.header("x-vault-namespace"),
            Some("team1"),
            "{} {}",
            req.method,
            req.target
        );
    }
    w.assert_no_leak_of(&r, &[&token, ROOT]);
}

/// A JWT login run: the OIDC service, the role bound to `audience`, the binary through a
/// proxy that sees the Vault client token it logs in with.
fn jwt_run(audience: &str, given_audience: Option<&str>) {
    let Some((w, bao, _)) = setup() else { return };
    let issuer = Issuer::new();
    bao::configure_jwt(&bao, &issuer, audience, "rotate");
    let (oidc, issued) = bao::oidc_service(issuer);
    let proxy = bao::proxy(&bao, |_| None);
    let addr = proxy.url();
    // As on a runner: the URL already carries a query.
    let request_url = format!("{}/_apis/distributedtask/token?api-version=2.0", oidc.url());
    let mut env = vec![
        ("INPUT_TARGETS", TARGET),
        ("INPUT_VAULT-ADDR", addr.as_str()),
        ("INPUT_VAULT-ROLE", "rotate"),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", request_url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", ID_REQUEST_TOKEN),
    ];
    if let Some(a) = given_audience {
        env.push(("INPUT_VAULT-AUDIENCE", a));
    }
    let r = w.run(&env, &[]);
    assert_eq!(r.code, 0, "{r:#?}");
    let fields = bao.fields(None, "secret", PATH).unwrap();
    live_in_field(&w, &fields, "TOWER_ACCESS_TOKEN");
    assert_eq!(fields["other"], "keep-me");

    let asked = oidc.seen();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0].target.contains("api-version=2.0"),
        "{}",
        asked[0].target
    );
    match given_audience {
        Some(a) => assert!(
            asked[0].target.contains(&format!(
                "audience={}",
                url::form_urlencoded::byte_serialize(a.as_bytes()).collect::<String>()
            )),
            "{}",
            asked[0].target
        ),
        None => assert!(
            !asked[0].target.contains("audience="),
            "GitHub's default audience: {}",
            asked[0].target
        ),
    }
    let jwt = issued.lock().unwrap()[0].clone();
    let seen = proxy.seen();
    let login = seen
        .iter()
        .find(|s| s.target == "/v1/auth/jwt/login")
        .expect("a JWT login");
    assert!(login.header("x-vault-token").is_none());
    let client_token = seen
        .iter()
        .find_map(|s| s.header("x-vault-token"))
        .expect("requests with the client token")
        .to_string();
    // Both run-time credentials are masked before use, and shown nowhere else.
    for secret in [&jwt, &client_token] {
        assert!(
            r.stdout
                .lines()
                .any(|l| l == format!("::add-mask::{secret}")),
            "not masked: {r:#?}"
        );
    }
    w.assert_no_leak_of(&r, &[&jwt, &client_token, ID_REQUEST_TOKEN, ROOT]);
    assert_no_fragment(
        &r,
        &[jwt, client_token, ID_REQUEST_TOKEN.to_string()],
        "JWT login",
    );
}

#[test]
fn jwt_login_with_the_workflows_oidc_token_and_githubs_default_audience() {
    jwt_run("https://github.com/octo", None);
}

#[test]
fn jwt_login_with_a_given_audience() {
    jwt_run("vault.example/seqera", Some("vault.example/seqera"));
}

#[test]
fn a_jwt_role_that_refuses_the_token_fails_preflight_naming_the_role() {
    let Some((w, bao, _)) = setup() else { return };
    let issuer = Issuer::new();
    bao::configure_jwt(&bao, &issuer, "https://github.com/someone-else", "rotate");
    let (oidc, issued) = bao::oidc_service(issuer);
    let request_url = format!("{}/token?api-version=2.0", oidc.url());
    let addr = bao.url();
    let r = w.run(
        &[
            ("INPUT_TARGETS", TARGET),
            ("INPUT_VAULT-ADDR", &addr),
            ("INPUT_VAULT-ROLE", "rotate"),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", &request_url),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", ID_REQUEST_TOKEN),
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.all().contains("role `rotate`"), "{r:#?}");
    assert_eq!(w.sb.tokens().len(), 1, "no token was created");
    assert_eq!(bao.version("secret", PATH), 1);
    let jwt = issued.lock().unwrap()[0].clone();
    w.assert_no_leak_of(&r, &[&jwt, ID_REQUEST_TOKEN, ROOT]);
}

// One run, every kind of store the build writes: the same new token lands in a GitHub secret,
// a Vault field and a GitLab variable; the next rotation moves all three on and only then
// revokes the first token.
#[test]
fn a_mixed_github_vault_gitlab_fan_out_in_one_run() {
    let Some((w, bao, token)) = setup() else {
        return;
    };
    const GL: &str = "glpat-mixed-fan-out-token-0123456789";
    w.sb.add_gitlab_token(GL, true);
    w.sb.add_gitlab_project("grp/app");
    let (addr, gl_url) = (bao.url(), w.sb.gitlab_url());
    let targets = "repo:octo/app\nvault:secret/seqera/ci\ngitlab:grp/app";
    let env = [
        ("INPUT_TARGETS", targets),
        ("INPUT_VAULT-ADDR", addr.as_str()),
        ("INPUT_VAULT-TOKEN", token.as_str()),
        ("INPUT_GITLAB-TOKEN", GL),
        ("INPUT_GITLAB-API-URL", gl_url.as_str()),
    ];
    let dry = w.run(&env, &["--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:#?}");
    assert!(
        dry.all().contains("Vault KV v2 secret `secret/seqera/ci`")
            && dry.all().contains("GitLab project `grp/app`"),
        "the plan names every store: {dry:#?}"
    );
    assert_eq!(w.sb.tokens().len(), 1, "a dry run creates nothing");

    let mut held = Vec::new();
    for force in ["false", "true"] {
        let r = w.run(&[&env[..], &[("INPUT_FORCE", force)]].concat(), &[]);
        assert_eq!(r.code, 0, "{r:#?}");
        assert_eq!(
            r.out("updated-targets"),
            "repo:octo/app,vault:secret/seqera/ci,gitlab:grp/app"
        );
        let gh = w.live_token_in(&World::repo_scope(), SECRET);
        let fields = bao.fields(None, "secret", PATH).unwrap();
        let v = live_in_field(&w, &fields, "TOWER_ACCESS_TOKEN");
        let gl = w.sb.gitlab_variable("grp/app", SECRET).unwrap();
        assert_eq!(
            (v.id, w.sb.token_by_value(&gl.value).unwrap().id),
            (gh.id, gh.id)
        );
        assert_eq!(r.out("token-id"), gh.id.to_string());
        w.assert_no_leak_of(&r, &[&token, GL, ROOT]);
        held.push(gh);
    }
    assert!(held[1].id > held[0].id);
    assert!(
        !w.sb.is_live(&held[0].value),
        "the first token is revoked after the second run"
    );
    assert_eq!(w.live_managed_ids(), vec![held[1].id]);
}

// `min-age` drift (SPEC §5 step 3): a readable store's token id decides. A field that still
// holds the newest token keeps the run not due; one that someone overwrote makes it due.
#[test]
fn a_vault_field_that_lost_the_newest_token_makes_the_rotation_due() {
    let Some((w, bao, token)) = setup() else {
        return;
    };
    let addr = bao.url();
    let env = [vault_env(&addr, &token), vec![("INPUT_MIN-AGE", "30d")]].concat();
    let r = w.run(&env, &[]);
    assert_eq!(r.code, 0, "{r:#?}");
    let first = live_in_field(
        &w,
        &bao.fields(None, "secret", PATH).unwrap(),
        "TOWER_ACCESS_TOKEN",
    );
    let version = bao.version("secret", PATH);

    let r = w.run(&env, &[]);
    assert_eq!((r.code, r.out("rotated")), (0, "false"), "{r:#?}");
    assert_eq!(
        bao.version("secret", PATH),
        version,
        "not due: nothing written"
    );

    bao.put(
        None,
        "secret",
        PATH,
        json!({"TOWER_ACCESS_TOKEN": "someone-else", "other": "keep-me"}),
    );
    let r = w.run(&env, &[]);
    assert_eq!((r.code, r.out("rotated")), (0, "true"), "{r:#?}");
    let fields = bao.fields(None, "secret", PATH).unwrap();
    let second = live_in_field(&w, &fields, "TOWER_ACCESS_TOKEN");
    assert!(second.id > first.id);
    w.assert_no_leak_of(&r, &[&token, ROOT]);
}
