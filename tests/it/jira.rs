//! Jira updates: both flavours' comment bodies, transitions, attachments, and an outbox that
//! loses nothing and doubles nothing whatever Jira does.

use sectigo_engine::Mode;
use std::time::Duration;

use crate::common::{get, Env};
use chrono::Utc;
use sectigo_core::config::{JiraConfig, JiraFlavor};
use sectigo_jira::deliver::Deliverer;
use sectigo_jira::JiraClient;
use sectigo_model::CertState;
use sectigo_model::Event;
use sectigo_sim::{JiraFaults, JiraSim, ScmSimConfig};
use sectigo_state::SharedStore;
use tokio_util::sync::CancellationToken;

fn deliverer(cfg: &JiraConfig, store: SharedStore) -> Deliverer {
    Deliverer::new(
        JiraClient::new(cfg, sectigo_core::clock::system()).unwrap(),
        cfg.transitions.clone(),
        store,
        sectigo_core::clock::system(),
    )
}

/// An environment whose connector.toml has a [jira] section for `jira`.
async fn env_with_jira(jira: &JiraSim, flavor: &str, auth: &str) -> Env {
    let env = Env::new(ScmSimConfig::default()).await;
    env.connector(&format!(
        "[jira]\nurl = \"{}\"\nflavor = \"{flavor}\"\n{auth}\n[jira.transitions]\nrenewal_started = \"Start Renewal\"\nrenewed = \"Renewed\"\nrenewal_failed = \"Needs Attention\"\nexpiring_no_auto_renew = \"Flag Problem\"\n",
        jira.url()
    ));
    env.profile("web", "expiry_window_days = 30");
    env
}

async fn renew_linked(
    env: &Env,
    issues: &[&str],
) -> (SharedStore, Vec<sectigo_core::names::CertId>) {
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let mut ids = Vec::new();
    for (i, key) in issues.iter().enumerate() {
        let id = env.sim_cert(&format!("site{i}.example.com"), 5);
        let line = sectigo_engine::ImportLine {
            cert_id: id.clone(),
            issue: Some(key.parse().unwrap()),
            name: None,
        };
        engine
            .importer()
            .import(&crate::common::pn("web"), vec![line])
            .await
            .unwrap();
        ids.push(id);
    }
    let r = engine
        .cycle()
        .run(Mode::Live, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.summary.renewed as usize, issues.len());
    (store, ids)
}

#[tokio::test]
async fn cloud_and_data_center_bodies_transitions_and_attachments() {
    for (flavor, name, auth) in [
        (
            JiraFlavor::Cloud,
            "cloud",
            "email = \"bot@example.com\"\ntoken = \"api-token\"",
        ),
        (
            JiraFlavor::Datacenter,
            "datacenter",
            "token = \"api-token\"",
        ),
    ] {
        let jira = JiraSim::start(flavor, "bot@example.com", "api-token")
            .await
            .unwrap();
        jira.add_issue("CERT-1");
        let env = env_with_jira(&jira, name, auth).await;
        let (store, ids) = renew_linked(&env, &["CERT-1"]).await;
        assert_eq!(
            store.outbox_stats().unwrap().0,
            2,
            "{name}: renewal started + renewed queued"
        );
        let cfg = env.config().connector.jira.unwrap();
        let r = deliverer(&cfg, store.clone())
            .pass(Utc::now())
            .await
            .unwrap();
        assert_eq!((r.delivered, r.pending, r.dead), (2, 0, 0), "{name}");

        let issue = jira.issue("CERT-1").unwrap();
        assert_eq!(issue.comments.len(), 2, "{name}: {:#?}", issue.comments);
        assert!(
            issue.comments[0].starts_with(&format!("Renewal of certificate {} started.", ids[0])),
            "{name}: {}",
            issue.comments[0]
        );
        let CertState::Superseded { by, .. } = get(&store, &ids[0]).state else {
            panic!()
        };
        let renewed = &issue.comments[1];
        for want in [
            format!("Old certificate: {}", ids[0]),
            format!("New certificate: {by}"),
            "Subject: CN=site0.example.com".into(),
            "SANs: site0.example.com".into(),
            "Valid until: ".into(),
        ] {
            assert!(
                renewed.contains(&want),
                "{name}: {want:?} missing in {renewed}"
            );
        }
        assert_eq!(issue.attachments.len(), 1);
        assert_eq!(
            issue.attachments[0].0,
            format!("site0.example.com-{by}.pem")
        );
        let pem = String::from_utf8(issue.attachments[0].1.clone()).unwrap();
        assert_eq!(
            sectigo_scm::parse_bundle(pem.as_bytes())
                .unwrap()
                .subject_cn,
            "site0.example.com"
        );
        assert_eq!(
            issue.transitions,
            vec!["Start Renewal", "Renewed"],
            "{name}"
        );
        assert_eq!(issue.status, "Renewed");
    }
}

