//! Certificates managed from Jira issues (`[jira.workflow]`), against the Jira and SCM
//! simulators: the whole story of one issue (enroll → issued → auto-renew → renew from the
//! issue → revoke), bad CSRs and unknown profiles refused without a call to SCM, one CSR in two
//! issues enrolled once, and a crash between the enroll call and the attachment.

use sectigo_engine::Mode;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{get, Env};
use chrono::Utc;
use sectigo_core::config::JiraFlavor;
use sectigo_engine::Engine;
use sectigo_jira::deliver::Deliverer;
use sectigo_jira::JiraClient;
use sectigo_model::{CertOrigin, CertState, EnrollState};
use sectigo_sim::{JiraSim, ScmSimConfig};
use sectigo_state::SharedStore;
use sectigo_workflow::{PollReport, Poller};
use tokio_util::sync::CancellationToken;

pub(crate) fn csr_pem(cn: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.serialize_request(&key).unwrap().pem().unwrap()
}

async fn setup(flavor: JiraFlavor) -> (Env, JiraSim) {
    setup_with(flavor, ScmSimConfig::default()).await
}

async fn setup_with(flavor: JiraFlavor, sim: ScmSimConfig) -> (Env, JiraSim) {
    setup_full(flavor, sim, "", "").await
}

/// A configuration with Jira (`flavor`), the workflow on with `workflow` keys added, and one
/// profile `default` with `profile` keys added.
pub(crate) async fn setup_full(
    flavor: JiraFlavor,
    sim: ScmSimConfig,
    workflow: &str,
    profile: &str,
) -> (Env, JiraSim) {
    let jira = JiraSim::start(flavor, "bot@example.com", "api-token")
        .await
        .unwrap();
    let env = Env::manual(sim).await;
    let (name, auth) = match flavor {
        JiraFlavor::Cloud => (
            "cloud",
            "email = \"bot@example.com\"\ntoken = \"api-token\"",
        ),
        JiraFlavor::Datacenter => ("datacenter", "token = \"api-token\""),
    };
    env.connector(&format!(
        "[jira]\nurl = \"{}\"\nflavor = \"{name}\"\n{auth}\n[jira.transitions]\nrenewal_started = \"Start Renewal\"\nrenewed = \"Renewed\"\n[jira.workflow]\nenabled = true\nrevoke_reason_field = \"Revocation reason\"\n{workflow}\n",
        jira.url()
    ));
    env.profile("default", &format!("expiry_window_days = 30\n{profile}"));
    (env, jira)
}

pub(crate) struct Daemon {
    pub(crate) engine: Arc<Engine>,
    pub(crate) poller: Poller,
    pub(crate) deliverer: Deliverer,
    pub(crate) store: SharedStore,
    pub(crate) clock: sectigo_core::clock::SharedClock,
}

pub(crate) fn daemon(env: &Env) -> Daemon {
    let cfg = env.config();
    let store = env.store();
    let jc = cfg.connector.jira.clone().unwrap();
    let clock = env.clock.clone();
    Daemon {
        engine: env.engine_with(store.clone()),
        poller: Poller::new(&jc, clock.clone()).unwrap().unwrap(),
        deliverer: Deliverer::for_config(
            JiraClient::new(&jc, clock.clone()).unwrap(),
            &jc,
            store.clone(),
            clock.clone(),
        ),
        store,
        clock,
    }
}

impl Daemon {
    pub(crate) async fn poll(&self) -> PollReport {
        let r = self.poller.poll(&self.engine).await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        r
    }

    pub(crate) async fn deliver(&self) {
        let r = self.deliverer.pass(self.clock.now()).await.unwrap();
        assert_eq!((r.pending, r.dead), (0, 0), "{r:?}");
    }

    /// Polls and delivers until the simulator has issued what was enrolled.
    pub(crate) async fn settle(&self) {
        for _ in 0..3 {
            self.poll().await;
            self.deliver().await;
        }
    }
}

pub(crate) fn enroll_posts(env: &Env) -> usize {
    env.sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v1/certificates")
        .count()
}

