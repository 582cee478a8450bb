//! A faithful fake Seqera Platform API, a fake GitHub REST secrets API and a fake GitLab
//! CI/CD variables API (see `gitlab.rs`), on loopback, with fault injection and
//! inspectable state.
//!
//! [`Sandbox::start`] binds three HTTP/1.1 servers on `127.0.0.1` with ephemeral
//! ports and serves them from a private tokio runtime on a background thread, so
//! the API is synchronous and works both from plain `#[test]` functions and from
//! inside another tokio runtime (the binary's `demo` command). Dropping the
//! [`Sandbox`] stops the servers, closes every connection and joins the thread.
//!
//! The fakes follow `shared/contracts/seqera-tokens.openapi.yaml` and
//! `shared/contracts/github-secrets.openapi.json` (status codes, JSON shapes,
//! headers). Where the real services are lenient but a lenient fake would hide a
//! client bug, the fake is stricter and says so in its error message (every such
//! message starts with `sandbox:`):
//!
//! - GitHub: `Accept: application/vnd.github+json`, `X-GitHub-Api-Version:
//!   2022-11-28` and a `User-Agent` starting with `seqera-token-rotate/` are
//!   required on every request; `encrypted_value` and `key_id` are required on
//!   every secret write (the contract leaves them optional for some kinds).
//! - GitHub: an organization secret written with `visibility: selected` and no
//!   `selected_repository_ids` ends up with an empty selection: a client that
//!   wants to keep the current list must read it and send it again.
//!
//! Every answer of both fakes carries a `Date` header (RFC 7231 IMF-fixdate) from
//! the same clock as Seqera's `dateCreated` and GitHub's `updated_at` (a fault may
//! send any other `Date`: clocks are not evidence, and the client must not treat
//! them as such).
//!
//! GitHub Actions variables of a repository (`GET/PATCH …/actions/variables/{name}`,
//! `POST …/actions/variables`) are served too, for the tool's record of which token
//! the targets hold; [`Sandbox::set_variables_access`] takes a token's "Variables"
//! permission away (403 with `x-accepted-github-permissions`).
//!
//! Hostile servers, for tests of what a client does with an answer it cannot trust:
//!
//! - [`FaultAction::PerformThenStatus`] (or [`FaultAction::perform_then`]): the write
//!   is committed, the client sees e.g. a 504 — "may have been performed".
//! - [`FaultAction::EchoAuthorization`]: a proxy echoing the request's
//!   `Authorization` header (the client's own secret) in an error body.
//! - [`FaultAction::Endless`]: a 200 whose body never ends (a declared
//!   `content-length` of gigabytes, or chunked forever), streamed lazily.
//! - [`Sandbox::set_created_token_name`] and [`Sandbox::set_access_key_suffix`]:
//!   token names and values with any text in them; user names are free text
//!   already ([`Sandbox::add_user`]).
//! - [`Sandbox::backdate_secret`]: a secret written long before the run.
//!
//! GitHub's secondary rate limits on writes (80 a minute, 500 an hour) are off unless
//! [`Sandbox::set_write_limits`] sets them; then a write past a limit gets GitHub's
//! secondary-rate-limit 403 with `retry-after`, and [`Sandbox::limited_answers`] counts it.
//!
//! Secret values are decrypted with the fake's own X25519 secret keys (never with
//! anything the client provides), so a test can check what a secret really holds
//! with [`Sandbox::secret`].
//!
//! ```
//! use seqera_sandbox::{FaultAction, FaultRule, Occurrence, PathMatch, Sandbox, SecretScope};
//!
//! let sb = Sandbox::start()?;
//! let user = sb.add_user("alice");
//! let access = sb.create_token(user, "bootstrap"); // the token the tool starts with
//! sb.add_github_token("ghp_writer", true);
//! sb.add_repo("octo", "app");
//! // The second secret write to octo/app is cut after the server committed it.
//! sb.add_fault(FaultRule::github(
//!     "PUT",
//!     PathMatch::Prefix(SecretScope::repo("octo", "app").secrets_path()),
//!     Occurrence::Nth(2),
//!     FaultAction::PerformThenDrop,
//! ));
//! // … run the tool with sb.seqera_url(), sb.github_url(), access.value …
//! assert!(sb.is_live(&access.value));
//! assert!(sb.secret(&SecretScope::repo("octo", "app"), "TOWER_ACCESS_TOKEN").is_none());
//! # Ok::<(), std::io::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod clock;
mod faults;
mod github;
mod gitlab;
mod http;
mod keys;
mod seqera;

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio::sync::oneshot;

