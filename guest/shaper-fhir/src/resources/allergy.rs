//! AllergyIntolerance: R4's clinical and verification statuses are
//! CodeableConcepts, STU3's codes, and DSTU2 folds both into one `status`;
//! DSTU2 names the allergen `substance` (STU3 and R4: `code`).

use serde_json::{Value, json};

use super::elements::{
    BACKBONE, Obj, RESOURCE, annotations_to_one, concept_to_code, keep, objects_mut, recode, rename, take, to_list,
    to_single,
};

const STU3: &[&str] = &[
    "identifier",
    "clinicalStatus",
    "verificationStatus",
    "type",
    "category",
    "criticality",
    "code",
    "patient",
    "onsetDateTime",
    "onsetAge",
    "onsetPeriod",
    "onsetRange",
    "onsetString",
    "assertedDate",
    "recorder",
    "asserter",
    "lastOccurrence",
    "note",
    "reaction",
];

/// DSTU2 spells `lastOccurence` with one `r`.
const DSTU2: &[&str] = &[
    "identifier",
    "onset",
    "recordedDate",
    "recorder",
    "patient",
    "reporter",
    "substance",
    "status",
    "criticality",
    "type",
    "category",
    "lastOccurence",
    "note",
    "reaction",
];

const STU3_REACTION: &[&str] =
    &["substance", "manifestation", "description", "onset", "severity", "exposureRoute", "note"];
const DSTU2_REACTION: &[&str] =
    &["substance", "certainty", "manifestation", "description", "onset", "severity", "exposureRoute", "note"];

const CRITICALITY_TO_DSTU2: &[(&str, Option<&str>)] =
    &[("low", Some("CRITL")), ("high", Some("CRITH")), ("unable-to-assess", Some("CRITU"))];
const CRITICALITY_TO_STU3: &[(&str, Option<&str>)] =
    &[("CRITL", Some("low")), ("CRITH", Some("high")), ("CRITU", Some("unable-to-assess"))];

pub fn r4_to_stu3(res: &mut Obj) {
    concept_to_code(res, "clinicalStatus", "/allergyintolerance-clinical", &[]);
    concept_to_code(res, "verificationStatus", "/allergyintolerance-verification", &[]);
    required_verification(res);
    rename(res, "recordedDate", "assertedDate");
    for reaction in objects_mut(res, "reaction") {
        keep(reaction, BACKBONE, STU3_REACTION);
    }
    keep(res, RESOURCE, STU3);
}

pub fn stu3_to_dstu2(res: &mut Obj) {
    let clinical = take(res, "clinicalStatus");
    let verification = take(res, "verificationStatus");
    if let Some(status) =
        status_to_dstu2(clinical.as_ref().and_then(Value::as_str), verification.as_ref().and_then(Value::as_str))
    {
        res.insert("status".into(), Value::String(status.into()));
    }
    rename(res, "code", "substance");
    to_single(res, "category");
    recode(res, "category", &[("biologic", Some("other"))]);
    recode(res, "criticality", CRITICALITY_TO_DSTU2);
    rename(res, "assertedDate", "recordedDate");
    rename(res, "asserter", "reporter");
    // DSTU2's onset is a dateTime.
    if let Some(start) = res.get("onsetPeriod").and_then(|p| p.get("start")).cloned() {
        res.entry("onsetDateTime").or_insert(start);
    }
    rename(res, "onsetDateTime", "onset");
    rename(res, "lastOccurrence", "lastOccurence");
    annotations_to_one(res, "note");
    for reaction in objects_mut(res, "reaction") {
        annotations_to_one(reaction, "note");
        keep(reaction, BACKBONE, DSTU2_REACTION);
    }
    keep(res, RESOURCE, DSTU2);
}

pub fn dstu2_to_stu3(res: &mut Obj) {
    if let Some(Value::String(status)) = take(res, "status") {
        let (clinical, verification) = status_to_stu3(&status);
        if let Some(c) = clinical {
            res.insert("clinicalStatus".into(), json!(c));
        }
        if let Some(v) = verification {
            res.insert("verificationStatus".into(), json!(v));
        }
    }
    required_verification(res);
    rename(res, "substance", "code");
    recode(res, "category", &[("other", None)]);
    to_list(res, "category");
    recode(res, "criticality", CRITICALITY_TO_STU3);
    rename(res, "recordedDate", "assertedDate");
    rename(res, "reporter", "asserter");
    rename(res, "onset", "onsetDateTime");
    rename(res, "lastOccurence", "lastOccurrence");
    to_list(res, "note");
    for reaction in objects_mut(res, "reaction") {
        to_list(reaction, "note");
        keep(reaction, BACKBONE, STU3_REACTION);
    }
    keep(res, RESOURCE, STU3);
}

/// STU3 requires a verification status; a provider that gives none has not
/// confirmed the allergy. An entered-in-error record has no clinical status.
fn required_verification(res: &mut Obj) {
    if !res.contains_key("verificationStatus") {
        res.insert("verificationStatus".into(), json!("unconfirmed"));
    }
    if res.get("verificationStatus").and_then(Value::as_str) == Some("entered-in-error") {
        take(res, "clinicalStatus");
    }
}

