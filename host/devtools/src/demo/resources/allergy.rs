//! AllergyIntolerances: none, one or two per patient, the substance coded
//! (RxNorm for drugs, SNOMED CT otherwise) with its text, most with a
//! reaction; some lack a note or the reaction's severity.

use serde_json::{Value, json};

use super::{Draw, RXNORM, SNOMED, coding, concept, date_time, during_day, hl7_system, meta, narrative};
use super::{patient_ref, practitioner_ref, resource_id};
use fhirgate_core::fhir::Version;

pub const PREFIX: &str = "allergy";
const SALT: u64 = 0xa11e_4617;

/// A substance: its coding (system, code, display), the text clinicians
/// write, its category, and the reactions it causes (SNOMED CT).
struct Substance {
    system: &'static str,
    code: &'static str,
    display: &'static str,
    text: &'static str,
    category: &'static str,
    reactions: &'static [(&'static str, &'static str)],
}

const HIVES: (&str, &str) = ("247472004", "Hives");
const ANAPHYLAXIS: (&str, &str) = ("39579001", "Anaphylaxis");
const RASH: (&str, &str) = ("271807003", "Eruption of skin");
const WHEEZING: (&str, &str) = ("56018004", "Wheezing");
const NAUSEA: (&str, &str) = ("422587007", "Nausea");

const SUBSTANCES: &[Substance] = &[
    Substance {
        system: RXNORM,
        code: "7980",
        display: "Penicillin G",
        text: "Penicillin",
        category: "medication",
        reactions: &[HIVES, ANAPHYLAXIS, RASH],
    },
    Substance {
        system: SNOMED,
        code: "256349002",
        display: "Peanut - dietary (substance)",
        text: "Peanuts",
        category: "food",
        reactions: &[ANAPHYLAXIS, HIVES],
    },
    Substance {
        system: SNOMED,
        code: "111088007",
        display: "Latex (substance)",
        text: "Latex",
        category: "environment",
        reactions: &[RASH, HIVES],
    },
    Substance {
        system: SNOMED,
        code: "387406002",
        display: "Sulfonamide (substance)",
        text: "Sulfa drugs",
        category: "medication",
        reactions: &[RASH],
    },
    Substance {
        system: RXNORM,
        code: "1191",
        display: "Aspirin",
        text: "Aspirin",
        category: "medication",
        reactions: &[WHEEZING, HIVES],
    },
    Substance {
        system: SNOMED,
        code: "735029006",
        display: "Shellfish (substance)",
        text: "Shellfish",
        category: "food",
        reactions: &[HIVES, NAUSEA],
    },
    Substance {
        system: RXNORM,
        code: "2670",
        display: "Codeine",
        text: "Codeine",
        category: "medication",
        reactions: &[NAUSEA],
    },
];

const SEVERITIES: &[&str] = &["mild", "moderate", "severe"];
const NOTES: &[&str] = &[
    "Reported by the patient at admission.",
    "Confirmed by challenge test.",
    "Reaction in childhood; avoid.",
    "Carries an adrenaline auto-injector.",
];

/// What is known of one allergy, whatever the release.
struct Facts {
    substance: &'static Substance,
    confirmed: bool,
    /// High criticality.
    high: bool,
    note: Option<&'static str>,
    /// The manifestation (SNOMED CT code, display) and the severity if known.
    reaction: Option<((&'static str, &'static str), Option<&'static str>)>,
    recorded: i64,
}

/// Patient `i`'s allergies in release `v`, oldest first.
pub fn for_patient(v: Version, i: usize) -> Vec<Value> {
    let mut d = Draw::new(i, SALT);
    let n = match d.below(20) {
        0..7 => 0,
        7..16 => 1,
        _ => 2,
    };
    let mut recorded: Vec<i64> = (0..n).map(|_| d.range(30, 5_000)).collect();
    recorded.sort_unstable_by(|a, b| b.cmp(a));
    let substances = d.distinct(SUBSTANCES, n);
    let mut out = Vec::new();
    for (substance, days) in substances.into_iter().zip(recorded) {
        let confirmed = d.chance(75);
        let high = substance.reactions.contains(&ANAPHYLAXIS) || d.chance(20);
        let note = if d.chance(60) { Some(*d.pick(NOTES)) } else { None };
        let reaction = if d.chance(85) {
            let manifestation = *d.pick(substance.reactions);
            let severity = if manifestation == ANAPHYLAXIS {
                Some("severe")
            } else if d.chance(70) {
                Some(*d.pick(SEVERITIES))
            } else {
                None
            };
            Some((manifestation, severity))
        } else {
            None
        };
        let recorded = during_day(days, d.range(8 * 60, 18 * 60));
        let facts = Facts { substance, confirmed, high, note, reaction, recorded };
        out.push(allergy(v, i, out.len() + 1, &facts));
    }
    out
}

fn allergy(v: Version, i: usize, k: usize, f: &Facts) -> Value {
    let (s, confirmed, high, recorded) = (f.substance, f.confirmed, f.high, f.recorded);
    let substance = concept(s.system, s.code, s.display, s.text);
    let mut summary = format!("Allergy to {}", s.text.to_lowercase());
    let mut a = json!({
        "resourceType": "AllergyIntolerance",
        "id": resource_id(PREFIX, i, k),
        "meta": meta(),
        "type": "allergy",
        "patient": patient_ref(i),
    });
    if let Some(((code, display), severity)) = f.reaction {
        let mut r = json!({
            "substance": substance,
            "manifestation": [concept(SNOMED, code, display, display)],
        });
        if let Some(severity) = severity {
            r["severity"] = json!(severity);
            summary.push_str(&format!(": {} ({severity})", display.to_lowercase()));
        } else {
            summary.push_str(&format!(": {}", display.to_lowercase()));
        }
        a["reaction"] = json!([r]);
    }
    a["text"] = narrative(&format!("{summary}."));
    let verification = if confirmed { "confirmed" } else { "unconfirmed" };
    match v {
        Version::R4 | Version::Stu3 => {
            a["code"] = substance;
            a["category"] = json!([s.category]);
            a["criticality"] = json!(if high { "high" } else { "low" });
            a["recorder"] = practitioner_ref(i);
            if let Some(note) = f.note {
                a["note"] = json!([{ "text": note }]);
            }
            if v == Version::R4 {
                // R4 statuses are CodeableConcepts; the date is `recordedDate`.
                a["clinicalStatus"] = json!({
                    "coding": [coding(&hl7_system(v, "allergyintolerance-clinical"), "active", "Active")]
                });
                let display = if confirmed { "Confirmed" } else { "Unconfirmed" };
                a["verificationStatus"] = json!({
                    "coding": [coding(&hl7_system(v, "allergyintolerance-verification"), verification, display)]
                });
                a["recordedDate"] = json!(date_time(recorded));
            } else {
                a["clinicalStatus"] = json!("active");
                a["verificationStatus"] = json!(verification);
                a["assertedDate"] = json!(date_time(recorded));
            }
        }
        Version::Dstu2 => {
            // DSTU2 names the substance `substance`, folds both statuses
            // into `status`, and has one note.
            a["substance"] = substance;
            a["status"] = json!(verification);
            a["category"] = json!(s.category);
            a["criticality"] = json!(if high { "CRITH" } else { "CRITL" });
            a["recorder"] = practitioner_ref(i);
            a["recordedDate"] = json!(date_time(recorded));
            if let Some(note) = f.note {
                a["note"] = json!({ "text": note });
            }
        }
    }
    a
}
