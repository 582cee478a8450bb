//! The places a token is kept (SPEC §4, §9) behind one small interface, [`Store`]: check
//! access and read what a target holds (preflight, `status`), write the new value and say
//! from evidence alone how the write ended. One module per store; the protocol drives a
//! list of targets through [`Stores::of`] and never matches on a store kind.
//!
//! Evidence, not clocks (SPEC §5 step 6): a write ends *written* (a success answer, or a
//! read-back showing the new token), *refused* (every attempt clearly refused) or *unknown*
//! (any attempt without a clear answer). [`Attempts`] folds the attempts of one write so
//! that *unknown* is sticky: nothing a later attempt answers, short of success, undoes it.

pub mod aws;
pub mod github;
pub mod gitlab;
pub mod vault;

use futures_util::future::BoxFuture;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::target::{StoreKind, Target};

pub use aws::AwsStore;
pub use github::GithubStore;
pub use gitlab::GitlabStore;
pub use vault::VaultStore;

/// Masks a credential obtained at run time (an OIDC token, a Vault client token) and
/// registers it for scrubbing, before it is used: `Report::mask`, handed to the stores.
pub type Mask = std::sync::Arc<dyn Fn(&SecretString) + Send + Sync>;

/// What a target holds, as far as its store can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holding {
    /// Nothing is stored there.
    Missing,
    /// A value that cannot be read back (a GitHub secret, a hidden GitLab variable), with
    /// its last update when the store keeps one.
    Sealed {
        /// When it was last written, per the store's metadata.
        updated_at: Option<OffsetDateTime>,
    },
    /// A readable value that carries this Seqera token id.
    Token(u64),
    /// A readable value that is not a Seqera token (no token id in it).
    Other,
}

impl Holding {
    /// What it is, for a message (never the value).
    pub fn describe(&self) -> String {
        match self {
            Holding::Missing => "nothing".into(),
            Holding::Token(id) => format!("token {id}"),
            Holding::Other => "a value that is not a Seqera token".into(),
            Holding::Sealed { .. } => "a sealed value".into(),
        }
    }
}

/// How one write ended, from answers alone (SPEC §5 step 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// A success answer, or a read-back that shows the new token. `created`: the place did
    /// not exist before.
    Written {
        /// The secret (variable, parameter) was created rather than updated.
        created: bool,
    },
    /// Every attempt got a clear refusal: none of them can have been stored.
    Refused(String),
    /// Some attempt got no clear answer: the target holds the new token or its previous one.
    Unknown(String),
}

impl WriteOutcome {
    /// Whether the target surely holds the new token.
    pub fn is_written(&self) -> bool {
        matches!(self, WriteOutcome::Written { .. })
    }
}

/// The attempts of one write, folded: a failure after an attempt without a clear answer is
/// *unknown*, whatever it says itself, since that attempt may still land.
#[derive(Debug, Default)]
pub struct Attempts {
    unclear: Option<String>,
}

impl Attempts {
    /// Notes an attempt that failed; `maybe_performed`: it got no clear answer.
    pub fn failed(&mut self, why: &str, maybe_performed: bool) {
        if maybe_performed && self.unclear.is_none() {
            self.unclear = Some(why.to_string());
        }
    }

    /// Whether some attempt so far got no clear answer.
    pub fn unclear(&self) -> bool {
        self.unclear.is_some()
    }

    /// The outcome of a write whose last attempt failed with `why`.
    pub fn end(mut self, why: &str, maybe_performed: bool) -> WriteOutcome {
        self.failed(why, maybe_performed);
        match self.unclear {
            None => WriteOutcome::Refused(why.to_string()),
            Some(first) if first == why => WriteOutcome::Unknown(why.to_string()),
            Some(first) => WriteOutcome::Unknown(format!(
                "{why} (an earlier attempt got no clear answer: {first})"
            )),
        }
    }
}

/// The new token as the stores receive it.
pub struct NewValue<'a> {
    /// The token value.
    pub value: &'a SecretString,
    /// Its id (what a readable store's value must show after the write).
    pub id: u64,
    /// Fixed per run: with a target's label, a store's idempotency key for the write.
    pub run: &'a str,
}

/// One kind of store. Every method takes targets of this store only.
pub trait Store: Send + Sync {
    /// Preflight, read-only: checks that each target can be written, and reads what it
    /// holds where that costs nothing extra or `drift` asks for it (`None`: not read).
    /// In input order. Any failure fails preflight.
    fn prepare<'a>(
        &'a self,
        targets: &'a [&'a Target],
        drift: bool,
    ) -> BoxFuture<'a, Result<Vec<Option<Holding>>, String>>;

    /// Writes the new value to a prepared target; says from evidence how it ended.
    fn write<'a>(
        &'a self,
        target: &'a Target,
        new: &'a NewValue<'a>,
    ) -> BoxFuture<'a, WriteOutcome>;

    /// What a target holds now, read-only (`status`).
    fn inspect<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Holding, String>>;

    /// The dry run's line for a target: what would be written where.
    fn describe(&self, target: &Target) -> String;

    /// Lines about a whole fan-out to this store (pacing, hints), for the plan and the log.
    fn plan(&self, targets: &[&Target]) -> Vec<String>;
}

