//! The exhaustive fault explorer (issue 15, "Evidence, not clocks"): the real protocol code,
//! run **in-process** (`app::run` with captured sinks and its own environment) against the
//! sandbox, with one fault — and then every ordered pair of faults — placed at every request
//! of a run, from a menu of everything a server (or the runner) can do to a run.
//!
//! **Worlds** (each with `min-age: 1h`, seeded 2 h old so the faulted run is due):
//! `1t` one repository target; `2t` two; `self` self-rotation (the access token is the
//! managed token the target holds, and every run reads its access token from the target,
//! as a workflow does); `grace` with `grace-period: 30m`; and `nd`, one target whose last
//! rotation was 20 min ago and left its 3 h old predecessor live, so the faulted run is a
//! run that is *not due* and only retires. Every world but `1t` starts with the record
//! (SPEC §5, *The record*) naming the token its targets hold, as a rotation by this version
//! leaves it; `1t` starts without one, as the first run after an upgrade does.
//!
//! **Placement.** A request is named by its identity — method, path, and which occurrence of
//! that method and path it is (`PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#2`)
//! — not by its arrival index, because preflight's reads run concurrently and arrive in any
//! order. One fault is placed at every request of the fault-free run of the world; the
//! second fault of a pair at every other request *of the run with the first fault* (so a
//! retry, a key refetch or a sweep that only the first fault causes gets faults too).
//!
//! **Menu** (a kind is placed only where it means something; e.g. "performed" kinds only on
//! writes, the lying token lists only on `GET /api/tokens`): `refuse` (403), `unavailable`
//! (503, not performed), `cut` (connection closed, not performed), `perform_502`
//! (performed, then 502), `perform_502_rest` / `unavailable_rest` (the same from this
//! request on, for every later request of that method and path: a gateway or a service
//! that stays down, so retries do not help), `perform_cut` (performed, then the connection closed),
//! `late_cut` (the connection closed now, the request performed 4 s later: after the
//! client's every look), `date_ahead` / `date_behind` (the answer's `Date` 30 s ahead / one
//! day behind), `key_422` (a secret `PUT` answered 422 about the key; `key_422_rest`: that
//! `PUT` and every later one, the retry after the key refetch too), `list_omits_newest`,
//! `list_huge_id` (a managed-looking token with id 10^15 that does not exist, its
//! `dateCreated` tied with the newest real token's),
//! `kill_before` / `kill_after` (the run is dropped — the process dies — while the server
//! holds request k unperformed / performed but unanswered).
//!
//! **After every case**: the invariant — every target decrypts (with the sandbox's own keys)
//! to a live token — right after the faulted run and again once late commits landed;
//! `status --json` must not say healthy while a target holds a dead token; then a repair
//! run without faults (exit 0, every target holds the same live token), a run 45 min later
//! (not due; with `grace`, past the grace period), the invariant, and a final `status` that
//! is healthy — or, in `1t` when no run could write a record, names nothing but superseded
//! tokens still live (without a record a run that is not due has no evidence to revoke on). No output of any run may hold a token value or a 16-character piece of one.
//! None of the checks read the record (the Actions variable): they hold with or without it.
//!
//! **Clock.** Real, not tokio's paused clock: the sandbox serves on its own thread with real
//! I/O, and a paused clock auto-advances whenever the run waits on that I/O, so every client
//! timeout would fire at once. Instead the runs use `timeout: 1s`, the test-only backoff
//! (`SEQERA_TOKEN_ROTATE_TEST_BACKOFF_MS=1`) and no GitHub pacing; time between runs passes
//! with the sandbox's `advance_clock`.
//!
//! **What runs.** The bounded space does not fit the ~2 minutes CI has for it (about 25,000
//! pairs over the five worlds, 25-60 minutes; see tests/explore/FINDINGS-old-protocol.md),
//! so by default: every single fault of every world (about 360 cases), then a fixed slice of
//! pairs — the `PINNED` cases, which found defects 1-4 of issue 15 in the old protocol —
//! plus a seeded random sample of the other pairs (`EXPLORE_SAMPLE` per world, default 100;
//! seed `EXPLORE_SEED`, default 15). The test prints which. `EXPLORE_ALL=1` runs every pair
//! (the whole bounded space).
//! Each case prints as one line that replays it:
//! `EXPLORE_CASE='1t,perform_502@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#1,key_422@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#2'`.
//! `EXPLORE_SLICE=START..END` runs pairs START..END of each world's enumeration instead (to
//! split the whole space between jobs); `EXPLORE_FILTER=<text>` keeps only the pairs whose
//! case line contains the text (e.g. `key_422`), before the slice or the sample.
//! Other knobs: `EXPLORE_WORLDS=1t,grace`, `EXPLORE_THREADS` (default 4), `EXPLORE_SINGLES=1`
//! (singles only), `EXPLORE_LIST=1` (list the single-fault cases, run none),
//! `EXPLORE_FINDINGS=<file>` (write every failing case line there).
//!
//! Run: `cargo test --test explore -- --nocapture exhaustive` (part of `cargo test
//! --workspace`, so of CI: about 2.5 minutes on an idle 2-core machine). On the old,
//! clock-judging protocol (2e612f0) it fails with the cases of
//! tests/explore/FINDINGS-old-protocol.md; on this one every case passes.

