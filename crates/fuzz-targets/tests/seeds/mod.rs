//! The seed corpus: real, valid inputs of every target (and a few near misses that each
//! exercise one refusal), signed with the fixture's keys so that the fuzzer starts behind the
//! signature checks. `generate` rewrites `fuzz/corpus/<target>/seed-*` and the certificate
//! `src/keys/client-cert.der`; files the fuzzer added are left alone.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use portcullis_fuzz_targets::fixture::{
    ACCESS_TOKEN, CLIENT_ID, DIRECTORY, DPOP_NONCE, ISSUER, NOW, RESOURCE, TOKEN_URL, fixture,
};
use portcullis_jose::SigningKey;
use serde_json::{Value, json};
use sha2::Digest as _;

/// Seeds by target: (file name, bytes).
type Seeds = Vec<(String, Vec<u8>)>;

/// A raw token, as [`portcullis_fuzz_targets::fixture::JwtInput`] reads it.
fn raw(token: &str) -> Vec<u8> {
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(token.as_bytes());
    bytes
}

/// Header and claims for the target to sign with the key `selector` chooses.
fn to_sign(selector: u8, header: &Value, claims: &Value) -> Vec<u8> {
    let mut bytes = vec![1 | (selector << 1)];
    bytes.extend(serde_json::to_vec(&json!([header, claims])).unwrap());
    bytes
}

fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    key.sign_jwt_with_header(header.as_object().unwrap(), claims.as_object().unwrap())
        .unwrap()
}

fn unsigned(alg: &str, claims: &Value) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!({"alg": alg})).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    )
}

fn tampered(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory"}"#);
    parts.join(".")
}

fn keys() -> Vec<(u8, &'static SigningKey)> {
    let f = fixture().unwrap();
    f.client_keys
        .iter()
        .enumerate()
        .map(|(i, k)| (u8::try_from(i).unwrap(), k))
        .collect()
}

fn kid(key: &SigningKey) -> Value {
    json!({"kid": key.kid()})
}

fn jws_compact() -> Seeds {
    let mut seeds = Seeds::new();
    let claims = json!({"iss": ISSUER, "sub": "alice", "exp": NOW + 60});
    for (i, key) in keys() {
        let token = key.sign_jwt("JWT", claims.as_object().unwrap()).unwrap();
        seeds.push((format!("{}-valid", key.alg()), raw(&token)));
        seeds.push((format!("{}-tampered", key.alg()), raw(&tampered(&token))));
        seeds.push((
            format!("{}-sign", key.alg()),
            to_sign(i, &kid(key), &claims),
        ));
        let jwk = Value::Object(key.public_jwk().unwrap().into());
        let embedded = sign(key, &json!({"typ": "dpop+jwt", "jwk": jwk}), &claims);
        seeds.push((format!("{}-embedded-jwk", key.alg()), raw(&embedded)));
    }
    for alg in ["none", "RS256", "HS256"] {
        seeds.push((format!("alg-{alg}"), raw(&unsigned(alg, &claims))));
    }
    seeds.push(("no-kid".into(), to_sign(2, &json!({}), &claims)));
    seeds.push((
        "crit".into(),
        to_sign(2, &json!({"crit": ["exp"], "exp": 1}), &claims),
    ));
    seeds.push((
        "b64-false".into(),
        to_sign(1, &json!({"b64": false}), &claims),
    ));
    seeds
}

