//! Every store in one run (SPEC §9): a GitHub secret, AWS Secrets Manager and Parameter
//! Store (moto's real server), a Vault KV v2 field (OpenBao's real server) and GitLab
//! project and group variables (the sandbox's fake), in one `targets` list. One protocol for
//! all of them: the dry run names each, every target ends holding the same new live token
//! (decrypted, or its `tid` decoded), the record counts them all, `status` reads the token
//! id of every readable store, the next rotation moves them all on and only then revokes the
//! first token, a preflight refusal by any one store changes nothing anywhere, and no
//! store's credential appears in any output.

mod common;

use common::bao::{self, Bao, ROOT};
use common::moto::{Moto, AWS_SECRET_KEY, AWS_SESSION_TOKEN};
use common::*;
use serde_json::{json, Value};

const GL: &str = "glpat-every-store-test-token-0123456789";
const TARGETS: &str = "repo:octo/app\n\
                       aws-sm:eu-west-1/seqera/launcher\n\
                       aws-ssm:us-east-1//lab/seqera\n\
                       vault:secret/seqera/ci\n\
                       gitlab:grp/app\n\
                       gitlab-group:grp=SEQERA_TOKEN";
const LABELS: [&str; 6] = [
    "repo:octo/app",
    "aws-sm:eu-west-1/seqera/launcher",
    "aws-ssm:us-east-1//lab/seqera",
    "vault:secret/seqera/ci",
    "gitlab:grp/app",
    "gitlab-group:grp=SEQERA_TOKEN",
];

struct Stores {
    w: World,
    moto: Moto,
    bao: Bao,
    vault_token: String,
}

impl Stores {
    /// Every server, and every store holding something else first (so the run updates,
    /// and other keys and fields must be kept).
    fn start() -> Option<Stores> {
        let moto = Moto::start()?;
        let bao = Bao::start()?;
        let w = World::new();
        w.sb.add_gitlab_token(GL, true);
        w.sb.add_gitlab_project("grp/app");
        w.sb.add_gitlab_group("grp");
        bao.put(
            None,
            "secret",
            "seqera/ci",
            json!({"TOWER_ACCESS_TOKEN": "old-value", "other": "keep-me"}),
        );
        let vault_token =
            bao.token_with_policy(None, "rotate", &bao::least_policy("secret", "seqera/ci"));
        moto.sm(
            "eu-west-1",
            "CreateSecret",
            json!({"Name": "seqera/launcher", "SecretString": "old-value"}),
        );
        Some(Stores {
            w,
            moto,
            bao,
            vault_token,
        })
    }

    fn env(&self, gitlab_token: &str) -> Vec<(String, String)> {
        let mut e: Vec<(String, String)> = self
            .moto
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for (k, v) in [
            ("INPUT_TARGETS", TARGETS.to_string()),
            ("INPUT_VAULT-ADDR", self.bao.url()),
            ("INPUT_VAULT-TOKEN", self.vault_token.clone()),
            ("INPUT_GITLAB-TOKEN", gitlab_token.to_string()),
            ("INPUT_GITLAB-API-URL", self.w.sb.gitlab_url()),
        ] {
            e.push((k.to_string(), v));
        }
        e
    }

    fn run(&self, gitlab_token: &str, more: &[(&str, &str)], args: &[&str]) -> Run {
        let env = self.env(gitlab_token);
        let mut e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        e.extend_from_slice(more);
        let run = self.w.run(&e, args);
        self.no_leak(&run);
        run
    }

    fn no_leak(&self, run: &Run) {
        let creds = [
            AWS_SECRET_KEY,
            AWS_SESSION_TOKEN,
            GL,
            ROOT,
            self.vault_token.as_str(),
        ];
        self.w.assert_no_leak_of(run, &creds);
        let owned: Vec<String> = creds.iter().map(|c| c.to_string()).collect();
        assert_no_fragment(run, &owned, "store credentials");
    }

    /// The token id each target holds, in `LABELS` order; each must be a live token.
    fn held(&self) -> Vec<u64> {
        let sb = &self.w.sb;
        let values = [
            sb.secret(&World::repo_scope(), SECRET).map(|s| s.plaintext),
            self.moto
                .secret_at("eu-west-1", "seqera/launcher", "AWSCURRENT"),
            self.moto.parameter("us-east-1", "/lab/seqera"),
            self.bao
                .fields(None, "secret", "seqera/ci")
                .and_then(|f| f["TOWER_ACCESS_TOKEN"].as_str().map(str::to_string)),
            sb.gitlab_variable("grp/app", SECRET).map(|v| v.value),
            sb.gitlab_variable("grp", "SEQERA_TOKEN").map(|v| v.value),
        ];
        LABELS
            .iter()
            .zip(values)
            .map(|(label, v)| {
                let v = v.unwrap_or_else(|| panic!("{label} holds nothing"));
                assert!(sb.is_live(&v), "{label} holds a token that is not live");
                let id = tid_of(&v);
                assert_eq!(sb.token_by_value(&v).map(|t| t.id), Some(id), "{label}");
                id
            })
            .collect()
    }
}

