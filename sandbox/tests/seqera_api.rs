//! The fake Seqera Platform API against `seqera-tokens.openapi.yaml` and SPEC §1:
//! token format, shapes, validation, revocation and authentication.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::{body_json, client, header, sandbox, sq};
use reqwest::Method;
use seqera_sandbox::Sandbox;
use serde_json::json;

fn is_seqera_timestamp(s: &str) -> bool {
    // 2024-05-01T12:34:56.789Z
    let b = s.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit())
}

#[tokio::test]
async fn token_values_decode_to_their_id() {
    let (sb, alice, token) = sandbox();
    let c = client();
    let resp = sq(&c, &sb, Method::POST, "/tokens", &token)
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = body_json(resp).await;
    let id = body["token"]["id"].as_u64().unwrap();
    let value = body["accessKey"].as_str().unwrap();

    let decoded = String::from_utf8(STANDARD.decode(value).unwrap()).unwrap();
    let (head, random) = decoded.split_once('.').unwrap();
    assert_eq!(head, format!("{{\"tid\":{id}}}"));
    assert_eq!(random.len(), 40);
    assert!(random
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));

    let stored = sb.token_by_value(value).unwrap();
    assert_eq!(
        (stored.id, stored.user_id, stored.name.as_str()),
        (id, alice, "ci")
    );
    assert!(sb.is_live(value));
}

