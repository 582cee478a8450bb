//! The rotation protocol of SPEC §5, step by step: preflight, decide, create, verify, store,
//! revoke. Each step is one function with its failure handling in sight. Talks to the
//! clients and to `report`; never builds a URL or a header.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use thiserror::Error;
use time::OffsetDateTime;

use crate::lifecycle::{self, Policy, Retirement, Superseded};
use crate::naming;
use crate::pace;
use crate::record::{self, Record};
use crate::report::Report;
use crate::seqera::{token_id_of, NewToken, SeqeraClient, SeqeraError, TokenInfo, User};
use crate::settings::Settings;
use crate::store::{Holding, NewValue, Stores, WriteOutcome};

/// Seqera tokens revoked at once (Seqera allows about 20 requests/s per token).
const REVOKE_CONCURRENCY: usize = 4;
/// Revocation starts at least this far apart: at most 20 per second.
const REVOKE_SPACING: Duration = Duration::from_millis(50);

/// The clients a rotation uses.
pub struct Clients {
    /// Seqera, with the access token.
    pub seqera: SeqeraClient,
    /// Every store a target can live in.
    pub stores: Stores,
}

/// What preflight learned, read-only.
pub struct Plan {
    /// Owner of the access token.
    pub user: User,
    /// Every token name of the user (for free names).
    pub names: HashSet<String>,
    /// Every token id of the user: which tokens are live.
    pub live: HashSet<u64>,
    /// Managed tokens, newest first.
    pub managed: Vec<TokenInfo>,
    /// Per target, in input order, what it holds (None: not read). Only drift reads what
    /// a GitHub secret holds; a readable store says it with its access check.
    pub holdings: Vec<Option<Holding>>,
    /// The record, as read.
    pub record: record::Loaded,
}