// The explorer prints case lines and tallies (paths, token ids, fault names: never a value;
// the tool's own lines it quotes went through its scrubber).
#![allow(clippy::disallowed_macros)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_no_fragment, Run, GH_TOKEN};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use seqera_sandbox::{
    Api, FaultAction, FaultRule, Occurrence, PathMatch, Sandbox, SecretScope, SeqeraToken,
};
use seqera_token_rotate::{app, http::Scrubber, report::Report, settings};

const OWNER: &str = "octo";
const SECRET: &str = "TOWER_ACCESS_TOKEN";
const TOKEN_NAME: &str = "ci";
/// How old the seeded state is: older than `min-age`, so the faulted run is due.
const SEEDED_AGO: Duration = Duration::from_secs(2 * 3600);
/// In `nd`: the last rotation, and the one before it.
const NOT_DUE_AGO: Duration = Duration::from_secs(20 * 60);
const NOT_DUE_PREDECESSOR_AGO: Duration = Duration::from_secs(3 * 3600);
/// When the "later" run comes: before `min-age` (1h), after `grace-period` (30m).
const LATER: Duration = Duration::from_secs(45 * 60);
/// The runs' per-request timeout: short, so an unanswered request costs little, but not so
/// short that a loaded machine (CI, or 2 cores shared by several builds) times out requests
/// the case did not fault.
const TIMEOUT: &str = "1s";
/// A late commit lands this long after its answer: after the client's last look (one
/// timeout after the writes), with room to spare on a loaded machine.
const LATE: Duration = Duration::from_secs(4);
/// Skews of the `date_*` kinds.
const AHEAD_SECS: i64 = 30;
const BEHIND_SECS: i64 = -86_400;
const HUGE_ID: u64 = 1_000_000_000_000_000;

// ----- worlds -----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum World {
    One,
    Two,
    SelfRotation,
    Grace,
    NotDue,
}

const WORLDS: [World; 5] = [
    World::One,
    World::Two,
    World::SelfRotation,
    World::Grace,
    World::NotDue,
];

impl World {
    fn name(self) -> &'static str {
        match self {
            World::One => "1t",
            World::Two => "2t",
            World::SelfRotation => "self",
            World::Grace => "grace",
            World::NotDue => "nd",
        }
    }

    fn parse(s: &str) -> World {
        WORLDS
            .into_iter()
            .find(|w| w.name() == s)
            .unwrap_or_else(|| panic!("unknown world {s:?} (1t, 2t, self, grace, nd)"))
    }

    /// Whether the world starts with a record naming the token its targets hold, as every
    /// rotation by this version leaves one. `1t` starts without: the first run after an
    /// upgrade, or with `state-variable: none`.
    fn recorded(self) -> bool {
        self != World::One
    }

    fn repos(self) -> &'static [&'static str] {
        match self {
            World::Two => &["app", "lib"],
            _ => &["app"],
        }
    }

    fn targets(self) -> Vec<SecretScope> {
        self.repos()
            .iter()
            .map(|r| SecretScope::repo(OWNER, r))
            .collect()
    }
}

/// A running world: the sandbox and what the runs need.
/// The record's variable for token name `ci` (SPEC §5, *The record*).
const RECORD: &str = "SEQERA_TOKEN_ROTATE_CI";

/// The record a rotation by this version leaves: `token` in every target of `world`.
fn record_json(token: &SeqeraToken, world: World) -> String {
    let mut labels: Vec<String> = world
        .repos()
        .iter()
        .map(|r| format!("repo:{OWNER}/{r}"))
        .collect();
    labels.sort_unstable();
    let d = ring::digest::digest(&ring::digest::SHA256, labels.join("\n").as_bytes());
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    serde_json::json!({
        "tokenId": token.id,
        "tokenName": token.name,
        "targets": format!("sha256:{hex}"),
        "count": labels.len(),
        "at": "2026-01-01T00:00:00Z",
    })
    .to_string()
}

struct Env {
    world: World,
    sb: Sandbox,
    /// The personal access token (not in `self`, which reads the target).
    access: Option<String>,
}

