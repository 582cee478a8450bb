//! The fake GitHub REST API (`github-secrets.openapi.json`, API version
//! 2022-11-28): repositories, environments and organizations; the public keys and
//! secrets of the Actions, environment, Dependabot and Codespaces scopes; the
//! selected repositories of organization secrets; `rate_limit`.
//!
//! Every request must carry the headers the tool promises to send (SPEC §1);
//! every answer carries GitHub's rate-limit headers and a request id. Owner,
//! repository, organization and environment names are case-insensitive and
//! secret names are stored upper-case, as on GitHub. Unknown routes and
//! unsupported methods get 404, as on GitHub.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hyper::Method;
use percent_encoding::{percent_decode_str, utf8_percent_encode};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::faults::secondary_rate_limit_body;
use crate::http::{empty, json, text, with_default_header, with_header, Req, Resp};
use crate::keys::KeyPair;
use crate::{clock, lock, GithubPublicKey, SecretScope, Shared, StoredSecret, SEGMENT};

/// The only API version the fake serves.
const API_VERSION: &str = "2022-11-28";
const MEDIA_TYPE: &str = "application/vnd.github+json";
const USER_AGENT_PREFIX: &str = "seqera-token-rotate/";
const DOCS: &str = "https://docs.github.com/rest";
const SECRETS_DOCS: &str = "https://docs.github.com/rest/actions/secrets";
const VARIABLES_DOCS: &str = "https://docs.github.com/rest/actions/variables";
/// GitHub: "Secrets are limited to 48 KB in size."
const MAX_SECRET_BYTES: usize = 48 * 1024;
const AUTHENTICATED_LIMIT: u32 = 5000;
const ANONYMOUS_LIMIT: u32 = 60;
const VISIBILITIES: [&str; 3] = ["all", "private", "selected"];

struct Token {
    can_write: bool,
    /// May read and write Actions variables ("Variables: Read and write").
    variables: bool,
    used: u32,
}

