//! `state export` / `state import`: a round trip over every kind of record loses nothing, an
//! export is one moment even while writers run, and an import refuses what it cannot restore
//! whole (and writes nothing then).

use std::io::BufReader;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sectigo_core::secret::Secret;
use sectigo_model::{
    Attachment, CertOrigin, CertRecord, CertState, CycleSummary, DeployJob, EnrollState, ForceRun,
    HistoryEntry, IssueEdit, IssueRecord, OutboxItem, ProfileState, RevokeIntent, Steps,
};
use sectigo_state::export::{self, ExportError};
use sectigo_state::{KeyStore, SledStore, Store, StoreError};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 8, 30, 0).unwrap()
}

fn cert(id: &str, profile: &str, state: CertState) -> CertRecord {
    CertRecord {
        id: id.parse().unwrap(),
        profile: profile.parse().unwrap(),
        subject_cn: format!("{id}.example.com"),
        sans: vec![format!("{id}.example.com"), "alt.example.com".into()],
        serial: format!("0A{id}"),
        not_before: t0() - Duration::days(300),
        not_after: t0() + Duration::days(id.len() as i64 * 7),
        state,
        jira_issue: Some(format!("CERT-{id}").parse().unwrap()),
        origin: CertOrigin::Imported { at: t0() },
        failures: 0,
        next_attempt: None,
        last_error: None,
        reported_no_auto_renew: None,
        stall_reported: None,
        history: vec![HistoryEntry {
            at: t0(),
            event: "imported".into(),
        }],
        name: None,
        deploy: None,
        scm_auto_renew: false,
    }
}

fn outbox(marker: &str, issue: &str) -> OutboxItem {
    OutboxItem {
        seq: 0,
        marker: marker.into(),
        issue: issue.parse().unwrap(),
        event: "renewed".into(),
        cert_id: "2001".parse().unwrap(),
        profile: "web".parse().unwrap(),
        comment: "Renewed.\n\nNew certificate 2001.".into(),
        attachment: Some(Attachment {
            filename: "2001.pem".into(),
            content: "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n".into(),
        }),
        edit: Some(IssueEdit {
            summary: Some("Certificate enrolled:web.example.com".into()),
            cert_id: Some("2001".parse().unwrap()),
        }),
        created: t0(),
        attempts: 3,
        next_attempt: Some(t0() + Duration::minutes(20)),
        last_error: Some("Jira answered 503".into()),
        done: Steps {
            comment: true,
            ..Default::default()
        },
        tried: Steps {
            comment: true,
            attachment: true,
            ..Default::default()
        },
        tried_at: Some(t0()),
        dead: None,
    }
}

