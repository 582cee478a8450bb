//! Managed tokens over months (SPEC §5 steps 3 and 7, §6): which superseded tokens are
//! revoked now and which stay live a while ("retiring", `grace-period`), and whether each
//! target still holds the newest managed token (drift). Pure functions of the token list,
//! the secrets' metadata and the clock, so every case is testable without a server.
//!
//! `keep-previous` × `grace-period`: the newest `keep-previous` superseded tokens stay live
//! regardless (a fixed overlap, as before); every older one follows the grace rule of SPEC
//! §5.7: it is revoked once the next newer managed token is at least `grace-period` old,
//! and is retiring until then. With `grace-period` 0 the rule is exactly the old one.

use std::time::Duration;

use time::OffsetDateTime;

use crate::github::SecretMeta;
use crate::naming;
use crate::seqera::TokenInfo;
use crate::settings::TokenName;

/// The two settings that decide how long superseded tokens live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// `keep-previous`: the newest superseded tokens left alive regardless.
    pub keep: usize,
    /// `grace-period`: how old a token's successor must be before the token goes.
    pub grace: Duration,
}

/// A managed token that a newer managed token replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superseded {
    /// The token.
    pub token: TokenInfo,
    /// The next newer managed token.
    pub successor: TokenInfo,
    /// When it may go: the successor's creation + grace (None: creation time unknown).
    pub goes_at: Option<OffsetDateTime>,
}

impl Superseded {
    /// The token's last use, when that was after its successor existed: a consumer that
    /// did not get the new value (compared in whole seconds, so the create call itself,
    /// made with the old token in the same second, does not count).
    pub fn used_after_successor(&self, base: &TokenName) -> Option<OffsetDateTime> {
        let used = self.token.last_used?;
        let created = naming::created_at(base, &self.successor)?;
        (used.unix_timestamp() > created.unix_timestamp()).then_some(used)
    }
}

/// What happens to the superseded managed tokens of one newest token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retirement {
    /// To revoke now, newest first.
    pub revoke: Vec<Superseded>,
    /// Still live because their successor is younger than `grace-period`, newest first.
    pub retiring: Vec<Superseded>,
    /// Kept by `keep-previous`, newest first.
    pub kept: Vec<TokenInfo>,
}

/// The last instant of the calendar: when a time past it is due, i.e. never.
pub const NEVER: OffsetDateTime = time::PrimitiveDateTime::MAX.assume_utc();

/// Sorts the managed tokens older than `newest` (`managed` newest first, as
/// [`naming::managed`] gives them) into revoke now / retiring / kept. Tokens newer than
/// `newest` (another run's) are never in any list. A successor whose creation time is
/// unknown (no `dateCreated`, no stamp) does not hold its predecessor back.
pub fn retirement(
    base: &TokenName,
    newest: &TokenInfo,
    managed: &[TokenInfo],
    policy: Policy,
    now: OffsetDateTime,
) -> Retirement {
    let grace = time::Duration::try_from(policy.grace).unwrap_or(time::Duration::MAX);
    let mut r = Retirement::default();
    let mut successor = newest;
    for (i, t) in managed.iter().filter(|t| t.id < newest.id).enumerate() {
        if i < policy.keep {
            r.kept.push(t.clone());
        } else {
            // Saturated: a time past the end of the calendar is never reached, so the token
            // stays (it was once revoked at once, issue 15 defect 6).
            let goes_at =
                naming::created_at(base, successor).map(|c| c.checked_add(grace).unwrap_or(NEVER));
            let s = Superseded {
                token: t.clone(),
                successor: successor.clone(),
                goes_at,
            };
            // Without a grace period nothing waits, whatever the two clocks say.
            if policy.grace.is_zero() || goes_at.is_none_or(|g| g <= now) {
                r.revoke.push(s);
            } else {
                r.retiring.push(s);
            }
        }
        successor = t;
    }
    r
}

/// Whether a target holds the newest managed token, from its secret's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// Updated at or after the newest managed token was created.
    Current,
    /// Updated before the newest managed token was created.
    Stale,
    /// The secret does not exist.
    Missing,
    /// The metadata could not be read, or there is no creation time to compare with.
    Unknown,
}

impl TargetState {
    /// The spelling of SPEC §6 (`status --json`).
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Current => "current",
            TargetState::Stale => "stale",
            TargetState::Missing => "missing",
            TargetState::Unknown => "unknown",
        }
    }
}

