//! From the command line to what the server runs with: the [`VerifierConfig`] (this API's own
//! client, the revocation feed and its lag policy) and the server's TLS identity (the given PEM
//! files, or a self-signed certificate made in memory for a local try-out).

use std::time::Duration;

use anyhow::{Context as _, bail};
use portcullis_verify::tls::ServerIdentity;
use portcullis_verify::{
    ClientAuth, ClientCredentials, ClientIdentityPem, FeedConfig, IntrospectionMode, LagPolicy,
    VerifierConfig,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::cli::{Args, OnLag};

/// The `realm` of this API's `WWW-Authenticate` challenges.
const REALM: &str = "market-stream";

/// The verifier's configuration from the command line.
///
/// # Errors
/// When a client file cannot be read or the options do not fit together.
pub fn verifier_config(args: &Args) -> anyhow::Result<VerifierConfig> {
    let mut config = VerifierConfig::new(args.issuer.clone(), args.resource.clone());
    config.realm = REALM.into();
    config.ca_files = args.ca_files.clone();
    config.jwks_min_refresh = Duration::from_secs(args.jwks_min_refresh_secs);
    config.client = client(args)?;
    if args.introspect_all {
        config.introspection = IntrospectionMode::Always;
    }
    config.feed = if args.no_feed {
        None
    } else {
        if config.client.is_none() {
            bail!(
                "the revocation feed needs this API's own client: pass --client-id with \
                 --client-cert/--client-key or --client-jwk (or --no-feed)"
            );
        }
        Some(FeedConfig {
            max_lag: Duration::from_secs(args.feed_max_lag_secs),
            on_lag: match args.on_lag {
                OnLag::Introspect => LagPolicy::Introspect,
                OnLag::Refuse => LagPolicy::Refuse,
            },
            endpoint: args.events_url.clone(),
            ..FeedConfig::default()
        })
    };
    Ok(config)
}

/// This API's own client, if one is configured.
fn client(args: &Args) -> anyhow::Result<Option<ClientCredentials>> {
    let Some(client_id) = args.client_id.clone() else {
        return Ok(None);
    };
    let auth = match (&args.client_cert, &args.client_key, &args.client_jwk) {
        (Some(cert), Some(key), None) => {
            let cert_pem =
                std::fs::read(cert).with_context(|| format!("--client-cert {}", cert.display()))?;
            let key_pem =
                std::fs::read(key).with_context(|| format!("--client-key {}", key.display()))?;
            let identity = ClientIdentityPem::from_pem(&cert_pem, &key_pem)
                .context("--client-cert/--client-key")?;
            ClientAuth::Certificate(identity)
        }
        (None, None, Some(jwk)) => {
            let json =
                std::fs::read(jwk).with_context(|| format!("--client-jwk {}", jwk.display()))?;
            ClientAuth::private_key_jwt_from_jwk_json(&json)
                .with_context(|| format!("--client-jwk {}", jwk.display()))?
        }
        _ => bail!(
            "--client-id needs the client's credentials: --client-cert and --client-key, or \
             --client-jwk"
        ),
    };
    Ok(Some(ClientCredentials { client_id, auth }))
}

/// The server's certificate: the given files, or a self-signed one for localhost.
///
/// # Errors
/// When the files cannot be read or the certificate cannot be made.
pub fn server_identity(args: &Args) -> anyhow::Result<ServerIdentity> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return ServerIdentity::from_pem_files(cert, key).context("--tls-cert/--tls-key");
    }
    tracing::warn!(
        "no --tls-cert/--tls-key: serving a self-signed certificate for localhost and 127.0.0.1, \
         made in memory (clients will not trust it; for development only)"
    );
    let names = ["localhost", "127.0.0.1", "::1"]
        .map(str::to_owned)
        .to_vec();
    let certified =
        rcgen::generate_simple_self_signed(names).context("making a self-signed certificate")?;
    Ok(ServerIdentity {
        chain: vec![certified.cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        )),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn args(extra: &[&str]) -> Args {
        let base = [
            "market-stream",
            "--issuer",
            "https://as.example",
            "--resource",
            "https://stream.example/ticks",
        ];
        Args::try_parse_from(base.iter().chain(extra.iter()).copied()).unwrap()
    }

    #[test]
    fn the_feed_needs_a_client_unless_it_is_turned_off() {
        let error = verifier_config(&args(&[])).unwrap_err();
        assert!(error.to_string().contains("--no-feed"), "{error}");
        let config = verifier_config(&args(&["--no-feed", "--introspect-all"])).unwrap();
        assert!(config.feed.is_none());
        assert_eq!(config.introspection, IntrospectionMode::Always);
        assert_eq!(config.realm, REALM);
    }

    #[test]
    fn without_certificate_files_a_self_signed_certificate_is_made() {
        let identity = server_identity(&args(&[])).unwrap();
        assert_eq!(identity.chain.len(), 1);
        portcullis_verify::tls::server_config(
            &identity,
            portcullis_verify::tls::ListenerKind::Mtls,
        )
        .unwrap();
    }
}
