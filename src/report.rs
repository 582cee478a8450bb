//! The one output layer: log lines, workflow commands (`::add-mask::`, `::error::`,
//! `::group::`), `$GITHUB_OUTPUT`, the job summary. Knows Actions vs terminal. Every text
//! except the `::add-mask::` line and the opt-in `access-key` output goes through
//! [`text::printable`](crate::text::printable): scrubbed, one line, no workflow command that
//! the tool did not write itself.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use secrecy::{ExposeSecret, SecretString};

use crate::text::{printable, Scrubber};

/// Outputs that are lists, one item per line (SPEC §6); every other output is one line.
const MULTI_LINE_OUTPUTS: &[&str] = &["problems"];

/// The longest log line (our own lines are far shorter; server text is cut well before).
const MAX_LINE: usize = 4000;

/// Where text goes. Real runs use stdout/stderr; tests and `demo` can capture.
pub type Sink = Arc<Mutex<dyn Write + Send>>;

/// The output layer.
#[derive(Clone)]
pub struct Report {
    actions: bool,
    output_file: Option<PathBuf>,
    summary_file: Option<PathBuf>,
    scrubber: Scrubber,
    stdout: Sink,
    stderr: Sink,
    /// Outputs become log lines (the demo's nested runs), not `name=value` data on stdout.
    outputs_in_log: bool,
}

/// Escapes workflow command data (`%`, CR, LF) so a message stays one annotation.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

