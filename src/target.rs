//! What a target is: the kinds of SPEC §4 (five GitHub secret kinds and the other stores of
//! §9: AWS Secrets Manager and Parameter Store, Vault KV v2, GitLab CI/CD variables), the
//! `targets` line syntax, labels, duplicates, and the API path of each GitHub target's
//! collection. Parsing only; no network.
//!
//! Line rules (SPEC §9 "Details"): the last `=` starts `=NAME`, so a name or path that holds
//! `=` itself needs an explicit `=NAME` after it (`env:o/r/a=b=TOWER_ACCESS_TOKEN`). AWS
//! allows `=` in Secrets Manager names, so such a secret can only be a target with a JSON key
//! (`aws-sm:us-east-1/a=b=KEY` is secret `a=b`, key `KEY`); written whole, it cannot be named
//! on a line. For the same reason a Vault field or a JSON key never contains `=`.

use std::collections::HashMap;
use std::fmt;

use thiserror::Error;

/// A GitHub Actions secret name: `[A-Za-z0-9_]+`, not starting with a digit nor `GITHUB_`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretName(String);

impl SecretName {
    /// Checks a secret name against GitHub's rules.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("a secret name cannot be empty".into());
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            return Err(format!(
                "secret name `{raw}` contains `{bad}`: only letters, digits and `_` are allowed"
            ));
        }
        if raw.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("secret name `{raw}` cannot start with a digit"));
        }
        if raw.to_ascii_uppercase().starts_with("GITHUB_") {
            return Err(format!(
                "secret name `{raw}` cannot start with `GITHUB_` (reserved by GitHub)"
            ));
        }
        Ok(Self(raw.to_string()))
    }

    /// The name as GitHub spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a secret lives. Each variant owns its own public key on GitHub. Fields carry
/// GitHub's names: owner login, repository name, environment name, organization login.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Actions secret of a repository.
    Repo { owner: String, repo: String },
    /// Secret of a deployment environment of a repository.
    Environment {
        owner: String,
        repo: String,
        env: String,
    },
    /// Organization Actions secret.
    Org { org: String },
    /// Dependabot secret of a repository.
    Dependabot { owner: String, repo: String },
    /// Codespaces secret of a repository.
    Codespaces { owner: String, repo: String },
}

impl Scope {
    /// Path segments (unencoded) of the secret collection below the API base URL, e.g.
    /// `["repos", "o", "r", "actions", "secrets"]`. Encoding happens when the URL is built.
    pub fn collection(&self) -> Vec<&str> {
        match self {
            Scope::Repo { owner, repo } => vec!["repos", owner, repo, "actions", "secrets"],
            Scope::Environment { owner, repo, env } => {
                vec!["repos", owner, repo, "environments", env, "secrets"]
            }
            Scope::Org { org } => vec!["orgs", org, "actions", "secrets"],
            Scope::Dependabot { owner, repo } => {
                vec!["repos", owner, repo, "dependabot", "secrets"]
            }
            Scope::Codespaces { owner, repo } => {
                vec!["repos", owner, repo, "codespaces", "secrets"]
            }
        }
    }

    /// `kind:path`, the first part of a target label.
    pub fn spec(&self) -> String {
        match self {
            Scope::Repo { owner, repo } => format!("repo:{owner}/{repo}"),
            Scope::Environment { owner, repo, env } => format!("env:{owner}/{repo}/{env}"),
            Scope::Org { org } => format!("org:{org}"),
            Scope::Dependabot { owner, repo } => format!("dependabot:{owner}/{repo}"),
            Scope::Codespaces { owner, repo } => format!("codespaces:{owner}/{repo}"),
        }
    }

    /// What a user calls this kind of secret, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Scope::Repo { .. } => "repository Actions secret",
            Scope::Environment { .. } => "environment secret",
            Scope::Org { .. } => "organization Actions secret",
            Scope::Dependabot { .. } => "Dependabot secret",
            Scope::Codespaces { .. } => "Codespaces secret",
        }
    }

    /// The GitHub permission a fine-grained token needs to write here.
    pub fn permission_hint(&self) -> &'static str {
        match self {
            Scope::Repo { .. } => "repository permission \"Secrets: Read and write\"",
            Scope::Environment { .. } => {
                "repository permissions \"Secrets: Read and write\" and \"Environments: Read and write\""
            }
            Scope::Org { .. } => {
                "organization permission \"Secrets: Read and write\" (and \"Metadata: Read\" on the repositories)"
            }
            Scope::Dependabot { .. } => "repository permission \"Dependabot secrets: Read and write\"",
            Scope::Codespaces { .. } => "repository permission \"Codespaces secrets: Read and write\"",
        }
    }
}

/// Which store a target writes to: what the store registry dispatches on, so nothing past
/// parsing matches on a line's kind again. Both GitLab kinds share one store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreKind {
    /// GitHub secrets (`repo:`, `env:`, `org:`, `dependabot:`, `codespaces:`).
    Github,
    /// AWS Secrets Manager (`aws-sm:`).
    AwsSm,
    /// AWS Systems Manager Parameter Store (`aws-ssm:`).
    AwsSsm,
    /// HashiCorp Vault / OpenBao KV version 2 (`vault:`).
    Vault,
    /// GitLab CI/CD variables (`gitlab:`, `gitlab-group:`).
    Gitlab,
}

impl StoreKind {
    /// What a user calls this store, for messages.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Github => "GitHub",
            StoreKind::AwsSm => "AWS Secrets Manager",
            StoreKind::AwsSsm => "AWS Systems Manager Parameter Store",
            StoreKind::Vault => "Vault",
            StoreKind::Gitlab => "GitLab",
        }
    }
}

/// An AWS region name as AWS spells it: lower-case letter groups joined by `-`, ending in a
/// number (`us-east-1`, `us-gov-west-1`, `cn-north-1`, `eu-central-2`, `ap-southeast-4`).
/// Only the shape is checked, so a region AWS opens tomorrow works today.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AwsRegion(String);

