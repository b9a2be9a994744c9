//! Changes to the directory: the policy file's declarations, and onboarding
//! with approval (an operator registers a provider for a tenant and names an
//! approver → pending; the approver approves → active, or rejects; an edit
//! returns it to pending). Every change is recorded with who and when.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::environments::Placement;
use super::{Directory, MappingState, ProviderSpec};
use fhirgate_core::environment::Environment;
use fhirgate_core::fhir::Version;
use fhirgate_core::ids::is_guid;
use fhirgate_core::ids::valid_provider_id;
use fhirgate_store::directory::{DirectoryTx, MappingRow, ProviderRow, Subject};
use fhirgate_upstream::{Upstream, UpstreamError};

/// Who the policy file's declarations are attributed to.
fn policy_actor(partner: &str) -> String {
    format!("policy:{partner}")
}

/// Why a directory change was refused.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    /// The provider's `/metadata` did not check out.
    #[error("the provider failed validation: {0}")]
    Validation(String),
    #[error("the store failed: {0}")]
    Store(#[from] sqlx::Error),
    #[error("{0:#}")]
    Reload(#[from] anyhow::Error),
}

type Result<T> = std::result::Result<T, DirectoryError>;

fn subject(tenant: &str, provider: &str) -> String {
    format!("tenant:{tenant}/provider:{provider}")
}

/// Whether `actor` may decide `m` now: it is pending, they are its named
/// approver and not its requester, the provider is still what was
/// requested, and (approving production) the organization's test URL
/// passed the provider check.
async fn may_decide(
    tx: &mut dyn DirectoryTx,
    m: &MappingRow,
    provider: &str,
    actor: &str,
    approve: bool,
) -> Result<()> {
    if m.state != "pending" {
        return Err(DirectoryError::Conflict(format!("The mapping is {}, not pending.", m.state)));
    }
    if m.approver != actor {
        return Err(DirectoryError::Forbidden(format!(
            "Only the named approver `{}` may decide this mapping.",
            m.approver
        )));
    }
    if same_person(&m.requested_by, actor) {
        return Err(DirectoryError::Forbidden(
            "The approver made the latest change to this mapping or its provider; another approver must be named."
                .into(),
        ));
    }
    let current = tx.provider(provider).await?.map(|r| fhirgate_core::digest::sha256_hex(r.spec.as_bytes()));
    if current.as_deref() != Some(m.spec_sha256.as_str()) {
        return Err(DirectoryError::Conflict(
            "The provider changed since this mapping was requested; request it again.".into(),
        ));
    }
    if approve {
        super::environments::test_passed_first(tx, m).await?;
    }
    Ok(())
}

/// Whether two actors are the same person: a user and the name they gave
/// when they used the shared admin token (`admin-api:<name>`) or the CLI on
/// the gateway's machine (`cli:<name>`) are.
fn same_person(a: &str, b: &str) -> bool {
    let person = |x: &str| x.strip_prefix("admin-api:").or_else(|| x.strip_prefix("cli:")).unwrap_or(x).to_owned();
    person(a) == person(b)
}

fn check_actor(actor: &str) -> Result<()> {
    if actor.is_empty() || actor.len() > 128 || actor.chars().any(char::is_control) {
        return Err(DirectoryError::Invalid("`actor` must name who makes the change (1–128 characters).".into()));
    }
    if actor.starts_with("policy:") {
        return Err(DirectoryError::Invalid("`actor` may not start with `policy:`.".into()));
    }
    Ok(())
}

fn tenant_id(tenant: &str) -> Result<String> {
    if is_guid(tenant) {
        Ok(tenant.to_ascii_lowercase())
    } else {
        Err(DirectoryError::Invalid(format!("`{tenant}` is not a tenant id (a GUID).")))
    }
}

/// What a provider's `/metadata` said.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Validated {
    pub fhir_version: String,
    pub software: Option<String>,
}

/// The FHIR release a `fhirVersion` string names, among those the shaping
/// module reads.
pub fn release_of(fhir_version: &str) -> Option<Version> {
    let v = fhir_version.trim();
    if v.starts_with("1.0.") {
        Some(Version::Dstu2)
    } else if v.starts_with("3.0.") {
        Some(Version::Stu3)
    } else if v.starts_with("4.0.") {
        Some(Version::R4)
    } else {
        None
    }
}

