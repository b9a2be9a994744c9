//! Coverage: R4 lists plan, group and class as `class` entries, STU3 names
//! them in `grouping` (value and display), DSTU2 keeps plain strings and
//! calls the payor the `issuer`.

use serde_json::{Value, json};

use super::elements::{Obj, RESOURCE, code_of, keep, refers_to, rename, take};

const STU3: &[&str] = &[
    "identifier",
    "status",
    "type",
    "policyHolder",
    "subscriber",
    "subscriberId",
    "beneficiary",
    "relationship",
    "period",
    "payor",
    "grouping",
    "dependent",
    "sequence",
    "order",
    "network",
    "contract",
];

const DSTU2: &[&str] = &[
    "issuer",
    "bin",
    "period",
    "type",
    "subscriberId",
    "identifier",
    "group",
    "plan",
    "subPlan",
    "dependent",
    "sequence",
    "subscriber",
    "network",
    "contract",
];

/// R4 `Coverage.class.type` codes → STU3 `grouping` elements (value and
/// display).
const GROUPING: &[(&str, &str, &str)] = &[
    ("group", "group", "groupDisplay"),
    ("subgroup", "subGroup", "subGroupDisplay"),
    ("plan", "plan", "planDisplay"),
    ("subplan", "subPlan", "subPlanDisplay"),
    ("class", "class", "classDisplay"),
    ("subclass", "subClass", "subClassDisplay"),
];

/// The DSTU2 strings, each with the STU3 `grouping` display it stands for
/// (the value has the same name in both releases).
const DSTU2_GROUPING: [(&str, &str); 3] =
    [("group", "groupDisplay"), ("plan", "planDisplay"), ("subPlan", "subPlanDisplay")];

pub fn r4_to_stu3(res: &mut Obj) {
    if let Some(Value::Array(classes)) = take(res, "class") {
        let mut grouping = Obj::new();
        for class in &classes {
            let Some(kind) = class.get("type").and_then(|t| code_of(t, "/coverage-class")) else { continue };
            let value = class.get("value").cloned();
            if kind == "sequence" {
                // STU3 has the sequence beside the grouping.
                if let Some(v) = value {
                    res.insert("sequence".into(), v);
                }
                continue;
            }
            // R4's pharmacy classes (rxbin, rxpcn…) have no STU3 grouping.
            let Some(&(_, key, display)) = GROUPING.iter().find(|(code, ..)| *code == kind) else { continue };
            if let Some(v) = value {
                grouping.insert(key.into(), v);
            }
            if let Some(name) = class.get("name") {
                grouping.insert(display.into(), name.clone());
            }
        }
        if !grouping.is_empty() {
            res.insert("grouping".into(), Value::Object(grouping));
        }
    }
    keep(res, RESOURCE, STU3);
}

pub fn stu3_to_dstu2(res: &mut Obj) {
    if let Some(Value::Array(payors)) = take(res, "payor")
        && let Some(payor) = payors.into_iter().find(|p| refers_to(p, "Organization") != Some(false))
    {
        res.insert("issuer".into(), payor);
    }
    if let Some(Value::Object(grouping)) = take(res, "grouping") {
        // DSTU2 has one string for each: the name the app shows, else the
        // insurer's identifier.
        for (key, display) in DSTU2_GROUPING {
            if let Some(v) = grouping.get(display).or_else(|| grouping.get(key)) {
                res.insert(key.into(), v.clone());
            }
        }
    }
    for key in ["subscriberId", "network"] {
        if let Some(Value::String(v)) = take(res, key) {
            res.insert(key.into(), json!({ "value": v }));
        }
    }
    take(res, "sequence");
    rename(res, "order", "sequence");
    if let Some(dependent) = take(res, "dependent")
        && let Some(n) = dependent.as_str().and_then(|d| d.parse::<u64>().ok()).filter(|n| *n > 0)
    {
        res.insert("dependent".into(), json!(n));
    }
    if let Some(t) = take(res, "type") {
        let coding = t.get("coding").and_then(Value::as_array).and_then(|c| c.first()).cloned();
        if let Some(coding) = coding.or_else(|| t.get("text").map(|text| json!({ "display": text }))) {
            res.insert("type".into(), coding);
        }
    }
    let is_self = res.get("relationship").and_then(|r| code_of(r, "relationship")).as_deref() == Some("self");
    if !res.contains_key("subscriber") && is_self {
        // The beneficiary holds the policy: DSTU2 knows them as the
        // subscriber.
        if let Some(b) = res.get("beneficiary").cloned() {
            res.insert("subscriber".into(), b);
        }
    }
    if res.get("subscriber").is_some_and(|s| refers_to(s, "Patient") == Some(false)) {
        take(res, "subscriber");
    }
    keep(res, RESOURCE, DSTU2);
}

