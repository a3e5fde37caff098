//! The certificate checks of RFC 8705 §2: the registered subject DN or SAN of a
//! `tls_client_auth` client, and the public key of a `self_signed_tls_client_auth` client.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_jose::{Jwks, jwk_thumbprint_sha256};
use serde_json::{Map, Value};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Name;

/// One attribute of a distinguished name: the attribute type's OID (dotted) and the value,
/// normalised for comparison.
type Attribute = (String, String);
/// A relative distinguished name: its attributes, sorted.
type Rdn = Vec<Attribute>;

/// Parses a certificate, or `None` if it is not DER X.509.
#[must_use]
pub fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Some(cert),
        _ => None,
    }
}

/// Short names of RFC 4514 §3 and the ones directories use (eIDAS, Open Banking, Open Finance
/// Brasil), to OIDs.
fn attribute_oid(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_uppercase().as_str() {
        "CN" => "2.5.4.3",
        "SN" | "SURNAME" => "2.5.4.4",
        "SERIALNUMBER" => "2.5.4.5",
        "C" => "2.5.4.6",
        "L" => "2.5.4.7",
        "ST" | "S" => "2.5.4.8",
        "STREET" => "2.5.4.9",
        "O" => "2.5.4.10",
        "OU" => "2.5.4.11",
        "T" | "TITLE" => "2.5.4.12",
        "BUSINESSCATEGORY" => "2.5.4.15",
        "POSTALCODE" => "2.5.4.17",
        "GIVENNAME" | "GN" => "2.5.4.42",
        "ORGANIZATIONIDENTIFIER" => "2.5.4.97",
        "DC" => "0.9.2342.19200300.100.1.25",
        "UID" => "0.9.2342.19200300.100.1.1",
        "E" | "EMAILADDRESS" => "1.2.840.113549.1.9.1",
        "JURISDICTIONC" | "JURISDICTIONCOUNTRYNAME" => "1.3.6.1.4.1.311.60.2.1.3",
        _ => return None,
    })
}

/// Values compare case-insensitively with runs of spaces collapsed (RFC 4517 caseIgnoreMatch,
/// which is what directory strings use).
fn normalise(value: &str) -> String {
    value
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Splits on an unescaped separator.
fn split_unescaped(text: &str, separators: &[char]) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            current.push(c);
            if let Some(next) = chars.next() {
                current.push(next);
            }
        } else if separators.contains(&c) {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

/// Undoes RFC 4514 §2.4 escaping: `\` before a special character, or two hex digits.
fn unescape(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let raw = value.as_bytes();
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'\\' {
            let next = *raw.get(i + 1)?;
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(byte) if next.is_ascii_hexdigit() => {
                    bytes.push(byte);
                    i += 3;
                }
                _ => {
                    bytes.push(next);
                    i += 2;
                }
            }
        } else {
            bytes.push(b);
            i += 1;
        }
    }
    String::from_utf8(bytes).ok()
}

/// Parses an RFC 4514 distinguished name into RDNs in the order written. `None` when it does not
/// parse, names an unknown attribute type, or uses a `#`-hex (BER) value.
fn parse_dn(text: &str) -> Option<Vec<Rdn>> {
    if text.trim().is_empty() || text.len() > 4096 {
        return None;
    }
    split_unescaped(text, &[','])
        .into_iter()
        .map(|rdn| {
            let mut attributes = split_unescaped(&rdn, &['+'])
                .into_iter()
                .map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    let name = name.trim();
                    let name = name
                        .strip_prefix("OID.")
                        .or_else(|| name.strip_prefix("oid."))
                        .unwrap_or(name);
                    let oid = if name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                        && name.contains('.')
                    {
                        name.to_owned()
                    } else {
                        attribute_oid(name)?.to_owned()
                    };
                    let value = value.trim();
                    if value.starts_with('#') {
                        return None;
                    }
                    Some((oid, normalise(&unescape(value)?)))
                })
                .collect::<Option<Vec<_>>>()?;
            attributes.sort();
            Some(attributes)
        })
        .collect()
}

/// The RDNs of a certificate name in DER order, or `None` if a value is not a string.
fn certificate_dn(name: &X509Name<'_>) -> Option<Vec<Rdn>> {
    name.iter()
        .map(|rdn| {
            let mut attributes = rdn
                .iter()
                .map(|attribute| {
                    let value = attribute.as_str().ok()?;
                    Some((attribute.attr_type().to_id_string(), normalise(value)))
                })
                .collect::<Option<Vec<_>>>()?;
            attributes.sort();
            Some(attributes)
        })
        .collect()
}

