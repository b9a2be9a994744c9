//! Element-level helpers every resource conversion uses: moving and dropping
//! elements (with their `_element` primitive extensions), list ↔ single
//! cardinality changes, codes out of CodeableConcepts, and the walk over a
//! whole resource that fixes what changed in every data type (References,
//! extension values, HL7 code system URLs, `meta`).

use fhirgate_guest_sdk::types::FhirVersion;
use serde_json::{Map, Value};

/// A resource or element as JSON.
pub type Obj = Map<String, Value>;

/// Elements every resource has (Resource and DomainResource); they are the
/// same in DSTU2, STU3 and R4.
pub const RESOURCE: &[&str] =
    &["resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension"];

/// Elements every backbone element has.
pub const BACKBONE: &[&str] = &["id", "extension", "modifierExtension"];

/// Elements every plain data type element has.
pub const ELEMENT: &[&str] = &["id", "extension"];

/// Keeps only `base` and `allowed` elements (and their `_name` primitive
/// extensions): what the target release does not define is dropped rather
/// than emitted into an invalid resource.
pub fn keep(obj: &mut Obj, base: &[&str], allowed: &[&str]) {
    obj.retain(|key, _| {
        let name = key.strip_prefix('_').unwrap_or(key);
        base.contains(&name) || allowed.contains(&name)
    });
}

/// The key of element `name`'s primitive extension: `_name`.
fn extension_key(name: &str) -> String {
    // Not `format!`: this runs for every element moved, and the formatting
    // machinery costs more than the copy.
    ["_", name].concat()
}

/// Moves element `from` to `to`, with its primitive extension.
pub fn rename(obj: &mut Obj, from: &str, to: &str) {
    if let Some(v) = obj.remove(from) {
        obj.insert(to.to_owned(), v);
    }
    if let Some(v) = obj.remove(&extension_key(from)) {
        obj.insert(extension_key(to), v);
    }
}

/// Removes element `key` and its primitive extension, returning the value.
pub fn take(obj: &mut Obj, key: &str) -> Option<Value> {
    obj.remove(&extension_key(key));
    obj.remove(key)
}

/// A `0..*` element that is `0..1` in the target release: keeps the first.
pub fn to_single(obj: &mut Obj, key: &str) {
    for k in [key.to_owned(), extension_key(key)] {
        match obj.remove(&k) {
            Some(Value::Array(items)) => {
                if let Some(first) = items.into_iter().next().filter(|v| !v.is_null()) {
                    obj.insert(k, first);
                }
            }
            Some(other) => {
                obj.insert(k, other);
            }
            None => {}
        }
    }
}

/// A `0..1` element that is `0..*` in the target release.
pub fn to_list(obj: &mut Obj, key: &str) {
    for k in [key.to_owned(), extension_key(key)] {
        if let Some(v) = obj.remove(&k) {
            let list = if v.is_array() { v } else { Value::Array(vec![v]) };
            obj.insert(k, list);
        }
    }
}

/// The elements of array `key`, as objects.
pub fn objects_mut<'a>(obj: &'a mut Obj, key: &str) -> impl Iterator<Item = &'a mut Obj> {
    obj.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut)
}

/// Element `key` as an object.
pub fn object_mut<'a>(obj: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    obj.get_mut(key).and_then(Value::as_object_mut)
}

/// Code replacements between releases: `(from, Some(to))` rewrites a code,
/// `(from, None)` drops a code the target release has no equivalent for;
/// codes not listed are the same in both releases.
pub type Recode<'a> = &'a [(&'a str, Option<&'a str>)];

fn recoded(code: &str, table: Recode<'_>) -> Option<String> {
    match table.iter().find(|(from, _)| *from == code) {
        Some((_, to)) => to.map(str::to_owned),
        None => Some(code.to_owned()),
    }
}

/// Rewrites the code in `key` by `table`.
pub fn recode(obj: &mut Obj, key: &str, table: Recode<'_>) {
    let Some(code) = obj.get(key).and_then(Value::as_str) else { return };
    match recoded(code, table) {
        Some(mapped) => {
            obj.insert(key.to_owned(), Value::String(mapped));
        }
        None => {
            take(obj, key);
        }
    }
}

