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

use crate::github::{GithubClient, GithubError, OrgWrite, Written};
use crate::naming;
use crate::pace;
use crate::report::Report;
use crate::seal::{seal, PublicKey};
use crate::seqera::{NewToken, SeqeraClient, SeqeraError, TokenInfo, User};
use crate::settings::{Settings, Visibility};
use crate::target::{Scope, Target};

/// Seqera tokens revoked at once (Seqera allows about 20 requests/s per token).
const REVOKE_CONCURRENCY: usize = 4;
/// Revocation starts at least this far apart: at most 20 per second.
const REVOKE_SPACING: Duration = Duration::from_millis(50);
/// Public keys read at once: reads, so not bound by `max-concurrency` (which is for writes).
const KEY_READ_CONCURRENCY: usize = 8;

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
}

/// How one target's write ended.
#[derive(Debug)]
pub struct TargetResult {
    /// The target's label.
    pub label: String,
    /// Created / updated, or why not.
    pub result: Result<Written, String>,
    /// Failed without a clear answer: GitHub may have stored the value anyway.
    pub maybe_written: bool,
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
    /// Step 6, some failed: nothing revoked.
    #[error("{failed} of {total} targets could not be written ({labels}); nothing was revoked, so every target holds a valid token (the new one or its previous one). Fix the cause and run again: the next run writes all targets and revokes the old tokens")]
    StorePartial {
        /// How many failed.
        failed: usize,
        /// Of how many.
        total: usize,
        /// Their labels.
        labels: String,
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
    if let Some(reason) = decide(s, &plan) {
        out.step(&reason);
        o.skipped = Some(reason);
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
    o.targets = store(s, c, plan, &new, out).await;
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
        let e = RotateError::StorePartial {
            failed: failed.len(),
            total: o.targets.len(),
            labels: failed.join(", "),
        };
        return (o.fail(e), Some(new));
    }
    let (revoked, errors) = revoke_older(s, &new_client, plan, &new, out).await;
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
    let mut scopes: Vec<&Scope> = Vec::new();
    for t in &s.targets {
        if !scopes.contains(&&t.scope) {
            scopes.push(&t.scope);
        }
    }
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
        .buffer_unordered(KEY_READ_CONCURRENCY)
        .collect::<Vec<_>>();
    let org = org_access(s, &c.github);
    let (seqera, keys, org) = tokio::join!(seqera, keys, org);
    let (user, tokens) = seqera.map_err(RotateError::Preflight)?;
    let keys = keys
        .into_iter()
        .collect::<Result<HashMap<_, _>, _>>()
        .map_err(RotateError::Preflight)?;
    let org = org.map_err(RotateError::Preflight)?;
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
    })
}

fn seqera_hint(e: &SeqeraError) -> String {
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
        let Scope::Org { org } = &t.scope else {
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
                    .buffered(s.max_concurrency)
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
                .org_secret_visibility(&t.scope, t.secret_name.as_str())
                .await
                .map_err(ctx)?
            {
                Some(v) if v == "selected" => {
                    let ids = gh
                        .org_secret_repository_ids(&t.scope, t.secret_name.as_str())
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

/// Step 3: not due yet? (`min-age` without `force`).
fn decide(s: &Settings, plan: &Plan) -> Option<String> {
    let min_age = s.min_age?;
    if s.force {
        return None;
    }
    let newest = plan.managed.first()?;
    let created = naming::created_at(&s.seqera.token_name, newest)?;
    let age = OffsetDateTime::now_utc() - created;
    let min = time::Duration::try_from(min_age).ok()?;
    (age < min).then(|| {
        format!(
            "Not due: the newest managed token `{}` (id {}) is {} old, min-age is {}; nothing changed (use force to rotate anyway)",
            newest.name,
            newest.id,
            human(age),
            humantime::format_duration(min_age)
        )
    })
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
            t.secret_name, t.label
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
    let revoke = naming::to_revoke(&plan.managed, u64::MAX, s.keep_previous);
    if revoke.is_empty() {
        out.step("  revoke nothing");
    }
    for t in revoke {
        out.step(&format!("  revoke token `{}` (id {})", t.name, t.id));
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
                return Ok(new);
            }
            Err(SeqeraError::NameTaken) => {
                taken.insert(name);
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
            let result = write_one(c, t, plan.keys[&t.scope].clone(), plan.org.get(&i), new).await;
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

async fn write_one(
    c: &Clients,
    t: &Target,
    mut key: PublicKey,
    org: Option<&OrgWrite>,
    new: &NewToken,
) -> Result<Written, GithubError> {
    let name = t.secret_name.as_str();
    let mut refetched = false;
    loop {
        let sealed = seal(new.value.expose_secret().as_bytes(), &key);
        match c
            .github
            .put_secret(&t.scope, name, &sealed, &key.key_id, org)
            .await
        {
            Err(GithubError::KeyRejected(_)) if !refetched => {
                refetched = true;
                key = c.github.public_key(&t.scope).await?;
            }
            other => return other,
        }
    }
}

/// Step 7: revoke the managed tokens older than the new one, except the newest
/// `keep-previous`, authenticating with the new token. Returns revoked ids and failures.
async fn revoke_older(
    s: &Settings,
    new_client: &SeqeraClient,
    plan: &Plan,
    new: &NewToken,
    out: &Report,
) -> (Vec<u64>, Vec<String>) {
    let victims = naming::to_revoke(&plan.managed, new.info.id, s.keep_previous);
    let kept = plan.managed.iter().filter(|t| t.id < new.info.id).count() - victims.len();
    if kept > 0 {
        out.step(&format!(
            "Keeping {kept} previous token(s) alive (keep-previous)"
        ));
    }
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
