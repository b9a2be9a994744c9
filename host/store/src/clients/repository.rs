//! The registry behind a trait object: what the gateway calls, whichever
//! database keeps the clients.

use serde_json::Value;

use super::*;

/// What a method of the client registry's repository returns.
pub type RegistryFuture<'a, T> = crate::RepoFuture<'a, T, RegistryError>;

/// Where registered clients, their secrets and JWK Sets, used client
/// assertions and revoked tokens are kept, and the change trail read back.
/// Secrets go in once and come back only as a yes or no.
pub trait ClientRepository: Send + Sync {
    /// A new registration: an active production client and its test twin,
    /// each with a first secret, shown this once.
    fn create<'a>(
        &'a self,
        name: &'a str,
        tenants: &'a [String],
        actor: &'a str,
    ) -> RegistryFuture<'a, ((Client, String), (Client, String))>;
    fn list(&self) -> RegistryFuture<'_, Vec<Client>>;
    fn get<'a>(&'a self, client_id: &'a str) -> RegistryFuture<'a, Option<Client>>;
    fn add_secret<'a>(
        &'a self,
        client_id: &'a str,
        new: &'a NewSecret,
        actor: &'a str,
    ) -> RegistryFuture<'a, (SecretInfo, String)>;
    /// Usable secrets that stop working within `within_seconds`, soonest first.
    fn expiring(&self, within_seconds: i64) -> RegistryFuture<'_, Vec<ExpiringSecret>>;
    fn revoke_secret<'a>(&'a self, client_id: &'a str, secret_id: &'a str, actor: &'a str) -> RegistryFuture<'a, ()>;
    /// A new secret; the others stop at `grace_until` (Unix seconds).
    fn rotate<'a>(
        &'a self,
        client_id: &'a str,
        grace_until: i64,
        actor: &'a str,
    ) -> RegistryFuture<'a, (SecretInfo, String)>;
    fn set_jwks<'a>(&'a self, client_id: &'a str, jwks: Option<&'a Value>, actor: &'a str) -> RegistryFuture<'a, ()>;
    fn set_status<'a>(&'a self, client_id: &'a str, status: ClientStatus, actor: &'a str) -> RegistryFuture<'a, ()>;
    fn delete<'a>(&'a self, client_id: &'a str, actor: &'a str) -> RegistryFuture<'a, ()>;
    /// The active client if `secret` is one of its usable secrets.
    fn authenticate<'a>(&'a self, client_id: &'a str, secret: &'a str) -> RegistryFuture<'a, Option<Client>>;
    /// Whether the assertion `jti` of `client_id` is used for the first time.
    fn use_assertion<'a>(&'a self, client_id: &'a str, jti: &'a str, expires_at: i64) -> RegistryFuture<'a, bool>;
    fn record_revocation<'a>(&'a self, jti: &'a str, expires_at: i64) -> RegistryFuture<'a, ()>;
    /// Revoked tokens not yet expired: `(jti, expires_at)`.
    fn revocations(&self) -> RegistryFuture<'_, Vec<(String, i64)>>;
    /// The client's environment if it is enabled, and whether token `jti`
    /// was revoked, read now.
    fn standing<'a>(&'a self, client_id: &'a str, jti: Option<&'a str>) -> RegistryFuture<'a, Standing>;
    /// Whether other gateways share this registry (a database server, not a
    /// file of this gateway's): then nothing read from it is kept.
    fn is_shared(&self) -> bool;
    /// The newest `limit` change events, newest first.
    fn audit_events(&self, limit: i64) -> RegistryFuture<'_, Vec<Value>>;
    /// Tokens issued and refused per `bucket` seconds since `since`.
    fn token_activity<'a>(
        &'a self,
        client_id: &'a str,
        since: i64,
        bucket: i64,
    ) -> RegistryFuture<'a, Vec<(i64, i64, i64)>>;
}

impl ClientRepository for Registry {
    fn standing<'a>(&'a self, client_id: &'a str, jti: Option<&'a str>) -> RegistryFuture<'a, Standing> {
        Box::pin(Registry::standing(self, client_id, jti))
    }
    fn is_shared(&self) -> bool {
        self.store.backend() == crate::Backend::Postgres
    }
    fn create<'a>(
        &'a self,
        name: &'a str,
        tenants: &'a [String],
        actor: &'a str,
    ) -> RegistryFuture<'a, ((Client, String), (Client, String))> {
        Box::pin(Registry::create_registration(self, name, tenants, actor))
    }
    fn list(&self) -> RegistryFuture<'_, Vec<Client>> {
        Box::pin(Registry::list(self))
    }
    fn get<'a>(&'a self, client_id: &'a str) -> RegistryFuture<'a, Option<Client>> {
        Box::pin(Registry::get(self, client_id))
    }
    fn add_secret<'a>(
        &'a self,
        client_id: &'a str,
        new: &'a NewSecret,
        actor: &'a str,
    ) -> RegistryFuture<'a, (SecretInfo, String)> {
        Box::pin(Registry::add_secret(self, client_id, new, actor))
    }
    fn expiring(&self, within_seconds: i64) -> RegistryFuture<'_, Vec<ExpiringSecret>> {
        Box::pin(Registry::expiring(self, within_seconds))
    }
    fn revoke_secret<'a>(&'a self, client_id: &'a str, secret_id: &'a str, actor: &'a str) -> RegistryFuture<'a, ()> {
        Box::pin(Registry::revoke_secret(self, client_id, secret_id, actor))
    }
    fn rotate<'a>(
        &'a self,
        client_id: &'a str,
        grace_until: i64,
        actor: &'a str,
    ) -> RegistryFuture<'a, (SecretInfo, String)> {
        Box::pin(Registry::rotate(self, client_id, grace_until, actor))
    }
    fn set_jwks<'a>(&'a self, client_id: &'a str, jwks: Option<&'a Value>, actor: &'a str) -> RegistryFuture<'a, ()> {
        Box::pin(Registry::set_jwks(self, client_id, jwks, actor))
    }
    fn set_status<'a>(&'a self, client_id: &'a str, status: ClientStatus, actor: &'a str) -> RegistryFuture<'a, ()> {
        Box::pin(Registry::set_status(self, client_id, status, actor))
    }
    fn delete<'a>(&'a self, client_id: &'a str, actor: &'a str) -> RegistryFuture<'a, ()> {
        Box::pin(Registry::delete(self, client_id, actor))
    }
    fn authenticate<'a>(&'a self, client_id: &'a str, secret: &'a str) -> RegistryFuture<'a, Option<Client>> {
        Box::pin(Registry::authenticate(self, client_id, secret))
    }
    fn use_assertion<'a>(&'a self, client_id: &'a str, jti: &'a str, expires_at: i64) -> RegistryFuture<'a, bool> {
        Box::pin(Registry::use_assertion(self, client_id, jti, expires_at))
    }
    fn record_revocation<'a>(&'a self, jti: &'a str, expires_at: i64) -> RegistryFuture<'a, ()> {
        Box::pin(Registry::record_revocation(self, jti, expires_at))
    }
    fn revocations(&self) -> RegistryFuture<'_, Vec<(String, i64)>> {
        Box::pin(Registry::revocations(self))
    }
    fn audit_events(&self, limit: i64) -> RegistryFuture<'_, Vec<Value>> {
        Box::pin(Registry::audit_events(self, limit))
    }
    fn token_activity<'a>(
        &'a self,
        client_id: &'a str,
        since: i64,
        bucket: i64,
    ) -> RegistryFuture<'a, Vec<(i64, i64, i64)>> {
        Box::pin(Registry::token_activity(self, client_id, since, bucket))
    }
}
