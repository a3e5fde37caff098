//! What a resource server pays per request to accept a Portcullis access token, against the bare
//! cost of the signature inside it (docs/benchmarks.md, "portcullis-verify: token and DPoP checks").
//!
//! Per algorithm of the authorization server's signing key (groups `ES256`, `PS256` with RSA 2048):
//!
//! - `raw_parsed_key`: one aws-lc-rs signature verification of the JWS signing input with a key
//!   parsed beforehand, the floor; `raw_key_per_call`: the same with the key built from its JWK
//!   components on every call.
//! - `verify_jwt`: `portcullis_jose::verify_jwt` over the same tokens, the baseline: header
//!   decode, key choice, key strength, the JWK made into a josekit verifier, the signature, the
//!   claims' JSON.
//! - `check_jwt+binding`: `portcullis_verify::token::check_jwt` (RFC 9068: typ, alg allowlist, kid
//!   in a JWKS of three keys, signature, every claim) of the same certificate-bound tokens, then
//!   `Binding::check` against the presented certificate's thumbprint.
//! - `dpop_check`: `DpopChecker::check` of a proof made with a key of this algorithm (jwk in the
//!   header, htm, htu, iat, ath, replay cache).
//! - `dpop_request`: a DPoP request in all, with a DPoP-bound token signed with this algorithm and
//!   an ES256 proof (most clients): `check_jwt`, `DpopChecker::check` and `Binding::check` of the
//!   proof key against `cnf.jkt`.
//!
//! The `parts` group times the pieces of these, to see where the time beyond the signature goes.
//! Every benchmark goes round a set of tokens (and proofs) with different `jti`s, so that no one
//! signature's cost decides the figure. `cargo bench -p portcullis-verify --bench verify`.

// A benchmark's set-up either works or the run is meaningless: failing loudly is what we want.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PSS_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::measurement::WallTime;
use criterion::{Bencher, BenchmarkGroup, Criterion, criterion_group, criterion_main};
use portcullis_jose::dpop::{DpopPolicy, DpopRequest, make_proof};
use portcullis_jose::{Jwks, PreparedJwks, PublicJwk, SigningAlg, SigningKey, verify_jwt};
use portcullis_verify::dpop::{DpopChecker, DpopConfig, MemoryReplayCache, ReplayCache};
use portcullis_verify::token::{Expectations, JwtError, check_jwt};
use portcullis_verify::{Binding, Scheme};
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;

const ISSUER: &str = "https://auth.bank.example";
const RESOURCE: &str = "https://api.bank.example/open-banking/v1";
/// The URL a DPoP proof is for (`htu`); requests carry a query, which `htu` leaves out.
const HTU: &str = "https://api.bank.example/open-banking/v1/accounts/acc-4711/transactions";
const REQUEST_URL: &str =
    "https://api.bank.example/open-banking/v1/accounts/acc-4711/transactions?page=2";
/// The time of every check; tokens were issued 30 s before, proofs at this second.
const NOW: i64 = 1_800_000_000;
/// Tokens per algorithm and binding, each with its own `jti` (and signature).
const TOKENS: usize = 64;
/// Pre-made DPoP proofs per benchmark; a pass over them uses a fresh replay cache.
const PROOFS: usize = 4_096;
/// The algorithms the resource server accepts for access tokens.
const ACCEPTED: [SigningAlg; 2] = [SigningAlg::Ps256, SigningAlg::Es256];

fn expectations() -> Expectations<'static> {
    Expectations {
        issuer: ISSUER,
        resource: RESOURCE,
        skew: 10,
        allow_unbound: false,
    }
}

