//! The real `portcullis` binary, started for a test: on ephemeral ports, with its own data
//! directory and database, over real TLS. [`App::spawn`] returns once the server printed its
//! ready line; dropping the [`App`] kills the process.
//!
//! Which binary: `E2E_PORTCULLIS_BIN` (built with the `test-hooks` feature, so tests can move the
//! server's clock) and `E2E_PORTCULLIS_PLAIN_BIN` (built without it), both set by `scripts/test`.
//! Without them, `target/debug/portcullis-test-hooks` and `target/debug/portcullis` beside the
//! test executable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::certs::ClientIdentity;

/// Which build of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Built with `--features test-hooks`.
    TestHooks,
    /// Built as users get it.
    Plain,
}

/// `serve` options that put every listener on a free loopback port.
pub const EPHEMERAL_LISTENERS: [&str; 6] = [
    "--listen",
    "127.0.0.1:0",
    "--mtls-listen",
    "127.0.0.1:0",
    "--metrics-listen",
    "127.0.0.1:0",
];

/// The path of the binary.
#[must_use]
pub fn binary(build: Build) -> PathBuf {
    let (var, name) = match build {
        Build::TestHooks => ("E2E_PORTCULLIS_BIN", "portcullis-test-hooks"),
        Build::Plain => ("E2E_PORTCULLIS_PLAIN_BIN", "portcullis"),
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
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found; run scripts/test, or build it and set {var}",
        path.display()
    );
    path
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which build.
    pub build: Build,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The database; `None` for the embedded SQLite default in the data directory.
    pub database_url: Option<String>,
    /// Extra command-line arguments for `serve`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Options {
    /// The test-hooks build on a data directory, SQLite by default.
    #[must_use]
    pub fn new(data_dir: &Path) -> Self {
        Self {
            build: Build::TestHooks,
            data_dir: data_dir.to_owned(),
            database_url: None,
            args: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// A command for the binary with a clean environment: no inherited `PORTCULLIS_*` variable can
/// change the configuration under test.
#[must_use]
pub fn command(build: Build) -> Command {
    let mut command = Command::new(binary(build));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PORTCULLIS_") {
            command.env_remove(key);
        }
    }
    command
        .env("PORTCULLIS_LOG__FORMAT", "text")
        .env("RUST_LOG", "warn");
    command
}

/// The result of a CLI command.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `portcullis <args>` to completion.
pub async fn run_cli(build: Build, args: &[&str], env: &[(&str, &str)]) -> CliOutput {
    let mut command = command(build);
    command.args(args).stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("portcullis CLI did not finish within 120 s")
        .expect("cannot run portcullis");
    CliOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `portcullis <args>` to completion with `stdin` as its standard input (closed after it).
pub async fn run_cli_with_stdin(
    build: Build,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &[u8],
) -> CliOutput {
    use tokio::io::AsyncWriteExt as _;
    let mut command = command(build);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("cannot run portcullis");
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    // Written beside the output being read, so neither side can block on a full pipe. The
    // command may exit before reading everything (bad arguments): a broken pipe is fine.
    tokio::spawn(async move {
        let _ = input.write_all(&stdin).await;
    });
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("portcullis CLI did not finish within 120 s")
        .expect("cannot run portcullis");
    CliOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A running server.
#[derive(Debug)]
pub struct App {
    child: Child,
    /// The issuer it reported.
    pub issuer: String,
    /// Main listener.
    pub listen: SocketAddr,
    /// mTLS listener.
    pub mtls_listen: SocketAddr,
    /// Metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// The development CA certificate (PEM), when in use.
    pub ca_pem: Option<Vec<u8>>,
    /// Where its standard error goes.
    pub stderr_file: PathBuf,
}

impl App {
    /// Starts the server and waits (up to 60 s) for its ready line.
    pub async fn spawn(options: Options) -> App {
        crate::install_crypto_provider();
        std::fs::create_dir_all(&options.data_dir).expect("cannot create the data directory");
        let stderr_file = options
            .data_dir
            .join(format!("stderr-{}.log", uuid::Uuid::new_v4().simple()));
        let mut command = command(options.build);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&options.data_dir)
            .args(EPHEMERAL_LISTENERS)
            .args(&options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_file).expect("stderr file"))
            .kill_on_drop(true);
        if let Some(url) = &options.database_url {
            command.arg("--database-url").arg(url);
        }
        for (k, v) in &options.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("cannot start portcullis");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("portcullis ready ") {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(ready) = ready else {
            let _ = child.kill().await;
            let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
            panic!("portcullis did not become ready; stderr:\n{stderr}");
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
        let ca = field("ca");
        App {
            child,
            issuer: field("issuer"),
            listen: field("listen").parse().expect("listen"),
            mtls_listen: field("mtls_listen").parse().expect("mtls_listen"),
            metrics_listen: field("metrics_listen").parse().ok(),
            ca_pem: (ca != "none").then(|| std::fs::read(&ca).expect("cannot read the CA file")),
            stderr_file,
        }
    }

    /// The URL of `path` on the main listener.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The URL of `path` on the mTLS listener.
    #[must_use]
    pub fn mtls_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.mtls_listen.port())
    }

    /// An HTTPS client that trusts only the server's development CA, optionally with a client
    /// certificate.
    #[must_use]
    pub fn client(&self, identity: Option<&ClientIdentity>) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(
            self.ca_pem.as_deref().expect("no development CA in use"),
        )
        .expect("CA PEM");
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([ca])
            .https_only(true)
            .timeout(Duration::from_secs(30));
        if let Some(identity) = identity {
            builder = builder.identity(identity.reqwest_identity());
        }
        builder.build().expect("reqwest client")
    }

    /// `GET path` on the main listener, as JSON.
    pub async fn get_json(
        &self,
        path: &str,
    ) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Value) {
        let response = self
            .client(None)
            .get(self.url(path))
            .send()
            .await
            .expect("request failed");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.expect("response is not JSON");
        (status, headers, body)
    }

    /// `POST path` with a JSON body, as JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> (reqwest::StatusCode, Value) {
        let response = self
            .client(None)
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request failed");
        let status = response.status();
        (status, response.json().await.expect("response is not JSON"))
    }

    /// Moves the server's clock forward (test-hooks build only).
    pub async fn advance_clock(&self, seconds: i64) {
        let (status, body) = self
            .post_json(
                "/__test/clock",
                &serde_json::json!({"advance_secs": seconds}),
            )
            .await;
        assert!(status.is_success(), "clock control failed: {status} {body}");
    }

    /// What the server wrote to standard error so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn stop(mut self) -> ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("portcullis did not stop within 30 s of SIGTERM")
            .expect("wait failed")
    }
}