impl AwsRegion {
    /// Checks the shape of a region name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let parts: Vec<&str> = raw.split('-').collect();
        let letters = |p: &str, min: usize, max: usize| {
            (min..=max).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase())
        };
        let ok = (3..=5).contains(&parts.len())
            && letters(parts[0], 2, 4)
            && parts[1..parts.len() - 1].iter().all(|p| letters(p, 2, 12))
            && parts.last().is_some_and(|n| {
                (1..=2).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit())
            });
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err(format!(
                "`{raw}` is not an AWS region name (like us-east-1 or us-gov-west-1)"
            ))
        }
    }

    /// The region as AWS spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AwsRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A GitLab CI/CD variable key: 1–255 of `[A-Za-z0-9_]` (GitLab's rule).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GitlabKey(String);

impl GitlabKey {
    /// Checks a key against GitLab's rule.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > 255 {
            return Err(format!(
                "a GitLab variable key is 1-255 characters; `{raw}` is {}",
                raw.chars().count()
            ));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            return Err(format!(
                "GitLab variable key `{raw}` contains `{bad}`: only letters, digits and `_` are allowed"
            ));
        }
        Ok(Self(raw.to_string()))
    }

    /// The key as GitLab spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GitlabKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which GitLab variables: a project's or a group's. `path` is the full path as GitLab shows
/// it (`group/sub/project`, unencoded); the API takes it URL-encoded as `:id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GitlabScope {
    /// Project-level CI/CD variables (`gitlab:GROUP/PROJECT`).
    Project {
        /// Full path of the project, nested groups included.
        path: String,
    },
    /// Group-level CI/CD variables (`gitlab-group:GROUP`).
    Group {
        /// Full path of the group, parent groups included.
        path: String,
    },
}

impl GitlabScope {
    /// The full path, unencoded.
    pub fn path(&self) -> &str {
        match self {
            GitlabScope::Project { path } | GitlabScope::Group { path } => path,
        }
    }

    /// The API collection: `projects` or `groups`.
    pub fn collection(&self) -> &'static str {
        match self {
            GitlabScope::Project { .. } => "projects",
            GitlabScope::Group { .. } => "groups",
        }
    }

    /// `kind:path`, the first part of a target label.
    pub fn spec(&self) -> String {
        match self {
            GitlabScope::Project { path } => format!("gitlab:{path}"),
            GitlabScope::Group { path } => format!("gitlab-group:{path}"),
        }
    }
}

/// Where a target's value lives: the store, and the place in it (SPEC §4, §9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A GitHub secret: its collection and its name.
    Github {
        /// The secret collection.
        scope: Scope,
        /// The secret name in it.
        secret: SecretName,
    },
    /// An AWS Secrets Manager secret (`aws-sm:REGION/NAME[=KEY]`).
    AwsSm {
        /// The line's region (wins over `AWS_REGION`).
        region: AwsRegion,
        /// The secret's name, 1–512 of `A-Za-z0-9/_+=.@-`.
        name: String,
        /// None: the value is the token. Some: the value is a JSON object, this key holds the
        /// token and the other keys are kept.
        key: Option<String>,
    },
    /// An AWS Systems Manager parameter, `SecureString` (`aws-ssm:REGION/NAME`).
    AwsSsm {
        /// The line's region.
        region: AwsRegion,
        /// The parameter's name as AWS spells it (`/team/seqera` or `seqera`).
        name: String,
    },
    /// A field of a Vault / OpenBao KV version 2 secret (`vault:MOUNT/PATH[=FIELD]`).
    Vault {
        /// The KV mount: the line's first path segment.
        mount: String,
        /// The secret's path below the mount (segments joined by `/`, unencoded).
        path: String,
        /// The field holding the token: `=FIELD`, else `secret-name`.
        field: String,
    },
    /// A GitLab CI/CD variable, environment scope `*` (`gitlab:…`, `gitlab-group:…`).
    Gitlab {
        /// Project or group.
        scope: GitlabScope,
        /// The variable's key: `=KEY`, else `secret-name`.
        key: GitlabKey,
    },
}

impl Place {
    /// The store this place belongs to.
    pub fn store_kind(&self) -> StoreKind {
        match self {
            Place::Github { .. } => StoreKind::Github,
            Place::AwsSm { .. } => StoreKind::AwsSm,
            Place::AwsSsm { .. } => StoreKind::AwsSsm,
            Place::Vault { .. } => StoreKind::Vault,
            Place::Gitlab { .. } => StoreKind::Gitlab,
        }
    }

    /// `kind:path`, the line without its `=NAME`.
    pub fn spec(&self) -> String {
        match self {
            Place::Github { scope, .. } => scope.spec(),
            Place::AwsSm { region, name, .. } => format!("aws-sm:{region}/{name}"),
            Place::AwsSsm { region, name } => format!("aws-ssm:{region}/{name}"),
            Place::Vault { mount, path, .. } => format!("vault:{mount}/{path}"),
            Place::Gitlab { scope, .. } => scope.spec(),
        }
    }

    /// The label of SPEC §4: `kind:path`, plus `=NAME` when the name differs from
    /// `secret-name`; for `aws-sm:` a given `=KEY` always.
    fn label(&self, default_name: &SecretName) -> String {
        let name = match self {
            Place::Github { secret, .. } => {
                Some(secret.as_str()).filter(|n| *n != default_name.as_str())
            }
            Place::AwsSm { key, .. } => key.as_deref(),
            Place::AwsSsm { .. } => None,
            Place::Vault { field, .. } => {
                Some(field.as_str()).filter(|n| *n != default_name.as_str())
            }
            Place::Gitlab { key, .. } => Some(key.as_str()).filter(|n| *n != default_name.as_str()),
        };
        match name {
            Some(n) => format!("{}={n}", self.spec()),
            None => self.spec(),
        }
    }

    /// What the place is, as its store compares places: two targets with the same identity
    /// write the same thing (SPEC §9). GitHub names compare without regard to case; the
    /// other stores' exactly. An AWS secret and a Vault secret are one place whatever their
    /// `=NAME` (one write replaces the whole value); a GitLab key is its own variable.
    fn identity(&self) -> String {
        match self {
            Place::Github { scope, secret } => {
                format!("{}={}", scope.spec(), secret.as_str()).to_lowercase()
            }
            Place::AwsSm { .. } | Place::AwsSsm { .. } | Place::Vault { .. } => self.spec(),
            Place::Gitlab { scope, key } => format!("{}={key}", scope.spec()),
        }
    }
}

/// One place to write the token to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Where the value lives.
    pub place: Place,
    /// `kind:path`, plus `=NAME` when the name differs from the default `secret-name`
    /// (for `aws-sm:`, whenever a `=KEY` is given).
    pub label: String,
}

