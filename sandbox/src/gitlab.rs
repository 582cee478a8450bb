//! The fake GitLab REST API (v4): project-level and group-level CI/CD variables, as
//! GitLab's "Project-level CI/CD variables API" and "Group-level variables API" document
//! them. Served under `/api/v4` like GitLab (`Sandbox::gitlab_url`).
//!
//! Endpoints (`:id` is the numeric id or the URL-encoded full path, e.g.
//! `group%2Fsub%2Fproject`; `:scope` is `projects` or `groups`):
//!
//! - `GET    /:scope/:id/variables` (`page`, `per_page`: 20 by default, at most 100; the
//!   `x-page`, `x-per-page`, `x-total`, `x-total-pages`, `x-next-page`, `x-prev-page` headers)
//! - `POST   /:scope/:id/variables` → 201
//! - `GET    /:scope/:id/variables/:key`
//! - `PUT    /:scope/:id/variables/:key` → 200; flags not given are kept
//! - `DELETE /:scope/:id/variables/:key` → 204
//!
//! `GET`/`PUT`/`DELETE` of a key take `filter[environment_scope]`; without it, a key held
//! under several environment scopes is a 409 ("There are multiple variables with provided
//! parameters. Please use 'filter[environment_scope]'"), as GitLab answers. Parameters are
//! read from the query, a JSON body or a form body, as GitLab's API framework does.
//!
//! Authentication: `PRIVATE-TOKEN: <token>` or `Authorization: Bearer <token>`; none or an
//! unknown one is 401 `{"message":"401 Unauthorized"}`. A token registered without write
//! access behaves like a `read_api` token: reads work, writes get GitLab's 403
//! `{"error":"insufficient_scope",…,"scope":"api"}`. Unknown projects, groups and
//! variables are 404 `{"message":"404 Project Not Found"}` (`Group`, `Variable`); full
//! paths compare without regard to case, as GitLab's routes do, keys exactly.
//!
//! Validation as GitLab's models do it, with its messages (400, `{"message":{field:[…]}}`):
//! keys are 1–255 of `[A-Za-z0-9_]`; a POST of a key already held under that environment
//! scope is `{"key":["(KEY) has already been taken"]}`; values are at most 10,000
//! characters; a masked value must match GitLab's masking rule (`Ci::Maskable`): one line,
//! at least 8 characters, and only `A-Za-z0-9_+=/@:.~-` — or, for a raw variable, any
//! characters but white space — else `{"value":["is invalid"]}`; `variable_type` is
//! `env_var` or `file`.
//!
//! Hidden variables (GitLab 17.4+): created with `masked_and_hidden: true` (which also
//! masks them); a hidden variable stays hidden and masked, and no answer ever carries its
//! value (`"value": null`, `"hidden": true`). [`crate::Sandbox::gitlab_variable`] still shows
//! the real value, for assertions.
//!
//! Assumptions where GitLab's documentation was not at hand (GitLab's docs were not
//! reachable when this was written; it follows the API as the author knows it):
//! - a hidden variable read or written through the API shows `"value": null` (the key is
//!   present, its value null);
//! - `masked_and_hidden` is taken on create only; a PUT that sets `masked: false` on a
//!   hidden variable is refused with 400 `{"message":{"masked":["…"]}}` (stricter than
//!   GitLab may be: the message starts with `sandbox:`);
//! - `value` is required on PUT, as GitLab's documentation lists it.

use std::collections::BTreeMap;

use hyper::Method;
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value};

use crate::http::{empty, json, with_header, Req, Resp};
use crate::{lock, Sandbox, Shared};

/// An error answer, boxed: answers are large.
type Refusal = Box<Resp>;

/// GitLab's limit on a variable's value.
const MAX_VALUE_CHARS: usize = 10_000;
const MAX_PER_PAGE: usize = 100;
const DEFAULT_PER_PAGE: usize = 20;

