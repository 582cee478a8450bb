//! Runs one command: turns the command line into checked settings, builds the clients, runs
//! Runs one command: turns the command line into checked settings, builds the clients, runs
//! `rotate` / `list` / `revoke` / `status` / `demo` / `generate`, renders the outcome through
//! `report`, and decides the exit code (0 done, 1 failed, 2 invalid settings).

use std::time::Duration;

use clap::ArgMatches;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::github::GithubClient;
use crate::http::{Http, Policy, Proxies};
use crate::lifecycle;
use crate::naming;
use crate::pace::{Limits, Pacer};
use crate::report::Report;
use crate::rotate::{rotate, Clients, Outcome};
use crate::seqera::{token_id_of, SeqeraClient, TokenInfo};
use crate::settings::{
    lifecycle_from_raw, parse_duration, Raw, SeqeraSettings, Settings, SettingsError,
};
use crate::store::{AwsStore, GithubStore, GitlabStore, Mask, Stores, VaultStore, WriteOutcome};
use crate::target::StoreKind;
use crate::text::{md_cell, md_code, Scrubber};

/// Exit code: done.
pub const EXIT_OK: u8 = 0;
/// Exit code: an operation failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: invalid usage or settings; nothing was sent.
pub const EXIT_USAGE: u8 = 2;

/// Environment lookup, so tests and `demo` can supply their own.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Runs the command in `matches` and returns the exit code.
pub async fn run(matches: &ArgMatches, env: Env<'_>, out: &Report) -> u8 {
    let raw = Raw::gather(matches, env);
    know_credentials(&raw, out.scrubber());
    // No command on the command line (as in the Action): the `command` setting names one,
    // run with its own defaults.
    let implied;
    let chosen = match matches.subcommand() {
        Some(c) => Some(c),
        None => match raw.command() {
            Ok(name) => match crate::settings::command()
                .try_get_matches_from(["seqera-token-rotate", name])
            {
                Ok(m) => {
                    implied = m;
                    implied.subcommand()
                }
                Err(e) => return command_line_error(&e, out),
            },
            Err(e) => return usage_error(&e, out),
        },
    };
    match chosen {
        None | Some(("rotate", _)) => run_rotate(&raw, env, out).await,
        Some(("list", sub)) => run_list(&raw, sub, env, out).await,
        Some(("status", sub)) => crate::status::run(&raw, sub, env, out).await,
        Some(("revoke", sub)) => run_revoke(&raw, sub, env, out).await,
        Some(("demo", _)) => crate::demo::run(out).await,
        Some(("sandbox", _)) => crate::sandbox_cmd::run(out).await,
        Some(("generate", sub)) => crate::generate::run(sub, out),
        Some((other, _)) => {
            out.error(&format!("unknown command `{other}`"));
            EXIT_USAGE
        }
    }
}

/// Registers every credential setting's value with the scrubber before any setting is
/// checked: a message about another setting may quote a value into which a credential was
/// pasted (SPEC §2). Also each blank-separated piece, since a value with blanks is invalid
/// and may be quoted in parts.
fn know_credentials(raw: &Raw, scrubber: &Scrubber) {
    for v in raw.credentials() {
        scrubber.add(&secrecy::SecretString::from(v.trim().to_string()));
        for piece in v.split(|c: char| c.is_whitespace() || c.is_control()) {
            scrubber.add(&secrecy::SecretString::from(piece.to_string()));
        }
    }
}