#[tokio::test]
async fn the_story_of_one_issue_enroll_renew_revoke() {
    for flavor in [JiraFlavor::Cloud, JiraFlavor::Datacenter] {
        // No minimum interval here: the story renews from the issue right after a renewal.
        let (env, jira) = setup_full(
            flavor,
            ScmSimConfig::default(),
            "min_renewal_interval_hours = 0",
            "",
        )
        .await;
        let d = daemon(&env);
        jira.add_certificate_issue(
            "CERT-1",
            "web server",
            "default",
            &csr_pem("www.example.com"),
        );

        // Not requested yet: nothing happens.
        let r = d.poll().await;
        assert_eq!((r.found, r.done), (0, 0), "{flavor:?}");

        // Enroll: one billable call, then the certificate on the issue.
        jira.person_transitions("CERT-1", "Enroll Certificate");
        let r = d.poll().await;
        assert_eq!(
            (r.found, r.done, r.collected),
            (1, 1, 1),
            "{flavor:?}: {r:?}"
        );
        // Polled again while still in "Enrollment Requested" (Jira not updated yet): not
        // enrolled twice.
        let r = d.poll().await;
        assert_eq!(
            (r.found, r.done, r.collected),
            (1, 0, 0),
            "{flavor:?}: {r:?}"
        );
        d.deliver().await;
        assert_eq!(enroll_posts(&env), 1, "{flavor:?}");
        let (cn, id) = env.sim.enrollments()[0].clone();
        assert_eq!(cn, "www.example.com");
        let issue = jira.issue("CERT-1").unwrap();
        assert_eq!(issue.status, "Certificate Enrolled", "{flavor:?}");
        assert_eq!(issue.summary, "Certificate enrolled:www.example.com");
        assert_eq!(issue.fields["Certificate ID"], id);
        assert_eq!(issue.attachments.len(), 1);
        assert_eq!(issue.attachments[0].0, format!("www.example.com-{id}.pem"));
        assert!(
            issue.comments[0].starts_with("Enrollment requested"),
            "{:?}",
            issue.comments
        );
        assert!(issue.comments[1].starts_with(&format!("Certificate enrolled: {id}")));
        let cert = get(&d.store, &id);
        assert_eq!(cert.state, CertState::Active);
        assert_eq!(cert.jira_issue.as_deref(), Some("CERT-1"));
        assert!(matches!(cert.origin, CertOrigin::Enrolled { .. }));

        // Automatic renewal inside the window, reported on the same issue; the issue's
        // certificate id follows.
        env.set_now(cert.not_after - chrono::Duration::days(10));
        d.engine
            .cycle()
            .run(Mode::Live, &CancellationToken::new())
            .await
            .unwrap();
        d.deliver().await;
        let CertState::Superseded { by: renewed, .. } = get(&d.store, &id).state else {
            panic!("{flavor:?}: not renewed: {:?}", get(&d.store, &id).state)
        };
        let issue = jira.issue("CERT-1").unwrap();
        assert_eq!(issue.status, "Renewed");
        assert_eq!(issue.fields["Certificate ID"], renewed);

        // Renew from the issue: the `renew ID` path, once.
        jira.person_transitions("CERT-1", "Renew Certificate");
        let r = d.poll().await;
        assert_eq!(r.done, 1, "{flavor:?}: {r:?}");
        d.settle().await;
        assert_eq!(env.sim.renewals_of(&renewed).len(), 1, "{flavor:?}");
        let CertState::Superseded { by: current, .. } = get(&d.store, &renewed).state else {
            panic!("{flavor:?}: renewal from the issue not collected")
        };
        let issue = jira.issue("CERT-1").unwrap();
        assert_eq!(issue.status, "Renewed", "{flavor:?}");
        assert_eq!(issue.fields["Certificate ID"], current);

        // Revoke, with the reason from its field.
        jira.person_transitions("CERT-1", "Revoke Certificate");
        jira.set_field("CERT-1", "Revocation reason", "Key compromise");
        let r = d.poll().await;
        assert_eq!(r.done, 1, "{flavor:?}: {r:?}");
        d.settle().await;
        assert!(env.sim.is_revoked(&current), "{flavor:?}");
        assert!(matches!(
            get(&d.store, &current).state,
            CertState::Revoked { .. }
        ));
        let issue = jira.issue("CERT-1").unwrap();
        assert_eq!(issue.status, "Certificate Revoked");
        let last = issue.comments.last().unwrap();
        assert!(
            last.contains(&format!("Certificate {current}")) && last.contains("Key compromise"),
            "{last}"
        );

        // Never renewed again, whatever the date.
        let billed = env.sim.billable_total();
        env.set_now(get(&d.store, &current).not_after + chrono::Duration::days(1));
        d.engine
            .cycle()
            .run(Mode::Live, &CancellationToken::new())
            .await
            .unwrap();
        d.settle().await;
        assert_eq!(env.sim.billable_total(), billed, "{flavor:?}");
        assert_eq!(env.sim.billed_twice(), vec![]);
    }
}