/// The targets of one store, with their indices in the settings.
pub type Group<'s, 't> = (&'s dyn Store, Vec<(usize, &'t Target)>);

/// Every store a run may use, by kind.
pub struct Stores {
    /// GitHub secrets of every kind.
    pub github: GithubStore,
    /// Vault / OpenBao KV v2; Some when a `vault:` target is configured.
    pub vault: Option<VaultStore>,
    /// GitLab CI/CD variables; Some when a `gitlab:` or `gitlab-group:` target is configured.
    pub gitlab: Option<GitlabStore>,
    /// AWS Secrets Manager and Parameter Store, when some target is there.
    pub aws: Option<AwsStore>,
}

/// The store of a kind this run has no client for: every call fails, saying so (settings
/// validation makes it unreachable; it is here so that no target can cause a panic).
struct Absent(StoreKind);

impl Absent {
    fn why(&self, t: &Target) -> String {
        format!("{}: no {} client is configured", t.label, self.0.name())
    }
}

impl Store for Absent {
    fn prepare<'a>(
        &'a self,
        targets: &'a [&'a Target],
        _drift: bool,
    ) -> BoxFuture<'a, Result<Vec<Option<Holding>>, String>> {
        let why = targets.first().map(|t| self.why(t)).unwrap_or_default();
        Box::pin(async move { Err(why) })
    }

    fn write<'a>(&'a self, target: &'a Target, _: &'a NewValue<'a>) -> BoxFuture<'a, WriteOutcome> {
        let why = self.why(target);
        Box::pin(async move { WriteOutcome::Refused(why) })
    }

    fn inspect<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Holding, String>> {
        let why = self.why(target);
        Box::pin(async move { Err(why) })
    }

    fn describe(&self, target: &Target) -> String {
        self.why(target)
    }

    fn plan(&self, _targets: &[&Target]) -> Vec<String> {
        Vec::new()
    }
}

static ABSENT: [Absent; 5] = [
    Absent(StoreKind::Github),
    Absent(StoreKind::AwsSm),
    Absent(StoreKind::AwsSsm),
    Absent(StoreKind::Vault),
    Absent(StoreKind::Gitlab),
];

impl Stores {
    /// The store that keeps `target`.
    pub fn of(&self, target: &Target) -> &dyn Store {
        let absent =
            |k: StoreKind| -> &dyn Store { ABSENT.iter().find(|a| a.0 == k).unwrap_or(&ABSENT[0]) };
        match target.store_kind() {
            StoreKind::Github => &self.github,
            StoreKind::Vault => match &self.vault {
                Some(v) => v,
                None => absent(StoreKind::Vault),
            },
            StoreKind::Gitlab => match &self.gitlab {
                Some(g) => g,
                None => absent(StoreKind::Gitlab),
            },
            k @ (StoreKind::AwsSm | StoreKind::AwsSsm) => match &self.aws {
                Some(a) => a,
                None => absent(k),
            },
        }
    }

    /// Groups `targets` by store, keeping each target's index.
    pub fn split<'a>(&self, targets: &'a [Target]) -> Vec<Group<'_, 'a>> {
        let mut groups: Vec<Group<'_, 'a>> = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            let store = self.of(t);
            let at = groups
                .iter()
                .position(|(s, _)| std::ptr::addr_eq(*s as *const dyn Store, store));
            match at {
                Some(g) => groups[g].1.push((i, t)),
                None => groups.push((store, vec![(i, t)])),
            }
        }
        groups
    }

    /// Preflight of every target, each store's at once; in input order.
    pub async fn prepare(
        &self,
        targets: &[Target],
        drift: bool,
    ) -> Result<Vec<Option<Holding>>, String> {
        let groups = self.split(targets);
        let runs = groups.iter().map(|(store, members)| async move {
            let refs: Vec<&Target> = members.iter().map(|(_, t)| *t).collect();
            store.prepare(&refs, drift).await
        });
        let results = futures_util::future::join_all(runs).await;
        let mut holdings = vec![None; targets.len()];
        for ((_, members), result) in groups.iter().zip(results) {
            for ((i, _), h) in members.iter().zip(result?) {
                holdings[*i] = h;
            }
        }
        Ok(holdings)
    }

    /// The pacer of the fan-out (GitHub's write limits): how long the writes take.
    pub fn pacer(&self) -> &crate::pace::Pacer {
        self.github.client().pacer()
    }

    /// The plan lines of every store that has targets.
    pub fn plan(&self, targets: &[Target]) -> Vec<String> {
        self.split(targets)
            .into_iter()
            .flat_map(|(store, members)| {
                let refs: Vec<&Target> = members.iter().map(|(_, t)| *t).collect();
                store.plan(&refs)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clear_refusal_after_an_unclear_attempt_stays_unknown() {
        let mut a = Attempts::default();
        a.failed("HTTP 502", true);
        assert!(matches!(
            a.end("HTTP 422: key", false),
            WriteOutcome::Unknown(w) if w.contains("HTTP 502")
        ));
        assert_eq!(
            Attempts::default().end("HTTP 403", false),
            WriteOutcome::Refused("HTTP 403".into())
        );
        assert_eq!(
            Attempts::default().end("timed out", true),
            WriteOutcome::Unknown("timed out".into())
        );
    }
}
