//! The optional Prometheus endpoint (`[metrics] listen`, loopback only): `GET /metrics`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use sectigo_engine::policy::Decision;
use sectigo_engine::{Counters, Engine, Visit};
use sectigo_model::CertRecord;
use sectigo_state::blocking;

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Each live certificate's gauges, written in the inventory's pass.
struct Gauges {
    lines: String,
    now: DateTime<Utc>,
}

impl Visit for Gauges {
    fn visit(&mut self, r: &CertRecord, d: Option<&Decision>) {
        if !r.state.is_live() {
            return;
        }
        let l = format!(
            "profile=\"{}\",cert_id=\"{}\",subject=\"{}\"",
            label(&r.profile),
            label(&r.id),
            label(&r.subject_cn)
        );
        let o = &mut self.lines;
        writeln!(
            o,
            "sectigo_certificate_not_after_seconds{{{l}}} {}",
            r.not_after.timestamp()
        )
        .ok();
        writeln!(
            o,
            "sectigo_certificate_consecutive_failures{{{l}}} {}",
            r.failures
        )
        .ok();
        let next = match d {
            Some(Decision::Renew { .. }) => Some(self.now),
            Some(Decision::Backoff { until }) => Some(*until),
            Some(Decision::NotDue { at }) => Some(*at),
            _ => None,
        };
        if let Some(n) = next {
            writeln!(
                o,
                "sectigo_certificate_next_renewal_seconds{{{l}}} {}",
                n.timestamp()
            )
            .ok();
        }
    }
}

/// The metrics text, in the Prometheus exposition format: the inventory summary (the same one
/// `status` shows) and, from the same pass, each live certificate's gauges.
pub async fn render(engine: &Engine, counters: &Counters) -> String {
    let gauges = Gauges {
        lines: String::new(),
        now: engine.clock().now(),
    };
    let (by_state, stalled, deploy_failed, certs) = match engine.inventory(gauges).await {
        Ok((inv, g)) => (inv.by_state, inv.stalled, inv.deploy_failed, g.lines),
        Err(e) => {
            tracing::warn!("metrics: reading the inventory failed: {e}");
            Default::default()
        }
    };
    let store = engine.store().clone();
    let (pending, _, dead) = blocking(&store, |s| s.outbox_stats())
        .await
        .unwrap_or_default();
    let last = blocking(&store, |s| s.last_cycle()).await.ok().flatten();

    let mut o = String::new();
    o.push_str("# HELP sectigo_certificate_not_after_seconds When the certificate expires (Unix time).\n# TYPE sectigo_certificate_not_after_seconds gauge\n");
    o.push_str("# HELP sectigo_certificate_next_renewal_seconds When the certificate will next be renewed (Unix time; now when due).\n# TYPE sectigo_certificate_next_renewal_seconds gauge\n");
    o.push_str("# HELP sectigo_certificate_consecutive_failures Failed renewal attempts since the last success.\n# TYPE sectigo_certificate_consecutive_failures gauge\n");
    o.push_str(&certs);
    o.push_str("# HELP sectigo_certificates Tracked certificates by state.\n# TYPE sectigo_certificates gauge\n");
    for (st, n) in by_state {
        writeln!(o, "sectigo_certificates{{state=\"{st}\"}} {n}").ok();
    }
    o.push_str("# HELP sectigo_renewals_stalled Renewals accepted by SCM and not issued within [renewal] collect_timeout_hours.\n# TYPE sectigo_renewals_stalled gauge\n");
    writeln!(o, "sectigo_renewals_stalled {stalled}").ok();
    o.push_str("# HELP sectigo_deploys_failing Issued certificates whose files or [deploy] hook failed and are retried.\n# TYPE sectigo_deploys_failing gauge\n");
    writeln!(o, "sectigo_deploys_failing {deploy_failed}").ok();
    o.push_str("# HELP sectigo_deploy_failures_total Failed deploy attempts since the daemon started.\n# TYPE sectigo_deploy_failures_total counter\n");
    writeln!(
        o,
        "sectigo_deploy_failures_total {}",
        counters.deploy_failed.load(Ordering::Relaxed)
    )
    .ok();
    o.push_str("# HELP sectigo_renewals_total Renewal outcomes since the daemon started.\n# TYPE sectigo_renewals_total counter\n");
    for (result, c) in [
        ("requested", &counters.requested),
        ("renewed", &counters.renewed),
        ("failed", &counters.failed),
        ("unknown", &counters.unknown),
        ("refused", &counters.refused),
        ("stalled", &counters.stalled),
    ] {
        writeln!(
            o,
            "sectigo_renewals_total{{result=\"{result}\"}} {}",
            c.load(Ordering::Relaxed)
        )
        .ok();
    }
    o.push_str("# HELP sectigo_jira_pending_updates Jira updates waiting for delivery.\n# TYPE sectigo_jira_pending_updates gauge\n");
    writeln!(o, "sectigo_jira_pending_updates {pending}").ok();
    o.push_str("# HELP sectigo_jira_undeliverable_updates Jira updates Jira can never take (issue gone, no permission).\n# TYPE sectigo_jira_undeliverable_updates gauge\n");
    writeln!(o, "sectigo_jira_undeliverable_updates {dead}").ok();
    o.push_str(&scm_and_budget(engine, last.as_ref()).await);
    if let Some(t) = last.and_then(|c| c.finished) {
        o.push_str("# HELP sectigo_last_cycle_finished_seconds When the last renewal cycle finished (Unix time).\n# TYPE sectigo_last_cycle_finished_seconds gauge\n");
        writeln!(o, "sectigo_last_cycle_finished_seconds {}", t.timestamp()).ok();
    }
    o
}