/// A repository's Actions variable: its value is plain text, readable by the API.
struct Variable {
    name: String,
    value: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

struct Account {
    login: String,
    id: u64,
}

struct Repo {
    id: u64,
    owner: String,
    name: String,
    created_at: OffsetDateTime,
    /// By lower-case name.
    envs: BTreeMap<String, Env>,
}

struct Env {
    id: u64,
    name: String,
    created_at: OffsetDateTime,
}

struct Secret {
    plaintext: String,
    key_id: String,
    writes: u32,
    visibility: Option<String>,
    selected: Vec<u64>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl Secret {
    fn export(&self) -> StoredSecret {
        StoredSecret {
            plaintext: self.plaintext.clone(),
            key_id: self.key_id.clone(),
            writes: self.writes,
            visibility: self.visibility.clone(),
            selected_repository_ids: self.selected.clone(),
            created_at: clock::github(self.created_at),
            updated_at: clock::github(self.updated_at),
        }
    }
}

/// Everything the fake GitHub knows. Maps keyed by lower-case names, scopes by
/// [`SecretScope::normalized`].
pub(crate) struct State {
    base_url: String,
    tokens: HashMap<String, Token>,
    anonymous_used: u32,
    window_reset: u64,
    /// Users and organizations that own repositories, by lower-case login.
    accounts: HashMap<String, Account>,
    orgs: BTreeSet<String>,
    repos: BTreeMap<(String, String), Repo>,
    /// One key pair per existing scope: a scope exists iff it has a key.
    keys: HashMap<SecretScope, KeyPair>,
    /// By upper-case secret name.
    secrets: HashMap<SecretScope, BTreeMap<String, Secret>>,
    /// One id sequence for accounts, repositories and environments, so an id of
    /// the wrong kind never happens to match.
    next_id: u64,
    request_seq: u64,
    /// GitHub's secondary limits on content-creating requests: (at most, in any window).
    write_limits: Vec<(usize, Duration)>,
    /// When the writes that the limits let through arrived, oldest first; only as many as
    /// the largest limit are kept.
    writes_at: VecDeque<Instant>,
    /// Writes answered with a secondary rate limit instead of being performed.
    limited: u64,
    /// Actions variables by (lower-case owner, lower-case repository), then upper-case name.
    variables: HashMap<(String, String), BTreeMap<String, Variable>>,
}

impl State {
    pub(crate) fn new(base_url: String) -> State {
        State {
            base_url,
            tokens: HashMap::new(),
            anonymous_used: 0,
            window_reset: clock::epoch_secs(clock::now()) + 3600,
            accounts: HashMap::new(),
            orgs: BTreeSet::new(),
            repos: BTreeMap::new(),
            keys: HashMap::new(),
            secrets: HashMap::new(),
            next_id: 100_001,
            request_seq: 0,
            write_limits: Vec::new(),
            writes_at: VecDeque::new(),
            limited: 0,
            variables: HashMap::new(),
        }
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ----- set-up and inspection (from `Sandbox`) -----

    pub(crate) fn add_token(&mut self, value: &str, can_write: bool) {
        self.tokens.insert(
            value.to_owned(),
            Token {
                can_write,
                variables: true,
                used: 0,
            },
        );
    }

    pub(crate) fn set_variables_access(&mut self, value: &str, allowed: bool) {
        if let Some(t) = self.tokens.get_mut(value) {
            t.variables = allowed;
        }
    }

    pub(crate) fn variable(&self, owner: &str, repo: &str, name: &str) -> Option<String> {
        self.variables
            .get(&(owner.to_lowercase(), repo.to_lowercase()))?
            .get(&name.to_ascii_uppercase())
            .map(|v| v.value.clone())
    }

    pub(crate) fn set_variable(&mut self, owner: &str, repo: &str, name: &str, value: &str) {
        let now = clock::now();
        let vars = self
            .variables
            .entry((owner.to_lowercase(), repo.to_lowercase()))
            .or_default();
        let created_at = vars
            .get(&name.to_ascii_uppercase())
            .map_or(now, |v| v.created_at);
        vars.insert(
            name.to_ascii_uppercase(),
            Variable {
                name: name.to_owned(),
                value: value.to_owned(),
                created_at,
                updated_at: now,
            },
        );
    }

    fn account(&mut self, login: &str) -> u64 {
        if let Some(a) = self.accounts.get(&login.to_lowercase()) {
            return a.id;
        }
        let id = self.next_id();
        self.accounts.insert(
            login.to_lowercase(),
            Account {
                login: login.to_owned(),
                id,
            },
        );
        id
    }

    pub(crate) fn add_repo(&mut self, owner: &str, repo: &str) -> u64 {
        let key = (owner.to_lowercase(), repo.to_lowercase());
        if let Some(r) = self.repos.get(&key) {
            return r.id;
        }
        self.account(owner);
        let id = self.next_id();
        let owner_name = self.accounts[&key.0].login.clone();
        self.repos.insert(
            key,
            Repo {
                id,
                owner: owner_name,
                name: repo.to_owned(),
                created_at: clock::now(),
                envs: BTreeMap::new(),
            },
        );
        for scope in [
            SecretScope::repo(owner, repo),
            SecretScope::Dependabot {
                owner: owner.to_owned(),
                repo: repo.to_owned(),
            },
            SecretScope::Codespaces {
                owner: owner.to_owned(),
                repo: repo.to_owned(),
            },
        ] {
            self.keys.insert(scope.normalized(), KeyPair::generate());
        }
        id
    }

    pub(crate) fn repo_id(&self, owner: &str, repo: &str) -> Option<u64> {
        self.repo(owner, repo).map(|r| r.id)
    }

    fn repo(&self, owner: &str, repo: &str) -> Option<&Repo> {
        self.repos.get(&(owner.to_lowercase(), repo.to_lowercase()))
    }

    pub(crate) fn add_environment(&mut self, owner: &str, repo: &str, env: &str) -> bool {
        let id = self.next_id();
        let Some(r) = self
            .repos
            .get_mut(&(owner.to_lowercase(), repo.to_lowercase()))
        else {
            return false;
        };
        if r.envs.contains_key(&env.to_lowercase()) {
            return true;
        }
        r.envs.insert(
            env.to_lowercase(),
            Env {
                id,
                name: env.to_owned(),
                created_at: clock::now(),
            },
        );
        self.keys.insert(
            SecretScope::environment(owner, repo, env).normalized(),
            KeyPair::generate(),
        );
        true
    }

    pub(crate) fn add_org(&mut self, org: &str) {
        if !self.orgs.insert(org.to_lowercase()) {
            return;
        }
        self.account(org);
        for scope in [
            SecretScope::org(org),
            SecretScope::OrgDependabot {
                org: org.to_owned(),
            },
            SecretScope::OrgCodespaces {
                org: org.to_owned(),
            },
        ] {
            self.keys.insert(scope.normalized(), KeyPair::generate());
        }
    }

    pub(crate) fn public_key(&self, scope: &SecretScope) -> Option<GithubPublicKey> {
        self.keys.get(&scope.normalized()).map(|k| GithubPublicKey {
            key_id: k.key_id().to_owned(),
            key: k.public_b64().to_owned(),
        })
    }

    pub(crate) fn rotate_key(&mut self, scope: &SecretScope) -> bool {
        match self.keys.get_mut(&scope.normalized()) {
            Some(k) => {
                *k = k.rotated();
                true
            }
            None => false,
        }
    }

    pub(crate) fn secret(&self, scope: &SecretScope, name: &str) -> Option<StoredSecret> {
        self.secrets
            .get(&scope.normalized())?
            .get(&name.to_ascii_uppercase())
            .map(Secret::export)
    }

    pub(crate) fn secrets(&self, scope: &SecretScope) -> BTreeMap<String, StoredSecret> {
        self.secrets
            .get(&scope.normalized())
            .map(|m| m.iter().map(|(n, s)| (n.clone(), s.export())).collect())
            .unwrap_or_default()
    }

    pub(crate) fn put_plain(
        &mut self,
        scope: &SecretScope,
        name: &str,
        value: &str,
        visibility: Option<&str>,
        selected: &[u64],
    ) -> bool {
        let norm = scope.normalized();
        let Some(key) = self.keys.get(&norm) else {
            return false;
        };
        let key_id = key.key_id().to_owned();
        let now = clock::now();
        let (visibility, selected) = if norm.is_org() {
            (
                Some(visibility.unwrap_or("private").to_owned()),
                selected.to_vec(),
            )
        } else {
            (None, Vec::new())
        };
        let slot = self.secrets.entry(norm).or_default();
        let writes = slot.get(&name.to_ascii_uppercase()).map_or(0, |s| s.writes);
        let created_at = slot
            .get(&name.to_ascii_uppercase())
            .map_or(now, |s| s.created_at);
        slot.insert(
            name.to_ascii_uppercase(),
            Secret {
                plaintext: value.to_owned(),
                key_id,
                writes,
                visibility,
                selected,
                created_at,
                updated_at: now,
            },
        );
        true
    }

    pub(crate) fn backdate_secret(
        &mut self,
        scope: &SecretScope,
        name: &str,
        by: std::time::Duration,
    ) -> bool {
        match self
            .secrets
            .get_mut(&scope.normalized())
            .and_then(|m| m.get_mut(&name.to_ascii_uppercase()))
        {
            Some(s) => {
                s.created_at -= by;
                s.updated_at -= by;
                true
            }
            None => false,
        }
    }

    // ----- serving -----

    /// Adds the headers GitHub puts on every answer, and counts the request
    /// against its token's rate limit. Headers already set (e.g. by a rate-limit
    /// fault) are kept.
    pub(crate) fn decorate(&mut self, req: &Req, resp: Resp) -> Resp {
        let now = clock::epoch_secs(clock::now());
        if now >= self.window_reset {
            self.window_reset = now + 3600;
            self.anonymous_used = 0;
            self.tokens.values_mut().for_each(|t| t.used = 0);
        }
        let (limit, used) = match bearer(req).and_then(|v| self.tokens.get_mut(v)) {
            Some(t) => {
                t.used = t.used.saturating_add(1);
                (AUTHENTICATED_LIMIT, t.used)
            }
            None => {
                self.anonymous_used = self.anonymous_used.saturating_add(1);
                (ANONYMOUS_LIMIT, self.anonymous_used)
            }
        };
        self.request_seq += 1;
        let request_id = format!(
            "5A1D:{:04X}:{:06X}:{:06X}:{:08X}",
            self.request_seq & 0xFFFF,
            self.request_seq.wrapping_mul(7919) & 0xFF_FFFF,
            self.request_seq.wrapping_mul(104_729) & 0xFF_FFFF,
            now & 0xFFFF_FFFF
        );
        let mut resp = resp;
        for (name, value) in [
            ("x-ratelimit-limit", limit.to_string()),
            (
                "x-ratelimit-remaining",
                limit.saturating_sub(used).to_string(),
            ),
            ("x-ratelimit-reset", self.window_reset.to_string()),
            ("x-ratelimit-used", used.to_string()),
            ("x-ratelimit-resource", "core".to_owned()),
            ("x-github-request-id", request_id),
            ("x-github-media-type", "github.v3; format=json".to_owned()),
            ("server", "github.com".to_owned()),
        ] {
            resp = with_default_header(resp, name, &value);
        }
        if req.header("x-github-api-version") == Some(API_VERSION) {
            resp = with_default_header(resp, "x-github-api-version-selected", API_VERSION);
        }
        resp
    }

    /// The answer before decoration.
    fn answer(&mut self, req: &Req) -> Resp {
        let can_write = match self.check_headers(req) {
            Ok(can_write) => can_write,
            Err(resp) => return *resp,
        };
        if let Err(resp) = self.count_write(req) {
            return *resp;
        }
        let Some(route) = segments(&req.path).as_deref().and_then(route) else {
            return not_found();
        };
        let method = &req.method;
        let is_write = *method == Method::PUT || *method == Method::DELETE;
        match route {
            Route::RateLimit if *method == Method::GET => self.rate_limit(req),
            Route::Repo { owner, repo } if *method == Method::GET => match self.repo(&owner, &repo)
            {
                Some(r) => json(200, &self.repo_json(r, true)),
                None => not_found(),
            },
            Route::Environment { owner, repo, env } if *method == Method::GET => {
                match self
                    .repo(&owner, &repo)
                    .and_then(|r| Some((r, r.envs.get(&env.to_lowercase())?)))
                {
                    Some((r, e)) => json(200, &self.env_json(r, e)),
                    None => not_found(),
                }
            }
            Route::Variables { owner, repo } | Route::Variable { owner, repo, .. }
                if self.repo(&owner, &repo).is_none() =>
            {
                not_found()
            }
            Route::Variables { owner, repo } if *method == Method::POST => {
                self.variables_op(req, |s| s.create_variable(&owner, &repo, req))
            }
            Route::Variable { owner, repo, name } if *method == Method::GET => {
                self.variables_op(req, |s| s.get_variable(&owner, &repo, &name))
            }
            Route::Variable { owner, repo, name } if *method == Method::PATCH => {
                self.variables_op(req, |s| s.patch_variable(&owner, &repo, &name, req))
            }
            Route::List(scope) if *method == Method::GET => self.list_secrets(req, &scope),
            Route::PublicKey(scope) if *method == Method::GET => match self.public_key(&scope) {
                Some(k) => json(200, &json!({ "key_id": k.key_id, "key": k.key })),
                None => not_found(),
            },
            Route::Secret(scope, name) if *method == Method::GET => self.get_secret(&scope, &name),
            Route::SelectedRepos(scope, name) if *method == Method::GET => {
                self.list_selected(req, &scope, &name)
            }
            Route::Secret(scope, name) if is_write => self.write(&scope, can_write, |s| {
                if *method == Method::PUT {
                    s.put_secret(&scope, &name, req)
                } else {
                    s.delete_secret(&scope, &name)
                }
            }),
            Route::SelectedRepos(scope, name) if *method == Method::PUT => {
                self.write(&scope, can_write, |s| s.set_selected(&scope, &name, req))
            }
            Route::SelectedRepo(scope, name, id) if is_write => {
                self.write(&scope, can_write, |s| {
                    s.change_selected(&scope, &name, &id, *method == Method::PUT)
                })
            }
            _ => not_found(),
        }
    }

    /// Variables need their own permission: without it, GitHub's 403 naming it.
    fn variables_op(&mut self, req: &Req, op: impl FnOnce(&mut State) -> Resp) -> Resp {
        let allowed = bearer(req)
            .and_then(|v| self.tokens.get(v))
            .is_some_and(|t| t.variables);
        if !allowed {
            let need = if req.method == Method::GET {
                "actions_variables=read"
            } else {
                "actions_variables=write"
            };
            return with_header(
                error(
                    403,
                    "Resource not accessible by integration",
                    VARIABLES_DOCS,
                ),
                "x-accepted-github-permissions",
                need,
            );
        }
        op(self)
    }

    fn get_variable(&self, owner: &str, repo: &str, name: &str) -> Resp {
        let key = (owner.to_lowercase(), repo.to_lowercase());
        match self
            .variables
            .get(&key)
            .and_then(|m| m.get(&name.to_ascii_uppercase()))
        {
            Some(v) => json(
                200,
                &json!({
                    "name": v.name,
                    "value": v.value,
                    "created_at": clock::github(v.created_at),
                    "updated_at": clock::github(v.updated_at),
                }),
            ),
            None => not_found(),
        }
    }

    /// `{"name", "value"}` from a variable write's body, or GitHub's 422.
    fn variable_body(req: &Req, need_name: bool) -> Result<(Option<String>, String), Box<Resp>> {
        let body: Value = serde_json::from_slice(&req.body)
            .map_err(|_| Box::new(error(400, "Problems parsing JSON", VARIABLES_DOCS)))?;
        let name = body.get("name").and_then(Value::as_str).map(str::to_owned);
        let value = body.get("value").and_then(Value::as_str).map(str::to_owned);
        match (name, value) {
            (None, _) if need_name => Err(Box::new(invalid("name wasn't supplied."))),
            (_, None) => Err(Box::new(invalid("value wasn't supplied."))),
            (Some(n), _) if check_secret_name(&n).is_err() => {
                Err(Box::new(invalid("name is not a valid variable name.")))
            }
            (n, Some(v)) => Ok((n, v)),
        }
    }

    fn create_variable(&mut self, owner: &str, repo: &str, req: &Req) -> Resp {
        let (name, value) = match Self::variable_body(req, true) {
            Ok(x) => x,
            Err(resp) => return *resp,
        };
        let name = name.unwrap_or_default();
        if self.variable(owner, repo, &name).is_some() {
            return error(
                409,
                "Already exists - Variable already exists",
                VARIABLES_DOCS,
            );
        }
        self.set_variable(owner, repo, &name, &value);
        json(201, &json!({}))
    }

    fn patch_variable(&mut self, owner: &str, repo: &str, name: &str, req: &Req) -> Resp {
        if self.variable(owner, repo, name).is_none() {
            return not_found();
        }
        let (new_name, value) = match Self::variable_body(req, false) {
            Ok(x) => x,
            Err(resp) => return *resp,
        };
        if new_name.is_some_and(|n| !n.eq_ignore_ascii_case(name)) {
            return invalid("sandbox: renaming a variable is not supported");
        }
        let stored = self
            .variables
            .get(&(owner.to_lowercase(), repo.to_lowercase()))
            .and_then(|m| m.get(&name.to_ascii_uppercase()))
            .map(|v| v.name.clone())
            .unwrap_or_else(|| name.to_owned());
        self.set_variable(owner, repo, &stored, &value);
        empty(204)
    }

    pub(crate) fn set_write_limits(&mut self, limits: &[(usize, Duration)]) {
        self.write_limits = limits.to_vec();
        self.writes_at.clear();
    }

    pub(crate) fn limited_answers(&self) -> u64 {
        self.limited
    }

    /// GitHub's secondary rate limit on content-creating requests (`POST`, `PATCH`, `PUT`,
    /// `DELETE`): one that would make any window hold more than its limit is answered 403
    /// "secondary rate limit" with `retry-after` (whole seconds until it would fit) and is
    /// not performed, nor counted.
    fn count_write(&mut self, req: &Req) -> Result<(), Box<Resp>> {
        let content_creating = [Method::POST, Method::PATCH, Method::PUT, Method::DELETE];
        if self.write_limits.is_empty() || !content_creating.contains(&req.method) {
            return Ok(());
        }
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        for &(limit, window) in &self.write_limits {
            let in_window: Vec<&Instant> = self
                .writes_at
                .iter()
                .filter(|&&at| now.duration_since(at) < window)
                .collect();
            if in_window.len() >= limit {
                let oldest = *in_window[in_window.len() - limit];
                wait = wait.max(window - now.duration_since(oldest));
            }
        }
        if !wait.is_zero() {
            self.limited += 1;
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let resp = json(
                403,
                &serde_json::from_str::<Value>(&secondary_rate_limit_body()).unwrap_or_default(),
            );
            return Err(Box::new(with_header(
                resp,
                "retry-after",
                &secs.to_string(),
            )));
        }
        self.writes_at.push_back(now);
        let keep = self.write_limits.iter().map(|l| l.0).max().unwrap_or(0);
        while self.writes_at.len() > keep {
            self.writes_at.pop_front();
        }
        Ok(())
    }

    /// Runs a write after the checks GitHub makes first: the scope exists (404),
    /// then the token may write secrets (403).
    fn write(
        &mut self,
        scope: &SecretScope,
        can_write: bool,
        op: impl FnOnce(&mut State) -> Resp,
    ) -> Resp {
        if !self.keys.contains_key(&scope.normalized()) {
            return not_found();
        }
        if !can_write {
            return with_header(
                error(403, "Resource not accessible by integration", SECRETS_DOCS),
                "x-accepted-github-permissions",
                write_permission(scope),
            );
        }
        op(self)
    }

    /// The headers every request must carry. Returns whether the token may write.
    fn check_headers(&self, req: &Req) -> Result<bool, Box<Resp>> {
        match req.header("user-agent") {
            None => {
                return Err(Box::new(text(
                    403,
                    "Request forbidden by administrative rules. Please make sure your request \
                     has a User-Agent header (https://docs.github.com/en/rest/overview/\
                     resources-in-the-rest-api#user-agent-required). Check \
                     https://developer.github.com for other possible causes.\n",
                )))
            }
            Some(ua) if !ua.starts_with(USER_AGENT_PREFIX) => {
                return Err(Box::new(error(
                    403,
                    &format!(
                        "sandbox: User-Agent must start with '{USER_AGENT_PREFIX}', got '{ua}'"
                    ),
                    DOCS,
                )))
            }
            Some(_) => {}
        }
        let token = match req.header("authorization") {
            None => return Err(Box::new(error(401, "Requires authentication", DOCS))),
            Some(_) => match bearer(req).and_then(|v| self.tokens.get(v)) {
                Some(t) => t,
                None => return Err(Box::new(error(401, "Bad credentials", DOCS))),
            },
        };
        match req.header("x-github-api-version") {
            None => {
                return Err(Box::new(error(
                    400,
                    &format!(
                        "sandbox: the X-GitHub-Api-Version header is required ({API_VERSION})"
                    ),
                    "https://docs.github.com/rest/overview/api-versions",
                )))
            }
            Some(v) if v != API_VERSION => {
                return Err(Box::new(error(
                    400,
                    &format!(
                        "API version {v} is not a supported version. Supported: {API_VERSION}"
                    ),
                    "https://docs.github.com/rest/overview/api-versions",
                )))
            }
            Some(_) => {}
        }
        let accept = req.header("accept").unwrap_or("");
        let media: Vec<&str> = accept
            .split(',')
            .map(|m| m.split(';').next().unwrap_or("").trim())
            .filter(|m| !m.is_empty())
            .collect();
        if !media.iter().any(|m| m.eq_ignore_ascii_case(MEDIA_TYPE)) {
            let accepts_json = media.iter().any(|m| {
                let m = m.to_ascii_lowercase();
                m == "*/*"
                    || m == "application/*"
                    || m == "application/json"
                    || m.starts_with("application/vnd.github")
            });
            return Err(Box::new(if media.is_empty() || accepts_json {
                error(
                    400,
                    &format!("sandbox: the Accept header must be '{MEDIA_TYPE}', got '{accept}'"),
                    "https://docs.github.com/rest/overview/media-types",
                )
            } else {
                // What GitHub itself answers for an Accept it cannot serve.
                error(
                    415,
                    &format!(
                        "Unsupported 'Accept' header: {media:?}. Must accept 'application/json'."
                    ),
                    "https://docs.github.com/rest/overview/media-types",
                )
            }));
        }
        Ok(token.can_write)
    }

    fn rate_limit(&self, req: &Req) -> Resp {
        let (limit, used) = match bearer(req).and_then(|v| self.tokens.get(v)) {
            Some(t) => (AUTHENTICATED_LIMIT, t.used),
            None => (ANONYMOUS_LIMIT, self.anonymous_used),
        };
        let core = json!({
            "limit": limit,
            "used": used,
            "remaining": limit.saturating_sub(used),
            "reset": self.window_reset,
        });
        json(200, &json!({ "resources": { "core": core }, "rate": core }))
    }

    fn get_secret(&self, scope: &SecretScope, name: &str) -> Resp {
        let norm = scope.normalized();
        match self
            .secrets
            .get(&norm)
            .and_then(|m| m.get_key_value(&name.to_ascii_uppercase()))
        {
            Some((name, s)) => json(200, &self.secret_json(&norm, name, s)),
            None => not_found(),
        }
    }

    fn list_secrets(&self, req: &Req, scope: &SecretScope) -> Resp {
        let norm = scope.normalized();
        if !self.keys.contains_key(&norm) {
            return not_found();
        }
        let items: Vec<Value> = self
            .secrets
            .get(&norm)
            .map(|m| {
                m.iter()
                    .map(|(n, s)| self.secret_json(&norm, n, s))
                    .collect()
            })
            .unwrap_or_default();
        paginated(&self.base_url, req, "secrets", items)
    }

    fn secret_json(&self, norm: &SecretScope, name: &str, s: &Secret) -> Value {
        let mut v = json!({
            "name": name,
            "created_at": clock::github(s.created_at),
            "updated_at": clock::github(s.updated_at),
        });
        if let Some(visibility) = &s.visibility {
            v["visibility"] = json!(visibility);
            // GitHub gives the list's URL only when there is a list to look at.
            if visibility == "selected" {
                v["selected_repositories_url"] = json!(format!(
                    "{}{}/{name}/repositories",
                    self.base_url,
                    self.display_scope(norm).secrets_path()
                ));
            }
        }
        v
    }

    /// A normalized scope spelled with the display names of its owner/org.
    fn display_scope(&self, norm: &SecretScope) -> SecretScope {
        let login = |l: &String| {
            self.accounts
                .get(l)
                .map_or_else(|| l.clone(), |a| a.login.clone())
        };
        match norm {
            SecretScope::Org { org } => SecretScope::Org { org: login(org) },
            SecretScope::OrgDependabot { org } => SecretScope::OrgDependabot { org: login(org) },
            SecretScope::OrgCodespaces { org } => SecretScope::OrgCodespaces { org: login(org) },
            other => other.clone(),
        }
    }

    fn put_secret(&mut self, scope: &SecretScope, raw_name: &str, req: &Req) -> Resp {
        let norm = scope.normalized();
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return error(400, "Problems parsing JSON", SECRETS_DOCS);
        };
        let Some(obj) = body.as_object() else {
            return invalid(&format!("For 'links/0/schema', {body} is not an object."));
        };
        if let Err(msg) = check_secret_name(raw_name) {
            return invalid(msg);
        }
        let name = raw_name.to_ascii_uppercase();
        let org = org_of(&norm);
        let mut required = vec!["encrypted_value", "key_id"];
        if org.is_some() {
            required.push("visibility");
        }
        for field in required {
            if !obj.contains_key(field) {
                return invalid(&format!("\"{field}\" wasn't supplied."));
            }
        }
        let (Some(encrypted), Some(key_id)) =
            (obj["encrypted_value"].as_str(), obj["key_id"].as_str())
        else {
            return invalid(
                "For 'properties/encrypted_value' and 'properties/key_id', a string is required.",
            );
        };
        let (visibility, selected) = match org {
            Some(org) => match self.org_visibility(org, obj) {
                Ok((v, s)) => (Some(v), s),
                Err(resp) => return *resp,
            },
            None => (None, Vec::new()),
        };
        let key = &self.keys[&norm];
        if key_id != key.key_id() {
            return invalid(&format!(
                "key_id {key_id} does not match the current public key of this scope \
                 (the key may have been rotated); fetch the public key again."
            ));
        }
        let sealed = match STANDARD.decode(encrypted) {
            Ok(bytes) if is_padded_base64(encrypted) => bytes,
            _ => {
                return invalid(
                    "For 'properties/encrypted_value', the value does not match \
                     /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$/.",
                )
            }
        };
        let Some(plain) = key.open(&sealed) else {
            return invalid(&format!(
                "encrypted_value could not be decrypted with the key of key_id {key_id}: \
                 it must be a libsodium sealed box (crypto_box_seal) for this public key."
            ));
        };
        if plain.len() > MAX_SECRET_BYTES {
            return invalid("Secret values are limited to 48 KB.");
        }
        let key_id = key_id.to_owned();
        let now = clock::now();
        let slot = self.secrets.entry(norm).or_default();
        let created = !slot.contains_key(&name);
        let previous = slot.remove(&name);
        slot.insert(
            name,
            Secret {
                plaintext: String::from_utf8_lossy(&plain).into_owned(),
                key_id,
                writes: previous.as_ref().map_or(0, |p| p.writes) + 1,
                visibility,
                selected,
                created_at: previous.as_ref().map_or(now, |p| p.created_at),
                updated_at: now,
            },
        );
        if created {
            json(201, &json!({}))
        } else {
            empty(204)
        }
    }

