//! Deterministic synthetic patients for the demo provider, in R4. The same
//! index always yields the same patient, so tests can name expected results;
//! their clinical data and the other releases' shapes are in `resources`.
//! Realistic imperfections are deliberate: some patients have a second name,
//! no name prefix, no practitioner or no telecom.

use serde_json::{Value, json};

/// Patients the demo provider serves by default.
pub const PATIENT_COUNT: usize = 60;
/// The most patients `--patients` asks for: enough for paging benchmarks,
/// small enough that the whole set stays a few megabytes in memory.
pub const MAX_PATIENTS: usize = 10_000;

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
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The id of patient `i`.
pub fn patient_id(i: usize) -> String {
    format!("pat-{:03}", i + 1)
}

/// The practitioner (id, display name) who looks after patient `i`: the
/// patient's `generalPractitioner` where the Patient names one.
pub fn practitioner(i: usize) -> (&'static str, &'static str) {
    PRACTITIONERS[i % PRACTITIONERS.len()]
}

/// Whether patient `i` is a full record: beyond the default set, every tenth
/// patient carries what a hospital's Patient often does besides the basics
/// (narrative, US Core extensions, marital status, an emergency contact,
/// languages): about 2 KB instead of 1.
pub fn full_record(i: usize) -> bool {
    i >= PATIENT_COUNT && i.is_multiple_of(10)
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
        let (id, display) = practitioner(i);
        p["generalPractitioner"] = json!([{ "reference": format!("Practitioner/{id}"), "display": display }]);
    }
    if full_record(i) {
        add_full_record(&mut p, i, r, male);
    }
    p
}

fn add_full_record(p: &mut Value, i: usize, r: u64, male: bool) {
    let family = p["name"][0]["family"].as_str().unwrap_or_default().to_owned();
    let given = p["name"][0]["given"][0].as_str().unwrap_or_default().to_owned();
    let birth = p["birthDate"].as_str().unwrap_or_default().to_owned();
    p["text"] = json!({
        "status": "generated",
        "div": format!(
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>{given} {family}, {}, born {birth}. MRN {}.</p></div>",
            if male { "male" } else { "female" },
            mrn(i)
        )
    });
    p["extension"] = json!([
        {
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
            "valueCode": if male { "M" } else { "F" }
        },
        {
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
            "extension": [
                {
                    "url": "ombCategory",
                    "valueCoding": {
                        "system": "urn:oid:2.16.840.1.113883.6.238",
                        "code": "2186-5",
                        "display": "Not Hispanic or Latino"
                    }
                },
                { "url": "text", "valueString": "Not Hispanic or Latino" }
            ]
        }
    ]);
    let married = r & 4 == 0;
    p["maritalStatus"] = json!({
        "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
            "code": if married { "M" } else { "S" },
            "display": if married { "Married" } else { "Never Married" }
        }]
    });
    p["contact"] = json!([{
        "relationship": [{
            "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "C", "display": "Emergency Contact" }]
        }],
        "name": { "family": family, "given": [FAMILIES[(r >> 44) as usize % FAMILIES.len()]] },
        "telecom": [{ "system": "phone", "value": format!("555-03{:02}", i % 100), "use": "mobile" }]
    }]);
    p["communication"] = json!([{
        "language": {
            "coding": [{ "system": "urn:ietf:bcp:47", "code": "en-US", "display": "English (United States)" }],
            "text": "English"
        },
        "preferred": true
    }]);
}

/// Every demo patient.
pub fn patients() -> Vec<Value> {
    patients_n(PATIENT_COUNT)
}

/// The first `n` patients. Any prefix is the same as in a larger set, so the
/// default 60 are always among them; ids and MRNs stay unique (names repeat).
pub fn patients_n(n: usize) -> Vec<Value> {
    (0..n).map(patient).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_records_are_about_2_kb_and_only_beyond_the_default_set() {
        assert!((0..PATIENT_COUNT).all(|i| !full_record(i)));
        let full = patient(PATIENT_COUNT);
        let len = serde_json::to_vec(&full).unwrap().len();
        assert!((1900..2400).contains(&len), "{len} bytes");
        assert!(full["contact"].is_array() && full["text"]["div"].is_string());
        assert!(!full_record(PATIENT_COUNT + 1) && patient(PATIENT_COUNT + 1).get("contact").is_none());
    }

    #[test]
    fn deterministic_and_distinct() {
        assert_eq!(patient(7), patient(7));
        let ids: std::collections::BTreeSet<_> =
            patients().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids.len(), PATIENT_COUNT);
        assert_eq!(patient(0)["name"][0]["family"], "Chau");
        assert_eq!(patient(0)["name"][0]["given"][0], "Hugh");
    }

    #[test]
    fn larger_sets_extend_the_default_one() {
        let many = patients_n(200);
        assert_eq!(many.len(), 200);
        assert_eq!(many[..PATIENT_COUNT], patients()[..]);
        let ids: std::collections::BTreeSet<_> = many.iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids.len(), 200);
        assert_eq!(many[199]["id"], "pat-200");
        // The default set is what existing tests name; it must not drift.
        let digest = fhirgate_core::digest::sha256_hex(serde_json::to_string(&patients()).unwrap().as_bytes());
        assert_eq!(digest, "669e18bb22993e444b5b727d9989442605b6e500c829d592a07d06190bf56680");
    }

    #[test]
    fn ids_and_mrns_unique_up_to_the_maximum() {
        let ids: std::collections::HashSet<_> = (0..MAX_PATIENTS).map(patient_id).collect();
        let mrns: std::collections::HashSet<_> = (0..MAX_PATIENTS).map(mrn).collect();
        assert_eq!(ids.len(), MAX_PATIENTS);
        assert_eq!(mrns.len(), MAX_PATIENTS);
        let last = patient(MAX_PATIENTS - 1);
        assert_eq!(last["id"], patient_id(MAX_PATIENTS - 1));
        assert_eq!(last["identifier"][0]["value"], mrn(MAX_PATIENTS - 1));
    }
}
