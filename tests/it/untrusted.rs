//! Jira users are untrusted input: whoever can edit a Certificate issue drives billable SCM
//! calls, so requests from issues never override the engine's safety, stay within the
//! operator's limits (profiles, domains, a daily cap that survives a restart), cannot break
//! the search for everyone else, and cannot forge log lines. Both Jira flavours.

use chrono::Utc;
use sectigo_core::config::JiraFlavor;
use sectigo_model::CertState;
use sectigo_sim::ScmSimConfig;

use crate::common::get;
use crate::workflow::{csr_pem, daemon, enroll_posts, setup_full};

const FLAVORS: [JiraFlavor; 2] = [JiraFlavor::Cloud, JiraFlavor::Datacenter];

/// Issue CERT-1 with an imported certificate linked to it, expiring in `days`.
async fn issue_with_certificate(
    env: &crate::common::Env,
    jira: &sectigo_sim::JiraSim,
    d: &crate::workflow::Daemon,
    days: i64,
) -> sectigo_core::names::CertId {
    let id = env.sim_cert("shop.example.com", days);
    jira.add_certificate_issue("CERT-1", "shop", "default", "");
    d.engine
        .importer()
        .import(
            &crate::common::pn("default"),
            vec![sectigo_engine::ImportLine {
                cert_id: id.clone(),
                issue: Some("CERT-1".parse().unwrap()),
                name: None,
            }],
        )
        .await
        .unwrap();
    id
}

fn renew_posts(env: &crate::common::Env) -> usize {
    env.sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/renew"))
        .count()
}

#[tokio::test]
async fn a_renew_request_never_re_bills_an_unknown_outcome() {
    for flavor in FLAVORS {
        let (env, jira) = setup_full(flavor, ScmSimConfig::default(), "", "").await;
        let d = daemon(&env);
        let id = issue_with_certificate(&env, &jira, &d, 200).await;
        // The renew call timed out after SCM billed it: outcome unknown.
        let mut rec = get(&d.store, &id);
        rec.state = CertState::OutcomeUnknown {
            due: rec.not_after,
            at: Utc::now(),
            request: Some("r-0000000001".into()),
        };
        d.store.put(&[rec]).unwrap();
        jira.set_field("CERT-1", "Certificate ID", &id);
        jira.person_transitions("CERT-1", "Enroll Certificate");
        jira.person_transitions("CERT-1", "Request Failed");
        jira.person_transitions("CERT-1", "Renew Certificate");
        let r = d.poll().await;
        assert_eq!((r.rejected, r.done), (1, 0), "{flavor:?}: {r:?}");
        d.deliver().await;
        assert_eq!(renew_posts(&env), 0, "{flavor:?}: nothing billed");
        let issue = jira.issue("CERT-1").unwrap();
        let c = issue.comments.last().unwrap();
        assert!(
            c.contains("unknown outcome") && c.contains("certs resolve"),
            "{c}"
        );
    }
}

#[tokio::test]
async fn toggling_a_renew_request_renews_once() {
    for flavor in FLAVORS {
        let (env, jira) = setup_full(flavor, ScmSimConfig::default(), "", "").await;
        let d = daemon(&env);
        let id = issue_with_certificate(&env, &jira, &d, 300).await;
        jira.set_field("CERT-1", "Certificate ID", &id);
        jira.person_transitions("CERT-1", "Enroll Certificate");
        jira.person_transitions("CERT-1", "Request Failed");
        // Three requests in a row, each polled until the issue has left the status again.
        for _ in 0..3 {
            jira.person_transitions("CERT-1", "Renew Certificate");
            d.settle().await;
            d.settle().await;
        }
        assert_eq!(
            env.sim.billable_total(),
            1,
            "{flavor:?}: one renewal for three requests"
        );
        let issue = jira.issue("CERT-1").unwrap();
        assert!(
            issue
                .comments
                .iter()
                .any(|c| c.contains("min_renewal_interval_hours")),
            "{flavor:?}: {:?}",
            issue.comments
        );
    }
}

#[tokio::test]
async fn a_profile_outside_the_allowed_list_is_refused_without_naming_others() {
    for flavor in FLAVORS {
        let (env, jira) = setup_full(
            flavor,
            ScmSimConfig::default(),
            "profiles = [\"default\"]",
            "",
        )
        .await;
        // A second profile, configured but not for Jira.
        env.profile("internal-ca", "");
        let d = daemon(&env);
        jira.add_certificate_issue("CERT-1", "x", "internal-ca", &csr_pem("a.example.com"));
        jira.person_transitions("CERT-1", "Enroll Certificate");
        d.settle().await;
        assert_eq!(enroll_posts(&env), 0, "{flavor:?}");
        let c = &jira.issue("CERT-1").unwrap().comments[0];
        assert!(c.contains("may not be used for requests from Jira"), "{c}");
        assert!(!c.contains("default"), "names no other profile: {c}");
    }
}

