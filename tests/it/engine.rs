//! The renewal engine through its real code paths, against the SCM simulator.

use sectigo_engine::Mode;
use std::time::Duration;

use crate::common::{get, records, Env};
use chrono::Utc;
use sectigo_engine::policy::Reason;
use sectigo_engine::RenewOutcome;
use sectigo_model::CertState;
use sectigo_sim::{Faults, ScmSimConfig};
use tokio_util::sync::CancellationToken;

fn never() -> CancellationToken {
    CancellationToken::new()
}

#[tokio::test]
async fn window_and_auto_renew() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "expiry_window_days = 30");
    env.profile("manual", "expiry_window_days = 30\nauto_renew = false");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    engine.book().sync().await.unwrap();
    let web = env.seed(&engine, "web", &[2, 29, 31, 90]).await;
    let manual = env.seed(&engine, "manual", &[10, 100]).await;

    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 2);
    assert_eq!(r.summary.renewed, 2);
    assert_eq!(r.summary.skipped_no_auto_renew, 1);
    for (id, renewed) in [
        (&web[0], true),
        (&web[1], true),
        (&web[2], false),
        (&web[3], false),
        (&manual[0], false),
        (&manual[1], false),
    ] {
        assert_eq!(
            env.sim.billable_count(id),
            u32::from(renewed),
            "certificate {id}"
        );
        let rec = get(&store, id);
        assert_eq!(
            matches!(rec.state, CertState::Superseded { .. }),
            renewed,
            "{id}: {:?}",
            rec.state
        );
    }
    // The renewal is tracked in place of the old one, with what the new PEM says.
    let CertState::Superseded { by, .. } = get(&store, &web[0]).state else {
        unreachable!()
    };
    let new = get(&store, &by);
    assert_eq!(new.state, CertState::Active);
    assert_eq!(new.subject_cn, "web-0.example.com");
    assert!(new.not_after > Utc::now() + chrono::Duration::days(80));
    assert_eq!(
        get(&store, &manual[0]).reported_no_auto_renew,
        Some(get(&store, &manual[0]).not_after)
    );

    // A second cycle renews nothing and does not report again.
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(
        (r.summary.requested, r.summary.skipped_no_auto_renew),
        (0, 0)
    );
    assert_eq!(env.sim.billable_total(), 2);
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "force_renewal = true");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[5, 200]).await;
    let before = records(&store);
    let r = engine.cycle().run(Mode::DryRun, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 2, "force renewal would renew both");
    assert_eq!(r.planned.len(), 2);
    assert_eq!(records(&store), before);
    assert_eq!(env.sim.billable_total(), 0);
    assert!(
        store
            .profile_state(&crate::common::pn("web"))
            .unwrap()
            .is_none_or(|st| st.force.is_none() && !st.force_setting_seen),
        "no force run persisted by a dry run (the import recorded only the identity)"
    );
    assert!(
        env.sim
            .requests()
            .iter()
            .all(|q| q.method == "GET" || q.path == "/auth/token"),
        "{ids:?}"
    );
}

