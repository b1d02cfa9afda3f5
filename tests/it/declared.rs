//! Certificates declared in `certificates.d/NAME.toml` (#26): configuration errors naming file
//! and key, the plan's states, consent (`confirm` never enrolls on its own, `auto` within the
//! daily budget), `certs apply` needing a yes, SCM's enroll and replace through the one
//! enrollment path, the deploy layout, undeclared certificates never renewed nor revoked,
//! `certs revoke`, a bad declaration refused at reload, and kill -9 never billing twice.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use chrono::Duration;
use sectigo::api::{service, ErrorKind, Request, Response};
use sectigo_engine::{Action, Mode, PlanItem};
use sectigo_model::CertState;
use sectigo_sim::ScmSimConfig;
use tokio_util::sync::CancellationToken;

use crate::common::{get, run_bounded, Env};

const EXE: &str = env!("CARGO_BIN_EXE_sectigo-connector");

fn declare(env: &Env, name: &str, body: &str) {
    let d = env.path().join("certificates.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(format!("{name}.toml")), body).unwrap();
}

fn undeclare(env: &Env, name: &str) {
    std::fs::remove_file(
        env.path()
            .join("certificates.d")
            .join(format!("{name}.toml")),
    )
    .unwrap();
}

fn cli(env: &Env, args: &[&str]) -> crate::common::Output {
    run_bounded(
        Command::new(EXE)
            .arg("--config-dir")
            .arg(env.path())
            .args(args),
        60,
    )
}

fn action(plan: &[PlanItem], name: &str) -> Action {
    plan.iter()
        .find(|i| i.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} not in the plan: {plan:#?}"))
        .action
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// A profile that deploys into `DIR/deploy`, and its allowed domains.
fn web_profile(env: &Env, extra: &str) {
    env.profile(
        "web",
        &format!(
            "allowed_domains = [\"*.example.com\", \"example.com\"]\n{extra}\n[deploy]\ndir = {:?}\n",
            env.path().join("deploy")
        ),
    );
}

#[tokio::test]
async fn declared_config_errors_name_the_file_and_the_key_and_exit_78() {
    let env = Env::new(ScmSimConfig::default()).await;
    web_profile(&env, "");
    declare(
        &env,
        "good",
        "profile = \"web\"\nnames = [\"good.example.com\"]\n",
    );
    // Not declarations: ignored.
    declare(&env, ".hidden", "garbage");
    std::fs::write(env.path().join("certificates.d/notes.txt"), "x").unwrap();
    let ok = cli(&env, &["check-config"]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);

    for (file, body, key, says) in [
        (
            "typo",
            "profile = \"web\"\nnames = [\"a.example.com\"]\nkey_typ = \"rsa-2048\"\n",
            "key_typ",
            "unknown key",
        ),
        (
            "noprof",
            "profile = \"mail\"\nnames = [\"b.example.com\"]\n",
            "profile",
            "no profile named \"mail\"",
        ),
        (
            "outside",
            "profile = \"web\"\nnames = [\"c.example.org\"]\n",
            "names",
            "allowed_domains",
        ),
        (
            "badkey",
            "profile = \"web\"\nnames = [\"d.example.com\"]\nkey_type = \"dsa-1024\"\n",
            "key_type",
            "ec-p256, rsa-2048, rsa-3072",
        ),
        (
            "badmode",
            "profile = \"web\"\nnames = [\"e.example.com\"]\nenroll = \"always\"\n",
            "enroll",
            "confirm",
        ),
    ] {
        declare(&env, file, body);
        let out = cli(&env, &["check-config"]);
        assert_eq!(out.code, 78, "{file}: {}{}", out.stdout, out.stderr);
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains(&format!("certificates.d/{file}.toml")))
            .unwrap_or_else(|| panic!("{file}: no line names the file: {}", out.stderr));
        assert!(line.contains(&format!("key `{key}`")), "{file}: {line}");
        assert!(line.contains(says), "{file}: {line}");
        undeclare(&env, file);
    }
}

#[tokio::test]
async fn plan_shows_every_state_and_apply_enrolls_replaces_and_deploys() {
    let env = Env::manual(ScmSimConfig::default()).await;
    web_profile(&env, "");
    declare(
        &env,
        "www",
        "profile = \"web\"\nnames = [\"www.example.com\", \"example.com\"]\n",
    );
    declare(
        &env,
        "api",
        &format!(
            "profile = \"web\"\nnames = [\"api.example.com\"]\nkey_type = \"rsa-2048\"\n[deploy]\ndir = {:?}\nmode = \"0600\"\n",
            env.path().join("own")
        ),
    );
    declare(
        &env,
        "a",
        "profile = \"web\"\nnames = [\"shared.example.com\"]\n",
    );
    declare(
        &env,
        "b",
        "profile = \"web\"\nnames = [\"shared.example.com\", \"b.example.com\"]\n",
    );
    let cfg = env.config();
    assert!(
        cfg.warnings.iter().any(|w| w.contains(
            "\"shared.example.com\" is declared in certificates.d/a.toml and certificates.d/b.toml"
        )),
        "{:?}",
        cfg.warnings
    );
    let engine = env.engine_with(env.store());
    let plan = engine.declared().plan().await.unwrap();
    assert_eq!(action(&plan, "www"), Action::Enroll);
    assert_eq!(action(&plan, "api"), Action::Enroll);
    assert_eq!(action(&plan, "a"), Action::Conflict);
    assert_eq!(action(&plan, "b"), Action::Conflict);

    // `certs apply` lists each billable step with its count, and needs a yes.
    let no = service::execute(Request::CertsApply { yes: false }, &engine, &cfg, None).await;
    let e = no.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Confirm);
    assert!(
        e.message
            .contains("would bill 2 steps (2 enroll, 0 replace)"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("www") && e.message.contains("api"),
        "{}",
        e.message
    );
    assert!(
        !e.message.contains("shared"),
        "a conflict is never enrolled: {}",
        e.message
    );
    assert!(
        env.sim.enrollments().is_empty(),
        "nothing sent without a yes"
    );

    let yes = service::execute(Request::CertsApply { yes: true }, &engine, &cfg, None)
        .await
        .unwrap();
    let Response::Applied(r) = yes else {
        panic!("{yes:?}")
    };
    assert_eq!(r.enrolled.len(), 2, "{r:?}");
    assert_eq!(r.issued, 2, "{r:?}");
    assert_eq!(env.sim.enrollments().len(), 2);

    // DIR/NAME/ with the four files: the profile's dir and mode, or the declaration's own.
    for (dir, m) in [
        (env.path().join("deploy/www"), 0o640),
        (env.path().join("own/api"), 0o600),
    ] {
        for f in ["cert.pem", "chain.pem", "fullchain.pem"] {
            assert_eq!(mode(&dir.join(f)), m, "{}", dir.join(f).display());
        }
        // The key is never readable by more than its owner.
        assert_eq!(mode(&dir.join("privkey.pem")), 0o600, "{}", dir.display());
    }
    let key = std::fs::read_to_string(env.path().join("own/api/privkey.pem")).unwrap();
    assert!(key.contains("PRIVATE KEY"), "the daemon made the key");
    let plan = engine.declared().plan().await.unwrap();
    assert_eq!(action(&plan, "www"), Action::Ok, "{plan:#?}");
    let www = plan.iter().find(|i| i.name.as_str() == "www").unwrap();
    let old_id = www.cert_id.clone().unwrap();
    let rec = get(engine.store(), old_id.as_str());
    assert_eq!(rec.name.as_ref().map(|n| n.as_str()), Some("www"));
    assert_eq!(rec.sans, vec!["www.example.com", "example.com"]);

    // Its names change: SCM's replace (not a new enrollment), with a new key.
    let old_key = std::fs::read_to_string(env.path().join("deploy/www/privkey.pem")).unwrap();
    declare(
        &env,
        "www",
        "profile = \"web\"\nnames = [\"www.example.com\", \"example.com\", \"m.example.com\"]\n",
    );
    // The conflict is resolved by one file dropping the name.
    undeclare(&env, "a");
    let cfg = env.config();
    let engine = {
        let store = engine.store().clone();
        drop(engine);
        env.engine_with(store)
    };
    let plan = engine.declared().plan().await.unwrap();
    assert_eq!(action(&plan, "www"), Action::Replace, "{plan:#?}");
    assert_eq!(action(&plan, "b"), Action::Enroll);
    let Response::Applied(r) =
        service::execute(Request::CertsApply { yes: true }, &engine, &cfg, None)
            .await
            .unwrap()
    else {
        panic!()
    };
    assert_eq!((r.replaced.len(), r.enrolled.len()), (1, 1), "{r:?}");
    assert_eq!(env.sim.replacements().len(), 1);
    assert_eq!(env.sim.replacements()[0].0, old_id.as_str());
    assert_eq!(
        env.sim.enrollments().len(),
        3,
        "the replace is no enrollment"
    );
    let new_id = env.sim.replacements()[0].1.clone();
    assert!(matches!(
        get(engine.store(), old_id.as_str()).state,
        CertState::Superseded { .. }
    ));
    let new = get(engine.store(), &new_id);
    assert!(
        new.sans.contains(&"m.example.com".to_string()),
        "{:?}",
        new.sans
    );
    let new_key = std::fs::read_to_string(env.path().join("deploy/www/privkey.pem")).unwrap();
    assert_ne!(old_key, new_key, "a new key");
    let plan = engine.declared().plan().await.unwrap();
    assert_eq!(action(&plan, "www"), Action::Ok, "{plan:#?}");

    // The plan's JSON, through the binary (no daemon runs: the state is opened directly).
    drop(engine);
    let out = cli(&env, &["certs", "plan", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["ok", "ok", "ok"], "{v:#}");
}

#[tokio::test]
async fn confirm_never_enrolls_on_its_own_and_auto_enrolls_within_the_budget() {
    let env = Env::manual(ScmSimConfig::default()).await;
    let notify = env.path().join("notify.log");
    env.connector(&format!(
        "[notify]\ncommand = [\"sh\", \"-c\", \"echo \\\"$SECTIGO_EVENT $SECTIGO_MESSAGE\\\" >> {}\"]\n",
        notify.display()
    ));
    web_profile(&env, "max_renewals_per_day = 2");
    declare(
        &env,
        "asked",
        "profile = \"web\"\nnames = [\"asked.example.com\"]\n",
    );
    for i in 0..3 {
        declare(
            &env,
            &format!("auto{i}"),
            &format!("profile = \"web\"\nnames = [\"auto{i}.example.com\"]\nenroll = \"auto\"\n"),
        );
    }
    let engine = env.engine_with(env.store());
    let cancel = CancellationToken::new();
    let report = engine.cycle().run(Mode::Live, &cancel).await.unwrap();
    let d = &report.declared;
    assert_eq!(d.enrolled.len(), 2, "within the daily budget of 2: {d:?}");
    assert_eq!(d.held.len(), 1, "{d:?}");
    // Held as a renewal past the budget is: counted for the profile (status, [notify]).
    assert_eq!(
        report.summary.held.get(&crate::common::pn("web")).copied(),
        Some(1)
    );
    assert_eq!(d.waiting_consent.len(), 1, "{d:?}");
    assert_eq!(d.waiting_consent[0].as_str(), "asked");
    let enrolled: Vec<String> = env
        .sim
        .enrollments()
        .into_iter()
        .map(|(cn, _)| cn)
        .collect();
    assert!(
        !enrolled.contains(&"asked.example.com".to_string()),
        "{enrolled:?}"
    );
    assert_eq!(enrolled.len(), 2);

    // Cycle after cycle, `confirm` waits; status --check says which declaration waits.
    for _ in 0..3 {
        env.advance(Duration::hours(1));
        engine.cycle().run(Mode::Live, &cancel).await.unwrap();
    }
    assert!(env
        .sim
        .enrollments()
        .iter()
        .all(|(cn, _)| cn != "asked.example.com"));
    let cfg = env.config();
    let Response::Status(s) = service::execute(Request::Status, &engine, &cfg, None)
        .await
        .unwrap()
    else {
        panic!()
    };
    let lines = sectigo::render::needs_a_person(&s);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("declared asked (web): enroll waits for `certs apply`")),
        "{lines:#?}"
    );
    // And `status` shows the one that waits.
    let (text, _) = sectigo::render::text(&Response::Status(s.clone()), env.now());
    assert!(
        text.contains("problem:       declared asked (web): enroll waits for `certs apply`"),
        "{text}"
    );
    // [notify] told once.
    engine
        .shared()
        .notifier
        .drain(std::time::Duration::from_secs(10))
        .await;
    let told = std::fs::read_to_string(&notify).unwrap_or_default();
    assert_eq!(told.matches("declared_waiting").count(), 1, "{told}");
    assert!(told.contains("certs apply"), "{told}");
    assert_eq!(told.matches("budget_reached").count(), 1, "{told}");

    // A day later the budget has room again: the held one goes.
    env.advance(Duration::hours(25));
    let report = engine.cycle().run(Mode::Live, &cancel).await.unwrap();
    assert_eq!(report.declared.enrolled.len(), 1, "{:?}", report.declared);
    assert_eq!(env.sim.enrollments().len(), 3);
}

#[tokio::test]
async fn undeclared_is_never_renewed_nor_revoked_and_revoke_stops_renewals() {
    let env = Env::manual(ScmSimConfig::default()).await;
    web_profile(&env, "expiry_window_days = 30");
    declare(
        &env,
        "gone",
        "profile = \"web\"\nnames = [\"gone.example.com\"]\nenroll = \"auto\"\n",
    );
    declare(
        &env,
        "kept",
        "profile = \"web\"\nnames = [\"kept.example.com\"]\nenroll = \"auto\"\n",
    );
    let engine = env.engine_with(env.store());
    let cancel = CancellationToken::new();
    engine.cycle().run(Mode::Live, &cancel).await.unwrap();
    let plan = engine.declared().plan().await.unwrap();
    let id_of = |n: &str| {
        plan.iter()
            .find(|i| i.name.as_str() == n)
            .and_then(|i| i.cert_id.clone())
            .unwrap()
    };
    let (gone, kept) = (id_of("gone"), id_of("kept"));

    undeclare(&env, "gone");
    let cfg = env.config();
    let engine = {
        let store = engine.store().clone();
        drop(engine);
        env.engine_with(store)
    };
    let plan = engine.declared().plan().await.unwrap();
    assert_eq!(action(&plan, "gone"), Action::Undeclared, "{plan:#?}");

    // Revoke `kept` (needs a yes): revoked in SCM with the reason, no longer renewed.
    let r = service::execute(
        Request::CertsRevoke {
            id: kept.clone().into(),
            reason: "keyCompromise".into(),
            yes: false,
        },
        &engine,
        &cfg,
        None,
    )
    .await;
    assert_eq!(r.unwrap_err().kind, ErrorKind::Confirm);
    assert!(env.sim.revocations().is_empty());
    let r = service::execute(
        Request::CertsRevoke {
            id: kept.clone().into(),
            reason: "keyCompromise".into(),
            yes: true,
        },
        &engine,
        &cfg,
        None,
    )
    .await
    .unwrap();
    assert!(matches!(r, Response::Revoked { .. }), "{r:?}");
    assert_eq!(env.sim.revocations(), vec![(kept.to_string(), 1)]);
    assert!(matches!(
        get(engine.store(), kept.as_str()).state,
        CertState::Revoked { .. }
    ));
    let plan = engine.declared().plan().await.unwrap();
    assert_eq!(action(&plan, "kept"), Action::Revoked, "{plan:#?}");

    // 70 days on, both are inside the window: neither is renewed, nothing more enrolled.
    env.advance(Duration::days(70));
    for _ in 0..2 {
        engine.cycle().run(Mode::Live, &cancel).await.unwrap();
    }
    assert!(
        env.sim.renewals_of(gone.as_str()).is_empty(),
        "undeclared: not renewed"
    );
    assert!(
        env.sim.renewals_of(kept.as_str()).is_empty(),
        "revoked: not renewed"
    );
    assert_eq!(env.sim.enrollments().len(), 2);
    assert_eq!(env.sim.revocations().len(), 1, "undeclared: never revoked");
    assert_eq!(get(engine.store(), gone.as_str()).state, CertState::Active);

    // Until `certs forget`.
    engine.operator().forget(&gone).await.unwrap();
    let plan = engine.declared().plan().await.unwrap();
    assert!(plan.iter().all(|i| i.name.as_str() != "gone"), "{plan:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_declaration_is_refused_at_reload_and_the_others_keep_working() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.connector("[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n");
    web_profile(&env, "");
    declare(
        &env,
        "www",
        "profile = \"web\"\nnames = [\"www.example.com\"]\n",
    );
    let log = env.path().join("daemon.log");
    let mut child = Command::new(EXE)
        .arg("--config-dir")
        .arg(env.path())
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !env.socket().exists() && std::time::Instant::now() < end {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    declare(
        &env,
        "bad",
        "profile = \"web\"\nnames = [\"bad.example.org\"]\n",
    );
    let out = cli(&env, &["reload"]);
    assert_eq!(out.code, 78, "{}{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("certificates.d/bad.toml") && all.contains("`names`"),
        "{all}"
    );
    // The running configuration stays: `www` is still planned, through the daemon.
    let out = cli(&env, &["certs", "plan"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("www") && out.stdout.contains("enroll"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("bad"), "{}", out.stdout);
    // Without --yes and without a terminal, apply is refused (usage, exit 2) and bills nothing.
    let out = cli(&env, &["certs", "apply"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("would bill 1 step"), "{}", out.stderr);
    assert!(env.sim.enrollments().is_empty());
    let out = cli(&env, &["certs", "apply", "--yes"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("enrolled www"), "{}", out.stdout);
    assert_eq!(env.sim.enrollments().len(), 1);
    crate::common::signal(&child, "TERM");
    crate::common::wait_bounded(&mut child, 30);
}

#[tokio::test]
async fn revoking_a_certificate_linked_to_an_issue_tells_jira() {
    let env = Env::manual(ScmSimConfig::default()).await;
    env.connector(
        "[jira]\nurl = \"http://127.0.0.1:9\"\nflavor = \"cloud\"\nemail = \"bot@example.com\"\ntoken = \"t\"\n",
    );
    web_profile(&env, "");
    let engine = env.engine_with(env.store());
    let id = env.sim_cert("linked.example.com", 80);
    let s = engine
        .importer()
        .import(
            &crate::common::pn("web"),
            vec![sectigo_engine::ImportLine {
                cert_id: id.clone(),
                issue: Some(crate::common::ik("CERT-9")),
                name: None,
            }],
        )
        .await
        .unwrap();
    assert_eq!(s.imported.len(), 1);
    let cfg = env.config();
    service::execute(
        // By its name (its CN), as `certs show` takes it.
        Request::CertsRevoke {
            id: sectigo_core::names::CertRef::parse("linked.example.com").unwrap(),
            reason: "cessationOfOperation".into(),
            yes: true,
        },
        &engine,
        &cfg,
        None,
    )
    .await
    .unwrap();
    assert_eq!(env.sim.revocations(), vec![(id.to_string(), 5)]);
    let queued = engine.store().outbox(100).unwrap();
    let told: Vec<_> = queued
        .iter()
        .filter(|i| i.issue.as_str() == "CERT-9" && i.event == "revoked")
        .collect();
    assert_eq!(told.len(), 1, "{queued:#?}");
    assert!(
        told[0].comment.contains("cessationOfOperation"),
        "{}",
        told[0].comment
    );
}

#[tokio::test]
async fn a_declared_certificate_is_renewed_in_its_window_with_a_key_of_its_declared_type() {
    let env = Env::manual(ScmSimConfig::default()).await;
    web_profile(&env, "key_rotation = \"new\"\nkey_type = \"rsa-2048\"");
    declare(
        &env,
        "ec",
        "profile = \"web\"\nnames = [\"ec.example.com\"]\nenroll = \"auto\"\n",
    );
    let engine = env.engine_with(env.store());
    let cancel = CancellationToken::new();
    engine.cycle().run(Mode::Live, &cancel).await.unwrap();
    let key = env.path().join("deploy/ec/privkey.pem");
    let first = std::fs::read_to_string(&key).unwrap();
    env.advance(Duration::days(70));
    let plan = engine.declared().plan().await.unwrap();
    assert_eq!(action(&plan, "ec"), Action::Renew, "{plan:#?}");
    let old = plan[0].cert_id.clone().unwrap();
    engine.cycle().run(Mode::Live, &cancel).await.unwrap();
    assert_eq!(env.sim.renewals_of(old.as_str()).len(), 1, "renewed once");
    let renewed = std::fs::read_to_string(&key).unwrap();
    assert_ne!(first, renewed, "a fresh key (key_rotation = \"new\")");
    // An EC P-256 key (PKCS#8, about 240 bytes), not the profile's RSA 2048 (about 1700).
    assert!(renewed.len() < 400, "{} bytes", renewed.len());
    let plan = engine.declared().plan().await.unwrap();
    assert_eq!(action(&plan, "ec"), Action::Ok, "{plan:#?}");
    assert_ne!(
        plan[0].cert_id.as_ref(),
        Some(&old),
        "its renewal is its certificate now"
    );
    assert_eq!(env.sim.enrollments().len(), 1);
}

#[tokio::test]
async fn a_lost_enrollment_is_never_sent_again_until_the_operator_resolves_it() {
    let env = Env::manual(ScmSimConfig::default()).await;
    web_profile(&env, "");
    declare(
        &env,
        "lost",
        "profile = \"web\"\nnames = [\"lost.example.com\"]\nenroll = \"auto\"\n",
    );
    let store = env.store();
    // The journal a kill -9 leaves between the intent and the answer.
    let mut rec =
        sectigo_model::DeclaredRecord::new(&"lost".parse().unwrap(), &crate::common::pn("web"));
    rec.op = Some(sectigo_model::DeclaredOp::Enroll);
    rec.enroll = Some(sectigo_model::EnrollState::Requested {
        profile: crate::common::pn("web"),
        at: env.now(),
        request: Some("r-0123456789".into()),
    });
    store.commit_declared(&[], &[rec], &[], &[]).unwrap();
    let engine = env.engine_with(store);
    assert_eq!(engine.recover().await.unwrap(), 1);
    let cancel = CancellationToken::new();
    for _ in 0..2 {
        engine.cycle().run(Mode::Live, &cancel).await.unwrap();
        let plan = engine.declared().plan().await.unwrap();
        assert_eq!(action(&plan, "lost"), Action::Unknown, "{plan:#?}");
        assert!(
            plan[0].detail.contains("r-0123456789"),
            "{}",
            plan[0].detail
        );
    }
    let cfg = env.config();
    let r = service::execute(Request::CertsApply { yes: true }, &engine, &cfg, None)
        .await
        .unwrap();
    assert!(
        matches!(r, Response::Applied(ref a) if a.enrolled.is_empty()),
        "{r:?}"
    );
    assert!(
        env.sim.enrollments().is_empty(),
        "an unknown outcome is never sent again"
    );

    // The operator checked SCM: nothing. Resolved, it is enrolled again (auto).
    let r = service::execute(
        Request::CertsResolve {
            target: "lost".parse().unwrap(),
            renewed_as: None,
        },
        &engine,
        &cfg,
        None,
    )
    .await
    .unwrap();
    assert!(matches!(r, Response::Resolved(_)), "{r:?}");
    engine.cycle().run(Mode::Live, &cancel).await.unwrap();
    assert_eq!(env.sim.enrollments().len(), 1);
    let plan = engine.declared().plan().await.unwrap();
    assert_eq!(action(&plan, "lost"), Action::Ok, "{plan:#?}");
}
