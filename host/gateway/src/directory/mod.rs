//! The tenant directory: which provider serves which tenant, and whether that
//! mapping is approved. The store is the one source of truth; providers and
//! tenants declared in the partner's policy file are written into it as
//! approved mappings, and the admin API and CLI onboard the rest (request →
//! pending → approve or reject). Requests route on an immutable [`Snapshot`],
//! rebuilt whenever the store changes.

pub mod environments;
pub mod keys;
pub mod onboarding;
pub mod spec;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use serde::Serialize;

use fhirgate_core::environment::Environment;
use fhirgate_core::fhir::Version;
use fhirgate_core::vault::Kek;
use fhirgate_store::directory::{DirectoryRepository, DirectoryTx, MappingRow, ProviderRow};
use fhirgate_upstream::ProviderSettings;
pub use keys::ProviderKeys;
pub use spec::{AuthSpec, ProviderSpec};

/// The folder of the data directory that holds credential and CA files of
/// providers registered through the admin API or CLI.
pub const SECRETS_DIR: &str = "provider-secrets";

/// A mapping's approval state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MappingState {
    Pending,
    Active,
    Rejected,
}

impl MappingState {
    pub fn as_str(self) -> &'static str {
        match self {
            MappingState::Pending => "pending",
            MappingState::Active => "active",
            MappingState::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Option<MappingState> {
        match s {
            "pending" => Some(MappingState::Pending),
            "active" => Some(MappingState::Active),
            "rejected" => Some(MappingState::Rejected),
            _ => None,
        }
    }
}

/// A provider as requests reach it.
#[derive(Debug)]
pub struct ProviderRoute {
    pub id: String,
    /// Base URL without a trailing slash.
    pub base_url: String,
    pub fhir_version: Version,
    pub settings: ProviderSettings,
}

/// Why a tenant or a routing answer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No mapping at all for the tenant.
    UnknownTenant,
    /// The tenant's mappings await approval.
    Pending,
    /// The tenant's mappings were rejected.
    Rejected,
    /// The provider is not active for the tenant.
    NotApproved,
    /// The provider is active but its settings could not be loaded (a
    /// credential or CA file went missing).
    Unavailable,
}

/// One consistent view of the directory, for the tokens of one
/// environment: only its mappings route.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub generation: i64,
    pub environment: Environment,
    providers: Arc<HashMap<String, Arc<ProviderRoute>>>,
    /// Lower-case tenant id → (provider id, state), active ones in approval
    /// order first.
    tenants: HashMap<String, Vec<(String, MappingState)>>,
    /// The providers' assertion keys.
    keys: Arc<ProviderKeys>,
}

impl Snapshot {
    /// Builds a snapshot from table rows. A provider whose settings cannot be
    /// built is left out (and logged): its tenants get a clear error rather
    /// than a half-configured upstream.
    pub fn build(generation: i64, providers: &[ProviderRow], mappings: &[MappingRow], keys: ProviderKeys) -> Snapshot {
        Self::build_views(generation, providers, mappings, keys).1
    }

    /// The test and the production view of the same rows.
    pub fn build_views(
        generation: i64,
        providers: &[ProviderRow],
        mappings: &[MappingRow],
        mut keys: ProviderKeys,
    ) -> (Snapshot, Snapshot) {
        let signing: std::collections::HashSet<&str> = providers
            .iter()
            .filter(|p| ProviderSpec::from_json(&p.spec).is_ok_and(|s| s.uses_assertion_key()))
            .map(|p| p.provider_id.as_str())
            .collect();
        keys.retain(|p| signing.contains(p));
        let keys = Arc::new(keys);
        let providers = Arc::new(Self::routes(providers, &keys));
        let [test, production] = Environment::ALL.map(|environment| Snapshot {
            generation,
            environment,
            providers: providers.clone(),
            tenants: Self::tenants(mappings, environment),
            keys: keys.clone(),
        });
        (test, production)
    }

    fn routes(providers: &[ProviderRow], keys: &ProviderKeys) -> HashMap<String, Arc<ProviderRoute>> {
        let mut by_id = HashMap::new();
        for row in providers {
            let key = keys.current(&row.provider_id);
            match ProviderSpec::from_json(&row.spec).and_then(|s| s.route(&row.provider_id, key)) {
                Ok(mut route) => {
                    // Only the operator's own declarations reach special
                    // addresses the outbound policy does not allow.
                    route.settings.restricted = row.source != "policy";
                    by_id.insert(row.provider_id.clone(), Arc::new(route));
                }
                Err(e) => tracing::error!(provider = %row.provider_id, error = %format!("{e:#}"),
                    "provider settings could not be loaded; its tenants cannot be routed"),
            }
        }
        by_id
    }

