//! An SCM outage, refused credentials and the daily budget (#24): an outage costs a probe, not
//! a request per certificate; a problem is reported once where it happens; a mistake in the
//! window or the clock bills at most the budget.

use std::time::{Duration, Instant};

use chrono::Duration as CDuration;
use sectigo_engine::policy::Reason;
use sectigo_engine::{Mode, RenewOutcome};
use sectigo_model::{CertState, OutageKind};
use sectigo_sim::{Faults, ScmSim, ScmSimConfig};
use tokio_util::sync::CancellationToken;

use crate::common::{get, pn, records, Env};

fn never() -> CancellationToken {
    CancellationToken::new()
}

/// connector.toml with `retry_max_secs` and `max_concurrent` as given, and no daily budget.
fn scm_tuning(env: &Env, retry_max: u64, concurrent: u32, extra: &str) {
    env.connector(extra);
    let p = env.path().join("connector.toml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace(
            "retry_max_secs = 30",
            &format!("retry_max_secs = {retry_max}"),
        )
        .replace(
            "max_concurrent = 8",
            &format!("max_concurrent = {concurrent}"),
        )
        .replace("[renewal]\n", "[renewal]\nmax_per_day = 0\n");
    std::fs::write(p, text).unwrap();
}

fn calls(sim: &ScmSim, what: impl Fn(&str) -> bool) -> usize {
    sim.requests().iter().filter(|r| what(&r.path)).count()
}

fn token_calls(sim: &ScmSim) -> usize {
    calls(sim, |p| p.ends_with("/token"))
}

fn api_calls(sim: &ScmSim) -> usize {
    calls(sim, |p| p.starts_with("/api/"))
}

/// Due in 1..=n days, in `profile`.
fn due_days(n: usize) -> Vec<i64> {
    (1..=n as i64).map(|d| d % 29 + 1).collect()
}

/// The API host down (a proxy's 503 to everything), 200 certificates due: the cycle ends in
/// about `retry_max_secs`, having sent a probe's requests only; no certificate is failed or
/// backed off; one outage names the host and the 200 waiting renewals. When the host is back,
/// the next cycle renews each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_outage_costs_one_probe_whatever_the_number_of_certificates() {
    let env = Env::manual(ScmSimConfig::default()).await;
    scm_tuning(&env, 2, 4, "");
    env.profile("web", "expiry_window_days = 30");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &due_days(200)).await;
    env.sim.set_faults(Faults {
        api_down: true,
        ..Default::default()
    });
    let api_before = api_calls(&env.sim);
    let started = Instant::now();
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    let took = started.elapsed();
    let sent = api_calls(&env.sim) - api_before;
    eprintln!(
        "measured: API outage, 200 due: cycle {took:?}, {sent} API requests, billed {}",
        env.sim.billable_total()
    );
    assert!(took < Duration::from_secs(8), "the cycle took {took:?}");
    assert!(sent <= 10, "{sent} API requests during the outage");
    assert_eq!(env.sim.billable_total(), 0);
    assert_eq!(r.summary.requested, 0);
    assert_eq!(r.summary.failed, 0);
    assert_eq!(r.summary.deferred.get(&pn("web")).copied(), Some(200));
    assert_eq!(r.summary.outages.len(), 1, "{:?}", r.summary.outages);
    let o = &r.summary.outages[0];
    assert_eq!(o.kind, OutageKind::Unreachable);
    assert_eq!(o.what, env.sim.url().trim_start_matches("http://"));
    assert_eq!(o.waiting, 200);
    assert!(o.error.contains("503"), "{}", o.error);
    for c in records(&store) {
        assert_eq!((c.state.clone(), c.failures), (CertState::Active, 0));
        assert!(c.next_attempt.is_none(), "no backoff: {:?}", c.next_attempt);
        assert_eq!(c.history.last().unwrap().event, "deferred: SCM unreachable");
    }
    let hosts = engine.shared().hosts();
    assert!(
        hosts.iter().any(|h| h.down_since.is_some()),
        "the host is down: {hosts:?}"
    );

    // A second cycle inside the probe interval sends nothing at all.
    let before = api_calls(&env.sim);
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    if started.elapsed() < took + Duration::from_secs(2) {
        assert_eq!(
            api_calls(&env.sim),
            before,
            "nothing sent before the next probe"
        );
    }
    assert_eq!(r.summary.failed, 0);

    // Back: the next probe finds it; every certificate is renewed once, without a backoff to
    // wait out and without moving the clock.
    env.sim.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 200);
    assert!(r.summary.outages.is_empty(), "{:?}", r.summary.outages);
    for id in &ids {
        assert_eq!(env.sim.billable_count(id), 1, "{id}");
    }
    assert!(engine
        .shared()
        .hosts()
        .iter()
        .all(|h| h.down_since.is_none()));
}

