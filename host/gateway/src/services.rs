//! What a running gateway owns and hands to the pipeline and the admin API
//! ([`Services`]): the store-backed state, the policy, the authorization
//! server, the upstream client and the runtime.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::access::{AccessLog, Commit};
use anyhow::Context as _;
use arc_swap::ArcSwap;
use fhirgate_core::FACES;
use fhirgate_core::vault::Kek;
use fhirgate_sandbox::Runtime;
use fhirgate_store::Store;
use fhirgate_store::material::KeyMaterial;
use fhirgate_upstream::Upstream;
use http::Request;

use crate::activation::Activation;
use crate::config::{Config, HttpLimits};
use crate::directory::Directory;
use crate::forwarded::TrustedProxies;
use crate::hosts::{Misdirected, PublicHosts};
use crate::oauth::key_store;
use crate::oauth::throttle::Throttle;
use crate::oauth::token::AuthServer;
use crate::oauth::{ClientRegistry, SigningKey};
use crate::paging::Sealer;
use crate::policy::{Policy, PolicyFile};
use crate::principal::AdminAuth;
use fhirgate_upstream::reads::ReadCache;

/// What a gateway keeps in its store: the tenant directory, the access log
/// and the paging key.
pub struct GatewayState {
    pub store: Store,
    pub directory: Directory,
    pub access: AccessLog,
    pub sealer: Sealer,
    /// The data directory's key material, when there is one.
    pub material: Option<KeyMaterial>,
    /// The key-encryption key: the data directory's, or one of this
    /// process's own for a gateway that keeps nothing.
    pub kek: Kek,
}

impl GatewayState {
    /// Opens the store at `database_url` or in `data_dir` (or an in-memory
    /// one, for a gateway that keeps nothing across restarts) and writes the policy file's
    /// providers and tenants into the directory.
    pub async fn open(
        data_dir: Option<&std::path::Path>,
        database_url: Option<&str>,
        kek_file: Option<&std::path::Path>,
        policy: &PolicyFile,
        commit: Commit,
    ) -> anyhow::Result<GatewayState> {
        let (store, sealer, material) = match Store::open_state(data_dir, database_url, kek_file).await? {
            Some((store, material)) => {
                let sealer = Sealer::from_key(&material.cursor)?;
                (store, sealer, Some(material))
            }
            None => (Store::open("sqlite::memory:").await?, Sealer::random()?, None),
        };
        // Provider credentials registered through the admin API or CLI: in
        // the database when the state is, else in the data directory.
        let secrets = match (database_url, data_dir) {
            (Some(_), _) => Some(std::path::PathBuf::from(fhirgate_core::vault::STORED_DIR)),
            (None, Some(d)) => Some(d.join(crate::directory::SECRETS_DIR)),
            (None, None) => None,
        };
        if let (Some(dir), Some(material), None) = (&secrets, &material, database_url) {
            fhirgate_core::vault::seal_plain_files(dir, &material.kek)?;
        }
        let kek = material.as_ref().map(|m| m.kek.clone()).unwrap_or_else(Kek::random);
        let directory = Directory::open(Arc::new(store.clone()), secrets, kek.clone()).await?;
        directory
            .declare(&policy.partner, &policy.providers, &policy.declared_tenants())
            .await
            .with_context(|| "in the policy's [providers] and [tenants]".to_owned())?;
        let access = AccessLog::start(Arc::new(store.clone()), commit);
        Ok(GatewayState { store, directory, access, sealer, material, kek })
    }
}