#[tokio::test]
async fn bad_csr_and_unknown_profile_are_refused_without_calling_scm() {
    let (env, jira) = setup(JiraFlavor::Cloud).await;
    let d = daemon(&env);
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    jira.add_certificate_issue("CERT-1", "junk", "default", "this is not a CSR");
    jira.add_certificate_issue("CERT-2", "a key", "default", &key);
    jira.add_certificate_issue("CERT-3", "typo", "defualt", &csr_pem("a.example.com"));
    jira.add_certificate_issue("CERT-4", "empty", "default", "");
    for k in ["CERT-1", "CERT-2", "CERT-3", "CERT-4"] {
        jira.person_transitions(k, "Enroll Certificate");
    }
    let r = d.poll().await;
    assert_eq!((r.found, r.rejected, r.done), (4, 4, 0), "{r:?}");
    d.deliver().await;
    assert_eq!(enroll_posts(&env), 0);
    for (k, want) in [
        (
            "CERT-1",
            "invalid CSR: the CSR is neither PEM nor valid Base64",
        ),
        ("CERT-2", "PRIVATE KEY"),
        (
            "CERT-3",
            "profile \"defualt\" may not be used for requests from Jira",
        ),
        ("CERT-4", "\"Certificate CSR text\" is empty"),
    ] {
        let i = jira.issue(k).unwrap();
        assert_eq!(i.status, "Request Failed", "{k}");
        assert_eq!(i.comments.len(), 1, "{k}: {:?}", i.comments);
        assert!(i.comments[0].contains(want), "{k}: {}", i.comments[0]);
        assert!(
            !i.comments[0].contains("(configured:"),
            "no profile names: {}",
            i.comments[0]
        );
    }
    // Polling again changes nothing.
    d.settle().await;
    assert_eq!(jira.issue("CERT-3").unwrap().comments.len(), 1);

    // The reporter fixes the profile and asks again: enrolled.
    jira.set_field("CERT-3", "Certificate profile", "default");
    jira.person_transitions("CERT-3", "Enroll Certificate");
    d.settle().await;
    assert_eq!(enroll_posts(&env), 1);
    assert_eq!(jira.issue("CERT-3").unwrap().status, "Certificate Enrolled");
}

#[tokio::test]
async fn one_csr_in_two_issues_is_enrolled_once() {
    let (env, jira) = setup(JiraFlavor::Datacenter).await;
    let d = daemon(&env);
    let pem = csr_pem("shared.example.com");
    // The same request, once as PEM and once as single-line Base64.
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    jira.add_certificate_issue("CERT-1", "first", "default", &pem);
    jira.add_certificate_issue("CERT-2", "second", "default", &b64);
    jira.person_transitions("CERT-1", "Enroll Certificate");
    jira.person_transitions("CERT-2", "Enroll Certificate");
    d.settle().await;
    assert_eq!(enroll_posts(&env), 1);
    assert_eq!(jira.issue("CERT-1").unwrap().status, "Certificate Enrolled");
    let second = jira.issue("CERT-2").unwrap();
    assert_eq!(second.status, "Request Failed");
    assert!(
        second.comments[0].contains("the same CSR was already enrolled from CERT-1"),
        "{:?}",
        second.comments
    );
    // Asking again with the same CSR is refused again, still without a call.
    jira.person_transitions("CERT-2", "Enroll Certificate");
    d.settle().await;
    assert_eq!(enroll_posts(&env), 1);
}

