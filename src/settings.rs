//! Raw input (flags, `INPUT_*` variables, conventional variables) → one validated settings
//! value (SPEC §2). One table, [`SETTINGS`], names every setting; it drives the command line,
//! the `INPUT_*` lookup, `--help`, and the test that keeps `action.yml` in step.
//! Nothing here touches the network.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use secrecy::SecretString;
use url::{Host, Url};

use crate::target::{
    check_environment, check_owner, check_repo_name, parse_repository, parse_targets, Scope,
    SecretName, Target,
};

/// One setting of SPEC §2.
#[derive(Debug)]
pub struct SettingSpec {
    /// Input and flag name, e.g. `seqera-access-token`.
    pub name: &'static str,
    /// Conventional environment variables, in order of preference.
    pub env: &'static [&'static str],
    /// The default as documented (None: required or unset).
    pub default: Option<&'static str>,
    /// A yes/no setting: `--force` alone means true.
    pub switch: bool,
    /// What it means, for `--help` and `action.yml`.
    pub help: &'static str,
}

/// Every setting, in the order of SPEC §2.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec { name: "seqera-access-token", env: &["TOWER_ACCESS_TOKEN"], default: None, switch: false,
        help: "Seqera Platform access token used to call the Seqera API (required). Prefer the input or the variable over the flag: flags show in process lists." },
    SettingSpec { name: "seqera-api-url", env: &["TOWER_API_ENDPOINT"], default: Some("https://api.cloud.seqera.io"), switch: false,
        help: "Seqera API base URL; Seqera Enterprise: https://HOST/api" },
    SettingSpec { name: "token-name", env: &[], default: None, switch: false,
        help: "Base name of the managed Seqera token, 1-34 characters (required); new tokens are named <token-name>-YYYYMMDD-HHMMSS" },
    SettingSpec { name: "github-token", env: &["GH_TOKEN", "GITHUB_TOKEN"], default: None, switch: false,
        help: "GitHub token that may write the secrets (required for rotate). The workflow's own GITHUB_TOKEN cannot write secrets: use a GitHub App installation token or a fine-grained token with \"Secrets: Read and write\"" },
    SettingSpec { name: "github-api-url", env: &["GITHUB_API_URL"], default: Some("https://api.github.com"), switch: false,
        help: "GitHub REST base URL; GitHub Enterprise Server: https://HOST/api/v3" },
    SettingSpec { name: "repository", env: &["GITHUB_REPOSITORY"], default: None, switch: false,
        help: "OWNER/REPO of the default target" },
    SettingSpec { name: "secret-name", env: &[], default: Some("TOWER_ACCESS_TOKEN"), switch: false,
        help: "Name of the secret to write" },
    SettingSpec { name: "environment", env: &[], default: None, switch: false,
        help: "Write a secret of this deployment environment of `repository` instead" },
    SettingSpec { name: "organization", env: &[], default: None, switch: false,
        help: "Write an organization Actions secret of this organization instead" },
    SettingSpec { name: "visibility", env: &[], default: None, switch: false,
        help: "Organization secret visibility: all, private or selected (default: keep the current one, else private)" },
    SettingSpec { name: "selected-repositories", env: &[], default: None, switch: false,
        help: "Repositories that may use a `selected` organization secret: names, one per line or comma-separated" },
    SettingSpec { name: "targets", env: &[], default: None, switch: false,
        help: "Newline-separated targets replacing the default one: repo:OWNER/REPO, env:OWNER/REPO/ENV, org:ORG, dependabot:OWNER/REPO, codespaces:OWNER/REPO, each optionally followed by =SECRET_NAME; # starts a comment" },
    SettingSpec { name: "keep-previous", env: &[], default: Some("0"), switch: false,
        help: "How many older managed tokens to leave alive (overlap for running pipelines)" },
    SettingSpec { name: "min-age", env: &[], default: Some("0"), switch: false,
        help: "Rotate only if the newest managed token is older than this (e.g. 90m, 12h, 30d)" },
    SettingSpec { name: "force", env: &[], default: Some("false"), switch: true,
        help: "Rotate even when min-age says it is not due" },
    SettingSpec { name: "dry-run", env: &[], default: Some("false"), switch: true,
        help: "Read-only: print the plan and change nothing" },
    SettingSpec { name: "expose-access-key", env: &[], default: Some("false"), switch: true,
        help: "Also write the new token value to the masked output access-key" },
    SettingSpec { name: "max-concurrency", env: &[], default: Some("4"), switch: false,
        help: "GitHub secret writes in flight at once (1-32)" },
    SettingSpec { name: "timeout", env: &[], default: Some("30s"), switch: false,
        help: "Per-request timeout (e.g. 10s, 1m)" },
    SettingSpec { name: "grace-period", env: &[], default: Some("0"), switch: false,
        help: "Superseded managed tokens stay live until their successor is at least this old (e.g. 6h: runs queued or running before the rotation keep a working token); every run revokes those whose time has come" },
    SettingSpec { name: "max-age", env: &[], default: None, switch: false,
        help: "status: unhealthy when the newest managed token is older than this (the rotation has stopped), e.g. 8d" },
    SettingSpec { name: "command", env: &[], default: Some("rotate"), switch: false,
        help: "What to run when no command is named on the command line: rotate, status or list (lets the Action run the status check)" },
];

/// The commands the `command` setting may name (the others take flags of their own).
pub const SETTING_COMMANDS: &[&str] = &["rotate", "status", "list"];

