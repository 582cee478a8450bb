//! A field of a HashiCorp Vault / OpenBao KV version 2 secret as a store (SPEC §9): the
//! login (a token, or a JWT login with the workflow's OIDC token, as hashicorp/vault-action
//! does), the access check (`sys/capabilities-self`), and the check-and-set write that keeps
//! the secret's other fields and never overwrites a change made since it was read.
//!
//! The secret can be read back, so the field's token id (`tid`) is the evidence: after a
//! success answer the read-back must show the new token; after an attempt without a clear
//! answer, a read that shows it makes the write *written*.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use futures_util::FutureExt;
use reqwest::header::HeaderValue;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;
use url::Url;

use super::{Attempts, Holding, Mask, NewValue, Store, WriteOutcome};
use crate::http::{Api, ApiClient, Http, HttpError, Retry};
use crate::seqera::token_id_of;
use crate::settings::{IdTokenRequest, VaultAuth, VaultSettings};
use crate::target::{Place, Target};

/// Vault reads at once in preflight and `status`.
const READ_CONCURRENCY: usize = 8;

/// The least policy a `vault:` target needs, for error hints and the README.
pub fn policy_hint(mount: &str, path: &str) -> String {
    format!(
        "path \"{mount}/data/{path}\" {{ capabilities = [\"create\", \"read\", \"update\"] }} path \"{mount}/metadata/{path}\" {{ capabilities = [\"read\"] }}"
    )
}

/// Vault / OpenBao KV version 2, through the project's HTTP client.
pub struct VaultStore {
    http: Http,
    settings: VaultSettings,
    mask: Mask,
    /// The client with a Vault token: given, or from the JWT login (done once).
    client: OnceCell<Result<ApiClient, String>>,
    /// What preflight read, by label: the write's check-and-set starts from it.
    read: Mutex<HashMap<String, Current>>,
}

/// A secret as read: its current version (0: never existed) and the fields of that version.
#[derive(Clone, Default)]
struct Current {
    version: u64,
    /// The latest version's fields; empty when it is missing, deleted or destroyed.
    fields: Map<String, Value>,
}