impl Report {
    /// From the process environment: `GITHUB_ACTIONS=true` selects workflow commands.
    pub fn from_env(scrubber: Scrubber) -> Self {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            actions: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
            output_file: var("GITHUB_OUTPUT"),
            summary_file: var("GITHUB_STEP_SUMMARY"),
            scrubber,
            stdout: Arc::new(Mutex::new(std::io::stdout())),
            stderr: Arc::new(Mutex::new(std::io::stderr())),
            outputs_in_log: false,
        }
    }

    /// A report writing to given sinks, with no output or summary files.
    pub fn with_sinks(actions: bool, scrubber: Scrubber, stdout: Sink, stderr: Sink) -> Self {
        Self {
            actions,
            output_file: None,
            summary_file: None,
            scrubber,
            stdout,
            stderr,
            outputs_in_log: false,
        }
    }

    /// The same terminal and mode, without output or summary files; outputs are logged
    /// (for `demo`).
    pub fn detached(&self) -> Self {
        Self {
            output_file: None,
            summary_file: None,
            outputs_in_log: true,
            ..self.clone()
        }
    }

    /// The scrubber shared with the HTTP layer.
    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    /// Whether outputs go to `$GITHUB_OUTPUT` (else they are printed, or logged).
    pub fn writes_output_file(&self) -> bool {
        self.output_file.is_some()
    }

    /// Whether workflow commands are used.
    pub fn in_actions(&self) -> bool {
        self.actions
    }

    fn write(&self, sink: &Sink, line: &str) {
        // A panic elsewhere must not silence the report (the panic hook writes through here).
        let mut w = sink.lock().unwrap_or_else(|p| p.into_inner());
        // Nothing sensible to do if the terminal is gone.
        let _ = writeln!(w, "{line}");
        let _ = w.flush();
    }

    /// Log lines: stdout in Actions (one ordered log), stderr on a terminal (stdout is data).
    fn log_sink(&self) -> &Sink {
        if self.actions {
            &self.stdout
        } else {
            &self.stderr
        }
    }

    /// One safe line of text: see [`printable`].
    fn line(&self, msg: &str) -> String {
        printable(&self.scrubber, msg, MAX_LINE)
    }

    /// One safe line, never cut: an output value (SPEC §7: outputs list every item).
    fn whole_line(&self, msg: &str) -> String {
        printable(&self.scrubber, msg, usize::MAX)
    }

    /// Registers a secret value: `::add-mask::` in Actions (the only line that ever carries a
    /// value), and scrubbing everywhere. The value must be one line without blanks (tokens
    /// are checked for that before they are used); see [`Report::mask_lines`] otherwise.
    pub fn mask(&self, value: &SecretString) {
        self.scrubber.add(value);
        if self.actions {
            // The runner un-escapes command data (`%25`, `%0D`, `%0A`).
            self.write(
                &self.stdout,
                &format!("::add-mask::{}", escape_data(value.expose_secret())),
            );
        }
    }

    /// Masks a value that is not one clean line (a malformed token from a server), piece by
    /// piece: every line and every blank-separated word, so no part of it can show.
    pub fn mask_lines(&self, value: &SecretString) {
        let v = value.expose_secret();
        for piece in v
            .split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|p| !p.is_empty())
        {
            self.mask(&SecretString::from(piece.to_string()));
        }
    }

    /// One human-readable progress line.
    pub fn step(&self, msg: &str) {
        self.write(self.log_sink(), &self.line(msg));
    }

    /// A warning: `::warning::` in Actions.
    pub fn warning(&self, msg: &str) {
        self.annotate("warning", msg);
    }

    /// A failure: `::error::` in Actions.
    pub fn error(&self, msg: &str) {
        self.annotate("error", msg);
    }

    /// `::<kind>::msg` in Actions, `<kind>: msg` on stderr otherwise.
    fn annotate(&self, kind: &str, msg: &str) {
        let msg = self.line(msg);
        if self.actions {
            self.write(&self.stdout, &format!("::{kind}::{}", escape_data(&msg)));
        } else {
            self.write(&self.stderr, &format!("{kind}: {msg}"));
        }
    }

    /// Starts a collapsible group in Actions.
    pub fn group(&self, title: &str) {
        if self.actions {
            self.write(
                &self.stdout,
                &format!("::group::{}", escape_data(&self.line(title))),
            );
        }
    }

    /// Ends the group.
    pub fn end_group(&self) {
        if self.actions {
            self.write(&self.stdout, "::endgroup::");
        }
    }

    /// Data for the user (e.g. `list`): always stdout.
    pub fn data(&self, line: &str) {
        self.write(&self.stdout, &self.line(line));
    }

    /// A JSON document (`--json`) on stdout, whole: serde escapes every control character, so
    /// it is one line; it is scrubbed, and `##[` (the runner's older command syntax, seen
    /// anywhere in a line) is written `##\u005b`, which decodes to the same text. Never cut.
    pub fn json(&self, doc: &serde_json::Value) {
        let text = self
            .scrubber
            .scrub(&doc.to_string())
            .replace("##[", "##\\u005b");
        self.write(&self.stdout, &text);
    }

    /// A document the tool wrote itself from its own tables (completions, the man page): on
    /// stdout as it is, lines, tabs and all; only scrubbed. Never for outside text.
    pub fn document(&self, text: &str) {
        self.write(&self.stdout, &self.scrubber.scrub(text));
    }

    /// Makes a panic print a scrubbed one-line message instead of the default report, which
    /// could quote a value (a panic is a bug; it must not also be a leak).
    pub fn install_panic_hook(&self) {
        let report = self.clone();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            report.error(&format!(
                "internal error (a bug in seqera-token-rotate{at}; please report it): {payload}"
            ));
        }));
    }

    /// Writes outputs to `$GITHUB_OUTPUT` (multi-line safe); on a terminal without it, prints
    /// them as `name=value` lines on stdout. `secret` (the opt-in `access-key`) is only ever
    /// written to the file.
    pub fn outputs(
        &self,
        outputs: &[(&str, String)],
        secret: Option<(&str, &SecretString)>,
    ) -> std::io::Result<()> {
        let Some(path) = &self.output_file else {
            if self.outputs_in_log {
                let all: Vec<String> = outputs
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.replace('\n', "; ")))
                    .collect();
                self.step(&format!("Outputs: {}", all.join(" ")));
                return Ok(());
            }
            for (k, v) in outputs {
                let line = self.whole_line(&format!("{k}={}", v.replace('\n', "; ")));
                self.write(&self.stdout, &line);
            }
            if secret.is_some() {
                self.warning("expose-access-key: GITHUB_OUTPUT is not set, so the access-key output was not written");
            }
            return Ok(());
        };
        let mut text = String::new();
        let mut add = |k: &str, v: &str| {
            let mut delim = format!("ghadelimiter_{}", rand::random::<u64>());
            while v.contains(&delim) {
                delim = format!("ghadelimiter_{}", rand::random::<u64>());
            }
            text.push_str(&format!("{k}<<{delim}\n{v}\n{delim}\n"));
        };
        for (k, v) in outputs {
            // A list output (`problems`) keeps one item per line; each line is made safe.
            let safe = if MULTI_LINE_OUTPUTS.contains(k) {
                v.split('\n')
                    .map(|l| self.whole_line(l))
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                self.whole_line(v)
            };
            add(k, &safe);
        }
        if let Some((k, v)) = secret {
            add(k, v.expose_secret());
        }
        let mut f = OpenOptions::new().create(true).append(true).open(path)?;
        f.write_all(text.as_bytes())
    }

    /// Appends Markdown to the job summary, if there is one.
    pub fn summary(&self, markdown: &str) -> std::io::Result<()> {
        if let Some(path) = &self.summary_file {
            let mut f = OpenOptions::new().create(true).append(true).open(path)?;
            f.write_all(self.scrubber.scrub(markdown).as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Buf = Arc<Mutex<Vec<u8>>>;

    fn capture(actions: bool) -> (Report, Buf, Buf) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let r = Report::with_sinks(actions, Scrubber::default(), out.clone(), err.clone());
        (r, out, err)
    }

    fn text(b: &Buf) -> String {
        String::from_utf8(b.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn actions_mode_masks_first_and_scrubs_the_rest() {
        let (r, out, err) = capture(true);
        let v = SecretString::from("eyJ0aWQiOjF9.abc123");
        r.mask(&v);
        r.step("created eyJ0aWQiOjF9.abc123");
        r.error("bad\nthing 100%");
        r.group("Store");
        r.end_group();
        assert_eq!(
            text(&out),
            "::add-mask::eyJ0aWQiOjF9.abc123\ncreated ***\n::error::bad thing 100%25\n::group::Store\n::endgroup::\n"
        );
        assert_eq!(text(&err), "");
    }

    // Issue 9, defect 2: server text reached stdout verbatim and could start workflow
    // commands (`::stop-commands::`), and a value with a line break split `::add-mask::`.
    #[test]
    fn server_text_never_starts_a_workflow_command() {
        let (r, out, _) = capture(true);
        r.step("Seqera user ci-bot\n::stop-commands::x\n::warning::y (id 1)");
        r.data("::error::from a server");
        r.error("x\r\n::add-mask::y");
        r.group("g\n::endgroup::");
        r.mask_lines(&SecretString::from("abcdefgh\n::warning::tail-of-value"));
        let text = text(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "Seqera user ci-bot ::stop-commands::x ::warning::y (id 1)",
                "> ::error::from a server",
                "::error::x  ::add-mask::y",
                "::group::g ::endgroup::",
                "::add-mask::abcdefgh",
                "::add-mask::::warning::tail-of-value",
            ]
        );
        // The value's pieces are scrubbed from everything later.
        r.step("abcdefgh ::warning::tail-of-value");
        let after = super::tests::text(&out);
        assert!(after.ends_with("*** ***\n"), "{after}");
    }

    #[test]
    fn json_documents_stay_whole_valid_and_inert() {
        let (r, out, _) = capture(true);
        r.mask(&SecretString::from("tok-0123456789abcdef-xyz"));
        let names: Vec<String> = (0..300)
            .map(|i| format!("ci-{i}\n::warning::x ##[add-mask]y tok-0123456789abcdef-xyz"))
            .collect();
        let doc = serde_json::json!({ "tokens": names });
        r.json(&doc);
        let text = text(&out);
        let line = text.lines().nth(1).unwrap();
        assert_eq!(text.lines().count(), 2, "one line after the mask");
        assert!(line.len() > 4000, "not cut");
        assert!(
            !line.contains("##[") && !line.contains("tok-0123456789"),
            "{line}"
        );
        let back: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            back["tokens"][7], "ci-7\n::warning::x ##[add-mask]y ***",
            "same text, secret scrubbed"
        );
    }

    #[test]
    fn add_mask_data_is_escaped_like_other_command_data() {
        let (r, out, _) = capture(true);
        r.mask(&SecretString::from("ab%0Acd%25"));
        assert_eq!(text(&out), "::add-mask::ab%250Acd%2525\n");
    }

    #[test]
    fn terminal_mode_prints_no_workflow_commands() {
        let (r, out, err) = capture(false);
        r.mask(&SecretString::from("value-1234"));
        r.step("uses value-1234");
        r.error("failed");
        r.group("x");
        assert_eq!(text(&out), "");
        assert_eq!(text(&err), "uses ***\nerror: failed\n");
    }

    #[test]
    fn outputs_use_delimiters_and_keep_the_secret_out_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, _, _) = capture(true);
        r.output_file = Some(dir.path().join("out"));
        r.mask(&SecretString::from("the-value-xyz"));
        let v = SecretString::from("the-value-xyz");
        r.outputs(
            &[
                ("rotated", "true".into()),
                ("problems", "a\nb the-value-xyz".into()),
                ("token-name", "x\n::warning::y".into()),
            ],
            Some(("access-key", &v)),
        )
        .unwrap();
        let s = std::fs::read_to_string(dir.path().join("out")).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[0].starts_with("rotated<<ghadelimiter_"));
        assert_eq!(lines[1], "true");
        assert_eq!(lines[4], "a", "a list output keeps its lines");
        assert_eq!(lines[5], "b ***");
        assert_eq!(lines[8], "x ::warning::y", "any other output is one line");
        assert_eq!(
            lines[11], "the-value-xyz",
            "opt-in access-key is written verbatim"
        );
    }

    // Issue 15, defect 5: `updated-targets` (and `revoked-token-ids`) were cut at 4,000
    // characters, ending in a bogus label; SPEC §7: outputs list every item.
    #[test]
    fn outputs_are_never_cut_at_4000_characters() {
        let targets: Vec<String> = (0..300).map(|i| format!("repo:octo/app-{i:04}")).collect();
        let ids: Vec<String> = (0..2000).map(|i| (1_000_000 + i).to_string()).collect();
        let (targets, ids) = (targets.join(","), ids.join(","));
        assert!(targets.len() > 4000 && ids.len() > 4000);
        let outputs = [
            ("updated-targets", targets.clone()),
            ("revoked-token-ids", ids.clone()),
        ];
        // In Actions: the output file.
        let dir = tempfile::tempdir().unwrap();
        let (mut r, _, _) = capture(true);
        r.output_file = Some(dir.path().join("out"));
        r.outputs(&outputs, None).unwrap();
        let s = std::fs::read_to_string(dir.path().join("out")).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[1], targets);
        assert_eq!(lines[4], ids);
        // On a terminal: `name=value` lines on stdout.
        let (r, out, _) = capture(false);
        r.outputs(&outputs, None).unwrap();
        assert_eq!(
            text(&out),
            format!("updated-targets={targets}\nrevoked-token-ids={ids}\n")
        );
    }
}
