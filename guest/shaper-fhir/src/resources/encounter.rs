//! Encounter: DSTU2 names the subject `patient`, has a `class` code where
//! STU3 and R4 have a v3 ActCode Coding, and lists conditions as
//! `indication` where later releases have `diagnosis`.

use serde_json::{Value, json};

use super::elements::{BACKBONE, Obj, RESOURCE, keep, objects_mut, recode, rename, rename_reference, take, to_single};

const STU3: &[&str] = &[
    "identifier",
    "status",
    "statusHistory",
    "class",
    "classHistory",
    "type",
    "priority",
    "subject",
    "episodeOfCare",
    "incomingReferral",
    "participant",
    "appointment",
    "period",
    "length",
    "reason",
    "diagnosis",
    "account",
    "hospitalization",
    "location",
    "serviceProvider",
    "partOf",
];

const DSTU2: &[&str] = &[
    "identifier",
    "status",
    "statusHistory",
    "class",
    "type",
    "priority",
    "patient",
    "episodeOfCare",
    "incomingReferral",
    "participant",
    "appointment",
    "period",
    "length",
    "reason",
    "indication",
    "hospitalization",
    "location",
    "serviceProvider",
    "partOf",
];

const LOCATION: &[&str] = &["location", "status", "period"];
const PARTICIPANT: &[&str] = &["type", "period", "individual"];
const DIAGNOSIS: &[&str] = &["condition", "role", "rank"];
const STU3_HOSPITALIZATION: &[&str] = &[
    "preAdmissionIdentifier",
    "origin",
    "admitSource",
    "reAdmission",
    "dietPreference",
    "specialCourtesy",
    "specialArrangement",
    "destination",
    "dischargeDisposition",
];
const DSTU2_HOSPITALIZATION: &[&str] = &[
    "preAdmissionIdentifier",
    "origin",
    "admitSource",
    "admittingDiagnosis",
    "reAdmission",
    "dietPreference",
    "specialCourtesy",
    "specialArrangement",
    "destination",
    "dischargeDisposition",
    "dischargeDiagnosis",
];

const ACT_CODE: &str = "http://hl7.org/fhir/v3/ActCode";
const DIAGNOSIS_ROLE: &str = "http://hl7.org/fhir/diagnosis-role";

/// DSTU2 has no `triaged` or `entered-in-error`. `unknown` has no DSTU2
/// equivalent either; it is kept rather than replaced by a status the
/// provider did not give.
const STATUS_TO_DSTU2: &[(&str, Option<&str>)] =
    &[("triaged", Some("arrived")), ("entered-in-error", Some("cancelled"))];

pub fn r4_to_stu3(res: &mut Obj) {
    to_single(res, "appointment");
    rename(res, "reasonCode", "reason");
    for diagnosis in objects_mut(res, "diagnosis") {
        rename(diagnosis, "use", "role");
        keep(diagnosis, BACKBONE, DIAGNOSIS);
    }
    backbones(res);
    if let Some(Value::Object(h)) = res.get_mut("hospitalization") {
        keep(h, BACKBONE, STU3_HOSPITALIZATION);
    }
    keep(res, RESOURCE, STU3);
}

pub fn stu3_to_dstu2(res: &mut Obj) {
    rename_reference(res, "subject", "patient", "Patient");
    recode(res, "status", STATUS_TO_DSTU2);
    for history in objects_mut(res, "statusHistory") {
        recode(history, "status", STATUS_TO_DSTU2);
    }
    if let Some(class) = take(res, "class")
        && let Some(code) = class.get("code").and_then(Value::as_str)
    {
        res.insert("class".into(), Value::String(class_to_dstu2(code).to_owned()));
    }
    if let Some(Value::Array(diagnoses)) = take(res, "diagnosis") {
        let conditions: Vec<Value> = diagnoses.into_iter().filter_map(|d| d.get("condition").cloned()).collect();
        if !conditions.is_empty() {
            res.insert("indication".into(), Value::Array(conditions));
        }
    }
    backbones(res);
    if let Some(Value::Object(h)) = res.get_mut("hospitalization") {
        keep(h, BACKBONE, DSTU2_HOSPITALIZATION);
    }
    keep(res, RESOURCE, DSTU2);
}

