//! The AWS stores (SPEC §9) on the real binary against moto's real server: AWS Secrets
//! Manager (`aws-sm:`) and Parameter Store (`aws-ssm:`), next to the sandbox's Seqera and
//! GitHub. Each test checks what the stores hold afterwards: the token id inside the value
//! moto returns, and that it is a live token.

mod common;

use common::moto::{FaultyGateway, Moto, AWS_SECRET_KEY, AWS_SESSION_TOKEN};
use common::*;
use serde_json::json;

const EU: &str = "eu-west-1";
const US: &str = "us-east-1";

/// The value is a live Seqera token: its id, decoded from the value.
fn live_tid(w: &World, value: &str) -> u64 {
    let id = tid_of(value);
    assert!(w.sb.is_live(value), "token {id} in the store is not live");
    assert_eq!(w.sb.token_by_value(value).unwrap().id, id);
    id
}

fn env<'a>(moto: &'a [(&'static str, String)], targets: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut e: Vec<(&str, &str)> = moto.iter().map(|(k, v)| (*k, v.as_str())).collect();
    e.push(("INPUT_TARGETS", targets));
    e
}

fn no_aws_leak(w: &World, run: &Run) {
    w.assert_no_leak_of(run, &[AWS_SECRET_KEY, AWS_SESSION_TOKEN]);
    assert_no_fragment(
        run,
        &[AWS_SECRET_KEY.to_string(), AWS_SESSION_TOKEN.to_string()],
        "AWS credentials",
    );
}

#[test]
fn aws_sm_rotation_creates_then_updates_the_secret_and_the_old_version_keeps_awsprevious() {
    let Some(moto) = Moto::start() else { return };
    let w = World::new();
    let menv = moto.env();
    let e = env(&menv, "aws-sm:eu-west-1/seqera/launcher");

    // Missing: CreateSecret.
    let first = w.run(&e, &[]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let v1 = moto.secret_at(EU, "seqera/launcher", "AWSCURRENT").unwrap();
    let t1 = live_tid(&w, &v1);
    assert_eq!(first.out("token-id"), t1.to_string());
    assert_eq!(
        first.out("updated-targets"),
        "aws-sm:eu-west-1/seqera/launcher"
    );
    // The line's region wins over AWS_REGION: nothing in ap-south-1.
    assert!(moto
        .secret_at("ap-south-1", "seqera/launcher", "AWSCURRENT")
        .is_none());

    // Existing: PutSecretValue; the new version is AWSCURRENT, the old one AWSPREVIOUS.
    let second = w.run(&e, &[]);
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    let v2 = moto.secret_at(EU, "seqera/launcher", "AWSCURRENT").unwrap();
    let t2 = live_tid(&w, &v2);
    assert!(t2 > t1);
    let previous = moto
        .secret_at(EU, "seqera/launcher", "AWSPREVIOUS")
        .unwrap();
    assert_eq!(tid_of(&previous), t1);
    assert_eq!(
        w.live_managed_ids(),
        vec![t2],
        "the superseded token is revoked"
    );
    no_aws_leak(&w, &first);
    no_aws_leak(&w, &second);
}

#[test]
fn aws_sm_key_sets_one_key_of_the_json_object_and_keeps_the_others() {
    let Some(moto) = Moto::start() else { return };
    let w = World::new();
    moto.sm(
        EU,
        "CreateSecret",
        json!({"Name": "lab/config", "SecretString":
            json!({"region": "eu-west-1", "SEQERA_TOKEN": "old", "n": 3}).to_string()}),
    );
    let menv = moto.env();
    let run = w.run(&env(&menv, "aws-sm:eu-west-1/lab/config=SEQERA_TOKEN"), &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let value: serde_json::Value =
        serde_json::from_str(&moto.secret_at(EU, "lab/config", "AWSCURRENT").unwrap()).unwrap();
    assert_eq!(value["region"], "eu-west-1");
    assert_eq!(value["n"], 3);
    let t = live_tid(&w, value["SEQERA_TOKEN"].as_str().unwrap());
    assert_eq!(run.out("token-id"), t.to_string());
    assert_eq!(
        run.out("updated-targets"),
        "aws-sm:eu-west-1/lab/config=SEQERA_TOKEN"
    );
    no_aws_leak(&w, &run);
}

#[test]
fn aws_sm_key_on_a_value_that_is_not_a_json_object_is_refused_in_preflight() {
    let Some(moto) = Moto::start() else { return };
    let w = World::new();
    moto.sm(
        EU,
        "CreateSecret",
        json!({"Name": "plain", "SecretString": "not json"}),
    );
    let menv = moto.env();
    let run = w.run(
        &env(&menv, "repo:octo/app\naws-sm:eu-west-1/plain=TOKEN"),
        &[],
    );
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("not a JSON object"), "{}", run.stdout);
    assert_eq!(
        moto.secret_at(EU, "plain", "AWSCURRENT").as_deref(),
        Some("not json")
    );
    assert!(w.secret_value(&World::repo_scope(), SECRET).is_none());
    assert!(w.live_managed().is_empty(), "no token was created");
    no_aws_leak(&w, &run);
}

#[test]
fn aws_ssm_rotation_keeps_the_parameters_kms_key_and_holds_the_new_token() {
    let Some(moto) = Moto::start() else { return };
    let w = World::new();
    let key = moto.call(EU, "kms", "TrentService.CreateKey", json!({})).1["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    moto.ssm(
        EU,
        "PutParameter",
        json!({"Name": "/team/seqera", "Value": "old", "Type": "SecureString", "KeyId": key}),
    );
    let menv = moto.env();
    // A new parameter too: alias/aws/ssm.
    let run = w.run(
        &env(
            &menv,
            "aws-ssm:eu-west-1//team/seqera\naws-ssm:us-east-1/fresh",
        ),
        &[],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let t = live_tid(&w, &moto.parameter(EU, "/team/seqera").unwrap());
    assert_eq!(run.out("token-id"), t.to_string());
    assert_eq!(tid_of(&moto.parameter(US, "fresh").unwrap()), t);
    let described = |region: &str, name: &str| {
        moto.ssm(
            region,
            "DescribeParameters",
            json!({"ParameterFilters": [{"Key": "Name", "Option": "Equals", "Values": [name]}]}),
        )["Parameters"][0]
            .clone()
    };
    let kept = described(EU, "/team/seqera");
    assert_eq!(kept["Type"], "SecureString");
    assert_eq!(
        kept["KeyId"],
        key.as_str(),
        "the parameter keeps its KMS key"
    );
    let fresh = described(US, "fresh");
    assert_eq!(fresh["Type"], "SecureString");
    assert_eq!(fresh["KeyId"], "alias/aws/ssm");
    no_aws_leak(&w, &run);
}

#[test]
fn aws_ssm_parameter_that_is_not_a_secure_string_is_refused_in_preflight() {
    let Some(moto) = Moto::start() else { return };
    let w = World::new();
    moto.ssm(
        EU,
        "PutParameter",
        json!({"Name": "clear", "Value": "old", "Type": "String"}),
    );
    let menv = moto.env();
    let run = w.run(&env(&menv, "repo:octo/app\naws-ssm:eu-west-1/clear"), &[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("SecureString"), "{}", run.stdout);
    assert_eq!(moto.parameter(EU, "clear").as_deref(), Some("old"));
    assert!(w.secret_value(&World::repo_scope(), SECRET).is_none());
    assert!(w.live_managed().is_empty(), "no token was created");
    no_aws_leak(&w, &run);
}

#[test]
fn a_mixed_github_aws_sm_and_aws_ssm_fan_out_leaves_every_target_with_the_new_token() {
    let Some(moto) = Moto::start() else { return };
    let w = World::new();
    let menv = moto.env();
    let targets = "repo:octo/app\naws-sm:eu-west-1/seqera\naws-ssm:us-east-1//lab/seqera";
    let run = w.run(&env(&menv, targets), &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let gh = w.live_token_in(&World::repo_scope(), SECRET);
    let sm = live_tid(&w, &moto.secret_at(EU, "seqera", "AWSCURRENT").unwrap());
    let ssm = live_tid(&w, &moto.parameter(US, "/lab/seqera").unwrap());
    assert_eq!((sm, ssm), (gh.id, gh.id));
    assert_eq!(
        run.out("updated-targets"),
        "repo:octo/app,aws-sm:eu-west-1/seqera,aws-ssm:us-east-1//lab/seqera"
    );
    assert_eq!(w.live_managed_ids(), vec![gh.id]);
    no_aws_leak(&w, &run);

    // status reads the token id each AWS target holds.
    let status = w.run(&env(&menv, targets), &["status", "--json"]);
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);
    assert!(
        status.stdout.contains(&format!("\"tokenId\":{}", gh.id)),
        "{}",
        status.stdout
    );
    no_aws_leak(&w, &status);
}

#[test]
fn an_aws_endpoint_that_cannot_be_reached_fails_preflight_and_changes_nothing() {
    let Some(moto) = Moto::start() else { return };
    let w = World::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut menv = moto.env();
    menv[0].1 = format!("http://127.0.0.1:{port}");
    let run = w.run(&env(&menv, "repo:octo/app\naws-sm:eu-west-1/seqera"), &[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("aws-sm:eu-west-1/seqera"),
        "{}",
        run.stdout
    );
    assert!(w.secret_value(&World::repo_scope(), SECRET).is_none());
    assert!(w.live_managed().is_empty(), "no token was created");
    assert!(moto.secret_at(EU, "seqera", "AWSCURRENT").is_none());
    no_aws_leak(&w, &run);
}

#[test]
fn aws_writes_performed_then_answered_502_are_resolved_by_reading_back() {
    let Some(moto) = Moto::start() else { return };
    let w = World::new();
    moto.sm(
        EU,
        "CreateSecret",
        json!({"Name": "seqera", "SecretString": "placeholder"}),
    );
    let gateway = FaultyGateway::start(moto.port, &["PutSecretValue", "PutParameter"]);
    let mut menv = moto.env();
    menv[0].1 = gateway.url();
    let run = w.run(
        &env(&menv, "aws-sm:eu-west-1/seqera\naws-ssm:eu-west-1/seqera"),
        &[],
    );
    assert!(
        gateway.faulted.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the gateway answered 502 to the writes"
    );
    // Every write got a 502, yet each was performed: the read-back is the evidence.
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let sm = live_tid(&w, &moto.secret_at(EU, "seqera", "AWSCURRENT").unwrap());
    let ssm = live_tid(&w, &moto.parameter(EU, "seqera").unwrap());
    assert_eq!(run.out("token-id"), sm.to_string());
    assert_eq!(ssm, sm);
    assert_eq!(w.live_managed_ids(), vec![sm]);
    // The retries with the same ClientRequestToken made one version, not five.
    let versions = moto.sm(EU, "ListSecretVersionIds", json!({"SecretId": "seqera"}));
    assert_eq!(
        versions["Versions"].as_array().unwrap().len(),
        2,
        "{versions}"
    );
    no_aws_leak(&w, &run);
}

#[test]
fn aws_throttling_is_retried_and_a_write_only_ever_throttled_is_refused_and_rolled_back() {
    let Some(moto) = Moto::start() else { return };
    let w = World::new();
    moto.ssm(
        EU,
        "PutParameter",
        json!({"Name": "seqera", "Value": "old", "Type": "SecureString"}),
    );
    let gateway = FaultyGateway::with(moto.port, &["PutParameter"], common::moto::Fault::Throttle);
    let mut menv = moto.env();
    menv[0].1 = gateway.url();
    let run = w.run(&env(&menv, "aws-ssm:eu-west-1/seqera"), &[]);
    // SPEC §5: 4 retries, then a clear refusal (throttled: not performed), so the only
    // target is refused and the new token is revoked.
    assert_eq!(
        gateway.faulted.load(std::sync::atomic::Ordering::SeqCst),
        5,
        "one attempt and 4 retries"
    );
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("ThrottlingException"), "{}", run.stdout);
    assert_eq!(moto.parameter(EU, "seqera").as_deref(), Some("old"));
    assert!(w.live_managed().is_empty(), "the new token was rolled back");
    no_aws_leak(&w, &run);
}

#[test]
fn aws_dry_run_says_what_would_be_written_where_and_changes_nothing() {
    let Some(moto) = Moto::start() else { return };
    let w = World::new();
    let menv = moto.env();
    let run = w.run(
        &env(
            &menv,
            "aws-sm:eu-west-1/lab=TOKEN\naws-ssm:eu-west-1//team/seqera",
        ),
        &["--dry-run"],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("key `TOKEN`"), "{}", run.stdout);
    assert!(run.stdout.contains("alias/aws/ssm"), "{}", run.stdout);
    assert!(moto.secret_at(EU, "lab", "AWSCURRENT").is_none());
    assert!(moto.parameter(EU, "/team/seqera").is_none());
    assert!(w.live_managed().is_empty());
    no_aws_leak(&w, &run);
}

#[test]
fn aws_credentials_obtained_at_run_time_are_masked_before_use() {
    let Some(moto) = Moto::start() else { return };
    let w = World::new();
    let menv = moto.env();
    let run = w.run(&env(&menv, "aws-ssm:eu-west-1/seqera"), &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for secret in [AWS_SECRET_KEY, AWS_SESSION_TOKEN] {
        assert!(
            run.stdout.contains(&format!("::add-mask::{secret}")),
            "{}",
            run.stdout
        );
    }
    no_aws_leak(&w, &run);
}

#[test]
fn aws_access_denied_fails_preflight_naming_the_iam_actions_or_refuses_the_write_and_rolls_back() {
    // moto enforces IAM after the 6 actions that create the two users.
    let Some(moto) = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "6")]) else {
        return;
    };
    let w = World::new();
    let (nothing_id, nothing_secret) = moto.iam_user(
        "nothing",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ssm:DescribeParameters", "Resource": "*"}]}),
    );
    let (read_id, read_secret) = moto.iam_user(
        "read-only",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}),
    );
    let as_user = |id: &str, secret: &str| {
        let mut e = moto.env();
        e.retain(|(k, _)| *k != "AWS_SESSION_TOKEN");
        e[1].1 = id.to_string();
        e[2].1 = secret.to_string();
        e
    };

    // Not even GetSecretValue: preflight fails, naming the actions; nothing is created.
    let menv = as_user(&nothing_id, &nothing_secret);
    let run = w.run(&env(&menv, "repo:octo/app\naws-sm:eu-west-1/seqera"), &[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("preflight"), "{}", run.stdout);
    assert!(run.stdout.contains("not authorized"), "{}", run.stdout);
    for action in [
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:CreateSecret",
    ] {
        assert!(run.stdout.contains(action), "{}", run.stdout);
    }
    assert!(w.live_managed().is_empty(), "no token was created");
    assert!(w.secret_value(&World::repo_scope(), SECRET).is_none());
    w.assert_no_leak_of(&run, &[&nothing_secret]);

    // Reads allowed, writes denied: the write is refused, the only target: rolled back.
    let menv = as_user(&read_id, &read_secret);
    let run = w.run(&env(&menv, "aws-sm:eu-west-1/seqera"), &[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("secretsmanager:CreateSecret"),
        "{}",
        run.stdout
    );
    assert!(w.live_managed().is_empty(), "the new token was revoked");
    w.assert_no_leak_of(&run, &[&read_secret]);
}

#[test]
fn aws_service_endpoints_win_over_aws_endpoint_url() {
    let Some(moto) = Moto::start() else { return };
    let w = World::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let mut menv = moto.env();
    menv[0].1 = nowhere;
    menv.push(("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.url()));
    menv.push(("AWS_ENDPOINT_URL_SSM", moto.url()));
    let run = w.run(
        &env(&menv, "aws-sm:eu-west-1/seqera\naws-ssm:eu-west-1/seqera"),
        &[],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let t = live_tid(&w, &moto.secret_at(EU, "seqera", "AWSCURRENT").unwrap());
    assert_eq!(tid_of(&moto.parameter(EU, "seqera").unwrap()), t);
    no_aws_leak(&w, &run);
}

#[test]
fn an_aws_only_rotation_without_a_record_needs_no_github_token() {
    let Some(moto) = Moto::start() else { return };
    let w = World::new();
    let menv = moto.env();
    let mut e = env(&menv, "aws-ssm:eu-west-1/seqera");
    e.push(("INPUT_GITHUB-TOKEN", ""));
    e.push(("INPUT_STATE-VARIABLE", "none"));
    let run = w.run(&e, &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let t = live_tid(&w, &moto.parameter(EU, "seqera").unwrap());
    assert_eq!(w.live_managed_ids(), vec![t]);
    assert!(
        w.mutations().iter().all(|m| !m.contains("/repos/")),
        "nothing sent to GitHub"
    );
    no_aws_leak(&w, &run);
}