/// Fetches `{base}/metadata` the way requests will reach the provider (its
/// CA and timeouts, and the outbound-address policy, but not its
/// credentials) and checks it declares the FHIR version the declaration
/// says, one the shaping supports. Refusals say only "unreachable",
/// "refused by policy" or the HTTP status, never what the target answered:
/// onboarding must not be a way to probe what the gateway can reach.
pub async fn validate(upstream: &Upstream, id: &str, spec: &ProviderSpec) -> Result<Validated> {
    // Without the provider's credentials: the URL is not approved yet, and
    // a capability statement is public (SMART requires it). Under its own
    // id, so a mistyped URL does not trip the live provider's breaker.
    let mut bare = spec.clone();
    bare.auth = None;
    let mut settings = bare.settings(id, None).map_err(|e| DirectoryError::Invalid(format!("{e:#}")))?;
    settings.id = format!("{id}#validation");
    settings.restricted = true;
    let accept = match spec.fhir_version {
        Version::Dstu2 => "application/json+fhir",
        _ => "application/fhir+json",
    };
    let url = format!("{}/metadata", spec.base());
    let resp = upstream.get(&settings, &url, http::HeaderMap::new(), accept).await.map_err(|e| {
        DirectoryError::Validation(match e {
            UpstreamError::Refused => "GET /metadata: refused by policy".into(),
            UpstreamError::CircuitOpen { .. } => "the provider is failing; try again shortly".into(),
            UpstreamError::Tls(e) => e,
            _ => "GET /metadata: unreachable".into(),
        })
    })?;
    if !resp.status.is_success() {
        return Err(DirectoryError::Validation(format!("GET /metadata answered {}", resp.status.as_u16())));
    }
    let not_fhir = || {
        DirectoryError::Validation(format!(
            "GET /metadata answered {} without a CapabilityStatement or Conformance that declares `fhirVersion`",
            resp.status.as_u16()
        ))
    };
    let body: Value = serde_json::from_slice(&resp.body).map_err(|_| not_fhir())?;
    let rt = body.get("resourceType").and_then(Value::as_str).unwrap_or("");
    if rt != "CapabilityStatement" && rt != "Conformance" {
        return Err(not_fhir());
    }
    let declared = body.get("fhirVersion").and_then(Value::as_str).ok_or_else(not_fhir)?;
    let release = release_of(declared).ok_or_else(|| {
        DirectoryError::Validation("the provider declares a FHIR version the gateway cannot shape".into())
    })?;
    if release != spec.fhir_version {
        // A version the gateway knows: a FHIR server's, telling nothing else.
        return Err(DirectoryError::Validation(format!(
            "the provider declares FHIR {} but is registered as `{}`",
            declared.trim(),
            spec.fhir_version.face()
        )));
    }
    let software = body.pointer("/software/name").and_then(Value::as_str).map(str::to_owned);
    Ok(Validated { fhir_version: declared.to_owned(), software })
}