pub fn dstu2_to_stu3(res: &mut Obj) {
    if let Some(issuer) = take(res, "issuer") {
        res.insert("payor".into(), json!([issuer]));
    }
    let mut grouping = Obj::new();
    for (key, display) in DSTU2_GROUPING {
        if let Some(v) = take(res, key) {
            // DSTU2's one string is both the value and the name to show.
            grouping.insert(display.into(), v.clone());
            grouping.insert(key.into(), v);
        }
    }
    if !grouping.is_empty() {
        res.insert("grouping".into(), Value::Object(grouping));
    }
    for key in ["subscriberId", "network"] {
        if let Some(value) = take(res, key).and_then(|v| v.get("value").cloned()) {
            res.insert(key.into(), value);
        }
    }
    rename(res, "sequence", "order");
    if let Some(n) = take(res, "dependent").and_then(|d| d.as_u64()) {
        res.insert("dependent".into(), json!(n.to_string()));
    }
    if let Some(coding) = take(res, "type") {
        res.insert("type".into(), json!({ "coding": [coding] }));
    }
    keep(res, RESOURCE, STU3);
}

#[cfg(test)]
mod tests {
    use super::super::convert;
    use fhirgate_guest_sdk::types::FhirVersion;
    use serde_json::json;

    fn r4() -> serde_json::Map<String, serde_json::Value> {
        json!({
            "resourceType": "Coverage",
            "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EHCPOL", "display": "extended healthcare"}]},
            "subscriberId": "A123456789",
            "beneficiary": {"reference": "Patient/1"},
            "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"}]},
            "period": {"start": "2024-01-01", "end": "2024-12-31"},
            "payor": [{"reference": "Organization/9", "display": "Acme Health"}],
            "class": [
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "group"}]}, "value": "G-100", "name": "Acme Corp employees"},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": "P-7", "name": "Gold PPO"},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "rxbin"}]}, "value": "610014"}
            ],
            "order": 1,
            "costToBeneficiary": [{"valueQuantity": {"value": 20}}]
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn r4_class_to_stu3_grouping() {
        let mut c = r4();
        convert(&mut c, FhirVersion::R4, FhirVersion::Stu3).unwrap();
        assert_eq!(
            c["grouping"],
            json!({"group": "G-100", "groupDisplay": "Acme Corp employees", "plan": "P-7", "planDisplay": "Gold PPO"})
        );
        assert_eq!(c["subscriberId"], "A123456789");
        assert!(c.get("class").is_none() && c.get("costToBeneficiary").is_none());
    }

    #[test]
    fn r4_to_dstu2_plan_and_issuer() {
        let mut c = r4();
        convert(&mut c, FhirVersion::R4, FhirVersion::Dstu2).unwrap();
        assert_eq!(c["plan"], "Gold PPO");
        assert_eq!(c["group"], "Acme Corp employees");
        assert_eq!(c["issuer"]["display"], "Acme Health");
        assert_eq!(c["subscriberId"], json!({"value": "A123456789"}));
        assert_eq!(c["subscriber"]["reference"], "Patient/1");
        assert_eq!(c["sequence"], 1);
        assert_eq!(c["type"]["code"], "EHCPOL");
        assert!(c.get("status").is_none() && c.get("payor").is_none());

        convert(&mut c, FhirVersion::Dstu2, FhirVersion::Stu3).unwrap();
        assert_eq!(c["grouping"]["planDisplay"], "Gold PPO");
        assert_eq!(c["payor"][0]["display"], "Acme Health");
        assert_eq!(c["subscriberId"], "A123456789");
    }
}
