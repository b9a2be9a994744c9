//! Patient in each release: the R4 patients of `data`, and the same data as
//! an STU3 or DSTU2 server holds it.

use serde_json::{Map, Value};

use crate::demo::data;
use fhirgate_core::fhir::Version;

/// Patient `i` in release `v`. The R4 Patient is exactly [`data::patient`].
pub fn patient(v: Version, i: usize) -> Value {
    let mut p = data::patient(i);
    if v == Version::R4 {
        return p;
    }
    let Value::Object(res) = &mut p else { return p };
    // `Meta.source` is new in R4; STU3 and DSTU2 name HL7's code systems
    // under hl7.org/fhir (the MRN's `v2-0203` type among them).
    if let Some(Value::Object(meta)) = res.get_mut("meta") {
        meta.remove("source");
    }
    hl7_systems(res);
    if v == Version::Dstu2 {
        for name in array(res, "name") {
            // DSTU2 `HumanName.family` is a list of strings.
            if let Some(family) = name.get_mut("family")
                && let Value::String(s) = family
            {
                *family = Value::Array(vec![Value::String(std::mem::take(s))]);
            }
        }
        if let Some(gp) = res.remove("generalPractitioner") {
            res.insert("careProvider".to_owned(), gp);
        }
        for telecom in array(res, "telecom") {
            // DSTU2 ContactPoint.system has no `sms` (nor `url`).
            if let Some(system) = telecom.get_mut("system")
                && matches!(system.as_str(), Some("sms" | "url"))
            {
                *system = Value::String("other".to_owned());
            }
        }
    }
    p
}

fn array<'a>(res: &'a mut Map<String, Value>, key: &str) -> impl Iterator<Item = &'a mut Value> {
    res.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten()
}

/// Rewrites every `system` from its R4 `terminology.hl7.org` URL to the one
/// STU3 and DSTU2 use.
fn hl7_systems(value: &mut Map<String, Value>) {
    for (key, v) in value.iter_mut() {
        match v {
            Value::String(s) if key == "system" => {
                if let Some(name) = s.strip_prefix("http://terminology.hl7.org/CodeSystem/") {
                    *s = super::hl7_system(Version::Stu3, name);
                }
            }
            Value::Object(o) => hl7_systems(o),
            Value::Array(items) => items.iter_mut().filter_map(Value::as_object_mut).for_each(hl7_systems),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r4_is_the_data_and_others_are_shaped() {
        assert_eq!(patient(Version::R4, 0), data::patient(0));
        let stu3 = patient(Version::Stu3, 0);
        assert_eq!(stu3["name"][0]["family"], "Chau");
        assert_eq!(stu3["identifier"][0]["type"]["coding"][0]["system"], "http://hl7.org/fhir/v2/0203");
        assert!(stu3["meta"].get("source").is_none());
        assert_eq!(stu3["generalPractitioner"][0]["display"], "Dr. Adele Byrne");

        let dstu2 = patient(Version::Dstu2, 0);
        assert_eq!(dstu2["name"][0]["family"], serde_json::json!(["Chau"]));
        assert_eq!(dstu2["careProvider"][0]["display"], "Dr. Adele Byrne");
        assert!(dstu2.get("generalPractitioner").is_none());
        assert_eq!(dstu2["telecom"][1]["system"], "other");
        assert_eq!(dstu2["identifier"][0]["value"], data::mrn(0));
    }
}
