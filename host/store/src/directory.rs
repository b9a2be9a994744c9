//! The tenant directory's tables: providers, tenant → provider mappings with
//! their approval state, and the generation counter gateways poll to notice
//! changes made by another process, behind [`DirectoryRepository`]: every
//! read and change is a [`DirectoryTx`].

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::Store;

/// A provider row; `spec` is the JSON the directory understands.
#[derive(Debug, Clone)]
pub struct ProviderRow {
    pub provider_id: String,
    pub base_url: String,
    pub spec: String,
    pub source: String,
    pub updated_at: i64,
}

/// A mapping row.
#[derive(Debug, Clone, Serialize)]
pub struct MappingRow {
    pub tenant_id: String,
    pub provider_id: String,
    pub state: String,
    pub approver: String,
    pub requested_by: String,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds")]
    pub requested_at: i64,
    pub decided_by: Option<String>,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds_opt")]
    pub decided_at: Option<i64>,
    pub note: Option<String>,
    pub source: String,
    /// SHA-256 of the provider declaration the mapping was requested for.
    #[serde(skip)]
    pub spec_sha256: String,
    /// The organization (hospital) of the tenant the URL belongs to; empty
    /// for mappings made before organizations, and the policy file's.
    pub organization: String,
    /// `test` or `production`: which clients' tokens it routes.
    pub environment: String,
    /// The live provider check's report when it was approved (JSON).
    #[serde(serialize_with = "as_json")]
    pub check_report: Option<String>,
}

/// Serializes stored JSON text as the JSON it holds.
fn as_json<S: serde::Serializer>(text: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    let value: Option<serde_json::Value> = text.as_deref().and_then(|t| serde_json::from_str(t).ok());
    serde::Serialize::serialize(&value, s)
}

/// An organization (a hospital) of a tenant.
#[derive(Debug, Clone, Serialize)]
pub struct OrganizationRow {
    pub tenant_id: String,
    pub organization_id: String,
    pub name: String,
    pub created_by: String,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds")]
    pub created_at: i64,
}

pub(crate) async fn organizations(db: &mut AnyConnection) -> Result<Vec<OrganizationRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT tenant_id, organization_id, name, created_by, created_at FROM organizations          ORDER BY tenant_id, organization_id",
    )
    .fetch_all(&mut *db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OrganizationRow {
                tenant_id: r.try_get("tenant_id")?,
                organization_id: r.try_get("organization_id")?,
                name: r.try_get("name")?,
                created_by: r.try_get("created_by")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

pub(crate) async fn upsert_organization(db: &mut AnyConnection, o: &OrganizationRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO organizations (tenant_id, organization_id, name, created_by, created_at)          VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, organization_id) DO UPDATE SET name = excluded.name",
    )
    .bind(&o.tenant_id)
    .bind(&o.organization_id)
    .bind(&o.name)
    .bind(&o.created_by)
    .bind(o.created_at)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// A provider's assertion key (`private_key_jwt`), its private half sealed.
#[derive(Debug, Clone)]
pub struct UpstreamKeyRow {
    pub kid: String,
    pub provider_id: String,
    pub algorithm: String,
    pub sealed_key: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub retire_at: Option<i64>,
}

const KEY_COLUMNS: &str = "kid, provider_id, algorithm, sealed_key, public_jwk, created_at, retire_at";

/// Provider credentials kept in the database, sealed: (name, sealed text).
pub(crate) async fn provider_secrets(db: &mut AnyConnection) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query("SELECT name, sealed FROM provider_secrets ORDER BY name").fetch_all(&mut *db).await?;
    rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("sealed")?))).collect()
}

pub(crate) async fn put_provider_secret(db: &mut AnyConnection, name: &str, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO provider_secrets (name, sealed, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(sealed)
    .bind(fhirgate_core::clock::now_seconds() as i64)
    .execute(&mut *db)
    .await?;
    Ok(())
}

pub(crate) async fn upstream_keys(db: &mut AnyConnection) -> Result<Vec<UpstreamKeyRow>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM upstream_keys ORDER BY provider_id, created_at, kid"))
        .fetch_all(&mut *db)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(UpstreamKeyRow {
                kid: r.try_get("kid")?,
                provider_id: r.try_get("provider_id")?,
                algorithm: r.try_get("algorithm")?,
                sealed_key: r.try_get("sealed_key")?,
                public_jwk: r.try_get("public_jwk")?,
                created_at: r.try_get("created_at")?,
                retire_at: r.try_get("retire_at")?,
            })
        })
        .collect()
}

