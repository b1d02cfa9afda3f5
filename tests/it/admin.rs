//! The Admin API client (`sectigo_scm::admin`) against the simulator's Admin API: paging,
//! filters, details after REST, web UI and auto renewals, the request marker, both date forms,
//! separate accounts and tokens, retries and the per-host request limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as CDuration, NaiveDate};
use sectigo_core::clock::{Clock, ManualClock};
use sectigo_core::secret::Secret;
use sectigo_scm::admin::{
    AdminClient, AdminCreds, CertStatus, ListFilter, ScmDate, MAX_PAGE_SIZE, REQUESTED_VIA_REST_API,
};
use sectigo_scm::{
    comments_with_request, http_client, ClientSettings, Limits, ProfileCreds, RenewRequest,
    ScmClient, ScmError,
};
use sectigo_sim::{AdminDateFormat, AdminFields, ScmSim, ScmSimConfig, Scripted};

fn settings(retry_max: u64, clock: &ManualClock) -> ClientSettings {
    ClientSettings {
        timeout: Duration::from_secs(5),
        retry_max: Duration::from_secs(retry_max),
        ca_bundle: None,
        clock: clock.shared(),
        interactive: false,
    }
}

/// The simulator, on a clock the test moves.
async fn sim_with(clock: &ManualClock, f: impl FnOnce(&mut ScmSimConfig)) -> ScmSim {
    let mut cfg = ScmSimConfig {
        clock: clock.shared(),
        ..Default::default()
    };
    f(&mut cfg);
    ScmSim::start(cfg).await.unwrap()
}

async fn sim(clock: &ManualClock) -> ScmSim {
    sim_with(clock, |_| {}).await
}

fn admin_with(
    sim: &ScmSim,
    clock: &ManualClock,
    (id, secret): (&str, &str),
    limits: Arc<Limits>,
    retry_max: u64,
) -> AdminClient {
    let s = settings(retry_max, clock);
    let creds = AdminCreds {
        profile: "web".into(),
        url: sim.admin_url(),
        token_url: sim.token_url(),
        client_id: id.into(),
        client_secret: Secret::new(secret),
        client_secret_file: None,
    };
    AdminClient::new(http_client(&s).unwrap(), creds, s, limits)
}

fn admin(sim: &ScmSim, clock: &ManualClock) -> AdminClient {
    admin_with(
        sim,
        clock,
        ("sim-admin", "sim-admin-secret"),
        Arc::new(Limits::new(4, 100.0)),
        10,
    )
}

fn rest(sim: &ScmSim, limits: Arc<Limits>) -> ScmClient {
    let s = settings(10, &ManualClock::new());
    let creds = ProfileCreds {
        profile: "web".into(),
        scm_url: sim.url(),
        token_url: sim.token_url(),
        client_id: "sim-client".into(),
        client_secret: Secret::new("sim-secret"),
        client_secret_file: None,
    };
    ScmClient::new(http_client(&s).unwrap(), creds, s, limits)
}

/// An issued certificate expiring in `days`.
fn cert(sim: &ScmSim, clock: &ManualClock, cn: &str, days: i64) -> String {
    let now = clock.now();
    sim.add_certificate(
        cn,
        &[cn, &format!("www.{cn}")],
        now - CDuration::days(300),
        now + CDuration::days(days),
    )
    .to_string()
}

fn list_requests(sim: &ScmSim) -> Vec<String> {
    sim.admin_requests()
        .into_iter()
        .filter(|r| r.path == "/api/ssl/v1")
        .map(|r| r.path)
        .collect()
}

