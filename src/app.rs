//! Runs one command: turns the command line into checked settings, builds the clients, runs
//! Runs one command: turns the command line into checked settings, builds the clients, runs
//! `rotate` / `list` / `revoke` / `status` / `demo` / `generate`, renders the outcome through
//! `report`, and decides the exit code (0 done, 1 failed, 2 invalid settings).

use std::time::Duration;

use clap::ArgMatches;
use time::OffsetDateTime;

use crate::github::{GithubClient, Written};
use crate::http::{Http, Policy};
use crate::lifecycle;
use crate::naming;
use crate::pace::{Limits, Pacer};
use crate::report::Report;
use crate::rotate::{rotate, Clients, Outcome};
use crate::seqera::{token_id_of, SeqeraClient, TokenInfo};
use crate::settings::{
    lifecycle_from_raw, parse_duration, Raw, SeqeraSettings, Settings, SettingsError,
};
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

pub(crate) fn http(seqera: &SeqeraSettings, out: &Report, env: Env<'_>) -> Result<Http, u8> {
    let mut policy = Policy::new(seqera.timeout);
    // For the test suite only: shorter unhinted backoff, so fault tests run in seconds.
    if let Some(ms) = env("SEQERA_TOKEN_ROTATE_TEST_BACKOFF_MS").and_then(|v| v.parse().ok()) {
        policy.backoff_base = Duration::from_millis(ms);
    }
    Http::new(policy, out.scrubber().clone()).map_err(|e| {
        out.error(&e.to_string());
        EXIT_FAILED
    })
}

/// The GitHub client, paced to GitHub's write limits; for the test suite only, to other
/// limits (`SEQERA_TOKEN_ROTATE_TEST_PACE`, see `pace::Limits::parse_test`), so a fan-out
/// past the limits runs in seconds.
fn github_client(http: Http, s: &Settings, env: Env<'_>) -> GithubClient {
    let client = GithubClient::new(http, s.github_api_url.clone(), s.github_token.clone());
    match env("SEQERA_TOKEN_ROTATE_TEST_PACE").and_then(|v| Limits::parse_test(&v)) {
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
    out.mask(&s.seqera.access_token);
    out.mask(&s.github_token);
    // For the test suite only: a panic that quotes a credential, to check that the panic
    // hook prints it scrubbed (a panic is a bug; it must not also be a leak).
    if env("SEQERA_TOKEN_ROTATE_TEST_PANIC").is_some() {
        use secrecy::ExposeSecret as _;
        panic!(
            "deliberate test panic quoting {}",
            s.seqera.access_token.expose_secret()
        );
    }
    let http = http(&s.seqera, out, env)?;
    let clients = Clients {
        seqera: SeqeraClient::new(
            http.clone(),
            s.seqera.api_url.clone(),
            s.seqera.access_token.clone(),
        ),
        github: github_client(http, &s, env),
    };
    Ok((s, clients))
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
        .filter(|t| t.result.is_ok())
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
        "| Revoked token ids | {revoked} |\n| Kept previous | {} |\n\n",
        s.keep_previous
    ));
    if !o.targets.is_empty() {
        m.push_str("| Target | Secret | Result |\n|---|---|---|\n");
        for (t, r) in s.targets.iter().zip(&o.targets) {
            let result = match &r.result {
                Ok(Written::Created) => "✅ created".to_string(),
                Ok(Written::Updated) => "✅ updated".to_string(),
                Err(e) => format!("❌ {}", cell(e)),
            };
            m.push_str(&format!(
                "| {} | {} | {result} |\n",
                code(&r.label),
                code(t.secret_name.as_str())
            ));
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
