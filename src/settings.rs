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
    check_environment, check_owner, check_repo_name, check_vault_path, parse_repository,
    parse_targets, store_kinds_named, Scope, SecretName, StoreKind, Target,
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
        help: "GitHub token that may write the secrets (required with GitHub targets, and to keep the record). The workflow's own GITHUB_TOKEN cannot write secrets: use a GitHub App installation token or a fine-grained token with \"Secrets: Read and write\"" },
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
        help: "Newline-separated targets replacing the default one: repo:OWNER/REPO, env:OWNER/REPO/ENV, org:ORG, dependabot:OWNER/REPO, codespaces:OWNER/REPO, aws-sm:REGION/NAME, aws-ssm:REGION/NAME, vault:MOUNT/PATH, gitlab:GROUP/PROJECT, gitlab-group:GROUP, each optionally followed by =NAME (aws-ssm: excepted); # starts a comment" },
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
    SettingSpec { name: "state-variable", env: &[], default: None, switch: false,
        help: "Actions variable of `repository` that records which token every target holds (default SEQERA_TOKEN_ROTATE_<TOKEN_NAME>: token-name upper-cased, other characters than A-Z and 0-9 as _); none: keep no record" },
    SettingSpec { name: "gitlab-token", env: &["GITLAB_TOKEN"], default: None, switch: false,
        help: "GitLab token that may write CI/CD variables (scope `api`, role Maintainer); required with gitlab: or gitlab-group: targets" },
    SettingSpec { name: "gitlab-api-url", env: &["CI_API_V4_URL"], default: Some("https://gitlab.com/api/v4"), switch: false,
        help: "GitLab REST base URL; self-managed: https://HOST/api/v4" },
    SettingSpec { name: "vault-addr", env: &["VAULT_ADDR"], default: None, switch: false,
        help: "HashiCorp Vault or OpenBao address; required with vault: targets" },
    SettingSpec { name: "vault-token", env: &["VAULT_TOKEN"], default: None, switch: false,
        help: "Vault token for vault: targets (or vault-role)" },
    SettingSpec { name: "vault-namespace", env: &["VAULT_NAMESPACE"], default: None, switch: false,
        help: "Vault Enterprise / OpenBao namespace" },
    SettingSpec { name: "vault-role", env: &[], default: None, switch: false,
        help: "Log in to Vault with the workflow's OIDC token (JWT auth, this role) instead of vault-token; the job needs `permissions: id-token: write`" },
    SettingSpec { name: "vault-auth-path", env: &[], default: Some("jwt"), switch: false,
        help: "Mount path of the JWT auth method vault-role logs in with" },
    SettingSpec { name: "vault-audience", env: &[], default: None, switch: false,
        help: "Audience of the OIDC token for vault-role (default: GitHub's, https://github.com/OWNER)" },
];

/// The settings that hold a credential (SPEC §2). Their values, as given, are registered
/// with the scrubber before any setting is checked ([`Raw::credentials`]), so that no message
/// quotes one, whichever input it was pasted into; and no error about one of them quotes its
/// value. A new credential setting (e.g. `gitlab-token`) only needs its name here.
pub const CREDENTIALS: &[&str] = &[
    "seqera-access-token",
    "github-token",
    "gitlab-token",
    "vault-token",
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
        "seqera-access-token" | "github-token" | "gitlab-token" | "vault-token" => "TOKEN",
        "seqera-api-url" | "github-api-url" | "gitlab-api-url" | "vault-addr" => "URL",
        "state-variable" => "NAME",
        "vault-role" => "ROLE",
        "vault-namespace" => "NAMESPACE",
        "vault-auth-path" => "PATH",
        "vault-audience" => "AUDIENCE",
        "repository" => "OWNER/REPO",
        "min-age" | "timeout" | "grace-period" | "max-age" => "DURATION",
        "keep-previous" | "max-concurrency" => "N",
        "targets" => "LINES",
        "command" => "COMMAND",
        "selected-repositories" => "NAMES",
        _ => "VALUE",
    }
}

const ABOUT: &str =
    "Rotate a Seqera Platform access token into GitHub secrets, AWS, Vault and GitLab, safely";
const LONG_ABOUT: &str = "\
Rotate a Seqera Platform access token into every place it is kept, safely.

Creates a new Seqera token named <token-name>-YYYYMMDD-HHMMSS, checks that it works, stores
it in every target (GitHub secrets, sealed with a libsodium sealed box; AWS Secrets Manager;
SSM Parameter Store; Vault/OpenBao KV v2; GitLab CI/CD variables), and only then revokes
the older managed tokens, on evidence that no target holds them. Whatever fails, every
target keeps a valid token; the next run repairs what an interrupted one left behind.

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

/// Variables that are not settings but that validation checks (SPEC §9): the AWS endpoint
/// overrides the AWS SDK reads (https-or-loopback, like every URL), and the runner's OIDC
/// token request that `vault-role` needs.
pub const AMBIENT: &[&str] = &[
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_SSM",
    "AWS_ENDPOINT_URL_STS",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
];