pub(crate) async fn insert_upstream_key(db: &mut AnyConnection, k: &UpstreamKeyRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("INSERT INTO upstream_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
        .bind(&k.kid)
        .bind(&k.provider_id)
        .bind(&k.algorithm)
        .bind(&k.sealed_key)
        .bind(&k.public_jwk)
        .bind(k.created_at)
        .bind(k.retire_at)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Sets when the provider's keys that are not yet retiring leave its JWK
/// Set, except `keep` (the new current key).
pub(crate) async fn retire_upstream_keys(
    db: &mut AnyConnection,
    provider: &str,
    keep: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE upstream_keys SET retire_at = $1 WHERE provider_id = $2 AND kid <> $3 AND retire_at IS NULL")
        .bind(at)
        .bind(provider)
        .bind(keep)
        .execute(&mut *db)
        .await?;
    Ok(())
}

pub(crate) async fn generation(db: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT generation FROM directory_generation WHERE id = 1")
        .fetch_one(&mut *db)
        .await?
        .try_get::<i64, _>("generation")
}

pub(crate) async fn bump_generation(db: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE directory_generation SET generation = generation + 1 WHERE id = 1").execute(&mut *db).await?;
    crate::changes::announce(db, crate::changes::Topic::Directory).await
}

pub(crate) async fn providers(db: &mut AnyConnection) -> Result<Vec<ProviderRow>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT provider_id, base_url, spec, source, updated_at FROM providers ORDER BY provider_id")
            .fetch_all(&mut *db)
            .await?;
    rows.iter().map(provider_row).collect()
}

pub(crate) async fn provider(db: &mut AnyConnection, id: &str) -> Result<Option<ProviderRow>, sqlx::Error> {
    let row =
        sqlx::query("SELECT provider_id, base_url, spec, source, updated_at FROM providers WHERE provider_id = $1")
            .bind(id)
            .fetch_optional(&mut *db)
            .await?;
    row.as_ref().map(provider_row).transpose()
}

fn provider_row(r: &sqlx::any::AnyRow) -> Result<ProviderRow, sqlx::Error> {
    Ok(ProviderRow {
        provider_id: r.try_get("provider_id")?,
        base_url: r.try_get("base_url")?,
        spec: r.try_get("spec")?,
        source: r.try_get("source")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub(crate) async fn upsert_provider(db: &mut AnyConnection, row: &ProviderRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO providers (provider_id, base_url, spec, source, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (provider_id) DO UPDATE SET base_url = excluded.base_url, spec = excluded.spec, \
         source = excluded.source, updated_at = excluded.updated_at",
    )
    .bind(&row.provider_id)
    .bind(&row.base_url)
    .bind(&row.spec)
    .bind(&row.source)
    .bind(row.updated_at)
    .execute(&mut *db)
    .await?;
    Ok(())
}

pub(crate) async fn delete_provider(db: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM upstream_keys WHERE provider_id = $1").bind(id).execute(&mut *db).await?;
    sqlx::query("DELETE FROM providers WHERE provider_id = $1").bind(id).execute(&mut *db).await?;
    Ok(())
}

const MAPPING_COLUMNS: &str = "tenant_id, provider_id, state, approver, requested_by, requested_at, decided_by, \
     decided_at, note, source, spec_sha256, organization, environment, check_report";

pub(crate) async fn mappings(db: &mut AnyConnection) -> Result<Vec<MappingRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {MAPPING_COLUMNS} FROM tenant_mappings ORDER BY tenant_id, decided_at, requested_at, provider_id"
    ))
    .fetch_all(&mut *db)
    .await?;
    rows.iter().map(mapping_row).collect()
}

pub(crate) async fn mapping(
    db: &mut AnyConnection,
    tenant: &str,
    provider: &str,
) -> Result<Option<MappingRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {MAPPING_COLUMNS} FROM tenant_mappings WHERE tenant_id = $1 AND provider_id = $2"
    ))
    .bind(tenant)
    .bind(provider)
    .fetch_optional(&mut *db)
    .await?;
    row.as_ref().map(mapping_row).transpose()
}