/// The code a CodeableConcept carries: the first coding whose system ends
/// with `system` (the HL7 code system of the element, whatever its base
/// URL), else the first coding with a code.
pub fn code_of(cc: &Value, system: &str) -> Option<String> {
    let codings = cc.get("coding").and_then(Value::as_array)?;
    let code = |c: &Value| c.get("code").and_then(Value::as_str).map(str::to_owned);
    codings
        .iter()
        .find(|c| c.get("system").and_then(Value::as_str).is_some_and(|s| s.ends_with(system)))
        .and_then(code)
        .or_else(|| codings.iter().find_map(code))
}

/// Replaces the CodeableConcept in `key` by its code (see [`code_of`]),
/// rewritten by `table`.
pub fn concept_to_code(obj: &mut Obj, key: &str, system: &str, table: Recode<'_>) {
    let Some(cc) = take(obj, key) else { return };
    if let Some(code) = code_of(&cc, system).and_then(|c| recoded(&c, table)) {
        obj.insert(key.to_owned(), Value::String(code));
    }
}

/// Whether a Reference points at a resource of type `rt`: `Some(false)` when
/// it names another type, `None` when it does not say (display only).
pub fn refers_to(reference: &Value, rt: &str) -> Option<bool> {
    if let Some(r) = reference.get("reference").and_then(Value::as_str) {
        if r.starts_with('#') {
            // A contained resource: its type is not in the reference.
            return None;
        }
        let path = r.split('?').next().unwrap_or(r);
        let path = path.find("/_history/").map_or(path, |i| &path[..i]);
        // `Type/id` or `https://base/Type/id`.
        return path.rsplit('/').nth(1).map(|t| t == rt);
    }
    reference.get("type").and_then(Value::as_str).map(|t| t == rt)
}

/// Moves Reference `from` to `to` when it points at a resource of type `rt`
/// (or does not say); otherwise drops it.
pub fn rename_reference(obj: &mut Obj, from: &str, to: &str, rt: &str) {
    match obj.get(from).map(|r| refers_to(r, rt)) {
        Some(Some(false)) => {
            take(obj, from);
        }
        Some(_) => rename(obj, from, to),
        None => {}
    }
}

/// The texts of a list of Annotations, one paragraph each.
pub fn annotation_text(notes: &Value) -> Option<String> {
    let texts: Vec<&str> = match notes {
        Value::Array(items) => items.iter().filter_map(|n| n.get("text").and_then(Value::as_str)).collect(),
        Value::Object(_) => notes.get("text").and_then(Value::as_str).into_iter().collect(),
        _ => Vec::new(),
    };
    (!texts.is_empty()).then(|| texts.join("\n\n"))
}

/// A list of Annotations (STU3/R4) as the one Annotation DSTU2 allows: the
/// first one's author and time, every text.
pub fn annotations_to_one(obj: &mut Obj, key: &str) {
    let Some(notes) = take(obj, key) else { return };
    let Some(text) = annotation_text(&notes) else { return };
    let mut first = match notes {
        Value::Array(items) => items.into_iter().next().and_then(|n| n.as_object().cloned()).unwrap_or_default(),
        Value::Object(o) => o,
        _ => Obj::new(),
    };
    first.insert("text".into(), Value::String(text));
    obj.insert(key.to_owned(), Value::Object(first));
}

/// What changes in every element between two neighbouring releases `from`
/// and `to`: HL7 code system URLs (R4 → STU3), `meta`, References and
/// extension values. Runs over the whole resource except `contained`
/// resources, which are converted on their own.
pub fn convert_common(res: &mut Obj, from: FhirVersion, to: FhirVersion) {
    strip_meta(res, to);
    if let Some(Value::Object(meta)) = res.get_mut("meta") {
        // Profiles are claims about one release.
        take(meta, "profile");
    }
    walk_object(res, from, to, true);
    prune(res);
}

/// Drops `meta` elements the target release does not define.
pub fn strip_meta(res: &mut Obj, to: FhirVersion) {
    if to != FhirVersion::R4
        && let Some(Value::Object(meta)) = res.get_mut("meta")
    {
        // `Meta.source` is new in R4.
        take(meta, "source");
    }
}

fn walk(value: &mut Value, from: FhirVersion, to: FhirVersion) {
    match value {
        Value::Object(obj) => walk_object(obj, from, to, false),
        Value::Array(items) => {
            for item in items {
                walk(item, from, to);
            }
        }
        _ => {}
    }
}

