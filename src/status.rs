//! `status` (SPEC §6): a read-only health check for alerting, and the `--json` documents of
//! `list` and `status`. It makes preflight's reads (user-info, the token list, every
//! target's secret metadata) and nothing else; what is healthy is decided by [`assess`], a
//! pure function, and everything is shown through `report`.

use std::time::Duration;

use clap::ArgMatches;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::app::{settings_and_clients, Env, EXIT_FAILED, EXIT_OK};
use futures_util::stream::{self, StreamExt};

use crate::lifecycle::{self, Policy, Superseded, TargetState};
use crate::naming;
use crate::record::{self, Record};
use crate::report::Report;
use crate::rotate::{policy, seqera_hint, Clients};
use crate::seqera::TokenInfo;
use crate::settings::{Raw, TokenName};
use crate::store::github::READ_CONCURRENCY;
use crate::store::Holding;
use crate::text::{md_cell, md_code, Scrubber};

/// One target as `status` sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetHealth {
    /// The target's label (SPEC §4).
    pub label: String,
    /// Whether it holds the newest managed token.
    pub state: TargetState,
    /// The secret's last update, when known.
    pub updated_at: Option<OffsetDateTime>,
    /// The token id its value carries, for a store that can be read.
    pub token_id: Option<u64>,
}

/// What the record says, and whether its token is still live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHealth {
    /// The record.
    pub record: Record,
    /// Its token is still live.
    pub live: bool,
}

/// What `status` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// Every problem, one sentence each, naming the token or the target; the most
    /// critical first.
    pub problems: Vec<String>,
    /// The managed tokens, newest first.
    pub tokens: Vec<TokenInfo>,
    /// Per target, in input order.
    pub targets: Vec<TargetHealth>,
    /// Superseded tokens still in their grace period.
    pub retiring: Vec<Superseded>,
    /// Superseded tokens whose time has come but that are still live.
    pub overdue_revocations: Vec<Superseded>,
    /// The record, when there is one.
    pub record: Option<RecordHealth>,
}

impl Health {
    /// No problem found.
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One target as read: its label and what it holds (`Err`: cannot be told, and why).
pub type TargetRead<'a> = (&'a str, Result<Holding, String>);

