//! Vital-sign Observations: two or three rounds of measurements per patient,
//! each of heart rate, respiratory rate, body temperature, body weight and a
//! blood-pressure panel (systolic and diastolic as components), coded with
//! LOINC and UCUM. Every measurement has its own moment; some heart rates
//! are averaged over a few minutes and carry an `effectivePeriod`.

use serde_json::{Number, Value, json};

use super::{Draw, LOINC, UCUM, coding, date_time, during_day, hl7_system, meta, patient_ref, resource_id};
use fhirgate_core::fhir::Version;

pub const PREFIX: &str = "obs";
const SALT: u64 = 0x0b5e_77a7_1011;

/// A LOINC-coded measurement and its UCUM unit (code, human-readable).
struct Vital {
    loinc: &'static str,
    display: &'static str,
    unit: &'static str,
    unit_display: &'static str,
}

const HEART_RATE: Vital = Vital { loinc: "8867-4", display: "Heart rate", unit: "/min", unit_display: "beats/minute" };
const RESPIRATORY_RATE: Vital =
    Vital { loinc: "9279-1", display: "Respiratory rate", unit: "/min", unit_display: "breaths/minute" };
const BODY_TEMPERATURE: Vital = Vital { loinc: "8310-5", display: "Body temperature", unit: "Cel", unit_display: "C" };
const BODY_WEIGHT: Vital = Vital { loinc: "29463-7", display: "Body weight", unit: "kg", unit_display: "kg" };
const BLOOD_PRESSURE: Vital = Vital {
    loinc: "85354-9",
    display: "Blood pressure panel with all children optional",
    unit: "mm[Hg]",
    unit_display: "mmHg",
};
const SYSTOLIC: Vital =
    Vital { loinc: "8480-6", display: "Systolic blood pressure", unit: "mm[Hg]", unit_display: "mmHg" };
const DIASTOLIC: Vital =
    Vital { loinc: "8462-4", display: "Diastolic blood pressure", unit: "mm[Hg]", unit_display: "mmHg" };

/// When a measurement was taken: at a moment, or over a period.
enum Effective {
    At(i64),
    Over(i64, i64),
}

/// Patient `i`'s vital signs in release `v`, oldest first.
pub fn for_patient(v: Version, i: usize) -> Vec<Value> {
    let mut d = Draw::new(i, SALT);
    let rounds = 2 + d.below(2);
    // Rounds are weeks to months apart; the latest within the last month.
    let mut days_ago = vec![d.range(1, 30)];
    for _ in 1..rounds {
        let last = days_ago[days_ago.len() - 1];
        days_ago.push(last + d.range(20, 180));
    }
    days_ago.reverse();
    let weight_tenths = d.range(480, 1100);
    let mut out = Vec::new();
    for days in days_ago {
        let start = during_day(days, d.range(7 * 60, 18 * 60));
        let at = |n: i64| start + n * 120;
        let heart_rate = if d.chance(30) { Effective::Over(at(0), at(0) + 300) } else { Effective::At(at(0)) };
        let weight = weight_tenths + d.range(-25, 25);
        let systolic = d.range(102, 158);
        let diastolic = d.range(60, (systolic - 30).min(96));
        let measured = [
            (&HEART_RATE, heart_rate, Some(whole(d.range(54, 102)))),
            (&RESPIRATORY_RATE, Effective::At(at(1)), Some(whole(d.range(12, 20)))),
            (&BODY_TEMPERATURE, Effective::At(at(2)), Some(tenths(d.range(361, 379)))),
            (&BODY_WEIGHT, Effective::At(at(3)), Some(tenths(weight))),
            (&BLOOD_PRESSURE, Effective::At(at(4)), None),
        ];
        for (vital, effective, value) in measured {
            let id = resource_id(PREFIX, i, out.len() + 1);
            let mut o = observation(v, id, i, vital, effective);
            match value {
                Some(value) => o["valueQuantity"] = quantity(vital, value),
                None => {
                    o["component"] = json!([
                        { "code": code(&SYSTOLIC), "valueQuantity": quantity(&SYSTOLIC, whole(systolic)) },
                        { "code": code(&DIASTOLIC), "valueQuantity": quantity(&DIASTOLIC, whole(diastolic)) },
                    ])
                }
            }
            out.push(o);
        }
    }
    out
}

fn observation(v: Version, id: String, i: usize, vital: &Vital, effective: Effective) -> Value {
    let category = json!({
        "coding": [coding(&hl7_system(v, "observation-category"), "vital-signs", "Vital Signs")],
        "text": "Vital Signs",
    });
    let mut o = json!({
        "resourceType": "Observation",
        "id": id,
        "meta": meta(),
        "status": "final",
        // One CodeableConcept in DSTU2, a list since STU3.
        "category": if v == Version::Dstu2 { category } else { json!([category]) },
        "code": code(vital),
        "subject": patient_ref(i),
    });
    let ended = match effective {
        Effective::At(t) => {
            o["effectiveDateTime"] = json!(date_time(t));
            t
        }
        Effective::Over(start, end) => {
            o["effectivePeriod"] = json!({ "start": date_time(start), "end": date_time(end) });
            end
        }
    };
    o["issued"] = json!(date_time(ended + 600));
    o
}

fn code(vital: &Vital) -> Value {
    json!({ "coding": [coding(LOINC, vital.loinc, vital.display)], "text": vital.display })
}

fn quantity(vital: &Vital, value: Number) -> Value {
    json!({ "value": value, "unit": vital.unit_display, "system": UCUM, "code": vital.unit })
}

fn whole(n: i64) -> Number {
    Number::from(n)
}

/// `n` tenths as a decimal with one digit after the point.
fn tenths(n: i64) -> Number {
    Number::from_f64(n as f64 / 10.0).unwrap_or_else(|| Number::from(n / 10))
}
