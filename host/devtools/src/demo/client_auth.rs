//! How the demo provider's token endpoint authenticates its one client, as
//! hospitals' authorization servers do: a client secret (HTTP Basic, in the
//! form, or either), or SMART Backend Services `private_key_jwt` — a signed
//! assertion checked with `jsonwebtoken` against the JWK Set the client
//! published, each `jti` accepted once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use http_body_util::BodyExt as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::time::Instant;

/// The `client_assertion_type` of RFC 7523 §2.2.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// SMART: an assertion expires at most five minutes after it is made.
const MAX_ASSERTION_LIFETIME: u64 = 300;

/// A fetched JWK Set is used this long before it is fetched again; a key id
/// it lacks triggers a fetch at most this often.
const JWKS_TTL: Duration = Duration::from_secs(60);
const JWKS_REFETCH: Duration = Duration::from_secs(1);

/// Where a client secret may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretMethod {
    Basic,
    Post,
}

impl SecretMethod {
    pub fn name(self) -> &'static str {
        match self {
            SecretMethod::Basic => "client_secret_basic",
            SecretMethod::Post => "client_secret_post",
        }
    }
}

/// Parses `client_secret_basic` or `client_secret_post` (as given to
/// `--token-auth-method`).
pub fn parse_secret_method(s: &str) -> Result<SecretMethod, String> {
    match s {
        "client_secret_basic" => Ok(SecretMethod::Basic),
        "client_secret_post" => Ok(SecretMethod::Post),
        _ => Err("expected client_secret_basic or client_secret_post".to_owned()),
    }
}

/// What the client presented at the token endpoint.
pub enum Presented {
    Secret { method: SecretMethod, client_id: String, secret: String },
    Assertion { client_id: Option<String>, assertion: String },
}

/// The one client's credential.
pub enum ClientCheck {
    /// A secret, by its SHA-256; `only` restricts how it may be sent.
    Secret { sha256: [u8; 32], only: Option<SecretMethod> },
    /// Assertions signed with a key of the JWK Set at `jwks_url`, addressed
    /// to `token_url`.
    Jwt(JwtCheck),
}

pub struct JwtCheck {
    jwks_url: String,
    token_url: String,
    keys: tokio::sync::Mutex<Option<(JwkSet, Instant)>>,
    /// `jti` → the `exp` of the assertion that used it.
    seen: Mutex<HashMap<String, u64>>,
}

impl ClientCheck {
    pub fn secret(secret: &str, only: Option<SecretMethod>) -> ClientCheck {
        ClientCheck::Secret { sha256: Sha256::digest(secret.as_bytes()).into(), only }
    }

    pub fn jwt(jwks_url: String, token_url: String) -> ClientCheck {
        ClientCheck::Jwt(JwtCheck { jwks_url, token_url, keys: Default::default(), seen: Default::default() })
    }

    /// The method name if `presented` authenticates `client_id`; why not
    /// otherwise (for the provider's own log, never sent to the client).
    pub async fn authenticate(&self, client_id: &str, presented: Presented) -> Result<&'static str, String> {
        match (self, presented) {
            (ClientCheck::Secret { sha256, only }, Presented::Secret { method, client_id: id, secret }) => {
                if only.is_some_and(|only| only != method) {
                    return Err(format!("{} is not accepted here", method.name()));
                }
                let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
                let secret_ok: bool = sha256.ct_eq(&presented).into();
                if secret_ok && id == client_id { Ok(method.name()) } else { Err("wrong client or secret".into()) }
            }
            (ClientCheck::Jwt(check), Presented::Assertion { client_id: id, assertion }) => {
                if id.as_deref().is_some_and(|id| id != client_id) {
                    return Err("client_id does not match".into());
                }
                check.verify(client_id, &assertion).await.map(|()| "private_key_jwt")
            }
            (ClientCheck::Secret { .. }, Presented::Assertion { .. }) => Err("this client has a secret".into()),
            (ClientCheck::Jwt(_), Presented::Secret { .. }) => {
                Err("this client authenticates with private_key_jwt".into())
            }
        }
    }
}