/// Decides health from what was read. `tokens` is None when the token list could not be
/// read (the reason is already a problem, passed in `problems`); `covered`: the record
/// speaks of exactly these targets.
#[allow(clippy::too_many_arguments)]
pub fn assess(
    base: &TokenName,
    tokens: Option<&[TokenInfo]>,
    targets: Vec<TargetRead<'_>>,
    record: Option<(&Record, bool)>,
    policy: Policy,
    max_age: Option<Duration>,
    now: OffsetDateTime,
    mut problems: Vec<String>,
) -> Health {
    let managed = tokens.map(|t| naming::managed(base, t)).unwrap_or_default();
    let newest = managed.first();
    let created = newest.and_then(|t| naming::created_at(base, t));
    let live = |id: u64| tokens.is_some_and(|t| t.iter().any(|t| t.id == id));
    let mut h = Health::default();
    if let (Some((r, covered)), Some(_)) = (record, tokens) {
        let is_live = live(r.token_id);
        h.record = Some(RecordHealth {
            record: r.clone(),
            live: is_live,
        });
        if !is_live {
            // The targets hold a dead token: every consumer fails. The worst there is.
            problems.insert(0, format!(
                "critical: the record says every target holds `{}` (id {}), which is revoked or gone: the targets hold a dead token; run the rotation now (force: true)",
                r.token_name, r.token_id
            ));
        } else if let Some(n) = newest.filter(|n| n.id > r.token_id) {
            problems.push(format!(
                "the newest managed token `{}` (id {}) is not in the record, which names `{}` (id {}): the last rotation did not finish; the next run is due and repairs it",
                n.name, n.id, r.token_name, r.token_id
            ));
        }
        if !covered {
            problems.push(format!(
                "the targets changed since the record was written ({} target(s) then, {} now): the new ones may hold another token; the next run is due",
                r.count,
                targets.len()
            ));
        }
    }
    match (tokens, newest) {
        (None, _) => {}
        (Some(_), None) => problems.push(format!(
            "no managed token of `{}` exists: no rotation has run yet, or every managed token was revoked",
            base.as_str()
        )),
        (Some(_), Some(n)) => {
            if let (Some(max), Some(c)) = (max_age, created) {
                let age = now - c;
                if age > time::Duration::try_from(max).unwrap_or(time::Duration::MAX) {
                    problems.push(format!(
                        "overdue: the newest managed token `{}` (id {}) is {} old, more than max-age {}; the rotation has stopped (is the scheduled workflow disabled or failing?)",
                        n.name,
                        n.id,
                        lifecycle::span(age),
                        humantime::format_duration(max)
                    ));
                }
            }
            let r = lifecycle::retirement(base, n, &managed, policy, now);
            for v in &r.revoke {
                let due = v.goes_at.map(lifecycle::when).unwrap_or_else(|| "already".into());
                problems.push(format!(
                    "token `{}` (id {}) is still live past its time (due to be revoked {}, after `{}` (id {}) replaced it); the next rotation run revokes it",
                    v.token.name, v.token.id, due, v.successor.name, v.successor.id
                ));
            }
            h.retiring = r.retiring;
            h.overdue_revocations = r.revoke;
        }
    }
    // A target that shows nothing (a hidden variable) is judged by the record alone.
    let record_current = record.is_some_and(|(r, covered)| {
        covered && live(r.token_id) && newest.is_some_and(|n| n.id == r.token_id)
    });
    for (label, read) in targets {
        let mut t = TargetHealth {
            label: label.to_string(),
            state: TargetState::Unknown,
            updated_at: None,
            token_id: None,
        };
        let problem = match read {
            Err(e) => Some(format!("target {label} is unknown: {e}")),
            Ok(Holding::Missing) => {
                t.state = TargetState::Missing;
                Some(format!("target {label} is missing: it holds no value"))
            }
            Ok(Holding::Sealed { updated_at: None }) => {
                if record_current {
                    t.state = TargetState::Current;
                }
                None
            }
            Ok(Holding::Sealed {
                updated_at: Some(u),
            }) => {
                t.updated_at = Some(u);
                match (newest, created) {
                    (Some(n), Some(c)) if u.unix_timestamp() < c.unix_timestamp() => {
                        t.state = TargetState::Stale;
                        Some(format!(
                            "target {label} is stale: it was last updated {}, before the newest managed token `{}` (id {}) was created {}",
                            lifecycle::when(u),
                            n.name,
                            n.id,
                            lifecycle::when(c)
                        ))
                    }
                    (Some(_), Some(_)) => {
                        t.state = TargetState::Current;
                        None
                    }
                    // No managed token (or no token list) to compare with: already a problem.
                    (None, _) => None,
                    (Some(_), None) => Some(format!(
                        "target {label} is unknown: the newest managed token has no creation time to compare with"
                    )),
                }
            }
            Ok(Holding::Token(id)) => {
                t.token_id = Some(id);
                match newest {
                    _ if tokens.is_some() && !live(id) => {
                        t.state = TargetState::Stale;
                        problems.insert(0, format!(
                            "critical: target {label} holds token id {id}, which is revoked or gone; run the rotation now (force: true)"
                        ));
                        None
                    }
                    Some(n) if n.id == id => {
                        t.state = TargetState::Current;
                        None
                    }
                    Some(n) => {
                        t.state = TargetState::Stale;
                        Some(format!(
                            "target {label} is stale: it holds token id {id}, not the newest managed token `{}` (id {})",
                            n.name, n.id
                        ))
                    }
                    None => None,
                }
            }
            Ok(Holding::Other) => {
                t.state = TargetState::Stale;
                Some(format!(
                    "target {label} is stale: it holds a value that is not a Seqera token"
                ))
            }
        };
        problems.extend(problem);
        h.targets.push(t);
    }
    h.problems = problems;
    h.tokens = managed;
    h
}

