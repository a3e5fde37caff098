//! The command line: `--listen`, then the options every resource server built on
//! `portcullis-verify` has ([`ApiArgs`]: the contract shared with `market-stream` and the
//! end-to-end tests). Every option also comes from an environment variable
//! `RESOURCE_SERVER_<OPTION>`; an option given twice takes the last value (the tests put defaults
//! first and override them).

use std::net::SocketAddr;

use clap::Parser;
use portcullis_verify::cli::ApiArgs;

/// Example REST resource server of a bank: accounts and payments for Portcullis access tokens.
///
/// Prints one line to standard output once it is ready:
/// `bank-api ready listen=… public_url=… metrics_listen=…`; logs go to standard error.
#[derive(Debug, Parser)]
#[command(name = "bank-api", version, args_override_self = true)]
pub struct Cli {
    /// The HTTPS listener; port 0 picks a free port.
    #[arg(
        long,
        env = "RESOURCE_SERVER_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8443"
    )]
    pub listen: SocketAddr,

    /// The options shared with every resource server built on portcullis-verify.
    #[command(flatten)]
    pub api: ApiArgs,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent_and_listens_on_8443_by_default() {
        Cli::command().debug_assert();
        let parsed = Cli::try_parse_from(["bank-api", "--issuer", "i", "--resource", "r"]).unwrap();
        assert_eq!(parsed.listen.to_string(), "127.0.0.1:8443");
    }
}
