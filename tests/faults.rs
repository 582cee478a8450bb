//! Fault injection (SPEC §5 "Retries" and "Invariant", §7 exit codes): the real binary against
//! the sandbox with a fault injected at each API call of a rotation, then assertions on what
//! the fakes hold afterwards — the secret decrypts to a live token, no managed token is left
//! behind, no token value is printed — and on the exit code.
//!
//! Every case starts from a fresh `World` and one successful run, so there is a previous token
//! in the secret that the run under test has to replace and revoke. After the run under test
//! (and its checks) the faults are removed and a normal run must repair whatever is left: exit
//! 0 and exactly one live managed token, the one in the secret.

mod common;

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

/// Per-request timeout of the runs whose fault is a slow answer.
const TIMEOUT: &str = "1s";
/// How long a "timeout" fault holds the answer: longer than `TIMEOUT`.
const SLOW: Duration = Duration::from_secs(2);
/// Enough for the slowest case: 5 attempts × `TIMEOUT` plus the delayed answers landing.
const SETTLE: Duration = Duration::from_secs(20);

fn scope() -> SecretScope {
    World::repo_scope()
}

fn put_path() -> String {
    format!("{}/{SECRET}", scope().secrets_path())
}

// ----- the matrix -----

/// The API calls of one rotation (SPEC §5 steps 2, 4, 5, 6, 7), in protocol order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// Preflight `GET /api/user-info` (the first one).
    UserInfo,
    /// Preflight `GET /api/tokens`.
    TokenList,
    /// Preflight `GET …/secrets/public-key`.
    PublicKey,
    /// `POST /api/tokens`.
    Create,
    /// Verification: the second `GET /api/user-info`, with the new token.
    Verify,
    /// `PUT …/secrets/TOWER_ACCESS_TOKEN`.
    Put,
    /// `DELETE /api/tokens/{id}` of the previous token.
    Delete,
}

impl Call {
    const ALL: [Call; 7] = [
        Call::UserInfo,
        Call::TokenList,
        Call::PublicKey,
        Call::Create,
        Call::Verify,
        Call::Put,
        Call::Delete,
    ];

    fn api(self) -> Api {
        match self {
            Call::PublicKey | Call::Put => Api::Github,
            _ => Api::Seqera,
        }
    }

    fn method(self) -> &'static str {
        match self {
            Call::Create => "POST",
            Call::Put => "PUT",
            Call::Delete => "DELETE",
            _ => "GET",
        }
    }

    fn path(self) -> PathMatch {
        match self {
            Call::UserInfo | Call::Verify => PathMatch::Exact("/api/user-info".into()),
            Call::TokenList | Call::Create => PathMatch::Exact("/api/tokens".into()),
            Call::PublicKey => PathMatch::Suffix("/secrets/public-key".into()),
            Call::Put => PathMatch::Exact(put_path()),
            Call::Delete => PathMatch::Prefix("/api/tokens/".into()),
        }
    }

    /// Which of the matching requests is this call (1-based).
    fn nth(self) -> u32 {
        match self {
            Call::Verify => 2,
            _ => 1,
        }
    }

    fn rule(self, when: Occurrence, action: FaultAction) -> FaultRule {
        FaultRule {
            api: self.api(),
            method: self.method().into(),
            path: self.path(),
            when,
            action,
        }
    }

    /// `action` on this call only.
    fn once(self, action: FaultAction) -> Vec<FaultRule> {
        vec![self.rule(Occurrence::Nth(self.nth()), action)]
    }

    /// `action` on this call and every later request that matches it (its retries).
    fn every_time(self, action: FaultAction) -> Vec<FaultRule> {
        let mut rules = Vec::new();
        if self.nth() > 1 {
            // Let the earlier matching requests through untouched: the first rule that fires
            // decides, and a zero delay is a normal answer.
            rules.push(self.rule(
                Occurrence::FirstN(self.nth() - 1),
                FaultAction::Delay(Duration::ZERO),
            ));
        }
        rules.push(self.rule(Occurrence::Always, action));
        rules
    }

    /// The words of the failure message for this step (SPEC §7: it says which step).
    fn failure_words(self) -> &'static str {
        match self {
            Call::UserInfo | Call::TokenList | Call::PublicKey => {
                "preflight failed, nothing was changed"
            }
            Call::Create => "could not create the new token",
            Call::Verify => "the new token does not work",
            // "no target could be written" (rolled back) or "… could not be written" (kept).
            Call::Put => "be written",
            Call::Delete => "the secrets hold the new token, but revoking",
        }
    }

    fn is_preflight(self) -> bool {
        matches!(self, Call::UserInfo | Call::TokenList | Call::PublicKey)
    }
}

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// 503 once.
    Unavailable503,
    /// 429 with `Retry-After: 1`, once.
    TooManyRetryAfter,
    /// 429 without any hint, once (unhinted backoff).
    TooManyNoHint,
    /// GitHub: the secondary rate limit 403 with `retry-after: 1`, once. Seqera: a 429 with
    /// `Retry-After: 1` (a 403 there means "token not accepted").
    SecondaryRateLimit,
    /// 500 on every attempt.
    Persistent500,
    /// An answer slower than the per-request timeout, once (the server still performs it).
    TimeoutOnce,
    /// Slower than the timeout on every attempt (each one still performed, late).
    TimeoutAlways,
    /// The connection is closed without an answer, once; not performed.
    Drop,
    /// Performed, then the connection is closed without an answer, once.
    PerformThenDrop,
    /// 200 with a truncated JSON body, once; not performed.
    MalformedJson,
    /// 502 with an HTML page from a proxy, once; not performed.
    HtmlPage,
    /// Performed, then answered 504 (a gateway that committed the write), once: the retry
    /// is a normal request (a DELETE's retry finds nothing to delete: 404).
    PerformThen5xx,
    /// Every attempt performed, then answered 502, 503, then 504 from then on.
    /// (The "performed, then timeout" faults are `TimeoutOnce`/`TimeoutAlways`: a `Delay`
    /// performs the operation late, after the client gave up.)
    PerformThen5xxAlways,
}

