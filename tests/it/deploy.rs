//! Deploying renewed certificates: the files switched in atomically, the hook with its
//! environment, a failing or hanging hook retried and reported without another renewal, the
//! set under kill -9, and `certs export`.

use sectigo_engine::Mode;
use sectigo_engine::Reason;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use sectigo_engine::deploy::{FileSet, HookRun};
use sectigo_sim::ScmSimConfig;
use tokio_util::sync::CancellationToken;

use crate::common::{get, run_bounded, Env};

const EXE: &str = env!("CARGO_BIN_EXE_sectigo-connector");

/// The set under `dir/name`: cert.pem's serial, and whether the three files agree.
fn read_set(dir: &Path, name: &str) -> (String, bool) {
    let d = dir.join(name);
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_default();
    let (cert, chain, full) = (read("cert.pem"), read("chain.pem"), read("fullchain.pem"));
    let serial = sectigo_core::x509::pem::parse_bundle(cert.as_bytes())
        .map(|i| i.serial)
        .unwrap_or_default();
    let whole = !cert.is_empty() && !chain.is_empty() && full == format!("{cert}{chain}");
    (serial, whole)
}

/// A hook that appends its environment to `log` (through sh, which the operator's hook may
/// well be).
fn recording_hook(log: &Path) -> String {
    format!(
        "[\"/bin/sh\", \"-c\", \"echo \\\"$SECTIGO_CERT_ID $SECTIGO_OLD_CERT_ID $SECTIGO_CERT_NAME $SECTIGO_PROFILE $SECTIGO_NOT_AFTER $SECTIGO_CERT_DIR\\\" >> {}\"]",
        log.display()
    )
}

#[tokio::test]
async fn a_renewal_is_deployed_atomically_and_the_hook_runs_with_its_environment() {
    let env = Env::new(ScmSimConfig::default()).await;
    let out = env.path().join("certs");
    let hook_log = env.path().join("hook.log");
    env.profile(
        "web",
        &format!(
            "[deploy]\ndir = {:?}\nmode = \"0644\"\nhook = {}",
            out,
            recording_hook(&hook_log)
        ),
    );
    let store = env.store();
    let engine = env.engine_with(store.clone());
    engine.book().sync().await.unwrap();
    let old = env.sim_cert("www.example.com", 5);
    engine
        .importer()
        .import(
            &crate::common::pn("web"),
            vec![sectigo_engine::ImportLine {
                cert_id: old.clone(),
                issue: None,
                name: Some("shop".parse().unwrap()),
            }],
        )
        .await
        .unwrap();
    let r = engine
        .cycle()
        .run(Mode::Live, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.summary.renewed, 1);
    let new_id = match get(&store, &old).state {
        sectigo_model::CertState::Superseded { by, .. } => by,
        s => panic!("{s:?}"),
    };
    let new = get(&store, &new_id);
    assert_eq!(new.deploy, None, "nothing owed: {:?}", new.deploy);
    assert_eq!(
        new.name.as_deref(),
        Some("shop"),
        "the renewal keeps the name"
    );
    assert!(new
        .history
        .iter()
        .any(|h| h.event.starts_with("deployed to")));

    // dir/shop is a link to a complete set: the new certificate, its chain, both together.
    let link = std::fs::symlink_metadata(out.join("shop")).unwrap();
    assert!(link.file_type().is_symlink());
    let (serial, whole) = read_set(&out, "shop");
    assert_eq!(serial, new.serial);
    assert!(whole, "cert + chain = fullchain");
    let mode = std::fs::metadata(out.join("shop/cert.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o644, "[deploy] mode");
    let chain = std::fs::read_to_string(out.join("shop/chain.pem")).unwrap();
    assert!(
        sectigo_core::x509::pem::is_ca(chain.as_bytes()),
        "chain.pem holds the CA"
    );

    // The hook ran once, after the files, with the documented environment.
    let log = std::fs::read_to_string(&hook_log).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    let f: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(f[0], new_id);
    assert_eq!(f[1], old);
    assert_eq!(f[2], "shop");
    assert_eq!(f[3], "web");
    assert_eq!(
        f[4],
        new.not_after
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    assert_eq!(Path::new(f[5]), out.join("shop"));

    // A second renewal switches the link; the old version directory goes.
    engine
        .book()
        .start_force_renewal(&crate::common::pn("web"))
        .await
        .unwrap();
    engine
        .cycle()
        .run(Mode::Live, &CancellationToken::new())
        .await
        .unwrap();
    let newer = match get(&store, &new_id).state {
        sectigo_model::CertState::Superseded { by, .. } => by,
        s => panic!("{s:?}"),
    };
    let (serial, whole) = read_set(&out, "shop");
    assert_eq!(serial, get(&store, &newer).serial);
    assert!(whole);
    let versions = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".shop.")
        })
        .count();
    assert_eq!(versions, 1, "only the version in use is kept");
}