pub fn dstu2_to_stu3(res: &mut Obj) {
    rename(res, "patient", "subject");
    if let Some(Value::String(code)) = take(res, "class") {
        res.insert("class".into(), class_to_stu3(&code));
    }
    let mut diagnoses: Vec<Value> = match take(res, "indication") {
        Some(Value::Array(conditions)) => conditions.into_iter().map(|c| json!({ "condition": c })).collect(),
        _ => Vec::new(),
    };
    if let Some(Value::Object(h)) = res.get_mut("hospitalization") {
        // STU3 lists the admission and discharge diagnoses with the others,
        // each with its role.
        for (key, role, display) in
            [("admittingDiagnosis", "AD", "Admission diagnosis"), ("dischargeDiagnosis", "DD", "Discharge diagnosis")]
        {
            if let Some(Value::Array(conditions)) = take(h, key) {
                diagnoses.extend(conditions.into_iter().map(|c| {
                    json!({
                        "condition": c,
                        "role": { "coding": [{ "system": DIAGNOSIS_ROLE, "code": role, "display": display }] }
                    })
                }));
            }
        }
        keep(h, BACKBONE, STU3_HOSPITALIZATION);
    }
    if !diagnoses.is_empty() {
        res.insert("diagnosis".into(), Value::Array(diagnoses));
    }
    backbones(res);
    keep(res, RESOURCE, STU3);
}

fn backbones(res: &mut Obj) {
    for location in objects_mut(res, "location") {
        keep(location, BACKBONE, LOCATION);
    }
    for participant in objects_mut(res, "participant") {
        keep(participant, BACKBONE, PARTICIPANT);
    }
}

/// v3 ActCode encounter classes → DSTU2's encounter-class codes.
fn class_to_dstu2(code: &str) -> &'static str {
    match code {
        "IMP" | "ACUTE" | "NONAC" | "inpatient" => "inpatient",
        "AMB" | "ambulatory" => "ambulatory",
        "OBSENC" | "outpatient" => "outpatient",
        "EMER" | "emergency" => "emergency",
        "HH" | "home" => "home",
        "FLD" | "field" => "field",
        "SS" | "daytime" => "daytime",
        "VR" | "virtual" => "virtual",
        _ => "other",
    }
}

/// DSTU2's encounter-class codes → v3 ActCode, the STU3 class code system;
/// a code ActCode has no match for keeps DSTU2's code system.
fn class_to_stu3(code: &str) -> Value {
    let act = match code {
        "inpatient" => Some(("IMP", "inpatient encounter")),
        "outpatient" | "ambulatory" => Some(("AMB", "ambulatory")),
        "emergency" => Some(("EMER", "emergency")),
        "home" => Some(("HH", "home health")),
        "field" => Some(("FLD", "field")),
        "daytime" => Some(("SS", "short stay")),
        "virtual" => Some(("VR", "virtual")),
        _ => None,
    };
    match act {
        Some((code, display)) => json!({ "system": ACT_CODE, "code": code, "display": display }),
        None => json!({ "system": "http://hl7.org/fhir/encounter-class", "code": code }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::convert;
    use fhirgate_guest_sdk::types::FhirVersion;
    use serde_json::json;

    #[test]
    fn r4_to_dstu2_and_back_to_stu3() {
        let mut e = json!({
            "resourceType": "Encounter",
            "status": "triaged",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
            "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "50849002", "display": "Emergency room admission"}]}],
            "subject": {"reference": "Patient/1"},
            "appointment": [{"reference": "Appointment/1"}],
            "reasonCode": [{"text": "chest pain"}],
            "diagnosis": [{"condition": {"reference": "Condition/1"}, "use": {"text": "AD"}, "rank": 1}],
            "location": [{"location": {"reference": "Location/1"}, "physicalType": {"text": "room"}}],
            "serviceType": {"text": "ER"}
        })
        .as_object()
        .unwrap()
        .clone();
        let mut stu3 = e.clone();
        convert(&mut stu3, FhirVersion::R4, FhirVersion::Stu3).unwrap();
        assert_eq!(stu3["class"]["system"], "http://hl7.org/fhir/v3/ActCode");
        assert_eq!(stu3["appointment"]["reference"], "Appointment/1");
        assert_eq!(stu3["reason"][0]["text"], "chest pain");
        assert_eq!(stu3["diagnosis"][0]["role"]["text"], "AD");
        assert!(stu3["location"][0].get("physicalType").is_none());
        assert!(stu3.get("serviceType").is_none());

        convert(&mut e, FhirVersion::R4, FhirVersion::Dstu2).unwrap();
        assert_eq!(e["class"], "emergency");
        assert_eq!(e["status"], "arrived");
        assert_eq!(e["patient"]["reference"], "Patient/1");
        assert_eq!(e["indication"][0]["reference"], "Condition/1");
        assert_eq!(e["type"][0]["coding"][0]["display"], "Emergency room admission");

        convert(&mut e, FhirVersion::Dstu2, FhirVersion::Stu3).unwrap();
        assert_eq!(
            e["class"],
            json!({"system": "http://hl7.org/fhir/v3/ActCode", "code": "EMER", "display": "emergency"})
        );
        assert_eq!(e["subject"]["reference"], "Patient/1");
        assert_eq!(e["diagnosis"][0]["condition"]["reference"], "Condition/1");
    }
}