impl Directory {
    /// Writes the policy file's providers and tenants into the store as
    /// approved mappings attributed to the partner, and removes the ones the
    /// file no longer declares. Entries managed through the admin API are
    /// left alone; a clash between the two is an error naming the key.
    pub async fn declare(
        &self,
        partner: &str,
        providers: &BTreeMap<String, ProviderSpec>,
        tenants: &BTreeMap<String, Vec<String>>,
    ) -> anyhow::Result<()> {
        let mut tx = self.repo().write().await?;
        let actor = policy_actor(partner);
        let now = fhirgate_core::clock::now_seconds() as i64;
        let mut changed = false;
        let existing: BTreeMap<String, ProviderRow> =
            tx.providers().await?.into_iter().map(|r| (r.provider_id.clone(), r)).collect();
        let mappings = tx.mappings().await?;
        // Everything that could refuse the declarations is checked before
        // anything is written.
        for id in existing.iter().filter(|(_, r)| r.source == "policy").map(|(id, _)| id) {
            if !providers.contains_key(id) && mappings.iter().any(|m| &m.provider_id == id && m.source != "policy") {
                anyhow::bail!("`providers.{id}` was removed but tenants onboarded through the admin API use it");
            }
        }
        for (id, spec) in providers {
            spec.check_loadable(id).map_err(|e| anyhow::anyhow!("`providers.{id}`: {e:#}"))?;
            if existing.get(id).is_some_and(|r| r.source != "policy") {
                anyhow::bail!("`providers.{id}`: a provider with this id is managed through the admin API");
            }
        }
        for (tenant, list) in tenants {
            for provider in list {
                let admin_managed = mappings
                    .iter()
                    .any(|m| m.tenant_id == *tenant && &m.provider_id == provider && m.source != "policy");
                if admin_managed {
                    anyhow::bail!("`tenants.{tenant}`: its mapping to `{provider}` is managed through the admin API");
                }
            }
        }
        for (id, spec) in providers {
            let json = spec.to_json();
            let previous = match existing.get(id) {
                Some(row) if row.spec == json => continue,
                Some(row) => ProviderSpec::from_json(&row.spec).ok(),
                None => None,
            };
            tx.upsert_provider(&ProviderRow {
                provider_id: id.clone(),
                base_url: spec.base().to_owned(),
                spec: json.clone(),
                source: "policy".into(),
                updated_at: now,
            })
            .await?;
            tx.record_event(
                &actor,
                "provider.declared",
                &format!("provider:{id}"),
                &json!({ "base_url": spec.base(), "fhir_version": spec.fhir_version }),
            )
            .await?;
            self.ensure_assertion_key(&mut *tx, id, spec, &actor).await?;
            changed = true;
            // Tenants onboarded through the admin API onto this provider
            // were approved for where it pointed before.
            if previous.is_some_and(|p| p.needs_reapproval(spec)) {
                self.reset_mappings(&mut *tx, id, &actor, &json, "provider changed in the policy file", true).await?;
            }
        }
        let mut declared = BTreeSet::new();
        for (tenant, list) in tenants {
            let tenant = tenant.to_ascii_lowercase();
            for provider in list {
                declared.insert((tenant.clone(), provider.clone()));
                let current = mappings.iter().find(|m| m.tenant_id == tenant && &m.provider_id == provider);
                if current.is_some_and(|m| m.state == "active") {
                    continue;
                }
                tx.upsert_mapping(&MappingRow {
                    tenant_id: tenant.clone(),
                    provider_id: provider.clone(),
                    state: "active".into(),
                    approver: actor.clone(),
                    requested_by: actor.clone(),
                    requested_at: now,
                    decided_by: Some(actor.clone()),
                    decided_at: Some(now),
                    note: Some("declared in the policy file".into()),
                    source: "policy".into(),
                    spec_sha256: providers.get(provider).map(ProviderSpec::digest).unwrap_or_default(),
                    organization: String::new(),
                    environment: Environment::Production.as_str().into(),
                    check_report: None,
                })
                .await?;
                tx.record_event(&actor, "mapping.declared", &subject(&tenant, provider), &json!({ "state": "active" }))
                    .await?;
                changed = true;
            }
        }
        for m in mappings.iter().filter(|m| m.source == "policy") {
            if !declared.contains(&(m.tenant_id.clone(), m.provider_id.clone())) {
                tx.delete_mapping(&m.tenant_id, &m.provider_id).await?;
                tx.record_event(&actor, "mapping.undeclared", &subject(&m.tenant_id, &m.provider_id), &json!({}))
                    .await?;
                changed = true;
            }
        }
        for (id, row) in existing.iter().filter(|(_, r)| r.source == "policy") {
            if !providers.contains_key(id) {
                tx.delete_provider(id).await?;
                tx.record_event(
                    &actor,
                    "provider.undeclared",
                    &format!("provider:{id}"),
                    &json!({ "base_url": row.base_url }),
                )
                .await?;
                changed = true;
            }
        }
        if changed {
            self.commit(tx).await?;
        }
        Ok(())
    }