#[tokio::test]
async fn paging_gives_every_certificate_once_and_stops_at_the_total() {
    let clock = ManualClock::new();
    let sim = sim(&clock).await;
    let mut ids: Vec<i64> = (0..450)
        .map(|i| cert(&sim, &clock, &format!("p{i}.example.com"), 60))
        .map(|id| id.parse().unwrap())
        .collect();
    let c = admin(&sim, &clock);

    let first = c.list(&ListFilter::default(), 0, 200).await.unwrap();
    assert_eq!(first.items.len(), 200);
    assert_eq!(first.total, Some(450));
    // Asking for more than the spec's maximum asks for the maximum.
    let big = c.list(&ListFilter::default(), 440, 5000).await.unwrap();
    assert_eq!(big.items.len(), 10);

    let before = list_requests(&sim).len();
    let mut pages = c.pages(ListFilter::default(), MAX_PAGE_SIZE);
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    while let Some(page) = pages.next_page().await.unwrap() {
        sizes.push(page.len());
        got.extend(page.into_iter().map(|s| s.ssl_id));
    }
    assert_eq!(sizes, vec![200, 200, 50]);
    assert_eq!(pages.total(), Some(450));
    // Three pages, no fourth request past the total.
    assert_eq!(list_requests(&sim).len() - before, 3);
    let paths: Vec<String> = sim
        .admin_requests()
        .iter()
        .skip(sim.admin_requests().len() - 3)
        .map(|r| r.path.clone())
        .collect();
    assert!(paths.iter().all(|p| p == "/api/ssl/v1"), "{paths:?}");
    ids.sort_unstable();
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ids, "each certificate exactly once");
    assert_eq!(c.list_all(&ListFilter::default()).await.unwrap().len(), 450);
    // The enrollment host saw none of it, and nothing was billed.
    assert!(sim
        .requests()
        .iter()
        .all(|r| !r.path.starts_with("/api/ssl")));
    assert_eq!(sim.billable_total(), 0);
}

#[tokio::test]
async fn a_list_that_shifts_while_it_is_read_still_gives_each_once() {
    let clock = ManualClock::new();
    let sim = sim(&clock).await;
    for i in 0..5 {
        cert(&sim, &clock, &format!("s{i}.example.com"), 60);
    }
    let c = admin(&sim, &clock);
    let mut pages = c.pages(ListFilter::default(), 2);
    let first = pages.next_page().await.unwrap().unwrap();
    // A certificate added meanwhile makes the total grow: it is read too.
    let added: i64 = cert(&sim, &clock, "late.example.com", 60).parse().unwrap();
    let mut got: Vec<i64> = first.iter().map(|s| s.ssl_id).collect();
    while let Some(p) = pages.next_page().await.unwrap() {
        got.extend(p.iter().map(|s| s.ssl_id));
    }
    assert_eq!(got.len(), 6, "{got:?}");
    assert!(got.contains(&added));
    let mut dedup = got.clone();
    dedup.sort_unstable();
    dedup.dedup();
    assert_eq!(dedup.len(), got.len());
}