fn stamped(at: time::OffsetDateTime) -> String {
    format!(
        "{TOKEN_NAME}-{:04}{:02}{:02}-{:02}{:02}{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

impl Env {
    /// The world 2 h after its last rotation: a managed token in every target. In `nd`, the
    /// last rotation was 20 min ago (not due) and left its predecessor, 3 h old, live.
    fn seed(world: World) -> Env {
        let sb = Sandbox::start().expect("sandbox starts");
        let user = sb.add_user("alice");
        sb.add_github_token(GH_TOKEN, true);
        for r in world.repos() {
            sb.add_repo(OWNER, r);
        }
        let ago = if world == World::NotDue {
            let now = time::OffsetDateTime::now_utc();
            sb.create_token(user, &stamped(now - NOT_DUE_PREDECESSOR_AGO));
            sb.advance_clock(NOT_DUE_PREDECESSOR_AGO - NOT_DUE_AGO);
            NOT_DUE_AGO
        } else {
            SEEDED_AGO
        };
        let then = time::OffsetDateTime::now_utc() - ago;
        let managed = sb.create_token(user, &stamped(then));
        let access =
            (world != World::SelfRotation).then(|| sb.create_token(user, "alice-personal").value);
        for scope in world.targets() {
            sb.put_secret_plain(&scope, SECRET, &managed.value, None, &[]);
        }
        if world.recorded() {
            sb.set_variable(OWNER, "app", RECORD, &record_json(&managed, world));
        }
        sb.advance_clock(ago);
        Env { world, sb, access }
    }

    /// The settings of every run, as the runner passes them.
    fn vars(&self) -> HashMap<String, String> {
        let access = match &self.access {
            Some(a) => a.clone(),
            // Self-rotation: the workflow passes the secret it rotates.
            None => self
                .sb
                .secret(&self.world.targets()[0], SECRET)
                .map(|s| s.plaintext)
                .unwrap_or_default(),
        };
        let mut v: HashMap<String, String> = [
            ("INPUT_SEQERA-ACCESS-TOKEN", access),
            ("INPUT_SEQERA-API-URL", self.sb.seqera_url()),
            ("INPUT_GITHUB-TOKEN", GH_TOKEN.to_string()),
            ("INPUT_GITHUB-API-URL", self.sb.github_url()),
            ("GITHUB_REPOSITORY", format!("{OWNER}/app")),
            ("GITHUB_ACTIONS", "true".into()),
            ("INPUT_TOKEN-NAME", TOKEN_NAME.into()),
            ("INPUT_MIN-AGE", "1h".into()),
            ("INPUT_TIMEOUT", TIMEOUT.into()),
            ("SEQERA_TOKEN_ROTATE_TEST_BACKOFF_MS", "1".into()),
            ("SEQERA_TOKEN_ROTATE_TEST_PACE", "off".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if self.world == World::Two {
            let lines: Vec<String> = self
                .world
                .repos()
                .iter()
                .map(|r| format!("repo:{OWNER}/{r}"))
                .collect();
            v.insert("INPUT_TARGETS".into(), lines.join("\n"));
        }
        if self.world == World::Grace {
            v.insert("INPUT_GRACE-PERIOD".into(), "30m".into());
        }
        v
    }

    /// One command, in-process, with the output captured. With `kill`, the run is dropped
    /// (its runtime too, closing every connection) as soon as the sandbox holds a request
    /// for a `kill_*` fault: `code` is then `None`.
    fn run(&self, args: &[&str], kill: bool) -> (Option<u8>, Run) {
        let vars = self.vars();
        let lookup = |k: &str| vars.get(k).cloned();
        let mut argv = vec!["seqera-token-rotate"];
        argv.extend_from_slice(args);
        let matches = settings::command().get_matches_from(argv);
        let stdout = Arc::new(Mutex::new(Vec::<u8>::new()));
        let stderr = Arc::new(Mutex::new(Vec::<u8>::new()));
        let report = Report::with_sinks(true, Scrubber::default(), stdout.clone(), stderr.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let held = self.sb.held_requests();
        let code = rt.block_on(async {
            let run = app::run(&matches, &lookup, &report);
            tokio::pin!(run);
            loop {
                tokio::select! {
                    code = &mut run => return Some(code),
                    () = tokio::time::sleep(Duration::from_millis(2)), if kill => {
                        if self.sb.held_requests() > held {
                            return None;
                        }
                    }
                }
            }
        });
        drop(rt);
        let text =
            |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
        let run = Run {
            code: code.map_or(-1, i32::from),
            stdout: text(&stdout),
            stderr: text(&stderr),
            outputs: HashMap::new(),
            outputs_raw: String::new(),
            summary: String::new(),
        };
        // `EXPLORE_VERBOSE=1` with `EXPLORE_CASE`: every run's output (scrubbed by the tool
        // itself), to read what a failing case did.
        if env_var("EXPLORE_VERBOSE").is_some() {
            println!(
                "--- run {args:?}: exit {code:?}\n{}{}",
                run.stdout, run.stderr
            );
        }
        (code, run)
    }

    /// What each target holds: `Ok(token id)` if live, `Err(why)` if not.
    fn holdings(&self) -> Vec<(String, Result<u64, String>)> {
        self.world
            .targets()
            .iter()
            .map(|scope| {
                let label = format!("{scope:?}");
                let held = match self.sb.secret(scope, SECRET) {
                    None => Err("no secret".to_string()),
                    Some(s) => match self.sb.token_by_value(&s.plaintext) {
                        None => Err("a value that is no Seqera token".to_string()),
                        Some(t) if t.revoked => Err(format!("revoked token id {}", t.id)),
                        Some(t) => Ok(t.id),
                    },
                };
                (label, held)
            })
            .collect()
    }

    /// Every value a run must never print.
    fn secrets(&self) -> Vec<String> {
        let mut v: Vec<String> = self.sb.tokens().into_iter().map(|t| t.value).collect();
        v.push(GH_TOKEN.to_string());
        v
    }
}

// ----- faults -----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Refuse,
    Unavailable,
    Cut,
    Perform502,
    Perform502Rest,
    UnavailableRest,
    PerformCut,
    LateCut,
    DateAhead,
    DateBehind,
    Key422,
    Key422Rest,
    ListOmitsNewest,
    ListHugeId,
    KillBefore,
    KillAfter,
}

const KINDS: [Kind; 16] = [
    Kind::Refuse,
    Kind::Unavailable,
    Kind::Cut,
    Kind::Perform502,
    Kind::Perform502Rest,
    Kind::UnavailableRest,
    Kind::PerformCut,
    Kind::LateCut,
    Kind::DateAhead,
    Kind::DateBehind,
    Kind::Key422,
    Kind::Key422Rest,
    Kind::ListOmitsNewest,
    Kind::ListHugeId,
    Kind::KillBefore,
    Kind::KillAfter,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Refuse => "refuse",
            Kind::Unavailable => "unavailable",
            Kind::Cut => "cut",
            Kind::Perform502 => "perform_502",
            Kind::Perform502Rest => "perform_502_rest",
            Kind::UnavailableRest => "unavailable_rest",
            Kind::PerformCut => "perform_cut",
            Kind::LateCut => "late_cut",
            Kind::DateAhead => "date_ahead",
            Kind::DateBehind => "date_behind",
            Kind::Key422 => "key_422",
            Kind::Key422Rest => "key_422_rest",
            Kind::ListOmitsNewest => "list_omits_newest",
            Kind::ListHugeId => "list_huge_id",
            Kind::KillBefore => "kill_before",
            Kind::KillAfter => "kill_after",
        }
    }

    fn parse(s: &str) -> Kind {
        KINDS
            .into_iter()
            .find(|k| k.name() == s)
            .unwrap_or_else(|| panic!("unknown fault kind {s:?}"))
    }

    /// Whether this kind means something at this request (else it is not placed there).
    fn applies(self, p: &Place) -> bool {
        let write = p.method != "GET";
        match self {
            Kind::Perform502
            | Kind::Perform502Rest
            | Kind::PerformCut
            | Kind::LateCut
            | Kind::KillAfter => write,
            Kind::Key422 | Kind::Key422Rest => {
                p.method == "PUT"
                    && p.path.contains("/secrets/")
                    && !p.path.ends_with("/public-key")
            }
            Kind::ListOmitsNewest | Kind::ListHugeId => {
                p.method == "GET" && p.path == "/api/tokens"
            }
            _ => true,
        }
    }

    fn kills(self) -> bool {
        matches!(self, Kind::KillBefore | Kind::KillAfter)
    }

    fn action(self) -> FaultAction {
        match self {
            Kind::Refuse => FaultAction::status(403),
            Kind::Unavailable => FaultAction::status(503),
            Kind::Cut => FaultAction::Drop,
            Kind::Perform502 | Kind::Perform502Rest => FaultAction::perform_then(502),
            Kind::UnavailableRest => FaultAction::status(503),
            Kind::PerformCut => FaultAction::PerformThenDrop,
            Kind::LateCut => FaultAction::CommitLater {
                status: None,
                after: LATE,
            },
            Kind::DateAhead => FaultAction::SkewDate(AHEAD_SECS),
            Kind::DateBehind => FaultAction::SkewDate(BEHIND_SECS),
            Kind::Key422 | Kind::Key422Rest => FaultAction::Status {
                status: 422,
                headers: Vec::new(),
                body: serde_json::json!({
                    "message": "Invalid request.\n\nkey_id does not match the current public key",
                    "status": "422"
                })
                .to_string(),
            },
            Kind::ListOmitsNewest => FaultAction::OmitNewestToken,
            Kind::ListHugeId => FaultAction::ExtraToken {
                id: HUGE_ID,
                name: stamped(time::OffsetDateTime::now_utc()),
            },
            Kind::KillBefore => FaultAction::Hold,
            Kind::KillAfter => FaultAction::PerformThenHold,
        }
    }
}

/// A request by identity: method, path (no query), and which occurrence of the two.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Place {
    method: String,
    path: String,
    nth: u32,
}

impl Place {
    fn text(&self) -> String {
        format!("{}:{}#{}", self.method, self.path, self.nth)
    }

    fn parse(s: &str) -> Place {
        let (method, rest) = s.split_once(':').expect("METHOD:PATH#N");
        let (path, nth) = rest.rsplit_once('#').expect("METHOD:PATH#N");
        Place {
            method: method.into(),
            path: path.into(),
            nth: nth.parse().expect("#N"),
        }
    }

    fn api(&self) -> Api {
        if self.path.starts_with("/api/") {
            Api::Seqera
        } else {
            Api::Github
        }
    }

    /// The requests a run made, by identity, in order of arrival.
    fn of(requests: &[seqera_sandbox::RequestRecord]) -> Vec<Place> {
        let mut seen: HashMap<(String, String), u32> = HashMap::new();
        requests
            .iter()
            .map(|r| {
                let path = r.path.split('?').next().unwrap_or(&r.path).to_string();
                let n = seen.entry((r.method.clone(), path.clone())).or_default();
                *n += 1;
                Place {
                    method: r.method.clone(),
                    path,
                    nth: *n,
                }
            })
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Fault {
    kind: Kind,
    at: Place,
}

impl Fault {
    fn rule(&self) -> FaultRule {
        FaultRule {
            api: self.at.api(),
            method: self.at.method.clone(),
            path: PathMatch::Exact(self.at.path.clone()),
            when: match self.kind {
                Kind::Perform502Rest | Kind::UnavailableRest | Kind::Key422Rest => {
                    Occurrence::From(self.at.nth)
                }
                _ => Occurrence::Nth(self.at.nth),
            },
            action: self.kind.action(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Case {
    world: World,
    faults: Vec<Fault>,
}

impl Case {
    fn text(&self) -> String {
        let mut s = self.world.name().to_string();
        for f in &self.faults {
            s.push_str(&format!(",{}@{}", f.kind.name(), f.at.text()));
        }
        s
    }

    fn parse(s: &str) -> Case {
        let mut parts = s.split(',');
        let world = World::parse(parts.next().unwrap_or_default());
        let faults = parts
            .map(|p| {
                let (kind, at) = p.split_once('@').expect("KIND@PLACE");
                Fault {
                    kind: Kind::parse(kind),
                    at: Place::parse(at),
                }
            })
            .collect();
        Case { world, faults }
    }
}

// ----- one case -----

/// What one case found, and the requests of its faulted run (where a second fault goes).
struct Outcome {
    failures: Vec<String>,
    requests: Vec<Place>,
}

fn check_holdings(env: &Env, stage: &str, failures: &mut Vec<String>) -> bool {
    let mut ok = true;
    for (label, held) in env.holdings() {
        if let Err(why) = held {
            failures.push(format!("invariant: {stage}: {label} holds {why}"));
            ok = false;
        }
    }
    ok
}

fn check_leaks(env: &Env, run: &Run, stage: &str, failures: &mut Vec<String>) {
    let secrets = env.secrets();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        assert_no_fragment(run, &secrets, stage)
    }));
    if let Err(p) = caught {
        failures.push(format!("leak: {}", panic_text(&p)));
    }
}

/// `status --json`; fails the case if it says healthy while a target holds a dead token.
/// Returns whether it said healthy, and the problems it named.
fn check_status(env: &Env, stage: &str, failures: &mut Vec<String>) -> (bool, String) {
    let (code, run) = env.run(&["status", "--json"], false);
    check_leaks(env, &run, stage, failures);
    let doc = run
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    let json_healthy = doc.as_ref().and_then(|d| d["healthy"].as_bool());
    let problems = doc.map(|d| d["problems"].to_string()).unwrap_or_default();
    let healthy = code == Some(0);
    if json_healthy.is_some_and(|j| j != healthy) {
        failures.push(format!(
            "status: {stage}: exit {code:?} but the JSON says healthy={json_healthy:?}"
        ));
    }
    let dead: Vec<String> = env
        .holdings()
        .into_iter()
        .filter_map(|(l, h)| h.err().map(|why| format!("{l} holds {why}")))
        .collect();
    if healthy && !dead.is_empty() {
        failures.push(format!(
            "status-lies: {stage}: status says healthy while {}",
            dead.join("; ")
        ));
    }
    (healthy, problems)
}

fn wait_for_late_commits(sb: &Sandbox) {
    let start = Instant::now();
    while sb.late_commits_pending() > 0 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run_case(case: &Case) -> Outcome {
    let env = Env::seed(case.world);
    let mut failures = Vec::new();
    for f in &case.faults {
        env.sb.add_fault(f.rule());
    }
    let kill = case.faults.iter().any(|f| f.kind.kills());
    let start = env.sb.requests().len();
    let (code, run) = env.run(&[], kill);
    let requests = Place::of(&env.sb.requests()[start..]);
    env.sb.clear_faults();
    check_leaks(&env, &run, "faulted run", &mut failures);
    let what = match code {
        Some(c) => format!("faulted run (exit {c})"),
        None => "faulted run (killed)".to_string(),
    };
    check_holdings(&env, &what, &mut failures);
    if env.sb.late_commits_pending() > 0 {
        wait_for_late_commits(&env.sb);
        check_holdings(
            &env,
            &format!("{what}, once late commits landed"),
            &mut failures,
        );
    }
    check_status(&env, "status after the faulted run", &mut failures);

    let (code, run) = env.run(&[], false);
    check_leaks(&env, &run, "repair run", &mut failures);
    if code != Some(0) {
        failures.push(format!(
            "repair: the repair run exits {code:?}: {}",
            last_error(&run)
        ));
    }
    if check_holdings(&env, "after the repair run", &mut failures) {
        let mut ids: Vec<u64> = env
            .holdings()
            .into_iter()
            .filter_map(|(_, h)| h.ok())
            .collect();
        ids.dedup();
        if ids.len() > 1 {
            failures.push(format!(
                "repair: after the repair run the targets hold different tokens {ids:?}"
            ));
        }
    }

    env.sb.advance_clock(LATER);
    let (code, run) = env.run(&[], false);
    check_leaks(&env, &run, "later run", &mut failures);
    if code != Some(0) {
        failures.push(format!(
            "later: the later run exits {code:?}: {}",
            last_error(&run)
        ));
    }
    check_holdings(&env, "after the later run", &mut failures);
    let (healthy, problems) = check_status(&env, "final status", &mut failures);
    // Without a record, a run that is not due has no evidence about what a sealed secret
    // holds, so it leaves superseded tokens live (SPEC §5 step 7); status names them, and
    // the next due rotation revokes them. That is the truth, not a failure: every other
    // problem is.
    let only_superseded = !case.world.recorded()
        && serde_json::from_str::<Vec<String>>(&problems).is_ok_and(|ps| {
            !ps.is_empty() && ps.iter().all(|p| p.contains("is still live past its time"))
        });
    if !healthy && !only_superseded {
        failures.push(format!(
            "final-unhealthy: status is not healthy after the repair and later runs: {problems}"
        ));
    }
    Outcome { failures, requests }
}

fn last_error(run: &Run) -> String {
    run.stdout
        .lines()
        .chain(run.stderr.lines())
        .rfind(|l| l.starts_with("::error"))
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "a panic".into())
}

/// Runs a case; a panic (in the tool or the checks) is a failure of that case.
fn explore_one(case: &Case) -> Outcome {
    quiet_panics();
    QUIET.with(|q| q.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| run_case(case)));
    QUIET.with(|q| q.set(false));
    match result {
        Ok(o) => o,
        Err(p) => Outcome {
            failures: vec![format!("panic: {}", panic_text(&p))],
            requests: Vec::new(),
        },
    }
}

// ----- enumeration and the driver -----

fn singles(world: World, baseline: &[Place]) -> Vec<Case> {
    let mut cases = Vec::new();
    for at in baseline {
        for kind in KINDS.into_iter().filter(|k| k.applies(at)) {
            cases.push(Case {
                world,
                faults: vec![Fault {
                    kind,
                    at: at.clone(),
                }],
            });
        }
    }
    cases
}

/// Every ordered pair: the second fault at every other request of the first fault's run.
fn pairs(single: &Case, its_requests: &[Place]) -> Vec<Case> {
    let first = &single.faults[0];
    let mut cases = Vec::new();
    for at in its_requests.iter().filter(|p| **p != first.at) {
        for kind in KINDS.into_iter().filter(|k| k.applies(at)) {
            let mut c = single.clone();
            c.faults.push(Fault {
                kind,
                at: at.clone(),
            });
            cases.push(c);
        }
    }
    cases
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_num(name: &str, default: u64) -> u64 {
    env_var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

/// Runs cases on `threads` threads; returns each case's outcome, in order.
fn run_all(cases: &[Case], threads: usize) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..cases.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { return };
                let o = explore_one(case);
                if !o.failures.is_empty() {
                    eprintln!(
                        "FAIL EXPLORE_CASE='{}'\n    {}",
                        case.text(),
                        o.failures.join("\n    ")
                    );
                }
                results.lock().unwrap()[i] = Some(o);
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|o| o.expect("every case ran"))
        .collect()
}

/// The fault-free run of a world: its requests are where single faults go.
fn baseline(world: World) -> (Vec<Place>, Vec<String>) {
    let o = explore_one(&Case {
        world,
        faults: Vec::new(),
    });
    (o.requests, o.failures)
}

thread_local! {
    /// Set while a case runs: its panics become the case's failure, not noise on stderr.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Keeps the panic hook from printing the panics a case catches (each is reported as the
/// case's failure); every other panic prints as usual.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                default(info);
            }
        }));
    });
}