#[tokio::test]
async fn a_failing_hook_is_retried_and_reported_and_never_renews_again() {
    let env = Env::manual(ScmSimConfig::default()).await;
    let out = env.path().join("certs");
    let flag = env.path().join("hook-may-succeed");
    env.profile(
        "web",
        &format!(
            "[deploy]\ndir = {out:?}\nhook = [\"/bin/sh\", \"-c\", \"echo reloading; test -e {}\"]",
            flag.display()
        ),
    );
    let store = env.store();
    let engine = env.engine_with(store.clone());
    engine.book().sync().await.unwrap();
    let ids = env.seed(&engine, "web", &[5]).await;
    let now = env.now();
    engine
        .cycle()
        .run(Mode::Live, &CancellationToken::new())
        .await
        .unwrap();
    let new_id = match get(&store, &ids[0]).state {
        sectigo_model::CertState::Superseded { by, .. } => by,
        s => panic!("{s:?}"),
    };
    let rec = get(&store, &new_id);
    let job = rec.deploy.clone().expect("the deploy is owed");
    assert!(job.files_done, "the files went in; the hook failed");
    assert_eq!(job.attempts, 1);
    assert!(job.last_error.as_deref().unwrap().contains("exited with 1"));
    let retry = job.next_attempt.unwrap();
    assert!(retry > now + chrono::Duration::minutes(4));
    // Reported: status's problems, the metrics' gauge.
    let (inv, ()) = engine.inventory(()).await.unwrap();
    assert_eq!(inv.deploy_failed, 1);
    assert!(inv
        .problems
        .iter()
        .any(|p| p.id == new_id && p.state == "deploy-failed"));

    // Cycles before the retry time neither deploy nor renew.
    for _ in 0..2 {
        env.advance(chrono::Duration::minutes(1));
        engine
            .cycle()
            .run(Mode::Live, &CancellationToken::new())
            .await
            .unwrap();
    }
    assert_eq!(get(&store, &new_id).deploy.unwrap().attempts, 1);
    assert_eq!(env.sim.billable_count(&ids[0]), 1);
    assert_eq!(
        env.sim.billable_count(&new_id),
        0,
        "a failing hook renews nothing"
    );

    // Once the hook can succeed, the retry finishes the job.
    std::fs::write(&flag, "").unwrap();
    env.set_now(retry);
    let left = engine.deployer().deploy_owed().await.unwrap();
    assert_eq!(left, 0);
    assert_eq!(get(&store, &new_id).deploy, None);
    let (inv, ()) = engine.inventory(()).await.unwrap();
    assert_eq!(inv.deploy_failed, 0);
}

#[tokio::test]
async fn a_hook_that_hangs_is_killed_and_a_missing_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let facts = sectigo_engine::deploy::HookFacts {
        cert_id: "1".parse().unwrap(),
        old_cert_id: None,
        profile: "web".parse().unwrap(),
        name: "a.example.com".parse().unwrap(),
        names: vec!["a.example.com".into()],
        not_after: Utc::now(),
        at: Utc::now(),
    };
    let hang = HookRun::new(&["sleep".into(), "30".into()], &facts, dir.path());
    let t = std::time::Instant::now();
    let e = hang
        .run_within(&crate::common::cid("1"), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("did not finish within 1 s"), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "killed, not waited for"
    );
    let missing = HookRun::new(&["/nonexistent/reload".into()], &facts, dir.path());
    let e = missing.run(&crate::common::cid("1")).await.unwrap_err();
    assert!(e.to_string().contains("cannot start"), "{e}");
}

