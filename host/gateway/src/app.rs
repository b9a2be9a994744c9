//! The one composition root: a gateway built from its configuration, with
//! every background task it runs, started together and stopped together.
//! `fhirgate serve`, `fhirgate demo`, the benchmarks and the tests all build
//! an [`App`]; the HTTP layer serves its [`Services`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use fhirgate_sandbox::Runtime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::activation::{Activation, Adjust};
use crate::config::Config;
use crate::policy::PolicyFile;
use crate::services::{GatewayState, Services};

/// How often a gateway checks the store for directory changes made by
/// another process (the CLI, another gateway); changes made through this
/// gateway's admin API apply at once.
const DIRECTORY_POLL: Duration = Duration::from_secs(2);

/// How often keys rotated and tokens revoked by another process (the CLI,
/// another gateway) are picked up, and retired keys whose publication window
/// ended drop out of the JWK Set.
const KEY_RELOAD: Duration = Duration::from_secs(30);

/// As [`KEY_RELOAD`] for replicas sharing a database, which hear of changes
/// at once: the poll only makes up for announcements lost while a listener
/// reconnects, so a change arrives within 5 s even then.
const SHARED_KEY_RELOAD: Duration = Duration::from_secs(4);

/// A change made to the policy file each time it is read.
pub type AdjustPolicy = Arc<dyn Fn(&mut PolicyFile) + Send + Sync>;

/// What a gateway is built with besides its configuration.
#[derive(Default)]
pub struct Options {
    /// Applied to the policy file every time it is read, at start and on each
    /// reload: the demo points its provider at the port the demo provider
    /// bound.
    pub adjust_policy: Option<AdjustPolicy>,
    /// Native twins the runtime runs instead of the modules they stand for:
    /// the sandbox's benchmark baseline (`serve --native-twins`).
    pub twins: Option<Arc<dyn fhirgate_sandbox::twin::Twins>>,
}

