//! Seqera Platform: `user-info`, list, create and delete tokens (SPEC §1), typed from
//! `contracts/seqera-tokens.openapi.yaml`. Knows HTTP and this API, nothing of the protocol.

use std::fmt;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use thiserror::Error;
use time::OffsetDateTime;
use url::Url;

use crate::http::{Api, ApiClient, Http, HttpError, Retry};

/// `AccessToken` of the API document; never holds the value.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// Seqera's id; ids only grow, so "older" means a smaller id.
    pub id: u64,
    /// Name, unique per user.
    pub name: String,
    /// When it was created.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub date_created: Option<OffsetDateTime>,
    /// When it last authenticated a request.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_used: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
struct ListResponse {
    #[serde(default)]
    tokens: Vec<TokenInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateResponse {
    access_key: Option<SecretString>,
    token: Option<TokenInfo>,
}

/// `DescribeUserResponse`, the part we use.
#[derive(Clone, Debug, Deserialize)]
pub struct UserInfo {
    /// The user.
    pub user: User,
}

/// `UserResponseDto`, the part we use.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// User id.
    pub id: u64,
    /// Login name.
    #[serde(default)]
    pub user_name: String,
}

/// A token just created: its metadata and its value (shown once, held as a secret).
pub struct NewToken {
    /// Metadata.
    pub info: TokenInfo,
    /// The value. Never formatted, only sealed or masked.
    pub value: SecretString,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A Seqera call that failed.
#[derive(Debug, Error)]
pub enum SeqeraError {
    /// 401/403: the token used is not accepted.
    #[error("the Seqera token was not accepted (HTTP {status}): {message}")]
    NotAccepted {
        /// 401 or 403.
        status: u16,
        /// Server message.
        message: String,
    },
    /// 409 on create: the name is taken.
    #[error("a token with this name already exists")]
    NameTaken,
    /// The create answered with a value that is not in the token format (printable, no
    /// blanks): never used nor printed; the caller masks it piece by piece and revokes `info`.
    #[error("Seqera answered the create with a token value that is not in the token format (printable characters, no blanks)")]
    MalformedValue {
        /// The token that was created.
        info: TokenInfo,
        /// The value, to mask and forget.
        value: SecretString,
    },
    /// Anything else.
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl SeqeraError {
    /// True when a create may have been performed although no answer came.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            SeqeraError::Http(HttpError::Transport {
                maybe_sent: true,
                ..
            })
        ) || matches!(
            self,
            SeqeraError::Http(HttpError::Status {
                status: 500..=599,
                ..
            })
        ) || matches!(self, SeqeraError::Http(HttpError::Decode { .. }))
    }
}

fn classify(e: HttpError) -> SeqeraError {
    match e {
        HttpError::Status {
            status: status @ (401 | 403),
            message,
            ..
        } => SeqeraError::NotAccepted { status, message },
        HttpError::Status { status: 409, .. } => SeqeraError::NameTaken,
        other => SeqeraError::Http(other),
    }
}

/// A Seqera API client authenticated with one token.
#[derive(Clone)]
pub struct SeqeraClient(ApiClient);

impl SeqeraClient {
    /// A client for `base` (used exactly as given) with `token`.
    pub fn new(http: Http, base: Url, token: SecretString) -> Self {
        Self(ApiClient::new(http, Api::Seqera, base, token))
    }

    /// The same client authenticating with another token.
    pub fn with_token(&self, token: SecretString) -> Self {
        Self(self.0.with_token(token))
    }

    async fn call(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&serde_json::Value>,
        retry: Retry,
    ) -> Result<crate::http::Response, SeqeraError> {
        self.0
            .send(method, self.0.url(path), body, retry)
            .await
            .map_err(classify)
    }

    /// `GET /user-info`: who the token belongs to; the cheapest "does it work".
    pub async fn user_info(&self) -> Result<UserInfo, SeqeraError> {
        Ok(self
            .call(Method::GET, &["user-info"], None, Retry::Idempotent)
            .await?
            .json()?)
    }

