//! A demo client of `market-stream` (the README's "Example: market-stream"): gets a DPoP-bound
//! access token from Portcullis by client credentials (`private_key_jwt`, RFC 7523; DPoP,
//! RFC 9449), opens `wss://…/stream` with `Authorization: DPoP <token>` and a proof for
//! `GET <url>`, subscribes, and prints every message until the server closes the session;
//! optionally renews the token in band.
//!
//! ```text
//! cargo run -p market-stream --example client -- --issuer https://localhost:8443 \
//!   --ca-file portcullis-data/tls/ca.pem --client-id <id> --key-file tpp/client.jwk \
//!   --resource https://stream.bank.example/ticks --scope "ticks:EURUSD" \
//!   --url https://127.0.0.1:8445/stream --instruments EURUSD
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use portcullis_jose::{SigningAlg, SigningKey, dpop};
use rustls_pki_types::ServerName;
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};

/// The client-assertion type of RFC 7523 §2.2.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A demo client of market-stream.
#[derive(Debug, Parser)]
struct Args {
    /// The Portcullis issuer.
    #[arg(long)]
    issuer: String,
    /// The CA of Portcullis's TLS certificate (portcullis-data/tls/ca.pem).
    #[arg(long)]
    ca_file: PathBuf,
    /// The CA of market-stream's certificate (default: --ca-file).
    #[arg(long)]
    stream_ca_file: Option<PathBuf>,
    /// The client (private_key_jwt, DPoP-bound tokens, client_credentials).
    #[arg(long, allow_hyphen_values = true)]
    client_id: String,
    /// Its private ES256 JWK (as `portcullis-load keygen` writes it).
    #[arg(long)]
    key_file: PathBuf,
    /// The stream's resource identifier (the token's `aud`).
    #[arg(long)]
    resource: String,
    /// The scopes to ask for.
    #[arg(long, default_value = "ticks:EURUSD")]
    scope: String,
    /// The stream's URL as market-stream publishes it (its ready line's public_url + /stream).
    #[arg(long, default_value = "https://127.0.0.1:8444/stream")]
    url: String,
    /// Instruments to subscribe to, comma-separated.
    #[arg(long, default_value = "EURUSD", value_delimiter = ',')]
    instruments: Vec<String>,
    /// Renew the token in band after this many seconds (repeatedly).
    #[arg(long)]
    renew_after_secs: Option<u64>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// 128 random bits, hex: a `jti`.
fn random_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The client's side of the token endpoint.
struct Client {
    http: reqwest::Client,
    issuer: String,
    token_endpoint: String,
    client_id: String,
    key: SigningKey,
    nonce: Option<String>,
}

impl Client {
    async fn new(args: &Args) -> anyhow::Result<Self> {
        let ca = std::fs::read(&args.ca_file).context("--ca-file")?;
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
            .https_only(true)
            .timeout(Duration::from_secs(30))
            .build()?;
        let jwk = std::fs::read(&args.key_file).context("--key-file")?;
        let key = SigningKey::from_private_jwk_json(SigningAlg::Es256, &jwk)?;
        let issuer = args.issuer.trim_end_matches('/').to_owned();
        let metadata: Value = http
            .get(format!("{issuer}/.well-known/oauth-authorization-server"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let Some(token_endpoint) = metadata.get("token_endpoint").and_then(Value::as_str) else {
            bail!("the metadata names no token_endpoint");
        };
        Ok(Self {
            http,
            token_endpoint: token_endpoint.to_owned(),
            issuer,
            client_id: args.client_id.clone(),
            key,
            nonce: None,
        })
    }

    /// A DPoP proof for `method url`, with `ath` for `token` if given.
    fn proof(&self, method: &str, url: &str, token: Option<&str>) -> anyhow::Result<String> {
        let nonce = if token.is_none() {
            self.nonce.as_deref()
        } else {
            None
        };
        Ok(dpop::make_proof(
            &self.key,
            method,
            url,
            token,
            nonce,
            now(),
            &random_id()?,
        )?)
    }

    /// A DPoP-bound access token by client credentials (one retry if the server wants a nonce).
    async fn token(&mut self, scope: &str, resource: &str) -> anyhow::Result<String> {
        for _ in 0..2 {
            let mut claims = Map::new();
            claims.insert("iss".into(), self.client_id.clone().into());
            claims.insert("sub".into(), self.client_id.clone().into());
            claims.insert("aud".into(), self.issuer.clone().into());
            claims.insert("jti".into(), random_id()?.into());
            claims.insert("iat".into(), now().into());
            claims.insert("exp".into(), (now() + 60).into());
            let assertion = self.key.sign_jwt("JWT", &claims)?;
            let proof = self.proof("POST", &self.token_endpoint, None)?;
            let response = self
                .http
                .post(&self.token_endpoint)
                .header("DPoP", proof)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", scope),
                    ("resource", resource),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &assertion),
                ])
                .send()
                .await?;
            let nonce = response
                .headers()
                .get("dpop-nonce")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let status = response.status();
            let body: Value = response.json().await?;
            if status.is_success() {
                let Some(token) = body.get("access_token").and_then(Value::as_str) else {
                    bail!("no access_token in {body}");
                };
                return Ok(token.to_owned());
            }
            let error = body.get("error").and_then(Value::as_str);
            if error == Some("use_dpop_nonce") && nonce.is_some() {
                self.nonce = nonce;
                continue;
            }
            bail!("the token endpoint answered {status}: {body}");
        }
        bail!("the token endpoint kept asking for a DPoP nonce")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = Args::parse();
    let mut client = Client::new(&args).await?;
    let token = client.token(&args.scope, &args.resource).await?;
    eprintln!("got a DPoP-bound access token for {}", args.scope);

