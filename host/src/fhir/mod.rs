//! What the gateway itself says in FHIR: its faces' versions, the
//! capability statement at `/metadata`, and OperationOutcomes.

pub mod capability;
pub mod outcome;

use serde::{Deserialize, Serialize};

use crate::wasm::bindings::types::FhirVersion;

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

    pub fn wit(self) -> FhirVersion {
        match self {
            Version::Dstu2 => FhirVersion::Dstu2,
            Version::Stu3 => FhirVersion::Stu3,
            Version::R4 => FhirVersion::R4,
        }
    }
}

/// The faces the gateway serves to apps.
pub const FACES: [Version; 2] = [Version::Stu3, Version::Dstu2];
