//! What a running gateway owns and hands to the pipeline and the admin API:
//! the store-backed state, the policy, the authorization server, the
//! upstream client and the runtime, and the background loop that keeps the
//! directory in step with the store.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use fhirgate_core::FACES;
use fhirgate_sandbox::Runtime;
use fhirgate_store::Store;
use fhirgate_store::access::AccessLog;
use fhirgate_upstream::Upstream;
use http::Request;
use http::header::HOST;

use crate::config::{Config, HttpLimits};
use crate::directory::Directory;
use crate::oauth::token::AuthServer;
use crate::oauth::{ClientRegistry, SigningKey};
use crate::paging::Sealer;
use crate::policy::{Policy, PolicyFile};

/// What a gateway keeps in its store: the tenant directory, the access log
/// and the paging key.
pub struct GatewayState {
    pub store: Store,
    pub directory: Directory,
    pub access: AccessLog,
    pub sealer: Sealer,
}

impl GatewayState {
    /// Opens the store in `data_dir` (or an in-memory one, for a gateway
    /// that keeps nothing across restarts) and writes the policy file's
    /// providers and tenants into the directory.
    pub async fn open(data_dir: Option<&std::path::Path>, policy: &PolicyFile) -> anyhow::Result<GatewayState> {
        let (store, sealer) = match data_dir {
            Some(dir) => (Store::open_dir(dir).await?, Sealer::load_or_create(dir)?),
            None => (Store::open("sqlite::memory:").await?, Sealer::random()?),
        };
        let secrets = data_dir.map(|d| d.join(crate::directory::SECRETS_DIR));
        let directory = Directory::open(store.clone(), secrets).await?;
        directory
            .declare(&policy.partner, &policy.providers, &policy.declared_tenants())
            .await
            .with_context(|| "in the policy's [providers] and [tenants]".to_owned())?;
        let access = AccessLog::start(store.clone());
        Ok(GatewayState { store, directory, access, sealer })
    }
}

/// Everything a running gateway owns.
pub struct Gateway {
    pub auth: AuthServer,
    /// The partner policy; swapped whole on reload.
    pub policy: ArcSwap<Policy>,
    /// The policy file watched for changes, when it is.
    pub activation: Option<crate::activation::Activation>,
    /// Tenants → providers, with approval state.
    pub directory: Directory,
    /// The append-only access log.
    pub access: AccessLog,
    /// Seals paging cursors.
    pub sealer: Sealer,
    /// Answers of shaping modules' upstream reads, reused briefly.
    pub read_cache: Arc<fhirgate_upstream::reads::ReadCache>,
    pub store: Store,
    pub runtime: Runtime,
    pub upstream: Upstream,
    /// Configured public URL, if any.
    pub public_url: Option<String>,
    pub local_addr: SocketAddr,
    pub limits: HttpLimits,
    /// The admin API's credential, when enabled.
    pub admin: Option<crate::principal::AdminAuth>,
    /// Algorithm of new signing keys and how long retired ones stay
    /// published, when keys live in the store.
    pub key_policy: Option<(jsonwebtoken::Algorithm, u64)>,
}

impl Gateway {
    /// Assembles a gateway listening on `local_addr`.
    pub fn new(
        config: &Config,
        runtime: Runtime,
        policy: Policy,
        state: GatewayState,
        clients: ClientRegistry,
        local_addr: SocketAddr,
    ) -> anyhow::Result<Gateway> {
        let key = match &config.token.signing_key_file {
            Some(path) => SigningKey::load_or_create(path)?,
            None => SigningKey::generate()?,
        };
        let issuer = config.public_url.clone().unwrap_or_else(|| format!("http://{local_addr}"));
        let audiences = FACES.iter().map(|f| format!("{issuer}/{}", f.face())).collect();
        let mut auth = AuthServer::new(clients, key, issuer, audiences, config.token.lifetime_seconds);
        auth.events = Some(state.access.clone());
        Ok(Gateway {
            auth,
            policy: ArcSwap::from_pointee(policy),
            activation: None,
            directory: state.directory,
            access: state.access,
            sealer: state.sealer,
            read_cache: Arc::default(),
            store: state.store,
            runtime,
            upstream: Upstream::new(config.limits.max_upstream_body_bytes),
            public_url: config.public_url.clone(),
            local_addr,
            limits: config.limits.clone(),
            admin: config.admin.as_ref().map(|a| crate::principal::AdminAuth::from_hex(&a.token_sha256)).transpose()?,
            key_policy: None,
        })
    }

    /// What a policy activation swaps and checks against.
    pub fn served(&self) -> crate::activation::Served<'_> {
        crate::activation::Served { policy: &self.policy, runtime: &self.runtime, directory: &self.directory }
    }

    /// `scheme://host[:port]` as the client reached us: the configured public
    /// URL, else the request's `Host` when it is a plain authority, else the
    /// listening address.
    pub fn public_base<B>(&self, req: &Request<B>) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let host = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
            .filter(|a| !a.as_str().contains('@'));
        match host {
            Some(a) => format!("http://{a}"),
            None => format!("http://{}", self.local_addr),
        }
    }
}
