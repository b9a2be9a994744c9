//! Condition: statuses are CodeableConcepts in R4 and codes before; the date
//! the condition was recorded is `recordedDate` (R4), `assertedDate` (STU3) or
//! `dateRecorded` (DSTU2, a date); DSTU2 names the subject `patient`.

use serde_json::{Value, json};

use super::elements::{
    BACKBONE, Obj, RESOURCE, annotation_text, concept_to_code, keep, objects_mut, recode, rename, rename_reference,
    take, to_list, to_single,
};

const STU3: &[&str] = &[
    "identifier",
    "clinicalStatus",
    "verificationStatus",
    "category",
    "severity",
    "code",
    "bodySite",
    "subject",
    "context",
    "onsetDateTime",
    "onsetAge",
    "onsetPeriod",
    "onsetRange",
    "onsetString",
    "abatementDateTime",
    "abatementAge",
    "abatementBoolean",
    "abatementPeriod",
    "abatementRange",
    "abatementString",
    "assertedDate",
    "asserter",
    "stage",
    "evidence",
    "note",
];

const DSTU2: &[&str] = &[
    "identifier",
    "patient",
    "encounter",
    "asserter",
    "dateRecorded",
    "code",
    "category",
    "clinicalStatus",
    "verificationStatus",
    "severity",
    "onsetDateTime",
    "onsetQuantity",
    "onsetPeriod",
    "onsetRange",
    "onsetString",
    "abatementDateTime",
    "abatementQuantity",
    "abatementBoolean",
    "abatementPeriod",
    "abatementRange",
    "abatementString",
    "stage",
    "evidence",
    "bodySite",
    "notes",
];

const STAGE: &[&str] = &["summary", "assessment"];
const EVIDENCE: &[&str] = &["code", "detail"];

/// The category code system: `encounter-diagnosis` (STU3 and R4) was
/// `diagnosis` in DSTU2.
const CATEGORY_SYSTEM: &str = "/condition-category";

pub fn r4_to_stu3(res: &mut Obj) {
    // R4 added `relapse` (STU3 `recurrence`) and `unconfirmed` (STU3
    // `provisional`).
    concept_to_code(res, "clinicalStatus", "/condition-clinical", &[("relapse", Some("recurrence"))]);
    concept_to_code(res, "verificationStatus", "/condition-ver-status", &[("unconfirmed", Some("provisional"))]);
    // STU3 has one date the condition was asserted: R4's recorded date, or
    // the onset date when the provider recorded no other.
    if !res.contains_key("recordedDate")
        && let Some(onset) = res.get("onsetDateTime").cloned()
    {
        res.insert("recordedDate".into(), onset);
    }
    rename(res, "recordedDate", "assertedDate");
    rename(res, "encounter", "context");
    to_single(res, "stage");
    if let Some(Value::Object(stage)) = res.get_mut("stage") {
        keep(stage, BACKBONE, STAGE);
    }
    for evidence in objects_mut(res, "evidence") {
        keep(evidence, BACKBONE, EVIDENCE);
    }
    keep(res, RESOURCE, STU3);
}

pub fn stu3_to_dstu2(res: &mut Obj) {
    rename_reference(res, "subject", "patient", "Patient");
    rename_reference(res, "context", "encounter", "Encounter");
    // DSTU2 `dateRecorded` is a date.
    if let Some(Value::String(date)) = take(res, "assertedDate") {
        res.insert("dateRecorded".into(), Value::String(date.chars().take(10).collect()));
    }
    to_single(res, "category");
    recode_category(res, "encounter-diagnosis", "diagnosis");
    recode(res, "clinicalStatus", &[("recurrence", Some("relapse")), ("inactive", Some("resolved"))]);
    // `verificationStatus` is required in DSTU2.
    if !res.contains_key("verificationStatus") {
        res.insert("verificationStatus".into(), Value::String("unknown".into()));
    }
    rename(res, "onsetAge", "onsetQuantity");
    rename(res, "abatementAge", "abatementQuantity");
    for evidence in objects_mut(res, "evidence") {
        to_single(evidence, "code");
        keep(evidence, BACKBONE, EVIDENCE);
    }
    if let Some(text) = take(res, "note").as_ref().and_then(annotation_text) {
        res.insert("notes".into(), Value::String(text));
    }
    keep(res, RESOURCE, DSTU2);
}