impl Target {
    /// Builds a GitHub target and its label (SPEC §4).
    pub fn new(scope: Scope, secret_name: SecretName, default_name: &SecretName) -> Self {
        Self::at(
            Place::Github {
                scope,
                secret: secret_name,
            },
            default_name,
        )
    }

    /// Builds a target of any store and its label (SPEC §4).
    pub fn at(place: Place, default_name: &SecretName) -> Self {
        let label = place.label(default_name);
        Self { place, label }
    }

    /// The store this target belongs to.
    pub fn store_kind(&self) -> StoreKind {
        self.place.store_kind()
    }

    /// The GitHub secret collection and name, for a GitHub target.
    pub fn github(&self) -> Option<(&Scope, &SecretName)> {
        match &self.place {
            Place::Github { scope, secret } => Some((scope, secret)),
            _ => None,
        }
    }

    /// Whether both name the same place (SPEC §9: GitHub names compare without regard to
    /// case, the other stores' names exactly).
    pub fn same_secret(&self, other: &Target) -> bool {
        self.place.identity() == other.place.identity()
    }
}

/// The GitHub secret of a GitHub target.
///
/// # Panics
///
/// For a target of another store. Code written before the store layer (SPEC §9) only ever
/// sees GitHub targets: `app` refuses the other kinds until their stores exist. New code
/// uses [`Target::github`].
pub fn github_of(t: &Target) -> (&Scope, &SecretName) {
    match t.github() {
        Some(pair) => pair,
        None => panic!("{} is not a GitHub target", t.label),
    }
}

/// A `targets` line that could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("targets line {line}: {reason}")]
pub struct TargetLineError {
    /// 1-based line number in the `targets` setting.
    pub line: usize,
    /// What is wrong and what the line should look like.
    pub reason: String,
}

/// Owner (user or organization) login: 1–39 letters, digits or `-`.
pub fn check_owner(raw: &str) -> Result<(), String> {
    let ok = !raw.is_empty()
        && raw.len() <= 39
        && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{raw}` is not a GitHub owner or organization name (letters, digits and `-`, at most 39)"
        ))
    }
}

/// Repository name: 1–100 letters, digits, `.`, `_` or `-`, not `.` or `..`.
pub fn check_repo_name(raw: &str) -> Result<(), String> {
    let ok = !raw.is_empty()
        && raw.len() <= 100
        && raw != "."
        && raw != ".."
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{raw}` is not a repository name (letters, digits, `.`, `_` and `-`, at most 100)"
        ))
    }
}

/// Parses `OWNER/REPO`.
pub fn parse_repository(raw: &str) -> Result<(String, String), String> {
    let Some((owner, repo)) = raw.split_once('/') else {
        return Err(format!("`{raw}` is not of the form OWNER/REPO"));
    };
    check_owner(owner)?;
    check_repo_name(repo)?;
    Ok((owner.to_string(), repo.to_string()))
}

/// Environment name: non-empty, at most 255 characters, no control characters, not `.` or
/// `..` (a URL path would swallow those: `…/environments/../secrets`).
pub fn check_environment(raw: &str) -> Result<(), String> {
    if raw.trim().is_empty() {
        return Err("the environment name is empty".into());
    }
    if raw == "." || raw == ".." {
        return Err(format!(
            "`{raw}` is not an environment name (it would vanish from the API path)"
        ));
    }
    if raw.chars().count() > 255 {
        return Err("the environment name is longer than 255 characters".into());
    }
    if raw.chars().any(char::is_control) {
        return Err("the environment name contains a control character".into());
    }
    Ok(())
}