    /// Validates `visibility` and `selected_repository_ids` of an organization secret.
    fn org_visibility(
        &self,
        org: &str,
        obj: &Map<String, Value>,
    ) -> Result<(String, Vec<u64>), Box<Resp>> {
        let visibility = match obj.get("visibility").and_then(Value::as_str) {
            Some(v) if VISIBILITIES.contains(&v) => v.to_owned(),
            _ => {
                return Err(Box::new(invalid(&format!(
                    "For 'properties/visibility', {} is not one of [\"all\", \"private\", \"selected\"].",
                    obj.get("visibility").unwrap_or(&Value::Null)
                ))))
            }
        };
        let selected = match obj.get("selected_repository_ids") {
            None | Some(Value::Null) => Vec::new(),
            Some(ids) => self.org_repo_ids(org, ids)?,
        };
        if visibility != "selected" && !selected.is_empty() {
            return Err(Box::new(invalid(
                "sandbox: selected_repository_ids can only be given when visibility is 'selected'.",
            )));
        }
        Ok((visibility, selected))
    }

    /// Parses a list of repository ids (integers or numeric strings, as the
    /// contract allows) and checks each is a repository of the organization.
    fn org_repo_ids(&self, org: &str, ids: &Value) -> Result<Vec<u64>, Box<Resp>> {
        let Some(items) = ids.as_array() else {
            return Err(Box::new(invalid(&format!(
                "For 'properties/selected_repository_ids', {ids} is not an array."
            ))));
        };
        let mut out = Vec::new();
        for item in items {
            let id = item
                .as_u64()
                .or_else(|| item.as_str().and_then(|s| s.parse().ok()));
            let Some(id) = id else {
                return Err(Box::new(invalid(&format!(
                    "For 'items', {item} is not a repository id."
                ))));
            };
            let in_org = self
                .repos
                .iter()
                .any(|((owner, _), r)| owner == org && r.id == id);
            if !in_org {
                return Err(Box::new(invalid(&format!(
                    "Repository id {id} is not a repository of the organization."
                ))));
            }
            if !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }

    fn delete_secret(&mut self, scope: &SecretScope, name: &str) -> Resp {
        let removed = self
            .secrets
            .get_mut(&scope.normalized())
            .and_then(|m| m.remove(&name.to_ascii_uppercase()));
        match removed {
            Some(_) => empty(204),
            None => not_found(),
        }
    }

    fn list_selected(&self, req: &Req, scope: &SecretScope, name: &str) -> Resp {
        let norm = scope.normalized();
        let Some(secret) = self
            .secrets
            .get(&norm)
            .and_then(|m| m.get(&name.to_ascii_uppercase()))
        else {
            return not_found();
        };
        let items: Vec<Value> = secret
            .selected
            .iter()
            .filter_map(|id| self.repos.values().find(|r| r.id == *id))
            .map(|r| self.repo_json(r, false))
            .collect();
        paginated(&self.base_url, req, "repositories", items)
    }

    fn set_selected(&mut self, scope: &SecretScope, name: &str, req: &Req) -> Resp {
        let norm = scope.normalized();
        let Some(org) = org_of(&norm).map(str::to_owned) else {
            return not_found();
        };
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return error(400, "Problems parsing JSON", SECRETS_DOCS);
        };
        let Some(ids) = body.get("selected_repository_ids") else {
            return invalid("\"selected_repository_ids\" wasn't supplied.");
        };
        let ids = match self.org_repo_ids(&org, ids) {
            Ok(ids) => ids,
            Err(resp) => return *resp,
        };
        let Some(secret) = self
            .secrets
            .get_mut(&norm)
            .and_then(|m| m.get_mut(&name.to_ascii_uppercase()))
        else {
            return not_found();
        };
        if secret.visibility.as_deref() != Some("selected") {
            return error(
                409,
                "Secret visibility is not set to 'selected'.",
                SECRETS_DOCS,
            );
        }
        secret.selected = ids;
        secret.updated_at = clock::now();
        empty(204)
    }

