//! Phase 2, authenticate: the bearer token, judged by the token-validation
//! module (or its cached verdict). Before anything that acts on the tenant;
//! fails closed: a module fault refuses the request.

use std::sync::Arc;

use fhirgate_core::environment::Environment;
use fhirgate_core::failure::Failure;
use fhirgate_sandbox::Role;
use fhirgate_sandbox::bindings::types::{Claims, Request};
use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use sha2::{Digest as _, Sha256};

use super::Ctx;
use crate::oauth::token::{Verdict, VerdictKey};
use crate::policy::invoke;

/// Phase 2: the token, checked by the token-validation module; its claims
/// and the environment of its client.
pub(super) async fn authenticate(
    ctx: &Ctx,
    headers: &HeaderMap,
    request: &Request,
) -> Result<(Arc<Claims>, Environment), Failure> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next();
    if values.next().is_some() {
        return Err(Failure::bearer(
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "More than one Authorization header.",
        ));
    }
    let Some(value) = value else {
        return Err(Failure::bearer(StatusCode::UNAUTHORIZED, None, "A bearer token is required."));
    };
    let token = crate::oauth::bearer_token(value)
        .ok_or_else(|| Failure::bearer(StatusCode::UNAUTHORIZED, None, "A bearer token is required."))?;
    // RFC 6750 b64token syntax; anything else cannot be a token of ours.
    if token.is_empty()
        || token.len() > 8192
        || !token.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c))
    {
        return Err(Failure::bearer(StatusCode::UNAUTHORIZED, Some("invalid_token"), "The access token is malformed."));
    }
    // A verdict is cached per token, validator and configuration: a warm
    // request skips the module; expiry and revocation are still checked below.
    let bound = &ctx.policy.validator;
    let auth = &ctx.gw.auth();
    let key: VerdictKey =
        (Sha256::digest(token.as_bytes()).into(), bound.module.digest().clone(), bound.config_json.clone());
    let now = fhirgate_core::clock::now_seconds();
    let cached = auth.verdicts.get(&key).filter(|v| now < v.until);
    let known = cached.as_ref().map(|v| v.claims.clone());
    let call = invoke::Validate { token, request };
    let claims = invoke::invoke(&ctx.policy, bound, &|b| ctx.call_ctx_of(b), call, known, None).await?;
    if cached.is_none() {
        let until = claims.expires_at.min(now.saturating_add(auth.lifetime_seconds));
        auth.verdicts.insert(key, Verdict { claims: claims.clone(), until });
    }
    // The module vouches for these; the host still refuses nonsense, so a
    // faulty validator cannot open the gate wider than a valid token would.
    if claims.client_id.is_empty() || !fhirgate_core::ids::is_guid(&claims.tenant_id) {
        return Err(Failure::module(Role::TokenValidation, "returned claims without a client id or tenant id"));
    }
    if claims.expires_at <= fhirgate_core::clock::now_seconds() {
        return Err(Failure::bearer(StatusCode::UNAUTHORIZED, Some("invalid_token"), "The access token expired."));
    }
    // Only for a client that exists and is enabled, and a token not revoked:
    // a disabled or deleted client's tokens end at once, and a token signed
    // for a client never registered is worth nothing.
    match auth.standing(&claims.client_id, claims.token_id.as_deref()).await {
        Ok(s) if s.revoked => {
            Err(Failure::bearer(StatusCode::UNAUTHORIZED, Some("invalid_token"), "The access token was revoked."))
        }
        Ok(fhirgate_store::clients::Standing { environment: Some(environment), .. }) => Ok((claims, environment)),
        Ok(_) => Err(Failure::bearer(
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            "The access token's client is unknown or disabled.",
        )),
        Err(_) => Err(Failure::gateway("The client registry could not be read.")),
    }
}

#[cfg(test)]
mod tests {
    use fhirgate_core::Version;

    use super::super::testing;
    use super::*;

    #[tokio::test]
    async fn a_token_the_gateway_issued_yields_its_client_and_tenant_and_is_cached() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let token = testing::token(&gw).await;
        let request = testing::get(&ctx, "Patient/p1");
        let (claims, environment) = authenticate(&ctx, &testing::bearer(&token), &request).await.unwrap();
        assert_eq!(environment, Environment::Production);
        assert_eq!((claims.client_id.as_str(), claims.tenant_id.as_str()), (testing::CLIENT, testing::TENANT));
        assert_eq!(gw.auth().verdicts.len(), 1, "the validator's verdict is kept for the next request");
        let (again, _) = authenticate(&ctx, &testing::bearer(&token), &request).await.unwrap();
        assert!(Arc::ptr_eq(&claims, &again), "a warm request reuses the verdict");
    }

    #[tokio::test]
    async fn no_token_a_malformed_one_or_a_forged_one_is_a_bearer_challenge() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Dstu2);
        let request = testing::get(&ctx, "Patient/p1");
        let f = authenticate(&ctx, &HeaderMap::new(), &request).await.unwrap_err();
        assert_eq!((f.status, f.bearer_error.as_deref()), (StatusCode::UNAUTHORIZED, None));
        let f = authenticate(&ctx, &testing::bearer("not a token!"), &request).await.unwrap_err();
        assert_eq!((f.status, f.bearer_error.as_deref()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));
        // Well-formed, but no signature of the gateway's: the module says no.
        let forged = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let f = authenticate(&ctx, &testing::bearer(forged), &request).await.unwrap_err();
        assert_eq!((f.status, f.bearer_error.as_deref()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));
        let mut two = testing::bearer(forged);
        two.append(AUTHORIZATION, http::HeaderValue::from_static("Bearer x"));
        let f = authenticate(&ctx, &two, &request).await.unwrap_err();
        assert_eq!((f.status, f.bearer_error.as_deref()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    }

    #[tokio::test]
    async fn a_revoked_token_is_refused_even_with_a_cached_verdict() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let token = testing::token(&gw).await;
        let request = testing::get(&ctx, "Patient/p1");
        let (claims, environment) = authenticate(&ctx, &testing::bearer(&token), &request).await.unwrap();
        assert_eq!(environment, Environment::Production);
        gw.auth().revoked.revoke(claims.token_id.as_deref().expect("a jti"), u64::MAX);
        let f = authenticate(&ctx, &testing::bearer(&token), &request).await.unwrap_err();
        assert_eq!((f.status, f.bearer_error.as_deref()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));
    }
}
