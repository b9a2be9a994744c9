//! Signing people in through OpenID Connect providers (authorization code
//! with PKCE, OpenID Connect Core §3.1): the gateway is a relying party
//! that reads each provider's discovery document, sends the browser there
//! with `state`, `nonce` and an S256 code challenge, exchanges the code it
//! gets back, and checks the ID token (signature against the provider's JWK
//! Set, issuer, audience, expiry, nonce). What it hands on is the issuer
//! and subject; who that is, the accounts store says.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::OidcConfig;
use fhirgate_store::identities::PendingLogin;
use fhirgate_upstream::{ProviderSettings, Upstream, UpstreamResponse};

/// Discovery documents and key sets are read again after this long.
const REFRESH: Duration = Duration::from_secs(3600);
/// A key id missing from the cached set refetches it at most this often.
const REFETCH: Duration = Duration::from_secs(10);
/// Every exchange with a provider, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a sign-in through a provider failed. Messages name the step, never
/// a token or what a provider sent beyond an OAuth error code.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("{0}")]
    Provider(String),
    #[error("the ID token was refused: {0}")]
    IdToken(String),
}

type Result<T> = std::result::Result<T, OidcError>;

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// One configured provider.
pub struct OidcProvider {
    pub name: String,
    pub issuer: String,
    client_id: String,
    client_secret: Option<String>,
    scopes: String,
    settings: ProviderSettings,
    discovery: Mutex<Option<(Discovery, Instant)>>,
    keys: Mutex<Option<(JwkSet, Instant)>>,
}

/// Where to send the browser, and what to remember until it comes back.
pub struct Start {
    pub authorize_url: String,
    pub state: String,
    pub login: PendingLogin,
}

/// Every configured provider, by name.
#[derive(Default)]
pub struct Oidc {
    providers: BTreeMap<String, Arc<OidcProvider>>,
}

impl Oidc {
    /// The providers of `configs`, their client secrets read now.
    pub fn from_config(configs: &[OidcConfig]) -> anyhow::Result<Oidc> {
        let mut providers = BTreeMap::new();
        for c in configs {
            let client_secret = c
                .client_secret_file
                .as_deref()
                .map(fhirgate_core::vault::read_credential)
                .transpose()
                .map_err(|e| anyhow::anyhow!("`admin.oidc` `{}`: client_secret_file: {e:#}", c.name))?;
            let mut settings = ProviderSettings::new(format!("oidc:{}", c.name), TIMEOUT);
            settings.extra_ca = c.ca_file.clone();
            let mut scopes = vec!["openid".to_owned()];
            scopes.extend(c.scopes.iter().filter(|s| *s != "openid").cloned());
            providers.insert(
                c.name.clone(),
                Arc::new(OidcProvider {
                    name: c.name.clone(),
                    issuer: c.issuer.trim_end_matches('/').to_owned(),
                    client_id: c.client_id.clone(),
                    client_secret,
                    scopes: scopes.join(" "),
                    settings,
                    discovery: Mutex::new(None),
                    keys: Mutex::new(None),
                }),
            );
        }
        Ok(Oidc { providers })
    }

    pub fn provider(&self, name: &str) -> Option<&Arc<OidcProvider>> {
        self.providers.get(name)
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<OidcProvider>> {
        self.providers.values()
    }
}

fn random() -> String {
    fhirgate_core::secret::generate_secret()
}

impl OidcProvider {
    /// A new sign-in: the authorization request (RFC 6749 §4.1.1 with PKCE,
    /// RFC 7636) returning to `redirect_uri`.
    pub async fn start(&self, upstream: &Upstream, redirect_uri: &str, invitation: Option<String>) -> Result<Start> {
        let discovery = self.discovery(upstream).await?;
        let (state, nonce, verifier) = (random(), random(), random());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.scopes)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let separator = if discovery.authorization_endpoint.contains('?') { '&' } else { '?' };
        Ok(Start {
            authorize_url: format!("{}{separator}{query}", discovery.authorization_endpoint),
            state,
            login: PendingLogin { nonce, verifier, redirect_uri: redirect_uri.to_owned(), invitation, return_to: None },
        })
    }

