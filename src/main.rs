//! The binary: parse the command line, run the command, exit 0 / 1 / 2.

use std::process::ExitCode;

use seqera_token_rotate::{app, http::Scrubber, report::Report, settings};

fn main() -> ExitCode {
    // clap exits 2 on a usage error and 0 for --help / --version.
    let matches = settings::command().get_matches();
    let report = Report::from_env(Scrubber::default());
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
    let env = |k: &str| std::env::var(k).ok();
    ExitCode::from(runtime.block_on(app::run(&matches, &env, &report)))
}