/// The claims of an access token as Portcullis issues one after a consent
/// (`portcullis_core::access_token::AccessToken::claims`), bound by `cnf`.
fn claims(jti: usize, cnf: Value) -> Map<String, Value> {
    let iat = NOW - 30;
    let value = json!({
        "iss": ISSUER,
        "aud": RESOURCE,
        "sub": "0193f2a4-6c1e-7b3d-9a51-2f8e4c7d1b90",
        "client_id": "0193f2a1-0b7c-7e42-8d6f-51a9c3e2f7a4",
        "iat": iat,
        "nbf": iat,
        "exp": iat + 300,
        "jti": format!("kR3v9XyQ2mPz7LwB{jti:06}"),
        "cnf": cnf,
        "scope": "openid accounts",
        "authorization_details": [{
            "type": "account_information",
            "actions": ["read_balances", "read_transactions"],
            "accounts": ["acc-4711", "acc-4712"],
        }],
        "grant_id": "0193f2a5-91d2-7c08-b3e7-6a4f0d2c8e15",
        "auth_time": NOW - 95,
        "acr": "urn:portcullis:acr:sca",
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// What the benchmarks of one algorithm work on.
struct PerAlg {
    alg: SigningAlg,
    /// The authorization server's key of this algorithm, as published.
    jwk: PublicJwk,
    /// Certificate-bound tokens (`cnf.x5t#S256`).
    mtls_tokens: Vec<String>,
    /// A client key of this algorithm, for `dpop_check`.
    client: SigningKey,
    /// `dpop_check`: one token bound to `client`, and proofs by `client` for it.
    dpop_token: String,
    dpop_proofs: Vec<String>,
    /// `dpop_request`: tokens bound to the ES256 client key, and a proof for each of them.
    request_pairs: Vec<(String, String)>,
}

/// Everything made before any timing: keys, tokens, proofs.
struct Fixture {
    /// The authorization server's published set: one key of each algorithm, as `/jwks` has it.
    jwks: Jwks,
    /// The same set prepared once, as `portcullis-verify` keeps it.
    prepared: PreparedJwks,
    /// The thumbprint of the client certificate the requests present.
    x5t: String,
    algorithms: [PerAlg; 2],
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(Fixture::new);

impl Fixture {
    fn new() -> Self {
        let ps256 = SigningKey::generate(SigningAlg::Ps256, 2048).unwrap();
        let es256 = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let eddsa = SigningKey::generate(SigningAlg::EdDsa, 2048).unwrap();
        let jwks = Jwks {
            keys: [&ps256, &es256, &eddsa]
                .iter()
                .map(|k| k.public_jwk().unwrap())
                .collect(),
        };
        let certificate =
            rcgen::generate_simple_self_signed(vec!["tpp.example".to_owned()]).unwrap();
        let x5t = portcullis_jose::x5t_sha256(certificate.cert.der());
        let client_es256 = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let per_alg = |key: &SigningKey| {
            let alg = key.alg();
            let client = SigningKey::generate(alg, 2048).unwrap();
            let mtls_tokens = (0..TOKENS)
                .map(|i| {
                    key.sign_jwt("at+jwt", &claims(i, json!({ "x5t#S256": x5t })))
                        .unwrap()
                })
                .collect();
            let dpop_token = key
                .sign_jwt("at+jwt", &claims(0, json!({ "jkt": client.kid() })))
                .unwrap();
            let dpop_proofs = (0..PROOFS)
                .map(|i| proof(&client, &dpop_token, i))
                .collect();
            let request_tokens: Vec<String> = (0..TOKENS)
                .map(|i| {
                    key.sign_jwt("at+jwt", &claims(i, json!({ "jkt": client_es256.kid() })))
                        .unwrap()
                })
                .collect();
            let request_pairs = (0..PROOFS)
                .map(|i| {
                    let token = &request_tokens[i % TOKENS];
                    (token.clone(), proof(&client_es256, token, i))
                })
                .collect();
            PerAlg {
                alg,
                jwk: key.public_jwk().unwrap(),
                mtls_tokens,
                client,
                dpop_token,
                dpop_proofs,
                request_pairs,
            }
        };
        let algorithms = [per_alg(&es256), per_alg(&ps256)];
        Self {
            prepared: PreparedJwks::new(jwks.clone()),
            jwks,
            x5t,
            algorithms,
        }
    }
}

/// A proof by `key` for a GET of `HTU` with `token`, with a `jti` of its own.
fn proof(key: &SigningKey, token: &str, i: usize) -> String {
    let jti = format!("bench-{}-{i:06}", key.alg());
    make_proof(key, "GET", HTU, Some(token), None, NOW, &jti).unwrap()
}

/// The JWS signing input and the decoded signature of a compact JWS.
fn signing_input_and_signature(token: &str) -> (Vec<u8>, Vec<u8>) {
    let dot = token.rfind('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(&token[dot + 1..]).unwrap();
    (token.as_bytes()[..dot].to_vec(), signature)
}

fn member(jwk: &PublicJwk, name: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(jwk.str_member(name).unwrap())
        .unwrap()
}

/// aws-lc-rs: one signature verification with a parsed key, and with the key built on each call.
fn raw_benches(group: &mut BenchmarkGroup<'_, WallTime>, a: &PerAlg) {
    let signed: Vec<(Vec<u8>, Vec<u8>)> = a
        .mtls_tokens
        .iter()
        .map(|t| signing_input_and_signature(t))
        .collect();
    match a.alg {
        SigningAlg::Es256 => {
            let mut point = vec![0x04];
            point.extend(member(&a.jwk, "x"));
            point.extend(member(&a.jwk, "y"));
            let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).unwrap();
            for (message, signature) in &signed {
                parsed.verify_sig(message, signature).unwrap();
            }
            group.bench_function("raw_parsed_key", |b| {
                let mut next = signed.iter().cycle();
                b.iter(|| {
                    let (message, signature) = next.next().unwrap();
                    parsed.verify_sig(black_box(message), black_box(signature))
                });
            });
            group.bench_function("raw_key_per_call", |b| {
                let mut next = signed.iter().cycle();
                b.iter(|| {
                    let (message, signature) = next.next().unwrap();
                    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, black_box(&point))
                        .verify(black_box(message), black_box(signature))
                });
            });
        }
        SigningAlg::Ps256 => {
            let (n, e) = (member(&a.jwk, "n"), member(&a.jwk, "e"));
            let components = RsaPublicKeyComponents { n: &n, e: &e };
            let parsed = components
                .to_parsed_public_key(&RSA_PSS_2048_8192_SHA256)
                .unwrap();
            for (message, signature) in &signed {
                parsed.verify_sig(message, signature).unwrap();
            }
            group.bench_function("raw_parsed_key", |b| {
                let mut next = signed.iter().cycle();
                b.iter(|| {
                    let (message, signature) = next.next().unwrap();
                    parsed.verify_sig(black_box(message), black_box(signature))
                });
            });
            group.bench_function("raw_key_per_call", |b| {
                let mut next = signed.iter().cycle();
                b.iter(|| {
                    let (message, signature) = next.next().unwrap();
                    RsaPublicKeyComponents {
                        n: black_box(&n),
                        e: black_box(&e),
                    }
                    .verify(
                        &RSA_PSS_2048_8192_SHA256,
                        black_box(message),
                        black_box(signature),
                    )
                });
            });
        }
        SigningAlg::EdDsa => unreachable!("not benchmarked"),
    }
}

fn checker() -> DpopChecker {
    DpopChecker::new(DpopConfig::default(), Arc::new(replay_cache()))
}

/// Four times the entries of one pass: no shard of the cache can fill up.
fn replay_cache() -> MemoryReplayCache {
    MemoryReplayCache::new(4 * PROOFS)
}

/// Times `routine` once per item, each item used once per replay cache: `iters` uses go through
/// the pre-made items in passes, each pass with a fresh checker made outside the timing. The
/// routine runs inside one `block_on` of a current-thread runtime per pass, as in a handler; it
/// returns whether the request was accepted, and every one must be.
fn bench_once_each<T>(
    b: &mut Bencher<'_>,
    runtime: &Runtime,
    items: &[T],
    routine: impl AsyncFn(&DpopChecker, &T) -> bool,
) {
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(items.len());
            let pass = &items[..n];
            let checker = checker();
            let (elapsed, refused) = runtime.block_on(async {
                let mut refused = 0usize;
                let start = Instant::now();
                for item in pass {
                    if !routine(&checker, black_box(item)).await {
                        refused += 1;
                    }
                }
                (start.elapsed(), refused)
            });
            assert_eq!(
                refused, 0,
                "a request was refused: the figures would be wrong"
            );
            total += elapsed;
            left -= n as u64;
        }
        total
    });
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn per_algorithm(c: &mut Criterion) {
    let f = &*FIXTURE;
    let runtime = runtime();
    let expect = expectations();
    for a in &f.algorithms {
        // Once, untimed: everything the timed loops do succeeds.
        for token in &a.mtls_tokens {
            let principal =
                check_jwt(token, &f.prepared, &ACCEPTED, &expect, NOW, Scheme::Bearer).unwrap();
            let binding = principal.binding.unwrap();
            binding.check(Some(&f.x5t), None).unwrap();
        }

        let mut group = c.benchmark_group(a.alg.as_str());
        raw_benches(&mut group, a);
        group.bench_function("verify_jwt", |b| {
            let mut next = a.mtls_tokens.iter().cycle();
            b.iter(|| verify_jwt(black_box(next.next().unwrap()), &f.jwks, &ACCEPTED).unwrap());
        });
        group.bench_function("verify_jwt_prepared", |b| {
            let mut next = a.mtls_tokens.iter().cycle();
            b.iter(|| {
                portcullis_jose::verify_jwt_prepared(
                    black_box(next.next().unwrap()),
                    &f.prepared,
                    &ACCEPTED,
                )
                .unwrap()
            });
        });
        group.bench_function("check_jwt+binding", |b| {
            let mut next = a.mtls_tokens.iter().cycle();
            b.iter(|| {
                let principal = check_jwt(
                    black_box(next.next().unwrap()),
                    &f.prepared,
                    &ACCEPTED,
                    &expect,
                    NOW,
                    Scheme::Bearer,
                )?;
                let binding = principal.binding.as_ref().ok_or(JwtError::UnknownKey)?;
                binding
                    .check(black_box(Some(&f.x5t)), None)
                    .map_err(|e| JwtError::Invalid(e.to_string()))?;
                Ok::<_, JwtError>(principal)
            });
        });
        group.bench_function("dpop_check", |b| {
            bench_once_each(b, &runtime, &a.dpop_proofs, async |checker, proof| {
                checker
                    .check(&[proof.as_str()], "GET", REQUEST_URL, &a.dpop_token, NOW)
                    .await
                    .is_ok()
            });
        });
        group.bench_function("dpop_request", |b| {
            bench_once_each(
                b,
                &runtime,
                &a.request_pairs,
                async |checker, (token, proof)| {
                    let Ok(principal) =
                        check_jwt(token, &f.prepared, &ACCEPTED, &expect, NOW, Scheme::Dpop)
                    else {
                        return false;
                    };
                    let Ok(accepted) = checker
                        .check(&[proof.as_str()], "GET", REQUEST_URL, token, NOW)
                        .await
                    else {
                        return false;
                    };
                    principal
                        .binding
                        .as_ref()
                        .is_some_and(|b| b.check(None, Some(&accepted.jkt)).is_ok())
                },
            );
        });
        group.finish();
    }
}

/// The pieces of `verify_jwt`, `check_jwt` and the DPoP check, on the same tokens and proofs.
fn parts(c: &mut Criterion) {
    let f = &*FIXTURE;
    let runtime = runtime();
    let mut group = c.benchmark_group("parts");
    for a in &f.algorithms {
        let (alg, name) = (a.alg, a.alg.as_str());
        let tokens = &a.mtls_tokens;

        group.bench_function(format!("{name}/decode_unverified_header"), |b| {
            let mut next = tokens.iter().cycle();
            b.iter(|| portcullis_jose::decode_unverified_header(next.next().unwrap()).unwrap());
        });
        let kid = a.jwk.kid().unwrap();
        group.bench_function(format!("{name}/jwks_candidates+check_strength"), |b| {
            b.iter(|| {
                let candidates = f.jwks.candidates(Some(black_box(kid)), alg);
                candidates[0].check_strength(alg)
            });
        });
        // What `portcullis_jose`'s `verifier_for` does on every call: the JWK's members copied,
        // `alg` and `kid` dropped, a josekit JWK made, and a josekit (OpenSSL) verifier from it.
        let make_verifier = || -> Box<dyn josekit::jws::JwsVerifier> {
            let mut members = black_box(&a.jwk).members().clone();
            members.remove("alg");
            members.remove("kid");
            let jwk = josekit::jwk::Jwk::from_map(members).unwrap();
            match alg {
                SigningAlg::Ps256 => Box::new(josekit::jws::PS256.verifier_from_jwk(&jwk).unwrap()),
                SigningAlg::Es256 => Box::new(josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap()),
                SigningAlg::EdDsa => unreachable!("not benchmarked"),
            }
        };
        group.bench_function(format!("{name}/josekit_verifier_from_jwk"), |b| {
            b.iter(&make_verifier);
        });
        let verifier = make_verifier();
        group.bench_function(format!("{name}/josekit_deserialize_compact"), |b| {
            let mut next = tokens.iter().cycle();
            b.iter(|| {
                josekit::jws::deserialize_compact(next.next().unwrap(), verifier.as_ref()).unwrap()
            });
        });
        let payloads: Vec<Vec<u8>> = tokens
            .iter()
            .map(|t| {
                URL_SAFE_NO_PAD
                    .decode(t.split('.').nth(1).unwrap())
                    .unwrap()
            })
            .collect();
        group.bench_function(format!("{name}/claims_json_parse"), |b| {
            let mut next = payloads.iter().cycle();
            b.iter(|| serde_json::from_slice::<Map<String, Value>>(next.next().unwrap()).unwrap());
        });
        let claims = portcullis_jose::decode_unverified_claims(&tokens[0]).unwrap();
        group.bench_function(format!("{name}/binding_from_claims+check"), |b| {
            b.iter(|| {
                Binding::from_claims(black_box(&claims))
                    .unwrap()
                    .check(Some(&f.x5t), None)
            });
        });

        // The DPoP proof check without the replay cache and its async call (proofs can be reused).
        let proofs = &a.dpop_proofs[..TOKENS];
        let policy = DpopPolicy::default();
        let now = time::OffsetDateTime::from_unix_timestamp(NOW).unwrap();
        group.bench_function(format!("{name}/dpop_validate"), |b| {
            let mut next = proofs.iter().cycle();
            b.iter(|| {
                portcullis_jose::dpop::validate(
                    &DpopRequest {
                        headers: &[next.next().unwrap()],
                        method: "GET",
                        url: REQUEST_URL,
                        access_token: Some(&a.dpop_token),
                        accepted_nonces: None,
                    },
                    &policy,
                    now,
                )
                .unwrap()
            });
        });
        group.bench_function(format!("{name}/dpop_verify_with_embedded_jwk"), |b| {
            let mut next = proofs.iter().cycle();
            b.iter(|| {
                portcullis_jose::verify_with_embedded_jwk(next.next().unwrap(), &SigningAlg::ALL)
                    .unwrap()
            });
        });
        let proof_jwk = a.client.public_jwk().unwrap();
        group.bench_function(format!("{name}/jwk_thumbprint"), |b| {
            b.iter(|| black_box(&proof_jwk).thumbprint().unwrap());
        });
    }

    // The replay cache's part of a DPoP check: a first use recorded, through the trait's async
    // call, into a cache filling up from empty to `PROOFS` entries.
    let keys: Vec<[u8; 32]> = (0..PROOFS)
        .map(|i| {
            use sha2::Digest as _;
            sha2::Sha256::digest(i.to_be_bytes()).into()
        })
        .collect();
    group.bench_function("replay_cache_first_use", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(keys.len());
                let cache = replay_cache();
                let (elapsed, refused) = runtime.block_on(async {
                    let mut refused = 0usize;
                    let start = Instant::now();
                    for key in &keys[..n] {
                        if cache.first_use(*key, NOW + 60, NOW).await != Ok(true) {
                            refused += 1;
                        }
                    }
                    (start.elapsed(), refused)
                });
                assert_eq!(refused, 0);
                total += elapsed;
                left -= n as u64;
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, per_algorithm, parts);
criterion_main!(benches);
