//! What a secret target is: the five kinds, the `targets` line syntax (SPEC §4), labels,
//! and the API path of each target's secret collection. Parsing only; no network.

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

/// Where a target's value lives: the store, and the place in it. The GitHub kinds share
/// one store; every other store (SPEC §9) adds its own variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A GitHub secret: its collection and its name.
    Github {
        /// The secret collection.
        scope: Scope,
        /// The secret name in it.
        secret: SecretName,
    },
}

/// One place to write the token to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Where the value lives.
    pub place: Place,
    /// `kind:path`, plus `=NAME` when the name differs from the default `secret-name`.
    pub label: String,
}

impl Target {
    /// Builds a GitHub target and its label (SPEC §4).
    pub fn new(scope: Scope, secret_name: SecretName, default_name: &SecretName) -> Self {
        let mut label = scope.spec();
        if &secret_name != default_name {
            label.push('=');
            label.push_str(secret_name.as_str());
        }
        Self {
            place: Place::Github {
                scope,
                secret: secret_name,
            },
            label,
        }
    }

    /// The GitHub secret collection and name, for a GitHub target.
    pub fn github(&self) -> Option<(&Scope, &SecretName)> {
        match &self.place {
            Place::Github { scope, secret } => Some((scope, secret)),
        }
    }

    /// Whether both name the same place (SPEC §9: GitHub names compare without regard to
    /// case, the other stores' names exactly).
    pub fn same_secret(&self, other: &Target) -> bool {
        self.secret_key() == other.secret_key()
    }

    /// The place's identity as its store compares it.
    fn secret_key(&self) -> String {
        match &self.place {
            Place::Github { scope, secret } => {
                format!("{}={}", scope.spec(), secret.as_str()).to_lowercase()
            }
        }
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
/// `kind:path[=SECRET_NAME]`. Duplicates (same scope and secret name) are an error.
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
    // Line of the first occurrence of each secret, keyed as GitHub compares them.
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
        if let Some(first) = seen.insert(target.secret_key(), line_no) {
            return Err(err(format!(
                "`{}` is the same target as line {first}",
                target.label
            )));
        }
        out.push(target);
    }
    Ok(out)
}

/// The most targets one run takes: far above real use (at GitHub's 500 writes an hour, this
/// many take 10 hours), low enough that nothing grows without bound.
pub const MAX_TARGETS: usize = 5000;

const LINE_FORMS: &str = "expected repo:OWNER/REPO, env:OWNER/REPO/ENVIRONMENT, org:ORG, \
dependabot:OWNER/REPO or codespaces:OWNER/REPO, optionally followed by =SECRET_NAME";

fn parse_target_line(line: &str, default_name: &SecretName) -> Result<Target, String> {
    let Some((kind, rest)) = line.split_once(':') else {
        return Err(format!("`{line}` has no kind: {LINE_FORMS}"));
    };
    // The last `=` starts the secret name: `env:o/r/a=B` is environment `a`, secret `B`; an
    // environment whose name has `=` takes an explicit name: `env:o/r/a=b=TOWER_ACCESS_TOKEN`.
    let (path, name) = match rest.rsplit_once('=') {
        Some((path, name)) => (
            path.trim(),
            SecretName::parse(name.trim())
                .map_err(|e| format!("{e} (in `{line}`, the last `=` starts the secret name)"))?,
        ),
        None => (rest.trim(), default_name.clone()),
    };
    let repo_pair = |path: &str| -> Result<(String, String), String> {
        parse_repository(path).map_err(|e| format!("{e} in `{line}`"))
    };
    let scope = match kind.trim() {
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
        "org" => {
            check_owner(path)?;
            Scope::Org { org: path.into() }
        }
        other => return Err(format!("unknown kind `{other}`: {LINE_FORMS}")),
    };
    Ok(Target::new(scope, name, default_name))
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
