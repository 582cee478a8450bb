//! Outside text → printable text (SPEC §8), in one place. Everything a server sends and every
//! input is untrusted: before it reaches a log line, an annotation, an output or the summary it
//! is scrubbed of every known secret (the whole text first, then cut), stripped of line breaks
//! and control characters (so no server can start a workflow command), and, for the summary,
//! escaped for Markdown and HTML. [`Scrubber`] knows the secrets; [`printable`] and
//! [`md_cell`] are the two roads out.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use secrecy::{ExposeSecret, SecretString};

/// Any run of this many characters of a known secret is hidden, wherever it stands: a server
/// that echoes part of a credential (or a cut through one) shows no fragment this long.
pub const FRAGMENT: usize = 16;

/// Known secret values; any text quoted from a server or a library passes through here.
#[derive(Clone, Default)]
pub struct Scrubber(Arc<RwLock<Known>>);

#[derive(Default)]
struct Known {
    values: Vec<SecretString>,
    /// Every `FRAGMENT`-byte window of every value at least that long.
    windows: HashSet<Vec<u8>>,
}

impl Drop for Known {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        for mut w in self.windows.drain() {
            w.zeroize();
        }
    }
}

impl Scrubber {
    /// Remembers a value to hide (values shorter than 4 characters would hide too much).
    pub fn add(&self, value: &SecretString) {
        let v = value.expose_secret();
        if v.len() < 4 {
            return;
        }
        let mut known = self.0.write().unwrap_or_else(|p| p.into_inner());
        if known.values.iter().any(|k| k.expose_secret() == v) {
            return;
        }
        if v.len() >= FRAGMENT {
            for w in v.as_bytes().windows(FRAGMENT) {
                known.windows.insert(w.to_vec());
            }
        }
        known.values.push(value.clone());
    }

    /// Replaces every known value, and every run of [`FRAGMENT`] or more of its characters,
    /// with `***`.
    pub fn scrub(&self, text: &str) -> String {
        let known = self.0.read().unwrap_or_else(|p| p.into_inner());
        let mut out = text.to_string();
        // Whole values first (longest first, so a value containing another goes whole).
        let mut values: Vec<&str> = known.values.iter().map(|v| v.expose_secret()).collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for v in values {
            if out.contains(v) {
                out = out.replace(v, "***");
            }
        }
        if known.windows.is_empty() || out.len() < FRAGMENT {
            return out;
        }
        // Then fragments: mark every byte covered by a window of a secret.
        let bytes = out.as_bytes();
        let mut hidden = vec![false; bytes.len()];
        let mut any = false;
        for (i, w) in bytes.windows(FRAGMENT).enumerate() {
            if known.windows.contains(w) {
                hidden[i..i + FRAGMENT].iter_mut().for_each(|h| *h = true);
                any = true;
            }
        }
        if !any {
            return out;
        }
        let mut result = String::with_capacity(out.len());
        let mut in_hidden = false;
        for (i, c) in out.char_indices() {
            // A character is hidden when any of its bytes is.
            if hidden[i..i + c.len_utf8()].iter().any(|h| *h) {
                if !in_hidden {
                    result.push_str("***");
                    in_hidden = true;
                }
            } else {
                result.push(c);
                in_hidden = false;
            }
        }
        result
    }
}

/// Characters that never reach a log: control characters (C0, DEL, C1 — line breaks, escape
/// sequences), Unicode line and paragraph separators, and bidirectional overrides.
fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Outside text as one safe line: scrubbed whole, control characters and line breaks turned
/// into spaces, workflow-command markers broken, and only then cut to `max` characters.
pub fn printable(scrubber: &Scrubber, text: &str, max: usize) -> String {
    let scrubbed = scrubber.scrub(text);
    let flat: String = scrubbed
        .chars()
        .map(|c| if unprintable(c) { ' ' } else { c })
        .collect();
    // Joining lines can bring a value back together only if the server split it; scrub again.
    let flat = scrubber.scrub(&flat);
    cap(&defuse(&flat), max)
}