#[tokio::test]
async fn filters_by_name_status_profile_organisation_and_origin() {
    let clock = ManualClock::new();
    let sim = sim_with(&clock, |c| {
        c.issue_delay = Duration::from_secs(3600);
    })
    .await;
    let a = cert(&sim, &clock, "a.example.com", 60);
    let b = cert(&sim, &clock, "b.example.com", 60);
    let other_org = cert(&sim, &clock, "c.example.com", 60);
    sim.set_admin_fields(
        &other_org,
        AdminFields {
            org_id: Some(42),
            ssl_type_id: Some(7),
            requested_via: Some("Client Admin".into()),
            ..Default::default()
        },
    );
    sim.revoke_in_ui(&b);
    // A renewal through the REST API: Applied until issued (an hour here).
    let renewed = rest(&sim, Arc::new(Limits::new(4, 100.0)))
        .renew(&a, &RenewRequest::default())
        .await
        .unwrap();
    let c = admin(&sim, &clock);
    let ids = |f: ListFilter| {
        let c = &c;
        async move {
            let mut v: Vec<String> = c
                .list_all(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.ssl_id.to_string())
                .collect();
            v.sort();
            v
        }
    };
    let by_cn = ids(ListFilter {
        common_name: Some("A.example.com".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_cn, vec![a.clone(), renewed.to_string()]);
    let status = |s: CertStatus| ListFilter {
        status: Some(s),
        ..Default::default()
    };
    assert_eq!(ids(status(CertStatus::Revoked)).await, vec![b.clone()]);
    assert_eq!(
        ids(status(CertStatus::Applied)).await,
        vec![renewed.clone()]
    );
    assert_eq!(
        ids(status(CertStatus::Issued)).await,
        vec![a.clone(), other_org.clone()]
    );
    let org = ListFilter {
        org_id: Some(42),
        ..Default::default()
    };
    assert_eq!(ids(org).await, vec![other_org.clone()]);
    let ty = ListFilter {
        ssl_type_id: Some(7),
        ..Default::default()
    };
    assert_eq!(ids(ty).await, vec![other_org.clone()]);
    let via = ListFilter {
        requested_via: Some(REQUESTED_VIA_REST_API.into()),
        ..Default::default()
    };
    assert_eq!(
        ids(via).await,
        vec![a.clone(), b.clone(), renewed.to_string()]
    );
    // All together: the default profile's organisation and type, issued, by the REST API.
    let all = ListFilter {
        common_name: Some("a.example.com".into()),
        status: Some(CertStatus::Issued),
        ssl_type_id: Some(1),
        org_id: Some(1),
        requested_via: Some(REQUESTED_VIA_REST_API.into()),
    };
    assert_eq!(ids(all).await, vec![a.clone()]);
    // Once issued, the renewal is Issued too; past its end, Expired.
    clock.advance(CDuration::hours(2));
    assert_eq!(
        ids(status(CertStatus::Issued)).await,
        vec![a.clone(), other_org.clone(), renewed.to_string()]
    );
    clock.advance(CDuration::days(61));
    assert_eq!(
        ids(status(CertStatus::Expired)).await,
        vec![a.clone(), other_org.clone()]
    );
}

#[tokio::test]
async fn details_after_a_rest_renewal_show_renewed_and_the_request_marker() {
    let clock = ManualClock::new();
    let sim = sim(&clock).await;
    let old = cert(&sim, &clock, "shop.example.com", 20);
    let old_id: i64 = old.parse().unwrap();
    let c = admin(&sim, &clock);
    let before = c.details(old_id).await.unwrap();
    assert!(!before.renewed && before.renewed_date.is_none());
    assert_eq!(before.status, CertStatus::Issued);
    assert_eq!(
        before.requested_via.as_deref(),
        Some(REQUESTED_VIA_REST_API)
    );

    clock.advance(CDuration::minutes(5));
    let renew_at = clock.now();
    let req = RenewRequest {
        profile_id: Some(9),
        comments: comments_with_request("renewed by cron", "r-0a1b2c3d4e"),
        ..Default::default()
    };
    let new = rest(&sim, Arc::new(Limits::new(4, 100.0)))
        .renew(&old, &req)
        .await
        .unwrap();

    let o = c.details(old_id).await.unwrap();
    assert!(o.renewed);
    assert_eq!(o.renewed_date, Some(ScmDate::At(renew_at)));
    let n = c.details(new.parse().unwrap()).await.unwrap();
    assert!(!n.renewed);
    assert!(n.carries_request("r-0a1b2c3d4e"), "{:?}", n.comments);
    assert_eq!(n.request_ids(), vec!["r-0a1b2c3d4e"]);
    assert_eq!(n.comments, req.comments);
    assert_eq!(n.common_name, "shop.example.com");
    assert_eq!(
        n.subject_alternative_names,
        vec!["shop.example.com", "www.shop.example.com"]
    );
    assert_eq!(n.ssl_type_id(), Some(9), "the renew's profileId");
    assert_eq!(n.org_id, Some(1));
    assert_eq!(n.status, CertStatus::Issued);
    assert!(n.expires.unwrap().earliest() > o.expires.unwrap().earliest());

    // The request's certificate is found by its marker, and only by its own.
    let found = c
        .find_by_marker("r-0a1b2c3d4e", "shop.example.com")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].ssl_id.to_string(), new);
    assert!(c
        .find_by_marker("r-0a1b2c3d4f", "shop.example.com")
        .await
        .unwrap()
        .is_empty());
    // Reading is free.
    assert_eq!(sim.billable_total(), 1);
}