fn walk_object(obj: &mut Obj, from: FhirVersion, to: FhirVersion, resource: bool) {
    // One pass over the keys tells what this element needs; the few that
    // need a change are then looked up by name. Most elements need none.
    let mut shape = Shape::default();
    for (key, value) in obj.iter() {
        shape.note(key, value);
    }
    if from == FhirVersion::R4
        && shape.system
        && let Some(Value::String(system)) = obj.get_mut("system")
        && let Some(mapped) = map_terminology_url(system)
    {
        *system = mapped;
    }
    if !resource && shape.is_reference() {
        clean_reference(obj, to);
    }
    for (key, child) in obj.iter_mut() {
        match (key.as_str(), child) {
            // Contained resources are converted on their own.
            ("contained", _) if resource => {}
            ("extension" | "modifierExtension", Value::Array(extensions)) => {
                extensions.retain_mut(|e| e.as_object_mut().is_some_and(|e| convert_extension(e, from, to)));
                for e in extensions {
                    walk(e, from, to);
                }
            }
            // Leaves need nothing: not even a call.
            (_, child @ (Value::Object(_) | Value::Array(_))) => walk(child, from, to),
            _ => {}
        }
    }
}

/// What one pass over an element's keys tells about it.
#[derive(Default)]
struct Shape {
    system: bool,
    reference: bool,
    display: bool,
    typed: bool,
    identifier: bool,
    /// A key that a Reference does not have.
    other: bool,
}

impl Shape {
    fn note(&mut self, key: &str, value: &Value) {
        match key {
            "system" => self.system = true,
            "reference" => self.reference = true,
            "display" => self.display = true,
            "type" => self.typed = value.is_string(),
            "identifier" => self.identifier = value.is_object(),
            _ => {}
        }
        let name = key.strip_prefix('_').unwrap_or(key);
        if !matches!(name, "id" | "extension" | "reference" | "display" | "identifier" | "type") {
            self.other = true;
        }
    }

    /// A Reference is recognised by its element names: nothing but
    /// Reference elements, and a `reference`, an `identifier`, or a display
    /// with R4's `type` uri.
    fn is_reference(&self) -> bool {
        !self.other && (self.reference || self.identifier || (self.display && self.typed))
    }
}

/// Drops empty objects, empty arrays and nulls an earlier step left behind:
/// FHIR JSON never carries an element without content.
pub fn prune(obj: &mut Obj) {
    fn empty(v: &mut Value) -> bool {
        match v {
            Value::Null => true,
            Value::Object(o) => {
                prune(o);
                o.is_empty()
            }
            Value::Array(items) => {
                // A primitive extension list (`_given`) keeps its nulls, which
                // line it up with the values.
                let mut emptied = false;
                for item in items.iter_mut() {
                    if let Value::Object(o) = item {
                        prune(o);
                        emptied |= o.is_empty();
                    }
                }
                if emptied {
                    items.retain(|i| !matches!(i, Value::Object(o) if o.is_empty()));
                }
                items.is_empty() || items.iter().all(Value::is_null)
            }
            _ => false,
        }
    }
    // Rebuilding the map is only worth it when something must go.
    let mut emptied = false;
    for v in obj.values_mut() {
        emptied |= match v {
            Value::Null => true,
            Value::Object(_) | Value::Array(_) => empty(v),
            _ => false,
        };
    }
    if emptied {
        obj.retain(|_, v| !is_empty(v));
    }
}

/// Whether a pruned value is empty (see [`prune`]).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(items) => items.iter().all(Value::is_null),
        _ => false,
    }
}

/// R4 moved HL7's code systems to `terminology.hl7.org`; STU3 and DSTU2 use
/// the `hl7.org/fhir` URLs (e.g. the v2-0203 identifier types the app uses to
/// find the MRN).
pub fn map_terminology_url(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://terminology.hl7.org/CodeSystem/")?;
    Some(if let Some(table) = rest.strip_prefix("v2-") {
        format!("http://hl7.org/fhir/v2/{table}")
    } else if let Some(cs) = rest.strip_prefix("v3-") {
        format!("http://hl7.org/fhir/v3/{cs}")
    } else {
        format!("http://hl7.org/fhir/{rest}")
    })
}