impl Fault {
    const ALL: [Fault; 13] = [
        Fault::Unavailable503,
        Fault::TooManyRetryAfter,
        Fault::TooManyNoHint,
        Fault::SecondaryRateLimit,
        Fault::Persistent500,
        Fault::TimeoutOnce,
        Fault::TimeoutAlways,
        Fault::Drop,
        Fault::PerformThenDrop,
        Fault::MalformedJson,
        Fault::HtmlPage,
        Fault::PerformThen5xx,
        Fault::PerformThen5xxAlways,
    ];

    fn rules(self, call: Call) -> Vec<FaultRule> {
        match self {
            Fault::Unavailable503 => call.once(FaultAction::status(503)),
            Fault::TooManyRetryAfter => call.once(FaultAction::too_many_requests(1)),
            Fault::TooManyNoHint => call.once(FaultAction::status(429)),
            Fault::SecondaryRateLimit if call.api() == Api::Github => {
                call.once(FaultAction::github_secondary_rate_limit(1))
            }
            Fault::SecondaryRateLimit => call.once(FaultAction::Status {
                status: 429,
                headers: vec![("retry-after".into(), "1".into())],
                body: r#"{"message":"Rate limit exceeded: at most 20 requests per second"}"#.into(),
            }),
            Fault::Persistent500 => call.every_time(FaultAction::status(500)),
            Fault::TimeoutOnce => call.once(FaultAction::Delay(SLOW)),
            Fault::TimeoutAlways => call.every_time(FaultAction::Delay(SLOW)),
            Fault::Drop => call.once(FaultAction::Drop),
            Fault::PerformThenDrop => call.once(FaultAction::PerformThenDrop),
            Fault::MalformedJson => call.once(FaultAction::MalformedJson),
            Fault::HtmlPage => call.once(FaultAction::HtmlPage),
            Fault::PerformThen5xx => call.once(FaultAction::perform_then(504)),
            Fault::PerformThen5xxAlways => {
                let mut rules = call.every_time(FaultAction::perform_then(504));
                let always = rules.pop().expect("every_time ends with the Always rule");
                rules.push(call.rule(Occurrence::Nth(call.nth()), FaultAction::perform_then(502)));
                rules.push(call.rule(
                    Occurrence::Nth(call.nth() + 1),
                    FaultAction::perform_then(503),
                ));
                rules.push(always);
                rules
            }
        }
    }

    fn persistent(self) -> bool {
        matches!(
            self,
            Fault::Persistent500 | Fault::TimeoutAlways | Fault::PerformThen5xxAlways
        )
    }

    fn slow(self) -> bool {
        matches!(self, Fault::TimeoutOnce | Fault::TimeoutAlways)
    }
}

#[derive(Clone, Copy, Debug)]
struct Case {
    call: Call,
    fault: Fault,
}

impl Case {
    fn name(&self) -> String {
        format!("{:?} × {:?}", self.call, self.fault)
    }

    /// SPEC §5/§7: a transient fault on any call ends in a rotation (idempotent calls are
    /// retried; an ambiguous create is checked and recovered); a persistent one fails the run
    /// at that step.
    fn fails(&self) -> bool {
        self.fault.persistent()
    }

    /// A create that timed out is still performed by the (slow) server after the client gave
    /// up and after it looked at the token list, so no client can revoke that token in the
    /// same run; SPEC §5: "A later run cleans up what an interrupted one left behind".
    fn leaves_late_creates(&self) -> bool {
        self.call == Call::Create && self.fault.slow()
    }

    /// Every secret write ended without a clear answer (5xx on every attempt, never
    /// performed): SPEC §5 step 6 calls that *unknown*, like one that was performed.
    fn store_unknown(&self) -> bool {
        self.call == Call::Put && self.fault == Fault::Persistent500
    }

    /// Every secret write ended without a clear answer, yet the server performed them (late,
    /// or before answering 5xx). SPEC §5 step 6: *unknown*, never judged by metadata or
    /// clocks: the new token is never rolled back and nothing is revoked (exit 1). The
    /// secret holds the new token, live.
    fn store_performed_without_answer(&self) -> bool {
        self.call == Call::Put
            && matches!(
                self.fault,
                Fault::TimeoutAlways | Fault::PerformThen5xxAlways
            )
    }
}

fn all_cases() -> Vec<Case> {
    Call::ALL
        .iter()
        .flat_map(|&call| Fault::ALL.iter().map(move |&fault| Case { call, fault }))
        .collect()
}

// Regressions pinned by the matrix (each was a bug once):
// - a 2xx with a truncated JSON body was taken as success: on PUT the secret was not written
//   yet the old token was revoked; on GETs it was a final, unretried error
//   (MalformedJson × every call);
// - when every secret write timed out but a slow server stored it, the new token was rolled
//   back and the secret held a revoked token (Put × TimeoutAlways);
// - issue 9, defect 1: a gateway committed every secret write and answered 5xx; the 5xx was
//   taken as "not written", the new token rolled back, and the secret held a revoked token
//   (Put × PerformThen5xxAlways).