/// The token endpoint refuses connections (nothing listens): the cycle over 100 due
/// certificates is bounded, sends no API request, and touches no certificate's backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_to_the_token_endpoint_is_one_probe() {
    let env = Env::manual(ScmSimConfig::default()).await;
    scm_tuning(&env, 2, 4, "");
    env.profile("web", "expiry_window_days = 30");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    env.seed(&engine, "web", &due_days(100)).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let text = std::fs::read_to_string(env.path().join("profiles.d/web.toml"))
        .unwrap()
        .replace(
            &env.sim.token_url(),
            &format!("http://127.0.0.1:{port}/auth/token"),
        );
    std::fs::write(env.path().join("profiles.d/web.toml"), text).unwrap();
    let engine = env.engine_with(store.clone());
    let api_before = api_calls(&env.sim);
    let started = Instant::now();
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(api_calls(&env.sim), api_before, "no token, no API request");
    assert_eq!(r.summary.failed, 0);
    assert_eq!(r.summary.deferred.get(&pn("web")).copied(), Some(100));
    assert_eq!(r.summary.outages.len(), 1, "{:?}", r.summary.outages);
    assert_eq!(r.summary.outages[0].what, format!("127.0.0.1:{port}"));
    assert_eq!(r.summary.outages[0].waiting, 100);
    assert!(records(&store)
        .iter()
        .all(|c| c.failures == 0 && c.next_attempt.is_none()));
}

/// A refused client secret is one problem for the profile: asked for once, not per
/// certificate, no certificate failed; fixed, the next cycle renews them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_one_problem_not_one_per_certificate() {
    let env = Env::manual(ScmSimConfig::default()).await;
    scm_tuning(&env, 2, 4, "");
    env.profile("web", "expiry_window_days = 30");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &due_days(50)).await;
    let good = std::fs::read_to_string(env.path().join("profiles.d/web.toml")).unwrap();
    std::fs::write(
        env.path().join("profiles.d/web.toml"),
        good.replace("sim-secret", "a-wrong-secret"),
    )
    .unwrap();
    let engine = env.engine_with(store.clone());
    let tokens_before = token_calls(&env.sim);
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    let tokens = token_calls(&env.sim) - tokens_before;
    eprintln!(
        "measured: refused credentials, 50 due: {tokens} token requests, {} problem(s), billed {}",
        r.summary.outages.len(),
        env.sim.billable_total()
    );
    assert!(tokens <= 2, "{tokens} token requests for 50 certificates");
    assert_eq!(env.sim.billable_total(), 0);
    assert_eq!(r.summary.failed, 0);
    assert_eq!(r.summary.deferred.get(&pn("web")).copied(), Some(50));
    let refused: Vec<_> = r
        .summary
        .outages
        .iter()
        .filter(|o| o.kind == OutageKind::CredentialsRefused)
        .collect();
    assert_eq!(refused.len(), 1, "{:?}", r.summary.outages);
    assert_eq!(refused[0].what, "web");
    assert_eq!(refused[0].waiting, 50);
    for c in records(&store) {
        assert_eq!((c.failures, c.next_attempt), (0, None), "{}", c.id);
        assert_eq!(
            c.history.last().unwrap().event,
            "deferred: SCM refuses the profile's credentials"
        );
    }
    // The next cycle, soon after, does not ask again for each certificate either.
    let before = token_calls(&env.sim);
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert!(token_calls(&env.sim) - before <= 1);

    // Fixed (as a reload builds a new engine on the same shared state): all renewed, once.
    std::fs::write(env.path().join("profiles.d/web.toml"), good).unwrap();
    let engine = env.engine_with(store.clone());
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 50);
    assert!(r.summary.outages.is_empty(), "{:?}", r.summary.outages);
    for id in &ids {
        assert_eq!(env.sim.billable_count(id), 1, "{id}");
    }
}

