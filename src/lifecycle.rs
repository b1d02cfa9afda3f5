//! One configuration at work: the [`Connector`] that `run`, `run --once` and the demo all
//! start, drive and stop the same way. Starting it reads the journal a previous run left
//! (unknown outcomes first), applies the profiles to the state and logs what was loaded;
//! stopping it waits for the `[notify]` commands under way and makes the state durable. The
//! daemon keeps one for its life and swaps in a new one at each reload.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use sectigo_core::clock::SharedClock;
use sectigo_core::config::Config;
use sectigo_engine::{CollectReport, CycleReport, Engine, EngineError, Mode, Shared};
use sectigo_jira::deliver::Deliverer;
use sectigo_jira::JiraClient;
use sectigo_state::SharedStore;
use sectigo_workflow::{PollReport, Poller};

/// Logs what was loaded: one line per profile, and the warnings.
pub fn log_config(cfg: &Config) {
    for p in cfg.profiles.values() {
        let mode = if p.force_renewal {
            "force renewal".to_string()
        } else if p.auto_renew {
            format!("renews {} days before expiry", p.expiry_window_days)
        } else {
            format!(
                "reports {} days before expiry, auto renew off",
                p.expiry_window_days
            )
        };
        info!(profile = %p.name, "profile {:?} loaded from {}: SCM {} as client {:?}, {mode}", p.name, p.file.display(), p.scm_url, p.client_id);
    }
    if cfg.profiles.is_empty() {
        warn!(
            "no profiles configured: add one file per profile in {}/profiles.d/",
            cfg.dir.display()
        );
    }
    for w in &cfg.warnings {
        warn!("{w}");
    }
}

/// What `run --once` (and each step of the demo) did.
#[derive(Debug, Default)]
pub struct OnceReport {
    pub cycle: CycleReport,
    /// The Jira workflow's poll, when `[jira.workflow]` is on.
    pub poll: Option<PollReport>,
    /// Jira updates delivered, and still queued.
    pub jira: Option<(usize, usize)>,
}

/// An engine, the Jira delivery and the workflow poller of one configuration, over a store, a
/// clock and what outlives a reload ([`Shared`]).
pub struct Connector {
    cfg: Config,
    store: SharedStore,
    clock: SharedClock,
    engine: Arc<Engine>,
    poller: Option<Arc<Poller>>,
}

