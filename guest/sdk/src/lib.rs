//! The fhirgate partner SDK: host-import bindings generated from `wit/`, and the
//! FHIR helpers every module needs.
//!
//! A module crate generates its own role world (`token-validator`, `router`,
//! `shaper` or `gateway-module`) and points the shared interfaces at this crate,
//! so every module speaks the same types:
//!
//! ```ignore
//! wit_bindgen::generate!({
//!     world: "router",
//!     path: "../../wit",
//!     with: {
//!         "fhirgate:policy/types@0.1.0": fhirgate_guest_sdk::types,
//!         "fhirgate:policy/host@0.1.0": fhirgate_guest_sdk::host,
//!         "fhirgate:policy/issuer@0.1.0": fhirgate_guest_sdk::issuer,
//!         "fhirgate:policy/crypto@0.1.0": fhirgate_guest_sdk::crypto,
//!         "fhirgate:policy/directory@0.1.0": fhirgate_guest_sdk::directory,
//!         "fhirgate:policy/upstream@0.1.0": fhirgate_guest_sdk::upstream,
//!     },
//! });
//! ```
//!
//! Layout:
//! - [`types`], [`host`], [`issuer`], [`crypto`], [`directory`], [`upstream`]:
//!   the generated bindings;
//! - [`log`], [`config`], [`now_ms`], [`deny`]: ergonomic wrappers;
//! - [`fhir`]: JSON helpers for FHIR resources and Bundles;
//! - [`params`]: helpers for search parameters;
//! - [`alloc`]: a per-call arena allocator modules can opt into;
//! - `jwt` (feature `jwt`): verification of the gateway's access tokens, for
//!   validators that add rules of their own.

pub mod alloc;
pub mod fhir;
#[cfg(feature = "jwt")]
pub mod jwt;
pub mod params;

mod bindings {
    wit_bindgen::generate!({
        world: "imports",
        path: "../../wit",
        pub_export_macro: false,
    });
}

pub use bindings::fhirgate::policy::{crypto, directory, host, issuer, types, upstream};

use types::Denial;

/// The module's configuration from the partner policy, parsed into `T`.
///
/// Returns a message naming what was wrong, for the module to turn into a
/// denial; the gateway has already checked at load time that it is JSON.
pub fn config<T: serde::de::DeserializeOwned>() -> Result<T, String> {
    let text = host::config();
    serde_json::from_str(&text).map_err(|e| format!("module configuration is invalid: {e}"))
}

/// The current time in milliseconds since the Unix epoch, from the host.
pub fn now_ms() -> u64 {
    host::now_ms()
}

/// Structured logging through the host. Never pass tokens or patient data.
pub mod log {
    use super::host::{self, LogLevel};

    /// Logs at `info` with key/value fields.
    pub fn info(message: &str, fields: &[(&str, &str)]) {
        emit(LogLevel::Info, message, fields);
    }

    /// Logs at `warn` with key/value fields.
    pub fn warn(message: &str, fields: &[(&str, &str)]) {
        emit(LogLevel::Warn, message, fields);
    }

    /// Logs at `debug` with key/value fields.
    pub fn debug(message: &str, fields: &[(&str, &str)]) {
        emit(LogLevel::Debug, message, fields);
    }

    fn emit(level: LogLevel, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        host::log(level, message, &fields);
    }
}

/// Builds a denial.
pub fn deny(status: u16, code: &str, message: impl Into<String>) -> Denial {
    Denial { status, code: code.to_owned(), message: message.into() }
}

/// Whether `s` is a GUID in the 8-4-4-4-12 hexadecimal form, as tenant ids are.
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_shape() {
        assert!(is_guid("7f0c3a4e-2b51-4c1e-9d3a-0c6f5e2b8a11"));
        assert!(is_guid("7F0C3A4E-2B51-4C1E-9D3A-0C6F5E2B8A11"));
        assert!(!is_guid("7f0c3a4e2b514c1e9d3a0c6f5e2b8a11"));
        assert!(!is_guid("7f0c3a4e-2b51-4c1e-9d3a-0c6f5e2b8a1g"));
        assert!(!is_guid("system/*.read"));
    }
}
