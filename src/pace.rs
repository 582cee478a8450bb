//! Pacing of GitHub secret writes to GitHub's documented content-creation limits (SPEC §5
//! "Retries"): at most 80 in any 60 s and 500 in any hour, bursts allowed within them. One
//! [`Pacer`] is shared by every write of a run, retries included, so a large fan-out never
//! draws a secondary rate limit. Also the plan around it: how long N writes take (the same
//! closed form the pacer achieves), progress lines, and where one organization secret would
//! need fewer writes. Runs on `tokio::time`, so tests drive it on the paused clock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::target::{Scope, Target};

/// At most `limit` writes in any `length` of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Writes allowed in one window.
    pub limit: usize,
    /// The window's length.
    pub length: Duration,
}

/// The longest window (and guard) [`Limits::new`] takes.
pub const MAX_WINDOW: Duration = Duration::from_secs(86_400);
/// The most writes in one window [`Limits::new`] takes.
pub const MAX_LIMIT: usize = 1_000_000;

/// The two sliding windows a run's writes must fit, and the margin added to both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// GitHub: 80 a minute.
    pub short: Window,
    /// GitHub: 500 an hour.
    pub long: Window,
    /// Added to both window lengths: two writes one window apart leave here exactly one
    /// window apart, but network jitter could make them arrive closer together.
    pub guard: Duration,
}

impl Default for Limits {
    /// GitHub's documented limits, with a 1 s guard (under 2 % of the minute).
    fn default() -> Self {
        Self {
            short: Window {
                limit: 80,
                length: Duration::from_secs(60),
            },
            long: Window {
                limit: 500,
                length: Duration::from_secs(3600),
            },
            guard: Duration::from_secs(1),
        }
    }
}

impl Limits {
    /// Checked limits: both limits at least 1, the long window holding at least as many
    /// writes as the short one and at least as long as all the short bursts it holds (so
    /// [`Limits::earliest`] is exact).
    ///
    /// Bounded, so that no sum or product of them can overflow (a panic is a bug, even for
    /// test-only limits): windows of at most [`MAX_WINDOW`], a guard of at most
    /// [`MAX_WINDOW`], at most [`MAX_LIMIT`] writes in a window.
    pub fn new(short: Window, long: Window, guard: Duration) -> Result<Self, String> {
        let l = Self { short, long, guard };
        if short.limit == 0 || long.limit < short.limit {
            return Err("window limits must be at least 1, the long one at least the short".into());
        }
        if long.limit > MAX_LIMIT
            || [short.length, long.length, guard]
                .iter()
                .any(|d| *d > MAX_WINDOW)
        {
            return Err(
                "windows and the guard must be at most a day, limits at most a million".into(),
            );
        }
        let bursts = u32::try_from(long.limit.div_ceil(short.limit)).unwrap_or(u32::MAX);
        let all_bursts = l.spacing(short).checked_mul(bursts);
        if all_bursts.is_none_or(|d| d > l.spacing(long)) {
            return Err("the long window must hold all the short bursts it allows".into());
        }
        Ok(l)
    }

    /// The same limits without the guard: what GitHub itself counts.
    pub fn unguarded(self) -> Self {
        Self {
            guard: Duration::ZERO,
            ..self
        }
    }

    fn spacing(&self, w: Window) -> Duration {
        w.length.saturating_add(self.guard)
    }

    /// The earliest time after the first of `n` writes at which the last can be sent (bursts
    /// allowed; zero when they all fit the short window). Write `i` (from 0) goes in long
    /// window `i / long.limit`, short burst `(i % long.limit) / short.limit` of it.
    pub fn earliest(&self, n: usize) -> Duration {
        let Some(i) = n.checked_sub(1) else {
            return Duration::ZERO;
        };
        let long = u32::try_from(i / self.long.limit.max(1)).unwrap_or(u32::MAX);
        let burst = u32::try_from((i % self.long.limit.max(1)) / self.short.limit.max(1))
            .unwrap_or(u32::MAX);
        let at = |w: Window, n: u32| self.spacing(w).checked_mul(n).unwrap_or(Duration::MAX);
        at(self.long, long).saturating_add(at(self.short, burst))
    }

    /// Test-only limits, `LIMIT/DURATION,LIMIT/DURATION[,+GUARD]` (e.g. `80/1s,500/60s,+150ms`),
    /// or `off` for none. `None` if the text is not that.
    pub fn parse_test(text: &str) -> Option<Option<Self>> {
        let text = text.trim();
        if text == "off" {
            return Some(None);
        }
        let mut parts = text.split(',').map(str::trim);
        let window = |p: Option<&str>| {
            let (limit, length) = p?.split_once('/')?;
            Some(Window {
                limit: limit.trim().parse().ok()?,
                length: humantime::parse_duration(length.trim()).ok()?,
            })
        };
        let short = window(parts.next())?;
        let long = window(parts.next())?;
        let guard = match parts.next() {
            None => Duration::ZERO,
            Some(g) => humantime::parse_duration(g.strip_prefix('+')?).ok()?,
        };
        if parts.next().is_some() {
            return None;
        }
        Self::new(short, long, guard).ok().map(Some)
    }
}