#[tokio::test]
async fn transition_not_available_still_comments() {
    let jira = JiraSim::start(JiraFlavor::Cloud, "bot@example.com", "t")
        .await
        .unwrap();
    jira.add_issue("CERT-2");
    let env = env_with_jira(&jira, "cloud", "email = \"bot@example.com\"\ntoken = \"t\"").await;
    let (store, _) = renew_linked(&env, &["CERT-2"]).await;
    let mut cfg = env.config().connector.jira.unwrap();
    // "Reopen" is not available from "Open"; a target status name works as well as a name.
    cfg.transitions
        .insert("renewal_started".parse().unwrap(), "Reopen".into());
    cfg.transitions
        .insert("renewed".parse().unwrap(), "Renewal In Progress".into());
    let r = deliverer(&cfg, store).pass(Utc::now()).await.unwrap();
    assert_eq!(r.delivered, 2);
    let issue = jira.issue("CERT-2").unwrap();
    assert_eq!(issue.comments.len(), 2);
    assert_eq!(
        issue.transitions,
        vec!["Start Renewal"],
        "by target status; the unavailable one skipped"
    );
}

#[tokio::test]
async fn jira_down_for_the_cycle_then_back_delivers_each_update_once() {
    let jira = JiraSim::start(JiraFlavor::Datacenter, "bot", "pat")
        .await
        .unwrap();
    let keys = ["CERT-10", "CERT-11", "CERT-12"];
    for k in keys {
        jira.add_issue(k);
    }
    jira.set_faults(JiraFaults {
        down: true,
        ..Default::default()
    });
    let env = env_with_jira(&jira, "datacenter", "token = \"pat\"").await;
    let (store, _) = renew_linked(&env, &keys).await;
    let cfg = env.config().connector.jira.unwrap();
    let d = deliverer(&cfg, store.clone());
    let r = d.pass(Utc::now()).await.unwrap();
    assert_eq!(r.delivered, 0);
    assert_eq!(r.pending, 6);
    let next = r.next.expect("a retry time");
    assert!(next > Utc::now(), "backs off");
    let (pending, oldest, _) = store.outbox_stats().unwrap();
    assert_eq!(pending, 6);
    assert!(oldest.is_some());
    // Before the retry time nothing is sent.
    let before = jira.requests();
    d.pass(Utc::now()).await.unwrap();
    assert_eq!(jira.requests(), before, "no request before the retry time");
    // Jira comes back; at the retry time everything goes, in order, once.
    jira.set_faults(JiraFaults::default());
    let r = d.pass(next + chrono::Duration::seconds(1)).await.unwrap();
    assert_eq!(r.delivered, 6);
    for k in keys {
        let i = jira.issue(k).unwrap();
        assert_eq!(i.comments.len(), 2, "{k}");
        assert!(
            i.comments[0].starts_with("Renewal of certificate")
                && i.comments[1].starts_with("Certificate renewed."),
            "{k}: order kept"
        );
        assert_eq!(i.attachments.len(), 1);
    }
    assert_eq!(store.outbox_stats().unwrap(), (0, None, 0));
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let jira = JiraSim::start(JiraFlavor::Cloud, "bot@example.com", "t")
        .await
        .unwrap();
    jira.add_issue("CERT-3");
    jira.set_faults(JiraFaults {
        rate_429: 1.0,
        retry_after_secs: 600,
        ..Default::default()
    });
    let env = env_with_jira(&jira, "cloud", "email = \"bot@example.com\"\ntoken = \"t\"").await;
    let (store, _) = renew_linked(&env, &["CERT-3"]).await;
    let cfg = env.config().connector.jira.unwrap();
    let now = Utc::now();
    let r = deliverer(&cfg, store).pass(now).await.unwrap();
    assert!(
        r.next.unwrap() >= now + chrono::Duration::seconds(600),
        "{:?}",
        r.next
    );
}