/// The environment variable the Actions runner sets for an input: upper-cased, hyphens kept.
pub fn input_var(name: &str) -> String {
    format!("INPUT_{}", name.to_ascii_uppercase())
}

fn setting_arg(s: &'static SettingSpec) -> Arg {
    let mut sources = vec![input_var(s.name)];
    sources.extend(s.env.iter().map(|e| e.to_string()));
    let mut help = format!("{} [env: {}]", s.help, sources.join(", "));
    if let Some(d) = s.default {
        help.push_str(&format!(" [default: {d}]"));
    }
    let arg = Arg::new(s.name).long(s.name).global(true).help(help);
    if s.switch {
        arg.value_name("BOOL")
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
    } else {
        arg.value_name(value_name(s.name)).action(ArgAction::Set)
    }
}

fn value_name(name: &str) -> &'static str {
    match name {
        "seqera-access-token" | "github-token" => "TOKEN",
        "seqera-api-url" | "github-api-url" => "URL",
        "repository" => "OWNER/REPO",
        "min-age" | "timeout" | "grace-period" | "max-age" => "DURATION",
        "keep-previous" | "max-concurrency" => "N",
        "targets" => "LINES",
        "command" => "COMMAND",
        "selected-repositories" => "NAMES",
        _ => "VALUE",
    }
}

const ABOUT: &str = "Rotate a Seqera Platform access token into GitHub secrets, safely";
const LONG_ABOUT: &str = "\
Rotate a Seqera Platform access token into GitHub secrets, safely.

Creates a new Seqera token named <token-name>-YYYYMMDD-HHMMSS, checks that it works,
stores it (libsodium sealed box) in every target secret, and only then revokes the older
managed tokens. Whatever fails, every target keeps a valid token; the next run repairs
what an interrupted one left behind.

Every setting can be a flag, an Action input (INPUT_<NAME>, hyphens kept) or, where listed,
a conventional variable; precedence: flag > INPUT_* > variable > default. Empty = unset.

Exit codes: 0 done (also: not due, dry run), 1 an operation failed, 2 invalid settings
(nothing was sent).";

/// The whole command line: settings as global flags, and the four commands.
pub fn command() -> Command {
    let mut cmd = Command::new("seqera-token-rotate")
        .version(env!("CARGO_PKG_VERSION"))
        // A fixed width keeps `--help` the same everywhere (and its snapshot stable).
        .term_width(100)
        .about(ABOUT)
        .long_about(LONG_ABOUT)
        .subcommand(Command::new("rotate").about("Create a new token, store it in every target, revoke the older ones (the default)"))
        .subcommand(Command::new("list").about("List the managed tokens of token-name, newest first")
            .arg(json_arg()))
        .subcommand(
            Command::new("revoke")
                .about("Revoke managed tokens of token-name (keeps the newest by default)")
                .arg(Arg::new("keep").long("keep").value_name("N").default_value("1")
                    .value_parser(clap::value_parser!(usize))
                    .help("How many of the newest managed tokens to keep"))
                .arg(Arg::new("older-than").long("older-than").value_name("DURATION")
                    .help("Revoke only tokens created longer ago than this (e.g. 30d)")),
        )
        .subcommand(
            Command::new("status")
                .about("Read-only health check for alerting: exit 0 healthy, 1 unhealthy (each problem named)")
                .arg(json_arg()),
        )
        .subcommand(Command::new("demo").about(
            "Run a complete rotation, twice, against a built-in local sandbox (no network, no credentials)",
        ))
        .subcommand(crate::sandbox_cmd::command())
        .subcommand(crate::generate::command());
    for s in SETTINGS {
        cmd = cmd.arg(setting_arg(s));
    }
    cmd
}

