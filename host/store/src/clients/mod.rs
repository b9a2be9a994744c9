//! The client registry: OAuth clients, their secrets (stored only as a keyed
//! hash), and an audit event for every change.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::Row;
use subtle::ConstantTimeEq;

use super::Store;
use fhirgate_core::clock::now_seconds;
use fhirgate_core::environment::Environment;
use fhirgate_core::ids::is_guid;
use fhirgate_core::secret::generate_secret;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no client `{0}`")]
    UnknownClient(String),
    #[error("client `{client}` has no secret `{secret}`")]
    UnknownSecret { client: String, secret: String },
    #[error("`{0}` is not a tenant id (a GUID)")]
    InvalidTenant(String),
    #[error("a client needs a name and at least one tenant")]
    Incomplete,
    #[error("the JWK Set is invalid: {0}")]
    InvalidJwks(String),
    #[error("the secret is invalid: {0}")]
    InvalidSecret(String),
    #[error("the store failed: {0}")]
    Store(#[from] sqlx::Error),
}

/// Whether a client may obtain tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientStatus {
    Active,
    Disabled,
}

impl ClientStatus {
    fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Active => "active",
            ClientStatus::Disabled => "disabled",
        }
    }
}

/// A secret as the registry shows it: never the secret or its hash.
#[derive(Debug, Clone, Serialize)]
pub struct SecretInfo {
    pub secret_id: String,
    /// What the secret is for (where it is deployed, say).
    pub description: String,
    /// Who created it, as the audit trail names them.
    pub created_by: String,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds")]
    pub created_at: i64,
    /// The secret stops working at this time (Unix seconds).
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds_opt")]
    pub expires_at: Option<i64>,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds_opt")]
    pub revoked_at: Option<i64>,
    /// When a token was last issued with it, to the minute.
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds_opt")]
    pub last_used_at: Option<i64>,
}

/// What a new secret is given: a description, and when it stops working.
#[derive(Debug, Clone, Default)]
pub struct NewSecret {
    pub description: String,
    pub expires_at: Option<i64>,
}

impl NewSecret {
    /// A secret described by `description` that stops working `days` days
    /// from now (never, without).
    pub fn expiring_in(description: impl Into<String>, days: Option<u64>) -> NewSecret {
        let expires_at =
            days.map(|d| now_seconds().saturating_add(d.saturating_mul(86_400)).min(i64::MAX as u64) as i64);
        NewSecret { description: description.into(), expires_at }
    }
}

/// A usable secret that stops working soon.
#[derive(Debug, Clone, Serialize)]
pub struct ExpiringSecret {
    pub client_id: String,
    pub client_name: String,
    pub secret_id: String,
    pub description: String,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds")]
    pub expires_at: i64,
}

/// The longest a description may be.
const MAX_DESCRIPTION: usize = 200;

impl SecretInfo {
    /// Whether the secret works at `now`.
    pub fn usable(&self, now: i64) -> bool {
        usable(self.expires_at, self.revoked_at, now)
    }
}

/// Whether a secret with these end times works at `now`.
fn usable(expires_at: Option<i64>, revoked_at: Option<i64>, now: i64) -> bool {
    revoked_at.is_none() && expires_at.is_none_or(|e| now < e)
}

/// A token's client and the token itself as the registry knows them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The client's environment; `None` if it is unknown or disabled.
    pub environment: Option<Environment>,
    /// Whether the token was revoked.
    pub revoked: bool,
}

/// A registered client.
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    /// Lower-case tenant ids the client may ask tokens for.
    pub tenants: Vec<String>,
    pub status: ClientStatus,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds")]
    pub created_at: i64,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds")]
    pub updated_at: i64,
    pub secrets: Vec<SecretInfo>,
    /// The client's public JWK Set, for `private_key_jwt` authentication.
    pub jwks: Option<Value>,
    /// When a token was last issued to it with a secret, to the minute.
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds_opt")]
    pub last_used_at: Option<i64>,
    /// Which environment its tokens reach: `test` or `production`.
    pub environment: fhirgate_core::environment::Environment,
    /// The registration it belongs to with its twin in the other
    /// environment (the production client's id).
    pub registration_id: Option<String>,
}

type HmacSha256 = Hmac<Sha256>;