pub fn dstu2_to_stu3(res: &mut Obj) {
    rename(res, "patient", "subject");
    rename(res, "encounter", "context");
    rename(res, "dateRecorded", "assertedDate");
    recode_category(res, "diagnosis", "encounter-diagnosis");
    to_list(res, "category");
    recode(res, "clinicalStatus", &[("relapse", Some("recurrence"))]);
    rename(res, "onsetQuantity", "onsetAge");
    rename(res, "abatementQuantity", "abatementAge");
    for evidence in objects_mut(res, "evidence") {
        to_list(evidence, "code");
        keep(evidence, BACKBONE, EVIDENCE);
    }
    if let Some(Value::String(text)) = take(res, "notes") {
        res.insert("note".into(), json!([{ "text": text }]));
    }
    keep(res, RESOURCE, STU3);
}

fn recode_category(res: &mut Obj, from: &str, to: &str) {
    let codings = match res.get_mut("category") {
        Some(Value::Object(c)) => c.get_mut("coding").and_then(Value::as_array_mut),
        _ => None,
    };
    for coding in codings.into_iter().flatten() {
        let hl7 = coding.get("system").and_then(Value::as_str).is_some_and(|s| s.ends_with(CATEGORY_SYSTEM));
        if hl7 && coding.get("code").and_then(Value::as_str) == Some(from) {
            coding["code"] = Value::String(to.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::convert;
    use fhirgate_guest_sdk::types::FhirVersion;
    use serde_json::json;

    fn r4() -> serde_json::Map<String, serde_json::Value> {
        json!({
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "relapse"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis"}]}],
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertension"}]},
            "subject": {"reference": "Patient/1"},
            "encounter": {"reference": "Encounter/2"},
            "recordedDate": "2023-04-02T09:30:00Z",
            "stage": [{"summary": {"text": "mild"}, "type": {"text": "clinical"}}],
            "note": [{"text": "follow up"}]
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn r4_to_stu3() {
        let mut c = r4();
        convert(&mut c, FhirVersion::R4, FhirVersion::Stu3).unwrap();
        assert_eq!(c["clinicalStatus"], "recurrence");
        assert_eq!(c["verificationStatus"], "confirmed");
        assert_eq!(c["assertedDate"], "2023-04-02T09:30:00Z");
        assert_eq!(c["context"]["reference"], "Encounter/2");
        assert_eq!(c["stage"], json!({"summary": {"text": "mild"}}));
    }

    #[test]
    fn r4_to_dstu2() {
        let mut c = r4();
        convert(&mut c, FhirVersion::R4, FhirVersion::Dstu2).unwrap();
        assert_eq!(c["patient"]["reference"], "Patient/1");
        assert_eq!(c["encounter"]["reference"], "Encounter/2");
        assert_eq!(c["dateRecorded"], "2023-04-02");
        assert_eq!(c["clinicalStatus"], "relapse");
        assert_eq!(c["category"]["coding"][0]["code"], "diagnosis");
        assert_eq!(c["notes"], "follow up");
        assert!(c.get("subject").is_none() && c.get("note").is_none());
    }

    #[test]
    fn onset_stands_in_for_a_missing_recorded_date() {
        let mut c = r4();
        c.remove("recordedDate");
        c.insert("onsetDateTime".into(), json!("2020-01-01"));
        convert(&mut c, FhirVersion::R4, FhirVersion::Stu3).unwrap();
        assert_eq!(c["assertedDate"], "2020-01-01");
        assert_eq!(c["onsetDateTime"], "2020-01-01");
    }
}