fn run_case(c: &Case) {
    let w = World::new();
    let setup = w.run(&[], &[]);
    assert_eq!(setup.code, 0, "setup run: {setup:#?}");
    let prev = w.live_token_in(&scope(), SECRET);
    let prev_writes = w.sb.secret(&scope(), SECRET).unwrap().writes;
    if c.call == Call::Put {
        // A write without a clear answer is resolved by comparing the secret's `updated_at`
        // with the `Date` of this run's preflight, in whole seconds: start the run in a later
        // second than the setup's write, so "not written" can be proven.
        sleep_past_the_second_of(&w.sb.secret(&scope(), SECRET).unwrap().updated_at);
    }
    w.sb.clear_requests();
    for rule in c.fault.rules(c.call) {
        w.sb.add_fault(rule);
    }
    let extra: &[(&str, &str)] = if c.fault.slow() {
        &[("INPUT_TIMEOUT", TIMEOUT)]
    } else {
        &[]
    };
    let run = w.run(extra, &[]);
    if c.fault.slow() {
        // Delayed answers keep changing state after the client gave up: wait for them.
        w.settle(SETTLE);
    }
    let ctx = format!(
        "run under test: {run:#?}\nrequests: {:#?}",
        summary_of_requests(&w)
    );

    // The fault was really hit.
    let hits = w
        .sb
        .requests()
        .iter()
        .filter(|r| {
            r.api == c.call.api() && r.method == c.call.method() && c.call.path().matches(&r.path)
        })
        .count();
    assert!(
        hits as u32 >= c.call.nth(),
        "the faulty call was never made\n{ctx}"
    );
    if c.fault.persistent() {
        // SPEC §5: up to 4 retries of an idempotent request; a create is never blindly
        // retried, it is checked and made again under a fresh name (4 attempts).
        let want = match c.call {
            Call::Create => 4,
            _ => c.call.nth() as usize - 1 + 5,
        };
        assert_eq!(hits, want, "attempts at the faulty call\n{ctx}");
    }
    if matches!(
        c.fault,
        Fault::TooManyRetryAfter | Fault::SecondaryRateLimit
    ) {
        // The hint (Retry-After: 1) was honoured, not an unhinted 10 ms backoff.
        let at: Vec<Instant> =
            w.sb.requests()
                .iter()
                .filter(|r| {
                    r.api == c.call.api()
                        && r.method == c.call.method()
                        && c.call.path().matches(&r.path)
                })
                .map(|r| r.received_at)
                .collect();
        let n = c.call.nth() as usize;
        assert!(at.len() > n, "no retry after the hinted refusal\n{ctx}");
        let gap = at[n] - at[n - 1];
        assert!(
            gap >= Duration::from_millis(900),
            "retried {gap:?} after a Retry-After: 1\n{ctx}"
        );
    }

    w.assert_no_leak(&run, false);
    assert!(!w.sb.delete_all_called(), "delete-all was called");
    // INVARIANT: whatever happened, the secret holds a live token.
    let value = w.secret_value(&scope(), SECRET).expect("the secret exists");
    let in_secret = match w.sb.token_by_value(&value) {
        Some(t) if !t.revoked => t,
        other => panic!(
            "INVARIANT broken: the secret holds a token that is not live: {:?}\n{ctx}",
            other.map(|t| (t.id, t.name))
        ),
    };
    let live: BTreeSet<u64> = w.live_managed_ids().into_iter().collect();
    // Tokens that a create the client gave up on left behind (performed late).
    let late: BTreeSet<u64> = if c.leaves_late_creates() {
        let names = posted_names(&w);
        w.live_managed()
            .into_iter()
            .filter(|t| t.id != in_secret.id && names.contains(&t.name))
            .map(|t| t.id)
            .collect()
    } else {
        BTreeSet::new()
    };

    if c.store_performed_without_answer() {
        let created: Vec<u64> =
            w.sb.tokens()
                .iter()
                .filter(|t| t.id > prev.id && t.user_id == w.user)
                .map(|t| t.id)
                .collect();
        assert_eq!(created.len(), 1, "one create: {created:?}\n{ctx}");
        assert_eq!(
            in_secret.id, created[0],
            "the server stored the new token: it must be the one in the secret, live\n{ctx}"
        );
        assert_eq!(run.out("rotated"), "true", "{ctx}");
        // SPEC §5 step 6: no clear answer is *unknown*, whatever the metadata or a clock
        // says: nothing is revoked (exit 1); the next run repairs.
        match run.code {
            1 => {
                assert_eq!(
                    live,
                    [prev.id, in_secret.id].into(),
                    "neither token may be revoked\n{ctx}"
                );
                assert!(run.stdout.contains("::error::"), "{ctx}");
                assert!(
                    run.all().contains("repo:octo/app"),
                    "names the target\n{ctx}"
                );
                assert!(
                    !run.all().contains("keeps its previous"),
                    "claims the previous token is in place\n{ctx}"
                );
            }
            code => panic!("exit code {code}\n{ctx}"),
        }
    } else if c.store_unknown() {
        // Every write answered 5xx, not performed: unknown all the same (a 5xx may come
        // after a commit), so the new token is kept and nothing is revoked.
        assert_eq!(run.code, 1, "{ctx}");
        assert_eq!(run.out("rotated"), "true", "{ctx}");
        assert_eq!(
            in_secret.id, prev.id,
            "not performed: the previous token\n{ctx}"
        );
        let new_id: u64 = run.out("token-id").parse().expect("the kept token's id");
        assert_eq!(live, [prev.id, new_id].into(), "{ctx}");
        assert_eq!(run.out("revoked-token-ids"), "", "{ctx}");
        assert!(
            run.all()
                .contains("holds the new token or its previous one"),
            "{ctx}"
        );
    } else if !c.fails() {
        assert_eq!(run.code, 0, "a transient fault must end in success\n{ctx}");
        assert_eq!(run.out("rotated"), "true", "{ctx}");
        assert!(
            in_secret.id > prev.id,
            "the secret still holds the previous token\n{ctx}"
        );
        assert_eq!(run.out("token-id"), in_secret.id.to_string(), "{ctx}");
        assert!(
            !w.sb.is_live(&prev.value),
            "the previous token is still live\n{ctx}"
        );
        assert_eq!(run.out("revoked-token-ids"), prev.id.to_string(), "{ctx}");
        let want: BTreeSet<u64> = late.iter().copied().chain([in_secret.id]).collect();
        assert_eq!(live, want, "orphaned managed tokens\n{ctx}");
    } else {
        assert_eq!(run.code, 1, "a persistent fault must fail the run\n{ctx}");
        assert!(run.stdout.contains("::error::"), "{ctx}");
        assert!(
            run.all().contains(c.call.failure_words()),
            "message names the step\n{ctx}"
        );
        if c.call == Call::Delete {
            // The secrets are good; the previous token may survive (the revoke failed) or not
            // (a slow server performed it after the client gave up).
            assert!(in_secret.id > prev.id, "{ctx}");
            assert_eq!(run.out("rotated"), "true", "{ctx}");
            let allowed: BTreeSet<u64> = [prev.id, in_secret.id].into();
            assert!(
                live.is_subset(&allowed) && live.contains(&in_secret.id),
                "{live:?}\n{ctx}"
            );
        } else {
            // The previous token stays in place, live; the new one (if any) was rolled back.
            assert_eq!(in_secret.id, prev.id, "{ctx}");
            assert_eq!(
                w.sb.secret(&scope(), SECRET).unwrap().writes,
                prev_writes,
                "{ctx}"
            );
            assert_eq!(run.out("rotated"), "false", "{ctx}");
            assert_eq!(run.out("token-id"), "", "{ctx}");
            let want: BTreeSet<u64> = late.iter().copied().chain([prev.id]).collect();
            assert_eq!(live, want, "orphaned managed tokens\n{ctx}");
        }
        if c.call.is_preflight() {
            assert!(
                w.mutations().is_empty(),
                "preflight failed but: {:?}\n{ctx}",
                w.mutations()
            );
        }
    }

    assert_repaired(&w, &ctx);
}

