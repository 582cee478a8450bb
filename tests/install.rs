//! `scripts/install-binary.sh`, the Action's install step: for each of the five release
//! platforms it picks that platform's archive, checks it against that platform's pin and
//! hands out the binary inside; a checksum mismatch, a missing or malformed pin, a failed
//! download or an unsupported platform fail closed (exit 1, no `path` output, nothing left
//! to run). Offline: the "release" is a folder of fake archives reached by `file://`, and
//! the source build runs a fake `cargo`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-binary.sh");
const VERSION: &str = "1.2.3";

/// RUNNER_OS, RUNNER_ARCH, pin variable suffix, Rust target: the release matrix.
const PLATFORMS: [(&str, &str, &str, &str); 5] = [
    ("Linux", "X64", "LINUX_X64", "x86_64-unknown-linux-musl"),
    (
        "Linux",
        "ARM64",
        "LINUX_ARM64",
        "aarch64-unknown-linux-musl",
    ),
    ("macOS", "X64", "MACOS_X64", "x86_64-apple-darwin"),
    ("macOS", "ARM64", "MACOS_ARM64", "aarch64-apple-darwin"),
    ("Windows", "X64", "WINDOWS_X64", "x86_64-pc-windows-msvc"),
];

struct Release {
    dir: tempfile::TempDir,
    /// Pin variable suffix → SHA-256 of that platform's archive.
    pins: Vec<(&'static str, String)>,
}

fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn sha256(path: &Path) -> String {
    let out = sh(Command::new("sha256sum").arg(path));
    out.split_whitespace().next().unwrap().to_string()
}

fn exe(os: &str) -> &'static str {
    if os == "Windows" {
        ".exe"
    } else {
        ""
    }
}

/// Archives laid out as the release workflow makes them:
/// `seqera-token-rotate-<target>.tar.gz` holding `seqera-token-rotate-<target>/seqera-token-rotate[.exe]`,
/// each binary's content naming its target.
fn release() -> Release {
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets");
    fs::create_dir(&assets).unwrap();
    let mut pins = Vec::new();
    for (os, _, key, target) in PLATFORMS {
        let stage = dir.path().join("stage");
        let inner = stage.join(format!("seqera-token-rotate-{target}"));
        fs::create_dir_all(&inner).unwrap();
        fs::write(
            inner.join(format!("seqera-token-rotate{}", exe(os))),
            format!("fake binary for {target}\n"),
        )
        .unwrap();
        fs::write(inner.join("README.md"), "readme\n").unwrap();
        let archive = assets.join(format!("seqera-token-rotate-{target}.tar.gz"));
        sh(Command::new("tar")
            .arg("-czf")
            .arg(&archive)
            .arg("-C")
            .arg(&stage)
            .arg(format!("seqera-token-rotate-{target}")));
        fs::remove_dir_all(&stage).unwrap();
        pins.push((key, sha256(&archive)));
    }
    Release { dir, pins }
}

struct Run {
    out: Output,
    stderr: String,
    /// The `path` step output, if any.
    path: Option<PathBuf>,
    runner_temp: PathBuf,
    _work: tempfile::TempDir,
}

impl Release {
    fn assets(&self) -> PathBuf {
        self.dir.path().join("assets")
    }