/// Pairs run by default, besides the sample: the cases that found defects 1-4 of issue 15
/// in the old protocol (tests/explore/FINDINGS-old-protocol.md).
const PINNED: &[&str] = &[
    // Defect 1: a `Date` ahead (on preflight's key read) rolls back a committed 502 write.
    "1t,date_ahead@GET:/repos/octo/app/actions/secrets/public-key#1,perform_502_rest@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#1",
    "self,date_ahead@GET:/repos/octo/app/actions/secrets/public-key#1,perform_502_rest@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#1",
    "grace,date_ahead@GET:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#1,perform_502_rest@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#1",
    // Defect 2: a token list with a huge id, tied with the newest token: the not-due run
    // revokes the token the target holds (a single fault: it runs as one anyway).
    "nd,list_huge_id@GET:/api/tokens#1",
    // Defect 2: a create and a write that both land late; the next run finds the target
    // "current" for the late orphan and revokes the token it holds.
    "1t,late_cut@POST:/api/tokens#1,late_cut@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#1",
    "grace,late_cut@POST:/api/tokens#1,late_cut@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#1",
    // Defect 3: "may have been stored" forgotten after a 422 about the key.
    "1t,perform_cut@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#1,key_422_rest@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#2",
    "self,perform_502@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#1,key_422_rest@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#2",
    "grace,late_cut@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#1,key_422_rest@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#2",
    // Defect 4: a write that lands after the second look, then a clear refusal.
    "1t,late_cut@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#1,refuse@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#2",
    "grace,late_cut@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#1,unavailable_rest@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#2",
];
/// Pairs sampled per world by default.
const DEFAULT_SAMPLE: u64 = 100;
const DEFAULT_SEED: u64 = 15;

