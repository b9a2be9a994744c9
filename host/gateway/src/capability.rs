//! The capability statement each face serves at `/metadata`, without a token:
//! a DSTU2 Conformance or an STU3 CapabilityStatement advertising the token
//! and authorize URLs through the SMART `oauth-uris` extension.

use serde_json::{Value, json};

use fhirgate_core::Version;

/// One resource the faces serve, with its search parameters (name, type) as
/// the app sends them; the same on both faces unless the type is renamed.
struct ResourceCapability {
    stu3: &'static str,
    dstu2: &'static str,
    params: &'static [(&'static str, &'static str)],
}

const BY_PATIENT: &[(&str, &str)] = &[("patient", "reference")];

/// What the gateway serves (interfaces.md), with the parameters the default
/// shaping module translates for every provider version; `_id` and `_count`
/// work on every type.
const RESOURCES: &[ResourceCapability] = &[
    ResourceCapability {
        stu3: "Patient",
        dstu2: "Patient",
        params: &[
            ("_id", "token"),
            ("family", "string"),
            ("given", "string"),
            ("name", "string"),
            ("birthdate", "date"),
            ("gender", "token"),
            ("identifier", "token"),
        ],
    },
    ResourceCapability {
        stu3: "Observation",
        dstu2: "Observation",
        params: &[("patient", "reference"), ("category", "token")],
    },
    ResourceCapability { stu3: "Condition", dstu2: "Condition", params: BY_PATIENT },
    ResourceCapability { stu3: "Encounter", dstu2: "Encounter", params: BY_PATIENT },
    ResourceCapability { stu3: "AllergyIntolerance", dstu2: "AllergyIntolerance", params: BY_PATIENT },
    ResourceCapability { stu3: "MedicationRequest", dstu2: "MedicationOrder", params: BY_PATIENT },
    ResourceCapability { stu3: "MedicationStatement", dstu2: "MedicationStatement", params: BY_PATIENT },
    ResourceCapability { stu3: "Coverage", dstu2: "Coverage", params: BY_PATIENT },
    ResourceCapability { stu3: "Location", dstu2: "Location", params: &[("_id", "token")] },
];

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
            let kind = match face {
                Version::Dstu2 => r.dstu2,
                _ => r.stu3,
            };
            let params = r.params;
            json!({
                "type": kind,
                "interaction": [{ "code": "read" }, { "code": "search-type" }],
                "searchParam": params.iter().map(|(name, ty)| json!({ "name": name, "type": ty })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let date = fhirgate_core::clock::now_rfc3339_date();
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
