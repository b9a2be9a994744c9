//! Per-resource conversions between FHIR versions.
//!
//! Conversions chain one release at a time (R4 → STU3 → DSTU2, DSTU2 → STU3),
//! so each step states only the differences between two neighbouring
//! releases.

use fhirgate_guest_sdk::deny;
use fhirgate_guest_sdk::types::{Denial, FhirVersion};
use serde_json::{Map, Value};

/// Converts `resource` of type `rt` from `from` to `to` in place.
pub fn convert(rt: &str, resource: &mut Map<String, Value>, from: FhirVersion, to: FhirVersion) -> Result<(), Denial> {
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
        step(rt, resource, a, b)?;
    }
    Ok(())
}

fn name(v: FhirVersion) -> &'static str {
    match v {
        FhirVersion::Dstu2 => "DSTU2",
        FhirVersion::Stu3 => "STU3",
        FhirVersion::R4 => "R4",
    }
}

fn step(rt: &str, res: &mut Map<String, Value>, from: FhirVersion, to: FhirVersion) -> Result<(), Denial> {
    use FhirVersion::*;
    match (rt, from, to) {
        ("Patient", R4, Stu3) => patient::r4_to_stu3(res),
        ("Patient", Stu3, Dstu2) => patient::stu3_to_dstu2(res),
        ("Patient", Dstu2, Stu3) => patient::dstu2_to_stu3(res),
        ("OperationOutcome", R4, Stu3) | ("OperationOutcome", Dstu2, Stu3) => {}
        ("OperationOutcome", Stu3, Dstu2) => {
            // DSTU2 issues have `location` but no `expression`.
            for issue in array_mut(res, "issue") {
                if let Some(issue) = issue.as_object_mut() {
                    issue.remove("expression");
                }
            }
        }
        _ => {
            return Err(deny(
                501,
                "not-supported",
                format!("Shaping {rt} from {} to {} is not supported by this module.", name(from), name(to)),
            ));
        }
    }
    if (from, to) == (R4, Stu3) {
        r4_code_systems(res);
    }
    strip_meta(res, to);
    Ok(())
}

/// Drops `meta` elements the target release does not define.
pub fn strip_meta(res: &mut Map<String, Value>, to: FhirVersion) {
    if to != FhirVersion::R4
        && let Some(Value::Object(meta)) = res.get_mut("meta")
    {
        // `Meta.source` is new in R4.
        meta.remove("source");
    }
}

/// R4 moved HL7's code systems to `terminology.hl7.org`; STU3 and DSTU2 use
/// the `hl7.org/fhir` URLs (e.g. the v2-0203 identifier types the app uses to
/// find the MRN).
fn r4_code_systems(value: &mut Map<String, Value>) {
    for (key, v) in value.iter_mut() {
        match v {
            Value::String(s) if key == "system" => {
                if let Some(mapped) = map_terminology_url(s) {
                    *s = mapped;
                }
            }
            Value::Object(o) => r4_code_systems(o),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(o) = item {
                        r4_code_systems(o);
                    }
                }
            }
            _ => {}
        }
    }
}

fn map_terminology_url(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://terminology.hl7.org/CodeSystem/")?;
    Some(if let Some(table) = rest.strip_prefix("v2-") {
        format!("http://hl7.org/fhir/v2/{table}")
    } else if let Some(cs) = rest.strip_prefix("v3-") {
        format!("http://hl7.org/fhir/v3/{cs}")
    } else {
        format!("http://hl7.org/fhir/{rest}")
    })
}

fn array_mut<'a>(res: &'a mut Map<String, Value>, key: &str) -> impl Iterator<Item = &'a mut Value> {
    res.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten()
}

fn rename(res: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = res.remove(from) {
        res.insert(to.to_owned(), v);
    }
}

mod patient {
    use super::*;

    pub fn r4_to_stu3(_res: &mut Map<String, Value>) {
        // Patient's own elements did not change between STU3 and R4; the code
        // systems and `meta` are handled for every resource.
    }

