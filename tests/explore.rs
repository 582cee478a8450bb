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
//! run that is *not due* and only retires; and `mixed` (issue 16), one target of each
//! store kind in one `targets` list: the repository secret, `aws-sm:eu-west-1/seqera/caseN`
//! (moto), `vault:secret/seqera/ci` (OpenBao, KV v2, in namespace `caseN`, with a
//! least-policy token) and `gitlab:grp/app` (the sandbox's GitLab fake; a masked, readable
//! variable). Every world but `1t` starts with the record (SPEC §5, *The record*) naming
//! the token its targets hold — its target-set hash over every label — as a rotation by
//! this version leaves it; `1t` starts without one, as the first run after an upgrade does.
//!
//! **The mixed world's servers.** moto and `bao server -dev` start once per world (and stop
//! with it); each case gets a fresh secret and namespace of its own (`N` counts cases in
//! the process), so cases stay independent and replay alone with `EXPLORE_CASE`. AWS and
//! Vault requests pass through the tests' fault proxy (tests/common/proxy.rs), which names
//! them and places their faults. The AWS SDK reads its endpoint and credentials from the
//! process environment, not from the run's settings: so one AWS proxy serves the whole
//! process (its first use, at the start of each test, sets `AWS_ENDPOINT_URL` and moto's
//! credentials), routing each request by the secret name in its body; the Vault proxy is
//! one per world, routing by the namespace header. Binaries:
//! `SEQERA_TOKEN_ROTATE_MOTO_SERVER` and `SEQERA_TOKEN_ROTATE_BAO` (as tests/aws.rs and
//! tests/vault.rs); missing, the world fails under `CI=true` and is skipped, loudly,
//! elsewhere (the other worlds run).
//!
//! **Placement.** A request is named by its identity — method, path, and which occurrence of
//! that method and path it is (`PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#2`)
//! — not by its arrival index, because preflight's reads run concurrently and arrive in any
//! order. An AWS request (always `POST /`) is named by its `X-Amz-Target` action instead:
//! `POST:secretsmanager.PutSecretValue#1`. One fault is placed at every request of the
//! fault-free run of the world; the
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
//! holds request k unperformed / performed but unanswered). At AWS and Vault (the proxy)
//! the network's and gateways' kinds only: `refuse` (403, in the store's own error shape),
//! `unavailable`, `cut`, `perform_502`, the `_rest` kinds, `perform_cut` and the kills
//! (the proxy holds the request; the kill waits on the sandbox's and the proxies' held
//! counts); no `late_cut`. The `date_*` kinds go to Seqera and GitHub answers only;
//! GitLab gets the sandbox's menu otherwise.
//!
//! **After every case**: the invariant — every target decrypts (with the sandbox's own keys)
//! to a live token; in `mixed` also the AWS secret's `AWSCURRENT`, the Vault field and the
//! GitLab variable hold a live token, whose value's `tid` is its id (read from moto,
//! OpenBao and the fake directly, not through the proxies) — right after the faulted run
//! and again once late commits landed;
//! `status --json` must not say healthy while a target holds a dead token; then a repair
//! run without faults (exit 0, every target holds the same live token), a run 45 min later
//! (not due; with `grace`, past the grace period), the invariant, and a final `status` that
//! is healthy — or, in `1t` when no run could write a record, names nothing but superseded
//! tokens still live (without a record a run that is not due has no evidence to revoke on). No output of any run may hold a token value or a 16-character piece of one
//! (nor, in `mixed`, of the GitLab token, moto's secret key and session token, OpenBao's
//! root token or the case's Vault token).
//! None of the checks read the record (the Actions variable): they hold with or without it.
//!
//! **Clock.** Real, not tokio's paused clock: the sandbox serves on its own thread with real
//! I/O, and a paused clock auto-advances whenever the run waits on that I/O, so every client
//! timeout would fire at once. Instead the runs use `timeout: 1s`, the test-only backoff
//! (`SEQERA_TOKEN_ROTATE_TEST_BACKOFF_MS=1`) and no GitHub pacing; time between runs passes
//! with the sandbox's `advance_clock`.
//!
//! **What runs.** The bounded space does not fit the ~2 minutes CI has for it (37,207 pairs
//! over the five sandbox worlds, about 1.5 hours on a quiet 2-core machine, plus 25,192 in
//! `mixed`; see tests/explore/FINDINGS-old-protocol.md), so by default: every single fault
//! of every world (441 in the five, 172 in `mixed`), then a fixed slice of
//! pairs — the `PINNED` cases, which found defects 1-4 of issue 15 in the old protocol —
//! plus a seeded random sample of the other pairs (`EXPLORE_SAMPLE` per world, default 100,
//! and 30 in `mixed`; seed `EXPLORE_SEED`, default 15). The test prints which.
//! `EXPLORE_ALL=1` runs every pair (the whole bounded space).
//!
//! `mixed`, measured (2 cores shared with other builds, load 4-9; 4 threads): 23 requests
//! in the fault-free run (Seqera 5, GitHub 5, GitLab 4, AWS 3, Vault 6), 172 singles in
//! about 45 s (0.23-0.27 s a case; `late_cut` cases 5 s each), 25,200 pairs in the space
//! (the whole of it about 1.9 hours: `EXPLORE_WORLDS=mixed EXPLORE_ALL=1`, or split with
//! `EXPLORE_SLICE`); by default its singles and 30 pairs: 47 s of a default run of all six
//! worlds of 190 s at load 4 (five worlds 143 s), 59 s of 226 s at load 8.
//! Each case prints as one line that replays it:
//! `EXPLORE_CASE='1t,perform_502@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#1,key_422@PUT:/repos/octo/app/actions/secrets/TOWER_ACCESS_TOKEN#2'`.
//! `EXPLORE_SLICE=START..END` runs pairs START..END of each world's enumeration instead (to
//! split the whole space between jobs); `EXPLORE_FILTER=<text>` keeps only the pairs whose
//! case line contains the text (e.g. `key_422`), before the slice or the sample.
//! Other knobs: `EXPLORE_WORLDS=1t,grace`, `EXPLORE_THREADS` (default 4), `EXPLORE_SINGLES=1`
//! (singles only), `EXPLORE_LIST=1` (list the single-fault cases, run none),
//! `EXPLORE_FINDINGS=<file>` (write every failing case line there), `EXPLORE_SUMMARY=<file>`
//! (write what ran, the lines above, there: `.ci/run` prints it after the tests).
//!
//! Run: `cargo test --test explore -- --nocapture exhaustive` (part of `cargo test
//! --workspace`, so of CI: 176 s on an idle 2-core machine for 1,159 cases, 49 s of it
//! `mixed`; `.ci/run` prints the per-world lines after the tests). On the old,
//! clock-judging protocol (2e612f0) it fails with the cases of
//! tests/explore/FINDINGS-old-protocol.md; on this one every case passes — also the whole
//! bounded space of `1t` (8,003 cases, 20 minutes) and of `nd` (2,285 cases, 4 minutes), and
//! every pair with the faults that found defects 1-4 (the same file, "on the evidence
//! protocol").

