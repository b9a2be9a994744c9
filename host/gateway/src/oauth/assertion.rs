//! Client authentication with signed assertions (`private_key_jwt`, RFC 7523
//! §2.2 and SMART Backend Services): the client signs a short-lived JWT with
//! a key whose public half it registered.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use fhirgate_core::clock::now_seconds;
use fhirgate_store::ClientStatus;
use fhirgate_store::clients::ClientRepository;

/// The `client_assertion_type` of a JWT assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Algorithms accepted on assertions: SMART asks servers to support RS384
/// and ES384; the 256-bit variants are common and as strong for this use.
/// Symmetric and `none` algorithms are never accepted.
const ALLOWED: [Algorithm; 4] = [Algorithm::RS384, Algorithm::ES384, Algorithm::RS256, Algorithm::ES256];

/// How far ahead an assertion's `exp` may be (SMART: no more than five minutes).
const MAX_LIFETIME: u64 = 300;
/// Clock skew tolerated between the client and the gateway.
const LEEWAY: u64 = 30;

/// Why an assertion was refused. The client only ever sees `invalid_client`;
/// the reason goes to the debug log.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("the assertion is not a JWT")]
    Malformed,
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    #[error("the client is unknown, disabled, or has no registered keys")]
    Client,
    #[error("no registered key matches the assertion")]
    Key,
    #[error("the assertion failed verification: {0}")]
    Invalid(String),
    #[error("`iss` and `sub` must both be the client id")]
    Subject,
    #[error("the assertion lives longer than five minutes")]
    TooLong,
    #[error("the assertion's jti was already used")]
    Replay,
    #[error("the store failed")]
    Store,
}

/// The client id an assertion claims to come from (`iss`), before any check.
pub fn claimed_client(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Verifies `assertion` for a token endpoint reachable at any of `audiences`,
/// and returns the authenticated client's id and tenants.
pub async fn verify(
    registry: &dyn ClientRepository,
    assertion: &str,
    audiences: &[String],
) -> Result<(String, Vec<String>), AssertionError> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| AssertionError::Malformed)?;
    if !ALLOWED.contains(&header.alg) {
        return Err(AssertionError::Algorithm(header.alg));
    }
    let client_id = claimed_client(assertion).ok_or(AssertionError::Malformed)?;
    let client = registry.get(&client_id).await.map_err(|_| AssertionError::Store)?.ok_or(AssertionError::Client)?;
    if client.status != ClientStatus::Active {
        return Err(AssertionError::Client);
    }
    let jwks: JwkSet =
        client.jwks.clone().and_then(|j| serde_json::from_value(j).ok()).ok_or(AssertionError::Client)?;
    let candidates: Vec<_> = match &header.kid {
        Some(kid) => jwks.find(kid).into_iter().collect(),
        None => jwks.keys.iter().collect(),
    };
    let mut last = AssertionError::Key;
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY;
        validation.set_issuer(&[&client_id]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud", "jti"]);
        match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
            Ok(data) => {
                let claims = data.claims;
                if claims["sub"] != client_id.as_str() {
                    return Err(AssertionError::Subject);
                }
                let exp = claims["exp"].as_u64().ok_or(AssertionError::Malformed)?;
                if exp > now_seconds() + MAX_LIFETIME + LEEWAY {
                    return Err(AssertionError::TooLong);
                }
                let jti = claims["jti"]
                    .as_str()
                    .filter(|j| !j.is_empty() && j.len() <= 256)
                    .ok_or(AssertionError::Malformed)?;
                // Remembered until the leeway past `exp` ends: until then the
                // assertion would still verify.
                let forget_at = exp.saturating_add(LEEWAY).min(i64::MAX as u64) as i64;
                if !registry.use_assertion(&client_id, jti, forget_at).await.map_err(|_| AssertionError::Store)? {
                    return Err(AssertionError::Replay);
                }
                return Ok((client.client_id, client.tenants));
            }
            Err(e) => last = AssertionError::Invalid(e.to_string()),
        }
    }
    Err(last)
}