/// RFC 8705 §2.1.2: whether the certificate's subject is the registered DN. The registered string
/// is read as RFC 4514 (most significant RDN last); the DER order written out (as OpenSSL prints
/// it) is accepted too. Every RDN and attribute must match: nothing is ignored.
#[must_use]
pub fn subject_matches(cert: &X509Certificate<'_>, registered: &str) -> bool {
    let (Some(expected), Some(actual)) = (parse_dn(registered), certificate_dn(cert.subject()))
    else {
        return false;
    };
    let reversed: Vec<Rdn> = expected.iter().rev().cloned().collect();
    !actual.is_empty() && (actual == reversed || actual == expected)
}

/// Whether the certificate's subject has an attribute of type `name` (a short name such as `UID`
/// or `CN`) whose value is `value` (caseIgnoreMatch): how directories tie a transport certificate
/// to a piece of software (Open Finance Brasil puts the `software_id` in `UID`, UK Open Banking in
/// `CN`).
#[must_use]
pub fn subject_has_attribute(cert: &X509Certificate<'_>, name: &str, value: &str) -> bool {
    let (Some(oid), Some(rdns)) = (attribute_oid(name), certificate_dn(cert.subject())) else {
        return false;
    };
    let value = normalise(value);
    rdns.iter()
        .flatten()
        .any(|(attribute, actual)| attribute == oid && *actual == value)
}

/// The kind of subject alternative name a client registered (RFC 8705 §2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanKind {
    /// `tls_client_auth_san_dns`.
    Dns,
    /// `tls_client_auth_san_uri`.
    Uri,
    /// `tls_client_auth_san_ip`.
    Ip,
    /// `tls_client_auth_san_email`.
    Email,
}

/// Whether one of the certificate's subject alternative names of `kind` is `registered`.
#[must_use]
pub fn san_matches(cert: &X509Certificate<'_>, kind: SanKind, registered: &str) -> bool {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let registered_ip: Option<IpAddr> = registered.parse().ok();
    san.value
        .general_names
        .iter()
        .any(|name| match (kind, name) {
            (SanKind::Dns, GeneralName::DNSName(dns)) => dns.eq_ignore_ascii_case(registered),
            (SanKind::Uri, GeneralName::URI(uri)) => *uri == registered,
            (SanKind::Email, GeneralName::RFC822Name(email)) => {
                email.eq_ignore_ascii_case(registered)
            }
            (SanKind::Ip, GeneralName::IPAddress(bytes)) => {
                let presented = match bytes.len() {
                    4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                    _ => None,
                };
                presented.is_some() && presented == registered_ip
            }
            _ => false,
        })
}

fn b64(bytes: &[u8]) -> Value {
    URL_SAFE_NO_PAD.encode(bytes).into()
}

/// The certificate's public key as JWK members (RSA, EC P-256/384/521, Ed25519), or `None` for
/// any other key type.
fn public_key_jwk(cert: &X509Certificate<'_>) -> Option<Map<String, Value>> {
    let spki = cert.public_key();
    let mut jwk = Map::new();
    match spki.algorithm.algorithm.to_id_string().as_str() {
        // id-Ed25519 (RFC 8410).
        "1.3.101.112" => {
            jwk.insert("kty".into(), "OKP".into());
            jwk.insert("crv".into(), "Ed25519".into());
            jwk.insert("x".into(), b64(&spki.subject_public_key.data));
            return Some(jwk);
        }
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())?
                .to_id_string();
            let (crv, size) = match curve.as_str() {
                "1.2.840.10045.3.1.7" => ("P-256", 32),
                "1.3.132.0.34" => ("P-384", 48),
                "1.3.132.0.35" => ("P-521", 66),
                _ => return None,
            };
            let PublicKey::EC(point) = spki.parsed().ok()? else {
                return None;
            };
            let data = point.data();
            let (&tag, coordinates) = data.split_first()?;
            if tag != 0x04 || coordinates.len() != 2 * size {
                return None;
            }
            let (x, y) = coordinates.split_at(size);
            jwk.insert("kty".into(), "EC".into());
            jwk.insert("crv".into(), crv.into());
            jwk.insert("x".into(), b64(x));
            jwk.insert("y".into(), b64(y));
        }
        _ => {
            let PublicKey::RSA(rsa) = spki.parsed().ok()? else {
                return None;
            };
            let strip = |bytes: &[u8]| -> Vec<u8> {
                bytes.iter().copied().skip_while(|b| *b == 0).collect()
            };
            jwk.insert("kty".into(), "RSA".into());
            jwk.insert("n".into(), b64(&strip(rsa.modulus)));
            jwk.insert("e".into(), b64(&strip(rsa.exponent)));
        }
    }
    Some(jwk)
}