/// `--json` of `list` and `status`.
fn json_arg() -> Arg {
    Arg::new("json")
        .long("json")
        .action(ArgAction::SetTrue)
        .help("Print one JSON document on stdout (outside Actions nothing else goes there)")
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `--name`.
    Flag(&'static str),
    /// `INPUT_NAME`.
    Input(String),
    /// A conventional variable.
    Env(&'static str),
    /// The documented default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(n) => write!(f, "--{n}"),
            Origin::Input(v) => f.write_str(v),
            Origin::Env(v) => f.write_str(v),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// What an environment lookup returns for a variable whose value is not valid UTF-8. No real
/// value can look like this (a NUL cannot be in the environment), so it is never taken for a
/// value, and it is never treated as unset either: such a setting is invalid (SPEC §2).
pub const NOT_UNICODE: &str = "\0(not valid UTF-8)";

/// Settings as given, before checking: name → (value, origin). Empty values are unset.
pub struct Raw {
    values: HashMap<&'static str, (String, Origin)>,
}

impl Raw {
    /// Applies the precedence flag > `INPUT_*` > conventional variable > default.
    pub fn gather(matches: &ArgMatches, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let nonempty = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let mut values = HashMap::new();
        for s in SETTINGS {
            let flag = nonempty(matches.get_one::<String>(s.name).cloned())
                .map(|v| (v, Origin::Flag(s.name)));
            let found = flag
                .or_else(|| {
                    let var = input_var(s.name);
                    nonempty(env(&var)).map(|v| (v, Origin::Input(var)))
                })
                .or_else(|| {
                    s.env
                        .iter()
                        .find_map(|e| nonempty(env(e)).map(|v| (v, Origin::Env(e))))
                })
                .or_else(|| s.default.map(|d| (d.to_string(), Origin::Default)));
            if let Some(v) = found {
                values.insert(s.name, v);
            }
        }
        Self { values }
    }

    fn get(&self, name: &str) -> Option<&(String, Origin)> {
        self.values.get(name)
    }

    /// The `command` setting, checked: which command to run when the command line names
    /// none. Err is the problem to report (exit 2).
    pub fn command(&self) -> Result<&'static str, SettingsError> {
        let (v, origin) = self
            .get("command")
            .cloned()
            .unwrap_or_else(|| ("rotate".into(), Origin::Default));
        let problem = |message: String| {
            SettingsError(vec![Problem {
                setting: "command",
                origin: Some(origin.clone()),
                message,
            }])
        };
        if v == NOT_UNICODE {
            return Err(problem(
                "the value is not valid UTF-8; check how it is passed".into(),
            ));
        }
        let v = v.trim().to_ascii_lowercase();
        SETTING_COMMANDS
            .iter()
            .find(|c| **c == v)
            .copied()
            .ok_or_else(|| {
                problem(format!(
                    "`{v}` is not one of {}",
                    SETTING_COMMANDS.join(", ")
                ))
            })
    }

    /// Problems for every value that is not valid UTF-8, in table order.
    fn not_unicode(&self) -> Vec<Problem> {
        SETTINGS
            .iter()
            .filter_map(|s| match self.values.get(s.name) {
                Some((v, o)) if v == NOT_UNICODE => Some(Problem {
                    setting: s.name,
                    origin: Some(o.clone()),
                    message: "the value is not valid UTF-8; check how it is passed".into(),
                }),
                _ => None,
            })
            .collect()
    }
}

/// One invalid or missing setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The setting's name.
    pub setting: &'static str,
    /// Where the bad value came from (None: missing).
    pub origin: Option<Origin>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(o) => write!(f, "invalid `{}` (from {o}): {}", self.setting, self.message),
            None => write!(f, "missing `{}`: {}", self.setting, self.message),
        }
    }
}

/// All problems found in the settings; the run stops before any request (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub Vec<Problem>);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsError {}

/// The managed token's base name (SPEC §3): 1–34 of `[A-Za-z0-9._-]`, so that
/// `<name>-YYYYMMDD-HHMMSS` always fits Seqera's 50 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    /// Checks a base name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let n = raw.chars().count();
        if n == 0 || n > 34 {
            return Err(format!(
                "`{raw}` is {n} characters; it must be 1-34 so that `-YYYYMMDD-HHMMSS` fits Seqera's 50"
            ));
        }
        if let Some(c) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "`{raw}` contains `{c}`: use letters, digits, `.`, `_` and `-`"
            ));
        }
        Ok(Self(raw.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Organization secret visibility.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Every repository in the organization.
    All,
    /// Private and internal repositories.
    Private,
    /// Only the listed repositories.
    Selected,
}

impl Visibility {
    /// GitHub's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::All => "all",
            Visibility::Private => "private",
            Visibility::Selected => "selected",
        }
    }

    /// Parses GitHub's spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "all" => Some(Visibility::All),
            "private" => Some(Visibility::Private),
            "selected" => Some(Visibility::Selected),
            _ => None,
        }
    }
}

/// Settings every command needs to talk to Seqera.
pub struct SeqeraSettings {
    /// Seqera API base URL, used as given.
    pub api_url: Url,
    /// Token that calls the Seqera API.
    pub access_token: SecretString,
    /// Base name of the managed tokens.
    pub token_name: TokenName,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Read-only run.
    pub dry_run: bool,
}

/// Organization secret access, when the user sets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgAccess {
    /// Wanted visibility.
    pub visibility: Visibility,
    /// Repository names (`name` or `ORG/name`) for `selected`.
    pub selected_repositories: Vec<String>,
}

/// The validated settings of a rotation.
pub struct Settings {
    /// Seqera side.
    pub seqera: SeqeraSettings,
    /// GitHub REST base URL, used as given.
    pub github_api_url: Url,
    /// Token that writes the secrets.
    pub github_token: SecretString,
    /// Where the new token goes, in input order.
    pub targets: Vec<Target>,
    /// Visibility for organization secrets (None: keep current, else private).
    pub org_access: Option<OrgAccess>,
    /// Older managed tokens to leave alive.
    pub keep_previous: usize,
    /// Rotate only when the newest managed token is older than this.
    pub min_age: Option<Duration>,
    /// Rotate even if not due.
    pub force: bool,
    /// Also output the new value (masked).
    pub expose_access_key: bool,
    /// GitHub writes in flight at once.
    pub max_concurrency: usize,
    /// Superseded tokens stay live until their successor is this old.
    pub grace_period: Duration,
    /// `status`: unhealthy when the newest managed token is older than this.
    pub max_age: Option<Duration>,
}

/// Collects problems while checking, so the user sees all of them at once.
struct Checker<'a> {
    raw: &'a Raw,
    problems: Vec<Problem>,
}

