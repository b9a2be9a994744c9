//! Medications: MedicationRequest (STU3, R4) is MedicationOrder in DSTU2;
//! MedicationStatement changed its "taken" flags and reasons; Medication
//! (mostly contained in the others) moved its product details.

use serde_json::{Value, json};

use super::dosage::{self, Dstu2Dosage};
use super::elements::{
    BACKBONE, Obj, RESOURCE, annotation_text, code_of, keep, object_mut, objects_mut, recode, refers_to, rename,
    rename_reference, take, to_list, to_single,
};

const STU3_REQUEST: &[&str] = &[
    "identifier",
    "definition",
    "basedOn",
    "groupIdentifier",
    "status",
    "intent",
    "category",
    "priority",
    "medicationCodeableConcept",
    "medicationReference",
    "subject",
    "context",
    "supportingInformation",
    "authoredOn",
    "requester",
    "recorder",
    "reasonCode",
    "reasonReference",
    "note",
    "dosageInstruction",
    "dispenseRequest",
    "substitution",
    "priorPrescription",
    "detectedIssue",
    "eventHistory",
];

const DSTU2_ORDER: &[&str] = &[
    "identifier",
    "dateWritten",
    "status",
    "dateEnded",
    "reasonEnded",
    "patient",
    "prescriber",
    "encounter",
    "reasonCodeableConcept",
    "reasonReference",
    "note",
    "medicationCodeableConcept",
    "medicationReference",
    "dosageInstruction",
    "dispenseRequest",
    "substitution",
    "priorPrescription",
];

const STU3_DISPENSE: &[&str] =
    &["validityPeriod", "numberOfRepeatsAllowed", "quantity", "expectedSupplyDuration", "performer"];
const DSTU2_DISPENSE: &[&str] = &[
    "medicationCodeableConcept",
    "medicationReference",
    "validityPeriod",
    "numberOfRepeatsAllowed",
    "quantity",
    "expectedSupplyDuration",
];

const STU3_STATEMENT: &[&str] = &[
    "identifier",
    "basedOn",
    "partOf",
    "context",
    "status",
    "category",
    "medicationCodeableConcept",
    "medicationReference",
    "effectiveDateTime",
    "effectivePeriod",
    "dateAsserted",
    "informationSource",
    "subject",
    "derivedFrom",
    "taken",
    "reasonNotTaken",
    "reasonCode",
    "reasonReference",
    "note",
    "dosage",
];

const DSTU2_STATEMENT: &[&str] = &[
    "identifier",
    "patient",
    "informationSource",
    "dateAsserted",
    "status",
    "wasNotTaken",
    "reasonNotTaken",
    "reasonForUseCodeableConcept",
    "reasonForUseReference",
    "effectiveDateTime",
    "effectivePeriod",
    "note",
    "supportingInformation",
    "medicationCodeableConcept",
    "medicationReference",
    "dosage",
];

const STU3_MEDICATION: &[&str] =
    &["code", "status", "isBrand", "isOverTheCounter", "manufacturer", "form", "ingredient", "package", "image"];
const DSTU2_MEDICATION: &[&str] = &["code", "isBrand", "manufacturer", "product", "package"];

/// The cross-version extension R4's `doNotPerform` travels in: it reverses
/// the meaning of the request, so it must stay a modifier.
const DO_NOT_PERFORM: &str = "http://hl7.org/fhir/4.0/StructureDefinition/extension-MedicationRequest.doNotPerform";

/// v3 ActCode substitution codes: `N` is "none", `E` "equivalent".
const ACT_CODE: &str = "http://hl7.org/fhir/v3/ActCode";

