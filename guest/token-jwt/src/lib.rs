//! Default token validation module: checks that a bearer token is a JWT the
//! gateway issued (signature against the published JWKS, `iss`, `aud`,
//! `exp`/`nbf` with a small leeway) and that its scope names one tenant. The
//! checks are the SDK's [`fhirgate_guest_sdk::jwt`], which partners' own
//! validators build on.

use fhirgate_guest_sdk::deny;
use fhirgate_guest_sdk::types::{Claims, Denial, Request};

/// The module's configuration (`[modules.token-validation.config]`): the
/// SDK's token rules, `leeway_seconds` and `required_scopes`.
pub use fhirgate_guest_sdk::jwt::{Context, Rules as Config, check};

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Validator;

impl fhirgate_guest_sdk::validator::Guest for Validator {
    fn validate(token: String, _request: Request) -> Result<Claims, Denial> {
        let config: Config = fhirgate_guest_sdk::config().map_err(|m| deny(500, "server_error", m))?;
        fhirgate_guest_sdk::jwt::validate(&token, &config)
    }
}

// Exported only when built as a component: the export symbols' names (with
// `:` and `@`) cannot be linked into a native shared library, and native
// builds exist only to unit-test the logic.
#[cfg(target_arch = "wasm32")]
fhirgate_guest_sdk::export_validator!(Validator);

// Each call's values are freed before the next: a per-call arena serves them.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: fhirgate_guest_sdk::alloc::CallArena = fhirgate_guest_sdk::alloc::CallArena::new();
