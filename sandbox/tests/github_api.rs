//! The fake GitHub REST API against `github-secrets.openapi.json`: required
//! headers, rate-limit headers, repositories, public keys, secret writes and their
//! validation, permissions, environments, and organization secrets.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::{body_json, client, gh, header, sandbox, seal, sealed_body, READER, UA, WRITER};
use reqwest::Method;
use seqera_sandbox::SecretScope;
use serde_json::json;

#[tokio::test]
async fn every_required_header_is_checked() {
    let (sb, _, _) = sandbox();
    let c = client();
    let url = format!("{}/repos/octo/app", sb.github_url());
    let full = [
        ("authorization", format!("Bearer {WRITER}")),
        ("accept", "application/vnd.github+json".to_owned()),
        ("x-github-api-version", "2022-11-28".to_owned()),
        ("user-agent", UA.to_owned()),
    ];
    let send = |skip: &'static str, replace: Option<(&'static str, &'static str)>| {
        let mut req = c.get(&url);
        for (name, value) in &full {
            if *name == skip {
                continue;
            }
            let value = match replace {
                Some((n, v)) if n == *name => v.to_owned(),
                _ => value.clone(),
            };
            req = req.header(*name, value);
        }
        req.send()
    };
    assert_eq!(send("", None).await.unwrap().status(), 200);

    let no_auth = send("authorization", None).await.unwrap();
    assert_eq!(no_auth.status(), 401);
    assert_eq!(
        body_json(no_auth).await["message"],
        "Requires authentication"
    );
    let bad_auth = send("", Some(("authorization", "Bearer nope")))
        .await
        .unwrap();
    assert_eq!(bad_auth.status(), 401);
    let body = body_json(bad_auth).await;
    assert_eq!(body["message"], "Bad credentials");
    assert_eq!(body["status"], "401");
    assert!(body["documentation_url"].is_string());

    let no_ua = send("user-agent", None).await.unwrap();
    assert_eq!(no_ua.status(), 403);
    assert!(no_ua.text().await.unwrap().contains("User-Agent"));
    let wrong_ua = send("", Some(("user-agent", "curl/8.0"))).await.unwrap();
    assert_eq!(wrong_ua.status(), 403);

    assert_eq!(
        send("x-github-api-version", None).await.unwrap().status(),
        400
    );
    let old = send("", Some(("x-github-api-version", "2021-01-01")))
        .await
        .unwrap();
    assert_eq!(old.status(), 400);
    assert!(body_json(old).await["message"]
        .as_str()
        .unwrap()
        .contains("is not a supported version"));

    assert_eq!(send("accept", None).await.unwrap().status(), 400);
    assert_eq!(
        send("", Some(("accept", "application/json")))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        send("", Some(("accept", "text/html")))
            .await
            .unwrap()
            .status(),
        415
    );
    // A list that includes the media type is fine.
    let listed = send(
        "",
        Some(("accept", "application/json, application/vnd.github+json")),
    );
    assert_eq!(listed.await.unwrap().status(), 200);
}