#[tokio::test]
async fn create_returns_the_contract_shape() {
    let (sb, _, token) = sandbox();
    let body = body_json(
        sq(&client(), &sb, Method::POST, "/tokens", &token)
            .json(&json!({ "name": "ci" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let t = &body["token"];
    assert_eq!(t["name"], "ci");
    assert!(t["lastUsed"].is_null());
    assert!(
        is_seqera_timestamp(t["dateCreated"].as_str().unwrap()),
        "{t}"
    );
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["accessKey", "token"]);
}

#[tokio::test]
async fn ids_grow_globally_across_users() {
    let (sb, alice, _) = sandbox();
    let bob = sb.add_user("bob");
    let a = sb.create_token(alice, "x").id;
    let b = sb.create_token(bob, "x").id;
    let c = sb.create_token(alice, "y").id;
    assert!(a < b && b < c);
    let ids: Vec<u64> = sb.tokens().iter().map(|t| t.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}

#[tokio::test]
async fn list_shows_only_the_callers_live_tokens_and_marks_use() {
    let (sb, alice, token) = sandbox();
    let bob = sb.add_user("bob");
    sb.create_token(bob, "bobs");
    let unused = sb.create_token(alice, "unused");
    let revoked = sb.create_token(alice, "gone");
    sb.revoke_token(revoked.id);

    let body = body_json(
        sq(&client(), &sb, Method::GET, "/tokens", &token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let tokens = body["tokens"].as_array().unwrap();
    let names: Vec<&str> = tokens.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bootstrap", "unused"]);
    for t in tokens {
        let mut keys: Vec<_> = t.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["dateCreated", "id", "lastUsed", "name"]);
    }
    // The calling token was just used; the other one never was.
    assert!(is_seqera_timestamp(tokens[0]["lastUsed"].as_str().unwrap()));
    assert!(tokens[1]["lastUsed"].is_null());
    assert_eq!(tokens[1]["id"], unused.id);
    assert!(sb.token_by_value(&token).unwrap().last_used.is_some());
}

#[tokio::test]
async fn user_info_describes_the_tokens_user() {
    let (sb, alice, token) = sandbox();
    let resp = sq(&client(), &sb, Method::GET, "/user-info", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "content-type")
        .unwrap()
        .starts_with("application/json"));
    let body = body_json(resp).await;
    assert_eq!(body["user"]["id"], alice);
    assert_eq!(body["user"]["userName"], "alice");
    assert_eq!(body["needConsent"], false);
    assert!(body["defaultWorkspaceId"].is_null());
}

#[tokio::test]
async fn create_validates_names_and_content_type() {
    let (sb, _, token) = sandbox();
    let c = client();
    let post = |body: serde_json::Value| {
        sq(&c, &sb, Method::POST, "/tokens", &token)
            .json(&body)
            .send()
    };
    assert_eq!(
        post(json!({ "name": "n".repeat(50) }))
            .await
            .unwrap()
            .status(),
        200
    );
    let long = post(json!({ "name": "n".repeat(51) })).await.unwrap();
    assert_eq!(long.status(), 400);
    assert!(body_json(long).await["message"].is_string());
    assert_eq!(post(json!({ "name": "" })).await.unwrap().status(), 400);
    assert_eq!(post(json!({})).await.unwrap().status(), 400);

    let dup = post(json!({ "name": "bootstrap" })).await.unwrap();
    assert_eq!(dup.status(), 409);
    assert!(body_json(dup).await["message"]
        .as_str()
        .unwrap()
        .contains("bootstrap"));

    let malformed = sq(&c, &sb, Method::POST, "/tokens", &token)
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let no_type = sq(&c, &sb, Method::POST, "/tokens", &token)
        .body("{\"name\":\"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(no_type.status(), 415);
    // Only the 50-character token was created.
    assert_eq!(sb.tokens().len(), 2);
}

#[tokio::test]
async fn delete_is_204_then_404_and_the_token_stops_working() {
    let (sb, alice, token) = sandbox();
    let victim = sb.create_token(alice, "old");
    let c = client();
    let path = format!("/tokens/{}", victim.id);
    assert_eq!(
        sq(&c, &sb, Method::GET, "/user-info", &victim.value)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        sq(&c, &sb, Method::DELETE, &path, &token)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(!sb.is_live(&victim.value));
    assert!(sb.token_by_value(&victim.value).unwrap().revoked);
    let again = sq(&c, &sb, Method::DELETE, &path, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    assert!(body_json(again).await["message"].is_string());
    let revoked = sq(&c, &sb, Method::GET, "/user-info", &victim.value)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 401);
    assert_eq!(
        sq(&c, &sb, Method::DELETE, "/tokens/999999", &token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        sq(&c, &sb, Method::DELETE, "/tokens/abc", &token)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    // The name is free again once the token is gone.
    assert_eq!(sb.create_token(alice, "old").name, "old");
}

#[tokio::test]
async fn a_token_may_revoke_itself() {
    let (sb, alice, token) = sandbox();
    let me = sb.token_by_value(&token).unwrap();
    let c = client();
    let resp = sq(
        &c,
        &sb,
        Method::DELETE,
        &format!("/tokens/{}", me.id),
        &token,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        sq(&c, &sb, Method::GET, "/tokens", &token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert!(sb.live_tokens(alice).is_empty());
}

#[tokio::test]
async fn another_users_token_cannot_be_deleted() {
    let (sb, _, token) = sandbox();
    let bob = sb.add_user("bob");
    let bobs = sb.create_token(bob, "mine");
    let resp = sq(
        &client(),
        &sb,
        Method::DELETE,
        &format!("/tokens/{}", bobs.id),
        &token,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(sb.is_live(&bobs.value));
}

#[tokio::test]
async fn delete_all_is_recorded_and_revokes_everything_of_the_user() {
    let (sb, alice, token) = sandbox();
    let bob = sb.add_user("bob");
    let bobs = sb.create_token(bob, "mine");
    sb.create_token(alice, "other");
    assert!(!sb.delete_all_called());
    let resp = sq(&client(), &sb, Method::DELETE, "/tokens/delete-all", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(sb.delete_all_called());
    assert!(sb.live_tokens(alice).is_empty());
    assert!(sb.is_live(&bobs.value));
}

#[tokio::test]
async fn authentication_and_routing_errors() {
    let (sb, _, token) = sandbox();
    let c = client();
    let base = sb.seqera_url();
    let anonymous = c.get(format!("{base}/user-info")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(body_json(anonymous).await["message"].is_string());
    let basic = c
        .get(format!("{base}/user-info"))
        .header("authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert_eq!(
        sq(&c, &sb, Method::GET, "/user-info", "bogus")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        sq(&c, &sb, Method::GET, "/nope", &token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let wrong_method = sq(&c, &sb, Method::PUT, "/tokens", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(header(&wrong_method, "allow"), Some("GET, POST"));
    // Outside the /api prefix nothing is served: a client that strips it gets 404.
    let root = format!("http://{}", sb.seqera_addr());
    let outside = c
        .get(format!("{root}/user-info"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 404);
    // service-info needs no authentication.
    let info = c.get(format!("{base}/service-info")).send().await.unwrap();
    assert_eq!(info.status(), 200);
    assert!(body_json(info).await["serviceInfo"]["version"].is_string());
}

#[test]
fn backdating_moves_date_created() {
    let sb = Sandbox::start().unwrap();
    let user = sb.add_user("u");
    let t = sb.create_token(user, "t");
    sb.backdate_token(t.id, std::time::Duration::from_secs(3 * 24 * 3600));
    let after = sb.tokens()[0].date_created.clone();
    assert!(after < t.date_created, "{after} !< {}", t.date_created);
}

#[test]
#[should_panic(expected = "already has a live token")]
fn minting_a_duplicate_name_directly_panics() {
    let sb = Sandbox::start().unwrap();
    let user = sb.add_user("u");
    sb.create_token(user, "t");
    sb.create_token(user, "t");
}
