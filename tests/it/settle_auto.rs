//! SCM's records (`[admin]`) read by the engine: nothing billed for a certificate renewed
//! outside the daemon (web UI, SCM's auto-renewal), revoked there, or when the Admin API
//! cannot say; unknown outcomes settled without a person (the certificate carrying the
//! request's marker adopted, or none after `settle_after_minutes`: due again, renewed once).

use chrono::Duration;
use sectigo_engine::policy::Reason;
use sectigo_engine::{Mode, RenewOutcome};
use sectigo_model::CertState;
use sectigo_sim::ScmSimConfig;
use tokio_util::sync::CancellationToken;

use crate::common::{get, Env};

fn never() -> CancellationToken {
    CancellationToken::new()
}

/// A profile `web` with the simulator's admin account.
fn admin_profile(env: &Env, extra: &str) {
    env.profile(
        "web",
        &format!(
            "expiry_window_days = 30\n{extra}\n[admin]\nurl = \"{}\"\nclient_id = \"sim-admin\"\nclient_secret = \"sim-admin-secret\"\n",
            env.sim.admin_url()
        ),
    );
}

async fn manual_env() -> Env {
    Env::manual(ScmSimConfig::default()).await
}

/// The certificate that superseded `id` in the state.
fn successor_of(store: &sectigo_state::SharedStore, id: &str) -> String {
    match get(store, id).state {
        CertState::Superseded { by, .. } => by.to_string(),
        s => panic!("{id} is {s:?}, not superseded"),
    }
}

#[tokio::test]
async fn a_web_ui_renewal_is_adopted_and_never_billed_again() {
    let env = manual_env().await;
    admin_profile(&env, "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3, 60]).await;
    let ui = env.sim.renew_in_ui(&ids[0]);

    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 0, "{:?}", r.summary);
    assert_eq!(
        env.sim.billable_total(),
        0,
        "the daemon billed a renewal made in the web UI"
    );
    assert_eq!(successor_of(&store, &ids[0]), ui);
    let new = get(&store, &ui);
    assert_eq!(new.state, CertState::Active);
    assert!(new
        .history
        .iter()
        .any(|h| h.event.contains("renewed outside")));
    // The next cycles leave both alone, and an operator's `renew` of the old one bills nothing.
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert!(!matches!(
        engine
            .renewer()
            .renew(&ids[0], Reason::Operator)
            .await
            .unwrap(),
        RenewOutcome::Requested { .. }
    ));
    assert_eq!(env.sim.billable_total(), 0);
}

#[tokio::test]
async fn without_admin_a_web_ui_renewal_is_billed_again() {
    // What [admin] prevents: the REST API cannot tell, so the daemon renews again.
    let env = manual_env().await;
    env.profile("web", "expiry_window_days = 30");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3]).await;
    env.sim.renew_in_ui(&ids[0]);
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(env.sim.billable_count(&ids[0]), 1);
}

