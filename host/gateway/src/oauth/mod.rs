//! The OAuth 2.0 authorization server: the clients it knows, the keys it signs
//! with, and the client-credentials token endpoint.

pub mod assertion;
pub mod clients;
pub mod discovery;
pub mod key_store;
pub mod keys;
pub mod revocation;
pub mod throttle;
pub mod token;

pub use clients::ClientRegistry;
pub use keys::SigningKey;

/// The token of an `Authorization: Bearer <token>` header value (scheme
/// case-insensitive), if that is what the value is.
pub fn bearer_token(value: &http::HeaderValue) -> Option<&str> {
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}
