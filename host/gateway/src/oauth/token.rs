//! The authorization server's endpoints: client-credentials tokens (RFC 6749
//! §4.4, errors per §5.2), revocation (RFC 7009) and introspection (RFC 7662).
//! All three authenticate the client the same way, under the same throttle.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};

pub use fhirgate_core::OAuthError;

use super::assertion;
use super::clients::Authenticated;
use super::keys::KeyRing;
use super::revocation::RevocationList;
use super::throttle::Throttle;
use super::{ClientRegistry, SigningKey};
use arc_swap::ArcSwap;
use fhirgate_core::clock::now_seconds;
use fhirgate_core::ids::is_guid;
use fhirgate_sandbox::IssuerFacts;

/// The authorization server's state.
pub struct AuthServer {
    /// The clients allowed tokens.
    clients: ClientRegistry,
    /// The active signing key and the keys still published; swapped whole.
    keys: ArcSwap<KeyRing>,
    /// `iss` of every token.
    pub issuer: String,
    /// `aud` of every token: the gateway's FHIR bases.
    pub audiences: Vec<String>,
    pub lifetime_seconds: u64,
    facts: ArcSwap<IssuerFacts>,
    throttle: Throttle,
    pub revoked: RevocationList,
    /// Successful token validations, so a warm request skips the module.
    /// Bounded: 50 000 live tokens is far more than the apps one gateway
    /// serves hold at once; the least recently used verdict goes first.
    /// Cleared whenever the keys change.
    pub verdicts: quick_cache::sync::Cache<VerdictKey, Verdict>,
    /// Where token issuance and refused client authentications are
    /// recorded: the store's change audit trail, written in batches by the
    /// access log's writer.
    pub events: Option<crate::access::AccessLog>,
}

/// Cache key of a validation verdict: the token's SHA-256, the digest of the
/// validator that judged it and that validator's configuration.
pub type VerdictKey = ([u8; 32], Arc<str>, Arc<str>);

/// A cached verdict and when it stops counting: the token's expiry, capped
/// at one token lifetime from when it was cached.
#[derive(Clone)]
pub struct Verdict {
    pub claims: Arc<fhirgate_sandbox::bindings::types::Claims>,
    pub until: u64,
}

impl AuthServer {
    /// What a request with a token of `client_id` (its id `jti`) must know
    /// now: the client's environment if it exists and is enabled, and
    /// whether the token was revoked (see [`ClientRegistry::standing`]).
    pub async fn standing(
        &self,
        client_id: &str,
        jti: Option<&str>,
    ) -> Result<fhirgate_store::clients::Standing, fhirgate_store::clients::RegistryError> {
        let revoked_here = jti.is_some_and(|j| self.revoked.is_revoked(j));
        self.clients.standing(client_id, jti, revoked_here).await
    }

    /// Forgets what is known of `client_id`'s status, after a change to it.
    pub fn forget_client(&self, client_id: &str) {
        self.clients.forget(client_id);
    }
}

impl AuthServer {
    /// Counts failed authentications together with the other replicas on
    /// `store`.
    pub fn share_throttle(&mut self, store: fhirgate_store::Store) {
        self.throttle = Throttle::shared(store);
    }

    pub fn new(
        clients: ClientRegistry,
        key: SigningKey,
        issuer: String,
        audiences: Vec<String>,
        lifetime_seconds: u64,
    ) -> Self {
        let ring = KeyRing::single(key);
        let facts = ArcSwap::from_pointee(IssuerFacts {
            issuer: issuer.clone(),
            audiences: audiences.clone(),
            jwks: ring.jwks().to_string(),
        });
        AuthServer {
            clients,
            keys: ArcSwap::from_pointee(ring),
            issuer,
            audiences,
            lifetime_seconds,
            facts,
            throttle: Throttle::default(),
            revoked: RevocationList::default(),
            verdicts: quick_cache::sync::Cache::new(50_000),
            events: None,
        }
    }

    /// Records a security event in the audit trail, committed before the
    /// answer unless commits are buffered; false when it was not written.
    async fn record(&self, action: &'static str, subject: String, detail: Value) -> bool {
        match &self.events {
            Some(log) => log.event("token-endpoint", action, subject, &detail).await,
            None => true,
        }
    }