    fn change_selected(&mut self, scope: &SecretScope, name: &str, id: &str, add: bool) -> Resp {
        let norm = scope.normalized();
        let (Some(org), Ok(id)) = (org_of(&norm).map(str::to_owned), id.parse::<u64>()) else {
            return not_found();
        };
        let in_org = self
            .repos
            .iter()
            .any(|((owner, _), r)| *owner == org && r.id == id);
        let Some(secret) = self
            .secrets
            .get_mut(&norm)
            .and_then(|m| m.get_mut(&name.to_ascii_uppercase()))
        else {
            return not_found();
        };
        if secret.visibility.as_deref() != Some("selected") {
            return error(
                409,
                "Secret visibility is not set to 'selected'.",
                SECRETS_DOCS,
            );
        }
        if add {
            if !in_org {
                return invalid(&format!(
                    "Repository id {id} is not a repository of the organization."
                ));
            }
            if !secret.selected.contains(&id) {
                secret.selected.push(id);
            }
        } else {
            secret.selected.retain(|&s| s != id);
        }
        empty(204)
    }

    // ----- JSON shapes -----

    fn simple_user(&self, login: &str) -> Value {
        let lower = login.to_lowercase();
        let (login, id) = self
            .accounts
            .get(&lower)
            .map_or((login.to_owned(), 0), |a| (a.login.clone(), a.id));
        let is_org = self.orgs.contains(&lower);
        let kind = if is_org { "Organization" } else { "User" };
        let node = if is_org {
            format!("012:Organization{id}")
        } else {
            format!("04:User{id}")
        };
        let url = format!("{}/users/{login}", self.base_url);
        json!({
            "login": login,
            "id": id,
            "node_id": STANDARD.encode(node),
            "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
            "gravatar_id": "",
            "url": url,
            "html_url": format!("https://github.com/{login}"),
            "followers_url": format!("{url}/followers"),
            "following_url": format!("{url}/following{{/other_user}}"),
            "gists_url": format!("{url}/gists{{/gist_id}}"),
            "starred_url": format!("{url}/starred{{/owner}}{{/repo}}"),
            "subscriptions_url": format!("{url}/subscriptions"),
            "organizations_url": format!("{url}/orgs"),
            "repos_url": format!("{url}/repos"),
            "events_url": format!("{url}/events{{/privacy}}"),
            "received_events_url": format!("{url}/received_events"),
            "type": kind,
            "site_admin": false
        })
    }