/// Settings as given, before checking: name → (value, origin). Empty values are unset.
pub struct Raw {
    values: HashMap<&'static str, (String, Origin)>,
    ambient: HashMap<&'static str, String>,
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
        let ambient = AMBIENT
            .iter()
            .filter_map(|k| nonempty(env(k)).map(|v| (*k, v)))
            .collect();
        Self { values, ambient }
    }

    fn get(&self, name: &str) -> Option<&(String, Origin)> {
        self.values.get(name)
    }

    /// The values of the [`CREDENTIALS`] settings as given, valid or not: for the scrubber,
    /// before anything is checked.
    pub fn credentials(&self) -> impl Iterator<Item = &str> {
        CREDENTIALS
            .iter()
            .filter_map(|name| self.values.get(name))
            .map(|(v, _)| v.as_str())
            .filter(|v| *v != NOT_UNICODE)
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

    /// Problems for every other setting whose value holds a credential (pasted into the wrong
    /// input; e.g. a GitHub token is a valid secret name, and would have named a secret).
    /// The message names the setting, never the value.
    fn pasted_credentials(&self) -> Vec<Problem> {
        let credentials: Vec<(&str, &str)> = CREDENTIALS
            .iter()
            .filter_map(|name| Some((*name, self.values.get(name)?.0.trim())))
            .filter(|(_, v)| v.len() >= 8 && *v != NOT_UNICODE)
            .collect();
        SETTINGS
            .iter()
            .filter(|s| !CREDENTIALS.contains(&s.name))
            .filter_map(|s| {
                let (v, o) = self.values.get(s.name)?;
                let (credential, _) = credentials.iter().find(|(_, c)| v.contains(c))?;
                Some(Problem {
                    setting: s.name,
                    origin: Some(o.clone()),
                    message: format!(
                        "the value holds the `{credential}` credential (not shown); check which input it was meant for"
                    ),
                })
            })
            .collect()
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

/// GitLab access, for `gitlab:` and `gitlab-group:` targets (SPEC §9).
#[derive(Clone)]
pub struct GitlabSettings {
    /// Token that writes CI/CD variables (`PRIVATE-TOKEN`).
    pub token: SecretString,
    /// REST base URL ending in `/api/v4`, used as given.
    pub api_url: Url,
}

/// Vault / OpenBao access, for `vault:` targets (SPEC §9).
#[derive(Clone)]
pub struct VaultSettings {
    /// Vault address, used as given (requests go to `{addr}/v1/…`).
    pub addr: Url,
    /// `X-Vault-Namespace` on every request.
    pub namespace: Option<String>,
    /// How to get a Vault token.
    pub auth: VaultAuth,
}

/// How the Vault client authenticates: exactly one of `vault-token` and `vault-role`.
#[derive(Clone)]
pub enum VaultAuth {
    /// `vault-token`, used as is.
    Token(SecretString),
    /// `vault-role`: a JWT login with the workflow's OIDC token.
    Jwt {
        /// The JWT auth role.
        role: String,
        /// Mount path of the JWT auth method (`vault-auth-path`, no surrounding `/`):
        /// the login is `POST /v1/auth/{path}/login`.
        path: String,
        /// Audience to ask the OIDC token for (None: GitHub's default).
        audience: Option<String>,
        /// Where the runner hands out OIDC tokens.
        id_token: IdTokenRequest,
    },
}

/// The runner's OIDC token endpoint (set only with `permissions: id-token: write`).
#[derive(Clone)]
pub struct IdTokenRequest {
    /// `ACTIONS_ID_TOKEN_REQUEST_URL`, used as given (it carries a query).
    pub url: Url,
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, the bearer token for it: a credential, mask it.
    pub token: SecretString,
}

/// The validated settings of a rotation.
pub struct Settings {
    /// Seqera side.
    pub seqera: SeqeraSettings,
    /// GitHub REST base URL, used as given.
    pub github_api_url: Url,
    /// Token that writes the GitHub secrets and the record. Some whenever a GitHub target
    /// is present or a record is kept; else only if given.
    pub github_token: Option<SecretString>,
    /// `repository` (`owner`, `repo`), when given: the default target's and the record's.
    pub repository: Option<(String, String)>,
    /// The Actions variable of `repository` holding the record (SPEC §5, *The record*); None
    /// with `state-variable: none` or without a `repository`.
    pub state_variable: Option<SecretName>,
    /// GitLab access; Some exactly when a GitLab target is present.
    pub gitlab: Option<GitlabSettings>,
    /// Vault access; Some exactly when a Vault target is present.
    pub vault: Option<VaultSettings>,
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

/// Which settings must be given. Every setting that is given is checked either way (SPEC
/// §2: an invalid setting exits 2 before any request, whichever command runs).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A rotation (and `status`): every required setting.
    All,
    /// `list` and `revoke`: only what talking to Seqera takes.
    Seqera,
}

/// The settings `list` and `revoke` require.
const SEQERA_REQUIRED: &[&str] = &["seqera-access-token", "token-name"];

impl Settings {
    /// Where the record is kept (SPEC §5, *The record*); None: no record.
    pub fn record(&self) -> Option<crate::record::Place> {
        let (owner, repo) = self.repository.clone()?;
        let name = self.state_variable.as_ref()?.as_str().to_string();
        Some(crate::record::Place { owner, repo, name })
    }

    /// Every credential these settings hold, to mask and scrub before anything is printed.
    pub fn credentials(&self) -> Vec<&SecretString> {
        let mut v = vec![&self.seqera.access_token];
        v.extend(&self.github_token);
        if let Some(g) = &self.gitlab {
            v.push(&g.token);
        }
        if let Some(vault) = &self.vault {
            match &vault.auth {
                VaultAuth::Token(t) => v.push(t),
                VaultAuth::Jwt { id_token, .. } => v.push(&id_token.token),
            }
        }
        v
    }
}

/// Collects problems while checking, so the user sees all of them at once.
struct Checker<'a> {
    raw: &'a Raw,
    problems: Vec<Problem>,
    need: Need,
}

impl<'a> Checker<'a> {
    fn new(raw: &'a Raw, need: Need) -> Self {
        let mut problems = raw.not_unicode();
        problems.extend(raw.pasted_credentials());
        Self {
            raw,
            problems,
            need,
        }
    }

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
        let needed = self.need == Need::All || SEQERA_REQUIRED.contains(&name);
        if v.is_none() && self.raw.get(name).is_none() && needed {
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
            // A parser's message may quote the value: never a credential's.
            Err(_) if CREDENTIALS.contains(&name) => {
                self.fail(
                    name,
                    "the value is not valid (not shown: it is a credential)",
                );
                None
            }
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
    /// The settings `list` and `revoke` need: Seqera only. Every other setting that is given
    /// is checked too (SPEC §2: an invalid one exits 2, also where it is not used).
    pub fn from_raw(raw: &Raw) -> Result<Self, SettingsError> {
        let mut c = Checker::new(raw, Need::Seqera);
        let s = c.seqera();
        let _ = Settings::check(&mut c, None);
        c.finish(s)
    }
}

/// Where `revoke` reads the record (SPEC §6), and with which GitHub access.
pub enum RecordAccess {
    /// No record is kept: `state-variable: none`, or no repository.
    Off,
    /// A record is kept there, but no GitHub token is given to read it (`revoke` requires
    /// only the Seqera settings).
    NoToken(crate::record::Place),
    /// Read it at this API with this token.
    Read(crate::record::Place, Url, SecretString),
}

/// Where `revoke` reads the record: from `repository`, `state-variable` and the GitHub
/// settings alone, so that a target's missing credential (which `revoke` does not need)
/// never hides the record. The settings were checked before (invalid ones exit 2).
pub fn record_access(raw: &Raw) -> RecordAccess {
    let mut c = Checker::new(raw, Need::Seqera);
    let seqera = c.seqera();
    let repository = c.repository();
    let name = c.state_variable(&repository, seqera.as_ref());
    let (Repository::Given(owner, repo), Some(Some(name))) = (repository, name) else {
        return RecordAccess::Off;
    };
    let place = crate::record::Place {
        owner,
        repo,
        name: name.as_str().to_string(),
    };
    match (c.url("github-api-url"), c.optional_secret("github-token")) {
        (Some(url), Some(token)) => RecordAccess::Read(place, url, token),
        _ => RecordAccess::NoToken(place),
    }
}

/// `keep-previous` and `grace-period` alone, for `list` (which marks retiring tokens).
pub fn lifecycle_from_raw(raw: &Raw) -> Result<(usize, Duration), SettingsError> {
    let mut c = Checker {
        raw,
        problems: Vec::new(),
        need: Need::Seqera,
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
        let mut c = Checker::new(raw, Need::All);
        let seqera = c.seqera();
        let s = Self::check(&mut c, seqera);
        c.finish(s)
    }

    /// Checks every setting but the Seqera ones (`seqera`: those, if valid), recording the
    /// problems in `c`.
    fn check(c: &mut Checker<'_>, seqera: Option<SeqeraSettings>) -> Option<Self> {
        if let Err(e) = c.raw.command() {
            c.problems.extend(e.0);
        }
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
        let repository = c.repository();
        let targets = secret_name
            .as_ref()
            .and_then(|name| c.targets(name, &repository));
        let org_access = targets.as_ref().and_then(|t| c.org_access(t));
        let state_variable = c.state_variable(&repository, seqera.as_ref());
        // Which credentials are needed, also when a line is invalid (all problems at once).
        let kinds: Vec<StoreKind> = match (&targets, c.value("targets")) {
            (Some(t), _) => t.iter().map(Target::store_kind).collect(),
            (None, Some(text)) => store_kinds_named(text),
            (None, None) => vec![StoreKind::Github],
        };
        let github_token = c.github_token(
            kinds.contains(&StoreKind::Github),
            state_variable.as_ref().and_then(Option::as_ref),
            &repository,
        );
        let gitlab = if kinds.contains(&StoreKind::Gitlab) {
            c.gitlab().map(Some)
        } else {
            Some(None)
        };
        let vault = if kinds.contains(&StoreKind::Vault) {
            c.vault().map(Some)
        } else {
            Some(None)
        };
        if kinds.contains(&StoreKind::AwsSm) || kinds.contains(&StoreKind::AwsSsm) {
            c.aws_endpoints();
        }
        let repository = match repository {
            Repository::Given(o, r) => Some((o, r)),
            _ => None,
        };

        (|| {
            Some(Settings {
                seqera: seqera?,
                github_api_url: github_api_url?,
                github_token: github_token?,
                repository,
                state_variable: state_variable?,
                gitlab: gitlab?,
                vault: vault?,
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
        })()
    }
}

impl Checker<'_> {
    fn targets(
        &mut self,
        default_name: &SecretName,
        repository: &Repository,
    ) -> Option<Vec<Target>> {
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
            let (owner, repo) = match repository {
                Repository::Given(o, r) => (o.clone(), r.clone()),
                Repository::Invalid(e) => {
                    self.fail("repository", e.clone());
                    return None;
                }
                Repository::Missing => {
                    self.require(
                        "repository",
                        "the target repository (OWNER/REPO) is required",
                    );
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
        let has_org = targets
            .iter()
            .any(|t| matches!(t.github(), Some((Scope::Org { .. }, _))));
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
            .filter_map(|t| match t.github() {
                Some((Scope::Org { org }, _)) => Some(org.as_str()),
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

/// `repository`, parsed once: the default target's and the record's.
enum Repository {
    Given(String, String),
    /// Not `OWNER/REPO` (the message), reported where it is used.
    Invalid(String),
    Missing,
}

/// The default `state-variable` (SPEC §2): `SEQERA_TOKEN_ROTATE_` and `token-name`
/// upper-cased, every character other than `A-Z`, `0-9` turned into `_`.
pub fn default_state_variable(token_name: &TokenName) -> SecretName {
    let tail: String = token_name
        .as_str()
        .chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_uppercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    SecretName::parse(&format!("SEQERA_TOKEN_ROTATE_{tail}"))
        .expect("a prefix of letters and `_` followed by [A-Z0-9_] is a valid name")
}

impl Checker<'_> {
    fn repository(&mut self) -> Repository {
        match self.value("repository") {
            None => Repository::Missing,
            Some(v) => match parse_repository(v.trim()) {
                Ok((o, r)) => Repository::Given(o, r),
                Err(e) => Repository::Invalid(e),
            },
        }
    }

    /// The record's variable: None for `none` or without a repository. The outer Option is
    /// None on a problem.
    fn state_variable(
        &mut self,
        repository: &Repository,
        seqera: Option<&SeqeraSettings>,
    ) -> Option<Option<SecretName>> {
        let given = self.parse("state-variable", |v| {
            if v.eq_ignore_ascii_case("none") {
                Ok(None)
            } else {
                SecretName::parse(v)
                    .map(Some)
                    .map_err(|e| format!("{e} (a GitHub Actions variable name, or none)"))
            }
        });
        if self.value("state-variable").is_some() && given.is_none() {
            return None;
        }
        let name = match given {
            Some(None) => return Some(None),
            Some(Some(n)) => Some(n),
            None => None,
        };
        match repository {
            Repository::Given(..) => {}
            Repository::Invalid(e) => {
                // The record lives in `repository`; the default target may already have said so.
                if !self.problems.iter().any(|p| p.setting == "repository") {
                    self.fail(
                        "repository",
                        format!("{e} (the record is kept in its Actions variables; `state-variable: none` keeps none)"),
                    );
                }
                return None;
            }
            Repository::Missing => {
                if name.is_some() {
                    self.fail(
                        "state-variable",
                        "the record is kept in an Actions variable of `repository`, and no repository is given",
                    );
                    return None;
                }
                return Some(None);
            }
        }
        match name {
            Some(n) => Some(Some(n)),
            // Without a valid token-name, its problem is already reported.
            None => seqera.map(|s| Some(default_state_variable(&s.token_name))),
        }
    }

    /// `github-token`: required with a GitHub target or a record (SPEC §2: a setting only
    /// one kind of target uses is required only when such a target is present).
    fn github_token(
        &mut self,
        github_target: bool,
        record: Option<&SecretName>,
        repository: &Repository,
    ) -> Option<Option<SecretString>> {
        if self.value("github-token").is_none() && self.raw.get("github-token").is_some() {
            return None;
        }
        let what = match (github_target, record, repository) {
            (true, _, _) => "a GitHub token that may write secrets is required".to_string(),
            (false, Some(var), Repository::Given(o, r)) => format!(
                "a GitHub token is required to keep the record in the Actions variable `{var}` of `{o}/{r}` (\"Variables: Read and write\"), or set `state-variable: none`"
            ),
            _ => return self.optional_secret("github-token").map(Some).or(Some(None)),
        };
        self.secret("github-token", &what).map(Some)
    }

    /// A credential that may be absent: checked like [`Checker::secret`] when given.
    fn optional_secret(&mut self, name: &'static str) -> Option<SecretString> {
        self.value(name)?;
        self.secret(name, "")
    }

    fn gitlab(&mut self) -> Option<GitlabSettings> {
        let token = self.secret(
            "gitlab-token",
            "a GitLab token that may write CI/CD variables (scope `api`) is required for gitlab: and gitlab-group: targets",
        );
        let api_url = self.url("gitlab-api-url");
        Some(GitlabSettings {
            token: token?,
            api_url: api_url?,
        })
    }

    fn vault(&mut self) -> Option<VaultSettings> {
        let addr = self
            .require(
                "vault-addr",
                "the Vault address is required for vault: targets",
            )
            .and_then(|_| self.url("vault-addr"));
        let namespace = match self.value("vault-namespace") {
            None => Some(None),
            Some(_) => self.parse("vault-namespace", |v| {
                let v = v.trim_matches('/');
                if v.is_empty() || !v.chars().all(|c| (' '..='~').contains(&c)) {
                    return Err("a namespace is printable ASCII (it travels in the X-Vault-Namespace header)".into());
                }
                Ok(Some(v.to_string()))
            }),
        };
        let auth = match (self.value("vault-token"), self.value("vault-role")) {
            (Some(_), Some(_)) => {
                self.fail(
                    "vault-role",
                    "give either `vault-token` or `vault-role`, not both (a VAULT_TOKEN variable counts as `vault-token`)",
                );
                None
            }
            (None, None) => {
                if self.raw.get("vault-token").is_none() && self.raw.get("vault-role").is_none() {
                    self.problems.push(Problem {
                        setting: "vault-token",
                        origin: None,
                        message: "vault: targets need a Vault token (the input `vault-token`, the flag `--vault-token` or the variable VAULT_TOKEN) or `vault-role` (a JWT login with the workflow's OIDC token)".into(),
                    });
                }
                None
            }
            (Some(_), None) => self
                .secret("vault-token", "a Vault token is required")
                .map(VaultAuth::Token),
            (None, Some(_)) => self.vault_jwt(),
        };
        Some(VaultSettings {
            addr: addr?,
            namespace: namespace?,
            auth: auth?,
        })
    }

    fn vault_jwt(&mut self) -> Option<VaultAuth> {
        let role = self.parse("vault-role", |v| {
            if v.chars().any(char::is_control) {
                return Err("the role contains a control character".into());
            }
            Ok(v.to_string())
        });
        let path = self.parse("vault-auth-path", |v| {
            let v = v.trim_matches('/');
            check_vault_path(v, "auth path")?;
            Ok(v.to_string())
        });
        let audience = match self.value("vault-audience") {
            None => Some(None),
            Some(_) => self.parse("vault-audience", |v| {
                if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err("the audience contains white space or a control character".into());
                }
                Ok(Some(v.to_string()))
            }),
        };
        let id_token = match (
            self.raw.ambient.get("ACTIONS_ID_TOKEN_REQUEST_URL"),
            self.raw.ambient.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
        ) {
            (Some(url), Some(token)) => {
                // Used as given (it carries a query), never quoted: only its shape is checked.
                let url = Url::parse(url.trim())
                    .ok()
                    .filter(|u| matches!(u.scheme(), "https" | "http") && u.has_host());
                let token = token.trim();
                let token_ok = !token.is_empty()
                    && !token.chars().any(|c| c.is_whitespace() || c.is_control());
                match (url, token_ok) {
                    (Some(url), true) => Some(IdTokenRequest {
                        url,
                        token: SecretString::from(token.to_string()),
                    }),
                    _ => {
                        self.fail(
                            "vault-role",
                            "ACTIONS_ID_TOKEN_REQUEST_URL or ACTIONS_ID_TOKEN_REQUEST_TOKEN is not what the runner sets (an http(s) URL and a token); they are the runner's own",
                        );
                        None
                    }
                }
            }
            _ => {
                self.fail(
                    "vault-role",
                    "a JWT login needs the workflow's OIDC token, and this job cannot request one (ACTIONS_ID_TOKEN_REQUEST_URL is not set): give the job `permissions: id-token: write`, or use `vault-token`",
                );
                None
            }
        };
        Some(VaultAuth::Jwt {
            role: role?,
            path: path?,
            audience: audience?,
            id_token: id_token?,
        })
    }

    /// `AWS_ENDPOINT_URL*` follow the https-or-loopback rule (SPEC §9), checked only when an
    /// AWS target is present (the AWS SDK reads them itself).
    fn aws_endpoints(&mut self) {
        for var in &AMBIENT[..4] {
            let Some(v) = self.raw.ambient.get(var) else {
                continue;
            };
            let message = if v == NOT_UNICODE {
                Some("the value is not valid UTF-8; check how it is passed".to_string())
            } else {
                parse_api_url(v.trim()).err()
            };
            if let Some(message) = message {
                self.problems.push(Problem {
                    setting: var,
                    origin: Some(Origin::Env(var)),
                    message,
                });
            }
        }
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
        assert_eq!(
            s.targets[0].github().unwrap().1.as_str(),
            "TOWER_ACCESS_TOKEN"
        );
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
        assert_eq!(s.targets[0].github().unwrap().1.as_str(), "FROM_FLAG");
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
        assert_eq!(s.github_token.unwrap().expose_secret(), "a");
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

    // Issue 15, defect 9: `list` and `revoke` sent requests with invalid settings they do
    // not use. SPEC §2: every given setting is checked; only the unused ones may be missing.
    #[test]
    fn list_and_revoke_check_every_given_setting() {
        let seqera_only = [
            ("INPUT_SEQERA-ACCESS-TOKEN", "seqera-secret"),
            ("INPUT_TOKEN-NAME", "ci"),
        ];
        assert!(SeqeraSettings::from_raw(&raw(&[], &seqera_only)).is_ok());
        let invalid: &[(&str, &str, &str)] = &[
            ("INPUT_TARGETS", "bogus:line", "targets"),
            (
                "INPUT_GITHUB-API-URL",
                "http://github.example",
                "github-api-url",
            ),
            ("INPUT_SECRET-NAME", "GITHUB_X", "secret-name"),
            ("INPUT_MAX-CONCURRENCY", "0", "max-concurrency"),
            ("INPUT_MAX-AGE", "0", "max-age"),
            ("INPUT_GITHUB-TOKEN", "gh secret", "github-token"),
            ("INPUT_COMMAND", "nope", "command"),
            ("GITHUB_REPOSITORY", "octo", "repository"),
        ];
        for (var, value, setting) in invalid {
            let mut env = seqera_only.to_vec();
            env.push((var, value));
            let err = SeqeraSettings::from_raw(&raw(&[], &env))
                .err()
                .unwrap_or_else(|| panic!("{var}={value} accepted"));
            assert_eq!(
                err.0.iter().map(|p| p.setting).collect::<Vec<_>>(),
                [*setting],
                "{err}"
            );
        }
    }

    // Issue 15, defect 10: a credential pasted into another input was quoted by its error.
    #[test]
    fn a_credential_in_another_setting_is_invalid_and_never_quoted() {
        for (var, value) in [
            ("INPUT_SECRET-NAME", "gh_secret_value_1234"),
            ("INPUT_TARGETS", "repo:octo/app=gh_secret_value_1234"),
            ("INPUT_ENVIRONMENT", "seqera_secret_value"),
            ("INPUT_TOKEN-NAME", "seqera_secret_value"),
        ] {
            let env = with(&[
                ("INPUT_SEQERA-ACCESS-TOKEN", "seqera_secret_value"),
                ("INPUT_GITHUB-TOKEN", "gh_secret_value_1234"),
                (var, value),
            ]);
            let err = Settings::from_raw(&raw(&[], &env)).err().expect("rejected");
            let text = err.to_string();
            let setting = var.strip_prefix("INPUT_").unwrap().to_ascii_lowercase();
            assert!(
                err.0
                    .iter()
                    .any(|p| p.setting == setting && p.message.contains("credential")),
                "{text}"
            );
            // Only the message about the credential; other checks may quote the value, which
            // the scrubber (told every credential before this runs) then hides.
            let p = err
                .0
                .iter()
                .find(|p| p.message.contains("credential"))
                .unwrap();
            assert!(!p.to_string().contains("secret_value"), "{p}");
        }
        // A parser's message about a credential setting never quotes it.
        let env = with(&[("INPUT_GITHUB-TOKEN", "gh secret value")]);
        let err = Settings::from_raw(&raw(&[], &env)).err().unwrap();
        assert!(!err.to_string().contains("secret value"), "{err}");
        // Every credential is registered for scrubbing, as given.
        let r = raw(&[], &with(&[("INPUT_GITHUB-TOKEN", " gh secret ")]));
        let mut known: Vec<&str> = r.credentials().collect();
        known.sort_unstable();
        assert_eq!(known, [" gh secret ", "seqera-secret"]);
    }

    /// Every setting that holds a token is marked as a credential (a new one, e.g.
    /// `gitlab-token` or `vault-token`, must be added to CREDENTIALS), and every credential
    /// is a setting.
    #[test]
    fn every_token_setting_is_a_credential() {
        for s in SETTINGS {
            if s.name.ends_with("-token")
                || s.name.ends_with("-password")
                || s.name.ends_with("-secret")
            {
                assert!(
                    CREDENTIALS.contains(&s.name),
                    "mark `{}` as a credential",
                    s.name
                );
            }
        }
        for c in CREDENTIALS {
            assert!(SETTINGS.iter().any(|s| s.name == *c), "`{c}` is no setting");
        }
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

    fn err_of(env: &[(&str, &str)]) -> SettingsError {
        Settings::from_raw(&raw(&[], env))
            .err()
            .unwrap_or_else(|| panic!("{env:?} accepted"))
    }

    #[test]
    fn state_variable_default_none_and_given() {
        let s =
            Settings::from_raw(&raw(&[], &with(&[("INPUT_TOKEN-NAME", "nf-core.ci_2")]))).unwrap();
        assert_eq!(
            s.state_variable.unwrap().as_str(),
            "SEQERA_TOKEN_ROTATE_NF_CORE_CI_2"
        );
        assert_eq!(s.repository, Some(("octo".into(), "app".into())));
        let s = Settings::from_raw(&raw(&["--state-variable", "none"], BASE)).unwrap();
        assert_eq!(s.state_variable, None);
        let s =
            Settings::from_raw(&raw(&[], &with(&[("INPUT_STATE-VARIABLE", "MY_RECORD")]))).unwrap();
        assert_eq!(s.state_variable.unwrap().as_str(), "MY_RECORD");
        // No repository: no record (an organization target needs none).
        let s = Settings::from_raw(&raw(
            &[],
            &with(&[("GITHUB_REPOSITORY", ""), ("INPUT_ORGANIZATION", "octo")]),
        ))
        .unwrap();
        assert_eq!((s.state_variable, s.repository), (None, None));
        for (env, needle) in [
            (vec![("INPUT_STATE-VARIABLE", "GITHUB_X")], "GITHUB_"),
            (vec![("INPUT_STATE-VARIABLE", "A-B")], "contains `-`"),
            (
                vec![
                    ("GITHUB_REPOSITORY", ""),
                    ("INPUT_ORGANIZATION", "octo"),
                    ("INPUT_STATE-VARIABLE", "REC"),
                ],
                "no repository is given",
            ),
        ] {
            let e = err_of(&with(&env));
            assert!(
                e.0.iter().any(|p| p.setting == "state-variable"),
                "{env:?}: {e}"
            );
            assert!(e.to_string().contains(needle), "{env:?}: {e}");
        }
        // With `targets`, an invalid repository is a problem only while it holds the record.
        let targets = ("INPUT_TARGETS", "org:octo");
        let e = err_of(&with(&[targets, ("INPUT_REPOSITORY", "nope")]));
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.to_string().contains("record"), "{e}");
        assert!(Settings::from_raw(&raw(
            &[],
            &with(&[
                targets,
                ("INPUT_REPOSITORY", "nope"),
                ("INPUT_STATE-VARIABLE", "none")
            ])
        ))
        .is_ok());
        let e = err_of(&with(&[("INPUT_REPOSITORY", "nope")]));
        assert_eq!(e.0.len(), 1, "reported once: {e}");
    }

    // SPEC §2: a setting only one kind of target uses is required only when such a target
    // is present; `github-token` is also needed for the record.
    #[test]
    fn store_settings_are_required_only_with_their_targets() {
        let no_github = [("INPUT_GITHUB-TOKEN", ""), ("INPUT_STATE-VARIABLE", "none")];
        let gitlab = ("INPUT_TARGETS", "gitlab:grp/proj");
        let e = err_of(&with(&[gitlab]));
        assert!(
            e.0.iter()
                .any(|p| p.setting == "gitlab-token" && p.origin.is_none()),
            "{e}"
        );
        let mut env = with(&no_github);
        env.extend([gitlab, ("GITLAB_TOKEN", "glpat-secret1")]);
        let s = Settings::from_raw(&raw(&[], &env)).unwrap();
        assert!(s.github_token.is_none() && s.vault.is_none());
        let g = s.gitlab.as_ref().unwrap();
        assert_eq!(g.api_url.as_str(), "https://gitlab.com/api/v4");
        assert_eq!(g.token.expose_secret(), "glpat-secret1");
        assert_eq!(s.credentials().len(), 2);
        // The record needs the GitHub token even without a GitHub target.
        let mut env = with(&[("INPUT_GITHUB-TOKEN", "")]);
        env.extend([gitlab, ("GITLAB_TOKEN", "glpat-secret1")]);
        let e = err_of(&env);
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(
            e.to_string().contains("SEQERA_TOKEN_ROTATE_CI")
                && e.to_string().contains("state-variable: none"),
            "{e}"
        );
        // A GitHub-only run ignores what the other stores would need, even when the
        // environment of another CI sets it badly.
        let s = Settings::from_raw(&raw(
            &[],
            &with(&[
                ("CI_API_V4_URL", "http://gitlab.internal/api/v4"),
                ("VAULT_ADDR", "http://vault.internal:8200"),
                ("VAULT_TOKEN", "hvs.secret1"),
                ("INPUT_VAULT-ROLE", "ci"),
                ("AWS_ENDPOINT_URL", "http://10.0.0.1"),
            ]),
        ))
        .unwrap();
        assert!(s.gitlab.is_none() && s.vault.is_none());
        assert_eq!(s.credentials().len(), 2);
    }

    #[test]
    fn vault_token_or_role() {
        let vault = ("INPUT_TARGETS", "repo:octo/app\nvault:secret/ci");
        let addr = ("VAULT_ADDR", "https://vault.example:8200");
        let s = Settings::from_raw(&raw(
            &[],
            &with(&[
                vault,
                addr,
                ("VAULT_TOKEN", "hvs.secret1"),
                ("VAULT_NAMESPACE", "admin/team/"),
            ]),
        ))
        .unwrap();
        let v = s.vault.as_ref().unwrap();
        assert_eq!(v.addr.as_str(), "https://vault.example:8200/");
        assert_eq!(v.namespace.as_deref(), Some("admin/team"));
        assert!(matches!(&v.auth, VaultAuth::Token(t) if t.expose_secret() == "hvs.secret1"));
        assert_eq!(s.credentials().len(), 3);
        let oidc = [
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                "https://token.actions.example/id?api-version=2.0",
            ),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc-request-secret1"),
        ];
        let mut env = with(&[
            vault,
            addr,
            ("INPUT_VAULT-ROLE", "rotator"),
            ("INPUT_VAULT-AUTH-PATH", "/github/jwt/"),
        ]);
        env.extend(oidc);
        let s = Settings::from_raw(&raw(&[], &env)).unwrap();
        match &s.vault.as_ref().unwrap().auth {
            VaultAuth::Jwt {
                role,
                path,
                audience,
                id_token,
            } => {
                assert_eq!(
                    (role.as_str(), path.as_str(), audience.as_deref()),
                    ("rotator", "github/jwt", None)
                );
                assert_eq!(id_token.url.query(), Some("api-version=2.0"));
                assert_eq!(id_token.token.expose_secret(), "oidc-request-secret1");
            }
            VaultAuth::Token(_) => panic!("token auth"),
        }
        assert!(s
            .credentials()
            .iter()
            .any(|c| c.expose_secret() == "oidc-request-secret1"));
        let mut env = with(&[
            vault,
            addr,
            ("INPUT_VAULT-ROLE", "rotator"),
            ("INPUT_VAULT-AUDIENCE", "https://vault.example"),
        ]);
        env.extend(oidc);
        let s = Settings::from_raw(&raw(&[], &env)).unwrap();
        assert!(
            matches!(&s.vault.unwrap().auth, VaultAuth::Jwt { path, audience: Some(a), .. } if path == "jwt" && a == "https://vault.example")
        );
    }

    #[test]
    fn invalid_store_settings() {
        type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
        let vault = ("INPUT_TARGETS", "vault:secret/ci");
        let addr = ("VAULT_ADDR", "https://vault.example");
        let tok = ("VAULT_TOKEN", "hvs.secret1");
        let gitlab = ("INPUT_TARGETS", "gitlab-group:grp");
        let gtok = ("GITLAB_TOKEN", "glpat-secret1");
        let aws = ("INPUT_TARGETS", "aws-ssm:us-east-1/x");
        let oidc_url = (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "https://token.example/id?sig=qsecret1",
        );
        let oidc_tok = ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc-request-secret1");
        let cases: Vec<Case<'static>> = vec![
            (vec![gitlab], "gitlab-token", "scope `api`"),
            (
                vec![gitlab, ("GITLAB_TOKEN", "glpat secret1")],
                "gitlab-token",
                "white space",
            ),
            (
                vec![
                    gitlab,
                    gtok,
                    ("CI_API_V4_URL", "http://gitlab.example/api/v4"),
                ],
                "gitlab-api-url",
                "https://",
            ),
            (
                vec![
                    gitlab,
                    gtok,
                    (
                        "INPUT_GITLAB-API-URL",
                        "https://u:pwsecret1@gitlab.example/api/v4",
                    ),
                ],
                "gitlab-api-url",
                "password",
            ),
            (
                vec![
                    gitlab,
                    gtok,
                    (
                        "INPUT_GITLAB-API-URL",
                        "https://gitlab.example/api/v4?private_token=qsecret1",
                    ),
                ],
                "gitlab-api-url",
                "query",
            ),
            (vec![vault, tok], "vault-addr", "required"),
            (
                vec![vault, tok, ("VAULT_ADDR", "http://vault.example:8200")],
                "vault-addr",
                "https://",
            ),
            (vec![vault, addr], "vault-token", "vault-role"),
            (
                vec![vault, addr, tok, ("INPUT_VAULT-ROLE", "ci")],
                "vault-role",
                "not both",
            ),
            (
                vec![vault, addr, ("INPUT_VAULT-ROLE", "ci")],
                "vault-role",
                "permissions: id-token: write",
            ),
            (
                vec![vault, addr, ("INPUT_VAULT-ROLE", "ci"), oidc_url],
                "vault-role",
                "id-token: write",
            ),
            (
                vec![
                    vault,
                    addr,
                    ("INPUT_VAULT-ROLE", "ci"),
                    ("ACTIONS_ID_TOKEN_REQUEST_URL", "not a url qsecret1"),
                    oidc_tok,
                ],
                "vault-role",
                "runner's own",
            ),
            (
                vec![
                    vault,
                    addr,
                    ("INPUT_VAULT-ROLE", "ci"),
                    oidc_url,
                    oidc_tok,
                    ("INPUT_VAULT-AUTH-PATH", "a/../b"),
                ],
                "vault-auth-path",
                "segment",
            ),
            (
                vec![
                    vault,
                    addr,
                    ("INPUT_VAULT-ROLE", "ci"),
                    oidc_url,
                    oidc_tok,
                    ("INPUT_VAULT-AUDIENCE", "two words"),
                ],
                "vault-audience",
                "white space",
            ),
            (
                vec![vault, addr, tok, ("VAULT_NAMESPACE", "é")],
                "vault-namespace",
                "ASCII",
            ),
            (
                vec![vault, addr, ("VAULT_TOKEN", "hvs.secret1\u{1}")],
                "vault-token",
                "control",
            ),
            (
                vec![aws, ("AWS_ENDPOINT_URL", "http://moto.example:5000")],
                "AWS_ENDPOINT_URL",
                "https://",
            ),
            (
                vec![
                    aws,
                    (
                        "AWS_ENDPOINT_URL_SSM",
                        "https://x.example/?X-Amz-Credential=qsecret1",
                    ),
                ],
                "AWS_ENDPOINT_URL_SSM",
                "query",
            ),
            (
                vec![
                    aws,
                    ("AWS_ENDPOINT_URL_STS", "https://u:pwsecret1@sts.example"),
                ],
                "AWS_ENDPOINT_URL_STS",
                "password",
            ),
            (
                vec![
                    ("INPUT_TARGETS", "aws-sm:us-east-1/s"),
                    ("AWS_ENDPOINT_URL_SECRETS_MANAGER", NOT_UNICODE),
                ],
                "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                "UTF-8",
            ),
        ];
        for (env, setting, needle) in &cases {
            let err = err_of(&with(env));
            let text = err.to_string();
            assert!(
                err.0.iter().any(|p| p.setting == *setting),
                "{env:?}: {text}"
            );
            assert!(text.contains(needle), "{env:?}: {text}");
            for secret in ["secret1", "qsecret1", "pwsecret1", "glpat", "hvs."] {
                assert!(!text.contains(secret), "{env:?} quotes {secret}: {text}");
            }
        }
        // Loopback endpoints are fine for local testing (moto, OpenBao -dev, the fake).
        let mut env = with(&[(
            "INPUT_TARGETS",
            "aws-sm:us-east-1/s\nvault:kv/a\ngitlab:g/p",
        )]);
        env.extend([
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_SSM", "http://localhost:5000"),
            ("VAULT_ADDR", "http://127.0.0.1:8200"),
            tok,
            ("CI_API_V4_URL", "http://[::1]:9/api/v4"),
            gtok,
        ]);
        let s = Settings::from_raw(&raw(&[], &env)).unwrap();
        assert_eq!(s.targets.len(), 3);
        assert_eq!(s.credentials().len(), 4);
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