/// A command line clap refused. Help and version are printed as clap formats them; any other
/// error is told in our words, naming flags but never repeating a value or a stray argument:
/// a pasted token is a common slip, and the usage error must not print it.
pub fn command_line_error(e: &clap::Error, out: &Report) -> u8 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Only our own text: the help, or the version.
            let _ = e.print();
            return u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE);
        }
        _ => {}
    }
    let flag = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(a)) if a.starts_with('-') => {
            Some(a.split(['=', ' ']).next().unwrap_or(a).to_string())
        }
        _ => None,
    };
    let what = match (e.kind(), &flag) {
        (ErrorKind::UnknownArgument, Some(f)) => format!("unknown flag `{f}`"),
        (ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand, None) => {
            "unexpected argument (not shown: it may be a credential); settings are flags such as --token-name, or INPUT_* variables".to_string()
        }
        (ErrorKind::InvalidUtf8, _) => "an argument is not valid UTF-8".to_string(),
        (kind, Some(f)) => format!("{kind} (`{f}`)"),
        (kind, None) => kind.to_string(),
    };
    let hint = match e.get(ContextKind::SuggestedArg) {
        Some(ContextValue::String(s)) if s.starts_with("--") => format!("; did you mean `{s}`?"),
        _ => String::new(),
    };
    out.error(&format!("{what}{hint}"));
    out.step("Nothing was sent. See --help for every setting.");
    EXIT_USAGE
}

pub(crate) fn usage_error(e: &SettingsError, out: &Report) -> u8 {
    for p in &e.0 {
        out.error(&p.to_string());
    }
    out.step("Nothing was sent. See --help for every setting.");
    EXIT_USAGE
}

/// Whether this build reads the variables that only tests may use
/// (`SEQERA_TOKEN_ROTATE_TEST_*`): debug builds, and builds with the `test-hooks` feature
/// (the benchmark's release build). A release build never does (SPEC §8): it once let
/// `SEQERA_TOKEN_ROTATE_TEST_PACE=off` turn off GitHub pacing.
pub const TEST_HOOKS: bool = cfg!(any(debug_assertions, feature = "test-hooks"));

/// A variable that only tests may use: its value in a build with [`TEST_HOOKS`], else
/// nothing, whatever the environment says. Every such variable is read through here.
fn test_var(env: Env<'_>, name: &str) -> Option<String> {
    test_var_if(TEST_HOOKS, env, name)
}

fn test_var_if(hooks: bool, env: Env<'_>, name: &str) -> Option<String> {
    if hooks {
        env(name)
    } else {
        None
    }
}

pub(crate) fn http(seqera: &SeqeraSettings, out: &Report, env: Env<'_>) -> Result<Http, u8> {
    Http::new(policy(seqera, env), out.scrubber().clone()).map_err(|e| {
        out.error(&e.to_string());
        EXIT_FAILED
    })
}

/// The retry policy of SPEC §5, for every client.
fn policy(seqera: &SeqeraSettings, env: Env<'_>) -> Policy {
    let mut policy = Policy::new(seqera.timeout);
    policy.proxies = Proxies::from_env(env);
    // For the test suite only: shorter unhinted backoff, so fault tests run in seconds.
    let backoff_ms = test_var(env, "SEQERA_TOKEN_ROTATE_TEST_BACKOFF_MS");
    if let Some(ms) = backoff_ms.and_then(|v| v.parse().ok()) {
        policy.backoff_base = Duration::from_millis(ms);
    }
    policy
}

/// The GitHub client, paced to GitHub's write limits; for the test suite only, to other
/// limits (`SEQERA_TOKEN_ROTATE_TEST_PACE`, see `pace::Limits::parse_test`), so a fan-out
/// past the limits runs in seconds.
fn github_client(http: Http, s: &Settings, token: SecretString, env: Env<'_>) -> GithubClient {
    let client = GithubClient::new(http, s.github_api_url.clone(), token);
    let pace = test_var(env, "SEQERA_TOKEN_ROTATE_TEST_PACE");
    match pace.and_then(|v| Limits::parse_test(&v)) {
        Some(Some(limits)) => client.with_pacer(Pacer::new(limits)),
        Some(None) => client.with_pacer(Pacer::unlimited()),
        None => client,
    }
}

