//! A broken or malicious server: huge bodies, a slow drip, invalid UTF-8, redirects to another
//! host. Bounded memory and time, clear errors, and no credential sent anywhere else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sectigo_core::secret::Secret;
use sectigo_scm::{http_client, ClientSettings, Limits, ProfileCreds, ScmClient, ScmError};
use sectigo_sim::{ScmSim, ScmSimConfig, Scripted};

fn client(sim: &ScmSim, timeout: u64) -> ScmClient {
    let s = ClientSettings {
        timeout: Duration::from_secs(timeout),
        retry_max: Duration::from_millis(500),
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

async fn setup() -> (ScmSim, String) {
    let sim = ScmSim::start(ScmSimConfig::default()).await.unwrap();
    let now = Utc::now();
    let id = sim.add_certificate(
        "a.example.com",
        &[],
        now - chrono::Duration::days(10),
        now + chrono::Duration::days(10),
    );
    (sim, id.to_string())
}

#[tokio::test]
async fn a_huge_body_is_cut_off() {
    let (sim, id) = setup().await;
    let c = client(&sim, 10);
    c.status(&id).await.unwrap(); // token
    sim.script(vec![Scripted::Bytes(
        200,
        "application/x-pem-file",
        vec![b'A'; 64 * 1024 * 1024],
    )]);
    let e = c.download(&id).await.unwrap_err();
    assert!(
        matches!(e, ScmError::Malformed { .. }) && e.to_string().contains("larger than"),
        "{e}"
    );
}

#[tokio::test]
async fn a_slow_drip_times_out() {
    let (sim, id) = setup().await;
    let c = client(&sim, 2);
    c.status(&id).await.unwrap();
    sim.script(vec![
        Scripted::Drip {
            bytes: 1000,
            every: Duration::from_millis(100)
        };
        5
    ]);
    let start = Instant::now();
    let e = c.download(&id).await.unwrap_err();
    let took = start.elapsed();
    assert!(e.is_transient(), "{e}");
    assert!(
        took < Duration::from_secs(12),
        "bounded by the timeout and the retry budget: {took:?}"
    );
}

#[tokio::test]
async fn invalid_utf8_is_an_error() {
    let (sim, id) = setup().await;
    let c = client(&sim, 5);
    sim.script(vec![Scripted::Bytes(
        200,
        "application/x-pem-file",
        vec![0xff, 0xfe, 0xfd, b'\n'],
    )]);
    let e = c.download(&id).await.unwrap_err();
    assert!(e.to_string().contains("not UTF-8"), "{e}");
    // In an error body: reported, not a panic.
    sim.script(vec![Scripted::Bytes(
        400,
        "application/json",
        vec![b'{', 0xff, b'}'],
    )]);
    let e = c.download(&id).await.unwrap_err();
    assert!(matches!(e, ScmError::Permanent { status: 400, .. }), "{e}");
}

#[tokio::test]
async fn redirects_are_not_followed_and_carry_no_credentials() {
    let (sim, id) = setup().await;
    let other = ScmSim::start(ScmSimConfig::default()).await.unwrap();
    let c = client(&sim, 5);
    c.status(&id).await.unwrap();
    sim.script(vec![Scripted::Redirect(format!(
        "{}/api/v1/certificates/{id}",
        other.url()
    ))]);
    let e = c.download(&id).await.unwrap_err();
    assert!(matches!(e, ScmError::Permanent { status: 302, .. }), "{e}");
    assert!(
        other.requests().is_empty(),
        "the other host got {:?}",
        other.requests()
    );
}
