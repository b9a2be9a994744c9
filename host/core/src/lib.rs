//! fhirgate-core: what every layer of the gateway shares and nothing of the
//! gateway's own — identifiers, the FHIR releases, the clock, digests,
//! secret files, and the one classification of failures.
//!
//! Layout:
//! - [`ids`]: tenant GUIDs, provider ids, `Type/id` paths;
//! - [`fhir`]: the FHIR [`fhir::Version`]s and faces, OperationOutcomes;
//! - [`clock`]: wall-clock time in seconds, milliseconds and dates;
//! - [`digest`]: SHA-256 as policies pin modules;
//! - [`secret`]: fresh secrets from the OS's CSPRNG;
//! - [`files`]: private and atomic file writes;
//! - [`vault`]: key material sealed under the key-encryption key;
//! - [`modules`]: a module's [`modules::Role`] and its faults;
//! - [`failure`]: every failure classified once and answered (OAuth JSON,
//!   RFC 6750 challenge, or an OperationOutcome in the client's version).

pub mod clock;
pub mod digest;
pub mod environment;
pub mod failure;
pub mod fhir;
pub mod files;
pub mod ids;
pub mod modules;
pub mod secret;
pub mod vault;

pub use failure::{Body, Failure, Fault, OAuthError, json_response, no_store, oauth_error_response};
pub use fhir::{FACES, Version};
pub use modules::{GuestFault, Role};

/// Writes a line to standard output, for a person or a script reading it. A
/// reader that went away (`fhirgate … | head`) is not the command's failure:
/// the line is dropped, where `println!` would panic.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout(), $($arg)*);
    }};
}