/// What `rotate` and `status` start from: checked settings (exit 2 if not), both tokens
/// masked, and both clients.
pub(crate) fn settings_and_clients(
    raw: &Raw,
    env: Env<'_>,
    out: &Report,
) -> Result<(Settings, Clients), u8> {
    let s = Settings::from_raw(raw).map_err(|e| usage_error(&e, out))?;
    // The runner masks `secrets.*`, but a token may come from elsewhere (another step's output).
    for credential in s.credentials() {
        out.mask(credential);
    }
    // For the test suite only: a panic that quotes a credential, to check that the panic
    // hook prints it scrubbed (a panic is a bug; it must not also be a leak).
    if test_var(env, "SEQERA_TOKEN_ROTATE_TEST_PANIC").is_some() {
        use secrecy::ExposeSecret as _;
        panic!(
            "deliberate test panic quoting {}",
            s.seqera.access_token.expose_secret()
        );
    }
    // Required (and so present) with a GitHub target or a record; without either, the
    // GitHub store is never asked anything.
    let github_token = s.github_token.clone().unwrap_or_default();
    let http = http(&s.seqera, out, env)?;
    let clients = Clients {
        seqera: SeqeraClient::new(
            http.clone(),
            s.seqera.api_url.clone(),
            s.seqera.access_token.clone(),
        ),
        stores: Stores {
            github: GithubStore::new(
                github_client(http.clone(), &s, github_token, env),
                s.org_access.clone(),
            ),
            vault: s
                .vault
                .clone()
                .map(|v| VaultStore::new(http.clone(), v, mask(out))),
            gitlab: s.gitlab.clone().map(|g| GitlabStore::new(http.clone(), g)),
            aws: s
                .targets
                .iter()
                .any(|t| matches!(t.store_kind(), StoreKind::AwsSm | StoreKind::AwsSsm))
                .then(|| AwsStore::new(out.clone(), policy(&s.seqera, env))),
        },
    };
    Ok((s, clients))
}

/// Masks (`::add-mask::`) and scrubs a credential a store obtains at run time.
fn mask(out: &Report) -> Mask {
    let out = out.clone();
    std::sync::Arc::new(move |v: &SecretString| out.mask(v))
}

/// The `rotate` command, from raw settings to exit code.
pub async fn run_rotate(raw: &Raw, env: Env<'_>, out: &Report) -> u8 {
    let (s, clients) = match settings_and_clients(raw, env, out) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (outcome, new) = rotate(&s, &clients, out).await;
    let secret = new
        .as_ref()
        .filter(|_| s.expose_access_key)
        .map(|n| ("access-key", &n.value));
    let outputs_written = out.outputs(&outputs(&outcome), secret);
    if let Err(e) = &outputs_written {
        out.error(&format!(
            "could not write the step outputs to GITHUB_OUTPUT ({e}); later steps will not see them"
        ));
    }
    if let Err(e) = out.summary(&summary(&s, &outcome, out.scrubber())) {
        out.warning(&format!("could not write the job summary: {e}"));
    }
    for n in &outcome.notes {
        out.warning(n);
    }
    match &outcome.error {
        Some(e) => {
            out.error(&e.to_string());
            EXIT_FAILED
        }
        None => {
            if outcome.rotated {
                out.step("Done: every target holds the new token.");
            }
            if outputs_written.is_err() {
                EXIT_FAILED
            } else {
                EXIT_OK
            }
        }
    }
}

/// The outputs of SPEC §7 (without `access-key`).
pub fn outputs(o: &Outcome) -> Vec<(&'static str, String)> {
    // A dry run: only `rotated=false`; not due: also what it retired (SPEC §5 step 3).
    if o.skipped.is_some() {
        let mut v = vec![("rotated", "false".into())];
        if o.not_due {
            v.push(("revoked-token-ids", ids(&o.revoked)));
        }
        return v;
    }
    let updated: Vec<&str> = o
        .targets
        .iter()
        .filter(|t| t.outcome.is_written())
        .map(|t| t.label.as_str())
        .collect();
    let token = o.token.as_ref().filter(|_| o.rotated);
    vec![
        ("rotated", o.rotated.to_string()),
        (
            "token-id",
            token.map(|t| t.id.to_string()).unwrap_or_default(),
        ),
        (
            "token-name",
            token.map(|t| t.name.clone()).unwrap_or_default(),
        ),
        ("revoked-token-ids", ids(&o.revoked)),
        (
            "updated-targets",
            if o.rotated {
                updated.join(",")
            } else {
                String::new()
            },
        ),
    ]
}

