//! Randomized multi-fault runs (SPEC §5 "Invariant", issue 9 "never lose a working token,
//! whatever a server answers"): each case is a fresh `World`, a setup rotation, then a run
//! with one to four random faults on random calls — and sometimes a SIGKILL while a request
//! is in flight — against one to three repository targets, with `keep-previous` 0 or 1.
//!
//! After the run: every target decrypts to a live token, nothing printed or written holds a
//! token value or a 16-character piece of one, `delete-all` was never called. Then, without
//! faults, a repair run: exit 0, every target holds the same new live token, and exactly
//! `1 + keep-previous` managed tokens are live.
//!
//! Seeded: `CHAOS_SEED=<u64>` replays a run (the seed is printed, and named in every
//! failure), `CHAOS_CASES=<n>` sets the number of cases (default 12), `CHAOS_CASE=<i>` runs
//! only case `i` of the seed, `CHAOS_THREADS=<n>` the parallelism (default 4), and
//! `CHAOS_LIST=1` prints the cases without running them.

mod common;

use std::collections::HashMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DEFAULT_CASES: u64 = 12;
const DEFAULT_THREADS: usize = 4;
/// Per-request timeout when a case holds answers back.
const TIMEOUT: &str = "1s";
/// A slow answer: longer than `TIMEOUT`; the server still performs the request.
const SLOW: Duration = Duration::from_secs(2);
/// Holds the request at which the binary is killed; never answered within a case.
const HOLD: Duration = Duration::from_secs(600);
const DEADLINE: Duration = Duration::from_secs(60);

/// One of the requests a rotation makes, for one target where it is per target.
#[derive(Clone, Copy, Debug)]
enum Call {
    /// `GET /api/user-info` (the first is preflight, the second the verification).
    UserInfo,
    /// `GET /api/tokens` (preflight, and the check after an ambiguous create).
    TokenList,
    /// `POST /api/tokens`.
    Create,
    /// `DELETE /api/tokens/{id}`: a revoke or a rollback.
    Delete,
    /// `GET …/secrets/public-key` of target `n`.
    PublicKey(usize),
    /// `PUT …/secrets/TOWER_ACCESS_TOKEN` of target `n`.
    Put(usize),
    /// `GET …/secrets/TOWER_ACCESS_TOKEN` of target `n` (resolving an ambiguous write).
    Metadata(usize),
}

impl Call {
    fn random(rng: &mut StdRng, targets: usize) -> Call {
        let t = rng.random_range(0..targets);
        match rng.random_range(0..7) {
            0 => Call::UserInfo,
            1 => Call::TokenList,
            2 => Call::Create,
            3 => Call::Delete,
            4 => Call::PublicKey(t),
            5 => Call::Put(t),
            _ => Call::Metadata(t),
        }
    }

    fn rule(self, when: Occurrence, action: FaultAction) -> FaultRule {
        let secret = |t: usize| format!("{}/{SECRET}", target_scope(t).secrets_path());
        let (api, method, path) = match self {
            Call::UserInfo => (
                Api::Seqera,
                "GET",
                PathMatch::Exact("/api/user-info".into()),
            ),
            Call::TokenList => (Api::Seqera, "GET", PathMatch::Exact("/api/tokens".into())),
            Call::Create => (Api::Seqera, "POST", PathMatch::Exact("/api/tokens".into())),
            Call::Delete => (
                Api::Seqera,
                "DELETE",
                PathMatch::Prefix("/api/tokens/".into()),
            ),
            Call::PublicKey(t) => (
                Api::Github,
                "GET",
                PathMatch::Exact(format!("{}/public-key", target_scope(t).secrets_path())),
            ),
            Call::Put(t) => (Api::Github, "PUT", PathMatch::Exact(secret(t))),
            Call::Metadata(t) => (Api::Github, "GET", PathMatch::Exact(secret(t))),
        };
        FaultRule {
            api,
            method: method.into(),
            path,
            when,
            action,
        }
    }
}

/// What goes wrong with a request.
#[derive(Clone, Debug)]
enum Action {
    Status(u16),
    TooMany,
    Drop,
    PerformThenDrop,
    PerformThen(u16),
    MalformedJson,
    HtmlPage,
    Slow,
}

impl Action {
    fn random(rng: &mut StdRng) -> Action {
        let five = |rng: &mut StdRng| [500, 502, 503, 504][rng.random_range(0..4)];
        match rng.random_range(0..8) {
            0 => Action::Status(five(rng)),
            1 => Action::TooMany,
            2 => Action::Drop,
            3 => Action::PerformThenDrop,
            4 => Action::PerformThen(five(rng)),
            5 => Action::MalformedJson,
            6 => Action::HtmlPage,
            _ => Action::Slow,
        }
    }

    fn fault(&self) -> FaultAction {
        match *self {
            Action::Status(s) => FaultAction::status(s),
            Action::TooMany => FaultAction::too_many_requests(1),
            Action::Drop => FaultAction::Drop,
            Action::PerformThenDrop => FaultAction::PerformThenDrop,
            Action::PerformThen(s) => FaultAction::perform_then(s),
            Action::MalformedJson => FaultAction::MalformedJson,
            Action::HtmlPage => FaultAction::HtmlPage,
            Action::Slow => FaultAction::Delay(SLOW),
        }
    }
}

