//! Medications: one to three prescriptions per patient (MedicationRequest in
//! R4 and STU3, MedicationOrder in DSTU2), the older ones ended, some naming
//! the drug by a reference with a display rather than a code; and for about
//! half the patients one MedicationStatement of what they take on their own.

use serde_json::{Value, json};

use super::resource_id;
use super::{
    Draw, RXNORM, before, concept, date, date_time, during_day, meta, narrative, patient_ref, practitioner_ref,
};
use fhirgate_core::fhir::Version;

pub const PRESCRIPTION_PREFIX: &str = "rx";
pub const STATEMENT_PREFIX: &str = "medstmt";
const SALT: u64 = 0x3ed1_ca7e;
const STATEMENT_SALT: u64 = 0x5747_e3e7;

/// A drug (RxNorm code, display, the text a prescriber writes) and how it is
/// taken.
struct Drug {
    code: &'static str,
    display: &'static str,
    text: &'static str,
    dosage: &'static str,
}

const PRESCRIBED: &[Drug] = &[
    Drug {
        code: "860975",
        display: "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
        text: "Metformin 500 mg extended-release tablet",
        dosage: "Take 1 tablet by mouth once daily with the evening meal.",
    },
    Drug {
        code: "314076",
        display: "lisinopril 10 MG Oral Tablet",
        text: "Lisinopril 10 mg tablet",
        dosage: "Take 1 tablet by mouth once daily.",
    },
    Drug {
        code: "197361",
        display: "amlodipine 5 MG Oral Tablet",
        text: "Amlodipine 5 mg tablet",
        dosage: "Take 1 tablet by mouth once daily.",
    },
    Drug {
        code: "312961",
        display: "Simvastatin 20 MG Oral Tablet",
        text: "Simvastatin 20 mg tablet",
        dosage: "Take 1 tablet by mouth at bedtime.",
    },
    Drug {
        code: "966222",
        display: "Levothyroxine Sodium 0.075 MG Oral Tablet",
        text: "Levothyroxine 75 mcg tablet",
        dosage: "Take 1 tablet by mouth every morning before breakfast.",
    },
    Drug {
        code: "745679",
        display: "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
        text: "Albuterol inhaler 90 mcg/actuation",
        dosage: "Inhale 2 puffs every 4 to 6 hours as needed for wheezing.",
    },
    Drug {
        code: "310798",
        display: "Hydrochlorothiazide 25 MG Oral Tablet",
        text: "Hydrochlorothiazide 25 mg tablet",
        dosage: "Take 1 tablet by mouth every morning.",
    },
    Drug {
        code: "308182",
        display: "Amoxicillin 250 MG Oral Capsule",
        text: "Amoxicillin 250 mg capsule",
        dosage: "Take 1 capsule by mouth three times daily for 7 days.",
    },
];

/// Taken without a prescription; the last is recorded as text only.
const SELF_TAKEN: &[Drug] = &[
    Drug {
        code: "313782",
        display: "Acetaminophen 325 MG Oral Tablet",
        text: "Acetaminophen 325 mg tablet",
        dosage: "1 to 2 tablets by mouth every 6 hours as needed for pain.",
    },
    Drug {
        code: "310965",
        display: "Ibuprofen 200 MG Oral Tablet",
        text: "Ibuprofen 200 mg tablet",
        dosage: "1 tablet by mouth up to three times daily with food, as needed.",
    },
    Drug { code: "", display: "", text: "Vitamin D3 1000 IU", dosage: "1 capsule by mouth daily." },
];

/// The drug as `medication[x]`: a code, or a reference to a Medication
/// (which this server does not serve) that carries the drug's name.
fn medication(res: &mut Value, drug: &Drug, by_reference: bool) {
    if by_reference {
        res["medicationReference"] =
            json!({ "reference": format!("Medication/rxnorm-{}", drug.code), "display": drug.text });
    } else if drug.code.is_empty() {
        res["medicationCodeableConcept"] = json!({ "text": drug.text });
    } else {
        res["medicationCodeableConcept"] = concept(RXNORM, drug.code, drug.display, drug.text);
    }
}