/// A GitLab CI/CD variable as the fake stores it (test data: the real value even when
/// the variable is hidden).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitlabVariable {
    /// The key, `[A-Za-z0-9_]+`.
    pub key: String,
    /// The real value (never returned by the API for a hidden variable).
    pub value: String,
    /// `env_var` or `file`.
    pub variable_type: String,
    /// Only exported to pipelines on protected branches and tags.
    pub protected: bool,
    /// Masked in job logs.
    pub masked: bool,
    /// Hidden: masked, and its value never shown again (GitLab 17.4+).
    pub hidden: bool,
    /// Not expanded (`$` is taken literally).
    pub raw: bool,
    /// Environment scope, `*` for all.
    pub environment_scope: String,
    /// Free text, or none.
    pub description: Option<String>,
    /// How many API writes (POST, PUT) stored it; seeding does not count.
    pub writes: u32,
}

impl GitlabVariable {
    /// A plain variable as GitLab creates it by default: `env_var`, no flags, scope `*`.
    pub fn new(key: &str, value: &str) -> Self {
        GitlabVariable {
            key: key.to_owned(),
            value: value.to_owned(),
            variable_type: "env_var".to_owned(),
            protected: false,
            masked: false,
            hidden: false,
            raw: false,
            environment_scope: "*".to_owned(),
            description: None,
            writes: 0,
        }
    }

    /// The API's JSON form: a hidden variable's value is null.
    fn to_json(&self) -> Value {
        json!({
            "variable_type": self.variable_type,
            "key": self.key,
            "value": if self.hidden { Value::Null } else { Value::String(self.value.clone()) },
            "hidden": self.hidden,
            "protected": self.protected,
            "masked": self.masked,
            "raw": self.raw,
            "environment_scope": self.environment_scope,
            "description": self.description,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Project,
    Group,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Project => "Project",
            Kind::Group => "Group",
        }
    }
}

struct Owner {
    id: u64,
    kind: Kind,
    path: String,
    /// In creation order.
    variables: Vec<GitlabVariable>,
}

/// Everything the fake GitLab knows.
pub(crate) struct State {
    /// Token value → may write (scope `api`; else `read_api`).
    tokens: BTreeMap<String, bool>,
    /// By id.
    owners: BTreeMap<u64, Owner>,
    next_id: u64,
}

impl State {
    pub(crate) fn new() -> State {
        State {
            tokens: BTreeMap::new(),
            owners: BTreeMap::new(),
            next_id: 101,
        }
    }