/// Strips a comment: `#` at the start of the line or after white space.
fn strip_comment(line: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_space {
            return &line[..i];
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// Parses the `targets` setting: one target per non-empty line, `#` comments,
/// `kind:path[=NAME]`. Duplicates (two lines writing the same place, SPEC §9) are an error.
///
/// ```
/// use seqera_token_rotate::target::{parse_targets, SecretName};
///
/// let default = SecretName::parse("TOWER_ACCESS_TOKEN").unwrap();
/// let targets = parse_targets("# where the token goes\nrepo:octo/app\nenv:octo/app/prod eu=PROD\n", &default).unwrap();
/// let labels: Vec<&str> = targets.iter().map(|t| t.label.as_str()).collect();
/// assert_eq!(labels, ["repo:octo/app", "env:octo/app/prod eu=PROD"]);
///
/// let err = parse_targets("repo:octo/app\nrepo:octo/app", &default).unwrap_err();
/// assert_eq!(err.to_string(), "targets line 2: `repo:octo/app` is the same target as line 1");
/// ```
pub fn parse_targets(
    text: &str,
    default_name: &SecretName,
) -> Result<Vec<Target>, TargetLineError> {
    let mut out: Vec<Target> = Vec::new();
    // Line of the first occurrence of each place, keyed as its store compares them.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw_line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = strip_comment(raw_line).trim();
        if line.is_empty() {
            continue;
        }
        let err = |reason: String| TargetLineError {
            line: line_no,
            reason,
        };
        if out.len() == MAX_TARGETS {
            return Err(err(format!(
                "more than {MAX_TARGETS} targets; split them over several runs (GitHub allows about 500 secret writes an hour)"
            )));
        }
        let target = parse_target_line(line, default_name).map_err(err)?;
        if let Some(first) = seen.insert(target.place.identity(), line_no) {
            let why = match target.store_kind() {
                StoreKind::Github | StoreKind::Gitlab | StoreKind::AwsSsm => "",
                StoreKind::AwsSm => " (one AWS secret, whatever its =KEY: write it once)",
                StoreKind::Vault => " (one Vault secret, whatever its =FIELD: write it once)",
            };
            return Err(err(format!(
                "`{}` is the same target as line {first}{why}",
                target.label
            )));
        }
        out.push(target);
    }
    Ok(out)
}

/// The stores a `targets` text names, read from each line's kind alone: what settings
/// validation needs to know (which credentials are required) even when a line is invalid.
pub fn store_kinds_named(text: &str) -> Vec<StoreKind> {
    text.lines()
        .filter_map(|l| {
            let (kind, _) = strip_comment(l).trim().split_once(':')?;
            kind_store(kind.trim())
        })
        .collect()
}

fn kind_store(kind: &str) -> Option<StoreKind> {
    Some(match kind {
        "repo" | "dependabot" | "codespaces" | "env" | "org" => StoreKind::Github,
        "aws-sm" => StoreKind::AwsSm,
        "aws-ssm" => StoreKind::AwsSsm,
        "vault" => StoreKind::Vault,
        "gitlab" | "gitlab-group" => StoreKind::Gitlab,
        _ => return None,
    })
}

/// The most targets one run takes: far above real use (at GitHub's 500 writes an hour, this
/// many take 10 hours), low enough that nothing grows without bound.
pub const MAX_TARGETS: usize = 5000;

const LINE_FORMS: &str = "expected repo:OWNER/REPO, env:OWNER/REPO/ENVIRONMENT, org:ORG, \
dependabot:OWNER/REPO, codespaces:OWNER/REPO, aws-sm:REGION/NAME, aws-ssm:REGION/NAME, \
vault:MOUNT/PATH, gitlab:GROUP/PROJECT or gitlab-group:GROUP, optionally followed by =NAME";

fn parse_target_line(line: &str, default_name: &SecretName) -> Result<Target, String> {
    let Some((kind, rest)) = line.split_once(':') else {
        return Err(format!("`{line}` has no kind: {LINE_FORMS}"));
    };
    let kind = kind.trim();
    // The last `=` starts the name: `env:o/r/a=B` is environment `a`, secret `B`; an
    // environment whose name has `=` takes an explicit name: `env:o/r/a=b=TOWER_ACCESS_TOKEN`.
    let (path, name) = match rest.rsplit_once('=') {
        Some((path, name)) => (path.trim(), Some(name.trim())),
        None => (rest.trim(), None),
    };
    let place = match kind {
        "repo" | "dependabot" | "codespaces" | "env" | "org" => {
            let secret = match name {
                Some(n) => SecretName::parse(n).map_err(|e| {
                    format!("{e} (in `{line}`, the last `=` starts the secret name)")
                })?,
                None => default_name.clone(),
            };
            Place::Github {
                scope: github_scope(kind, path, line)?,
                secret,
            }
        }
        "aws-sm" => {
            let (region, secret) = aws_region_and_name(path, line, "aws-sm:REGION/NAME")?;
            check_aws_secret_name(secret)?;
            let key = name
                .map(|k| check_field(k, "JSON key", line).map(|()| k.to_string()))
                .transpose()?;
            Place::AwsSm {
                region,
                name: secret.to_string(),
                key,
            }
        }
        "aws-ssm" => {
            if name.is_some() {
                return Err(format!(
                    "`{line}`: aws-ssm: takes no =NAME (the parameter holds the token itself, and SSM names have no `=`)"
                ));
            }
            let (region, param) = aws_region_and_name(path, line, "aws-ssm:REGION/NAME")?;
            check_ssm_name(param)?;
            Place::AwsSsm {
                region,
                name: param.to_string(),
            }
        }
        "vault" => {
            let Some((mount, secret)) = path.split_once('/') else {
                return Err(format!("`{line}` is not of the form vault:MOUNT/PATH"));
            };
            check_vault_path(mount, "mount")?;
            check_vault_path(secret, "path")?;
            let field = match name {
                Some(f) => {
                    check_field(f, "field", line)?;
                    f.to_string()
                }
                None => default_name.as_str().to_string(),
            };
            Place::Vault {
                mount: mount.to_string(),
                path: secret.to_string(),
                field,
            }
        }
        "gitlab" | "gitlab-group" => {
            let scope = if kind == "gitlab" {
                if !path.contains('/') {
                    return Err(format!(
                        "`{line}` is not of the form gitlab:GROUP/PROJECT (for a group's variables: gitlab-group:GROUP)"
                    ));
                }
                check_gitlab_path(path)?;
                GitlabScope::Project { path: path.into() }
            } else {
                check_gitlab_path(path)?;
                GitlabScope::Group { path: path.into() }
            };
            let key = match name {
                Some(k) => GitlabKey::parse(k).map_err(|e| {
                    format!("{e} (in `{line}`, the last `=` starts the variable key)")
                })?,
                // A secret name is always a valid GitLab key.
                None => GitlabKey(default_name.as_str().to_string()),
            };
            Place::Gitlab { scope, key }
        }
        other => return Err(format!("unknown kind `{other}`: {LINE_FORMS}")),
    };
    Ok(Target::at(place, default_name))
}

/// The collection of a GitHub line.
fn github_scope(kind: &str, path: &str, line: &str) -> Result<Scope, String> {
    let repo_pair = |path: &str| -> Result<(String, String), String> {
        parse_repository(path).map_err(|e| format!("{e} in `{line}`"))
    };
    Ok(match kind {
        "repo" => {
            let (owner, repo) = repo_pair(path)?;
            Scope::Repo { owner, repo }
        }
        "dependabot" => {
            let (owner, repo) = repo_pair(path)?;
            Scope::Dependabot { owner, repo }
        }
        "codespaces" => {
            let (owner, repo) = repo_pair(path)?;
            Scope::Codespaces { owner, repo }
        }
        "env" => {
            let mut parts = path.splitn(3, '/');
            let (Some(owner), Some(repo), Some(env)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!(
                    "`{line}` is not of the form env:OWNER/REPO/ENVIRONMENT"
                ));
            };
            check_owner(owner)?;
            check_repo_name(repo)?;
            check_environment(env)?;
            Scope::Environment {
                owner: owner.into(),
                repo: repo.into(),
                env: env.into(),
            }
        }
        _ => {
            check_owner(path)?;
            Scope::Org { org: path.into() }
        }
    })
}

/// `REGION/NAME`: the region up to the first `/`, the name (which may hold `/`) after it.
fn aws_region_and_name<'a>(
    path: &'a str,
    line: &str,
    form: &str,
) -> Result<(AwsRegion, &'a str), String> {
    let Some((region, name)) = path.split_once('/') else {
        return Err(format!("`{line}` is not of the form {form}"));
    };
    Ok((AwsRegion::parse(region)?, name))
}

