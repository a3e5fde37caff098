//! Rich authorization requests (RFC 9396): `authorization_details` as a form sends it (JSON
//! text) and as a request object carries it (a JSON value), then in the words of the consent page.

use portcullis_consent::pages::{describe_detail, describe_granted_detail};
use portcullis_core::authz::details::{MAX_BYTES, MAX_ENTRIES, validate};
use serde_json::{Map, Value};

use crate::fixture::DETAILS_TYPES;
use crate::invariant::assert_stores;

/// `authorization_details` validated as text and as a value, for the fixture client's types; an
/// accepted value is then described for the consent and account pages.
///
/// Invariants: text and value give the same answer; an accepted array has 1 to
/// [`MAX_ENTRIES`] entries and comes back as sent; it is stored (in a request, a code, a grant,
/// an access token's claims) and reads back.
pub fn authorization_details(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let types: Vec<String> = DETAILS_TYPES.map(str::to_owned).to_vec();
    let from_text = validate(&Value::String(text.to_owned()), &types);
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        let from_value = validate(&value, &types);
        // A JSON string is read as the text of the array again (a form's encoding), so only
        // other values must agree with their text.
        if text.len() <= MAX_BYTES && !value.is_string() {
            assert_eq!(from_text, from_value, "text and value disagree");
        }
        if let Ok(entries) = &from_value {
            assert_eq!(
                Some(entries),
                value.as_array(),
                "entries do not come back as sent"
            );
        }
    }
    let Ok(entries) = from_text else { return };
    assert!(
        (1..=MAX_ENTRIES).contains(&entries.len()),
        "{} entries accepted",
        entries.len()
    );
    let mut stored = Map::new();
    stored.insert(
        "authorization_details".into(),
        Value::Array(entries.clone()),
    );
    assert_stores("authorization_details", &stored);
    for entry in &entries {
        let _ = describe_detail(entry);
        let _ = describe_granted_detail(entry, str::to_owned);
    }
}