    /// The repository object: "Minimal Repository" or, with `full`, the
    /// full-repository fields the contract requires as well.
    fn repo_json(&self, r: &Repo, full: bool) -> Value {
        let full_name = format!("{}/{}", r.owner, r.name);
        let url = format!("{}/repos/{full_name}", self.base_url);
        let mut v = json!({
            "id": r.id,
            "node_id": STANDARD.encode(format!("010:Repository{}", r.id)),
            "name": r.name,
            "full_name": full_name,
            "owner": self.simple_user(&r.owner),
            "private": true,
            "html_url": format!("https://github.com/{full_name}"),
            "description": null,
            "fork": false,
            "url": url,
        });
        for (field, suffix) in REPO_URLS {
            v[*field] = json!(format!("{url}{suffix}"));
        }
        if full {
            let created = clock::github(r.created_at);
            let extra = json!({
                "clone_url": format!("https://github.com/{full_name}.git"),
                "git_url": format!("git://github.com/{full_name}.git"),
                "ssh_url": format!("git@github.com:{full_name}.git"),
                "svn_url": format!("https://github.com/{full_name}"),
                "mirror_url": null,
                "homepage": null,
                "language": null,
                "license": null,
                "default_branch": "main",
                "forks": 0, "forks_count": 0,
                "stargazers_count": 0, "watchers": 0, "watchers_count": 0,
                "open_issues": 0, "open_issues_count": 0,
                "network_count": 0, "subscribers_count": 0,
                "size": 0,
                "has_issues": true, "has_projects": true, "has_wiki": true,
                "has_pages": false, "has_discussions": false, "has_downloads": true,
                "archived": false, "disabled": false, "is_template": false,
                "visibility": "private",
                "topics": [],
                "pushed_at": created, "created_at": created, "updated_at": created,
                "permissions": { "admin": true, "maintain": true, "push": true, "triage": true, "pull": true },
            });
            if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
                v.extend(extra);
            }
        }
        v
    }

