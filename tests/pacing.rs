//! A fan-out past GitHub's write limits (SPEC §5 "Retries", pacing): the real binary against a
//! sandbox GitHub that enforces secondary rate limits, with both windows scaled down from
//! 80 a minute / 500 an hour to 80 a second / 500 a minute so a test takes seconds.

mod common;

use std::time::Duration;

use common::*;

/// What the sandbox enforces: GitHub's limits with the minute scaled to a second.
const SERVER: [(usize, Duration); 2] =
    [(80, Duration::from_secs(1)), (500, Duration::from_secs(60))];
/// What the tool paces to: the same windows, with a guard against loopback jitter.
const CLIENT: &str = "80/1s,500/60s,+150ms";

fn repo(i: usize) -> String {
    format!("app{i:03}")
}

/// `n` repositories of `octo`, as a `targets` list.
fn fan_out(w: &World, n: usize) -> String {
    (0..n)
        .map(|i| {
            w.sb.add_repo(OWNER, &repo(i));
            format!("repo:{OWNER}/{}\n", repo(i))
        })
        .collect()
}

fn paced(targets: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("INPUT_TARGETS", targets),
        ("SEQERA_TOKEN_ROTATE_TEST_PACE", CLIENT),
    ]
}

/// Every target holds the same live token, the one the run reports.
fn assert_all_hold_the_new_token(w: &World, run: &Run, n: usize) {
    let id = run.out("token-id");
    for i in 0..n {
        let t = w.live_token_in(&SecretScope::repo(OWNER, &repo(i)), SECRET);
        assert_eq!(t.id.to_string(), id, "{}", repo(i));
    }
    let labels: Vec<String> = (0..n)
        .map(|i| format!("repo:{OWNER}/{}", repo(i)))
        .collect();
    assert_eq!(run.out("updated-targets"), labels.join(","));
}

#[test]
fn two_hundred_targets_never_draw_a_secondary_rate_limit() {
    let w = World::new();
    let targets = fan_out(&w, 200);
    w.sb.set_write_limits(&SERVER);

    let dry = w.run(
        &[paced(&targets), vec![("INPUT_DRY-RUN", "true")]].concat(),
        &[],
    );
    assert_eq!(dry.code, 0, "{dry:#?}");
    assert!(
        dry.stdout
            .contains("200 secret write(s), paced to GitHub's limits (GitHub allows 80 writes per 1s and 500 a minute): about 2s"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .contains("note: 200 repository targets of `octo` get secret `TOWER_ACCESS_TOKEN`"),
        "{}",
        dry.stdout
    );
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());

    let run = w.run(&paced(&targets), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(w.sb.limited_answers(), 0, "{}", run.stdout);
    assert_all_hold_the_new_token(&w, &run, 200);
    let puts = w
        .mutations()
        .iter()
        .filter(|m| m.starts_with("PUT "))
        .count();
    assert_eq!(puts, 200);

    // The plan, then progress at a steady interval, all inside the Store group.
    let lines: Vec<&str> = run.stdout.lines().collect();
    let start = lines.iter().position(|l| *l == "::group::Store").unwrap();
    let end = start
        + lines[start..]
            .iter()
            .position(|l| *l == "::endgroup::")
            .unwrap();
    assert!(
        lines[start + 1].starts_with("200 secret write(s), paced"),
        "{}",
        run.stdout
    );
    let progress: Vec<&&str> = lines[start..end]
        .iter()
        .filter(|l| l.starts_with("Progress: written "))
        .collect();
    assert!(progress.len() >= 2, "{}", run.stdout);
    assert!(progress[0].contains(" / remaining ") && progress[0].ends_with(" left"));
    w.assert_no_leak(&run, false);
}

#[test]
fn retries_are_paced_too() {
    let w = World::new();
    let targets = fan_out(&w, 120);
    w.sb.set_write_limits(&SERVER);
    // The first write to each of the first ten targets is stored, then the connection is
    // cut: ten retries, all inside the first window, must wait for slots like any write.
    for i in 0..10 {
        w.sb.add_fault(FaultRule::github(
            "PUT",
            PathMatch::Prefix(SecretScope::repo(OWNER, &repo(i)).secrets_path()),
            Occurrence::Nth(1),
            FaultAction::PerformThenDrop,
        ));
    }
    let run = w.run(&paced(&targets), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(w.sb.limited_answers(), 0, "{}", run.stdout);
    let puts = w
        .mutations()
        .iter()
        .filter(|m| m.starts_with("PUT "))
        .count();
    assert_eq!(puts, 130);
    assert_all_hold_the_new_token(&w, &run, 120);
    w.assert_no_leak(&run, false);
}
