//! Client metadata as dynamic registration (RFC 7591) and the admin API receive it: a JSON
//! object, parsed strictly, validated for each profile, and stored.

use portcullis_core::client::metadata::ClientMetadata;
use portcullis_core::client::settings::ClientSettings;
use portcullis_core::resource::ResourceMetadata;
use serde_json::{Map, Value};

use crate::invariant::{assert_stores, equivalent, reads_back};
use crate::jwt::PROFILES;

/// A registration request body: the operator's settings taken out and parsed as the admin API
/// does, then the rest as client metadata ([`registration`]); the same object as a resource
/// server's registration.
pub fn client_metadata(data: &[u8]) {
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = ResourceMetadata::parse(body.clone());
    let settings = ClientSettings::take_from(&mut body);
    if let Ok(settings) = ClientSettings::parse(settings) {
        let stored = settings.to_map();
        assert!(
            ClientSettings::parse(stored).is_ok_and(|back| back == settings),
            "client settings do not read back"
        );
    }
    registration(&body);
}

/// Client metadata from a registration request, validated for every profile.
///
/// Invariants: metadata that parses is stored and reads back as itself, and validates the same
/// after that.
pub(crate) fn registration(body: &Map<String, Value>) {
    let Ok(metadata) = ClientMetadata::from_request(body.clone()) else {
        return;
    };
    let stored = metadata.to_map();
    assert_stores("client metadata", &stored);
    let back = reads_back(&Value::Object(stored.clone()))
        .and_then(|v| v.as_object().cloned())
        .and_then(|m| ClientMetadata::from_stored(m).ok());
    assert!(
        back.is_some(),
        "client metadata that parsed does not read back"
    );
    let Some(back) = back else { return };
    assert!(
        equivalent(&Value::Object(back.to_map()), &Value::Object(stored)),
        "client metadata reads back as something else"
    );
    for profile in PROFILES {
        assert_eq!(
            metadata.validate(profile).is_ok(),
            back.validate(profile).is_ok(),
            "stored metadata validates differently for {profile:?}"
        );
    }
}
