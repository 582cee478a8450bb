//! `action.yml`, the binary's settings table, its outputs and the README tables must agree:
//! one name added in one place only fails here. `action.yml` must also hand every input to
//! the binary the one safe way (an `INPUT_*` variable of the rotate step, never a command
//! line). Plus a snapshot of `--help`.

use std::collections::BTreeSet;
use std::process::Command;

use seqera_token_rotate::app::outputs;
use seqera_token_rotate::rotate::Outcome;
use seqera_token_rotate::settings::SETTINGS;
use yaml_rust2::{Yaml, YamlLoader};

fn action_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap()
}

fn action() -> Yaml {
    YamlLoader::load_from_str(&action_text()).unwrap().remove(0)
}

fn keys(y: &Yaml) -> Vec<String> {
    y.as_hash()
        .expect("a mapping")
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn readme_table(marker: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = text
        .find(&format!("<!-- {marker}:start -->"))
        .expect("start marker");
    let end = text
        .find(&format!("<!-- {marker}:end -->"))
        .expect("end marker");
    text[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect()
}

fn setting_names() -> Vec<String> {
    SETTINGS.iter().map(|s| s.name.to_string()).collect()
}

/// The binary's outputs: what it writes for a run, plus the opt-in `access-key`.
fn output_names() -> Vec<String> {
    let mut v: Vec<String> = outputs(&Outcome::default())
        .into_iter()
        .map(|(k, _)| k.to_string())
        .collect();
    v.push("access-key".into());
    // `status` writes its own two.
    v.extend(
        seqera_token_rotate::status::outputs(&Default::default())
            .into_iter()
            .map(|(k, _)| k.to_string()),
    );
    v
}

#[test]
fn action_inputs_are_exactly_the_settings() {
    let a = action();
    assert_eq!(
        keys(&a["inputs"]),
        setting_names(),
        "action.yml inputs vs SETTINGS (same names, same order)"
    );
}

#[test]
fn action_defaults_and_required_match_the_settings() {
    let a = action();
    for s in SETTINGS {
        let input = &a["inputs"][s.name];
        assert!(
            !input["description"].as_str().unwrap_or("").is_empty(),
            "{}: no description",
            s.name
        );
        let default = input["default"].as_str();
        match s.name {
            // The runner's own API URL (GHES-aware); the binary's default is github.com's.
            "github-api-url" => assert_eq!(default, Some("${{ github.api_url }}")),
            // An input default would shadow TOWER_API_ENDPOINT / CI_API_V4_URL; the binary
            // applies it.
            "seqera-api-url" | "gitlab-api-url" => assert_eq!(default, None),
            // Computed from token-name by the binary; an input default would be taken literally.
            "state-variable" => assert_eq!(default, None),
            _ => assert_eq!(
                default, s.default,
                "{}: action.yml default vs SETTINGS",
                s.name
            ),
        }
        let required = input["required"].as_bool().unwrap_or(false);
        // `github-token` is required only with GitHub targets or a record (SPEC §2).
        let want = matches!(s.name, "seqera-access-token" | "token-name");
        assert_eq!(required, want, "{}: required", s.name);
    }
    let gh = a["inputs"]["github-token"]["description"].as_str().unwrap();
    assert!(
        gh.contains("GITHUB_TOKEN"),
        "github-token says why GITHUB_TOKEN cannot be used"
    );
}

#[test]
fn action_outputs_are_exactly_the_binary_outputs() {
    let a = action();
    assert_eq!(keys(&a["outputs"]), output_names());
}

#[test]
fn readme_tables_match() {
    let rows = readme_table("inputs");
    let names: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(names, setting_names(), "README inputs table vs SETTINGS");
    for (row, s) in rows.iter().zip(SETTINGS) {
        let envs: BTreeSet<&str> = row[1]
            .split(", ")
            .map(|e| e.trim_matches('`'))
            .filter(|e| !e.is_empty())
            .collect();
        assert_eq!(
            envs,
            s.env.iter().copied().collect(),
            "{}: conventional variables",
            s.name
        );
        match s.default {
            Some(d) => assert_eq!(row[2], d, "{}: README default", s.name),
            None => assert!(
                row[2].is_empty()
                    || row[2] == "required"
                    || matches!(s.name, "visibility" | "state-variable" | "github-token"),
                "{}: {}",
                s.name,
                row[2]
            ),
        }
    }
    let outs: Vec<String> = readme_table("outputs")
        .iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(outs, output_names(), "README outputs table");
}

#[test]
fn help_lists_every_setting_and_its_variables() {
    let o = Command::new(env!("CARGO_BIN_EXE_seqera-token-rotate"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(o.stdout).unwrap();
    for s in SETTINGS {
        assert!(
            help.contains(&format!("--{}", s.name)),
            "--help lacks --{}",
            s.name
        );
        assert!(
            help.contains(&format!("INPUT_{}", s.name.to_uppercase())),
            "--help lacks INPUT_ for {}",
            s.name
        );
    }
    insta::assert_snapshot!("help", help);
}

/// What is wrong with how an `action.yml` (its text) hands the inputs to the binary:
/// a composite action whose steps run under bash or pwsh (both keep hyphenated variable
/// names); every setting mapped exactly once, in the `rotate` step's `env:`, as
/// `INPUT_<NAME>: ${{ inputs.<name> }}`, and nowhere else; no expression and no input in any
/// `run:` script (a command line shows in process lists and invites injection); every
/// output taken from the `rotate` step. Empty: all is well.
fn mapping_problems(text: &str) -> Vec<String> {
    let mut p = Vec::new();
    let docs = match YamlLoader::load_from_str(text) {
        Ok(d) => d,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    let a = &docs[0];
    if a["runs"]["using"].as_str() != Some("composite") {
        p.push("runs.using is not composite".into());
    }
    let empty = vec![];
    let steps = a["runs"]["steps"].as_vec().unwrap_or(&empty);
    let mut mapped: Vec<(String, String)> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let id = step["id"].as_str().unwrap_or("?").to_string();
        if let Some(run) = step["run"].as_str() {
            if !matches!(step["shell"].as_str(), Some("bash" | "pwsh")) {
                p.push(format!("step {i} ({id}): shell must be bash or pwsh"));
            }
            if run.contains("${{") {
                p.push(format!("step {i} ({id}): an expression in run: {run}"));
            }
            if run.contains("INPUT_") || run.contains("inputs.") {
                p.push(format!(
                    "step {i} ({id}): an input on the command line: {run}"
                ));
            }
        }
        if step["with"].as_hash().is_some() || step["args"].as_vec().is_some() {
            p.push(format!(
                "step {i} ({id}): with:/args: would carry inputs; use env:"
            ));
        }
        if let Some(env) = step["env"].as_hash() {
            for (k, v) in env {
                let (k, v) = (k.as_str().unwrap_or(""), v.as_str().unwrap_or(""));
                if k.starts_with("INPUT_") || v.contains("inputs.") {
                    if id == "rotate" {
                        mapped.push((k.to_string(), v.to_string()));
                    } else {
                        p.push(format!(
                            "step {i} ({id}): input {k} outside the rotate step"
                        ));
                    }
                }
            }
        }
    }
    for s in SETTINGS {
        let key = format!("INPUT_{}", s.name.to_uppercase());
        let value = format!("${{{{ inputs.{} }}}}", s.name);
        let n = mapped.iter().filter(|(k, _)| *k == key).count();
        if n != 1 {
            p.push(format!("{key}: mapped {n} times in the rotate step's env"));
        }
        if mapped.iter().any(|(k, v)| *k == key && *v != value) {
            p.push(format!("{key}: not `{value}`"));
        }
        // The parser keeps one of two equal keys: count in the text too.
        let lines = text
            .lines()
            .filter(|l| l.trim_start().starts_with(&format!("{key}:")))
            .count();
        let uses = text.matches(&format!("inputs.{} ", s.name)).count()
            + text.matches(&format!("inputs.{}}}", s.name)).count();
        if lines != 1 || uses != 1 {
            p.push(format!(
                "{}: {lines} lines `{key}:` and {uses} uses of inputs.{} in the text",
                s.name, s.name
            ));
        }
    }
    for (k, _) in &mapped {
        if !SETTINGS
            .iter()
            .any(|s| *k == format!("INPUT_{}", s.name.to_uppercase()))
        {
            p.push(format!("{k}: mapped but not a setting"));
        }
    }
    let total = text.matches("inputs.").count();
    if total != SETTINGS.len() {
        p.push(format!(
            "`inputs.` appears {total} times; want one per setting ({})",
            SETTINGS.len()
        ));
    }
    for o in output_names() {
        let want = format!("${{{{ steps.rotate.outputs.{o} }}}}");
        if a["outputs"][o.as_str()]["value"].as_str() != Some(want.as_str()) {
            p.push(format!("output {o}: value is not {want}"));
        }
    }
    p
}

#[test]
fn action_maps_every_input_once_and_none_on_a_command_line() {
    let problems = mapping_problems(&action_text());
    assert!(problems.is_empty(), "action.yml:\n{}", problems.join("\n"));
}

#[test]
fn the_mapping_check_catches_each_mistake() {
    let good = action_text();
    let line = "        INPUT_TIMEOUT: ${{ inputs.timeout }}\n";
    assert!(good.contains(line));
    let run = "      run: '\"$SEQERA_TOKEN_ROTATE_BIN\"'\n";
    assert!(good.contains(run));
    let broken = [
        ("an input missing", good.replacen(line, "", 1)),
        (
            "an input mapped twice",
            good.replacen(line, &format!("{line}{line}"), 1),
        ),
        (
            "an input mapped to another",
            good.replacen(line, "        INPUT_TIMEOUT: ${{ inputs.force }}\n", 1),
        ),
        (
            "an input on the command line",
            good.replacen(
                run,
                "      run: '\"$SEQERA_TOKEN_ROTATE_BIN\" --github-token \"${{ inputs.github-token }}\"'\n",
                1,
            ),
        ),
        (
            "an input variable on the command line",
            good.replacen(
                run,
                "      run: '\"$SEQERA_TOKEN_ROTATE_BIN\" --timeout \"$INPUT_TIMEOUT\"'\n",
                1,
            ),
        ),
        (
            "a shell that drops hyphenated names",
            good.replace("      shell: bash\n", "      shell: sh\n"),
        ),
        (
            "a Docker action",
            good.replace("  using: composite\n", "  using: docker\n  image: Dockerfile\n"),
        ),
        (
            "an output from elsewhere",
            good.replace(
                "${{ steps.rotate.outputs.token-id }}",
                "${{ steps.install.outputs.token-id }}",
            ),
        ),
    ];
    for (what, text) in broken {
        assert_ne!(text, good, "{what}: the mutation did not apply");
        assert!(!mapping_problems(&text).is_empty(), "{what}: not caught");
    }
}