/// What the pipeline and the admin API use: everything a running gateway
/// owns, assembled whole by [`Services::new`] and read through accessors.
pub struct Services {
    auth: AuthServer,
    policy: ArcSwap<Policy>,
    activation: Option<Activation>,
    directory: Directory,
    access: AccessLog,
    sealer: Sealer,
    read_cache: Arc<ReadCache>,
    store: Store,
    runtime: Runtime,
    upstream: Upstream,
    hosts: PublicHosts,
    limits: HttpLimits,
    /// SHA-256 of the metrics scraper's bearer token; `None`: no metrics.
    metrics_token: Option<[u8; 32]>,
    admin: Option<AdminAuth>,
    /// Failed admin authentications, per client address.
    admin_failures: Throttle,
    proxies: TrustedProxies,
    key_policy: Option<KeyPolicy>,
    /// What the store's key material is sealed under.
    kek: Kek,
    /// Set when the gateway is stopping: `/readyz` answers 503 from then on.
    draining: std::sync::atomic::AtomicBool,
}

/// Algorithm of new signing keys, and how long retired ones stay published
/// (seconds), when keys live in the store.
pub type KeyPolicy = (jsonwebtoken::Algorithm, u64);

impl Services {
    /// Assembles what a gateway answering at `local_addr` serves: its clients
    /// (declared, and registered in the data directory's store when there is
    /// one), its signing keys (from the store, else the configured key file,
    /// else a key of its own), revocations recorded so far, and `policy`,
    /// watched by `activation` when the policy file is.
    pub async fn new(
        config: &Config,
        local_addr: SocketAddr,
        runtime: Runtime,
        policy: Policy,
        state: GatewayState,
        activation: Option<Activation>,
    ) -> anyhow::Result<Services> {
        // A gateway without a data directory seals its key file only when
        // given a KEK (`FHIRGATE_KEK` or `kek_file`).
        let file_kek = match (&state.material, &config.kek_file) {
            (Some(m), _) => Some(m.kek.clone()),
            (None, Some(path)) => Some(Kek::load(path, true)?),
            (None, None) if std::env::var_os(fhirgate_core::vault::ENV).is_some() => {
                Some(Kek::load(std::path::Path::new(fhirgate_core::vault::FILE_NAME), false)?)
            }
            (None, None) => None,
        };
        let key = match &config.token.signing_key_file {
            Some(path) => SigningKey::load_or_create(path, file_kek.as_ref())?,
            None => SigningKey::generate()?,
        };
        let mut clients = ClientRegistry::from_config(&config.clients)?;
        let (mut ring, mut key_policy) = (None, None);
        let kek = state.kek.clone();
        if let Some(material) = &state.material {
            // The same store as the directory and the access log: one pool.
            let registry = fhirgate_store::Registry::new(state.store.clone(), material.pepper);
            let policy = (config.token.algorithm()?, config.token.publish_seconds());
            ring = Some(key_store::load_ring(&state.store, &kek, policy.0, policy.1).await?);
            clients = clients.with_store(Arc::new(registry));
            key_policy = Some(policy);
        }
        let issuer = config.public_url.clone().unwrap_or_else(|| format!("http://{local_addr}"));
        let audiences = FACES.iter().map(|f| format!("{issuer}/{}", f.face())).collect();
        let mut auth = AuthServer::new(clients, key, issuer, audiences, config.token.lifetime_seconds);
        auth.events = Some(state.access.clone());
        if state.store.backend() == fhirgate_store::Backend::Postgres {
            auth.share_throttle(state.store.clone());
        }
        if let Some(ring) = ring {
            auth.set_keys(ring);
        }
        auth.load_revocations().await;
        let accounts = state
            .material
            .as_ref()
            .map(|m| fhirgate_store::accounts::Accounts::new(state.store.clone(), m.pepper).with_kek(m.kek.clone()));
        let admin = match (&config.admin, accounts) {
            (Some(a), Some(accounts)) => Some(
                AdminAuth::from_config(a.token_sha256.as_deref())?
                    .with_accounts(accounts)
                    .with_reauth_seconds(a.reauth_seconds)
                    .with_oidc(crate::oidc::Oidc::from_config(&a.oidc)?),
            ),
            (Some(a), None) => Some(AdminAuth::from_config(a.token_sha256.as_deref())?),
            (None, _) => None,
        };
        // Replicas on one database count failed sign-ins together.
        let shared_store = (state.store.backend() == fhirgate_store::Backend::Postgres).then(|| state.store.clone());
        Ok(Services {
            auth,
            policy: ArcSwap::from_pointee(policy),
            activation,
            directory: state.directory,
            access: state.access,
            sealer: state.sealer,
            read_cache: Arc::default(),
            store: state.store,
            runtime,
            upstream: Upstream::with_outbound(config.limits.max_upstream_body_bytes, config.outbound.policy()?),
            hosts: PublicHosts::new(config.public_url.as_deref(), &config.accepted_hosts, local_addr)?,
            limits: config.limits.clone(),
            metrics_token: config.metrics.as_ref().and_then(|m| {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(&m.token_sha256, &mut digest).ok().map(|()| digest)
            }),
            admin,
            admin_failures: match shared_store {
                Some(store) => Throttle::shared(store),
                None => Throttle::default(),
            },
            proxies: TrustedProxies::new(&config.trusted_proxies)?,
            key_policy,
            kek,
            draining: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Marks the gateway as stopping: it keeps serving, but reports itself
    /// not ready so load balancers move traffic away first.
    pub fn start_draining(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the gateway is stopping.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The authorization server: clients, keys, tokens, verdicts,
    /// revocations.
    pub fn auth(&self) -> &AuthServer {
        &self.auth
    }

    /// The partner policy; swapped whole on reload.
    pub fn policy(&self) -> &ArcSwap<Policy> {
        &self.policy
    }

    /// The policy file watched for changes, when it is.
    pub fn activation(&self) -> Option<&Activation> {
        self.activation.as_ref()
    }

    /// Tenants → providers, with approval state.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The append-only access log and change audit trail.
    pub fn access(&self) -> &AccessLog {
        &self.access
    }

    /// Seals paging cursors.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Answers of shaping modules' upstream reads, reused briefly.
    pub fn read_cache(&self) -> &Arc<ReadCache> {
        &self.read_cache
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The pooled client to providers.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    pub fn limits(&self) -> &HttpLimits {
        &self.limits
    }

    /// Whether `token` is the metrics scraper's; `None` when metrics are off.
    pub fn metrics_token_matches(&self, token: &str) -> Option<bool> {
        use sha2::Digest as _;
        use subtle::ConstantTimeEq as _;
        let expected = self.metrics_token.as_ref()?;
        let presented: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        Some(presented.ct_eq(expected).into())
    }

    /// The admin API's credential, when the API is enabled.
    pub fn admin(&self) -> Option<&AdminAuth> {
        self.admin.as_ref()
    }

    /// Failed admin authentications, throttled per client address.
    pub fn admin_failures(&self) -> &Throttle {
        &self.admin_failures
    }

    /// The client's address: `peer`, or what a trusted proxy says.
    pub fn client_address(&self, peer: std::net::IpAddr, headers: &http::HeaderMap) -> std::net::IpAddr {
        self.proxies.client(peer, headers)
    }

    /// How signing keys are made and retired, when they live in the store.
    /// The key-encryption key the store's key material is sealed under.
    pub fn kek(&self) -> &Kek {
        &self.kek
    }

    pub fn key_policy(&self) -> Option<KeyPolicy> {
        self.key_policy
    }

    /// What a policy activation swaps and checks against.
    pub fn served(&self) -> crate::activation::Served<'_> {
        crate::activation::Served { policy: &self.policy, runtime: &self.runtime, directory: &self.directory }
    }

    /// `scheme://host[:port]` as the client reached us: the configured public
    /// URL, else the host the request named when it is one the gateway
    /// answers for; [`Misdirected`] (answered `421`) when it is not.
    pub fn public_base<B>(&self, req: &Request<B>) -> Result<String, Misdirected> {
        self.hosts.base_for(req)
    }
}