fn mapping_row(r: &sqlx::any::AnyRow) -> Result<MappingRow, sqlx::Error> {
    Ok(MappingRow {
        tenant_id: r.try_get("tenant_id")?,
        provider_id: r.try_get("provider_id")?,
        state: r.try_get("state")?,
        approver: r.try_get("approver")?,
        requested_by: r.try_get("requested_by")?,
        requested_at: r.try_get("requested_at")?,
        decided_by: r.try_get("decided_by")?,
        decided_at: r.try_get("decided_at")?,
        note: r.try_get("note")?,
        source: r.try_get("source")?,
        spec_sha256: r.try_get("spec_sha256")?,
        organization: r.try_get("organization")?,
        environment: r.try_get("environment")?,
        check_report: r.try_get("check_report")?,
    })
}

pub(crate) async fn upsert_mapping(db: &mut AnyConnection, m: &MappingRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO tenant_mappings ({MAPPING_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (tenant_id, provider_id) DO UPDATE SET state = excluded.state, approver = excluded.approver, \
         requested_by = excluded.requested_by, requested_at = excluded.requested_at, \
         decided_by = excluded.decided_by, decided_at = excluded.decided_at, note = excluded.note, \
         source = excluded.source, spec_sha256 = excluded.spec_sha256, organization = excluded.organization, \
         environment = excluded.environment, check_report = excluded.check_report"
    ))
    .bind(&m.tenant_id)
    .bind(&m.provider_id)
    .bind(&m.state)
    .bind(&m.approver)
    .bind(&m.requested_by)
    .bind(m.requested_at)
    .bind(&m.decided_by)
    .bind(m.decided_at)
    .bind(&m.note)
    .bind(&m.source)
    .bind(&m.spec_sha256)
    .bind(&m.organization)
    .bind(&m.environment)
    .bind(&m.check_report)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Moves a pending mapping to `state` only if it is still pending, for the
/// same approver and provider declaration; false if anything changed since
/// it was read.
pub(crate) async fn decide_mapping(
    db: &mut AnyConnection,
    m: &MappingRow,
    state: &str,
    decided_by: &str,
    decided_at: i64,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE tenant_mappings SET state = $3, decided_by = $4, decided_at = $5, note = $6, check_report = $9 \
         WHERE tenant_id = $1 AND provider_id = $2 AND state = 'pending' AND approver = $7 AND spec_sha256 = $8",
    )
    .bind(&m.tenant_id)
    .bind(&m.provider_id)
    .bind(state)
    .bind(decided_by)
    .bind(decided_at)
    .bind(&m.note)
    .bind(&m.approver)
    .bind(&m.spec_sha256)
    .bind(&m.check_report)
    .execute(&mut *db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

pub(crate) async fn delete_mapping(db: &mut AnyConnection, tenant: &str, provider: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM tenant_mappings WHERE tenant_id = $1 AND provider_id = $2")
        .bind(tenant)
        .bind(provider)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Appends an event to the change audit trail (clients, secrets, tokens,
/// the directory); `detail` must not hold secrets.
pub(crate) async fn record_event(
    db: &mut AnyConnection,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events (event_id, at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(super::event_id())
    .bind(fhirgate_core::clock::now_seconds() as i64)
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(detail.to_string())
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// The subjects events are looked up by.
pub enum Subject<'a> {
    /// Exactly this subject (`provider:<id>`).
    Exact(&'a str),
    /// Subjects starting with this (`tenant:<guid>/`); only for prefixes
    /// without `%` or `_`, which LIKE would treat as wildcards.
    Prefix(&'a str),
}

/// Events about `subject`, oldest first.
pub(crate) async fn events(
    db: &mut AnyConnection,
    subject: Subject<'_>,
    limit: i64,
) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    let (condition, value) = match subject {
        Subject::Exact(s) => ("subject = $1", s.to_owned()),
        Subject::Prefix(p) => ("subject LIKE $1", format!("{}%", p.replace(['%', '_'], ""))),
    };
    let rows = sqlx::query(&format!(
        "SELECT event_id, at, actor, action, subject, detail FROM audit_events \
         WHERE {condition} ORDER BY at, event_id LIMIT $2"
    ))
    .bind(value)
    .bind(limit)
    .fetch_all(&mut *db)
    .await?;
    rows.iter()
        .map(|r| {
            let detail: String = r.try_get("detail")?;
            Ok(serde_json::json!({
                "event_id": r.try_get::<String, _>("event_id")?,
                "at": fhirgate_core::clock::format_seconds(r.try_get::<i64, _>("at")?),
                "actor": r.try_get::<String, _>("actor")?,
                "action": r.try_get::<String, _>("action")?,
                "subject": r.try_get::<String, _>("subject")?,
                "detail": serde_json::from_str::<serde_json::Value>(&detail).unwrap_or(serde_json::Value::Null),
            }))
        })
        .collect()
}

/// What a directory transaction's methods return.
pub type TxFuture<'a, T> = super::RepoFuture<'a, T, sqlx::Error>;

/// One unit of work on the directory's rows: what it reads is one
/// consistent view, what it writes becomes visible together at
/// [`DirectoryTx::commit`], and nothing of it if it is dropped first.
pub trait DirectoryTx: Send {
    /// The directory's generation, bumped by every change.
    fn generation(&mut self) -> TxFuture<'_, i64>;
    fn bump_generation(&mut self) -> TxFuture<'_, ()>;
    /// Every provider, by id.
    fn providers(&mut self) -> TxFuture<'_, Vec<ProviderRow>>;
    fn provider<'a>(&'a mut self, id: &'a str) -> TxFuture<'a, Option<ProviderRow>>;
    fn upsert_provider<'a>(&'a mut self, row: &'a ProviderRow) -> TxFuture<'a, ()>;
    /// Deletes the provider and its assertion keys.
    fn delete_provider<'a>(&'a mut self, id: &'a str) -> TxFuture<'a, ()>;
    /// Every provider's assertion keys, oldest first.
    fn upstream_keys(&mut self) -> TxFuture<'_, Vec<UpstreamKeyRow>>;
    /// Provider credentials kept in the database, sealed: (name, sealed).
    fn provider_secrets(&mut self) -> TxFuture<'_, Vec<(String, String)>>;
    /// Keeps (or replaces) the sealed credential `name`.
    fn put_provider_secret<'a>(&'a mut self, name: &'a str, sealed: &'a str) -> TxFuture<'a, ()>;
    fn insert_upstream_key<'a>(&'a mut self, key: &'a UpstreamKeyRow) -> TxFuture<'a, ()>;
    /// Retires the provider's keys but `keep` from its JWK Set at `at`.
    fn retire_upstream_keys<'a>(&'a mut self, provider: &'a str, keep: &'a str, at: i64) -> TxFuture<'a, ()>;
    /// Every tenant's organizations.
    fn organizations(&mut self) -> TxFuture<'_, Vec<OrganizationRow>>;
    fn upsert_organization<'a>(&'a mut self, o: &'a OrganizationRow) -> TxFuture<'a, ()>;
    /// Every tenant mapping.
    fn mappings(&mut self) -> TxFuture<'_, Vec<MappingRow>>;
    fn mapping<'a>(&'a mut self, tenant: &'a str, provider: &'a str) -> TxFuture<'a, Option<MappingRow>>;
    fn upsert_mapping<'a>(&'a mut self, m: &'a MappingRow) -> TxFuture<'a, ()>;
    /// Moves a pending mapping to `state` only if nothing changed since it
    /// was read (see [`decide_mapping`]); whether it did.
    fn decide_mapping<'a>(
        &'a mut self,
        m: &'a MappingRow,
        state: &'a str,
        decided_by: &'a str,
        decided_at: i64,
    ) -> TxFuture<'a, bool>;
    fn delete_mapping<'a>(&'a mut self, tenant: &'a str, provider: &'a str) -> TxFuture<'a, ()>;
    /// Appends to the change audit trail; `detail` must not hold secrets.
    fn record_event<'a>(
        &'a mut self,
        actor: &'a str,
        action: &'a str,
        subject: &'a str,
        detail: &'a serde_json::Value,
    ) -> TxFuture<'a, ()>;
    /// Events about `subject`, oldest first.
    fn events<'a>(&'a mut self, subject: Subject<'a>, limit: i64) -> TxFuture<'a, Vec<serde_json::Value>>;
    /// Makes the writes visible, all together.
    fn commit(self: Box<Self>) -> TxFuture<'static, ()>;
}

