//! The sled store: round trips, reopening, indexes, renames, locking and schema versions.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sectigo_model::{CertOrigin, CertRecord, CertState, ProfileState};
use sectigo_state::{SledStore, Store, StoreError};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap()
}

fn rec(id: &str, profile: &str, expires_in_days: i64) -> CertRecord {
    CertRecord {
        id: id.parse().unwrap(),
        profile: profile.parse().unwrap(),
        subject_cn: format!("{id}.example.com"),
        sans: vec![format!("{id}.example.com"), "alt.example.com".into()],
        serial: "0A1B".into(),
        not_before: t0() - Duration::days(300),
        not_after: t0() + Duration::days(expires_in_days),
        state: CertState::Active,
        jira_issue: Some("CERT-1".parse().unwrap()),
        origin: CertOrigin::Imported { at: t0() },
        failures: 0,
        next_attempt: None,
        last_error: None,
        reported_no_auto_renew: None,
        stall_reported: None,
        history: vec![],
        name: None,
        deploy: None,
        scm_auto_renew: false,
    }
}

#[test]
fn round_trip_and_reopen() {
    let d = tempfile::tempdir().unwrap();
    let mut a = rec("100", "web", 10);
    a.log(t0(), "imported");
    {
        let s = SledStore::open(d.path(), 8).unwrap();
        s.put(&[a.clone(), rec("101", "web", 50)]).unwrap();
        s.put_profile_state(
            &crate::common::pn("web"),
            &ProfileState {
                client_id: "c".into(),
                scm_url: "https://x".into(),
                ..Default::default()
            },
        )
        .unwrap();
        s.flush().unwrap();
    }
    let s = SledStore::open(d.path(), 8).unwrap();
    assert_eq!(s.get(&crate::common::cid("100")).unwrap(), Some(a));
    assert_eq!(s.len().unwrap(), 2);
    assert_eq!(
        s.profile_state(&crate::common::pn("web"))
            .unwrap()
            .unwrap()
            .client_id,
        "c"
    );
    assert_eq!(s.get(&crate::common::cid("nope")).unwrap(), None);
}

#[test]
fn expiry_index_follows_state_changes() {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path(), 8).unwrap();
    // Negative and positive timestamps sort correctly, earliest first.
    let mut old = rec("1", "web", -20_000); // before 1970
    old.not_before = old.not_after - Duration::days(10);
    s.put(&[
        rec("3", "web", 30),
        rec("2", "web", 5),
        old,
        rec("4", "db", 400),
    ])
    .unwrap();
    let ids = |v: Vec<CertRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.active_expiring_before(t0() + Duration::days(31)).unwrap()),
        vec!["1", "2", "3"]
    );

    // Leaves the index when no longer active; in_flight tracks the journal.
    let mut two = s.get(&crate::common::cid("2")).unwrap().unwrap();
    two.state = CertState::RenewRequested {
        due: two.not_after,
        at: t0(),
        forced: false,
        request: None,
    };
    s.put(&[two.clone()]).unwrap();
    assert_eq!(
        ids(s.active_expiring_before(t0() + Duration::days(31)).unwrap()),
        vec!["1", "3"]
    );
    assert_eq!(ids(s.in_flight().unwrap()), vec!["2"]);
    two.state = CertState::Superseded {
        by: "9".parse().unwrap(),
        at: t0(),
    };
    s.put(&[two]).unwrap();
    assert!(s.in_flight().unwrap().is_empty());

    // A changed notAfter moves the index entry.
    let mut three = s.get(&crate::common::cid("3")).unwrap().unwrap();
    three.not_after = t0() + Duration::days(100);
    s.put(&[three]).unwrap();
    assert_eq!(
        ids(s.active_expiring_before(t0() + Duration::days(31)).unwrap()),
        vec!["1"]
    );

    assert_eq!(
        ids(s.by_profile(&crate::common::pn("db")).unwrap()),
        vec!["4"]
    );
    assert_eq!(s.by_profile(&crate::common::pn("web")).unwrap().len(), 3);
    assert_eq!(s.remove(&crate::common::cid("4")).unwrap().unwrap().id, "4");
    assert!(s.by_profile(&crate::common::pn("db")).unwrap().is_empty());
    assert!(s
        .active_expiring_before(t0() + Duration::days(1000))
        .unwrap()
        .iter()
        .all(|r| r.id != "4"));
}

#[test]
fn profile_prefixes_do_not_collide() {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path(), 8).unwrap();
    s.put(&[rec("1", "web", 10), rec("2", "web2", 10)]).unwrap();
    assert_eq!(s.by_profile(&crate::common::pn("web")).unwrap().len(), 1);
    assert_eq!(s.by_profile(&crate::common::pn("web2")).unwrap().len(), 1);
}