    fn env_json(&self, r: &Repo, e: &Env) -> Value {
        let created = clock::github(e.created_at);
        let name_enc = utf8_percent_encode(&e.name, SEGMENT).to_string();
        json!({
            "id": e.id,
            "node_id": STANDARD.encode(format!("011:Environment{}", e.id)),
            "name": e.name,
            "url": format!("{}/repos/{}/{}/environments/{name_enc}", self.base_url, r.owner, r.name),
            "html_url": format!("https://github.com/{}/{}/deployments/activity_log?environments_filter={name_enc}", r.owner, r.name),
            "created_at": created,
            "updated_at": created,
            "protection_rules": [],
            "deployment_branch_policy": null
        })
    }
}

/// URL templates of a repository object, relative to its API URL.
const REPO_URLS: &[(&str, &str)] = &[
    ("archive_url", "/{archive_format}{/ref}"),
    ("assignees_url", "/assignees{/user}"),
    ("blobs_url", "/git/blobs{/sha}"),
    ("branches_url", "/branches{/branch}"),
    ("collaborators_url", "/collaborators{/collaborator}"),
    ("comments_url", "/comments{/number}"),
    ("commits_url", "/commits{/sha}"),
    ("compare_url", "/compare/{base}...{head}"),
    ("contents_url", "/contents/{+path}"),
    ("contributors_url", "/contributors"),
    ("deployments_url", "/deployments"),
    ("downloads_url", "/downloads"),
    ("events_url", "/events"),
    ("forks_url", "/forks"),
    ("git_commits_url", "/git/commits{/sha}"),
    ("git_refs_url", "/git/refs{/sha}"),
    ("git_tags_url", "/git/tags{/sha}"),
    ("hooks_url", "/hooks"),
    ("issue_comment_url", "/issues/comments{/number}"),
    ("issue_events_url", "/issues/events{/number}"),
    ("issues_url", "/issues{/number}"),
    ("keys_url", "/keys{/key_id}"),
    ("labels_url", "/labels{/name}"),
    ("languages_url", "/languages"),
    ("merges_url", "/merges"),
    ("milestones_url", "/milestones{/number}"),
    (
        "notifications_url",
        "/notifications{?since,all,participating}",
    ),
    ("pulls_url", "/pulls{/number}"),
    ("releases_url", "/releases{/id}"),
    ("stargazers_url", "/stargazers"),
    ("statuses_url", "/statuses/{sha}"),
    ("subscribers_url", "/subscribers"),
    ("subscription_url", "/subscription"),
    ("tags_url", "/tags"),
    ("teams_url", "/teams"),
    ("trees_url", "/git/trees{/sha}"),
];

/// Answers one request.
pub(crate) fn handle(shared: &Shared, req: &Req) -> Resp {
    let mut state = lock(&shared.github);
    let resp = state.answer(req);
    state.decorate(req, resp)
}

/// The token value of `Authorization: Bearer …` (or GitHub's older `token …`).
fn bearer(req: &Req) -> Option<&str> {
    let (scheme, value) = req.header("authorization")?.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| value.trim())
}

