//! The rotation protocol of SPEC §5, step by step: preflight, decide, create, verify, store,
//! revoke. Each step is one function with its failure handling in sight. Talks to the
//! clients and to `report`; never builds a URL or a header.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use secrecy::ExposeSecret;
use thiserror::Error;
use time::OffsetDateTime;

use crate::github::{GithubClient, GithubError, OrgWrite, SecretMeta, Written};
use crate::lifecycle::{self, Policy, Retirement, Superseded, TargetState};
use crate::naming;
use crate::pace;
use crate::report::Report;
use crate::seal::{seal, PublicKey};
use crate::seqera::{token_id_of, NewToken, SeqeraClient, SeqeraError, TokenInfo, User};
use crate::settings::{Settings, Visibility};
use crate::target::{Scope, Target};

/// Seqera tokens revoked at once (Seqera allows about 20 requests/s per token).
const REVOKE_CONCURRENCY: usize = 4;
/// Revocation starts at least this far apart: at most 20 per second.
const REVOKE_SPACING: Duration = Duration::from_millis(50);
/// GitHub reads at once, per kind (public keys, secret metadata, repository ids): reads, so
/// not bound by `max-concurrency` (which is for writes). Keys and metadata run side by side,
/// so with `min-age` the metadata adds no wave to preflight.
const READ_CONCURRENCY: usize = 8;

/// The two clients a rotation uses.
pub struct Clients {
    /// Seqera, with the access token.
    pub seqera: SeqeraClient,
    /// GitHub, with the GitHub token.
    pub github: GithubClient,
}

/// What preflight learned, read-only.
pub struct Plan {
    /// Owner of the access token.
    pub user: User,
    /// Every token name of the user (for free names).
    pub names: HashSet<String>,
    /// Managed tokens, newest first.
    pub managed: Vec<TokenInfo>,
    /// One public key per key owner.
    pub keys: HashMap<Scope, PublicKey>,
    /// Access settings per organization target (index into `targets`).
    pub org: HashMap<usize, OrgWrite>,
    /// Per target, in input order, the secret's metadata (None: no such secret); read only
    /// when `min-age` may skip the rotation, to tell whether some target needs it anyway.
    pub secrets: Option<Vec<Option<SecretMeta>>>,
}

/// How one target's write ended.
#[derive(Debug)]
pub struct TargetResult {
    /// The target's label.
    pub label: String,
    /// Created / updated, or why not (with what the target holds now).
    pub result: Result<Written, String>,
    /// Failed without a clear answer that GitHub's metadata could not settle: the target may
    /// hold the new token, so the new token is never rolled back.
    pub maybe_written: bool,
}

/// What GitHub's metadata says of a write that got no clear answer (SPEC §5.6).
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Updated after this run's first write could have landed: it was stored.
    Written,
    /// Missing, or last updated before this run wrote anything: the previous value stands.
    NotWritten(&'static str),
    /// Cannot be told (same second, no clock, metadata unreadable): it may have been stored.
    Unknown(String),
}

/// Judges an unclear write from the secret's metadata and GitHub's clock before the store
/// step, both in GitHub's whole seconds. Strictly later → written; strictly earlier or
/// missing → not written; the same second, or anything unreadable → unknown (a previous
/// write in that second cannot be told from this run's).
pub fn judge(
    meta: Result<Option<SecretMeta>, String>,
    reference: Option<OffsetDateTime>,
) -> Resolution {
    let meta = match meta {
        Ok(Some(m)) => m,
        Ok(None) => return Resolution::NotWritten("the secret does not exist"),
        Err(e) => return Resolution::Unknown(format!("its metadata cannot be read: {e}")),
    };
    let Some(reference) = reference else {
        return Resolution::Unknown("GitHub sent no Date header to compare with".into());
    };
    let (updated, reference) = (meta.updated_at.unix_timestamp(), reference.unix_timestamp());
    match updated.cmp(&reference) {
        std::cmp::Ordering::Greater => Resolution::Written,
        std::cmp::Ordering::Less => {
            Resolution::NotWritten("its metadata shows no write by this run")
        }
        std::cmp::Ordering::Equal => Resolution::Unknown(
            "it was last updated in the very second this run began, so the metadata cannot tell"
                .into(),
        ),
    }
}