/// A later normal run, with the faults gone, repairs everything: exit 0, and the secret
/// holds the one live managed token.
fn assert_repaired(w: &World, ctx: &str) {
    w.sb.clear_faults();
    let again = w.run(&[], &[]);
    assert_eq!(again.code, 0, "the run after the fault: {again:#?}\n{ctx}");
    let now = w.live_token_in(&scope(), SECRET);
    assert_eq!(
        w.live_managed_ids(),
        [now.id],
        "after the repair run\n{ctx}"
    );
    w.assert_no_leak(&again, false);
}

/// Sleeps until the wall clock is past the whole second of `updated_at` (GitHub's form,
/// `YYYY-MM-DDTHH:MM:SSZ`), so that a later `Date` is in a later second.
fn sleep_past_the_second_of(updated_at: &str) {
    let t = time::OffsetDateTime::parse(updated_at, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("updated_at {updated_at}: {e}"));
    let next = SystemTime::from(t) + Duration::from_secs(1);
    if let Ok(wait) = next.duration_since(SystemTime::now()) {
        // A little more, so the sandbox's clock and this one agree which second it is.
        std::thread::sleep(wait + Duration::from_millis(20));
    }
}

/// Names sent in `POST /api/tokens` bodies.
fn posted_names(w: &World) -> BTreeSet<String> {
    w.sb.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/api/tokens")
        .filter_map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()?
                .get("name")?
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

fn summary_of_requests(w: &World) -> Vec<String> {
    w.sb.requests()
        .iter()
        .map(|r| format!("{:?} {} {} -> {:?}", r.api, r.method, r.path, r.status))
        .collect()
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-text panic)".into())
}

/// Runs the matrix cases on a few threads; fails listing every case that failed, by name.
fn run_cases(cases: &[Case]) {
    run_named(cases, Case::name, run_case);
}

