//! Contract tests: the requests the SCM client sends are valid against Sectigo's own OpenAPI
//! file (`shared/contracts/scm/scm-rest-enrollment-api-25.11.openapi.json`), served by Prism
//! 5.14.2 with `--errors`, and so are the Admin API client's (`scm-admin-ssl-25.9.2.prism.json`,
//! `PRISM_SCM_ADMIN_URL`). `.ci/run` starts Prism and runs these with the URLs set:
//!
//!     PRISM_SCM_URL=http://127.0.0.1:4020 PRISM_SCM_ADMIN_URL=http://127.0.0.1:4021 \
//!       cargo test --test it -- --ignored contract::
//!
//! Prism answers an invalid request with 400 and an `sl-violations` header; a valid one with
//! the spec's placeholder answer (`certId: "string"`, a PEM body of `string`).

use std::sync::Arc;
use std::time::Duration;

use sectigo_core::secret::Secret;
use sectigo_scm::{
    http_client, ClientSettings, EnrollRequest, Limits, ProfileCreds, RenewRequest, ScmClient,
    ScmError,
};
use sectigo_sim::{ScmSim, ScmSimConfig};

fn prism_url() -> String {
    std::env::var("PRISM_SCM_URL")
        .expect("PRISM_SCM_URL: the Prism mock of the SCM REST Enrollment API (see .ci/run)")
}

/// A client whose API calls go to Prism; tokens come from the simulator (Prism has no token
/// endpoint: it only checks that a Bearer token is present).
async fn client() -> (ScmClient, ScmSim) {
    let sim = ScmSim::start(ScmSimConfig::default()).await.unwrap();
    let s = ClientSettings {
        timeout: Duration::from_secs(10),
        retry_max: Duration::from_secs(1),
        ca_bundle: None,
        clock: sectigo_core::clock::system(),
        interactive: false,
    };
    let creds = ProfileCreds {
        profile: "contract".parse().unwrap(),
        scm_url: prism_url(),
        token_url: sim.token_url(),
        client_id: "sim-client".into(),
        client_secret: Secret::new("sim-secret"),
        client_secret_file: None,
    };
    (
        ScmClient::new(
            http_client(&s).unwrap(),
            creds,
            s,
            Arc::new(Limits::new(4, 50.0)),
        ),
        sim,
    )
}

/// The request passed validation: anything but Prism's 400/401/422 refusal.
fn accepted<T: std::fmt::Debug>(what: &str, r: Result<T, ScmError>) {
    match r {
        Ok(_) => {}
        // Prism's placeholder bodies are not certificates: a 200 we could not parse.
        Err(ScmError::Malformed { status: 200, .. }) => {}
        Err(e) => panic!("{what}: Prism rejected the request: {e}"),
    }
}

fn csr() -> String {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["contract.example.com".into()]).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "contract.example.com");
    let der = p.serialize_request(&key).unwrap().der().to_vec();
    base64::engine::general_purpose::STANDARD.encode(der)
}

#[tokio::test]
#[ignore = "needs Prism: run by .ci/run"]
async fn scm_requests_match_the_vendor_spec() {
    let (c, _sim) = client().await;
    accepted("download", c.download("12345").await);
    accepted("status", c.status("12345").await);
    let mut custom = serde_json::Map::new();
    custom.insert("Cost Center".parse().unwrap(), "IT-42".into());
    let renew = RenewRequest {
        profile_id: Some(1234),
        custom_fields: custom.clone(),
        comments: "renewed by sectigo-connector".into(),
        csr: None,
    };
    accepted("renew", c.renew("12345", &renew).await);
    // key_rotation = "new": the renewal carries a CSR for a fresh key.
    let (_, new_key_csr) = sectigo_core::x509::keygen::key_and_csr(
        sectigo_core::x509::keygen::KeyType::EcP256,
        "www.example.com",
        &["www.example.com".into()],
    )
    .unwrap();
    let renew_csr = RenewRequest {
        profile_id: Some(1234),
        custom_fields: Default::default(),
        comments: String::new(),
        csr: Some(new_key_csr),
    };
    accepted(
        "renew with a new key's CSR",
        c.renew("12345", &renew_csr).await,
    );
    let renew_min = RenewRequest {
        profile_id: Some(1),
        custom_fields: Default::default(),
        comments: String::new(),
        csr: None,
    };
    accepted(
        "renew, no comments or custom fields",
        c.renew("12345", &renew_min).await,
    );
    let enroll = EnrollRequest {
        csr: csr(),
        subj_alt_names: vec!["www.contract.example.com".into()],
        comments: "from Jira CERT-1".into(),
        custom_fields: custom,
    };
    accepted("enroll", c.enroll(&enroll).await);
    accepted("replace", c.replace("12345", &csr(), "rekey").await);
    accepted(
        "revoke",
        c.revoke("12345", "superseded by renewal", 4).await,
    );
}