/// A state with every kind of record and every state a record can be in.
fn populate(s: &SledStore, keys: &KeyStore) {
    let t = t0();
    let mut certs = vec![
        cert("1001", "web", CertState::Active),
        cert(
            "1002",
            "web",
            CertState::RenewRequested {
                due: t,
                at: t,
                forced: true,
                request: Some("r-00000000000000000001".into()),
            },
        ),
        cert(
            "1003",
            "web",
            CertState::Collecting {
                new_id: "2003".parse().unwrap(),
                at: t,
            },
        ),
        cert(
            "1004",
            "mail",
            CertState::Superseded {
                by: "1001".parse().unwrap(),
                at: t,
            },
        ),
        cert(
            "1005",
            "mail",
            CertState::OutcomeUnknown {
                due: t,
                at: t,
                request: Some("r-00000000000000000002".into()),
            },
        ),
        cert(
            "1006",
            "mail",
            CertState::Failed {
                reason: "-180: profile does not allow renew".into(),
                at: t,
            },
        ),
        cert("1007", "gone", CertState::Revoked { at: t }),
    ];
    certs[0].failures = 2;
    certs[0].next_attempt = Some(t + Duration::hours(2));
    certs[0].last_error = Some("SCM answered 503".into());
    certs[0].name = Some("web".parse().unwrap());
    certs[0].deploy = Some(DeployJob {
        since: t,
        old_id: Some("1004".parse().unwrap()),
        files_done: true,
        attempts: 1,
        next_attempt: Some(t + Duration::minutes(5)),
        last_error: Some("hook exited with 1".into()),
    });
    certs[1].origin = CertOrigin::Renewed {
        from: "0999".parse().unwrap(),
        at: t,
    };
    certs[2].origin = CertOrigin::Enrolled { at: t };
    certs[2].stall_reported = Some(t);
    certs[5].reported_no_auto_renew = Some(t + Duration::days(20));

    let mut enrolled = IssueRecord::new(&crate::common::ik("CERT-1"));
    enrolled.enroll = Some(EnrollState::Issued {
        cert_id: "1003".parse().unwrap(),
        at: t,
    });
    enrolled.csr_sha256 = Some("aa".repeat(32));
    enrolled.set_handled("enroll", Some(t));
    enrolled.log(t, "enrolled as 1003");
    let mut collecting = IssueRecord::new(&crate::common::ik("CERT-2"));
    collecting.enroll = Some(EnrollState::Collecting {
        profile: "web".parse().unwrap(),
        cert_id: "2002".parse().unwrap(),
        at: t,
    });
    collecting.csr_sha256 = Some("bb".repeat(32));
    collecting.stall_reported = Some(t);
    let mut revoking = IssueRecord::new(&crate::common::ik("CERT-3"));
    revoking.revoking = Some(RevokeIntent {
        cert_id: "1001".parse().unwrap(),
        message: "key compromise".into(),
        reason_code: 1,
        at: t,
    });
    revoking.set_handled("revoke", Some(t));
    revoking.set_handled("renew", Some(t));
    revoking.handled[1].misses = 1;
    let mut rejected = IssueRecord::new(&crate::common::ik("CERT-4"));
    rejected.enroll = Some(EnrollState::Rejected {
        reason: "not a CSR".into(),
        at: t,
    });
    rejected.waiting_until = Some(t + Duration::hours(3));
    let mut others = vec![];
    for (k, e) in [
        (
            "CERT-5",
            EnrollState::Requested {
                profile: "web".parse().unwrap(),
                at: t,
                request: Some("r-3".into()),
            },
        ),
        (
            "CERT-6",
            EnrollState::Failed {
                cert_id: "2006".parse().unwrap(),
                reason: "rejected by the CA".into(),
                at: t,
            },
        ),
        (
            "CERT-7",
            EnrollState::OutcomeUnknown {
                profile: "web".parse().unwrap(),
                at: t,
                request: None,
            },
        ),
    ] {
        let mut r = IssueRecord::new(&k.parse().unwrap());
        r.enroll = Some(e);
        r.csr_sha256 = Some(format!("{:0>64}", k.len() + others.len()));
        others.push(r);
    }
    let mut issues = vec![enrolled, collecting, revoking, rejected];
    issues.extend(others);

    let mut dead = outbox("m-dead", "CERT-9");
    dead.dead = Some("the issue does not exist".into());
    s.commit_all(
        &certs,
        &issues,
        &[
            outbox("m-delivered", "CERT-1"),
            outbox("m-1", "CERT-1"),
            dead,
        ],
    )
    .unwrap();
    // Delivered: gone from the queue, its marker kept.
    let first = s.outbox(10).unwrap()[0].clone();
    assert_eq!(first.marker, "m-delivered");
    s.remove_outbox(first.seq).unwrap();
    let mut progressed = s.outbox(10).unwrap()[0].clone();
    progressed.done.attachment = true;
    s.update_outbox(&progressed).unwrap();

    s.put_profile_state(
        &crate::common::pn("web"),
        &ProfileState {
            client_id: "web-client".into(),
            scm_url: "https://scm.example.com".into(),
            force_setting_seen: true,
            force: Some(ForceRun {
                started: t,
                deadline: t + Duration::hours(24),
                completed: None,
                cause: "command".into(),
            }),
            configured: true,
            rename_candidates: vec![crate::common::pn("www")],
        },
    )
    .unwrap();
    s.put_profile_state(
        &crate::common::pn("mail"),
        &ProfileState {
            client_id: "mail-client".into(),
            scm_url: "https://scm.example.com".into(),
            ..Default::default()
        },
    )
    .unwrap();
    s.put_last_cycle(&CycleSummary {
        started: Some(t),
        finished: Some(t + Duration::seconds(3)),
        renewed: 4,
        requested: 5,
        failed: 1,
        pending: 2,
        skipped_no_auto_renew: 1,
        errors: vec!["1006: -180".into()],
        deferred: [(crate::common::pn("web"), 3)].into(),
        held: [(crate::common::pn("web"), 9)].into(),
        outages: vec![sectigo_model::Outage {
            kind: sectigo_model::OutageKind::Unreachable,
            what: "scm.example:443".into(),
            since: t,
            error: "connection refused".into(),
            waiting: 3,
        }],
    })
    .unwrap();
    for (i, reason) in ["window", "forced", "operator"].iter().enumerate() {
        s.record_billing(&sectigo_model::BillingEntry {
            profile: crate::common::pn("web"),
            at: t + Duration::minutes(i as i64),
            what: format!("100{i}"),
            request: format!("r-00000000{i:02}"),
            reason: reason.to_string(),
        })
        .unwrap();
    }
    s.put_enrollment_starts(&[t, t + Duration::minutes(5)])
        .unwrap();
    s.flush().unwrap();
    keys.put(
        "1001",
        &Secret::new("-----BEGIN PRIVATE KEY-----\nA\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    keys.put(
        "r-00000000000000000001",
        &Secret::new("-----BEGIN PRIVATE KEY-----\nB\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
}

fn export_of(s: &dyn Store, keys: &KeyStore) -> Vec<u8> {
    let mut out = Vec::new();
    export::export(s, keys, true, "test", t0(), &mut out).unwrap();
    out
}

fn import_bytes(
    s: &dyn Store,
    keys: &KeyStore,
    bytes: &[u8],
) -> Result<export::Counts, ExportError> {
    export::import(s, keys, &mut || Ok(BufReader::new(bytes)))
}

/// What the store answers, index by index: the same after a round trip.
fn answers(s: &dyn Store) -> String {
    let ids = |v: Vec<CertRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let keys = |v: Vec<IssueRecord>| v.into_iter().map(|r| r.key).collect::<Vec<_>>();
    format!(
        "expiring {:?}\nin flight {:?}\ndeploys {:?}\nweb {:?}\nmail {:?}\nwork {:?}\nrenew handled {:?}\nrevoke handled {:?}\ncsr {:?}\noutbox {:?}\nstats {:?}\nprofiles {:?}\nlast {:?}\nstarts {:?}\nbilled {:?}",
        ids(s.active_expiring_before(t0() + Duration::days(400)).unwrap()),
        ids(s.in_flight().unwrap()),
        ids(s.deploys_owed().unwrap()),
        ids(s.by_profile(&crate::common::pn("web")).unwrap()),
        ids(s.by_profile(&crate::common::pn("mail")).unwrap()),
        keys(s.issues_with_work().unwrap()),
        keys(s.issues_handled("renew").unwrap()),
        keys(s.issues_handled("revoke").unwrap()),
        s.issue_by_csr(&"bb".repeat(32)).unwrap(),
        s.outbox(100).unwrap(),
        s.outbox_stats().unwrap(),
        s.profile_states().unwrap(),
        s.last_cycle().unwrap(),
        s.enrollment_starts().unwrap(),
        s.billing_since(&crate::common::pn("web"), t0() - Duration::days(400))
            .unwrap(),
    )
}

#[test]
fn a_round_trip_over_every_kind_of_record_loses_nothing() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, ka) = (
        SledStore::open(a.path(), 8).unwrap(),
        KeyStore::new(a.path()),
    );
    populate(&sa, &ka);
    let first = export_of(&sa, &ka);
    let text = String::from_utf8(first.clone()).unwrap();
    for kind in [
        "{\"cert\":",
        "{\"profile\":",
        "{\"issue\":",
        "{\"csr\":",
        "{\"outbox\":",
        "{\"marker\":",
        "{\"last_cycle\":",
        "{\"enrollment_starts\":",
        "{\"billing\":",
        "{\"key\":",
        "{\"end\":",
    ] {
        assert!(text.contains(kind), "no {kind} line in\n{text}");
    }

    let (sb, kb) = (
        SledStore::open(b.path(), 8).unwrap(),
        KeyStore::new(b.path()),
    );
    let counts = import_bytes(&sb, &kb, &first).unwrap();
    assert_eq!(
        (
            counts.certificates,
            counts.issues,
            counts.outbox,
            counts.markers,
            counts.keys,
            counts.billing
        ),
        (7, 7, 2, 3, 2, 3)
    );
    assert_eq!(
        String::from_utf8(export_of(&sb, &kb)).unwrap(),
        text,
        "the restored state exports the same file"
    );
    assert_eq!(answers(&sb), answers(&sa), "every index answers the same");
    for id in ["1001", "1002", "1005", "1007"] {
        let id = id.parse().unwrap();
        assert_eq!(sb.get(&id).unwrap(), sa.get(&id).unwrap());
    }
    for k in ["CERT-1", "CERT-3", "CERT-7"] {
        let k = k.parse().unwrap();
        assert_eq!(sb.issue(&k).unwrap(), sa.issue(&k).unwrap());
    }
    assert_eq!(kb.names().unwrap(), ka.names().unwrap());
    assert_eq!(
        kb.get(&crate::common::cid("1001")).unwrap(),
        ka.get(&crate::common::cid("1001")).unwrap()
    );

    // The delivered update is never queued again; a new one is delivered after the restored.
    sb.commit(
        &[],
        &[outbox("m-delivered", "CERT-1"), outbox("m-new", "CERT-2")],
    )
    .unwrap();
    let q: Vec<String> = sb
        .outbox(10)
        .unwrap()
        .into_iter()
        .map(|i| i.marker)
        .collect();
    assert_eq!(q, ["m-1", "m-dead", "m-new"]);

    // And the restored state opens as any other (the import finished).
    drop(sb);
    let again = SledStore::open(b.path(), 8).unwrap();
    assert_eq!(again.len().unwrap(), 7);
}

#[test]
fn an_export_is_one_moment_while_writers_run() {
    // Each write puts a certificate and its Jira update in one step: in any moment of the
    // state there are as many of one as of the other.
    let d = tempfile::tempdir().unwrap();
    let s = Arc::new(SledStore::open(d.path(), 64).unwrap());
    let keys = KeyStore::new(d.path());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("{}", 10_000 + i);
                s.commit(
                    &[cert(&id, "web", CertState::Active)],
                    &[outbox(&format!("m-{id}"), "CERT-1")],
                )
                .unwrap();
                i += 1;
            }
            i
        })
    };
    let mut checked = 0;
    while checked < 20 {
        let out = export_of(&*s, &keys);
        let text = String::from_utf8(out).unwrap();
        let count = |kind: &str| text.lines().filter(|l| l.starts_with(kind)).count();
        let certs = count("{\"cert\":");
        let queued = count("{\"outbox\":");
        let markers = count("{\"marker\":");
        assert_eq!(certs, queued, "an export saw a write half done");
        assert_eq!(certs, markers, "an export saw a write half done");
        if certs > 0 {
            checked += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
}

#[test]
fn an_import_goes_only_into_an_empty_state() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, ka) = (
        SledStore::open(a.path(), 8).unwrap(),
        KeyStore::new(a.path()),
    );
    populate(&sa, &ka);
    let file = export_of(&sa, &ka);

    // Into itself: refused, nothing changed.
    let before = answers(&sa);
    let e = import_bytes(&sa, &ka, &file).unwrap_err();
    assert!(
        e.to_string().contains("is not empty") && e.to_string().contains("7 certificates"),
        "{e}"
    );
    assert_eq!(answers(&sa), before);

    // A state that remembers profiles and a last cycle but tracks nothing takes the import.
    let sb = SledStore::open(b.path(), 8).unwrap();
    sb.put_profile_state(&crate::common::pn("old"), &ProfileState::default())
        .unwrap();
    sb.put_last_cycle(&CycleSummary::default()).unwrap();
    import_bytes(&sb, &KeyStore::new(b.path()), &file).unwrap();
    assert_eq!(answers(&sb), before);
    assert!(sb
        .profile_state(&crate::common::pn("old"))
        .unwrap()
        .is_none());

    // Keys left in an otherwise empty state: refused.
    let c = tempfile::tempdir().unwrap();
    let kc = KeyStore::new(c.path());
    kc.put("1234", &Secret::new("K")).unwrap();
    let sc = SledStore::open(c.path(), 8).unwrap();
    let e = import_bytes(&sc, &kc, &file).unwrap_err();
    assert!(e.to_string().contains("1 private key)"), "{e}");
    assert!(sc.is_empty().unwrap());
}