#[tokio::test]
async fn force_renewal_renews_everything_once_and_persists() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile(
        "web",
        "force_renewal = true\nauto_renew = false\nexpiry_window_days = 1",
    );
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[300, 20, 150, 90, 5]).await;
    engine.book().sync().await.unwrap();
    let run = store
        .profile_state(&crate::common::pn("web"))
        .unwrap()
        .unwrap()
        .force
        .unwrap();
    assert!(run.deadline - run.started == chrono::Duration::hours(24));

    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 5);
    // Most urgent first: the plan is ordered by notAfter.
    let order: Vec<&str> = r.planned.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        order,
        vec![ids[4].as_str(), &ids[1], &ids[3], &ids[2], &ids[0]]
    );
    for id in &ids {
        assert_eq!(env.sim.billable_count(id), 1, "{id}");
    }
    let st = store
        .profile_state(&crate::common::pn("web"))
        .unwrap()
        .unwrap();
    assert!(
        st.force.as_ref().unwrap().completed.is_some(),
        "force run complete"
    );
    assert!(r.summary.finished.unwrap() < run.deadline);

    // Reload and restart with the setting still on: nothing starts again.
    drop(engine);
    drop(store);
    let store = env.store();
    let engine = env.engine_with(store.clone());
    engine.book().sync().await.unwrap();
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 0);
    assert_eq!(
        store
            .profile_state(&crate::common::pn("web"))
            .unwrap()
            .unwrap()
            .force
            .unwrap()
            .started,
        run.started
    );

    // Off, then on again: a new force run renews the (new) certificates once more.
    env.profile("web", "force_renewal = false");
    env.engine_with(store.clone()).book().sync().await.unwrap();
    env.profile("web", "force_renewal = true");
    let engine = env.engine_with(store.clone());
    engine.book().sync().await.unwrap();
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 5);
    assert_eq!(env.sim.billable_total(), 10);

    // The force-renew command starts one too.
    engine
        .book()
        .start_force_renewal(&crate::common::pn("web"))
        .await
        .unwrap();
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 5);
}

#[tokio::test]
async fn billed_once_per_due_certificate_under_transient_errors() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "expiry_window_days = 30");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let mut days: Vec<i64> = (0..40).map(|i| 1 + i % 28).collect();
    days.extend([60, 70, 80, 90, 100]);
    let ids = env.seed(&engine, "web", &days).await;
    env.sim.set_faults(Faults {
        error_5xx: 0.15,
        rate_429: 0.05,
        retry_after_secs: 1,
        ..Default::default()
    });
    let mut cycles = 0;
    loop {
        cycles += 1;
        let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
        if r.summary.requested == 0
            && r.summary.pending == 0
            && store.in_flight().unwrap().is_empty()
        {
            break;
        }
        assert!(cycles < 10, "not converging");
    }
    let errors = env
        .sim
        .requests()
        .iter()
        .filter(|q| q.status >= 429)
        .count();
    println!("{cycles} cycles, {errors} injected errors");
    assert!(errors > 5, "faults were injected");
    assert!(
        env.sim.billed_twice().is_empty(),
        "{:?}",
        env.sim.billed_twice()
    );
    assert_eq!(env.sim.billable_total(), 40);
    for (id, d) in ids.iter().zip(&days) {
        assert_eq!(env.sim.billable_count(id), u32::from(*d < 30), "{id}");
    }
}

#[tokio::test]
async fn pending_collection_survives_a_restart() {
    let env = Env::new(ScmSimConfig {
        issue_delay: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    env.profile("web", "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3]).await;
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(
        (r.summary.requested, r.summary.renewed, r.summary.pending),
        (1, 0, 1)
    );
    assert!(matches!(
        get(&store, &ids[0]).state,
        CertState::Collecting { .. }
    ));
    drop(engine);
    drop(store);

    let store = env.store();
    let engine = env.engine_with(store.clone());
    assert_eq!(
        engine.recover().await.unwrap(),
        0,
        "an accepted renewal is not an unknown outcome"
    );
    let c = engine.collector().collect_pending().await.unwrap();
    assert_eq!((c.renewed, c.pending), (0, 1));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let c = engine.collector().collect_pending().await.unwrap();
    assert_eq!(c.renewed, 1);
    assert!(matches!(
        get(&store, &ids[0]).state,
        CertState::Superseded { .. }
    ));
    assert_eq!(env.sim.billable_total(), 1);
}

#[tokio::test]
async fn a_journaled_call_without_answer_is_never_repeated_automatically() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3]).await;
    // What a crash between journaling the intent and recording the answer leaves behind.
    let mut rec = get(&store, &ids[0]);
    rec.state = CertState::RenewRequested {
        due: rec.not_after,
        at: Utc::now(),
        forced: false,
        request: Some("r-0123456789".into()),
    };
    store.put(&[rec]).unwrap();
    assert_eq!(engine.recover().await.unwrap(), 1);
    // The request id survives into the unknown outcome: the operator can find it in SCM.
    assert!(matches!(
        get(&store, &ids[0]).state,
        CertState::OutcomeUnknown { request: Some(ref r), .. } if r == "r-0123456789"
    ));
    assert!(matches!(
        get(&store, &ids[0]).state,
        CertState::OutcomeUnknown { .. }
    ));
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 0);
    assert_eq!(env.sim.billable_total(), 0);
    // The operator checked SCM and renews it by hand.
    assert!(matches!(
        engine
            .renewer()
            .renew(&ids[0], Reason::Operator)
            .await
            .unwrap(),
        RenewOutcome::Requested { .. }
    ));
    assert_eq!(env.sim.billable_total(), 1);
}

