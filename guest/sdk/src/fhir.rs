//! FHIR JSON helpers shared by modules: version strings, OperationOutcome and
//! Bundle link rewriting.

use serde_json::{Map, Value, json};

use crate::types::FhirVersion;

/// The `fhirVersion` string a server of this version declares.
pub fn version_string(v: FhirVersion) -> &'static str {
    match v {
        FhirVersion::Dstu2 => "1.0.2",
        FhirVersion::Stu3 => "3.0.2",
        FhirVersion::R4 => "4.0.1",
    }
}

/// An OperationOutcome with one issue. The JSON shape is the same in DSTU2,
/// STU3 and R4 for the fields used here.
pub fn operation_outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": severity, "code": code, "diagnostics": diagnostics }]
    })
}

/// Rewrites an absolute URL under `from_base` to the same path under
/// `to_base`. Returns `None` for a URL that is not under `from_base`, which
/// must then not be shown to the client.
pub fn rebase_url(url: &str, from_base: &str, to_base: &str) -> Option<String> {
    let from = from_base.trim_end_matches('/');
    let rest = url.strip_prefix(from)?;
    if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
        return None;
    }
    Some(format!("{}{}", to_base.trim_end_matches('/'), rest))
}

/// The `fullUrl` of a resource on the gateway: `{base}/{type}/{id}`.
pub fn full_url(gateway_base: &str, resource: &Map<String, Value>) -> Option<String> {
    let rt = resource.get("resourceType")?.as_str()?;
    let id = resource.get("id")?.as_str()?;
    Some(format!("{}/{rt}/{id}", gateway_base.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebase_keeps_path_and_query() {
        assert_eq!(
            rebase_url("http://p/fhir/Patient?x=1", "http://p/fhir", "http://g/stu3").as_deref(),
            Some("http://g/stu3/Patient?x=1")
        );
        assert_eq!(rebase_url("http://p/fhir", "http://p/fhir/", "http://g/stu3").as_deref(), Some("http://g/stu3"));
        assert_eq!(rebase_url("http://p/fhirx/Patient", "http://p/fhir", "http://g"), None);
        assert_eq!(rebase_url("http://evil/Patient", "http://p/fhir", "http://g"), None);
    }
}