pub use faults::{FaultAction, FaultRule, Occurrence, PathMatch};
pub use gitlab::GitlabVariable;

/// Which of the fake APIs a request went to (or a fault rule applies to).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// The fake Seqera Platform API, served under `/api`.
    Seqera,
    /// The fake GitHub REST API, served at the root.
    Github,
    /// The fake GitLab REST API (CI/CD variables), served under `/api/v4`.
    Gitlab,
}

/// A Seqera access token as the fake stores it (test data: `Debug` shows the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqeraToken {
    /// Global id; ids only grow, across all users.
    pub id: u64,
    /// Id of the user the token belongs to.
    pub user_id: u64,
    /// Display name, unique among the user's live tokens.
    pub name: String,
    /// The secret value (`accessKey`), as a client would send it as a bearer token.
    pub value: String,
    /// Creation time, RFC 3339 with milliseconds and `Z`, as Seqera formats it.
    pub date_created: String,
    /// Last time the token authenticated a request, same format; `None` if never.
    pub last_used: Option<String>,
    /// Whether the token was deleted (revoked); a revoked token is rejected with 401.
    pub revoked: bool,
}

/// Where a GitHub secret lives. Each scope has its own key pair.
///
/// Names compare case-insensitively inside the fake, as on GitHub; this type's
/// `Eq` is exact, so use the same spelling in a test that you use elsewhere.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SecretScope {
    /// Actions secret of a repository.
    Repo {
        /// Repository owner (user or organization).
        owner: String,
        /// Repository name.
        repo: String,
    },
    /// Secret of a deployment environment of a repository.
    Environment {
        /// Repository owner.
        owner: String,
        /// Repository name.
        repo: String,
        /// Environment name (may contain spaces and `/`).
        env: String,
    },
    /// Organization Actions secret.
    Org {
        /// Organization login.
        org: String,
    },
    /// Dependabot secret of a repository.
    Dependabot {
        /// Repository owner.
        owner: String,
        /// Repository name.
        repo: String,
    },
    /// Codespaces secret of a repository.
    Codespaces {
        /// Repository owner.
        owner: String,
        /// Repository name.
        repo: String,
    },
    /// Organization Dependabot secret.
    OrgDependabot {
        /// Organization login.
        org: String,
    },
    /// Organization Codespaces secret.
    OrgCodespaces {
        /// Organization login.
        org: String,
    },
}