    fn tenants(mappings: &[MappingRow], environment: Environment) -> HashMap<String, Vec<(String, MappingState)>> {
        let mut tenants: HashMap<String, Vec<(String, MappingState, i64)>> = HashMap::new();
        for m in mappings.iter().filter(|m| m.environment == environment.as_str()) {
            let Some(state) = MappingState::parse(&m.state) else { continue };
            tenants.entry(m.tenant_id.to_ascii_lowercase()).or_default().push((
                m.provider_id.clone(),
                state,
                m.decided_at.unwrap_or(i64::MAX),
            ));
        }
        tenants
            .into_iter()
            .map(|(t, mut list)| {
                list.sort_by_key(|(_, s, at)| (*s != MappingState::Active, *at));
                (t, list.into_iter().map(|(p, s, _)| (p, s)).collect())
            })
            .collect()
    }

    /// Provider `id`, whatever its mappings.
    pub fn provider(&self, id: &str) -> Option<Arc<ProviderRoute>> {
        self.providers.get(id).cloned()
    }

    /// The ids of every declared provider, sorted.
    pub fn provider_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.providers.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The JWK Set of `provider`'s assertion keys, if it has any.
    pub fn provider_jwks(&self, provider: &str) -> Option<serde_json::Value> {
        self.keys.jwks(provider)
    }

    /// Whether `tenant` may be routed at all.
    pub fn check_tenant(&self, tenant: &str) -> Result<(), Refusal> {
        let list = self.tenants.get(&tenant.to_ascii_lowercase()).ok_or(Refusal::UnknownTenant)?;
        if list.iter().any(|(_, s)| *s == MappingState::Active) {
            Ok(())
        } else if list.iter().any(|(_, s)| *s == MappingState::Pending) {
            Err(Refusal::Pending)
        } else {
            Err(Refusal::Rejected)
        }
    }

    /// The provider `id`, if it is active for `tenant`.
    pub fn resolve(&self, tenant: &str, id: &str) -> Result<Arc<ProviderRoute>, Refusal> {
        let list = self.tenants.get(&tenant.to_ascii_lowercase()).ok_or(Refusal::UnknownTenant)?;
        if !list.iter().any(|(p, s)| p == id && *s == MappingState::Active) {
            return Err(Refusal::NotApproved);
        }
        self.providers.get(id).cloned().ok_or(Refusal::Unavailable)
    }

    /// Providers active for `tenant`, in approval order.
    pub fn active_providers(&self, tenant: &str) -> Vec<(String, Version)> {
        let Some(list) = self.tenants.get(&tenant.to_ascii_lowercase()) else { return Vec::new() };
        list.iter()
            .filter(|(_, s)| *s == MappingState::Active)
            .filter_map(|(p, _)| self.providers.get(p).map(|r| (p.clone(), r.fhir_version)))
            .collect()
    }

    pub fn provider_count(&self) -> usize {
        self.providers.len()
    }

    pub fn tenant_count(&self) -> usize {
        self.tenants.len()
    }

    /// A snapshot from in-memory routes, for tests (the module harness has
    /// its own `StaticDirectory`).
    #[cfg(test)]
    pub fn from_routes(routes: Vec<ProviderRoute>, active: &[(&str, &str)]) -> Snapshot {
        let providers = routes.into_iter().map(|r| (r.id.clone(), Arc::new(r))).collect();
        let mut tenants: HashMap<String, Vec<(String, MappingState)>> = HashMap::new();
        for (t, p) in active {
            tenants.entry(t.to_ascii_lowercase()).or_default().push(((*p).to_owned(), MappingState::Active));
        }
        Snapshot {
            generation: 0,
            environment: Environment::Production,
            providers: Arc::new(providers),
            tenants,
            keys: Arc::default(),
        }
    }
}

/// What the `directory` import answers modules during a request.
impl fhirgate_sandbox::ActiveProviders for Snapshot {
    fn active_providers(&self, tenant: &str) -> Vec<(String, Version)> {
        Snapshot::active_providers(self, tenant)
    }
}

/// The directory a gateway routes with: its repository, and the snapshot
/// built from it.
pub struct Directory {
    repo: Arc<dyn DirectoryRepository>,
    /// The production view.
    snapshot: ArcSwap<Snapshot>,
    /// The test view, of the same generation.
    test_snapshot: ArcSwap<Snapshot>,
    generation: AtomicI64,
    /// When the directory was last confirmed current against the store
    /// (milliseconds since the Unix epoch).
    confirmed_at_ms: AtomicI64,
    /// One reload at a time, so a slow poll cannot install an older view
    /// over a newer one.
    reloading: tokio::sync::Mutex<()>,
    /// Where credential and CA files of providers registered through the
    /// admin API or CLI must live (`<data_dir>/provider-secrets`); `None`
    /// refuses such files.
    secrets_dir: Option<PathBuf>,
    /// Seals and opens the providers' assertion keys.
    kek: Kek,
}