#[tokio::test]
async fn a_401_is_clear_and_does_not_spin() {
    let jira = JiraSim::start(JiraFlavor::Cloud, "bot@example.com", "right")
        .await
        .unwrap();
    jira.add_issue("CERT-4");
    let env = env_with_jira(
        &jira,
        "cloud",
        "email = \"bot@example.com\"\ntoken = \"wrong-token-value\"",
    )
    .await;
    let (store, _) = renew_linked(&env, &["CERT-4"]).await;
    let cfg = env.config().connector.jira.unwrap();
    let d = deliverer(&cfg, store.clone());
    let now = Utc::now();
    let r = d.pass(now).await.unwrap();
    assert_eq!(jira.refused_auth(), 1, "one request, then it waits");
    assert!(r.next.unwrap() >= now + chrono::Duration::minutes(5));
    for _ in 0..5 {
        d.pass(Utc::now()).await.unwrap();
    }
    assert_eq!(jira.refused_auth(), 1, "no spinning");
    let item = &store.outbox(10).unwrap()[0];
    let err = item.last_error.clone().unwrap();
    assert!(
        err.contains("401") && err.contains("[jira] email and token"),
        "{err}"
    );
    assert!(!err.contains("wrong-token-value"));
    assert!(item.dead.is_none(), "kept: fixing the token delivers it");
}

#[tokio::test]
async fn a_gone_issue_is_kept_as_undeliverable_and_others_go_on() {
    let jira = JiraSim::start(JiraFlavor::Cloud, "bot@example.com", "t")
        .await
        .unwrap();
    jira.add_issue("CERT-6");
    let env = env_with_jira(&jira, "cloud", "email = \"bot@example.com\"\ntoken = \"t\"").await;
    let (store, _) = renew_linked(&env, &["CERT-5", "CERT-6"]).await; // CERT-5 does not exist
    let cfg = env.config().connector.jira.unwrap();
    let r = deliverer(&cfg, store.clone())
        .pass(Utc::now())
        .await
        .unwrap();
    assert_eq!((r.delivered, r.dead), (2, 2));
    assert_eq!(jira.issue("CERT-6").unwrap().comments.len(), 2);
    let (pending, _, dead) = store.outbox_stats().unwrap();
    assert_eq!((pending, dead), (0, 2));
    let item = store
        .outbox(10)
        .unwrap()
        .into_iter()
        .find(|i| i.dead.is_some())
        .unwrap();
    assert!(item.dead.unwrap().contains("does not exist"));
}

#[tokio::test]
async fn an_update_that_landed_before_a_crash_is_not_sent_again() {
    let jira = JiraSim::start(JiraFlavor::Cloud, "bot@example.com", "t")
        .await
        .unwrap();
    jira.add_issue("CERT-7");
    let env = env_with_jira(&jira, "cloud", "email = \"bot@example.com\"\ntoken = \"t\"").await;
    let (store, _) = renew_linked(&env, &["CERT-7"]).await;
    let cfg = env.config().connector.jira.unwrap();
    // The first update was sent (Jira has it) but the daemon died before recording that.
    let mut items = store.outbox(10).unwrap();
    let client = JiraClient::new(&cfg, sectigo_core::clock::system()).unwrap();
    client
        .add_comment("CERT-7", &items[0].comment)
        .await
        .unwrap();
    items[0].tried.comment = true;
    store.update_outbox(&items[0]).unwrap();
    let r = deliverer(&cfg, store).pass(Utc::now()).await.unwrap();
    assert_eq!(r.delivered, 2);
    let i = jira.issue("CERT-7").unwrap();
    assert_eq!(i.comments.len(), 2, "no duplicate: {:#?}", i.comments);
}