/// Patient `i`'s prescriptions in release `v`, oldest first: the latest is
/// active, the older ones completed or stopped.
pub fn prescriptions(v: Version, i: usize) -> Vec<Value> {
    let mut d = Draw::new(i, SALT);
    let n = 1 + d.below(3);
    let mut days_ago = vec![d.range(5, 200)];
    for _ in 1..n {
        let last = days_ago[days_ago.len() - 1];
        days_ago.push(last + d.range(60, 700));
    }
    days_ago.reverse();
    let drugs = d.distinct(PRESCRIBED, n);
    let mut out = Vec::new();
    for (k, (drug, days)) in drugs.into_iter().zip(days_ago).enumerate() {
        let written = during_day(days, d.range(8 * 60, 18 * 60));
        // Ended some days after it was written, unless it is the latest.
        let ended = (k + 1 < n).then(|| before(days - d.range(7, 50).min(days - 1), 0));
        let stopped = ended.is_some() && d.chance(30);
        let by_reference = d.chance(30);
        let status = match (ended, stopped) {
            (None, _) => "active",
            (Some(_), true) => "stopped",
            (Some(_), false) => "completed",
        };
        let mut m = json!({
            "id": resource_id(PRESCRIPTION_PREFIX, i, k + 1),
            "meta": meta(),
            "status": status,
            "text": narrative(&format!("{}: {}", drug.text, drug.dosage)),
            "dosageInstruction": [{ "text": drug.dosage }],
        });
        medication(&mut m, drug, by_reference);
        match v {
            Version::R4 | Version::Stu3 => {
                m["resourceType"] = json!("MedicationRequest");
                m["intent"] = json!("order");
                m["subject"] = patient_ref(i);
                m["authoredOn"] = json!(date_time(written));
                // The requester is a Reference in R4 and `{agent}` in STU3.
                m["requester"] =
                    if v == Version::R4 { practitioner_ref(i) } else { json!({ "agent": practitioner_ref(i) }) };
                if let Some(ended) = ended {
                    m["dispenseRequest"] = json!({ "validityPeriod": { "start": date(written), "end": date(ended) } });
                }
            }
            Version::Dstu2 => {
                m["resourceType"] = json!("MedicationOrder");
                m["patient"] = patient_ref(i);
                m["dateWritten"] = json!(date_time(written));
                m["prescriber"] = practitioner_ref(i);
                if let Some(ended) = ended {
                    m["dateEnded"] = json!(date_time(ended));
                }
            }
        }
        out.push(m);
    }
    out
}

/// Patient `i`'s medication statements in release `v`: one for about half
/// the patients, none for the others.
pub fn statements(v: Version, i: usize) -> Vec<Value> {
    let mut d = Draw::new(i, STATEMENT_SALT);
    if !d.chance(50) {
        return Vec::new();
    }
    let drug = d.pick(SELF_TAKEN);
    let since = before(d.range(30, 1_500), 0);
    let asserted = during_day(d.range(1, 29), d.range(8 * 60, 18 * 60));
    let mut s = json!({
        "resourceType": "MedicationStatement",
        "id": resource_id(STATEMENT_PREFIX, i, 1),
        "meta": meta(),
        "status": "active",
        "dateAsserted": date_time(asserted),
        "informationSource": patient_ref(i),
        "dosage": [{ "text": drug.dosage }],
    });
    // Since a day the patient remembers, or over a period still open.
    if d.chance(50) {
        s["effectiveDateTime"] = json!(date(since));
    } else {
        s["effectivePeriod"] = json!({ "start": date(since) });
    }
    medication(&mut s, drug, false);
    match v {
        Version::R4 => s["subject"] = patient_ref(i),
        Version::Stu3 => {
            s["subject"] = patient_ref(i);
            // STU3 requires saying whether it is taken.
            s["taken"] = json!("y");
        }
        Version::Dstu2 => {
            s["patient"] = patient_ref(i);
            s["wasNotTaken"] = json!(false);
        }
    }
    vec![s]
}