    fn add_owner(&mut self, kind: Kind, path: &str) -> u64 {
        if let Some(o) = self.by_path(path) {
            assert_eq!(
                o.kind,
                kind,
                "gitlab: `{path}` exists already as a {}",
                o.kind.name()
            );
            return o.id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.owners.insert(
            id,
            Owner {
                id,
                kind,
                path: path.to_owned(),
                variables: Vec::new(),
            },
        );
        id
    }

    fn by_path(&self, path: &str) -> Option<&Owner> {
        self.owners
            .values()
            .find(|o| o.path.eq_ignore_ascii_case(path))
    }

    fn by_path_mut(&mut self, path: &str) -> Option<&mut Owner> {
        self.owners
            .values_mut()
            .find(|o| o.path.eq_ignore_ascii_case(path))
    }

    /// The owner `:id` names (a number, or a URL-encoded full path), of this kind.
    fn resolve(&self, kind: Kind, raw_id: &str) -> Option<u64> {
        let owner = match raw_id.parse::<u64>() {
            Ok(n) => self.owners.get(&n),
            Err(_) => {
                let path = percent_decode_str(raw_id).decode_utf8().ok()?;
                self.by_path(&path)
            }
        }?;
        (owner.kind == kind).then_some(owner.id)
    }

    fn answer(&mut self, req: &Req) -> Resp {
        let Some(rest) = req.path.strip_prefix("/api/v4/") else {
            return not_found_route();
        };
        let segments: Vec<&str> = rest.split('/').collect();
        if segments == ["personal_access_tokens", "self"] && req.method == Method::GET {
            // The token's own details (GitLab 15.5+): its scopes say whether it may write.
            return match self.token(req) {
                Some(can_write) => json(
                    200,
                    &json!({
                        "id": 1,
                        "name": "sandbox",
                        "revoked": false,
                        "created_at": "2026-01-01T00:00:00.000Z",
                        "scopes": [if can_write { "api" } else { "read_api" }],
                        "user_id": 1,
                        "last_used_at": null,
                        "active": true,
                        "expires_at": null
                    }),
                ),
                None => json(401, &json!({ "message": "401 Unauthorized" })),
            };
        }
        let (kind, raw_id, key) = match segments.as_slice() {
            ["projects", id, "variables"] => (Kind::Project, *id, None),
            ["groups", id, "variables"] => (Kind::Group, *id, None),
            ["projects", id, "variables", key] => (Kind::Project, *id, Some(*key)),
            ["groups", id, "variables", key] => (Kind::Group, *id, Some(*key)),
            _ => return not_found_route(),
        };
        let can_write = match self.token(req) {
            Some(w) => w,
            None => return json(401, &json!({ "message": "401 Unauthorized" })),
        };
        let Some(id) = self.resolve(kind, raw_id) else {
            return not_found(kind.name());
        };
        let params = match Params::read(req) {
            Ok(p) => p,
            Err(resp) => return *resp,
        };
        let writes = !matches!(req.method, Method::GET | Method::HEAD);
        if writes && !can_write {
            return insufficient_scope();
        }
        let owner = self.owners.get_mut(&id).expect("resolved owner");
        let key = key.map(|k| percent_decode_str(k).decode_utf8_lossy().into_owned());
        match (&req.method, key) {
            (&Method::GET, None) => list(owner, &params),
            (&Method::POST, None) => create(owner, &params),
            (&Method::GET, Some(key)) => match find(owner, &key, &params) {
                Ok(i) => json(200, &owner.variables[i].to_json()),
                Err(resp) => *resp,
            },
            (&Method::PUT, Some(key)) => match find(owner, &key, &params) {
                Ok(i) => update(owner, i, &params),
                Err(resp) => *resp,
            },
            (&Method::DELETE, Some(key)) => match find(owner, &key, &params) {
                Ok(i) => {
                    owner.variables.remove(i);
                    empty(204)
                }
                Err(resp) => *resp,
            },
            _ => not_found_route(),
        }
    }

    /// Whether the request's token may write; None: not authenticated.
    fn token(&self, req: &Req) -> Option<bool> {
        let value = req.header("private-token").map(str::trim).or_else(|| {
            let (scheme, v) = req.header("authorization")?.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| v.trim())
        })?;
        self.tokens.get(value).copied()
    }
}

/// The request's parameters: the query, then a JSON or form body (GitLab merges them).
struct Params(Map<String, Value>);

impl Params {
    fn read(req: &Req) -> Result<Params, Refusal> {
        let mut map = Map::new();
        if let Some(q) = &req.query {
            form_pairs(q, &mut map);
        }
        if !req.body.is_empty() {
            let content_type = req.header("content-type").unwrap_or("");
            if content_type.starts_with("application/json") {
                match serde_json::from_slice::<Value>(&req.body) {
                    Ok(Value::Object(o)) => map.extend(o),
                    _ => {
                        return Err(Box::new(bad_request(json!(
                            "400 Bad request - invalid JSON body"
                        ))))
                    }
                }
            } else {
                form_pairs(&String::from_utf8_lossy(&req.body), &mut map);
            }
        }
        Ok(Params(map))
    }