/// RFC 8705 §2.2: whether the presented certificate is one the client registered: its public key
/// is a key of the client's JWK set (compared by RFC 7638 thumbprint), or it is the first
/// certificate of a key's `x5c`.
#[must_use]
pub fn key_in_jwks(der: &[u8], cert: &X509Certificate<'_>, jwks: &Jwks) -> bool {
    let by_certificate = jwks.keys.iter().any(|key| {
        key.members()
            .get("x5c")
            .and_then(Value::as_array)
            .and_then(|chain| chain.first())
            .and_then(Value::as_str)
            .and_then(|first| base64::engine::general_purpose::STANDARD.decode(first).ok())
            .is_some_and(|registered| registered == der)
    });
    if by_certificate {
        return true;
    }
    let Some(thumbprint) = public_key_jwk(cert).and_then(|jwk| jwk_thumbprint_sha256(&jwk).ok())
    else {
        return false;
    };
    jwks.keys
        .iter()
        .any(|key| key.thumbprint().is_ok_and(|t| t == thumbprint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    fn certificate(
        dn: &[(DnType, &str)],
        sans: Vec<SanType>,
        key: &KeyPair,
    ) -> rustls_pki_types::CertificateDer<'static> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        for (kind, value) in dn {
            name.push(kind.clone(), *value);
        }
        params.distinguished_name = name;
        params.subject_alt_names = sans;
        params.self_signed(key).unwrap().der().clone()
    }

    #[test]
    fn rfc_8705_2_1_2_subject_dn_matches_in_rfc_4514_or_der_order_and_nothing_else() {
        let key = KeyPair::generate().unwrap();
        let der = certificate(
            &[
                (DnType::CountryName, "GB"),
                (DnType::OrganizationName, "Example TPP, Ltd"),
                (DnType::CommonName, "tpp-001"),
            ],
            vec![],
            &key,
        );
        let cert = parse(&der).unwrap();
        for ok in [
            r"CN=tpp-001,O=Example TPP\, Ltd,C=GB",
            r"cn=TPP-001, o=Example TPP\2C Ltd, c=gb",
            r"C=GB,O=Example TPP\, Ltd,CN=tpp-001",
            r"2.5.4.3=tpp-001,O=Example TPP\, Ltd,C=GB",
        ] {
            assert!(subject_matches(&cert, ok), "{ok}");
        }
        for bad in [
            "CN=tpp-001,C=GB",
            r"CN=tpp-002,O=Example TPP\, Ltd,C=GB",
            r"CN=tpp-001,O=Example TPP\, Ltd,C=GB,OU=extra",
            r"O=Example TPP\, Ltd,CN=tpp-001,C=GB",
            r"CN=#0c07,O=Example TPP\, Ltd,C=GB",
            r"XX=tpp-001,O=Example TPP\, Ltd,C=GB",
            "",
        ] {
            assert!(!subject_matches(&cert, bad), "{bad}");
        }
    }

    #[test]
    fn rfc_8705_2_1_2_san_of_each_kind_matches_only_its_own_kind() {
        let key = KeyPair::generate().unwrap();
        let der = certificate(
            &[(DnType::CommonName, "x")],
            vec![
                SanType::DnsName("tpp.example".try_into().unwrap()),
                SanType::URI("https://tpp.example/id".try_into().unwrap()),
                SanType::IpAddress("192.0.2.7".parse().unwrap()),
                SanType::Rfc822Name("ops@tpp.example".try_into().unwrap()),
            ],
            &key,
        );
        let cert = parse(&der).unwrap();
        assert!(san_matches(&cert, SanKind::Dns, "TPP.example"));
        assert!(san_matches(&cert, SanKind::Uri, "https://tpp.example/id"));
        assert!(san_matches(&cert, SanKind::Ip, "192.0.2.7"));
        assert!(san_matches(&cert, SanKind::Email, "ops@tpp.example"));
        assert!(!san_matches(&cert, SanKind::Dns, "https://tpp.example/id"));
        assert!(!san_matches(&cert, SanKind::Uri, "https://tpp.example/ID"));
        assert!(!san_matches(&cert, SanKind::Ip, "192.0.2.8"));
        assert!(!san_matches(&cert, SanKind::Dns, "other.example"));
    }

    #[test]
    fn rfc_8705_2_2_self_signed_certificate_matches_its_key_in_the_jwks() {
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ED25519,
            &rcgen::PKCS_RSA_SHA256,
        ] {
            let key = match KeyPair::generate_for(alg) {
                Ok(key) => key,
                // rcgen cannot generate RSA keys with every backend; covered by EC and Ed25519.
                Err(_) => continue,
            };
            let der = certificate(&[(DnType::CommonName, "self")], vec![], &key);
            let cert = parse(&der).unwrap();
            let jwk = public_key_jwk(&cert).unwrap();
            let jwks: Jwks = serde_json::from_value(serde_json::json!({"keys": [jwk]})).unwrap();
            assert!(key_in_jwks(&der, &cert, &jwks), "{alg:?}");

            let other = KeyPair::generate_for(alg).unwrap();
            let other_der = certificate(&[(DnType::CommonName, "self")], vec![], &other);
            let other_cert = parse(&other_der).unwrap();
            assert!(!key_in_jwks(&other_der, &other_cert, &jwks), "{alg:?}");
        }
    }
}