#[derive(Clone, Debug)]
struct Fault {
    call: Call,
    when: Occurrence,
    action: Action,
}

/// One randomized case; its `Debug` form is printed with every failure.
#[derive(Clone)]
struct Case {
    seed: u64,
    index: u64,
    targets: usize,
    keep_previous: u32,
    faults: Vec<Fault>,
    /// Kill the binary once this request (its first occurrence) was received.
    kill_at: Option<Call>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CHAOS_SEED={} CHAOS_CASE={}: {} target(s), keep-previous {}, kill at {:?}, faults {:?}",
            self.seed, self.index, self.targets, self.keep_previous, self.kill_at, self.faults
        )
    }
}

impl Case {
    fn generate(seed: u64, index: u64) -> Case {
        let mut rng = StdRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let targets = rng.random_range(1..=3);
        let keep_previous = rng.random_range(0..=1);
        let faults = (0..rng.random_range(1..=4))
            .map(|_| {
                let when = match rng.random_range(0..10) {
                    0 => Occurrence::Always,
                    1 => Occurrence::FirstN(rng.random_range(1..=3)),
                    _ => Occurrence::Nth(rng.random_range(1..=3)),
                };
                Fault {
                    call: Call::random(&mut rng, targets),
                    when,
                    action: Action::random(&mut rng),
                }
            })
            .collect();
        let kill_at = rng
            .random_bool(0.25)
            .then(|| Call::random(&mut rng, targets));
        Case {
            seed,
            index,
            targets,
            keep_previous,
            faults,
            kill_at,
        }
    }

    fn slow(&self) -> bool {
        self.faults.iter().any(|f| matches!(f.action, Action::Slow))
    }

    /// The settings of both the setup run and the run under test.
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("INPUT_KEEP-PREVIOUS", self.keep_previous.to_string())];
        if self.targets > 1 {
            let lines: Vec<String> = (0..self.targets)
                .map(|t| format!("repo:{OWNER}/{}", repo_name(t)))
                .collect();
            env.push(("INPUT_TARGETS", lines.join("\n")));
        }
        env
    }
}

fn repo_name(t: usize) -> String {
    if t == 0 {
        REPO.to_string()
    } else {
        format!("{REPO}{}", t + 1)
    }
}

fn target_scope(t: usize) -> SecretScope {
    SecretScope::repo(OWNER, &repo_name(t))
}

/// Asserts no token value, nor any `FRAGMENT`-character piece of one, appears in what the
/// run printed or wrote (except `::add-mask::` lines).
fn assert_no_fragments(w: &World, run: &Run, what_run: &str) {
    w.assert_no_leak(run, false);
    assert_no_fragment(run, &w.all_secret_values(), what_run);
}

/// INVARIANT: every target holds a live token.
fn assert_invariant(w: &World, c: &Case, when: &str) -> Vec<SeqeraToken> {
    (0..c.targets)
        .map(|t| {
            let scope = target_scope(t);
            let value = w
                .secret_value(&scope, SECRET)
                .unwrap_or_else(|| panic!("{when}: target {t} has no secret"));
            match w.sb.token_by_value(&value) {
                Some(tok) if !tok.revoked => tok,
                other => panic!(
                    "{when}: INVARIANT broken: target repo:{OWNER}/{} holds a token that is not \
                     live: {:?}",
                    repo_name(t),
                    other.map(|t| (t.id, t.name))
                ),
            }
        })
        .collect()
}