/// The longest server text in a summary cell.
const MAX_CELL: usize = 300;

fn ids(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// The job summary: what was created, written, revoked, what failed and why. Every text that
/// is not ours (token names, labels, server messages) is escaped for Markdown and HTML.
pub fn summary(s: &Settings, o: &Outcome, scrubber: &Scrubber) -> String {
    let cell = |t: &str| md_cell(scrubber, t, MAX_CELL);
    let code = |t: &str| md_code(scrubber, t, MAX_CELL);
    let mut m = String::from("### Seqera token rotation\n\n");
    if let Some(reason) = &o.skipped {
        m.push_str(&format!("Nothing rotated: {}\n\n", cell(reason)));
        if o.not_due {
            m.push_str(&format!(
                "| | |\n|---|---|\n| Revoked token ids | {} |\n\n",
                if o.revoked.is_empty() {
                    "none".into()
                } else {
                    ids(&o.revoked)
                }
            ));
        }
        retiring_table(o, &mut m, scrubber);
        for n in &o.notes {
            m.push_str(&format!("> Note: {}\n\n", cell(n)));
        }
        if let Some(e) = &o.error {
            m.push_str(&format!("**Failed:** {}\n", cell(&e.to_string())));
        }
        return m;
    }
    m.push_str("| | |\n|---|---|\n");
    match (&o.token, o.rotated) {
        (Some(t), true) => m.push_str(&format!(
            "| New token | {} (id {}) |\n",
            code(&t.name),
            t.id
        )),
        _ => m.push_str("| New token | none (nothing kept) |\n"),
    }
    let revoked = if o.revoked.is_empty() {
        "none".to_string()
    } else {
        o.revoked
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    m.push_str(&format!(
        "| Revoked token ids | {revoked} |\n| Kept previous | {} |\n| Record | {} |\n\n",
        s.keep_previous,
        match (&o.token, o.recorded) {
            (Some(t), true) => format!("written: every target holds id {}", t.id),
            _ => "not written".to_string(),
        }
    ));
    if !o.targets.is_empty() {
        m.push_str("| Target | Result |\n|---|---|\n");
        for r in &o.targets {
            let result = match &r.outcome {
                WriteOutcome::Written { created: true } => "✅ created".to_string(),
                WriteOutcome::Written { created: false } => "✅ updated".to_string(),
                WriteOutcome::Refused(e) => {
                    format!("❌ refused, keeps its previous token: {}", cell(e))
                }
                WriteOutcome::Unknown(e) => {
                    format!(
                        "⚠️ no clear answer, holds the new or the previous token: {}",
                        cell(e)
                    )
                }
            };
            m.push_str(&format!("| {} | {result} |\n", code(&r.label)));
        }
        m.push('\n');
    }
    retiring_table(o, &mut m, scrubber);
    for n in &o.notes {
        m.push_str(&format!("> Note: {}\n\n", cell(n)));
    }
    if let Some(e) = &o.error {
        m.push_str(&format!("**Failed:** {}\n", cell(&e.to_string())));
    }
    m
}

/// The tokens left live by `grace-period`: when each goes, when it was last used.
fn retiring_table(o: &Outcome, m: &mut String, scrubber: &Scrubber) {
    if o.retiring.is_empty() {
        return;
    }
    m.push_str("| Retiring token | Id | Revoked after | Last used |\n|---|---|---|---|\n");
    for v in &o.retiring {
        m.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            md_code(scrubber, &v.token.name, MAX_CELL),
            v.token.id,
            v.goes_at.map(lifecycle::when).unwrap_or_default(),
            lifecycle::last_use(v.token.last_used)
        ));
    }
    m.push('\n');
}

