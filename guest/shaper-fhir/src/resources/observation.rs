//! Observation (vital signs): `category` is one CodeableConcept in DSTU2,
//! `encounter` is `context` in STU3, R4 lists interpretations and notes, and
//! each release has its own value types.

use serde_json::{Value, json};

use super::elements::{
    BACKBONE, Obj, RESOURCE, annotation_text, keep, objects_mut, recode, rename, rename_reference, take, to_list,
    to_single,
};

const STU3: &[&str] = &[
    "identifier",
    "basedOn",
    "status",
    "category",
    "code",
    "subject",
    "context",
    "effectiveDateTime",
    "effectivePeriod",
    "issued",
    "performer",
    "valueQuantity",
    "valueCodeableConcept",
    "valueString",
    "valueBoolean",
    "valueRange",
    "valueRatio",
    "valueSampledData",
    "valueAttachment",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
    "dataAbsentReason",
    "interpretation",
    "comment",
    "bodySite",
    "method",
    "specimen",
    "device",
    "referenceRange",
    "related",
    "component",
];

const DSTU2: &[&str] = &[
    "identifier",
    "status",
    "category",
    "code",
    "subject",
    "encounter",
    "effectiveDateTime",
    "effectivePeriod",
    "issued",
    "performer",
    "valueQuantity",
    "valueCodeableConcept",
    "valueString",
    "valueRange",
    "valueRatio",
    "valueSampledData",
    "valueAttachment",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
    "dataAbsentReason",
    "interpretation",
    "comments",
    "bodySite",
    "method",
    "specimen",
    "device",
    "referenceRange",
    "related",
    "component",
];

/// `Observation.component`.
const STU3_COMPONENT: &[&str] = &[
    "code",
    "valueQuantity",
    "valueCodeableConcept",
    "valueString",
    "valueRange",
    "valueRatio",
    "valueSampledData",
    "valueAttachment",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
    "dataAbsentReason",
    "interpretation",
    "referenceRange",
];

const DSTU2_COMPONENT: &[&str] = &[
    "code",
    "valueQuantity",
    "valueCodeableConcept",
    "valueString",
    "valueRange",
    "valueRatio",
    "valueSampledData",
    "valueAttachment",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
    "dataAbsentReason",
    "referenceRange",
];

const STU3_RANGE: &[&str] = &["low", "high", "type", "appliesTo", "age", "text"];
const DSTU2_RANGE: &[&str] = &["low", "high", "meaning", "age", "text"];

pub fn r4_to_stu3(res: &mut Obj) {
    rename(res, "effectiveInstant", "effectiveDateTime");
    rename(res, "encounter", "context");
    to_single(res, "interpretation");
    if let Some(text) = take(res, "note").as_ref().and_then(annotation_text) {
        res.insert("comment".into(), Value::String(text));
    }
    // R4 splits STU3's `related` into `hasMember` and `derivedFrom`.
    let mut related = Vec::new();
    for (key, kind) in [("hasMember", "has-member"), ("derivedFrom", "derived-from")] {
        if let Some(Value::Array(targets)) = take(res, key) {
            related.extend(targets.into_iter().map(|target| json!({ "type": kind, "target": target })));
        }
    }
    if !related.is_empty() {
        res.insert("related".into(), Value::Array(related));
    }
    value_r4_to_stu3(res);
    for component in objects_mut(res, "component") {
        to_single(component, "interpretation");
        value_r4_to_stu3(component);
        // STU3 components have no boolean value.
        value_boolean_to_string(component);
        ranges(component, STU3_RANGE);
        keep(component, BACKBONE, STU3_COMPONENT);
    }
    ranges(res, STU3_RANGE);
    keep(res, RESOURCE, STU3);
}

pub fn stu3_to_dstu2(res: &mut Obj) {
    category_to_one(res);
    rename_reference(res, "context", "encounter", "Encounter");
    rename(res, "comment", "comments");
    value_boolean_to_string(res);
    recode(res, "status", &[("corrected", Some("amended"))]);
    for range in objects_mut(res, "referenceRange") {
        range_to_dstu2(range);
    }
    for component in objects_mut(res, "component") {
        for range in objects_mut(component, "referenceRange") {
            range_to_dstu2(range);
        }
        keep(component, BACKBONE, DSTU2_COMPONENT);
    }
    keep(res, RESOURCE, DSTU2);
}

pub fn dstu2_to_stu3(res: &mut Obj) {
    to_list(res, "category");
    rename(res, "encounter", "context");
    rename(res, "comments", "comment");
    for range in objects_mut(res, "referenceRange") {
        rename(range, "meaning", "type");
        keep(range, BACKBONE, STU3_RANGE);
    }
    for component in objects_mut(res, "component") {
        for range in objects_mut(component, "referenceRange") {
            rename(range, "meaning", "type");
            keep(range, BACKBONE, STU3_RANGE);
        }
        keep(component, BACKBONE, STU3_COMPONENT);
    }
    keep(res, RESOURCE, STU3);
}

