//! GitHub secrets: public keys, secret writes, organization secret metadata, repository ids
//! (SPEC §1), typed from `contracts/github-secrets.openapi.json`. Knows HTTP and this API,
//! nothing of the protocol.

use std::sync::Arc;

use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;
use thiserror::Error;
use time::OffsetDateTime;
use url::Url;

use crate::http::{Api, ApiClient, Http, HttpError, Response, Retry};
use crate::pace::{Limits, Pacer};
use crate::seal::{KeyError, PublicKey};
use crate::target::Scope;

/// A GitHub call that failed, with what the user can do about it.
#[derive(Debug, Error)]
pub enum GithubError {
    /// The server refused; `hint` says what permission or token is needed.
    #[error("{source}{hint}")]
    Refused {
        /// The HTTP error.
        source: HttpError,
        /// Empty, or a sentence starting with "; ".
        hint: String,
    },
    /// 422 naming the key: the public key changed since it was fetched.
    #[error("GitHub rejected the encryption key (HTTP 422: {message}); the public key changed")]
    KeyRejected {
        /// GitHub's message.
        message: String,
        /// An earlier attempt of the same request got no clear answer.
        after_unanswered: bool,
    },
    /// The public key GitHub sent cannot be used.
    #[error("GitHub sent an unusable public key: {0}")]
    BadKey(#[from] KeyError),
    /// Anything else.
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl GithubError {
    /// Whether the request may have been performed although it failed (no clear answer).
    pub fn maybe_performed(&self) -> bool {
        match self {
            GithubError::Refused { source, .. } | GithubError::Http(source) => {
                source.maybe_performed()
            }
            GithubError::KeyRejected {
                after_unanswered, ..
            } => *after_unanswered,
            GithubError::BadKey(_) => false,
        }
    }
}

/// How a secret write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// 201: the secret is new.
    Created,
    /// 204: an existing secret was replaced.
    Updated,
}

/// Access settings sent with an organization secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgWrite {
    /// `all`, `private` or `selected`.
    pub visibility: String,
    /// Repository ids, with `selected`.
    pub selected_repository_ids: Option<Vec<u64>>,
}

#[derive(Deserialize)]
struct KeyResponse {
    key_id: String,
    key: String,
}

/// A secret's metadata as GitHub shows it (`GET …/secrets/{name}`); GitHub never returns
/// a value.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct SecretMeta {
    /// Last write, in whole seconds (GitHub's resolution).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Organization secrets only: `all`, `private` or `selected`.
    #[serde(default)]
    pub visibility: Option<String>,
}

#[derive(Deserialize)]
struct RepoListResponse {
    repositories: Vec<RepoResponse>,
}

#[derive(Deserialize)]
struct RepoResponse {
    id: u64,
}

/// The most pages of a list read (100 entries each): far above real use, and a list that
/// never ends (a broken or hostile server) stops here.
pub const MAX_PAGES: usize = 100;

/// A GitHub REST client authenticated with one token. Its clones share one [`Pacer`]: every
/// write attempt of a run, retries included, waits for a slot in GitHub's write limits.
#[derive(Clone)]
pub struct GithubClient(ApiClient, Writes);

/// The same API through a paced HTTP client, for content-creating requests.
#[derive(Clone)]
struct Writes {
    client: ApiClient,
    pacer: Arc<Pacer>,
}

impl Writes {
    fn new(reads: &ApiClient, pacer: Pacer) -> Self {
        let pacer = Arc::new(pacer);
        Self {
            client: reads.paced(pacer.clone()),
            pacer,
        }
    }
}

impl GithubClient {
    /// A client for `base` (used exactly as given) with `token`, paced to GitHub's limits.
    pub fn new(http: Http, base: Url, token: SecretString) -> Self {
        let reads = ApiClient::new(http, Api::Github, base, token);
        let writes = Writes::new(&reads, Pacer::new(Limits::default()));
        Self(reads, writes)
    }

    /// The same client with another pacer (test-scaled limits, or none).
    pub fn with_pacer(self, pacer: Pacer) -> Self {
        let writes = Writes::new(&self.0, pacer);
        Self(self.0, writes)
    }

    /// The pacer of this client's writes.
    pub fn pacer(&self) -> &Pacer {
        &self.1.pacer
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        scope: Option<&Scope>,
    ) -> Result<Response, GithubError> {
        let client = if method == Method::GET {
            &self.0
        } else {
            &self.1.client
        };
        client
            .send(method, url, body, Retry::Idempotent)
            .await
            .map_err(|e| refused(e, scope))
    }