impl Directory {
    /// Opens the directory kept in `repo`; `kek` seals the providers'
    /// assertion keys.
    pub async fn open(
        repo: Arc<dyn DirectoryRepository>,
        secrets_dir: Option<PathBuf>,
        kek: Kek,
    ) -> anyhow::Result<Directory> {
        let dir = Directory {
            repo,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            test_snapshot: ArcSwap::from_pointee(Snapshot { environment: Environment::Test, ..Snapshot::default() }),
            generation: AtomicI64::new(-1),
            confirmed_at_ms: AtomicI64::new(0),
            reloading: tokio::sync::Mutex::new(()),
            secrets_dir,
            kek,
        };
        dir.reload().await?;
        Ok(dir)
    }

    /// Where the directory is kept.
    pub fn repo(&self) -> &dyn DirectoryRepository {
        &*self.repo
    }

    pub fn secrets_dir(&self) -> Option<&Path> {
        self.secrets_dir.as_deref()
    }

    /// Whether provider credentials are kept in the store (a gateway whose
    /// state is all in a database) rather than in files.
    pub fn keeps_secrets_in_store(&self) -> bool {
        self.secrets_dir.as_deref() == Some(Path::new(fhirgate_core::vault::STORED_DIR))
    }

    /// Keeps the provider credential `name` (`plain`) sealed in the store,
    /// for declarations naming it; every gateway sharing the store reloads.
    pub async fn store_secret(&self, name: &str, plain: &str, actor: &str) -> anyhow::Result<()> {
        if !self.keeps_secrets_in_store() {
            anyhow::bail!("this gateway keeps provider credentials in files (its data directory), not in the store");
        }
        if !fhirgate_core::files::is_plain_name(name) || plain.trim().is_empty() {
            anyhow::bail!("a credential has a plain name (letters, digits, `-`, `_`, `.`) and a value");
        }
        let sealed = self.kek.seal(fhirgate_core::vault::PROVIDER_SECRET, plain.trim().as_bytes())?;
        let mut tx = self.repo.write().await?;
        tx.put_provider_secret(name, &sealed).await?;
        let detail = serde_json::json!({ "name": name });
        tx.record_event(actor, "provider-secret.stored", &format!("provider-secret:{name}"), &detail).await?;
        self.commit(tx).await
    }

    /// The current production view; requests keep the one they started with.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The current view for tokens of `environment`.
    pub fn snapshot_for(&self, environment: Environment) -> Arc<Snapshot> {
        match environment {
            Environment::Production => self.snapshot.load_full(),
            Environment::Test => self.test_snapshot.load_full(),
        }
    }