#[tokio::test]
async fn the_same_event_is_queued_once() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "");
    let store = env.store();
    let engine = env.engine_with(store.clone());
    let id = env.sim_cert("a.example.com", 5);
    engine
        .importer()
        .import(
            &crate::common::pn("web"),
            vec![sectigo_engine::ImportLine {
                cert_id: id.clone(),
                issue: Some("CERT-8".parse().unwrap()),
                name: None,
            }],
        )
        .await
        .unwrap();
    let rec = get(&store, &id);
    let item =
        sectigo_jira::outbox::outbox_item(&Event::ExpiringNoAutoRenew { cert: &rec }, Utc::now())
            .unwrap();
    store.commit(&[], std::slice::from_ref(&item)).unwrap();
    store.commit(&[], std::slice::from_ref(&item)).unwrap();
    assert_eq!(store.outbox_stats().unwrap().0, 1);
    let seq = store.outbox(10).unwrap()[0].seq;
    store.remove_outbox(seq).unwrap();
    store.commit(&[], &[item]).unwrap();
    assert_eq!(
        store.outbox_stats().unwrap().0,
        0,
        "delivered once: never again"
    );
    // Without a linked issue, nothing is queued at all.
    let mut unlinked = rec.clone();
    unlinked.jira_issue = None;
    assert!(sectigo_jira::outbox::outbox_item(
        &Event::ExpiringNoAutoRenew { cert: &unlinked },
        Utc::now()
    )
    .is_none());
}

#[tokio::test]
async fn renewals_never_wait_for_jira() {
    let jira = JiraSim::start(JiraFlavor::Cloud, "bot@example.com", "t")
        .await
        .unwrap();
    jira.add_issue("CERT-9");
    jira.set_faults(JiraFaults {
        latency: Duration::from_secs(30),
        ..Default::default()
    });
    let env = env_with_jira(&jira, "cloud", "email = \"bot@example.com\"\ntoken = \"t\"").await;
    let start = std::time::Instant::now();
    renew_linked(&env, &["CERT-9"]).await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the cycle does not talk to Jira"
    );
    assert_eq!(jira.requests(), 0);
}

#[tokio::test]
async fn the_simulator_lists_attachments_as_jira_does() {
    // The outbox looks for an attachment before sending it again: the simulator must answer
    // `GET /issue/KEY?fields=attachment` with what was attached (both flavours).
    for flavor in [JiraFlavor::Cloud, JiraFlavor::Datacenter] {
        let jira = JiraSim::start(flavor, "bot@example.com", "api-token")
            .await
            .unwrap();
        jira.add_issue("OPS-1");
        let cfg = JiraConfig {
            url: jira.url(),
            flavor,
            email: (flavor == JiraFlavor::Cloud).then(|| "bot@example.com".to_string()),
            token: sectigo_core::secret::Secret::new("api-token"),
            token_from: sectigo_core::config::SecretFrom::Inline,
            transitions: Default::default(),
            timeout_secs: 5,
            workflow: None,
            token_readable_by_others: None,
        };
        let c = JiraClient::new(&cfg, sectigo_core::clock::system()).unwrap();
        assert!(c.attachment_names("OPS-1").await.unwrap().is_empty());
        c.attach("OPS-1", "a.pem", b"pem").await.unwrap();
        assert_eq!(c.attachment_names("OPS-1").await.unwrap(), vec!["a.pem"]);
    }
}
