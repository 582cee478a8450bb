//! The `demo` command (SPEC §6): a complete rotation, twice, against the built-in sandbox
//! (fake Seqera Platform and fake GitHub on loopback, started in-process). Prints what
//! happened and checks that the stored secret decrypts to a live token. No network, no
//! credentials. The only library code that depends on the sandbox.

use std::collections::HashMap;

use seqera_sandbox::{Sandbox, SecretScope};

use crate::app::{self, EXIT_FAILED, EXIT_OK};
use crate::report::Report;
use crate::settings::{command, Raw};

const OWNER: &str = "octo-org";
const REPO: &str = "pipelines";
const SECRET: &str = "TOWER_ACCESS_TOKEN";
const TOKEN_NAME: &str = "gha-rotation";

/// Runs the demo; exit 0 when both rotations worked and the secret holds a live token.
pub async fn run(out: &Report) -> u8 {
    let sandbox = match Sandbox::start() {
        Ok(s) => s,
        Err(e) => {
            out.error(&format!("cannot start the local sandbox: {e}"));
            return EXIT_FAILED;
        }
    };
    let user = sandbox.add_user("demo-user");
    let access = sandbox.create_token(user, "demo-personal-token");
    let github_token = "ghs_demo_installation_token";
    sandbox.add_github_token(github_token, true);
    sandbox.add_repo(OWNER, REPO);
    out.step(&format!(
        "Sandbox: fake Seqera at {} and fake GitHub at {}; user `demo-user` with personal token `{}` (id {}); repository {OWNER}/{REPO}",
        sandbox.seqera_url(),
        sandbox.github_url(),
        access.name,
        access.id
    ));
    // The demo runs the real command path: the same settings parser, protocol and output layer.
    let env: HashMap<String, String> = [
        ("INPUT_SEQERA-ACCESS-TOKEN", access.value.clone()),
        ("INPUT_SEQERA-API-URL", sandbox.seqera_url()),
        ("INPUT_GITHUB-TOKEN", github_token.to_string()),
        ("INPUT_GITHUB-API-URL", sandbox.github_url()),
        ("INPUT_REPOSITORY", format!("{OWNER}/{REPO}")),
        ("INPUT_TOKEN-NAME", TOKEN_NAME.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let lookup = |k: &str| env.get(k).cloned();
    let matches = command().get_matches_from(["seqera-token-rotate", "rotate"]);
    let scope = SecretScope::Repo {
        owner: OWNER.into(),
        repo: REPO.into(),
    };
    let mut previous: Option<u64> = None;
    for round in 1..=2 {
        out.step("");
        out.step(&format!("=== Rotation {round} of 2 ==="));
        let local = out.detached();
        let code = app::run_rotate(&Raw::gather(&matches, &lookup), &lookup, &local).await;
        if code != EXIT_OK {
            out.error(&format!("rotation {round} failed (exit {code})"));
            return EXIT_FAILED;
        }
        let Some(stored) = sandbox.secret(&scope, SECRET) else {
            out.error("the secret was not written");
            return EXIT_FAILED;
        };
        let Some(token) = sandbox.token_by_value(&stored.plaintext) else {
            out.error("the secret does not decrypt to a Seqera token");
            return EXIT_FAILED;
        };
        if !sandbox.is_live(&stored.plaintext) {
            out.error("the token in the secret is not live");
            return EXIT_FAILED;
        }
        out.step(&format!(
            "Check: secret {SECRET} of {OWNER}/{REPO} decrypts (with the fake GitHub's own key) to token `{}` (id {}), which is live",
            token.name, token.id
        ));
        if let Some(prev) = previous {
            let old_live = sandbox.tokens().iter().any(|t| t.id == prev && !t.revoked);
            if old_live {
                out.error(&format!("the previous token (id {prev}) is still live"));
                return EXIT_FAILED;
            }
            out.step(&format!("Check: the previous token (id {prev}) is revoked"));
        }
        previous = Some(token.id);
    }
    let live: Vec<String> = sandbox
        .live_tokens(user)
        .iter()
        .map(|t| format!("`{}` (id {})", t.name, t.id))
        .collect();
    out.step("");
    out.step(&format!(
        "Live tokens of demo-user now: {}",
        live.join(", ")
    ));
    out.step(&format!(
        "Demo complete: {} requests served by the sandbox, no token value printed.",
        sandbox.requests().len()
    ));
    EXIT_OK
}
