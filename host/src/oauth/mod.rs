//! The OAuth 2.0 authorization server: the clients it knows, the keys it signs
//! with, and the client-credentials token endpoint.

pub mod assertion;
pub mod clients;
pub mod discovery;
pub mod keys;
pub mod revocation;
pub mod throttle;
pub mod token;

pub use clients::ClientRegistry;
pub use keys::SigningKey;
