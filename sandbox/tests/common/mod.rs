//! Helpers shared by the sandbox's integration tests: an HTTP client that sends
//! what the real tool sends, and libsodium sealing for encrypted secret values.
#![allow(dead_code)] // each test binary uses a different subset

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::{Client, Method, RequestBuilder, Response};
use seqera_sandbox::{Sandbox, SecretScope};
use serde_json::Value;

pub const UA: &str = "seqera-token-rotate/0.1.0";
pub const WRITER: &str = "ghp_writer";
pub const READER: &str = "ghs_workflow_token";

pub fn client() -> Client {
    install_crypto();
    Client::builder().build().unwrap()
}

/// In a workspace build reqwest carries the main crate's `rustls-no-provider` feature, and
/// then needs a process-wide crypto provider even for plain-HTTP clients.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A GitHub request with all the headers the tool must send.
pub fn gh(c: &Client, sb: &Sandbox, method: Method, path: &str, token: &str) -> RequestBuilder {
    c.request(method, format!("{}{path}", sb.github_url()))
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .header("user-agent", UA)
}

/// A Seqera request authenticated with `token`.
pub fn sq(c: &Client, sb: &Sandbox, method: Method, path: &str, token: &str) -> RequestBuilder {
    c.request(method, format!("{}{path}", sb.seqera_url()))
        .header("authorization", format!("Bearer {token}"))
}

/// A sandbox with user `alice` (returns her id and her initial token value),
/// a writer and a read-only GitHub token, and repository `octo/app`.
pub fn sandbox() -> (Sandbox, u64, String) {
    let sb = Sandbox::start().unwrap();
    let alice = sb.add_user("alice");
    let token = sb.create_token(alice, "bootstrap").value;
    sb.add_github_token(WRITER, true);
    sb.add_github_token(READER, false);
    sb.add_repo("octo", "app");
    (sb, alice, token)
}

/// libsodium `crypto_box_seal` of `plain` for a base64 public key, base64-encoded.
pub fn seal(key_b64: &str, plain: &str) -> String {
    let key = crypto_box::PublicKey::from_slice(&STANDARD.decode(key_b64).unwrap()).unwrap();
    let sealed = key
        .seal(&mut crypto_box::aead::OsRng, plain.as_bytes())
        .unwrap();
    STANDARD.encode(sealed)
}

/// The body of a correct secret write for `scope`, encrypting `plain`.
pub fn sealed_body(sb: &Sandbox, scope: &SecretScope, plain: &str) -> Value {
    let key = sb.public_key(scope).unwrap();
    serde_json::json!({ "encrypted_value": seal(&key.key, plain), "key_id": key.key_id })
}

pub async fn body_json(resp: Response) -> Value {
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}
