//! SMART Backend Services client authentication (`private_key_jwt`, RFC 7523
//! §2.2): the gateway holds an ES384 key per provider registration, the
//! hospital registers the JWK Set URL where its public half is published,
//! and each token request carries a fresh assertion signed with it.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

/// The JOSE algorithm of every assertion key: SMART Backend Services
/// requires servers to accept ES384 (and RS384); an EC key is small and
/// quick to make.
pub const ALGORITHM: &str = "ES384";

/// The `client_assertion_type` of RFC 7523 §2.2.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How far ahead an assertion expires. SMART allows at most five minutes;
/// four leave room for a provider whose clock runs a little fast.
pub const ASSERTION_LIFETIME_SECONDS: u64 = 240;

/// A signing key for assertions, with its key id.
#[derive(Clone)]
pub struct AssertionKey {
    kid: String,
    pair: Arc<EcdsaKeyPair>,
}

impl PartialEq for AssertionKey {
    fn eq(&self, other: &Self) -> bool {
        self.kid == other.kid
    }
}

impl Eq for AssertionKey {}

impl fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// A key just made: its PKCS#8 document (to be sealed before it is stored)
/// and the key itself.
pub struct GeneratedKey {
    pub pkcs8: Vec<u8>,
    pub key: AssertionKey,
}

impl AssertionKey {
    /// A new P-384 key. The key id is the RFC 7638 thumbprint of its public
    /// JWK, so it names the key and nothing else.
    pub fn generate() -> anyhow::Result<GeneratedKey> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("no P-384 key could be generated"))?;
        let key = Self::from_pkcs8(pkcs8.as_ref())?;
        Ok(GeneratedKey { pkcs8: pkcs8.as_ref().to_vec(), key })
    }

    /// The key in a PKCS#8 document made by [`AssertionKey::generate`].
    pub fn from_pkcs8(der: &[u8]) -> anyhow::Result<AssertionKey> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, der, &SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("not a P-384 private key"))?;
        let (x, y) = coordinates(&pair);
        let kid = thumbprint(&x, &y);
        Ok(AssertionKey { kid, pair: Arc::new(pair) })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK (RFC 7517), as the JWK Set publishes it.
    pub fn public_jwk(&self) -> Value {
        let (x, y) = coordinates(&self.pair);
        json!({
            "kty": "EC",
            "crv": "P-384",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
            "key_ops": ["verify"],
        })
    }

    /// A signed assertion for `client_id` at `token_url`, issued `now`
    /// (seconds since the epoch), with a random `jti`.
    pub fn assertion(&self, client_id: &str, token_url: &str, now: u64) -> anyhow::Result<String> {
        let header = json!({ "alg": ALGORITHM, "typ": "JWT", "kid": self.kid });
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
            "jti": uuid_like(),
        });
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("the assertion could not be signed"))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }
}

/// The affine coordinates of the public point (SEC 1 uncompressed form:
/// `04 || x || y`, 48 bytes each on P-384).
fn coordinates(pair: &EcdsaKeyPair) -> (Vec<u8>, Vec<u8>) {
    let point = pair.public_key().as_ref();
    let (x, y) = point[1..].split_at((point.len() - 1) / 2);
    (x.to_vec(), y.to_vec())
}

/// RFC 7638 thumbprint: SHA-256 over the required members in lexical order.
fn thumbprint(x: &[u8], y: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"P-384","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(x),
        URL_SAFE_NO_PAD.encode(y)
    );
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()))
}

/// 128 random bits, hex: unique per assertion, so a provider that keeps
/// the `jti`s it saw can refuse a replay.
fn uuid_like() -> String {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes).expect("the system's random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assertion_verifies_under_the_published_key_and_says_what_smart_requires() {
        let made = AssertionKey::generate().unwrap();
        let again = AssertionKey::from_pkcs8(&made.pkcs8).unwrap();
        assert_eq!(made.key.kid(), again.kid());
        let jwt = made.key.assertion("app-1", "https://ehr.example/token", 1_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES384");
        assert_eq!(header["kid"], made.key.kid());
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some("app-1"), Some("app-1")));
        assert_eq!(claims["aud"], "https://ehr.example/token");
        assert!(claims["exp"].as_u64().unwrap() <= 1_000 + 300);
        let other = made.key.assertion("app-1", "https://ehr.example/token", 1_000).unwrap();
        let other: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(other.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_ne!(claims["jti"], other["jti"]);

        let jwk = made.key.public_jwk();
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        let point = [&[4u8][..], &x, &y].concat();
        let public = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P384_SHA384_FIXED, point);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature).unwrap();
        assert!(public.verify(b"something else", &signature).is_err());
    }
}