/// R4 value types STU3 lacks: an integer is a unitless Quantity.
fn value_r4_to_stu3(obj: &mut Obj) {
    if let Some(n) = take(obj, "valueInteger") {
        obj.insert("valueQuantity".into(), json!({ "value": n }));
    }
}

fn value_boolean_to_string(obj: &mut Obj) {
    if let Some(Value::Bool(b)) = take(obj, "valueBoolean") {
        obj.insert("valueString".into(), Value::String(b.to_string()));
    }
}

fn ranges(obj: &mut Obj, allowed: &[&str]) {
    for range in objects_mut(obj, "referenceRange") {
        keep(range, BACKBONE, allowed);
    }
}

/// DSTU2 has one `meaning` where STU3 has a `type` and the populations the
/// range `appliesTo`.
fn range_to_dstu2(range: &mut Obj) {
    if !range.contains_key("type") {
        rename(range, "appliesTo", "type");
        to_single(range, "type");
    }
    rename(range, "type", "meaning");
    keep(range, BACKBONE, DSTU2_RANGE);
}

/// DSTU2 has one category: the one from HL7's observation-category code
/// system (the app reads `vital-signs`), else the first.
fn category_to_one(res: &mut Obj) {
    let Some(Value::Array(categories)) = take(res, "category") else { return };
    let hl7 = |c: &Value| {
        c.get("coding").and_then(Value::as_array).into_iter().flatten().any(|coding| {
            coding.get("system").and_then(Value::as_str).is_some_and(|s| s.ends_with("/observation-category"))
        })
    };
    let chosen = categories.iter().position(hl7).unwrap_or(0);
    if let Some(c) = categories.into_iter().nth(chosen) {
        res.insert("category".into(), c);
    }
}

#[cfg(test)]
mod tests {
    use super::super::convert;
    use fhirgate_guest_sdk::types::FhirVersion;
    use serde_json::json;

    #[test]
    fn r4_vitals_to_stu3_and_dstu2() {
        let r4 = json!({
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {"coding": [{"system": "http://example.org/local", "code": "v"}]},
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": "Patient/1"},
            "encounter": {"reference": "Encounter/9"},
            "effectiveInstant": "2024-05-01T10:00:00Z",
            "valueInteger": 72,
            "interpretation": [{"text": "normal"}],
            "note": [{"text": "at rest"}, {"text": "seated"}],
            "hasMember": [{"reference": "Observation/2"}],
            "focus": [{"reference": "Patient/1"}]
        });
        let mut stu3 = r4.as_object().unwrap().clone();
        convert(&mut stu3, FhirVersion::R4, FhirVersion::Stu3).unwrap();
        assert_eq!(stu3["effectiveDateTime"], "2024-05-01T10:00:00Z");
        assert_eq!(stu3["valueQuantity"]["value"], 72);
        assert_eq!(stu3["context"]["reference"], "Encounter/9");
        assert_eq!(stu3["interpretation"]["text"], "normal");
        assert_eq!(stu3["comment"], "at rest\n\nseated");
        assert_eq!(stu3["related"][0], json!({"type": "has-member", "target": {"reference": "Observation/2"}}));
        assert!(stu3.get("focus").is_none());
        assert_eq!(stu3["category"][1]["coding"][0]["system"], "http://hl7.org/fhir/observation-category");

        let mut dstu2 = r4.as_object().unwrap().clone();
        convert(&mut dstu2, FhirVersion::R4, FhirVersion::Dstu2).unwrap();
        assert_eq!(dstu2["category"]["coding"][0]["code"], "vital-signs");
        assert_eq!(dstu2["encounter"]["reference"], "Encounter/9");
        assert_eq!(dstu2["comments"], "at rest\n\nseated");
    }

    #[test]
    fn dstu2_to_stu3_lists_the_category() {
        let mut o = json!({
            "resourceType": "Observation",
            "status": "final",
            "category": {"coding": [{"system": "http://hl7.org/fhir/observation-category", "code": "vital-signs"}]},
            "code": {"text": "BP"},
            "encounter": {"reference": "Encounter/1"},
            "referenceRange": [{"low": {"value": 1}, "meaning": {"text": "normal"}}]
        })
        .as_object()
        .unwrap()
        .clone();
        convert(&mut o, FhirVersion::Dstu2, FhirVersion::Stu3).unwrap();
        assert_eq!(o["category"][0]["coding"][0]["code"], "vital-signs");
        assert_eq!(o["context"]["reference"], "Encounter/1");
        assert_eq!(o["referenceRange"][0]["type"]["text"], "normal");
    }
}