impl Current {
    fn holding(&self, field: &str) -> Holding {
        match self.fields.get(field) {
            None => Holding::Missing,
            Some(Value::String(v)) => match token_id_of(&SecretString::from(v.clone())) {
                Some(id) => Holding::Token(id),
                None => Holding::Other,
            },
            Some(_) => Holding::Other,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn place(t: &Target) -> Result<(&str, &str, &str), String> {
    match &t.place {
        Place::Vault { mount, path, field } => Ok((mount, path, field)),
        _ => Err(format!("{} is not a Vault target", t.label)),
    }
}

/// `{"errors":["check-and-set parameter did not match the current version"]}`, HTTP 400.
fn is_cas_conflict(e: &HttpError) -> bool {
    matches!(e, HttpError::Status { status: 400, message, .. } if message.contains("check-and-set"))
}

impl VaultStore {
    /// The store; `mask` masks and scrubs credentials obtained at run time (the OIDC token,
    /// the Vault client token) before they are used.
    pub fn new(http: Http, settings: VaultSettings, mask: Mask) -> Self {
        Self {
            http,
            settings,
            mask,
            client: OnceCell::new(),
            read: Mutex::default(),
        }
    }

    fn api(&self, token: SecretString) -> Result<ApiClient, String> {
        let mut c = ApiClient::new(
            self.http.clone(),
            Api::Vault,
            self.settings.addr.clone(),
            token,
        );
        if let Some(ns) = &self.settings.namespace {
            let v = HeaderValue::from_str(ns)
                .map_err(|_| "the Vault namespace cannot be sent in a header".to_string())?;
            c = c.with_header("X-Vault-Namespace", v);
        }
        Ok(c)
    }

    /// The authenticated client, logging in on first use.
    async fn client(&self) -> Result<&ApiClient, String> {
        self.client
            .get_or_init(|| async {
                match &self.settings.auth {
                    VaultAuth::Token(t) => self.api(t.clone()),
                    VaultAuth::Jwt {
                        role,
                        path,
                        audience,
                        id_token,
                    } => self.login(role, path, audience.as_deref(), id_token).await,
                }
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// JWT login with the workflow's OIDC token, like hashicorp/vault-action: fetch the token
    /// from the runner (with `audience` when given; else GitHub's default audience), then
    /// `POST /v1/auth/{path}/login`.
    async fn login(
        &self,
        role: &str,
        path: &str,
        audience: Option<&str>,
        id: &IdTokenRequest,
    ) -> Result<ApiClient, String> {
        let mut url: Url = id.url.clone();
        if let Some(a) = audience {
            url.query_pairs_mut().append_pair("audience", a);
        }
        let oidc = ApiClient::new(
            self.http.clone(),
            Api::Actions,
            url.clone(),
            id.token.clone(),
        );
        let jwt = oidc
            .send(Method::GET, url, None, Retry::Idempotent)
            .await
            .and_then(|r| r.json::<Value>())
            .map_err(|e| {
                format!("the workflow's OIDC token cannot be fetched ({e}); the job needs `permissions: id-token: write`")
            })?
            .get("value")
            .and_then(Value::as_str)
            .map(|v| SecretString::from(v.to_string()))
            .ok_or("the runner's OIDC token answer has no `value`")?;
        (self.mask)(&jwt);
        let anonymous = self.api(SecretString::from(String::new()))?;
        let mut segments = vec!["v1", "auth"];
        segments.extend(path.split('/'));
        segments.push("login");
        let login = anonymous.url(&segments);
        let body = json!({"role": role, "jwt": jwt.expose_secret()});
        // Repeating a login is harmless (at worst a second short-lived token), so it is
        // retried like a read.
        let answer = anonymous
            .send(Method::POST, login, Some(&body), Retry::Idempotent)
            .await
            .and_then(|r| r.json::<Value>())
            .map_err(|e| {
                format!(
                    "Vault JWT login at auth/{path} with role `{role}` failed ({e}); the role must accept this workflow's OIDC token (bound_audiences, bound_claims / bound_subject) and grant the policy the targets need"
                )
            })?;
        let token = answer
            .pointer("/auth/client_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(|t| SecretString::from(t.to_string()))
            .ok_or("the Vault login answer has no `auth.client_token`")?;
        (self.mask)(&token);
        self.api(token)
    }

    fn url(c: &ApiClient, mount: &str, kind: &str, path: &str) -> Url {
        let mut segments = vec!["v1", mount, kind];
        segments.extend(path.split('/'));
        c.url(&segments)
    }

    /// The secret's current version (metadata) and that version's fields (data).
    async fn read(&self, c: &ApiClient, mount: &str, path: &str) -> Result<Current, HttpError> {
        let meta = c.send(
            Method::GET,
            Self::url(c, mount, "metadata", path),
            None,
            Retry::Idempotent,
        );
        let data = c.send(
            Method::GET,
            Self::url(c, mount, "data", path),
            None,
            Retry::Idempotent,
        );
        let (meta, data) = tokio::join!(meta, data);
        let version = match meta {
            Ok(r) => r
                .json::<Value>()?
                .pointer("/data/current_version")
                .and_then(Value::as_u64)
                .ok_or_else(|| HttpError::Decode {
                    detail: "the secret's metadata has no `current_version`".into(),
                })?,
            Err(e) if e.status() == Some(404) => 0,
            Err(e) => return Err(e),
        };
        // 404 for a missing secret and for a deleted or destroyed latest version.
        let fields = match data {
            Ok(r) => match r.json::<Value>()?.pointer("/data/data") {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            },
            Err(e) if e.status() == Some(404) => Map::new(),
            Err(e) => return Err(e),
        };
        for v in fields.values() {
            // Values read are secrets too (the previous token among them): never shown.
            if let Value::String(s) = v {
                self.http.scrubber.add(&SecretString::from(s.clone()));
            }
        }
        Ok(Current { version, fields })
    }

    /// Preflight of one target: the token may read and write the secret, then what it holds.
    async fn prepare_one(&self, t: &Target) -> Result<Holding, String> {
        let (mount, path, field) = place(t)?;
        let c = self.client().await?;
        let data = format!("{mount}/data/{path}");
        let meta = format!("{mount}/metadata/{path}");
        let caps = async {
            c.send(
                Method::POST,
                c.url(&["v1", "sys", "capabilities-self"]),
                Some(&json!({ "paths": [data, meta] })),
                Retry::Idempotent,
            )
            .await
            .and_then(|r| r.json::<Value>())
        };
        // The capabilities beside the reads: one round trip less in preflight.
        let (caps, current) = futures_util::join!(caps, self.read(c, mount, path));
        let caps = caps.map_err(|e| {
                format!(
                    "{}: the Vault token's capabilities cannot be read ({e}); it needs the default policy (sys/capabilities-self) and: {}",
                    t.label,
                    policy_hint(mount, path)
                )
            })?;
        let has = |p: &str, cap: &str| {
            caps.get("data")
                .and_then(|d| d.get(p))
                .or_else(|| caps.get(p))
                .and_then(Value::as_array)
                .is_some_and(|l| {
                    let l: Vec<&str> = l.iter().filter_map(Value::as_str).collect();
                    !l.contains(&"deny") && (l.contains(&"root") || l.contains(&cap))
                })
        };
        let current = current.map_err(|e| {
            format!(
                "{}: the secret cannot be read ({e}); the Vault policy needs: {}",
                t.label,
                policy_hint(mount, path)
            )
        })?;
        let write_cap = if current.version == 0 {
            "create"
        } else {
            "update"
        };
        let missing: Vec<&str> = [
            (data.as_str(), write_cap),
            (data.as_str(), "read"),
            (meta.as_str(), "read"),
        ]
        .into_iter()
        .filter(|(p, cap)| !has(p, cap))
        .map(|(_, cap)| cap)
        .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{}: the Vault token lacks {} on the secret; the policy needs: {}",
                t.label,
                missing.join(", "),
                policy_hint(mount, path)
            ));
        }
        let holding = current.holding(field);
        lock(&self.read).insert(t.label.clone(), current);
        Ok(holding)
    }

    async fn write_one(&self, t: &Target, new: &NewValue<'_>) -> WriteOutcome {
        let (mount, path, field) = match place(t) {
            Ok(p) => p,
            Err(e) => return WriteOutcome::Refused(e),
        };
        let c = match self.client().await {
            Ok(c) => c,
            Err(e) => return WriteOutcome::Refused(e),
        };
        let prepared = lock(&self.read).get(&t.label).cloned();
        let mut current = match prepared {
            Some(cur) => cur,
            None => match self.read(c, mount, path).await {
                Ok(cur) => cur,
                Err(e) => return WriteOutcome::Refused(format!("reading the secret: {e}")),
            },
        };
        let created = current.version == 0;
        let mut attempts = Attempts::default();
        let mut conflicted = false;
        loop {
            let mut fields = current.fields.clone();
            fields.insert(
                field.to_string(),
                Value::String(new.value.expose_secret().to_string()),
            );
            let body = json!({"options": {"cas": current.version}, "data": fields});
            // Retried like a PUT: check-and-set makes a repeat harmless.
            let result = c
                .send(
                    Method::POST,
                    Self::url(c, mount, "data", path),
                    Some(&body),
                    Retry::Idempotent,
                )
                .await;
            drop(body);
            match result {
                Ok(_) => {
                    return match self.read(c, mount, path).await {
                        Ok(r) => match r.holding(field) {
                            Holding::Token(id) if id == new.id => WriteOutcome::Written { created },
                            other => WriteOutcome::Unknown(format!(
                                "the write was accepted, but reading it back shows {} instead of the new token: something else writes there",
                                other.describe()
                            )),
                        },
                        Err(e) => WriteOutcome::Unknown(format!(
                            "the write was accepted, but it cannot be read back ({e})"
                        )),
                    };
                }
                Err(e) => {
                    let conflict = is_cas_conflict(&e);
                    attempts.failed(&e.to_string(), e.maybe_performed());
                    // Someone changed the secret since it was read — or an earlier attempt
                    // of ours without a clear answer landed: read again, and decide from it.
                    if !conflict && !attempts.unclear() {
                        return attempts.end(&e.to_string(), false);
                    }
                    match self.read(c, mount, path).await {
                        Ok(r) if r.holding(field) == Holding::Token(new.id) => {
                            return WriteOutcome::Written { created }
                        }
                        Ok(r) if conflict && !conflicted => {
                            conflicted = true;
                            current = r;
                        }
                        Ok(_) if conflict => {
                            return attempts.end(
                                "check-and-set conflict twice: the secret keeps changing while it is written, so it was not overwritten",
                                false,
                            )
                        }
                        Ok(_) => return attempts.end(&e.to_string(), e.maybe_performed()),
                        Err(re) => {
                            return attempts.end(
                                &format!("{e}; reading it again: {re}"),
                                e.maybe_performed(),
                            )
                        }
                    }
                }
            }
        }
    }
}

impl Store for VaultStore {
    fn prepare<'a>(
        &'a self,
        targets: &'a [&'a Target],
        _drift: bool,
    ) -> BoxFuture<'a, Result<Vec<Option<Holding>>, String>> {
        async move {
            let reads: Vec<BoxFuture<'_, Result<Holding, String>>> = targets
                .iter()
                .map(|t| self.prepare_one(t).boxed())
                .collect();
            stream::iter(reads)
                .buffered(READ_CONCURRENCY)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .map(|r| r.map(Some))
                .collect()
        }
        .boxed()
    }

    fn write<'a>(
        &'a self,
        target: &'a Target,
        new: &'a NewValue<'a>,
    ) -> BoxFuture<'a, WriteOutcome> {
        self.write_one(target, new).boxed()
    }

    fn inspect<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Holding, String>> {
        async move {
            let (mount, path, field) = place(target)?;
            let c = self.client().await?;
            self.read(c, mount, path)
                .await
                .map(|cur| cur.holding(field))
                .map_err(|e| {
                    format!(
                        "the secret cannot be read ({e}); the Vault policy needs: {}",
                        policy_hint(mount, path)
                    )
                })
        }
        .boxed()
    }

    fn describe(&self, target: &Target) -> String {
        match place(target) {
            Ok((mount, path, field)) => format!(
                "write field `{field}` of Vault KV v2 secret `{mount}/{path}` (check-and-set; other fields kept)"
            ),
            Err(_) => format!("write {}", target.label),
        }
    }

    fn plan(&self, _targets: &[&Target]) -> Vec<String> {
        Vec::new()
    }
}
