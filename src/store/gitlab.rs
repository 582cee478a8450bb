//! GitLab CI/CD variables as a store (SPEC §9): project (`gitlab:`) and group
//! (`gitlab-group:`) variables of environment scope `*`, through the project's HTTP client.
//!
//! An existing variable keeps its flags (protected, masked, hidden, raw): only its value is
//! sent. A new one is created masked, hidden and raw (no `$` expansion). A hidden variable
//! cannot be read back: like a GitHub secret, only a success answer is evidence. A readable
//! one is read back after the write, and its token id (`tid`) is the evidence.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use futures_util::FutureExt;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use url::Url;

use super::{Attempts, Holding, NewValue, Store, WriteOutcome};
use crate::http::{Api, ApiClient, Http, HttpError, Retry};
use crate::seqera::token_id_of;
use crate::settings::GitlabSettings;
use crate::target::{GitlabScope, Place, Target};

/// GitLab reads at once in preflight and `status`.
const READ_CONCURRENCY: usize = 8;

/// What a token needs, for error hints and the README.
const ACCESS_HINT: &str =
    "the GitLab token needs the `api` scope and the Maintainer role (or Owner) on the project or group";

/// GitLab CI/CD variables, through one client.
pub struct GitlabStore {
    client: ApiClient,
    /// What preflight found, by label: whether the variable exists and is hidden.
    found: Mutex<HashMap<String, Found>>,
}

/// A variable as read: None when missing.
#[derive(Clone, Copy, Debug)]
struct Found {
    hidden: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn place(t: &Target) -> Result<(&GitlabScope, &str), String> {
    match &t.place {
        Place::Gitlab { scope, key } => Ok((scope, key.as_str())),
        _ => Err(format!("{} is not a GitLab target", t.label)),
    }
}

fn what(scope: &GitlabScope) -> &'static str {
    match scope {
        GitlabScope::Project { .. } => "project",
        GitlabScope::Group { .. } => "group",
    }
}

/// A failed request, with the fix when one is known.
fn explain(e: &HttpError, scope: &GitlabScope) -> String {
    match e.status() {
        Some(401) => format!("{e}: the GitLab token is not accepted (expired or revoked?)"),
        Some(403) => format!("{e}: {ACCESS_HINT}"),
        Some(404) => format!(
            "{e}: no {} `{}`, or the token cannot see it ({ACCESS_HINT})",
            what(scope),
            scope.path()
        ),
        _ => e.to_string(),
    }
}

/// A 404 about the variable itself (`404 Variable Not Found`), not its project or group.
fn variable_missing(e: &HttpError) -> bool {
    matches!(e, HttpError::Status { status: 404, message, .. } if message.contains("Variable"))
}

/// `{"key":["(KEY) has already been taken"]}`: the variable exists (a create of ours that
/// landed without a clear answer, or someone else's).
fn already_taken(e: &HttpError) -> bool {
    matches!(e, HttpError::Status { status: 400, message, .. } if message.contains("already been taken"))
}

impl GitlabStore {
    /// The store, authenticating with `Authorization: Bearer` (every GitLab token kind).
    pub fn new(http: Http, settings: GitlabSettings) -> Self {
        Self {
            client: ApiClient::new(http, Api::Gitlab, settings.api_url, settings.token),
            found: Mutex::default(),
        }
    }

    fn collection(&self, scope: &GitlabScope) -> Url {
        self.client
            .url(&[scope.collection(), scope.path(), "variables"])
    }

    fn variable(&self, scope: &GitlabScope, key: &str) -> Url {
        let mut url = self
            .client
            .url(&[scope.collection(), scope.path(), "variables", key]);
        url.query_pairs_mut()
            .append_pair("filter[environment_scope]", "*");
        url
    }