#[test]
fn a_damaged_file_is_refused_before_anything_is_written() {
    let a = tempfile::tempdir().unwrap();
    let (sa, ka) = (
        SledStore::open(a.path(), 8).unwrap(),
        KeyStore::new(a.path()),
    );
    populate(&sa, &ka);
    let file = String::from_utf8(export_of(&sa, &ka)).unwrap();
    let lines: Vec<&str> = file.lines().collect();
    let cut = lines[..lines.len() - 1].join("\n");
    let mut edited = lines.clone();
    let bad = edited[3].replacen("\"id\":", "\"idx\":", 1);
    edited[3] = &bad;
    let edited = edited.join("\n");
    let dropped = [&lines[..2], &lines[3..]].concat().join("\n");
    let newer = file.replacen("\"version\":1", "\"version\":2", 1);
    for (what, text, expect) in [
        ("cut short", cut.as_str(), "cut short"),
        ("a line edited", edited.as_str(), "line 4:"),
        ("a line dropped", dropped.as_str(), "the end line counts"),
        ("a newer format", newer.as_str(), "format version 2"),
        (
            "not an export",
            "{\"id\":\"1\"}\n",
            "not a sectigo-connector state export",
        ),
        ("empty", "", "empty"),
    ] {
        let b = tempfile::tempdir().unwrap();
        let (sb, kb) = (
            SledStore::open(b.path(), 8).unwrap(),
            KeyStore::new(b.path()),
        );
        let e = import_bytes(&sb, &kb, text.as_bytes()).unwrap_err();
        assert!(e.to_string().contains(expect), "{what}: {e}");
        assert!(
            sb.is_empty().unwrap() && kb.names().unwrap().is_empty(),
            "{what}"
        );
        drop(sb);
        SledStore::open(b.path(), 8).expect("a refused import leaves a state that opens");
    }
}