#[derive(Default)]
struct Tally {
    cases: usize,
    failed: Vec<(String, Vec<String>)>,
    took: Duration,
}

#[test]
fn exhaustive() {
    let threads = env_num("EXPLORE_THREADS", 4) as usize;
    if let Some(one) = env_var("EXPLORE_CASE") {
        let case = Case::parse(&one);
        let o = explore_one(&case);
        eprintln!(
            "EXPLORE_CASE='{}': {} request(s) in the faulted run",
            case.text(),
            o.requests.len()
        );
        for p in &o.requests {
            eprintln!("    {}", p.text());
        }
        assert!(
            o.failures.is_empty(),
            "EXPLORE_CASE='{}'\n    {}",
            case.text(),
            o.failures.join("\n    ")
        );
        return;
    }
    let worlds: Vec<World> = match env_var("EXPLORE_WORLDS") {
        Some(w) => w.split(',').map(World::parse).collect(),
        None => WORLDS.to_vec(),
    };
    let all = env_var("EXPLORE_ALL").is_some();
    let singles_only = env_var("EXPLORE_SINGLES").is_some();
    let list = env_var("EXPLORE_LIST").is_some();
    let sample = env_num("EXPLORE_SAMPLE", DEFAULT_SAMPLE) as usize;
    let seed = env_num("EXPLORE_SEED", DEFAULT_SEED);
    let filter = env_var("EXPLORE_FILTER");
    let slice = env_var("EXPLORE_SLICE").map(|v| {
        let (a, b) = v.split_once("..").expect("EXPLORE_SLICE=START..END");
        (
            a.parse::<usize>().expect("START"),
            b.parse::<usize>().expect("END"),
        )
    });
    eprintln!(
        "explore: worlds {:?}; singles: all; pairs: {}; {threads} thread(s)",
        worlds.iter().map(|w| w.name()).collect::<Vec<_>>(),
        if singles_only {
            "none (EXPLORE_SINGLES)".to_string()
        } else if all {
            "all (EXPLORE_ALL)".to_string()
        } else if let Some((a, b)) = slice {
            format!("pairs {a}..{b} of each world's enumeration (EXPLORE_SLICE)")
        } else {
            format!(
                "the {} pinned case(s) + a random sample of {sample} per world (EXPLORE_SEED={seed}; EXPLORE_ALL=1 runs all)",
                PINNED.len()
            )
        }
    );
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for world in worlds {
        let t0 = Instant::now();
        let (base, base_failures) = baseline(world);
        assert!(
            base_failures.is_empty(),
            "world {} fails without faults: {base_failures:?}",
            world.name()
        );
        let singles = singles(world, &base);
        if list {
            for c in &singles {
                println!("EXPLORE_CASE='{}'", c.text());
            }
            continue;
        }
        let single_outcomes = run_all(&singles, threads);
        let mut space = Vec::new();
        for (s, o) in singles.iter().zip(&single_outcomes) {
            space.extend(pairs(s, &o.requests));
        }
        let pair_space = space.len();
        if let Some(f) = &filter {
            space.retain(|c| c.text().contains(f.as_str()));
        }
        let mut chosen: Vec<Case> = PINNED
            .iter()
            .map(|c| Case::parse(c))
            .filter(|c| c.world == world && !singles_only && !singles.contains(c))
            .collect();
        if singles_only {
            chosen.clear();
        } else if all {
            chosen = space;
        } else if let Some((a, b)) = slice {
            chosen = space
                .into_iter()
                .skip(a)
                .take(b.saturating_sub(a))
                .collect();
        } else if !singles_only {
            space.retain(|c| !chosen.contains(c));
            space.shuffle(&mut StdRng::seed_from_u64(seed ^ world as u64));
            space.truncate(sample);
            chosen.extend(space);
        }
        let pair_outcomes = run_all(&chosen, threads);
        let tally = tallies.entry(world.name()).or_default();
        tally.cases = 1 + singles.len() + chosen.len();
        for (c, o) in singles
            .iter()
            .chain(&chosen)
            .zip(single_outcomes.iter().chain(&pair_outcomes))
        {
            if !o.failures.is_empty() {
                tally.failed.push((c.text(), o.failures.clone()));
            }
        }
        tally.took = t0.elapsed();
        eprintln!(
            "explore: world {}: {} request(s) in the fault-free run, {} single(s), {} pair(s) in the space, {} run; {} case(s) in {:.1?} ({:.0?} a case); {} failed",
            world.name(),
            base.len(),
            singles.len(),
            pair_space,
            chosen.len(),
            tally.cases,
            tally.took,
            tally.took / tally.cases.max(1) as u32,
            tally.failed.len()
        );
    }
    let failed: Vec<&(String, Vec<String>)> = tallies.values().flat_map(|t| &t.failed).collect();
    let mut by_check: BTreeMap<String, usize> = BTreeMap::new();
    for (_, fs) in &failed {
        let mut kinds: Vec<&str> = fs
            .iter()
            .map(|f| f.split(':').next().unwrap_or(""))
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        for k in kinds {
            *by_check.entry(k.to_string()).or_default() += 1;
        }
    }
    if let Some(path) = env_var("EXPLORE_FINDINGS") {
        let mut text = String::new();
        for (c, fs) in &failed {
            text.push_str(&format!("EXPLORE_CASE='{c}'\n    {}\n", fs.join("\n    ")));
        }
        std::fs::write(&path, text).expect("findings file is written");
    }
    assert!(
        failed.is_empty(),
        "{} case(s) failed; by check: {by_check:?}; the first:\n{}",
        failed.len(),
        failed
            .iter()
            .take(20)
            .map(|(c, fs)| format!("EXPLORE_CASE='{c}'\n    {}", fs.join("\n    ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The explorer's own machinery on every world, without faults: every check passes, and a
/// run killed at a held request really stops there (and the repair run then repairs). Runs
/// in CI on any protocol; a failure here is a broken explorer, not a protocol defect.
#[test]
fn explorer_worlds_pass_without_faults() {
    for world in WORLDS {
        let (base, failures) = baseline(world);
        assert!(failures.is_empty(), "world {}: {failures:?}", world.name());
        let rotates =
            base.iter().any(|p| p.method == "POST") && base.iter().any(|p| p.method == "PUT");
        let retires = base.iter().any(|p| p.method == "DELETE");
        if world == World::NotDue {
            assert!(
                !rotates && retires,
                "world nd: the fault-free run only retires: {base:?}"
            );
        } else {
            assert!(
                rotates,
                "world {}: the fault-free run rotates: {base:?}",
                world.name()
            );
        }
        // Every case line replays to itself.
        for c in singles(world, &base) {
            assert_eq!(Case::parse(&c.text()), c);
        }
    }
    for p in PINNED {
        assert_eq!(Case::parse(p).text(), *p);
    }
    let case = Case::parse("1t,kill_before@POST:/api/tokens#1");
    let o = explore_one(&case);
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    assert_eq!(
        o.requests.last().map(Place::text).as_deref(),
        Some("POST:/api/tokens#1"),
        "the killed run stops at the held request"
    );
}