impl<'a> Checker<'a> {
    fn value(&self, name: &'static str) -> Option<&'a str> {
        // A value that is not UTF-8 is already a problem: check nothing more about it.
        self.raw
            .get(name)
            .map(|(v, _)| v.as_str())
            .filter(|v| *v != NOT_UNICODE)
    }

    fn fail(&mut self, name: &'static str, message: impl Into<String>) {
        let origin = self.raw.get(name).map(|(_, o)| o.clone());
        self.problems.push(Problem {
            setting: name,
            origin,
            message: message.into(),
        });
    }

    fn require(&mut self, name: &'static str, what: &str) -> Option<&'a str> {
        let v = self.value(name);
        if v.is_none() && self.raw.get(name).is_none() {
            let mut how = format!("set the input `{name}` or the flag `--{name}`");
            let spec = SETTINGS
                .iter()
                .find(|s| s.name == name)
                .expect("known setting");
            if !spec.env.is_empty() {
                how.push_str(&format!(", or the variable {}", spec.env.join(" or ")));
            }
            self.problems.push(Problem {
                setting: name,
                origin: None,
                message: format!("{what}; {how}"),
            });
        }
        v
    }

    /// Parses with `f`, recording the error message under `name`.
    fn parse<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.value(name)?;
        match f(v.trim()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.fail(name, e);
                None
            }
        }
    }

    fn secret(&mut self, name: &'static str, what: &str) -> Option<SecretString> {
        let v = self.require(name, what)?;
        // Never quote the value: it is a credential.
        let v = v.trim();
        if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.fail(
                name,
                "the token contains white space or control characters; check how it is passed",
            );
            return None;
        }
        Some(SecretString::from(v.to_string()))
    }

    fn url(&mut self, name: &'static str) -> Option<Url> {
        self.parse(name, parse_api_url)
    }

    fn flag(&mut self, name: &'static str) -> bool {
        self.parse(name, parse_bool).unwrap_or(false)
    }

    fn seqera(&mut self) -> Option<SeqeraSettings> {
        let access_token = self.secret("seqera-access-token", "a Seqera access token is required");
        let api_url = self.url("seqera-api-url");
        let token_name = self
            .require(
                "token-name",
                "the base name of the managed token is required",
            )
            .and_then(|_| self.parse("token-name", TokenName::parse));
        let timeout = self.parse("timeout", |v| {
            let d = parse_duration(v)?;
            if d.is_zero() || d > Duration::from_secs(600) {
                return Err(format!("`{v}` must be more than 0 and at most 10m"));
            }
            Ok(d)
        });
        let dry_run = self.flag("dry-run");
        Some(SeqeraSettings {
            api_url: api_url?,
            access_token: access_token?,
            token_name: token_name?,
            timeout: timeout?,
            dry_run,
        })
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, SettingsError> {
        match value {
            Some(v) if self.problems.is_empty() => Ok(v),
            _ => Err(SettingsError(self.problems)),
        }
    }
}

impl SeqeraSettings {
    /// The settings `list` and `revoke` need: Seqera only.
    pub fn from_raw(raw: &Raw) -> Result<Self, SettingsError> {
        let mut c = Checker {
            raw,
            problems: raw.not_unicode(),
        };
        let s = c.seqera();
        c.finish(s)
    }
}

/// `keep-previous` and `grace-period` alone, for `list` (which marks retiring tokens).
pub fn lifecycle_from_raw(raw: &Raw) -> Result<(usize, Duration), SettingsError> {
    let mut c = Checker {
        raw,
        problems: Vec::new(),
    };
    let keep = c.parse("keep-previous", parse_keep);
    let grace = c.parse("grace-period", parse_duration);
    let value = keep.zip(grace);
    c.finish(value)
}

fn parse_keep(v: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .map_err(|_| format!("`{v}` is not a whole number >= 0"))
}

impl Settings {
    /// Checks everything a rotation needs. All problems are reported together.
    pub fn from_raw(raw: &Raw) -> Result<Self, SettingsError> {
        let mut c = Checker {
            raw,
            problems: raw.not_unicode(),
        };
        let seqera = c.seqera();
        let github_token = c.secret(
            "github-token",
            "a GitHub token that may write secrets is required",
        );
        let github_api_url = c.url("github-api-url");
        let secret_name = c.parse("secret-name", SecretName::parse);
        let keep_previous = c.parse("keep-previous", parse_keep);
        let min_age = c
            .parse("min-age", parse_duration)
            .map(|d| Some(d).filter(|d| !d.is_zero()));
        let force = c.flag("force");
        let expose_access_key = c.flag("expose-access-key");
        let max_concurrency = c.parse("max-concurrency", |v| match v.parse::<usize>() {
            Ok(n) if (1..=32).contains(&n) => Ok(n),
            _ => Err(format!("`{v}` is not a whole number from 1 to 32")),
        });
        let grace_period = c.parse("grace-period", parse_duration);
        let max_age = match c.value("max-age") {
            None => Some(None),
            Some(_) => c.parse("max-age", |v| match parse_duration(v) {
                Ok(d) if d.is_zero() => Err(format!("`{v}` must be more than 0")),
                other => other.map(Some),
            }),
        };
        let targets = secret_name.as_ref().and_then(|name| c.targets(name));
        let org_access = targets.as_ref().and_then(|t| c.org_access(t));

        let value = (|| {
            Some(Settings {
                seqera: seqera?,
                github_api_url: github_api_url?,
                github_token: github_token?,
                targets: targets?,
                org_access: org_access?,
                keep_previous: keep_previous?,
                min_age: min_age?,
                force,
                expose_access_key,
                max_concurrency: max_concurrency?,
                grace_period: grace_period?,
                max_age: max_age?,
            })
        })();
        c.finish(value)
    }
}

