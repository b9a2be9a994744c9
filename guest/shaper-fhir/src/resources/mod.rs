//! Per-resource conversions between FHIR versions.
//!
//! Conversions chain one release at a time (R4 → STU3 → DSTU2, DSTU2 → STU3),
//! so each step states only the differences between two neighbouring
//! releases. Each step ends by keeping only the elements the target release
//! defines: an element this module does not know is dropped rather than
//! emitted into an invalid resource.
//!
//! Layout: one module per resource family; [`elements`] holds the helpers
//! they share and the walk that fixes what changed in every data type.

mod allergy;
mod condition;
mod coverage;
mod dosage;
pub(crate) mod elements;
mod encounter;
mod location;
mod medication;
mod observation;
mod outcome;
mod patient;

use fhirgate_guest_sdk::deny;
use fhirgate_guest_sdk::types::{Denial, FhirVersion};
use serde_json::{Map, Value};

pub use elements::{retype_reference, strip_meta};

/// The resource types the app reads (interfaces.md), by their STU3 and R4
/// names. The gateway converts these between every pair of versions.
pub const SERVED: &[&str] = &[
    "Patient",
    "Observation",
    "Condition",
    "Encounter",
    "Location",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Coverage",
];

/// The name of resource type `rt` (an STU3/R4 name) in `version`: DSTU2 calls
/// a MedicationRequest a MedicationOrder.
pub fn type_in(rt: &str, version: FhirVersion) -> &str {
    match (rt, version) {
        ("MedicationRequest", FhirVersion::Dstu2) => "MedicationOrder",
        _ => rt,
    }
}

/// The STU3/R4 name of a type called `name` in `version`, if `version` has a
/// type of that name: `MedicationOrder` is DSTU2 only, `MedicationRequest`
/// STU3 and later.
pub fn canonical_type(name: &str, version: FhirVersion) -> Option<&str> {
    match (name, version) {
        ("MedicationOrder", FhirVersion::Dstu2) => Some("MedicationRequest"),
        ("MedicationOrder", _) | ("MedicationRequest", FhirVersion::Dstu2) => None,
        _ => Some(name),
    }
}

/// Converts `resource` from `from` to `to` in place.
pub fn convert(resource: &mut Map<String, Value>, from: FhirVersion, to: FhirVersion) -> Result<(), Denial> {
    use FhirVersion::*;
    let steps: &[(FhirVersion, FhirVersion)] = match (from, to) {
        (a, b) if a == b => &[],
        (R4, Stu3) => &[(R4, Stu3)],
        (R4, Dstu2) => &[(R4, Stu3), (Stu3, Dstu2)],
        (Stu3, Dstu2) => &[(Stu3, Dstu2)],
        (Dstu2, Stu3) => &[(Dstu2, Stu3)],
        _ => {
            return Err(deny(
                501,
                "not-supported",
                format!("Shaping from {} to {} is not supported.", name(from), name(to)),
            ));
        }
    };
    for &(a, b) in steps {
        step(resource, a, b)?;
    }
    Ok(())
}

pub(crate) fn name(v: FhirVersion) -> &'static str {
    match v {
        FhirVersion::Dstu2 => "DSTU2",
        FhirVersion::Stu3 => "STU3",
        FhirVersion::R4 => "R4",
    }
}