fn jwk() -> Seeds {
    let f = fixture().unwrap();
    let mut seeds = Seeds::new();
    for key in &f.client_jwks.keys {
        seeds.push((
            format!("public-{}", key.str_member("kty").unwrap()),
            serde_json::to_vec(key).unwrap(),
        ));
    }
    seeds.push(("set".into(), serde_json::to_vec(&f.client_jwks).unwrap()));
    let private = f.client_keys[1].private_jwk_json().unwrap();
    seeds.push(("private-ec".into(), private.to_vec()));
    let n_1024 = URL_SAFE_NO_PAD.encode([0xffu8; 128]);
    let more = [
        ("rsa-1024", json!({"kty": "RSA", "e": "AQAB", "n": n_1024})),
        (
            "rfc7638",
            json!({"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}),
        ),
        (
            "ec-p384",
            json!({"kty":"EC","crv":"P-384","x":"AA","y":"AA","kid":"a"}),
        ),
        (
            "okp-x25519",
            json!({"kty":"OKP","crv":"X25519","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}),
        ),
        (
            "duplicate-kids",
            json!({"keys": [
                {"kid":"a","kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
                {"kid":"a","kty":"EC","crv":"P-256","x":"AQ","y":"AQ","use":"enc"}]}),
        ),
    ];
    for (name, value) in more {
        seeds.push((name.into(), serde_json::to_vec(&value).unwrap()));
    }
    seeds
}

fn access_token() -> Seeds {
    let mut seeds = Seeds::new();
    let claims = json!({
        "iss": ISSUER, "aud": RESOURCE, "sub": "user-1", "client_id": CLIENT_ID,
        "iat": NOW - 5, "nbf": NOW - 5, "exp": NOW + 300, "jti": "at-1",
        "scope": "openid accounts", "grant_id": "g-1", "cnf": {"jkt": "abc"},
        "authorization_details": [{"type": "account_information", "actions": ["read_balances"], "accounts": ["acc-1"]}]
    });
    for (i, key) in keys() {
        let header = json!({"typ": "at+jwt", "kid": key.kid()});
        seeds.push((
            format!("{}-valid", key.alg()),
            raw(&sign(key, &header, &claims)),
        ));
        seeds.push((format!("{}-sign", key.alg()), to_sign(i, &header, &claims)));
    }
    let mut certificate_bound = claims.clone();
    certificate_bound["cnf"] = json!({"x5t#S256": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"});
    certificate_bound["aud"] = json!([RESOURCE, "https://other.example"]);
    seeds.push((
        "x5t-bound".into(),
        to_sign(1, &json!({"typ": "application/at+jwt"}), &certificate_bound),
    ));
    let mut unbound = claims;
    unbound.as_object_mut().unwrap().remove("cnf");
    seeds.push((
        "unbound".into(),
        to_sign(2, &json!({"typ": "at+jwt"}), &unbound),
    ));
    seeds
}

fn client_assertion() -> Seeds {
    let mut seeds = Seeds::new();
    let claims = json!({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": ISSUER, "jti": "a-1", "iat": NOW, "exp": NOW + 60});
    for (i, key) in keys() {
        let token = sign(key, &kid(key), &claims);
        seeds.push((format!("{}-valid", key.alg()), raw(&token)));
        seeds.push((
            format!("{}-sign", key.alg()),
            to_sign(i, &kid(key), &claims),
        ));
    }
    let mut array = claims.clone();
    array["aud"] = json!([ISSUER, format!("{ISSUER}/token")]);
    array["nbf"] = json!(NOW - 1);
    seeds.push(("aud-array".into(), to_sign(1, &json!({}), &array)));
    seeds.push(("alg-hs256".into(), raw(&unsigned("HS256", &claims))));
    seeds
}

fn par_parameters() -> Value {
    json!({
        "response_type": "code", "client_id": CLIENT_ID,
        "redirect_uri": "https://tpp.example/cb", "scope": "openid accounts",
        "state": "s-1", "nonce": "n-1",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256", "response_mode": "jwt", "prompt": "login consent",
        "max_age": 300, "acr_values": "urn:bank:sca",
        "claims": {"id_token": {"acr": {"essential": true, "values": ["urn:bank:sca"]}}},
        "resource": [RESOURCE],
        "authorization_details": [{"type": "account_information", "actions": ["list_accounts", "read_balances"]}],
        "dpop_jkt": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
        "login_hint": "alice", "grant_management_action": "create"
    })
}

fn request_object_jwt(key: &SigningKey) -> String {
    sign(
        key,
        &json!({"typ": "oauth-authz-req+jwt", "kid": key.kid()}),
        &request_object_claims(),
    )
}

fn request_object_claims() -> Value {
    let mut claims = par_parameters();
    for (k, v) in json!({"iss": CLIENT_ID, "aud": ISSUER, "nbf": NOW - 10, "exp": NOW + 300, "iat": NOW - 10, "jti": "ro-1"})
        .as_object()
        .unwrap()
    {
        claims[k] = v.clone();
    }
    claims
}

fn request_object() -> Seeds {
    let mut seeds = Seeds::new();
    for (i, key) in keys() {
        seeds.push((
            format!("{}-valid", key.alg()),
            raw(&request_object_jwt(key)),
        ));
        seeds.push((
            format!("{}-sign", key.alg()),
            to_sign(
                i,
                &json!({"typ": "oauth-authz-req+jwt", "kid": key.kid()}),
                &request_object_claims(),
            ),
        ));
    }
    let mut plain = request_object_claims();
    plain["aud"] = json!(["https://other.example", ISSUER]);
    plain["authorization_details"] = json!([{
        "type": "payment_initiation",
        "instructedAmount": {"currency": "EUR", "amount": "123.50"},
        "creditorName": "Merchant A",
        "creditorAccount": {"iban": "DE02120300000000202051"}
    }]);
    plain["grant_management_action"] = json!("merge");
    plain["grant_id"] = json!("g-1");
    seeds.push(("typ-jwt".into(), to_sign(2, &json!({"typ": "JWT"}), &plain)));
    seeds
}

fn dpop_proof() -> Seeds {
    let f = fixture().unwrap();
    let mut seeds = Seeds::new();
    let mut keys: Vec<(u8, &SigningKey)> = vec![(0, &f.dpop_key)];
    keys.extend(keys_for_dpop());
    for (selector, key) in keys {
        let full = portcullis_jose::dpop::make_proof(
            key,
            "POST",
            TOKEN_URL,
            Some(ACCESS_TOKEN),
            Some(DPOP_NONCE),
            NOW,
            "proof-1",
        )
        .unwrap();
        seeds.push((format!("{}-{selector}-full", key.alg()), raw(&full)));
        let bare =
            portcullis_jose::dpop::make_proof(key, "POST", TOKEN_URL, None, None, NOW - 5, "p-2")
                .unwrap();
        seeds.push((format!("{}-{selector}-bare", key.alg()), raw(&bare)));
        let ath = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(ACCESS_TOKEN.as_bytes()));
        seeds.push((
            format!("{}-{selector}-sign", key.alg()),
            to_sign(
                selector,
                &json!({"typ": "dpop+jwt"}),
                &json!({"jti": "proof-3", "htm": "POST", "htu": "https://AS.example:443/token?x=1", "iat": NOW, "ath": ath, "nonce": DPOP_NONCE}),
            ),
        ));
    }
    seeds
}

/// The client keys as `dpop_proof` selects them (selector 1 + index).
fn keys_for_dpop() -> Vec<(u8, &'static SigningKey)> {
    keys().into_iter().map(|(i, k)| (i + 1, k)).collect()
}

fn statement_claims() -> Value {
    json!({
        "iss": DIRECTORY, "iat": NOW - 10, "exp": NOW + 600, "jti": "ssa-1",
        "software_id": "tpp-app-1", "software_client_name": "Example TPP",
        "software_redirect_uris": ["https://tpp.example/cb", "https://tpp.example/cb2"],
        "software_jwks_uri": "https://keystore.directory.example/tpp/app.jwks",
        "org_id": "org-1", "scope": "openid accounts",
        "grant_types": ["authorization_code", "refresh_token"]
    })
}

fn software_statement() -> Seeds {
    let f = fixture().unwrap();
    let key = &f.directory_key;
    let header = json!({"kid": key.kid(), "typ": "JWT"});
    vec![
        (
            "valid".into(),
            raw(&sign(key, &header, &statement_claims())),
        ),
        ("sign".into(), to_sign(0, &header, &statement_claims())),
        (
            "client-key".into(),
            raw(&sign(&f.client_keys[1], &json!({}), &statement_claims())),
        ),
    ]
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

fn assertion(key: &SigningKey, aud: &str) -> String {
    sign(
        key,
        &kid(key),
        &json!({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": aud, "jti": "a-1", "iat": NOW, "exp": NOW + 60}),
    )
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn par_form() -> Seeds {
    let f = fixture().unwrap();
    let key = &f.client_keys[2];
    let params = par_parameters();
    let mut pairs: Vec<(String, String)> = params
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "resource")
        .map(|(k, v)| {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            (k.clone(), text)
        })
        .collect();
    pairs.push(("resource".into(), RESOURCE.into()));
    pairs.push((
        "resource".into(),
        "https://api.bank.example/payments".into(),
    ));
    pairs.push(("client_assertion_type".into(), JWT_BEARER.into()));
    pairs.push(("client_assertion".into(), assertion(key, ISSUER)));
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let jar = request_object_jwt(&f.client_keys[1]);
    vec![
        ("full".into(), form(&borrowed)),
        (
            "request-object".into(),
            form(&[
                ("client_id", CLIENT_ID),
                ("request", &jar),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion(key, ISSUER)),
            ]),
        ),
        (
            "minimal".into(),
            form(&[
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", "https://tpp.example/cb"),
                ("scope", "openid"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "S256"),
            ]),
        ),
    ]
}

fn with_authorization(authorization: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = authorization.as_bytes().to_vec();
    bytes.push(b'\n');
    bytes.extend_from_slice(body);
    bytes
}

fn token_form() -> Seeds {
    let f = fixture().unwrap();
    let key = &f.client_keys[1];
    let basic = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:s3cr%3At")));
    vec![
        (
            "client-credentials".into(),
            with_authorization(
                "",
                &form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", "accounts accounts payments"),
                    ("resource", RESOURCE),
                    (
                        "authorization_details",
                        r#"[{"type":"account_information","actions":["read_balances"]}]"#,
                    ),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &assertion(key, ISSUER)),
                ]),
            ),
        ),
        (
            "authorization-code-basic".into(),
            with_authorization(
                &basic,
                &form(&[
                    ("grant_type", "authorization_code"),
                    ("code", "c0de-value"),
                    ("redirect_uri", "https://tpp.example/cb"),
                    (
                        "code_verifier",
                        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                    ),
                ]),
            ),
        ),
        (
            "refresh-post".into(),
            form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "r3fresh"),
                ("client_id", CLIENT_ID),
                ("client_secret", "s3cret"),
            ]),
        ),
    ]
}

fn authorization_details() -> Seeds {
    let values = [
        (
            "account-payment-custom",
            json!([
                {"type": "account_information", "actions": ["list_accounts", "read_balances"],
                 "locations": ["https://api.bank.example/accounts"], "accounts": ["acc-1"], "expires_at": NOW + 86400},
                {"type": "payment_initiation", "locations": ["https://api.bank.example/payments"],
                 "instructedAmount": {"currency": "EUR", "amount": "123.50"},
                 "creditorName": "Merchant A", "creditorAccount": {"iban": "DE02120300000000202051"},
                 "remittanceInformation": "Ref 42"},
                {"type": "customer_information", "actions": ["read"], "identifier": "c-1",
                 "datatypes": ["address"], "privileges": ["admin"], "extra": {"nested": [1, 2.5, null]}}
            ]),
        ),
        (
            "gb-iban",
            json!([{"type": "payment_initiation",
                "instructedAmount": {"currency": "GBP", "amount": "999999999999999.99"},
                "creditorName": "B", "creditorAccount": {"iban": "GB33 BUKB 2020 1555 5555 55"}}]),
        ),
        ("unknown-type", json!([{"type": "loan_application"}])),
    ];
    values
        .into_iter()
        .map(|(name, value)| (name.to_owned(), serde_json::to_vec(&value).unwrap()))
        .collect()
}

/// An rcgen key pair for a fixture key, so that a certificate carries a key of the client's set
/// (`self_signed_tls_client_auth`).
fn rcgen_key(key: &SigningKey) -> rcgen::KeyPair {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
    let jwk: Value = serde_json::from_slice(&key.private_jwk_json().unwrap()).unwrap();
    let b64 = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let pkcs8 = match jwk["kty"].as_str().unwrap() {
        "EC" => {
            let mut public = vec![4u8];
            public.extend(b64("x"));
            public.extend(b64("y"));
            EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_ASN1_SIGNING,
                &b64("d"),
                &public,
            )
            .unwrap()
            .to_pkcs8v1()
            .unwrap()
            .as_ref()
            .to_vec()
        }
        _ => Ed25519KeyPair::from_seed_and_public_key(&b64("d"), &b64("x"))
            .unwrap()
            .to_pkcs8()
            .unwrap()
            .as_ref()
            .to_vec(),
    };
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8);
    rcgen::KeyPair::try_from(&der).unwrap()
}

/// The certificate of `src/keys/client-cert.der`, and others of every key type.
fn certificates() -> Vec<(String, Vec<u8>)> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
    let f = fixture().unwrap();
    let rich = |key: &KeyPair| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "GB");
        dn.push(DnType::OrganizationName, "TPP Ltd");
        dn.push(DnType::OrganizationalUnitName, "Payments");
        dn.push(
            DnType::CustomDnType(vec![0, 9, 2342, 19_200_300, 100, 1, 1]),
            "tpp-app-1",
        );
        dn.push(DnType::CommonName, "client.example");
        params.distinguished_name = dn;
        params.subject_alt_names = vec![
            SanType::DnsName("client.example".try_into().unwrap()),
            SanType::URI("https://tpp.example/app".try_into().unwrap()),
            SanType::IpAddress("192.0.2.7".parse().unwrap()),
            SanType::Rfc822Name("ops@tpp.example".try_into().unwrap()),
            SanType::IpAddress("2001:db8::7".parse().unwrap()),
        ];
        params.self_signed(key).unwrap().der().to_vec()
    };
    let mut certs = vec![
        ("p256-rich".to_owned(), rich(&KeyPair::generate().unwrap())),
        (
            "client-es256".to_owned(),
            rich(&rcgen_key(&f.client_keys[1])),
        ),
        (
            "client-eddsa".to_owned(),
            rich(&rcgen_key(&f.client_keys[2])),
        ),
    ];
    for (name, alg) in [
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("rsa", &rcgen::PKCS_RSA_SHA256),
    ] {
        if let Ok(key) = KeyPair::generate_for(alg) {
            let params = CertificateParams::new(vec!["client.example".into()]).unwrap();
            certs.push((
                name.to_owned(),
                params.self_signed(&key).unwrap().der().to_vec(),
            ));
        }
    }
    certs
}