    /// Registers or edits a provider after validating its `/metadata`. An
    /// edit that changes where or how requests go returns its tenants'
    /// mappings to pending.
    pub async fn put_provider(
        &self,
        upstream: &Upstream,
        id: &str,
        mut spec: ProviderSpec,
        actor: &str,
    ) -> Result<(Value, Validated)> {
        check_actor(actor)?;
        spec.confine(self.secrets_dir()).map_err(|e| DirectoryError::Invalid(format!("{e:#}")))?;
        if !valid_provider_id(id) {
            return Err(DirectoryError::Invalid("A provider id is 1–64 letters, digits, `-` or `_`.".into()));
        }
        spec.check().map_err(|e| DirectoryError::Invalid(format!("{e:#}")))?;
        let policy_conflict = || {
            DirectoryError::Conflict(format!(
                "Provider `{id}` is declared in the partner's policy file; change it there."
            ))
        };
        {
            let mut conn = self.repo().read().await?;
            if conn.provider(id).await?.is_some_and(|r| r.source == "policy") {
                return Err(policy_conflict());
            }
        }
        // Over the network, before the transaction: no store lock is held
        // while a provider takes its time.
        let validated = validate(upstream, id, &spec).await?;
        let mut tx = self.repo().write().await?;
        let existing = tx.provider(id).await?;
        if existing.as_ref().is_some_and(|r| r.source == "policy") {
            return Err(policy_conflict());
        }
        let now = fhirgate_core::clock::now_seconds() as i64;
        let previous = existing.as_ref().and_then(|r| ProviderSpec::from_json(&r.spec).ok());
        tx.upsert_provider(&ProviderRow {
            provider_id: id.to_owned(),
            base_url: spec.base().to_owned(),
            spec: spec.to_json(),
            source: "admin".into(),
            updated_at: now,
        })
        .await?;
        let action = if existing.is_some() { "provider.edited" } else { "provider.registered" };
        tx.record_event(
            actor,
            action,
            &format!("provider:{id}"),
            &json!({ "base_url": spec.base(), "fhir_version": spec.fhir_version, "metadata": validated }),
        )
        .await?;
        self.ensure_assertion_key(&mut *tx, id, &spec, actor).await?;
        let reapprove = previous.is_some_and(|p| p.needs_reapproval(&spec));
        self.reset_mappings(&mut *tx, id, actor, &spec.to_json(), "provider edited", reapprove).await?;
        self.commit(tx).await?;
        Ok((provider_view(id, &spec, "admin", now), validated))
    }