impl JwtCheck {
    async fn verify(&self, client_id: &str, assertion: &str) -> Result<(), String> {
        let header = jsonwebtoken::decode_header(assertion).map_err(|e| format!("header: {e}"))?;
        if !matches!(header.alg, Algorithm::ES384 | Algorithm::RS384) {
            return Err(format!("{:?} is not ES384 or RS384", header.alg));
        }
        let kid = header.kid.ok_or("the header has no kid")?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.token_url]);
        validation.set_issuer(&[client_id]);
        validation.sub = Some(client_id.to_owned());
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Value>(assertion, &key, &validation).map_err(|e| format!("{e}"))?;
        let now = fhirgate_core::clock::now_seconds();
        let exp = data.claims["exp"].as_u64().ok_or("exp is not a number")?;
        if exp > now + MAX_ASSERTION_LIFETIME {
            return Err("exp is more than five minutes ahead".into());
        }
        let jti = data.claims["jti"].as_str().filter(|j| !j.is_empty()).ok_or("no jti")?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, until| *until + 5 >= now);
        if seen.insert(jti.to_owned(), exp).is_some() {
            return Err("the jti was used before".into());
        }
        Ok(())
    }

    /// The key `kid` from the client's JWK Set, fetching the set when it is
    /// stale or lacks `kid` (a rotation).
    async fn key(&self, kid: &str) -> Result<DecodingKey, String> {
        let mut cached = self.keys.lock().await;
        let found = |set: &JwkSet| set.find(kid).map(DecodingKey::from_jwk);
        if let Some((set, at)) = cached.as_ref() {
            let fresh = at.elapsed() < JWKS_TTL;
            match found(set) {
                Some(key) if fresh => return key.map_err(|e| format!("the JWK: {e}")),
                None if at.elapsed() < JWKS_REFETCH => return Err(format!("no key {kid} in the JWK Set")),
                _ => {}
            }
        }
        let set = fetch_jwks(&self.jwks_url).await?;
        let key = found(&set);
        *cached = Some((set, Instant::now()));
        key.ok_or_else(|| format!("no key {kid} in the JWK Set"))?.map_err(|e| format!("the JWK: {e}"))
    }
}

/// GETs a JWK Set over plain HTTP (the demo's gateways are on loopback).
async fn fetch_jwks(url: &str) -> Result<JwkSet, String> {
    let uri: http::Uri = url.parse().map_err(|_| "the JWK Set URL is not a URL".to_owned())?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let fetch = async {
        let resp = client.get(uri).await.map_err(|e| format!("fetching the JWK Set: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("the JWK Set answered {}", resp.status()));
        }
        let body = http_body_util::Limited::new(resp.into_body(), 256 * 1024)
            .collect()
            .await
            .map_err(|e| format!("reading the JWK Set: {e}"))?
            .to_bytes();
        serde_json::from_slice::<JwkSet>(&body).map_err(|e| format!("the JWK Set: {e}"))
    };
    tokio::time::timeout(Duration::from_secs(5), fetch).await.map_err(|_| "the JWK Set took too long".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhirgate_upstream::AssertionKey;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Serves `jwks` to every request on a loopback port; its URL.
    async fn jwks_server(jwks: Value) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let body = jwks.to_string();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(format!("{head}{body}").as_bytes()).await;
                });
            }
        });
        format!("http://{addr}/jwks.json")
    }

    #[tokio::test]
    async fn assertions_are_checked_as_a_hospital_would() {
        let key = AssertionKey::generate().unwrap().key;
        let stranger = AssertionKey::generate().unwrap().key;
        let url = jwks_server(json_set(&key)).await;
        let token_url = "http://ehr.test/oauth2/token";
        let check = ClientCheck::jwt(url, token_url.into());
        let now = fhirgate_core::clock::now_seconds();
        let present = |a: String| Presented::Assertion { client_id: Some("app".into()), assertion: a };

        let good = key.assertion("app", token_url, now).unwrap();
        assert_eq!(check.authenticate("app", present(good.clone())).await, Ok("private_key_jwt"));
        assert!(check.authenticate("app", present(good)).await.unwrap_err().contains("jti"), "a replay");
        let elsewhere = key.assertion("app", "http://other.test/token", now).unwrap();
        assert!(check.authenticate("app", present(elsewhere)).await.is_err(), "another audience");
        let someone = key.assertion("other-app", token_url, now).unwrap();
        assert!(check.authenticate("app", present(someone)).await.is_err(), "another client");
        let unknown = stranger.assertion("app", token_url, now).unwrap();
        assert!(check.authenticate("app", present(unknown)).await.is_err(), "a key not in the set");
        let expired = key.assertion("app", token_url, now - 600).unwrap();
        assert!(check.authenticate("app", present(expired)).await.is_err(), "expired");
        let secret = Presented::Secret { method: SecretMethod::Post, client_id: "app".into(), secret: "s".into() };
        assert!(check.authenticate("app", secret).await.is_err(), "a secret is not enough");
    }

    fn json_set(key: &AssertionKey) -> Value {
        serde_json::json!({ "keys": [key.public_jwk()] })
    }

    #[tokio::test]
    async fn a_secret_is_accepted_only_the_way_the_provider_allows() {
        let secret =
            |method, secret: &str| Presented::Secret { method, client_id: "app".into(), secret: secret.into() };
        let post_only = ClientCheck::secret("s3cret", Some(SecretMethod::Post));
        assert_eq!(post_only.authenticate("app", secret(SecretMethod::Post, "s3cret")).await, Ok("client_secret_post"));
        assert!(post_only.authenticate("app", secret(SecretMethod::Basic, "s3cret")).await.is_err());
        assert!(post_only.authenticate("app", secret(SecretMethod::Post, "wrong")).await.is_err());
        let either = ClientCheck::secret("s3cret", None);
        assert_eq!(either.authenticate("app", secret(SecretMethod::Basic, "s3cret")).await, Ok("client_secret_basic"));
        assert!(either.authenticate("other", secret(SecretMethod::Basic, "s3cret")).await.is_err());
    }
}