fn step(res: &mut Map<String, Value>, from: FhirVersion, to: FhirVersion) -> Result<(), Denial> {
    use FhirVersion::*;
    let rt = res.get("resourceType").and_then(Value::as_str).unwrap_or_default().to_owned();
    match (rt.as_str(), from, to) {
        ("Patient", R4, Stu3) => patient::r4_to_stu3(res),
        ("Patient", Stu3, Dstu2) => patient::stu3_to_dstu2(res),
        ("Patient", Dstu2, Stu3) => patient::dstu2_to_stu3(res),
        ("Observation", R4, Stu3) => observation::r4_to_stu3(res),
        ("Observation", Stu3, Dstu2) => observation::stu3_to_dstu2(res),
        ("Observation", Dstu2, Stu3) => observation::dstu2_to_stu3(res),
        ("Condition", R4, Stu3) => condition::r4_to_stu3(res),
        ("Condition", Stu3, Dstu2) => condition::stu3_to_dstu2(res),
        ("Condition", Dstu2, Stu3) => condition::dstu2_to_stu3(res),
        ("Encounter", R4, Stu3) => encounter::r4_to_stu3(res),
        ("Encounter", Stu3, Dstu2) => encounter::stu3_to_dstu2(res),
        ("Encounter", Dstu2, Stu3) => encounter::dstu2_to_stu3(res),
        ("Location", R4, Stu3) => location::r4_to_stu3(res),
        ("Location", Stu3, Dstu2) => location::stu3_to_dstu2(res),
        ("Location", Dstu2, Stu3) => location::dstu2_to_stu3(res),
        ("AllergyIntolerance", R4, Stu3) => allergy::r4_to_stu3(res),
        ("AllergyIntolerance", Stu3, Dstu2) => allergy::stu3_to_dstu2(res),
        ("AllergyIntolerance", Dstu2, Stu3) => allergy::dstu2_to_stu3(res),
        ("MedicationRequest", R4, Stu3) => medication::request_r4_to_stu3(res),
        ("MedicationRequest", Stu3, Dstu2) => medication::request_stu3_to_order(res),
        ("MedicationOrder", Dstu2, Stu3) => medication::order_to_request_stu3(res),
        ("MedicationStatement", R4, Stu3) => medication::statement_r4_to_stu3(res),
        ("MedicationStatement", Stu3, Dstu2) => medication::statement_stu3_to_dstu2(res),
        ("MedicationStatement", Dstu2, Stu3) => medication::statement_dstu2_to_stu3(res),
        // Referenced by the resources above, mostly as contained resources.
        ("Medication", R4, Stu3) => medication::medication_r4_to_stu3(res),
        ("Medication", Stu3, Dstu2) => medication::medication_stu3_to_dstu2(res),
        ("Medication", Dstu2, Stu3) => medication::medication_dstu2_to_stu3(res),
        ("Coverage", R4, Stu3) => coverage::r4_to_stu3(res),
        ("Coverage", Stu3, Dstu2) => coverage::stu3_to_dstu2(res),
        ("Coverage", Dstu2, Stu3) => coverage::dstu2_to_stu3(res),
        ("OperationOutcome", R4, Stu3) => outcome::r4_to_stu3(res),
        ("OperationOutcome", Stu3, Dstu2) => outcome::stu3_to_dstu2(res),
        ("OperationOutcome", Dstu2, Stu3) => outcome::dstu2_to_stu3(res),
        _ => {
            return Err(deny(
                501,
                "not-supported",
                format!("Shaping {rt} from {} to {} is not supported by this module.", name(from), name(to)),
            ));
        }
    }
    if let Some(Value::Array(contained)) = res.get_mut("contained") {
        // A contained resource of a type this module cannot convert is left
        // out; the references to it keep their display.
        contained.retain_mut(|c| c.as_object_mut().is_some_and(|c| step(c, from, to).is_ok()));
    }
    elements::convert_common(res, from, to);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_resource_is_refused_not_passed() {
        let mut o = json!({"resourceType": "Practitioner"}).as_object().unwrap().clone();
        let d = convert(&mut o, FhirVersion::R4, FhirVersion::Stu3).unwrap_err();
        assert_eq!(d.status, 501);
        // Same version: nothing to convert.
        convert(&mut o, FhirVersion::Stu3, FhirVersion::Stu3).unwrap();
        // A DSTU2-only type from an STU3 provider is not a resource at all.
        let mut o = json!({"resourceType": "MedicationOrder"}).as_object().unwrap().clone();
        assert_eq!(convert(&mut o, FhirVersion::Stu3, FhirVersion::Dstu2).unwrap_err().status, 501);
    }

    #[test]
    fn contained_resources_are_converted_or_left_out() {
        let mut r = json!({
            "resourceType": "MedicationRequest",
            "contained": [
                {"resourceType": "Medication", "id": "m", "code": {"text": "Amoxicillin 500 mg"}, "batch": {"lotNumber": "L1"}},
                {"resourceType": "Practitioner", "id": "p"}
            ],
            "status": "active",
            "intent": "order",
            "medicationReference": {"reference": "#m", "display": "Amoxicillin 500 mg"},
            "subject": {"reference": "Patient/1"}
        })
        .as_object()
        .unwrap()
        .clone();
        convert(&mut r, FhirVersion::R4, FhirVersion::Dstu2).unwrap();
        assert_eq!(r["resourceType"], "MedicationOrder");
        assert_eq!(r["contained"].as_array().unwrap().len(), 1);
        assert_eq!(r["contained"][0]["product"]["batch"][0]["lotNumber"], "L1");
    }

    #[test]
    fn type_names_per_version() {
        assert_eq!(type_in("MedicationRequest", FhirVersion::Dstu2), "MedicationOrder");
        assert_eq!(type_in("MedicationRequest", FhirVersion::R4), "MedicationRequest");
        assert_eq!(canonical_type("MedicationOrder", FhirVersion::Dstu2), Some("MedicationRequest"));
        assert_eq!(canonical_type("MedicationOrder", FhirVersion::Stu3), None);
        assert_eq!(canonical_type("MedicationRequest", FhirVersion::Dstu2), None);
        assert_eq!(canonical_type("Patient", FhirVersion::Dstu2), Some("Patient"));
    }
}