#[tokio::test]
async fn answers_carry_rate_limit_headers() {
    let (sb, _, _) = sandbox();
    let c = client();
    let first = gh(&c, &sb, Method::GET, "/repos/octo/app", WRITER)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&first, "x-ratelimit-limit"), Some("5000"));
    assert_eq!(header(&first, "x-ratelimit-remaining"), Some("4999"));
    assert_eq!(header(&first, "x-ratelimit-used"), Some("1"));
    assert_eq!(header(&first, "x-ratelimit-resource"), Some("core"));
    assert_eq!(
        header(&first, "x-github-api-version-selected"),
        Some("2022-11-28")
    );
    assert!(header(&first, "x-github-request-id").is_some());
    let reset: u64 = header(&first, "x-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset > now && reset <= now + 3600);
    // Errors count too, and carry the same headers.
    let missing = gh(&c, &sb, Method::GET, "/repos/octo/nope", WRITER)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(header(&missing, "x-ratelimit-remaining"), Some("4998"));
    let rate = body_json(
        gh(&c, &sb, Method::GET, "/rate_limit", WRITER)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(rate["resources"]["core"]["limit"], 5000);
}

#[tokio::test]
async fn repositories_are_found_case_insensitively() {
    let (sb, _, _) = sandbox();
    let id = sb.repo_id("octo", "app").unwrap();
    let c = client();
    let resp = gh(&c, &sb, Method::GET, "/repos/Octo/APP", WRITER)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let repo = body_json(resp).await;
    assert_eq!(repo["id"], id);
    assert_eq!(repo["name"], "app");
    assert_eq!(repo["full_name"], "octo/app");
    assert_eq!(repo["owner"]["login"], "octo");
    assert_eq!(repo["owner"]["type"], "User");
    assert!(repo["node_id"].is_string() && repo["private"].is_boolean());
    let missing = gh(&c, &sb, Method::GET, "/repos/octo/nope", WRITER)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body = body_json(missing).await;
    assert_eq!(body["message"], "Not Found");
    assert!(body["documentation_url"].is_string());
}

#[tokio::test]
async fn every_scope_has_its_own_public_key() {
    let (sb, _, _) = sandbox();
    sb.add_environment("octo", "app", "prod");
    sb.add_org("octo");
    let c = client();
    let paths = [
        "/repos/octo/app/actions/secrets/public-key",
        "/repos/octo/app/environments/prod/secrets/public-key",
        "/repos/octo/app/dependabot/secrets/public-key",
        "/repos/octo/app/codespaces/secrets/public-key",
        "/orgs/octo/actions/secrets/public-key",
        "/orgs/octo/dependabot/secrets/public-key",
        "/orgs/octo/codespaces/secrets/public-key",
    ];
    let mut ids = Vec::new();
    for path in paths {
        // A read-only token may read public keys.
        let resp = gh(&c, &sb, Method::GET, path, READER).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let key = body_json(resp).await;
        assert_eq!(
            STANDARD.decode(key["key"].as_str().unwrap()).unwrap().len(),
            32
        );
        ids.push(key["key_id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), paths.len());
    let repo_key = sb.public_key(&SecretScope::repo("octo", "app")).unwrap();
    let body = body_json(
        gh(&c, &sb, Method::GET, paths[0], WRITER)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        body,
        json!({ "key_id": repo_key.key_id, "key": repo_key.key })
    );
    let unknown = gh(
        &c,
        &sb,
        Method::GET,
        "/orgs/nope/actions/secrets/public-key",
        WRITER,
    );
    assert_eq!(unknown.send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn put_creates_with_201_then_updates_with_204() {
    let (sb, _, _) = sandbox();
    let scope = SecretScope::repo("octo", "app");
    let c = client();
    let path = "/repos/octo/app/actions/secrets/tower_access_token";

    let created = gh(&c, &sb, Method::PUT, path, WRITER)
        .json(&sealed_body(&sb, &scope, "first"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(body_json(created).await, json!({}));
    let updated = gh(&c, &sb, Method::PUT, path, WRITER)
        .json(&sealed_body(&sb, &scope, "second"))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 204);
    assert!(updated.text().await.unwrap().is_empty());

    // Secret names are stored upper-case, as on GitHub.
    let stored = sb.secret(&scope, "TOWER_ACCESS_TOKEN").unwrap();
    assert_eq!(stored.plaintext, "second");
    assert_eq!(stored.writes, 2);
    assert_eq!(stored.key_id, sb.public_key(&scope).unwrap().key_id);
    assert_eq!(stored.visibility, None);
    assert_eq!(
        sb.secrets(&scope).keys().collect::<Vec<_>>(),
        ["TOWER_ACCESS_TOKEN"]
    );

    let meta = body_json(gh(&c, &sb, Method::GET, path, READER).send().await.unwrap()).await;
    assert_eq!(meta["name"], "TOWER_ACCESS_TOKEN");
    assert_eq!(meta["created_at"].as_str().unwrap(), stored.created_at);
    assert_eq!(meta.as_object().unwrap().len(), 3);

    let list = gh(
        &c,
        &sb,
        Method::GET,
        "/repos/octo/app/actions/secrets",
        READER,
    );
    let list = body_json(list.send().await.unwrap()).await;
    assert_eq!(list["total_count"], 1);
    assert_eq!(list["secrets"][0]["name"], "TOWER_ACCESS_TOKEN");
}

#[tokio::test]
async fn writes_are_validated() {
    let (sb, _, _) = sandbox();
    let scope = SecretScope::repo("octo", "app");
    let key = sb.public_key(&scope).unwrap();
    let c = client();
    let put = |name: &str, body: serde_json::Value| {
        gh(
            &c,
            &sb,
            Method::PUT,
            &format!("/repos/octo/app/actions/secrets/{name}"),
            WRITER,
        )
        .json(&body)
        .send()
    };
    let good = seal(&key.key, "v");
    for bad_name in ["1ABC", "GITHUB_TOKEN", "github_x", "A-B"] {
        let resp = put(
            bad_name,
            json!({ "encrypted_value": good, "key_id": key.key_id }),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 422, "{bad_name}");
        assert!(body_json(resp).await["message"]
            .as_str()
            .unwrap()
            .contains("Secret names"));
    }
    let wrong_key = put("S", json!({ "encrypted_value": good, "key_id": "123" }))
        .await
        .unwrap();
    assert_eq!(wrong_key.status(), 422);
    assert!(body_json(wrong_key).await["message"]
        .as_str()
        .unwrap()
        .contains("key_id"));
    let not_base64 = put(
        "S",
        json!({ "encrypted_value": "not base64!", "key_id": key.key_id }),
    );
    assert_eq!(not_base64.await.unwrap().status(), 422);
    let not_a_box = put(
        "S",
        json!({ "encrypted_value": STANDARD.encode([7u8; 64]), "key_id": key.key_id }),
    );
    assert_eq!(not_a_box.await.unwrap().status(), 422);
    let other_key = sb.public_key(&SecretScope::Dependabot {
        owner: "octo".into(),
        repo: "app".into(),
    });
    let sealed_for_other = seal(&other_key.unwrap().key, "v");
    let misaddressed = put(
        "S",
        json!({ "encrypted_value": sealed_for_other, "key_id": key.key_id }),
    );
    assert_eq!(misaddressed.await.unwrap().status(), 422);
    let missing = put("S", json!({ "encrypted_value": good })).await.unwrap();
    assert_eq!(missing.status(), 422);
    assert!(body_json(missing).await["message"]
        .as_str()
        .unwrap()
        .contains("key_id"));
    let not_json = gh(
        &c,
        &sb,
        Method::PUT,
        "/repos/octo/app/actions/secrets/S",
        WRITER,
    )
    .body("{")
    .send()
    .await
    .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(
        body_json(not_json).await["message"],
        "Problems parsing JSON"
    );
    assert!(sb.secrets(&scope).is_empty());
}

#[tokio::test]
async fn a_rotated_public_key_rejects_the_old_key_id() {
    let (sb, _, _) = sandbox();
    let scope = SecretScope::repo("octo", "app");
    let old = sealed_body(&sb, &scope, "v");
    sb.rotate_public_key(&scope);
    let c = client();
    let path = "/repos/octo/app/actions/secrets/S";
    let stale = gh(&c, &sb, Method::PUT, path, WRITER)
        .json(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 422);
    assert!(sb.secret(&scope, "S").is_none());
    let fresh = gh(&c, &sb, Method::PUT, path, WRITER)
        .json(&sealed_body(&sb, &scope, "v"))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 201);
}

#[tokio::test]
async fn a_read_only_token_cannot_write() {
    let (sb, _, _) = sandbox();
    sb.add_environment("octo", "app", "prod");
    sb.add_org("octo");
    let c = client();
    let cases = [
        (SecretScope::repo("octo", "app"), "secrets=write"),
        (
            SecretScope::environment("octo", "app", "prod"),
            "environments=write",
        ),
        (SecretScope::org("octo"), "organization_secrets=write"),
    ];
    for (scope, permission) in cases {
        let mut body = sealed_body(&sb, &scope, "v");
        body["visibility"] = json!("all");
        let resp = gh(
            &c,
            &sb,
            Method::PUT,
            &format!("{}/S", scope.secrets_path()),
            READER,
        )
        .json(&body)
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), 403, "{scope:?}");
        assert_eq!(
            header(&resp, "x-accepted-github-permissions"),
            Some(permission)
        );
        let body = body_json(resp).await;
        assert_eq!(body["message"], "Resource not accessible by integration");
        assert!(sb.secret(&scope, "S").is_none());
    }
    let delete = gh(
        &c,
        &sb,
        Method::DELETE,
        "/repos/octo/app/actions/secrets/S",
        READER,
    );
    assert_eq!(delete.send().await.unwrap().status(), 403);
    // Unknown repositories are 404 before any permission check.
    let unknown = gh(
        &c,
        &sb,
        Method::PUT,
        "/repos/octo/nope/actions/secrets/S",
        READER,
    );
    assert_eq!(unknown.json(&json!({})).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn environment_names_with_spaces_and_slashes() {
    let (sb, _, _) = sandbox();
    let env = "prod eu/west";
    sb.add_environment("octo", "app", env);
    let scope = SecretScope::environment("octo", "app", env);
    assert_eq!(
        scope.secrets_path(),
        "/repos/octo/app/environments/prod%20eu%2Fwest/secrets"
    );
    let c = client();
    let resp = gh(
        &c,
        &sb,
        Method::GET,
        "/repos/octo/app/environments/prod%20eu%2Fwest",
        READER,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(body_json(resp).await["name"], env);
    let key = gh(
        &c,
        &sb,
        Method::GET,
        &format!("{}/public-key", scope.secrets_path()),
        READER,
    );
    let key = body_json(key.send().await.unwrap()).await;
    assert_eq!(key["key_id"], sb.public_key(&scope).unwrap().key_id);
    let put = gh(
        &c,
        &sb,
        Method::PUT,
        &format!("{}/TOKEN", scope.secrets_path()),
        WRITER,
    )
    .json(&sealed_body(&sb, &scope, "env value"))
    .send()
    .await
    .unwrap();
    assert_eq!(put.status(), 201);
    // Case-insensitive environment lookup, as on GitHub.
    let upper = SecretScope::environment("octo", "app", "PROD EU/WEST");
    assert_eq!(sb.secret(&upper, "token").unwrap().plaintext, "env value");
    // An unencoded slash is a different (unknown) route.
    let raw = gh(
        &c,
        &sb,
        Method::GET,
        "/repos/octo/app/environments/prod%20eu/west/secrets/public-key",
        READER,
    );
    assert_eq!(raw.send().await.unwrap().status(), 404);
    let unknown = gh(
        &c,
        &sb,
        Method::GET,
        "/repos/octo/app/environments/staging/secrets/public-key",
        READER,
    );
    assert_eq!(unknown.send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn organization_secrets_keep_visibility_and_selected_repositories() {
    let (sb, _, _) = sandbox();
    sb.add_org("octo");
    let app = sb.repo_id("octo", "app").unwrap();
    let lib = sb.add_repo("octo", "lib");
    let outsider = sb.add_repo("someone", "else");
    let scope = SecretScope::org("octo");
    let c = client();
    let path = "/orgs/octo/actions/secrets/TOWER_ACCESS_TOKEN";
    let put = |extra: serde_json::Value| {
        let mut body = sealed_body(&sb, &scope, "org value");
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        gh(&c, &sb, Method::PUT, path, WRITER).json(&body).send()
    };

    assert_eq!(
        put(json!({})).await.unwrap().status(),
        422,
        "visibility is required"
    );
    assert_eq!(
        put(json!({ "visibility": "public" }))
            .await
            .unwrap()
            .status(),
        422
    );
    let foreign = put(json!({ "visibility": "selected", "selected_repository_ids": [outsider] }));
    assert_eq!(foreign.await.unwrap().status(), 422);
    let ids_without_selected =
        put(json!({ "visibility": "all", "selected_repository_ids": [app] }));
    assert_eq!(ids_without_selected.await.unwrap().status(), 422);
    assert!(sb.secret(&scope, "TOWER_ACCESS_TOKEN").is_none());

    // The contract allows ids as integers or strings.
    let created =
        put(json!({ "visibility": "selected", "selected_repository_ids": [app, lib.to_string()] }));
    assert_eq!(created.await.unwrap().status(), 201);
    let stored = sb.secret(&scope, "TOWER_ACCESS_TOKEN").unwrap();
    assert_eq!(stored.plaintext, "org value");
    assert_eq!(stored.visibility.as_deref(), Some("selected"));
    assert_eq!(stored.selected_repository_ids, [app, lib]);

    let meta = body_json(gh(&c, &sb, Method::GET, path, READER).send().await.unwrap()).await;
    assert_eq!(meta["visibility"], "selected");
    let url = meta["selected_repositories_url"].as_str().unwrap();
    assert_eq!(url, format!("{}{path}/repositories", sb.github_url()));
    let repos = c
        .get(url)
        .header("authorization", format!("Bearer {READER}"))
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .header("user-agent", UA)
        .send()
        .await
        .unwrap();
    let repos = body_json(repos).await;
    assert_eq!(repos["total_count"], 2);
    assert_eq!(repos["repositories"][1]["full_name"], "octo/lib");
    assert_eq!(repos["repositories"][0]["owner"]["type"], "Organization");

    // Re-written as private: the list is gone, and so is the URL.
    assert_eq!(
        put(json!({ "visibility": "private" }))
            .await
            .unwrap()
            .status(),
        204
    );
    let stored = sb.secret(&scope, "TOWER_ACCESS_TOKEN").unwrap();
    assert_eq!(
        (stored.visibility.as_deref(), stored.writes),
        (Some("private"), 2)
    );
    assert!(stored.selected_repository_ids.is_empty());
    let meta = body_json(gh(&c, &sb, Method::GET, path, READER).send().await.unwrap()).await;
    assert!(meta.get("selected_repositories_url").is_none());
}

#[tokio::test]
async fn selected_repositories_can_be_managed() {
    let (sb, _, _) = sandbox();
    sb.add_org("octo");
    let app = sb.repo_id("octo", "app").unwrap();
    let lib = sb.add_repo("octo", "lib");
    let scope = SecretScope::org("octo");
    sb.put_secret_plain(&scope, "S", "seeded", Some("selected"), &[app]);
    assert_eq!(sb.secret(&scope, "S").unwrap().writes, 0);
    let c = client();
    let base = "/orgs/octo/actions/secrets/S/repositories";
    let add = gh(&c, &sb, Method::PUT, &format!("{base}/{lib}"), WRITER)
        .send()
        .await
        .unwrap();
    assert_eq!(add.status(), 204);
    assert_eq!(
        sb.secret(&scope, "S").unwrap().selected_repository_ids,
        [app, lib]
    );
    let set = gh(&c, &sb, Method::PUT, base, WRITER)
        .json(&json!({ "selected_repository_ids": [lib] }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 204);
    assert_eq!(
        sb.secret(&scope, "S").unwrap().selected_repository_ids,
        [lib]
    );
    sb.put_secret_plain(&scope, "ALL", "x", Some("all"), &[]);
    let conflict = gh(
        &c,
        &sb,
        Method::PUT,
        &format!("/orgs/octo/actions/secrets/ALL/repositories/{lib}"),
        WRITER,
    );
    assert_eq!(conflict.send().await.unwrap().status(), 409);
}

#[tokio::test]
async fn dependabot_and_codespaces_scopes_are_separate() {
    let (sb, _, _) = sandbox();
    sb.add_org("octo");
    let c = client();
    let scopes = [
        SecretScope::Dependabot {
            owner: "octo".into(),
            repo: "app".into(),
        },
        SecretScope::Codespaces {
            owner: "octo".into(),
            repo: "app".into(),
        },
        SecretScope::OrgDependabot { org: "octo".into() },
        SecretScope::OrgCodespaces { org: "octo".into() },
    ];
    for (i, scope) in scopes.iter().enumerate() {
        let mut body = sealed_body(&sb, scope, &format!("value {i}"));
        if scope.is_org() {
            body["visibility"] = json!("private");
        }
        let resp = gh(
            &c,
            &sb,
            Method::PUT,
            &format!("{}/S", scope.secrets_path()),
            WRITER,
        )
        .json(&body)
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), 201, "{scope:?}");
    }
    for (i, scope) in scopes.iter().enumerate() {
        assert_eq!(
            sb.secret(scope, "S").unwrap().plaintext,
            format!("value {i}")
        );
    }
    assert!(sb.secret(&SecretScope::repo("octo", "app"), "S").is_none());
    assert!(sb.secret(&SecretScope::org("octo"), "S").is_none());
}

#[tokio::test]
async fn unknown_routes_and_methods_are_404() {
    let (sb, _, _) = sandbox();
    let c = client();
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/user"),
        (Method::POST, "/repos/octo/app/actions/secrets/S"),
        (Method::DELETE, "/repos/octo/app/actions/secrets/public-key"),
        (Method::GET, "/repos/octo/app/pages/secrets/public-key"),
        (
            Method::GET,
            "/repos/octo/app/actions/secrets/S/repositories",
        ),
        (Method::GET, "/repos/octo/app/actions/secrets/MISSING"),
    ] {
        let resp = gh(&c, &sb, method.clone(), path, WRITER)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method} {path}");
    }
}

#[tokio::test]
async fn lists_are_paginated_like_github() {
    let (sb, _, _) = sandbox();
    let scope = SecretScope::repo("octo", "app");
    for i in 0..5 {
        sb.put_secret_plain(&scope, &format!("S{i}"), "x", None, &[]);
    }
    let c = client();
    let resp = gh(
        &c,
        &sb,
        Method::GET,
        "/repos/octo/app/actions/secrets?per_page=2&page=2",
        READER,
    )
    .send()
    .await
    .unwrap();
    let link = header(&resp, "link").unwrap().to_owned();
    assert!(link.contains("page=3>; rel=\"next\""), "{link}");
    assert!(link.contains("page=3>; rel=\"last\""), "{link}");
    assert!(link.contains("page=1>; rel=\"prev\""), "{link}");
    let body = body_json(resp).await;
    assert_eq!(body["total_count"], 5);
    let names: Vec<&str> = body["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["S2", "S3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_all_land() {
    let (sb, _, _) = sandbox();
    let scope = SecretScope::repo("octo", "app");
    let c = client();
    let started = std::time::Instant::now();
    let writes = (0..64).map(|i| {
        gh(
            &c,
            &sb,
            Method::PUT,
            &format!("{}/S{i}", scope.secrets_path()),
            WRITER,
        )
        .json(&sealed_body(&sb, &scope, &format!("v{i}")))
        .send()
    });
    let mut tasks = Vec::new();
    for w in writes {
        tasks.push(tokio::spawn(w));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status(), 201);
    }
    let stored = sb.secrets(&scope);
    assert_eq!(stored.len(), 64);
    assert_eq!(stored["S63"].plaintext, "v63");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn write_limits_answer_a_secondary_rate_limit_and_do_not_perform() {
    let (sb, _, _) = sandbox();
    let scope = SecretScope::repo("octo", "app");
    let c = client();
    let path = "/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN";
    let window = std::time::Duration::from_millis(400);
    sb.set_write_limits(&[(2, window), (3, std::time::Duration::from_secs(60))]);
    let put = |v: &'static str| {
        gh(&c, &sb, Method::PUT, path, WRITER)
            .json(&sealed_body(&sb, &scope, v))
            .send()
    };
    assert_eq!(put("1").await.unwrap().status(), 201);
    assert_eq!(put("2").await.unwrap().status(), 204);
    // Reads are not content-creating: never limited.
    let key = gh(
        &c,
        &sb,
        Method::GET,
        "/repos/octo/app/actions/secrets/public-key",
        READER,
    );
    assert_eq!(key.send().await.unwrap().status(), 200);
    let limited = put("3").await.unwrap();
    assert_eq!(limited.status(), 403);
    assert_eq!(header(&limited, "retry-after"), Some("1"));
    assert!(body_json(limited).await["message"]
        .as_str()
        .unwrap()
        .contains("secondary rate limit"));
    assert_eq!(
        sb.secret(&scope, "TOWER_ACCESS_TOKEN").unwrap().plaintext,
        "2"
    );
    assert_eq!(sb.limited_answers(), 1);
    // The short window slides on; the hour's third write is the last.
    tokio::time::sleep(window).await;
    assert_eq!(put("4").await.unwrap().status(), 204);
    tokio::time::sleep(window).await;
    let limited = put("5").await.unwrap();
    assert_eq!(limited.status(), 403);
    assert_eq!(header(&limited, "retry-after"), Some("60"));
    assert_eq!(sb.limited_answers(), 2);
    assert_eq!(sb.secret(&scope, "TOWER_ACCESS_TOKEN").unwrap().writes, 3);
    sb.set_write_limits(&[]);
    assert_eq!(put("6").await.unwrap().status(), 204);
}