/// A step that failed.
#[derive(Debug, Error)]
pub enum RotateError {
    /// Step 2: nothing was changed.
    #[error("preflight failed, nothing was changed: {0}")]
    Preflight(String),
    /// Step 4: no new token exists (or it was cleaned up).
    #[error("could not create the new token: {0}")]
    Create(String),
    /// Step 5: the new token was rolled back.
    #[error("the new token does not work: {0}; {1}")]
    Verify(String, String),
    /// Step 6, every target failed: rolled back.
    #[error("no target could be written; {0}")]
    StoreAll(String),
    /// Step 6, some failed (or all, but some may hold the new token): nothing revoked.
    #[error("{failed} of {total} targets could not be written ({labels}); nothing was revoked and the new token is kept: {states}. Fix the cause and run again: the next run writes all targets and revokes the old tokens")]
    StorePartial {
        /// How many failed.
        failed: usize,
        /// Of how many.
        total: usize,
        /// Their labels.
        labels: String,
        /// What each failed target holds now.
        states: String,
    },
    /// Step 7: the secrets are good, some old token is still live.
    #[error(
        "the secrets hold the new token, but revoking {0}; run again (or `revoke`) to clean up"
    )]
    Revoke(String),
}

/// Everything a run did, for outputs and the summary.
#[derive(Debug, Default)]
pub struct Outcome {
    /// A new token was created and stored (and not rolled back).
    pub rotated: bool,
    /// Why nothing was done (not due, dry run).
    pub skipped: Option<String>,
    /// The token created.
    pub token: Option<TokenInfo>,
    /// Per target, in input order.
    pub targets: Vec<TargetResult>,
    /// Ids of the tokens revoked.
    pub revoked: Vec<u64>,
    /// Things worth knowing that did not fail the run.
    pub notes: Vec<String>,
    /// Superseded tokens left live for now (`grace-period`), with the time each goes.
    pub retiring: Vec<Superseded>,
    /// Not due, and not a dry run: the run only retired tokens (step 3), so the outputs
    /// carry `revoked-token-ids` too.
    pub not_due: bool,
    /// The failed step, if any (exit 1).
    pub error: Option<RotateError>,
}

/// Runs SPEC §5 steps 2–7 for validated settings (step 1 happened when they were built).
/// The value of the new token goes only to `report.mask` and the sealed boxes, and to
/// `new_token` for the `access-key` output when the caller asks for it.
pub async fn rotate(s: &Settings, c: &Clients, out: &Report) -> (Outcome, Option<NewToken>) {
    let mut o = Outcome::default();
    out.group("Preflight");
    let plan = preflight(s, c, out).await;
    out.end_group();
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return (o.fail(e), None),
    };
    if let Some(reason) = decide(s, &plan, out) {
        out.step(&reason);
        o.skipped = Some(reason);
        retire_not_due(s, c, &plan, out, &mut o).await;
        return (o, None);
    }
    if s.seqera.dry_run {
        print_plan(s, c, &plan, out);
        o.skipped = Some("dry run: nothing was changed".into());
        return (o, None);
    }
    let mut unresolved = Vec::new();
    let new = match create(s, c, &plan, out, &mut o.notes, &mut unresolved).await {
        Ok(t) => t,
        Err(e) => {
            if !unresolved.is_empty() {
                sweep(&c.seqera, &unresolved, s.seqera.timeout, out, &mut o.notes).await;
            }
            return (o.fail(e), None);
        }
    };
    let (mut o, new) = verify_store_revoke(s, c, &plan, new, out, o).await;
    if !unresolved.is_empty() {
        // The access token may be gone (self-rotation); the kept new token is not.
        let client = match &new {
            Some(n) => c.seqera.with_token(n.value.clone()),
            None => c.seqera.clone(),
        };
        sweep(&client, &unresolved, s.seqera.timeout, out, &mut o.notes).await;
    }
    (o, new)
}

/// Steps 5–7, once the new token exists; every failure says what state it leaves.
async fn verify_store_revoke(
    s: &Settings,
    c: &Clients,
    plan: &Plan,
    new: NewToken,
    out: &Report,
    mut o: Outcome,
) -> (Outcome, Option<NewToken>) {
    o.token = Some(new.info.clone());
    let new_client = c.seqera.with_token(new.value.clone());
    if let Err(e) = verify(&new_client, plan, out).await {
        let rollback = rollback(&c.seqera, &new, out).await;
        o.token = None;
        return (o.fail(RotateError::Verify(e, rollback)), None);
    }
    out.group("Store");
    // GitHub's own clock before the first write: the reference for `updated_at`.
    let reference = c.github.server_time();
    o.targets = store(s, c, plan, &new, out).await;
    resolve_unclear(s, c, &mut o.targets, reference, out).await;
    out.end_group();
    let failed: Vec<&str> = o
        .targets
        .iter()
        .filter(|t| t.result.is_err())
        .map(|t| t.label.as_str())
        .collect();
    // Roll back only when no target can hold the new token: a write without a clear answer
    // may have been stored, and then revoking the new token would leave that target broken.
    let maybe_written = o.targets.iter().any(|t| t.maybe_written);
    if failed.len() == o.targets.len() && !maybe_written {
        let rollback = rollback(&new_client, &new, out).await;
        o.token = None;
        return (o.fail(RotateError::StoreAll(rollback)), None);
    }
    o.rotated = true;
    if !failed.is_empty() {
        let states: Vec<String> = o
            .targets
            .iter()
            .filter(|t| t.result.is_err())
            .map(|t| {
                if t.maybe_written {
                    format!(
                        "{} holds the new token or its previous one (both live)",
                        t.label
                    )
                } else {
                    format!("{} keeps what it held before", t.label)
                }
            })
            .collect();
        let e = RotateError::StorePartial {
            failed: failed.len(),
            total: o.targets.len(),
            labels: failed.join(", "),
            states: states.join("; "),
        };
        return (o.fail(e), Some(new));
    }
    let (revoked, errors) = revoke_older(s, &new_client, plan, &new, out, &mut o).await;
    o.revoked = revoked;
    if !errors.is_empty() {
        return (o.fail(RotateError::Revoke(errors.join("; "))), Some(new));
    }
    (o, Some(new))
}

