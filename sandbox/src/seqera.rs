//! The fake Seqera Platform API (`seqera-tokens.openapi.yaml`, SPEC §1): users,
//! access tokens, and the endpoints `user-info`, `tokens`, `tokens/{id}`,
//! `tokens/delete-all` and `service-info`, served under `/api`.
//!
//! Token values look like real ones: standard base64 of `{"tid":N}.<40 hex>`.
//! Deleting a token revokes it at once (the next call with it gets 401), and frees
//! its name, as on the real service where a delete is a hard delete.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hyper::Method;
use rand::RngCore;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::http::{empty, json, with_header, Req, Resp};
use crate::{clock, lock, SeqeraToken, Shared};

/// First ids handed out: distinct ranges so a client that mixes up user ids,
/// token ids and list positions fails visibly.
const FIRST_USER_ID: u64 = 1001;
const FIRST_TOKEN_ID: u64 = 101;
const MAX_NAME_CHARS: usize = 50;

struct User {
    name: String,
    date_created: OffsetDateTime,
}

struct Token {
    user_id: u64,
    name: String,
    value: String,
    date_created: OffsetDateTime,
    last_used: Option<OffsetDateTime>,
    revoked: bool,
}

/// Why a token could not be created.
pub(crate) enum MintError {
    NoSuchUser,
    BadName,
    Duplicate,
}

impl fmt::Display for MintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MintError::NoSuchUser => "no such user",
            MintError::BadName => "token name must be 1 to 50 characters",
            MintError::Duplicate => "the user already has a live token with this name",
        })
    }
}

/// Users and tokens.
pub(crate) struct State {
    users: BTreeMap<u64, User>,
    /// Every token ever created, revoked ones included.
    tokens: BTreeMap<u64, Token>,
    by_value: HashMap<String, u64>,
    next_user_id: u64,
    next_token_id: u64,
    delete_all_called: bool,
    /// Hostile answers: the `token.name` to report on create instead of the real one.
    reported_name: Option<String>,
    /// Hostile values: appended to the value of every token created through the API.
    value_suffix: Option<String>,
}

impl State {
    pub(crate) fn new() -> State {
        State {
            users: BTreeMap::new(),
            tokens: BTreeMap::new(),
            by_value: HashMap::new(),
            next_user_id: FIRST_USER_ID,
            next_token_id: FIRST_TOKEN_ID,
            delete_all_called: false,
            reported_name: None,
            value_suffix: None,
        }
    }

    pub(crate) fn set_reported_name(&mut self, name: Option<String>) {
        self.reported_name = name;
    }

    pub(crate) fn set_value_suffix(&mut self, suffix: Option<String>) {
        self.value_suffix = suffix;
    }

    pub(crate) fn add_user(&mut self, name: &str) -> u64 {
        let id = self.next_user_id;
        self.next_user_id += 1;
        self.users.insert(
            id,
            User {
                name: name.to_owned(),
                date_created: clock::now(),
            },
        );
        id
    }

    pub(crate) fn mint(&mut self, user_id: u64, name: &str) -> Result<u64, MintError> {
        self.mint_with_suffix(user_id, name, "")
    }

