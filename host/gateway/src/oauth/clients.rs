//! The one client registry the authorization server asks: the clients the
//! configuration file declares (read-only, checked first) and, when the
//! gateway has a data directory, the clients registered in the store (made,
//! given secrets and disabled through the admin API and the CLI). Secrets are
//! checked in constant time either way.

use std::collections::HashMap;

use std::sync::Arc;

use fhirgate_store::clients::{ClientRepository, ClientStatus, RegistryError, Standing};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ClientConfig;
use fhirgate_core::environment::Environment;

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub name: Option<String>,
    secret_sha256: [u8; 32],
    /// Lower-case tenant ids the client may ask tokens for.
    pub tenants: Vec<String>,
    pub environment: Environment,
}

/// An authenticated client: who it is and which tenants it may act for.
pub struct Authenticated {
    pub client_id: String,
    pub tenants: Vec<String>,
}

/// How long a registered client's status is believed without asking the
/// store again: a change made elsewhere (the CLI, another gateway) takes
/// effect within this; one made through this gateway's admin API at once.
const STATUS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Every client the gateway knows.
#[derive(Clone)]
pub struct ClientRegistry {
    /// Declared in the configuration file, by id.
    clients: HashMap<String, Client>,
    /// Registered in the store, when the gateway has one that lasts.
    stored: Option<Arc<dyn ClientRepository>>,
    /// Registered clients' status: whether each exists and is enabled.
    statuses: Arc<quick_cache::sync::Cache<String, (Option<Environment>, std::time::Instant)>>,
}

impl Default for ClientRegistry {
    fn default() -> Self {
        ClientRegistry {
            clients: HashMap::new(),
            stored: None,
            statuses: Arc::new(quick_cache::sync::Cache::new(10_000)),
        }
    }
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
                environment: c.environment,
            });
        }
        Ok(registry)
    }

    /// Adds the clients registered in `registry`.
    pub fn with_store(mut self, registry: Arc<dyn ClientRepository>) -> Self {
        self.stored = Some(registry);
        self
    }

    /// The registered clients: with secrets, JWK Sets and a status; used
    /// assertions and revocations.
    pub fn stored(&self) -> Option<&dyn ClientRepository> {
        self.stored.as_deref()
    }

    /// The client whose secret `secret` is: a declared client first, then a
    /// registered one. A store failure is an error, never a match.
    pub async fn authenticate(&self, client_id: &str, secret: &str) -> Result<Option<Authenticated>, RegistryError> {
        if let Some(c) = self.declared(client_id, secret) {
            return Ok(Some(Authenticated { client_id: c.client_id.clone(), tenants: c.tenants.clone() }));
        }
        let Some(registry) = &self.stored else {
            return Ok(None);
        };
        let found = registry.authenticate(client_id, secret).await?;
        Ok(found.map(|c| Authenticated { client_id: c.client_id, tenants: c.tenants }))
    }

    /// The environment of `client_id` if it exists and is enabled: a
    /// declared client, or a registered one whose status was read at most
    /// [`STATUS_TTL`] ago. `None`: a token of this client is not honoured.
    pub async fn active_environment(&self, client_id: &str) -> Result<Option<Environment>, RegistryError> {
        if let Some(c) = self.clients.get(client_id) {
            return Ok(Some(c.environment));
        }
        let Some(registry) = &self.stored else {
            return Ok(None);
        };
        if let Some((environment, at)) = self.statuses.get(client_id)
            && at.elapsed() < STATUS_TTL
        {
            return Ok(environment);
        }
        let client = registry.get(client_id).await?;
        let environment = client.filter(|c| c.status == ClientStatus::Active).map(|c| c.environment);
        self.statuses.insert(client_id.to_owned(), (environment, std::time::Instant::now()));
        Ok(environment)
    }

    /// What a request with a token of `client_id` (its id `jti`) must know:
    /// the client's environment if it exists and is enabled, and whether the
    /// token was revoked (`revoked_here`: this gateway knows it was). On a
    /// registry other gateways share, both are read from it at every call,
    /// in one query, so a change made anywhere holds on the next request;
    /// otherwise the status as [`ClientRegistry::active_environment`] keeps it.
    pub async fn standing(
        &self,
        client_id: &str,
        jti: Option<&str>,
        revoked_here: bool,
    ) -> Result<Standing, RegistryError> {
        match &self.stored {
            Some(registry) if registry.is_shared() => {
                let mut standing = registry.standing(client_id, jti).await?;
                if let Some(c) = self.clients.get(client_id) {
                    standing.environment = Some(c.environment);
                }
                standing.revoked |= revoked_here;
                Ok(standing)
            }
            _ => Ok(Standing { environment: self.active_environment(client_id).await?, revoked: revoked_here }),
        }
    }

    /// The clients the configuration file declares.
    pub fn declared_clients(&self) -> impl Iterator<Item = &Client> {
        self.clients.values()
    }

    /// Forgets what is known of `client_id`'s status, after a change to it.
    pub fn forget(&self, client_id: &str) {
        self.statuses.remove(client_id);
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
            environment: Environment::Production,
        });
    }

    /// The declared client if `secret` is its secret. An unknown client
    /// costs the same work as a wrong secret, and both answer `None`.
    fn declared(&self, client_id: &str, secret: &str) -> Option<&Client> {
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

    const TENANT: &str = "7F0C3A4E-2B51-4C1E-9D3A-0C6F5E2B8A11";

    #[tokio::test]
    async fn secrets_check() {
        let mut r = ClientRegistry::default();
        let secret = generate_secret();
        assert_eq!(secret.len(), 43);
        r.add("app", "App", &secret, &[TENANT.into()]);
        assert!(r.authenticate("app", &secret).await.unwrap().is_some());
        assert!(r.authenticate("app", "wrong").await.unwrap().is_none());
        assert!(r.authenticate("other", &secret).await.unwrap().is_none());
        let found = r.authenticate("app", &secret).await.unwrap().unwrap();
        assert_eq!(found.tenants[0], "7f0c3a4e-2b51-4c1e-9d3a-0c6f5e2b8a11");
    }

    fhirgate_store::store_tests! {
        async fn declared_clients_then_registered_ones(store) {
                    let registry = fhirgate_store::Registry::new(store, [7u8; 32]);
            let (registered, registered_secret) = registry.create("Registered", &[TENANT.into()], "test").await.unwrap();
            let mut r = ClientRegistry::default();
            let declared_secret = generate_secret();
            r.add("declared", "Declared", &declared_secret, &[TENANT.into()]);
            let r = r.with_store(Arc::new(registry));
            let found = r.authenticate("declared", &declared_secret).await.unwrap().unwrap();
            assert_eq!(found.client_id, "declared");
            let found = r.authenticate(&registered.client_id, &registered_secret).await.unwrap().unwrap();
            assert_eq!(found.client_id, registered.client_id);
            // A declared client's secret opens no registered client, and back.
            assert!(r.authenticate(&registered.client_id, &declared_secret).await.unwrap().is_none());
            assert!(r.authenticate("declared", &registered_secret).await.unwrap().is_none());
            assert!(r.stored().is_some());
        }
    }
}
