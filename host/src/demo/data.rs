//! Deterministic synthetic patients for the demo provider. The same index
//! always yields the same patient, so tests can name expected results.
//! Realistic imperfections are deliberate: some patients have a second name,
//! no name prefix, no practitioner or no telecom.

use serde_json::{Value, json};

/// Patients the demo provider serves.
pub const PATIENT_COUNT: usize = 60;

const FAMILIES: &[&str] = &[
    "Chau",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Schmidt",
    "Castillo",
    "O'Brien",
    "Kowalski",
    "Haddad",
    "Fernandes",
    "Novak",
    "Ivanova",
    "Chandra",
    "Byrne",
    "Delacroix",
    "Mbeki",
    "Rossi",
    "Takahashi",
    "Nguyen",
    "Andersen",
    "Chaudhry",
    "Petrov",
    "Walsh",
    "Kim",
    "Abara",
    "Larsen",
    "Duarte",
    "Horvath",
    "Chatterjee",
];
const MALE: &[&str] =
    &["Hugh", "Arjun", "Mateo", "Lars", "Kenji", "Tomasz", "Obi", "Pierre", "Liam", "Omar", "Hugo", "Ravi"];
const FEMALE: &[&str] =
    &["Amara", "Ingrid", "Sofia", "Yuki", "Chloe", "Priya", "Maeve", "Zofia", "Leila", "Hannah", "Aiko", "Nadia"];
const PRACTITIONERS: &[(&str, &str)] =
    &[("prac-1", "Dr. Adele Byrne"), ("prac-2", "Dr. Samuel Osei"), ("prac-3", "Dr. Mei Lin")];

/// splitmix64: a tiny, well-known generator; enough for varied fake data.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The id of patient `i`.
pub fn patient_id(i: usize) -> String {
    format!("pat-{:03}", i + 1)
}

/// The MRN of patient `i`.
pub fn mrn(i: usize) -> String {
    format!("MRN{:06}", 100_001 + i)
}

/// Patient `i` as R4 JSON. Patient 0 is Hugh Chau, the example of the app's
/// documentation.
pub fn patient(i: usize) -> Value {
    let r = mix(i as u64 + 1);
    let male = if i == 0 { true } else { r & 1 == 0 };
    let family = if i == 0 { "Chau" } else { FAMILIES[(r >> 8) as usize % FAMILIES.len()] };
    let givens = if male { MALE } else { FEMALE };
    let given = if i == 0 { "Hugh" } else { givens[(r >> 16) as usize % givens.len()] };
    let middle = givens[(r >> 24) as usize % givens.len()];
    let year = 1935 + (r >> 32) as usize % 75;
    let month = 1 + (r >> 40) as usize % 12;
    let day = 1 + (r >> 48) as usize % 28;
    let birth = if i == 0 { "1970-01-01".to_owned() } else { format!("{year:04}-{month:02}-{day:02}") };

    let mut official = json!({
        "use": "official",
        "family": family,
        "given": [given, middle],
    });
    if i % 7 != 3 {
        official["prefix"] = json!([if male { "Mr." } else { "Ms." }]);
    }
    let mut names = vec![official];
    if i % 4 == 1 {
        names.push(if male {
            json!({ "use": "nickname", "given": [format!("{}y", &given[..given.len().min(4)])] })
        } else {
            json!({ "use": "maiden", "family": FAMILIES[(r >> 56) as usize % FAMILIES.len()], "given": [given] })
        });
    }

    let mut p = json!({
        "resourceType": "Patient",
        "id": patient_id(i),
        "meta": { "versionId": "1", "lastUpdated": "2026-01-15T09:30:00Z", "source": "#demo-provider" },
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                        "code": "MR",
                        "display": "Medical record number"
                    }],
                    "text": "MRN"
                },
                "system": "urn:oid:2.16.840.1.113883.19.5.99999.1",
                "value": mrn(i)
            },
            {
                "use": "official",
                "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS" }] },
                "system": "http://hl7.org/fhir/sid/us-ssn",
                "value": format!("999-{:02}-{:04}", (r >> 12) % 100, (r >> 20) % 10_000)
            }
        ],
        "active": true,
        "name": names,
        "gender": if male { "male" } else { "female" },
        "birthDate": birth,
        "address": [{
            "use": "home",
            "line": [format!("{} Harbour Street", 1 + (r >> 28) % 200)],
            "city": "Springfield",
            "postalCode": format!("{:05}", 10_000 + (r >> 36) % 89_999),
            "country": "US"
        }],
    });
    if i % 9 != 4 {
        p["telecom"] = json!([
            { "system": "phone", "value": format!("555-01{:02}", i % 100), "use": "home" },
            { "system": "sms", "value": format!("555-02{:02}", i % 100), "use": "mobile" }
        ]);
    }
    if i % 5 != 2 {
        let (id, display) = PRACTITIONERS[i % PRACTITIONERS.len()];
        p["generalPractitioner"] = json!([{ "reference": format!("Practitioner/{id}"), "display": display }]);
    }
    p
}

/// Every demo patient.
pub fn patients() -> Vec<Value> {
    (0..PATIENT_COUNT).map(patient).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        assert_eq!(patient(7), patient(7));
        let ids: std::collections::BTreeSet<_> =
            patients().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids.len(), PATIENT_COUNT);
        assert_eq!(patient(0)["name"][0]["family"], "Chau");
        assert_eq!(patient(0)["name"][0]["given"][0], "Hugh");
    }
}
