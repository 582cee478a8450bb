//! The fake GitLab CI/CD variables API (project and group level), as GitLab's REST
//! documentation describes it: authentication, ids and URL-encoded paths, the variable
//! JSON, flags kept on update, hidden values never returned, masking rules, environment
//! scopes, 401/403/404/409, and 429 through fault injection.

mod common;

use common::{body_json, client, header};
use reqwest::{Client, Method, RequestBuilder};
use seqera_sandbox::{FaultAction, FaultRule, GitlabVariable, Occurrence, PathMatch, Sandbox};
use serde_json::{json, Value};

const WRITER: &str = "glpat-writer-0123456789";
const READER: &str = "glpat-reader-0123456789";
const PROJECT: &str = "grp/sub/app";
const ENCODED: &str = "grp%2Fsub%2Fapp";
/// A value shaped like a Seqera token (base64 of `{"tid":42}` and a hex part): maskable.
const TOKEN_VALUE: &str = "eyJ0aWQiOjQyfQ==.0123456789abcdef0123";

fn sandbox() -> (Sandbox, u64, u64) {
    let sb = Sandbox::start().unwrap();
    sb.add_gitlab_token(WRITER, true);
    sb.add_gitlab_token(READER, false);
    let project = sb.add_gitlab_project(PROJECT);
    let group = sb.add_gitlab_group("grp");
    (sb, project, group)
}

fn gl(c: &Client, sb: &Sandbox, method: Method, path: &str, token: &str) -> RequestBuilder {
    c.request(method, format!("{}{path}", sb.gitlab_url()))
        .header("private-token", token)
}

async fn create(c: &Client, sb: &Sandbox, owner: &str, body: Value) -> (u16, Value) {
    let r = gl(c, sb, Method::POST, &format!("/{owner}/variables"), WRITER)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), body_json(r).await)
}

#[tokio::test]
async fn authentication_by_private_token_or_bearer() {
    let (sb, _, _) = sandbox();
    let c = client();
    let url = format!("{}/projects/{ENCODED}/variables", sb.gitlab_url());
    let none = c.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        body_json(none).await,
        json!({"message": "401 Unauthorized"})
    );
    let wrong = c
        .get(&url)
        .header("private-token", "glpat-nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let bearer_wrong = c.get(&url).bearer_auth("glpat-nope").send().await.unwrap();
    assert_eq!(bearer_wrong.status(), 401);
    let ok = c
        .get(&url)
        .header("private-token", WRITER)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(body_json(ok).await, json!([]));
    let ok = c.get(&url).bearer_auth(READER).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    // Outside /api/v4 nothing is served.
    let outside = c
        .get(format!(
            "http://{}/projects/{ENCODED}/variables",
            sb.gitlab_addr()
        ))
        .header("private-token", WRITER)
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 404);
}