/// The registry over a [`Store`].
#[derive(Clone)]
pub struct Registry {
    store: Store,
    /// Key of the secret hashes. Kept outside the database, so a copy of the
    /// database alone does not allow testing guesses offline.
    pepper: Arc<[u8; 32]>,
}

fn now() -> i64 {
    now_seconds() as i64
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

impl Registry {
    pub fn new(store: Store, pepper: [u8; 32]) -> Self {
        Registry { store, pepper: Arc::new(pepper) }
    }

    /// The store the registry lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn hash(&self, secret: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(self.pepper.as_slice()).expect("HMAC takes any key length");
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Records an audit event. `detail` must not hold secrets.
    pub async fn audit(&self, actor: &str, action: &str, subject: &str, detail: Value) -> Result<(), RegistryError> {
        let mut conn = self.store.pool().acquire().await?;
        super::directory::record_event(&mut conn, actor, action, subject, &detail).await?;
        Ok(())
    }

    /// The newest `limit` audit events, newest first.
    pub async fn audit_events(&self, limit: i64) -> Result<Vec<Value>, RegistryError> {
        let rows = sqlx::query(
            "SELECT event_id, at, actor, action, subject, detail FROM audit_events ORDER BY at DESC, event_id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(json!({
                    "event_id": r.try_get::<String, _>("event_id")?,
                    "at": fhirgate_core::clock::format_seconds(r.try_get::<i64, _>("at")?),
                    "actor": r.try_get::<String, _>("actor")?,
                    "action": r.try_get::<String, _>("action")?,
                    "subject": r.try_get::<String, _>("subject")?,
                    "detail": serde_json::from_str::<Value>(&detail).unwrap_or(Value::Null),
                }))
            })
            .collect()
    }

    /// Tokens issued to `client_id` and its refused authentications since
    /// `since` (Unix seconds), counted per `bucket` seconds: `(bucket start,
    /// issued, refused)`, oldest first, empty buckets left out.
    pub async fn token_activity(
        &self,
        client_id: &str,
        since: i64,
        bucket: i64,
    ) -> Result<Vec<(i64, i64, i64)>, RegistryError> {
        let bucket = bucket.max(1);
        let rows = sqlx::query(
            "SELECT (at / $1) * $1 AS bucket, \
             CAST(SUM(CASE WHEN action = 'token.issued' THEN 1 ELSE 0 END) AS BIGINT) AS issued, \
             CAST(SUM(CASE WHEN action = 'token.refused' THEN 1 ELSE 0 END) AS BIGINT) AS refused \
             FROM audit_events WHERE subject = $2 AND at >= $3 AND action IN ('token.issued', 'token.refused') \
             GROUP BY (at / $1) * $1 ORDER BY bucket",
        )
        .bind(bucket)
        .bind(format!("client:{client_id}"))
        .bind(since)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((r.try_get::<i64, _>("bucket")?, r.try_get::<i64, _>("issued")?, r.try_get::<i64, _>("refused")?))
            })
            .collect()
    }

    /// Registers a client and returns it with its first secret, which is
    /// shown this once and never stored in clear.
    pub async fn create(&self, name: &str, tenants: &[String], actor: &str) -> Result<(Client, String), RegistryError> {
        self.create_in(name, tenants, Environment::Production, None, actor).await
    }

    /// Registers an app as EHR vendors' developer portals do: a production
    /// client and a test client (its twin, sharing the registration id),
    /// each with its first secret, shown this once.
    pub async fn create_registration(
        &self,
        name: &str,
        tenants: &[String],
        actor: &str,
    ) -> Result<((Client, String), (Client, String)), RegistryError> {
        let production = self.create_in(name, tenants, Environment::Production, None, actor).await?;
        let registration = production.0.client_id.clone();
        let test = self.create_in(name, tenants, Environment::Test, Some(&registration), actor).await?;
        Ok((production, test))
    }

    async fn create_in(
        &self,
        name: &str,
        tenants: &[String],
        environment: Environment,
        registration: Option<&str>,
        actor: &str,
    ) -> Result<(Client, String), RegistryError> {
        if name.trim().is_empty() || tenants.is_empty() {
            return Err(RegistryError::Incomplete);
        }
        if let Some(t) = tenants.iter().find(|t| !is_guid(t)) {
            return Err(RegistryError::InvalidTenant(t.clone()));
        }
        let mut tenants: Vec<String> = tenants.iter().map(|t| t.to_ascii_lowercase()).collect();
        tenants.sort();
        tenants.dedup();
        let client_id = uuid::Uuid::new_v4().to_string();
        let at = now();
        sqlx::query(
            "INSERT INTO clients (client_id, name, tenants, status, created_at, updated_at, environment, \
             registration_id) VALUES ($1, $2, $3, $4, $5, $5, $6, $7)",
        )
        .bind(&client_id)
        .bind(name.trim())
        .bind(serde_json::to_string(&tenants).unwrap_or_default())
        .bind(ClientStatus::Active.as_str())
        .bind(at)
        .bind(environment.as_str())
        .bind(registration.unwrap_or(&client_id))
        .execute(self.store.pool())
        .await?;
        let detail = json!({ "name": name.trim(), "tenants": tenants, "environment": environment });
        self.audit(actor, "client.create", &client_id, detail).await?;
        let first = NewSecret { description: "first secret".into(), expires_at: None };
        let (_, secret) =
            self.insert_secret(&mut *self.store.pool().acquire().await?, &client_id, &first, actor).await?;
        let client = self.get(&client_id).await?.ok_or_else(|| RegistryError::UnknownClient(client_id.clone()))?;
        Ok((client, secret))
    }

    async fn insert_secret(
        &self,
        db: &mut sqlx::AnyConnection,
        client_id: &str,
        new: &NewSecret,
        created_by: &str,
    ) -> Result<(SecretInfo, String), RegistryError> {
        let secret = generate_secret();
        let info = SecretInfo {
            secret_id: new_id("sec_"),
            description: new.description.trim().to_owned(),
            created_by: created_by.to_owned(),
            created_at: now(),
            expires_at: new.expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        sqlx::query(
            "INSERT INTO client_secrets (secret_id, client_id, hash, created_at, expires_at, revoked_at, \
             description, created_by) VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)",
        )
        .bind(&info.secret_id)
        .bind(client_id)
        .bind(self.hash(&secret))
        .bind(info.created_at)
        .bind(info.expires_at)
        .bind(&info.description)
        .bind(&info.created_by)
        .execute(&mut *db)
        .await?;
        Ok((info, secret))
    }

    /// Usable secrets of every client that stop working within
    /// `within_seconds`, soonest first.
    pub async fn expiring(&self, within_seconds: i64) -> Result<Vec<ExpiringSecret>, RegistryError> {
        let at = now();
        let rows = sqlx::query(
            "SELECT s.client_id, c.name, s.secret_id, s.description, s.expires_at FROM client_secrets s \
             JOIN clients c ON c.client_id = s.client_id \
             WHERE s.revoked_at IS NULL AND s.expires_at IS NOT NULL AND s.expires_at > $1 AND s.expires_at <= $2 \
             ORDER BY s.expires_at, s.secret_id",
        )
        .bind(at)
        .bind(at.saturating_add(within_seconds))
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ExpiringSecret {
                    client_id: r.try_get("client_id")?,
                    client_name: r.try_get("name")?,
                    secret_id: r.try_get("secret_id")?,
                    description: r.try_get("description")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(RegistryError::from)
    }

    /// Every client, without secrets.
    pub async fn list(&self) -> Result<Vec<Client>, RegistryError> {
        let ids: Vec<String> = sqlx::query("SELECT client_id FROM clients ORDER BY created_at, client_id")
            .fetch_all(self.store.pool())
            .await?
            .iter()
            .map(|r| r.try_get("client_id"))
            .collect::<Result<_, _>>()?;
        let mut clients = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(c) = self.get(&id).await? {
                clients.push(c);
            }
        }
        Ok(clients)
    }

    /// One client with its secrets' metadata.
    pub async fn get(&self, client_id: &str) -> Result<Option<Client>, RegistryError> {
        let Some(mut client) = self.client_row(client_id).await? else {
            return Ok(None);
        };
        client.secrets = sqlx::query(
            "SELECT secret_id, description, created_by, created_at, expires_at, revoked_at, last_used_at \
             FROM client_secrets WHERE client_id = $1 ORDER BY created_at, secret_id",
        )
        .bind(client_id)
        .fetch_all(self.store.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(SecretInfo {
                secret_id: r.try_get("secret_id")?,
                description: r.try_get("description")?,
                created_by: r.try_get("created_by")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                revoked_at: r.try_get("revoked_at")?,
                last_used_at: r.try_get("last_used_at")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Some(client))
    }

    /// The client row alone, `secrets` left empty.
    async fn client_row(&self, client_id: &str) -> Result<Option<Client>, RegistryError> {
        let Some(row) = sqlx::query(
            "SELECT client_id, name, tenants, status, created_at, updated_at, jwks, last_used_at, environment, \
             registration_id FROM clients WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(self.store.pool())
        .await?
        else {
            return Ok(None);
        };
        let tenants: String = row.try_get("tenants")?;
        let status: String = row.try_get("status")?;
        let jwks: Option<String> = row.try_get("jwks")?;
        Ok(Some(Client {
            client_id: row.try_get("client_id")?,
            name: row.try_get("name")?,
            tenants: serde_json::from_str(&tenants).unwrap_or_default(),
            status: if status == "active" { ClientStatus::Active } else { ClientStatus::Disabled },
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            secrets: Vec::new(),
            jwks: jwks.and_then(|j| serde_json::from_str(&j).ok()),
            last_used_at: row.try_get("last_used_at")?,
            environment: Environment::parse(&row.try_get::<String, _>("environment")?).unwrap_or_default(),
            registration_id: row.try_get("registration_id")?,
        }))
    }

    async fn require(&self, client_id: &str) -> Result<Client, RegistryError> {
        self.get(client_id).await?.ok_or_else(|| RegistryError::UnknownClient(client_id.to_owned()))
    }

    /// Adds a secret beside the existing ones.
    pub async fn add_secret(
        &self,
        client_id: &str,
        new: &NewSecret,
        actor: &str,
    ) -> Result<(SecretInfo, String), RegistryError> {
        if new.description.chars().count() > MAX_DESCRIPTION {
            return Err(RegistryError::InvalidSecret(format!("the description is over {MAX_DESCRIPTION} characters")));
        }
        if new.expires_at.is_some_and(|at| at <= now()) {
            return Err(RegistryError::InvalidSecret("the expiry is not in the future".into()));
        }
        self.require(client_id).await?;
        let (info, secret) =
            self.insert_secret(&mut *self.store.pool().acquire().await?, client_id, new, actor).await?;
        let detail =
            json!({ "secret_id": info.secret_id, "description": info.description, "expires_at": info.expires_at });
        self.audit(actor, "secret.add", client_id, detail).await?;
        Ok((info, secret))
    }

    /// Revokes one secret now.
    pub async fn revoke_secret(&self, client_id: &str, secret_id: &str, actor: &str) -> Result<(), RegistryError> {
        let done = sqlx::query(
            "UPDATE client_secrets SET revoked_at = $1 WHERE client_id = $2 AND secret_id = $3 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(client_id)
        .bind(secret_id)
        .execute(self.store.pool())
        .await?;
        if done.rows_affected() == 0 {
            self.require(client_id).await?;
            return Err(RegistryError::UnknownSecret { client: client_id.to_owned(), secret: secret_id.to_owned() });
        }
        self.audit(actor, "secret.revoke", client_id, json!({ "secret_id": secret_id })).await
    }

    /// Issues a new secret; every secret that works now keeps working until
    /// `grace_until` (Unix seconds), then stops.
    pub async fn rotate(
        &self,
        client_id: &str,
        grace_until: i64,
        actor: &str,
    ) -> Result<(SecretInfo, String), RegistryError> {
        self.require(client_id).await?;
        // One transaction, under the write lock: two rotations at once (on
        // two replicas) take turns, and the later one ends the earlier
        // one's secret at the grace end, as if they had come one by one.
        let mut tx = self.store.begin_write().await?;
        sqlx::query(
            "UPDATE client_secrets SET expires_at = $1 WHERE client_id = $2 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(grace_until)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
        let rotation = NewSecret { description: "rotation".into(), expires_at: None };
        let (info, secret) = self.insert_secret(&mut tx, client_id, &rotation, actor).await?;
        let detail = json!({ "secret_id": info.secret_id, "grace_until": grace_until });
        super::directory::record_event(&mut tx, actor, "secret.rotate", client_id, &detail).await?;
        tx.commit().await?;
        Ok((info, secret))
    }

    /// Registers (or, with `None`, removes) the client's public JWK Set for
    /// `private_key_jwt` authentication. Private key material is refused.
    pub async fn set_jwks(&self, client_id: &str, jwks: Option<&Value>, actor: &str) -> Result<(), RegistryError> {
        let text = match jwks {
            Some(set) => {
                let keys = set
                    .get("keys")
                    .and_then(Value::as_array)
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| RegistryError::InvalidJwks("expected {\"keys\": [ … ]}".into()))?;
                for k in keys {
                    if ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|m| k.get(m).is_some()) {
                        return Err(RegistryError::InvalidJwks("it holds private key material".into()));
                    }
                    serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone())
                        .map_err(|e| RegistryError::InvalidJwks(e.to_string()))?;
                }
                Some(set.to_string())
            }
            None => None,
        };
        let done = sqlx::query("UPDATE clients SET jwks = $1, updated_at = $2 WHERE client_id = $3")
            .bind(text)
            .bind(now())
            .bind(client_id)
            .execute(self.store.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::UnknownClient(client_id.to_owned()));
        }
        self.audit(actor, "client.jwks", client_id, json!({ "registered": jwks.is_some() })).await
    }

    /// Remembers an assertion id until `expires_at`; `false` if it was
    /// already used (a replay).
    pub async fn use_assertion(&self, client_id: &str, jti: &str, expires_at: i64) -> Result<bool, RegistryError> {
        sqlx::query("DELETE FROM used_assertions WHERE expires_at < $1").bind(now()).execute(self.store.pool()).await?;
        let inserted = sqlx::query(
            "INSERT INTO used_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(expires_at)
        .execute(self.store.pool())
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Records a revoked token until `expires_at`, and forgets expired ones.
    pub async fn record_revocation(&self, jti: &str, expires_at: i64) -> Result<(), RegistryError> {
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1").bind(now()).execute(self.store.pool()).await?;
        sqlx::query("INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(jti)
            .bind(expires_at)
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// What a request with a token of `client_id` (its id `jti`) must know,
    /// read at once in one query: the environment of the client if it exists
    /// and is enabled, and whether the token was revoked.
    pub async fn standing(&self, client_id: &str, jti: Option<&str>) -> Result<Standing, RegistryError> {
        let row = sqlx::query(
            "SELECT (SELECT status FROM clients WHERE client_id = $1) AS status, \
             (SELECT environment FROM clients WHERE client_id = $1) AS environment, \
             (SELECT COUNT(*) FROM revoked_tokens WHERE jti = $2) AS revoked",
        )
        .bind(client_id)
        .bind(jti.unwrap_or(""))
        .fetch_one(self.store.pool())
        .await?;
        let status: Option<String> = row.try_get("status")?;
        let environment: Option<String> = row.try_get("environment")?;
        let revoked: i64 = row.try_get("revoked")?;
        Ok(Standing {
            environment: match (status.as_deref(), environment) {
                (Some("active"), Some(e)) => Some(Environment::parse(&e).unwrap_or_default()),
                _ => None,
            },
            revoked: jti.is_some() && revoked > 0,
        })
    }

    /// Every revoked token that has not expired yet, as (`jti`, `exp`).
    pub async fn revocations(&self) -> Result<Vec<(String, i64)>, RegistryError> {
        let rows = sqlx::query("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at >= $1")
            .bind(now())
            .fetch_all(self.store.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get("jti")?, r.try_get("expires_at")?))).collect()
    }

    /// Enables or disables a client.
    pub async fn set_status(&self, client_id: &str, status: ClientStatus, actor: &str) -> Result<(), RegistryError> {
        let done = sqlx::query("UPDATE clients SET status = $1, updated_at = $2 WHERE client_id = $3")
            .bind(status.as_str())
            .bind(now())
            .bind(client_id)
            .execute(self.store.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::UnknownClient(client_id.to_owned()));
        }
        let action = if status == ClientStatus::Active { "client.enable" } else { "client.disable" };
        self.audit(actor, action, client_id, json!({})).await
    }

    /// Deletes a client and its secrets.
    pub async fn delete(&self, client_id: &str, actor: &str) -> Result<(), RegistryError> {
        sqlx::query("DELETE FROM client_secrets WHERE client_id = $1")
            .bind(client_id)
            .execute(self.store.pool())
            .await?;
        let done =
            sqlx::query("DELETE FROM clients WHERE client_id = $1").bind(client_id).execute(self.store.pool()).await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::UnknownClient(client_id.to_owned()));
        }
        self.audit(actor, "client.delete", client_id, json!({})).await
    }

    /// The active client if `secret` is one of its usable secrets. Every
    /// stored hash of the client is compared in constant time; an unknown
    /// client and a wrong secret both answer `None`.
    pub async fn authenticate(&self, client_id: &str, secret: &str) -> Result<Option<Client>, RegistryError> {
        let presented = self.hash(secret);
        let client = self.client_row(client_id).await?;
        // The secrets are read whether or not the client exists, so an
        // unknown client costs the same work as a wrong secret.
        let rows = sqlx::query(
            "SELECT secret_id, hash, expires_at, revoked_at, last_used_at FROM client_secrets WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_all(self.store.pool())
        .await?;
        let Some(client) = client.filter(|c| c.status == ClientStatus::Active) else {
            let _ = presented.as_bytes().ct_eq(&[0u8; 64]);
            return Ok(None);
        };
        let at = now();
        let mut matched = None;
        for r in rows {
            let hash: String = r.try_get("hash")?;
            let expires_at: Option<i64> = r.try_get("expires_at")?;
            let revoked_at: Option<i64> = r.try_get("revoked_at")?;
            let equal: bool = hash.as_bytes().ct_eq(presented.as_bytes()).into();
            if equal & usable(expires_at, revoked_at, at) {
                matched = Some((r.try_get::<String, _>("secret_id")?, r.try_get::<Option<i64>, _>("last_used_at")?));
            }
        }
        let Some((secret_id, secret_used)) = matched else { return Ok(None) };
        // Noted to the minute: a busy client does not write at every token.
        let stale = |used: Option<i64>| used.is_none_or(|u| u < at - 60);
        if stale(secret_used) {
            sqlx::query("UPDATE client_secrets SET last_used_at = $1 WHERE secret_id = $2")
                .bind(at)
                .bind(&secret_id)
                .execute(self.store.pool())
                .await?;
        }
        if stale(client.last_used_at) {
            sqlx::query("UPDATE clients SET last_used_at = $1 WHERE client_id = $2")
                .bind(at)
                .bind(&client.client_id)
                .execute(self.store.pool())
                .await?;
        }
        Ok(Some(client))
    }
}

mod repository;
pub use repository::{ClientRepository, RegistryFuture};

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13";

    crate::store_tests! {
        async fn secrets_carry_who_what_and_when_and_the_expiring_are_listed(store) {
            let r = Registry::new(store, [7u8; 32]);
            let (client, first) = r.create("App", &[T.to_owned()], "olga").await.unwrap();
            let id = &client.client_id;
            let soon = NewSecret { description: "ward tablets".into(), expires_at: Some(now() + 3 * 86_400) };
            let (info, _) = r.add_secret(id, &soon, "ada").await.unwrap();
            assert_eq!((info.description.as_str(), info.created_by.as_str()), ("ward tablets", "ada"));
            let past = NewSecret { description: String::new(), expires_at: Some(now() - 1) };
            assert!(matches!(r.add_secret(id, &past, "ada").await, Err(RegistryError::InvalidSecret(_))));
            let long = NewSecret { description: "x".repeat(201), expires_at: None };
            assert!(matches!(r.add_secret(id, &long, "ada").await, Err(RegistryError::InvalidSecret(_))));

            assert!(r.get(id).await.unwrap().unwrap().last_used_at.is_none());
            assert!(r.authenticate(id, &first).await.unwrap().is_some());
            let shown = r.get(id).await.unwrap().unwrap();
            assert!(shown.last_used_at.is_some());
            // Secrets made in the same second come in any order.
            let mut used: Vec<_> = shown
                .secrets
                .iter()
                .map(|s| (s.description.as_str(), s.last_used_at.is_some(), s.created_by.as_str()))
                .collect();
            used.sort();
            assert_eq!(used, [("first secret", true, "olga"), ("ward tablets", false, "ada")]);

            let expiring = r.expiring(7 * 86_400).await.unwrap();
            assert_eq!(expiring.len(), 1);
            assert_eq!(
                (expiring[0].secret_id.as_str(), expiring[0].client_name.as_str()),
                (info.secret_id.as_str(), "App")
            );
            assert!(r.expiring(86_400).await.unwrap().is_empty(), "not within a day");
        }
    }

    crate::store_tests! {
        async fn lifecycle(store) {
            let r = Registry::new(store, [7u8; 32]);
            let (client, first) = r.create("App", &[T.to_uppercase()], "test").await.unwrap();
            assert_eq!(client.tenants, vec![T.to_owned()]);
            assert!(r.authenticate(&client.client_id, &first).await.unwrap().is_some());
            assert!(r.authenticate(&client.client_id, "wrong").await.unwrap().is_none());
            assert!(r.authenticate("nobody", &first).await.unwrap().is_none());

            let (second_info, second) = r.add_secret(&client.client_id, &NewSecret::default(), "test").await.unwrap();
            assert!(r.authenticate(&client.client_id, &first).await.unwrap().is_some());
            assert!(r.authenticate(&client.client_id, &second).await.unwrap().is_some());

            let secrets = r.get(&client.client_id).await.unwrap().unwrap().secrets;
            let first_id = secrets.iter().find(|s| s.secret_id != second_info.secret_id).unwrap().secret_id.clone();
            r.revoke_secret(&client.client_id, &first_id, "test").await.unwrap();
            assert!(r.authenticate(&client.client_id, &first).await.unwrap().is_none());
            assert!(r.authenticate(&client.client_id, &second).await.unwrap().is_some());

            // Rotation with a grace end in the past: the old secret stops at once.
            let (_, third) = r.rotate(&client.client_id, now() - 1, "test").await.unwrap();
            assert!(r.authenticate(&client.client_id, &second).await.unwrap().is_none());
            assert!(r.authenticate(&client.client_id, &third).await.unwrap().is_some());
            // With a grace end ahead, both work.
            let (_, fourth) = r.rotate(&client.client_id, now() + 3600, "test").await.unwrap();
            assert!(r.authenticate(&client.client_id, &third).await.unwrap().is_some());
            assert!(r.authenticate(&client.client_id, &fourth).await.unwrap().is_some());

            r.set_status(&client.client_id, ClientStatus::Disabled, "test").await.unwrap();
            assert!(r.authenticate(&client.client_id, &fourth).await.unwrap().is_none());
            r.set_status(&client.client_id, ClientStatus::Active, "test").await.unwrap();
            assert!(r.authenticate(&client.client_id, &fourth).await.unwrap().is_some());

            r.delete(&client.client_id, "test").await.unwrap();
            assert!(r.get(&client.client_id).await.unwrap().is_none());
            assert!(matches!(r.delete(&client.client_id, "test").await, Err(RegistryError::UnknownClient(_))));

            let events = r.audit_events(100).await.unwrap();
            let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
            for a in ["client.create", "secret.add", "secret.revoke", "secret.rotate", "client.disable", "client.delete"] {
                assert!(actions.contains(&a), "{a} missing from {actions:?}");
            }
            let dump = serde_json::to_string(&events).unwrap();
            for s in [&first, &second, &third, &fourth] {
                assert!(!dump.contains(s.as_str()), "a secret reached the audit trail");
            }
        }
    }

    crate::store_tests! {
        async fn bad_input_is_refused(store) {
            let r = Registry::new(store, [7u8; 32]);
            assert!(matches!(r.create("App", &["nope".into()], "t").await, Err(RegistryError::InvalidTenant(_))));
            assert!(matches!(r.create(" ", &[T.into()], "t").await, Err(RegistryError::Incomplete)));
            assert!(matches!(
                r.add_secret("missing", &NewSecret::default(), "t").await,
                Err(RegistryError::UnknownClient(_))
            ));
            let (c, _) = r.create("App", &[T.into()], "t").await.unwrap();
            assert!(matches!(r.revoke_secret(&c.client_id, "sec_x", "t").await, Err(RegistryError::UnknownSecret { .. })));
        }
    }
}