/// `max_renewals_per_day = 3` and ten due: the three most urgent go, seven wait; the next
/// cycle sends none; 24 hours later the next three go. A new engine (a restart) reads what was
/// billed from the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_budget_holds_scheduled_renewals_most_urgent_first() {
    let env = Env::manual(ScmSimConfig::default()).await;
    env.profile("web", "expiry_window_days = 30\nmax_renewals_per_day = 3");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    // Seeded out of order: the budget goes by expiry, not by id.
    let ids = env
        .seed(&engine, "web", &[9, 2, 10, 5, 1, 7, 3, 8, 4, 6])
        .await;
    let by_expiry = |n: usize| {
        let mut v: Vec<_> = ids
            .iter()
            .map(|id| (get(&store, id).not_after, id.clone()))
            .collect();
        v.sort();
        v.into_iter().take(n).map(|(_, id)| id).collect::<Vec<_>>()
    };
    let first = by_expiry(3);
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 3);
    assert_eq!(r.summary.held.get(&pn("web")).copied(), Some(7));
    for id in &first {
        assert_eq!(
            env.sim.billable_count(id),
            1,
            "{id} is among the most urgent"
        );
    }
    assert_eq!(env.sim.billable_total(), 3);
    let u = engine.budget().usage(&pn("web")).await.unwrap();
    assert_eq!((u.used, u.limit), (3, Some(3)));

    // A restart: the count comes from the billing log.
    let engine = env.engine_with(store.clone());
    env.advance(CDuration::hours(1));
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 0);
    assert_eq!(r.summary.held.get(&pn("web")).copied(), Some(7));
    assert_eq!(env.sim.billable_total(), 3);

    // Consented: `renew ID` (Reason::Operator) is not held, but counted.
    let last = by_expiry(10).pop().unwrap();
    let out = engine
        .renewer()
        .renew(&last, Reason::Operator)
        .await
        .unwrap();
    assert!(matches!(out, RenewOutcome::Requested { .. }), "{out:?}");
    let u = engine.budget().usage(&pn("web")).await.unwrap();
    assert_eq!(u.used, 4);

    // A day later the budget has room for three more, the most urgent of those waiting.
    env.advance(CDuration::hours(24));
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 3);
    assert_eq!(env.sim.billable_total(), 7);
}

/// `expiry_window_days = 300` typed for `30`, and a clock a year ahead: every certificate is
/// due, and the budget bills at most its limit; the rest wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_typo_or_a_clock_ahead_bills_at_most_the_budget() {
    let env = Env::manual(ScmSimConfig::default()).await;
    env.connector("");
    let p = env.path().join("connector.toml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("[renewal]\n", "[renewal]\nmax_per_day = 5\n");
    std::fs::write(p, text).unwrap();
    env.profile("web", "expiry_window_days = 30");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    // All inside 300 days and two thirds of their year-long lifetime (the window's cap).
    let days: Vec<i64> = (0..40).map(|i| 40 + i * 5).collect();
    env.seed(&engine, "web", &days).await;
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 0, "nothing due yet");

    // The typo.
    env.profile("web", "expiry_window_days = 300");
    let engine = env.engine_with(store.clone());
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    eprintln!(
        "measured: window 30 -> 300 over 40 certificates, max_per_day 5: {} renewed, {:?} held",
        r.summary.requested, r.summary.held
    );
    assert_eq!(r.summary.requested, 5);
    assert_eq!(r.summary.held.get(&pn("web")).copied(), Some(35));
    assert_eq!(env.sim.billable_total(), 5);

    // Fixed; then the clock jumps a year ahead (the engine's own clock only: SCM is right).
    env.profile("web", "expiry_window_days = 30");
    let ahead = sectigo_core::clock::ManualClock::new();
    ahead.set(env.now() + CDuration::days(400));
    let engine = env.engine_on(store.clone(), ahead.shared());
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    eprintln!(
        "measured: clock +400 days: {} renewed, {:?} held, billed in all {}",
        r.summary.requested,
        r.summary.held,
        env.sim.billable_total()
    );
    assert!(
        r.summary.requested <= 5,
        "{} renewals sent",
        r.summary.requested
    );
    assert!(
        env.sim.billable_total() <= 10,
        "{}",
        env.sim.billable_total()
    );
    assert!(r.summary.held.get(&pn("web")).copied().unwrap_or(0) >= 25);
}

/// Force renewal is consented: not held by the budget, but counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_renewal_is_counted_not_held() {
    let env = Env::manual(ScmSimConfig::default()).await;
    env.profile("web", "expiry_window_days = 30\nmax_renewals_per_day = 2");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    env.seed(&engine, "web", &[100, 200, 300, 400]).await;
    env.profile(
        "web",
        "expiry_window_days = 30\nmax_renewals_per_day = 2\nforce_renewal = true",
    );
    let engine = env.engine_with(store.clone());
    engine.book().sync().await.unwrap();
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 4);
    assert!(r.summary.held.is_empty(), "{:?}", r.summary.held);
    let u = engine.budget().usage(&pn("web")).await.unwrap();
    assert_eq!((u.used, u.limit), (4, Some(2)));
}