/// Breaks workflow-command markers: a line that starts with `::` (after blanks) is a command to
/// the runner, and the runner's older syntax `##[` is recognised anywhere in a line.
fn defuse(line: &str) -> String {
    let mut s = line.replace("##[", "# #[");
    if s.trim_start().starts_with("::") {
        s.insert_str(0, "> ");
    }
    s
}

/// Cuts to `max` characters, marking the cut.
pub fn cap(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// Breaks what GitHub's Markdown would make a link of by itself (an autolink: `https://…`,
/// `www.…`, an e-mail address; also an `@mention`): `://` of any scheme is shown as `[:]//`,
/// `www.` (any case) as `www[.]`, `@` as `[@]` — the usual way to quote a link so that it
/// stays readable but cannot be followed (SPEC §8: no server text becomes a link).
fn defang(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("://") {
            out.push_str("[:]//");
            rest = after;
        } else if rest
            .get(..4)
            .is_some_and(|w| w.eq_ignore_ascii_case("www."))
        {
            out.push_str(&rest[..3]);
            out.push_str("[.]");
            rest = &rest[4..];
        } else {
            if c == '@' {
                out.push_str("[@]");
            } else {
                out.push(c);
            }
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Outside text for a Markdown table cell of the job summary: [`printable`], then escaped so
/// that it shows as the text it is (no HTML, no links — not even autolinks, see [`defang`] —
/// no images, no code spans, no new cell).
pub fn md_cell(scrubber: &Scrubber, text: &str, max: usize) -> String {
    let line = defang(&printable(scrubber, text, max));
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '!' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Outside text shown as code in the summary (`<code>` keeps a backtick from ending it).
pub fn md_code(scrubber: &Scrubber, text: &str, max: usize) -> String {
    format!("<code>{}</code>", md_cell(scrubber, text, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scrubber(values: &[&str]) -> Scrubber {
        let s = Scrubber::default();
        for v in values {
            s.add(&SecretString::from(v.to_string()));
        }
        s
    }

    #[test]
    fn whole_values_and_fragments_are_hidden() {
        let s = scrubber(&["eyJ0aWQiOjF9.0123456789abcdef0123456789abcdef"]);
        assert_eq!(
            s.scrub("a eyJ0aWQiOjF9.0123456789abcdef0123456789abcdef b"),
            "a *** b"
        );
        // A cut through the value: its first 20 characters.
        assert_eq!(s.scrub("token=eyJ0aWQiOjF9.0123456…"), "token=***…");
        // A middle part.
        assert_eq!(s.scrub("x 0123456789abcdef0123 y"), "x *** y");
        // Fewer than FRAGMENT characters stay (they cannot be told from ordinary text).
        assert_eq!(s.scrub("x 0123456789abcde y"), "x 0123456789abcde y");
        assert_eq!(s.scrub("nothing here"), "nothing here");
    }

    #[test]
    fn short_values_are_hidden_whole() {
        let s = scrubber(&["abcdefgh"]);
        assert_eq!(s.scrub("1 abcdefgh 2"), "1 *** 2");
        let s = scrubber(&["abc"]);
        assert_eq!(s.scrub("abc"), "abc", "too short to hide");
    }

    #[test]
    fn printable_is_one_line_without_commands() {
        let s = scrubber(&[]);
        assert_eq!(
            printable(&s, "ci-bot\n::stop-commands::x\n::warning::y", 100),
            "ci-bot ::stop-commands::x ::warning::y"
        );
        assert_eq!(printable(&s, "::error::boom", 100), "> ::error::boom");
        assert_eq!(printable(&s, "  \r::x", 100), ">    ::x");
        assert_eq!(printable(&s, "a ##[error]b", 100), "a # #[error]b");
        assert_eq!(printable(&s, "\u{1b}[31mred\u{1b}[0m", 100), " [31mred [0m");
        assert_eq!(printable(&s, "a\u{2028}b\u{202e}c\u{85}d", 100), "a b c d");
        assert_eq!(printable(&s, "abcdef", 3), "abc…");
    }

    #[test]
    fn summary_cells_show_text_not_markup() {
        let s = scrubber(&[]);
        let cell = md_cell(
            &s,
            "<img src=x onerror=alert(1)> [link](http://e) `x` | y",
            200,
        );
        assert!(!cell.contains('<') && !cell.contains('>'), "{cell}");
        assert!(!cell.contains("](") && !cell.contains(" | "), "{cell}");
        assert!(!cell.contains("`x`"), "{cell}");
        assert_eq!(md_code(&s, "a`b", 10), "<code>a\\`b</code>");
    }

    // Issue 15, defect 8: server text became live links in the job summary (GitHub's
    // Markdown autolinks `https://…` and `www.…`: phishing).
    #[test]
    fn summary_cells_carry_no_autolink() {
        let s = scrubber(&[]);
        let cell = md_cell(
            &s,
            "Sign in at https://evil.example/login, WWW.Evil.Example, ftp://x, mail a@evil.example, ping @admin",
            300,
        );
        assert_eq!(
            cell,
            "Sign in at https\\[:\\]//evil.example/login, WWW\\[.\\]Evil.Example, ftp\\[:\\]//x, mail a\\[@\\]evil.example, ping \\[@\\]admin"
        );
        assert_eq!(
            md_code(&s, "env:octo/app/www.x", 100),
            "<code>env:octo/app/www\\[.\\]x</code>"
        );
        // Unicode around the markers is kept whole.
        assert_eq!(md_cell(&s, "é://ü wwwé. ww", 100), "é\\[:\\]//ü wwwé. ww");
    }

    proptest! {
        /// No cell holds `://`, `www.` (any case) or a bare `@`, whatever the text.
        #[test]
        fn no_cell_holds_an_autolink(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("://".to_string()), Just("www.".to_string()), Just("WwW.".to_string()),
                    Just("@".to_string()), Just(":".to_string()), Just("w".to_string()),
                    Just("/".to_string()), Just(".".to_string()), "\\PC{0,6}",
                ],
                0..16,
            ),
            max in 1usize..100,
        ) {
            let text: String = parts.concat();
            let cell = md_cell(&Scrubber::default(), &text, max);
            prop_assert!(!cell.contains("://"), "{cell:?}");
            prop_assert!(!cell.to_ascii_lowercase().contains("www."), "{cell:?}");
            prop_assert!(cell.matches('@').count() == cell.matches("[@\\]").count(), "{cell:?}");
        }
    }

    fn credential() -> impl Strategy<Value = String> {
        "[A-Za-z0-9+/=._-]{20,90}"
    }

    proptest! {
        /// SPEC §8: for a credential embedded anywhere in any text, cut anywhere, no run of
        /// FRAGMENT of its characters survives.
        #[test]
        fn no_fragment_of_a_credential_survives(
            cred in credential(),
            before in "\\PC{0,400}",
            after in "\\PC{0,400}",
            cut in 0usize..900,
            max in 1usize..600,
        ) {
            let s = scrubber(&[&cred]);
            let body = format!("{before}{cred}{after}");
            let cut_body: String = body.chars().take(cut).collect();
            for text in [&body, &cut_body] {
                let out = printable(&s, text, max);
                for w in cred.as_bytes().windows(FRAGMENT) {
                    let w = std::str::from_utf8(w).unwrap();
                    prop_assert!(!out.contains(w), "fragment {w:?} in {out:?}");
                }
            }
        }

        /// SPEC §8: outside text never starts a workflow command and never spans lines.
        #[test]
        fn outside_text_never_starts_a_command(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("::".to_string()), Just("\n".to_string()), Just("\r".to_string()),
                    Just("\u{2028}".to_string()), Just(" ".to_string()), Just("##[".to_string()),
                    Just("::add-mask::".to_string()), Just("::stop-commands::x".to_string()),
                    "\\PC{0,8}",
                ],
                0..12,
            ),
            max in 1usize..200,
        ) {
            let text: String = parts.concat();
            let out = printable(&Scrubber::default(), &text, max);
            prop_assert!(!out.contains(['\n', '\r', '\u{2028}', '\u{2029}', '\u{85}']), "{:?}", out);
            prop_assert!(!out.trim_start().starts_with("::"), "{out:?}");
            prop_assert!(!out.contains("##["), "{out:?}");
        }
    }
}