    /// Exchanges `code` for tokens and checks the ID token against `login`:
    /// the subject it vouches for.
    pub async fn finish(&self, upstream: &Upstream, login: &PendingLogin, code: &str) -> Result<String> {
        let discovery = self.discovery(upstream).await?;
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", &login.redirect_uri)
                .append_pair("code_verifier", &login.verifier);
            if self.client_secret.is_none() {
                form.append_pair("client_id", &self.client_id);
            }
            form.finish()
        };
        let basic = self.client_secret.as_deref().map(|secret| (self.client_id.as_str(), secret));
        let answer = upstream
            .post_form(&self.settings, &discovery.token_endpoint, form, basic)
            .await
            .map_err(|e| OidcError::Provider(format!("the token endpoint could not be reached: {e}")))?;
        let body = json_of(&answer);
        if !answer.status.is_success() {
            let code = body.get("error").and_then(Value::as_str).filter(|c| is_code(c)).unwrap_or("unknown");
            return Err(OidcError::Provider(format!(
                "the token endpoint answered {} (`{code}`)",
                answer.status.as_u16()
            )));
        }
        let id_token = body
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| OidcError::Provider("the token endpoint's answer has no id_token".into()))?;
        self.check_id_token(upstream, &discovery, id_token, &login.nonce).await
    }

    async fn check_id_token(
        &self,
        upstream: &Upstream,
        discovery: &Discovery,
        id_token: &str,
        nonce: &str,
    ) -> Result<String> {
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| refused("not a signed JWT"))?;
        // The key's type must fit `alg`: `decode` refuses a mismatch.
        let key = self.key(upstream, discovery, header.kid.as_deref()).await?;
        // The issuer exactly as the provider spells it (a trailing `/` too).
        verify_id_token(id_token, &key, &discovery.issuer, &self.client_id, nonce)
    }

    /// The provider's endpoints; its discovery document must name the
    /// configured issuer (OpenID Connect Discovery §4.3).
    async fn discovery(&self, upstream: &Upstream) -> Result<Discovery> {
        let mut cached = self.discovery.lock().await;
        if let Some((d, _)) = cached.as_ref().filter(|(_, at)| at.elapsed() < REFRESH) {
            return Ok(d.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let body = self.get_json(upstream, &url, "the discovery document").await?;
        let d: Discovery = serde_json::from_value(body)
            .map_err(|_| OidcError::Provider("the discovery document lacks an endpoint".into()))?;
        if d.issuer.trim_end_matches('/') != self.issuer {
            return Err(OidcError::Provider("the discovery document names another issuer".into()));
        }
        *cached = Some((d.clone(), Instant::now()));
        Ok(d)
    }

    /// The key `kid` of the provider's JWK Set (the only key of the set
    /// when the token names none), refetching the set for an unknown id.
    async fn key(&self, upstream: &Upstream, discovery: &Discovery, kid: Option<&str>) -> Result<DecodingKey> {
        let mut cached = self.keys.lock().await;
        for attempt in 0..2 {
            let stale = cached
                .as_ref()
                .is_none_or(|(_, at)| at.elapsed() >= REFRESH || (attempt == 1 && at.elapsed() >= REFETCH));
            if stale {
                let body = self.get_json(upstream, &discovery.jwks_uri, "the JWK Set").await?;
                let set: JwkSet =
                    serde_json::from_value(body).map_err(|_| OidcError::Provider("the JWK Set is not one".into()))?;
                *cached = Some((set, Instant::now()));
            }
            let Some((set, _)) = cached.as_ref() else { break };
            let found = match kid {
                Some(kid) => set.find(kid),
                None => {
                    let usable: Vec<_> = set.keys.iter().filter(|k| k.is_supported()).collect();
                    if usable.len() == 1 { usable.first().copied() } else { None }
                }
            };
            if let Some(jwk) = found {
                return DecodingKey::from_jwk(jwk).map_err(|_| OidcError::IdToken("its key is unusable".into()));
            }
        }
        Err(OidcError::IdToken("signed with a key the provider does not publish".into()))
    }

    async fn get_json(&self, upstream: &Upstream, url: &str, what: &str) -> Result<Value> {
        let answer = upstream
            .get(&self.settings, url, http::HeaderMap::new(), "application/json")
            .await
            .map_err(|e| OidcError::Provider(format!("{what} could not be read: {e}")))?;
        if !answer.status.is_success() {
            return Err(OidcError::Provider(format!("{what} answered {}", answer.status.as_u16())));
        }
        serde_json::from_slice(&answer.body).map_err(|_| OidcError::Provider(format!("{what} is not JSON")))
    }
}

fn refused(why: &str) -> OidcError {
    OidcError::IdToken(why.to_owned())
}

/// Checks an ID token signed with `key` (OpenID Connect Core §3.1.3.7): an
/// asymmetric algorithm, the issuer, this client among its audiences (and
/// as `azp` when there are several), not expired, this sign-in's `nonce`.
/// The subject.
fn verify_id_token(id_token: &str, key: &DecodingKey, issuer: &str, client_id: &str, nonce: &str) -> Result<String> {
    let header = jsonwebtoken::decode_header(id_token).map_err(|_| refused("not a signed JWT"))?;
    use Algorithm::*;
    if !matches!(header.alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384 | EdDSA) {
        return Err(refused("signed with an algorithm the gateway does not accept"));
    }
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = 60;
    let data = jsonwebtoken::decode::<Value>(id_token, key, &validation)
        .map_err(|e| OidcError::IdToken(format!("{:?}", e.kind())))?;
    let claims = data.claims;
    let several = claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1);
    let azp = claims.get("azp").and_then(Value::as_str);
    if (several || azp.is_some()) && azp != Some(client_id) {
        return Err(refused("issued to another client (azp)"));
    }
    let presented = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), nonce.as_bytes())) {
        return Err(refused("its nonce is not this sign-in's"));
    }
    let subject = claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 255);
    subject.map(str::to_owned).ok_or_else(|| refused("no subject"))
}