/// Where the tenant directory is kept: providers, tenant mappings, their
/// history and the generation that tells gateways to reload.
pub trait DirectoryRepository: Send + Sync {
    /// A transaction that only reads.
    fn read(&self) -> TxFuture<'_, Box<dyn DirectoryTx>>;
    /// A transaction that reads and then writes; on SQLite it waits for the
    /// write lock up front instead of failing when another writer came first.
    fn write(&self) -> TxFuture<'_, Box<dyn DirectoryTx>>;
}

impl DirectoryRepository for Store {
    fn read(&self) -> TxFuture<'_, Box<dyn DirectoryTx>> {
        Box::pin(async move { Ok(Box::new(SqlTx(self.pool().begin().await?)) as Box<dyn DirectoryTx>) })
    }

    fn write(&self) -> TxFuture<'_, Box<dyn DirectoryTx>> {
        Box::pin(async move { Ok(Box::new(SqlTx(self.begin_write().await?)) as Box<dyn DirectoryTx>) })
    }
}

/// A directory transaction in the SQL store.
struct SqlTx(sqlx::Transaction<'static, sqlx::Any>);

impl DirectoryTx for SqlTx {
    fn generation(&mut self) -> TxFuture<'_, i64> {
        Box::pin(generation(&mut self.0))
    }
    fn bump_generation(&mut self) -> TxFuture<'_, ()> {
        Box::pin(bump_generation(&mut self.0))
    }
    fn providers(&mut self) -> TxFuture<'_, Vec<ProviderRow>> {
        Box::pin(providers(&mut self.0))
    }
    fn provider<'a>(&'a mut self, id: &'a str) -> TxFuture<'a, Option<ProviderRow>> {
        Box::pin(provider(&mut self.0, id))
    }
    fn upsert_provider<'a>(&'a mut self, row: &'a ProviderRow) -> TxFuture<'a, ()> {
        Box::pin(upsert_provider(&mut self.0, row))
    }
    fn delete_provider<'a>(&'a mut self, id: &'a str) -> TxFuture<'a, ()> {
        Box::pin(delete_provider(&mut self.0, id))
    }
    fn upstream_keys(&mut self) -> TxFuture<'_, Vec<UpstreamKeyRow>> {
        Box::pin(upstream_keys(&mut self.0))
    }
    fn provider_secrets(&mut self) -> TxFuture<'_, Vec<(String, String)>> {
        Box::pin(provider_secrets(&mut self.0))
    }
    fn put_provider_secret<'a>(&'a mut self, name: &'a str, sealed: &'a str) -> TxFuture<'a, ()> {
        Box::pin(put_provider_secret(&mut self.0, name, sealed))
    }
    fn insert_upstream_key<'a>(&'a mut self, key: &'a UpstreamKeyRow) -> TxFuture<'a, ()> {
        Box::pin(insert_upstream_key(&mut self.0, key))
    }
    fn retire_upstream_keys<'a>(&'a mut self, provider: &'a str, keep: &'a str, at: i64) -> TxFuture<'a, ()> {
        Box::pin(retire_upstream_keys(&mut self.0, provider, keep, at))
    }
    fn organizations(&mut self) -> TxFuture<'_, Vec<OrganizationRow>> {
        Box::pin(organizations(&mut self.0))
    }
    fn upsert_organization<'a>(&'a mut self, o: &'a OrganizationRow) -> TxFuture<'a, ()> {
        Box::pin(upsert_organization(&mut self.0, o))
    }
    fn mappings(&mut self) -> TxFuture<'_, Vec<MappingRow>> {
        Box::pin(mappings(&mut self.0))
    }
    fn mapping<'a>(&'a mut self, tenant: &'a str, provider: &'a str) -> TxFuture<'a, Option<MappingRow>> {
        Box::pin(mapping(&mut self.0, tenant, provider))
    }
    fn upsert_mapping<'a>(&'a mut self, m: &'a MappingRow) -> TxFuture<'a, ()> {
        Box::pin(upsert_mapping(&mut self.0, m))
    }
    fn decide_mapping<'a>(
        &'a mut self,
        m: &'a MappingRow,
        state: &'a str,
        decided_by: &'a str,
        decided_at: i64,
    ) -> TxFuture<'a, bool> {
        Box::pin(decide_mapping(&mut self.0, m, state, decided_by, decided_at))
    }
    fn delete_mapping<'a>(&'a mut self, tenant: &'a str, provider: &'a str) -> TxFuture<'a, ()> {
        Box::pin(delete_mapping(&mut self.0, tenant, provider))
    }
    fn record_event<'a>(
        &'a mut self,
        actor: &'a str,
        action: &'a str,
        subject: &'a str,
        detail: &'a serde_json::Value,
    ) -> TxFuture<'a, ()> {
        Box::pin(record_event(&mut self.0, actor, action, subject, detail))
    }
    fn events<'a>(&'a mut self, subject: Subject<'a>, limit: i64) -> TxFuture<'a, Vec<serde_json::Value>> {
        Box::pin(events(&mut self.0, subject, limit))
    }
    fn commit(self: Box<Self>) -> TxFuture<'static, ()> {
        Box::pin(self.0.commit())
    }
}