    /// `GET /tokens`: the user's tokens.
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, SeqeraError> {
        let r: ListResponse = self
            .call(Method::GET, &["tokens"], None, Retry::Idempotent)
            .await?
            .json()?;
        Ok(r.tokens)
    }

    /// `POST /tokens`: never blindly retried (see [`SeqeraError::is_ambiguous`]).
    pub async fn create_token(&self, name: &str) -> Result<NewToken, SeqeraError> {
        let body = serde_json::json!({ "name": name });
        let r: CreateResponse = self
            .call(Method::POST, &["tokens"], Some(&body), Retry::Never)
            .await?
            .json()?;
        match (r.access_key, r.token) {
            (Some(value), Some(info)) => {
                self.0.hide(&value);
                if !is_token_format(value.expose_secret()) {
                    return Err(SeqeraError::MalformedValue { info, value });
                }
                Ok(NewToken { info, value })
            }
            _ => Err(SeqeraError::Http(HttpError::Decode {
                detail: "the create answer lacks `accessKey` or `token`".into(),
            })),
        }
    }

    /// `DELETE /tokens/{id}`: 204, or 404 meaning already revoked. Returns whether it was live.
    pub async fn delete_token(&self, id: u64) -> Result<bool, SeqeraError> {
        match self
            .call(
                Method::DELETE,
                &["tokens", &id.to_string()],
                None,
                Retry::Idempotent,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(SeqeraError::Http(HttpError::Status { status: 404, .. })) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// SPEC §8: a token value is printable ASCII without blanks, of a sane length. Anything else
/// would split the `::add-mask::` line (a line break) or could not be sent as a header.
pub fn is_token_format(value: &str) -> bool {
    (16..=4096).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
}

/// The token id inside a Seqera token value (`base64({"tid":N}.<hex>)`), if it has that form.
pub fn token_id_of(value: &SecretString) -> Option<u64> {
    use base64::Engine as _;
    let raw = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(value.expose_secret())
            .ok()?,
    );
    let head = raw.split(|b| *b == b'.').next()?;
    #[derive(Deserialize)]
    struct Head {
        tid: u64,
    }
    serde_json::from_slice::<Head>(head).ok().map(|h| h.tid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_json_from_the_api_document() {
        let t: ListResponse = serde_json::from_str(
            r#"{"tokens":[{"id":7,"name":"ci-20260101-000000","dateCreated":"2026-01-01T00:00:00.123Z","lastUsed":null},
                           {"id":9,"name":"x","dateCreated":"2026-01-02T00:00:00Z"}]}"#,
        )
        .unwrap();
        assert_eq!(t.tokens[0].id, 7);
        assert_eq!(t.tokens[0].last_used, None);
        assert_eq!(
            t.tokens[1].date_created.unwrap().unix_timestamp(),
            1_767_312_000
        );
    }

    #[test]
    fn token_ids_from_values() {
        use base64::Engine as _;
        let v = base64::engine::general_purpose::STANDARD
            .encode(r#"{"tid": 42}.0123456789abcdef0123456789abcdef01234567"#);
        assert_eq!(token_id_of(&SecretString::from(v)), Some(42));
        assert_eq!(token_id_of(&SecretString::from("not-a-seqera-token")), None);
    }

    #[test]
    fn token_format() {
        assert!(is_token_format("eyJ0aWQiOjF9.0123456789abcdef"));
        for bad in [
            "eyJ0aWQiOjF9.0123456789abcdef\n::warning::x",
            "eyJ0aWQiOjF9 0123456789abcdef",
            "short",
            "eyJ0aWQiOjF9.0123456789abcdé",
            "eyJ0aWQiOjF9.0123456789\u{1b}[0m",
        ] {
            assert!(!is_token_format(bad), "{bad:?}");
        }
    }

    #[test]
    fn new_token_debug_hides_the_value() {
        let t = NewToken {
            info: TokenInfo {
                id: 1,
                name: "n".into(),
                date_created: None,
                last_used: None,
            },
            value: SecretString::from("super-secret-value"),
        };
        assert!(!format!("{t:?}").contains("super-secret-value"));
    }
}