/// The fine-grained permission GitHub names in `x-accepted-github-permissions`
/// when a token may not write this scope's secrets.
fn write_permission(scope: &SecretScope) -> &'static str {
    match scope {
        SecretScope::Repo { .. } => "secrets=write",
        SecretScope::Environment { .. } => "environments=write",
        SecretScope::Org { .. } => "organization_secrets=write",
        SecretScope::Dependabot { .. } => "dependabot_secrets=write",
        SecretScope::Codespaces { .. } => "codespaces_secrets=write",
        SecretScope::OrgDependabot { .. } => "organization_dependabot_secrets=write",
        SecretScope::OrgCodespaces { .. } => "organization_codespaces_secrets=write",
    }
}

/// The (lower-case) organization of an organization scope.
fn org_of(norm: &SecretScope) -> Option<&str> {
    match norm {
        SecretScope::Org { org }
        | SecretScope::OrgDependabot { org }
        | SecretScope::OrgCodespaces { org } => Some(org),
        _ => None,
    }
}

/// GitHub's rule for secret names.
fn check_secret_name(name: &str) -> Result<(), &'static str> {
    let valid_chars =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid_chars || name.as_bytes()[0].is_ascii_digit() {
        return Err(
            "Secret names can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or \
             underscores (_). Spaces are not allowed. Must start with a letter ([a-z], [A-Z]) or \
             underscores (_).",
        );
    }
    if name.to_ascii_uppercase().starts_with("GITHUB_") {
        return Err("Secret names must not start with the GITHUB_ prefix.");
    }
    Ok(())
}

/// The contract's pattern for `encrypted_value`: standard base64, padded, non-empty.
fn is_padded_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() % 4 != 0 {
        return false;
    }
    let body_ok = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    let pad = b.iter().rev().take_while(|&&c| c == b'=').count();
    pad <= 2 && b[..b.len() - pad].iter().all(|&c| body_ok(c))
}

/// Splits a path into percent-decoded segments; `None` for empty segments or
/// invalid UTF-8 (GitHub answers 404 to both).
fn segments(path: &str) -> Option<Vec<String>> {
    path.strip_prefix('/')?
        .split('/')
        .map(|s| {
            let decoded = percent_decode_str(s).decode_utf8().ok()?;
            (!decoded.is_empty()).then(|| decoded.into_owned())
        })
        .collect()
}

