//! The fhirgate partner SDK: the bindings generated from the WIT contract
//! (`fhirgate:policy`), for the host's imports and for each role's exports,
//! and the FHIR helpers every module needs.
//!
//! A module is its logic and one export line: implement the role's `Guest`
//! trait and name the type with the role's macro.
//!
//! ```ignore
//! use fhirgate_guest_sdk::router::{Guest, Target};
//! use fhirgate_guest_sdk::types::{Claims, Denial, Request};
//!
//! struct MyRouter;
//!
//! impl Guest for MyRouter {
//!     fn route(claims: Claims, request: Request) -> Result<Target, Denial> {
//!         /* … */
//!     }
//! }
//!
//! fhirgate_guest_sdk::export_router!(MyRouter);
//! ```
//!
//! Layout:
//! - [`types`], [`host`], [`issuer`], [`crypto`], [`directory`], [`upstream`]:
//!   the host's imports;
//! - [`validator`], [`router`], [`shaper`]: each role's export trait and
//!   types, exported with [`export_validator!`], [`export_router!`] or
//!   [`export_shaper!`] (a module playing several roles names its type with
//!   each role's macro);
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

/// Generates a role world's export bindings against the imports above, with
/// an export macro other crates call.
macro_rules! role_world {
    ($world:literal, $module:literal, $macro:literal) => {
        wit_bindgen::generate!({
            world: $world,
            path: "../../wit",
            with: {
                "fhirgate:policy/types@0.1.0": crate::types,
                "fhirgate:policy/host@0.1.0": crate::host,
                "fhirgate:policy/issuer@0.1.0": crate::issuer,
                "fhirgate:policy/crypto@0.1.0": crate::crypto,
                "fhirgate:policy/directory@0.1.0": crate::directory,
                "fhirgate:policy/upstream@0.1.0": crate::upstream,
            },
            pub_export_macro: true,
            export_macro_name: $macro,
            default_bindings_module: $module,
        });
    };
}

pub use router::export_router;
pub use shaper::export_shaper;
pub use validator::export_validator;

/// The token-validation role: implement [`validator::Guest`], export with
/// [`export_validator!`].
pub mod validator {
    role_world!("token-validator", "fhirgate_guest_sdk::validator", "export_validator");
    pub use self::exports::fhirgate::policy::token_validation::Guest;
}

/// The routing role: implement [`router::Guest`], export with
/// [`export_router!`].
pub mod router {
    role_world!("router", "fhirgate_guest_sdk::router", "export_router");
    pub use self::exports::fhirgate::policy::routing::{Guest, Target};
}

/// The shaping role: implement [`shaper::Guest`], export with
/// [`export_shaper!`].
pub mod shaper {
    role_world!("shaper", "fhirgate_guest_sdk::shaper", "export_shaper");
    pub use self::exports::fhirgate::policy::shaping::{Exchange, Guest, Shaped, UpstreamRequest};
}

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