pub fn request_r4_to_stu3(res: &mut Obj) {
    if let Some(requester) = take(res, "requester") {
        res.insert("requester".into(), json!({ "agent": requester }));
    }
    to_single(res, "category");
    rename(res, "encounter", "context");
    recode(
        res,
        "intent",
        &[
            ("original-order", Some("order")),
            ("reflex-order", Some("order")),
            ("filler-order", Some("order")),
            ("option", Some("proposal")),
        ],
    );
    if take(res, "doNotPerform") == Some(Value::Bool(true)) {
        let modifiers = res.entry("modifierExtension").or_insert_with(|| json!([]));
        if let Value::Array(list) = modifiers {
            list.push(json!({ "url": DO_NOT_PERFORM, "valueBoolean": true }));
        }
    }
    if let Some(dispense) = object_mut(res, "dispenseRequest") {
        // STU3's count of repeats is a positiveInt: "no repeats" is absent.
        if dispense.get("numberOfRepeatsAllowed").and_then(Value::as_u64) == Some(0) {
            take(dispense, "numberOfRepeatsAllowed");
        }
        keep(dispense, BACKBONE, STU3_DISPENSE);
    }
    if let Some(mut substitution) = take(res, "substitution").and_then(|s| s.as_object().cloned()) {
        let allowed = match take(&mut substitution, "allowedBoolean") {
            Some(Value::Bool(b)) => Some(b),
            _ => take(&mut substitution, "allowedCodeableConcept").and_then(|cc| code_of(&cc, "").map(|c| c != "N")),
        };
        // `allowed` is required in STU3.
        if let Some(allowed) = allowed {
            substitution.insert("allowed".into(), Value::Bool(allowed));
            keep(&mut substitution, BACKBONE, &["allowed", "reason"]);
            res.insert("substitution".into(), Value::Object(substitution));
        }
    }
    dosage::each(res, "dosageInstruction", dosage::r4_to_stu3);
    keep(res, RESOURCE, STU3_REQUEST);
}

pub fn request_stu3_to_order(res: &mut Obj) {
    res.insert("resourceType".into(), json!("MedicationOrder"));
    rename(res, "authoredOn", "dateWritten");
    if let Some(Value::Object(mut requester)) = take(res, "requester")
        && let Some(mut agent) = requester.remove("agent")
    {
        // The prescriber is a Practitioner in DSTU2; another agent keeps its
        // name only.
        if refers_to(&agent, "Practitioner") == Some(false)
            && let Some(obj) = agent.as_object_mut()
        {
            obj.retain(|k, _| k == "display");
        }
        res.insert("prescriber".into(), agent);
    }
    rename_reference(res, "subject", "patient", "Patient");
    rename_reference(res, "context", "encounter", "Encounter");
    recode(res, "status", &[("cancelled", Some("stopped")), ("unknown", None)]);
    rename(res, "reasonCode", "reasonCodeableConcept");
    to_single(res, "reasonCodeableConcept");
    to_single(res, "reasonReference");
    if res.get("reasonReference").is_some_and(|r| refers_to(r, "Condition") == Some(false)) {
        take(res, "reasonReference");
    }
    note_to_string(res, "note");
    dosage::each(res, "dosageInstruction", |d| dosage::stu3_to_dstu2(d, Dstu2Dosage::Order));
    if let Some(dispense) = object_mut(res, "dispenseRequest") {
        keep(dispense, BACKBONE, DSTU2_DISPENSE);
    }
    if let Some(Value::Object(mut substitution)) = take(res, "substitution") {
        let code = match substitution.remove("allowed") {
            Some(Value::Bool(false)) => "N",
            _ => "E",
        };
        substitution.insert("type".into(), json!({ "coding": [{ "system": ACT_CODE, "code": code }] }));
        keep(&mut substitution, BACKBONE, &["type", "reason"]);
        res.insert("substitution".into(), Value::Object(substitution));
    }
    keep(res, RESOURCE, DSTU2_ORDER);
}

pub fn order_to_request_stu3(res: &mut Obj) {
    res.insert("resourceType".into(), json!("MedicationRequest"));
    // A DSTU2 MedicationOrder is an order; STU3 requires the intent.
    res.insert("intent".into(), json!("order"));
    rename(res, "dateWritten", "authoredOn");
    if let Some(prescriber) = take(res, "prescriber") {
        res.insert("requester".into(), json!({ "agent": prescriber }));
    }
    rename(res, "patient", "subject");
    rename(res, "encounter", "context");
    rename(res, "reasonCodeableConcept", "reasonCode");
    to_list(res, "reasonCode");
    to_list(res, "reasonReference");
    note_to_list(res, "note");
    dosage::each(res, "dosageInstruction", dosage::dstu2_to_stu3);
    if let Some(dispense) = object_mut(res, "dispenseRequest") {
        keep(dispense, BACKBONE, STU3_DISPENSE);
    }
    if let Some(Value::Object(mut substitution)) = take(res, "substitution") {
        let allowed = substitution.remove("type").and_then(|t| code_of(&t, "")).is_none_or(|c| c != "N");
        substitution.insert("allowed".into(), Value::Bool(allowed));
        keep(&mut substitution, BACKBONE, &["allowed", "reason"]);
        res.insert("substitution".into(), Value::Object(substitution));
    }
    keep(res, RESOURCE, STU3_REQUEST);
}