    /// Replaces the key ring (after a rotation, or when loaded from the
    /// store); validators see the new JWK Set from their next call.
    /// A ring that publishes what the current one does (the active key
    /// first) is the same ring: nothing changes.
    pub fn set_keys(&self, ring: KeyRing) {
        let jwks = ring.jwks().to_string();
        if self.facts.load().jwks == jwks {
            return;
        }
        self.facts.store(Arc::new(IssuerFacts {
            issuer: self.issuer.clone(),
            audiences: self.audiences.clone(),
            jwks,
        }));
        self.keys.store(Arc::new(ring));
        // A verdict vouches for a token under the keys it was checked with.
        self.verdicts.clear();
    }

    /// The current key ring.
    pub fn keys(&self) -> Arc<KeyRing> {
        self.keys.load_full()
    }

    /// What token validators are told about this issuer.
    pub fn facts(&self) -> Arc<IssuerFacts> {
        self.facts.load_full()
    }

    /// Handles one token request from `peer`. `query` is the request's query string.
    pub async fn token(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        peer: IpAddr,
    ) -> Result<Value, OAuthError> {
        let params = read_form(headers, query, body)?;
        match params.get("grant_type").map(String::as_str) {
            None => return Err(OAuthError::InvalidRequest("`grant_type` is missing.".into())),
            Some("client_credentials") => {}
            Some(_) => return Err(OAuthError::UnsupportedGrantType),
        }
        let client = self.authenticate_request(headers, &params, peer).await?;

        let scope = params.get("scope").map(String::as_str).unwrap_or("");
        let mut tenants = Vec::new();
        let mut others = Vec::new();
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            if is_guid(s) {
                tenants.push(s.to_ascii_lowercase());
            } else if is_system_read_scope(s) {
                others.push(s.to_owned());
            } else {
                return Err(OAuthError::InvalidScope(format!(
                    "`{s}` is not a scope this server grants; ask for your tenant id, optionally with system/*.read."
                )));
            }
        }
        let tenant = match tenants.as_slice() {
            [t] => t.clone(),
            [] if client.tenants.len() == 1 => client.tenants[0].clone(),
            [] => {
                return Err(OAuthError::InvalidScope(
                    "The scope must name the tenant id (a GUID) the token is for.".into(),
                ));
            }
            _ => return Err(OAuthError::InvalidScope("A token is for one tenant; ask for one tenant id.".into())),
        };
        if !client.tenants.contains(&tenant) {
            return Err(OAuthError::InvalidScope("This client is not allowed to act for that tenant.".into()));
        }
        let granted = std::iter::once(tenant).chain(others).collect::<Vec<_>>().join(" ");

        let now = now_seconds();
        let claims = json!({
            "iss": self.issuer,
            "sub": client.client_id,
            "client_id": client.client_id,
            "aud": self.audiences,
            "scope": granted,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime_seconds,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        tracing::info!(
            target: "fhirgate::audit",
            event = "token-issued",
            client_id = %client.client_id,
            scope = %granted,
            jti = %claims["jti"].as_str().unwrap_or_default(),
            "token issued"
        );
        let token = self.keys.load().active().sign(&claims).map_err(|_| OAuthError::TemporarilyUnavailable)?;
        // No token goes out that the trail does not hold.
        let recorded = self
            .record(
                "token.issued",
                format!("client:{}", client.client_id),
                json!({ "scope": granted, "jti": claims["jti"], "expires_at": claims["exp"] }),
            )
            .await;
        if !recorded {
            return Err(OAuthError::TemporarilyUnavailable);
        }
        Ok(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime_seconds,
            "scope": granted,
        }))
    }
}