#[tokio::test]
async fn a_domain_outside_allowed_domains_is_refused_before_scm() {
    for flavor in FLAVORS {
        let (env, jira) = setup_full(
            flavor,
            ScmSimConfig::default(),
            "",
            "allowed_domains = [\"example.com\", \"*.example.com\"]",
        )
        .await;
        let d = daemon(&env);
        jira.add_certificate_issue("CERT-1", "x", "default", &csr_pem("www.google.com"));
        jira.add_certificate_issue("CERT-2", "x", "default", &csr_pem("shop.example.com"));
        for k in ["CERT-1", "CERT-2"] {
            jira.person_transitions(k, "Enroll Certificate");
        }
        d.settle().await;
        assert_eq!(enroll_posts(&env), 1, "{flavor:?}: only the allowed one");
        let c = &jira.issue("CERT-1").unwrap().comments[0];
        assert!(
            c.contains("www.google.com") && c.contains("allowed_domains"),
            "{c}"
        );
        assert_eq!(jira.issue("CERT-2").unwrap().status, "Certificate Enrolled");
    }
}

/// A CSR for a new key with these subject attributes and subjectAltNames.
fn crafted_csr(dn: Vec<(rcgen::DnType, rcgen::DnValue)>, sans: Vec<rcgen::SanType>) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    for (t, v) in dn {
        p.distinguished_name.push(t, v);
    }
    p.subject_alt_names = sans;
    p.serialize_request(&key).unwrap().pem().unwrap()
}

/// Issue #23: names `allowed_domains` could not see were enrolled (and billed): a CN in
/// BMPString, a second CN, an IP or e-mail SAN beside an allowed name. Each is refused before
/// SCM, with a comment that says why.
#[tokio::test]
async fn names_allowed_domains_cannot_check_are_refused_before_scm() {
    use rcgen::{DnType, DnValue, SanType};
    let allowed = || SanType::DnsName("www.example.com".try_into().unwrap());
    let cn = || (DnType::CommonName, DnValue::from("www.example.com"));
    for flavor in FLAVORS {
        let (env, jira) = setup_full(
            flavor,
            ScmSimConfig::default(),
            "",
            "allowed_domains = [\"example.com\", \"*.example.com\"]",
        )
        .await;
        let d = daemon(&env);
        let cases = [
            (
                crafted_csr(
                    vec![(
                        DnType::CommonName,
                        DnValue::BmpString("evil.attacker.com".try_into().unwrap()),
                    )],
                    vec![allowed()],
                ),
                "not a plain string",
            ),
            (
                crafted_csr(
                    vec![
                        cn(),
                        (
                            DnType::CustomDnType(vec![2, 5, 4, 3]),
                            "evil.attacker.com".into(),
                        ),
                    ],
                    vec![allowed()],
                ),
                "2 common names",
            ),
            (
                crafted_csr(
                    vec![cn()],
                    vec![allowed(), SanType::IpAddress([203, 0, 113, 7].into())],
                ),
                "an IP address",
            ),
            (
                crafted_csr(
                    vec![cn()],
                    vec![
                        allowed(),
                        SanType::Rfc822Name("ceo@attacker.com".try_into().unwrap()),
                    ],
                ),
                "an e-mail address",
            ),
        ];
        for (n, (csr, _)) in cases.iter().enumerate() {
            let k = format!("CERT-{}", n + 1);
            jira.add_certificate_issue(&k, "x", "default", csr);
            jira.person_transitions(&k, "Enroll Certificate");
        }
        d.settle().await;
        assert_eq!(env.sim.billable_total(), 0, "{flavor:?}: nothing billed");
        assert_eq!(enroll_posts(&env), 0, "{flavor:?}: nothing sent");
        for (n, (_, why)) in cases.iter().enumerate() {
            let issue = jira.issue(&format!("CERT-{}", n + 1)).unwrap();
            let c = issue.comments.first().map(String::as_str).unwrap_or("");
            assert!(
                c.contains("invalid CSR")
                    && c.contains(why)
                    && c.contains("Nothing was sent to SCM"),
                "{flavor:?} CERT-{}: {c:?}",
                n + 1
            );
            assert_eq!(issue.status, "Request Failed", "{flavor:?} CERT-{}", n + 1);
        }
    }
}

#[tokio::test]
async fn the_daily_cap_holds_across_a_restart() {
    for flavor in FLAVORS {
        daily_cap(flavor).await;
    }
}

async fn daily_cap(flavor: JiraFlavor) {
    let (env, jira) = setup_full(
        flavor,
        ScmSimConfig::default(),
        "max_enrollments_per_day = 2",
        "",
    )
    .await;
    for i in 1..=3 {
        let k = format!("CERT-{i}");
        jira.add_certificate_issue(&k, "x", "default", &csr_pem(&format!("h{i}.example.com")));
        jira.person_transitions(&k, "Enroll Certificate");
    }
    {
        let d = daemon(&env);
        d.settle().await;
    }
    assert_eq!(enroll_posts(&env), 2);
    // A restart: a new engine over the same state. The cap is persisted.
    let d = daemon(&env);
    d.settle().await;
    d.settle().await;
    assert_eq!(enroll_posts(&env), 2, "the restart did not reset the cap");
    let waiting: Vec<String> = (1..=3)
        .map(|i| format!("CERT-{i}"))
        .filter(|k| jira.issue(k).unwrap().status == "Enrollment Requested")
        .collect();
    assert_eq!(waiting.len(), 1);
    let comments = jira.issue(&waiting[0]).unwrap().comments;
    assert_eq!(comments.len(), 1, "told once: {comments:?}");
    assert!(
        comments[0].contains("max_enrollments_per_day = 2") && comments[0].contains("after"),
        "{comments:?}"
    );
}