/// Characters GitHub wants percent-encoded in a path segment (everything but
/// unreserved characters), so a `/` inside an environment name becomes `%2F`.
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl SecretScope {
    /// Shorthand for [`SecretScope::Repo`].
    pub fn repo(owner: &str, repo: &str) -> Self {
        SecretScope::Repo {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
        }
    }

    /// Shorthand for [`SecretScope::Environment`].
    pub fn environment(owner: &str, repo: &str, env: &str) -> Self {
        SecretScope::Environment {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            env: env.to_owned(),
        }
    }

    /// Shorthand for [`SecretScope::Org`].
    pub fn org(org: &str) -> Self {
        SecretScope::Org {
            org: org.to_owned(),
        }
    }

    /// Whether this is one of the organization scopes (which carry a visibility).
    pub fn is_org(&self) -> bool {
        matches!(
            self,
            SecretScope::Org { .. }
                | SecretScope::OrgDependabot { .. }
                | SecretScope::OrgCodespaces { .. }
        )
    }

    /// The collection path of this scope's secrets as GitHub spells it, with each
    /// segment percent-encoded, e.g. `/repos/o/r/environments/prod%2Feu/secrets`.
    /// Handy for [`PathMatch::Prefix`] in fault rules.
    pub fn secrets_path(&self) -> String {
        let e = |s: &str| utf8_percent_encode(s, SEGMENT).to_string();
        match self {
            SecretScope::Repo { owner, repo } => {
                format!("/repos/{}/{}/actions/secrets", e(owner), e(repo))
            }
            SecretScope::Environment { owner, repo, env } => format!(
                "/repos/{}/{}/environments/{}/secrets",
                e(owner),
                e(repo),
                e(env)
            ),
            SecretScope::Org { org } => format!("/orgs/{}/actions/secrets", e(org)),
            SecretScope::Dependabot { owner, repo } => {
                format!("/repos/{}/{}/dependabot/secrets", e(owner), e(repo))
            }
            SecretScope::Codespaces { owner, repo } => {
                format!("/repos/{}/{}/codespaces/secrets", e(owner), e(repo))
            }
            SecretScope::OrgDependabot { org } => format!("/orgs/{}/dependabot/secrets", e(org)),
            SecretScope::OrgCodespaces { org } => format!("/orgs/{}/codespaces/secrets", e(org)),
        }
    }

    /// The same scope with every name lower-cased: the fake's lookup key, since
    /// GitHub owner, repository, organization and environment names are case-insensitive.
    pub(crate) fn normalized(&self) -> SecretScope {
        let l = |s: &String| s.to_lowercase();
        match self {
            SecretScope::Repo { owner, repo } => SecretScope::Repo {
                owner: l(owner),
                repo: l(repo),
            },
            SecretScope::Environment { owner, repo, env } => SecretScope::Environment {
                owner: l(owner),
                repo: l(repo),
                env: l(env),
            },
            SecretScope::Org { org } => SecretScope::Org { org: l(org) },
            SecretScope::Dependabot { owner, repo } => SecretScope::Dependabot {
                owner: l(owner),
                repo: l(repo),
            },
            SecretScope::Codespaces { owner, repo } => SecretScope::Codespaces {
                owner: l(owner),
                repo: l(repo),
            },
            SecretScope::OrgDependabot { org } => SecretScope::OrgDependabot { org: l(org) },
            SecretScope::OrgCodespaces { org } => SecretScope::OrgCodespaces { org: l(org) },
        }
    }
}

/// A GitHub secret as the fake stores it, decrypted with the fake's own secret key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSecret {
    /// The decrypted value.
    pub plaintext: String,
    /// The `key_id` the value was encrypted for.
    pub key_id: String,
    /// How many API writes (`PUT`) stored this secret; seeding with
    /// [`Sandbox::put_secret_plain`] does not count.
    pub writes: u32,
    /// Organization secrets: `all`, `private` or `selected`; `None` for repository scopes.
    pub visibility: Option<String>,
    /// Organization secrets with `selected` visibility: the repository ids.
    pub selected_repository_ids: Vec<u64>,
    /// Creation time, `YYYY-MM-DDTHH:MM:SSZ` as GitHub formats it.
    pub created_at: String,
    /// Last write time, same format.
    pub updated_at: String,
}

/// A public key as `GET …/secrets/public-key` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GithubPublicKey {
    /// Identifier to send back as `key_id`.
    pub key_id: String,
    /// Standard base64 of the 32-byte X25519 public key.
    pub key: String,
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// Which fake received it.
    pub api: Api,
    /// HTTP method, e.g. `PUT`.
    pub method: String,
    /// Path and query exactly as received (percent-encoded; Seqera paths include `/api`).
    pub path: String,
    /// Status the fake answered, or `None` if it closed the connection without
    /// answering (a `Drop`/`PerformThenDrop` fault) or the request is still in flight.
    pub status: Option<u16>,
    /// The raw `Authorization` header, so a test can see which token was used.
    pub authorization: Option<String>,
    /// All request headers, names lower-case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The request body (lossy UTF-8).
    pub body: String,
    /// When the request was received (after its body was read), for checking backoff.
    pub received_at: Instant,
}

