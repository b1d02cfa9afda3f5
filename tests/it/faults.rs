//! Everything going wrong at once: SCM answering 30% 5xx, bursts of 429, tokens expiring
//! every second; Jira down for the first half of the run. Every due certificate is renewed
//! exactly once and every Jira update delivered exactly once.

use sectigo_engine::Mode;
use std::time::Duration;

use crate::common::Env;
use sectigo_core::config::JiraFlavor;
use sectigo_engine::ImportLine;
use sectigo_jira::deliver::Deliverer;
use sectigo_jira::JiraClient;
use sectigo_model::CertState;
use sectigo_sim::{Faults, JiraFaults, JiraSim, ScmSimConfig};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scm_and_jira_faults_together() {
    let jira = JiraSim::start(JiraFlavor::Datacenter, "bot", "pat")
        .await
        .unwrap();
    let env = Env::new(ScmSimConfig {
        token_ttl: Duration::from_secs(300),
        ..Default::default()
    })
    .await;
    env.connector(&format!("[jira]\nurl = \"{}\"\nflavor = \"datacenter\"\ntoken = \"pat\"\n[jira.transitions]\nrenewed = \"Renewed\"\n", jira.url()));
    env.profile("web", "expiry_window_days = 30");
    let store = env.store();
    // The engine's days pass at the test's pace; the simulator's seconds pass for real, so
    // its tokens are revoked mid-round.
    let clock = sectigo_core::clock::ManualClock::new();
    let engine = env.engine_on(store.clone(), clock.shared());
    let mut due = Vec::new();
    for i in 0..30 {
        let key = format!("CERT-{}", 500 + i);
        jira.add_issue(&key);
        let id = env.sim_cert(
            &format!("f{i}.example.com"),
            if i < 24 { 2 + i as i64 } else { 90 },
        );
        engine
            .importer()
            .import(
                &crate::common::pn("web"),
                vec![ImportLine {
                    cert_id: id.clone(),
                    issue: Some(key.parse().unwrap()),
                    name: None,
                }],
            )
            .await
            .unwrap();
        if i < 24 {
            due.push(id);
        }
    }
    env.sim.set_faults(Faults {
        error_5xx: 0.3,
        rate_429: 0.1,
        retry_after_secs: 1,
        token_revoke_after: Some(Duration::from_secs(1)),
        ..Default::default()
    });
    jira.set_faults(JiraFaults {
        down: true,
        retry_after_secs: 600,
        ..Default::default()
    });
    let cfg = env.config().connector.jira.unwrap();
    let deliverer = Deliverer::new(
        JiraClient::new(&cfg, clock.shared()).unwrap(),
        cfg.transitions.clone(),
        store.clone(),
        clock.shared(),
    );

    for round in 0..12 {
        if round == 6 {
            jira.set_faults(JiraFaults::default()); // Jira back for the second half
        }
        // Time passes between rounds: backoffs expire (renewal backoff is hours; jump a day).
        clock.advance(chrono::Duration::hours(if round == 0 { 0 } else { 26 }));
        engine
            .cycle()
            .run(Mode::Live, &CancellationToken::new())
            .await
            .unwrap();
        deliverer
            .pass(sectigo_core::clock::Clock::now(&clock) + chrono::Duration::hours(1))
            .await
            .unwrap();
    }
    let errors = env
        .sim
        .requests()
        .iter()
        .filter(|q| q.status >= 429)
        .count();
    println!(
        "SCM answered {errors} errors; Jira received {} requests, down for the first half",
        jira.requests()
    );
    assert!(errors > 10);
    assert!(
        env.sim.billed_twice().is_empty(),
        "{:?}",
        env.sim.billed_twice()
    );
    let mut unknown = 0;
    for id in &due {
        match store.get(id).unwrap().unwrap().state {
            CertState::Superseded { .. } => assert_eq!(env.sim.billable_count(id), 1),
            CertState::OutcomeUnknown { .. } => unknown += 1,
            s => panic!("{id}: {s:?}"),
        }
    }
    assert_eq!(
        unknown, 0,
        "5xx and 429 are answered before SCM acts: never an unknown outcome"
    );
    assert_eq!(store.outbox_stats().unwrap().0, 0, "every update delivered");
    for i in 0..24 {
        let issue = jira.issue(&format!("CERT-{}", 500 + i)).unwrap();
        // One "started" per issue; an attempt that gave up under the faults may add one
        // "failed, will try again" report (delivered once, like every update) before it.
        let started = issue
            .comments
            .iter()
            .filter(|c| c.starts_with("Renewal of certificate") && c.contains(" started"))
            .count();
        let retrying = issue
            .comments
            .iter()
            .filter(|c| c.contains("The connector will try again at"))
            .count();
        assert!(retrying <= 1, "CERT-{}: {:#?}", 500 + i, issue.comments);
        let renewed = issue
            .comments
            .iter()
            .filter(|c| c.starts_with("Certificate renewed."))
            .count();
        assert_eq!(
            (started, renewed),
            (1, 1),
            "CERT-{}: {:#?}",
            500 + i,
            issue.comments
        );
    }
}
