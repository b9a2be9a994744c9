//! The wards and clinics encounters take place in, shared by all patients.

use serde_json::{Value, json};

use super::{coding, hl7_system, meta};
use fhirgate_core::fhir::Version;

/// One place: its name, its v3 RoleCode service type and its physical type
/// (`wa` ward, `bu` building).
struct Place {
    name: &'static str,
    role: (&'static str, &'static str),
    physical: (&'static str, &'static str),
    street: &'static str,
}

const HOSPITAL: &str = "1 Infirmary Road";
const PLACES: &[Place] = &[
    Place {
        name: "Springfield General Hospital, Ward 3B",
        role: ("HU", "Hospital unit"),
        physical: ("wa", "Ward"),
        street: HOSPITAL,
    },
    Place {
        name: "Springfield General Hospital, Intensive Care Unit",
        role: ("ICU", "Intensive care unit"),
        physical: ("wa", "Ward"),
        street: HOSPITAL,
    },
    Place {
        name: "Springfield General Hospital, Emergency Department",
        role: ("ER", "Emergency room"),
        physical: ("wa", "Ward"),
        street: HOSPITAL,
    },
    Place {
        name: "Harbour Street Family Clinic",
        role: ("GIM", "General internal medicine clinic"),
        physical: ("bu", "Building"),
        street: "48 Harbour Street",
    },
    Place {
        name: "Springfield Outpatient Centre",
        role: ("OF", "Outpatient facility"),
        physical: ("bu", "Building"),
        street: "12 Market Square",
    },
    Place {
        name: "Springfield General Hospital, Maternity Ward",
        role: ("HU", "Hospital unit"),
        physical: ("wa", "Ward"),
        street: HOSPITAL,
    },
];

/// The wards, by index into the locations.
pub const WARDS: &[usize] = &[0, 1, 5];
pub const EMERGENCY: &[usize] = &[2];
pub const CLINICS: &[usize] = &[3, 4];

/// The id of location `n`: `loc-1` for the first.
pub fn id(n: usize) -> String {
    format!("loc-{}", n + 1)
}

/// The name of location `n`, as a reference's `display` gives it.
pub fn name(n: usize) -> &'static str {
    PLACES[n].name
}

/// Every location, in release `v`.
pub fn all(v: Version) -> Vec<Value> {
    PLACES.iter().enumerate().map(|(n, place)| location(v, n, place)).collect()
}

fn location(v: Version, n: usize, place: &Place) -> Value {
    let role = json!({ "coding": [coding(&hl7_system(v, "v3-RoleCode"), place.role.0, place.role.1)] });
    let physical = json!({
        "coding": [coding(&hl7_system(v, "location-physical-type"), place.physical.0, place.physical.1)]
    });
    json!({
        "resourceType": "Location",
        "id": id(n),
        "meta": meta(),
        "status": "active",
        "name": place.name,
        "mode": "instance",
        // A list since R4.
        "type": if v == Version::R4 { json!([role]) } else { role },
        "physicalType": physical,
        "address": { "use": "work", "line": [place.street], "city": "Springfield", "country": "US" },
    })
}
