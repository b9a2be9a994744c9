//! Verification of the gateway's own access tokens (feature `jwt`): the
//! signature against the key set the gateway publishes, `iss`, `aud`,
//! `exp`/`nbf` with a leeway, and exactly one tenant id in the scope.
//!
//! A validator that adds its own rules calls [`validate`] first and refuses
//! more on top; it never needs to handle keys or signatures itself. Inside a
//! module the signature arithmetic runs in the host (the `crypto` import);
//! built natively, for a module's unit tests, it runs in Rust.
//!
//! ```ignore
//! fn validate(token: String, _request: Request) -> Result<Claims, Denial> {
//!     let rules: Rules = fhirgate_guest_sdk::config().map_err(|m| deny(500, "server_error", m))?;
//!     let claims = fhirgate_guest_sdk::jwt::validate(&token, &rules)?;
//!     // … the module's own checks on `claims` …
//!     Ok(claims)
//! }
//! ```

use std::collections::HashSet;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::types::{Claims, Denial};
use crate::{deny, is_guid, issuer};

/// The token rules a validator applies, usually its configuration
/// (`[modules.token-validation.config]` in the policy).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Clock skew tolerated on `exp` and `nbf`, in seconds. Default 30: enough
    /// for hosts kept in sync by NTP, small against a one-hour token.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// Scopes every token must carry besides its tenant id.
    #[serde(default)]
    pub required_scopes: Vec<String>,
}

fn default_leeway() -> u64 {
    30
}

impl Default for Rules {
    fn default() -> Self {
        Rules { leeway_seconds: default_leeway(), required_scopes: Vec::new() }
    }
}

#[derive(Debug, Deserialize)]
struct TokenClaims {
    sub: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    jti: Option<String>,
}

/// The facts the validator needs beside the token: the issuer, its keys and
/// the time. Passing them in keeps [`check`] a pure function.
pub struct Context<'a> {
    pub config: &'a Rules,
    pub issuer: &'a str,
    pub audiences: &'a [String],
    pub jwks: &'a str,
    pub now_seconds: u64,
}

fn invalid(message: impl Into<String>) -> Denial {
    deny(401, "invalid_token", message)
}

/// Validates `token` and returns its claims, or the denial the client sees.
pub fn check(token: &str, ctx: &Context<'_>) -> Result<Claims, Denial> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("The access token is malformed."))?;
    let kid = header.kid.ok_or_else(|| invalid("The access token names no signing key."))?;
    let jwks: JwkSet = serde_json::from_str(ctx.jwks)
        .map_err(|_| deny(500, "server_error", "The gateway's key set is unreadable."))?;
    let jwk = jwks.find(&kid).ok_or_else(|| invalid("The access token was signed by an unknown key."))?;
    let alg = match header.alg {
        Algorithm::ES256 | Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES384 => header.alg,
        _ => return Err(invalid("The access token uses an algorithm that is not accepted.")),
    };
    if jwk.common.key_algorithm.is_some_and(|ka| format!("{ka:?}") != format!("{alg:?}")) {
        return Err(invalid("The access token's algorithm does not match its key."));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| invalid("The access token was signed by an unusable key."))?;

    let mut validation = Validation::new(alg);
    // Time is checked below against the host clock, not the module's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims =
        ["exp", "iss", "aud", "sub"].iter().map(|s| s.to_string()).collect::<HashSet<_>>();
    validation.set_issuer(&[ctx.issuer]);
    validation.set_audience(ctx.audiences);
    let data = jsonwebtoken::decode::<TokenClaims>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature => invalid("The access token's signature is invalid."),
            ErrorKind::InvalidIssuer => invalid("The access token was not issued by this gateway."),
            ErrorKind::InvalidAudience => invalid("The access token is not meant for this gateway."),
            ErrorKind::MissingRequiredClaim(c) => invalid(format!("The access token lacks the `{c}` claim.")),
            _ => invalid("The access token is malformed."),
        }
    })?;
    let claims = data.claims;

    let leeway = ctx.config.leeway_seconds;
    let exp = claims.exp.ok_or_else(|| invalid("The access token lacks the `exp` claim."))?;
    if exp.saturating_add(leeway) <= ctx.now_seconds {
        return Err(invalid("The access token expired."));
    }
    if claims.nbf.is_some_and(|nbf| nbf > ctx.now_seconds.saturating_add(leeway)) {
        return Err(invalid("The access token is not valid yet."));
    }

    let scopes: Vec<String> = claims.scope.split_ascii_whitespace().map(str::to_owned).collect();
    let mut tenants = scopes.iter().filter(|s| is_guid(s));
    let tenant = match (tenants.next(), tenants.next()) {
        (Some(t), None) => t.to_ascii_lowercase(),
        (None, _) => return Err(deny(403, "insufficient_scope", "The access token's scope names no tenant.")),
        (Some(_), Some(_)) => {
            return Err(deny(403, "insufficient_scope", "The access token's scope names more than one tenant."));
        }
    };
    if let Some(missing) = ctx.config.required_scopes.iter().find(|r| !scopes.contains(r)) {
        return Err(deny(403, "insufficient_scope", format!("The access token lacks the `{missing}` scope.")));
    }

    Ok(Claims { client_id: claims.sub, tenant_id: tenant, scopes, expires_at: exp, token_id: claims.jti })
}

