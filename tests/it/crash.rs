//! kill -9 at random moments while a cycle renews many certificates, restarting each time
//! (`CRASH_KILLS`, `CRASH_CERTS` and `CRASH_SEED` set the size and make a run reproducible):
//! no certificate is ever billed twice, and every due certificate ends renewed, or (when the
//! kill fell between a renew call and the recording of its answer) marked outcome-unknown.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Env;
use rand::{Rng, SeedableRng};
use sectigo_model::CertState;
use sectigo_sim::{Faults, ScmSimConfig};

const EXE: &str = env!("CARGO_BIN_EXE_sectigo-connector");

fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn spawn(dir: &Path, log: &Path) -> std::process::Child {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(EXE)
        .arg("--config-dir")
        .arg(dir)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(f)
        .spawn()
        .unwrap()
}

fn count(log: &Path, s: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(s)
        .count()
}

/// How many kills (`CRASH_KILLS`, else `default_kills`) and the random moments' generator
/// (`CRASH_SEED`, else a fresh seed, printed so that a failure can be replayed).
fn crash_settings(default_kills: usize) -> (usize, rand::rngs::StdRng) {
    let kills = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_kills);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("kills: {kills}, seed: {seed} (rerun with CRASH_SEED={seed})");
    (kills, rand::rngs::StdRng::seed_from_u64(seed))
}