#[tokio::test]
async fn scm_auto_renewal_is_adopted_not_billed_and_warned_about() {
    let env = manual_env().await;
    admin_profile(&env, "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3]).await;
    let auto = env.sim.auto_renew(&ids[0]);

    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(env.sim.billable_total(), 0);
    assert_eq!(successor_of(&store, &ids[0]), auto);

    // A due certificate with SCM's auto-renewal on (not renewed by SCM yet): the daemon renews
    // it, as its profile says, and its history warns that both would bill.
    let other = env.sim_cert("other.example.com", 4);
    engine
        .importer()
        .import(
            &crate::common::pn("web"),
            vec![sectigo_engine::ImportLine {
                cert_id: other.clone(),
                issue: None,
                name: None,
            }],
        )
        .await
        .unwrap();
    env.sim.set_auto_renew(&other, true);
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    let rec = get(&store, &other);
    assert!(rec.scm_auto_renew, "{:?}", rec.history);
    assert!(rec
        .history
        .iter()
        .any(|h| h.event.contains("auto-renewal is on")));
    assert_eq!(env.sim.billable_count(&other), 1);
}

#[tokio::test]
async fn two_possible_successors_are_left_to_a_person_and_not_billed() {
    let env = manual_env().await;
    admin_profile(&env, "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3]).await;
    env.sim.renew_in_ui(&ids[0]);
    env.sim.renew_in_ui(&ids[0]);

    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(env.sim.billable_total(), 0);
    let rec = get(&store, &ids[0]);
    assert!(
        matches!(rec.state, CertState::OutcomeUnknown { request: None, .. }),
        "{:?}",
        rec.state
    );
    let e = rec.last_error.unwrap();
    assert!(e.contains("certs resolve") && e.contains("several"), "{e}");
}

#[tokio::test]
async fn revoked_or_expired_in_scm_is_not_billed() {
    let env = manual_env().await;
    admin_profile(&env, "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3, 5]).await;
    env.sim.revoke_in_ui(&ids[0]);
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(env.sim.billable_count(&ids[0]), 0);
    assert!(matches!(
        get(&store, &ids[0]).state,
        CertState::Revoked { .. }
    ));
    // ids[1] was renewed normally (the check passed): billed once.
    assert_eq!(env.sim.billable_count(&ids[1]), 1);
}

#[tokio::test]
async fn an_unreachable_admin_api_defers_the_renewal_and_bills_nothing() {
    let env = manual_env().await;
    // The Admin API on a port nothing listens on.
    env.profile(
        "web",
        "expiry_window_days = 30\n[admin]\nurl = \"http://127.0.0.1:9\"\nclient_id = \"sim-admin\"\nclient_secret = \"sim-admin-secret\"\n",
    );
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3]).await;
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(env.sim.billable_total(), 0);
    assert_eq!(
        r.summary.deferred.values().sum::<u64>(),
        1,
        "{:?}",
        r.summary
    );
    let rec = get(&store, &ids[0]);
    assert_eq!(rec.state, CertState::Active);
    assert_eq!(rec.failures, 0);
    assert!(rec
        .history
        .iter()
        .any(|h| h.event.contains("Admin API cannot be reached")));
}

#[tokio::test]
async fn a_lost_answer_is_settled_from_the_marker_without_a_person() {
    let env = manual_env().await;
    admin_profile(&env, "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3]).await;
    // SCM renews (and bills), and the answer is lost.
    env.sim.lose_answers(1);
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert!(matches!(
        get(&store, &ids[0]).state,
        CertState::OutcomeUnknown { .. }
    ));
    assert_eq!(env.sim.billable_count(&ids[0]), 1);
    // The next cycle finds the certificate carrying the request's marker and adopts it.
    env.advance(Duration::minutes(1));
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    let new = successor_of(&store, &ids[0]);
    assert_eq!(env.sim.renewals_of(&ids[0]), vec![new.clone()]);
    assert_eq!(env.sim.billable_total(), 1);
    assert!(get(&store, &ids[0])
        .history
        .iter()
        .any(|h| h.event.contains("settled by the daemon")));
    let (inv, ()) = engine.inventory(()).await.unwrap();
    assert!(inv.problems.is_empty(), "{:?}", inv.problems);
}

#[tokio::test]
async fn a_crash_after_the_call_is_settled_from_the_marker() {
    // The daemon stopped between journaling and recording: recovery marks it unknown, and
    // status says the daemon settles it; the next cycle adopts what SCM made.
    let env = manual_env().await;
    admin_profile(&env, "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3]).await;
    env.sim.lose_answers(1);
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    // As a crash leaves it: the journal without an answer.
    let mut rec = get(&store, &ids[0]);
    let CertState::OutcomeUnknown { due, at, request } = rec.state.clone() else {
        panic!("{:?}", rec.state)
    };
    rec.state = CertState::RenewRequested {
        due,
        at,
        forced: false,
        request,
    };
    store.put(&[rec]).unwrap();
    drop(engine);
    let engine = env.engine_with(store.clone());
    assert_eq!(engine.recover().await.unwrap(), 1);
    let (inv, ()) = engine.inventory(()).await.unwrap();
    let p = &inv.problems[0];
    let why = p.last_error.as_deref().unwrap();
    assert!(why.contains("The daemon settles it"), "{why}");
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    successor_of(&store, &ids[0]);
    assert_eq!(env.sim.billable_total(), 1);
}

#[tokio::test]
async fn no_certificate_after_settle_after_minutes_is_due_again_and_renewed_once() {
    let env = manual_env().await;
    admin_profile(&env, "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3]).await;
    // The renew call never reaches SCM, and the daemon cannot know it.
    env.sim.script(vec![sectigo_sim::Scripted::Drop]);
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert!(matches!(
        get(&store, &ids[0]).state,
        CertState::OutcomeUnknown { .. }
    ));
    assert_eq!(env.sim.billable_total(), 0);
    // Before the wait is over: nothing, and status says when.
    env.advance(Duration::minutes(10));
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    let rec = get(&store, &ids[0]);
    assert!(matches!(rec.state, CertState::OutcomeUnknown { .. }));
    assert!(
        rec.last_error
            .as_deref()
            .unwrap()
            .contains("declares it not renewed"),
        "{:?}",
        rec.last_error
    );
    assert_eq!(env.sim.billable_total(), 0);
    // After it: declared not renewed, and renewed in the same cycle, once.
    env.advance(Duration::minutes(25));
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    successor_of(&store, &ids[0]);
    assert_eq!(env.sim.billable_count(&ids[0]), 1);
    assert_eq!(env.sim.billable_total(), 1);
}

/// An enrollment from Jira whose answer was lost: found by its marker and adopted (tracked,
/// linked to its issue); another, with no certificate in SCM after the wait, declared not
/// enrolled (the issue may ask again).
#[tokio::test]
async fn lost_enrollments_are_settled_from_the_marker() {
    use sectigo_model::{EnrollState, IssueRecord};
    let env = manual_env().await;
    admin_profile(&env, "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    engine.book().sync().await.unwrap();
    let now = env.now();
    let made = env.sim_cert("enrolled.example.com", 90);
    env.sim.set_admin_fields(
        &made,
        sectigo_sim::AdminFields {
            comments: Some(sectigo_scm::comments_with_request("", "r-00000000e1")),
            ..Default::default()
        },
    );
    let mut issues = Vec::new();
    for (key, cn, request) in [
        ("CERT-1", "enrolled.example.com", "r-00000000e1"),
        ("CERT-2", "never.example.com", "r-00000000e2"),
    ] {
        let mut rec = IssueRecord::new(&crate::common::ik(key));
        rec.log(now, format!("enrollment of {cn} started (profile web)"));
        rec.enroll = Some(EnrollState::OutcomeUnknown {
            profile: crate::common::pn("web"),
            at: now,
            request: Some(request.into()),
        });
        issues.push(rec);
    }
    store.commit_all(&[], &issues, &[]).unwrap();

    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    let one = store.issue(&crate::common::ik("CERT-1")).unwrap().unwrap();
    assert!(
        matches!(one.enroll, Some(EnrollState::Issued { ref cert_id, .. }) if *cert_id == made),
        "{:?}",
        one.enroll
    );
    assert_eq!(get(&store, &made).jira_issue.as_deref(), Some("CERT-1"));
    // Nothing for the other yet; after settle_after_minutes, declared not enrolled.
    let two = || {
        store
            .issue(&crate::common::ik("CERT-2"))
            .unwrap()
            .unwrap()
            .enroll
    };
    assert!(matches!(two(), Some(EnrollState::OutcomeUnknown { .. })));
    env.advance(Duration::minutes(31));
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert!(
        matches!(two(), Some(EnrollState::Rejected { .. })),
        "{:?}",
        two()
    );
    assert_eq!(env.sim.billable_total(), 0);
}
