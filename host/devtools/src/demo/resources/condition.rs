//! Conditions: one to three problems per patient, coded with SNOMED CT, with
//! an onset and a recorded date; most have a severity, a few are resolved.

use serde_json::{Value, json};

use super::{
    Draw, SNOMED, before, coding, concept, date, hl7_system, meta, patient_ref, practitioner_ref, resource_id,
};
use fhirgate_core::fhir::Version;

pub const PREFIX: &str = "cond";
const SALT: u64 = 0xc0dd_1710_4a11;

/// (SNOMED CT code, display, resolves): problems that resolve are acute.
const PROBLEMS: &[(&str, &str, bool)] = &[
    ("44054006", "Diabetes mellitus type 2", false),
    ("38341003", "Hypertensive disorder, systemic arterial", false),
    ("195967001", "Asthma", false),
    ("55822004", "Hyperlipidemia", false),
    ("35489007", "Depressive disorder", false),
    ("239873007", "Osteoarthritis of knee", false),
    ("13645005", "Chronic obstructive lung disease", false),
    ("49436004", "Atrial fibrillation", false),
    ("40930008", "Hypothyroidism", false),
    ("444814009", "Viral sinusitis", true),
    ("10509002", "Acute bronchitis", true),
    ("68566005", "Urinary tract infectious disease", true),
];

const SEVERITIES: &[(&str, &str)] = &[("255604002", "Mild"), ("6736007", "Moderate"), ("24484000", "Severe")];

/// What is known of one problem, whatever the release.
struct Facts {
    code: &'static str,
    display: &'static str,
    /// Days before the record's date.
    onset_days: i64,
    recorded_days: i64,
    abated_days: Option<i64>,
    severity: Option<(&'static str, &'static str)>,
}

/// Patient `i`'s conditions in release `v`, oldest first.
pub fn for_patient(v: Version, i: usize) -> Vec<Value> {
    let mut d = Draw::new(i, SALT);
    let n = 1 + d.below(3);
    let mut onsets: Vec<i64> = (0..n).map(|_| d.range(40, 6_000)).collect();
    onsets.sort_unstable_by(|a, b| b.cmp(a));
    let problems = d.distinct(PROBLEMS, n);
    let mut out = Vec::new();
    for (&(code, display, resolves), onset_days) in problems.into_iter().zip(onsets) {
        let recorded_days = onset_days - d.range(0, 30);
        let abated_days = resolves.then(|| recorded_days - d.range(7, 30).min(recorded_days - 1));
        let severity = if d.chance(65) { Some(*d.pick(SEVERITIES)) } else { None };
        let facts = Facts { code, display, onset_days, recorded_days, abated_days, severity };
        out.push(condition(v, i, out.len() + 1, &facts));
    }
    out
}

fn condition(v: Version, i: usize, k: usize, f: &Facts) -> Value {
    let clinical = if f.abated_days.is_some() { "resolved" } else { "active" };
    let mut c = json!({
        "resourceType": "Condition",
        "id": resource_id(PREFIX, i, k),
        "meta": meta(),
        "code": concept(SNOMED, f.code, f.display, f.display),
        "onsetDateTime": date(before(f.onset_days, 0)),
        "asserter": practitioner_ref(i),
    });
    if let Some(days) = f.abated_days {
        c["abatementDateTime"] = json!(date(before(days, 0)));
    }
    if let Some((code, display)) = f.severity {
        c["severity"] = json!({ "coding": [coding(SNOMED, code, display)] });
    }
    let recorded = date(before(f.recorded_days, 0));
    let category_system = hl7_system(v, "condition-category");
    match v {
        Version::R4 => {
            c["subject"] = patient_ref(i);
            c["clinicalStatus"] = status(v, "condition-clinical", clinical);
            c["verificationStatus"] = status(v, "condition-ver-status", "confirmed");
            c["category"] = json!([{ "coding": [coding(&category_system, "problem-list-item", "Problem List Item")] }]);
            c["recordedDate"] = json!(recorded);
        }
        Version::Stu3 => {
            c["subject"] = patient_ref(i);
            c["clinicalStatus"] = json!(clinical);
            c["verificationStatus"] = json!("confirmed");
            c["category"] = json!([{ "coding": [coding(&category_system, "problem-list-item", "Problem List Item")] }]);
            c["assertedDate"] = json!(recorded);
        }
        Version::Dstu2 => {
            c["patient"] = patient_ref(i);
            c["clinicalStatus"] = json!(clinical);
            c["verificationStatus"] = json!("confirmed");
            c["category"] = json!({ "coding": [coding(&category_system, "diagnosis", "Diagnosis")] });
            c["dateRecorded"] = json!(recorded);
        }
    }
    c
}

/// An R4 status CodeableConcept: a code of HL7 code system `system`.
fn status(v: Version, system: &str, code: &str) -> Value {
    let mut display = code.to_owned();
    display[..1].make_ascii_uppercase();
    json!({ "coding": [coding(&hl7_system(v, system), code, &display)] })
}
