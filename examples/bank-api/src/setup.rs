//! From the command line to what the server runs with: the verifier's configuration (with this
//! API's own client), the HTTPS identity, and the public URL. Every problem is an error naming
//! the option and the file, reported before anything listens.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use portcullis_verify::tls::ServerIdentity;
use portcullis_verify::{
    ClientAuth, ClientCredentials, ClientIdentityPem, FeedConfig, IntrospectionMode, LagPolicy,
    VerifierConfig,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::cli::{Cli, OnLag};

/// The `realm` of this API's challenges.
const REALM: &str = "bank-api";

/// The verifier's configuration from the command line.
///
/// # Errors
/// When a client file cannot be read, or the options do not fit together.
pub fn verifier_config(cli: &Cli) -> anyhow::Result<VerifierConfig> {
    let mut config = VerifierConfig::new(&cli.issuer, &cli.resource);
    config.realm = REALM.into();
    config.ca_files.clone_from(&cli.ca_files);
    config.jwks_min_refresh = Duration::from_secs(cli.jwks_min_refresh_secs);
    config.client = client(cli)?;
    if cli.introspect_all {
        config.introspection = IntrospectionMode::Always;
    }
    config.feed = if cli.no_feed {
        None
    } else {
        if config.client.is_none() {
            bail!(
                "the revocation feed needs this API's own client: give --client-id with \
                 --client-cert and --client-key (or --client-jwk), or pass --no-feed"
            );
        }
        Some(FeedConfig {
            max_lag: Duration::from_secs(cli.feed_max_lag_secs),
            on_lag: match cli.on_lag {
                OnLag::Introspect => LagPolicy::Introspect,
                OnLag::Refuse => LagPolicy::Refuse,
            },
            endpoint: cli.events_url.clone(),
            ..FeedConfig::default()
        })
    };
    Ok(config)
}

fn read(path: &Path, option: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{option} {}", path.display()))
}

/// This API's client at the authorization server, if one is given.
fn client(cli: &Cli) -> anyhow::Result<Option<ClientCredentials>> {
    let auth = match (&cli.client_cert, &cli.client_key, &cli.client_jwk) {
        (Some(cert), Some(key), None) => {
            let cert_pem = read(cert, "--client-cert")?;
            let key_pem = read(key, "--client-key")?;
            let identity = ClientIdentityPem::from_pem(&cert_pem, &key_pem).with_context(|| {
                format!(
                    "--client-cert {} / --client-key {}",
                    cert.display(),
                    key.display()
                )
            })?;
            ClientAuth::Certificate(identity)
        }
        (None, None, Some(jwk)) => {
            let json = zeroize::Zeroizing::new(read(jwk, "--client-jwk")?);
            ClientAuth::private_key_jwt_from_jwk_json(&json)
                .with_context(|| format!("--client-jwk {}", jwk.display()))?
        }
        (None, None, None) => {
            if cli.client_id.is_some() {
                bail!("--client-id needs --client-cert and --client-key, or --client-jwk");
            }
            return Ok(None);
        }
        _ => bail!("give either --client-cert with --client-key, or --client-jwk"),
    };
    let client_id = cli
        .client_id
        .clone()
        .context("--client-id is needed with the client's credentials")?;
    Ok(Some(ClientCredentials { client_id, auth }))
}

/// The HTTPS identity: the given files, or a self-signed certificate made now.
///
/// # Errors
/// When the files cannot be read or a certificate cannot be made.
pub fn server_identity(cli: &Cli) -> anyhow::Result<ServerIdentity> {
    match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => ServerIdentity::from_pem_files(cert, key)
            .map_err(|e| anyhow::anyhow!("--tls-cert/--tls-key: {e}")),
        _ => {
            tracing::warn!(
                "no --tls-cert and --tls-key: serving a self-signed certificate for localhost and \
                 127.0.0.1 made in memory; clients must be told to trust it"
            );
            self_signed()
        }
    }
}

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`.
fn self_signed() -> anyhow::Result<ServerIdentity> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let certified =
        rcgen::generate_simple_self_signed(names).context("making a self-signed certificate")?;
    Ok(ServerIdentity {
        chain: vec![CertificateDer::from(certified.cert.der().to_vec())],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        )),
    })
}

/// The public base URL: `--public-url`, or `https://<bound address>`.
///
/// # Errors
/// When `--public-url` is not an absolute https URL without query or fragment.
pub fn public_url(cli: &Cli, bound: std::net::SocketAddr) -> anyhow::Result<String> {
    let Some(url) = &cli.public_url else {
        return Ok(format!("https://{bound}"));
    };
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("--public-url {url:?} is not a URL"))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() || uri.query().is_some() {
        bail!("--public-url {url:?} must be an https URL without query");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn cli(extra: &[&str]) -> Cli {
        let mut args = vec![
            "bank-api",
            "--issuer",
            "https://localhost:8443",
            "--resource",
            "https://localhost:9443/bank",
        ];
        args.extend_from_slice(extra);
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn the_feed_needs_a_client_unless_turned_off() {
        assert!(verifier_config(&cli(&[])).is_err());
        let config = verifier_config(&cli(&["--no-feed", "--jwks-min-refresh-secs", "1"])).unwrap();
        assert!(config.feed.is_none() && config.client.is_none());
        assert_eq!(config.jwks_min_refresh, Duration::from_secs(1));
        assert!(verifier_config(&cli(&["--no-feed", "--client-id", "rs"])).is_err());
    }

    #[test]
    fn a_private_jwk_client_gets_the_feed_with_the_chosen_policy() {
        use portcullis_jose::{SigningAlg, SigningKey};
        let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &*key.private_jwk_json().unwrap()).unwrap();
        let path = file.path().to_str().unwrap();
        let config = verifier_config(&cli(&[
            "--client-id",
            "rs-1",
            "--client-jwk",
            path,
            "--on-lag",
            "refuse",
            "--feed-max-lag-secs",
            "30",
            "--events-url",
            "https://localhost:8444/events",
            "--introspect-all",
        ]))
        .unwrap();
        let feed = config.feed.unwrap();
        assert_eq!(feed.on_lag, LagPolicy::Refuse);
        assert_eq!(feed.max_lag, Duration::from_secs(30));
        assert_eq!(
            feed.endpoint.as_deref(),
            Some("https://localhost:8444/events")
        );
        assert_eq!(config.introspection, IntrospectionMode::Always);
        assert!(matches!(
            config.client.unwrap().auth,
            ClientAuth::PrivateKeyJwt(_)
        ));
    }

    #[test]
    fn missing_files_are_named() {
        let err = verifier_config(&cli(&[
            "--client-id",
            "rs-1",
            "--client-cert",
            "/nonexistent/c.pem",
            "--client-key",
            "/nonexistent/k.pem",
        ]))
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("--client-cert /nonexistent/c.pem"),
            "{err:#}"
        );
    }

    #[test]
    fn the_public_url_defaults_to_the_bound_address() {
        let bound: std::net::SocketAddr = "127.0.0.1:4321".parse().unwrap();
        assert_eq!(
            public_url(&cli(&[]), bound).unwrap(),
            "https://127.0.0.1:4321"
        );
        let given = cli(&["--public-url", "https://api.bank.example/"]);
        assert_eq!(
            public_url(&given, bound).unwrap(),
            "https://api.bank.example"
        );
        assert!(public_url(&cli(&["--public-url", "http://x"]), bound).is_err());
    }

    #[test]
    fn without_files_a_self_signed_identity_is_made() {
        let identity = self_signed().unwrap();
        assert_eq!(identity.chain.len(), 1);
    }
}