    fn url(&self, segments: &[&str]) -> Url {
        self.0.url(segments)
    }

    /// `GET …/secrets/public-key` of a scope.
    pub async fn public_key(&self, scope: &Scope) -> Result<PublicKey, GithubError> {
        let mut path = scope.collection();
        path.push("public-key");
        let k: KeyResponse = self
            .call(Method::GET, self.url(&path), None, Some(scope))
            .await?
            .json()?;
        Ok(PublicKey::from_github(&k.key_id, &k.key)?)
    }

    /// `PUT …/secrets/{name}` with an already sealed value.
    pub async fn put_secret(
        &self,
        scope: &Scope,
        name: &str,
        encrypted_value: &str,
        key_id: &str,
        org: Option<&OrgWrite>,
    ) -> Result<Written, GithubError> {
        let mut path = scope.collection();
        path.push(name);
        let mut body = serde_json::json!({ "encrypted_value": encrypted_value, "key_id": key_id });
        if let Some(o) = org {
            body["visibility"] = o.visibility.clone().into();
            if let Some(ids) = &o.selected_repository_ids {
                body["selected_repository_ids"] = ids.clone().into();
            }
        }
        match self
            .call(Method::PUT, self.url(&path), Some(&body), Some(scope))
            .await
        {
            Ok(r) if r.status.as_u16() == 201 => Ok(Written::Created),
            Ok(_) => Ok(Written::Updated),
            Err(GithubError::Refused {
                source:
                    HttpError::Status {
                        status: 422,
                        message,
                        after_unanswered,
                        ..
                    },
                ..
            }) if message.to_ascii_lowercase().contains("key") => Err(GithubError::KeyRejected {
                message,
                after_unanswered,
            }),
            Err(e) => Err(e),
        }
    }