    fn string(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// A boolean as GitLab's API framework coerces it; Err: the 400 to answer.
    fn flag(&self, name: &str) -> Result<Option<bool>, Refusal> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "t" => Ok(Some(true)),
                "false" | "0" | "no" | "f" => Ok(Some(false)),
                _ => Err(Box::new(invalid_param(name))),
            },
            Some(_) => Err(Box::new(invalid_param(name))),
        }
    }

    fn environment_filter(&self) -> Option<String> {
        if let Some(Value::Object(f)) = self.0.get("filter") {
            if let Some(Value::String(s)) = f.get("environment_scope") {
                return Some(s.clone());
            }
        }
        self.string("filter[environment_scope]")
    }
}

/// Adds `a=b&c=d` (form-encoded) to `map`.
fn form_pairs(text: &str, map: &mut Map<String, Value>) {
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        map.insert(decode(k), Value::String(decode(v)));
    }
}

fn list(owner: &Owner, params: &Params) -> Resp {
    let num = |name: &str, default: usize| {
        params
            .string(name)
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(default)
    };
    let per_page = num("per_page", DEFAULT_PER_PAGE).min(MAX_PER_PAGE);
    let page = num("page", 1);
    let total = owner.variables.len();
    let pages = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = owner
        .variables
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(GitlabVariable::to_json)
        .collect();
    let mut resp = json(200, &Value::Array(items));
    let next = if page < pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page > 1 {
        (page - 1).to_string()
    } else {
        String::new()
    };
    for (name, value) in [
        ("x-page", page.to_string()),
        ("x-per-page", per_page.to_string()),
        ("x-total", total.to_string()),
        ("x-total-pages", pages.to_string()),
        ("x-next-page", next),
        ("x-prev-page", prev),
    ] {
        resp = with_header(resp, name, &value);
    }
    resp
}

/// The index of the variable `key` (in the filter's environment scope, if given).
fn find(owner: &Owner, key: &str, params: &Params) -> Result<usize, Refusal> {
    let scope = params.environment_filter();
    let matching: Vec<usize> = owner
        .variables
        .iter()
        .enumerate()
        .filter(|(_, v)| v.key == key && scope.as_ref().map_or(true, |s| *s == v.environment_scope))
        .map(|(i, _)| i)
        .collect();
    match matching.as_slice() {
        [] => Err(Box::new(not_found("Variable"))),
        [i] => Ok(*i),
        _ => Err(Box::new(json(
            409,
            &json!({ "message": "There are multiple variables with provided parameters. Please use 'filter[environment_scope]'" }),
        ))),
    }
}

fn create(owner: &mut Owner, params: &Params) -> Resp {
    let mut errors = Map::new();
    let key = params.string("key").unwrap_or_default();
    let value = params.string("value");
    if key.is_empty() {
        return missing("key");
    }
    let Some(value) = value else {
        return missing("value");
    };
    let flags = match Flags::read(params) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let hidden = match params.flag("masked_and_hidden") {
        Ok(h) => h.unwrap_or(false),
        Err(resp) => return *resp,
    };
    let mut v = GitlabVariable::new(&key, &value);
    flags.apply(&mut v);
    if hidden {
        v.hidden = true;
        v.masked = true;
    }
    check_key(&key, &mut errors);
    if owner
        .variables
        .iter()
        .any(|x| x.key == key && x.environment_scope == v.environment_scope)
    {
        push(
            &mut errors,
            "key",
            format!("({key}) has already been taken"),
        );
    }
    check(&v, &mut errors);
    if !errors.is_empty() {
        return bad_request(Value::Object(errors));
    }
    v.writes = 1;
    let body = v.to_json();
    owner.variables.push(v);
    json(201, &body)
}

fn update(owner: &mut Owner, i: usize, params: &Params) -> Resp {
    let Some(value) = params.string("value") else {
        return missing("value");
    };
    let flags = match Flags::read(params) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let mut v = owner.variables[i].clone();
    v.value = value;
    flags.apply(&mut v);
    let mut errors = Map::new();
    if v.hidden && !v.masked {
        push(
            &mut errors,
            "masked",
            "sandbox: a hidden variable cannot be unmasked".to_owned(),
        );
    }
    if owner
        .variables
        .iter()
        .enumerate()
        .any(|(j, x)| j != i && x.key == v.key && x.environment_scope == v.environment_scope)
    {
        push(
            &mut errors,
            "key",
            format!("({}) has already been taken", v.key),
        );
    }
    check(&v, &mut errors);
    if !errors.is_empty() {
        return bad_request(Value::Object(errors));
    }
    v.writes += 1;
    let body = v.to_json();
    owner.variables[i] = v;
    json(200, &body)
}