pub fn statement_r4_to_stu3(res: &mut Obj) {
    // R4 dropped STU3's required `taken` flag and added `not-taken` and
    // `unknown` statuses.
    let status = res.get("status").and_then(Value::as_str).unwrap_or_default().to_owned();
    let taken = match status.as_str() {
        "not-taken" => "n",
        "active" | "completed" | "stopped" | "on-hold" => "y",
        _ => "unk",
    };
    res.insert("taken".into(), json!(taken));
    let reason = take(res, "statusReason");
    if status == "not-taken"
        && let Some(reason) = reason
    {
        res.insert("reasonNotTaken".into(), if reason.is_array() { reason } else { json!([reason]) });
    }
    recode(res, "status", &[("not-taken", Some("completed")), ("unknown", Some("active"))]);
    dosage::each(res, "dosage", dosage::r4_to_stu3);
    keep(res, RESOURCE, STU3_STATEMENT);
}

pub fn statement_stu3_to_dstu2(res: &mut Obj) {
    rename_reference(res, "subject", "patient", "Patient");
    match take(res, "taken").as_ref().and_then(Value::as_str) {
        Some("n") => {
            res.insert("wasNotTaken".into(), json!(true));
        }
        Some("y") => {
            res.insert("wasNotTaken".into(), json!(false));
        }
        _ => {}
    }
    recode(res, "status", &[("stopped", Some("completed")), ("on-hold", Some("active"))]);
    rename(res, "reasonCode", "reasonForUseCodeableConcept");
    to_single(res, "reasonForUseCodeableConcept");
    rename(res, "reasonReference", "reasonForUseReference");
    to_single(res, "reasonForUseReference");
    rename(res, "derivedFrom", "supportingInformation");
    note_to_string(res, "note");
    dosage::each(res, "dosage", |d| dosage::stu3_to_dstu2(d, Dstu2Dosage::Statement));
    keep(res, RESOURCE, DSTU2_STATEMENT);
}

pub fn statement_dstu2_to_stu3(res: &mut Obj) {
    rename(res, "patient", "subject");
    let taken = match take(res, "wasNotTaken") {
        Some(Value::Bool(true)) => "n",
        Some(Value::Bool(false)) => "y",
        _ => "unk",
    };
    res.insert("taken".into(), json!(taken));
    rename(res, "reasonForUseCodeableConcept", "reasonCode");
    to_list(res, "reasonCode");
    rename(res, "reasonForUseReference", "reasonReference");
    to_list(res, "reasonReference");
    rename(res, "supportingInformation", "derivedFrom");
    note_to_list(res, "note");
    dosage::each(res, "dosage", dosage::dstu2_to_stu3);
    keep(res, RESOURCE, STU3_STATEMENT);
}

pub fn medication_r4_to_stu3(res: &mut Obj) {
    for ingredient in objects_mut(res, "ingredient") {
        rename(ingredient, "strength", "amount");
        keep(ingredient, BACKBONE, &["itemCodeableConcept", "itemReference", "isActive", "amount"]);
    }
    if let Some(mut batch) = take(res, "batch") {
        if let Some(b) = batch.as_object_mut() {
            keep(b, BACKBONE, &["lotNumber", "expirationDate"]);
        }
        res.insert("package".into(), json!({ "batch": [batch] }));
    }
    keep(res, RESOURCE, STU3_MEDICATION);
}