// The explorer prints case lines and tallies (paths, token ids, fault names: never a value;
// the tool's own lines it quotes went through its scrubber).
#![allow(clippy::disallowed_macros)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::bao::{self, Bao};
use common::moto::{self, Moto};
use common::proxy::{Act, FaultProxy, Gate, Seen};
use common::{assert_no_fragment, tid_of, Run, GH_TOKEN};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use seqera_sandbox::{
    Api, FaultAction, FaultRule, GitlabVariable, Occurrence, PathMatch, Sandbox, SecretScope,
    SeqeraToken,
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
    Mixed,
}

const WORLDS: [World; 6] = [
    World::One,
    World::Two,
    World::SelfRotation,
    World::Grace,
    World::NotDue,
    World::Mixed,
];

impl World {
    fn name(self) -> &'static str {
        match self {
            World::One => "1t",
            World::Two => "2t",
            World::SelfRotation => "self",
            World::Grace => "grace",
            World::NotDue => "nd",
            World::Mixed => "mixed",
        }
    }

    fn parse(s: &str) -> World {
        WORLDS
            .into_iter()
            .find(|w| w.name() == s)
            .unwrap_or_else(|| panic!("unknown world {s:?} (1t, 2t, self, grace, nd, mixed)"))
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

/// The record a rotation by this version leaves: `token` in every target of `labels`.
fn record_json(token: &SeqeraToken, mut labels: Vec<String>) -> String {
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
    /// In `mixed`: the case's AWS secret, Vault namespace and GitLab project.
    mixed: Option<Mixed>,
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
    fn seed(world: World, servers: Option<&Arc<Servers>>) -> Env {
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
        let mixed = (world == World::Mixed).then(|| {
            let servers = servers.expect("the mixed world runs with its servers");
            sb.add_gitlab_token(GL_TOKEN, true);
            sb.add_gitlab_project(GL_PROJECT);
            // Masked, not hidden: the run can read it back.
            let mut v = GitlabVariable::new(SECRET, &managed.value);
            v.masked = true;
            sb.put_gitlab_variable(GL_PROJECT, v);
            Mixed::seed(servers, &managed.value)
        });
        let env = Env {
            world,
            sb,
            access,
            mixed,
        };
        if world.recorded() {
            let record = record_json(&managed, env.labels());
            env.sb.set_variable(OWNER, "app", RECORD, &record);
        }
        env.sb.advance_clock(ago);
        env
    }

    /// Every target's label, as the targets setting lists them.
    fn labels(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .world
            .repos()
            .iter()
            .map(|r| format!("repo:{OWNER}/{r}"))
            .collect();
        if let Some(m) = &self.mixed {
            v.extend(m.labels());
        }
        v
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
        if matches!(self.world, World::Two | World::Mixed) {
            v.insert("INPUT_TARGETS".into(), self.labels().join("\n"));
        }
        if let Some(m) = &self.mixed {
            for (k, val) in m.vars(&self.sb) {
                v.insert(k.into(), val);
            }
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
        let held = self.held();
        let code = rt.block_on(async {
            let run = app::run(&matches, &lookup, &report);
            tokio::pin!(run);
            loop {
                tokio::select! {
                    code = &mut run => return Some(code),
                    () = tokio::time::sleep(Duration::from_millis(2)), if kill => {
                        if self.held() > held {
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

    /// Requests held unanswered (for a `kill_*` fault), by the sandbox and the proxies.
    fn held(&self) -> u64 {
        self.sb.held_requests() + self.mixed.as_ref().map_or(0, Mixed::held)
    }

    /// Places a fault: at the sandbox, or at the proxy in front of AWS or Vault.
    fn add_fault(&self, f: &Fault) {
        match (f.at.dest(), &self.mixed) {
            (Dest::Aws, Some(m)) => m.aws.faults.lock().unwrap().push(f.clone()),
            (Dest::Vault, Some(m)) => m.vault.faults.lock().unwrap().push(f.clone()),
            (Dest::Aws | Dest::Vault, None) => {
                panic!(
                    "{}: no such store in world {}",
                    f.at.text(),
                    self.world.name()
                )
            }
            _ => self.sb.add_fault(f.rule()),
        }
    }

    fn clear_faults(&self) {
        self.sb.clear_faults();
        if let Some(m) = &self.mixed {
            m.aws.faults.lock().unwrap().clear();
            m.vault.faults.lock().unwrap().clear();
        }
    }

    /// How many requests each server has seen: a mark for [`Env::requests_since`].
    fn mark(&self) -> [usize; 3] {
        let lane = |l: &Lane| l.log.lock().unwrap().len();
        match &self.mixed {
            Some(m) => [self.sb.requests().len(), lane(&m.aws), lane(&m.vault)],
            None => [self.sb.requests().len(), 0, 0],
        }
    }

    /// The requests since `mark`, by identity: the sandbox's, then AWS's, then Vault's.
    fn requests_since(&self, mark: [usize; 3]) -> Vec<Place> {
        let mut named: Vec<(String, String)> = self.sb.requests()[mark[0]..]
            .iter()
            .map(|r| {
                let path = r.path.split('?').next().unwrap_or(&r.path);
                (r.method.clone(), path.to_string())
            })
            .collect();
        if let Some(m) = &self.mixed {
            named.extend_from_slice(&m.aws.log.lock().unwrap()[mark[1]..]);
            named.extend_from_slice(&m.vault.log.lock().unwrap()[mark[2]..]);
        }
        Place::of(named)
    }

    /// What each target holds: `Ok(token id)` if live, `Err(why)` if not.
    fn holdings(&self) -> Vec<(String, Result<u64, String>)> {
        let mut v: Vec<(String, Result<u64, String>)> = self
            .world
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
            .collect();
        if let Some(m) = &self.mixed {
            v.extend(m.holdings(&self.sb));
        }
        v
    }

    /// Every value a run must never print.
    fn secrets(&self) -> Vec<String> {
        let mut v: Vec<String> = self.sb.tokens().into_iter().map(|t| t.value).collect();
        v.push(GH_TOKEN.to_string());
        if let Some(m) = &self.mixed {
            v.extend([
                GL_TOKEN.to_string(),
                moto::AWS_SECRET_KEY.to_string(),
                moto::AWS_SESSION_TOKEN.to_string(),
                bao::ROOT.to_string(),
                m.vault_token.clone(),
            ]);
        }
        v
    }
}

/// What a store's value is: `Ok(token id)` if a live Seqera token (whose `tid` is its
/// id), `Err(why)` if not.
fn judge(sb: &Sandbox, value: Option<String>) -> Result<u64, String> {
    let value = value.ok_or("no value")?;
    match sb.token_by_value(&value) {
        None => Err("a value that is no Seqera token".to_string()),
        Some(t) if t.revoked => Err(format!("revoked token id {}", t.id)),
        Some(t) if tid_of(&value) != t.id => Err(format!(
            "token {} whose value says tid {}",
            t.id,
            tid_of(&value)
        )),
        Some(t) => Ok(t.id),
    }
}

// ----- the mixed world's stores: moto and OpenBao behind fault proxies -----

/// The Secrets Manager target's region.
const AWS_REGION: &str = "eu-west-1";
/// The Vault target: `secret/seqera/ci`, in a namespace of the case's own.
const VAULT_PATH: &str = "seqera/ci";
const GL_TOKEN: &str = "glpat-explorer-token-0123456789";
const GL_PROJECT: &str = "grp/app";

/// One case's requests to a proxied store: its faults, its requests by name in order of
/// arrival, and where its held requests wait.
#[derive(Default)]
struct Lane {
    faults: Mutex<Vec<Fault>>,
    log: Mutex<Vec<(String, String)>>,
    gate: Arc<Gate>,
}

impl Lane {
    /// Logs the request by name and says what the proxy does with it: the action of the
    /// first fault placed at it, else forward.
    fn decide(&self, method: &str, name: String) -> Act {
        let nth = {
            let mut log = self.log.lock().unwrap();
            log.push((method.to_string(), name.clone()));
            log.iter()
                .filter(|(m, n)| m == method && *n == name)
                .count() as u32
        };
        let faults = self.faults.lock().unwrap();
        faults
            .iter()
            .find(|f| {
                f.at.method == method
                    && f.at.path == name
                    && (f.at.nth == nth || (f.kind.rest() && nth > f.at.nth))
            })
            .map_or(Act::Forward, |f| f.kind.proxy_act(f.at.dest(), &self.gate))
    }
}

/// A fault proxy in front of a store server, shared by the cases that run at once: each
/// case's requests go to its lane, found by `key` (the case's AWS secret name, or Vault
/// namespace), and are named by `name` (AWS: the `X-Amz-Target` action; Vault: the path).
struct Router {
    proxy: FaultProxy,
    lanes: Arc<Mutex<Lanes>>,
}

/// Each case's lane by its key, with the upstream its requests go to.
type Lanes = HashMap<String, (SocketAddr, Arc<Lane>)>;

impl Router {
    fn start(key: fn(&Seen) -> Option<String>, name: fn(&Seen) -> String) -> Router {
        let lanes: Arc<Mutex<Lanes>> = Arc::default();
        let found = Arc::clone(&lanes);
        let proxy = FaultProxy::routed(move |req| {
            let lane = key(req).and_then(|k| found.lock().unwrap().get(&k).cloned());
            match lane {
                Some((to, lane)) => (to, lane.decide(&req.method, name(req))),
                None => (
                    SocketAddr::from(([127, 0, 0, 1], 9)),
                    Act::Answer((400, "text/plain", b"explore: a request of no case".to_vec())),
                ),
            }
        });
        Router { proxy, lanes }
    }

    fn add(&self, key: &str, upstream: SocketAddr) -> Arc<Lane> {
        let lane = Arc::new(Lane::default());
        self.lanes
            .lock()
            .unwrap()
            .insert(key.to_string(), (upstream, Arc::clone(&lane)));
        lane
    }

    fn remove(&self, key: &str) {
        self.lanes.lock().unwrap().remove(key);
    }
}

/// The AWS proxy: one for the whole process, because the AWS SDK reads its endpoint and
/// credentials from the process environment, not from the run's settings. Its first use
/// sets them (`AWS_ENDPOINT_URL` pointing here); both tests call it before anything runs,
/// so no run reads the environment while it changes. It routes each request by the
/// secret name in its body (every case has its own secret) to the moto of that case's
/// world. A thread of this process: it ends with it.
fn aws_router() -> &'static Router {
    static AWS: OnceLock<Router> = OnceLock::new();
    AWS.get_or_init(|| {
        let r = Router::start(
            |req| {
                let body: serde_json::Value = serde_json::from_slice(&req.body).ok()?;
                let name = body.get("SecretId").or_else(|| body.get("Name"))?;
                name.as_str().map(str::to_string)
            },
            |req| req.header("x-amz-target").unwrap_or("?").to_string(),
        );
        for (k, v) in aws_env(&r.proxy.url()) {
            std::env::set_var(k, v);
        }
        r
    })
}

/// What the AWS SDK reads: the proxy's address and moto's (never valid) credentials.
fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", moto::AWS_KEY_ID.into()),
        ("AWS_SECRET_ACCESS_KEY", moto::AWS_SECRET_KEY.into()),
        ("AWS_SESSION_TOKEN", moto::AWS_SESSION_TOKEN.into()),
        ("AWS_REGION", "ap-south-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// The mixed world's servers, started once per world (and stopped with it): moto, OpenBao
/// and the Vault proxy. Cases share them, each with its own secret and namespace.
struct Servers {
    vault: Router,
    moto: Moto,
    bao: Bao,
}

impl Servers {
    /// None when moto or OpenBao is not installed here (the mixed world is skipped, and
    /// the helpers say so loudly); under `CI=true` the helpers fail instead.
    fn start() -> Option<Arc<Servers>> {
        let moto = Moto::start()?;
        let bao = Bao::start()?;
        let vault = Router::start(
            |req| req.header("x-vault-namespace").map(str::to_string),
            |req| req.path().to_string(),
        );
        Some(Arc::new(Servers { vault, moto, bao }))
    }
}

/// One case's part of the mixed world's servers.
struct Mixed {
    servers: Arc<Servers>,
    /// The Secrets Manager secret's name (unique in the process: the AWS proxy routes by it).
    secret: String,
    /// The Vault namespace (the Vault proxy routes by it).
    ns: String,
    /// A token with the least policy on the secret, in the namespace.
    vault_token: String,
    aws: Arc<Lane>,
    vault: Arc<Lane>,
}

impl Mixed {
    /// A fresh secret in moto and a fresh namespace in OpenBao, both holding `managed`.
    fn seed(servers: &Arc<Servers>, managed: &str) -> Mixed {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let (secret, ns) = (format!("seqera/case{n}"), format!("case{n}"));
        let (moto, bao) = (&servers.moto, &servers.bao);
        moto.sm(
            AWS_REGION,
            "CreateSecret",
            serde_json::json!({"Name": secret, "SecretString": managed}),
        );
        bao.root(
            "POST",
            &format!("/v1/sys/namespaces/{ns}"),
            Some(serde_json::json!({})),
        );
        bao.root_ns(
            Some(&ns),
            "POST",
            "/v1/sys/mounts/secret",
            Some(serde_json::json!({"type": "kv", "options": {"version": "2"}})),
        );
        // A new KV v2 mount upgrades itself for a moment before it takes writes.
        let body = serde_json::json!({"data": {SECRET: managed, "other": "keep-me"}});
        let headers = [
            ("X-Vault-Token", bao::ROOT),
            ("X-Vault-Namespace", ns.as_str()),
        ];
        let path = format!("/v1/secret/data/{VAULT_PATH}");
        let mut tries = 0;
        while bao::http(bao.addr, "POST", &path, &headers, Some(&body))
            .map_or(true, |a| a.status != 200)
        {
            tries += 1;
            assert!(tries < 200, "the new KV mount in {ns} never takes a write");
            std::thread::sleep(Duration::from_millis(25));
        }
        let vault_token = bao.token_with_policy(
            Some(&ns),
            "rotate",
            &bao::least_policy("secret", VAULT_PATH),
        );
        Mixed {
            aws: aws_router().add(&secret, SocketAddr::from(([127, 0, 0, 1], moto.port))),
            vault: servers.vault.add(&ns, bao.addr),
            servers: Arc::clone(servers),
            secret,
            ns,
            vault_token,
        }
    }

    fn labels(&self) -> Vec<String> {
        vec![
            format!("aws-sm:{AWS_REGION}/{}", self.secret),
            format!("vault:secret/{VAULT_PATH}"),
            format!("gitlab:{GL_PROJECT}"),
        ]
    }

    fn vars(&self, sb: &Sandbox) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("INPUT_VAULT-ADDR", self.servers.vault.proxy.url()),
            ("INPUT_VAULT-TOKEN", self.vault_token.clone()),
            ("INPUT_VAULT-NAMESPACE", self.ns.clone()),
            ("INPUT_GITLAB-TOKEN", GL_TOKEN.to_string()),
            ("INPUT_GITLAB-API-URL", sb.gitlab_url()),
        ];
        v.extend(aws_env(&aws_router().proxy.url()));
        v
    }

    fn held(&self) -> u64 {
        (self.aws.gate.held() + self.vault.gate.held()) as u64
    }

    /// What the AWS secret (`AWSCURRENT`), the Vault field and the GitLab variable hold.
    fn holdings(&self, sb: &Sandbox) -> Vec<(String, Result<u64, String>)> {
        let labels = self.labels();
        let aws = self
            .servers
            .moto
            .secret_at(AWS_REGION, &self.secret, "AWSCURRENT");
        let vault = self
            .servers
            .bao
            .fields(Some(&self.ns), "secret", VAULT_PATH)
            .and_then(|f| f[SECRET].as_str().map(str::to_string));
        let gitlab = sb.gitlab_variable(GL_PROJECT, SECRET).map(|v| v.value);
        labels
            .into_iter()
            .zip([aws, vault, gitlab])
            .map(|(l, v)| (l, judge(sb, v)))
            .collect()
    }
}

impl Drop for Mixed {
    fn drop(&mut self) {
        self.aws.gate.open();
        self.vault.gate.open();
        aws_router().remove(&self.secret);
        self.servers.vault.remove(&self.ns);
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
    /// At AWS and Vault (behind the explorer's proxies) only what a network or a gateway
    /// does: no late commits; the `Date` skews, key errors and lying token lists are
    /// GitHub's and Seqera's.
    fn applies(self, p: &Place) -> bool {
        let write = p.is_write();
        let proxied = matches!(p.dest(), Dest::Aws | Dest::Vault);
        match self {
            Kind::Perform502 | Kind::Perform502Rest | Kind::PerformCut | Kind::KillAfter => write,
            Kind::LateCut => write && !proxied,
            Kind::DateAhead | Kind::DateBehind => matches!(p.dest(), Dest::Seqera | Dest::Github),
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

    /// Whether it acts from its request on (else at its request only).
    fn rest(self) -> bool {
        matches!(
            self,
            Kind::Perform502Rest | Kind::UnavailableRest | Kind::Key422Rest
        )
    }

    /// What the proxy in front of AWS or Vault does for this kind: each store's own way of
    /// saying 403 and 503.
    fn proxy_act(self, dest: Dest, gate: &Arc<Gate>) -> Act {
        let answer = |status: u16| -> common::proxy::Reply {
            let body = match (dest, status) {
                (Dest::Aws, 403) => {
                    r#"{"__type":"AccessDeniedException","message":"explore: refused"}"#
                }
                (Dest::Aws, _) => {
                    r#"{"__type":"ServiceUnavailableException","message":"explore: unavailable"}"#
                }
                (_, 403) => r#"{"errors":["permission denied"]}"#,
                _ => r#"{"errors":["explore: unavailable"]}"#,
            };
            let ctype = if dest == Dest::Aws {
                "application/x-amz-json-1.1"
            } else {
                "application/json"
            };
            (status, ctype, body.as_bytes().to_vec())
        };
        match self {
            Kind::Refuse => Act::Answer(answer(403)),
            Kind::Unavailable | Kind::UnavailableRest => Act::Answer(answer(503)),
            Kind::Cut => Act::Cut,
            Kind::Perform502 | Kind::Perform502Rest => Act::ForwardThen((
                502,
                "text/html",
                b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            )),
            Kind::PerformCut => Act::ForwardThenCut,
            Kind::KillBefore => Act::Hold(Arc::clone(gate)),
            Kind::KillAfter => Act::ForwardThenHold(Arc::clone(gate)),
            other => panic!("{} is not placed behind a proxy", other.name()),
        }
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

/// Which server a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dest {
    Seqera,
    Github,
    Gitlab,
    /// OpenBao, behind the explorer's proxy.
    Vault,
    /// moto, behind the explorer's proxy.
    Aws,
}

/// A request by identity: method, path (no query), and which occurrence of the two. An AWS
/// request's "path" is its `X-Amz-Target` action (`POST:secretsmanager.PutSecretValue#1`):
/// every AWS request is a `POST /`.
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

    fn dest(&self) -> Dest {
        let p = &self.path;
        if p.starts_with("/api/v4/") {
            Dest::Gitlab
        } else if p.starts_with("/api/") {
            Dest::Seqera
        } else if p.starts_with("/v1/") {
            Dest::Vault
        } else if !p.starts_with('/') {
            Dest::Aws
        } else {
            Dest::Github
        }
    }

    /// Whether the request changes something (where the "performed" kinds mean something).
    fn is_write(&self) -> bool {
        match self.dest() {
            Dest::Aws => {
                let action = self.path.rsplit('.').next().unwrap_or_default();
                !["Get", "Describe", "List"]
                    .iter()
                    .any(|r| action.starts_with(r))
            }
            // The capabilities of the token: a read, though a POST.
            Dest::Vault => self.method != "GET" && !self.path.ends_with("/capabilities-self"),
            _ => self.method != "GET",
        }
    }

    /// The requests a run made, named (method, path without query), by identity.
    fn of(requests: Vec<(String, String)>) -> Vec<Place> {
        let mut seen: HashMap<(String, String), u32> = HashMap::new();
        requests
            .into_iter()
            .map(|(method, path)| {
                let n = seen.entry((method.clone(), path.clone())).or_default();
                *n += 1;
                Place {
                    method,
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
    /// The sandbox's rule for this fault (at Seqera, GitHub or GitLab).
    fn rule(&self) -> FaultRule {
        FaultRule {
            api: match self.at.dest() {
                Dest::Seqera => Api::Seqera,
                Dest::Github => Api::Github,
                Dest::Gitlab => Api::Gitlab,
                Dest::Aws | Dest::Vault => panic!("{} is behind a proxy", self.at.text()),
            },
            method: self.at.method.clone(),
            path: PathMatch::Exact(self.at.path.clone()),
            when: if self.kind.rest() {
                Occurrence::From(self.at.nth)
            } else {
                Occurrence::Nth(self.at.nth)
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

fn run_case(case: &Case, servers: Option<&Arc<Servers>>) -> Outcome {
    let env = Env::seed(case.world, servers);
    let mut failures = Vec::new();
    for f in &case.faults {
        env.add_fault(f);
    }
    let kill = case.faults.iter().any(|f| f.kind.kills());
    let start = env.mark();
    let (code, run) = env.run(&[], kill);
    let requests = env.requests_since(start);
    env.clear_faults();
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
fn explore_one(case: &Case, servers: Option<&Arc<Servers>>) -> Outcome {
    quiet_panics();
    QUIET.with(|q| q.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| run_case(case, servers)));
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
fn run_all(cases: &[Case], threads: usize, servers: Option<&Arc<Servers>>) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..cases.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { return };
                let o = explore_one(case, servers);
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
fn baseline(world: World, servers: Option<&Arc<Servers>>) -> (Vec<Place>, Vec<String>) {
    let o = explore_one(
        &Case {
            world,
            faults: Vec::new(),
        },
        servers,
    );
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
/// Pairs sampled per world by default (`mixed`: fewer, its cases are slower and its
/// singles many).
const DEFAULT_SAMPLE: u64 = 100;
const DEFAULT_SAMPLE_MIXED: u64 = 30;
const DEFAULT_SEED: u64 = 15;

#[derive(Default)]
struct Tally {
    cases: usize,
    failed: Vec<(String, Vec<String>)>,
    took: Duration,
}

#[test]
fn exhaustive() {
    aws_router();
    let threads = env_num("EXPLORE_THREADS", 4) as usize;
    if let Some(one) = env_var("EXPLORE_CASE") {
        let case = Case::parse(&one);
        let Some(servers) = servers_for(case.world) else {
            return;
        };
        let o = explore_one(&case, servers.as_ref());
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
    let sample = env_var("EXPLORE_SAMPLE").map(|_| env_num("EXPLORE_SAMPLE", 0) as usize);
    let seed = env_num("EXPLORE_SEED", DEFAULT_SEED);
    let filter = env_var("EXPLORE_FILTER");
    let slice = env_var("EXPLORE_SLICE").map(|v| {
        let (a, b) = v.split_once("..").expect("EXPLORE_SLICE=START..END");
        (
            a.parse::<usize>().expect("START"),
            b.parse::<usize>().expect("END"),
        )
    });
    // What ran, printed and (with EXPLORE_SUMMARY=<file>) written out: cargo shows a passing
    // test's output only with --nocapture, and CI should say what it explored.
    let mut summary: Vec<String> = Vec::new();
    let mut say = |line: String| {
        eprintln!("{line}");
        summary.push(line);
    };
    say(format!(
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
                "the {} pinned case(s) + a random sample of {} per world (EXPLORE_SEED={seed}; EXPLORE_ALL=1 runs all)",
                PINNED.len(),
                sample.map_or_else(
                    || format!("{DEFAULT_SAMPLE} ({DEFAULT_SAMPLE_MIXED} in mixed)"),
                    |n| n.to_string()
                )
            )
        }
    ));
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for world in worlds {
        let t0 = Instant::now();
        let Some(servers) = servers_for(world) else {
            continue;
        };
        let servers = servers.as_ref();
        let (base, base_failures) = baseline(world, servers);
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
        let single_outcomes = run_all(&singles, threads, servers);
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
            space.truncate(sample.unwrap_or(if world == World::Mixed {
                DEFAULT_SAMPLE_MIXED as usize
            } else {
                DEFAULT_SAMPLE as usize
            }));
            chosen.extend(space);
        }
        let pair_outcomes = run_all(&chosen, threads, servers);
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
        say(format!(
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
        ));
    }
    if let Some(path) = env_var("EXPLORE_SUMMARY") {
        summary.push(String::new());
        std::fs::write(&path, summary.join("\n")).expect("summary file is written");
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
    aws_router();
    for world in WORLDS {
        let Some(servers) = servers_for(world) else {
            continue;
        };
        let (base, failures) = baseline(world, servers.as_ref());
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
        if world == World::Mixed {
            for dest in [Dest::Aws, Dest::Vault, Dest::Gitlab] {
                assert!(
                    base.iter().any(|p| p.dest() == dest && p.is_write()),
                    "world mixed: the fault-free run writes to {dest:?}: {base:?}"
                );
            }
            // A run killed at a request the AWS proxy holds stops there too.
            let case = Case::parse("mixed,kill_before@POST:secretsmanager.PutSecretValue#1");
            let o = explore_one(&case, servers.as_ref());
            assert!(o.failures.is_empty(), "{:?}", o.failures);
            assert!(
                o.requests
                    .iter()
                    .all(|p| p.path != "secretsmanager.PutSecretValue" || p.nth == 1),
                "the killed run sent nothing more to that request: {:?}",
                o.requests
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
    let o = explore_one(&case, None);
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    assert_eq!(
        o.requests.last().map(Place::text).as_deref(),
        Some("POST:/api/tokens#1"),
        "the killed run stops at the held request"
    );
}

/// The servers a world needs: none, or in `mixed` moto and OpenBao (stopped when the last
/// reference drops). `None` when they are not installed here: the world is skipped, loudly.
fn servers_for(world: World) -> Option<Option<Arc<Servers>>> {
    if world != World::Mixed {
        return Some(None);
    }
    let servers = Servers::start();
    if servers.is_none() {
        eprintln!("\n*** SKIPPED: explore world `mixed` (no moto or no OpenBao here) ***\n");
    }
    Some(Some(servers?))
}