enum Route {
    RateLimit,
    Variables {
        owner: String,
        repo: String,
    },
    Variable {
        owner: String,
        repo: String,
        name: String,
    },
    Repo {
        owner: String,
        repo: String,
    },
    Environment {
        owner: String,
        repo: String,
        env: String,
    },
    List(SecretScope),
    PublicKey(SecretScope),
    Secret(SecretScope, String),
    SelectedRepos(SecretScope, String),
    SelectedRepo(SecretScope, String, String),
}

fn route(segs: &[String]) -> Option<Route> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let own = |x: &str| x.to_owned();
    let (scope, rest): (SecretScope, &[&str]) = match s.as_slice() {
        ["rate_limit"] => return Some(Route::RateLimit),
        ["repos", o, r] => {
            return Some(Route::Repo {
                owner: own(o),
                repo: own(r),
            })
        }
        ["repos", o, r, "actions", "variables"] => {
            return Some(Route::Variables {
                owner: own(o),
                repo: own(r),
            })
        }
        ["repos", o, r, "actions", "variables", n] => {
            return Some(Route::Variable {
                owner: own(o),
                repo: own(r),
                name: own(n),
            })
        }
        ["repos", o, r, "environments", e] => {
            return Some(Route::Environment {
                owner: own(o),
                repo: own(r),
                env: own(e),
            })
        }
        ["repos", o, r, "environments", e, "secrets", rest @ ..] => {
            (SecretScope::environment(o, r, e), rest)
        }
        ["repos", o, r, kind, "secrets", rest @ ..] => {
            let (owner, repo) = (own(o), own(r));
            let scope = match *kind {
                "actions" => SecretScope::Repo { owner, repo },
                "dependabot" => SecretScope::Dependabot { owner, repo },
                "codespaces" => SecretScope::Codespaces { owner, repo },
                _ => return None,
            };
            (scope, rest)
        }
        ["orgs", org, kind, "secrets", rest @ ..] => {
            let org = own(org);
            let scope = match *kind {
                "actions" => SecretScope::Org { org },
                "dependabot" => SecretScope::OrgDependabot { org },
                "codespaces" => SecretScope::OrgCodespaces { org },
                _ => return None,
            };
            (scope, rest)
        }
        _ => return None,
    };
    let is_org = scope.is_org();
    Some(match rest {
        [] => Route::List(scope),
        ["public-key"] => Route::PublicKey(scope),
        [name] => Route::Secret(scope, own(name)),
        [name, "repositories"] if is_org => Route::SelectedRepos(scope, own(name)),
        [name, "repositories", id] if is_org => Route::SelectedRepo(scope, own(name), own(id)),
        _ => return None,
    })
}

/// GitHub's "Basic Error" body.
fn error(status: u16, message: &str, documentation_url: &str) -> Resp {
    json(
        status,
        &json!({
            "message": message,
            "documentation_url": documentation_url,
            "status": status.to_string()
        }),
    )
}

fn not_found() -> Resp {
    error(404, "Not Found", DOCS)
}

/// GitHub's 422 "Validation Failed" for a request body it rejects.
fn invalid(detail: &str) -> Resp {
    error(422, &format!("Invalid request.\n\n{detail}"), SECRETS_DOCS)
}

/// A page of a list answer: `{"total_count": n, <field>: [...]}` with GitHub's
/// `per_page` (default 30, at most 100) and `page` parameters and `Link` header.
fn paginated(base_url: &str, req: &Req, field: &str, items: Vec<Value>) -> Resp {
    let per_page = req
        .query_param("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|&p| p > 0)
        .unwrap_or(30)
        .min(100);
    let page = req
        .query_param("page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|&p| p > 0)
        .unwrap_or(1);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let page_items: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    let resp = json(200, &json!({ "total_count": total, field: page_items }));
    let link = |p: usize, rel: &str| {
        format!(
            "<{base_url}{}?per_page={per_page}&page={p}>; rel=\"{rel}\"",
            req.path
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
        links.push(link(1, "first"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if links.is_empty() {
        resp
    } else {
        with_header(resp, "link", &links.join(", "))
    }
}

/// Time passing, for tests of secret ages (see `Sandbox::advance_clock`).
impl State {
    /// Moves every stored secret's creation and update time `by` into the past.
    pub(crate) fn shift_past(&mut self, by: std::time::Duration) {
        for s in self.secrets.values_mut().flat_map(BTreeMap::values_mut) {
            s.created_at -= by;
            s.updated_at -= by;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_follow_githubs_rule() {
        for ok in ["TOWER_ACCESS_TOKEN", "_x", "a1", "Github", "GITHUB"] {
            assert!(check_secret_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1ABC", "A-B", "A B", "GITHUB_TOKEN", "github_x", "É"] {
            assert!(check_secret_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_pattern_is_the_contracts() {
        for ok in ["c2VjcmV0", "QQ==", "QUI=", "QUJD", "a+/b"] {
            assert!(is_padded_base64(ok), "{ok}");
        }
        for bad in ["", "QQ", "QQ=", "Q===", "c2Vj cmV0", "c2VjcmV0\n", "QQ-_"] {
            assert!(!is_padded_base64(bad), "{bad}");
        }
    }

    #[test]
    fn routes_decode_segments_separately() {
        let segs = segments("/repos/o/r/environments/prod%2Feu%20west/secrets/X").unwrap();
        assert_eq!(segs[4], "prod/eu west");
        match route(&segs) {
            Some(Route::Secret(SecretScope::Environment { env, .. }, name)) => {
                assert_eq!(env, "prod/eu west");
                assert_eq!(name, "X");
            }
            _ => panic!("wrong route"),
        }
        assert!(segments("/repos//r").is_none());
        assert!(segments("/repos/o/r/").is_none());
        assert!(route(&segments("/repos/o/r/pages/secrets").unwrap()).is_none());
        assert!(route(&segments("/repos/o/r/actions/secrets/X/repositories").unwrap()).is_none());
        assert!(matches!(
            route(&segments("/orgs/o/codespaces/secrets/X/repositories/5").unwrap()),
            Some(Route::SelectedRepo(SecretScope::OrgCodespaces { .. }, _, _))
        ));
    }
}