fn rfc3339(t: Option<OffsetDateTime>) -> Value {
    t.and_then(|t| {
        t.to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map_or(Value::Null, Value::String)
}

/// A token as `list --json` shows it (never a value: Seqera's list has none).
fn token_json(base: &TokenName, t: &TokenInfo) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "dateCreated": rfc3339(naming::created_at(base, t)),
        "lastUsed": rfc3339(t.last_used),
    })
}

/// `list --json`: `{"tokens":[{"id","name","dateCreated","lastUsed"}]}`, newest first.
pub fn list_json(base: &TokenName, managed: &[TokenInfo]) -> Value {
    json!({ "tokens": managed.iter().map(|t| token_json(base, t)).collect::<Vec<_>>() })
}

/// `status --json` (SPEC §6).
pub fn status_json(base: &TokenName, h: &Health) -> Value {
    json!({
        "healthy": h.healthy(),
        "problems": h.problems,
        "tokens": h.tokens.iter().map(|t| token_json(base, t)).collect::<Vec<_>>(),
        "targets": h.targets.iter().map(|t| {
            let mut v = json!({
                "label": t.label,
                "state": t.state.as_str(),
                "updatedAt": rfc3339(t.updated_at),
            });
            if let Some(id) = t.token_id {
                v["tokenId"] = id.into();
            }
            v
        }).collect::<Vec<_>>(),
        "record": h.record.as_ref().map_or(Value::Null, |r| json!({
            "tokenId": r.record.token_id,
            "at": r.record.at,
            "live": r.live,
        })),
    })
}

/// The outputs of `status`: `healthy` and `problems` (one per line).
pub fn outputs(h: &Health) -> Vec<(&'static str, String)> {
    vec![
        ("healthy", h.healthy().to_string()),
        ("problems", h.problems.join("\n")),
    ]
}

/// The longest outside text in a summary cell.
const MAX_CELL: usize = 300;

/// What a managed token is, for the tables.
fn role(h: &Health, t: &TokenInfo, i: usize) -> String {
    if i == 0 {
        return "newest".into();
    }
    if let Some(v) = h.retiring.iter().find(|v| v.token.id == t.id) {
        return format!(
            "retiring until {}",
            v.goes_at.map(lifecycle::when).unwrap_or_default()
        );
    }
    if h.overdue_revocations.iter().any(|v| v.token.id == t.id) {
        return "past its time".into();
    }
    "kept (keep-previous)".into()
}

/// The job summary: verdict, problems, tokens and targets.
pub fn summary(base: &TokenName, h: &Health, now: OffsetDateTime, scrubber: &Scrubber) -> String {
    let cell = |t: &str| md_cell(scrubber, t, MAX_CELL);
    let code = |t: &str| md_code(scrubber, t, MAX_CELL);
    let mut m = format!(
        "### Seqera token status: {}\n\n",
        if h.healthy() {
            "✅ healthy"
        } else {
            "❌ unhealthy"
        }
    );
    for p in &h.problems {
        m.push_str(&format!("- ❌ {}\n", cell(p)));
    }
    if !h.problems.is_empty() {
        m.push('\n');
    }
    m.push_str("| Token | Id | Created | Age | Last used | State |\n|---|---|---|---|---|---|\n");
    for (i, t) in h.tokens.iter().enumerate() {
        let created = naming::created_at(base, t);
        m.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            code(&t.name),
            t.id,
            created.map(lifecycle::when).unwrap_or_default(),
            created
                .map(|c| lifecycle::span(now - c))
                .unwrap_or_default(),
            lifecycle::last_use(t.last_used),
            role(h, t, i)
        ));
    }
    m.push_str("\n| Target | State | Updated | Token id |\n|---|---|---|---|\n");
    for t in &h.targets {
        m.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            code(&t.label),
            t.state.as_str(),
            t.updated_at
                .map(lifecycle::when)
                .unwrap_or_else(|| "—".into()),
            t.token_id.map_or_else(|| "—".into(), |id| id.to_string())
        ));
    }
    match &h.record {
        Some(r) => m.push_str(&format!(
            "\nRecord: every target held {} (id {}) at {}; {}\n",
            code(&r.record.token_name),
            r.record.token_id,
            cell(&r.record.at),
            if r.live {
                "still live"
            } else {
                "**revoked or gone**"
            }
        )),
        None => m.push_str("\nNo record of which token the targets hold.\n"),
    }
    m
}