#[tokio::test]
async fn a_crash_between_enroll_and_attach_attaches_once_and_never_enrolls_again() {
    // The CA takes a while to issue, so the daemon stops with the enrollment accepted but not
    // collected, and its Jira update not delivered.
    let sim = ScmSimConfig {
        issue_delay: Duration::from_millis(800),
        ..Default::default()
    };
    let (env, jira) = setup_with(JiraFlavor::Cloud, sim).await;
    jira.add_certificate_issue("CERT-1", "web", "default", &csr_pem("www.example.com"));
    jira.person_transitions("CERT-1", "Enroll Certificate");
    {
        let d = daemon(&env);
        let r = d.poll().await;
        assert_eq!((r.done, r.collected), (1, 0), "{r:?}");
        // "Crash": everything dropped, nothing delivered; only what was flushed survives.
    }
    env.advance(chrono::Duration::seconds(1));
    let d = daemon(&env);
    d.engine.recover().await.unwrap();
    d.settle().await;
    d.settle().await;
    assert_eq!(enroll_posts(&env), 1);
    let issue = jira.issue("CERT-1").unwrap();
    assert_eq!(issue.status, "Certificate Enrolled");
    assert_eq!(issue.attachments.len(), 1, "{:?}", issue.attachments);
    assert_eq!(issue.comments.len(), 2, "{:?}", issue.comments);

    // A crash *during* the enroll call (journaled, unanswered): outcome unknown, reported,
    // never sent again.
    jira.add_certificate_issue("CERT-2", "api", "default", &csr_pem("api.example.com"));
    jira.person_transitions("CERT-2", "Enroll Certificate");
    let mut rec = sectigo_model::IssueRecord::new(&crate::common::ik("CERT-2"));
    rec.enroll = Some(EnrollState::Requested {
        profile: "default".parse().unwrap(),
        at: Utc::now(),
        request: None,
    });
    rec.set_handled("enroll", Some(Utc::now()));
    d.store.commit_all(&[], &[rec], &[]).unwrap();
    assert_eq!(d.engine.recover().await.unwrap(), 1);
    d.settle().await;
    assert_eq!(enroll_posts(&env), 1);
    let issue = jira.issue("CERT-2").unwrap();
    assert_eq!(issue.status, "Request Failed");
    assert!(
        issue.comments[0].starts_with("Needs a human: the outcome of this enrollment"),
        "{:?}",
        issue.comments
    );
    assert!(
        issue.comments[0].contains("certs resolve CERT-2 --renewed-as"),
        "{:?}",
        issue.comments
    );
    // The operator found nothing in SCM: the issue may ask again, and its request is enrolled.
    d.engine
        .settler()
        .resolve(
            &"CERT-2".parse().unwrap(),
            sectigo_engine::Finding::NotRenewed,
        )
        .await
        .unwrap();
    jira.person_transitions("CERT-2", "Enroll Certificate");
    for _ in 0..3 {
        d.settle().await;
    }
    assert_eq!(enroll_posts(&env), 2, "enrolled once, after the resolve");
}

#[tokio::test]
async fn two_pollers_at_once_as_across_a_reload_enroll_once() {
    let (env, jira) = setup(JiraFlavor::Cloud).await;
    let d = daemon(&env);
    let jc = env.config().connector.jira.unwrap();
    let second = Poller::new(&jc, env.clock.clone()).unwrap().unwrap();
    for i in 0..5 {
        let k = format!("CERT-{i}");
        jira.add_certificate_issue(&k, "x", "default", &csr_pem(&format!("h{i}.example.com")));
        jira.person_transitions(&k, "Enroll Certificate");
    }
    let (a, b) = tokio::join!(d.poller.poll(&d.engine), second.poll(&d.engine));
    assert_eq!(a.done + b.done, 5, "{a:?} {b:?}");
    assert_eq!(enroll_posts(&env), 5);
}