    /// Runs the script as the install step would on `os`/`arch`, with `env` on top of a
    /// released action.yml's variables (an empty value unsets one) and `path` as PATH.
    fn run(&self, os: &str, arch: &str, env: &[(&str, &str)], path: Option<&str>) -> Run {
        let work = tempfile::tempdir().unwrap();
        let runner_temp = work.path().join("runner-temp");
        fs::create_dir(&runner_temp).unwrap();
        let output = work.path().join("github-output");
        fs::write(&output, "").unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg(SCRIPT)
            .env_clear()
            .env(
                "PATH",
                path.map(str::to_string)
                    .unwrap_or_else(|| std::env::var("PATH").unwrap()),
            )
            .env("RUNNER_OS", os)
            .env("RUNNER_ARCH", arch)
            .env("RUNNER_TEMP", &runner_temp)
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_ACTION_PATH", env!("CARGO_MANIFEST_DIR"))
            .env("SEQERA_TOKEN_ROTATE_VERSION", VERSION)
            .env(
                "SEQERA_TOKEN_ROTATE_DOWNLOAD_URL",
                format!("file://{}", self.assets().display()),
            );
        for (key, sha) in &self.pins {
            cmd.env(format!("SEQERA_TOKEN_ROTATE_SHA256_{key}"), sha);
        }
        for (k, v) in env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let out = cmd.output().unwrap();
        let outputs = fs::read_to_string(&output).unwrap();
        let path = outputs
            .lines()
            .find_map(|l| l.strip_prefix("path="))
            .map(PathBuf::from);
        Run {
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            out,
            path,
            runner_temp,
            _work: work,
        }
    }
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn assert_ok(&self) -> PathBuf {
        assert!(self.out.status.success(), "failed: {}", self.stderr);
        self.path.clone().expect("a path output")
    }

    /// Exit 1, an `::error` naming `why`, no `path` output, no binary left in RUNNER_TEMP.
    fn assert_refused(&self, why: &str) {
        assert_eq!(self.out.status.code(), Some(1), "stderr: {}", self.stderr);
        assert!(self.stderr.contains("::error"), "{}", self.stderr);
        assert!(
            self.stderr.contains(why),
            "want `{why}` in: {}",
            self.stderr
        );
        assert_eq!(self.path, None, "a path output after a refusal");
        let left: Vec<_> = walk(&self.runner_temp)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("seqera-token-rotate") && p.is_file())
            })
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        }
        v.push(p);
    }
    v
}

fn pin_of(r: &Release, key: &str) -> String {
    r.pins.iter().find(|(k, _)| *k == key).unwrap().1.clone()
}

#[test]
fn each_platform_gets_its_own_verified_binary() {
    let r = release();
    for (os, arch, _, target) in PLATFORMS {
        let run = r.run(os, arch, &[], None);
        let bin = run.assert_ok();
        assert!(
            bin.ends_with(format!(
                "seqera-token-rotate-{target}/seqera-token-rotate{}",
                exe(os)
            )),
            "{os}/{arch}: {}",
            bin.display()
        );
        assert!(bin.starts_with(&run.runner_temp), "{}", bin.display());
        assert_eq!(
            fs::read_to_string(&bin).unwrap(),
            format!("fake binary for {target}\n"),
            "{os}/{arch} got another platform's binary"
        );
        assert!(run.stderr.is_empty() || !run.stderr.contains("::error"));
        // The archive itself is not left next to the binary.
        assert!(walk(&run.runner_temp)
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".tar.gz")));
    }
}

/// macOS has `shasum`, not `sha256sum`: the script must verify with whichever exists.
#[test]
fn verifies_with_shasum_where_sha256sum_is_missing() {
    let r = release();
    let bin = tempfile::tempdir().unwrap();
    for dir in ["/usr/bin", "/bin"] {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_owned();
            let link = bin.path().join(&name);
            if name != "sha256sum" && !link.exists() {
                std::os::unix::fs::symlink(&p, link).unwrap();
            }
        }
    }
    let path = bin.path().to_str().unwrap();
    for (arch, key) in [("X64", "MACOS_X64"), ("ARM64", "MACOS_ARM64")] {
        r.run("macOS", arch, &[], Some(path)).assert_ok();
        let wrong = pin_of(&r, "LINUX_X64");
        let pin = format!("SEQERA_TOKEN_ROTATE_SHA256_{key}");
        r.run("macOS", arch, &[(&pin, &wrong)], Some(path))
            .assert_refused("checksum mismatch");
    }
}

