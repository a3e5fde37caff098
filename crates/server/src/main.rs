//! The `portcullis` binary: installs the aws-lc-rs TLS provider, parses the command line and runs
//! the command. Errors are printed as one line on standard error; the exit code is 2 for
//! configuration problems and 1 for anything else.

use std::process::ExitCode;

use clap::Parser as _;
use portcullis_server::cli::{self, Cli};

fn main() -> ExitCode {
    // DESIGN.md, TLS: the provider is installed before anything else touches rustls.
    if rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("error: a TLS crypto provider was already installed");
        return ExitCode::from(1);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code)
        }
    }
}