fn requests_summary(w: &World) -> String {
    w.sb.requests()
        .iter()
        .map(|r| format!("{:?} {} {} -> {:?}", r.api, r.method, r.path, r.status))
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_case(c: &Case) {
    let w = World::new();
    for t in 1..c.targets {
        w.sb.add_repo(OWNER, &repo_name(t));
    }
    let env = c.env();
    let base: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let setup = w.run(&base, &[]);
    assert_eq!(setup.code, 0, "setup run: {setup:#?}");
    assert_invariant(&w, c, "after setup");
    w.sb.clear_requests();

    let mut extra = base.clone();
    if c.slow() {
        extra.push(("INPUT_TIMEOUT", TIMEOUT));
    }
    // The held request comes first: the first rule that fires decides.
    if let Some(call) = c.kill_at {
        w.sb.add_fault(call.rule(Occurrence::Nth(1), FaultAction::Delay(HOLD)));
    }
    for f in &c.faults {
        w.sb.add_fault(f.call.rule(f.when.clone(), f.action.fault()));
    }

    let started = Instant::now();
    let (run, killed) = match c.kill_at {
        None => (w.run(&extra, &[]), false),
        Some(call) => {
            let held = call.rule(Occurrence::Always, FaultAction::Drop);
            let mut child = w.spawn(&extra, &[]);
            let mut exited = false;
            wait_until(DEADLINE, "the held request arrives or the run ends", || {
                exited = matches!(child.child.try_wait(), Ok(Some(_)));
                exited
                    || w.sb.requests().iter().any(|r| {
                        r.api == held.api
                            && r.method.eq_ignore_ascii_case(&held.method)
                            && held.path.matches(&r.path)
                    })
            });
            if !exited {
                let _ = child.child.kill();
            }
            (child.finish(), !exited)
        }
    };
    if c.slow() {
        // Slow answers are performed late, after the client gave up: let them land. Each
        // was received before the run ended, so SLOW after the end they are all done.
        std::thread::sleep(SLOW + Duration::from_millis(300));
    }
    let ctx = format!(
        "run under test (killed: {killed}, {:.1?}): {run:#?}\nrequests:\n{}",
        started.elapsed(),
        requests_summary(&w)
    );
    if !killed {
        assert!(
            run.code == 0 || run.code == 1,
            "exit code {} (0 or 1 expected)\n{ctx}",
            run.code
        );
    }
    assert!(
        !run.all().contains("panicked"),
        "the binary panicked\n{ctx}"
    );
    assert!(!w.sb.delete_all_called(), "delete-all was called\n{ctx}");
    assert_no_fragments(&w, &run, "run under test");
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| {
        assert_invariant(&w, c, "after the run")
    })) {
        panic!("{}\n{ctx}", panic_text(p.as_ref()));
    }

    // Without faults, a normal run repairs everything.
    w.sb.clear_faults();
    let before_repair = w.sb.requests().len();
    let again = w.run(&base, &[]);
    let repair_requests: Vec<String> = w.sb.requests()[before_repair..]
        .iter()
        .map(|r| format!("{:?} {} {} -> {:?}", r.api, r.method, r.path, r.status))
        .collect();
    let ctx = format!("{ctx}\nrepair run: {again:#?}\nrepair requests: {repair_requests:#?}");
    assert_eq!(again.code, 0, "the repair run failed\n{ctx}");
    assert_no_fragments(&w, &again, "repair run");
    let now = catch_unwind(AssertUnwindSafe(|| assert_invariant(&w, c, "after repair")))
        .unwrap_or_else(|p| panic!("{}\n{ctx}", panic_text(p.as_ref())));
    let ids: Vec<u64> = now.iter().map(|t| t.id).collect();
    assert!(
        ids.windows(2).all(|p| p[0] == p[1]),
        "the targets hold different tokens after the repair: {ids:?}\n{ctx}"
    );
    let live = w.live_managed_ids();
    assert_eq!(
        live.last(),
        Some(&ids[0]),
        "the targets do not hold the newest managed token\n{ctx}"
    );
    // The repair revokes every older managed token but the newest `keep-previous`; the
    // targets held a live one before it, so exactly that many survive.
    assert_eq!(
        live.len(),
        1 + c.keep_previous as usize,
        "live managed tokens after the repair: {live:?}\n{ctx}"
    );
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-text panic)".into())
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

// Prints the seed, case descriptions and timings: never a token value.
#[allow(clippy::disallowed_macros)]
#[test]
fn chaos() {
    let seed: u64 = env_number("CHAOS_SEED").unwrap_or_else(rand::random);
    let cases: u64 = env_number("CHAOS_CASES").unwrap_or(DEFAULT_CASES);
    let threads: usize = env_number("CHAOS_THREADS").unwrap_or(DEFAULT_THREADS);
    let only: Option<u64> = env_number("CHAOS_CASE");
    eprintln!("chaos: CHAOS_SEED={seed} CHAOS_CASES={cases} (replay: CHAOS_SEED={seed} cargo test --test chaos)");
    let all: Vec<Case> = (0..cases)
        .filter(|i| only.is_none() || only == Some(*i))
        .map(|i| Case::generate(seed, i))
        .collect();
    if std::env::var_os("CHAOS_LIST").is_some() {
        for c in &all {
            eprintln!("{c:?}");
        }
        return;
    }
    let queue = Mutex::new(all.iter());
    let failures = Mutex::new(Vec::new());
    let timings = Mutex::new(HashMap::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let Some(c) = queue.lock().unwrap().next() else {
                    break;
                };
                let t = Instant::now();
                let result = catch_unwind(AssertUnwindSafe(|| run_case(c)));
                timings.lock().unwrap().insert(c.index, t.elapsed());
                if let Err(p) = result {
                    failures.lock().unwrap().push(format!(
                        "--- {c:?} (after {:.1?}):\n{}",
                        t.elapsed(),
                        panic_text(p.as_ref())
                    ));
                }
            });
        }
    });
    eprintln!(
        "chaos: {} case(s) in {:.1?} on {threads} thread(s), slowest {:.1?}",
        all.len(),
        started.elapsed(),
        timings
            .into_inner()
            .unwrap()
            .values()
            .max()
            .copied()
            .unwrap_or_default()
    );
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "CHAOS_SEED={seed}: {} of {} chaos case(s) failed (replay one with CHAOS_SEED={seed} \
         CHAOS_CASE=<i> cargo test --test chaos):\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