/// A Secrets Manager secret name: 1–512 of `A-Za-z0-9/_+=.@-` (AWS's documented rule). Since
/// the last `=` of a line starts `=KEY`, a name with `=` can only be written with a key.
pub fn check_aws_secret_name(raw: &str) -> Result<(), String> {
    let n = raw.chars().count();
    if n == 0 || n > 512 {
        return Err(format!(
            "an AWS secret name is 1-512 characters; this one is {n}"
        ));
    }
    if let Some(bad) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
    {
        return Err(format!(
            "AWS secret name `{raw}` contains `{bad}`: only letters, digits and /_+=.@- are allowed"
        ));
    }
    Ok(())
}

/// A Parameter Store name (AWS's documented rules): 1–1011 of `a-zA-Z0-9_.-` and `/`; a
/// hierarchical name starts with `/`, has no empty level and at most 15 levels; no name
/// starts with `aws` or `ssm` (any case), those are AWS's.
pub fn check_ssm_name(raw: &str) -> Result<(), String> {
    let n = raw.chars().count();
    if n == 0 || n > 1011 {
        return Err(format!(
            "an SSM parameter name is 1-1011 characters; this one is {n}"
        ));
    }
    if let Some(bad) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
    {
        return Err(format!(
            "SSM parameter name `{raw}` contains `{bad}`: only letters, digits and _.-/ are allowed"
        ));
    }
    let levels: Vec<&str> = match raw.strip_prefix('/') {
        Some(rest) => rest.split('/').collect(),
        None if raw.contains('/') => {
            return Err(format!(
                "SSM parameter name `{raw}` has levels but does not start with `/` (a hierarchical name reads aws-ssm:REGION//team/name)"
            ))
        }
        None => vec![raw],
    };
    if levels.iter().any(|l| l.is_empty()) {
        return Err(format!(
            "SSM parameter name `{raw}` has an empty level (`//` or a trailing `/`)"
        ));
    }
    if levels.len() > 15 {
        return Err(format!(
            "SSM parameter name `{raw}` has {} levels; AWS allows 15",
            levels.len()
        ));
    }
    let first = levels[0].to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err(format!(
            "SSM parameter name `{raw}` starts with `aws` or `ssm`, which AWS reserves"
        ));
    }
    Ok(())
}

/// A Vault mount or path: segments joined by `/`, none empty, `.` or `..` (they would
/// vanish from the API path), no control characters.
pub fn check_vault_path(raw: &str, what: &str) -> Result<(), String> {
    if raw.chars().any(char::is_control) {
        return Err(format!("the Vault {what} contains a control character"));
    }
    if raw.is_empty() {
        return Err(format!("the Vault {what} is empty"));
    }
    if raw
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "Vault {what} `{raw}` has an empty, `.` or `..` segment"
        ));
    }
    Ok(())
}

/// A Vault field or an AWS JSON key: any non-empty text without control characters.
fn check_field(raw: &str, what: &str, line: &str) -> Result<(), String> {
    if raw.is_empty() {
        return Err(format!("`{line}`: the {what} after the last `=` is empty"));
    }
    if raw.chars().any(char::is_control) {
        return Err(format!("`{line}`: the {what} contains a control character"));
    }
    Ok(())
}