/// The reverse of [`map_terminology_url`], for search values sent to an R4
/// provider.
pub fn to_terminology_url(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://hl7.org/fhir/")?;
    Some(if let Some(table) = rest.strip_prefix("v2/") {
        format!("http://terminology.hl7.org/CodeSystem/v2-{table}")
    } else if let Some(cs) = rest.strip_prefix("v3/") {
        format!("http://terminology.hl7.org/CodeSystem/v3-{cs}")
    } else {
        format!("http://terminology.hl7.org/CodeSystem/{rest}")
    })
}

/// A reference or URL to a MedicationRequest (STU3, R4) as the same resource
/// is known in `to`: a MedicationOrder in DSTU2, and back. `None` when it
/// needs no change.
pub fn retype_reference(url: &str, to: FhirVersion) -> Option<String> {
    let (from_type, to_type) = match to {
        FhirVersion::Dstu2 => ("MedicationRequest", "MedicationOrder"),
        _ => ("MedicationOrder", "MedicationRequest"),
    };
    // `Type/...` at the start or after a `/`.
    let at = std::iter::once(0)
        .chain(url.match_indices('/').map(|(i, _)| i + 1))
        .find(|&i| url[i..].strip_prefix(from_type).is_some_and(|rest| rest.starts_with('/')))?;
    Some(format!("{}{to_type}{}", &url[..at], &url[at + from_type.len()..]))
}

fn clean_reference(obj: &mut Obj, to: FhirVersion) {
    if let Some(Value::String(r)) = obj.get_mut("reference")
        && let Some(retyped) = retype_reference(r, to)
    {
        *r = retyped;
    }
    if to != FhirVersion::R4 && obj.get("type").is_some_and(Value::is_string) {
        // `Reference.type` is new in R4.
        take(obj, "type");
    }
    if to == FhirVersion::Dstu2 {
        // `Reference.identifier` is new in STU3.
        obj.remove("identifier");
    }
}

/// Extension value types, by release (the `value[x]` suffixes).
const STU3_VALUES: &[&str] = &[
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "Base64Binary",
    "Boolean",
    "Code",
    "CodeableConcept",
    "Coding",
    "ContactPoint",
    "Count",
    "Date",
    "DateTime",
    "Decimal",
    "Distance",
    "Duration",
    "HumanName",
    "Id",
    "Identifier",
    "Instant",
    "Integer",
    "Markdown",
    "Meta",
    "Money",
    "Oid",
    "Period",
    "PositiveInt",
    "Quantity",
    "Range",
    "Ratio",
    "Reference",
    "SampledData",
    "Signature",
    "String",
    "Time",
    "Timing",
    "UnsignedInt",
    "Uri",
];
const DSTU2_VALUES: &[&str] = &[
    "Address",
    "Attachment",
    "Base64Binary",
    "Boolean",
    "Code",
    "CodeableConcept",
    "Coding",
    "ContactPoint",
    "Date",
    "DateTime",
    "Decimal",
    "HumanName",
    "Identifier",
    "Instant",
    "Integer",
    "Markdown",
    "Period",
    "Quantity",
    "Range",
    "Ratio",
    "Reference",
    "Signature",
    "String",
    "Timing",
    "Uri",
];

