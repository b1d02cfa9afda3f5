//! SCM as it really answers (the vendor's error table, per call), through the engine: a token
//! endpoint outage is never a possibly billed renewal; refusals a person must fix are reported
//! with what to do and retried on the backoff only; renewals that are never issued are
//! reported as stalled, declined ones end; certificates revoked in SCM stop being renewed.

use sectigo_engine::Mode;
use sectigo_engine::Reason;
use sectigo_engine::Target;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as CDuration, Utc};
use sectigo_core::secret::Secret;
use sectigo_engine::RenewOutcome;
use sectigo_model::CertState;
use sectigo_scm::{http_client, ClientSettings, Limits, ProfileCreds, ScmClient, ScmError};
use sectigo_sim::{Faults, ScmSim, ScmSimConfig};
use tokio_util::sync::CancellationToken;

use crate::common::{get, records, Env};

fn never() -> CancellationToken {
    CancellationToken::new()
}

/// Fast retries: a failing call gives up after a second.
fn quick(env: &Env) {
    let p = env.path().join("connector.toml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("retry_max_secs = 30", "retry_max_secs = 1");
    std::fs::write(p, text).unwrap();
}

fn token_calls(sim: &ScmSim) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path.ends_with("/token"))
        .count()
}

fn renew_calls(sim: &ScmSim) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path.ends_with("/renew"))
        .count()
}

#[tokio::test]
async fn a_token_endpoint_outage_is_a_plain_retry_never_an_unknown_outcome() {
    let env = Env::manual(ScmSimConfig::default()).await;
    env.profile("web", "");
    quick(&env);
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3, 5, 7]).await;
    // The import fetched a token: a fresh engine has none, as after a restart.
    let engine = env.engine_with(store.clone());
    env.sim.set_faults(Faults {
        token_endpoint_drop: true,
        ..Default::default()
    });
    let tokens_before = token_calls(&env.sim);
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 0);
    assert_eq!(renew_calls(&env.sim), 0, "no renew call can have been sent");
    // One probe of the token endpoint (its retries within retry_max), not one per certificate.
    let tokens = token_calls(&env.sim) - tokens_before;
    assert!((1..=4).contains(&tokens), "{tokens} token requests");
    // The outage is not the certificates' failure: no backoff, no failure count, one note.
    assert_eq!(r.summary.deferred.values().sum::<u64>(), 3);
    assert_eq!(r.summary.failed, 0);
    for id in &ids {
        let c = get(&store, id);
        assert_eq!(
            (c.state.clone(), c.failures),
            (CertState::Active, 0),
            "{id}"
        );
        let last = c.history.last().unwrap();
        assert_eq!(last.event, "deferred: SCM unreachable", "{id}");
    }
    // One problem, naming the endpoint, holding up the three renewals.
    assert_eq!(r.summary.outages.len(), 1, "{:?}", r.summary.outages);
    let o = &r.summary.outages[0];
    assert_eq!(o.kind, sectigo_model::OutageKind::Unreachable);
    assert_eq!(o.waiting, 3);
    assert!(o.what.starts_with("127.0.0.1:"), "{}", o.what);
    // The endpoint is back: the next probe (retry_max after the last) finds it, and the next
    // cycle renews each exactly once, with no backoff to wait out.
    env.sim.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 3);
    assert!(r.summary.outages.is_empty(), "{:?}", r.summary.outages);
    for id in &ids {
        assert_eq!(env.sim.billable_count(id), 1, "{id}");
    }
    assert!(records(&store)
        .iter()
        .all(|c| !matches!(c.state, CertState::OutcomeUnknown { .. })));
}