/// How one target's write ended.
#[derive(Debug)]
pub struct TargetResult {
    /// The target's label.
    pub label: String,
    /// Written, refused or unknown, from evidence only.
    pub outcome: WriteOutcome,
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
    /// Step 6, every target refused: rolled back.
    #[error("no target could be written; {0}")]
    StoreAll(String),
    /// Step 6, not every target written: nothing revoked.
    #[error("{failed} of {total} targets could not be written for sure ({labels}); nothing was revoked and the new token is kept: {states}. Fix the cause and run again: the next run writes all targets and revokes the old tokens")]
    StorePartial {
        /// How many are not surely written.
        failed: usize,
        /// Of how many.
        total: usize,
        /// Their labels.
        labels: String,
        /// What each of them holds now.
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
    /// The record was written: every target holds the new token.
    pub recorded: bool,
    /// The failed step, if any (exit 1).
    pub error: Option<RotateError>,
}

/// Runs SPEC §5 steps 2–7 for validated settings (step 1 happened when they were built).
/// The value of the new token goes only to `report.mask` and the stores, and to
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
    o.targets = store(s, c, &new, out).await;
    out.end_group();
    let total = o.targets.len();
    let refused = o
        .targets
        .iter()
        .filter(|t| matches!(t.outcome, WriteOutcome::Refused(_)))
        .count();
    // Roll back only when no target can hold the new token: every write clearly refused.
    if refused == total {
        let rollback = rollback(&new_client, &new, out).await;
        o.token = None;
        return (o.fail(RotateError::StoreAll(rollback)), None);
    }
    o.rotated = true;
    let unsure: Vec<&TargetResult> = o
        .targets
        .iter()
        .filter(|t| !t.outcome.is_written())
        .collect();
    if !unsure.is_empty() {
        // Some target may hold (or surely holds) the previous token: nothing is revoked,
        // and every target holds a live token. The record is not written.
        let states: Vec<String> = unsure
            .iter()
            .map(|t| match &t.outcome {
                WriteOutcome::Unknown(why) => format!(
                    "{} holds the new token or its previous one, both live ({why})",
                    t.label
                ),
                WriteOutcome::Refused(why) => {
                    format!("{} keeps its previous, still live token ({why})", t.label)
                }
                WriteOutcome::Written { .. } => String::new(),
            })
            .collect();
        let e = RotateError::StorePartial {
            failed: unsure.len(),
            total,
            labels: unsure
                .iter()
                .map(|t| t.label.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            states: states.join("; "),
        };
        return (o.fail(e), Some(new));
    }
    // Every target holds the new token: the evidence that no target holds an older one.
    // The record says so for later runs; beside the revocations, since either order is safe.
    let save = async {
        let place = s.record().filter(|_| plan.record.writable())?;
        let r = Record::new(&new.info, &s.targets, OffsetDateTime::now_utc());
        Some(record::save(c.stores.github.client(), &place, &plan.record, &r).await)
    };
    let ((revoked, errors), saved) =
        tokio::join!(revoke_older(s, &new_client, plan, &new, out, &mut o), save);
    match saved {
        Some(Ok(())) => {
            o.recorded = true;
            out.step(&format!(
                "Recorded: every target holds `{}` (id {})",
                new.info.name, new.info.id
            ));
        }
        Some(Err(w)) => out.warning(&format!(
            "{w}; the next run is due, since the record names an older token"
        )),
        None => {}
    }
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

/// Step 2: reads only. The Seqera user and tokens, every target's store (access, and what
/// it holds where that can be read), and the record, all at once.
async fn preflight(s: &Settings, c: &Clients, out: &Report) -> Result<Plan, RotateError> {
    let seqera = async {
        let (user, tokens) = tokio::join!(c.seqera.user_info(), c.seqera.list_tokens());
        let user = user.map_err(|e| format!("Seqera user-info: {}", seqera_hint(&e)))?;
        let tokens = tokens.map_err(|e| format!("Seqera token list: {}", seqera_hint(&e)))?;
        Ok::<_, String>((user, tokens))
    };
    // Drift may make a rotation due only with `min-age` (without it every run is due).
    let drift = s.min_age.is_some() && !s.force;
    let stores = c.stores.prepare(&s.targets, drift);
    let place = s.record();
    let rec = record::load(c.stores.github.client(), place.as_ref());
    let (seqera, holdings, rec) = tokio::join!(seqera, stores, rec);
    let (user, tokens) = seqera.map_err(RotateError::Preflight)?;
    let holdings = holdings.map_err(RotateError::Preflight)?;
    let managed = naming::managed(&s.seqera.token_name, &tokens);
    out.step(&format!(
        "Seqera user {} (id {}): {} token(s), {} managed by `{}`",
        user.user.user_name,
        user.user.id,
        tokens.len(),
        managed.len(),
        s.seqera.token_name.as_str()
    ));
    out.step(&format!("{} target(s) can be written", s.targets.len()));
    match &rec {
        record::Loaded::Off => {
            out.step("No record is kept (state-variable: none, or no repository)")
        }
        record::Loaded::Unavailable(w) | record::Loaded::Foreign(w) => out.warning(w),
        record::Loaded::Absent => {
            out.step("No record yet: this run writes it once every target holds the new token")
        }
        record::Loaded::Found(r) => out.step(&format!(
            "Record: {} target(s) held `{}` (id {}) at {}",
            r.count, r.token_name, r.token_id, r.at
        )),
    }
    Ok(Plan {
        user: user.user,
        live: tokens.iter().map(|t| t.id).collect(),
        names: tokens.into_iter().map(|t| t.name).collect(),
        managed,
        holdings,
        record: rec,
    })
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

/// Step 3: not due yet? (`min-age` without `force`). Due anyway when some target may not
/// hold the newest managed token — by what it shows (missing, updated before that token was
/// created, another token id) or by the record (an older token, a dead one, other targets);
/// the log says which and why. Timestamps may make a rotation due, never decide a revocation.
fn decide(s: &Settings, plan: &Plan, out: &Report) -> Option<String> {
    let min_age = s.min_age?;
    if s.force {
        return None;
    }
    let newest = plan.managed.first()?;
    let created = naming::created_at(&s.seqera.token_name, newest)?;
    let min = time::Duration::try_from(min_age).ok()?;
    let age = OffsetDateTime::now_utc() - created;
    if age >= min {
        return None;
    }
    let mut why = drift(s, plan, newest, created);
    why.extend(record_drift(s, plan, newest));
    if !why.is_empty() {
        for d in &why {
            out.step(&format!("Due although min-age is not reached: {d}"));
        }
        return None;
    }
    Some(format!(
        "Not due: the newest managed token `{}` (id {}) is {} old, min-age is {}; no rotation (use force to rotate anyway)",
        newest.name,
        newest.id,
        human(age),
        humantime::format_duration(min_age)
    ))
}

/// Why each target that shows it does not hold the newest managed token needs the rotation.
fn drift(s: &Settings, plan: &Plan, newest: &TokenInfo, created: OffsetDateTime) -> Vec<String> {
    s.targets
        .iter()
        .zip(&plan.holdings)
        .filter_map(|(t, h)| match h.as_ref()? {
            Holding::Missing => Some(format!("{} holds no value yet", t.label)),
            Holding::Sealed {
                updated_at: Some(u),
            } if u.unix_timestamp() < created.unix_timestamp() => Some(format!(
                "{} was last updated {}, before the newest managed token `{}` (id {}) was created {}",
                t.label,
                lifecycle::when(*u),
                newest.name,
                newest.id,
                lifecycle::when(created)
            )),
            Holding::Sealed { .. } => None,
            Holding::Token(id) if *id == newest.id => None,
            Holding::Token(id) => Some(format!(
                "{} holds token id {id}, not the newest managed token `{}` (id {})",
                t.label, newest.name, newest.id
            )),
            Holding::Other => Some(format!("{} holds a value that is not a Seqera token", t.label)),
        })
        .collect()
}

/// Why the record says the targets may not all hold the newest managed token.
fn record_drift(s: &Settings, plan: &Plan, newest: &TokenInfo) -> Option<String> {
    let r = plan.record.record()?;
    if !plan.live.contains(&r.token_id) {
        Some(format!(
            "the record says the targets hold `{}` (id {}), which is no longer live",
            r.token_name, r.token_id
        ))
    } else if r.token_id < newest.id {
        Some(format!(
            "the record names `{}` (id {}), older than the newest managed token `{}` (id {}): a run did not finish",
            r.token_name, r.token_id, newest.name, newest.id
        ))
    } else if !r.covers(&s.targets) {
        Some(format!(
            "the targets changed since the record was written ({} then, {} now)",
            r.count,
            s.targets.len()
        ))
    } else {
        None
    }
}

/// Step 3, not due: retire the superseded tokens whose grace period is over, with the access
/// token, revoking the access token itself last if it is one of them. A dry run only says so.
async fn retire_not_due(s: &Settings, c: &Clients, plan: &Plan, out: &Report, o: &mut Outcome) {
    if !s.seqera.dry_run {
        o.not_due = true;
    }
    // The evidence that no target holds a token: the record, which names the token every
    // target held; only tokens older than it may go (SPEC §5, *The record*).
    let Some(anchor) = plan
        .record
        .record()
        .and_then(|r| plan.managed.iter().find(|t| t.id == r.token_id))
    else {
        if plan.managed.len() > 1 {
            out.step("No record of what the targets hold: superseded tokens are left live (a rotating run revokes them)");
        }
        return;
    };
    let now = OffsetDateTime::now_utc();
    let r = lifecycle::retirement(&s.seqera.token_name, anchor, &plan.managed, policy(s), now);
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
        out.step(&format!("  {}", c.stores.of(t).describe(t)));
    }
    for line in c.stores.plan(&s.targets) {
        out.step(&format!("  {line}"));
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

/// Step 6: write the new value to every target, at most `max-concurrency` writes at once;
/// each ends written, refused or unknown, from its store's evidence.
async fn store(s: &Settings, c: &Clients, new: &NewToken, out: &Report) -> Vec<TargetResult> {
    for line in c.stores.plan(&s.targets) {
        out.step(&line);
    }
    let pacer = c.stores.pacer();
    let run = run_key();
    let value = NewValue {
        value: &new.value,
        id: new.info.id,
        run: &run,
    };
    let value = &value;
    let (started, written) = (&AtomicUsize::new(0), &AtomicUsize::new(0));
    // Unordered, so a slow write never holds a slot; results go back to input order.
    let writes = stream::iter(s.targets.iter().enumerate())
        .map(|(i, t)| async move {
            started.fetch_add(1, Ordering::Relaxed);
            let outcome = c.stores.of(t).write(t, value).await;
            written.fetch_add(1, Ordering::Relaxed);
            match &outcome {
                WriteOutcome::Written { created: true } => out.step(&format!("Created {}", t.label)),
                WriteOutcome::Written { created: false } => {
                    out.step(&format!("Updated {}", t.label))
                }
                WriteOutcome::Unknown(e) => out.warning(&format!(
                    "No clear answer writing {}: {e}; it holds the new token or its previous one, so nothing is revoked",
                    t.label
                )),
                WriteOutcome::Refused(e) => out.error(&format!("Could not write {}: {e}", t.label)),
            }
            let result = TargetResult {
                label: t.label.clone(),
                outcome,
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

/// A key fixed for this run: with a target's label, a store's idempotency key for a write
/// that is retried (AWS's `ClientRequestToken`).
fn run_key() -> String {
    let n: u128 = rand::random();
    format!("{n:032x}")
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