    /// Rebuilds the snapshot from the store.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let _one = self.reloading.lock().await;
        // One transaction: the generation and the rows it describes agree.
        let mut tx = self.repo.read().await.context("reading the directory")?;
        let generation = tx.generation().await.context("reading the directory generation")?;
        let providers = tx.providers().await.context("reading providers")?;
        let mappings = tx.mappings().await.context("reading tenant mappings")?;
        let keys = tx.upstream_keys().await.context("reading the providers' assertion keys")?;
        if self.keeps_secrets_in_store() {
            // Before the settings are built: they read these.
            fhirgate_core::vault::set_stored(tx.provider_secrets().await.context("reading provider credentials")?);
        }
        tx.commit().await.context("reading the directory")?;
        let keys = ProviderKeys::open(&keys, &self.kek, fhirgate_core::clock::now_seconds() as i64);
        let (test, snapshot) = Snapshot::build_views(generation, &providers, &mappings, keys);
        tracing::info!(
            generation,
            providers = snapshot.provider_count(),
            tenants = snapshot.tenant_count(),
            test_tenants = test.tenant_count(),
            "directory loaded"
        );
        // Test first: a request that reads the production view of this
        // generation finds the test view of it too.
        self.test_snapshot.store(Arc::new(test));
        self.snapshot.store(Arc::new(snapshot));
        self.generation.store(generation, Ordering::Release);
        self.confirm();
        Ok(())
    }

    fn confirm(&self) {
        self.confirmed_at_ms.store(fhirgate_core::clock::now_millis(), Ordering::Release);
    }

    /// How long ago the directory was last confirmed current: the
    /// configuration lag a readiness probe bounds.
    pub fn lag(&self) -> std::time::Duration {
        let at = self.confirmed_at_ms.load(Ordering::Acquire);
        let now = fhirgate_core::clock::now_millis();
        std::time::Duration::from_millis(now.saturating_sub(at).max(0) as u64)
    }

    /// Reloads when another process (the CLI, another gateway) changed the
    /// store since the last load.
    pub async fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let mut conn = self.repo.read().await.context("reading the directory generation")?;
        let generation = conn.generation().await.context("reading the directory generation")?;
        drop(conn);
        if generation == self.generation.load(Ordering::Acquire) {
            self.confirm();
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    /// Commits a change (marking the directory changed in the same
    /// transaction, so other gateways notice exactly the committed state) and
    /// reloads.
    pub(crate) async fn commit(&self, mut tx: Box<dyn DirectoryTx>) -> anyhow::Result<()> {
        tx.bump_generation().await?;
        tx.commit().await?;
        self.reload().await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const T1: &str = "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13";
    const T2: &str = "8e1c3a4e-2b51-4c1e-9d3a-0c6f5e2b8a11";

    async fn directory(store: fhirgate_store::Store) -> Directory {
        Directory::open(Arc::new(store), None, Kek::random()).await.unwrap()
    }

    fn providers(ids: &[&str]) -> BTreeMap<String, ProviderSpec> {
        ids.iter()
            .map(|id| (id.to_string(), ProviderSpec::new(&format!("http://{id}.example/fhir"), Version::R4)))
            .collect()
    }

    fn tenants(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (t, p) in pairs {
            map.entry(t.to_string()).or_default().push(p.to_string());
        }
        map
    }

    fhirgate_store::store_tests! {
        async fn declarations_route_and_their_removal_stops_routing(store) {
            let dir = directory(store).await;
            dir.declare("acme", &providers(&["a", "b"]), &tenants(&[(T1, "a"), (T2, "b")])).await.unwrap();
            let snap = dir.snapshot();
            assert!(snap.check_tenant(T1).is_ok());
            assert_eq!(snap.resolve(&T1.to_uppercase(), "a").unwrap().base_url, "http://a.example/fhir");
            assert_eq!(snap.resolve(T1, "b").unwrap_err(), Refusal::NotApproved, "no cross-tenant routes");
            assert_eq!(snap.active_providers(T2), vec![("b".to_owned(), Version::R4)]);
            let generation = snap.generation;

            // Declaring the same again changes nothing.
            dir.declare("acme", &providers(&["a", "b"]), &tenants(&[(T1, "a"), (T2, "b")])).await.unwrap();
            assert_eq!(dir.snapshot().generation, generation);

            // Dropping T2 and provider b from the file removes them.
            dir.declare("acme", &providers(&["a"]), &tenants(&[(T1, "a")])).await.unwrap();
            let snap = dir.snapshot();
            assert_eq!(snap.check_tenant(T2).unwrap_err(), Refusal::UnknownTenant);
            assert_eq!(snap.provider_count(), 1);
            assert!(snap.generation > generation);
        }
    }

    #[tokio::test]
    async fn a_rejected_or_pending_tenant_is_told_so() {
        let pending = Snapshot::build(
            1,
            &[],
            &[MappingRow {
                tenant_id: T1.into(),
                provider_id: "a".into(),
                state: "pending".into(),
                approver: "bob".into(),
                requested_by: "alice".into(),
                requested_at: 0,
                decided_by: None,
                decided_at: None,
                note: None,
                source: "admin".into(),
                spec_sha256: String::new(),
                organization: String::new(),
                environment: "production".into(),
                check_report: None,
            }],
            ProviderKeys::default(),
        );
        assert_eq!(pending.check_tenant(T1).unwrap_err(), Refusal::Pending);
        assert_eq!(pending.resolve(T1, "a").unwrap_err(), Refusal::NotApproved);
        assert!(pending.active_providers(T1).is_empty());
    }

    fhirgate_store::store_tests! {
        async fn a_bad_declaration_changes_nothing(store) {
            let dir = directory(store).await;
            dir.declare("acme", &providers(&["a"]), &tenants(&[(T1, "a")])).await.unwrap();
            let generation = dir.snapshot().generation;
            let mut bad = providers(&["a"]);
            bad.get_mut("a").unwrap().base_url = "ftp://nope".into();
            let err = dir.declare("acme", &bad, &tenants(&[(T1, "a")])).await.unwrap_err();
            assert!(format!("{err:#}").contains("providers.a"), "{err:#}");
            assert_eq!(dir.snapshot().generation, generation);
            assert!(dir.snapshot().resolve(T1, "a").is_ok());
        }
    }
}