#[tokio::test]
async fn a_field_jira_will_not_set_does_not_block_the_update() {
    let jira = JiraSim::start(JiraFlavor::Cloud, "bot@example.com", "api-token")
        .await
        .unwrap();
    let env = Env::new(ScmSimConfig::default()).await;
    // A text area is not on the simulator's edit screen: Jira answers 400 to setting it.
    env.connector(&format!(
        "[jira]\nurl = \"{}\"\nemail = \"bot@example.com\"\ntoken = \"api-token\"\n[jira.transitions]\nrenewed = \"Renewed\"\n[jira.workflow]\nenabled = true\ncert_id_field = \"Certificate CSR text\"\n",
        jira.url()
    ));
    env.profile("default", "expiry_window_days = 30");
    jira.add_issue("OPS-7");
    let d = daemon(&env);
    let id = env.sim_cert("legacy.example.com", 5);
    let line = sectigo_engine::ImportLine {
        cert_id: id,
        issue: Some("OPS-7".parse().unwrap()),
        name: None,
    };
    d.engine
        .importer()
        .import(&crate::common::pn("default"), vec![line])
        .await
        .unwrap();
    d.engine
        .cycle()
        .run(Mode::Live, &CancellationToken::new())
        .await
        .unwrap();
    d.deliver().await;
    let issue = jira.issue("OPS-7").unwrap();
    assert_eq!(issue.status, "Renewed");
    assert_eq!(issue.attachments.len(), 1);
    assert!(issue.edits.is_empty());
}

#[tokio::test]
async fn searches_page_through_every_match_on_both_flavours() {
    for flavor in [JiraFlavor::Cloud, JiraFlavor::Datacenter] {
        let (env, jira) = setup(flavor).await;
        for i in 0..250 {
            jira.add_issue(&format!("OPS-{i}"));
        }
        jira.add_issue("DEV-1");
        let c = JiraClient::new(&env.config().connector.jira.unwrap(), env.clock.clone()).unwrap();
        let fields = vec!["status".to_string()];
        let r = c.search("project = OPS", &fields, 1000).await.unwrap();
        let (all, complete) = (r.issues, r.complete);
        assert_eq!((all.len(), complete), (250, true), "{flavor:?}");
        let keys: std::collections::BTreeSet<String> = all.iter().map(|i| i.key.clone()).collect();
        assert_eq!(keys.len(), 250, "{flavor:?}: no issue twice");
        assert_eq!(all[0].text("status").as_deref(), Some("Open"));
        let r = c.search("project = OPS", &fields, 120).await.unwrap();
        assert_eq!((r.issues.len(), r.complete), (120, false), "{flavor:?}");
        // A JQL error is Jira's own message, for the operator.
        let e = c.search("projekt = OPS", &fields, 10).await.unwrap_err();
        assert!(
            e.to_string().contains("Field 'projekt' does not exist"),
            "{e}"
        );
    }
}

/// Issue #23: issues with large searched fields made every page of the enrollment search larger
/// than the client takes (4 MiB), so no request was handled until they were moved. Pages
/// shrink until they fit; an issue too large even alone is skipped with a warning naming it
/// (escaped); the legitimate request is enrolled in the first poll.
#[tokio::test]
async fn issues_with_huge_fields_do_not_block_a_request() {
    let big = "x".repeat(400_000);
    let huge = "y".repeat(5 << 20);
    let add = |jira: &JiraSim, key: &str, id: &str| {
        jira.add_certificate_issue(key, "big", "default", "");
        jira.set_field(key, "Certificate ID", id);
        jira.person_transitions(key, "Enroll Certificate");
    };
    for flavor in [JiraFlavor::Cloud, JiraFlavor::Datacenter] {
        let (env, jira) = setup(flavor).await;
        let d = daemon(&env);
        // Twelve issues with 400 kB in a searched field (the certificate id): 4.8 MB a page.
        for i in 0..12 {
            add(&jira, &format!("CERT-{}", 100 + i), &big);
        }
        // One too large to read even alone.
        add(&jira, "CERT-200", &huge);
        jira.add_certificate_issue("CERT-1", "web", "default", &csr_pem("www.example.com"));
        jira.person_transitions("CERT-1", "Enroll Certificate");
        let r = d.poll().await;
        assert_eq!(
            (r.found, r.done, r.collected, r.rejected, r.deferred),
            (14, 1, 1, 12, 1),
            "{flavor:?}: {r:?}"
        );
        assert_eq!(enroll_posts(&env), 1, "{flavor:?}");
        d.deliver().await;
        assert_eq!(jira.issue("CERT-1").unwrap().status, "Certificate Enrolled");
        // The large ones were read, and refused for what they are (no CSR).
        let c = &jira.issue("CERT-105").unwrap().comments;
        assert!(
            c.len() == 1 && c[0].contains("is empty"),
            "{flavor:?}: {c:?}"
        );
        // The huge one waits, untouched.
        let i = jira.issue("CERT-200").unwrap();
        assert!(i.comments.is_empty(), "{flavor:?}");
        assert_eq!(i.status, "Enrollment Requested");
    }
    // The daemon's log names the skipped issue, escaped.
    let (env, jira) = setup(JiraFlavor::Cloud).await;
    add(&jira, "CERT-201\u{1b}[2J", &huge);
    jira.add_certificate_issue("CERT-1", "web", "default", &csr_pem("www.example.com"));
    jira.person_transitions("CERT-1", "Enroll Certificate");
    let dir = env.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sectigo-connector"))
            .arg("--config-dir")
            .arg(dir)
            .args(["run", "--once"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("CERT-201\\u{1b}[2J")
            && l.contains("too large")),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "{log}");
    assert_eq!(enroll_posts(&env), 1);
}

