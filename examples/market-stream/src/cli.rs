//! The command line: `--listen`, then the options every resource server built on
//! `portcullis-verify` has ([`ApiArgs`]: the contract shared with `bank-api` and the end-to-end
//! tests). Every option also comes from an environment variable `RESOURCE_SERVER_<OPTION>`; an
//! option given twice takes the last value (the tests put defaults first and override them).

use std::net::SocketAddr;

use clap::Parser;
use portcullis_verify::cli::ApiArgs;

/// A WebSocket resource server of market data built on portcullis-verify: ticks of EURUSD,
/// GBPUSD, USDJPY, BTCEUR and XAUUSD at wss://<public-url>/stream for tokens with the scopes
/// ticks:<INSTRUMENT>, sessions closed when their token expires or is revoked.
#[derive(Debug, Parser)]
#[command(name = "market-stream", version, about, args_override_self = true)]
pub struct Args {
    /// The HTTPS listener; port 0 picks a free port (printed in the ready line).
    #[arg(
        long,
        env = "RESOURCE_SERVER_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8444"
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
    fn the_command_line_is_consistent_and_listens_on_8444_by_default() {
        Args::command().debug_assert();
        let parsed =
            Args::try_parse_from(["market-stream", "--issuer", "i", "--resource", "r"]).unwrap();
        assert_eq!(parsed.listen.to_string(), "127.0.0.1:8444");
    }
}
