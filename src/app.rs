//! Runs one command: turns the command line into checked settings, builds the clients, runs
//! `rotate` / `list` / `revoke` / `demo`, renders the outcome through `report`, and decides
//! the exit code (0 done, 1 failed, 2 invalid settings).

use std::time::Duration;

use clap::ArgMatches;
use time::OffsetDateTime;

use crate::github::{GithubClient, Written};
use crate::http::{Http, Policy};
use crate::naming;
use crate::pace::{Limits, Pacer};
use crate::report::Report;
use crate::rotate::{rotate, Clients, Outcome};
use crate::seqera::{token_id_of, SeqeraClient, TokenInfo};
use crate::settings::{parse_duration, Raw, SeqeraSettings, Settings, SettingsError};

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
    match matches.subcommand() {
        None | Some(("rotate", _)) => run_rotate(&raw, env, out).await,
        Some(("list", _)) => run_list(&raw, env, out).await,
        Some(("revoke", sub)) => run_revoke(&raw, sub, env, out).await,
        Some(("demo", _)) => crate::demo::run(out).await,
        Some((other, _)) => {
            out.error(&format!("unknown command `{other}`"));
            EXIT_USAGE
        }
    }
}

fn usage_error(e: &SettingsError, out: &Report) -> u8 {
    for p in &e.0 {
        out.error(&p.to_string());
    }
    out.step("Nothing was sent. See --help for every setting.");
    EXIT_USAGE
}

fn http(seqera: &SeqeraSettings, out: &Report, env: Env<'_>) -> Result<Http, u8> {
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

/// The `rotate` command, from raw settings to exit code.
pub async fn run_rotate(raw: &Raw, env: Env<'_>, out: &Report) -> u8 {
    let s = match Settings::from_raw(raw) {
        Ok(s) => s,
        Err(e) => return usage_error(&e, out),
    };
    // The runner masks `secrets.*`, but a token may come from elsewhere (another step's output).
    out.mask(&s.seqera.access_token);
    out.mask(&s.github_token);
    let http = match http(&s.seqera, out, env) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let clients = Clients {
        seqera: SeqeraClient::new(
            http.clone(),
            s.seqera.api_url.clone(),
            s.seqera.access_token.clone(),
        ),
        github: github_client(http, &s, env),
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
    if let Err(e) = out.summary(&summary(&s, &outcome)) {
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
    // Not due, or a dry run: only `rotated=false` (SPEC §5 step 3).
    if o.skipped.is_some() {
        return vec![("rotated", "false".into())];
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
        (
            "revoked-token-ids",
            o.revoked
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
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

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The job summary: what was created, written, revoked, what failed and why.
pub fn summary(s: &Settings, o: &Outcome) -> String {
    let mut m = String::from("### Seqera token rotation\n\n");
    if let Some(reason) = &o.skipped {
        m.push_str(&format!("Nothing rotated: {}\n", md(reason)));
        return m;
    }
    m.push_str("| | |\n|---|---|\n");
    match (&o.token, o.rotated) {
        (Some(t), true) => m.push_str(&format!(
            "| New token | `{}` (id {}) |\n",
            md(&t.name),
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
                Err(e) => format!("❌ {}", md(e)),
            };
            m.push_str(&format!(
                "| `{}` | `{}` | {result} |\n",
                md(&r.label),
                t.secret_name
            ));
        }
        m.push('\n');
    }
    for n in &o.notes {
        m.push_str(&format!("> Note: {}\n\n", md(n)));
    }
    if let Some(e) = &o.error {
        m.push_str(&format!("**Failed:** {}\n", md(&e.to_string())));
    }
    m
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

async fn run_list(raw: &Raw, env: Env<'_>, out: &Report) -> u8 {
    let (s, _, tokens) = match seqera_tokens(raw, env, out).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let managed = naming::managed(&s.token_name, &tokens);
    out.data(&format!(
        "{:>10}  {:<50}  {:<20}  {}",
        "ID", "NAME", "CREATED", "LAST USED"
    ));
    for t in &managed {
        out.data(&format!(
            "{:>10}  {:<50}  {:<20}  {}",
            t.id,
            t.name,
            date(naming::created_at(&s.token_name, t)),
            date(t.last_used)
        ));
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