pub fn medication_stu3_to_dstu2(res: &mut Obj) {
    let mut product = Obj::new();
    if let Some(form) = take(res, "form") {
        product.insert("form".into(), form);
    }
    if let Some(Value::Array(ingredients)) = take(res, "ingredient") {
        // A DSTU2 ingredient is a reference (Substance or Medication).
        let ingredients: Vec<Value> = ingredients
            .into_iter()
            .filter_map(|i| {
                let item = i.get("itemReference")?.clone();
                let mut out = json!({ "item": item });
                if let Some(amount) = i.get("amount") {
                    out["amount"] = amount.clone();
                }
                Some(out)
            })
            .collect();
        if !ingredients.is_empty() {
            product.insert("ingredient".into(), Value::Array(ingredients));
        }
    }
    if let Some(package) = object_mut(res, "package") {
        if let Some(batch) = take(package, "batch") {
            product.insert("batch".into(), batch);
        }
        for content in objects_mut(package, "content") {
            rename(content, "itemReference", "item");
            keep(content, BACKBONE, &["item", "amount"]);
        }
        keep(package, BACKBONE, &["container", "content"]);
    }
    if !product.is_empty() {
        res.insert("product".into(), Value::Object(product));
    }
    keep(res, RESOURCE, DSTU2_MEDICATION);
}

pub fn medication_dstu2_to_stu3(res: &mut Obj) {
    if let Some(Value::Object(mut product)) = take(res, "product") {
        if let Some(form) = product.remove("form") {
            res.insert("form".into(), form);
        }
        if let Some(Value::Array(ingredients)) = product.remove("ingredient") {
            let ingredients: Vec<Value> = ingredients
                .into_iter()
                .map(|mut i| {
                    if let Some(obj) = i.as_object_mut() {
                        rename(obj, "item", "itemReference");
                    }
                    i
                })
                .collect();
            res.insert("ingredient".into(), Value::Array(ingredients));
        }
        if let Some(batch) = product.remove("batch") {
            // A `package` that is not an object is malformed; the batch
            // replaces it rather than be lost.
            if !res.get("package").is_some_and(Value::is_object) {
                res.insert("package".into(), json!({}));
            }
            if let Some(Value::Object(package)) = res.get_mut("package") {
                package.insert("batch".into(), batch);
            }
        }
    }
    if let Some(package) = object_mut(res, "package") {
        for content in objects_mut(package, "content") {
            rename(content, "item", "itemReference");
        }
    }
    keep(res, RESOURCE, STU3_MEDICATION);
}

/// DSTU2 notes on medications are one string.
fn note_to_string(res: &mut Obj, key: &str) {
    if let Some(text) = take(res, key).as_ref().and_then(annotation_text) {
        res.insert(key.to_owned(), Value::String(text));
    }
}

fn note_to_list(res: &mut Obj, key: &str) {
    if let Some(Value::String(text)) = take(res, key) {
        res.insert(key.to_owned(), json!([{ "text": text }]));
    }
}

#[cfg(test)]
mod tests {
    use super::super::convert;
    use fhirgate_guest_sdk::types::FhirVersion;
    use serde_json::{Value, json};