#[test]
fn a_checksum_mismatch_fails_closed_on_every_platform() {
    let r = release();
    for (os, arch, key, _) in PLATFORMS {
        // Another platform's (valid-looking) pin: the wrong bytes for this one.
        let other = PLATFORMS.iter().find(|p| p.2 != key).unwrap().2;
        let pin = format!("SEQERA_TOKEN_ROTATE_SHA256_{key}");
        r.run(os, arch, &[(&pin, &pin_of(&r, other))], None)
            .assert_refused("checksum mismatch");
    }
}

#[test]
fn a_tampered_archive_fails_closed() {
    let r = release();
    let archive = r
        .assets()
        .join("seqera-token-rotate-aarch64-unknown-linux-musl.tar.gz");
    let mut bytes = fs::read(&archive).unwrap();
    bytes.extend_from_slice(b"appended");
    fs::write(&archive, bytes).unwrap();
    let run = r.run("Linux", "ARM64", &[], None);
    run.assert_refused("checksum mismatch");
    assert!(
        run.stderr.contains(&pin_of(&r, "LINUX_ARM64")),
        "names the pin"
    );
    // The other platforms are untouched.
    r.run("Linux", "X64", &[], None).assert_ok();
}

#[test]
fn an_unsupported_platform_fails_closed() {
    let r = release();
    for (os, arch) in [
        ("Windows", "ARM64"),
        ("Linux", "X86"),
        ("Linux", "ARM"),
        ("macOS", "X86"),
        ("FreeBSD", "X64"),
        ("linux", "x64"),
        ("", ""),
    ] {
        r.run(os, arch, &[], None)
            .assert_refused("no release binary for");
    }
}

#[test]
fn a_missing_or_malformed_pin_fails_closed() {
    let r = release();
    let pin = "SEQERA_TOKEN_ROTATE_SHA256_WINDOWS_X64";
    let good = pin_of(&r, "WINDOWS_X64");
    let upper = good.to_uppercase();
    let short = &good[..63];
    let prefixed = format!("sha256:{good}");
    for bad in ["", "0", upper.as_str(), short, prefixed.as_str()] {
        r.run("Windows", "X64", &[(pin, bad)], None)
            .assert_refused("is not a SHA-256");
    }
}

#[test]
fn a_failed_download_or_a_bad_url_fails_closed() {
    let r = release();
    fs::remove_file(
        r.assets()
            .join("seqera-token-rotate-x86_64-apple-darwin.tar.gz"),
    )
    .unwrap();
    r.run("macOS", "X64", &[], None)
        .assert_refused("could not download");
    for url in ["http://example.invalid/releases", "", "ftp://x/y"] {
        r.run(
            "Linux",
            "X64",
            &[("SEQERA_TOKEN_ROTATE_DOWNLOAD_URL", url)],
            None,
        )
        .assert_refused("is not an https:// URL");
    }
    r.run(
        "Linux",
        "X64",
        &[("SEQERA_TOKEN_ROTATE_VERSION", "latest")],
        None,
    )
    .assert_refused("is not a version");
}

