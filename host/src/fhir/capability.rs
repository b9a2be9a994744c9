//! The capability statement each face serves at `/metadata`, without a token:
//! a DSTU2 Conformance or an STU3 CapabilityStatement advertising the token
//! and authorize URLs through the SMART `oauth-uris` extension.

use serde_json::{Value, json};

use super::Version;

/// One resource the face serves, with its search parameters per face.
struct ResourceCapability {
    kind: &'static str,
    /// (name, type) pairs, as the app sends them on each face.
    stu3_params: &'static [(&'static str, &'static str)],
    dstu2_params: &'static [(&'static str, &'static str)],
}

/// What the gateway serves today (interfaces.md, Patient).
const RESOURCES: &[ResourceCapability] = &[ResourceCapability {
    kind: "Patient",
    stu3_params: &[
        ("_id", "token"),
        ("family", "string"),
        ("given", "string"),
        ("name", "string"),
        ("birthdate", "date"),
        ("gender", "token"),
        ("identifier", "token"),
    ],
    dstu2_params: &[
        ("_id", "token"),
        ("family", "string"),
        ("given", "string"),
        ("name", "string"),
        ("birthdate", "date"),
        ("gender", "token"),
        ("identifier", "token"),
    ],
}];

/// The capability statement of `face` for a gateway reached at `public_base`
/// (`scheme://host[:port]`).
pub fn capability_statement(face: Version, public_base: &str) -> Value {
    let security = json!({
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                { "url": "token", "valueUri": format!("{public_base}/oauth2/token") },
                { "url": "authorize", "valueUri": format!("{public_base}/oauth2/authorize") },
            ]
        }],
        "service": [{
            "coding": [{
                "system": "http://hl7.org/fhir/restful-security-service",
                "code": "OAuth",
                "display": "OAuth"
            }],
            "text": "OAuth 2.0 client credentials"
        }],
        "description": "Obtain a bearer token with the client_credentials grant at the token URL, scope = your tenant id."
    });
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|r| {
            let params = match face {
                Version::Dstu2 => r.dstu2_params,
                _ => r.stu3_params,
            };
            json!({
                "type": r.kind,
                "interaction": [{ "code": "read" }, { "code": "search-type" }],
                "searchParam": params.iter().map(|(name, ty)| json!({ "name": name, "type": ty })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let date = crate::oauth::keys::now_rfc3339_date();
    let software = json!({ "name": "fhirgate", "version": env!("CARGO_PKG_VERSION") });
    let rest = json!([{
        "mode": "server",
        "security": security,
        "resource": resources,
        // The app asks for several resources at once with a `batch` Bundle.
        "interaction": [{ "code": "batch" }],
    }]);
    match face {
        Version::Dstu2 => json!({
            "resourceType": "Conformance",
            "status": "active",
            "date": date,
            "publisher": "fhirgate",
            "kind": "instance",
            "software": software,
            "implementation": { "description": "fhirgate DSTU2 face", "url": format!("{public_base}/dstu2") },
            "fhirVersion": face.number(),
            "acceptUnknown": "no",
            "format": ["application/json+fhir", "json"],
            "rest": rest,
        }),
        _ => json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": date,
            "publisher": "fhirgate",
            "kind": "instance",
            "software": software,
            "implementation": { "description": "fhirgate STU3 face", "url": format!("{public_base}/stu3") },
            "fhirVersion": face.number(),
            "acceptUnknown": "no",
            "format": ["application/fhir+json", "json"],
            "rest": rest,
        }),
    }
}
