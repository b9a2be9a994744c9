//! The tenant directory's tables: providers, tenant → provider mappings with
//! their approval state, and the generation counter gateways poll to notice
//! changes made by another process.

use serde::Serialize;
use sqlx::Row;

use sqlx::AnyConnection;

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
    pub requested_at: i64,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub note: Option<String>,
    pub source: String,
    /// SHA-256 of the provider declaration the mapping was requested for.
    #[serde(skip)]
    pub spec_sha256: String,
}

pub async fn generation(db: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT generation FROM directory_generation WHERE id = 1")
        .fetch_one(&mut *db)
        .await?
        .try_get::<i64, _>("generation")
}

pub async fn bump_generation(db: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE directory_generation SET generation = generation + 1 WHERE id = 1").execute(&mut *db).await?;
    Ok(())
}

pub async fn providers(db: &mut AnyConnection) -> Result<Vec<ProviderRow>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT provider_id, base_url, spec, source, updated_at FROM providers ORDER BY provider_id")
            .fetch_all(&mut *db)
            .await?;
    rows.iter().map(provider_row).collect()
}

pub async fn provider(db: &mut AnyConnection, id: &str) -> Result<Option<ProviderRow>, sqlx::Error> {
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

pub async fn upsert_provider(db: &mut AnyConnection, row: &ProviderRow) -> Result<(), sqlx::Error> {
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

pub async fn delete_provider(db: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM providers WHERE provider_id = $1").bind(id).execute(&mut *db).await?;
    Ok(())
}

const MAPPING_COLUMNS: &str = "tenant_id, provider_id, state, approver, requested_by, requested_at, decided_by, \
     decided_at, note, source, spec_sha256";

pub async fn mappings(db: &mut AnyConnection) -> Result<Vec<MappingRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {MAPPING_COLUMNS} FROM tenant_mappings ORDER BY tenant_id, decided_at, requested_at, provider_id"
    ))
    .fetch_all(&mut *db)
    .await?;
    rows.iter().map(mapping_row).collect()
}

pub async fn mapping(db: &mut AnyConnection, tenant: &str, provider: &str) -> Result<Option<MappingRow>, sqlx::Error> {
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
    })
}

pub async fn upsert_mapping(db: &mut AnyConnection, m: &MappingRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO tenant_mappings ({MAPPING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (tenant_id, provider_id) DO UPDATE SET state = excluded.state, approver = excluded.approver, \
         requested_by = excluded.requested_by, requested_at = excluded.requested_at, \
         decided_by = excluded.decided_by, decided_at = excluded.decided_at, note = excluded.note, \
         source = excluded.source, spec_sha256 = excluded.spec_sha256"
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
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Moves a pending mapping to `state` only if it is still pending, for the
/// same approver and provider declaration; false if anything changed since
/// it was read.
pub async fn decide_mapping(
    db: &mut AnyConnection,
    m: &MappingRow,
    state: &str,
    decided_by: &str,
    decided_at: i64,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE tenant_mappings SET state = $3, decided_by = $4, decided_at = $5, note = $6 \
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
    .execute(&mut *db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

pub async fn delete_mapping(db: &mut AnyConnection, tenant: &str, provider: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM tenant_mappings WHERE tenant_id = $1 AND provider_id = $2")
        .bind(tenant)
        .bind(provider)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Appends an event to the change audit trail (clients, secrets, tokens,
/// the directory); `detail` must not hold secrets.
pub async fn record_event(
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
pub async fn events(
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
                "at": r.try_get::<i64, _>("at")?,
                "actor": r.try_get::<String, _>("actor")?,
                "action": r.try_get::<String, _>("action")?,
                "subject": r.try_get::<String, _>("subject")?,
                "detail": serde_json::from_str::<serde_json::Value>(&detail).unwrap_or(serde_json::Value::Null),
            }))
        })
        .collect()
}