    pub fn stu3_to_dstu2(res: &mut Map<String, Value>) {
        for name in array_mut(res, "name") {
            // DSTU2 `HumanName.family` is a list of strings.
            if let Some(family) = name.get_mut("family")
                && let Value::String(s) = family
            {
                *family = Value::Array(vec![Value::String(std::mem::take(s))]);
            }
        }
        rename(res, "generalPractitioner", "careProvider");
        for telecom in array_mut(res, "telecom") {
            // DSTU2 ContactPoint.system has no `url` or `sms`.
            if let Some(system) = telecom.get_mut("system")
                && matches!(system.as_str(), Some("url" | "sms"))
            {
                *system = Value::String("other".into());
            }
        }
        for contact in array_mut(res, "contact") {
            for telecom in contact.get_mut("telecom").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(system) = telecom.get_mut("system")
                    && matches!(system.as_str(), Some("url" | "sms"))
                {
                    *system = Value::String("other".into());
                }
            }
        }
        for link in array_mut(res, "link") {
            // DSTU2 link types: replace | refer | seealso.
            if let Some(t) = link.get_mut("type")
                && matches!(t.as_str(), Some("replaced-by" | "replaces"))
            {
                *t = Value::String("replace".into());
            }
        }
    }

    pub fn dstu2_to_stu3(res: &mut Map<String, Value>) {
        for name in array_mut(res, "name") {
            if let Some(family) = name.get_mut("family")
                && let Value::Array(parts) = family
            {
                let joined = parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ");
                *family = Value::String(joined);
            }
        }
        rename(res, "careProvider", "generalPractitioner");
        for link in array_mut(res, "link") {
            if let Some(t) = link.get_mut("type")
                && t.as_str() == Some("replace")
            {
                *t = Value::String("replaced-by".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patient_r4() -> Map<String, Value> {
        json!({
            "resourceType": "Patient",
            "id": "p1",
            "meta": {"source": "#abc", "versionId": "1"},
            "identifier": [{
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                "system": "urn:oid:1.2.3",
                "value": "MRN1"
            }],
            "name": [{"use": "official", "family": "Chau", "given": ["Hugh"], "prefix": ["Mr."]}],
            "telecom": [{"system": "sms", "value": "555"}],
            "gender": "male",
            "birthDate": "1970-01-01",
            "generalPractitioner": [{"reference": "Practitioner/1", "display": "Dr. Who"}]
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn r4_patient_to_stu3() {
        let mut p = patient_r4();
        convert("Patient", &mut p, FhirVersion::R4, FhirVersion::Stu3).unwrap();
        assert_eq!(p["name"][0]["family"], "Chau");
        assert_eq!(p["identifier"][0]["type"]["coding"][0]["system"], "http://hl7.org/fhir/v2/0203");
        assert_eq!(p["generalPractitioner"][0]["display"], "Dr. Who");
        assert!(p["meta"].get("source").is_none());
        assert_eq!(p["identifier"][0]["system"], "urn:oid:1.2.3");
    }

    #[test]
    fn r4_patient_to_dstu2() {
        let mut p = patient_r4();
        convert("Patient", &mut p, FhirVersion::R4, FhirVersion::Dstu2).unwrap();
        assert_eq!(p["name"][0]["family"], json!(["Chau"]));
        assert_eq!(p["careProvider"][0]["display"], "Dr. Who");
        assert!(p.get("generalPractitioner").is_none());
        assert_eq!(p["telecom"][0]["system"], "other");
    }

    #[test]
    fn dstu2_patient_to_stu3() {
        let mut p = json!({"resourceType": "Patient", "name": [{"family": ["van", "Dam"]}], "careProvider": [{"display": "X"}]})
            .as_object()
            .unwrap()
            .clone();
        convert("Patient", &mut p, FhirVersion::Dstu2, FhirVersion::Stu3).unwrap();
        assert_eq!(p["name"][0]["family"], "van Dam");
        assert_eq!(p["generalPractitioner"][0]["display"], "X");
    }

    #[test]
    fn unknown_resource_is_refused_not_passed() {
        let mut o = json!({"resourceType": "Observation"}).as_object().unwrap().clone();
        let d = convert("Observation", &mut o, FhirVersion::R4, FhirVersion::Stu3).unwrap_err();
        assert_eq!(d.status, 501);
        // Same version: nothing to convert.
        convert("Observation", &mut o, FhirVersion::Stu3, FhirVersion::Stu3).unwrap();
    }
}
