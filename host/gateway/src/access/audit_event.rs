//! The access log as FHIR: records rendered as R4 AuditEvent resources and
//! Bundles of them, with stable ids.

use fhirgate_store::access::{AccessRecord, Outcome};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

/// The records as a FHIR R4 Bundle (type `searchset`) of AuditEvent
/// resources; `total` counts the records given. `observer` names the
/// gateway that recorded them.
pub fn audit_event_bundle(records: &[AccessRecord], observer: &str) -> Value {
    let mut bundle = json!({ "resourceType": "Bundle", "type": "searchset", "total": records.len() });
    // FHIR JSON has no empty arrays: no records, no `entry`.
    if !records.is_empty() {
        let entries: Vec<Value> = records
            .iter()
            .map(|r| json!({ "resource": audit_event(r, observer), "search": { "mode": "match" } }))
            .collect();
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

/// One record as a FHIR R4 AuditEvent.
pub fn audit_event(r: &AccessRecord, observer: &str) -> Value {
    let mut event = Map::new();
    event.insert("resourceType".into(), json!("AuditEvent"));
    event.insert("id".into(), json!(audit_event_id(&r.request_id, r.part)));
    event.insert(
        "type".into(),
        json!({
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        }),
    );
    let (subtype, action) = match r.interaction.as_str() {
        "read" => (Some("read"), Some("R")),
        "vread" => (Some("vread"), Some("R")),
        "search" => (Some("search-type"), Some("R")),
        "capabilities" => (Some("capabilities"), Some("R")),
        "batch" => (Some("batch"), Some("E")),
        _ => (None, None),
    };
    if let Some(code) = subtype {
        event.insert(
            "subtype".into(),
            json!([{ "system": "http://hl7.org/fhir/restful-interaction", "code": code, "display": code }]),
        );
    }
    if let Some(action) = action {
        event.insert("action".into(), json!(action));
    }
    event.insert("recorded".into(), json!(instant(r.at_ms)));
    let outcome = match r.outcome {
        Outcome::Success => "0",
        Outcome::ClientError | Outcome::Denied => "4",
        Outcome::ProviderError | Outcome::GatewayError => "8",
    };
    event.insert("outcome".into(), json!(outcome));
    event.insert("outcomeDesc".into(), json!(format!("HTTP {} in {:.1} ms", r.status, r.latency_us as f64 / 1000.0)));

    let who = match present(&r.client_id) {
        Some(client) => json!({ "identifier": { "system": "urn:fhirgate:client", "value": client } }),
        None => json!({ "display": "unauthenticated" }),
    };
    event.insert(
        "agent".into(),
        json!([{
            "type": { "coding": [{
                "system": "http://dicom.nema.org/resources/ontology/DCM",
                "code": "110153",
                "display": "Source Role ID",
            }] },
            "who": who,
            "requestor": true,
        }]),
    );

    let mut source = Map::new();
    if !r.face.is_empty() {
        source.insert("site".into(), json!(r.face));
    }
    let observer = if observer.is_empty() { "fhirgate" } else { observer };
    source.insert("observer".into(), json!({ "display": observer }));
    source.insert(
        "type".into(),
        json!([{
            "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
            "code": "3",
            "display": "Web Server",
        }]),
    );
    event.insert("source".into(), Value::Object(source));

    let mut entities = Vec::new();
    if let Some(patient) = present(&r.patient_id) {
        entities.push(json!({
            "what": { "reference": format!("Patient/{patient}") },
            "type": entity_type("1", "Person"),
            "role": object_role("1", "Patient"),
        }));
    }
    if let Some(tenant) = present(&r.tenant_id) {
        entities.push(json!({
            "what": { "identifier": { "system": "urn:fhirgate:tenant", "value": tenant } },
            "type": entity_type("3", "Organization"),
        }));
    }
    if let Some(provider) = present(&r.provider_id) {
        entities.push(json!({
            "what": { "identifier": { "system": "urn:fhirgate:provider", "value": provider } },
            "type": entity_type("2", "System Object"),
            "role": object_role("17", "Data Repository"),
        }));
    }
    if !r.request_id.is_empty() {
        let value = if r.part == 0 { r.request_id.clone() } else { format!("{}#{}", r.request_id, r.part) };
        let mut request = json!({
            "what": { "identifier": { "system": "urn:fhirgate:request", "value": value } },
            "type": entity_type("4", "Other"),
        });
        if let Some(resource_type) = present(&r.resource_type) {
            request["detail"] = json!([{ "type": "resourceType", "valueString": resource_type }]);
        }
        entities.push(request);
    }
    if !entities.is_empty() {
        event.insert("entity".into(), Value::Array(entities));
    }
    Value::Object(event)
}

/// A value that FHIR can carry: absent or empty strings are left out.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

fn entity_type(code: &str, display: &str) -> Value {
    json!({ "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": code, "display": display })
}

fn object_role(code: &str, display: &str) -> Value {
    json!({ "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": code, "display": display })
}

/// A stable FHIR id (`[A-Za-z0-9-.]{1,64}`) for a record: `<request_id>.<part>`
/// when that is one, else a digest of both. A digest has no dot, so the two
/// forms never meet.
pub fn audit_event_id(request_id: &str, part: u32) -> String {
    let readable = format!("{request_id}.{part}");
    let plain = !request_id.is_empty() && request_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if plain && readable.len() <= 64 {
        return readable;
    }
    let mut digest = Sha256::new();
    digest.update(request_id.as_bytes());
    digest.update(part.to_be_bytes());
    hex::encode(&digest.finalize()[..20])
}

/// `at_ms` as a FHIR instant in UTC with milliseconds, within years 0001–9999.
fn instant(at_ms: i64) -> String {
    use time::macros::format_description;
    // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z.
    const MIN_MS: i64 = -62_135_596_800_000;
    const MAX_MS: i64 = 253_402_300_799_999;
    let nanos = i128::from(at_ms.clamp(MIN_MS, MAX_MS)) * 1_000_000;
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned())
}

#[cfg(test)]
mod tests {
    use fhirgate_store::access::fixtures::{T0, rec, unauthenticated};
    use std::collections::HashSet;

    use super::*;

    fn entity<'a>(event: &'a Value, system: &str) -> Option<&'a Value> {
        event["entity"].as_array()?.iter().find(|e| e["what"]["identifier"]["system"] == system)
    }

    #[test]
    fn a_successful_read_as_an_audit_event() {
        let r = rec("0af7651916cd43dd8448eb211c80319c", 0, T0);
        let bundle = audit_event_bundle(std::slice::from_ref(&r), "gateway-1");
        assert_eq!(bundle["resourceType"], "Bundle");
        assert_eq!(bundle["type"], "searchset");
        assert_eq!(bundle["total"], 1);
        assert_eq!(bundle["entry"][0]["search"]["mode"], "match");
        let e = &bundle["entry"][0]["resource"];
        assert_eq!(e["resourceType"], "AuditEvent");
        assert_eq!(e["id"], "0af7651916cd43dd8448eb211c80319c.0");
        assert_eq!(e["type"]["code"], "rest");
        assert_eq!(e["type"]["system"], "http://terminology.hl7.org/CodeSystem/audit-event-type");
        assert_eq!(
            e["subtype"][0],
            json!({"system": "http://hl7.org/fhir/restful-interaction", "code": "read", "display": "read"})
        );
        assert_eq!(e["action"], "R");
        assert_eq!(e["recorded"], "2026-11-23T22:30:00.123Z");
        assert_eq!(e["outcome"], "0");
        assert_eq!(e["outcomeDesc"], "HTTP 200 in 12.3 ms");
        assert_eq!(e["agent"][0]["who"]["identifier"], json!({"system": "urn:fhirgate:client", "value": "client-a"}));
        assert_eq!(e["agent"][0]["requestor"], true);
        assert_eq!(e["source"]["observer"]["display"], "gateway-1");
        assert_eq!(e["source"]["site"], "stu3");
        assert_eq!(e["source"]["type"][0]["code"], "3");
        let patient = &e["entity"][0];
        assert_eq!(patient["what"]["reference"], "Patient/p1");
        assert_eq!(patient["type"]["code"], "1");
        assert_eq!(patient["role"]["code"], "1");
        assert_eq!(entity(e, "urn:fhirgate:tenant").unwrap()["what"]["identifier"]["value"], "tenant-a");
        assert_eq!(entity(e, "urn:fhirgate:provider").unwrap()["what"]["identifier"]["value"], "provider-a");
        let request = entity(e, "urn:fhirgate:request").unwrap();
        assert_eq!(request["what"]["identifier"]["value"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(request["detail"][0], json!({"type": "resourceType", "valueString": "Patient"}));
    }

    #[test]
    fn an_unauthenticated_denial_as_an_audit_event() {
        let r = AccessRecord { latency_us: 80, ..unauthenticated("d1", T0) };
        let e = &audit_event_bundle(&[r], "gateway-1")["entry"][0]["resource"];
        assert_eq!(e["outcome"], "4");
        assert_eq!(e["outcomeDesc"], "HTTP 401 in 0.1 ms");
        assert_eq!(e["agent"][0]["who"], json!({"display": "unauthenticated"}));
        assert_eq!(e["agent"][0]["requestor"], true);
        assert!(e.get("subtype").is_none() && e.get("action").is_none());
        let entities = e["entity"].as_array().unwrap();
        assert_eq!(entities.len(), 1, "only the request is known: {entities:?}");
        assert_eq!(entities[0]["what"]["identifier"]["value"], "d1");
        assert!(entities[0].get("detail").is_none());
    }

    #[test]
    fn batch_records_as_audit_events() {
        let mut batch = rec("b1", 0, T0);
        batch.interaction = "batch".into();
        batch.patient_id = None;
        batch.resource_type = None;
        let mut entry = rec("b1", 2, T0);
        entry.interaction = "search".into();
        entry.resource_type = Some("Observation".into());
        entry.outcome = Outcome::ProviderError;
        entry.status = 502;
        let bundle = audit_event_bundle(&[batch, entry], "gw");
        assert_eq!(bundle["total"], 2);
        let (b, e) = (&bundle["entry"][0]["resource"], &bundle["entry"][1]["resource"]);
        assert_eq!(b["action"], "E");
        assert_eq!(b["subtype"][0]["code"], "batch");
        assert_eq!(b["id"], "b1.0");
        assert_eq!(entity(b, "urn:fhirgate:request").unwrap()["what"]["identifier"]["value"], "b1");
        assert_eq!(e["action"], "R");
        assert_eq!(e["subtype"][0]["code"], "search-type");
        assert_eq!(e["outcome"], "8");
        assert_eq!(e["id"], "b1.2");
        assert_eq!(entity(e, "urn:fhirgate:request").unwrap()["what"]["identifier"]["value"], "b1#2");
        assert_eq!(entity(e, "urn:fhirgate:request").unwrap()["detail"][0]["valueString"], "Observation");
    }

    #[test]
    fn an_empty_bundle_has_no_entry() {
        assert_eq!(audit_event_bundle(&[], "gw"), json!({"resourceType": "Bundle", "type": "searchset", "total": 0}));
    }

    #[test]
    fn event_ids_are_valid_stable_and_distinct() {
        let valid = |id: &str| {
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        let long = "x".repeat(63);
        let cases = [("abc", 0), ("abc", 1), ("a.b", 0), ("a b/c", 7), ("", 0), (long.as_str(), 0), (long.as_str(), 1)];
        let ids: Vec<String> = cases.iter().map(|(r, p)| audit_event_id(r, *p)).collect();
        assert!(ids.iter().all(|id| valid(id)), "{ids:?}");
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "{ids:?}");
        assert_eq!(audit_event_id("abc", 1), "abc.1");
        assert_eq!(audit_event_id("a b/c", 7), audit_event_id("a b/c", 7));
    }

    #[test]
    fn instants_are_clamped_to_four_digit_years() {
        assert_eq!(instant(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(instant(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(instant(i64::MIN), "0001-01-01T00:00:00.000Z");
    }

    /// Writes a Bundle covering every shape of AuditEvent to the file named by
    /// `FHIRGATE_AUDIT_SAMPLE` (or prints it), for an independent validator:
    /// `tests/python/validate_fhir.py --version r4 FILE`.
    #[test]
    #[ignore = "produces a sample for external validation"]
    fn sample_audit_bundle() {
        let mut records = vec![rec("0af7651916cd43dd8448eb211c80319c", 0, T0)];
        let mut batch = rec("batch-1", 0, T0 + 1);
        batch.interaction = "batch".into();
        batch.patient_id = None;
        records.push(batch);
        for (part, (interaction, status, provider_fault)) in
            [("read", 200, false), ("vread", 404, false), ("search", 502, true), ("other", 500, false)]
                .into_iter()
                .enumerate()
        {
            let mut r = rec("batch-1", part as u32 + 1, T0 + 1);
            r.interaction = interaction.into();
            r.status = status;
            r.outcome = Outcome::from_status(status, provider_fault);
            records.push(r);
        }
        let mut capabilities = rec("c/1 odd id", 0, T0 + 2);
        capabilities.interaction = "capabilities".into();
        capabilities.face = "dstu2".into();
        capabilities.patient_id = None;
        capabilities.resource_type = None;
        records.push(capabilities);
        records.push(unauthenticated("d1", T0 + 3));
        let text = serde_json::to_string_pretty(&audit_event_bundle(&records, "fhirgate test")).unwrap();
        match std::env::var_os("FHIRGATE_AUDIT_SAMPLE") {
            Some(path) => std::fs::write(path, text).unwrap(),
            None => println!("{text}"),
        }
    }
}