#[test]
fn an_unfinished_import_is_refused_at_open_and_starts_over() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, ka) = (
        SledStore::open(a.path(), 8).unwrap(),
        KeyStore::new(a.path()),
    );
    populate(&sa, &ka);
    let file = export_of(&sa, &ka);
    {
        // A restore that wrote part of the state, then the process died.
        let sb = SledStore::open(b.path(), 8).unwrap();
        sb.begin_restore().unwrap();
        sb.restore(vec![sectigo_state::Record::Cert(Box::new(cert(
            "1001",
            "web",
            CertState::Active,
        )))])
        .unwrap();
        sb.flush().unwrap();
    }
    match SledStore::open(b.path(), 8) {
        Err(e @ StoreError::RestoreUnfinished { .. }) => {
            assert!(e.to_string().contains("state import FILE` again"), "{e}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a half-restored state opened"),
    }
    let sb = SledStore::open_with(b.path(), 8, true).unwrap();
    import_bytes(&sb, &KeyStore::new(b.path()), &file).unwrap();
    assert_eq!(answers(&sb), answers(&sa));
    drop(sb);
    SledStore::open(b.path(), 8).unwrap();
}

#[test]
fn keys_are_exported_only_when_allowed() {
    let a = tempfile::tempdir().unwrap();
    let (sa, ka) = (
        SledStore::open(a.path(), 8).unwrap(),
        KeyStore::new(a.path()),
    );
    populate(&sa, &ka);
    let mut out = Vec::new();
    let e = export::export(&sa, &ka, false, "test", t0(), &mut out).unwrap_err();
    assert!(
        e.to_string().contains("2 private keys")
            && e.to_string().contains("root or the service user"),
        "{e}"
    );
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    // Without keys in the state, anyone who may use the socket may export it.
    ka.remove(&crate::common::cid("1001")).unwrap();
    ka.remove(&crate::common::cid("r-00000000000000000001"))
        .unwrap();
    let mut out = Vec::new();
    export::export(&sa, &ka, false, "test", t0(), &mut out).unwrap();
}