fn client_cert(certificates: &[(String, Vec<u8>)]) -> Seeds {
    let mut seeds = Seeds::new();
    for (name, der) in certificates {
        seeds.push((
            format!("{name}-header"),
            format!(":{}:", STANDARD.encode(der)).into_bytes(),
        ));
        seeds.push((format!("{name}-der"), der.clone()));
    }
    seeds
}

fn subject_dn() -> Seeds {
    [
        "CN=client.example,UID=tpp-app-1,OU=Payments,O=TPP Ltd,C=GB",
        "C=GB, O=TPP Ltd, OU=Payments, UID=tpp-app-1, CN=client.example",
        "cn=CLIENT.example,  uid=tpp-app-1,ou=payments,o=tpp  ltd,c=gb",
        "2.5.4.3=client.example,0.9.2342.19200300.100.1.1=tpp-app-1,OID.2.5.4.11=Payments,O=TPP\\20Ltd,C=GB",
        "CN=a\\,b+UID=c\\2Bd,O=#0403616263",
        "client.example",
        "https://tpp.example/app",
        "192.0.2.7",
        "2001:db8::7",
        "ops@tpp.example",
    ]
    .iter()
    .enumerate()
    .map(|(i, s)| (format!("{i}"), s.as_bytes().to_vec()))
    .collect()
}

