//! `generate completions <SHELL>` and `generate man` (the release archives ship their
//! output): each is non-empty and names every setting of the SETTINGS table; `generate` is
//! hidden from `--help`.

use std::process::Command;

use seqera_token_rotate::settings::SETTINGS;

const BIN: &str = env!("CARGO_BIN_EXE_seqera-token-rotate");

fn generate(args: &[&str]) -> String {
    let o = Command::new(BIN)
        .arg("generate")
        .args(args)
        // As a user's terminal: no runner variables that could change the output.
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "generate {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn completions_name_every_setting() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let text = generate(&["completions", shell]);
        assert!(text.len() > 500, "{shell}: {} bytes", text.len());
        for s in SETTINGS {
            // fish spells a long option `-l NAME`; the others `--NAME`.
            let want = if shell == "fish" {
                format!("-l {}", s.name)
            } else {
                format!("--{}", s.name)
            };
            assert!(text.contains(&want), "{shell} completions lack {want}");
        }
        for sub in ["rotate", "list", "revoke", "demo"] {
            assert!(text.contains(sub), "{shell} completions lack `{sub}`");
        }
    }
}

#[test]
fn man_page_names_every_setting() {
    let roff = generate(&["man"]);
    assert!(roff.starts_with(".ie") || roff.contains(".TH"), "not roff");
    assert!(
        roff.contains(".TH seqera-token-rotate 1"),
        "section 1 title"
    );
    // roff escapes hyphens as `\-`.
    let text = roff.replace("\\-", "-");
    for s in SETTINGS {
        assert!(
            text.contains(&format!("--{}", s.name)),
            "man lacks --{}",
            s.name
        );
        assert!(
            text.contains(&format!("INPUT_{}", s.name.to_uppercase())),
            "man lacks INPUT_ for {}",
            s.name
        );
    }
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let o = Command::new(BIN)
        .args(["generate", "completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
}

#[test]
fn generate_is_hidden_from_help() {
    let o = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(o.stdout).unwrap();
    assert!(!help.contains("generate"), "{help}");
}