#[tokio::test]
async fn create_then_read_by_path_or_id_with_gitlabs_shape() {
    let (sb, project, _) = sandbox();
    let c = client();
    let (status, body) = create(
        &c,
        &sb,
        &format!("projects/{ENCODED}"),
        json!({"key": "TOWER_ACCESS_TOKEN", "value": "plain value $HOME"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let want = json!({
        "variable_type": "env_var",
        "key": "TOWER_ACCESS_TOKEN",
        "value": "plain value $HOME",
        "hidden": false,
        "protected": false,
        "masked": false,
        "raw": false,
        "environment_scope": "*",
        "description": null
    });
    assert_eq!(body, want);
    for id in [
        ENCODED.to_string(),
        project.to_string(),
        "GRP%2Fsub%2FApp".to_string(),
    ] {
        let r = gl(
            &c,
            &sb,
            Method::GET,
            &format!("/projects/{id}/variables/TOWER_ACCESS_TOKEN"),
            READER,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 200, "{id}");
        assert!(header(&r, "content-type")
            .unwrap()
            .starts_with("application/json"));
        assert_eq!(body_json(r).await, want, "{id}");
    }
    let list = gl(
        &c,
        &sb,
        Method::GET,
        &format!("/projects/{project}/variables"),
        READER,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(body_json(list).await, json!([want]));
    let stored = sb.gitlab_variable(PROJECT, "TOWER_ACCESS_TOKEN").unwrap();
    assert_eq!(
        (stored.value.as_str(), stored.writes),
        ("plain value $HOME", 1)
    );
}

#[tokio::test]
async fn post_of_an_existing_key_and_bad_input_are_400() {
    let (sb, _, _) = sandbox();
    let c = client();
    let owner = format!("projects/{ENCODED}");
    assert_eq!(
        create(&c, &sb, &owner, json!({"key": "K", "value": "v"}))
            .await
            .0,
        201
    );
    let (status, body) = create(&c, &sb, &owner, json!({"key": "K", "value": "other"})).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": {"key": ["(K) has already been taken"]}})
        )
    );
    assert_eq!(sb.gitlab_variable(PROJECT, "K").unwrap().value, "v");
    let (status, body) = create(&c, &sb, &owner, json!({"key": "A-B", "value": "v"})).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": {"key": ["can contain only letters, digits and '_'."]}})
        )
    );
    let (status, body) = create(&c, &sb, &owner, json!({"value": "v"})).await;
    assert_eq!((status, body), (400, json!({"error": "key is missing"})));
    let (status, body) = create(&c, &sb, &owner, json!({"key": "V"})).await;
    assert_eq!((status, body), (400, json!({"error": "value is missing"})));
    let (status, body) = create(
        &c,
        &sb,
        &owner,
        json!({"key": "T", "value": "v", "variable_type": "secret"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": {"variable_type": ["is not included in the list"]}})
        )
    );
    let long = "x".repeat(10_001);
    let (status, _) = create(&c, &sb, &owner, json!({"key": "L", "value": long})).await;
    assert_eq!(status, 400);
    // The same key under another environment scope is another variable.
    let (status, _) = create(
        &c,
        &sb,
        &owner,
        json!({"key": "K", "value": "prod", "environment_scope": "production"}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(sb.gitlab_variables(PROJECT).len(), 2);
}

// GitLab's masking rule: 8+ characters of a limited alphabet, or, raw, any but white space.
#[tokio::test]
async fn masked_values_must_meet_gitlabs_rule() {
    let (sb, _, _) = sandbox();
    let c = client();
    let owner = format!("projects/{ENCODED}");
    let invalid = json!({"message": {"value": ["is invalid"]}});
    for value in ["short", "has spaces in it", "dollar$sign1", "line\nbreak12"] {
        let (status, body) = create(
            &c,
            &sb,
            &owner,
            json!({"key": "M", "value": value, "masked": true}),
        )
        .await;
        assert_eq!((status, &body), (400, &invalid), "{value:?}");
    }
    assert!(sb.gitlab_variable(PROJECT, "M").is_none());
    let (status, body) = create(
        &c,
        &sb,
        &owner,
        json!({"key": "M", "value": TOKEN_VALUE, "masked": true}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["value"], TOKEN_VALUE,
        "masked is not hidden: the API returns the value"
    );
    let (status, _) = create(
        &c,
        &sb,
        &owner,
        json!({"key": "R", "value": "dollar$sign1", "masked": true, "raw": true}),
    )
    .await;
    assert_eq!(status, 201);
    // An update to a value the rule refuses is refused, and nothing changes.
    let r = gl(
        &c,
        &sb,
        Method::PUT,
        &format!("/{owner}/variables/M"),
        WRITER,
    )
    .json(&json!({"value": "short"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(sb.gitlab_variable(PROJECT, "M").unwrap().value, TOKEN_VALUE);
}

#[tokio::test]
async fn hidden_values_are_never_returned() {
    let (sb, _, _) = sandbox();
    let c = client();
    let owner = format!("projects/{ENCODED}");
    let (status, body) = create(
        &c,
        &sb,
        &owner,
        json!({"key": "TOWER_ACCESS_TOKEN", "value": TOKEN_VALUE, "masked_and_hidden": true, "raw": true}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["value"], Value::Null);
    assert_eq!(
        (
            body["hidden"].clone(),
            body["masked"].clone(),
            body["raw"].clone()
        ),
        (json!(true), json!(true), json!(true))
    );
    let path = format!("/{owner}/variables/TOWER_ACCESS_TOKEN");
    let r = gl(&c, &sb, Method::GET, &path, WRITER)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(!text.contains(TOKEN_VALUE), "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["value"],
        Value::Null
    );
    let list = gl(&c, &sb, Method::GET, &format!("/{owner}/variables"), WRITER)
        .send()
        .await
        .unwrap();
    assert!(!list.text().await.unwrap().contains(TOKEN_VALUE));
    // Writable, never readable; it stays hidden and masked.
    let newer = "eyJ0aWQiOjQzfQ==.fedcba9876543210fedc";
    let r = gl(&c, &sb, Method::PUT, &path, WRITER)
        .json(&json!({"value": newer}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = body_json(r).await;
    assert_eq!(
        (body["value"].clone(), body["hidden"].clone()),
        (Value::Null, json!(true))
    );
    let stored = sb.gitlab_variable(PROJECT, "TOWER_ACCESS_TOKEN").unwrap();
    assert_eq!(
        (
            stored.value.as_str(),
            stored.hidden,
            stored.masked,
            stored.writes
        ),
        (newer, true, true, 2)
    );
    let r = gl(&c, &sb, Method::PUT, &path, WRITER)
        .json(&json!({"value": newer, "masked": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        sb.gitlab_variable(PROJECT, "TOWER_ACCESS_TOKEN")
            .unwrap()
            .masked
    );
}

// SPEC §9: an existing variable keeps its flags; a PUT changes only what it names.
#[tokio::test]
async fn put_keeps_the_flags_it_does_not_name() {
    let (sb, _, _) = sandbox();
    let c = client();
    let mut seeded = GitlabVariable::new("TOWER_ACCESS_TOKEN", "old-value-1234");
    seeded.variable_type = "file".into();
    seeded.protected = true;
    seeded.masked = true;
    seeded.raw = true;
    seeded.description = Some("used by the launcher".into());
    sb.put_gitlab_variable(PROJECT, seeded.clone());
    let r = gl(
        &c,
        &sb,
        Method::PUT,
        &format!("/projects/{ENCODED}/variables/TOWER_ACCESS_TOKEN"),
        WRITER,
    )
    .json(&json!({"value": TOKEN_VALUE}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body = body_json(r).await;
    assert_eq!(
        body,
        json!({
            "variable_type": "file", "key": "TOWER_ACCESS_TOKEN", "value": TOKEN_VALUE,
            "hidden": false, "protected": true, "masked": true, "raw": true,
            "environment_scope": "*", "description": "used by the launcher"
        })
    );
    let stored = sb.gitlab_variable(PROJECT, "TOWER_ACCESS_TOKEN").unwrap();
    assert_eq!(
        stored,
        GitlabVariable {
            value: TOKEN_VALUE.into(),
            writes: 1,
            ..seeded.clone()
        }
    );
    // A flag that is named changes; the others still stay.
    let r = gl(
        &c,
        &sb,
        Method::PUT,
        &format!("/projects/{ENCODED}/variables/TOWER_ACCESS_TOKEN"),
        WRITER,
    )
    .header("content-type", "application/x-www-form-urlencoded")
    .body(format!(
        "value={}&protected=false",
        TOKEN_VALUE.replace('=', "%3D")
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let stored = sb.gitlab_variable(PROJECT, "TOWER_ACCESS_TOKEN").unwrap();
    assert_eq!(
        (
            stored.protected,
            stored.masked,
            stored.raw,
            stored.variable_type.as_str()
        ),
        (false, true, true, "file")
    );
    // PUT never creates.
    let r = gl(
        &c,
        &sb,
        Method::PUT,
        &format!("/projects/{ENCODED}/variables/MISSING"),
        WRITER,
    )
    .json(&json!({"value": "x"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        body_json(r).await,
        json!({"message": "404 Variable Not Found"})
    );
    assert!(sb.gitlab_variable(PROJECT, "MISSING").is_none());
}

#[tokio::test]
async fn unknown_projects_groups_and_variables_are_404() {
    let (sb, project, group) = sandbox();
    let c = client();
    let cases = [
        (
            Method::GET,
            "/projects/grp%2Fnope/variables".to_string(),
            "404 Project Not Found",
        ),
        (
            Method::POST,
            "/projects/999999/variables".to_string(),
            "404 Project Not Found",
        ),
        (
            Method::GET,
            "/groups/nope/variables".to_string(),
            "404 Group Not Found",
        ),
        // A project's id is not a group's, nor the other way round.
        (
            Method::GET,
            format!("/groups/{project}/variables"),
            "404 Group Not Found",
        ),
        (
            Method::GET,
            format!("/projects/{group}/variables"),
            "404 Project Not Found",
        ),
        (
            Method::GET,
            format!("/projects/{ENCODED}/variables/NOPE"),
            "404 Variable Not Found",
        ),
        (
            Method::DELETE,
            format!("/projects/{ENCODED}/variables/NOPE"),
            "404 Variable Not Found",
        ),
    ];
    for (method, path, message) in cases {
        let r = gl(&c, &sb, method.clone(), &path, WRITER)
            .json(&json!({"key": "K", "value": "v"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
        assert_eq!(
            body_json(r).await,
            json!({"message": message}),
            "{method} {path}"
        );
    }
    // An unencoded path is another route, which does not exist.
    let r = gl(
        &c,
        &sb,
        Method::GET,
        "/projects/grp/sub/app/variables",
        WRITER,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    assert!(sb.gitlab_variables(PROJECT).is_empty());
}

#[tokio::test]
async fn a_read_only_token_reads_but_never_writes() {
    let (sb, _, _) = sandbox();
    let c = client();
    sb.put_gitlab_variable(PROJECT, GitlabVariable::new("K", "seeded"));
    let base = format!("/projects/{ENCODED}/variables");
    let r = gl(&c, &sb, Method::GET, &format!("{base}/K"), READER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (method, path) in [
        (Method::POST, base.clone()),
        (Method::PUT, format!("{base}/K")),
        (Method::DELETE, format!("{base}/K")),
    ] {
        let r = gl(&c, &sb, method.clone(), &path, READER)
            .json(&json!({"key": "N", "value": "new"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method}");
        assert!(header(&r, "www-authenticate")
            .unwrap()
            .contains("insufficient_scope"));
        let body = body_json(r).await;
        assert_eq!(
            (body["error"].clone(), body["scope"].clone()),
            (json!("insufficient_scope"), json!("api")),
            "{method}"
        );
    }
    assert_eq!(
        sb.gitlab_variables(PROJECT),
        vec![GitlabVariable::new("K", "seeded")]
    );
}

#[tokio::test]
async fn environment_scopes_need_the_filter_when_a_key_is_ambiguous() {
    let (sb, _, _) = sandbox();
    let c = client();
    sb.put_gitlab_variable(PROJECT, GitlabVariable::new("K", "all-envs"));
    sb.put_gitlab_variable(
        PROJECT,
        GitlabVariable {
            environment_scope: "production".into(),
            ..GitlabVariable::new("K", "prod")
        },
    );
    let path = format!("/projects/{ENCODED}/variables/K");
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let r = gl(&c, &sb, method.clone(), &path, WRITER)
            .json(&json!({"value": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409, "{method}");
        assert_eq!(
            body_json(r).await["message"],
            "There are multiple variables with provided parameters. Please use 'filter[environment_scope]'"
        );
    }
    let r = gl(
        &c,
        &sb,
        Method::GET,
        &format!("{path}?filter%5Benvironment_scope%5D=production"),
        WRITER,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(body_json(r).await["value"], "prod");
    let r = gl(
        &c,
        &sb,
        Method::PUT,
        &format!("{path}?filter[environment_scope]=*"),
        WRITER,
    )
    .json(&json!({"value": "all-new"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sb.gitlab_variable(PROJECT, "K").unwrap().value, "all-new");
    let r = gl(
        &c,
        &sb,
        Method::DELETE,
        &format!("{path}?filter[environment_scope]=production"),
        WRITER,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    let r = gl(&c, &sb, Method::GET, &path, WRITER)
        .send()
        .await
        .unwrap();
    assert_eq!(body_json(r).await["value"], "all-new");
}

#[tokio::test]
async fn group_variables_work_like_project_variables() {
    let (sb, _, group) = sandbox();
    sb.add_gitlab_group("grp/sub");
    let c = client();
    for owner in ["groups/grp%2Fsub".to_string(), format!("groups/{group}")] {
        let (status, body) = create(
            &c,
            &sb,
            &owner,
            json!({"key": "SEQERA", "value": TOKEN_VALUE, "masked_and_hidden": true}),
        )
        .await;
        assert_eq!(status, 201, "{owner}: {body}");
        assert_eq!(body["value"], Value::Null);
        let r = gl(
            &c,
            &sb,
            Method::DELETE,
            &format!("/{owner}/variables/SEQERA"),
            WRITER,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 204);
        let r = gl(
            &c,
            &sb,
            Method::GET,
            &format!("/{owner}/variables/SEQERA"),
            WRITER,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 404);
    }
    let (status, _) = create(
        &c,
        &sb,
        "groups/grp",
        json!({"key": "SEQERA", "value": "v"}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(sb.gitlab_variable("grp", "SEQERA").unwrap().value, "v");
    assert!(sb.gitlab_variable("grp/sub", "SEQERA").is_none());
}

#[tokio::test]
async fn lists_are_paged_like_gitlab() {
    let (sb, _, _) = sandbox();
    let c = client();
    for i in 0..25 {
        sb.put_gitlab_variable(PROJECT, GitlabVariable::new(&format!("V{i:02}"), "v"));
    }
    let r = gl(
        &c,
        &sb,
        Method::GET,
        &format!("/projects/{ENCODED}/variables"),
        WRITER,
    )
    .send()
    .await
    .unwrap();
    let h = |r: &reqwest::Response, n: &str| header(r, n).unwrap().to_string();
    assert_eq!(
        (
            h(&r, "x-page"),
            h(&r, "x-per-page"),
            h(&r, "x-total"),
            h(&r, "x-total-pages"),
            h(&r, "x-next-page")
        ),
        ("1".into(), "20".into(), "25".into(), "2".into(), "2".into())
    );
    assert_eq!(body_json(r).await.as_array().unwrap().len(), 20);
    let r = gl(
        &c,
        &sb,
        Method::GET,
        &format!("/projects/{ENCODED}/variables?page=2"),
        WRITER,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        (h(&r, "x-next-page"), h(&r, "x-prev-page")),
        (String::new(), "1".into())
    );
    let items = body_json(r).await;
    assert_eq!(items.as_array().unwrap().len(), 5);
    assert_eq!(items[4]["key"], "V24");
}

// GitLab's rate limit (429 with Retry-After) comes from the fault rules; the write is not
// performed.
#[tokio::test]
async fn faults_apply_to_gitlab() {
    let (sb, _, _) = sandbox();
    let c = client();
    sb.add_fault(FaultRule::gitlab(
        "POST",
        PathMatch::Prefix(format!("/api/v4/projects/{ENCODED}/variables")),
        Occurrence::Nth(1),
        FaultAction::too_many_requests(7),
    ));
    sb.add_fault(FaultRule::gitlab(
        "PUT",
        PathMatch::Suffix("/variables/K".into()),
        Occurrence::Nth(1),
        FaultAction::perform_then(502),
    ));
    let owner = format!("projects/{ENCODED}");
    let r = gl(
        &c,
        &sb,
        Method::POST,
        &format!("/{owner}/variables"),
        WRITER,
    )
    .json(&json!({"key": "K", "value": "v1"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), Some("7"));
    assert!(sb.gitlab_variable(PROJECT, "K").is_none());
    assert_eq!(
        create(&c, &sb, &owner, json!({"key": "K", "value": "v1"}))
            .await
            .0,
        201
    );
    let r = gl(
        &c,
        &sb,
        Method::PUT,
        &format!("/{owner}/variables/K"),
        WRITER,
    )
    .json(&json!({"value": "v2"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        sb.gitlab_variable(PROJECT, "K").unwrap().value,
        "v2",
        "performed, then 502"
    );
    let log = sb.requests();
    assert!(log.iter().all(|r| r.api == seqera_sandbox::Api::Gitlab));
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        [Some(429), Some(201), Some(502)]
    );
}