#[tokio::test]
async fn a_dcv_refusal_is_reported_with_its_reason_and_retried_only_on_the_backoff() {
    let env = Env::manual(ScmSimConfig::default()).await;
    env.profile("web", "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3, 5, 7]).await;
    let refused = get(&store, &ids[1]).subject_cn;
    env.sim.set_dcv_incomplete(&refused, true);
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 2, "the others are unaffected");
    assert_eq!(env.sim.billable_count(&ids[0]), 1);
    assert_eq!(env.sim.billable_count(&ids[2]), 1);
    let c = get(&store, &ids[1]);
    assert_eq!((c.state.clone(), c.failures), (CertState::Active, 1));
    let why = c.last_error.clone().unwrap();
    assert!(
        why.contains("-107") && why.contains("Domain Control Validation"),
        "{why}"
    );
    assert!(
        !why.contains("not issued yet") && !why.contains("pending"),
        "{why}"
    );
    assert!(
        why.contains("complete Domain Control Validation"),
        "says what to do: {why}"
    );
    // No loop: the next cycles leave it to its backoff.
    let calls = renew_calls(&env.sim);
    for _ in 0..3 {
        engine.cycle().run(Mode::Live, &never()).await.unwrap();
    }
    assert_eq!(renew_calls(&env.sim), calls);
    // `status` shows it as a problem with its reason.
    let (inv, ()) = engine.inventory(()).await.unwrap();
    assert!(inv
        .problems
        .iter()
        .any(|p| p.id == ids[1] && p.last_error.as_deref().is_some_and(|e| e.contains("-107"))));
    // DCV completed in SCM: the attempt after the backoff goes through, once.
    env.sim.set_dcv_incomplete(&refused, false);
    env.advance(CDuration::hours(2));
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(env.sim.billable_count(&ids[1]), 1);
    assert_eq!(
        engine
            .counters()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_renewal_waiting_for_approval_is_reported_stalled_once_then_collected() {
    let env = Env::manual(ScmSimConfig {
        approval_required: true,
        ..Default::default()
    })
    .await;
    env.profile("web", "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3]).await;
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    let CertState::Collecting { new_id, .. } = get(&store, &ids[0]).state else {
        panic!("not collecting");
    };
    assert_eq!(env.sim.awaiting_approval(), vec![new_id.clone()]);
    // Within the deadline: just pending, nothing reported.
    engine.collector().collect_pending().await.unwrap();
    assert!(get(&store, &ids[0]).stall_reported.is_none());
    // Past it (24 h by default): reported once, with SCM's status, and still collected.
    env.advance(CDuration::hours(25));
    for _ in 0..3 {
        let r = engine.collector().collect_pending().await.unwrap();
        assert_eq!(r.pending, 1);
    }
    let c = get(&store, &ids[0]);
    assert!(c.stall_reported.is_some());
    let why = c.last_error.unwrap();
    assert!(
        why.contains("Requested") && why.contains(new_id.as_str()),
        "{why}"
    );
    assert_eq!(
        engine
            .counters()
            .stalled
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let (inv, ()) = engine.inventory(()).await.unwrap();
    assert_eq!(inv.stalled, 1);
    // Approved in SCM: collected, the stall is over.
    env.sim.approve(&new_id);
    let r = engine.collector().collect_pending().await.unwrap();
    assert_eq!(r.renewed, 1);
    assert_eq!(get(&store, &new_id).state, CertState::Active);
    assert_eq!(env.sim.billable_count(&ids[0]), 1);
}

#[tokio::test]
async fn a_declined_renewal_ends_as_failed_with_scms_answer() {
    let env = Env::manual(ScmSimConfig {
        approval_required: true,
        ..Default::default()
    })
    .await;
    env.profile("web", "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3]).await;
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    let CertState::Collecting { new_id, .. } = get(&store, &ids[0]).state else {
        panic!("not collecting");
    };
    env.sim.decline(&new_id);
    env.advance(CDuration::hours(25));
    let r = engine.collector().collect_pending().await.unwrap();
    assert_eq!(r.failed, 1);
    match get(&store, &ids[0]).state {
        CertState::Failed { reason, .. } => assert!(reason.contains("declined"), "{reason}"),
        s => panic!("{s:?}"),
    }
    // Never renewed again automatically.
    env.advance(CDuration::hours(1));
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(env.sim.billable_count(&ids[0]), 1);
}

#[tokio::test]
async fn a_certificate_revoked_in_scm_is_marked_revoked_and_never_renewed() {
    let env = Env::manual(ScmSimConfig::default()).await;
    env.profile("web", "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3]).await;
    env.sim.revoke_in_ui(&ids[0]);
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.renewed + r.summary.pending, 0);
    assert!(matches!(
        get(&store, &ids[0]).state,
        CertState::Revoked { .. }
    ));
    let calls = renew_calls(&env.sim);
    env.advance(CDuration::hours(2));
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(renew_calls(&env.sim), calls, "not renewed again");
    assert_eq!(env.sim.billable_total(), 0);
    // The operator's `renew` refuses too.
    assert!(matches!(
        engine
            .renewer()
            .renew(&ids[0], Reason::Operator)
            .await
            .unwrap(),
        RenewOutcome::Skipped(_)
    ));
}

fn client(sim: &ScmSim) -> ScmClient {
    let s = ClientSettings {
        timeout: Duration::from_secs(5),
        retry_max: Duration::from_secs(2),
        ca_bundle: None,
        clock: sectigo_core::clock::system(),
        interactive: false,
    };
    let creds = ProfileCreds {
        profile: "web".parse().unwrap(),
        scm_url: sim.url(),
        token_url: sim.token_url(),
        client_id: "sim-client".into(),
        client_secret: Secret::new("sim-secret"),
        client_secret_file: None,
    };
    ScmClient::new(
        http_client(&s).unwrap(),
        creds,
        s,
        Arc::new(Limits::new(4, 100.0)),
    )
}

#[tokio::test]
async fn revocation_answers_follow_the_table() {
    let sim = ScmSim::start(ScmSimConfig {
        issue_delay: Duration::from_secs(3600),
        ..Default::default()
    })
    .await
    .unwrap();
    let now = Utc::now();
    let id = sim.add_certificate(
        "a.example.com",
        &["a.example.com"],
        now - CDuration::days(10),
        now + CDuration::days(80),
    );
    let c = client(&sim);
    c.revoke(&id, "decommissioned", 5).await.unwrap();
    // Twice: SCM says -159 "already revoked", which is done, not an error to report.
    let e = c.revoke(&id, "decommissioned", 5).await.unwrap_err();
    assert!(matches!(e, ScmError::AlreadyRevoked { .. }), "{e:?}");
    // A download of a revoked certificate: revoked, not "pending" and not a generic error.
    let e = c.download(&id).await.unwrap_err();
    assert!(matches!(e, ScmError::Revoked { .. }), "{e:?}");
    // Revoking a certificate not issued yet: -102, a refusal with what it means.
    let pending = c
        .renew(
            &sim.add_certificate("b.example.com", &[], now, now + CDuration::days(5)),
            &sectigo_scm::RenewRequest::default(),
        )
        .await
        .unwrap();
    let e = c.revoke(&pending, "oops", 0).await.unwrap_err();
    assert!(matches!(e, ScmError::Refused { code: -102, .. }), "{e:?}");
}

#[tokio::test]
async fn an_enormous_token_lifetime_does_not_panic() {
    let sim = ScmSim::start(ScmSimConfig {
        token_ttl: Duration::from_secs(u64::MAX),
        ..Default::default()
    })
    .await
    .unwrap();
    let now = Utc::now();
    let id = sim.add_certificate(
        "a.example.com",
        &["a.example.com"],
        now - CDuration::days(10),
        now + CDuration::days(80),
    );
    let c = client(&sim);
    c.download(&id).await.unwrap();
    c.download(&id).await.unwrap();
    assert_eq!(
        sim.tokens_issued(),
        1,
        "the token is cached (capped at a day)"
    );
}

/// Leaves `id` as a crash between the renew call and its answer would: outcome unknown, with
/// the request id of the lost call.
fn lose_the_answer(store: &sectigo_state::SharedStore, id: &str) {
    let mut rec = get(store, id);
    rec.state = CertState::OutcomeUnknown {
        due: rec.not_after,
        at: Utc::now(),
        request: Some("r-00aa11bb22".into()),
    };
    store.put(&[rec]).unwrap();
}

#[tokio::test]
async fn every_billable_call_carries_its_request_id_in_the_comments() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "ssl_cert_comments = \"renewed by the connector\"");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    env.seed(&engine, "web", &[3]).await;
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    let sent = env.sim.received_comments();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].starts_with("renewed by the connector [sectigo-connector request r-"),
        "{sent:?}"
    );
}

#[tokio::test]
async fn resolve_adopts_the_renewal_scm_did_issue_keeping_history_and_link() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let old = env.sim_cert("shop.example.com", 3);
    let other = env.sim_cert("other.example.com", 3);
    engine
        .importer()
        .import(
            &crate::common::pn("web"),
            vec![sectigo_engine::ImportLine {
                cert_id: old.clone(),
                issue: Some("CERT-7".parse().unwrap()),
                name: None,
            }],
        )
        .await
        .unwrap();
    // SCM renewed it (billed once), and the answer was lost.
    let issued = client(&env.sim)
        .renew(&old, &sectigo_scm::RenewRequest::default())
        .await
        .unwrap();
    lose_the_answer(&store, &old);
    // A certificate for other names is refused, and nothing changes.
    let e = engine
        .settler()
        .resolve(
            &Target::Cert(old.clone()),
            sectigo_engine::Finding::RenewedAs(other),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("not this certificate's renewal"),
        "{e}"
    );
    assert!(matches!(
        get(&store, &old).state,
        CertState::OutcomeUnknown { .. }
    ));
    // The right one is adopted.
    engine
        .settler()
        .resolve(
            &Target::Cert(old.clone()),
            sectigo_engine::Finding::RenewedAs(issued.clone()),
        )
        .await
        .unwrap();
    let o = get(&store, &old);
    assert!(matches!(o.state, CertState::Superseded { ref by, .. } if *by == issued));
    assert!(o.history.iter().any(|h| h.event.contains("r-00aa11bb22")));
    let n = get(&store, &issued);
    assert_eq!(n.state, CertState::Active);
    assert_eq!(n.jira_issue.as_deref(), Some("CERT-7"));
    assert!(
        matches!(n.origin, sectigo_model::CertOrigin::Renewed { ref from, .. } if *from == old)
    );
    // Billed once, and never again for this due date.
    engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(env.sim.billable_count(&old), 1);
}

#[tokio::test]
async fn resolve_not_renewed_makes_it_due_again_once() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let ids = env.seed(&engine, "web", &[3]).await;
    lose_the_answer(&store, &ids[0]);
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(
        r.summary.requested, 0,
        "an unknown outcome is never retried by itself"
    );
    engine
        .settler()
        .resolve(
            &Target::Cert(ids[0].clone()),
            sectigo_engine::Finding::NotRenewed,
        )
        .await
        .unwrap();
    // Settling what is not outcome-unknown is refused.
    let e = engine
        .settler()
        .resolve(
            &Target::Cert(ids[0].clone()),
            sectigo_engine::Finding::NotRenewed,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nothing to resolve"), "{e}");
    let r = engine.cycle().run(Mode::Live, &never()).await.unwrap();
    assert_eq!(r.summary.requested, 1);
    assert_eq!(env.sim.billable_count(&ids[0]), 1);
}