    // TLS to the stream (HTTP/1.1: a WebSocket upgrade), then the upgrade with the token.
    let url = url::Url::parse(&args.url).context("--url")?;
    let host = url.host_str().context("--url has no host")?.to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let ca_file = args.stream_ca_file.as_ref().unwrap_or(&args.ca_file);
    let ca = std::fs::read(ca_file).context("--stream-ca-file")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
        roots.add(cert?)?;
    }
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    let server_name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(server_name, tcp)
        .await?;
    let mut request = format!("wss://{host}:{port}{}", url.path()).into_client_request()?;
    let headers = request.headers_mut();
    headers.insert("authorization", format!("DPoP {token}").parse()?);
    headers.insert(
        "dpop",
        client.proof("GET", &args.url, Some(&token))?.parse()?,
    );
    let (mut ws, _) = match tokio_tungstenite::client_async(request, stream).await {
        Ok(connected) => connected,
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            bail!(
                "the upgrade was refused: {} {}",
                response.status(),
                String::from_utf8_lossy(body)
            );
        }
        Err(e) => return Err(e.into()),
    };
    let subscribe = json!({"type": "subscribe", "instruments": args.instruments});
    ws.send(Message::text(subscribe.to_string())).await?;

    let renew_every = args.renew_after_secs.map(Duration::from_secs);
    let mut renew_at = renew_every.map(|every| tokio::time::Instant::now() + every);
    loop {
        let renewal = async {
            match renew_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => println!("{text}"),
                Some(Ok(Message::Close(frame))) => {
                    match frame {
                        Some(frame) => println!("closed: {} {}", u16::from(frame.code), frame.reason),
                        None => println!("closed"),
                    }
                    return Ok(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            () = renewal => {
                let fresh = client.token(&args.scope, &args.resource).await?;
                let proof = client.proof("GET", &args.url, Some(&fresh))?;
                let renew = json!({"type": "renew", "access_token": fresh, "dpop": proof});
                ws.send(Message::text(renew.to_string())).await?;
                renew_at = renew_every.map(|every| tokio::time::Instant::now() + every);
            }
        }
    }
}