fn client_metadata() -> Seeds {
    let f = fixture().unwrap();
    let jwks = serde_json::to_value(&f.client_jwks).unwrap();
    let bodies = [
        (
            "fapi-private-key-jwt",
            json!({
                "client_name": "Example TPP", "logo_uri": "https://tpp.example/logo.png",
                "redirect_uris": ["https://tpp.example/cb"],
                "post_logout_redirect_uris": ["https://tpp.example/bye"],
                "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
                "response_types": ["code"], "scope": "openid accounts",
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": "PS256", "jwks": jwks,
                "dpop_bound_access_tokens": true, "require_pushed_authorization_requests": true,
                "require_signed_request_object": true, "request_object_signing_alg": "ES256",
                "authorization_signed_response_alg": "EdDSA", "id_token_signed_response_alg": "PS256",
                "introspection_signed_response_alg": "ES256",
                "authorization_details_types": ["account_information"],
                "contacts": ["ops@tpp.example"], "software_id": "tpp-app-1", "software_version": "1.0",
                "x_extension": {"kept": [1, 2.5, "as sent"]}
            }),
        ),
        (
            "tls-client-auth",
            json!({
                "redirect_uris": ["https://tpp.example/cb"],
                "token_endpoint_auth_method": "tls_client_auth",
                "tls_client_auth_subject_dn": "CN=client.example,O=TPP Ltd,C=GB",
                "tls_client_certificate_bound_access_tokens": true
            }),
        ),
        (
            "self-signed-san-ip",
            json!({
                "grant_types": ["client_credentials"], "response_types": [],
                "token_endpoint_auth_method": "self_signed_tls_client_auth",
                "jwks_uri": "https://tpp.example/jwks"
            }),
        ),
        (
            "oauth-secret-settings",
            json!({
                "redirect_uris": ["http://127.0.0.1:8080/cb"],
                "token_endpoint_auth_method": "client_secret_basic",
                "access_token_format": "opaque", "access_token_lifetime_secs": 300,
                "rate_limit_tier": "partner", "admin_scopes": ["admin:clients"]
            }),
        ),
        (
            "resource-server",
            json!({
                "name": "Accounts API", "token_format": "jwt", "scopes": ["accounts"],
                "authorization_details_types": ["account_information"]
            }),
        ),
    ];
    bodies
        .into_iter()
        .map(|(name, body)| (name.to_owned(), serde_json::to_vec(&body).unwrap()))
        .collect()
}

fn write(fuzz: &Path, target: &str, seeds: Seeds) {
    let dir = fuzz.join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    for old in std::fs::read_dir(&dir).unwrap() {
        let path = old.unwrap().path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (name, bytes) in seeds {
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus: run by hand"]
fn generate() {
    let fuzz = super::fuzz_dir();
    let certificates = certificates();
    let keys_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/keys");
    std::fs::write(keys_dir.join("client-cert.der"), &certificates[0].1).unwrap();
    let all: [(&str, Seeds); 13] = [
        ("jws_compact", jws_compact()),
        ("jwk", jwk()),
        ("access_token", access_token()),
        ("client_assertion", client_assertion()),
        ("request_object", request_object()),
        ("dpop_proof", dpop_proof()),
        ("software_statement", software_statement()),
        ("par_form", par_form()),
        ("token_form", token_form()),
        ("authorization_details", authorization_details()),
        ("client_cert", client_cert(&certificates)),
        ("subject_dn", subject_dn()),
        ("client_metadata", client_metadata()),
    ];
    for (target, seeds) in all {
        assert!(
            portcullis_fuzz_targets::TARGETS
                .iter()
                .any(|(name, _)| *name == target)
        );
        write(&fuzz, target, seeds);
    }
}
