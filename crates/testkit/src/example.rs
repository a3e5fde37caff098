//! The example resource servers (`examples/bank-api`, `examples/market-stream`), started for a
//! test as `portcullis` is in [`crate::app`]: on ephemeral ports, their standard error kept in a
//! file for failure messages. [`ExampleServer::spawn`] returns once the server printed its ready
//! line (`bank-api ready listen=… public_url=… metrics_listen=…`); dropping the
//! [`ExampleServer`] kills the process.
//!
//! Which binary: `E2E_BANK_API_BIN` / `E2E_MARKET_STREAM_BIN` (set by `scripts/test`), else
//! `target/debug/bank-api` / `target/debug/market-stream` beside the test executable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The prefix of the examples' environment variables (`RESOURCE_SERVER_<FLAG>`, from
/// `portcullis_verify::cli::ApiArgs`), which a test clears so that nothing inherited changes the
/// configuration under test.
const ENV_PREFIX: &str = "RESOURCE_SERVER_";

/// Which example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Example {
    /// The REST accounts and payments API.
    BankApi,
    /// The WebSocket market data stream.
    MarketStream,
}

impl Example {
    /// The binary's (and package's) name, which its ready line starts with.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Example::BankApi => "bank-api",
            Example::MarketStream => "market-stream",
        }
    }

    /// The path of the binary.
    #[must_use]
    pub fn binary(self) -> PathBuf {
        let var = match self {
            Example::BankApi => "E2E_BANK_API_BIN",
            Example::MarketStream => "E2E_MARKET_STREAM_BIN",
        };
        if let Ok(path) = std::env::var(var) {
            return PathBuf::from(path);
        }
        // target/debug/deps/<test> → target/debug/<name>
        let exe = std::env::current_exe().expect("current_exe");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable has no target directory");
        let path = dir.join(self.name());
        assert!(
            path.exists(),
            "{} not found; run scripts/test, or `cargo build -p {}` and set {var}",
            path.display(),
            self.name()
        );
        path
    }
}

/// A running example server.
#[derive(Debug)]
pub struct ExampleServer {
    /// The process, killed when the server is dropped (`kill_on_drop`).
    #[expect(
        dead_code,
        reason = "held only so that dropping the server kills the process"
    )]
    child: Child,
    /// Which example it is.
    pub example: Example,
    /// The main (HTTPS) listener.
    pub listen: SocketAddr,
    /// The URL its clients use (`https://127.0.0.1:<port>` unless told otherwise): the base of
    /// DPoP proofs' `htu`.
    pub public_url: String,
    /// The plain-HTTP metrics listener (`GET /metrics`, `GET /feed`).
    pub metrics_listen: SocketAddr,
    /// Where its standard error goes.
    pub stderr_file: PathBuf,
}

impl ExampleServer {
    /// Starts `example` with `args` (`--listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0` come
    /// first, so `args` may override them) and waits up to 60 s for its ready line. Its standard
    /// error goes to a file in `dir`.
    ///
    /// # Panics
    /// When the process cannot start or exits or stays silent without its ready line; the
    /// message holds its standard error.
    pub async fn spawn(example: Example, args: &[String], dir: &Path) -> ExampleServer {
        std::fs::create_dir_all(dir).expect("cannot create the example's directory");
        let stderr_file = dir.join(format!(
            "{}-stderr-{}.log",
            example.name(),
            uuid::Uuid::new_v4().simple()
        ));
        let mut command = Command::new(example.binary());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with(ENV_PREFIX) {
                command.env_remove(key);
            }
        }
        command
            .env("RUST_LOG", "info")
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_file).expect("stderr file"))
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", example.name()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let prefix = format!("{} ready ", example.name());
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with(&prefix) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(ready) = ready else {
            let _ = child.start_kill();
            let status = child.wait().await.ok();
            let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
            panic!(
                "{} did not become ready (exit: {status:?}); stderr:\n{stderr}",
                example.name()
            );
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let field = |name: &str| {
            ready
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("ready line lacks {name}: {ready}"))
                .to_owned()
        };
        ExampleServer {
            child,
            example,
            listen: field("listen").parse().expect("listen"),
            public_url: field("public_url").trim_end_matches('/').to_owned(),
            metrics_listen: field("metrics_listen").parse().expect("metrics_listen"),
            stderr_file,
        }
    }

    /// The URL of `path` at this server (also the `htu` of a DPoP proof for it).
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }

    /// What the server wrote to standard error so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }
}
