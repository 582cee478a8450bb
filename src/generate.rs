//! The hidden `generate` command: shell completions and the man page, rendered from the very
//! command line that parses the flags ([`settings::command`]), so they list exactly the
//! settings of [`settings::SETTINGS`] and can never drift from `--help`. The release workflow
//! ships its output in every archive; it is hidden because it is for packagers, not for a
//! rotation.

use clap::{Arg, ArgMatches, Command};
use clap_complete::Shell;

use crate::app::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::report::Report;
use crate::settings;

/// `generate completions <SHELL>` and `generate man`.
pub fn command() -> Command {
    Command::new("generate")
        .hide(true)
        .about("Print shell completions or the man page, for packagers")
        .subcommand_required(true)
        .subcommand(
            Command::new("completions")
                .about("Print the completion script of a shell")
                .arg(
                    Arg::new("shell")
                        .required(true)
                        .value_name("SHELL")
                        .value_parser(clap::value_parser!(Shell)),
                ),
        )
        .subcommand(Command::new("man").about("Print the man page (roff), section 1"))
}

/// What `generate` prints, as text.
pub fn render(sub: &ArgMatches) -> Result<String, String> {
    let mut cmd = settings::command();
    let mut buf = Vec::new();
    match sub.subcommand() {
        Some(("completions", m)) => {
            let shell = *m.get_one::<Shell>("shell").expect("required");
            let name = cmd.get_name().to_string();
            clap_complete::generate(shell, &mut cmd, name, &mut buf);
        }
        Some(("man", _)) => clap_mangen::Man::new(cmd)
            .render(&mut buf)
            .map_err(|e| format!("cannot render the man page: {e}"))?,
        _ => return Err("say `generate completions <SHELL>` or `generate man`".into()),
    }
    String::from_utf8(buf).map_err(|e| format!("generated text is not UTF-8: {e}"))
}

/// Runs `generate`: the text goes to stdout through [`Report::document`].
pub fn run(sub: &ArgMatches, out: &Report) -> u8 {
    match render(sub) {
        Ok(text) => {
            out.document(text.trim_end_matches('\n'));
            EXIT_OK
        }
        Err(e) if sub.subcommand().is_none() => {
            out.error(&e);
            EXIT_USAGE
        }
        Err(e) => {
            out.error(&e);
            EXIT_FAILED
        }
    }
}