/// The `status` command: exit 0 healthy, 1 unhealthy, 2 invalid settings.
pub async fn run(raw: &Raw, sub: &ArgMatches, env: Env<'_>, out: &Report) -> u8 {
    let as_json = sub.get_flag("json");
    let (s, Clients { seqera, stores }) = match settings_and_clients(raw, env, out) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let seqera_reads = async {
        let (user, tokens) = tokio::join!(seqera.user_info(), seqera.list_tokens());
        let user = user
            .map_err(|e| format!("the Seqera access token does not work: {}", seqera_hint(&e)))?;
        let tokens = tokens
            .map_err(|e| format!("the Seqera token list cannot be read: {}", seqera_hint(&e)))?;
        Ok::<_, String>((user, tokens))
    };
    let holdings = stream::iter(s.targets.iter().map(|t| stores.of(t).inspect(t)))
        .buffered(READ_CONCURRENCY)
        .collect::<Vec<_>>();
    let place = s.record();
    let rec = record::load(stores.github.client(), place.as_ref());
    let (seqera_reads, holdings, rec) = tokio::join!(seqera_reads, holdings, rec);
    let mut problems = Vec::new();
    let tokens = match seqera_reads {
        Ok((user, tokens)) => {
            out.step(&format!(
                "Seqera user {} (id {}): the access token works",
                user.user.user_name, user.user.id
            ));
            Some(tokens)
        }
        Err(e) => {
            problems.push(e);
            None
        }
    };
    match &rec {
        record::Loaded::Off => {
            out.step("No record is kept (state-variable: none, or no repository)")
        }
        record::Loaded::Unavailable(w) | record::Loaded::Foreign(w) => out.step(w),
        record::Loaded::Absent => out.step("No record yet: no rotation has written every target"),
        record::Loaded::Found(_) => {}
    }
    let reads = s
        .targets
        .iter()
        .zip(holdings)
        .map(|(t, h)| (t.label.as_str(), h))
        .collect();
    let record = rec.record().map(|r| (r, r.covers(&s.targets)));
    let now = OffsetDateTime::now_utc();
    let base = &s.seqera.token_name;
    let h = assess(
        base,
        tokens.as_deref(),
        reads,
        record,
        policy(&s),
        s.max_age,
        now,
        problems,
    );
    show(base, &h, now, as_json, out);
    for p in &h.problems {
        out.error(p);
    }
    // With --json on a terminal stdout holds the document only.
    let outputs_ok = if as_json && !out.writes_output_file() {
        Ok(())
    } else {
        out.outputs(&outputs(&h), None)
    };
    if let Err(e) = &outputs_ok {
        out.error(&format!(
            "could not write the step outputs to GITHUB_OUTPUT ({e}); later steps will not see them"
        ));
    }
    if let Err(e) = out.summary(&summary(base, &h, now, out.scrubber())) {
        out.warning(&format!("could not write the job summary: {e}"));
    }
    if h.healthy() && outputs_ok.is_ok() {
        out.step("Healthy: every target holds the newest managed token.");
        EXIT_OK
    } else {
        if !h.healthy() {
            out.step(&format!("Unhealthy: {} problem(s).", h.problems.len()));
        }
        EXIT_FAILED
    }
}