#[tokio::test]
async fn failures_back_off_and_permanent_refusals_stop() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "");
    std::fs::write(
        env.path().join("connector.toml"),
        std::fs::read_to_string(env.path().join("connector.toml"))
            .unwrap()
            .replace("retry_max_secs = 30", "retry_max_secs = 1"),
    )
    .unwrap();
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3, 4, 5]).await;
    let mut f = Faults::default();
    f.permanent.insert(
        ids[2].to_string(),
        (400, -124, format!("Wrong SSL certificate id {}.", ids[2])),
    );
    f.permanent.insert(
        ids[0].to_string(),
        (
            500,
            -2,
            "Internal error. Please contact Support for details.".into(),
        ),
    );
    f.permanent.insert(
        ids[1].to_string(),
        (
            400,
            -180,
            "This SSL Certificate Profile doesn't allow renew".into(),
        ),
    );
    env.sim.set_faults(f);
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    let a = get(&store, &ids[0]);
    assert_eq!((a.state.clone(), a.failures), (CertState::Active, 1));
    let next = a.next_attempt.unwrap();
    assert!(next > Utc::now() + chrono::Duration::minutes(55), "{next}");
    // A refusal a person can fix in SCM: retried on the backoff, the reason and what to do kept.
    let b = get(&store, &ids[1]);
    assert_eq!((b.state.clone(), b.failures), (CertState::Active, 1));
    assert!(b.next_attempt.unwrap() > Utc::now() + chrono::Duration::minutes(55));
    let why = b.last_error.unwrap();
    assert!(
        why.contains("-180") && why.contains("does not allow renewal"),
        "{why}"
    );
    // A certificate id SCM does not know: stops for good.
    assert!(
        matches!(get(&store, &ids[2]).state, CertState::Failed { ref reason, .. } if reason.contains("-124"))
    );

    env.sim.set_faults(Faults::default());
    let before = env.sim.requests().len();
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(
        r.summary.requested, 0,
        "backoff holds, a permanent refusal is not retried"
    );
    assert_eq!(env.sim.requests().len(), before, "no request at all");
    // `renew ID` bypasses the backoff.
    assert!(matches!(
        engine
            .renewer()
            .renew(&ids[0], Reason::Operator)
            .await
            .unwrap(),
        RenewOutcome::Requested { .. }
    ));
    // A cycle never renews what the operator did not ask for.
    assert!(matches!(
        engine
            .renewer()
            .renew(&ids[2], Reason::Window)
            .await
            .unwrap(),
        RenewOutcome::Skipped(_)
    ));
}

#[tokio::test]
async fn removed_and_renamed_profiles() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    engine.book().sync().await.unwrap();
    let ids = env.seed(&engine, "web", &[3]).await;
    // Renamed by hand: same client_id and scm_url.
    std::fs::rename(
        env.path().join("profiles.d/web.toml"),
        env.path().join("profiles.d/www.toml"),
    )
    .unwrap();
    let engine = env.engine_with(store.clone());
    engine.book().sync().await.unwrap();
    assert_eq!(get(&store, &ids[0]).profile, "www");
    // Removed: orphaned, never renewed, never dropped.
    std::fs::remove_file(env.path().join("profiles.d/www.toml")).unwrap();
    let engine = env.engine_with(store.clone());
    engine.book().sync().await.unwrap();
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 0);
    assert_eq!(get(&store, &ids[0]).state, CertState::Active);
    assert_eq!(env.sim.billable_total(), 0);
}