/// Starts the daemon `kills` times and SIGKILLs it at a random moment (up to `max_ms` after it
/// reported started), checking each time that it started (the state opened cleanly).
async fn kill_repeatedly(
    dir: &Path,
    log: &Path,
    kills: usize,
    max_ms: u64,
    rng: &mut rand::rngs::StdRng,
) {
    for k in 0..kills {
        let mut child = spawn(dir, log);
        let l = log.to_path_buf();
        let started =
            tokio::task::spawn_blocking(move || wait_for(10, || count(&l, "started:") > k))
                .await
                .unwrap();
        assert!(
            started,
            "daemon start {k} failed: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..max_ms))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
}

/// SIGTERM: the daemon stops with 0 within 30 s (else the test fails with its log).
fn stop(child: &mut std::process::Child, log: &Path) {
    crate::common::signal(child, "TERM");
    let stopped = crate::common::wait_bounded(child, 30);
    assert_eq!(
        stopped.map(|s| s.code()),
        Some(Some(0)),
        "SIGTERM stops the daemon with 0 within 30 s: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Runs the daemon undisturbed until `status --json` satisfies `done` (60 s at most), then
/// stops it with SIGTERM (exit 0). Panics with the last status and the log's warnings if not.
async fn run_until(dir: &Path, log: &Path, done: fn(&serde_json::Value) -> bool) {
    run_until_within(dir, log, 60, done).await
}

/// [`run_until`], waiting `secs` at most.
async fn run_until_within(dir: &Path, log: &Path, secs: u64, done: fn(&serde_json::Value) -> bool) {
    let mut child = spawn(dir, log);
    let d = dir.to_path_buf();
    let status = move || -> serde_json::Value {
        let out = Command::new(EXE)
            .arg("--config-dir")
            .arg(&d)
            .args(["status", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let (ok, last) = tokio::task::spawn_blocking(move || {
        let ok = wait_for(secs, || done(&status()));
        (ok, status())
    })
    .await
    .unwrap();
    stop(&mut child, log);
    let warnings: Vec<String> = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(20)
        .map(str::to_string)
        .collect();
    assert!(ok, "did not converge: {last:#}\n{}", warnings.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_never_bills_twice() {
    let (kills, mut rng) = crash_settings(20);

    let env = Env::new(ScmSimConfig {
        issue_delay: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    env.connector("[schedule]\ncron = \"* * * * * *\"\nrun_at_start = true\n");
    env.profile("web", "expiry_window_days = 30");
    env.sim.set_faults(Faults {
        latency: Duration::from_millis(15),
        error_5xx: 0.05,
        ..Default::default()
    });
    let certs: i64 = std::env::var("CRASH_CERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(80);
    let due: Vec<sectigo_core::names::CertId> = (0..certs)
        .map(|i| env.sim_cert(&format!("due{i}.example.com"), 1 + i % 25))
        .collect();
    let not_due: Vec<sectigo_core::names::CertId> = (0..20)
        .map(|i| env.sim_cert(&format!("later{i}.example.com"), 40 + i))
        .collect();
    let list = env.path().join("import.txt");
    std::fs::write(
        &list,
        due.iter()
            .chain(&not_due)
            .map(|i| format!("{i}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let dir = env.path().to_path_buf();
    let out = Command::new(EXE)
        .arg("--config-dir")
        .arg(&dir)
        .args(["certs", "import", "--profile", "web", "--from"])
        .arg(&list)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "imported {}, skipped 0",
            due.len() + not_due.len()
        )),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let log = env.path().join("daemon.log");
    kill_repeatedly(&dir, &log, kills, 400, &mut rng).await;
    // A last run, undisturbed, until nothing is due or in flight.
    run_until(&dir, &log, |v| {
        v["due"] == 0
            && v["by_state"].get("collecting").is_none()
            && v["by_state"].get("renew-requested").is_none()
            && v["daemon"].is_object()
    })
    .await;

    let store = env.store();
    assert!(
        env.sim.billed_twice().is_empty(),
        "billed twice: {:?}",
        env.sim.billed_twice()
    );
    let (mut renewed, mut unknown) = (0, 0);
    for id in &due {
        let rec = store.get(id).unwrap().unwrap();
        match rec.state {
            CertState::Superseded { .. } => {
                assert_eq!(env.sim.billable_count(id), 1, "{id}");
                renewed += 1;
            }
            CertState::OutcomeUnknown { .. } => {
                assert!(env.sim.billable_count(id) <= 1, "{id}");
                unknown += 1;
            }
            ref s => panic!("due certificate {id} ended {s:?}"),
        }
    }
    for id in &not_due {
        assert_eq!(env.sim.billable_count(id), 0, "{id} was not due");
    }
    println!("{renewed} renewed, {unknown} outcome-unknown (the kill fell while the renew call was in flight), after {kills} kills");
    assert_eq!(renewed + unknown, due.len());
    assert!(
        unknown <= kills * 16,
        "at most the calls in flight at each kill"
    );
    assert_eq!(
        count(&log, "renewal outcome unknown: the daemon stopped"),
        unknown,
        "each one reported loudly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_jira_delivery_loses_and_doubles_nothing() {
    use sectigo_core::config::JiraFlavor;
    use sectigo_sim::{JiraFaults, JiraSim};
    let (kills, mut rng) = crash_settings(10);

    let jira = JiraSim::start(JiraFlavor::Cloud, "bot@example.com", "t")
        .await
        .unwrap();
    jira.set_faults(JiraFaults {
        latency: Duration::from_millis(25),
        error_500: 0.05,
        ..Default::default()
    });
    let env = Env::new(ScmSimConfig::default()).await;
    env.connector(&format!(
        "[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = true\n[jira]\nurl = \"{}\"\nemail = \"bot@example.com\"\ntoken = \"t\"\n[jira.transitions]\nrenewed = \"Renewed\"\n",
        jira.url()
    ));
    env.profile("web", "expiry_window_days = 30");
    let keys: Vec<String> = (0..20).map(|i| format!("CERT-{}", 100 + i)).collect();
    let mut list = String::new();
    for (i, k) in keys.iter().enumerate() {
        jira.add_issue(k);
        let id = env.sim_cert(&format!("j{i}.example.com"), 3);
        list.push_str(&format!("{id} {k}\n"));
    }
    let file = env.path().join("import.txt");
    std::fs::write(&file, list).unwrap();
    let dir = env.path().to_path_buf();
    let out = Command::new(EXE)
        .arg("--config-dir")
        .arg(&dir)
        .args(["certs", "import", "--profile", "web", "--from"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());

    let log = env.path().join("daemon.log");
    kill_repeatedly(&dir, &log, kills, 800, &mut rng).await;
    run_until(&dir, &log, |v| {
        v["due"] == 0
            && v["by_state"].get("collecting").is_none()
            && v["jira"]["pending"] == 0
            && v["daemon"].is_object()
    })
    .await;
    let store = env.store();
    let unknown = crate::common::records(&store)
        .iter()
        .filter(|r| matches!(r.state, CertState::OutcomeUnknown { .. }))
        .count();
    for k in &keys {
        let i = jira.issue(k).unwrap();
        let started = i
            .comments
            .iter()
            .filter(|c| c.starts_with("Renewal of certificate"))
            .count();
        let renewed = i
            .comments
            .iter()
            .filter(|c| c.starts_with("Certificate renewed."))
            .count();
        let unknown_c = i
            .comments
            .iter()
            .filter(|c| c.starts_with("Needs a human"))
            .count();
        assert_eq!(started, 1, "{k}: {:#?}", i.comments);
        assert!(
            renewed + unknown_c == 1,
            "{k}: exactly one outcome: {:#?}",
            i.comments
        );
        assert_eq!(i.attachments.len(), renewed, "{k}");
        assert!(i.transitions.len() <= 1, "{k}: {:?}", i.transitions);
    }
    assert!(env.sim.billed_twice().is_empty());
    println!("{} issues each updated exactly once per event after {kills} kills ({unknown} renewals with unknown outcome)", keys.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_enrollments_from_jira_never_enrolls_twice() {
    use sectigo_core::config::JiraFlavor;
    use sectigo_sim::{JiraFaults, JiraSim};
    let (kills, mut rng) = crash_settings(10);

    let jira = JiraSim::start(JiraFlavor::Cloud, "bot@example.com", "t")
        .await
        .unwrap();
    jira.set_faults(JiraFaults {
        latency: Duration::from_millis(20),
        ..Default::default()
    });
    let env = Env::new(ScmSimConfig {
        issue_delay: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    // Every SCM answer takes a while: kills land inside enroll calls.
    env.sim.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Default::default()
    });
    env.connector(&format!(
        "[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n[jira]\nurl = \"{}\"\nemail = \"bot@example.com\"\ntoken = \"t\"\n[jira.workflow]\nenabled = true\npoll_cron = \"* * * * * *\"\n",
        jira.url()
    ));
    env.profile("web", "expiry_window_days = 30");
    let keys: Vec<String> = (0..8).map(|i| format!("CERT-{}", 200 + i)).collect();
    for (i, k) in keys.iter().enumerate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cn = format!("e{i}.example.com");
        let mut p = rcgen::CertificateParams::new(vec![cn.clone()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let csr = p.serialize_request(&key).unwrap().pem().unwrap();
        jira.add_certificate_issue(k, "cert", "web", &csr);
        jira.person_transitions(k, "Enroll Certificate");
    }
    let dir = env.path().to_path_buf();
    let log = env.path().join("daemon.log");
    kill_repeatedly(&dir, &log, kills, 1500, &mut rng).await;

    // Undisturbed: every issue reaches an outcome, and the Jira queue drains.
    let mut child = spawn(&dir, &log);
    let status = {
        let d = dir.clone();
        move || -> serde_json::Value {
            let out = Command::new(EXE)
                .arg("--config-dir")
                .arg(&d)
                .args(["status", "--json"])
                .output()
                .unwrap();
            serde_json::from_slice(&out.stdout).unwrap_or_default()
        }
    };
    let end = Instant::now() + Duration::from_secs(60);
    let mut done = false;
    while Instant::now() < end && !done {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let settled = keys.iter().all(|k| {
            let s = jira.issue(k).unwrap().status;
            s == "Certificate Enrolled" || s == "Request Failed"
        });
        done = settled && {
            let s = status.clone();
            let v = tokio::task::spawn_blocking(s).await.unwrap();
            v["jira"]["pending"] == 0 && v["daemon"].is_object()
        };
    }
    stop(&mut child, &log);
    let statuses: Vec<(String, String)> = keys
        .iter()
        .map(|k| (k.clone(), jira.issue(k).unwrap().status))
        .collect();
    assert!(done, "did not converge: {statuses:?}");

    let enrolled = env.sim.enrollments();
    let (mut ok, mut unknown) = (0u64, 0u64);
    for (i, k) in keys.iter().enumerate() {
        let cn = format!("e{i}.example.com");
        let billed = enrolled.iter().filter(|(c, _)| *c == cn).count();
        assert!(billed <= 1, "{k}: enrolled {billed} times");
        let issue = jira.issue(k).unwrap();
        let count = |p: &str| issue.comments.iter().filter(|c| c.starts_with(p)).count();
        if issue.status == "Certificate Enrolled" {
            ok += 1;
            assert_eq!(billed, 1, "{k}");
            assert_eq!(issue.attachments.len(), 1, "{k}: {:?}", issue.attachments);
            assert_eq!(
                count("Certificate enrolled:"),
                1,
                "{k}: {:#?}",
                issue.comments
            );
            assert!(
                count("Enrollment requested") <= 1,
                "{k}: {:#?}",
                issue.comments
            );
            assert_eq!(issue.summary, format!("Certificate enrolled:{cn}"));
        } else {
            unknown += 1;
            assert_eq!(count("Needs a human"), 1, "{k}: {:#?}", issue.comments);
            assert!(issue.attachments.is_empty(), "{k}");
        }
    }
    // `status` tells the operator the same.
    let v = tokio::task::spawn_blocking(status).await.unwrap();
    assert_eq!(v["workflow"]["enabled"], true);
    assert_eq!(
        v["workflow"]["enrollments"]["issued"].as_u64().unwrap_or(0),
        ok,
        "{v:#}"
    );
    assert_eq!(
        v["workflow"]["enrollment_outcome_unknown"]
            .as_array()
            .unwrap()
            .len(),
        unknown as usize,
        "{v:#}"
    );
    println!("{} issues after {kills} kills: {ok} enrolled once, {unknown} with an unknown outcome reported; {} enroll calls", keys.len(), enrolled.len());
}

/// `certs plan --json` through the running daemon.
fn plan_json(dir: &Path) -> serde_json::Value {
    let out = Command::new(EXE)
        .arg("--config-dir")
        .arg(dir)
        .args(["certs", "plan", "--json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// Runs the daemon undisturbed until every declaration is `ok` with `names`, or `unknown`
/// (60 s at most); returns the plan.
async fn settle_declared(
    dir: &Path,
    log: &Path,
    names: fn(usize) -> Vec<String>,
) -> serde_json::Value {
    let before = count(log, "started:");
    let mut child = spawn(dir, log);
    let d = dir.to_path_buf();
    let l = log.to_path_buf();
    let (ok, last) = tokio::task::spawn_blocking(move || {
        assert!(
            wait_for(10, || count(&l, "started:") > before),
            "the daemon did not start"
        );
        let done = |v: &serde_json::Value| {
            v.as_array().is_some_and(|items| {
                !items.is_empty()
                    && items.iter().all(|i| {
                        let n: usize = i["name"].as_str().unwrap()[1..].parse().unwrap();
                        let want: Vec<serde_json::Value> =
                            names(n).into_iter().map(serde_json::Value::from).collect();
                        i["action"] == "unknown"
                            || (i["action"] == "ok" && i["names"].as_array() == Some(&want))
                    })
            })
        };
        let ok = wait_for(60, || done(&plan_json(&d)));
        (ok, plan_json(&d))
    })
    .await
    .unwrap();
    stop(&mut child, log);
    assert!(ok, "did not converge: {last:#}");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_declared_enrollments_and_replacements_never_bills_twice() {
    let (kills, mut rng) = crash_settings(10);
    let env = Env::new(ScmSimConfig {
        issue_delay: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    // Every SCM answer takes a while: kills land inside enroll and replace calls.
    env.sim.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Default::default()
    });
    env.connector("[schedule]\ncron = \"* * * * * *\"\nrun_at_start = true\n");
    env.profile(
        "web",
        &format!("[deploy]\ndir = {:?}\n", env.path().join("deploy")),
    );
    let n = 8;
    let first = |i: usize| vec![format!("d{i}.example.com")];
    let second = |i: usize| vec![format!("d{i}.example.com"), format!("alt{i}.example.com")];
    let declare = |names: &dyn Fn(usize) -> Vec<String>| {
        std::fs::create_dir_all(env.path().join("certificates.d")).unwrap();
        for i in 0..n {
            let list: Vec<String> = names(i).iter().map(|s| format!("{s:?}")).collect();
            std::fs::write(
                env.path().join(format!("certificates.d/d{i}.toml")),
                format!(
                    "profile = \"web\"\nenroll = \"auto\"\nnames = [{}]\n",
                    list.join(", ")
                ),
            )
            .unwrap();
        }
    };
    let dir = env.path().to_path_buf();
    let log = env.path().join("daemon.log");

    // Enrollments, killed at random moments; then undisturbed until each is settled.
    declare(&first);
    kill_repeatedly(&dir, &log, kills, 1500, &mut rng).await;
    let plan = settle_declared(&dir, &log, first).await;
    let enrolled = env.sim.enrollments();
    for i in 0..n {
        let billed = enrolled
            .iter()
            .filter(|(cn, _)| *cn == format!("d{i}.example.com"))
            .count();
        assert!(billed <= 1, "d{i}: enrolled {billed} times");
    }
    let unknown_enroll = plan
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "unknown")
        .count();

    // Their names change: replacements, killed at random moments.
    declare(&second);
    kill_repeatedly(&dir, &log, kills, 1500, &mut rng).await;
    let plan = settle_declared(&dir, &log, |i| {
        vec![format!("d{i}.example.com"), format!("alt{i}.example.com")]
    })
    .await;
    let replaced = env.sim.replacements();
    let mut olds: Vec<&String> = replaced.iter().map(|(old, _)| old).collect();
    olds.sort();
    let before = olds.len();
    olds.dedup();
    assert_eq!(
        olds.len(),
        before,
        "a certificate replaced twice: {replaced:?}"
    );
    assert_eq!(
        env.sim.enrollments().len(),
        enrolled.len(),
        "a replacement is no enrollment"
    );
    let items = plan.as_array().unwrap();
    let ok = items.iter().filter(|i| i["action"] == "ok").count();
    let unknown = items.len() - ok;
    // Each settled declaration's files are in place.
    for i in items.iter().filter(|i| i["action"] == "ok") {
        let name = i["name"].as_str().unwrap();
        assert!(
            env.path()
                .join("deploy")
                .join(name)
                .join("privkey.pem")
                .exists(),
            "{name}"
        );
    }
    println!(
        "{n} declarations after {kills} kills during enrollments: {} enroll calls, {unknown_enroll} unknown; after {kills} kills during replacements: {} replace calls, {ok} ok, {unknown} unknown",
        enrolled.len(),
        replaced.len()
    );
}

/// As [`kill_9_never_bills_twice`], with `[admin]`: every unknown outcome a kill leaves is
/// settled by the daemon from SCM's records (adopted, or due again after
/// `settle_after_minutes` and renewed once), none is left to a person, none billed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_admin_settles_every_unknown_outcome_without_a_person() {
    let (kills, mut rng) = crash_settings(20);
    let env = Env::new(ScmSimConfig {
        issue_delay: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    env.connector("[schedule]\ncron = \"* * * * * *\"\nrun_at_start = true\n");
    let f = env.path().join("connector.toml");
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replace("[renewal]\n", "[renewal]\nsettle_after_minutes = 1\n");
    std::fs::write(&f, text).unwrap();
    env.profile(
        "web",
        &format!(
            "expiry_window_days = 30\n[admin]\nurl = \"{}\"\nclient_id = \"sim-admin\"\nclient_secret = \"sim-admin-secret\"\n",
            env.sim.admin_url()
        ),
    );
    env.sim.set_faults(Faults {
        latency: Duration::from_millis(15),
        ..Default::default()
    });
    let certs: i64 = std::env::var("CRASH_CERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let due: Vec<sectigo_core::names::CertId> = (0..certs)
        .map(|i| env.sim_cert(&format!("due{i}.example.com"), 1 + i % 25))
        .collect();
    let list = env.path().join("import.txt");
    std::fs::write(
        &list,
        due.iter().map(|i| format!("{i}\n")).collect::<String>(),
    )
    .unwrap();
    let dir = env.path().to_path_buf();
    let out = Command::new(EXE)
        .arg("--config-dir")
        .arg(&dir)
        .args(["certs", "import", "--profile", "web", "--from"])
        .arg(&list)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let log = env.path().join("daemon.log");
    kill_repeatedly(&dir, &log, kills, 400, &mut rng).await;
    let unknown_at_restarts = count(&log, "renewal outcome unknown: the daemon stopped");
    // Undisturbed, until everything is renewed: unknown outcomes settle within
    // settle_after_minutes (1) and a cycle.
    run_until_within(&dir, &log, 150, |v| {
        v["due"] == 0
            && v["by_state"].get("collecting").is_none()
            && v["by_state"].get("renew-requested").is_none()
            && v["by_state"].get("outcome-unknown").is_none()
            && v["daemon"].is_object()
    })
    .await;
    let store = env.store();
    assert!(
        env.sim.billed_twice().is_empty(),
        "billed twice: {:?}",
        env.sim.billed_twice()
    );
    let (mut adopted, mut declared) = (0, 0);
    for id in &due {
        let rec = store.get(id).unwrap().unwrap();
        assert!(
            matches!(rec.state, CertState::Superseded { .. }),
            "{id} ended {:?}",
            rec.state
        );
        assert_eq!(env.sim.billable_count(id), 1, "{id}");
        for h in &rec.history {
            if h.event
                .starts_with("outcome settled by the daemon from SCM's records: renewed as")
                || h.event
                    .contains("settled by the daemon from SCM's records: request")
            {
                adopted += 1;
            }
            if h.event.starts_with(
                "outcome settled by the daemon from SCM's records: SCM did not renew it",
            ) {
                declared += 1;
            }
        }
    }
    println!("after {kills} kills: {unknown_at_restarts} unknown outcomes at restarts, settled without a person: {adopted} adopted from the request marker, {declared} declared not renewed and renewed once; {} certificates each billed once", due.len());
    assert_eq!(adopted + declared, unknown_at_restarts);
}
