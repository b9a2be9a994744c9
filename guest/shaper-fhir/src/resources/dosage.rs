//! Dosage and Timing: STU3 and R4 share the `Dosage` data type (R4 groups dose
//! and rate in `doseAndRate`); DSTU2 has one backbone element per resource
//! (`MedicationOrder.dosageInstruction`, `MedicationStatement.dosage`) and an
//! older Timing.

use serde_json::Value;

use super::elements::{BACKBONE, ELEMENT, Obj, keep, object_mut, rename, to_list, to_single};

/// STU3 `Dosage` (an Element: no modifier extensions).
const STU3_DOSAGE: &[&str] = &[
    "sequence",
    "text",
    "additionalInstruction",
    "patientInstruction",
    "timing",
    "asNeededBoolean",
    "asNeededCodeableConcept",
    "site",
    "route",
    "method",
    "doseRange",
    "doseQuantity",
    "maxDosePerPeriod",
    "maxDosePerAdministration",
    "maxDosePerLifetime",
    "rateRatio",
    "rateRange",
    "rateQuantity",
];

/// DSTU2 `MedicationOrder.dosageInstruction`.
const DSTU2_ORDER_DOSAGE: &[&str] = &[
    "text",
    "additionalInstructions",
    "timing",
    "asNeededBoolean",
    "asNeededCodeableConcept",
    "siteCodeableConcept",
    "siteReference",
    "route",
    "method",
    "doseRange",
    "doseQuantity",
    "rateRatio",
    "rateRange",
    "maxDosePerPeriod",
];

/// DSTU2 `MedicationStatement.dosage`.
const DSTU2_STATEMENT_DOSAGE: &[&str] = &[
    "text",
    "timing",
    "asNeededBoolean",
    "asNeededCodeableConcept",
    "siteCodeableConcept",
    "siteReference",
    "route",
    "method",
    "quantityQuantity",
    "quantityRange",
    "rateRatio",
    "rateRange",
    "maxDosePerPeriod",
];

const TIMING: &[&str] = &["event", "repeat", "code"];

const STU3_REPEAT: &[&str] = &[
    "boundsDuration",
    "boundsRange",
    "boundsPeriod",
    "count",
    "countMax",
    "duration",
    "durationMax",
    "durationUnit",
    "frequency",
    "frequencyMax",
    "period",
    "periodMax",
    "periodUnit",
    "dayOfWeek",
    "timeOfDay",
    "when",
    "offset",
];

const DSTU2_REPEAT: &[&str] = &[
    "boundsQuantity",
    "boundsRange",
    "boundsPeriod",
    "count",
    "duration",
    "durationMax",
    "durationUnits",
    "frequency",
    "frequencyMax",
    "period",
    "periodMax",
    "periodUnits",
    "when",
];

/// Which DSTU2 backbone element a dosage is.
#[derive(Clone, Copy)]
pub enum Dstu2Dosage {
    /// `MedicationOrder.dosageInstruction`.
    Order,
    /// `MedicationStatement.dosage`.
    Statement,
}

/// Applies `f` to every dosage in `obj[key]`.
pub fn each(obj: &mut Obj, key: &str, f: impl Fn(&mut Obj)) {
    if let Some(Value::Array(items)) = obj.get_mut(key) {
        items.iter_mut().filter_map(Value::as_object_mut).for_each(f);
    }
}

/// R4 `Dosage` → STU3 `Dosage`.
pub fn r4_to_stu3(d: &mut Obj) {
    // R4 lists dose and rate per type (ordered, calculated…); STU3 has one of
    // each: the first.
    if let Some(Value::Array(rates)) = d.remove("doseAndRate")
        && let Some(Value::Object(first)) = rates.into_iter().next()
    {
        for (k, v) in first {
            if k.starts_with("dose") || k.starts_with("rate") {
                d.insert(k, v);
            }
        }
    }
    if let Some(t) = object_mut(d, "timing") {
        keep(t, ELEMENT, TIMING);
    }
    keep(d, ELEMENT, STU3_DOSAGE);
}