/// kill -9 at random moments while the daemon renews and deploys (a slow hook widens the
/// window): after each kill the link names a complete set; at the end every certificate is
/// deployed, each billed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_deploys_leaves_old_or_new_sets_never_a_mix() {
    use rand::{Rng, SeedableRng};
    let env = Env::new(ScmSimConfig::default()).await;
    let out = env.path().join("certs");
    env.connector("[schedule]\ncron = \"*/2 * * * * *\"\nrun_at_start = true\n");
    env.profile(
        "web",
        &format!("expiry_window_days = 30\n[deploy]\ndir = {out:?}\nhook = [\"sleep\", \"0.2\"]"),
    );
    let store = env.store();
    let engine = env.engine_with(store.clone());
    engine.book().sync().await.unwrap();
    let ids = env.seed(&engine, "web", &[5, 6, 7, 8, 9, 10]).await;
    drop(engine);
    drop(store);
    let names: Vec<String> = (0..6).map(|i| format!("web-{i}.example.com")).collect();

    let dir = env.path().to_path_buf();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let kills: usize = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(12);
    let log = env.path().join("daemon.log");
    for _ in 0..kills {
        let mut child = Command::new(EXE)
            .arg("--config-dir")
            .arg(&dir)
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..900))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        for n in &names {
            if std::fs::symlink_metadata(out.join(n)).is_ok() {
                let (serial, whole) = read_set(&out, n);
                assert!(
                    whole && !serial.is_empty(),
                    "{n}: a partial set after kill -9"
                );
            }
        }
    }
    // A kill between a renew call's journal entry and its answer leaves an unknown outcome
    // (never renewed again by itself). Settle those as an operator would after checking SCM
    // (here the simulator says whether it renewed), so the run below has renewals to deploy.
    let o = run_bounded(
        Command::new(EXE)
            .arg("--config-dir")
            .arg(&dir)
            .args(["certs", "list", "--json"]),
        30,
    );
    let recs: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_default();
    for r in recs.as_array().cloned().unwrap_or_default() {
        let id = r["id"].as_str().unwrap_or_default().to_string();
        if r["state"]["state"] != "outcome_unknown" {
            continue;
        }
        // Renewed by SCM (its answer lost): adopted as what SCM made; else not renewed.
        let settle = match env.sim.renewals_of(&id).last() {
            Some(new_id) => vec!["certs", "resolve", &id, "--renewed-as", new_id],
            None => vec!["certs", "resolve", &id, "--not-renewed"],
        }
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        let o = run_bounded(
            Command::new(EXE)
                .arg("--config-dir")
                .arg(&dir)
                .args(&settle),
            30,
        );
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    // Undisturbed until settled: every renewal deployed, none billed twice.
    let mut child = Command::new(EXE)
        .arg("--config-dir")
        .arg(&dir)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(60);
    let done = loop {
        let o = run_bounded(
            Command::new(EXE)
                .arg("--config-dir")
                .arg(&dir)
                .args(["certs", "list", "--json"]),
            30,
        );
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_default();
        let recs = v.as_array().cloned().unwrap_or_default();
        let active: Vec<&serde_json::Value> = recs
            .iter()
            .filter(|r| r["state"]["state"] == "active")
            .collect();
        // Settled: nothing in flight, nothing owed. (A kill between journaling a renew call
        // and its answer leaves an unknown outcome, never renewed again: that is by design.)
        let settled = recs.len() >= 6
            && recs
                .iter()
                .all(|r| r.get("deploy").is_none_or(|d| d.is_null()))
            && !recs.iter().any(|r| {
                ["renew_requested", "collecting"]
                    .contains(&r["state"]["state"].as_str().unwrap_or(""))
            });
        if settled {
            break Some(
                active
                    .iter()
                    .filter(|r| r["origin"]["kind"] == "renewed")
                    .map(|r| {
                        (
                            r["subject_cn"].as_str().unwrap().to_string(),
                            r["serial"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect::<Vec<_>>(),
            );
        }
        if std::time::Instant::now() > end {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    crate::common::signal(&child, "TERM");
    let _ = crate::common::wait_bounded(&mut child, 30);
    let active = done.unwrap_or_else(|| {
        panic!(
            "not settled within 60 s:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert!(!active.is_empty(), "some renewals got through the kills");
    for (cn, serial) in &active {
        let (deployed, whole) = read_set(&out, cn);
        assert!(whole, "{cn}");
        assert_eq!(
            &deployed, serial,
            "{cn}: the deployed certificate is the active one"
        );
    }
    for id in &ids {
        assert!(env.sim.billable_count(id) <= 1, "{id} renewed at most once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_export_writes_the_files_where_it_runs() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "");
    let id = env.sim_cert("api.example.com", 100);
    let dir = env.path().to_path_buf();
    let out = env.path().join("export");
    let (d, i, o) = (dir.clone(), id.clone(), out.clone());
    let (import, export) = tokio::task::spawn_blocking(move || {
        let cli = |args: &[&str]| {
            run_bounded(Command::new(EXE).arg("--config-dir").arg(&d).args(args), 60)
        };
        let import = cli(&["certs", "import", "--profile", "web", "--cert-id", &i]);
        let export = cli(&["certs", "export", &i, "--out", o.to_str().unwrap()]);
        (import, export)
    })
    .await
    .unwrap();
    assert_eq!(import.code, 0, "{}", import.stderr);
    assert_eq!(export.code, 0, "{}", export.stderr);
    assert!(
        export.stdout.contains("api.example.com/cert.pem"),
        "{}",
        export.stdout
    );
    let (serial, whole) = read_set(&out, "api.example.com");
    assert!(whole);
    let info = sectigo_core::x509::pem::parse_bundle(
        std::fs::read_to_string(out.join("api.example.com/cert.pem"))
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(info.serial, serial);
    assert_eq!(info.subject_cn, "api.example.com");
}

#[test]
fn the_bundle_splits_into_leaf_and_chain_in_any_order() {
    let ca = rcgen::generate_simple_self_signed(vec!["ca.example".into()]).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["leaf.example".into()]).unwrap();
    params.is_ca = rcgen::IsCa::NoCa;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(vec!["ca.example".into()]).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca.key_pair).unwrap();
    let leaf = params.signed_by(&key, &ca_cert, &ca.key_pair).unwrap();
    for bundle in [
        format!("{}{}", leaf.pem(), ca_cert.pem()),
        format!("{}\r\n{}", ca_cert.pem(), leaf.pem()).replace('\n', "\r\n"),
    ] {
        let set = FileSet::from_bundle(&bundle).unwrap();
        assert_eq!(
            set.cert.replace("\r\n", "\n"),
            leaf.pem().replace("\r\n", "\n")
        );
        assert_eq!(
            set.chain.replace("\r\n", "\n"),
            ca_cert.pem().replace("\r\n", "\n")
        );
    }
    assert!(FileSet::from_bundle("no pem here").is_err());
}

/// `run-hooks --from HOOKS` as the root helper unit runs it.
async fn run_hooks(dir: &Path, hooks: &Path) -> crate::common::Output {
    let (d, h) = (dir.to_path_buf(), hooks.to_path_buf());
    tokio::task::spawn_blocking(move || {
        run_bounded(
            Command::new(EXE)
                .arg("--config-dir")
                .arg(&d)
                .args(["run-hooks", "--from"])
                .arg(&h),
            60,
        )
    })
    .await
    .unwrap()
}

/// Under the packaged unit the daemon hands hooks to the root helper: a request file, which
/// `run-hooks` answers; the daemon takes the answer at its next pass. A helper that never
/// answers is a failure after 10 minutes (and retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_through_the_root_helper() {
    use sectigo_engine::{Engine, Shared};
    let env = Env::manual(ScmSimConfig::default()).await;
    let out = env.path().join("certs");
    let hooks = env.path().join("hooks");
    let hook_log = env.path().join("hook.log");
    let flag = env.path().join("fail");
    env.profile(
        "web",
        &format!(
            "[deploy]\ndir = {out:?}\nhook = [\"/bin/sh\", \"-c\", \"test ! -e {} && echo \\\"$SECTIGO_CERT_ID $SECTIGO_CERT_NAME\\\" >> {}\"]",
            flag.display(),
            hook_log.display()
        ),
    );
    let cfg = env.config();
    let store = env.store();
    let engine = std::sync::Arc::new(
        Engine::new(
            &cfg,
            store.clone(),
            Shared::new(&cfg).with_hook_helper(hooks.clone()),
            env.clock.clone(),
        )
        .unwrap(),
    );
    engine.book().sync().await.unwrap();
    let ids = env.seed(&engine, "web", &[5, 6]).await;
    engine
        .cycle()
        .run(Mode::Live, &CancellationToken::new())
        .await
        .unwrap();
    let renewed: Vec<sectigo_core::names::CertId> = ids
        .iter()
        .map(|id| match get(&store, id).state {
            sectigo_model::CertState::Superseded { by, .. } => by,
            s => panic!("{s:?}"),
        })
        .collect();
    for id in &renewed {
        let job = get(&store, id).deploy.expect("the hook is owed");
        assert!(job.files_done && job.attempts == 0, "{job:?}");
        assert!(hooks.join(format!("{id}.request")).exists());
    }
    assert!(!hook_log.exists(), "the daemon ran no hook itself");
    // A pass before the helper ran: still waiting, not a failure.
    assert_eq!(engine.deployer().deploy_owed().await.unwrap(), 2);

    // The helper (root, in the package) runs the profile's hook and answers.
    let o = run_hooks(env.path(), &hooks).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let log = std::fs::read_to_string(&hook_log).unwrap();
    for id in &renewed {
        assert!(log.contains(id.as_str()), "{log}");
        assert!(!hooks.join(format!("{id}.request")).exists());
    }
    assert_eq!(engine.deployer().deploy_owed().await.unwrap(), 0);
    for id in &renewed {
        assert_eq!(get(&store, id).deploy, None);
    }

    // A failing hook: the helper says so, the daemon records it and retries later.
    std::fs::write(&flag, "").unwrap();
    env.advance(chrono::Duration::minutes(1));
    engine
        .book()
        .start_force_renewal(&crate::common::pn("web"))
        .await
        .unwrap();
    engine
        .cycle()
        .run(Mode::Live, &CancellationToken::new())
        .await
        .unwrap();
    let newest = match get(&store, &renewed[0]).state {
        sectigo_model::CertState::Superseded { by, .. } => by,
        s => panic!("{s:?}"),
    };
    let o = run_hooks(env.path(), &hooks).await;
    assert_eq!(
        o.code, 1,
        "a failed hook is the helper's failure too: {}",
        o.stderr
    );
    assert!(o.stderr.contains("2 run, 2 failed"), "{}", o.stderr);
    engine.deployer().deploy_owed().await.unwrap();
    let job = get(&store, &newest).deploy.expect("still owed");
    assert_eq!(job.attempts, 1);
    assert!(job.last_error.unwrap().contains("exited with 1"));

    // The helper never answers (its path unit is not enabled): a failure after 10 minutes.
    let retry = job.next_attempt.unwrap();
    env.set_now(retry);
    engine.deployer().deploy_owed().await.unwrap();
    assert!(
        hooks.join(format!("{newest}.request")).exists(),
        "asked again"
    );
    env.set_now(retry + chrono::Duration::minutes(11));
    engine.deployer().deploy_owed().await.unwrap();
    let job = get(&store, &newest).deploy.unwrap();
    assert_eq!(job.attempts, 2);
    assert!(
        job.last_error
            .unwrap()
            .contains("sectigo-connector-hooks.path"),
        "the error names the unit to enable"
    );
}

/// key_rotation = "new": the renewal sends a CSR for a fresh key, the key is in the state
/// before the billable call (and stays there when the call's answer is lost), and the deployed
/// privkey.pem matches the deployed certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_key_per_renewal_reaches_the_server_with_its_certificate() {
    let spki = |pem: &str| {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        p.parse_x509().unwrap().public_key().raw.to_vec()
    };
    let env = Env::new(ScmSimConfig::default()).await;
    let out = env.path().join("certs");
    env.profile(
        "web",
        &format!("key_rotation = \"new\"\nkey_type = \"ec-p256\"\n[deploy]\ndir = {out:?}\nmode = \"0644\""),
    );
    let store = env.store();
    let engine = env.engine_with(store.clone());
    engine.book().sync().await.unwrap();
    let ids = env.seed(&engine, "web", &[5, 6]).await;
    // The first renewal's answer is lost (the connection drops): the key made for it is kept.
    env.sim.set_faults(sectigo_sim::Faults {
        drop: 1.0,
        ..Default::default()
    });
    let r = engine
        .renewer()
        .renew(&ids[1], Reason::Operator)
        .await
        .unwrap();
    assert!(
        matches!(r, sectigo_engine::RenewOutcome::Unknown(_)),
        "{r:?}"
    );
    env.sim.set_faults(sectigo_sim::Faults::default());
    let sectigo_model::CertState::OutcomeUnknown {
        request: Some(request),
        ..
    } = get(&store, &ids[1]).state
    else {
        panic!("{:?}", get(&store, &ids[1]).state)
    };
    let kept = env
        .path()
        .join("state")
        .join("keys")
        .join(format!("{request}.key"));
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key is private");

    // A renewal that goes through: the key follows the new certificate and is deployed.
    engine
        .cycle()
        .run(Mode::Live, &CancellationToken::new())
        .await
        .unwrap();
    let new_id = match get(&store, &ids[0]).state {
        sectigo_model::CertState::Superseded { by, .. } => by,
        s => panic!("{s:?}"),
    };
    let name = "web-0.example.com";
    let (serial, whole) = read_set(&out, name);
    assert!(whole);
    assert_eq!(serial, get(&store, &new_id).serial);
    let key_path = out.join(name).join("privkey.pem");
    let key_pem = std::fs::read_to_string(&key_path).unwrap();
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "privkey.pem is the owner's alone when [deploy] group is not set"
    );
    // The certificate certifies this key.
    let key = rcgen::KeyPair::from_pem(&key_pem).unwrap();
    let cert_pem = std::fs::read_to_string(out.join(name).join("cert.pem")).unwrap();
    assert_eq!(
        spki(&cert_pem),
        key.public_key_der(),
        "the deployed key matches the deployed certificate"
    );
    // And it is not the key of the certificate it replaced.
    let old_cert = env.sim.pem(&ids[0]).unwrap();
    assert_ne!(spki(&old_cert), spki(&cert_pem), "a fresh key");

    // `certs export` (as root, the daemon stopped) includes the key.
    drop(engine);
    drop(store);
    let (d, o, i) = (
        env.path().to_path_buf(),
        env.path().join("export"),
        new_id.clone(),
    );
    let exported = tokio::task::spawn_blocking(move || {
        run_bounded(
            Command::new(EXE)
                .arg("--config-dir")
                .arg(&d)
                .args(["certs", "export", &i, "--out"])
                .arg(&o),
            60,
        )
    })
    .await
    .unwrap();
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    assert!(
        exported.stdout.contains("privkey.pem"),
        "{}",
        exported.stdout
    );
    assert_eq!(
        std::fs::read_to_string(env.path().join("export").join(name).join("privkey.pem")).unwrap(),
        key_pem
    );
}

/// A certificate enrolled from a Jira issue is deployed too when its profile deploys (the
/// key stays with the requester: no privkey.pem).
#[tokio::test]
async fn an_enrollment_from_jira_is_deployed() {
    use crate::workflow::{csr_pem, daemon, setup_full};
    let out = tempfile::tempdir().unwrap();
    let (env, jira) = setup_full(
        sectigo_core::config::JiraFlavor::Cloud,
        ScmSimConfig::default(),
        "",
        &format!("[deploy]\ndir = {:?}", out.path()),
    )
    .await;
    let d = daemon(&env);
    jira.add_certificate_issue("CERT-1", "web", "default", &csr_pem("new.example.com"));
    jira.person_transitions("CERT-1", "Enroll Certificate");
    let r = d.poll().await;
    assert_eq!((r.done, r.collected), (1, 1), "{r:?}");
    let (_, id) = env.sim.enrollments()[0].clone();
    let (serial, whole) = read_set(out.path(), "new.example.com");
    assert!(whole);
    assert_eq!(serial, get(&d.store, &id).serial);
    assert!(!out.path().join("new.example.com/privkey.pem").exists());
    assert_eq!(get(&d.store, &id).deploy, None);
}

/// A deploy cleans up only its own certificate's old versions: `api`'s second deploy leaves
/// `api.2024.example.com`'s files (whose name starts with `api.` and a number) in place.
#[test]
fn a_deploy_removes_only_its_own_old_versions() {
    use sectigo_engine::deploy::files::{write_set, FileSet};
    let t = tempfile::tempdir().unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["x.example.com".into()]).unwrap();
    let set = FileSet {
        cert: c.cert.pem(),
        chain: c.cert.pem(),
        key: None,
    };
    let cfg = sectigo_core::config::DeployConfig {
        dir: t.path().to_path_buf(),
        hook: None,
        owner: None,
        group: None,
        mode: 0o644,
    };
    let name = |n: &str| n.parse::<sectigo_core::names::CertName>().unwrap();
    let id = |n: &str| n.parse::<sectigo_core::names::CertId>().unwrap();
    write_set(&cfg, &name("api.2024.example.com"), &id("7"), &set, 1).unwrap();
    write_set(&cfg, &name("api"), &id("8"), &set, 2).unwrap();
    write_set(&cfg, &name("api"), &id("9"), &set, 3).unwrap();
    let other = t.path().join("api.2024.example.com").join("fullchain.pem");
    assert!(other.is_file(), "the other certificate's files went");
    assert!(t.path().join("api").join("fullchain.pem").is_file());
    let hidden: Vec<String> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".api."))
        .collect();
    assert_eq!(hidden.len(), 2, "one version each: {hidden:?}");
}
