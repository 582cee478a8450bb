//! The record (SPEC §5, *The record*): which token every target held when a run last wrote
//! them all, kept as one JSON Actions variable of `repository`. GitHub secrets cannot be read
//! back, so this is the only evidence a later run has of what the targets hold: a run that
//! is not due retires only tokens older than the record's, `revoke` keeps the record's token
//! and newer ones, and `status` checks that the recorded token is still live.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::github::{GithubClient, GithubError};
use crate::seqera::TokenInfo;
use crate::target::Target;

/// What the variable holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The token every target held.
    pub token_id: u64,
    /// Its name.
    pub token_name: String,
    /// `sha256:<hex>` of the target labels (see [`digest`]).
    pub targets: String,
    /// How many targets.
    pub count: usize,
    /// When the run wrote them (RFC 3339).
    pub at: String,
}

impl Record {
    /// The record of a run that wrote `token` to every one of `targets`.
    pub fn new(token: &TokenInfo, targets: &[Target], now: OffsetDateTime) -> Self {
        Self {
            token_id: token.id,
            token_name: token.name.clone(),
            targets: digest(targets),
            count: targets.len(),
            at: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }

    /// Whether it speaks of exactly these targets.
    pub fn covers(&self, targets: &[Target]) -> bool {
        self.count == targets.len() && self.targets == digest(targets)
    }
}

/// `sha256:` and the lower-case hex SHA-256 of the labels, sorted, joined by a newline (no
/// newline at the end).
pub fn digest(targets: &[Target]) -> String {
    let mut labels: Vec<&str> = targets.iter().map(|t| t.label.as_str()).collect();
    labels.sort_unstable();
    let d = ring::digest::digest(&ring::digest::SHA256, labels.join("\n").as_bytes());
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Where the record lives: a repository's Actions variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Variable name.
    pub name: String,
}

/// The record as preflight found it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Loaded {
    /// No record is kept (`state-variable: none`, or no `repository`).
    #[default]
    Off,
    /// The variable cannot be read: runs go on without a record.
    Unavailable(String),
    /// The variable holds something else than a record: runs go on without one, and the
    /// next complete rotation replaces it with a record.
    Foreign(String),
    /// No record yet: the variable does not exist.
    Absent,
    /// The record.
    Found(Record),
}

impl Loaded {
    /// The record, if there is one.
    pub fn record(&self) -> Option<&Record> {
        match self {
            Loaded::Found(r) => Some(r),
            _ => None,
        }
    }

    /// Whether a run may write it (it is kept, and could be read).
    pub fn writable(&self) -> bool {
        matches!(self, Loaded::Absent | Loaded::Found(_) | Loaded::Foreign(_))
    }
}

/// Reads the record. A variable that cannot be read, or that holds something else than a
/// record, is `Unavailable` with the reason: never a failure of the run.
pub async fn load(gh: &GithubClient, place: Option<&Place>) -> Loaded {
    let Some(p) = place else {
        return Loaded::Off;
    };
    match gh.variable(&p.owner, &p.repo, &p.name).await {
        Ok(None) => Loaded::Absent,
        Ok(Some(v)) => match serde_json::from_str::<Record>(&v) {
            Ok(r) => Loaded::Found(r),
            Err(_) => Loaded::Foreign(format!(
                "the Actions variable `{}` of {}/{} does not hold a record of this tool; it is replaced after the next complete rotation",
                p.name, p.owner, p.repo
            )),
        },
        Err(e) => Loaded::Unavailable(unavailable(p, "read", &e)),
    }
}

/// Writes the record (`PATCH`, or `POST` when preflight found no variable).
pub async fn save(
    gh: &GithubClient,
    place: &Place,
    found: &Loaded,
    r: &Record,
) -> Result<(), String> {
    let json = serde_json::to_string(r).map_err(|e| e.to_string())?;
    let exists = matches!(found, Loaded::Found(_) | Loaded::Foreign(_));
    gh.set_variable(&place.owner, &place.repo, &place.name, &json, exists)
        .await
        .map_err(|e| unavailable(place, "written", &e))
}

fn unavailable(p: &Place, what: &str, e: &GithubError) -> String {
    format!(
        "the record (Actions variable `{}` of {}/{}) cannot be {what}: {e}. Without it, runs that are not due revoke nothing; grant the GitHub token \"Variables: Read and write\", or set `state-variable: none`",
        p.name, p.owner, p.repo
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{parse_targets, SecretName};

    #[test]
    fn the_digest_is_of_sorted_labels_joined_by_newlines() {
        let default = SecretName::parse("TOWER_ACCESS_TOKEN").unwrap();
        let a = parse_targets("repo:o/b\nrepo:o/a", &default).unwrap();
        let b = parse_targets("repo:o/a\nrepo:o/b", &default).unwrap();
        assert_eq!(digest(&a), digest(&b));
        // sha256("repo:o/a\nrepo:o/b"), computed outside: printf 'repo:o/a\nrepo:o/b' | sha256sum
        assert_eq!(
            digest(&a),
            "sha256:08b821ca90bb4a2c0de3512678fc618e7869a022bf289903d48b825754534608"
        );
        let c = parse_targets("repo:o/a", &default).unwrap();
        assert_ne!(digest(&a), digest(&c));
    }

    #[test]
    fn the_json_has_the_specs_field_names() {
        let r = Record {
            token_id: 7,
            token_name: "ci-20260101-000000".into(),
            targets: "sha256:00".into(),
            count: 1,
            at: "2026-01-01T00:00:00Z".into(),
        };
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"tokenId":7,"tokenName":"ci-20260101-000000","targets":"sha256:00","count":1,"at":"2026-01-01T00:00:00Z"})
        );
    }
}