impl AuthServer {
    /// Authenticates the client of a request (Basic or body credentials),
    /// refusing at once while it or its address is throttled.
    async fn authenticate_request(
        &self,
        headers: &HeaderMap,
        params: &HashMap<String, String>,
        peer: IpAddr,
    ) -> Result<Authenticated, OAuthError> {
        if params.contains_key("client_assertion_type") || params.contains_key("client_assertion") {
            return self.authenticate_assertion(headers, params, peer).await;
        }
        let credentials = client_credentials(headers, params);
        let claimed_id = credentials.as_ref().ok().map(|(id, _, _)| id.as_str());
        if let Some(wait) = self.throttle.check(claimed_id, peer).await {
            return Err(OAuthError::Throttled(wait));
        }
        let (client_id, secret, basic) = credentials?;
        // Counted as a failure before the (awaiting) check and forgiven on
        // success, so a burst of concurrent guesses cannot all pass `check`.
        self.throttle.failed(Some(&client_id), peer);
        match self.authenticate(&client_id, &secret).await? {
            Some(client) => {
                self.throttle.forgive(Some(&client_id), peer);
                Ok(client)
            }
            None => {
                self.throttle.confirm_failure(Some(&client_id), peer).await;
                self.record(
                    "token.refused",
                    format!("client:{}", client_id.chars().take(128).collect::<String>()),
                    json!({ "error": "invalid_client", "peer": peer.to_string() }),
                )
                .await;
                Err(OAuthError::InvalidClient { basic })
            }
        }
    }

    /// `private_key_jwt`: the client proves itself with a signed assertion.
    async fn authenticate_assertion(
        &self,
        headers: &HeaderMap,
        params: &HashMap<String, String>,
        peer: IpAddr,
    ) -> Result<Authenticated, OAuthError> {
        if params.get("client_assertion_type").map(String::as_str) != Some(assertion::ASSERTION_TYPE) {
            return Err(OAuthError::InvalidRequest(format!(
                "`client_assertion_type` must be {} with a `client_assertion`.",
                assertion::ASSERTION_TYPE
            )));
        }
        let Some(jwt) = params.get("client_assertion") else {
            return Err(OAuthError::InvalidRequest("`client_assertion` is missing.".into()));
        };
        if headers.contains_key(AUTHORIZATION) || params.contains_key("client_secret") {
            return Err(OAuthError::InvalidRequest(
                "Use one client authentication method, not an assertion and a secret.".into(),
            ));
        }
        let claimed = assertion::claimed_client(jwt);
        if let (Some(body_id), Some(iss)) = (params.get("client_id"), &claimed)
            && body_id != iss
        {
            return Err(OAuthError::InvalidRequest("`client_id` differs from the assertion's issuer.".into()));
        }
        if let Some(wait) = self.throttle.check(claimed.as_deref(), peer).await {
            return Err(OAuthError::Throttled(wait));
        }
        let Some(registry) = self.clients.stored() else {
            self.throttle.failed(claimed.as_deref(), peer);
            self.throttle.confirm_failure(claimed.as_deref(), peer).await;
            return Err(OAuthError::InvalidClient { basic: false });
        };
        // The assertion's audience is the token endpoint, as the client
        // reached it or under the issuer's address.
        // Only the issuer's own token URL: an audience taken from the
        // request's Host would accept assertions made for other servers.
        let audiences = [format!("{}/oauth2/token", self.issuer)];
        self.throttle.failed(claimed.as_deref(), peer);
        match assertion::verify(registry, jwt, &audiences).await {
            Ok((client_id, tenants)) => {
                self.throttle.forgive(claimed.as_deref(), peer);
                Ok(Authenticated { client_id, tenants })
            }
            Err(e) => {
                tracing::debug!(reason = %e, "client assertion refused");
                self.throttle.confirm_failure(claimed.as_deref(), peer).await;
                Err(OAuthError::InvalidClient { basic: false })
            }
        }
    }

