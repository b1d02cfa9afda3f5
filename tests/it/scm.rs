//! The SCM client against the simulator: tokens, re-authentication, retries, Retry-After,
//! request limits, billable-call safety, and malformed answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sectigo_core::secret::Secret;
use sectigo_scm::{
    http_client, ClientSettings, Limits, ProfileCreds, RenewRequest, ScmClient, ScmError,
};
use sectigo_sim::{Faults, ScmSim, ScmSimConfig, Scripted};

fn settings(retry_max: u64) -> ClientSettings {
    ClientSettings {
        timeout: Duration::from_secs(5),
        retry_max: Duration::from_secs(retry_max),
        ca_bundle: None,
        clock: sectigo_core::clock::system(),
        interactive: false,
    }
}

fn client_with(sim: &ScmSim, secret: &str, limits: Arc<Limits>, retry_max: u64) -> ScmClient {
    let s = settings(retry_max);
    let creds = ProfileCreds {
        profile: "web".parse().unwrap(),
        scm_url: sim.url(),
        token_url: sim.token_url(),
        client_id: "sim-client".into(),
        client_secret: Secret::new(secret),
        client_secret_file: None,
    };
    ScmClient::new(http_client(&s).unwrap(), creds, s, limits)
}

fn client(sim: &ScmSim) -> ScmClient {
    client_with(sim, "sim-secret", Arc::new(Limits::new(4, 100.0)), 10)
}

async fn sim() -> ScmSim {
    ScmSim::start(ScmSimConfig::default()).await.unwrap()
}

fn cert(sim: &ScmSim, cn: &str) -> sectigo_core::names::CertId {
    let now = Utc::now();
    sim.add_certificate(
        cn,
        &[cn, "alt.example.com"],
        now - chrono::Duration::days(300),
        now + chrono::Duration::days(65),
    )
}

fn renew_req() -> RenewRequest {
    RenewRequest {
        profile_id: Some(7),
        custom_fields: Default::default(),
        comments: "auto".into(),
        csr: None,
    }
}