/// Sectigo's 25.11 schema marks `profileId` required on renew, while its description says it
/// is optional when the REST account has one profile. The connector sends it only when the
/// profile sets `scm_profile_id`. This test pins that known gap: if a future spec relaxes it,
/// it fails and the note in README.md should go.
#[tokio::test]
#[ignore = "needs Prism: run by .ci/run"]
async fn renew_without_profile_id_is_the_known_spec_gap() {
    let (c, _sim) = client().await;
    let r = c.renew("12345", &RenewRequest::default()).await;
    match r {
        // A 400 with an error body: on a renew, a refusal for the operator to fix.
        Err(ScmError::Refused { call: "renew", .. }) => {}
        other => panic!("expected Prism to refuse a renew without profileId, got {other:?}"),
    }
}

/// The Jira client's requests (comment, comments list, transitions list, transition,
/// attachment, attachment list) against Atlassian's own spec for one flavour.
async fn jira_requests_match(
    flavor: sectigo_core::config::JiraFlavor,
    url: String,
    email: Option<&str>,
) {
    use sectigo_jira::{JiraClient, JiraError};
    let cfg = sectigo_core::config::JiraConfig {
        url,
        flavor,
        email: email.map(str::to_string),
        token: Secret::new("contract-token"),
        token_from: sectigo_core::config::SecretFrom::Inline,
        transitions: Default::default(),
        timeout_secs: 20,
        workflow: None,
        token_readable_by_others: None,
    };
    let c = JiraClient::new(&cfg, sectigo_core::clock::system()).unwrap();
    // Passed: a 2xx, or a 2xx whose placeholder body is not what real Jira returns.
    fn ok<T: std::fmt::Debug>(what: &str, r: Result<T, JiraError>) {
        match r {
            Ok(_) => {}
            Err(JiraError::Transient { what: w, .. }) if w.contains("not the expected JSON") => {}
            Err(e) => panic!("{what}: {e}"),
        }
    }
    let text = "Certificate renewed.\nOld certificate: 1\nNew certificate: 2\n\n[sectigo-connector renewed:1:2026-12-01T00:00:00Z]";
    ok("add comment", c.add_comment("CERT-1", text).await);
    ok("list comments", c.comments("CERT-1").await);
    ok("list transitions", c.transitions("CERT-1").await);
    ok("transition", c.transition("CERT-1", "31").await);
    // Known gap of both specs: the multipart body is typed `array` (Cloud) or `string` (Data
    // Center), which no multipart form can satisfy. Pin it: the body schema is the only
    // complaint (path, method, authentication and headers pass).
    let pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    match c.attach("CERT-1", "www.example.com-1002.pem", pem).await {
        Err(JiraError::Permanent { status: 422, what }) => {
            assert!(
                what.ends_with("Request body must be array")
                    || what.ends_with("Request body must be string"),
                "attach: {what}"
            );
        }
        other => panic!("attach: the spec gap is gone? {other:?} (update this test and README.md)"),
    }
    ok("list attachments", c.attachment_names("CERT-1").await);
    // The workflow's requests: JQL search (Cloud /search/jql, DC /search), the field list,
    // and setting the summary and the certificate id field.
    let fields = vec![
        "summary".to_string(),
        "status".to_string(),
        "customfield_10101".to_string(),
    ];
    ok(
        "search",
        c.search(
            "project = CERT AND issuetype = Certificate AND status = \"Enrollment Requested\"",
            &fields,
            100,
        )
        .await,
    );
    ok("field list", c.fields().await);
    ok("the authenticated user", c.myself().await);
    let mut edit = serde_json::Map::new();
    edit.insert(
        "summary".into(),
        "Certificate enrolled:www.example.com".into(),
    );
    edit.insert("customfield_10103".parse().unwrap(), "1002".into());
    match flavor {
        sectigo_core::config::JiraFlavor::Cloud => ok("edit", c.edit("CERT-1", edit).await),
        // Known gap of the Data Center spec: it types every value under `fields` as an object,
        // so a text field's string value (what Jira takes, per its own REST examples) cannot
        // validate. Pin it, and show that the same request with an object value passes: the
        // value's type is the only complaint.
        sectigo_core::config::JiraFlavor::Datacenter => {
            match c.edit("CERT-1", edit).await {
                Err(JiraError::Permanent { status: 400 | 422, .. }) => {}
                other => panic!("edit: the Data Center spec gap is gone? {other:?} (update this test and README.md)"),
            }
            let mut rb = reqwest::Client::new()
                .put(format!("{}/rest/api/2/issue/CERT-1", cfg.url))
                .json(&serde_json::json!({"fields": {"summary": {"value": "x"}}}));
            rb = match email {
                Some(e) => rb.basic_auth(e, Some("contract-token")),
                None => rb.bearer_auth("contract-token"),
            };
            let status = rb.send().await.unwrap().status();
            assert!(status.is_success(), "edit with an object value: {status}");
        }
    }
}