    fn r4_request() -> serde_json::Map<String, Value> {
        json!({
            "resourceType": "MedicationRequest",
            "id": "mr1",
            "status": "cancelled",
            "intent": "original-order",
            "doNotPerform": false,
            "medicationCodeableConcept": {"text": "Lisinopril 10 mg tablet"},
            "subject": {"reference": "Patient/1"},
            "encounter": {"reference": "Encounter/1"},
            "authoredOn": "2024-03-01T08:00:00Z",
            "requester": {"reference": "Practitioner/7", "display": "Dr. Ada Lovelace"},
            "reasonCode": [{"text": "Hypertension"}],
            "note": [{"text": "take with water"}],
            "dispenseRequest": {"numberOfRepeatsAllowed": 0, "quantity": {"value": 30}, "initialFill": {"quantity": {"value": 1}}},
            "substitution": {"allowedCodeableConcept": {"coding": [{"code": "N"}]}},
            "dosageInstruction": [{"text": "1 daily", "doseAndRate": [{"doseQuantity": {"value": 10, "unit": "mg"}}]}]
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn r4_request_to_stu3() {
        let mut m = r4_request();
        convert(&mut m, FhirVersion::R4, FhirVersion::Stu3).unwrap();
        assert_eq!(m["requester"], json!({"agent": {"reference": "Practitioner/7", "display": "Dr. Ada Lovelace"}}));
        assert_eq!(m["intent"], "order");
        assert_eq!(m["context"]["reference"], "Encounter/1");
        assert!(m["dispenseRequest"].get("numberOfRepeatsAllowed").is_none());
        assert!(m["dispenseRequest"].get("initialFill").is_none());
        assert_eq!(m["substitution"], json!({"allowed": false}));
        assert_eq!(m["dosageInstruction"][0]["doseQuantity"]["value"], 10);
        assert!(m.get("doNotPerform").is_none() && m.get("modifierExtension").is_none());
    }

    #[test]
    fn r4_request_to_dstu2_order() {
        let mut m = r4_request();
        convert(&mut m, FhirVersion::R4, FhirVersion::Dstu2).unwrap();
        assert_eq!(m["resourceType"], "MedicationOrder");
        assert_eq!(m["dateWritten"], "2024-03-01T08:00:00Z");
        assert_eq!(m["prescriber"]["display"], "Dr. Ada Lovelace");
        assert_eq!(m["patient"]["reference"], "Patient/1");
        assert_eq!(m["encounter"]["reference"], "Encounter/1");
        assert_eq!(m["status"], "stopped");
        assert_eq!(m["reasonCodeableConcept"]["text"], "Hypertension");
        assert_eq!(m["note"], "take with water");
        assert_eq!(m["substitution"]["type"]["coding"][0]["code"], "N");
        assert_eq!(m["medicationCodeableConcept"]["text"], "Lisinopril 10 mg tablet");
        for gone in ["intent", "authoredOn", "requester", "subject"] {
            assert!(m.get(gone).is_none(), "{gone}");
        }
    }

    #[test]
    fn do_not_perform_stays_a_modifier() {
        let mut m = r4_request();
        m.insert("doNotPerform".into(), json!(true));
        convert(&mut m, FhirVersion::R4, FhirVersion::Dstu2).unwrap();
        assert_eq!(m["modifierExtension"][0]["valueBoolean"], true);
    }

    #[test]
    fn dstu2_order_to_stu3_request() {
        let mut m = json!({
            "resourceType": "MedicationOrder",
            "dateWritten": "2015-01-01",
            "prescriber": {"reference": "Practitioner/1", "display": "Dr. B"},
            "patient": {"reference": "Patient/1"},
            "note": "n",
            "medicationReference": {"reference": "Medication/1", "display": "Aspirin"},
            "substitution": {"type": {"coding": [{"code": "N"}]}},
            "dateEnded": "2015-02-01"
        })
        .as_object()
        .unwrap()
        .clone();
        convert(&mut m, FhirVersion::Dstu2, FhirVersion::Stu3).unwrap();
        assert_eq!(m["resourceType"], "MedicationRequest");
        assert_eq!(m["intent"], "order");
        assert_eq!(m["authoredOn"], "2015-01-01");
        assert_eq!(m["requester"]["agent"]["display"], "Dr. B");
        assert_eq!(m["subject"]["reference"], "Patient/1");
        assert_eq!(m["note"], json!([{"text": "n"}]));
        assert_eq!(m["substitution"], json!({"allowed": false}));
        assert!(m.get("dateEnded").is_none());
    }

    #[test]
    fn statement_taken_flags() {
        let mut s = json!({"resourceType": "MedicationStatement", "status": "not-taken", "statusReason": [{"text": "nausea"}], "subject": {"reference": "Patient/1"}, "medicationCodeableConcept": {"text": "x"}})
            .as_object()
            .unwrap()
            .clone();
        let mut dstu2 = s.clone();
        convert(&mut s, FhirVersion::R4, FhirVersion::Stu3).unwrap();
        assert_eq!(s["taken"], "n");
        assert_eq!(s["status"], "completed");
        assert_eq!(s["reasonNotTaken"][0]["text"], "nausea");
        convert(&mut dstu2, FhirVersion::R4, FhirVersion::Dstu2).unwrap();
        assert_eq!(dstu2["wasNotTaken"], true);
        assert_eq!(dstu2["patient"]["reference"], "Patient/1");
        convert(&mut dstu2, FhirVersion::Dstu2, FhirVersion::Stu3).unwrap();
        assert_eq!(dstu2["taken"], "n");
    }
}