fn json_of(answer: &UpstreamResponse) -> Value {
    serde_json::from_slice(&answer.body).unwrap_or(Value::Null)
}

/// An OAuth error code worth repeating: short printable ASCII.
pub fn is_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    use serde_json::json;

    const ISSUER: &str = "https://idp.example";

    fn keys() -> (EncodingKey, DecodingKey) {
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let private = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        let public = secret.public_key().to_public_key_pem(LineEnding::LF).unwrap();
        (EncodingKey::from_ec_pem(private.as_bytes()).unwrap(), DecodingKey::from_ec_pem(public.as_bytes()).unwrap())
    }

    fn claims() -> Value {
        let now = fhirgate_core::clock::now_seconds();
        json!({ "iss": ISSUER, "aud": "fhirgate", "sub": "248289761001", "iat": now, "exp": now + 300, "nonce": "n-1" })
    }

    #[test]
    fn an_id_token_passes_only_for_this_client_issuer_and_sign_in() {
        let (sign, verify) = keys();
        let token = |claims: &Value| jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &sign).unwrap();
        let check = |claims: &Value| verify_id_token(&token(claims), &verify, ISSUER, "fhirgate", "n-1");
        assert_eq!(check(&claims()).unwrap(), "248289761001");

        let with = |key: &str, value: Value| {
            let mut c = claims();
            c[key] = value;
            c
        };
        for (what, bad) in [
            ("another issuer", with("iss", json!("https://evil.example"))),
            ("another audience", with("aud", json!("other-app"))),
            ("expired", with("exp", json!(1_000))),
            ("another sign-in's nonce", with("nonce", json!("n-2"))),
            ("no nonce", with("nonce", Value::Null)),
            ("several audiences, azp another", with("aud", json!(["fhirgate", "other"]))),
            ("no subject", with("sub", json!(""))),
        ] {
            assert!(check(&bad).is_err(), "{what}");
        }
        let mut ok = with("aud", json!(["fhirgate", "other"]));
        ok["azp"] = json!("fhirgate");
        assert!(check(&ok).is_ok());

        // Another key's signature, and a symmetric "signature", are refused.
        let (other, _) = keys();
        let forged = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims(), &other).unwrap();
        assert!(verify_id_token(&forged, &verify, ISSUER, "fhirgate", "n-1").is_err());
        let hs =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(b"k")).unwrap();
        assert!(verify_id_token(&hs, &verify, ISSUER, "fhirgate", "n-1").is_err());
    }
}