/// Converts one extension's `value[x]` to a type the target release has;
/// `false` when it has none, and the extension must go.
fn convert_extension(ext: &mut Obj, from: FhirVersion, to: FhirVersion) -> bool {
    let Some(key) = ext.keys().find(|k| k.starts_with("value")).cloned() else {
        return true;
    };
    let ty = &key["value".len()..];
    let mapped = match (from, to) {
        (FhirVersion::R4, FhirVersion::Stu3) => match ty {
            "Canonical" | "Url" | "Uuid" => "Uri",
            "Money" => {
                // R4 Money is `{value, currency}`; STU3 Money is a Quantity.
                if let Some(Value::Object(money)) = ext.get_mut(&key)
                    && let Some(currency) = money.remove("currency")
                {
                    money.insert("system".into(), Value::String("urn:iso:std:iso:4217".into()));
                    money.insert("code".into(), currency);
                }
                "Money"
            }
            t => t,
        },
        (FhirVersion::Stu3, FhirVersion::Dstu2) => match ty {
            "Age" | "Count" | "Distance" | "Duration" | "Money" => "Quantity",
            "Id" | "Time" => "String",
            "Oid" => "Uri",
            "PositiveInt" | "UnsignedInt" => "Integer",
            t => t,
        },
        _ => ty,
    };
    let known = match to {
        FhirVersion::Stu3 => STU3_VALUES.contains(&mapped),
        FhirVersion::Dstu2 => DSTU2_VALUES.contains(&mapped),
        FhirVersion::R4 => true,
    };
    if !known {
        return false;
    }
    if mapped != ty {
        rename(ext, &key, &format!("value{mapped}"));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Obj {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn references_are_recognised_by_their_shape() {
        assert_eq!(refers_to(&json!({"reference": "Encounter/1"}), "Encounter"), Some(true));
        assert_eq!(refers_to(&json!({"reference": "https://p/fhir/Encounter/1/_history/2"}), "Encounter"), Some(true));
        assert_eq!(refers_to(&json!({"reference": "EpisodeOfCare/1"}), "Encounter"), Some(false));
        assert_eq!(refers_to(&json!({"display": "Visit"}), "Encounter"), None);
        assert_eq!(refers_to(&json!({"type": "Encounter", "identifier": {"value": "v"}}), "Encounter"), Some(true));
    }

    #[test]
    fn walk_cleans_references_and_extensions() {
        let mut r = obj(json!({
            "resourceType": "Observation",
            "meta": {"source": "#x", "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-vital-signs"]},
            "performer": [
                {"reference": "Practitioner/1", "type": "Practitioner", "display": "Dr A"},
                {"identifier": {"value": "npi"}},
                {"type": "Organization", "display": "Riverside Clinic"}
            ],
            "extension": [
                {"url": "a", "valueCanonical": "http://x"},
                {"url": "b", "valueUsageContext": {"code": {"code": "x"}}},
                {"url": "c", "valueUnsignedInt": 3},
                {"url": "d", "extension": [{"url": "e", "valueDuration": {"value": 1}}]}
            ],
            "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}]}
        }));
        convert_common(&mut r, FhirVersion::R4, FhirVersion::Stu3);
        assert!(r.get("meta").is_none(), "meta had only R4 and profile elements: {r:?}");
        assert_eq!(r["performer"][0], json!({"reference": "Practitioner/1", "display": "Dr A"}));
        assert_eq!(r["performer"][2], json!({"display": "Riverside Clinic"}));
        assert_eq!(r["extension"].as_array().unwrap().len(), 3);
        assert_eq!(r["extension"][0]["valueUri"], "http://x");
        assert_eq!(r["code"]["coding"][0]["system"], "http://hl7.org/fhir/v3/ActCode");

        convert_common(&mut r, FhirVersion::Stu3, FhirVersion::Dstu2);
        assert_eq!(r["performer"].as_array().unwrap().len(), 2, "an identifier-only reference is empty in DSTU2");
        assert_eq!(r["extension"][1]["valueInteger"], 3);
        assert_eq!(r["extension"][2]["extension"][0]["valueQuantity"]["value"], 1);
    }

    #[test]
    fn cardinality_changes_carry_primitive_extensions() {
        let mut r = obj(json!({"a": ["x", "y"], "_a": [{"id": "1"}, null], "b": "z"}));
        to_single(&mut r, "a");
        to_list(&mut r, "b");
        assert_eq!(r["a"], "x");
        assert_eq!(r["_a"], json!({"id": "1"}));
        assert_eq!(r["b"], json!(["z"]));
    }

    #[test]
    fn medication_references_follow_the_type_rename() {
        assert_eq!(retype_reference("MedicationRequest/1", FhirVersion::Dstu2).unwrap(), "MedicationOrder/1");
        assert_eq!(
            retype_reference("https://p/fhir/MedicationOrder/1/_history/2", FhirVersion::Stu3).unwrap(),
            "https://p/fhir/MedicationRequest/1/_history/2"
        );
        assert_eq!(retype_reference("Patient/MedicationRequest", FhirVersion::Dstu2), None);
        assert_eq!(retype_reference("MedicationOrder/1", FhirVersion::Dstu2), None);
    }

    #[test]
    fn terminology_urls_round_trip() {
        for url in [
            "http://terminology.hl7.org/CodeSystem/v2-0203",
            "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "http://terminology.hl7.org/CodeSystem/observation-category",
        ] {
            assert_eq!(to_terminology_url(&map_terminology_url(url).unwrap()).unwrap(), url);
        }
    }
}