#[tokio::test]
async fn download_parses_the_certificate() {
    let sim = sim().await;
    let id = cert(&sim, "shop.example.com");
    let d = client(&sim).download(&id).await.unwrap();
    assert_eq!(d.info.subject_cn, "shop.example.com");
    assert_eq!(d.info.sans, vec!["shop.example.com", "alt.example.com"]);
    assert_eq!(d.info.chain_len, 2);
    assert!(
        (d.info.not_after - (Utc::now() + chrono::Duration::days(65)))
            .num_seconds()
            .abs()
            < 5
    );
    assert!(d.pem.starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn the_token_is_cached() {
    let sim = sim().await;
    let id = cert(&sim, "a.example.com");
    let c = client(&sim);
    for _ in 0..5 {
        c.download(&id).await.unwrap();
    }
    assert_eq!(sim.tokens_issued(), 1);
}

#[tokio::test]
async fn a_refused_token_is_replaced_once() {
    let sim = ScmSim::start(ScmSimConfig {
        token_ttl: Duration::from_secs(300),
        ..Default::default()
    })
    .await
    .unwrap();
    let id = cert(&sim, "a.example.com");
    let c = client(&sim);
    c.download(&id).await.unwrap();
    // SCM stops accepting the token long before its expires_in: the next call gets a 401.
    sim.set_faults(Faults {
        token_revoke_after: Some(Duration::from_millis(200)),
        ..Default::default()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.download(&id).await.unwrap();
    assert_eq!(sim.tokens_issued(), 2);
    let log = sim.requests();
    let statuses: Vec<u16> = log
        .iter()
        .filter(|r| r.path.starts_with("/api"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![200, 401, 200]);
}

#[tokio::test]
async fn bad_credentials_fail_clearly_without_spinning() {
    let sim = sim().await;
    let id = cert(&sim, "a.example.com");
    let c = client_with(
        &sim,
        "wrong-secret-XYZ",
        Arc::new(Limits::new(4, 100.0)),
        10,
    );
    let e = c.download(&id).await.unwrap_err();
    assert!(matches!(e, ScmError::Auth(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("invalid_client") && msg.contains("client_secret"),
        "{msg}"
    );
    assert!(
        !msg.contains("wrong-secret-XYZ"),
        "the secret leaked: {msg}"
    );
    assert_eq!(sim.requests().len(), 1, "one token request, no retries");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let sim = sim().await;
    let id = cert(&sim, "a.example.com");
    let c = client(&sim);
    c.download(&id).await.unwrap(); // token fetched
    sim.script(vec![Scripted::TooMany(2)]);
    let start = Instant::now();
    c.download(&id).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "retried after {:?}",
        start.elapsed()
    );
    let api: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api"))
        .collect();
    assert_eq!(api.len(), 3);
    assert_eq!(api[1].status, 429);
    assert!(api[2].at - api[1].at >= Duration::from_secs(2));
}

#[tokio::test]
async fn transient_errors_are_retried_and_a_renewal_billed_once() {
    let sim = sim().await;
    let id = cert(&sim, "a.example.com");
    let c = client(&sim);
    sim.script(vec![
        Scripted::Status(500),
        Scripted::Html(503),
        Scripted::Status(502),
    ]);
    let new_id = c.renew(&id, &renew_req()).await.unwrap();
    assert_eq!(sim.billable_count(&id), 1);
    assert_eq!(sim.renewals_of(&id), vec![new_id]);
    assert_eq!(sim.received_comments(), vec!["auto".to_string()]);
    assert_eq!(sim.received_profile_ids(), vec![Some(7)]);
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let sim = sim().await;
    let id = cert(&sim, "a.example.com");
    let c = client(&sim);
    let mut f = Faults::default();
    f.permanent.insert(
        id.to_string(),
        (
            400,
            -180,
            "This SSL Certificate Profile doesn't allow renew".into(),
        ),
    );
    sim.set_faults(f);
    let e = c.renew(&id, &renew_req()).await.unwrap_err();
    assert!(matches!(e, ScmError::Refused { code: -180, .. }), "{e:?}");
    assert!(!e.maybe_billed());
    assert!(e.to_string().contains("does not allow renewal"), "{e}");
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.path.ends_with("/renew"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_dropped_renewal_is_not_repeated() {
    let sim = sim().await;
    let id = cert(&sim, "a.example.com");
    let c = client(&sim);
    c.download(&id).await.unwrap();
    sim.script(vec![Scripted::Drop]);
    let e = c.renew(&id, &renew_req()).await.unwrap_err();
    assert!(
        e.maybe_billed(),
        "a connection dropped after sending: SCM may have renewed: {e:?}"
    );
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.path.ends_with("/renew"))
            .count(),
        1,
        "never sent twice"
    );
    // An idempotent download is retried through the same fault.
    sim.script(vec![Scripted::Drop]);
    c.download(&id).await.unwrap();
}

#[tokio::test]
async fn pending_codes_are_pending() {
    let sim = ScmSim::start(ScmSimConfig {
        issue_delay: Duration::from_secs(60),
        ..Default::default()
    })
    .await
    .unwrap();
    let id = cert(&sim, "a.example.com");
    let c = client(&sim);
    let new_id = c.renew(&id, &renew_req()).await.unwrap();
    match c.download(&new_id).await {
        Err(ScmError::Pending { code: -109, .. }) => {}
        other => panic!("expected pending -109, got {other:?}"),
    }
    sim.script(vec![Scripted::Raw(
        400,
        "application/json",
        r#"{"code":0,"description":"Being processed by Sectigo"}"#.into(),
    )]);
    assert!(matches!(
        c.download(&id).await,
        Err(ScmError::Pending { code: 0, .. })
    ));
    sim.script(vec![Scripted::Raw(
        404,
        "application/json",
        r#"{"code":-103,"description":"Certificate has not been collected yet."}"#.into(),
    )]);
    assert!(matches!(
        c.download(&id).await,
        Err(ScmError::Pending { code: -103, .. })
    ));
}

#[tokio::test]
async fn malformed_answers_give_clear_errors() {
    let sim = sim().await;
    let id = cert(&sim, "a.example.com");
    let c = client_with(&sim, "sim-secret", Arc::new(Limits::new(4, 100.0)), 1);
    // An HTML page where a PEM should be.
    sim.script(vec![Scripted::Html(200)]);
    let e = c.download(&id).await.unwrap_err();
    assert!(
        e.to_string().contains("no PEM certificate") && e.to_string().contains("<!DOCTYPE html>"),
        "{e}"
    );
    // A truncated PEM.
    sim.script(vec![Scripted::Raw(
        200,
        "application/x-pem-file",
        "-----BEGIN CERTIFICATE-----\nMIIB\n".into(),
    )]);
    let e = c.download(&id).await.unwrap_err();
    assert!(matches!(e, ScmError::Malformed { .. }), "{e:?}");
    // A 200 with an empty body on renew: SCM renewed, but the new id is unknown.
    sim.script(vec![Scripted::Raw(200, "application/json", String::new())]);
    let e = c.renew(&id, &renew_req()).await.unwrap_err();
    assert!(e.maybe_billed() && e.to_string().contains("certId"), "{e}");
    // An HTML error page instead of SCM's JSON error.
    sim.script(vec![Scripted::Html(400)]);
    let e = c.renew(&id, &renew_req()).await.unwrap_err();
    assert!(
        matches!(
            e,
            ScmError::Permanent {
                status: 400,
                code: None,
                ..
            }
        ) && e.to_string().contains("Gateway error"),
        "{e}"
    );
}

#[tokio::test]
async fn limits_hold_under_load_across_profiles() {
    let sim = ScmSim::start(ScmSimConfig::default()).await.unwrap();
    sim.set_faults(Faults {
        latency: Duration::from_millis(50),
        ..Default::default()
    });
    let ids: Vec<sectigo_core::names::CertId> = (0..40)
        .map(|i| cert(&sim, &format!("h{i}.example.com")))
        .collect();
    // Two profiles on one host share the host's limits.
    let limits = Arc::new(Limits::new(3, 10.0));
    let a = Arc::new(client_with(&sim, "sim-secret", limits.clone(), 10));
    let b = Arc::new(client_with(&sim, "sim-secret", limits, 10));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(
            async move { c.download(&id).await.map(|_| ()) },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let elapsed = start.elapsed();
    let max_1s = sim.max_requests_in(Duration::from_secs(1));
    println!(
        "40 downloads in {elapsed:?}; most in one second: {max_1s}; most at once: {}",
        sim.max_concurrent_seen()
    );
    assert!(
        max_1s <= 10,
        "rate limit exceeded: {max_1s} requests in one second"
    );
    assert!(
        sim.max_concurrent_seen() <= 3,
        "concurrency: {} requests at once",
        sim.max_concurrent_seen()
    );
    let api_peak = sim.requests().len();
    assert!(api_peak >= 40);
    // 40 requests at 10/s take at least 3 s (the first 10 go at once).
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
}