impl Connector {
    /// Builds the configuration's engine and poller, without touching the state.
    pub fn build(
        cfg: Config,
        store: SharedStore,
        shared: Shared,
        clock: SharedClock,
    ) -> Result<Connector, EngineError> {
        let engine = Arc::new(Engine::new(&cfg, store.clone(), shared, clock.clone())?);
        let poller = match cfg
            .connector
            .jira
            .as_ref()
            .map(|j| Poller::new(j, clock.clone()))
        {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(p))) => Some(Arc::new(p)),
            Some(Err(e)) => {
                error!("Jira workflow: {e}; requests from Jira are not handled");
                None
            }
        };
        Ok(Connector {
            cfg,
            store,
            clock,
            engine,
            poller,
        })
    }

    /// Builds, then starts: the journal first (unknown outcomes are marked before anything new
    /// is done), then the profiles applied to the state. Returns the connector and whether a
    /// force renewal started (a cycle is then due at once).
    pub async fn start(
        cfg: Config,
        store: SharedStore,
        shared: Shared,
        clock: SharedClock,
    ) -> Result<(Connector, bool), EngineError> {
        let c = Connector::build(cfg, store, shared, clock)?;
        let unknown = c.engine.recover().await?;
        if unknown > 0 {
            error!("{unknown} renewals have an unknown outcome after the last stop; see `sectigo-connector status`");
        }
        let forced = c.apply_profiles().await?;
        Ok((c, forced))
    }

    /// Brings the state's profiles in line with this configuration (renames, orphans, force
    /// renewals switched on) and logs what was loaded. Whether a force renewal started.
    pub async fn apply_profiles(&self) -> Result<bool, EngineError> {
        let forced = self.engine.book().sync().await?;
        log_config(&self.cfg);
        Ok(forced)
    }

    /// The connector of a new configuration over the same store, clock and [`Shared`] (a
    /// reload). Nothing is touched until [`Connector::apply_profiles`].
    pub fn reconfigure(&self, cfg: Config) -> Result<Connector, EngineError> {
        Connector::build(
            cfg,
            self.store.clone(),
            self.engine.shared().clone(),
            self.clock.clone(),
        )
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn poller(&self) -> Option<&Arc<Poller>> {
        self.poller.as_ref()
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The Jira delivery of `[jira]`, when Jira is configured and its client can be built.
    pub fn deliverer(&self) -> Option<Deliverer> {
        let jc = self.cfg.connector.jira.as_ref()?;
        match JiraClient::new(jc, self.clock.clone()) {
            Ok(client) => Some(Deliverer::for_config(
                client,
                jc,
                self.store.clone(),
                self.clock.clone(),
            )),
            Err(e) => {
                error!("Jira client: {e}; Jira updates stay queued");
                None
            }
        }
    }

    /// One cycle.
    pub async fn cycle(
        &self,
        mode: Mode,
        cancel: &CancellationToken,
    ) -> Result<CycleReport, EngineError> {
        self.engine.cycle().run(mode, cancel).await
    }

    /// Collects renewals in flight, polling every `every`, until none is pending or `limit`
    /// has passed. Returns what the passes collected, and how many are still pending.
    pub async fn collect_until_settled(
        &self,
        every: Duration,
        limit: Duration,
    ) -> Result<CollectReport, EngineError> {
        collect_until_settled(&self.engine, every, limit, &CancellationToken::new()).await
    }

    /// One poll of the Jira workflow, when it is on.
    pub async fn poll(&self) -> Option<PollReport> {
        let p = self.poller.as_ref()?;
        Some(p.poll(&self.engine).await)
    }

    /// Delivers queued Jira updates for up to `limit`: (delivered, still queued).
    pub async fn deliver(&self, limit: Duration) -> Option<(usize, usize)> {
        Some(self.deliverer()?.drain(limit).await)
    }

    /// What `run --once` does: a cycle, a short wait for the renewals SCM has not issued yet
    /// (the daemon would poll them), the workflow's poll, and the Jira updates delivered.
    pub async fn once(&self) -> Result<OnceReport, EngineError> {
        let cancel = CancellationToken::new();
        let mut cycle = self.cycle(Mode::Live, &cancel).await?;
        settle(
            &self.engine,
            &mut cycle,
            self.cfg.connector.renewal.collect_poll_secs,
            &cancel,
        )
        .await?;
        let poll = self.poll().await;
        if let Some(r) = &poll {
            cycle.summary.failed += r.unknown as u64;
        }
        let jira = self.deliver(Duration::from_secs(30)).await;
        Ok(OnceReport { cycle, poll, jira })
    }

    /// Stops: the `[notify]` commands under way finish (a person hears of what happened
    /// last), and everything written is made durable.
    pub async fn stop(&self) -> Result<(), EngineError> {
        self.engine
            .shared()
            .notifier
            .drain(sectigo_engine::notify::TIMEOUT)
            .await;
        let store = self.store.clone();
        sectigo_state::blocking(&store, |s| s.flush()).await?;
        Ok(())
    }
}

/// Collects renewals in flight, polling every `every`, until none is pending, `limit` has
/// passed or `cancel`. Returns what the passes collected, and how many are still pending.
pub async fn collect_until_settled(
    engine: &Engine,
    every: Duration,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<CollectReport, EngineError> {
    let until = tokio::time::Instant::now() + limit;
    let mut total = CollectReport::default();
    loop {
        let c = engine.collector().collect_pending().await?;
        total.renewed += c.renewed;
        total.failed += c.failed;
        total.deploys_owed = c.deploys_owed;
        total.pending = engine.in_flight().await?;
        if total.pending == 0 || tokio::time::Instant::now() + every > until {
            return Ok(total);
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(total),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// After a cycle that `run --once` asked for (here or through the daemon): a short wait for
/// the renewals SCM has not issued yet (up to twice `[renewal] collect_poll_secs`, polling at
/// most every 10 s), so that its summary says what was renewed.
pub async fn settle(
    engine: &Engine,
    cycle: &mut CycleReport,
    collect_poll_secs: u64,
    cancel: &CancellationToken,
) -> Result<(), EngineError> {
    if cycle.summary.pending == 0 {
        return Ok(());
    }
    let every = Duration::from_secs(collect_poll_secs.min(10));
    let limit = Duration::from_secs(collect_poll_secs * 2);
    tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        _ = tokio::time::sleep(every.min(limit)) => {}
    }
    let c = collect_until_settled(engine, every, limit, cancel).await?;
    cycle.summary.renewed += c.renewed;
    cycle.summary.failed += c.failed;
    cycle.summary.pending = c.pending;
    cycle.deploys_owed = c.deploys_owed;
    Ok(())
}