    /// After a provider's declaration changed to `spec_json`: with
    /// `reapprove`, its active and pending mappings return to pending as if
    /// `actor` had requested them (so `actor` cannot approve them); without,
    /// they stay as they are, now referring to the new declaration. Rejected
    /// mappings stay rejected.
    async fn reset_mappings(
        &self,
        tx: &mut dyn DirectoryTx,
        provider: &str,
        actor: &str,
        spec_json: &str,
        reason: &str,
        reapprove: bool,
    ) -> Result<()> {
        let digest = fhirgate_core::digest::sha256_hex(spec_json.as_bytes());
        let now = fhirgate_core::clock::now_seconds() as i64;
        for mut m in tx.mappings().await?.into_iter().filter(|m| m.provider_id == provider) {
            if m.source == "policy" || m.state == "rejected" {
                continue;
            }
            m.spec_sha256 = digest.clone();
            if reapprove {
                m.state = MappingState::Pending.as_str().into();
                m.requested_by = actor.to_owned();
                m.requested_at = now;
                m.decided_by = None;
                m.decided_at = None;
                m.check_report = None;
                m.note = Some(format!("{reason}; approval needed again"));
            }
            tx.upsert_mapping(&m).await?;
            if reapprove {
                tx.record_event(
                    actor,
                    "mapping.pending",
                    &subject(&m.tenant_id, provider),
                    &json!({ "reason": reason, "approver": m.approver }),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Removes a provider no tenant is mapped to.
    pub async fn remove_provider(&self, id: &str, actor: &str) -> Result<()> {
        check_actor(actor)?;
        let mut tx = self.repo().write().await?;
        let row = tx.provider(id).await?.ok_or_else(|| DirectoryError::NotFound(format!("No provider `{id}`.")))?;
        if row.source == "policy" {
            return Err(DirectoryError::Conflict(format!("Provider `{id}` is declared in the partner's policy file.")));
        }
        if tx.mappings().await?.iter().any(|m| m.provider_id == id) {
            return Err(DirectoryError::Conflict(format!("Tenants are still mapped to `{id}`; remove them first.")));
        }
        tx.delete_provider(id).await?;
        tx.record_event(actor, "provider.removed", &format!("provider:{id}"), &json!({ "base_url": row.base_url }))
            .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Asks for `tenant` → `provider`, naming who must approve it. A new
    /// request, or an edit of an existing mapping, is pending until approved.
    pub async fn request_mapping(
        &self,
        upstream: &Upstream,
        tenant: &str,
        provider: &str,
        approver: &str,
        place: &Placement,
        actor: &str,
    ) -> Result<MappingRow> {
        check_actor(actor)?;
        check_actor(approver).map_err(|_| DirectoryError::Invalid("`approver` must name who approves.".into()))?;
        if same_person(approver, actor) {
            return Err(DirectoryError::Invalid("The approver must be someone other than the requester.".into()));
        }
        let tenant = tenant_id(tenant)?;
        let no_provider = || DirectoryError::NotFound(format!("No provider `{provider}`; register it first."));
        let checked = {
            let mut conn = self.repo().read().await?;
            conn.provider(provider).await?.ok_or_else(no_provider)?
        };
        // Over the network, before the transaction: no store lock is held
        // while a provider takes its time.
        let validated = validate(upstream, provider, &ProviderSpec::from_json(&checked.spec)?).await?;
        let mut tx = self.repo().write().await?;
        let row = tx.provider(provider).await?.ok_or_else(no_provider)?;
        if row.spec != checked.spec {
            return Err(DirectoryError::Conflict("The provider changed meanwhile; request the mapping again.".into()));
        }
        let spec = ProviderSpec::from_json(&row.spec)?;
        let current = tx.mapping(&tenant, provider).await?;
        if current.as_ref().is_some_and(|m| m.source == "policy") {
            return Err(DirectoryError::Conflict("This mapping is declared in the partner's policy file.".into()));
        }
        place.check(&mut *tx, &tenant).await?;
        let now = fhirgate_core::clock::now_seconds() as i64;
        let mapping = MappingRow {
            tenant_id: tenant.clone(),
            provider_id: provider.to_owned(),
            state: MappingState::Pending.as_str().into(),
            approver: approver.to_owned(),
            requested_by: actor.to_owned(),
            requested_at: now,
            decided_by: None,
            decided_at: None,
            note: None,
            source: "admin".into(),
            spec_sha256: fhirgate_core::digest::sha256_hex(row.spec.as_bytes()),
            organization: place.organization.clone(),
            environment: place.environment.as_str().into(),
            check_report: None,
        };
        tx.upsert_mapping(&mapping).await?;
        let action = if current.is_some() { "mapping.edited" } else { "mapping.requested" };
        let detail = json!({
            "state": "pending", "approver": approver, "base_url": spec.base(), "metadata": validated,
            "organization": place.organization, "environment": place.environment,
        });
        tx.record_event(actor, action, &subject(&tenant, provider), &detail).await?;
        self.commit(tx).await?;
        Ok(mapping)
    }

    /// Whether `actor` may decide the mapping of `tenant` to `provider` now
    /// (approving it, with `approve`): the mapping, or why not. What
    /// [`Directory::decide`] checks again, for a caller that has work to do
    /// (the live provider check) before deciding.
    pub async fn decidable(&self, tenant: &str, provider: &str, actor: &str, approve: bool) -> Result<MappingRow> {
        check_actor(actor)?;
        let tenant = tenant_id(tenant)?;
        let mut tx = self.repo().read().await?;
        let m = tx
            .mapping(&tenant, provider)
            .await?
            .ok_or_else(|| DirectoryError::NotFound(format!("No mapping of tenant {tenant} to `{provider}`.")))?;
        may_decide(&mut *tx, &m, provider, actor, approve).await?;
        Ok(m)
    }

    /// The named approver approves (→ active) or rejects (→ rejected) a
    /// pending mapping; an approval carries the live provider check's
    /// `report`.
    pub async fn decide(
        &self,
        tenant: &str,
        provider: &str,
        actor: &str,
        approve: bool,
        note: Option<String>,
        report: Option<Value>,
    ) -> Result<MappingRow> {
        check_actor(actor)?;
        let tenant = tenant_id(tenant)?;
        let mut tx = self.repo().write().await?;
        let mut m = tx
            .mapping(&tenant, provider)
            .await?
            .ok_or_else(|| DirectoryError::NotFound(format!("No mapping of tenant {tenant} to `{provider}`.")))?;
        may_decide(&mut *tx, &m, provider, actor, approve).await?;
        // The report must be of the declaration being approved.
        let checked = report.as_ref().and_then(|r| r.get("spec_sha256")).and_then(Value::as_str);
        if report.is_some() && checked != Some(m.spec_sha256.as_str()) {
            return Err(DirectoryError::Conflict(
                "The provider changed while it was being checked; approve again.".into(),
            ));
        }
        let now = fhirgate_core::clock::now_seconds() as i64;
        let state = if approve { MappingState::Active } else { MappingState::Rejected }.as_str();
        m.note = note.filter(|n| !n.is_empty()).map(|n| n.chars().take(500).collect());
        m.check_report = report.filter(|_| approve).map(|r| r.to_string());
        // Only if nothing changed since it was read: an edit racing this
        // decision wins, and the decision must be made again.
        if !tx.decide_mapping(&m, state, actor, now).await? {
            return Err(DirectoryError::Conflict("The mapping changed meanwhile; look at it again.".into()));
        }
        m.state = state.into();
        m.decided_by = Some(actor.to_owned());
        m.decided_at = Some(now);
        let action = if approve { "mapping.approved" } else { "mapping.rejected" };
        let passed = m.check_report.as_deref().map(super::environments::report_passed);
        let detail = json!({ "state": m.state, "note": m.note, "environment": m.environment, "check_passed": passed });
        tx.record_event(actor, action, &subject(&tenant, provider), &detail).await?;
        self.commit(tx).await?;
        Ok(m)
    }

    /// Disconnects a tenant from a provider.
    pub async fn remove_mapping(&self, tenant: &str, provider: &str, actor: &str) -> Result<()> {
        check_actor(actor)?;
        let tenant = tenant_id(tenant)?;
        let mut tx = self.repo().write().await?;
        let m = tx
            .mapping(&tenant, provider)
            .await?
            .ok_or_else(|| DirectoryError::NotFound(format!("No mapping of tenant {tenant} to `{provider}`.")))?;
        if m.source == "policy" {
            return Err(DirectoryError::Conflict("This mapping is declared in the partner's policy file.".into()));
        }
        tx.delete_mapping(&tenant, provider).await?;
        tx.record_event(actor, "mapping.removed", &subject(&tenant, provider), &json!({ "previous_state": m.state }))
            .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Every provider, as the admin API shows it.
    pub async fn providers_view(&self) -> Result<Vec<Value>> {
        let mut tx = self.repo().read().await?;
        let rows = tx.providers().await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let spec = ProviderSpec::from_json(&r.spec).ok()?;
                Some(provider_view(&r.provider_id, &spec, &r.source, r.updated_at))
            })
            .collect())
    }

    /// One provider with its breaker state and change history.
    pub async fn provider_view(&self, upstream: &Upstream, id: &str) -> Result<Value> {
        let mut tx = self.repo().read().await?;
        let row = tx.provider(id).await?.ok_or_else(|| DirectoryError::NotFound(format!("No provider `{id}`.")))?;
        let spec = ProviderSpec::from_json(&row.spec)?;
        let mut view = provider_view(id, &spec, &row.source, row.updated_at);
        view["breaker_state"] = json!(upstream.breaker_state(id).map(|s| format!("{s:?}")));
        let subject = format!("provider:{id}");
        view["history"] = json!(tx.events(Subject::Exact(&subject), 200).await?);
        Ok(view)
    }

    /// Every mapping, grouped by tenant.
    pub async fn tenants_view(&self) -> Result<Value> {
        let mut tx = self.repo().read().await?;
        let mut by_tenant: BTreeMap<String, Vec<MappingRow>> = BTreeMap::new();
        for m in tx.mappings().await? {
            by_tenant.entry(m.tenant_id.clone()).or_default().push(m);
        }
        Ok(json!(by_tenant.into_iter().map(|(t, m)| json!({ "tenant_id": t, "mappings": m })).collect::<Vec<_>>()))
    }

    /// One tenant's mappings and their history.
    pub async fn tenant_view(&self, tenant: &str) -> Result<Value> {
        let tenant = tenant_id(tenant)?;
        let mut tx = self.repo().read().await?;
        let mappings: Vec<MappingRow> = tx.mappings().await?.into_iter().filter(|m| m.tenant_id == tenant).collect();
        let prefix = format!("tenant:{tenant}/");
        let history = tx.events(Subject::Prefix(&prefix), 500).await?;
        if mappings.is_empty() && history.is_empty() {
            return Err(DirectoryError::NotFound(format!("No tenant {tenant}.")));
        }
        Ok(json!({ "tenant_id": tenant, "mappings": mappings, "history": history }))
    }
}

fn provider_view(id: &str, spec: &ProviderSpec, source: &str, updated_at: i64) -> Value {
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    v["provider_id"] = json!(id);
    v["source"] = json!(source);
    v["updated_at"] = json!(fhirgate_core::clock::format_seconds(updated_at));
    if spec.uses_assertion_key() {
        // Relative to the gateway's public URL: what the hospital registers.
        v["jwks_path"] = json!(super::keys::jwks_path(id));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(release_of("4.0.1"), Some(Version::R4));
        assert_eq!(release_of("3.0.2"), Some(Version::Stu3));
        assert_eq!(release_of("1.0.2"), Some(Version::Dstu2));
        assert_eq!(release_of("5.0.0"), None);
        assert_eq!(release_of("4.3.0"), None);
    }
}