/// Runs `run` for each case on a few threads; fails listing every case that failed, by name.
/// `FAULT_FILTER=text` runs only the cases whose name contains `text` (e.g. `Put × Perform`).
// Prints only case names and timings, never a token value.
#[allow(clippy::disallowed_macros)]
fn run_named<C: Sync>(cases: &[C], name: impl Fn(&C) -> String + Sync, run: impl Fn(&C) + Sync) {
    let filter = std::env::var("FAULT_FILTER").unwrap_or_default();
    let cases: Vec<&C> = cases.iter().filter(|c| name(c).contains(&filter)).collect();
    let queue = Mutex::new(cases.iter().copied());
    let failures = Mutex::new(Vec::new());
    // The runs mostly wait (backoff, Retry-After, timeouts), so more threads than CPUs.
    let threads = 8;
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some(c) = queue.lock().unwrap().next() else {
                    break;
                };
                let t = Instant::now();
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| run(c))) {
                    failures.lock().unwrap().push(format!(
                        "--- {} (after {:.1?}):\n{}",
                        name(c),
                        t.elapsed(),
                        panic_text(p.as_ref())
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    // Timing for whoever runs the suite with --nocapture.
    eprintln!(
        "{} fault cases in {:.1?} on {threads} threads",
        cases.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} fault cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn fault_matrix() {
    let cases = all_cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    run_cases(&cases);
}

// ----- the rollback's DELETE -----

/// What makes the run roll its new token back (SPEC §5 steps 5 and 6).
#[derive(Clone, Copy, Debug)]
enum Rollback {
    /// The verification is rejected (401 on every attempt): revoke the new token.
    VerifyRejected,
    /// The secret write is refused with a clear 400: nothing was written, roll back.
    StoreRefused,
}

/// The faults of the rollback's `DELETE /api/tokens/{new}` (the only DELETE of such a run).
const ROLLBACK_DELETE_FAULTS: [Fault; 5] = [
    Fault::PerformThen5xx,
    Fault::PerformThen5xxAlways,
    Fault::PerformThenDrop,
    Fault::TimeoutOnce,
    Fault::Drop,
];

fn run_rollback_case(&(why, fault): &(Rollback, Fault)) {
    let w = World::new();
    let setup = w.run(&[], &[]);
    assert_eq!(setup.code, 0, "setup run: {setup:#?}");
    let prev = w.live_token_in(&scope(), SECRET);
    let prev_writes = w.sb.secret(&scope(), SECRET).unwrap().writes;
    w.sb.clear_requests();
    match why {
        Rollback::VerifyRejected => {
            for rule in Call::Verify.every_time(FaultAction::status(401)) {
                w.sb.add_fault(rule);
            }
        }
        Rollback::StoreRefused => w.sb.add_fault(Call::Put.rule(
            Occurrence::Always,
            FaultAction::Status {
                status: 400,
                headers: vec![],
                body: r#"{"message":"Bad request"}"#.into(),
            },
        )),
    }
    for rule in fault.rules(Call::Delete) {
        w.sb.add_fault(rule);
    }
    let extra: &[(&str, &str)] = if fault.slow() {
        &[("INPUT_TIMEOUT", TIMEOUT)]
    } else {
        &[]
    };
    let run = w.run(extra, &[]);
    if fault.slow() {
        w.settle(SETTLE);
    }
    let ctx = format!(
        "run under test: {run:#?}\nrequests: {:#?}",
        summary_of_requests(&w)
    );
    assert_eq!(run.code, 1, "{ctx}");
    assert!(
        w.mutations()
            .iter()
            .any(|m| m.starts_with("DELETE /api/tokens/")),
        "no rollback DELETE\n{ctx}"
    );
    w.assert_no_leak(&run, false);
    assert!(!w.sb.delete_all_called(), "delete-all was called");
    // INVARIANT: the previous token is in place and live; nothing was written.
    assert_eq!(w.live_token_in(&scope(), SECRET).id, prev.id, "{ctx}");
    assert_eq!(
        w.sb.secret(&scope(), SECRET).unwrap().writes,
        prev_writes,
        "{ctx}"
    );
    assert_eq!(run.out("rotated"), "false", "{ctx}");
    // Every one of these DELETEs was performed at last (or retried until it was): the new
    // token is gone, and a retry's 404 counted as "already revoked".
    assert_eq!(w.live_managed_ids(), [prev.id], "{ctx}");

    assert_repaired(&w, &ctx);
}

#[test]
fn rollback_delete_faults() {
    let cases: Vec<(Rollback, Fault)> = [Rollback::VerifyRejected, Rollback::StoreRefused]
        .into_iter()
        .flat_map(|why| ROLLBACK_DELETE_FAULTS.map(|f| (why, f)))
        .collect();
    run_named(
        &cases,
        |(why, f)| format!("rollback after {why:?} × DELETE {f:?}"),
        run_rollback_case,
    );
}

// ----- single scenarios -----

/// Issue 9, defect 1: a gateway commits the secret write and answers 504, on every attempt.
/// The secret holds the new token; rolling it back would leave the target with a revoked
/// token. The metadata read is made to fail too, so the run cannot tell: the target counts
/// as possibly holding the new token (SPEC §5 step 6).
#[test]
fn a_committed_write_answered_504_is_never_rolled_back() {
    let (w, prev) = rotated_once();
    sleep_past_the_second_of(&w.sb.secret(&scope(), SECRET).unwrap().updated_at);
    w.sb.add_fault(Call::Put.rule(Occurrence::Always, FaultAction::perform_then(504)));
    w.sb.add_fault(FaultRule::github(
        "GET",
        PathMatch::Exact(put_path()),
        Occurrence::Always,
        FaultAction::status(500),
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let stored = w.live_token_in(&scope(), SECRET);
    assert!(
        stored.id > prev.id,
        "the secret holds the new token: {run:#?}"
    );
    assert!(w.sb.is_live(&stored.value), "the new token was not revoked");
    assert!(
        w.sb.is_live(&prev.value),
        "nothing is revoked while a target is unknown"
    );
    let all = run.all();
    assert!(all.contains("repo:octo/app"), "{all}");
    assert!(
        !all.contains("every target keeps its previous"),
        "a false claim about the target's state: {all}"
    );
    assert!(run.stdout.contains("::error::"), "{all}");
    w.assert_no_leak(&run, false);
    // The next run repairs it.
    assert_repaired(&w, &all);
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A world after one successful run: returns it with the token now in the secret.
fn rotated_once() -> (World, SeqeraToken) {
    let w = World::new();
    let setup = w.run(&[], &[]);
    assert_eq!(setup.code, 0, "setup run: {setup:#?}");
    let prev = w.live_token_in(&scope(), SECRET);
    w.sb.clear_requests();
    (w, prev)
}

/// Nothing changed: no mutating request, the secret still holds `prev` and it is the only
/// live managed token.
fn assert_nothing_changed(w: &World, prev: &SeqeraToken, run: &Run) {
    assert!(w.mutations().is_empty(), "{:?}\n{run:#?}", w.mutations());
    assert_eq!(w.live_token_in(&scope(), SECRET).id, prev.id, "{run:#?}");
    assert_eq!(w.live_managed_ids(), [prev.id], "{run:#?}");
}

/// After a failed store: the new token was rolled back, the previous one is in place.
fn assert_rolled_back(w: &World, prev: &SeqeraToken, run: &Run) {
    assert_eq!(w.live_token_in(&scope(), SECRET).id, prev.id, "{run:#?}");
    assert_eq!(w.live_managed_ids(), [prev.id], "{run:#?}");
    assert_eq!(run.out("rotated"), "false", "{run:#?}");
}

fn count(w: &World, method: &str, suffix: &str) -> usize {
    w.sb.requests()
        .iter()
        .filter(|r| r.method == method && r.path.ends_with(suffix))
        .count()
}

#[test]
fn perform_then_drop_on_create_revokes_the_unseen_token_in_the_same_run() {
    let (w, prev) = rotated_once();
    w.sb.add_fault(FaultRule::seqera(
        "POST",
        PathMatch::Exact("/api/tokens".into()),
        Occurrence::Nth(1),
        FaultAction::PerformThenDrop,
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let posts: Vec<String> =
        w.sb.requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .map(|r| r.body)
            .collect();
    assert_eq!(
        posts.len(),
        2,
        "one dropped create, one fresh create: {posts:?}"
    );
    // The token created by the dropped request exists, and this run revoked it.
    let first_name = serde_json::from_str::<serde_json::Value>(&posts[0]).unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let dropped =
        w.sb.tokens()
            .into_iter()
            .find(|t| t.name == first_name)
            .expect("the dropped create was performed");
    assert!(
        dropped.revoked,
        "the token of the dropped create is still live"
    );
    let now = w.live_token_in(&scope(), SECRET);
    assert_ne!(now.id, dropped.id);
    assert_ne!(now.name, first_name, "created again under a fresh name");
    assert_eq!(w.live_managed_ids(), [now.id]);
    assert!(!w.sb.is_live(&prev.value));
    assert_eq!(run.out("token-id"), now.id.to_string());
    // Said, but not a failure.
    assert!(run.all().contains(&first_name), "{run:#?}");
    w.assert_no_leak(&run, false);
}

#[test]
fn github_primary_rate_limit_is_waited_out_until_the_reset() {
    let (w, prev) = rotated_once();
    w.sb.add_fault(FaultRule::github(
        "GET",
        PathMatch::Suffix("/secrets/public-key".into()),
        Occurrence::Nth(1),
        FaultAction::github_primary_rate_limit(now_epoch() + 1),
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let keys: Vec<Instant> =
        w.sb.requests()
            .iter()
            .filter(|r| r.path.ends_with("/public-key"))
            .map(|r| r.received_at)
            .collect();
    assert_eq!(keys.len(), 2, "{run:#?}");
    // Waited for the reset (at least until the next second), not an unhinted 10 ms backoff.
    assert!(
        keys[1] - keys[0] >= Duration::from_millis(900),
        "retried after {:?}",
        keys[1] - keys[0]
    );
    let now = w.live_token_in(&scope(), SECRET);
    assert_eq!(w.live_managed_ids(), [now.id]);
    assert!(now.id > prev.id);
    w.assert_no_leak(&run, false);
}

#[test]
fn a_wait_beyond_the_cap_fails_at_once_saying_when_to_try_again() {
    // On Seqera (429 + Retry-After) and on GitHub (secondary rate limit + retry-after),
    // both in preflight: nothing may change.
    let faults = [
        FaultRule::seqera(
            "GET",
            PathMatch::Exact("/api/user-info".into()),
            Occurrence::Nth(1),
            FaultAction::too_many_requests(3600),
        ),
        FaultRule::github(
            "GET",
            PathMatch::Suffix("/secrets/public-key".into()),
            Occurrence::Nth(1),
            FaultAction::github_secondary_rate_limit(3600),
        ),
    ];
    for fault in faults {
        let (w, prev) = rotated_once();
        w.sb.add_fault(fault.clone());
        let started = Instant::now();
        let run = w.run(&[], &[]);
        let took = started.elapsed();
        assert_eq!(run.code, 1, "{fault:?}\n{run:#?}");
        assert!(took < Duration::from_secs(30), "{fault:?}: took {took:?}");
        let all = run.all();
        assert!(all.contains("try again after 20"), "{fault:?}\n{all}");
        assert!(all.contains("3600"), "{fault:?}\n{all}");
        assert!(all.contains("::error::"), "{all}");
        assert_nothing_changed(&w, &prev, &run);
        w.assert_no_leak(&run, false);
    }
}

#[test]
fn a_wait_beyond_the_cap_after_create_rolls_back() {
    // The cap hit on the store: the new token is revoked again, the previous one stays.
    let (w, prev) = rotated_once();
    w.sb.add_fault(FaultRule::github(
        "PUT",
        PathMatch::Exact(put_path()),
        Occurrence::Always,
        FaultAction::too_many_requests(3600),
    ));
    let started = Instant::now();
    let run = w.run(&[], &[]);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.all().contains("try again after"), "{run:#?}");
    assert_rolled_back(&w, &prev, &run);
    w.assert_no_leak(&run, false);
}

const KEY_MESSAGE: &str =
    r#"{"message":"Bad request: key_id does not match the current public key"}"#;

#[test]
fn a_422_about_the_key_refetches_the_public_key_and_retries_once() {
    let (w, prev) = rotated_once();
    w.sb.add_fault(FaultRule::github(
        "PUT",
        PathMatch::Exact(put_path()),
        Occurrence::Nth(1),
        FaultAction::Status {
            status: 422,
            headers: vec![],
            body: KEY_MESSAGE.into(),
        },
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(count(&w, "GET", "/secrets/public-key"), 2, "{run:#?}");
    assert_eq!(count(&w, "PUT", SECRET), 2, "{run:#?}");
    let now = w.live_token_in(&scope(), SECRET);
    assert!(now.id > prev.id);
    assert_eq!(w.live_managed_ids(), [now.id]);
    w.assert_no_leak(&run, false);
}

#[test]
fn a_422_about_the_key_is_retried_only_once() {
    let (w, prev) = rotated_once();
    w.sb.add_fault(FaultRule::github(
        "PUT",
        PathMatch::Exact(put_path()),
        Occurrence::Always,
        FaultAction::Status {
            status: 422,
            headers: vec![],
            body: KEY_MESSAGE.into(),
        },
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(count(&w, "GET", "/secrets/public-key"), 2, "{run:#?}");
    assert_eq!(count(&w, "PUT", SECRET), 2, "{run:#?}");
    assert!(run.all().contains("key"), "{run:#?}");
    assert_rolled_back(&w, &prev, &run);
    w.assert_no_leak(&run, false);
}

#[test]
fn a_public_key_rotated_between_preflight_and_store_is_refetched() {
    // A real key change, timed: the verification is held back until the test has rotated the
    // repository's key, so the write uses the key_id from preflight and the fake answers 422.
    let (w, prev) = rotated_once();
    w.sb.add_fault(FaultRule::seqera(
        "GET",
        PathMatch::Exact("/api/user-info".into()),
        Occurrence::Nth(2),
        FaultAction::Delay(Duration::from_millis(500)),
    ));
    let old_key = w.sb.public_key(&scope()).unwrap();
    let child = w.spawn(&[], &[]);
    wait_until(
        Duration::from_secs(20),
        "the verification request arrives",
        || {
            w.sb.requests()
                .iter()
                .filter(|r| r.path == "/api/user-info")
                .count()
                >= 2
        },
    );
    w.sb.rotate_public_key(&scope());
    let run = child.finish();
    assert_eq!(run.code, 0, "{run:#?}");
    let new_key = w.sb.public_key(&scope()).unwrap();
    assert_ne!(old_key.key_id, new_key.key_id);
    let puts: Vec<Option<u16>> =
        w.sb.requests()
            .iter()
            .filter(|r| r.method == "PUT")
            .map(|r| r.status)
            .collect();
    assert_eq!(puts, [Some(422), Some(204)], "{run:#?}");
    assert_eq!(count(&w, "GET", "/secrets/public-key"), 2);
    let stored = w.sb.secret(&scope(), SECRET).unwrap();
    assert_eq!(stored.key_id, new_key.key_id);
    let now = w.live_token_in(&scope(), SECRET);
    assert!(now.id > prev.id);
    assert_eq!(w.live_managed_ids(), [now.id]);
    w.assert_no_leak(&run, false);
}

// ----- hardening -----

const PERMISSION_HINT: &str = "GITHUB_TOKEN cannot write secrets";

#[test]
fn a_403_naming_the_permission_is_explained_and_not_retried() {
    let (w, prev) = rotated_once();
    w.sb.add_fault(FaultRule::github(
        "PUT",
        PathMatch::Exact(put_path()),
        Occurrence::Always,
        FaultAction::Status {
            status: 403,
            headers: vec![(
                "x-accepted-github-permissions".into(),
                "secrets=write".into(),
            )],
            body: r#"{"message":"Resource not accessible by integration"}"#.into(),
        },
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let all = run.all();
    assert!(all.contains("secrets=write"), "{all}");
    assert!(all.contains(PERMISSION_HINT), "{all}");
    assert!(
        all.contains("Resource not accessible by integration"),
        "{all}"
    );
    assert_eq!(
        count(&w, "PUT", SECRET),
        1,
        "a permission refusal is not retried"
    );
    assert_rolled_back(&w, &prev, &run);
    w.assert_no_leak(&run, false);
}

#[test]
fn a_read_only_github_token_gets_the_same_hint() {
    const READ_ONLY: &str = "ghs_read_only_workflow_token_9876543210";
    let (w, prev) = rotated_once();
    w.sb.add_github_token(READ_ONLY, false);
    let run = w.run(&[("INPUT_GITHUB-TOKEN", READ_ONLY)], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let all = run.all();
    assert!(all.contains("secrets=write"), "{all}");
    assert!(all.contains(PERMISSION_HINT), "{all}");
    assert_rolled_back(&w, &prev, &run);
    w.assert_no_leak_of(&run, &[READ_ONLY]);
}

/// A listener that must never be contacted; `assert_untouched` checks it (non-blocking).
struct Trap(std::net::TcpListener);

impl Trap {
    fn new() -> Self {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Trap(l)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.0.local_addr().unwrap())
    }

    fn assert_untouched(&self, what: &str) {
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("{what}: the redirect target got a connection from {peer}"),
            Err(e) => panic!("{what}: accept failed: {e}"),
        }
    }
}

#[test]
fn redirects_are_never_followed() {
    // (call, status): a GitHub read, a Seqera read (both preflight), and the secret write.
    let cases = [
        (Call::PublicKey, 307),
        (Call::UserInfo, 302),
        (Call::Put, 308),
    ];
    for (call, status) in cases {
        let what = format!("{call:?} answered {status}");
        let (w, prev) = rotated_once();
        let trap = Trap::new();
        w.sb.add_fault(call.rule(
            Occurrence::Always,
            FaultAction::Status {
                status,
                headers: vec![("location".into(), trap.url("/steal"))],
                body: String::new(),
            },
        ));
        let run = w.run(&[], &[]);
        assert_eq!(run.code, 1, "{what}\n{run:#?}");
        assert!(run.all().contains("redirect"), "{what}\n{run:#?}");
        trap.assert_untouched(&what);
        if call.is_preflight() {
            assert_nothing_changed(&w, &prev, &run);
        } else {
            assert_rolled_back(&w, &prev, &run);
        }
        w.assert_no_leak(&run, false);
    }
}

#[test]
fn token_values_echoed_in_error_bodies_are_never_shown() {
    // A GitHub 400 whose JSON message quotes both tokens, and a Seqera 500 whose plain-text
    // body quotes the access token (every retry of it).
    let (w, prev) = rotated_once();
    let access = w.access.value.clone();
    w.sb.add_fault(FaultRule::github(
        "PUT",
        PathMatch::Exact(put_path()),
        Occurrence::Always,
        FaultAction::Status {
            status: 400,
            headers: vec![],
            body: serde_json::json!({
                "message": format!("Bad request: header 'Authorization: Bearer {GH_TOKEN}' and body token {access} are not allowed")
            })
            .to_string(),
        },
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.all().contains("Bad request"),
        "the message is still shown: {run:#?}"
    );
    assert_rolled_back(&w, &prev, &run);
    w.assert_no_leak(&run, false);

    let (w, prev) = rotated_once();
    let access = w.access.value.clone();
    w.sb.add_fault(FaultRule::seqera(
        "GET",
        PathMatch::Exact("/api/user-info".into()),
        Occurrence::Always,
        FaultAction::Status {
            status: 500,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: format!("internal error while checking token {access}"),
        },
    ));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.all().contains("internal error"), "{run:#?}");
    assert_nothing_changed(&w, &prev, &run);
    w.assert_no_leak(&run, false);
}

#[test]
fn a_create_that_keeps_failing_reports_the_server_error() {
    let (w, prev) = rotated_once();
    w.sb.add_fault(Call::Create.rule(Occurrence::Always, FaultAction::status(500)));
    let run = w.run(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(w.live_token_in(&scope(), SECRET).id, prev.id);
    assert_eq!(w.live_managed_ids(), [prev.id]);
    // SPEC §7: the message says which step and what happened, in the error annotation itself.
    let errors: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error::"))
        .collect();
    assert!(
        errors
            .iter()
            .any(|l| l.contains("could not create") && l.contains("HTTP 500")),
        "{errors:#?}"
    );
    assert!(
        !errors.iter().any(|l| l.contains("no free token name")),
        "the names were free; the server failed: {errors:#?}"
    );
    w.assert_no_leak(&run, false);
}

/// A write that timed out may still be performed later: here the first attempt is slow (it
/// lands 2 s later) and the retries get a 500 that was not performed. Nothing turns
/// *unknown* into *refused*: rolling back would leave the secret holding a revoked token
/// once the slow write lands (SPEC §5 "Invariant").
#[test]
fn a_slow_write_landing_after_the_metadata_read_is_not_rolled_back() {
    let (w, prev) = rotated_once();
    sleep_past_the_second_of(&w.sb.secret(&scope(), SECRET).unwrap().updated_at);
    w.sb.add_fault(Call::Put.rule(Occurrence::Nth(1), FaultAction::Delay(SLOW)));
    w.sb.add_fault(Call::Put.rule(Occurrence::Always, FaultAction::status(500)));
    let run = w.run(&[("INPUT_TIMEOUT", TIMEOUT)], &[]);
    w.settle(SETTLE);
    let ctx = format!("{run:#?}\nrequests: {:#?}", summary_of_requests(&w));
    let stored = w.secret_value(&scope(), SECRET).expect("the secret exists");
    assert!(
        w.sb.is_live(&stored),
        "INVARIANT broken: the late write left a revoked token in the secret\n{ctx}"
    );
    assert!(w.live_token_in(&scope(), SECRET).id > prev.id, "{ctx}");
    // Unknown (SPEC §5 step 6): both tokens kept, the run fails; never a rollback.
    assert_eq!(run.code, 1, "{ctx}");
    assert!(w.sb.is_live(&prev.value), "{ctx}");
    w.assert_no_leak(&run, false);
    assert_repaired(&w, &ctx);
}