impl Checker<'_> {
    fn targets(&mut self, default_name: &SecretName) -> Option<Vec<Target>> {
        if let Some(text) = self.value("targets") {
            let ignored: Vec<_> = ["environment", "organization"]
                .into_iter()
                .filter(|n| matches!(self.raw.get(n), Some((_, o)) if *o != Origin::Default && !matches!(o, Origin::Env(_))))
                .collect();
            if !ignored.is_empty() {
                for n in ignored {
                    self.fail(n, "`targets` replaces the default target; give this target as a `targets` line instead");
                }
                return None;
            }
            return match parse_targets(text, default_name) {
                Ok(t) if t.is_empty() => {
                    self.fail("targets", "no target in it (only blank lines and comments)");
                    None
                }
                Ok(t) => Some(t),
                Err(e) => {
                    self.fail("targets", e.to_string());
                    None
                }
            };
        }
        let scope = if let Some(org) = self.value("organization") {
            let org = org.trim();
            if let Err(e) = check_owner(org) {
                self.fail("organization", e);
                return None;
            }
            Scope::Org {
                org: org.to_string(),
            }
        } else {
            let repo = self.require(
                "repository",
                "the target repository (OWNER/REPO) is required",
            )?;
            let (owner, repo) = match parse_repository(repo.trim()) {
                Ok(p) => p,
                Err(e) => {
                    self.fail("repository", e);
                    return None;
                }
            };
            match self.value("environment") {
                Some(env) => {
                    let env = env.trim();
                    if let Err(e) = check_environment(env) {
                        self.fail("environment", e);
                        return None;
                    }
                    Scope::Environment {
                        owner,
                        repo,
                        env: env.to_string(),
                    }
                }
                None => Scope::Repo { owner, repo },
            }
        };
        Some(vec![Target::new(scope, default_name.clone(), default_name)])
    }

    fn org_access(&mut self, targets: &[Target]) -> Option<Option<OrgAccess>> {
        let has_org = targets.iter().any(|t| matches!(t.scope, Scope::Org { .. }));
        let visibility = self.parse("visibility", |v| {
            Visibility::parse(v)
                .ok_or_else(|| format!("`{v}` is not one of all, private, selected"))
        });
        let repos = self.parse("selected-repositories", parse_repo_list);
        if self.value("visibility").is_some() && visibility.is_none() {
            return None;
        }
        if self.value("selected-repositories").is_some() && repos.is_none() {
            return None;
        }
        if (visibility.is_some() || repos.is_some()) && !has_org {
            let name = if visibility.is_some() {
                "visibility"
            } else {
                "selected-repositories"
            };
            self.fail(
                name,
                "applies only to organization secrets, and no target is one",
            );
            return None;
        }
        match (visibility, repos) {
            (None, None) => Some(None),
            (None, Some(_)) => {
                self.fail("selected-repositories", "needs `visibility: selected`");
                None
            }
            (Some(Visibility::Selected), None) => {
                self.fail("visibility", "`selected` needs `selected-repositories`");
                None
            }
            (Some(v), Some(_)) if v != Visibility::Selected => {
                self.fail(
                    "selected-repositories",
                    format!(
                        "given with `visibility: {}`; it only applies to `selected`",
                        v.as_str()
                    ),
                );
                None
            }
            (Some(visibility), repos) => {
                let repos = repos.unwrap_or_default();
                if !repos.is_empty() && !self.repos_in_target_orgs(targets, &repos) {
                    return None;
                }
                Some(Some(OrgAccess {
                    visibility,
                    selected_repositories: repos,
                }))
            }
        }
    }
}

impl Checker<'_> {
    /// Every `ORG/name` entry names an organization that is a target, and every organization
    /// target is left with at least one repository (entries were once dropped silently, and
    /// the secret became `selected` with an empty list).
    fn repos_in_target_orgs(&mut self, targets: &[Target], repos: &[String]) -> bool {
        let orgs: Vec<&str> = targets
            .iter()
            .filter_map(|t| match &t.scope {
                Scope::Org { org } => Some(org.as_str()),
                _ => None,
            })
            .collect();
        let foreign: Vec<&str> = repos
            .iter()
            .filter(|r| {
                r.split_once('/')
                    .is_some_and(|(o, _)| !orgs.iter().any(|g| g.eq_ignore_ascii_case(o)))
            })
            .map(String::as_str)
            .collect();
        if !foreign.is_empty() {
            self.fail(
                "selected-repositories",
                format!(
                    "{} belong(s) to another organization than the target's ({}); an organization secret can only be shared with its own repositories",
                    foreign.join(", "),
                    orgs.join(", ")
                ),
            );
            return false;
        }
        for org in &orgs {
            let any = repos.iter().any(|r| match r.split_once('/') {
                Some((o, _)) => o.eq_ignore_ascii_case(org),
                None => true,
            });
            if !any {
                self.fail(
                    "selected-repositories",
                    format!(
                        "no repository of `{org}` in it: `org:{org}` would be shared with none"
                    ),
                );
                return false;
            }
        }
        true
    }
}

fn parse_repo_list(v: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in v
        .split(['\n', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match item.split_once('/') {
            Some((org, name)) => {
                check_owner(org)?;
                check_repo_name(name)?;
            }
            None => check_repo_name(item)?,
        }
        if !out.iter().any(|x| x == item) {
            out.push(item.to_string());
        }
    }
    if out.is_empty() {
        return Err("no repository name in it".into());
    }
    Ok(out)
}

/// `true`/`false` (also `yes`/`no`, `1`/`0`, `on`/`off`; any case).
pub fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(format!("`{v}` is not true or false")),
    }
}