#[tokio::test]
async fn renewals_in_the_web_ui_and_by_scms_auto_renewal_are_visible() {
    let clock = ManualClock::new();
    let sim = sim(&clock).await;
    let ui = cert(&sim, &clock, "ui.example.com", 20);
    let auto = cert(&sim, &clock, "auto.example.com", 20);
    let marker = comments_with_request("", "r-1111111111");
    sim.set_admin_fields(
        &ui,
        AdminFields {
            ssl_type_id: Some(5),
            org_id: Some(3),
            comments: Some(marker.clone()),
            ..Default::default()
        },
    );
    let c = admin(&sim, &clock);
    assert!(!c
        .details(auto.parse().unwrap())
        .await
        .unwrap()
        .auto_renew_on());
    sim.set_auto_renew(&auto, true);
    let d = c.details(auto.parse().unwrap()).await.unwrap();
    assert!(d.auto_renew_on());
    assert_eq!(
        d.auto_renew.as_ref().unwrap().days_before_expiration,
        Some(30)
    );

    clock.advance(CDuration::hours(1));
    let ui_new = sim.renew_in_ui(&ui);
    let o = c.details(ui.parse().unwrap()).await.unwrap();
    assert!(o.renewed);
    assert_eq!(o.renewed_date, Some(ScmDate::At(clock.now())));
    let n = c.details(ui_new.parse().unwrap()).await.unwrap();
    assert_eq!(n.common_name, "ui.example.com");
    assert_eq!(n.subject_alternative_names, o.subject_alternative_names);
    assert_eq!((n.ssl_type_id(), n.org_id), (Some(5), Some(3)));
    assert_eq!(n.requested_via.as_deref(), Some("Client Admin"));
    assert!(
        n.request_ids().is_empty(),
        "no daemon marker: {:?}",
        n.comments
    );
    // The old certificate's marker does not make the UI's renewal the request's certificate.
    let found = c
        .find_by_marker("r-1111111111", "ui.example.com")
        .await
        .unwrap();
    assert_eq!(
        found
            .iter()
            .map(|d| d.ssl_id.to_string())
            .collect::<Vec<_>>(),
        vec![ui.clone()]
    );

    let auto_new = sim.auto_renew(&auto);
    let o = c.details(auto.parse().unwrap()).await.unwrap();
    assert!(o.renewed && o.renewed_date.is_some());
    assert!(o.auto_renew.as_ref().unwrap().succeeded());
    let n = c.details(auto_new.parse().unwrap()).await.unwrap();
    assert!(n.auto_renew_on(), "auto-renewal stays on");
    assert_eq!(n.requested_via.as_deref(), Some(REQUESTED_VIA_REST_API));
    assert!(n.request_ids().is_empty());
    // Neither is a renewal the daemon made or was billed for.
    assert_eq!(sim.billable_total(), 0);
    assert!(sim.renewals_of(&ui).is_empty());
}

#[tokio::test]
async fn dates_in_every_form_scm_writes_read_the_same() {
    let clock = ManualClock::at(
        NaiveDate::from_ymd_opt(2026, 5, 21)
            .unwrap()
            .and_hms_opt(9, 30, 0)
            .unwrap()
            .and_utc(),
    );
    let mut days = Vec::new();
    for format in [
        AdminDateFormat::Iso,
        AdminDateFormat::IsoDay,
        AdminDateFormat::MonthDayYear,
    ] {
        let sim = sim_with(&clock, |c| c.admin_dates = format).await;
        let id = cert(&sim, &clock, "d.example.com", 30);
        let c = admin(&sim, &clock);
        let d = c.details(id.parse().unwrap()).await.unwrap();
        let expires = d.expires.expect("expires");
        match format {
            AdminDateFormat::Iso => assert!(matches!(expires, ScmDate::At(_)), "{expires:?}"),
            _ => assert!(matches!(expires, ScmDate::Day(_)), "{expires:?}"),
        }
        days.push((expires.day(), d.requested.unwrap().day()));
    }
    let want = (
        NaiveDate::from_ymd_opt(2026, 6, 20).unwrap(),
        NaiveDate::from_ymd_opt(2026, 5, 21).unwrap(),
    );
    assert_eq!(days, vec![want; 3]);
}