#[test]
fn rename_moves_certificates_and_state() {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path(), 8).unwrap();
    s.put(&[rec("1", "web", 10), rec("2", "web", 20), rec("3", "db", 20)])
        .unwrap();
    s.put_profile_state(
        &crate::common::pn("web"),
        &ProfileState {
            client_id: "c".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        s.rename_profile(&crate::common::pn("web"), &crate::common::pn("www"))
            .unwrap(),
        2
    );
    assert!(s.by_profile(&crate::common::pn("web")).unwrap().is_empty());
    assert_eq!(s.by_profile(&crate::common::pn("www")).unwrap().len(), 2);
    assert_eq!(
        s.get(&crate::common::cid("1")).unwrap().unwrap().profile,
        "www"
    );
    assert!(s
        .profile_state(&crate::common::pn("web"))
        .unwrap()
        .is_none());
    assert_eq!(
        s.profile_state(&crate::common::pn("www"))
            .unwrap()
            .unwrap()
            .client_id,
        "c"
    );
    s.put_profile_state(&crate::common::pn("db"), &ProfileState::default())
        .unwrap();
    assert!(matches!(
        s.rename_profile(&crate::common::pn("www"), &crate::common::pn("db")),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.by_profile(&crate::common::pn("www")).unwrap().len(),
        2,
        "a refused rename changes nothing"
    );
}

#[test]
fn a_second_opener_gets_a_clear_temporary_error() {
    let d = tempfile::tempdir().unwrap();
    let _held = SledStore::open(d.path(), 8).unwrap();
    // sled locks the database file per process; a second process is what operators hit.
    let exe = env!("CARGO_BIN_EXE_sectigo-connector");
    let cfg = tempfile::tempdir().unwrap();
    std::fs::write(
        cfg.path().join("connector.toml"),
        format!(
            "[state]\ndir = {:?}\n[control]\nsocket = {:?}\n",
            d.path(),
            cfg.path().join("sock")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(exe)
        .args(["--config-dir", cfg.path().to_str().unwrap(), "status"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("in use by another process"), "{err}");
}

#[test]
fn schema_version_is_checked() {
    let d = tempfile::tempdir().unwrap();
    drop(SledStore::open(d.path(), 8).unwrap());
    {
        let db = raw_open(d.path());
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", "99")
            .unwrap();
        db.flush().unwrap();
    }
    match SledStore::open(d.path(), 8) {
        Err(StoreError::Schema { found: 99, .. }) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a store with an unknown schema"),
    }
}

#[test]
fn corrupt_record_is_an_error_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    drop(SledStore::open(d.path(), 8).unwrap());
    {
        let db = raw_open(d.path());
        db.open_tree("certs")
            .unwrap()
            .insert("7", &b"{not json"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let s = SledStore::open(d.path(), 8).unwrap();
    let e = s.get(&crate::common::cid("7")).unwrap_err();
    assert!(e.to_string().contains("corrupt record \"7\""), "{e}");
}

/// Opens the raw sled database (to damage it), waiting for the previous opener's lock.
fn raw_open(dir: &std::path::Path) -> sled::Db {
    for _ in 0..50 {
        if let Ok(db) = sled::open(dir.join("db")) {
            return db;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("cannot open {}", dir.display());
}

#[test]
fn issue_records_hold_a_csr_once_and_index_their_work() {
    use sectigo_model::{EnrollState, IssueRecord, RevokeIntent};
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), 8).unwrap();
    let mut a = IssueRecord::new(&crate::common::ik("CERT-1"));
    a.csr_sha256 = Some("ab".repeat(32));
    a.enroll = Some(EnrollState::Requested {
        profile: "p".parse().unwrap(),
        at: t0(),
        request: None,
    });
    s.commit_all(&[], &[a.clone()], &[]).unwrap();
    assert_eq!(
        s.issue_by_csr(&"ab".repeat(32)).unwrap().as_deref(),
        Some("CERT-1")
    );
    assert_eq!(s.issues_with_work().unwrap().len(), 1);

    // Another issue cannot take the same CSR; the failed commit changes nothing.
    let mut b = IssueRecord::new(&crate::common::ik("CERT-2"));
    b.csr_sha256 = a.csr_sha256.clone();
    b.enroll = Some(EnrollState::Requested {
        profile: "p".parse().unwrap(),
        at: t0(),
        request: None,
    });
    let e = s.commit_all(&[], &[b.clone()], &[]).unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("CERT-1")),
        "{e}"
    );
    assert!(s.issue(&crate::common::ik("CERT-2")).unwrap().is_none());

    // Issued: still holds the CSR, no work left. Rejected instead: the CSR is free again.
    a.enroll = Some(EnrollState::Issued {
        cert_id: "1".parse().unwrap(),
        at: t0(),
    });
    s.commit_all(&[], &[a.clone()], &[]).unwrap();
    assert!(s.issues_with_work().unwrap().is_empty());
    assert_eq!(
        s.issue_by_csr(&"ab".repeat(32)).unwrap().as_deref(),
        Some("CERT-1")
    );
    a.enroll = Some(EnrollState::Rejected {
        reason: "x".into(),
        at: t0(),
    });
    s.commit_all(&[], &[a.clone()], &[]).unwrap();
    assert!(s.issue_by_csr(&"ab".repeat(32)).unwrap().is_none());
    s.commit_all(&[], &[b], &[]).unwrap();
    assert_eq!(
        s.issue_by_csr(&"ab".repeat(32)).unwrap().as_deref(),
        Some("CERT-2")
    );

    // A revocation journaled is work until answered.
    a.revoking = Some(RevokeIntent {
        cert_id: "1".parse().unwrap(),
        message: "m".into(),
        reason_code: 0,
        at: t0(),
    });
    s.commit_all(&[], &[a.clone()], &[]).unwrap();
    let keys: Vec<sectigo_core::names::IssueKey> = s
        .issues_with_work()
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(keys, vec!["CERT-1", "CERT-2"]);
    assert_eq!(s.issues().unwrap().len(), 2);

    // Handled requests are indexed by action, and leave the index with their flag.
    a.set_handled("revoke", Some(t0()));
    s.commit_all(&[], &[a.clone()], &[]).unwrap();
    let by = |act: &str| -> Vec<sectigo_core::names::IssueKey> {
        s.issues_handled(act)
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect()
    };
    assert_eq!(by("revoke"), vec!["CERT-1"]);
    assert!(by("renew").is_empty());
    a.set_handled("revoke", None);
    s.commit_all(&[], &[a], &[]).unwrap();
    assert!(by("revoke").is_empty());
}