/// Drift (SPEC §5.3): `meta` is the secret's metadata (`Err`: unreadable, `Ok(None)`: no such
/// secret), `newest_created` the newest managed token's creation. Compared in whole
/// seconds, since GitHub's `updated_at` has no finer resolution.
pub fn target_state<E>(
    meta: Result<Option<&SecretMeta>, E>,
    newest_created: Option<OffsetDateTime>,
) -> TargetState {
    match (meta, newest_created) {
        (Err(_), _) => TargetState::Unknown,
        (Ok(None), _) => TargetState::Missing,
        (Ok(Some(_)), None) => TargetState::Unknown,
        (Ok(Some(m)), Some(c)) if m.updated_at.unix_timestamp() < c.unix_timestamp() => {
            TargetState::Stale
        }
        (Ok(Some(_)), Some(_)) => TargetState::Current,
    }
}

/// `YYYY-MM-DD HH:MM:SSZ`, for log lines and the summary.
pub fn when(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

/// `when`, or `never` for a token never used.
pub fn last_use(t: Option<OffsetDateTime>) -> String {
    t.map(when).unwrap_or_else(|| "never".into())
}

/// A whole-second span for humans, e.g. `6h 12m 3s`.
pub fn span(d: time::Duration) -> String {
    let secs = d.whole_seconds().max(0) as u64;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

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

    fn ids(v: &[Superseded]) -> Vec<u64> {
        v.iter().map(|s| s.token.id).collect()
    }

    fn policy(keep: usize, grace: Duration) -> Policy {
        Policy { keep, grace }
    }

    const T0: OffsetDateTime = datetime!(2026-03-01 00:00:00 UTC);

    /// Weekly tokens 10, 20, 30 (newest); 30 created at T0.
    fn weekly() -> Vec<TokenInfo> {
        let week = time::Duration::days(7);
        vec![tok(30, T0), tok(20, T0 - week), tok(10, T0 - week * 2)]
    }

    #[test]
    fn without_grace_everything_past_keep_goes() {
        let m = weekly();
        let r = retirement(&base(), &m[0], &m, policy(0, Duration::ZERO), T0);
        assert_eq!(ids(&r.revoke), [20, 10]);
        let r = retirement(&base(), &m[0], &m, policy(1, Duration::ZERO), T0);
        assert_eq!((ids(&r.revoke), r.kept[0].id), (vec![10], 20));
        // Even if the server's clock runs ahead of ours.
        let r = retirement(&base(), &m[0], &m, policy(0, Duration::ZERO), T0 - H);
        assert_eq!(ids(&r.revoke), [20, 10]);
    }

    #[test]
    fn grace_keeps_the_previous_until_its_successor_is_old_enough() {
        let m = weekly();
        let g = policy(0, 6 * H);
        // One hour after 30 was created: 20 is retiring until T0 + 6h; 10's successor
        // (20) is a week old, so 10 goes.
        let r = retirement(&base(), &m[0], &m, g, T0 + H);
        assert_eq!((ids(&r.revoke), ids(&r.retiring)), (vec![10], vec![20]));
        assert_eq!(r.retiring[0].goes_at, Some(T0 + 6 * H));
        assert_eq!(r.retiring[0].successor.id, 30);
        // Exactly at the time, and later: it goes.
        for at in [T0 + 6 * H, T0 + 7 * H] {
            let r = retirement(&base(), &m[0], &m, g, at);
            assert_eq!(ids(&r.revoke), [20, 10]);
            assert!(r.retiring.is_empty());
        }
    }

    #[test]
    fn keep_previous_is_kept_regardless_and_the_rest_follow_the_grace_rule() {
        let m = weekly();
        let r = retirement(&base(), &m[0], &m, policy(1, 6 * H), T0 + H);
        assert_eq!(r.kept.iter().map(|t| t.id).collect::<Vec<_>>(), [20]);
        // 10's successor is 20, a week old: 10 goes although 20 is kept.
        assert_eq!(ids(&r.revoke), [10]);
        // Right after a rotation that created 30 seconds ago, with a fresh 20 too.
        let fresh = vec![tok(30, T0), tok(20, T0 - H), tok(10, T0 - 2 * H)];
        let r = retirement(&base(), &fresh[0], &fresh, policy(1, 6 * H), T0);
        assert_eq!((r.kept[0].id, ids(&r.retiring)), (20, vec![10]));
        assert_eq!(r.retiring[0].goes_at, Some(T0 - H + 6 * H));
    }

    #[test]
    fn a_rotating_run_counts_from_its_new_token_and_never_touches_newer_ones() {
        let m = weekly();
        // This run created 25 (another run created 30 meanwhile).
        let new = tok(25, T0 + H);
        let r = retirement(&base(), &new, &m, policy(0, 6 * H), T0 + H);
        assert_eq!((ids(&r.retiring), ids(&r.revoke)), (vec![20], vec![10]));
        assert_eq!(r.retiring[0].goes_at, Some(T0 + 7 * H));
    }

    #[test]
    fn unknown_successor_creation_does_not_hold_a_token_back() {
        let adopted = TokenInfo {
            id: 30,
            name: "ci".into(),
            date_created: None,
            last_used: None,
        };
        let m = vec![adopted.clone(), tok(20, T0)];
        let r = retirement(&base(), &adopted, &m, policy(0, 6 * H), T0);
        assert_eq!(ids(&r.revoke), [20]);
        assert_eq!(r.revoke[0].goes_at, None);
    }

    // Issue 15, defect 6: a grace period that ends past the calendar (`9000y`, or a
    // successor created near year 9999) revoked the token at once instead of keeping it.
    #[test]
    fn a_grace_period_past_the_calendar_keeps_the_token() {
        let year = Duration::from_secs(31_557_600);
        let m = weekly();
        for grace in [9000 * year, Duration::MAX, Duration::from_secs(u64::MAX)] {
            let r = retirement(&base(), &m[0], &m, policy(0, grace), T0 + H);
            assert_eq!(ids(&r.retiring), [20, 10], "{grace:?}");
            assert!(r.revoke.is_empty(), "{grace:?}");
            assert_eq!(r.retiring[0].goes_at, Some(NEVER));
        }
        // A successor created in the last hours of year 9999, with a 6 h grace.
        let end = datetime!(9999-12-31 20:00:00 UTC);
        let late = vec![tok(30, end), tok(20, end - H)];
        let r = retirement(&base(), &late[0], &late, policy(0, 6 * H), end + H);
        assert_eq!((ids(&r.retiring), ids(&r.revoke)), (vec![20], vec![]));
        // Within the calendar the time still comes.
        let r = retirement(&base(), &late[0], &late, policy(0, 3 * H), end + 3 * H);
        assert_eq!(ids(&r.revoke), [20]);
    }

    #[test]
    fn use_after_the_successor_existed_is_noticed() {
        let m = weekly();
        let r = retirement(&base(), &m[0], &m, policy(0, Duration::ZERO), T0 + 7 * H);
        let mut s = r.revoke[0].clone();
        assert_eq!(s.used_after_successor(&base()), None);
        s.token.last_used = Some(T0 + time::Duration::milliseconds(400));
        assert_eq!(s.used_after_successor(&base()), None, "same second");
        s.token.last_used = Some(T0 + 2 * H);
        assert_eq!(s.used_after_successor(&base()), Some(T0 + 2 * H));
    }

    #[test]
    fn drift_in_whole_seconds() {
        let meta = |at| SecretMeta {
            updated_at: at,
            visibility: None,
        };
        let created = Some(datetime!(2026-03-01 00:00:00.700 UTC));
        let ok: Result<Option<&SecretMeta>, ()> = Ok(None);
        assert_eq!(target_state(ok, created), TargetState::Missing);
        assert_eq!(
            target_state(Err::<Option<&SecretMeta>, _>(()), created),
            TargetState::Unknown
        );
        let same = meta(datetime!(2026-03-01 00:00:00 UTC));
        assert_eq!(
            target_state::<()>(Ok(Some(&same)), created),
            TargetState::Current
        );
        let before = meta(datetime!(2026-02-28 23:59:59 UTC));
        assert_eq!(
            target_state::<()>(Ok(Some(&before)), created),
            TargetState::Stale
        );
        assert_eq!(
            target_state::<()>(Ok(Some(&before)), None),
            TargetState::Unknown
        );
    }

    proptest! {
        /// Every superseded token lands in exactly one list; nothing newer than `newest`
        /// does; revoked ones are past their time (or there is no grace); retiring ones
        /// are not; `keep` is honoured.
        #[test]
        fn partition(ages in proptest::collection::vec(0i64..2_000_000, 1..12), newest_pos in 0usize..12, keep in 0usize..4, grace_h in 0u64..300, now_off in 0i64..2_000_000) {
            // Ids ascending with creation time; token i created ages-sorted.
            let mut ages = ages;
            ages.sort_unstable();
            let m: Vec<TokenInfo> = ages.iter().enumerate().rev()
                .map(|(i, a)| tok(i as u64 + 1, T0 + time::Duration::seconds(*a)))
                .collect();
            let newest = &m[newest_pos.min(m.len() - 1)];
            let now = T0 + time::Duration::seconds(now_off);
            let grace = Duration::from_secs(grace_h * 3600);
            let r = retirement(&base(), newest, &m, policy(keep, grace), now);
            let older = m.iter().filter(|t| t.id < newest.id).count();
            prop_assert_eq!(r.kept.len() + r.revoke.len() + r.retiring.len(), older);
            prop_assert_eq!(r.kept.len(), keep.min(older));
            for s in r.revoke.iter().chain(&r.retiring) {
                prop_assert!(s.token.id < newest.id && s.successor.id > s.token.id);
            }
            for s in &r.revoke {
                prop_assert!(grace.is_zero() || s.goes_at.unwrap() <= now);
            }
            for s in &r.retiring {
                prop_assert!(s.goes_at.unwrap() > now);
            }
        }
    }
}