    /// The claims of a token this server issued and signed, if its signature
    /// and issuer check out (expiry is the caller's question).
    fn decode_own(&self, token: &str) -> Option<Value> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        let ring = self.keys.load();
        let key = ring.find(&kid)?;
        let mut validation = jsonwebtoken::Validation::new(key.alg());
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        jsonwebtoken::decode::<Value>(token, key.decoding_key(), &validation).ok().map(|d| d.claims)
    }

    /// RFC 7009: the client revokes one of its own tokens. Unknown, foreign
    /// or invalid tokens are answered the same way (200), as the RFC asks.
    pub async fn revoke(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        peer: IpAddr,
    ) -> Result<(), OAuthError> {
        let params = read_form(headers, query, body)?;
        let client = self.authenticate_request(headers, &params, peer).await?;
        let token = params.get("token").ok_or_else(|| OAuthError::InvalidRequest("`token` is missing.".into()))?;
        self.revoke_token(token, Some(&client.client_id)).await;
        Ok(())
    }

    /// Revokes `token` if this server issued it and, unless `owner` is
    /// `None` (the admin), it belongs to `owner`. Returns whether it did.
    pub async fn revoke_token(&self, token: &str, owner: Option<&str>) -> bool {
        let Some(claims) = self.decode_own(token) else {
            return false;
        };
        if owner.is_some_and(|o| claims["sub"] != o) {
            return false;
        }
        let (Some(jti), Some(exp)) = (claims["jti"].as_str(), claims["exp"].as_u64()) else {
            return false;
        };
        self.revoked.revoke(jti, exp);
        if let Some(registry) = self.clients.stored()
            && let Err(e) = registry.record_revocation(jti, exp.min(i64::MAX as u64) as i64).await
        {
            // The revocation holds in this process; it is not yet shared.
            tracing::error!(error = %e, "recording a revocation in the store failed");
        }
        tracing::info!(target: "fhirgate::audit", event = "token-revoked", client_id = %claims["sub"], jti, by = if owner.is_some() { "client" } else { "admin" }, "token revoked");
        true
    }

    /// Loads the revocations recorded in the store (at start-up, and
    /// periodically so revocations made by other gateways arrive).
    pub async fn load_revocations(&self) {
        let Some(registry) = self.clients.stored() else { return };
        match registry.revocations().await {
            Ok(list) => {
                for (jti, exp) in list {
                    self.revoked.revoke(&jti, exp.max(0) as u64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "loading revocations from the store failed"),
        }
    }

    /// RFC 7662: the client asks about one of its own tokens. A token that is
    /// not active, or not the caller's, is `{"active": false}`.
    pub async fn introspect(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        peer: IpAddr,
    ) -> Result<Value, OAuthError> {
        let params = read_form(headers, query, body)?;
        let client = self.authenticate_request(headers, &params, peer).await?;
        let token = params.get("token").ok_or_else(|| OAuthError::InvalidRequest("`token` is missing.".into()))?;
        Ok(self.introspection(token, Some(&client.client_id)).await)
    }

    /// The introspection answer for `token`, restricted to `owner`'s tokens
    /// unless `owner` is `None` (the admin): active only while its client is
    /// enabled and it is not revoked.
    pub async fn introspection(&self, token: &str, owner: Option<&str>) -> Value {
        let inactive = json!({ "active": false });
        let Some(claims) = self.decode_own(token) else {
            return inactive;
        };
        let now = now_seconds();
        let exp = claims["exp"].as_u64().unwrap_or(0);
        let nbf = claims["nbf"].as_u64().unwrap_or(0);
        let jti = claims["jti"].as_str().unwrap_or_default();
        let owned = owner.is_none_or(|o| claims["sub"] == o);
        if !owned || exp <= now || nbf > now + 30 {
            return inactive;
        }
        let client_id = claims["sub"].as_str().unwrap_or_default();
        match self.standing(client_id, Some(jti).filter(|j| !j.is_empty())).await {
            Ok(s) if s.environment.is_some() && !s.revoked => {}
            // A registry that cannot be read vouches for nothing.
            _ => return inactive,
        }
        json!({
            "active": true,
            "token_type": "Bearer",
            "scope": claims["scope"],
            "client_id": claims["sub"],
            "sub": claims["sub"],
            "iss": claims["iss"],
            "aud": claims["aud"],
            "exp": claims["exp"],
            "iat": claims["iat"],
            "nbf": claims["nbf"],
            "jti": claims["jti"],
        })
    }

    /// Checks a client's secret in the client registry. A store failure is
    /// refused like a wrong secret, and logged.
    async fn authenticate(&self, client_id: &str, secret: &str) -> Result<Option<Authenticated>, OAuthError> {
        self.clients.authenticate(client_id, secret).await.map_err(|e| {
            tracing::error!(error = %e, "client registry unavailable at the token endpoint");
            OAuthError::TemporarilyUnavailable
        })
    }

    /// The clients allowed tokens.
    pub fn clients(&self) -> &ClientRegistry {
        &self.clients
    }
}

/// SMART system scopes for reading: `system/*.read`, `system/Patient.read`,
/// and the v2 forms `system/*.rs`, `system/Patient.r`, `system/Patient.s`.
fn is_system_read_scope(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("system/") else {
        return false;
    };
    let Some((resource, access)) = rest.split_once('.') else {
        return false;
    };
    let resource_ok = resource == "*"
        || (resource.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && resource.chars().all(|c| c.is_ascii_alphabetic()));
    resource_ok && matches!(access, "read" | "rs" | "r" | "s")
}

/// Parses the form body; a repeated parameter is an error (§3.2), an empty
/// one counts as absent (§3.1).
fn read_form(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    if query.is_some_and(|q| !q.is_empty()) {
        return Err(OAuthError::InvalidRequest(
            "Parameters in the query string are refused; send them in the form body.".into(),
        ));
    }
    let form_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        .unwrap_or(false);
    if !form_type {
        return Err(OAuthError::InvalidRequest("The body must be application/x-www-form-urlencoded.".into()));
    }
    parse_form(body)
}

fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    if std::str::from_utf8(body).is_err() {
        return Err(OAuthError::InvalidRequest("The body is not valid UTF-8.".into()));
    }
    let mut params = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        if v.is_empty() {
            continue;
        }
        if params.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(OAuthError::InvalidRequest(format!("`{k}` is given more than once.")));
        }
    }
    Ok(params)
}