/// DSTU2's one status from STU3's two: an error or a refutation first, then
/// a record that is no longer active, then the certainty of an active one.
fn status_to_dstu2(clinical: Option<&str>, verification: Option<&str>) -> Option<&'static str> {
    Some(match (clinical, verification) {
        (_, Some("entered-in-error")) => "entered-in-error",
        (_, Some("refuted")) => "refuted",
        (Some("resolved"), _) => "resolved",
        (Some("inactive"), _) => "inactive",
        (_, Some("confirmed")) => "confirmed",
        (_, Some("unconfirmed")) => "unconfirmed",
        (Some("active"), _) => "active",
        _ => return None,
    })
}

/// STU3's clinical and verification statuses from DSTU2's one status.
fn status_to_stu3(status: &str) -> (Option<&'static str>, Option<&'static str>) {
    match status {
        "active" => (Some("active"), None),
        "unconfirmed" => (Some("active"), Some("unconfirmed")),
        "confirmed" => (Some("active"), Some("confirmed")),
        "inactive" => (Some("inactive"), None),
        "resolved" => (Some("resolved"), None),
        "refuted" => (None, Some("refuted")),
        "entered-in-error" => (None, Some("entered-in-error")),
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::convert;
    use super::*;
    use fhirgate_guest_sdk::types::FhirVersion;

    fn r4(clinical: &str, verification: &str) -> Obj {
        json!({
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": clinical}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": verification}]},
            "category": ["biologic"],
            "criticality": "high",
            "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7980", "display": "Penicillin G"}], "text": "Penicillin"},
            "patient": {"reference": "Patient/1"},
            "encounter": {"reference": "Encounter/1"},
            "recordedDate": "2020-02-02",
            "lastOccurrence": "2021-01-01",
            "note": [{"text": "a"}, {"text": "b"}],
            "reaction": [{"manifestation": [{"text": "Hives"}], "note": [{"text": "mild"}]}]
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn r4_to_stu3_codes_the_statuses() {
        let mut a = r4("active", "confirmed");
        convert(&mut a, FhirVersion::R4, FhirVersion::Stu3).unwrap();
        assert_eq!(a["clinicalStatus"], "active");
        assert_eq!(a["verificationStatus"], "confirmed");
        assert_eq!(a["assertedDate"], "2020-02-02");
        assert!(a.get("encounter").is_none());

        let mut a = r4("active", "entered-in-error");
        convert(&mut a, FhirVersion::R4, FhirVersion::Stu3).unwrap();
        assert!(a.get("clinicalStatus").is_none());
    }

    #[test]
    fn r4_to_dstu2_folds_the_statuses() {
        for (clinical, verification, status) in [
            ("active", "confirmed", "confirmed"),
            ("active", "unconfirmed", "unconfirmed"),
            ("resolved", "confirmed", "resolved"),
            ("inactive", "confirmed", "inactive"),
            ("active", "refuted", "refuted"),
        ] {
            let mut a = r4(clinical, verification);
            convert(&mut a, FhirVersion::R4, FhirVersion::Dstu2).unwrap();
            assert_eq!(a["status"], status, "{clinical}/{verification}");
            assert_eq!(a["substance"]["coding"][0]["display"], "Penicillin G");
            assert_eq!(a["substance"]["text"], "Penicillin");
            assert_eq!(a["category"], "other");
            assert_eq!(a["criticality"], "CRITH");
            assert_eq!(a["recordedDate"], "2020-02-02");
            assert_eq!(a["lastOccurence"], "2021-01-01");
            assert_eq!(a["note"]["text"], "a\n\nb");
            assert_eq!(a["reaction"][0]["note"]["text"], "mild");
        }
    }

    #[test]
    fn dstu2_status_splits_in_two() {
        for (status, clinical, verification) in [
            ("active", Some("active"), "unconfirmed"),
            ("confirmed", Some("active"), "confirmed"),
            ("resolved", Some("resolved"), "unconfirmed"),
            ("entered-in-error", None, "entered-in-error"),
        ] {
            let mut a = json!({"resourceType": "AllergyIntolerance", "status": status, "substance": {"text": "Peanut"}, "category": "food", "criticality": "CRITL", "note": {"text": "x"}})
                .as_object()
                .unwrap()
                .clone();
            convert(&mut a, FhirVersion::Dstu2, FhirVersion::Stu3).unwrap();
            assert_eq!(a.get("clinicalStatus").and_then(Value::as_str), clinical, "{status}");
            assert_eq!(a["verificationStatus"], verification, "{status}");
            assert_eq!(a["code"]["text"], "Peanut");
            assert_eq!(a["category"], json!(["food"]));
            assert_eq!(a["criticality"], "low");
            assert_eq!(a["note"], json!([{"text": "x"}]));
        }
    }
}