#[tokio::test]
async fn a_flaky_jira_delays_requests_but_never_doubles_them() {
    let (env, jira) = setup(JiraFlavor::Datacenter).await;
    let d = daemon(&env);
    for i in 0..4 {
        let k = format!("CERT-{i}");
        jira.add_certificate_issue(&k, "x", "default", &csr_pem(&format!("f{i}.example.com")));
        jira.person_transitions(&k, "Enroll Certificate");
    }
    // Jira down: the poll fails, nothing is sent to SCM.
    jira.set_faults(sectigo_sim::JiraFaults {
        down: true,
        ..Default::default()
    });
    let r = d.poller.poll(&d.engine).await;
    assert!(!r.errors.is_empty() && r.found == 0, "{r:?}");
    assert_eq!(enroll_posts(&env), 0);
    // Then flaky.
    jira.set_faults(sectigo_sim::JiraFaults {
        error_500: 0.2,
        rate_429: 0.05,
        retry_after_secs: 0,
        ..Default::default()
    });
    let mut failed_polls = 0;
    for _ in 0..60 {
        let r = d.poller.poll(&d.engine).await;
        failed_polls += usize::from(!r.errors.is_empty());
        let _ = d.deliverer.pass(Utc::now()).await.unwrap();
        let done = (0..4)
            .all(|i| jira.issue(&format!("CERT-{i}")).unwrap().status == "Certificate Enrolled");
        if done {
            break;
        }
    }
    // Jira healthy again; updates waiting for their retry time go out when it comes.
    jira.set_faults(sectigo_sim::JiraFaults::default());
    for _ in 0..3 {
        d.poll().await;
        let later = Utc::now() + chrono::Duration::hours(1);
        let r = d.deliverer.pass(later).await.unwrap();
        assert_eq!((r.pending, r.dead), (0, 0), "{r:?}");
    }
    for i in 0..4 {
        let issue = jira.issue(&format!("CERT-{i}")).unwrap();
        assert_eq!(issue.status, "Certificate Enrolled", "CERT-{i}");
        assert_eq!(issue.attachments.len(), 1, "CERT-{i}");
        assert_eq!(issue.comments.len(), 2, "CERT-{i}: {:#?}", issue.comments);
    }
    assert_eq!(enroll_posts(&env), 4);
    println!("{failed_polls} flaky polls saw a Jira error");
}

#[tokio::test]
async fn refused_scm_credentials_wait_for_the_operator_not_the_requester() {
    let (env, jira) = setup(JiraFlavor::Cloud).await;
    let p = env.path().join("profiles.d/default.toml");
    let good = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, good.replace("sim-secret", "wrong-secret")).unwrap();
    jira.add_certificate_issue("CERT-1", "x", "default", &csr_pem("a.example.com"));
    jira.person_transitions("CERT-1", "Enroll Certificate");
    {
        let d = daemon(&env);
        let r = d.poll().await;
        assert_eq!((r.deferred, r.rejected, r.done), (1, 0, 0), "{r:?}");
        d.deliver().await;
    }
    let issue = jira.issue("CERT-1").unwrap();
    assert_eq!(issue.status, "Enrollment Requested");
    assert!(issue.comments.is_empty(), "{:?}", issue.comments);
    // The operator fixes the profile: the waiting request goes through.
    std::fs::write(&p, good).unwrap();
    let d = daemon(&env);
    d.settle().await;
    assert_eq!(jira.issue("CERT-1").unwrap().status, "Certificate Enrolled");
    assert_eq!(enroll_posts(&env), 1);
}