#[test]
fn every_store_in_one_run_holds_the_new_token_and_the_next_rotation_moves_them_all_on() {
    let Some(s) = Stores::start() else { return };
    let w = &s.w;

    let dry = s.run(GL, &[], &["--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:#?}");
    for what in [
        "AWS Secrets Manager secret `seqera/launcher`",
        "SSM SecureString parameter `/lab/seqera`",
        "Vault KV v2 secret `secret/seqera/ci`",
        "GitLab project `grp/app`",
        "GitLab group `grp`",
    ] {
        assert!(dry.all().contains(what), "the plan names {what}: {dry:#?}");
    }
    assert_eq!(w.sb.tokens().len(), 1, "a dry run creates no token");
    assert_eq!(
        s.moto
            .secret_at("eu-west-1", "seqera/launcher", "AWSCURRENT")
            .as_deref(),
        Some("old-value"),
        "a dry run writes nothing"
    );

    let first = s.run(GL, &[], &[]);
    assert_eq!(first.code, 0, "{first:#?}");
    let id1: u64 = first.out("token-id").parse().unwrap();
    assert_eq!(s.held(), vec![id1; 6], "every target holds the new token");
    assert_eq!(first.out("updated-targets"), LABELS.join(","));
    // Other fields and keys are kept.
    assert_eq!(
        s.bao.fields(None, "secret", "seqera/ci").unwrap()["other"],
        "keep-me"
    );
    // The record names the token and counts every target, of every store.
    let record: Value = serde_json::from_str(
        &w.sb
            .variable(OWNER, REPO, RECORD_VARIABLE)
            .expect("the record is written"),
    )
    .unwrap();
    assert_eq!(
        (record["tokenId"].as_u64(), record["count"].as_u64()),
        (Some(id1), Some(6))
    );

    // status: healthy, and the token id of every store that can be read.
    let status = s.run(GL, &[], &["status", "--json"]);
    assert_eq!(status.code, 0, "{status:#?}");
    let doc: Value = status
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("status --json prints a JSON line");
    let read: Vec<(String, Option<u64>)> = doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["label"].as_str().unwrap().to_string(),
                t["tokenId"].as_u64(),
            )
        })
        .collect();
    for label in &LABELS[1..4] {
        assert!(
            read.contains(&(label.to_string(), Some(id1))),
            "status reads {label}'s token id: {read:?}"
        );
    }
    assert_eq!(doc["record"]["tokenId"].as_u64(), Some(id1));

    let second = s.run(GL, &[("INPUT_FORCE", "true")], &[]);
    assert_eq!(second.code, 0, "{second:#?}");
    let id2: u64 = second.out("token-id").parse().unwrap();
    assert!(id2 > id1);
    assert_eq!(s.held(), vec![id2; 6], "every target moved on");
    assert_eq!(second.out("revoked-token-ids"), id1.to_string());
    assert_eq!(
        w.live_managed_ids(),
        vec![id2],
        "the first token is revoked last"
    );
    // AWS keeps the previous version under AWSPREVIOUS (now a revoked token).
    let previous = s
        .moto
        .secret_at("eu-west-1", "seqera/launcher", "AWSPREVIOUS")
        .unwrap();
    assert_eq!(tid_of(&previous), id1);
}

#[test]
fn one_store_refusing_in_preflight_changes_nothing_in_any_store() {
    let Some(s) = Stores::start() else { return };
    let w = &s.w;
    let first = s.run(GL, &[], &[]);
    assert_eq!(first.code, 0, "{first:#?}");
    let id1: u64 = first.out("token-id").parse().unwrap();
    let requests_before = w.sb.requests().len();

    // A GitLab token that may read but not write: preflight fails, nothing is created,
    // written or revoked, in any store.
    const READ_ONLY: &str = "glpat-read-only-token-for-the-fake-0123";
    w.sb.add_gitlab_token(READ_ONLY, false);
    let refused = s.run(READ_ONLY, &[("INPUT_FORCE", "true")], &[]);
    assert_ne!(refused.code, 0, "{refused:#?}");
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(
        refused
            .all()
            .contains("the GitLab token has the scopes [read_api]")
            && refused.all().contains("needs the `api` scope"),
        "preflight names the scope it needs: {refused:#?}"
    );
    assert_eq!(
        s.held(),
        vec![id1; 6],
        "every target still holds the first token"
    );
    assert_eq!(w.live_managed_ids(), vec![id1], "no token was created");
    let writes: Vec<String> = w.sb.requests()[requests_before..]
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "nothing is written: {writes:?}");
    s.no_leak(&refused);
}