#[tokio::test]
async fn one_malformed_or_oversized_issue_does_not_block_the_others() {
    for flavor in FLAVORS {
        let (env, jira) = setup_full(flavor, ScmSimConfig::default(), "", "").await;
        let d = daemon(&env);
        // 22 issues with a 32,767-character garbage CSR: over 4 MiB if fetched in one page.
        let garbage = "A".repeat(32_767);
        for i in 0..22 {
            let k = format!("CERT-{}", 100 + i);
            jira.add_certificate_issue(&k, "junk", "default", &garbage);
            jira.person_transitions(&k, "Enroll Certificate");
        }
        // One issue whose `fields` is not an object at all.
        jira.add_certificate_issue("CERT-2", "broken", "default", &csr_pem("b.example.com"));
        jira.person_transitions("CERT-2", "Enroll Certificate");
        jira.corrupt_fields("CERT-2", serde_json::json!("garbage"));
        // And the valid one.
        jira.add_certificate_issue("CERT-1", "good", "default", &csr_pem("a.example.com"));
        jira.person_transitions("CERT-1", "Enroll Certificate");
        d.settle().await;
        assert_eq!(
            jira.issue("CERT-1").unwrap().status,
            "Certificate Enrolled",
            "{flavor:?}"
        );
        assert_eq!(enroll_posts(&env), 1, "{flavor:?}");
        // The garbage ones are refused (invalid CSR), each told once; the broken one skipped.
        assert_eq!(jira.issue("CERT-100").unwrap().comments.len(), 1);
        assert!(jira.issue("CERT-2").unwrap().comments.is_empty());
    }
}

#[tokio::test]
async fn a_forged_newline_in_the_profile_field_stays_on_one_log_line() {
    let (env, jira) = setup_full(JiraFlavor::Cloud, ScmSimConfig::default(), "", "").await;
    let forged =
        "web\n2026-12-01T00:00:00.000000Z  INFO sectigo_engine: FORGED renewed everything\u{1b}[2J";
    jira.add_certificate_issue("CERT-1", "x", forged, &csr_pem("a.example.com"));
    jira.person_transitions("CERT-1", "Enroll Certificate");
    let dir = env.path().to_path_buf();
    // Off the test's runtime: the simulators answer on it.
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
    let hits: Vec<&str> = log.lines().filter(|l| l.contains("FORGED")).collect();
    assert!(!hits.is_empty(), "the request was logged: {log}");
    for l in &hits {
        assert!(
            !l.starts_with("2026-12-01T00:00:00.000000Z"),
            "forged line: {l}"
        );
        assert!(l.contains("\\n"), "escaped: {l}");
    }
    assert!(
        !log.contains('\u{1b}'),
        "no terminal escape reaches the log"
    );
    assert_eq!(enroll_posts(&env), 0);
}

#[tokio::test]
async fn an_enrollment_waiting_for_approval_is_reported_stalled_once() {
    let (env, jira) = setup_full(
        JiraFlavor::Cloud,
        ScmSimConfig {
            approval_required: true,
            ..Default::default()
        },
        "",
        "",
    )
    .await;
    let d = daemon(&env);
    jira.add_certificate_issue("CERT-1", "x", "default", &csr_pem("a.example.com"));
    jira.person_transitions("CERT-1", "Enroll Certificate");
    d.settle().await;
    assert_eq!(enroll_posts(&env), 1);
    let waiting = env.sim.awaiting_approval();
    assert_eq!(waiting.len(), 1);
    env.advance(chrono::Duration::hours(25));
    for _ in 0..3 {
        d.engine.requests().issue_work().await.unwrap();
        d.deliver().await;
    }
    let rec = d
        .engine
        .requests()
        .issue_record(&crate::common::ik("CERT-1"))
        .await
        .unwrap()
        .unwrap();
    assert!(rec.stall_reported.is_some());
    let stalled: Vec<String> = jira
        .issue("CERT-1")
        .unwrap()
        .comments
        .into_iter()
        .filter(|c| c.contains("is stalled"))
        .collect();
    assert_eq!(stalled.len(), 1, "told once: {stalled:?}");
    assert!(stalled[0].contains("Requested"), "{stalled:?}");
    // Approved in SCM: collected and attached.
    env.sim.approve(&waiting[0]);
    d.settle().await;
    assert_eq!(jira.issue("CERT-1").unwrap().status, "Certificate Enrolled");
    assert_eq!(enroll_posts(&env), 1);
}
