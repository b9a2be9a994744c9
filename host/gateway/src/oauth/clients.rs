//! The clients allowed to obtain tokens, and secret checks in constant time.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ClientConfig;

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub name: Option<String>,
    secret_sha256: [u8; 32],
    /// Lower-case tenant ids the client may ask tokens for.
    pub tenants: Vec<String>,
}

/// Every client, by id.
#[derive(Debug, Clone, Default)]
pub struct ClientRegistry {
    clients: HashMap<String, Client>,
}

impl ClientRegistry {
    pub fn from_config(clients: &[ClientConfig]) -> anyhow::Result<Self> {
        let mut registry = ClientRegistry::default();
        for c in clients {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(&c.secret_sha256, &mut digest)
                .map_err(|_| anyhow::anyhow!("client `{}`: secret_sha256 is not 64 hex digits", c.client_id))?;
            registry.insert(Client {
                client_id: c.client_id.clone(),
                name: c.name.clone(),
                secret_sha256: digest,
                tenants: c.tenants.iter().map(|t| t.to_ascii_lowercase()).collect(),
            });
        }
        Ok(registry)
    }

    fn insert(&mut self, client: Client) {
        self.clients.insert(client.client_id.clone(), client);
    }

    /// Registers a client with a plaintext secret (the demo's own client).
    pub fn add(&mut self, client_id: &str, name: &str, secret: &str, tenants: &[String]) {
        self.insert(Client {
            client_id: client_id.to_owned(),
            name: Some(name.to_owned()),
            secret_sha256: Sha256::digest(secret.as_bytes()).into(),
            tenants: tenants.iter().map(|t| t.to_ascii_lowercase()).collect(),
        });
    }

    /// The client if `secret` is its secret. An unknown client costs the same
    /// work as a wrong secret, and both answer `None`.
    pub fn authenticate(&self, client_id: &str, secret: &str) -> Option<&Client> {
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        match self.clients.get(client_id) {
            Some(c) if bool::from(c.secret_sha256.ct_eq(&presented)) => Some(c),
            Some(_) => None,
            None => {
                let _ = [0u8; 32].ct_eq(&presented);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhirgate_core::secret::generate_secret;

    #[test]
    fn secrets_check() {
        let mut r = ClientRegistry::default();
        let secret = generate_secret();
        assert_eq!(secret.len(), 43);
        r.add("app", "App", &secret, &["7F0C3A4E-2B51-4C1E-9D3A-0C6F5E2B8A11".into()]);
        assert!(r.authenticate("app", &secret).is_some());
        assert!(r.authenticate("app", "wrong").is_none());
        assert!(r.authenticate("other", &secret).is_none());
        assert_eq!(r.authenticate("app", &secret).unwrap().tenants[0], "7f0c3a4e-2b51-4c1e-9d3a-0c6f5e2b8a11");
    }
}