impl Outcome {
    fn fail(mut self, e: RotateError) -> Self {
        self.error = Some(e);
        self
    }
}

/// Step 2: reads only. The Seqera user and tokens, then every public key (once per key
/// owner) and the access settings of organization secrets, all at once where possible.
async fn preflight(s: &Settings, c: &Clients, out: &Report) -> Result<Plan, RotateError> {
    let seqera = async {
        let (user, tokens) = tokio::join!(c.seqera.user_info(), c.seqera.list_tokens());
        let user = user.map_err(|e| format!("Seqera user-info: {}", seqera_hint(&e)))?;
        let tokens = tokens.map_err(|e| format!("Seqera token list: {}", seqera_hint(&e)))?;
        Ok::<_, String>((user, tokens))
    };
    // One key per key owner, in input order; a set, so 5,000 targets cost no quadratic scan.
    let mut seen: HashSet<&Scope> = HashSet::new();
    let scopes: Vec<&Scope> = s
        .targets
        .iter()
        .map(|t| crate::target::github_of(t).0)
        .filter(|sc| seen.insert(sc))
        .collect();
    let keys = stream::iter(scopes)
        .map(|scope| async move {
            c.github
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
        })
        .buffer_unordered(READ_CONCURRENCY)
        .collect::<Vec<_>>();
    let org = org_access(s, &c.github);
    // Beside the key reads, not after them: no extra round trip on the critical path.
    let secrets = async {
        if s.min_age.is_none() || s.force {
            return Ok(None);
        }
        secrets_metadata(s, &c.github)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    let (seqera, keys, org, secrets) = tokio::join!(seqera, keys, org, secrets);
    let (user, tokens) = seqera.map_err(RotateError::Preflight)?;
    let keys = keys
        .into_iter()
        .collect::<Result<HashMap<_, _>, _>>()
        .map_err(RotateError::Preflight)?;
    let org = org.map_err(RotateError::Preflight)?;
    let secrets = secrets.map_err(RotateError::Preflight)?;
    let managed = naming::managed(&s.seqera.token_name, &tokens);
    out.step(&format!(
        "Seqera user {} (id {}): {} token(s), {} managed by `{}`",
        user.user.user_name,
        user.user.id,
        tokens.len(),
        managed.len(),
        s.seqera.token_name.as_str()
    ));
    out.step(&format!(
        "GitHub: {} public key(s) for {} target(s)",
        keys.len(),
        s.targets.len()
    ));
    Ok(Plan {
        user: user.user,
        names: tokens.into_iter().map(|t| t.name).collect(),
        managed,
        keys,
        org,
        secrets,
    })
}

/// Every target's secret metadata, in input order (`Ok(None)`: no such secret), at most
/// [`READ_CONCURRENCY`] reads at once. Preflight's read, shared with `status`.
pub async fn secrets_metadata(
    s: &Settings,
    gh: &GithubClient,
) -> Vec<Result<Option<SecretMeta>, String>> {
    stream::iter(&s.targets)
        .map(|t| async move {
            gh.secret_metadata(
                crate::target::github_of(t).0,
                crate::target::github_of(t).1.as_str(),
            )
            .await
            .map_err(|e| {
                format!(
                    "metadata of secret `{}` of {}: {e}",
                    crate::target::github_of(t).1,
                    t.label
                )
            })
        })
        .buffered(READ_CONCURRENCY)
        .collect()
        .await
}

/// The grace-period settings.
pub fn policy(s: &Settings) -> Policy {
    Policy {
        keep: s.keep_previous,
        grace: s.grace_period,
    }
}

pub(crate) fn seqera_hint(e: &SeqeraError) -> String {
    match e {
        SeqeraError::NotAccepted { .. } => format!("{e}; check `seqera-access-token` and that `seqera-api-url` is this token's Seqera instance"),
        _ => e.to_string(),
    }
}

/// What each organization target sends: the given visibility, or the secret's current one
/// (with its repository list when `selected`), else `private`. Never clobbers access lists.
async fn org_access(s: &Settings, gh: &GithubClient) -> Result<HashMap<usize, OrgWrite>, String> {
    let mut map = HashMap::new();
    for (i, t) in s.targets.iter().enumerate() {
        let Scope::Org { org } = crate::target::github_of(t).0 else {
            continue;
        };
        let ctx = |e: GithubError| format!("organization secret `{}`: {e}", t.label);
        let write = match &s.org_access {
            Some(a) if a.visibility == Visibility::Selected => {
                let names =
                    a.selected_repositories
                        .iter()
                        .filter_map(|r| match r.split_once('/') {
                            Some((o, name)) => o.eq_ignore_ascii_case(org).then_some(name),
                            None => Some(r.as_str()),
                        });
                let ids = stream::iter(names)
                    .map(|name| async move {
                        gh.repository_id(org, name)
                            .await
                            .map_err(|e| format!("selected repository `{org}/{name}`: {e}"))
                    })
                    .buffered(READ_CONCURRENCY)
                    .collect::<Vec<_>>()
                    .await
                    .into_iter()
                    .collect::<Result<Vec<u64>, String>>()?;
                OrgWrite {
                    visibility: "selected".into(),
                    selected_repository_ids: Some(ids),
                }
            }
            Some(a) => OrgWrite {
                visibility: a.visibility.as_str().into(),
                selected_repository_ids: None,
            },
            None => match gh
                .org_secret_visibility(
                    crate::target::github_of(t).0,
                    crate::target::github_of(t).1.as_str(),
                )
                .await
                .map_err(ctx)?
            {
                Some(v) if v == "selected" => {
                    let ids = gh
                        .org_secret_repository_ids(
                            crate::target::github_of(t).0,
                            crate::target::github_of(t).1.as_str(),
                        )
                        .await
                        .map_err(ctx)?;
                    OrgWrite {
                        visibility: v,
                        selected_repository_ids: Some(ids),
                    }
                }
                Some(v) => OrgWrite {
                    visibility: v,
                    selected_repository_ids: None,
                },
                None => OrgWrite {
                    visibility: "private".into(),
                    selected_repository_ids: None,
                },
            },
        };
        map.insert(i, write);
    }
    Ok(map)
}

/// Step 3: not due yet? (`min-age` without `force`). Due anyway when some target does not
/// hold the newest managed token; the log says which and why.
fn decide(s: &Settings, plan: &Plan, out: &Report) -> Option<String> {
    let min_age = s.min_age?;
    if s.force {
        return None;
    }
    let newest = plan.managed.first()?;
    let created = naming::created_at(&s.seqera.token_name, newest)?;
    let age = OffsetDateTime::now_utc() - created;
    let min = time::Duration::try_from(min_age).ok()?;
    if age >= min {
        return None;
    }
    let drifted = drift(s, plan, newest, created);
    if !drifted.is_empty() {
        for d in &drifted {
            out.step(&format!("Due although min-age is not reached: {d}"));
        }
        return None;
    }
    Some({
        format!(
            "Not due: the newest managed token `{}` (id {}) is {} old, min-age is {}; no rotation (use force to rotate anyway)",
            newest.name,
            newest.id,
            human(age),
            humantime::format_duration(min_age)
        )
    })
}

/// Why each target that does not hold the newest managed token needs the rotation.
fn drift(s: &Settings, plan: &Plan, newest: &TokenInfo, created: OffsetDateTime) -> Vec<String> {
    let Some(secrets) = &plan.secrets else {
        return Vec::new();
    };
    s.targets
        .iter()
        .zip(secrets)
        .filter_map(|(t, meta)| {
            match lifecycle::target_state(Ok::<_, ()>(meta.as_ref()), Some(created)) {
                TargetState::Current => None,
                TargetState::Missing => Some(format!(
                    "{} has no secret `{}` yet",
                    t.label, crate::target::github_of(t).1
                )),
                TargetState::Stale | TargetState::Unknown => Some(format!(
                    "secret `{}` of {} was last updated {}, before the newest managed token `{}` (id {}) was created {}",
                    crate::target::github_of(t).1,
                    t.label,
                    meta.as_ref().map(|m| lifecycle::when(m.updated_at)).unwrap_or_default(),
                    newest.name,
                    newest.id,
                    lifecycle::when(created)
                )),
            }
        })
        .collect()
}

/// Step 3, not due: retire the superseded tokens whose grace period is over, with the access
/// token, revoking the access token itself last if it is one of them. A dry run only says so.
async fn retire_not_due(s: &Settings, c: &Clients, plan: &Plan, out: &Report, o: &mut Outcome) {
    let Some(newest) = plan.managed.first() else {
        return;
    };
    let now = OffsetDateTime::now_utc();
    let r = lifecycle::retirement(&s.seqera.token_name, newest, &plan.managed, policy(s), now);
    log_retirement(s, &r, now, out);
    o.retiring = r.retiring.clone();
    if s.seqera.dry_run {
        for v in &r.revoke {
            out.step(&format!(
                "Dry run: would revoke `{}` (id {}), whose grace period is over",
                v.token.name, v.token.id
            ));
        }
        return;
    }
    o.not_due = true;
    if r.revoke.is_empty() {
        return;
    }
    let own = token_id_of(&s.seqera.access_token);
    let (last, first): (Vec<Superseded>, Vec<Superseded>) =
        r.revoke.into_iter().partition(|v| Some(v.token.id) == own);
    let mut errors = Vec::new();
    for batch in [first, last] {
        note_late_uses(s, &batch, own, &mut o.notes);
        let victims = batch.into_iter().map(|v| v.token).collect();
        let (revoked, errs) = revoke_tokens(&c.seqera, victims, out).await;
        o.revoked.extend(revoked);
        errors.extend(errs);
    }
    if !errors.is_empty() {
        o.error = Some(RotateError::Revoke(errors.join("; ")));
    }
}

/// One line per retiring token: when it goes and when it was last used.
fn log_retirement(s: &Settings, r: &Retirement, now: OffsetDateTime, out: &Report) {
    for v in &r.retiring {
        let goes = v.goes_at.unwrap_or(now);
        out.step(&format!(
            "Retiring `{}` (id {}): live until {} (in {}), {} after `{}` (id {}) replaced it; last used {}",
            v.token.name,
            v.token.id,
            lifecycle::when(goes),
            lifecycle::span(goes - now),
            humantime::format_duration(s.grace_period),
            v.successor.name,
            v.successor.id,
            lifecycle::last_use(v.token.last_used),
        ));
    }
}

/// A token about to be revoked that was used after its successor existed: some consumer
/// did not get the new value (the access token itself is this run's own use).
fn note_late_uses(s: &Settings, victims: &[Superseded], own: Option<u64>, notes: &mut Vec<String>) {
    for v in victims.iter().filter(|v| Some(v.token.id) != own) {
        if let Some(used) = v.used_after_successor(&s.seqera.token_name) {
            notes.push(format!(
                "`{}` (id {}) was last used {}, after its successor `{}` (id {}) existed: some consumer still had the old value and will now fail; check what reads this token",
                v.token.name,
                v.token.id,
                lifecycle::when(used),
                v.successor.name,
                v.successor.id
            ));
        }
    }
}

fn human(d: time::Duration) -> String {
    let secs = d.whole_seconds().max(0) as u64;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn print_plan(s: &Settings, c: &Clients, plan: &Plan, out: &Report) {
    let (name, _) = naming::free_name(&s.seqera.token_name, OffsetDateTime::now_utc(), &plan.names);
    out.step("Dry run: nothing will be changed. The plan:");
    out.step(&format!("  create Seqera token `{name}`"));
    for t in &s.targets {
        out.step(&format!(
            "  write secret `{}` to {}",
            crate::target::github_of(t).1,
            t.label
        ));
    }
    out.step(&format!(
        "  {}",
        pace::plan_line(s.targets.len(), c.github.pacer())
    ));
    for hint in pace::org_hints(&s.targets) {
        out.step(&format!("  note: {hint}"));
    }
    // The new token's id is not known yet; every managed token is older than it.
    let now = OffsetDateTime::now_utc();
    let new = TokenInfo {
        id: u64::MAX,
        name,
        date_created: Some(now),
        last_used: None,
    };
    let r = lifecycle::retirement(&s.seqera.token_name, &new, &plan.managed, policy(s), now);
    if r.revoke.is_empty() {
        out.step("  revoke nothing");
    }
    for v in &r.revoke {
        out.step(&format!(
            "  revoke token `{}` (id {})",
            v.token.name, v.token.id
        ));
    }
    for v in &r.retiring {
        out.step(&format!(
            "  leave token `{}` (id {}) retiring until {} (grace-period)",
            v.token.name,
            v.token.id,
            lifecycle::when(v.goes_at.unwrap_or(now))
        ));
    }
}

/// Step 4: create under the first free stamped name and mask the value before anything else.
/// A failed or ambiguous create is never blindly retried: the token list says whether it
/// happened; a token of that name is revoked (its value is lost) and a fresh name is used.
async fn create(
    s: &Settings,
    c: &Clients,
    plan: &Plan,
    out: &Report,
    notes: &mut Vec<String>,
    unresolved: &mut Vec<String>,
) -> Result<NewToken, RotateError> {
    const ATTEMPTS: usize = 4;
    let mut last_error = None;
    let mut taken = plan.names.clone();
    let mut at = OffsetDateTime::now_utc();
    for _ in 0..ATTEMPTS {
        let now = OffsetDateTime::now_utc();
        if now > at {
            at = now;
        }
        let (name, when) = naming::free_name(&s.seqera.token_name, at, &taken);
        at = when;
        match c.seqera.create_token(&name).await {
            Ok(new) => {
                out.mask(&new.value);
                out.step(&format!(
                    "Created Seqera token `{}` (id {})",
                    new.info.name, new.info.id
                ));
                if new.info.name != name {
                    out.warning(&format!(
                        "Seqera names the new token (id {}) `{}`, not `{name}` as asked",
                        new.info.id, new.info.name
                    ));
                }
                return Ok(new);
            }
            Err(SeqeraError::NameTaken) => {
                taken.insert(name);
            }
            Err(SeqeraError::MalformedValue { info, value }) => {
                // Before anything else is printed: no piece of it may show (SPEC §8).
                out.mask_lines(&value);
                drop(value);
                let fate = match c.seqera.delete_token(info.id).await {
                    Ok(_) => format!("that token (id {}) was revoked", info.id),
                    Err(e) => format!(
                        "revoking that token (id {}) failed ({e}); the next run revokes it",
                        info.id
                    ),
                };
                return Err(RotateError::Create(format!(
                    "Seqera answered with a token value that is not in the token format (printable, no blanks), so it was neither used nor shown; {fate}"
                )));
            }
            Err(e) if e.is_ambiguous() => {
                out.warning(&format!(
                    "creating `{name}` gave no clear answer ({e}); checking whether it exists"
                ));
                let tokens = c.seqera.list_tokens().await.map_err(|le| {
                    RotateError::Create(format!(
                        "the create of `{name}` was ambiguous ({e}) and the token list cannot be read ({le}); if `{name}` exists, the next run revokes it"
                    ))
                })?;
                if let Some(orphan) = tokens.iter().find(|t| t.name == name) {
                    c.seqera.delete_token(orphan.id).await.map_err(|de| {
                        RotateError::Create(format!("`{name}` (id {}) was created without its value reaching us and could not be revoked ({de}); the next run revokes it", orphan.id))
                    })?;
                    notes.push(format!(
                        "an ambiguous create left `{name}` (id {}), which was revoked",
                        orphan.id
                    ));
                } else {
                    // Not there yet; a slow server may still commit it. Swept at the end.
                    unresolved.push(name.clone());
                }
                taken.extend(tokens.into_iter().map(|t| t.name));
                taken.insert(name);
                last_error = Some(seqera_hint(&e));
            }
            Err(e) => return Err(RotateError::Create(seqera_hint(&e))),
        }
    }
    Err(RotateError::Create(match last_error {
        Some(e) => format!("{ATTEMPTS} attempts gave no clear answer, the last: {e}"),
        None => format!("no free token name after {ATTEMPTS} attempts"),
    }))
}

/// Revokes tokens of names whose create gave no answer and that were not listed then: they
/// are this run's, their values are lost, and a slow server may have committed them late
/// (so they can be newer than the run's own token, which step 7 never touches).
async fn sweep(
    client: &SeqeraClient,
    names: &[String],
    timeout: Duration,
    out: &Report,
    notes: &mut Vec<String>,
) {
    let mut pending: Vec<&String> = names.iter().collect();
    // A request the server is still working on lands within about one more timeout.
    for wait in [Duration::ZERO, timeout.min(Duration::from_secs(10))] {
        if pending.is_empty() {
            return;
        }
        tokio::time::sleep(wait).await;
        let tokens = match client.list_tokens().await {
            Ok(t) => t,
            Err(e) => {
                notes.push(format!(
                    "could not re-check for late-created tokens ({e}); the next run revokes any"
                ));
                return;
            }
        };
        let found: Vec<_> = tokens
            .into_iter()
            .filter(|t| pending.contains(&&t.name))
            .collect();
        for t in &found {
            match client.delete_token(t.id).await {
                Ok(_) => {
                    out.step(&format!("Revoked `{}` (id {}), created late by an unanswered request", t.name, t.id));
                    notes.push(format!("an unanswered create committed late as `{}` (id {}), which was revoked", t.name, t.id));
                }
                Err(e) => notes.push(format!(
                    "`{}` (id {}) was created late and could not be revoked ({e}); the next run revokes it",
                    t.name, t.id
                )),
            }
            pending.retain(|n| **n != t.name);
        }
    }
}

/// Step 5: `GET /user-info` with the new token, retried briefly (a new token may take a
/// moment to be accepted everywhere). It must belong to the same user.
async fn verify(new_client: &SeqeraClient, plan: &Plan, out: &Report) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..3u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
        }
        match new_client.user_info().await {
            Ok(u) if u.user.id == plan.user.id => {
                out.step("Verified: the new token is accepted by Seqera");
                return Ok(());
            }
            Ok(u) => {
                return Err(format!(
                    "it belongs to user id {}, not {}",
                    u.user.id, plan.user.id
                ))
            }
            Err(e @ SeqeraError::NotAccepted { .. }) => last = e.to_string(),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(last)
}

/// Revokes the token this run created; says what state that leaves.
async fn rollback(client: &SeqeraClient, new: &NewToken, out: &Report) -> String {
    match client.delete_token(new.info.id).await {
        Ok(_) => {
            out.step(&format!("Rolled back: revoked the new token `{}` (id {})", new.info.name, new.info.id));
            "the new token was revoked; every target keeps its previous, still valid token".into()
        }
        Err(e) => format!(
            "revoking the new token `{}` (id {}) also failed ({e}); every target keeps its previous token, and the next run revokes the leftover",
            new.info.name, new.info.id
        ),
    }
}

/// Step 6: seal and write the new value to every target, at most `max-concurrency` at once.
/// A 422 about the key fetches that key again and retries once.
async fn store(
    s: &Settings,
    c: &Clients,
    plan: &Plan,
    new: &NewToken,
    out: &Report,
) -> Vec<TargetResult> {
    let pacer = c.github.pacer();
    out.step(&pace::plan_line(s.targets.len(), pacer));
    for hint in pace::org_hints(&s.targets) {
        out.step(&format!("Note: {hint}"));
    }
    let (started, written) = (&AtomicUsize::new(0), &AtomicUsize::new(0));
    // Unordered, so a slow write never holds a slot; results go back to input order.
    let writes = stream::iter(s.targets.iter().enumerate())
        .map(|(i, t)| async move {
            started.fetch_add(1, Ordering::Relaxed);
            let result = write_one(
                c,
                t,
                plan.keys[crate::target::github_of(t).0].clone(),
                plan.org.get(&i),
                new,
            )
            .await;
            written.fetch_add(1, Ordering::Relaxed);
            match &result {
                Ok(w) => out.step(&format!(
                    "{} {}",
                    if *w == Written::Created {
                        "Created"
                    } else {
                        "Updated"
                    },
                    t.label
                )),
                Err(e) if e.maybe_performed() => out.warning(&format!(
                    "No clear answer writing {}: {e}; asking GitHub whether it was stored",
                    t.label
                )),
                Err(e) => out.error(&format!("Could not write {}: {e}", t.label)),
            }
            let maybe_written = matches!(&result, Err(e) if e.maybe_performed());
            let result = TargetResult {
                label: t.label.clone(),
                result: result.map_err(|e| e.to_string()),
                maybe_written,
            };
            (i, result)
        })
        .buffer_unordered(s.max_concurrency)
        .collect::<Vec<(usize, TargetResult)>>();
    let mut results = pace::with_ticks(writes, pace::progress_interval(pacer), || {
        let total = s.targets.len();
        let left = pacer.time_for(total - started.load(Ordering::Relaxed));
        out.step(&pace::progress_line(
            written.load(Ordering::Relaxed),
            total,
            left,
        ));
    })
    .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Settles every write that got no clear answer from the secret's metadata (SPEC §5.6): a
/// confirmed write counts as done, a confirmed non-write as failed, anything else stays
/// "may hold the new token".
async fn resolve_unclear(
    s: &Settings,
    c: &Clients,
    results: &mut [TargetResult],
    reference: Option<OffsetDateTime>,
    out: &Report,
) {
    let unclear: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].maybe_written)
        .collect();
    if unclear.is_empty() {
        return;
    }
    let read = |ids: Vec<usize>| {
        stream::iter(ids)
            .map(|i| async move {
                let t = &s.targets[i];
                let meta = c
                    .github
                    .secret_metadata(
                        crate::target::github_of(t).0,
                        crate::target::github_of(t).1.as_str(),
                    )
                    .await
                    .map_err(|e| e.to_string());
                (i, judge(meta, reference))
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect::<Vec<_>>()
    };
    let mut verdicts = read(unclear).await;
    // "Not written" is only trusted once an attempt still in flight had time to land (a
    // timed-out write can commit late): wait about one more timeout, then look again.
    let again: Vec<usize> = verdicts
        .iter()
        .filter(|(_, v)| matches!(v, Resolution::NotWritten(_)))
        .map(|(i, _)| *i)
        .collect();
    if !again.is_empty() {
        tokio::time::sleep(s.seqera.timeout.min(Duration::from_secs(10))).await;
        let second = read(again).await;
        for (i, v) in second {
            if let Some(slot) = verdicts.iter_mut().find(|(j, _)| *j == i) {
                slot.1 = v;
            }
        }
    }
    for (i, verdict) in verdicts {
        let r = &mut results[i];
        let why = r.result.as_ref().err().cloned().unwrap_or_default();
        match verdict {
            Resolution::Written => {
                out.step(&format!(
                    "{}: the write got no clear answer ({why}), but GitHub's metadata shows it was stored",
                    r.label
                ));
                r.result = Ok(Written::Updated);
                r.maybe_written = false;
            }
            Resolution::NotWritten(how) => {
                out.step(&format!("{}: not written ({how})", r.label));
                r.result = Err(format!("{why}; not written ({how})"));
                r.maybe_written = false;
            }
            Resolution::Unknown(how) => {
                out.warning(&format!(
                    "{}: the write got no clear answer and {how}; it may hold the new token, which is therefore kept",
                    r.label
                ));
                r.result = Err(format!("{why}; may hold the new token ({how})"));
            }
        }
    }
}

async fn write_one(
    c: &Clients,
    t: &Target,
    mut key: PublicKey,
    org: Option<&OrgWrite>,
    new: &NewToken,
) -> Result<Written, GithubError> {
    let name = crate::target::github_of(t).1.as_str();
    let mut refetched = false;
    loop {
        let sealed = seal(new.value.expose_secret().as_bytes(), &key);
        match c
            .github
            .put_secret(
                crate::target::github_of(t).0,
                name,
                &sealed,
                &key.key_id,
                org,
            )
            .await
        {
            Err(GithubError::KeyRejected(_)) if !refetched => {
                refetched = true;
                key = c.github.public_key(crate::target::github_of(t).0).await?;
            }
            other => return other,
        }
    }
}

/// Step 7: revoke the managed tokens older than the new one, except the newest
/// `keep-previous` and those still in their grace period (retiring), authenticating with the
/// new token. Returns revoked ids and failures.
async fn revoke_older(
    s: &Settings,
    new_client: &SeqeraClient,
    plan: &Plan,
    new: &NewToken,
    out: &Report,
    o: &mut Outcome,
) -> (Vec<u64>, Vec<String>) {
    let now = OffsetDateTime::now_utc();
    let r = lifecycle::retirement(
        &s.seqera.token_name,
        &new.info,
        &plan.managed,
        policy(s),
        now,
    );
    let kept = r.kept.len();
    if kept > 0 {
        out.step(&format!(
            "Keeping {kept} previous token(s) alive (keep-previous)"
        ));
    }
    log_retirement(s, &r, now, out);
    o.retiring = r.retiring;
    note_late_uses(s, &r.revoke, None, &mut o.notes);
    let victims = r.revoke.into_iter().map(|v| v.token).collect();
    revoke_tokens(new_client, victims, out).await
}

/// Revokes `victims` (at most 20 per second), returning revoked ids and failures.
async fn revoke_tokens(
    client: &SeqeraClient,
    victims: Vec<TokenInfo>,
    out: &Report,
) -> (Vec<u64>, Vec<String>) {
    let new_client = client;
    let started = tokio::time::Instant::now();
    let results: Vec<(TokenInfo, Result<bool, SeqeraError>)> =
        stream::iter(victims.into_iter().enumerate())
            .map(|(i, t)| async move {
                tokio::time::sleep_until(started + REVOKE_SPACING * i as u32).await;
                let r = new_client.delete_token(t.id).await;
                (t, r)
            })
            .buffered(REVOKE_CONCURRENCY)
            .collect()
            .await;
    let mut revoked = Vec::new();
    let mut errors = Vec::new();
    for (t, r) in results {
        match r {
            Ok(live) => {
                out.step(&format!(
                    "Revoked `{}` (id {}){}",
                    t.name,
                    t.id,
                    if live { "" } else { " (already gone)" }
                ));
                revoked.push(t.id);
            }
            Err(e) => {
                out.error(&format!("Could not revoke `{}` (id {}): {e}", t.name, t.id));
                errors.push(format!("`{}` (id {}) failed: {e}", t.name, t.id));
            }
        }
    }
    (revoked, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    fn meta(secs: i64) -> Result<Option<SecretMeta>, String> {
        Ok(Some(SecretMeta {
            updated_at: at(secs),
            visibility: None,
        }))
    }

    // Issue 9, defect 1: only a strictly later `updated_at` proves this run's write; only a
    // strictly earlier one (or none) proves the previous value stands. Everything else keeps
    // the new token live.
    #[test]
    fn unclear_writes_are_judged_by_whole_seconds_of_githubs_clock() {
        let r = Some(at(1_000));
        assert_eq!(judge(meta(1_001), r), Resolution::Written);
        assert!(matches!(judge(meta(999), r), Resolution::NotWritten(_)));
        assert!(matches!(judge(Ok(None), r), Resolution::NotWritten(_)));
        assert!(matches!(judge(meta(1_000), r), Resolution::Unknown(_)));
        assert!(matches!(judge(meta(1_001), None), Resolution::Unknown(_)));
        assert!(matches!(
            judge(Err("HTTP 500".into()), r),
            Resolution::Unknown(_)
        ));
    }
}