/// STU3 `Dosage` → the DSTU2 dosage element of `kind`.
pub fn stu3_to_dstu2(d: &mut Obj, kind: Dstu2Dosage) {
    rename(d, "site", "siteCodeableConcept");
    if let Some(t) = object_mut(d, "timing") {
        timing_stu3_to_dstu2(t);
    }
    match kind {
        Dstu2Dosage::Order => {
            rename(d, "additionalInstruction", "additionalInstructions");
            to_single(d, "additionalInstructions");
            keep(d, BACKBONE, DSTU2_ORDER_DOSAGE);
        }
        Dstu2Dosage::Statement => {
            rename(d, "doseQuantity", "quantityQuantity");
            rename(d, "doseRange", "quantityRange");
            keep(d, BACKBONE, DSTU2_STATEMENT_DOSAGE);
        }
    }
}

/// A DSTU2 dosage element (either kind) → STU3 `Dosage`.
pub fn dstu2_to_stu3(d: &mut Obj) {
    rename(d, "siteCodeableConcept", "site");
    rename(d, "additionalInstructions", "additionalInstruction");
    to_list(d, "additionalInstruction");
    rename(d, "quantityQuantity", "doseQuantity");
    rename(d, "quantityRange", "doseRange");
    if let Some(t) = object_mut(d, "timing") {
        timing_dstu2_to_stu3(t);
    }
    keep(d, ELEMENT, STU3_DOSAGE);
}

fn timing_stu3_to_dstu2(t: &mut Obj) {
    if let Some(r) = object_mut(t, "repeat") {
        rename(r, "boundsDuration", "boundsQuantity");
        rename(r, "durationUnit", "durationUnits");
        rename(r, "periodUnit", "periodUnits");
        to_single(r, "when");
        keep(r, ELEMENT, DSTU2_REPEAT);
    }
    keep(t, ELEMENT, TIMING);
}

fn timing_dstu2_to_stu3(t: &mut Obj) {
    if let Some(r) = object_mut(t, "repeat") {
        rename(r, "boundsQuantity", "boundsDuration");
        rename(r, "durationUnits", "durationUnit");
        rename(r, "periodUnits", "periodUnit");
        to_list(r, "when");
        keep(r, ELEMENT, STU3_REPEAT);
    }
    keep(t, ELEMENT, TIMING);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn r4_dose_and_rate_to_stu3_to_dstu2_and_back() {
        let mut d = json!({
            "text": "1 tab twice daily",
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d", "when": ["MORN", "EVE"], "dayOfWeek": ["mon"]}},
            "doseAndRate": [{"type": {"text": "ordered"}, "doseQuantity": {"value": 1, "unit": "tab"}}],
            "site": {"text": "mouth"}
        })
        .as_object()
        .unwrap()
        .clone();
        r4_to_stu3(&mut d);
        assert_eq!(d["doseQuantity"]["value"], 1);
        assert!(d.get("doseAndRate").is_none());

        let mut order = d.clone();
        stu3_to_dstu2(&mut order, Dstu2Dosage::Order);
        assert_eq!(order["timing"]["repeat"]["periodUnits"], "d");
        assert_eq!(order["timing"]["repeat"]["when"], "MORN");
        assert!(order["timing"]["repeat"].get("dayOfWeek").is_none());
        assert_eq!(order["siteCodeableConcept"]["text"], "mouth");

        let mut statement = d.clone();
        stu3_to_dstu2(&mut statement, Dstu2Dosage::Statement);
        assert_eq!(statement["quantityQuantity"]["unit"], "tab");

        dstu2_to_stu3(&mut statement);
        assert_eq!(statement["doseQuantity"]["unit"], "tab");
        assert_eq!(statement["timing"]["repeat"]["periodUnit"], "d");
        assert_eq!(statement["timing"]["repeat"]["when"], json!(["MORN"]));
    }
}