#[tokio::test]
async fn a_wrong_admin_secret_is_an_auth_error_at_once() {
    let clock = ManualClock::new();
    let sim = sim(&clock).await;
    let id = cert(&sim, &clock, "a.example.com", 60);
    let c = admin_with(
        &sim,
        &clock,
        ("sim-admin", "wrong-ADMIN-secret"),
        Arc::new(Limits::new(4, 100.0)),
        300,
    );
    let start = Instant::now();
    let e = c.details(id.parse().unwrap()).await.unwrap_err();
    assert!(matches!(e, ScmError::Auth(_)), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "not retried for minutes: {:?}",
        start.elapsed()
    );
    let msg = e.to_string();
    assert!(
        msg.contains("invalid_client") && msg.contains("[admin] client_id"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-ADMIN-secret"), "{msg}");
    assert_eq!(
        sim.requests().len(),
        1,
        "one token request, no retries: {:?}",
        sim.requests()
    );
    assert!(sim.admin_requests().is_empty());
}

#[tokio::test]
async fn each_api_refuses_the_other_accounts_tokens() {
    let clock = ManualClock::new();
    let sim = sim(&clock).await;
    let id = cert(&sim, &clock, "a.example.com", 60);
    // The REST account's credentials on the Admin API: a token, refused there (twice: once
    // more after re-authenticating), then an error that says what to check.
    let c = admin_with(
        &sim,
        &clock,
        ("sim-client", "sim-secret"),
        Arc::new(Limits::new(4, 100.0)),
        300,
    );
    let e = c.details(id.parse().unwrap()).await.unwrap_err();
    assert!(
        matches!(&e, ScmError::Auth(m) if m.contains("Admin API") && m.contains("admin API account")),
        "{e:?}"
    );
    let statuses: Vec<u16> = sim.admin_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![401, 401]);
    assert_eq!(sim.tokens_issued(), 2);
    assert_eq!(sim.admin_tokens_issued(), 0);

    // And the other way: an admin token on the REST API, a REST token on the Admin API.
    let http = reqwest::Client::new();
    let token = |id: &str, secret: &str| {
        let http = http.clone();
        let url = sim.token_url();
        let form = [
            ("grant_type", "client_credentials".to_string()),
            ("client_id", id.to_string()),
            ("client_secret", secret.to_string()),
        ];
        async move {
            let v: serde_json::Value = http
                .post(url)
                .form(&form)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["access_token"].as_str().unwrap().to_string()
        }
    };
    let admin_token = token("sim-admin", "sim-admin-secret").await;
    let rest_token = token("sim-client", "sim-secret").await;
    let get = |url: String, t: String| {
        let http = http.clone();
        async move {
            http.get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let rest_url = format!("{}/api/v1/certificates/{id}/status", sim.url());
    let admin_url = format!("{}/api/ssl/v1/{id}", sim.admin_url());
    assert_eq!(get(rest_url.clone(), admin_token.clone()).await, 401);
    assert_eq!(get(admin_url.clone(), rest_token.clone()).await, 401);
    assert_eq!(get(rest_url, rest_token).await, 200);
    assert_eq!(get(admin_url, admin_token).await, 200);
}

#[tokio::test]
async fn the_admin_token_is_cached_and_replaced_once_when_refused() {
    let clock = ManualClock::new();
    let sim = sim_with(&clock, |c| c.token_ttl = Duration::from_secs(300)).await;
    let id: i64 = cert(&sim, &clock, "a.example.com", 60).parse().unwrap();
    let c = admin(&sim, &clock);
    for _ in 0..3 {
        c.details(id).await.unwrap();
    }
    assert_eq!(sim.admin_tokens_issued(), 1);
    // SCM's clock passes the token's end before ours (the client counts on its own clock):
    // a 401, a new token, the same request again.
    clock.advance(CDuration::seconds(301));
    c.details(id).await.unwrap();
    assert_eq!(sim.admin_tokens_issued(), 2);
    let statuses: Vec<u16> = sim.admin_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 200, 200, 401, 200]);
}

#[tokio::test]
async fn transient_answers_are_retried_honouring_retry_after() {
    let clock = ManualClock::new();
    let sim = sim(&clock).await;
    let id: i64 = cert(&sim, &clock, "a.example.com", 60).parse().unwrap();
    let c = admin(&sim, &clock);
    c.details(id).await.unwrap();
    sim.admin_script(vec![
        Scripted::TooMany(2),
        Scripted::Status(503),
        Scripted::Drop,
    ]);
    let start = Instant::now();
    let page = c.list(&ListFilter::default(), 0, 10).await.unwrap();
    assert_eq!(page.total, Some(1));
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "Retry-After honoured: {:?}",
        start.elapsed()
    );
    let statuses: Vec<u16> = sim.admin_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 429, 503, 200, 200]);
    // An id SCM does not know, and an answer that is not SCM's: not retried.
    let e = c.details(999_999).await.unwrap_err();
    assert!(
        matches!(
            e,
            ScmError::Permanent {
                status: 404,
                code: Some(-124),
                ..
            }
        ),
        "{e:?}"
    );
    sim.admin_script(vec![Scripted::Raw(
        200,
        "application/json",
        r#"{"id": 5, "expires": "next tuesday"}"#.into(),
    )]);
    let e = c.details(id).await.unwrap_err();
    assert!(
        matches!(&e, ScmError::Malformed { status: 200, what } if what.contains("expires")),
        "{e:?}"
    );
}

