//! The binary: parse the command line, run the command, exit 0 / 1 / 2.

use std::env::VarError;
use std::process::ExitCode;

use seqera_token_rotate::{app, http::Scrubber, report::Report, settings};

fn main() -> ExitCode {
    let report = Report::from_env(Scrubber::default());
    report.install_panic_hook();
    let matches = match settings::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return ExitCode::from(app::command_line_error(&e, &report)),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            report.error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(app::EXIT_FAILED);
        }
    };
    // A value that is not UTF-8 is invalid, never unset (SPEC §2).
    let env = |k: &str| match std::env::var(k) {
        Ok(v) => Some(v),
        Err(VarError::NotPresent) => None,
        Err(VarError::NotUnicode(_)) => Some(settings::NOT_UNICODE.to_string()),
    };
    ExitCode::from(runtime.block_on(app::run(&matches, &env, &report)))
}