/// Whether each SCM host answers, and each profile's daily budget and what waits.
async fn scm_and_budget(engine: &Engine, last: Option<&sectigo_model::CycleSummary>) -> String {
    let mut o = String::new();
    o.push_str("# HELP sectigo_scm_up Whether an SCM host (API or token endpoint) answers (1) or cannot be reached (0).\n# TYPE sectigo_scm_up gauge\n");
    for h in engine.shared().hosts() {
        let host = sectigo_core::text::Escaped(&h.host)
            .to_string()
            .replace('"', "");
        writeln!(
            o,
            "sectigo_scm_up{{host=\"{host}\"}} {}",
            u8::from(h.down_since.is_none())
        )
        .ok();
    }
    o.push_str("# HELP sectigo_renewals_billed_24h Billable calls of the profile in the last 24 hours.\n# TYPE sectigo_renewals_billed_24h gauge\n");
    let mut limits = String::new();
    for p in engine.profiles().keys() {
        let Ok(u) = engine.budget().usage(p).await else {
            continue;
        };
        writeln!(
            o,
            "sectigo_renewals_billed_24h{{profile=\"{p}\"}} {}",
            u.used
        )
        .ok();
        if let Some(l) = u.limit {
            writeln!(limits, "sectigo_renewal_budget{{profile=\"{p}\"}} {l}").ok();
        }
    }
    o.push_str("# HELP sectigo_renewal_budget The profile's daily budget of scheduled renewals (absent: no limit).\n# TYPE sectigo_renewal_budget gauge\n");
    o.push_str(&limits);
    o.push_str("# HELP sectigo_renewals_waiting Renewals of the last cycle that wait: held by the daily budget, or deferred (SCM unreachable, credentials refused).\n# TYPE sectigo_renewals_waiting gauge\n");
    for p in engine.profiles().keys() {
        let held = last.and_then(|c| c.held.get(p)).copied().unwrap_or(0);
        let deferred = last.and_then(|c| c.deferred.get(p)).copied().unwrap_or(0);
        writeln!(
            o,
            "sectigo_renewals_waiting{{profile=\"{p}\",why=\"budget\"}} {held}"
        )
        .ok();
        writeln!(
            o,
            "sectigo_renewals_waiting{{profile=\"{p}\",why=\"scm\"}} {deferred}"
        )
        .ok();
    }
    o
}

/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 16;
/// A client must send its request headers within this time.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// And be done with the whole exchange within this one.
const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `/metrics` on `addr` with the engine of the current configuration, until `cancel`;
/// returns the task and the address bound (port 0 picks a free port).
/// Any local user can connect, so no client holds more than its share: at most
/// [`MAX_CONNECTIONS`] at once, headers within [`HEADER_TIMEOUT`], one request per connection.
pub async fn serve(
    addr: SocketAddr,
    engine: watch::Receiver<Arc<Engine>>,
    cancel: CancellationToken,
) -> std::io::Result<(tokio::task::JoinHandle<()>, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route(
            "/metrics",
            get(
                |State(rx): State<watch::Receiver<Arc<Engine>>>| async move {
                    let engine = rx.borrow().clone();
                    let text = render(&engine, engine.counters()).await;
                    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
                },
            ),
        )
        .with_state(engine);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                a = listener.accept() => a,
            };
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("metrics: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::debug!("metrics: {MAX_CONNECTIONS} connections open; closing a new one");
                continue;
            };
            let svc = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
                drop(slot);
            });
        }
    });
    Ok((task, bound))
}
