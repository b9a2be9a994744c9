//! OperationOutcome bodies. The elements used here are spelled the same in
//! DSTU2 and STU3.

use serde_json::{Value, json};

/// An OperationOutcome with one issue. `code` is from the IssueType value set
/// (`invalid`, `login`, `forbidden`, `not-found`, `exception`, `timeout`, …).
pub fn outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": severity,
            "code": code,
            "diagnostics": diagnostics,
        }]
    })
}
