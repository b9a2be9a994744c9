//! Patient: `name.family` is a list in DSTU2, the GP is `careProvider`, and
//! DSTU2 lacks some ContactPoint systems and link types.

use serde_json::Value;

use super::elements::{Obj, keep, objects_mut, rename};

const STU3: &[&str] = &[
    "identifier",
    "active",
    "name",
    "telecom",
    "gender",
    "birthDate",
    "deceasedBoolean",
    "deceasedDateTime",
    "address",
    "maritalStatus",
    "multipleBirthBoolean",
    "multipleBirthInteger",
    "photo",
    "contact",
    "animal",
    "communication",
    "generalPractitioner",
    "managingOrganization",
    "link",
];

const DSTU2: &[&str] = &[
    "identifier",
    "active",
    "name",
    "telecom",
    "gender",
    "birthDate",
    "deceasedBoolean",
    "deceasedDateTime",
    "address",
    "maritalStatus",
    "multipleBirthBoolean",
    "multipleBirthInteger",
    "photo",
    "contact",
    "animal",
    "communication",
    "careProvider",
    "managingOrganization",
    "link",
];

pub fn r4_to_stu3(res: &mut Obj) {
    // Patient's own elements did not change between STU3 and R4; code
    // systems, `meta` and References are handled for every resource.
    keep(res, super::elements::RESOURCE, STU3);
}

pub fn stu3_to_dstu2(res: &mut Obj) {
    for name in objects_mut(res, "name") {
        family_to_list(name);
    }
    rename(res, "generalPractitioner", "careProvider");
    telecom_to_dstu2(res);
    for contact in objects_mut(res, "contact") {
        if let Some(Value::Object(name)) = contact.get_mut("name") {
            family_to_list(name);
        }
        telecom_to_dstu2(contact);
    }
    for link in objects_mut(res, "link") {
        // DSTU2 link types: replace | refer | seealso.
        if let Some(t) = link.get_mut("type")
            && matches!(t.as_str(), Some("replaced-by" | "replaces"))
        {
            *t = Value::String("replace".into());
        }
    }
    keep(res, super::elements::RESOURCE, DSTU2);
}

pub fn dstu2_to_stu3(res: &mut Obj) {
    for name in objects_mut(res, "name") {
        family_to_string(name);
    }
    rename(res, "careProvider", "generalPractitioner");
    for contact in objects_mut(res, "contact") {
        if let Some(Value::Object(name)) = contact.get_mut("name") {
            family_to_string(name);
        }
    }
    for link in objects_mut(res, "link") {
        if let Some(t) = link.get_mut("type")
            && t.as_str() == Some("replace")
        {
            *t = Value::String("replaced-by".into());
        }
    }
    keep(res, super::elements::RESOURCE, STU3);
}

/// DSTU2 `HumanName.family` is a list of strings.
fn family_to_list(name: &mut Obj) {
    for key in ["family", "_family"] {
        if let Some(family) = name.get_mut(key)
            && !family.is_array()
        {
            *family = Value::Array(vec![family.take()]);
        }
    }
}

/// STU3 `HumanName.family` is one string: DSTU2's parts, space-separated.
fn family_to_string(name: &mut Obj) {
    if let Some(family) = name.get_mut("family")
        && let Value::Array(parts) = family
    {
        let joined = parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ");
        *family = Value::String(joined);
    }
    if let Some(Value::Array(parts)) = name.remove("_family")
        && let Some(first) = parts.into_iter().find(|p| !p.is_null())
    {
        name.insert("_family".into(), first);
    }
}

/// DSTU2 `ContactPoint.system` has no `url` or `sms`.
pub(super) fn telecom_to_dstu2(obj: &mut Obj) {
    for telecom in objects_mut(obj, "telecom") {
        if let Some(system) = telecom.get_mut("system")
            && matches!(system.as_str(), Some("url" | "sms"))
        {
            *system = Value::String("other".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::convert;
    use fhirgate_guest_sdk::types::FhirVersion;
    use serde_json::{Map, Value, json};

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
            "generalPractitioner": [{"reference": "Practitioner/1", "display": "Dr. Who"}],
            "contact": [{"name": {"family": "Chau", "given": ["Mei"]}, "telecom": [{"system": "url", "value": "x"}]}]
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn r4_patient_to_stu3() {
        let mut p = patient_r4();
        convert(&mut p, FhirVersion::R4, FhirVersion::Stu3).unwrap();
        assert_eq!(p["name"][0]["family"], "Chau");
        assert_eq!(p["identifier"][0]["type"]["coding"][0]["system"], "http://hl7.org/fhir/v2/0203");
        assert_eq!(p["generalPractitioner"][0]["display"], "Dr. Who");
        assert!(p["meta"].get("source").is_none());
        assert_eq!(p["meta"]["versionId"], "1");
        assert_eq!(p["identifier"][0]["system"], "urn:oid:1.2.3");
    }

    #[test]
    fn r4_patient_to_dstu2() {
        let mut p = patient_r4();
        convert(&mut p, FhirVersion::R4, FhirVersion::Dstu2).unwrap();
        assert_eq!(p["name"][0]["family"], json!(["Chau"]));
        assert_eq!(p["contact"][0]["name"]["family"], json!(["Chau"]));
        assert_eq!(p["careProvider"][0]["display"], "Dr. Who");
        assert!(p.get("generalPractitioner").is_none());
        assert_eq!(p["telecom"][0]["system"], "other");
        assert_eq!(p["contact"][0]["telecom"][0]["system"], "other");
    }

    #[test]
    fn dstu2_patient_to_stu3() {
        let mut p = json!({"resourceType": "Patient", "name": [{"family": ["van", "Dam"]}], "careProvider": [{"display": "X"}]})
            .as_object()
            .unwrap()
            .clone();
        convert(&mut p, FhirVersion::Dstu2, FhirVersion::Stu3).unwrap();
        assert_eq!(p["name"][0]["family"], "van Dam");
        assert_eq!(p["generalPractitioner"][0]["display"], "X");
    }
}