/// What `list` and `revoke` start from: Seqera settings, a client, and the user's tokens.
async fn seqera_tokens(
    raw: &Raw,
    env: Env<'_>,
    out: &Report,
) -> Result<(SeqeraSettings, SeqeraClient, Vec<TokenInfo>), u8> {
    let s = SeqeraSettings::from_raw(raw).map_err(|e| usage_error(&e, out))?;
    out.mask(&s.access_token);
    let http = http(&s, out, env)?;
    let client = SeqeraClient::new(http, s.api_url.clone(), s.access_token.clone());
    match client.list_tokens().await {
        Ok(tokens) => Ok((s, client, tokens)),
        Err(e) => {
            out.error(&format!("could not list the Seqera tokens: {e}"));
            Err(EXIT_FAILED)
        }
    }
}

fn date(t: Option<OffsetDateTime>) -> String {
    t.map(|t| {
        t.to_offset(time::UtcOffset::UTC)
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .unwrap_or_default()
    })
    .unwrap_or_else(|| "never".into())
}

async fn run_list(raw: &Raw, sub: &ArgMatches, env: Env<'_>, out: &Report) -> u8 {
    let (keep, grace) = match lifecycle_from_raw(raw) {
        Ok(x) => x,
        Err(e) => return usage_error(&e, out),
    };
    let (s, _, tokens) = match seqera_tokens(raw, env, out).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let managed = naming::managed(&s.token_name, &tokens);
    if sub.get_flag("json") {
        out.json(&crate::status::list_json(&s.token_name, &managed));
    } else {
        let now = OffsetDateTime::now_utc();
        let retiring = managed
            .first()
            .map(|n| {
                lifecycle::retirement(
                    &s.token_name,
                    n,
                    &managed,
                    lifecycle::Policy { keep, grace },
                    now,
                )
                .retiring
            })
            .unwrap_or_default();
        out.data(&format!(
            "{:>10}  {:<50}  {:<20}  {}",
            "ID", "NAME", "CREATED", "LAST USED"
        ));
        for t in &managed {
            let mark = retiring
                .iter()
                .find(|v| v.token.id == t.id)
                .map(|v| {
                    format!(
                        "  (retiring: revoked after {})",
                        v.goes_at.map(lifecycle::when).unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            out.data(&format!(
                "{:>10}  {:<50}  {:<20}  {}{mark}",
                t.id,
                t.name,
                date(naming::created_at(&s.token_name, t)),
                date(t.last_used)
            ));
        }
    }
    out.step(&format!(
        "{} managed token(s) of `{}`",
        managed.len(),
        s.token_name.as_str()
    ));
    EXIT_OK
}

async fn run_revoke(raw: &Raw, sub: &ArgMatches, env: Env<'_>, out: &Report) -> u8 {
    let keep = *sub.get_one::<usize>("keep").expect("has a default");
    let older_than = match sub
        .get_one::<String>("older-than")
        .map(|v| parse_duration(v.trim()))
    {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            out.error(&format!("invalid `--older-than`: {e}"));
            return EXIT_USAGE;
        }
    };
    let (s, client, tokens) = match seqera_tokens(raw, env, out).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let now = OffsetDateTime::now_utc();
    let mut victims: Vec<_> = naming::managed(&s.token_name, &tokens)
        .into_iter()
        .skip(keep)
        .filter(
            |t| match (older_than, naming::created_at(&s.token_name, t)) {
                (None, _) => true,
                (Some(d), Some(c)) => {
                    now - c > time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
                }
                (Some(_), None) => false,
            },
        )
        .collect();
    // With a record, its token and every newer one may be held by a target: kept.
    use crate::record::Loaded;
    use crate::settings::RecordAccess;
    match crate::settings::record_access(raw) {
        RecordAccess::Off => {}
        RecordAccess::NoToken(place) => out.warning(&format!(
            "The record (Actions variable `{}` of {}/{}) is not read: no GitHub token is given (`github-token`, GH_TOKEN or GITHUB_TOKEN, with \"Variables: Read and write\"), so only --keep and --older-than decide, and a target may hold a token this revokes (`state-variable: none` says no record is kept)",
            place.name, place.owner, place.repo
        )),
        RecordAccess::Read(place, api_url, token) => {
            out.mask(&token);
            let Ok(http) = http(&s, out, env) else {
                return EXIT_FAILED;
            };
            let gh = GithubClient::new(http, api_url, token);
            match crate::record::load(&gh, Some(&place)).await {
                Loaded::Found(r) => {
                    let before = victims.len();
                    victims.retain(|t| t.id < r.token_id);
                    out.step(&format!(
                        "The record says every target holds `{}` (id {}): it and every newer managed token are kept{}",
                        r.token_name,
                        r.token_id,
                        match before - victims.len() {
                            0 => String::new(),
                            n => format!(" ({n} of the selected tokens)"),
                        }
                    ));
                }
                Loaded::Unavailable(w) | Loaded::Foreign(w) => out.warning(&w),
                Loaded::Absent | Loaded::Off => {}
            }
        }
    }
    if victims.is_empty() {
        out.step("Nothing to revoke.");
        return EXIT_OK;
    }
    // If the access token itself is among them, revoke it last so the others still go through.
    let own = token_id_of(&s.access_token);
    victims.sort_by_key(|t| Some(t.id) == own);
    let mut failed = 0;
    for t in &victims {
        if s.dry_run {
            out.data(&format!("would revoke {} (id {})", t.name, t.id));
            continue;
        }
        match client.delete_token(t.id).await {
            Ok(_) => out.data(&format!("revoked {} (id {})", t.name, t.id)),
            Err(e) => {
                failed += 1;
                out.error(&format!("could not revoke {} (id {}): {e}", t.name, t.id));
            }
        }
    }
    if failed > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 15, defect 11: test-only variables worked in the release binary.
    #[test]
    fn test_only_variables_are_read_only_with_test_hooks() {
        let env = |k: &str| (k == "SEQERA_TOKEN_ROTATE_TEST_PACE").then(|| "off".to_string());
        let name = "SEQERA_TOKEN_ROTATE_TEST_PACE";
        assert_eq!(test_var_if(false, &env, name), None);
        assert_eq!(test_var_if(true, &env, name).as_deref(), Some("off"));
        assert_eq!(
            TEST_HOOKS,
            cfg!(debug_assertions) || cfg!(feature = "test-hooks")
        );
    }

    /// Runs only in a build without test hooks (`cargo test --release`): there, no test-only
    /// variable has any effect.
    #[cfg(not(any(debug_assertions, feature = "test-hooks")))]
    #[test]
    fn a_release_build_reads_no_test_only_variable() {
        let env = |_: &str| Some("off".to_string());
        assert_eq!(test_var(&env, "SEQERA_TOKEN_ROTATE_TEST_PACE"), None);
    }

    /// Every read of a test-only variable in the sources goes through [`test_var`]: one read
    /// straight from the environment would work in a release build again.
    #[test]
    fn every_test_only_variable_is_read_through_the_gate() {
        let needle = concat!("\"SEQERA_TOKEN_ROTATE_", "TEST_");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![dir.clone()];
        let mut reads = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                for e in std::fs::read_dir(&path).unwrap() {
                    files.push(e.unwrap().path());
                }
                continue;
            }
            if path.extension() != Some(std::ffi::OsStr::new("rs")) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // The code, not its tests (which name the variables to set them).
            let code = text.lines().take_while(|l| l.trim() != "#[cfg(test)]");
            for (i, line) in code.enumerate() {
                if line.contains(needle) && !line.trim_start().starts_with("//") {
                    assert!(
                        line.contains("test_var(") || line.contains("test_var_if("),
                        "{}:{}: a test-only variable read without the gate: {line}",
                        path.display(),
                        i + 1
                    );
                    reads += 1;
                }
            }
        }
        assert!(reads >= 3, "the gate's reads were not found");
    }
}
