//! `action.yml`, the binary's settings table, its outputs and the README tables must agree:
//! one name added in one place only fails here. Plus a snapshot of `--help`.

use std::collections::BTreeSet;
use std::process::Command;

use seqera_token_rotate::app::outputs;
use seqera_token_rotate::rotate::Outcome;
use seqera_token_rotate::settings::SETTINGS;
use yaml_rust2::{Yaml, YamlLoader};

fn action() -> Yaml {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
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
            // An input default would shadow TOWER_API_ENDPOINT; the binary applies it.
            "seqera-api-url" => assert_eq!(default, None),
            _ => assert_eq!(
                default, s.default,
                "{}: action.yml default vs SETTINGS",
                s.name
            ),
        }
        let required = input["required"].as_bool().unwrap_or(false);
        let want = matches!(
            s.name,
            "seqera-access-token" | "token-name" | "github-token"
        );
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
                row[2].is_empty() || row[2] == "required" || s.name == "visibility",
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