/// The send instants of a run's writes; [`Pacer::acquire`] waits until both windows have
/// room. Memory stays flat: at most `long.limit` instants are kept.
pub struct Pacer {
    limits: Option<Limits>,
    sent: Mutex<VecDeque<Instant>>,
}

impl Pacer {
    /// A pacer for `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits: Some(limits),
            sent: Mutex::new(VecDeque::with_capacity(limits.long.limit.min(1024))),
        }
    }

    /// A pacer that never waits (tests and benchmarks only).
    pub fn unlimited() -> Self {
        Self {
            limits: None,
            sent: Mutex::default(),
        }
    }

    /// The limits paced to, if any.
    pub fn limits(&self) -> Option<&Limits> {
        self.limits.as_ref()
    }

    /// Takes the earliest free slot in both windows and sleeps until it. Slots are handed out
    /// in call order, so a waiting write is never overtaken. Returns the time waited: zero
    /// while the writes fit the windows, with no await at all then.
    pub async fn acquire(&self) -> Duration {
        let Some(limits) = &self.limits else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let at = {
            let mut sent = self.sent.lock().expect("pacer lock");
            let at = next_slot(&sent, limits, now);
            sent.push_back(at);
            while sent.len() > limits.long.limit {
                sent.pop_front();
            }
            at
        };
        if at > now {
            tokio::time::sleep_until(at).await;
        }
        at - now
    }

    /// About how long until `n` more writes can all have been sent, from what was sent so far.
    pub fn time_for(&self, n: usize) -> Duration {
        let Some(limits) = &self.limits else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let mut sent = self.sent.lock().expect("pacer lock").clone();
        let mut last = now;
        for _ in 0..n {
            last = next_slot(&sent, limits, now);
            sent.push_back(last);
            if sent.len() > limits.long.limit {
                sent.pop_front();
            }
        }
        last - now
    }
}

/// The earliest instant at or after `now` (and after every slot handed out) at which one more
/// write leaves at most `limit` writes in every window of either kind.
fn next_slot(sent: &VecDeque<Instant>, limits: &Limits, now: Instant) -> Instant {
    let mut at = sent.back().map_or(now, |&last| last.max(now));
    for w in [limits.short, limits.long] {
        if let Some(&oldest) = sent.len().checked_sub(w.limit).and_then(|i| sent.get(i)) {
            at = at.max(oldest + limits.spacing(w));
        }
    }
    at
}

/// `about 2m 1s`, in whole seconds (at least "under a second").
pub fn about(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return "under a second".into();
    }
    format!(
        "about {}",
        humantime::format_duration(Duration::from_secs(d.as_secs_f64().round() as u64))
    )
}

/// The plan line of the store step and the dry run: how many writes, how long.
pub fn plan_line(writes: usize, pacer: &Pacer) -> String {
    let Some(l) = pacer.limits() else {
        return format!("{writes} secret write(s), not paced");
    };
    let per = |d: Duration| match d.as_secs() {
        60 if d.subsec_nanos() == 0 => "a minute".to_string(),
        3600 if d.subsec_nanos() == 0 => "an hour".to_string(),
        _ => format!("per {}", humantime::format_duration(d)),
    };
    let limits = format!(
        "GitHub allows {} writes {} and {} {}",
        l.short.limit,
        per(l.short.length),
        l.long.limit,
        per(l.long.length),
    );
    let t = l.earliest(writes);
    if t.is_zero() {
        format!("{writes} secret write(s), within the limits ({limits}): no waiting")
    } else {
        let too_long = if t > JOB_LIMIT {
            ", longer than the 6 h a GitHub-hosted job may run: split the targets over several jobs"
        } else {
            ""
        };
        format!(
            "{writes} secret write(s), paced to GitHub's limits ({limits}): {}{too_long}",
            about(t)
        )
    }
}

/// How long a job on a GitHub-hosted runner may run.
const JOB_LIMIT: Duration = Duration::from_secs(6 * 3600);

/// One progress line of a long fan-out.
pub fn progress_line(written: usize, total: usize, left: Duration) -> String {
    format!(
        "Progress: written {written} / remaining {} / {} left",
        total.saturating_sub(written),
        about(left)
    )
}

/// How often a long fan-out says how far it is: half the short window (30 s for GitHub), so
/// each burst of writes and each pause between them shows up.
pub fn progress_interval(pacer: &Pacer) -> Option<Duration> {
    pacer
        .limits()
        .map(|l| (l.short.length / 2).max(Duration::from_millis(100)))
}