#[test]
fn an_unreleased_ref_builds_from_source() {
    let r = release();
    let fake = tempfile::tempdir().unwrap();
    let log = fake.path().join("cargo-args");
    // A stand-in for cargo: records its arguments and "builds" into --target-dir.
    let cargo = fake.path().join("cargo");
    fs::write(
        &cargo,
        format!(
            r#"#!/usr/bin/env bash
printf '%s\n' "$@" > '{}'
while (($#)); do [[ "$1" == --target-dir ]] && dir="$2"; shift; done
mkdir -p "$dir/release" && echo built > "$dir/release/seqera-token-rotate"
"#,
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        fake.path().display(),
        std::env::var("PATH").unwrap()
    );
    // Pins may be there or not: without a version nothing is downloaded.
    let run = r.run(
        "Linux",
        "X64",
        &[("SEQERA_TOKEN_ROTATE_VERSION", "")],
        Some(&path),
    );
    let bin = run.assert_ok();
    assert_eq!(fs::read_to_string(&bin).unwrap(), "built\n");
    assert!(bin.starts_with(&run.runner_temp), "{}", bin.display());
    let args = fs::read_to_string(&log).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(&args[..3], ["build", "--release", "--locked"], "{args:?}");
    assert!(args.windows(2).any(|w| w
        == [
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")
        ]));

    // No cargo at all: a clear refusal, not a half-done step.
    let no_cargo = tempfile::tempdir().unwrap();
    for tool in ["bash", "env", "cat", "mkdir", "rm"] {
        let _ = std::os::unix::fs::symlink(format!("/usr/bin/{tool}"), no_cargo.path().join(tool));
    }
    r.run(
        "Linux",
        "X64",
        &[("SEQERA_TOKEN_ROTATE_VERSION", "")],
        Some(no_cargo.path().to_str().unwrap()),
    )
    .assert_refused("cargo is not installed");
}

/// action.yml's install step carries exactly the variables this script reads: the version,
/// the asset URL and one pin per platform above, all empty on an unreleased ref (the release
/// workflow fills them in its pin commit).
#[test]
fn action_yml_has_one_empty_pin_per_platform() {
    use yaml_rust2::YamlLoader;
    let text = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    let a = YamlLoader::load_from_str(&text).unwrap().remove(0);
    let steps = a["runs"]["steps"].as_vec().unwrap();
    let install = steps
        .iter()
        .find(|s| s["id"].as_str() == Some("install"))
        .expect("an install step");
    assert_eq!(
        install["run"].as_str(),
        Some("bash \"$GITHUB_ACTION_PATH/scripts/install-binary.sh\"")
    );
    let mut keys: Vec<String> = install["env"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            assert_eq!(v.as_str(), Some(""), "{k:?} is pinned on an unreleased ref");
            k.as_str().unwrap().to_string()
        })
        .collect();
    keys.sort();
    let mut want: Vec<String> = PLATFORMS
        .iter()
        .map(|p| format!("SEQERA_TOKEN_ROTATE_SHA256_{}", p.2))
        .chain([
            "SEQERA_TOKEN_ROTATE_VERSION".to_string(),
            "SEQERA_TOKEN_ROTATE_DOWNLOAD_URL".to_string(),
        ])
        .collect();
    want.sort();
    assert_eq!(keys, want);
}

/// A stand-in for the action's source: a crate with no dependencies (so it builds in a
/// second, offline) whose binary tells how it was built: by which rustc, with `--cfg
/// hostile` or not, with a variable from a Cargo `[env]` table or not.
fn tiny_action_source(dir: &Path) {
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"seqera-token-rotate\"\nversion = \"0.0.0\"\nedition = \"2021\"\nbuild = \"build.rs\"\n\n[lints.rust]\nunexpected_cfgs = \"allow\"\n",
    )
    .unwrap();
    fs::write(
        dir.join("Cargo.lock"),
        "# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\nversion = 4\n\n[[package]]\nname = \"seqera-token-rotate\"\nversion = \"0.0.0\"\n",
    )
    .unwrap();
    fs::write(
        dir.join("build.rs"),
        r#"fn main() {
    let rustc = std::env::var("RUSTC").unwrap();
    let v = std::process::Command::new(rustc).arg("-V").output().unwrap();
    println!("cargo:rustc-env=BUILT_BY={}", String::from_utf8_lossy(&v.stdout).trim());
}
"#,
    )
    .unwrap();
    fs::write(
        dir.join("src/main.rs"),
        r#"fn main() {
    println!("built-by={} hostile-cfg={} hostile-env={:?}", env!("BUILT_BY"), cfg!(hostile), option_env!("HOSTILE_ENV"));
}
"#,
    )
    .unwrap();
}

