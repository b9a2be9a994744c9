//! Coverage: one insurance policy per patient, who is its subscriber, with
//! the payer, the group and plan (R4 `class`, STU3 `grouping`, DSTU2 plain
//! strings), the subscriber id and the period.

use serde_json::{Value, json};

use super::{AS_OF, Draw, coding, date, hl7_system, meta, patient_ref, resource_id};
use fhirgate_core::fhir::Version;

pub const PREFIX: &str = "cov";
const SALT: u64 = 0x0c0e_4a6e;

/// (Organization id, name, subscriber id prefix).
const PAYERS: &[(&str, &str, &str)] = &[
    ("payer-1", "Acme Health Insurance", "ACM"),
    ("payer-2", "Blue Harbor Mutual", "BHM"),
    ("payer-3", "Springfield Medicare Advantage", "SMA"),
];
/// (plan id, plan name).
const PLANS: &[(&str, &str)] = &[
    ("GOLD-PPO", "Gold PPO"),
    ("SILVER-HMO", "Silver HMO"),
    ("BRONZE-EPO", "Bronze EPO"),
    ("MA-PLUS", "Advantage Plus"),
];
/// (group id, group name).
const GROUPS: &[(&str, &str)] = &[
    ("GRP-1001", "Harbour Street Employers Group"),
    ("GRP-2040", "Springfield Teachers Union"),
    ("GRP-3300", "Individual and Family"),
    ("GRP-4120", "Springfield Municipal Staff"),
];

/// Patient `i`'s coverage in release `v`.
pub fn for_patient(v: Version, i: usize) -> Vec<Value> {
    let mut d = Draw::new(i, SALT);
    let payer = d.pick(PAYERS);
    let plan = d.pick(PLANS);
    let group = d.pick(GROUPS);
    let subscriber_id = format!("{}{:08}", payer.2, 10_000_000 + (d.number() % 89_999_999));
    // A policy of this calendar year, or an older one without an end.
    let period = if d.chance(70) {
        json!({ "start": "2026-01-01", "end": "2026-12-31" })
    } else {
        json!({ "start": date(AS_OF - d.range(400, 3_000) * 86_400) })
    };
    let payor = json!({ "reference": format!("Organization/{}", payer.0), "display": payer.1 });
    let policy_type = |v| coding(&hl7_system(v, "v3-ActCode"), "HIP", "health insurance plan policy");
    let mut c = json!({
        "resourceType": "Coverage",
        "id": resource_id(PREFIX, i, 1),
        "meta": meta(),
        "period": period,
        "subscriber": patient_ref(i),
    });
    match v {
        Version::R4 => {
            let class = |kind: &str, display: &str, (value, name): (&str, &str)| {
                json!({
                    "type": { "coding": [coding(&hl7_system(v, "coverage-class"), kind, display)] },
                    "value": value,
                    "name": name,
                })
            };
            c["status"] = json!("active");
            c["type"] = json!({ "coding": [policy_type(v)] });
            c["subscriberId"] = json!(subscriber_id);
            c["beneficiary"] = patient_ref(i);
            c["relationship"] =
                json!({ "coding": [coding(&hl7_system(v, "subscriber-relationship"), "self", "Self")] });
            c["payor"] = json!([payor]);
            c["class"] = json!([class("group", "Group", *group), class("plan", "Plan", *plan)]);
        }
        Version::Stu3 => {
            c["status"] = json!("active");
            c["type"] = json!({ "coding": [policy_type(v)] });
            c["subscriberId"] = json!(subscriber_id);
            c["beneficiary"] = patient_ref(i);
            c["relationship"] =
                json!({ "coding": [coding("http://hl7.org/fhir/policyholder-relationship", "self", "Self")] });
            c["payor"] = json!([payor]);
            c["grouping"] = json!({ "group": group.0, "groupDisplay": group.1, "plan": plan.0, "planDisplay": plan.1 });
        }
        Version::Dstu2 => {
            // DSTU2 has one issuer, an Identifier for the subscriber id, and
            // group and plan as plain strings: servers put the plan's name in.
            c["issuer"] = payor;
            c["type"] = policy_type(v);
            c["subscriberId"] = json!({ "system": format!("urn:fhirgate:demo:{}", payer.0), "value": subscriber_id });
            c["group"] = json!(group.0);
            c["plan"] = json!(plan.1);
        }
    }
    vec![c]
}