mod cli {
    //! The commands, as an operator runs them, with and without the daemon.

    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use crate::common::{run_bounded, signal, wait_bounded, Env};
    use sectigo_sim::ScmSimConfig;

    const EXE: &str = env!("CARGO_BIN_EXE_sectigo-connector");

    fn cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
        let o = run_bounded(
            Command::new(EXE)
                .arg("--config-dir")
                .arg(dir)
                .args(args)
                .stdin(Stdio::null()),
            60,
        );
        (o.code, o.stdout, o.stderr)
    }

    fn ok(dir: &Path, args: &[&str]) -> String {
        let (code, out, err) = cli(dir, args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out + &err
    }

    /// The file's lines after the header (which holds the export's time).
    fn records(f: &Path) -> Vec<String> {
        std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn export_through_the_daemon_and_import_elsewhere() {
        let a = Env::new(ScmSimConfig::default()).await;
        a.profile("web", "expiry_window_days = 30");
        let due = a.sim_cert("due.example.com", 5);
        let later = a.sim_cert("later.example.com", 200);
        let b = Env::new(ScmSimConfig::default()).await;
        b.profile("web", "expiry_window_days = 30");
        let (da, db) = (a.path().to_path_buf(), b.path().to_path_buf());
        let backup = da.join("backup.jsonl");
        let (bk, dl, lt) = (backup.clone(), due.clone(), later.clone());
        tokio::task::spawn_blocking(move || {
            ok(
                &da,
                &[
                    "certs",
                    "import",
                    "--profile",
                    "web",
                    "--cert-id",
                    &dl,
                    "--issue",
                    "CERT-1",
                ],
            );
            ok(
                &da,
                &["certs", "import", "--profile", "web", "--cert-id", &lt],
            );
            ok(&da, &["run", "--once"]);
            let before = ok(&da, &["certs", "list", "--all", "--json"]);

            // Through the running daemon.
            let log = da.join("daemon.log");
            let mut daemon = Command::new(EXE)
                .arg("--config-dir")
                .arg(&da)
                .arg("run")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let end = Instant::now() + Duration::from_secs(15);
            while !da.join("control.sock").exists() {
                assert!(Instant::now() < end, "no control socket");
                std::thread::sleep(Duration::from_millis(20));
            }
            let out = ok(&da, &["state", "export", bk.to_str().unwrap()]);
            assert!(
                out.contains("state exported to") && out.contains("3 certificates"),
                "{out}"
            );
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&bk).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "the export may hold private keys");
            assert!(
                !std::fs::read_dir(&da)
                    .unwrap()
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".partial")),
                "no partial file is left"
            );
            assert!(std::fs::read_to_string(&log)
                .unwrap()
                .contains("state exported: 3 certificates"));
            // Standard output, when it is not a terminal.
            let (code, stdout, _) = cli(&da, &["state", "export"]);
            assert_eq!(code, 0);
            assert_eq!(stdout.lines().skip(1).collect::<Vec<_>>(), records(&bk));

            // An import is refused while the daemon holds the state.
            let (code, _, err) = cli(&da, &["state", "import", bk.to_str().unwrap()]);
            assert_eq!(code, 75, "{err}");
            assert!(err.contains("stop the daemon"), "{err}");
            signal(&daemon, "TERM");
            assert!(wait_bounded(&mut daemon, 20)
                .expect("the daemon stops")
                .success());

            // Without the daemon: the same records.
            let direct = da.join("direct.jsonl");
            ok(&da, &["state", "export", direct.to_str().unwrap()]);
            assert_eq!(records(&direct), records(&bk));

            // Restored on another machine: the same inventory, history and all.
            let out = ok(&db, &["state", "import", bk.to_str().unwrap()]);
            assert!(
                out.contains("state imported from") && out.contains("3 certificates"),
                "{out}"
            );
            assert_eq!(ok(&db, &["certs", "list", "--all", "--json"]), before);
            // Not twice.
            let (code, _, err) = cli(&db, &["state", "import", bk.to_str().unwrap()]);
            assert_eq!(code, 1, "{err}");
            assert!(
                err.contains("is not empty") && err.contains("nothing was imported"),
                "{err}"
            );

            // A file cut short: refused, nothing written, the state opens.
            let c = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(c.path().join("profiles.d")).unwrap();
            std::fs::write(
                c.path().join("connector.toml"),
                format!(
                    "[state]\ndir = {:?}\n[control]\nsocket = {:?}\n",
                    c.path().join("state"),
                    c.path().join("c.sock")
                ),
            )
            .unwrap();
            let text = std::fs::read_to_string(&bk).unwrap();
            let cut = c.path().join("cut.jsonl");
            std::fs::write(&cut, &text[..text.len() * 2 / 3]).unwrap();
            let (code, _, err) = cli(c.path(), &["state", "import", cut.to_str().unwrap()]);
            assert_eq!(code, 1, "{err}");
            assert!(
                err.contains("cut.jsonl: line") && err.contains("nothing was imported"),
                "{err}"
            );
            let out = ok(c.path(), &["status"]);
            assert!(out.contains("0 tracked"), "{out}");
        })
        .await
        .unwrap();
        drop((a, b));
    }

    /// A record this version cannot read makes the export fail when it is taken, not on the
    /// day it is restored; no file is left that looks like a backup.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_export_that_would_not_restore_is_refused() {
        let env = Env::new(ScmSimConfig::default()).await;
        env.profile("web", "");
        let id = env.sim_cert("app.example.com", 200);
        let d = env.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            ok(
                &d,
                &["certs", "import", "--profile", "web", "--cert-id", &id],
            );
            {
                let db = sled::open(d.join("state/db")).unwrap();
                db.open_tree("certs")
                    .unwrap()
                    .insert(
                        "9999",
                        &b"{\"id\":\"9999\",\"state\":{\"state\":\"frozen\"}}"[..],
                    )
                    .unwrap();
                db.flush().unwrap();
            }
            let file = d.join("backup.jsonl");
            let (code, _, err) = cli(&d, &["state", "export", file.to_str().unwrap()]);
            assert_eq!(code, 1, "{err}");
            assert!(
                err.contains("would not restore") && err.contains("line"),
                "{err}"
            );
            assert!(!file.exists());
            assert!(
                !std::fs::read_dir(&d)
                    .unwrap()
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".partial")),
                "no partial file is left"
            );
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forgetting_a_live_certificate_asks() {
        let env = Env::new(ScmSimConfig::default()).await;
        env.profile("web", "expiry_window_days = 30");
        let id = env.sim_cert("app.example.com", 200);
        let d = env.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            ok(
                &d,
                &["certs", "import", "--profile", "web", "--cert-id", &id],
            );
            let (code, _, err) = cli(&d, &["certs", "forget", &id]);
            assert_eq!(code, 2, "{err}");
            assert!(
                err.contains("app.example.com, active, expires") && err.contains("--yes"),
                "{err}"
            );
            assert!(
                ok(&d, &["certs", "list"]).contains(id.as_str()),
                "still tracked"
            );
            let out = ok(&d, &["certs", "forget", &id, "--yes"]);
            assert!(out.contains("stopped tracking"), "{out}");
        })
        .await
        .unwrap();
    }

    /// A restore on a machine without the deployed files deploys them again, without a renewal.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restore_elsewhere_deploys_the_files_again() {
        let a = Env::new(ScmSimConfig::default()).await;
        let b = Env::new(ScmSimConfig::default()).await;
        let deploy = |e: &Env| {
            format!(
                "expiry_window_days = 30\n[deploy]\ndir = {:?}\n",
                e.path().join("deploy")
            )
        };
        a.profile("web", &deploy(&a));
        b.profile("web", &deploy(&b));
        let due = a.sim_cert("due.example.com", 5);
        let imported = a.sim_cert("kept.example.com", 200);
        let (da, db) = (a.path().to_path_buf(), b.path().to_path_buf());
        let file = da.join("state.jsonl");
        let (f, d, i, pa) = (file.clone(), due.clone(), imported.clone(), da.clone());
        tokio::task::spawn_blocking(move || {
            ok(
                &pa,
                &["certs", "import", "--profile", "web", "--cert-id", &d],
            );
            ok(
                &pa,
                &["certs", "import", "--profile", "web", "--cert-id", &i],
            );
            ok(&pa, &["run", "--once"]);
            assert!(pa.join("deploy/due.example.com/cert.pem").exists());
            ok(&pa, &["state", "export", f.to_str().unwrap()]);
        })
        .await
        .unwrap();
        // The new machine reaches the same SCM (the first simulator, which holds them).
        let text = std::fs::read_to_string(db.join("profiles.d/web.toml"))
            .unwrap()
            .replace(&b.sim.url(), &a.sim.url())
            .replace(&b.sim.token_url(), &a.sim.token_url());
        std::fs::write(db.join("profiles.d/web.toml"), text).unwrap();
        let billed = a.sim.billable_total();
        let (f, pb) = (file.clone(), db.clone());
        tokio::task::spawn_blocking(move || {
            let out = ok(&pb, &["state", "import", f.to_str().unwrap()]);
            assert!(
                out.contains("1 certificate whose files are not in the deploy directory"),
                "only the renewal the daemon made, not the imported one: {out}"
            );
            ok(&pb, &["run", "--once"]);
            assert!(pb.join("deploy/due.example.com/cert.pem").exists());
            assert!(!pb.join("deploy/kept.example.com").exists());
        })
        .await
        .unwrap();
        assert_eq!(
            a.sim.billable_total(),
            billed,
            "deploying again bills nothing"
        );
    }

    /// Runs the command with `head` then an endless line of `x` on its standard input, until it
    /// stops reading (or `limit` bytes); its exit code, standard error, and the bytes it took.
    fn endless_line(dir: &Path, args: &[&str], head: &[u8], limit: usize) -> (i32, String, usize) {
        use std::io::Write as _;
        let mut child = Command::new(EXE)
            .arg("--config-dir")
            .arg(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let head = head.to_vec();
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'x'; 1 << 20];
            let mut sent = 0;
            if stdin.write_all(&head).is_err() {
                return sent;
            }
            sent += head.len();
            // Until the reader gives up (a broken pipe) or the limit: never an end of line.
            while sent < limit && stdin.write_all(&chunk).is_ok() {
                sent += chunk.len();
            }
            sent
        });
        let mut stderr = child.stderr.take().unwrap();
        let err = std::thread::spawn(move || {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            err
        });
        let status = wait_bounded(&mut child, 60).expect("finishes");
        let err = err.join().unwrap();
        (status.code().unwrap_or(-1), err, writer.join().unwrap())
    }

    /// Issue #23: one 800 MB line made `state import` hold it whole (1.6 GB). A line longer than
    /// any record is refused, by its number, having read little more than the cap; nothing is
    /// written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_endless_import_line_is_refused_unread() {
        let env = Env::new(ScmSimConfig::default()).await;
        env.profile("web", "");
        let d = env.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let header = sectigo_state::export::Header {
                format: sectigo_state::export::FORMAT.into(),
                version: sectigo_state::export::FORMAT_VERSION,
                schema: sectigo_state::SCHEMA_VERSION,
                exported_at: chrono::Utc::now(),
                by: "test".into(),
            };
            let mut head = serde_json::to_vec(&header).unwrap();
            head.extend_from_slice(b"\n{\"cert\":{\"id\":\"");
            let cap = sectigo_state::export::MAX_LINE;
            let (code, err, sent) =
                endless_line(&d, &["state", "import", "/dev/stdin"], &head, 4 * cap);
            assert_eq!(code, 1, "{err}");
            assert!(
                err.contains("line 2")
                    && err.contains("longer than")
                    && err.contains("nothing was imported"),
                "{err}"
            );
            assert!(
                sent < cap + (8 << 20),
                "read {sent} bytes of a line capped at {cap}"
            );
            // The state is as it was: empty, and it opens.
            let out = ok(&d, &["certs", "list"]);
            assert!(out.contains("0 certificates"), "{out}");

            // The list of `certs import --from`: one line is an id and an issue key.
            let (code, err, sent) = endless_line(
                &d,
                &["certs", "import", "--profile", "web", "--from", "-"],
                b"1001 CERT-1\n",
                64 << 20,
            );
            assert_eq!(code, 2, "{err}");
            assert!(
                err.contains("line 2") && err.contains("longer than"),
                "{err}"
            );
            assert!(sent < 8 << 20, "read {sent} bytes of one line");
        })
        .await
        .unwrap();
    }
}
