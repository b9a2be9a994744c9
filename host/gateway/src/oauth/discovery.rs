//! Discovery documents, consistent with each other and with `/metadata`:
//! RFC 8414 authorization server metadata and SMART's
//! `.well-known/smart-configuration` under each FHIR base.

use serde_json::{Value, json};

use super::token::AuthServer;
use fhirgate_core::fhir::FACES;

const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "private_key_jwt"];
const ASSERTION_ALGS: [&str; 4] = ["RS384", "ES384", "RS256", "ES256"];
const SCOPES: [&str; 3] = ["system/*.read", "system/*.rs", "<tenant id>"];

/// RFC 8414 metadata. Endpoints are on `public_base`, the address the client
/// used, as in `/metadata`.
pub fn authorization_server(auth: &AuthServer, public_base: &str) -> Value {
    json!({
        "issuer": auth.issuer,
        "token_endpoint": format!("{public_base}/oauth2/token"),
        "authorization_endpoint": format!("{public_base}/oauth2/authorize"),
        "jwks_uri": format!("{public_base}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{public_base}/oauth2/revoke"),
        "introspection_endpoint": format!("{public_base}/oauth2/introspect"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "scopes_supported": SCOPES,
        "service_documentation": format!("{public_base}/{}/metadata", FACES[0].face()),
    })
}

/// SMART App Launch 2.x configuration for a backend-services-only server.
pub fn smart_configuration(public_base: &str) -> Value {
    json!({
        "token_endpoint": format!("{public_base}/oauth2/token"),
        "jwks_uri": format!("{public_base}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{public_base}/oauth2/revoke"),
        "introspection_endpoint": format!("{public_base}/oauth2/introspect"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "scopes_supported": SCOPES,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "capabilities": ["client-confidential-symmetric", "client-confidential-asymmetric", "permission-v1", "permission-v2"],
        "code_challenge_methods_supported": [],
    })
}