    /// `GET …/secrets/{name}`: the secret's metadata, or None if it does not exist.
    pub async fn secret_metadata(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<SecretMeta>, GithubError> {
        let mut path = scope.collection();
        path.push(name);
        match self
            .call(Method::GET, self.url(&path), None, Some(scope))
            .await
        {
            Ok(r) => Ok(Some(r.json::<SecretMeta>()?)),
            Err(GithubError::Refused {
                source: HttpError::Status { status: 404, .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /orgs/{org}/actions/secrets/{name}`: the current visibility, or None if absent.
    pub async fn org_secret_visibility(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<String>, GithubError> {
        match self.secret_metadata(scope, name).await? {
            Some(SecretMeta {
                visibility: Some(v),
                ..
            }) => Ok(Some(v)),
            Some(_) => Err(GithubError::Http(HttpError::Decode {
                detail: "the organization secret's metadata has no `visibility`".into(),
            })),
            None => Ok(None),
        }
    }

    /// `GET /orgs/{org}/actions/secrets/{name}/repositories`, all pages.
    pub async fn org_secret_repository_ids(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Vec<u64>, GithubError> {
        let mut path = scope.collection();
        path.extend([name, "repositories"]);
        let mut ids = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut url = self.url(&path);
            url.query_pairs_mut()
                .append_pair("per_page", "100")
                .append_pair("page", &page.to_string());
            let r: RepoListResponse = self
                .call(Method::GET, url, None, Some(scope))
                .await?
                .json()?;
            let n = r.repositories.len();
            ids.extend(r.repositories.into_iter().map(|r| r.id));
            if n < 100 {
                return Ok(ids);
            }
        }
        Err(GithubError::Http(HttpError::Decode {
            detail: format!(
                "the repository list of the organization secret `{name}` goes on past {MAX_PAGES} pages of 100; refusing to read more"
            ),
        }))
    }

    /// `GET /repos/{owner}/{repo}/actions/variables/{name}`: the variable's value, or None
    /// if it does not exist.
    pub async fn variable(
        &self,
        owner: &str,
        repo: &str,
        name: &str,
    ) -> Result<Option<String>, GithubError> {
        #[derive(Deserialize)]
        struct Variable {
            value: String,
        }
        let url = self.url(&["repos", owner, repo, "actions", "variables", name]);
        match self.variable_call(Method::GET, url, None).await {
            Ok(r) => Ok(Some(r.json::<Variable>()?.value)),
            Err(GithubError::Refused {
                source: HttpError::Status { status: 404, .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets a repository's Actions variable: `PATCH` when it exists, else `POST`.
    pub async fn set_variable(
        &self,
        owner: &str,
        repo: &str,
        name: &str,
        value: &str,
        exists: bool,
    ) -> Result<(), GithubError> {
        let body = serde_json::json!({ "name": name, "value": value });
        let url = if exists {
            self.url(&["repos", owner, repo, "actions", "variables", name])
        } else {
            self.url(&["repos", owner, repo, "actions", "variables"])
        };
        let method = if exists { Method::PATCH } else { Method::POST };
        match self.variable_call(method, url, Some(&body)).await {
            // The variable exists after all: a retried POST whose first attempt landed, or
            // one created since preflight looked. The same whole value, by PATCH.
            Err(GithubError::Refused { source, .. }) if !exists && source.status() == Some(409) => {
                let url = self.url(&["repos", owner, repo, "actions", "variables", name]);
                self.variable_call(Method::PATCH, url, Some(&body))
                    .await
                    .map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    async fn variable_call(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, GithubError> {
        // A PATCH or POST of the same whole value is harmless to repeat.
        let client = if method == Method::GET {
            &self.0
        } else {
            &self.1.client
        };
        client
            .send(method, url, body, Retry::Idempotent)
            .await
            .map_err(|e| match refused(e, None) {
                GithubError::Refused { source, .. } => GithubError::Refused {
                    hint: variables_hint(&source),
                    source,
                },
                other => other,
            })
    }

    /// `GET /repos/{owner}/{repo}`: the repository id.
    pub async fn repository_id(&self, owner: &str, repo: &str) -> Result<u64, GithubError> {
        let r: RepoResponse = self
            .call(Method::GET, self.url(&["repos", owner, repo]), None, None)
            .await?
            .json()?;
        Ok(r.id)
    }
}

/// What a refused variable request needs: the permission by its name in GitHub's settings.
fn variables_hint(e: &HttpError) -> String {
    match e.status() {
        Some(403 | 404) => "; the GitHub token needs the repository permission \"Variables: Read and write\" (`actions_variables=write`)".into(),
        Some(401) => "; the GitHub token is invalid or expired".into(),
        _ => String::new(),
    }
}

/// Adds what the user can do to a refusal: the permission GitHub says it wants, and that the
/// workflow's `GITHUB_TOKEN` cannot write secrets.
fn refused(e: HttpError, scope: Option<&Scope>) -> GithubError {
    let (status, accepted) = match &e {
        HttpError::Status {
            status,
            accepted_permissions,
            ..
        } => (*status, accepted_permissions.clone()),
        _ => return GithubError::Http(e),
    };
    let mut hint = String::new();
    if let Some(p) = accepted.filter(|p| !p.is_empty()) {
        hint.push_str(&format!("; GitHub says the token needs: {p}"));
    }
    match status {
        401 => hint.push_str("; the GitHub token is invalid or expired"),
        403 | 404 => {
            let need = scope
                .map(Scope::permission_hint)
                .unwrap_or("read access to the repository (\"Metadata: Read\")");
            if status == 404 {
                hint.push_str("; the target does not exist or the token cannot see it");
            }
            hint.push_str(&format!(
                "; the token needs {need}. The workflow's own GITHUB_TOKEN cannot write secrets: use a GitHub App installation token or a fine-grained personal access token"
            ));
        }
        _ => {}
    }
    GithubError::Refused { source: e, hint }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_hints() {
        let e = refused(
            HttpError::Status {
                status: 403,
                message: "Resource not accessible by integration".into(),
                accepted_permissions: Some("secrets=write".into()),
                after_unanswered: false,
            },
            Some(&Scope::Repo {
                owner: "o".into(),
                repo: "r".into(),
            }),
        );
        let text = e.to_string();
        assert!(
            text.contains("HTTP 403: Resource not accessible by integration"),
            "{text}"
        );
        assert!(text.contains("secrets=write"), "{text}");
        assert!(text.contains("GITHUB_TOKEN cannot write secrets"), "{text}");
        assert!(text.contains("Secrets: Read and write"), "{text}");
        let e = refused(
            HttpError::Status {
                status: 401,
                message: "Bad credentials".into(),
                accepted_permissions: None,
                after_unanswered: false,
            },
            None,
        );
        assert!(e.to_string().contains("invalid or expired"));
        let e = refused(
            HttpError::Status {
                status: 500,
                message: "x".into(),
                accepted_permissions: None,
                after_unanswered: false,
            },
            None,
        );
        assert_eq!(e.to_string(), "HTTP 500: x");
    }
}