#[tokio::test]
#[ignore = "needs Prism: run by .ci/run"]
async fn jira_cloud_requests_match_the_vendor_spec() {
    let url = std::env::var("PRISM_JIRA_CLOUD_URL").expect("PRISM_JIRA_CLOUD_URL");
    jira_requests_match(
        sectigo_core::config::JiraFlavor::Cloud,
        url,
        Some("bot@example.com"),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs Prism: run by .ci/run"]
async fn jira_data_center_requests_match_the_vendor_spec() {
    let url = std::env::var("PRISM_JIRA_DC_URL").expect("PRISM_JIRA_DC_URL");
    jira_requests_match(
        sectigo_core::config::JiraFlavor::Datacenter,
        url.clone(),
        None,
    )
    .await;
    jira_requests_match(
        sectigo_core::config::JiraFlavor::Datacenter,
        url,
        Some("bot"),
    )
    .await;
}

/// A malformed comment body is refused by the specs, so the tests above can fail.
#[tokio::test]
#[ignore = "needs Prism: run by .ci/run"]
async fn prism_does_refuse_a_bad_jira_request() {
    let url = std::env::var("PRISM_JIRA_DC_URL").expect("PRISM_JIRA_DC_URL");
    let r = reqwest::Client::new()
        .post(format!("{url}/rest/api/2/issue/CERT-1/transitions"))
        .bearer_auth("contract-token")
        .json(&serde_json::json!({"transition": {"id": 31}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        400,
        "a numeric transition id is refused (Data Center spec)"
    );
}

/// SCM's Admin API (`scm-admin-ssl-25.9.2.prism.json`, served by Prism with `--errors`):
/// `PRISM_SCM_ADMIN_URL`.
fn prism_admin_url() -> String {
    std::env::var("PRISM_SCM_ADMIN_URL")
        .expect("PRISM_SCM_ADMIN_URL: the Prism mock of SCM's Admin API (see .ci/run)")
}

/// An Admin API client whose calls go to Prism; its tokens come from the simulator's token
/// endpoint (an admin account's).
async fn admin_client() -> (sectigo_scm::admin::AdminClient, ScmSim) {
    let sim = ScmSim::start(ScmSimConfig::default()).await.unwrap();
    let s = ClientSettings {
        timeout: Duration::from_secs(10),
        retry_max: Duration::from_secs(1),
        ca_bundle: None,
        clock: sectigo_core::clock::system(),
        interactive: false,
    };
    let creds = sectigo_scm::admin::AdminCreds {
        profile: "contract".into(),
        url: prism_admin_url(),
        token_url: sim.token_url(),
        client_id: "sim-admin".into(),
        client_secret: Secret::new("sim-admin-secret"),
        client_secret_file: None,
    };
    let c = sectigo_scm::admin::AdminClient::new(
        http_client(&s).unwrap(),
        creds,
        s,
        Arc::new(Limits::new(4, 50.0)),
    );
    (c, sim)
}

/// Every Admin API request the client sends (the list with each filter the daemon uses, alone
/// and together, and paging; the details) passes the vendor's spec, and the client reads the
/// answers Prism builds from the spec's schemas.
#[tokio::test]
#[ignore = "needs Prism: run by .ci/run"]
async fn admin_requests_match_the_vendor_spec() {
    use sectigo_scm::admin::{CertStatus, ListFilter, MAX_PAGE_SIZE, REQUESTED_VIA};
    let (c, _sim) = admin_client().await;
    let mut filters = vec![
        ListFilter::default(),
        ListFilter {
            common_name: Some("*.shop example.com".into()),
            ..Default::default()
        },
        ListFilter {
            ssl_type_id: Some(1009),
            ..Default::default()
        },
        ListFilter {
            org_id: Some(99),
            ..Default::default()
        },
        ListFilter {
            common_name: Some("www.example.com".into()),
            status: Some(CertStatus::Issued),
            ssl_type_id: Some(1),
            org_id: Some(1),
            requested_via: Some("REST API".into()),
        },
    ];
    filters.extend(CertStatus::ALL.into_iter().map(|s| ListFilter {
        status: Some(s),
        ..Default::default()
    }));
    filters.extend(REQUESTED_VIA.iter().map(|v| ListFilter {
        requested_via: Some(v.to_string()),
        ..Default::default()
    }));
    for f in &filters {
        for (position, size) in [(0, MAX_PAGE_SIZE), (400, 200), (7, 1), (0, 100_000)] {
            match c.list(f, position, size).await {
                Ok(page) => assert_eq!(page.total, Some(1), "{f:?}: Prism's X-Total-Count"),
                Err(e) => panic!("list {f:?} at {position}/{size}: Prism refused: {e}"),
            }
        }
        let all = c
            .list_all(f)
            .await
            .unwrap_or_else(|e| panic!("pages of {f:?}: {e}"));
        assert_eq!(all.len(), 1, "{f:?}: one page, one entry, then the total");
    }
    for id in [1, 54, 12345, i64::from(i32::MAX)] {
        let d = c.details(id).await.unwrap_or_else(|e| {
            panic!("details {id}: Prism refused, or its answer was not read: {e}")
        });
        // The schema's placeholders: date-times, a free-text status.
        assert!(d.expires.is_some() && d.renewed_date.is_some(), "{d:?}");
    }
    // find_by_marker's requests (a list by common name; Prism's one entry has another name).
    let found = c.find_by_marker("r-0a1b2c3d4e", "www.example.com").await;
    assert!(found.is_ok_and(|v| v.is_empty()));
}

/// Prism does refuse what the spec does not allow, so the test above can fail: a status
/// outside the spec's enum, an id below 1, a page over 200 (the client never asks for one).
#[tokio::test]
#[ignore = "needs Prism: run by .ci/run"]
async fn prism_does_refuse_a_bad_admin_request() {
    use sectigo_scm::admin::{CertStatus, ListFilter};
    let (c, _sim) = admin_client().await;
    let bogus = ListFilter {
        status: Some(CertStatus::Other("Bogus".into())),
        ..Default::default()
    };
    assert!(
        matches!(
            c.list(&bogus, 0, 10).await,
            Err(ScmError::Permanent { status: 400, .. })
        ),
        "a status outside the spec's enum"
    );
    assert!(matches!(
        c.details(0).await,
        Err(ScmError::Permanent { status: 400, .. })
    ));
    let r = reqwest::Client::new()
        .get(format!("{}/api/ssl/v1?size=201", prism_admin_url()))
        .bearer_auth("contract-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "size over the spec's maximum");
}