/// A `jsonwebtoken` crypto provider whose verifiers call the host's `crypto`
/// import: the JWT policy stays here, the signature arithmetic runs natively.
#[cfg(target_arch = "wasm32")]
mod host_crypto {
    use crate::crypto::{self, PublicKey};
    use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
    use jsonwebtoken::errors::{ErrorKind, Result};
    use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};

    struct HostVerifier {
        alg: Algorithm,
        key: PublicKey,
    }

    impl jsonwebtoken::signature::Verifier<Vec<u8>> for HostVerifier {
        fn verify(
            &self,
            message: &[u8],
            signature: &Vec<u8>,
        ) -> std::result::Result<(), jsonwebtoken::signature::Error> {
            if crypto::verify(&format!("{:?}", self.alg), &self.key, message, signature) {
                Ok(())
            } else {
                Err(jsonwebtoken::signature::Error::new())
            }
        }
    }

    impl JwtVerifier for HostVerifier {
        fn algorithm(&self) -> Algorithm {
            self.alg
        }
    }

    fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 | Algorithm::EdDSA) {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        let key = match key.kind() {
            DecodingKeyKind::SecretOrDer(bytes) => PublicKey::Der(bytes.clone()),
            DecodingKeyKind::RsaModulusExponent { n, e } => PublicKey::Rsa((n.clone(), e.clone())),
        };
        Ok(Box::new(HostVerifier { alg: *alg, key }))
    }

    fn signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
        // A validator never signs.
        Err(ErrorKind::InvalidAlgorithm.into())
    }

    static PROVIDER: CryptoProvider =
        CryptoProvider { signer_factory: signer, verifier_factory: verifier, jwk_utils: JwkUtils::new_unimplemented() };

    /// Makes the host-backed provider the process default (once per instance).
    pub(super) fn install() {
        let _ = PROVIDER.install_default();
    }
}

/// Validates `token` against the gateway's current issuer, keys and clock
/// (host imports), under `rules`: what a validator module's `validate` does
/// before any rule of its own.
pub fn validate(token: &str, rules: &Rules) -> Result<Claims, Denial> {
    #[cfg(target_arch = "wasm32")]
    host_crypto::install();
    let info = issuer::current();
    check(
        token,
        &Context {
            config: rules,
            issuer: &info.issuer,
            audiences: &info.audiences,
            jwks: &info.jwks,
            now_seconds: crate::now_ms() / 1000,
        },
    )
}