/// The source build (an unreleased ref: `uses: ./`, `@main`, a branch) runs in a checkout
/// the caller controls: a pull request can plant `.cargo/config.toml` (a `rustc-wrapper`
/// runs code during the build; `[env]` and `rustflags` change the binary) and
/// `rust-toolchain.toml` in the workspace, and earlier steps can set `RUSTC_WRAPPER`,
/// `RUSTFLAGS`, `CARGO_*`. None of them may reach the build that then receives both tokens:
/// it runs in the action's own directory, with its own CARGO_HOME and pinned toolchain.
/// Real cargo and rustc (no network: the crate has no dependencies).
#[test]
fn source_build_ignores_a_hostile_workspace_and_environment() {
    let cargo_ok = Command::new("cargo").arg("--version").output();
    if cargo_ok.map(|o| !o.status.success()).unwrap_or(true) {
        assert!(
            std::env::var("CI").is_err(),
            "cargo is needed for this test in CI"
        );
        return;
    }
    let toolchain = pinned_toolchain();
    let root = tempfile::tempdir().unwrap();
    let action = root.path().join("action");
    tiny_action_source(&action);
    let marker = root.path().join("wrapper-ran");
    let wrapper = root.path().join("wrapper.sh");
    fs::write(
        &wrapper,
        format!("#!/bin/sh\ntouch '{}'\nexec \"$@\"\n", marker.display()),
    )
    .unwrap();
    fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let hostile_config = format!(
        "[build]\nrustc-wrapper = \"{}\"\nrustflags = [\"--cfg\", \"hostile\"]\n\n[env]\nHOSTILE_ENV = \"from the workspace\"\n",
        wrapper.display()
    );
    let hostile_home = root.path().join("hostile-cargo-home");
    fs::create_dir_all(&hostile_home).unwrap();
    fs::write(hostile_home.join("config.toml"), &hostile_config).unwrap();
    let wrapper_s = wrapper.to_str().unwrap().to_string();
    let home_s = hostile_home.to_str().unwrap().to_string();

    /// What the case is, what it plants in the workspace, what it adds to the environment.
    type Case = (
        &'static str,
        Box<dyn Fn(&Path)>,
        Vec<(&'static str, String)>,
    );
    let cases: Vec<Case> = vec![
        (
            "workspace .cargo/config.toml (rustc-wrapper, rustflags, [env])",
            Box::new({
                let c = hostile_config.clone();
                move |ws: &Path| {
                    fs::create_dir_all(ws.join(".cargo")).unwrap();
                    fs::write(ws.join(".cargo/config.toml"), &c).unwrap();
                }
            }),
            vec![],
        ),
        (
            "workspace rust-toolchain.toml",
            Box::new(|ws: &Path| {
                fs::write(
                    ws.join("rust-toolchain.toml"),
                    "[toolchain]\nchannel = \"nightly\"\n",
                )
                .unwrap();
            }),
            vec![],
        ),
        (
            "RUSTC_WRAPPER, RUSTFLAGS, CARGO_* and RUSTUP_TOOLCHAIN in the environment",
            Box::new(|_: &Path| {}),
            vec![
                ("RUSTC_WRAPPER", wrapper_s.clone()),
                ("CARGO_BUILD_RUSTC_WRAPPER", wrapper_s.clone()),
                ("RUSTFLAGS", "--cfg hostile".to_string()),
                ("CARGO_ENCODED_RUSTFLAGS", "--cfg\u{1f}hostile".to_string()),
                ("CARGO_HOME", home_s.clone()),
                ("RUSTUP_TOOLCHAIN", "nightly".to_string()),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (what, plant, env) in cases {
        let ws = tempfile::tempdir().unwrap();
        plant(ws.path());
        let _ = fs::remove_file(&marker);
        let work = tempfile::tempdir().unwrap();
        let output = work.path().join("github-output");
        fs::write(&output, "").unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg(SCRIPT)
            .current_dir(ws.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", std::env::var("HOME").unwrap())
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", "X64")
            .env("RUNNER_TEMP", work.path())
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_WORKSPACE", ws.path())
            .env("GITHUB_ACTION_PATH", &action);
        if let Ok(h) = std::env::var("RUSTUP_HOME") {
            cmd.env("RUSTUP_HOME", h);
        }
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            failures.push(format!("{what}: the build failed:\n{stdout}\n{stderr}"));
            continue;
        }
        if marker.exists() {
            failures.push(format!(
                "{what}: the hostile rustc-wrapper ran during the build"
            ));
        }
        let path = fs::read_to_string(&output)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("path=").map(PathBuf::from))
            .expect("a path output");
        assert!(path.starts_with(work.path()), "{}", path.display());
        let said = sh(&mut Command::new(&path));
        let said = said.trim();
        if !said.starts_with(&format!("built-by=rustc {toolchain} ")) {
            failures.push(format!(
                "{what}: not built by the pinned Rust {toolchain}: {said}"
            ));
        }
        if !said.ends_with(" hostile-cfg=false hostile-env=None") {
            failures.push(format!(
                "{what}: the workspace's rustflags or [env] reached the build: {said}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The toolchain the source build pins is the one CI tests with (ci.yml's RUST_TOOLCHAIN).
fn pinned_toolchain() -> String {
    let script = fs::read_to_string(SCRIPT).unwrap();
    let pinned = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("toolchain="))
        .expect("a toolchain= line in install-binary.sh")
        .to_string();
    let ci = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.github/workflows/ci.yml"
    ))
    .unwrap();
    assert!(
        ci.contains(&format!("RUST_TOOLCHAIN: \"{pinned}\"")),
        "install-binary.sh pins Rust {pinned}, ci.yml tests another"
    );
    pinned
}

/// Where a runner without github.com keeps the release archive: the tool cache layout of
/// `actions/tool-cache`, `<tool>/<version>/<arch>/`.
fn seed_tool_cache(r: &Release, cache: &Path, arch: &str, target: &str) -> PathBuf {
    let dir = cache
        .join("seqera-token-rotate")
        .join(VERSION)
        .join(arch.to_lowercase());
    fs::create_dir_all(&dir).unwrap();
    let asset = format!("seqera-token-rotate-{target}.tar.gz");
    fs::copy(r.assets().join(&asset), dir.join(&asset)).unwrap();
    dir.join(asset)
}

/// A runner that cannot reach github.com (GitHub Enterprise Server, a private network): an
/// archive an administrator put into the tool cache is used without any download, on every
/// platform, and only if it matches the pin of that platform.
#[test]
fn a_tool_cache_archive_is_used_offline_only_if_it_matches_the_pin() {
    let r = release();
    let cache = tempfile::tempdir().unwrap();
    let cache_s = cache.path().to_str().unwrap();
    // Nothing reachable: any download attempt fails the run.
    let offline = [
        ("RUNNER_TOOL_CACHE", cache_s),
        (
            "SEQERA_TOKEN_ROTATE_DOWNLOAD_URL",
            "file:///nonexistent/releases",
        ),
    ];
    for (os, arch, _, target) in PLATFORMS {
        r.run(os, arch, &offline, None)
            .assert_refused("could not download");
        seed_tool_cache(&r, cache.path(), arch, target);
        let run = r.run(os, arch, &offline, None);
        let bin = run.assert_ok();
        assert_eq!(
            fs::read_to_string(&bin).unwrap(),
            format!("fake binary for {target}\n"),
            "{os}/{arch}"
        );
        assert!(run.stdout().contains("tool cache"), "{}", run.stdout());
    }
    // Other bytes in the cache: refused, and no download is tried instead.
    let cached = seed_tool_cache(&r, cache.path(), "X64", "x86_64-unknown-linux-musl");
    fs::copy(
        r.assets()
            .join("seqera-token-rotate-aarch64-unknown-linux-musl.tar.gz"),
        &cached,
    )
    .unwrap();
    let run = r.run("Linux", "X64", &[("RUNNER_TOOL_CACHE", cache_s)], None);
    run.assert_refused("checksum mismatch");
    assert!(run.stderr.contains(&pin_of(&r, "LINUX_X64")));
}

/// A mirror of the release assets (SEQERA_TOKEN_ROTATE_MIRROR, set in the job's env) replaces
/// the download URL, held to the same pins; it must be https:// (file:// for tests).
#[test]
fn a_mirror_replaces_the_download_url_under_the_same_pin() {
    let r = release();
    let other = tempfile::tempdir().unwrap();
    let mirror = format!("file://{}", r.assets().display());
    let wrong = format!("file://{}", other.path().display());
    for (os, arch, _, target) in PLATFORMS {
        let run = r.run(
            os,
            arch,
            &[
                ("SEQERA_TOKEN_ROTATE_MIRROR", &mirror),
                (
                    "SEQERA_TOKEN_ROTATE_DOWNLOAD_URL",
                    "file:///nonexistent/releases",
                ),
            ],
            None,
        );
        let bin = run.assert_ok();
        assert_eq!(
            fs::read_to_string(&bin).unwrap(),
            format!("fake binary for {target}\n")
        );
        assert!(run.stdout().contains("mirror"), "{}", run.stdout());
    }
    // A mirror serving other bytes under the right name is refused.
    let asset = "seqera-token-rotate-x86_64-unknown-linux-musl.tar.gz";
    let mut bytes = fs::read(r.assets().join(asset)).unwrap();
    bytes.extend_from_slice(b"mirrored and changed");
    fs::write(other.path().join(asset), bytes).unwrap();
    r.run(
        "Linux",
        "X64",
        &[("SEQERA_TOKEN_ROTATE_MIRROR", &wrong)],
        None,
    )
    .assert_refused("checksum mismatch");
    for bad in ["http://mirror.internal/r", "ftp://mirror/r", "mirror/r"] {
        r.run("Linux", "X64", &[("SEQERA_TOKEN_ROTATE_MIRROR", bad)], None)
            .assert_refused("SEQERA_TOKEN_ROTATE_MIRROR");
    }
}

/// `uses: ./` on a Windows runner checks the repository out with Git for Windows, whose
/// default core.autocrlf=true would turn the scripts the Action and CI run into CRLF, which
/// Git Bash refuses ($'\r': command not found). `.gitattributes` pins LF for them whatever
/// the local configuration; and none holds a CR today.
#[test]
fn scripts_and_yaml_are_checked_out_with_lf_everywhere() {
    let root = env!("CARGO_MANIFEST_DIR");
    let files = [
        "scripts/install-binary.sh",
        "scripts/try-action.sh",
        "scripts/act.sh",
        "scripts/lint.sh",
        "scripts/actionlint.cjs",
        "action.yml",
        ".github/workflows/ci.yml",
        ".github/workflows/release.yml",
        ".ci/run",
        "Dockerfile",
    ];
    let in_git = Command::new("git")
        .args(["-C", root, "rev-parse", "--is-inside-work-tree"])
        .output()
        .is_ok_and(|o| o.status.success());
    if in_git {
        let mut cmd = Command::new("git");
        cmd.args(["-C", root, "check-attr", "text", "eol", "--"])
            .args(files);
        let attrs = sh(&mut cmd);
        for f in files {
            assert!(
                attrs.contains(&format!("{f}: text: set"))
                    && attrs.contains(&format!("{f}: eol: lf")),
                "{f} is not pinned to LF by .gitattributes:\n{attrs}"
            );
        }
    } else {
        assert!(std::env::var("CI").is_err(), "CI runs from a Git checkout");
    }
    for f in files {
        let text = fs::read(Path::new(root).join(f)).unwrap();
        assert!(!text.contains(&b'\r'), "{f} has a CR");
    }
}