fn show(base: &TokenName, h: &Health, now: OffsetDateTime, as_json: bool, out: &Report) {
    if as_json {
        out.json(&status_json(base, h));
        return;
    }
    for (i, t) in h.tokens.iter().enumerate() {
        let created = naming::created_at(base, t);
        out.step(&format!(
            "Token `{}` (id {}): created {} ({} ago), last used {}; {}",
            t.name,
            t.id,
            created.map(lifecycle::when).unwrap_or_else(|| "?".into()),
            created
                .map(|c| lifecycle::span(now - c))
                .unwrap_or_else(|| "?".into()),
            lifecycle::last_use(t.last_used),
            role(h, t, i)
        ));
    }
    for t in &h.targets {
        out.step(&format!(
            "Target {}: {}{}{}",
            t.label,
            t.state.as_str(),
            t.updated_at
                .map(|u| format!(" (updated {})", lifecycle::when(u)))
                .unwrap_or_default(),
            t.token_id
                .map(|id| format!(" (holds token id {id})"))
                .unwrap_or_default()
        ));
    }
    if let Some(r) = &h.record {
        out.step(&format!(
            "Record: every target held `{}` (id {}) at {}; {}",
            r.record.token_name,
            r.record.token_id,
            r.record.at,
            if r.live {
                "still live"
            } else {
                "REVOKED OR GONE"
            }
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-10 00:00:00 UTC);
    const H: Duration = Duration::from_secs(3600);

    fn base() -> TokenName {
        TokenName::parse("ci").unwrap()
    }

    fn tok(id: u64, created: OffsetDateTime) -> TokenInfo {
        TokenInfo {
            id,
            name: naming::stamped(&base(), created),
            date_created: Some(created),
            last_used: None,
        }
    }

    fn meta(at: OffsetDateTime) -> Result<Holding, String> {
        Ok(Holding::Sealed {
            updated_at: Some(at),
        })
    }

    fn record(token: &TokenInfo, labels: &str) -> Record {
        let default = crate::target::SecretName::parse("S").unwrap();
        let targets = crate::target::parse_targets(labels, &default).unwrap();
        Record::new(token, &targets, NOW)
    }

    fn grace(h: u64) -> Policy {
        Policy {
            keep: 0,
            grace: H * h as u32,
        }
    }

    #[test]
    fn healthy_with_a_retiring_token_in_its_grace_period() {
        let tokens = [
            tok(20, NOW - time::Duration::hours(1)),
            tok(10, NOW - time::Duration::days(7)),
        ];
        let h = assess(
            &base(),
            Some(&tokens),
            vec![("repo:o/a", meta(NOW))],
            None,
            grace(6),
            Some(8 * 24 * H),
            NOW,
            vec![],
        );
        assert!(h.healthy(), "{:?}", h.problems);
        assert_eq!(h.retiring[0].token.id, 10);
        assert_eq!(h.targets[0].state, TargetState::Current);
    }

    #[test]
    fn every_problem_names_its_token_or_target() {
        let newest = tok(20, NOW - time::Duration::days(9));
        let tokens = [newest.clone(), tok(10, NOW - time::Duration::days(16))];
        let h = assess(
            &base(),
            Some(&tokens),
            vec![
                ("repo:o/a", meta(NOW - time::Duration::days(10))),
                ("repo:o/b", Ok(Holding::Missing)),
                ("repo:o/c", Err("HTTP 403".into())),
                ("repo:o/d", meta(NOW)),
            ],
            None,
            grace(6),
            Some(8 * 24 * H),
            NOW,
            vec![],
        );
        let p = h.problems.join("\n");
        assert_eq!(h.problems.len(), 5, "{p}");
        assert!(p.contains("overdue") && p.contains(&newest.name), "{p}");
        assert!(p.contains("repo:o/a is stale"), "{p}");
        assert!(p.contains("repo:o/b is missing"), "{p}");
        assert!(
            p.contains("repo:o/c is unknown") && p.contains("HTTP 403"),
            "{p}"
        );
        assert!(p.contains("id 10") && p.contains("past its time"), "{p}");
        let j = status_json(&base(), &h);
        assert_eq!(j["healthy"], false);
        assert_eq!(j["targets"][1]["state"], "missing");
        assert_eq!(j["targets"][1]["updatedAt"], Value::Null);
        assert_eq!(j["tokens"][0]["id"], 20);
    }

    #[test]
    fn no_managed_token_and_no_token_list() {
        let h = assess(
            &base(),
            Some(&[]),
            vec![("repo:o/a", meta(NOW))],
            None,
            grace(0),
            None,
            NOW,
            vec![],
        );
        assert_eq!(h.problems.len(), 1, "{:?}", h.problems);
        assert!(h.problems[0].contains("no managed token"));
        let h = assess(
            &base(),
            None,
            vec![("repo:o/a", Ok(Holding::Missing))],
            None,
            grace(0),
            None,
            NOW,
            vec!["the Seqera access token does not work".into()],
        );
        assert_eq!(h.problems.len(), 2, "{:?}", h.problems);
        assert_eq!(outputs(&h)[1].1.lines().count(), 2);
    }

    // Issue 15: the record is what status trusts; a dead recorded token is the worst problem.
    #[test]
    fn a_dead_recorded_token_is_the_first_and_critical_problem() {
        let newest = tok(20, NOW - time::Duration::hours(1));
        let dead = tok(15, NOW - time::Duration::hours(2));
        let tokens = [newest.clone()];
        let r = record(&dead, "repo:o/a");
        let h = assess(
            &base(),
            Some(&tokens),
            vec![("repo:o/a", meta(NOW))],
            Some((&r, true)),
            grace(0),
            None,
            NOW,
            vec![],
        );
        assert!(h.problems[0].starts_with("critical:"), "{:?}", h.problems);
        assert!(h.problems[0].contains("id 15"), "{:?}", h.problems);
        assert_eq!(status_json(&base(), &h)["record"]["live"], false);
        // The same record naming the live newest token, covering the targets: healthy.
        let r = record(&newest, "repo:o/a");
        let h = assess(
            &base(),
            Some(&tokens),
            vec![
                ("repo:o/a", meta(NOW)),
                ("gitlab:g/p", Ok(Holding::Sealed { updated_at: None })),
            ],
            Some((&r, true)),
            grace(0),
            None,
            NOW,
            vec![],
        );
        assert!(h.healthy(), "{:?}", h.problems);
        assert_eq!(h.targets[1].state, TargetState::Current);
        assert_eq!(status_json(&base(), &h)["record"]["tokenId"], 20);
    }

    #[test]
    fn a_record_behind_the_newest_token_or_other_targets_is_a_problem() {
        let newest = tok(20, NOW - time::Duration::hours(1));
        let older = tok(10, NOW - time::Duration::days(2));
        let tokens = [newest.clone(), older.clone()];
        let r = record(&older, "repo:o/a");
        let h = assess(
            &base(),
            Some(&tokens),
            vec![("repo:o/a", meta(NOW))],
            Some((&r, false)),
            grace(6),
            None,
            NOW,
            vec![],
        );
        let p = h.problems.join("\n");
        assert!(
            p.contains("not in the record") && p.contains("did not finish"),
            "{p}"
        );
        assert!(p.contains("targets changed"), "{p}");
        // Without a record a hidden target is unknown, which is not a problem.
        let h = assess(
            &base(),
            Some(&tokens),
            vec![("gitlab:g/p", Ok(Holding::Sealed { updated_at: None }))],
            None,
            grace(6),
            None,
            NOW,
            vec![],
        );
        assert_eq!(h.targets[0].state, TargetState::Unknown);
        assert!(h.healthy(), "{:?}", h.problems);
    }

    #[test]
    fn a_readable_target_holding_a_revoked_token_is_critical() {
        let newest = tok(20, NOW - time::Duration::hours(1));
        let h = assess(
            &base(),
            Some(&[newest]),
            vec![("vault:kv/seqera", Ok(Holding::Token(7)))],
            None,
            grace(0),
            None,
            NOW,
            vec![],
        );
        assert!(h.problems[0].starts_with("critical:") && h.problems[0].contains("token id 7"));
        assert_eq!(status_json(&base(), &h)["targets"][0]["tokenId"], 7);
    }
}