/// The client's id and secret, from HTTP Basic (`client_secret_basic`) or the
/// body (`client_secret_post`), never both. Returns whether Basic was used.
fn client_credentials(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(String, String, bool), OAuthError> {
    let mut auth = headers.get_all(AUTHORIZATION).iter();
    let header = auth.next();
    if auth.next().is_some() {
        return Err(OAuthError::InvalidRequest("More than one Authorization header.".into()));
    }
    match header {
        Some(value) => {
            let value = value.to_str().map_err(|_| OAuthError::InvalidClient { basic: true })?;
            let (scheme, encoded) = value.split_once(' ').ok_or(OAuthError::InvalidClient { basic: true })?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::InvalidRequest(
                    "Authenticate the client with HTTP Basic or client_secret in the body.".into(),
                ));
            }
            if params.contains_key("client_secret") {
                return Err(OAuthError::InvalidRequest(
                    "Use one client authentication method, not both Basic and client_secret.".into(),
                ));
            }
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(OAuthError::InvalidClient { basic: true })?;
            let (id, secret) = decoded.split_once(':').ok_or(OAuthError::InvalidClient { basic: true })?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic.
            let id = url_decode(id);
            let secret = url_decode(secret);
            if params.get("client_id").is_some_and(|body_id| *body_id != id) {
                return Err(OAuthError::InvalidRequest(
                    "`client_id` in the body differs from the Basic credentials.".into(),
                ));
            }
            Ok((id, secret, true))
        }
        None => {
            let id = params.get("client_id");
            let secret = params.get("client_secret");
            match (id, secret) {
                (Some(id), Some(secret)) => Ok((id.clone(), secret.clone(), false)),
                _ => Err(OAuthError::InvalidClient { basic: false }),
            }
        }
    }
}

fn url_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_scopes() {
        assert!(is_system_read_scope("system/*.read"));
        assert!(is_system_read_scope("system/Patient.rs"));
        assert!(!is_system_read_scope("system/*.write"));
        assert!(!is_system_read_scope("user/*.read"));
        assert!(!is_system_read_scope("system/patient.read"));
    }

    #[test]
    fn form_rejects_repeats() {
        assert!(parse_form(b"a=1&a=2").is_err());
        assert_eq!(parse_form(b"a=1&b=").unwrap().len(), 1);
    }
}
