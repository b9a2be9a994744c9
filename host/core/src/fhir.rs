//! The FHIR releases the gateway speaks (the faces it serves apps, and what
//! providers speak upstream), and the OperationOutcome it answers failures
//! with. The elements used here are spelled the same in DSTU2 and STU3.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A FHIR release, as configuration names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    Dstu2,
    Stu3,
    R4,
}

impl Version {
    /// The `fhirVersion` a server of this release declares.
    pub fn number(self) -> &'static str {
        match self {
            Version::Dstu2 => "1.0.2",
            Version::Stu3 => "3.0.2",
            Version::R4 => "4.0.1",
        }
    }

    /// The JSON media type of the release.
    pub fn content_type(self) -> &'static str {
        match self {
            Version::Dstu2 => "application/json+fhir; charset=utf-8",
            Version::Stu3 | Version::R4 => "application/fhir+json; charset=utf-8",
        }
    }

    /// The face's path segment on the gateway.
    pub fn face(self) -> &'static str {
        match self {
            Version::Dstu2 => "dstu2",
            Version::Stu3 => "stu3",
            Version::R4 => "r4",
        }
    }
}

/// The faces the gateway serves to apps.
pub const FACES: [Version; 2] = [Version::Stu3, Version::Dstu2];

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