impl RequestRecord {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// State shared between the [`Sandbox`] handle and the server tasks. Each lock is
/// held only for a synchronous step, never across an `.await`.
pub(crate) struct Shared {
    pub(crate) seqera: Mutex<seqera::State>,
    pub(crate) github: Mutex<github::State>,
    pub(crate) gitlab: Mutex<gitlab::State>,
    /// Request log; each entry carries a sequence number so a late status update
    /// finds its record even after [`Sandbox::clear_requests`].
    pub(crate) log: Mutex<(u64, Vec<(u64, RequestRecord)>)>,
    pub(crate) faults: Mutex<faults::Faults>,
    pub(crate) latency: Mutex<Duration>,
    /// Bodies of `Endless` faults still being streamed.
    pub(crate) endless_bodies: Arc<AtomicUsize>,
}

/// Locks a mutex, ignoring poisoning: a panicking test must not take the fake down
/// with it for the other threads, and no invariant spans a panic here.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running fakes. See the crate documentation.
pub struct Sandbox {
    shared: Arc<Shared>,
    seqera_addr: SocketAddr,
    github_addr: SocketAddr,
    gitlab_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sandbox {
    /// Binds both servers on `127.0.0.1` (ephemeral ports) and starts serving them
    /// from a background thread that owns its own tokio runtime.
    ///
    /// Starts empty: add users, tokens, repositories and GitHub tokens before use.
    pub fn start() -> io::Result<Sandbox> {
        // Bind here, synchronously, so the ports are known (and listening) on return.
        let seqera_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let github_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let gitlab_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        seqera_listener.set_nonblocking(true)?;
        github_listener.set_nonblocking(true)?;
        gitlab_listener.set_nonblocking(true)?;
        let seqera_addr = seqera_listener.local_addr()?;
        let github_addr = github_listener.local_addr()?;
        let gitlab_addr = gitlab_listener.local_addr()?;

        let shared = Arc::new(Shared {
            seqera: Mutex::new(seqera::State::new()),
            github: Mutex::new(github::State::new(format!("http://{github_addr}"))),
            gitlab: Mutex::new(gitlab::State::new()),
            log: Mutex::new((0, Vec::new())),
            faults: Mutex::new(faults::Faults::default()),
            latency: Mutex::new(Duration::ZERO),
            endless_bodies: Arc::new(AtomicUsize::new(0)),
        });

        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("seqera-sandbox".to_owned())
            .spawn(move || {
                // A current-thread runtime: one thread to join on drop, and no worker
                // threads that could outlive the sandbox.
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let seqera = tokio::net::TcpListener::from_std(seqera_listener);
                    let github = tokio::net::TcpListener::from_std(github_listener);
                    let gitlab = tokio::net::TcpListener::from_std(gitlab_listener);
                    let (seqera, github, gitlab) = match (seqera, github, gitlab) {
                        (Ok(s), Ok(g), Ok(l)) => (s, g, l),
                        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        () = http::serve(seqera, Api::Seqera, Arc::clone(&for_thread)) => {}
                        () = http::serve(github, Api::Github, Arc::clone(&for_thread)) => {}
                        () = http::serve(gitlab, Api::Gitlab, for_thread) => {}
                        _ = stop_rx => {}
                    }
                });
                // Dropping the runtime cancels every connection and request task,
                // which closes their sockets; the listeners are already gone.
                drop(rt);
            })?;

        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Sandbox {
                shared,
                seqera_addr,
                github_addr,
                gitlab_addr,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other(
                    "sandbox runtime thread exited during start",
                ))
            }
        }
    }

    /// Base URL of the fake Seqera API, e.g. `http://127.0.0.1:PORT/api` (served
    /// under `/api` like Seqera Enterprise; anything outside `/api` is 404).
    pub fn seqera_url(&self) -> String {
        format!("http://{}/api", self.seqera_addr)
    }

    /// Base URL of the fake GitHub API, e.g. `http://127.0.0.1:PORT` (served at the
    /// root like `api.github.com`).
    pub fn github_url(&self) -> String {
        format!("http://{}", self.github_addr)
    }

    /// Base URL of the fake GitLab API, e.g. `http://127.0.0.1:PORT/api/v4` (what
    /// `CI_API_V4_URL` holds; anything outside `/api/v4` is 404).
    pub fn gitlab_url(&self) -> String {
        format!("http://{}/api/v4", self.gitlab_addr)
    }

    /// Socket address of the fake GitLab server.
    pub fn gitlab_addr(&self) -> SocketAddr {
        self.gitlab_addr
    }

    /// Socket address of the fake Seqera server.
    pub fn seqera_addr(&self) -> SocketAddr {
        self.seqera_addr
    }

    /// Socket address of the fake GitHub server.
    pub fn github_addr(&self) -> SocketAddr {
        self.github_addr
    }

    /// Stops the servers and joins their thread (dropping the sandbox does the same).
    pub fn shutdown(self) {
        drop(self);
    }

    // ----- Seqera state -----

    /// Adds a Seqera user and returns its id (ids start at 1001).
    pub fn add_user(&self, user_name: &str) -> u64 {
        lock(&self.shared.seqera).add_user(user_name)
    }

    /// Mints a token for a user directly (e.g. the initial access token, or a
    /// pre-existing managed token), from the same id sequence as API creates.
    ///
    /// # Panics
    /// If the user does not exist, the name is not 1–50 characters, or the user
    /// already has a live token of that name (states the real service cannot reach).
    pub fn create_token(&self, user_id: u64, name: &str) -> SeqeraToken {
        let mut s = lock(&self.shared.seqera);
        match s.mint(user_id, name) {
            Ok(id) => s.export(id).expect("token just minted"),
            Err(e) => panic!("Sandbox::create_token({user_id}, {name:?}): {e}"),
        }
    }

    /// Revokes a token directly, as if deleted in the web UI. Returns `false` if
    /// there is no such live token.
    pub fn revoke_token(&self, token_id: u64) -> bool {
        lock(&self.shared.seqera).revoke(token_id)
    }

    /// Moves a token's creation time into the past (for `min-age` tests).
    ///
    /// # Panics
    /// If there is no token with that id.
    pub fn backdate_token(&self, token_id: u64, by: Duration) {
        if !lock(&self.shared.seqera).backdate(token_id, by) {
            panic!("Sandbox::backdate_token: no token {token_id}");
        }
    }

    /// A hostile Seqera: the `token.name` reported in the answers of later `POST
    /// /tokens` is `name` (any text, e.g. with line breaks or workflow commands),
    /// while the stored token keeps the name that was asked for. `None` restores
    /// honest answers.
    pub fn set_created_token_name(&self, name: Option<&str>) {
        lock(&self.shared.seqera).set_reported_name(name.map(str::to_owned));
    }

    /// A hostile Seqera: tokens created by later `POST /tokens` get values
    /// (`accessKey`) ending with `suffix`, and are stored with it, so a client that
    /// sends the value verbatim as a bearer token is authenticated (the fake trims
    /// the header, so a suffix ending in whitespace cannot be sent back).
    /// [`Sandbox::create_token`] is not affected. `None` restores normal values.
    pub fn set_access_key_suffix(&self, suffix: Option<&str>) {
        lock(&self.shared.seqera).set_value_suffix(suffix.map(str::to_owned));
    }

    /// Lets time pass for both fakes without waiting: every moment they stored (token
    /// creation and last use, secret creation and update, user creation) moves `by` into
    /// the past, so the tool under test, which reads the real clock, sees everything `by`
    /// older. Formats are unchanged.
    pub fn advance_clock(&self, by: Duration) {
        lock(&self.shared.seqera).shift_past(by);
        lock(&self.shared.github).shift_past(by);
    }

    /// All tokens ever created, revoked ones included, ordered by id.
    pub fn tokens(&self) -> Vec<SeqeraToken> {
        lock(&self.shared.seqera).all()
    }

    /// The user's tokens that are still accepted, ordered by id.
    pub fn live_tokens(&self, user_id: u64) -> Vec<SeqeraToken> {
        self.tokens()
            .into_iter()
            .filter(|t| t.user_id == user_id && !t.revoked)
            .collect()
    }

    /// Whether the fake would accept this token value right now.
    pub fn is_live(&self, value: &str) -> bool {
        self.token_by_value(value).is_some_and(|t| !t.revoked)
    }

    /// The token with this value, live or revoked.
    pub fn token_by_value(&self, value: &str) -> Option<SeqeraToken> {
        lock(&self.shared.seqera).by_value(value)
    }

    /// Whether `DELETE /tokens/delete-all` was ever called (the tool must never call it).
    pub fn delete_all_called(&self) -> bool {
        lock(&self.shared.seqera).delete_all_called()
    }

    // ----- GitHub state -----

    /// Registers a bearer token the fake GitHub accepts. With
    /// `can_write_secrets == false` it behaves like a workflow's `GITHUB_TOKEN`:
    /// reads succeed, writes get 403 "Resource not accessible by integration" with
    /// an `x-accepted-github-permissions` header.
    pub fn add_github_token(&self, value: &str, can_write_secrets: bool) {
        lock(&self.shared.github).add_token(value, can_write_secrets);
    }

    /// Takes away (or gives back) a GitHub token's "Variables: Read and write"
    /// permission: without it, variable requests get 403 naming the permission.
    pub fn set_variables_access(&self, token: &str, allowed: bool) {
        lock(&self.shared.github).set_variables_access(token, allowed);
    }

    /// The value of a repository's Actions variable, if it exists.
    pub fn variable(&self, owner: &str, repo: &str, name: &str) -> Option<String> {
        lock(&self.shared.github).variable(owner, repo, name)
    }

    /// Sets a repository's Actions variable as if someone else had written it.
    pub fn set_variable(&self, owner: &str, repo: &str, name: &str, value: &str) {
        lock(&self.shared.github).set_variable(owner, repo, name, value);
    }

    /// Adds a repository (with its own Actions, Dependabot and Codespaces key pairs)
    /// and returns its id; adding an existing one returns its id.
    pub fn add_repo(&self, owner: &str, repo: &str) -> u64 {
        lock(&self.shared.github).add_repo(owner, repo)
    }

    /// The id of a repository, if it exists (names are case-insensitive).
    pub fn repo_id(&self, owner: &str, repo: &str) -> Option<u64> {
        lock(&self.shared.github).repo_id(owner, repo)
    }

    /// Adds a deployment environment (with its own key pair) to a repository.
    ///
    /// # Panics
    /// If the repository does not exist.
    pub fn add_environment(&self, owner: &str, repo: &str, env: &str) {
        if !lock(&self.shared.github).add_environment(owner, repo, env) {
            panic!("Sandbox::add_environment: no repository {owner}/{repo}");
        }
    }

    /// Adds an organization with its own Actions, Dependabot and Codespaces key
    /// pairs. Repositories whose owner is `org` (case-insensitive) belong to it.
    pub fn add_org(&self, org: &str) {
        lock(&self.shared.github).add_org(org);
    }

    /// The scope's current public key, as `GET …/public-key` would return it.
    pub fn public_key(&self, scope: &SecretScope) -> Option<GithubPublicKey> {
        lock(&self.shared.github).public_key(scope)
    }

    /// Replaces the scope's key pair (new `key_id`); a later `PUT` with the old
    /// `key_id` gets 422. Stored secrets keep their values.
    ///
    /// # Panics
    /// If the scope does not exist.
    pub fn rotate_public_key(&self, scope: &SecretScope) {
        if !lock(&self.shared.github).rotate_key(scope) {
            panic!("Sandbox::rotate_public_key: unknown scope {scope:?}");
        }
    }

    /// A stored secret (name case-insensitive), decrypted with the fake's own key.
    pub fn secret(&self, scope: &SecretScope, name: &str) -> Option<StoredSecret> {
        lock(&self.shared.github).secret(scope, name)
    }

    /// All secrets of a scope, by (upper-case) name.
    pub fn secrets(&self, scope: &SecretScope) -> BTreeMap<String, StoredSecret> {
        lock(&self.shared.github).secrets(scope)
    }

    /// Seeds (or overwrites) a secret as if it had been written before the test.
    /// `visibility` and `selected_repository_ids` matter only for organization scopes.
    ///
    /// # Panics
    /// If the scope does not exist.
    pub fn put_secret_plain(
        &self,
        scope: &SecretScope,
        name: &str,
        value: &str,
        visibility: Option<&str>,
        selected_repository_ids: &[u64],
    ) {
        let ok = lock(&self.shared.github).put_plain(
            scope,
            name,
            value,
            visibility,
            selected_repository_ids,
        );
        if !ok {
            panic!("Sandbox::put_secret_plain: unknown scope {scope:?}");
        }
    }

    /// Moves a stored secret's `created_at` and `updated_at` back by `by`, as if it
    /// had been written that long before the test.
    ///
    /// # Panics
    /// If there is no such secret.
    pub fn backdate_secret(&self, scope: &SecretScope, name: &str, by: Duration) {
        if !lock(&self.shared.github).backdate_secret(scope, name, by) {
            panic!("Sandbox::backdate_secret: no secret {name} in {scope:?}");
        }
    }

    // ----- observation and faults -----

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log)
            .1
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).1.clear();
    }

    /// Adds a fault rule. Rules are checked in the order added; each counts the
    /// requests it matches, and the first rule that fires decides.
    ///
    /// # Panics
    /// If a [`FaultAction::Status`] has an invalid status code or header (or another
    /// action an invalid status code or content type).
    pub fn add_fault(&self, rule: FaultRule) {
        rule.action.validate();
        lock(&self.shared.faults).add(rule);
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Makes the fake GitHub enforce secondary rate limits on content-creating requests
    /// (`POST`, `PATCH`, `PUT`, `DELETE`): each `(limit, window)` allows at most `limit` of
    /// them in any sliding `window` (GitHub documents 80 a minute and 500 an hour). One past
    /// a limit is answered with GitHub's secondary-rate-limit 403 and a `retry-after`, and is
    /// not performed; [`Sandbox::limited_answers`] counts them. An empty list lifts the limits.
    pub fn set_write_limits(&self, limits: &[(usize, Duration)]) {
        lock(&self.shared.github).set_write_limits(limits);
    }

    /// How many writes the limits of [`Sandbox::set_write_limits`] refused so far.
    pub fn limited_answers(&self) -> u64 {
        lock(&self.shared.github).limited_answers()
    }

    /// How many requests the sandbox received since it started, both APIs (never reset,
    /// unlike [`Sandbox::requests`]): the sequence number of the next one is this plus 1
    /// (see [`Occurrence::Overall`]).
    pub fn requests_received(&self) -> u64 {
        lock(&self.shared.log).0
    }

    /// How many requests reached the point where a [`FaultAction::Hold`] or
    /// [`FaultAction::PerformThenHold`] keeps them unanswered.
    pub fn held_requests(&self) -> u64 {
        lock(&self.shared.faults).held
    }

    /// How many [`FaultAction::CommitLater`] operations are still to be performed.
    pub fn late_commits_pending(&self) -> u64 {
        lock(&self.shared.faults).late_pending
    }

    /// Latency added before every response of both APIs (for benchmarks).
    pub fn set_latency(&self, d: Duration) {
        *lock(&self.shared.latency) = d;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// The handle is shared freely between tasks of the binary's async `demo`.
const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Sandbox>();
};

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("seqera_url", &self.seqera_url())
            .field("github_url", &self.github_url())
            .field("gitlab_url", &self.gitlab_url())
            .finish_non_exhaustive()
    }
}
