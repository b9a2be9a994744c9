//! Encounters: one to four visits per patient (check-ups, follow-ups,
//! emergencies, admissions), each at one of the shared locations. About half
//! of the location references lack a `display`, as many servers send them:
//! a client must resolve the Location to name the place.

use serde_json::{Value, json};

use super::{Draw, SNOMED, coding, concept, date_time, during_day, hl7_system, location, meta, patient_ref};
use super::{practitioner_ref, resource_id};
use fhirgate_core::fhir::Version;

pub const PREFIX: &str = "enc";
const SALT: u64 = 0x00e2_c002_72e4;

/// A kind of visit: its v3 ActCode class (code, display, DSTU2's code), its
/// SNOMED CT type, how long it lasts (minutes), where it happens.
struct Visit {
    class: (&'static str, &'static str, &'static str),
    kind: (&'static str, &'static str),
    minutes: (i64, i64),
    places: &'static [usize],
}

const VISITS: &[Visit] = &[
    Visit {
        class: ("AMB", "ambulatory", "ambulatory"),
        kind: ("185349003", "Encounter for check up (procedure)"),
        minutes: (20, 45),
        places: location::CLINICS,
    },
    Visit {
        class: ("AMB", "ambulatory", "ambulatory"),
        kind: ("390906007", "Follow-up encounter (procedure)"),
        minutes: (15, 30),
        places: location::CLINICS,
    },
    Visit {
        class: ("EMER", "emergency", "emergency"),
        kind: ("50849002", "Emergency room admission (procedure)"),
        minutes: (90, 360),
        places: location::EMERGENCY,
    },
    Visit {
        class: ("IMP", "inpatient encounter", "inpatient"),
        kind: ("32485007", "Hospital admission (procedure)"),
        minutes: (24 * 60, 6 * 24 * 60),
        places: location::WARDS,
    },
];

/// Patient `i`'s encounters in release `v`, oldest first. The latest is
/// still going on for some patients.
pub fn for_patient(v: Version, i: usize) -> Vec<Value> {
    let mut d = Draw::new(i, SALT);
    let n = 1 + d.below(4);
    let mut days_ago = vec![d.range(1, 60)];
    for _ in 1..n {
        let last = days_ago[days_ago.len() - 1];
        days_ago.push(last + d.range(30, 400));
    }
    days_ago.reverse();
    let ongoing = d.chance(15);
    let mut out = Vec::new();
    for (k, days) in days_ago.into_iter().enumerate() {
        let visit = d.pick(VISITS);
        let place = *d.pick(visit.places);
        let start = during_day(days, d.range(7 * 60, 17 * 60));
        let end = start + d.range(visit.minutes.0, visit.minutes.1) * 60;
        // A visit still under way has no end; nor does one that would end
        // after the record's date.
        let finished = !(k + 1 == n && ongoing) && end < super::AS_OF;
        let with_display = d.chance(50);
        let mut e = json!({
            "resourceType": "Encounter",
            "id": resource_id(PREFIX, i, k + 1),
            "meta": meta(),
            "status": if finished { "finished" } else { "in-progress" },
            "type": [concept(SNOMED, visit.kind.0, visit.kind.1, visit.kind.1)],
            "participant": [{ "individual": practitioner_ref(i) }],
            "period": if finished {
                json!({ "start": date_time(start), "end": date_time(end) })
            } else {
                json!({ "start": date_time(start) })
            },
            "location": [{
                "location": if with_display {
                    json!({ "reference": format!("Location/{}", location::id(place)), "display": location::name(place) })
                } else {
                    json!({ "reference": format!("Location/{}", location::id(place)) })
                },
                "status": if finished { "completed" } else { "active" },
            }],
        });
        match v {
            Version::R4 | Version::Stu3 => {
                e["class"] = coding(&hl7_system(v, "v3-ActCode"), visit.class.0, visit.class.1);
                e["subject"] = patient_ref(i);
            }
            Version::Dstu2 => {
                // DSTU2: the class is a plain code and the subject `patient`.
                e["class"] = json!(visit.class.2);
                e["patient"] = patient_ref(i);
            }
        }
        out.push(e);
    }
    out
}
