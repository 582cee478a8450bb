//! GitHub secrets as a store: public keys (fetched once per key owner), the access settings
//! of organization secrets, sealing, and the write with its key refetch. A secret cannot be
//! read back: only a success answer is evidence that it holds the new token.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use futures_util::FutureExt;
use secrecy::ExposeSecret;

use super::{Attempts, Holding, NewValue, Store, WriteOutcome};
use crate::github::{GithubClient, GithubError, OrgWrite, SecretMeta, Written};
use crate::pace;
use crate::seal::{seal, PublicKey};
use crate::settings::{OrgAccess, Visibility};
use crate::target::{Scope, SecretName, Target};

/// GitHub reads at once, per kind (public keys, secret metadata, repository ids): reads, so
/// not bound by `max-concurrency` (which is for writes). Keys and metadata run side by side,
/// so with `min-age` the metadata adds no wave to preflight.
pub const READ_CONCURRENCY: usize = 8;

/// GitHub secrets of every kind, through one client (and so one pacer).
pub struct GithubStore {
    client: GithubClient,
    org_access: Option<OrgAccess>,
    /// One public key per key owner, from preflight (replaced when GitHub rejects one).
    keys: Mutex<HashMap<Scope, PublicKey>>,
    /// What each organization target sends, by label.
    org: Mutex<HashMap<String, OrgWrite>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GithubStore {
    /// The store, writing through `client`; `org_access` is the `visibility` /
    /// `selected-repositories` setting.
    pub fn new(client: GithubClient, org_access: Option<OrgAccess>) -> Self {
        Self {
            client,
            org_access,
            keys: Mutex::default(),
            org: Mutex::default(),
        }
    }

    /// The client (for the record, which lives in the repository's Actions variables).
    pub fn client(&self) -> &GithubClient {
        &self.client
    }

    async fn prepare_all(
        &self,
        targets: &[&Target],
        drift: bool,
    ) -> Result<Vec<Option<Holding>>, String> {
        let gh: Vec<(&Target, &Scope, &SecretName)> = targets
            .iter()
            .map(|t| {
                t.github()
                    .map(|(scope, name)| (*t, scope, name))
                    .ok_or_else(|| format!("{} is not a GitHub target", t.label))
            })
            .collect::<Result<_, _>>()?;
        // One key per key owner, in input order; a set, so 5,000 targets cost no quadratic scan.
        let mut seen: HashSet<&Scope> = HashSet::new();
        let scopes: Vec<&Scope> = gh
            .iter()
            .map(|(_, scope, _)| *scope)
            .filter(|sc| seen.insert(sc))
            .collect();
        let keys: Vec<BoxFuture<'_, Result<(Scope, PublicKey), String>>> = scopes
            .into_iter()
            .map(|scope| {
                async move {
                    self.client
                        .public_key(scope)
                        .await
                        .map(|k| (scope.clone(), k))
                        .map_err(|e| {
                            format!(
                                "public key of {} `{}`: {e}",
                                scope.kind_name(),
                                scope.spec()
                            )
                        })
                }
                .boxed()
            })
            .collect();
        let keys = stream::iter(keys)
            .buffer_unordered(READ_CONCURRENCY)
            .collect::<Vec<_>>();
        // Beside the key reads, not after them: no extra round trip on the critical path.
        // An organization secret's metadata is read once, for its visibility and for drift.
        type Read = Result<(Option<Option<SecretMeta>>, Option<OrgWrite>), String>;
        let metas: Vec<BoxFuture<'_, Read>> =
            gh.iter()
                .map(|&(t, scope, name)| {
                    async move {
                        let is_org = matches!(scope, Scope::Org { .. });
                        // An organization secret's current access is read only when not given.
                        let meta = if drift || is_org && self.org_access.is_none() {
                            Some(
                                self.client
                                    .secret_metadata(scope, name.as_str())
                                    .await
                                    .map_err(|e| {
                                        format!("metadata of secret `{name}` of {}: {e}", t.label)
                                    })?,
                            )
                        } else {
                            None
                        };
                        let org =
                            if is_org {
                                let current = meta.as_ref().and_then(Option::as_ref);
                                Some(self.org_write(scope, name, current).await.map_err(|e| {
                                    format!("organization secret `{}`: {e}", t.label)
                                })?)
                            } else {
                                None
                            };
                        Ok::<_, String>((meta, org))
                    }
                    .boxed()
                })
                .collect();
        let metas = stream::iter(metas)
            .buffered(READ_CONCURRENCY)
            .collect::<Vec<_>>();
        let (keys, metas) = tokio::join!(keys, metas);
        let keys = keys.into_iter().collect::<Result<HashMap<_, _>, _>>()?;
        *lock(&self.keys) = keys;
        let mut org = lock(&self.org);
        let mut holdings = Vec::with_capacity(gh.len());
        for ((t, _, _), read) in gh.iter().zip(metas) {
            let (meta, write) = read?;
            if let Some(w) = write {
                org.insert(t.label.clone(), w);
            }
            holdings.push(if drift { meta.map(holding) } else { None });
        }
        Ok(holdings)
    }

    /// What an organization target sends: the given visibility, or the secret's current one
    /// (with its repository list when `selected`), else `private`. Never clobbers access lists.
    async fn org_write(
        &self,
        scope: &Scope,
        name: &SecretName,
        meta: Option<&SecretMeta>,
    ) -> Result<OrgWrite, GithubError> {
        let Scope::Org { org } = scope else {
            return Err(GithubError::Http(crate::http::HttpError::Decode {
                detail: "not an organization secret".into(),
            }));
        };
        Ok(match &self.org_access {
            Some(a) if a.visibility == Visibility::Selected => {
                let reads: Vec<BoxFuture<'_, Result<u64, GithubError>>> = a
                    .selected_repositories
                    .iter()
                    .filter_map(|r| match r.split_once('/') {
                        Some((o, name)) => o.eq_ignore_ascii_case(org).then_some(name),
                        None => Some(r.as_str()),
                    })
                    .map(|repo| self.client.repository_id(org, repo).boxed())
                    .collect();
                let ids = stream::iter(reads)
                    .buffered(READ_CONCURRENCY)
                    .collect::<Vec<_>>()
                    .await
                    .into_iter()
                    .collect::<Result<Vec<u64>, _>>()?;
                OrgWrite {
                    visibility: "selected".into(),
                    selected_repository_ids: Some(ids),
                }
            }
            Some(a) => OrgWrite {
                visibility: a.visibility.as_str().into(),
                selected_repository_ids: None,
            },
            None => match meta.map(|m| m.visibility.clone()) {
                Some(Some(v)) if v == "selected" => OrgWrite {
                    selected_repository_ids: Some(
                        self.client
                            .org_secret_repository_ids(scope, name.as_str())
                            .await?,
                    ),
                    visibility: v,
                },
                Some(Some(v)) => OrgWrite {
                    visibility: v,
                    selected_repository_ids: None,
                },
                Some(None) => {
                    return Err(GithubError::Http(crate::http::HttpError::Decode {
                        detail: "the organization secret's metadata has no `visibility`".into(),
                    }))
                }
                None => OrgWrite {
                    visibility: "private".into(),
                    selected_repository_ids: None,
                },
            },
        })
    }

    async fn write_one(&self, t: &Target, new: &NewValue<'_>) -> WriteOutcome {
        let Some((scope, name)) = t.github() else {
            return WriteOutcome::Refused(format!("{} is not a GitHub target", t.label));
        };
        let key = lock(&self.keys).get(scope).cloned();
        let mut key = match key {
            Some(k) => k,
            None => match self.client.public_key(scope).await {
                Ok(k) => k,
                Err(e) => return WriteOutcome::Refused(format!("its public key: {e}")),
            },
        };
        let org = lock(&self.org).get(&t.label).cloned();
        let mut attempts = Attempts::default();
        let mut refetched = false;
        loop {
            let sealed = seal(new.value.expose_secret().as_bytes(), &key);
            let result = self
                .client
                .put_secret(scope, name.as_str(), &sealed, &key.key_id, org.as_ref())
                .await;
            match result {
                Ok(w) => {
                    return WriteOutcome::Written {
                        created: w == Written::Created,
                    }
                }
                // The key changed since preflight: fetch it again and retry once. Whatever
                // the retry answers, an earlier attempt without a clear answer stays unknown.
                Err(e @ GithubError::KeyRejected { .. }) if !refetched => {
                    refetched = true;
                    attempts.failed(&e.to_string(), e.maybe_performed());
                    match self.client.public_key(scope).await {
                        Ok(k) => {
                            lock(&self.keys).insert(scope.clone(), k.clone());
                            key = k;
                        }
                        Err(ke) => {
                            return attempts
                                .end(&format!("{e}; fetching the key again: {ke}"), false)
                        }
                    }
                }
                Err(e) => return attempts.end(&e.to_string(), e.maybe_performed()),
            }
        }
    }
}

/// A secret's metadata (`None`: no such secret) as what it holds.
fn holding(meta: Option<SecretMeta>) -> Holding {
    match meta {
        None => Holding::Missing,
        Some(m) => Holding::Sealed {
            updated_at: Some(m.updated_at),
        },
    }
}

impl Store for GithubStore {
    fn prepare<'a>(
        &'a self,
        targets: &'a [&'a Target],
        drift: bool,
    ) -> BoxFuture<'a, Result<Vec<Option<Holding>>, String>> {
        self.prepare_all(targets, drift).boxed()
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
            let (scope, name) = target
                .github()
                .ok_or_else(|| format!("{} is not a GitHub target", target.label))?;
            self.client
                .secret_metadata(scope, name.as_str())
                .await
                .map(holding)
                .map_err(|e| format!("the metadata of secret `{name}` cannot be read ({e})"))
        }
        .boxed()
    }

    fn describe(&self, target: &Target) -> String {
        match target.github() {
            Some((_, name)) => format!("write secret `{name}` to {}", target.label),
            None => format!("write {}", target.label),
        }
    }

    fn plan(&self, targets: &[&Target]) -> Vec<String> {
        let owned: Vec<Target> = targets.iter().map(|t| (*t).clone()).collect();
        let mut lines = vec![pace::plan_line(targets.len(), self.client.pacer())];
        lines.extend(
            pace::org_hints(&owned)
                .into_iter()
                .map(|h| format!("note: {h}")),
        );
        lines
    }
}
