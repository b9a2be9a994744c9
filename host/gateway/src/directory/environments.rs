//! Organizations and environments. A tenant (a customer) has organizations
//! (hospitals); each has a test and a production FHIR base URL, requested
//! and approved on its own. A production URL is approved only after the
//! organization's test URL passed the live provider check at its approval.
//! Once approved, the integration record says what each side needs to
//! finish: the gateway's addresses, the app's client ids, the JWK Set URL
//! the hospital registers, the scopes and the approval trail.

use serde_json::{Value, json};

use super::Directory;
use super::onboarding::DirectoryError;
use fhirgate_core::environment::Environment;
use fhirgate_core::ids::{is_guid, valid_provider_id};
use fhirgate_store::directory::{DirectoryTx, MappingRow, OrganizationRow, Subject};

type Result<T> = std::result::Result<T, DirectoryError>;

/// Where a requested URL belongs: an organization of the tenant (empty for
/// none) and an environment.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub organization: String,
    pub environment: Environment,
}

impl Placement {
    /// The organization, if named, must be one of `tenant`'s.
    pub(super) async fn check(&self, tx: &mut dyn DirectoryTx, tenant: &str) -> Result<()> {
        if self.organization.is_empty() {
            return Ok(());
        }
        let known = tx.organizations().await?;
        if known.iter().any(|o| o.tenant_id == tenant && o.organization_id == self.organization) {
            Ok(())
        } else {
            Err(DirectoryError::NotFound(format!(
                "Tenant {tenant} has no organization `{}`; add it first.",
                self.organization
            )))
        }
    }
}

/// Whether a stored check report says the app would load.
pub fn report_passed(report: &str) -> bool {
    serde_json::from_str::<Value>(report).ok().and_then(|r| r.get("passed").and_then(Value::as_bool)) == Some(true)
}

/// Approving a production URL of an organization needs its test URL active
/// and passed by the provider check.
pub(super) async fn test_passed_first(tx: &mut dyn DirectoryTx, m: &MappingRow) -> Result<()> {
    if m.environment != Environment::Production.as_str() || m.organization.is_empty() {
        return Ok(());
    }
    let passed = tx.mappings().await?.iter().any(|t| {
        t.tenant_id == m.tenant_id
            && t.organization == m.organization
            && t.environment == Environment::Test.as_str()
            && t.state == "active"
            && t.check_report.as_deref().is_some_and(report_passed)
    });
    if passed {
        Ok(())
    } else {
        Err(DirectoryError::Conflict(format!(
            "Production for organization `{}` can be approved only after its test URL was approved with a passing \
             provider check.",
            m.organization
        )))
    }
}

/// What the gateway offers an integration, for its record: the public base
/// URL and the app clients of the tenant (id, name, environment).
pub struct Offer {
    pub public_base: String,
    pub clients: Vec<(String, String, Environment)>,
}

impl Directory {
    /// The mappings that name `approver`, pending ones first.
    pub async fn mappings_for(&self, approver: &str) -> Result<Vec<MappingRow>> {
        let mut tx = self.repo().read().await?;
        let mut list: Vec<MappingRow> = tx.mappings().await?.into_iter().filter(|m| m.approver == approver).collect();
        list.sort_by_key(|m| (m.state != "pending", std::cmp::Reverse(m.requested_at)));
        Ok(list)
    }

    /// The mapping of `tenant` to `provider`.
    pub async fn mapping_of(&self, tenant: &str, provider: &str) -> Result<MappingRow> {
        let tenant = tenant.to_ascii_lowercase();
        let mut tx = self.repo().read().await?;
        tx.mapping(&tenant, provider)
            .await?
            .ok_or_else(|| DirectoryError::NotFound(format!("No mapping of tenant {tenant} to `{provider}`.")))
    }

    /// Records in the mapping's trail that `actor` ran its live provider
    /// check, and whether it passed.
    pub async fn record_check(&self, tenant: &str, provider: &str, actor: &str, passed: bool) -> Result<()> {
        let subject = format!("tenant:{}/provider:{provider}", tenant.to_ascii_lowercase());
        let mut tx = self.repo().write().await?;
        tx.record_event(actor, "mapping.checked", &subject, &json!({ "passed": passed })).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds (or renames) organization `id` of `tenant`.
    pub async fn put_organization(&self, tenant: &str, id: &str, name: &str, actor: &str) -> Result<OrganizationRow> {
        if !is_guid(tenant) {
            return Err(DirectoryError::Invalid(format!("`{tenant}` is not a tenant id (a GUID).")));
        }
        if !valid_provider_id(id) {
            return Err(DirectoryError::Invalid("An organization id is 1–64 letters, digits, `-` or `_`.".into()));
        }
        let name = name.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(DirectoryError::Invalid("An organization has a name of 1–200 characters.".into()));
        }
        let tenant = tenant.to_ascii_lowercase();
        let mut tx = self.repo().write().await?;
        let existing = tx.organizations().await?.into_iter().find(|o| o.tenant_id == tenant && o.organization_id == id);
        let row = OrganizationRow {
            tenant_id: tenant.clone(),
            organization_id: id.to_owned(),
            name: name.to_owned(),
            created_by: existing.as_ref().map_or(actor, |o| o.created_by.as_str()).to_owned(),
            created_at: existing.as_ref().map_or(fhirgate_core::clock::now_seconds() as i64, |o| o.created_at),
        };
        tx.upsert_organization(&row).await?;
        let action = if existing.is_some() { "organization.renamed" } else { "organization.added" };
        tx.record_event(actor, action, &format!("tenant:{tenant}/organization:{id}"), &json!({ "name": name })).await?;
        self.commit(tx).await?;
        Ok(row)
    }