/// The optional attributes of a POST or PUT; None: not given (kept on PUT).
struct Flags {
    variable_type: Option<String>,
    protected: Option<bool>,
    masked: Option<bool>,
    raw: Option<bool>,
    environment_scope: Option<String>,
    description: Option<String>,
}

impl Flags {
    fn read(p: &Params) -> Result<Flags, Refusal> {
        Ok(Flags {
            variable_type: p.string("variable_type"),
            protected: p.flag("protected")?,
            masked: p.flag("masked")?,
            raw: p.flag("raw")?,
            environment_scope: p.string("environment_scope"),
            description: p.string("description"),
        })
    }

    fn apply(self, v: &mut GitlabVariable) {
        if let Some(t) = self.variable_type {
            v.variable_type = t;
        }
        if let Some(b) = self.protected {
            v.protected = b;
        }
        if let Some(b) = self.masked {
            v.masked = b;
        }
        if let Some(b) = self.raw {
            v.raw = b;
        }
        if let Some(s) = self.environment_scope {
            v.environment_scope = s;
        }
        if let Some(d) = self.description {
            v.description = Some(d);
        }
    }
}

fn check_key(key: &str, errors: &mut Map<String, Value>) {
    if key.len() > 255 {
        push(
            errors,
            "key",
            "is too long (maximum is 255 characters)".to_owned(),
        );
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        push(
            errors,
            "key",
            "can contain only letters, digits and '_'.".to_owned(),
        );
    }
}

/// GitLab's model validations of a variable's attributes.
fn check(v: &GitlabVariable, errors: &mut Map<String, Value>) {
    if !matches!(v.variable_type.as_str(), "env_var" | "file") {
        return push(
            errors,
            "variable_type",
            "is not included in the list".to_owned(),
        );
    }
    if v.value.chars().count() > MAX_VALUE_CHARS {
        push(
            errors,
            "value",
            format!("is too long (maximum is {MAX_VALUE_CHARS} characters)"),
        );
    }
    if v.masked && !maskable(&v.value, v.raw) {
        push(errors, "value", "is invalid".to_owned());
    }
    if v.environment_scope.is_empty() {
        push(errors, "environment_scope", "can't be blank".to_owned());
    }
}

/// GitLab's masking rule (`Ci::Maskable`): one line without spaces, at least 8
/// characters, and only `A-Za-z0-9_+=/@:.~-` — for a raw variable, any non-space character.
pub(crate) fn maskable(value: &str, raw: bool) -> bool {
    value.chars().count() >= 8
        && if raw {
            !value.chars().any(char::is_whitespace)
        } else {
            value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=/@:.~-".contains(c))
        }
}