/// A running gateway and its background tasks: the directory poll, the
/// policy watcher and, with a data directory, the key and revocation reload.
pub struct App {
    services: Arc<Services>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl App {
    /// Builds the gateway `config` describes, answering at `local_addr` (its
    /// issuer and public base unless `public_url` says otherwise), and starts
    /// its background tasks. A policy or module that would not serve fails
    /// here, never at request time.
    pub async fn build(config: &Config, local_addr: SocketAddr, options: Options) -> anyhow::Result<App> {
        // Before anything is created in it: private, or refused.
        if let Some(dir) = &config.data_dir {
            fhirgate_core::files::private_dir(dir)?;
        }
        let in_policy = || format!("in policy {}", config.policy.display());
        let runtime =
            Runtime::with_artifacts(config.wasm.clone(), config.data_dir.as_ref().map(|d| d.join("compiled-modules")))?;
        if let Some(twins) = &options.twins {
            runtime.run_natively(twins.clone());
        }
        let mut policy_file = PolicyFile::read(&config.policy)?;
        if let Some(adjust) = &options.adjust_policy {
            adjust(&mut policy_file);
        }
        let state = GatewayState::open(
            config.data_dir.as_deref(),
            config.database_url.as_deref(),
            config.kek_file.as_deref(),
            &policy_file,
            config.audit.commit,
        )
        .await
        .with_context(in_policy)?;
        let policy = policy_file.load(&config.policy, &runtime)?;
        crate::activation::check(&policy).await.with_context(in_policy)?;
        let adjust: Option<Adjust> = options.adjust_policy.map(|a| Box::new(move |f: &mut PolicyFile| a(f)) as Adjust);
        let uploads: Option<PathBuf> = config.data_dir.as_ref().map(|d| d.join("modules"));
        let mut activation = Activation::with_uploads(&config.policy, adjust, uploads);
        if config.database_url.is_some() {
            activation = activation.sharing(state.store.clone());
        }
        let services = Services::new(config, local_addr, runtime, policy, state, Some(activation)).await?;
        // Replicas serve the newest activation recorded in their database.
        if let Some(activation) = services.activation() {
            activation.sync_shared(&services.served()).await;
        }
        let (stop, _) = watch::channel(false);
        let mut app = App { services: Arc::new(services), stop, tasks: Vec::new() };
        app.start();
        Ok(app)
    }

    /// What the HTTP layer serves.
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    fn start(&mut self) {
        let gw = self.services.clone();
        self.every(DIRECTORY_POLL, move || {
            let gw = gw.clone();
            async move {
                if let Err(e) = gw.directory().reload_if_changed().await {
                    tracing::warn!(error = %format!("{e:#}"), "reloading the directory failed; keeping the current one");
                }
            }
        });
        let gw = self.services.clone();
        self.every(crate::activation::POLL, move || {
            let gw = gw.clone();
            async move {
                if let Some(activation) = gw.activation()
                    && activation.changed()
                {
                    activation.reload_if_changed(&gw.served()).await;
                }
            }
        });
        if self.services.activation().is_some_and(|a| a.is_shared()) {
            let gw = self.services.clone();
            self.every(crate::activation::SHARED_POLL, move || {
                let gw = gw.clone();
                async move {
                    if let Some(activation) = gw.activation() {
                        activation.sync_shared(&gw.served()).await;
                    }
                }
            });
        }
        if self.services.key_policy().is_some() {
            let gw = self.services.clone();
            let shared = gw.store().backend() == fhirgate_store::Backend::Postgres;
            self.every(if shared { SHARED_KEY_RELOAD } else { KEY_RELOAD }, move || {
                let gw = gw.clone();
                async move {
                    reload_keys(&gw).await;
                    gw.auth().load_revocations().await;
                }
            });
        }
        self.listen();
    }

    /// On a database other replicas share: reloads at once what another
    /// replica announces it changed (the polls above make up for
    /// announcements lost while reconnecting).
    fn listen(&mut self) {
        if self.services.store().backend() != fhirgate_store::Backend::Postgres {
            return;
        }
        let gw = self.services.clone();
        let mut stop = self.stop.subscribe();
        self.tasks.push(tokio::spawn(async move {
            let mut listener = loop {
                match gw.store().listen().await {
                    Ok(Some(listener)) => break listener,
                    Ok(None) => return,
                    Err(e) => tracing::warn!(error = %e, "listening for changes by other replicas failed; retrying"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            };
            loop {
                let heard = tokio::select! {
                    heard = listener.next() => heard,
                    _ = stop.changed() => return,
                };
                use fhirgate_store::changes::{Heard, Topic};
                let (directory, keys, modules) = match heard {
                    Heard::Changed(Topic::Directory) => (true, false, false),
                    Heard::Changed(Topic::Keys) => (false, true, false),
                    Heard::Changed(Topic::Modules) => (false, false, true),
                    Heard::Reconnected => (true, true, true),
                };
                if modules && let Some(activation) = gw.activation() {
                    activation.sync_shared(&gw.served()).await;
                }
                if directory && let Err(e) = gw.directory().reload_if_changed().await {
                    tracing::warn!(error = %format!("{e:#}"), "reloading the directory failed; keeping the current one");
                }
                if keys {
                    reload_keys(&gw).await;
                }
            }
        }));
    }

    /// Runs `work` every `period` (the first time one period from now) until
    /// the app stops; a run in progress finishes first.
    fn every<F, Fut>(&mut self, period: Duration, work: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let mut stop = self.stop.subscribe();
        self.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => work().await,
                    _ = stop.changed() => return,
                }
            }
        }));
    }

    /// Stops the background tasks (each finishes what it is doing) and
    /// commits every access record still pending.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        self.services.access().flush().await;
    }
}

/// Loads the signing keys from the store again.
async fn reload_keys(gw: &Services) {
    let Some((alg, publish)) = gw.key_policy() else { return };
    match crate::oauth::key_store::load_ring(gw.store(), gw.kek(), alg, publish).await {
        Ok(ring) => gw.auth().set_keys(ring),
        Err(e) => tracing::warn!(error = %e, "reloading signing keys failed; keeping the current ones"),
    }
}

impl Drop for App {
    /// An app dropped without [`App::shutdown`] still stops its tasks.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