/// A GitLab group or project full path: segments of `[A-Za-z0-9_.-]`, none empty, `.` or
/// `..`, each at most 255 characters (GitLab's path characters; its finer rules, such as
/// no leading `-`, apply to new paths only and are left to GitLab).
pub fn check_gitlab_path(raw: &str) -> Result<(), String> {
    let ok = !raw.is_empty()
        && raw.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.len() <= 255
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{raw}` is not a GitLab group or project path (segments of letters, digits, `_`, `.` and `-`, joined by `/`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn default() -> SecretName {
        SecretName::parse("TOWER_ACCESS_TOKEN").unwrap()
    }

    // Issue 9, defect 7: `.` and `..` vanished from the API path
    // (`…/environments/secrets/public-key`).
    #[test]
    fn dot_environments_are_invalid() {
        for line in ["env:o/r/.", "env:o/r/..", "env:o/r/..=X"] {
            let e = parse_targets(line, &default()).unwrap_err();
            assert!(e.reason.contains("not an environment name"), "{line}: {e}");
        }
        assert!(check_environment("..").is_err());
        assert!(check_environment("...").is_ok());
    }

    // The decision for `env:o/r/a=B`: the last `=` starts the secret name.
    #[test]
    fn the_last_equals_sign_starts_the_secret_name() {
        let t = parse_targets("env:o/r/a=B", &default()).unwrap();
        assert_eq!(
            *t[0].github().unwrap().0,
            Scope::Environment {
                owner: "o".into(),
                repo: "r".into(),
                env: "a".into()
            }
        );
        assert_eq!(t[0].github().unwrap().1.as_str(), "B");
        let t = parse_targets("env:o/r/a=b=TOWER_ACCESS_TOKEN", &default()).unwrap();
        assert_eq!(t[0].github().unwrap().0.spec(), "env:o/r/a=b");
        assert_eq!(
            t[0].label, "env:o/r/a=b",
            "default name: no =NAME in the label"
        );
        let e = parse_targets("env:o/r/a=b c", &default()).unwrap_err();
        assert!(
            e.reason.contains("the last `=` starts the secret name"),
            "{e}"
        );
    }

    // Issue 9, defect 5: 10,000 lines took 6.7 s (duplicates were found by a linear scan per
    // line) and there was no cap. Now one hash lookup per line, and a clear error past the cap.
    #[test]
    fn many_targets_parse_in_one_pass_up_to_the_cap() {
        let lines = |n: usize| -> String { (0..n).map(|i| format!("repo:o/r{i}\n")).collect() };
        assert_eq!(
            parse_targets(&lines(MAX_TARGETS), &default())
                .unwrap()
                .len(),
            MAX_TARGETS
        );
        let e = parse_targets(&lines(MAX_TARGETS + 1), &default()).unwrap_err();
        assert_eq!(e.line, MAX_TARGETS + 1);
        assert!(e.reason.contains("more than 5000 targets"), "{e}");
        let mut dup = lines(3000);
        dup.push_str("REPO:O/R17\n");
        let e = parse_targets(&dup.replace("REPO:", "repo:"), &default()).unwrap_err();
        assert_eq!(
            (e.line, e.reason.contains("same target as line 18")),
            (3001, true),
            "{e}"
        );
    }

    #[test]
    fn secret_names() {
        for ok in ["A", "_X", "TOWER_ACCESS_TOKEN", "a1_b2", "GITHUBX"] {
            assert!(SecretName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "GITHUB_TOKEN", "github_x", "A-B", "A B", "É"] {
            assert!(SecretName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn all_kinds_with_comments_and_overrides() {
        let text = "# rotation targets\n\
            repo:octo/app\n\
            \n\
            env:octo/app/prod eu/1 = PROD_TOKEN   # trailing comment\n\
            org:octo\n\
            dependabot:octo/app\n\
            codespaces:octo/app=TOWER_ACCESS_TOKEN\n\
            env:octo/app/issue#7\n";
        let t = parse_targets(text, &default()).unwrap();
        let labels: Vec<_> = t.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "repo:octo/app",
                "env:octo/app/prod eu/1=PROD_TOKEN",
                "org:octo",
                "dependabot:octo/app",
                "codespaces:octo/app",
                "env:octo/app/issue#7",
            ]
        );
        assert_eq!(
            *t[1].github().unwrap().0,
            Scope::Environment {
                owner: "octo".into(),
                repo: "app".into(),
                env: "prod eu/1".into()
            }
        );
        assert_eq!(
            t[1].github().unwrap().0.collection(),
            [
                "repos",
                "octo",
                "app",
                "environments",
                "prod eu/1",
                "secrets"
            ]
        );
    }

    #[test]
    fn bad_lines_name_the_line() {
        let cases = [
            ("repo:octo/app\nfoo:octo/app", 2, "unknown kind"),
            ("repo:octo", 1, "OWNER/REPO"),
            ("env:octo/app", 1, "env:OWNER/REPO/ENVIRONMENT"),
            ("repo:octo/app=1BAD", 1, "cannot start with a digit"),
            ("repo:octo/app=GITHUB_X", 1, "GITHUB_"),
            (
                "\n\nrepo:octo/app\nrepo:octo/app",
                4,
                "same target as line 3",
            ),
            ("octo/app", 1, "no kind"),
            ("org:octo/app", 1, "owner or organization"),
            ("repo:-/..", 1, "repository name"),
        ];
        for (text, line, needle) in cases {
            let e = parse_targets(text, &default()).unwrap_err();
            assert_eq!(e.line, line, "{text}");
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn duplicates_ignore_case_like_github() {
        let e = parse_targets(
            "repo:octo/app\nrepo:Octo/App=tower_access_token",
            &default(),
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_targets("env:o/r/Prod\nenv:o/r/prod", &default()).unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn same_scope_other_name_is_not_a_duplicate() {
        let t = parse_targets("repo:o/r\nrepo:o/r=OTHER", &default()).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].label, "repo:o/r=OTHER");
    }

    fn one(line: &str) -> Target {
        let mut t = parse_targets(line, &default()).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(t.len(), 1);
        t.remove(0)
    }

    fn region(r: &str) -> AwsRegion {
        AwsRegion::parse(r).unwrap()
    }

    #[test]
    fn store_lines_parse_into_places() {
        let cases: Vec<(&str, Place, &str)> = vec![
            (
                "aws-sm:us-east-1/prod/seqera",
                Place::AwsSm {
                    region: region("us-east-1"),
                    name: "prod/seqera".into(),
                    key: None,
                },
                "aws-sm:us-east-1/prod/seqera",
            ),
            (
                "aws-sm:eu-west-1/launcher=TOWER_ACCESS_TOKEN",
                Place::AwsSm {
                    region: region("eu-west-1"),
                    name: "launcher".into(),
                    key: Some("TOWER_ACCESS_TOKEN".into()),
                },
                // A given key is always in the label, even when it equals secret-name.
                "aws-sm:eu-west-1/launcher=TOWER_ACCESS_TOKEN",
            ),
            (
                "aws-sm:us-gov-west-1/a=b=tower token",
                Place::AwsSm {
                    region: region("us-gov-west-1"),
                    name: "a=b".into(),
                    key: Some("tower token".into()),
                },
                "aws-sm:us-gov-west-1/a=b=tower token",
            ),
            (
                "aws-ssm:eu-west-1//team/seqera",
                Place::AwsSsm {
                    region: region("eu-west-1"),
                    name: "/team/seqera".into(),
                },
                "aws-ssm:eu-west-1//team/seqera",
            ),
            (
                "aws-ssm:cn-north-1/seqera_token",
                Place::AwsSsm {
                    region: region("cn-north-1"),
                    name: "seqera_token".into(),
                },
                "aws-ssm:cn-north-1/seqera_token",
            ),
            (
                "vault:secret/ci/seqera",
                Place::Vault {
                    mount: "secret".into(),
                    path: "ci/seqera".into(),
                    field: "TOWER_ACCESS_TOKEN".into(),
                },
                "vault:secret/ci/seqera",
            ),
            (
                "vault:kv/app=token",
                Place::Vault {
                    mount: "kv".into(),
                    path: "app".into(),
                    field: "token".into(),
                },
                "vault:kv/app=token",
            ),
            (
                "vault:kv/app=TOWER_ACCESS_TOKEN",
                Place::Vault {
                    mount: "kv".into(),
                    path: "app".into(),
                    field: "TOWER_ACCESS_TOKEN".into(),
                },
                "vault:kv/app",
            ),
            (
                "gitlab:group/sub/project",
                Place::Gitlab {
                    scope: GitlabScope::Project {
                        path: "group/sub/project".into(),
                    },
                    key: GitlabKey::parse("TOWER_ACCESS_TOKEN").unwrap(),
                },
                "gitlab:group/sub/project",
            ),
            (
                "gitlab:grp/proj=SEQERA_TOKEN",
                Place::Gitlab {
                    scope: GitlabScope::Project {
                        path: "grp/proj".into(),
                    },
                    key: GitlabKey::parse("SEQERA_TOKEN").unwrap(),
                },
                "gitlab:grp/proj=SEQERA_TOKEN",
            ),
            (
                "gitlab-group:grp/sub",
                Place::Gitlab {
                    scope: GitlabScope::Group {
                        path: "grp/sub".into(),
                    },
                    key: GitlabKey::parse("TOWER_ACCESS_TOKEN").unwrap(),
                },
                "gitlab-group:grp/sub",
            ),
            (
                "gitlab-group:grp=1KEY",
                Place::Gitlab {
                    scope: GitlabScope::Group { path: "grp".into() },
                    key: GitlabKey::parse("1KEY").unwrap(),
                },
                "gitlab-group:grp=1KEY",
            ),
        ];
        for (line, place, label) in cases {
            let t = one(line);
            assert_eq!(t.place, place, "{line}");
            assert_eq!(t.label, label, "{line}");
            assert!(t.github().is_none(), "{line}");
        }
    }

    #[test]
    fn store_kinds_dispatch_without_strings() {
        let t = parse_targets(
            "repo:o/r\nenv:o/r/e\naws-sm:us-east-1/s\naws-ssm:us-east-1/p\nvault:kv/a\ngitlab:g/p\ngitlab-group:g",
            &default(),
        )
        .unwrap();
        let kinds: Vec<StoreKind> = t.iter().map(Target::store_kind).collect();
        use StoreKind::*;
        assert_eq!(
            kinds,
            [Github, Github, AwsSm, AwsSsm, Vault, Gitlab, Gitlab]
        );
        assert_eq!(github_of(&t[1]).0.spec(), "env:o/r/e");
    }

    #[test]
    fn aws_regions() {
        for ok in [
            "us-east-1",
            "us-gov-west-1",
            "cn-north-1",
            "eu-central-2",
            "ap-southeast-4",
            "il-central-1",
            "us-isob-east-1",
            "eusc-de-east-1",
        ] {
            assert!(AwsRegion::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us-east-1a",
            "useast1",
            "us_east_1",
            "us-east-100",
            "u-east-1",
            "us--1",
            "-us-east-1",
            "us-east-1-",
        ] {
            assert!(AwsRegion::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_store_lines_say_why() {
        let long_sm = format!("aws-sm:us-east-1/{}", "a".repeat(513));
        let long_ssm = format!("aws-ssm:us-east-1/{}", "a".repeat(1012));
        let deep_ssm = format!("aws-ssm:us-east-1/{}", "/a".repeat(16));
        let cases: Vec<(&str, &str)> = vec![
            ("aws-sm:us-east-1", "aws-sm:REGION/NAME"),
            ("aws-sm:useast1/x", "not an AWS region"),
            ("aws-sm:us-east-1/", "1-512"),
            (&long_sm, "1-512"),
            ("aws-sm:us-east-1/a b", "contains ` `"),
            ("aws-sm:us-east-1/a:b", "contains `:`"),
            (
                "aws-sm:us-east-1/a=",
                "JSON key after the last `=` is empty",
            ),
            ("aws-sm:us-east-1/a=k\u{1}x", "control character"),
            ("aws-ssm:us-east-1/a=K", "takes no =NAME"),
            ("aws-ssm:us-east-1/team/x", "does not start with `/`"),
            ("aws-ssm:us-east-1//team//x", "empty level"),
            ("aws-ssm:us-east-1//team/", "empty level"),
            ("aws-ssm:us-east-1/", "1-1011"),
            (&long_ssm, "1-1011"),
            (&deep_ssm, "AWS allows 15"),
            ("aws-ssm:us-east-1/a+b", "contains `+`"),
            ("aws-ssm:us-east-1/awsToken", "reserves"),
            ("aws-ssm:us-east-1//SSM/x", "reserves"),
            ("vault:kv", "vault:MOUNT/PATH"),
            ("vault:kv/", "path is empty"),
            ("vault:/x", "mount is empty"),
            ("vault:kv/a//b", "empty, `.` or `..` segment"),
            ("vault:kv/a/../b", "`..` segment"),
            ("vault:kv/./b", "`..` segment"),
            ("vault:kv/a/", "segment"),
            ("vault:kv/a\u{7f}", "control character"),
            ("vault:kv/a=", "field after the last `=` is empty"),
            ("gitlab:grp", "gitlab:GROUP/PROJECT"),
            ("gitlab:grp/", "not a GitLab group or project path"),
            ("gitlab:grp/p q", "not a GitLab group or project path"),
            ("gitlab:grp/../p", "not a GitLab group or project path"),
            ("gitlab-group:", "not a GitLab group or project path"),
            ("gitlab-group:g=A-B", "contains `-`"),
            ("gitlab:g/p=", "1-255"),
            ("gitlab:g/p=É", "contains `É`"),
        ];
        for (line, needle) in cases {
            let e = parse_targets(line, &default()).unwrap_err();
            assert_eq!(e.line, 1);
            assert!(e.reason.contains(needle), "{line}: {e}");
        }
        assert!(GitlabKey::parse(&"K".repeat(255)).is_ok());
        assert!(GitlabKey::parse(&"K".repeat(256)).is_err());
        assert!(check_ssm_name(&format!("/{}", "a".repeat(1010))).is_ok());
        assert!(check_ssm_name(&"/a".repeat(15)).is_ok());
        assert!(check_aws_secret_name(&"a".repeat(512)).is_ok());
        assert!(check_aws_secret_name("/+=.@-_A9").is_ok());
    }

    // SPEC §9: two lines that write the same place are duplicates, whatever their =NAME; the
    // other stores' names compare exactly.
    #[test]
    fn store_duplicates() {
        let dup = [
            "aws-sm:us-east-1/s\naws-sm:us-east-1/s=K",
            "aws-sm:us-east-1/s=A\naws-sm:us-east-1/s=B",
            "aws-ssm:us-east-1//a/b\naws-ssm:us-east-1//a/b",
            "vault:kv/app\nvault:kv/app=other",
            "vault:kv/app=a\nvault:kv/app=b",
            "gitlab:g/p\ngitlab:g/p=TOWER_ACCESS_TOKEN",
            "gitlab-group:g=K\ngitlab-group:g=K",
        ];
        for text in dup {
            let e = parse_targets(text, &default()).unwrap_err();
            assert_eq!(e.line, 2, "{text}");
            assert!(e.reason.contains("same target as line 1"), "{text}: {e}");
        }
        let e = parse_targets("vault:kv/app\nvault:kv/app=x", &default()).unwrap_err();
        assert!(e.reason.contains("one Vault secret"), "{e}");
        let distinct = [
            "aws-sm:us-east-1/s\naws-sm:us-east-1/S",
            "aws-sm:us-east-1/s\naws-sm:us-west-2/s",
            "aws-sm:us-east-1/s\naws-ssm:us-east-1/s",
            "aws-ssm:us-east-1/s\naws-ssm:us-east-1//s",
            "vault:kv/app\nvault:kv/App",
            "vault:kv/app\nvault:kv2/app",
            "gitlab:g/p\ngitlab:g/p=OTHER",
            "gitlab:g/p\ngitlab:G/p",
            "gitlab:g/p=k\ngitlab:g/p=K",
            "gitlab:g/p\ngitlab-group:g/p",
            "repo:o/r\ngitlab:o/r",
        ];
        for text in distinct {
            let t = parse_targets(text, &default()).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(t.len(), 2, "{text}");
            assert!(!t[0].same_secret(&t[1]), "{text}");
        }
    }

    proptest! {
        #[test]
        fn secret_names_valid_and_broken(name in "[A-Za-z_][A-Za-z0-9_]{0,30}", bad in "[^A-Za-z0-9_]", at in 0usize..32) {
            prop_assume!(!name.to_ascii_uppercase().starts_with("GITHUB_"));
            prop_assert!(SecretName::parse(&name).is_ok());
            let mut broken = name.clone();
            broken.insert_str(at.min(name.len()), &bad);
            prop_assert!(SecretName::parse(&broken).is_err());
            let reserved = format!("GITHUB_{name}");
            let digit_first = format!("{}{name}", at % 10);
            prop_assert!(SecretName::parse(&reserved).is_err());
            prop_assert!(SecretName::parse(&digit_first).is_err());
        }

        #[test]
        fn repo_lines_round_trip(owner in "[A-Za-z0-9][A-Za-z0-9-]{0,20}", repo in "[A-Za-z0-9_][A-Za-z0-9._-]{0,30}",
                                 name in proptest::option::of("[A-Z_][A-Z0-9_]{0,20}")) {
            prop_assume!(name.as_deref().map(|n| !n.starts_with("GITHUB_")).unwrap_or(true));
            let line = match &name { Some(n) => format!("repo:{owner}/{repo}={n}"), None => format!("repo:{owner}/{repo}") };
            let t = parse_targets(&line, &default()).unwrap();
            prop_assert_eq!(t.len(), 1);
            prop_assert_eq!(t[0].github().unwrap().0, &Scope::Repo { owner: owner.clone(), repo: repo.clone() });
            // The label re-parses to the same target.
            let again = parse_targets(&t[0].label, &default()).unwrap();
            prop_assert_eq!(&again[0], &t[0]);
        }

        #[test]
        fn store_lines_round_trip(
            region in "(us|eu|ap|cn|sa)-(east|west|gov-west|southeast|central)-[1-9]",
            sm in "[A-Za-z0-9/_+.@-]{1,40}",
            key in proptest::option::of("[A-Za-z0-9]([A-Za-z0-9 _.$-]{0,20}[A-Za-z0-9])?"),
            ssm in "(/[A-Za-z0-9_.-]{1,12}){1,4}",
            mount in "[a-z0-9_-]{1,10}",
            vpath in "[A-Za-z0-9_-]{1,10}(/[A-Za-z0-9 _.-]{0,10}[A-Za-z0-9]){0,3}",
            field in proptest::option::of("[a-z]([A-Za-z0-9_ -]{0,10}[a-z])?"),
            gpath in "[a-z0-9][a-z0-9_.-]{0,10}(/[a-z0-9][a-z0-9_-]{0,10}){1,3}",
            gkey in proptest::option::of("[A-Za-z0-9_]{1,20}"),
        ) {
            prop_assume!(!ssm[1..].to_ascii_lowercase().starts_with("aws") && !ssm[1..].to_ascii_lowercase().starts_with("ssm"));
            let suffix = |n: &Option<String>| n.as_ref().map(|n| format!("={n}")).unwrap_or_default();
            let lines = [
                format!("aws-sm:{region}/{sm}{}", suffix(&key)),
                format!("aws-ssm:{region}/{ssm}"),
                format!("vault:{mount}/{vpath}{}", suffix(&field)),
                format!("gitlab:{gpath}{}", suffix(&gkey)),
                format!("gitlab-group:{gpath}{}", suffix(&gkey)),
            ];
            let t = parse_targets(&lines.join("\n"), &default()).unwrap();
            prop_assert_eq!(t.len(), 5);
            prop_assert_eq!(&t[0].place, &Place::AwsSm { region: AwsRegion::parse(&region).unwrap(), name: sm.clone(), key: key.clone() });
            prop_assert_eq!(&t[1].place, &Place::AwsSsm { region: AwsRegion::parse(&region).unwrap(), name: ssm.clone() });
            let (vmount, vrest) = (mount.clone(), vpath.clone());
            prop_assert_eq!(&t[2].place, &Place::Vault { mount: vmount, path: vrest, field: field.clone().unwrap_or_else(|| "TOWER_ACCESS_TOKEN".into()) });
            // Every label re-parses to the same target, and the aws-sm key is always in it.
            for x in &t {
                let again = parse_targets(&x.label, &default()).unwrap();
                prop_assert_eq!(&again[0], x);
            }
            prop_assert_eq!(t[0].label.contains('='), key.is_some());
        }

        #[test]
        fn store_line_parser_never_panics(kind in prop::sample::select(vec!["aws-sm", "aws-ssm", "vault", "gitlab", "gitlab-group"]), rest in "\\PC{0,60}") {
            let _ = parse_targets(&format!("{kind}:{rest}"), &default());
        }

        #[test]
        fn region_shapes(a in "[a-z]{2,4}", mid in prop::collection::vec("[a-z]{2,12}", 1..=3), n in 1u8..=99) {
            let r = format!("{a}-{}-{n}", mid.join("-"));
            prop_assert!(AwsRegion::parse(&r).is_ok(), "{}", r);
            prop_assert!(AwsRegion::parse(&r.to_uppercase()).is_err());
            let longer = format!("{r}x");
            prop_assert!(AwsRegion::parse(&longer).is_err());
        }

        #[test]
        fn parser_never_panics(text in "\\PC{0,200}") {
            let _ = parse_targets(&text, &default());
        }

        #[test]
        fn env_names_keep_spaces_and_slashes(env in "[a-z][a-z0-9 /._-]{0,40}[a-z0-9]") {
            let t = parse_targets(&format!("env:o/r/{env}"), &default()).unwrap();
            prop_assert_eq!(t[0].github().unwrap().0, &Scope::Environment { owner: "o".into(), repo: "r".into(), env: env.clone() });
        }
    }
}