/// A duration with units: `90m`, `12h`, `30d`, `1h 30m`, `45s`; `0` means none.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    if v == "0" {
        return Ok(Duration::ZERO);
    }
    if v.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "`{v}` has no unit: write e.g. {v}s, {v}m, {v}h or {v}d"
        ));
    }
    humantime::parse_duration(v)
        .map_err(|e| format!("`{v}` is not a duration like 90m, 12h or 30d ({e})"))
}

/// An API base URL: `https://`, or `http://` on a loopback host only; no credentials,
/// query or fragment. The path is kept exactly as given. Errors never repeat a password, a
/// user name, a query or a fragment (they often carry tokens).
pub fn parse_api_url(v: &str) -> Result<Url, String> {
    let shown = shown_url(v);
    let url = Url::parse(v).map_err(|e| format!("`{shown}` is not a URL ({e})"))?;
    let loopback = match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("`{shown}` has no host")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "`{shown}` must not contain a user name or password (give tokens as their own settings)"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{shown}` must not have a query or fragment"));
    }
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "`{shown}` must use https:// (http:// is allowed only for localhost)"
            ))
        }
        other => return Err(format!("`{shown}` has scheme {other}:, expected https://")),
    }
    Ok(url)
}

/// A URL as it may be quoted: the user information, the query and the fragment replaced.
fn shown_url(v: &str) -> String {
    let (main, cut) = match v.find(['?', '#']) {
        Some(i) => (&v[..i], true),
        None => (v, false),
    };
    let mut out = match (main.find("://"), main.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &main[..s], &main[at + 1..]),
        (None, Some(at)) => format!("…@{}", &main[at + 1..]),
        _ => main.to_string(),
    };
    if cut {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use secrecy::ExposeSecret;

    fn raw(args: &[&str], env: &[(&str, &str)]) -> Raw {
        let mut argv = vec!["seqera-token-rotate"];
        argv.extend_from_slice(args);
        let m = command().try_get_matches_from(argv).unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Raw::gather(&m, &|k| env.get(k).cloned())
    }

    const BASE: &[(&str, &str)] = &[
        ("INPUT_SEQERA-ACCESS-TOKEN", "seqera-secret"),
        ("INPUT_TOKEN-NAME", "ci"),
        ("INPUT_GITHUB-TOKEN", "gh-secret"),
        ("GITHUB_REPOSITORY", "octo/app"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = BASE
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn defaults_and_inputs() {
        let s = Settings::from_raw(&raw(&[], BASE)).unwrap();
        assert_eq!(s.seqera.api_url.as_str(), "https://api.cloud.seqera.io/");
        assert_eq!(s.github_api_url.as_str(), "https://api.github.com/");
        assert_eq!(s.targets.len(), 1);
        assert_eq!(s.targets[0].label, "repo:octo/app");
        assert_eq!(s.targets[0].secret_name.as_str(), "TOWER_ACCESS_TOKEN");
        assert_eq!(
            (s.keep_previous, s.max_concurrency, s.min_age),
            (0, 4, None)
        );
        assert_eq!(s.seqera.timeout, Duration::from_secs(30));
        assert_eq!((s.grace_period, s.max_age), (Duration::ZERO, None));
        let s = Settings::from_raw(&raw(
            &["--grace-period", "6h"],
            &with(&[("INPUT_MAX-AGE", "8d")]),
        ))
        .unwrap();
        assert_eq!(s.grace_period, Duration::from_secs(6 * 3600));
        assert_eq!(s.max_age, Some(Duration::from_secs(8 * 86400)));
        assert!(!s.force && !s.seqera.dry_run && !s.expose_access_key);
        assert_eq!(s.seqera.access_token.expose_secret(), "seqera-secret");
    }

    #[test]
    fn precedence_flag_input_env_default() {
        let env = with(&[
            ("INPUT_SECRET-NAME", "FROM_INPUT"),
            ("TOWER_API_ENDPOINT", "https://env.example/api"),
        ]);
        let s = Settings::from_raw(&raw(&["--secret-name", "FROM_FLAG"], &env)).unwrap();
        assert_eq!(s.targets[0].secret_name.as_str(), "FROM_FLAG");
        assert_eq!(s.seqera.api_url.as_str(), "https://env.example/api");
        let env = with(&[
            ("INPUT_SEQERA-API-URL", "https://input.example/api"),
            ("TOWER_API_ENDPOINT", "https://env.example/api"),
        ]);
        let s = Settings::from_raw(&raw(&[], &env)).unwrap();
        assert_eq!(s.seqera.api_url.as_str(), "https://input.example/api");
        // An empty input counts as unset, so the conventional variable wins.
        let env = with(&[
            ("INPUT_SEQERA-API-URL", ""),
            ("TOWER_API_ENDPOINT", "https://env.example/api"),
        ]);
        let s = Settings::from_raw(&raw(&[], &env)).unwrap();
        assert_eq!(s.seqera.api_url.as_str(), "https://env.example/api");
        // GH_TOKEN before GITHUB_TOKEN.
        let env = [
            ("INPUT_SEQERA-ACCESS-TOKEN", "x"),
            ("INPUT_TOKEN-NAME", "ci"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_TOKEN", "b"),
            ("GH_TOKEN", "a"),
        ];
        let s = Settings::from_raw(&raw(&[], &env)).unwrap();
        assert_eq!(s.github_token.expose_secret(), "a");
    }

    #[test]
    fn switches() {
        let s = Settings::from_raw(&raw(
            &["--force", "--dry-run=false"],
            &with(&[
                ("INPUT_DRY-RUN", "true"),
                ("INPUT_EXPOSE-ACCESS-KEY", "TRUE"),
            ]),
        ))
        .unwrap();
        assert!(s.force && !s.seqera.dry_run && s.expose_access_key);
    }

    #[test]
    fn default_target_kinds() {
        let s = Settings::from_raw(&raw(&[], &with(&[("INPUT_ENVIRONMENT", "prod eu")]))).unwrap();
        assert_eq!(s.targets[0].label, "env:octo/app/prod eu");
        let s = Settings::from_raw(&raw(
            &[],
            &with(&[
                ("INPUT_ENVIRONMENT", "prod"),
                ("INPUT_ORGANIZATION", "octo"),
            ]),
        ))
        .unwrap();
        assert_eq!(s.targets[0].label, "org:octo");
        let s = Settings::from_raw(&raw(
            &[],
            &with(&[("INPUT_TARGETS", "repo:a/b\ndependabot:a/b=X")]),
        ))
        .unwrap();
        let labels: Vec<_> = s.targets.iter().map(|t| t.label.clone()).collect();
        assert_eq!(labels, ["repo:a/b", "dependabot:a/b=X"]);
    }

    #[test]
    fn org_access() {
        let s = Settings::from_raw(&raw(
            &[],
            &with(&[
                ("INPUT_ORGANIZATION", "octo"),
                ("INPUT_VISIBILITY", "selected"),
                ("INPUT_SELECTED-REPOSITORIES", "a, octo/b\nc\n"),
            ]),
        ))
        .unwrap();
        assert_eq!(
            s.org_access,
            Some(OrgAccess {
                visibility: Visibility::Selected,
                selected_repositories: vec!["a".into(), "octo/b".into(), "c".into()]
            })
        );
    }

    /// Every invalid setting gives a message naming the setting; none echoes a token value.
    // Issue 9, defect 7: a non-UTF-8 INPUT_SEQERA-API-URL counted as unset, and the token
    // went to TOWER_API_ENDPOINT instead.
    #[test]
    fn a_value_that_is_not_utf8_is_invalid_not_unset() {
        let env = with(&[
            ("INPUT_SEQERA-API-URL", NOT_UNICODE),
            ("TOWER_API_ENDPOINT", "https://elsewhere.example/api"),
        ]);
        let err = Settings::from_raw(&raw(&[], &env)).err().expect("rejected");
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].setting, "seqera-api-url");
        assert_eq!(
            err.to_string(),
            "invalid `seqera-api-url` (from INPUT_SEQERA-API-URL): the value is not valid UTF-8; check how it is passed"
        );
        let env = with(&[("INPUT_SEQERA-ACCESS-TOKEN", NOT_UNICODE)]);
        let err = SeqeraSettings::from_raw(&raw(&[], &env))
            .err()
            .expect("rejected");
        assert_eq!(err.0.len(), 1, "not also `missing`: {err}");
    }

    #[test]
    fn invalid_settings() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (
                &[("INPUT_SEQERA-ACCESS-TOKEN", "")],
                "seqera-access-token",
                "TOWER_ACCESS_TOKEN",
            ),
            (&[("INPUT_TOKEN-NAME", "")], "token-name", "required"),
            (
                &[("INPUT_TOKEN-NAME", "a-name-that-is-way-too-long-for-seqera")],
                "token-name",
                "1-34",
            ),
            (
                &[("INPUT_TOKEN-NAME", "bad name")],
                "token-name",
                "contains ` `",
            ),
            (
                &[("INPUT_GITHUB-TOKEN", "")],
                "github-token",
                "GH_TOKEN or GITHUB_TOKEN",
            ),
            (
                &[("INPUT_SEQERA-API-URL", "http://api.example.com")],
                "seqera-api-url",
                "https://",
            ),
            (
                &[("INPUT_GITHUB-API-URL", "ftp://x")],
                "github-api-url",
                "scheme",
            ),
            (
                &[("INPUT_SEQERA-API-URL", "not a url")],
                "seqera-api-url",
                "not a URL",
            ),
            (
                &[("INPUT_GITHUB-API-URL", "https://u:p@x.example")],
                "github-api-url",
                "user name or password",
            ),
            (
                &[(
                    "INPUT_GITHUB-API-URL",
                    "https://x.example/api?token=qsecret1",
                )],
                "github-api-url",
                "query",
            ),
            (
                &[("INPUT_SEQERA-API-URL", "https://x.example/api#qsecret1")],
                "seqera-api-url",
                "fragment",
            ),
            (
                &[(
                    "INPUT_SEQERA-API-URL",
                    "https://user:pwsecret1@x.example/api",
                )],
                "seqera-api-url",
                "password",
            ),
            (
                &[("INPUT_SEQERA-API-URL", "ht tp://user:pwsecret1@x")],
                "seqera-api-url",
                "not a URL",
            ),
            (
                &[("INPUT_ENVIRONMENT", "..")],
                "environment",
                "not an environment name",
            ),
            (
                &[
                    ("INPUT_ORGANIZATION", "octo"),
                    ("INPUT_VISIBILITY", "selected"),
                    ("INPUT_SELECTED-REPOSITORIES", "app\nother-org/lib"),
                ],
                "selected-repositories",
                "another organization",
            ),
            (
                &[
                    ("INPUT_TARGETS", "org:octo\norg:acme"),
                    ("INPUT_VISIBILITY", "selected"),
                    ("INPUT_SELECTED-REPOSITORIES", "octo/app"),
                ],
                "selected-repositories",
                "`org:acme` would be shared with none",
            ),
            (&[("GITHUB_REPOSITORY", "")], "repository", "required"),
            (
                &[("GITHUB_REPOSITORY", "noslash")],
                "repository",
                "OWNER/REPO",
            ),
            (
                &[("INPUT_SECRET-NAME", "GITHUB_TOKEN")],
                "secret-name",
                "GITHUB_",
            ),
            (&[("INPUT_SECRET-NAME", "9LIVES")], "secret-name", "digit"),
            (
                &[("INPUT_SECRET-NAME", "A-B")],
                "secret-name",
                "contains `-`",
            ),
            (
                &[("INPUT_KEEP-PREVIOUS", "-1")],
                "keep-previous",
                "whole number",
            ),
            (&[("INPUT_MIN-AGE", "3x")], "min-age", "duration"),
            (&[("INPUT_MIN-AGE", "30")], "min-age", "no unit"),
            (&[("INPUT_GRACE-PERIOD", "6")], "grace-period", "no unit"),
            (&[("INPUT_MAX-AGE", "0")], "max-age", "more than 0"),
            (&[("INPUT_MAX-AGE", "soon")], "max-age", "duration"),
            (&[("INPUT_FORCE", "maybe")], "force", "true or false"),
            (
                &[("INPUT_MAX-CONCURRENCY", "0")],
                "max-concurrency",
                "1 to 32",
            ),
            (&[("INPUT_TIMEOUT", "0s")], "timeout", "more than 0"),
            (
                &[("INPUT_VISIBILITY", "public"), ("INPUT_ORGANIZATION", "o")],
                "visibility",
                "one of",
            ),
            (&[("INPUT_VISIBILITY", "all")], "visibility", "organization"),
            (
                &[
                    ("INPUT_VISIBILITY", "selected"),
                    ("INPUT_ORGANIZATION", "o"),
                ],
                "visibility",
                "needs `selected-repositories`",
            ),
            (
                &[("INPUT_TARGETS", "repo:a/b\nbogus:a/b")],
                "targets",
                "line 2",
            ),
            (&[("INPUT_TARGETS", "# nothing")], "targets", "no target"),
            (
                &[("INPUT_TARGETS", "repo:a/b"), ("INPUT_ENVIRONMENT", "prod")],
                "environment",
                "replaces",
            ),
            (
                &[("INPUT_ENVIRONMENT", "a\u{7}b")],
                "environment",
                "control",
            ),
            (
                &[("INPUT_SEQERA-ACCESS-TOKEN", "two words")],
                "seqera-access-token",
                "white space",
            ),
        ];
        for (env, setting, needle) in cases {
            let err = Settings::from_raw(&raw(&[], &with(env)))
                .err()
                .unwrap_or_else(|| panic!("{env:?} accepted"));
            let text = err.to_string();
            assert!(
                err.0.iter().any(|p| p.setting == *setting),
                "{env:?}: {text}"
            );
            assert!(text.contains(needle), "{env:?}: {text}");
            assert!(
                !text.contains("seqera-secret")
                    && !text.contains("gh-secret")
                    && !text.contains("two words")
                    && !text.contains("qsecret1")
                    && !text.contains("pwsecret1"),
                "{text}"
            );
        }
    }

    #[test]
    fn all_problems_reported_together() {
        let err = Settings::from_raw(&raw(
            &[],
            &with(&[("INPUT_MIN-AGE", "x"), ("INPUT_TIMEOUT", "y")]),
        ))
        .err()
        .unwrap();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.to_string().contains("(from INPUT_MIN-AGE)"));
    }

    #[test]
    fn loopback_http_is_allowed() {
        for ok in [
            "http://localhost:8080/api",
            "http://127.0.0.1:1",
            "http://127.9.9.9",
            "http://[::1]:9/x",
            "https://h.example/api/v3",
        ] {
            assert!(parse_api_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://localhost.evil.com",
            "https://h/x?q=1",
            "https://h/#f",
            "mailto:x@y",
        ] {
            assert!(parse_api_url(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn durations_round_trip(n in 1u64..100_000, unit in prop::sample::select(vec![("s", 1u64), ("m", 60), ("h", 3600), ("d", 86400)])) {
            prop_assert_eq!(parse_duration(&format!("{n}{}", unit.0)).unwrap(), Duration::from_secs(n * unit.1));
        }

        #[test]
        fn duration_parser_never_panics(s in "\\PC{0,20}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn token_names(s in "[A-Za-z0-9._-]{1,34}") {
            prop_assert!(TokenName::parse(&s).is_ok());
            let long = format!("{s}{}", "x".repeat(35 - s.len()));
            prop_assert!(TokenName::parse(&long).is_err());
        }

        #[test]
        fn url_parser_never_panics(s in "\\PC{0,40}") {
            let _ = parse_api_url(&s);
        }
    }
}