fn push(errors: &mut Map<String, Value>, field: &str, message: String) {
    let entry = errors
        .entry(field.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(a) = entry {
        a.push(Value::String(message));
    }
}

fn bad_request(message: Value) -> Resp {
    json(400, &json!({ "message": message }))
}

/// A required parameter not given, as GitLab's API framework answers it.
fn missing(name: &str) -> Resp {
    json(400, &json!({ "error": format!("{name} is missing") }))
}

fn invalid_param(name: &str) -> Resp {
    json(400, &json!({ "error": format!("{name} is invalid") }))
}

fn not_found(what: &str) -> Resp {
    json(404, &json!({ "message": format!("404 {what} Not Found") }))
}

fn not_found_route() -> Resp {
    json(404, &json!({ "error": "404 Not Found" }))
}

fn insufficient_scope() -> Resp {
    let resp = json(
        403,
        &json!({
            "error": "insufficient_scope",
            "error_description": "The request requires higher privileges than provided by the access token.",
            "scope": "api"
        }),
    );
    with_header(
        resp,
        "www-authenticate",
        "Bearer realm=\"gitlab\", error=\"insufficient_scope\", error_description=\"The request requires higher privileges than provided by the access token.\", scope=\"api\"",
    )
}

pub(crate) fn handle(shared: &Shared, req: &Req) -> Resp {
    lock(&shared.gitlab).answer(req)
}

impl Sandbox {
    /// Registers a token the fake GitLab accepts (`PRIVATE-TOKEN` or `Authorization:
    /// Bearer`). With `can_write == false` it behaves like a `read_api` token: reads
    /// work, writes get 403 `insufficient_scope`.
    pub fn add_gitlab_token(&self, value: &str, can_write: bool) {
        lock(&self.shared.gitlab)
            .tokens
            .insert(value.to_owned(), can_write);
    }

    /// Adds a project by full path (`group/sub/project`) and returns its id; adding an
    /// existing one returns its id. Its groups need not exist.
    ///
    /// # Panics
    /// If the path is a group's.
    pub fn add_gitlab_project(&self, path: &str) -> u64 {
        lock(&self.shared.gitlab).add_owner(Kind::Project, path)
    }

    /// Adds a group by full path (`group` or `group/sub`) and returns its id; adding an
    /// existing one returns its id.
    ///
    /// # Panics
    /// If the path is a project's.
    pub fn add_gitlab_group(&self, path: &str) -> u64 {
        lock(&self.shared.gitlab).add_owner(Kind::Group, path)
    }

    /// The variable `key` of environment scope `*` of a project or group (full path, any
    /// case), with its real value even when hidden.
    pub fn gitlab_variable(&self, project_or_group: &str, key: &str) -> Option<GitlabVariable> {
        lock(&self.shared.gitlab)
            .by_path(project_or_group)?
            .variables
            .iter()
            .find(|v| v.key == key && v.environment_scope == "*")
            .cloned()
    }

    /// Every variable of a project or group, in creation order.
    pub fn gitlab_variables(&self, project_or_group: &str) -> Vec<GitlabVariable> {
        lock(&self.shared.gitlab)
            .by_path(project_or_group)
            .map(|o| o.variables.clone())
            .unwrap_or_default()
    }

    /// Seeds (or replaces, by key and environment scope) a variable as if it had been
    /// created before the test, with any flags (`writes` is kept as given).
    ///
    /// # Panics
    /// If there is no such project or group.
    pub fn put_gitlab_variable(&self, project_or_group: &str, variable: GitlabVariable) {
        let mut state = lock(&self.shared.gitlab);
        let Some(owner) = state.by_path_mut(project_or_group) else {
            panic!("Sandbox::put_gitlab_variable: no project or group {project_or_group}");
        };
        match owner
            .variables
            .iter_mut()
            .find(|v| v.key == variable.key && v.environment_scope == variable.environment_scope)
        {
            Some(v) => *v = variable,
            None => owner.variables.push(variable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::maskable;

    #[test]
    fn masking_rule() {
        // A Seqera token: base64 of `{"tid":N}` and a hex part.
        assert!(maskable("eyJ0aWQiOjQyfS5hYmNkZWYwMTIz", false));
        for ok in ["12345678", "a+b/c=d@e:f.g~h-i_j", "abcdefgh"] {
            assert!(maskable(ok, false), "{ok}");
        }
        for bad in [
            "1234567",
            "abc defgh",
            "abcdefg\n",
            "abcdefgh$",
            "abcdéfgh",
            "",
        ] {
            assert!(!maskable(bad, false), "{bad}");
        }
        assert!(maskable("abc$def!gh", true));
        assert!(!maskable("abc def gh", true));
        assert!(!maskable("a$b", true));
    }
}