    fn mint_with_suffix(
        &mut self,
        user_id: u64,
        name: &str,
        suffix: &str,
    ) -> Result<u64, MintError> {
        if !self.users.contains_key(&user_id) {
            return Err(MintError::NoSuchUser);
        }
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            return Err(MintError::BadName);
        }
        let taken = self
            .tokens
            .values()
            .any(|t| t.user_id == user_id && !t.revoked && t.name == name);
        if taken {
            return Err(MintError::Duplicate);
        }
        let id = self.next_token_id;
        self.next_token_id += 1;
        let value = token_value(id) + suffix;
        self.by_value.insert(value.clone(), id);
        self.tokens.insert(
            id,
            Token {
                user_id,
                name: name.to_owned(),
                value,
                date_created: clock::now(),
                last_used: None,
                revoked: false,
            },
        );
        Ok(id)
    }

    pub(crate) fn revoke(&mut self, id: u64) -> bool {
        match self.tokens.get_mut(&id) {
            Some(t) if !t.revoked => {
                t.revoked = true;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn backdate(&mut self, id: u64, by: Duration) -> bool {
        match self.tokens.get_mut(&id) {
            Some(t) => {
                t.date_created -= by;
                true
            }
            None => false,
        }
    }

    pub(crate) fn export(&self, id: u64) -> Option<SeqeraToken> {
        self.tokens.get(&id).map(|t| SeqeraToken {
            id,
            user_id: t.user_id,
            name: t.name.clone(),
            value: t.value.clone(),
            date_created: clock::seqera(t.date_created),
            last_used: t.last_used.map(clock::seqera),
            revoked: t.revoked,
        })
    }

    pub(crate) fn all(&self) -> Vec<SeqeraToken> {
        self.tokens
            .keys()
            .filter_map(|&id| self.export(id))
            .collect()
    }

    pub(crate) fn by_value(&self, value: &str) -> Option<SeqeraToken> {
        self.by_value.get(value).and_then(|&id| self.export(id))
    }

    pub(crate) fn delete_all_called(&self) -> bool {
        self.delete_all_called
    }

    /// The user of the live token a request authenticates with; marks the token used.
    fn authenticate(&mut self, req: &Req) -> Option<u64> {
        let header = req.header("authorization")?;
        let (scheme, value) = header.trim().split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let id = *self.by_value.get(value.trim())?;
        let token = self.tokens.get_mut(&id)?;
        if token.revoked {
            return None;
        }
        token.last_used = Some(clock::now());
        Some(token.user_id)
    }

    fn token_json(&self, id: u64) -> Value {
        let t = &self.tokens[&id];
        json!({
            "id": id,
            "name": t.name,
            "dateCreated": clock::seqera(t.date_created),
            "lastUsed": t.last_used.map(clock::seqera),
        })
    }
}

/// Real Seqera values: base64 of `{"tid":<id>}.<40 lowercase hex>`.
fn token_value(id: u64) -> String {
    let mut random = [0u8; 20];
    rand::rng().fill_bytes(&mut random);
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    STANDARD.encode(format!("{{\"tid\":{id}}}.{hex}"))
}

fn message(status: u16, text: &str) -> Resp {
    json(status, &json!({ "message": text }))
}

fn not_found() -> Resp {
    message(404, "Not Found")
}

fn method_not_allowed(allow: &str) -> Resp {
    with_header(message(405, "Method Not Allowed"), "allow", allow)
}

enum Route<'a> {
    ServiceInfo,
    UserInfo,
    Tokens,
    DeleteAll,
    Token(&'a str),
}

/// Answers one request (the whole path, including `/api`).
pub(crate) fn handle(shared: &Shared, req: &Req) -> Resp {
    let Some(rest) = req.path.strip_prefix("/api") else {
        return not_found();
    };
    let route = match rest {
        "/service-info" => Route::ServiceInfo,
        "/user-info" => Route::UserInfo,
        "/tokens" => Route::Tokens,
        "/tokens/delete-all" => Route::DeleteAll,
        _ => match rest.strip_prefix("/tokens/") {
            Some(id) if !id.is_empty() && !id.contains('/') => Route::Token(id),
            _ => return not_found(),
        },
    };
    let allowed = match route {
        Route::ServiceInfo | Route::UserInfo => "GET",
        Route::Tokens => "GET, POST",
        Route::DeleteAll | Route::Token(_) => "DELETE",
    };
    if !allowed.split(", ").any(|m| m == req.method.as_str()) {
        return method_not_allowed(allowed);
    }
    if let Route::ServiceInfo = route {
        // The only endpoint without security in the contract.
        return service_info();
    }

    let mut state = lock(&shared.seqera);
    let Some(user_id) = state.authenticate(req) else {
        return message(401, "Unauthorized");
    };
    match (route, &req.method) {
        (Route::UserInfo, _) => user_info(&state, user_id),
        (Route::Tokens, &Method::GET) => list_tokens(&state, user_id),
        (Route::Tokens, _) => create_token(&mut state, user_id, req),
        (Route::DeleteAll, _) => {
            state.delete_all_called = true;
            let mine: Vec<u64> = state
                .tokens
                .iter()
                .filter(|(_, t)| t.user_id == user_id && !t.revoked)
                .map(|(&id, _)| id)
                .collect();
            for id in mine {
                state.revoke(id);
            }
            empty(204)
        }
        (Route::Token(raw), _) => delete_token(&mut state, user_id, raw),
        (Route::ServiceInfo, _) => service_info(),
    }
}

fn service_info() -> Resp {
    json(
        200,
        &json!({
            "serviceInfo": {
                "version": "25.1.0-sandbox",
                "apiVersion": "1.187.0",
                "commitId": "sandbox",
                "authTypes": ["github"],
                "loginPath": "/login",
                "seqeraCloud": false,
                "waveEnabled": false,
                "groundswellEnabled": false,
                "allowInstanceCredentials": false,
                "allowNextflowCliLogs": false,
                "contentUrl": "https://sandbox.invalid",
                "landingUrl": "https://sandbox.invalid",
                "termsOfUseUrl": "https://sandbox.invalid/terms",
                "heartbeatInterval": 60,
                "userWorkspaceEnabled": true
            }
        }),
    )
}

/// `DescribeUserResponse`.
fn user_info(state: &State, user_id: u64) -> Resp {
    let user = &state.users[&user_id];
    let created = clock::seqera(user.date_created);
    json(
        200,
        &json!({
            "user": {
                "id": user_id,
                "userName": user.name,
                "email": format!("{}@example.com", user.name),
                "firstName": null,
                "lastName": null,
                "organization": null,
                "description": null,
                "avatar": null,
                "avatarId": null,
                "notification": true,
                "termsOfUseConsent": true,
                "marketingConsent": false,
                "lastAccess": clock::seqera(clock::now()),
                "dateCreated": created,
                "lastUpdated": created,
                "deleted": false
            },
            "needConsent": false,
            "defaultWorkspaceId": null
        }),
    )
}

/// `ListAccessTokensResponse`: the caller's live tokens, by id.
fn list_tokens(state: &State, user_id: u64) -> Resp {
    let tokens: Vec<Value> = state
        .tokens
        .iter()
        .filter(|(_, t)| t.user_id == user_id && !t.revoked)
        .map(|(&id, _)| state.token_json(id))
        .collect();
    json(200, &json!({ "tokens": tokens }))
}

fn create_token(state: &mut State, user_id: u64, req: &Req) -> Resp {
    let is_json = req
        .header("content-type")
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return message(
            415,
            "Unsupported Media Type: the request body must be application/json",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return message(400, "Malformed JSON request body");
    };
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return message(400, "Missing or invalid token name");
    };
    let suffix = state.value_suffix.clone().unwrap_or_default();
    match state.mint_with_suffix(user_id, name, &suffix) {
        Ok(id) => {
            let value = state.tokens[&id].value.clone();
            let mut token = state.token_json(id);
            if let Some(reported) = &state.reported_name {
                token["name"] = json!(reported);
            }
            json(200, &json!({ "accessKey": value, "token": token }))
        }
        Err(MintError::BadName) => {
            message(400, "Token name must be between 1 and 50 characters long")
        }
        Err(MintError::Duplicate) => message(
            409,
            &format!("An access token with name '{name}' already exists"),
        ),
        Err(MintError::NoSuchUser) => message(401, "Unauthorized"),
    }
}

fn delete_token(state: &mut State, user_id: u64, raw: &str) -> Resp {
    let Ok(id) = raw.parse::<i64>() else {
        return message(
            400,
            &format!("Failed to convert argument [tokenId] for value [{raw}]"),
        );
    };
    let found = u64::try_from(id)
        .ok()
        .and_then(|id| state.tokens.get(&id).map(|t| (id, t)));
    match found {
        Some((_, t)) if t.revoked => message(404, "Access token not found"),
        Some((_, t)) if t.user_id != user_id => empty(403),
        // The caller may revoke the very token it authenticates with.
        Some((id, _)) => {
            state.revoke(id);
            empty(204)
        }
        None => message(404, "Access token not found"),
    }
}

/// Time passing, for tests of ages and grace periods (see `Sandbox::advance_clock`).
impl State {
    /// Moves every stored moment `by` into the past: creation and last-use times.
    pub(crate) fn shift_past(&mut self, by: Duration) {
        for u in self.users.values_mut() {
            u.date_created -= by;
        }
        for t in self.tokens.values_mut() {
            t.date_created -= by;
            if let Some(used) = &mut t.last_used {
                *used -= by;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_values_decode_to_tid_and_hex() {
        let v = token_value(4242);
        let decoded = String::from_utf8(STANDARD.decode(&v).unwrap()).unwrap();
        let (head, hex) = decoded.split_once('.').unwrap();
        assert_eq!(head, "{\"tid\":4242}");
        assert_eq!(hex.len(), 40);
        assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_ne!(token_value(4242), v);
    }

    #[test]
    fn names_are_unique_per_user_among_live_tokens() {
        let mut s = State::new();
        let alice = s.add_user("alice");
        let bob = s.add_user("bob");
        let first = s.mint(alice, "ci").ok().unwrap();
        assert!(matches!(s.mint(alice, "ci"), Err(MintError::Duplicate)));
        assert!(s.mint(bob, "ci").is_ok());
        assert!(s.revoke(first));
        assert!(!s.revoke(first));
        assert!(s.mint(alice, "ci").is_ok());
        assert!(matches!(s.mint(alice, ""), Err(MintError::BadName)));
        assert!(matches!(
            s.mint(alice, &"é".repeat(51)),
            Err(MintError::BadName)
        ));
        assert!(s.mint(alice, &"é".repeat(50)).is_ok());
        assert!(matches!(s.mint(9, "x"), Err(MintError::NoSuchUser)));
    }
}