    /// `tenant`'s organizations, each with its test and production URLs and
    /// their state.
    pub async fn organizations_view(&self, tenant: &str) -> Result<Value> {
        let tenant = tenant.to_ascii_lowercase();
        let mut tx = self.repo().read().await?;
        let mappings = tx.mappings().await?;
        let organizations: Vec<Value> = tx
            .organizations()
            .await?
            .into_iter()
            .filter(|o| o.tenant_id == tenant)
            .map(|o| {
                let environments: serde_json::Map<String, Value> = Environment::ALL
                    .iter()
                    .map(|env| {
                        let list: Vec<Value> = mappings
                            .iter()
                            .filter(|m| {
                                m.tenant_id == tenant
                                    && m.organization == o.organization_id
                                    && m.environment == env.as_str()
                            })
                            .map(|m| json!({ "provider_id": m.provider_id, "state": m.state, "approver": m.approver }))
                            .collect();
                        (env.as_str().to_owned(), json!(list))
                    })
                    .collect();
                let mut v = json!(o);
                v["environments"] = Value::Object(environments);
                v
            })
            .collect();
        Ok(json!({ "tenant_id": tenant, "organizations": organizations }))
    }

    /// The integration record of the approved mapping of `tenant` to
    /// `provider`: everything both sides need to finish, nothing secret.
    pub async fn integration_record(&self, tenant: &str, provider: &str, offer: &Offer) -> Result<Value> {
        let tenant = tenant.to_ascii_lowercase();
        let mut tx = self.repo().read().await?;
        let m = tx
            .mapping(&tenant, provider)
            .await?
            .ok_or_else(|| DirectoryError::NotFound(format!("No mapping of tenant {tenant} to `{provider}`.")))?;
        if m.state != "active" {
            return Err(DirectoryError::Conflict(format!(
                "The mapping is {}: an integration record exists once it is approved.",
                m.state
            )));
        }
        let row = tx
            .provider(provider)
            .await?
            .ok_or_else(|| DirectoryError::NotFound(format!("No provider `{provider}`.")))?;
        let spec = super::ProviderSpec::from_json(&row.spec)?;
        let organization = tx
            .organizations()
            .await?
            .into_iter()
            .find(|o| o.tenant_id == tenant && o.organization_id == m.organization);
        let trail = tx.events(Subject::Exact(&format!("tenant:{tenant}/provider:{provider}")), 200).await?;
        let environment = Environment::parse(&m.environment).unwrap_or_default();
        let base = offer.public_base.trim_end_matches('/');
        let clients: Vec<Value> = offer
            .clients
            .iter()
            .filter(|(_, _, env)| *env == environment)
            .map(|(id, name, env)| json!({ "client_id": id, "name": name, "environment": env }))
            .collect();
        let upstream_auth = match &spec.auth {
            Some(super::AuthSpec::PrivateKeyJwt { token_url, client_id, scope }) => json!({
                "method": "private_key_jwt",
                "token_url": token_url,
                "client_id": client_id,
                "scope": scope,
                "jwks_url": format!("{base}{}", super::keys::jwks_path(provider)),
                "algorithm": fhirgate_upstream::ASSERTION_ALGORITHM,
            }),
            Some(super::AuthSpec::ClientCredentials { token_url, client_id, scope, method, .. }) => json!({
                "method": method,
                "token_url": token_url,
                "client_id": client_id,
                "scope": scope,
            }),
            Some(super::AuthSpec::Header { name, .. }) => json!({ "method": "header", "header": name }),
            None => json!({ "method": "none" }),
        };
        let report: Option<Value> = m.check_report.as_deref().and_then(|r| serde_json::from_str(r).ok());
        Ok(json!({
            "tenant_id": tenant,
            "organization": organization.map(|o| json!({ "id": o.organization_id, "name": o.name })),
            "environment": environment,
            "gateway": {
                "stu3_base": format!("{base}/stu3"),
                "dstu2_base": format!("{base}/dstu2"),
                "metadata": [format!("{base}/stu3/metadata"), format!("{base}/dstu2/metadata")],
                "token_url": format!("{base}/oauth2/token"),
            },
            "app": {
                "clients": clients,
                "scopes": [tenant],
                "grant_type": "client_credentials",
            },
            "hospital": {
                "provider_id": provider,
                "fhir_base_url": spec.base(),
                "fhir_version": spec.fhir_version,
                "gateway_authenticates_with": upstream_auth,
            },
            "approval": {
                "requested_by": m.requested_by,
                "requested_at": fhirgate_core::clock::format_seconds(m.requested_at),
                "approver": m.approver,
                "approved_by": m.decided_by,
                "approved_at": m.decided_at.map(fhirgate_core::clock::format_seconds),
                "note": m.note,
                "provider_check": report,
                "trail": trail,
            },
        }))
    }
}