    /// The variable: None when missing; its holding and whether it is hidden.
    async fn read(
        &self,
        scope: &GitlabScope,
        key: &str,
    ) -> Result<Option<(Holding, bool)>, HttpError> {
        match self
            .client
            .send(
                Method::GET,
                self.variable(scope, key),
                None,
                Retry::Idempotent,
            )
            .await
        {
            Ok(r) => {
                let v = r.json::<Value>()?;
                let hidden = v.get("hidden").and_then(Value::as_bool).unwrap_or(false);
                let holding = match v.get("value").and_then(Value::as_str) {
                    _ if hidden => Holding::Sealed { updated_at: None },
                    None => Holding::Sealed { updated_at: None },
                    Some(value) => {
                        let value = SecretString::from(value.to_string());
                        // The previous token is among the values read: never shown.
                        self.client.hide(&value);
                        match token_id_of(&value) {
                            Some(id) => Holding::Token(id),
                            None => Holding::Other,
                        }
                    }
                };
                let hidden = hidden || matches!(holding, Holding::Sealed { .. });
                Ok(Some((holding, hidden)))
            }
            Err(e) if variable_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Preflight's check of the token itself (`GET /personal_access_tokens/self`, GitLab
    /// 15.5+): a personal, project or group access token without the `api` scope (e.g.
    /// `read_api`) can read every variable but write none, which the reads alone would not
    /// show. Tokens that endpoint does not describe (OAuth, older GitLab: 403/404) pass on
    /// to the reads, which check the role.
    async fn check_token(&self) -> Result<(), String> {
        let url = self.client.url(&["personal_access_tokens", "self"]);
        match self
            .client
            .send(Method::GET, url, None, Retry::Idempotent)
            .await
        {
            Ok(r) => {
                let v = r
                    .json::<Value>()
                    .map_err(|e| format!("GitLab token: {e}"))?;
                if v.get("active").and_then(Value::as_bool) == Some(false) {
                    return Err("the GitLab token is not active (expired or revoked)".to_string());
                }
                let scopes: Vec<&str> = v
                    .get("scopes")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if scopes.contains(&"api") {
                    Ok(())
                } else {
                    // Scope names are GitLab's fixed words; anything else is not repeated.
                    let known: Vec<&str> = scopes
                        .into_iter()
                        .filter(|s| {
                            s.len() <= 40 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                        })
                        .collect();
                    Err(format!(
                        "the GitLab token has the scopes [{}], which cannot write CI/CD variables: {ACCESS_HINT}",
                        known.join(", ")
                    ))
                }
            }
            Err(e) if matches!(e.status(), Some(403 | 404)) => Ok(()),
            Err(e) if e.status() == Some(401) => Err(format!(
                "{e}: the GitLab token is not accepted (expired or revoked?)"
            )),
            Err(e) => Err(format!("the GitLab token cannot be checked: {e}")),
        }
    }

    async fn prepare_one(&self, t: &Target) -> Result<Holding, String> {
        let (scope, key) = place(t)?;
        let read = self.read(scope, key).await.map_err(|e| {
            format!(
                "{}: variable `{key}` cannot be read ({})",
                t.label,
                explain(&e, scope)
            )
        })?;
        let (holding, found) = match read {
            None => (Holding::Missing, None),
            Some((h, hidden)) => (h, Some(Found { hidden })),
        };
        if let Some(f) = found {
            lock(&self.found).insert(t.label.clone(), f);
        }
        Ok(holding)
    }

    async fn put(&self, scope: &GitlabScope, key: &str, value: &str) -> Result<(), HttpError> {
        // Only the value: every flag the variable has is kept.
        let body = json!({ "value": value });
        self.client
            .send(
                Method::PUT,
                self.variable(scope, key),
                Some(&body),
                Retry::Idempotent,
            )
            .await
            .map(drop)
    }

    async fn create(&self, scope: &GitlabScope, key: &str, value: &str) -> Result<(), HttpError> {
        let body = json!({
            "key": key,
            "value": value,
            "environment_scope": "*",
            "masked": true,
            "masked_and_hidden": true,
            "raw": true,
        });
        // A repeat of a create that landed meets "already taken", and becomes an update.
        self.client
            .send(
                Method::POST,
                self.collection(scope),
                Some(&body),
                Retry::Idempotent,
            )
            .await
            .map(drop)
    }

    async fn write_one(&self, t: &Target, new: &NewValue<'_>) -> WriteOutcome {
        let (scope, key) = match place(t) {
            Ok(p) => p,
            Err(e) => return WriteOutcome::Refused(e),
        };
        let found = lock(&self.found).get(&t.label).copied();
        let value = new.value.expose_secret();
        let mut attempts = Attempts::default();
        let mut result = match found {
            Some(_) => self.put(scope, key, value).await,
            None => self.create(scope, key, value).await,
        };
        let created = found.is_none();
        if let Err(e) = &result {
            if found.is_none() && already_taken(e) {
                // Created meanwhile (by an attempt of ours without a clear answer, or by
                // someone else): update it, keeping whatever flags it has.
                attempts.failed(&e.to_string(), e.maybe_performed());
                result = self.put(scope, key, value).await;
            }
        }
        // A hidden variable (and a new one, created hidden) cannot be read back.
        let readable = found.is_some_and(|f| !f.hidden);
        match result {
            Ok(()) if !readable => WriteOutcome::Written { created },
            Ok(()) => match self.read(scope, key).await {
                Ok(Some((Holding::Token(id), _))) if id == new.id => WriteOutcome::Written { created },
                Ok(Some((Holding::Sealed { .. }, _))) => WriteOutcome::Written { created },
                Ok(other) => WriteOutcome::Unknown(format!(
                    "the write was accepted, but reading it back shows {} instead of the new token: something else writes there",
                    match other {
                        None => "no variable".to_string(),
                        Some((Holding::Token(id), _)) => format!("token {id}"),
                        Some(_) => "a value that is not a Seqera token".to_string(),
                    }
                )),
                Err(e) => WriteOutcome::Unknown(format!(
                    "the write was accepted, but it cannot be read back ({e})"
                )),
            },
            Err(e) => {
                let why = explain(&e, scope);
                if (e.maybe_performed() || attempts.unclear()) && readable {
                    if let Ok(Some((Holding::Token(id), _))) = self.read(scope, key).await {
                        if id == new.id {
                            return WriteOutcome::Written { created };
                        }
                    }
                }
                attempts.end(&why, e.maybe_performed())
            }
        }
    }
}

impl Store for GitlabStore {
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
            // The token check goes beside the reads: no extra round trip.
            let (token, read) = futures_util::join!(
                self.check_token(),
                stream::iter(reads)
                    .buffered(READ_CONCURRENCY)
                    .collect::<Vec<_>>()
            );
            token?;
            read.into_iter().map(|r| r.map(Some)).collect()
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
            let (scope, key) = place(target)?;
            match self.read(scope, key).await {
                Ok(None) => Ok(Holding::Missing),
                Ok(Some((h, _))) => Ok(h),
                Err(e) => Err(format!(
                    "variable `{key}` cannot be read ({})",
                    explain(&e, scope)
                )),
            }
        }
        .boxed()
    }

    fn describe(&self, target: &Target) -> String {
        match place(target) {
            Ok((scope, key)) => format!(
                "write CI/CD variable `{key}` (environment scope *) of GitLab {} `{}` (an existing one keeps its flags; a new one is masked, hidden and raw)",
                what(scope),
                scope.path()
            ),
            Err(_) => format!("write {}", target.label),
        }
    }

    fn plan(&self, _targets: &[&Target]) -> Vec<String> {
        Vec::new()
    }
}