#[tokio::test]
async fn the_simulator_refuses_pages_over_the_specs_maximum() {
    let clock = ManualClock::new();
    let sim = sim(&clock).await;
    let http = reqwest::Client::new();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "sim-admin"),
        ("client_secret", "sim-admin-secret"),
    ];
    let v: serde_json::Value = http
        .post(sim.token_url())
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = v["access_token"].as_str().unwrap();
    for (query, want) in [
        ("size=200", 200),
        ("size=201", 400),
        ("position=-1", 400),
        ("status=Bogus", 400),
        ("requestedVia=Web%20API", 200),
        ("requestedVia=Website", 400),
        ("sslTypeId=0", 400),
        ("orgId=x", 400),
    ] {
        let r = http
            .get(format!("{}/api/ssl/v1?{query}", sim.admin_url()))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{query}");
    }
}

#[tokio::test]
async fn the_admin_hosts_request_limit_holds() {
    let clock = ManualClock::new();
    let sim = sim(&clock).await;
    let ids: Vec<i64> = (0..30)
        .map(|i| cert(&sim, &clock, &format!("r{i}.example.com"), 60))
        .map(|id| id.parse().unwrap())
        .collect();
    // One set of limits for every client, as the daemon has: each host gets its own limiter.
    let limits = Arc::new(Limits::new(3, 10.0));
    let a = Arc::new(admin_with(
        &sim,
        &clock,
        ("sim-admin", "sim-admin-secret"),
        limits.clone(),
        10,
    ));
    let r = Arc::new(rest(&sim, limits));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let a = a.clone();
        let r = r.clone();
        let id = *id;
        tasks.push(tokio::spawn(async move {
            a.details(id).await.map(|_| ())?;
            if i % 3 == 0 {
                r.status(&id.to_string()).await.map(|_| ())?;
            }
            Ok::<(), ScmError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let max_1s = sim.admin_max_requests_in(Duration::from_secs(1));
    assert!(
        max_1s <= 10,
        "rate limit exceeded on the admin host: {max_1s} in one second"
    );
    assert_eq!(sim.admin_requests().len(), 30);
    // 30 requests at 10/s take at least 2 s (the first 10 go at once).
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(sim.max_requests_in(Duration::from_secs(1)) <= 10);
}

/// A profile's `[admin]`, from its file, gives a working client.
#[tokio::test]
async fn a_client_from_a_profiles_admin_table() {
    let clock = ManualClock::new();
    let sim = sim(&clock).await;
    let id = cert(&sim, &clock, "cfg.example.com", 60);
    sim.set_admin_fields(
        &id,
        AdminFields {
            org_id: Some(8),
            ssl_type_id: Some(4),
            ..Default::default()
        },
    );
    cert(&sim, &clock, "elsewhere.example.com", 60);
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("profiles.d")).unwrap();
    std::fs::write(
        d.path().join("profiles.d/web.toml"),
        format!(
            "client_id = \"sim-client\"\nclient_secret = \"sim-secret\"\nscm_url = \"{}\"\ntoken_url = \"{}\"\nscm_profile_id = 4\n[admin]\nurl = \"{}\"\nclient_id = \"sim-admin\"\nclient_secret_file = \"web.admin.secret\"\norg_id = 8\n",
            sim.url(),
            sim.token_url(),
            sim.admin_url()
        ),
    )
    .unwrap();
    std::fs::write(
        d.path().join("profiles.d/web.admin.secret"),
        "sim-admin-secret\n",
    )
    .unwrap();
    let cfg = sectigo_core::config::Config::load(d.path()).unwrap();
    let p = &cfg.profiles["web"];
    let creds = AdminCreds::from_profile(p).unwrap();
    let s = settings(10, &clock);
    let c = AdminClient::new(
        http_client(&s).unwrap(),
        creds,
        s,
        Arc::new(Limits::new(4, 100.0)),
    );
    assert_eq!(c.profile(), "web");
    let filter = ListFilter::for_admin(p.admin.as_ref().unwrap());
    assert_eq!((filter.org_id, filter.ssl_type_id), (Some(8), Some(4)));
    let mine = c.list_all(&filter).await.unwrap();
    assert_eq!(
        mine.iter()
            .map(|s| s.ssl_id.to_string())
            .collect::<Vec<_>>(),
        vec![id]
    );
    assert_eq!(mine[0].common_name, "cfg.example.com");
}