/// Runs `work`, calling `tick` every `every` until it is done (the first after one `every`).
pub async fn with_ticks<T>(
    work: impl std::future::Future<Output = T>,
    every: Option<Duration>,
    mut tick: impl FnMut(),
) -> T {
    let Some(every) = every else {
        return work.await;
    };
    tokio::pin!(work);
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = ticks.tick() => tick(),
        }
    }
}

/// From this many repository targets of one owner on, one organization secret is suggested.
pub const ORG_HINT_MIN: usize = 3;

/// Owners with at least [`ORG_HINT_MIN`] repository (Actions) targets of the same secret name:
/// one `org:OWNER` secret with `visibility: selected` would be one write instead of N. One
/// note per owner and name, sorted; owners compare case-insensitively, as on GitHub.
pub fn org_hints(targets: &[Target]) -> Vec<String> {
    let mut by_owner: BTreeMap<(String, &str), (&str, usize)> = BTreeMap::new();
    for t in targets {
        if let Some((Scope::Repo { owner, .. }, secret)) = t.github() {
            let e = by_owner
                .entry((owner.to_lowercase(), secret.as_str()))
                .or_insert((owner, 0));
            e.1 += 1;
        }
    }
    by_owner
        .into_iter()
        .filter(|(_, (_, n))| *n >= ORG_HINT_MIN)
        .map(|((_, secret), (owner, n))| {
            format!(
                "{n} repository targets of `{owner}` get secret `{secret}`: if `{owner}` is an organization, one organization secret (`org:{owner}` with `visibility: selected` and `selected-repositories` naming them) needs 1 write instead of {n}"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn earliest_is_the_burst_schedule() {
        let l = Limits::default().unguarded();
        assert_eq!(l.earliest(0), Duration::ZERO);
        assert_eq!(l.earliest(1), Duration::ZERO);
        assert_eq!(l.earliest(80), Duration::ZERO);
        assert_eq!(l.earliest(81), MIN);
        assert_eq!(l.earliest(200), 2 * MIN);
        assert_eq!(l.earliest(500), 6 * MIN);
        assert_eq!(l.earliest(501), HOUR);
        assert_eq!(l.earliest(1000), HOUR + 6 * MIN);
        assert_eq!(l.earliest(5000), 9 * HOUR + 6 * MIN);
        let g = Limits::default();
        assert_eq!(g.earliest(200), 2 * (MIN + Duration::from_secs(1)));
    }

    #[test]
    fn limits_are_checked() {
        let w = |limit, secs| Window {
            limit,
            length: Duration::from_secs(secs),
        };
        assert!(Limits::new(w(80, 60), w(500, 3600), Duration::ZERO).is_ok());
        assert!(Limits::new(w(0, 60), w(500, 3600), Duration::ZERO).is_err());
        assert!(Limits::new(w(80, 60), w(50, 3600), Duration::ZERO).is_err());
        // 7 bursts a minute apart do not fit a 5-minute window.
        assert!(Limits::new(w(80, 60), w(500, 300), Duration::ZERO).is_err());
    }

    #[test]
    fn test_limits_parse() {
        assert_eq!(Limits::parse_test("off"), Some(None));
        let l = Limits::parse_test("80/1s, 500/60s, +150ms")
            .unwrap()
            .unwrap();
        assert_eq!(l.short.limit, 80);
        assert_eq!(l.long.length, MIN);
        assert_eq!(l.guard, Duration::from_millis(150));
        assert_eq!(
            Limits::parse_test("80/60s,500/1h").unwrap().unwrap().guard,
            Duration::ZERO
        );
        for bad in [
            "",
            "80",
            "80/1s",
            "x/1s,5/1m",
            "80/1s,500/60s,150ms",
            "80/1s,5/1m",
        ] {
            assert_eq!(Limits::parse_test(bad), None, "{bad}");
        }
    }

    // Issue 15, defect 11: an extreme test-only pace panicked (exit 101): the guard added to
    // a window overflowed, and so did a burst count.
    #[test]
    fn extreme_test_limits_are_refused_not_a_panic() {
        let max = u64::MAX;
        for bad in [
            format!("1/1s,1/1s,+{max}s"),
            format!("1/{max}s,1/{max}s"),
            format!("{max}/1s,{max}/1s"),
            format!("1/1ns,{max}/{max}s"),
            format!("4294967296/1ns,4294967297/1ns,+{max}ns"),
            "1/1ns,4294967297/2d".to_string(),
            "1/25h,2/50h".to_string(),
        ] {
            assert_eq!(Limits::parse_test(&bad), None, "{bad}");
        }
        // The bounds themselves are fine, and so is any count of writes against them.
        let l = Limits::parse_test("1/1d,1000000/1000000d,+1d");
        assert_eq!(l, None, "the long window is past a day");
        let l = Limits::parse_test("1/1d,1/1d,+1d").unwrap().unwrap();
        assert_eq!(l.earliest(3), Duration::from_secs(2 * 2 * 86_400));
        // (Saturated far beyond any job's 6 hours.)
        assert!(l.earliest(usize::MAX) > Duration::from_secs(1 << 40));
    }

    #[tokio::test(start_paused = true)]
    async fn up_to_80_writes_never_wait() {
        let p = Pacer::new(Limits::default());
        let start = Instant::now();
        for _ in 0..80 {
            assert_eq!(p.acquire().await, Duration::ZERO);
        }
        assert_eq!(Instant::now(), start);
        assert_eq!(p.time_for(1), MIN + Duration::from_secs(1));
        assert_eq!(p.acquire().await, MIN + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_come_at_a_steady_interval() {
        let mut n = 0;
        let r = with_ticks(
            tokio::time::sleep(Duration::from_millis(1050)),
            Some(Duration::from_millis(300)),
            || n += 1,
        )
        .await;
        assert_eq!((r, n), ((), 3));
    }

    #[test]
    fn lines_read_well() {
        let p = Pacer::new(Limits::default());
        assert_eq!(
            plan_line(200, &p),
            "200 secret write(s), paced to GitHub's limits (GitHub allows 80 writes a minute and 500 an hour): about 2m 2s"
        );
        assert!(
            plan_line(80, &p).ends_with("no waiting"),
            "{}",
            plan_line(80, &p)
        );
        assert!(plan_line(3000, &p).ends_with("about 5h 6m 11s"));
        assert!(plan_line(3001, &p).ends_with("split the targets over several jobs"));
        assert_eq!(
            progress_line(80, 200, Duration::from_secs(61)),
            "Progress: written 80 / remaining 120 / about 1m 1s left"
        );
    }

    #[test]
    fn org_hint_needs_three_repositories_of_one_owner() {
        let targets =
            crate::target::parse_targets("repo:Acme/a\nrepo:acme/b\nrepo:ACME/c=OTHER\nrepo:acme/d\nenv:acme/e/prod\nrepo:solo/x\nrepo:solo/y\n", &secret())
                .unwrap();
        let hints = org_hints(&targets);
        assert_eq!(hints.len(), 1, "{hints:?}");
        assert!(
            hints[0].starts_with("3 repository targets of `Acme` get secret `TOWER_ACCESS_TOKEN`"),
            "{}",
            hints[0]
        );
        assert!(hints[0].contains("1 write instead of 3"), "{}", hints[0]);
    }

    fn secret() -> crate::target::SecretName {
        crate::target::SecretName::parse("TOWER_ACCESS_TOKEN").unwrap()
    }

    /// Sends of `targets` writes through one pacer, `concurrency` at once, each write repeated
    /// after a failure (`retries[i % len]` times), on the paused clock: the send instants.
    fn simulate(targets: usize, concurrency: usize, retries: &[u8]) -> Vec<Duration> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            use futures_util::stream::{self, StreamExt};
            let pacer = Pacer::new(Limits::default());
            let start = Instant::now();
            let sends = Mutex::new(Vec::new());
            stream::iter(0..targets)
                .for_each_concurrent(concurrency, |i| {
                    let (pacer, sends) = (&pacer, &sends);
                    async move {
                        for _ in 0..=retries[i % retries.len()] {
                            pacer.acquire().await;
                            sends.lock().unwrap().push(Instant::now() - start);
                            // The answer takes a moment; a failed attempt is retried at once.
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                })
                .await;
            let mut v = sends.into_inner().unwrap();
            v.sort();
            v
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn writes_fit_both_windows_and_take_the_earliest_time(
            targets in 1usize..5000,
            concurrency in 1usize..16,
            retries in proptest::collection::vec(prop_oneof![8 => Just(0u8), 1 => 1u8..3], 1..40),
        ) {
            let sends = simulate(targets, concurrency, &retries);
            for w in [Limits::default().short, Limits::default().long] {
                for pair in sends.windows(w.limit + 1) {
                    prop_assert!(pair[w.limit] - pair[0] >= w.length,
                        "{} writes within {:?}", w.limit + 1, pair[w.limit] - pair[0]);
                }
            }
            let earliest = Limits::default().unguarded().earliest(sends.len());
            let took = *sends.last().unwrap();
            prop_assert!(took >= earliest);
            // The 1 ms answers of at most a window's writes come on top of the pacing.
            let slack = Duration::from_millis((80 / concurrency as u64 + 1) * 4);
            prop_assert!(took.as_secs_f64() <= earliest.as_secs_f64() * 1.02 + slack.as_secs_f64(),
                "{} writes took {took:?}, earliest {earliest:?}", sends.len());
        }
    }
}
