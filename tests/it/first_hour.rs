//! The operator's first hour (issue #27), the daemon's side, with the real binary: profiles
//! renamed by hand and by command (also as root against a daemon run as a service user),
//! `run --once` and a due import while the daemon runs, fixes that take effect at once,
//! `certs deploy`, and certificates named by their NAME.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{signal, wait_bounded, Env};
use crate::daemon::{cli, import, log_has, spawn, wait_for, LogOnPanic};
use sectigo_sim::ScmSimConfig;

/// One command, off the test's runtime.
async fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let d = dir.to_path_buf();
    let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        cli(&d, &a)
    })
    .await
    .unwrap()
}

/// A daemon on `env`'s directory, logging to `daemon.log`, whose schedule never fires by
/// itself; waits until its control socket answers.
fn start_daemon(env: &Env) -> (std::process::Child, PathBuf) {
    let log = env.path().join("daemon.log");
    let child = spawn(env.path(), &log, None);
    wait_for("the daemon's start", 20, || log_has(&log, "started:"));
    wait_for("the control socket", 5, || env.socket().exists());
    (child, log)
}

fn quiet_schedule(env: &Env) {
    env.connector("[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n");
}

fn stop(mut child: std::process::Child) {
    signal(&child, "TERM");
    assert!(
        wait_bounded(&mut child, 30).is_some(),
        "the daemon stops on SIGTERM"
    );
}

/// The issue's case: a profile `db` with the same client_id and scm_url as `web` was removed
/// by an earlier reload; `mv web.toml frontend.toml` then moves web's certificates to
/// `frontend` (never db's). Two candidates move nothing, and `status --check` names the
/// `profiles rename` that settles it; that command then moves the state only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_by_hand_is_never_taken_for_a_profile_removed_earlier() {
    let env = Env::new(ScmSimConfig::default()).await;
    quiet_schedule(&env);
    env.profile("web", "");
    env.profile("db", "");
    let dir = env.path().to_path_buf();
    let pd = dir.join("profiles.d");
    let id = env.sim_cert("shop.example.com", 200).to_string();
    let (child, log) = start_daemon(&env);
    let _show = LogOnPanic(&log);
    let (d, i) = (dir.clone(), id.clone());
    tokio::task::spawn_blocking(move || import(&d, "web", &i))
        .await
        .unwrap();

    // The first reload: db is removed.
    std::fs::remove_file(pd.join("db.toml")).unwrap();
    let (code, out, err) = run(&dir, &["reload"]).await;
    assert_eq!(code, 0, "{out}{err}");
    // The second: web's file is renamed by hand.
    std::fs::rename(pd.join("web.toml"), pd.join("frontend.toml")).unwrap();
    let (code, out, err) = run(&dir, &["reload"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("profile file renamed by hand: \"web\" is now \"frontend\""),
        "{text}"
    );
    assert!(!text.contains("\"db\" is now"), "{text}");
    let (_, out, _) = run(&dir, &["certs", "show", &id]).await;
    assert!(out.contains("profile:      frontend"), "{out}");
    let (code, out, _) = run(&dir, &["status", "--check"]).await;
    assert_eq!(code, 0, "{out}");

    // Two candidates in one reload: nothing moves; the problem names the command.
    std::fs::rename(pd.join("frontend.toml"), pd.join("x.toml")).unwrap();
    env.profile("y", "");
    let (code, out, err) = run(&dir, &["reload"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        log_has(
            &log,
            "run `sectigo-connector profiles rename frontend NEW` with NEW its new name"
        ),
        "the log names the command"
    );
    let (code, out, _) = run(&dir, &["status", "--check"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("orphaned: 1 certificate of profile \"frontend\"")
            && out.contains("`sectigo-connector profiles rename frontend x`")
            && out.contains("`sectigo-connector profiles rename frontend y`"),
        "{out}"
    );
    let (_, out, _) = run(&dir, &["status"]).await;
    assert!(
        out.contains("`sectigo-connector profiles rename frontend x`"),
        "{out}"
    );

    // The command it names: the file was renamed already, so only the state moves.
    let (code, out, err) = run(&dir, &["profiles", "rename", "frontend", "x"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("1 certificate moved") && out.contains("configuration reloaded"),
        "{out}"
    );
    let (code, out, _) = run(&dir, &["status", "--check"]).await;
    assert_eq!(code, 0, "{out}");
    let (_, out, _) = run(&dir, &["certs", "show", &id]).await;
    assert!(out.contains("profile:      x"), "{out}");

    // A NEW that exists is refused, and nothing changes.
    let (code, _, err) = run(&dir, &["profiles", "rename", "x", "y"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("y.toml already exists"), "{err}");
    assert!(pd.join("x.toml").exists() && pd.join("y.toml").exists());
    stop(child);
}

/// Whether the tests run as root (CI does).
fn root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The packaged layout: the configuration root's (0755 directories, profiles 0640 root:GROUP),
/// the daemon run as a service user owning the state; `profiles rename` run as root renames
/// the file itself, and the daemon moves the state and reloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_rename_works_as_root_against_a_daemon_run_as_the_service_user() {
    if !root() {
        eprintln!("not root: the packaged layout (a service user) cannot be made; skipped");
        return;
    }
    const USER: &str = "sectigo-it-svc";
    let exists = std::process::Command::new("id")
        .arg("-u")
        .arg(USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let ok = std::process::Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args(["--shell", "/usr/sbin/nologin", USER])
            .status()
            .is_ok_and(|s| s.success());
        // A parallel run may have made it meanwhile.
        assert!(
            ok || std::process::Command::new("id")
                .arg("-u")
                .arg(USER)
                .status()
                .is_ok_and(|s| s.success()),
            "useradd {USER}"
        );
    }
    let env = Env::new(ScmSimConfig::default()).await;
    let dir = env.path().to_path_buf();
    let (state, run_dir) = (dir.join("state"), dir.join("run"));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&run_dir).unwrap();
    let sh = |script: &str| {
        let ok = std::process::Command::new("sh")
            .args(["-c", script])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{script}");
    };
    std::fs::write(
        dir.join("connector.toml"),
        format!(
            "[state]\ndir = {state:?}\ncache_mb = 16\n[scm]\ntimeout_secs = 5\n[renewal]\ncollect_poll_secs = 1\n[control]\nsocket = {:?}\n[log]\nlevel = \"debug\"\nformat = \"text\"\n[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n",
            run_dir.join("control.sock")
        ),
    )
    .unwrap();
    env.profile("web", "");
    let d = dir.display();
    sh(&format!(
        "chown -R root:root {d} && chmod 0755 {d} {d}/profiles.d \
         && chgrp {USER} {d}/connector.toml {d}/profiles.d/web.toml \
         && chmod 0640 {d}/connector.toml {d}/profiles.d/web.toml \
         && chown {USER}:{USER} {d}/state {d}/run && chmod 0750 {d}/state {d}/run"
    ));
    let log = dir.join("daemon.log");
    let _show = LogOnPanic(&log);
    let mut child = std::process::Command::new("runuser")
        .args(["-u", USER, "--"])
        .arg(crate::daemon::EXE)
        .arg("--config-dir")
        .arg(&dir)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for("the daemon's start", 20, || log_has(&log, "started:"));
    let id = env.sim_cert("shop.example.com", 200).to_string();
    let (d, i) = (dir.clone(), id.clone());
    tokio::task::spawn_blocking(move || import(&d, "web", &i))
        .await
        .unwrap();

    let (code, out, err) = run(&dir, &["profiles", "rename", "web", "www"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("1 certificate moved") && out.contains("configuration reloaded"),
        "{out}"
    );
    let pd = dir.join("profiles.d");
    assert!(pd.join("www.toml").exists() && !pd.join("web.toml").exists());
    let (_, out, _) = run(&dir, &["certs", "show", &id]).await;
    assert!(out.contains("profile:      www"), "{out}");
    let (code, out, _) = run(&dir, &["status", "--check"]).await;
    assert_eq!(code, 0, "{out}");

    // Asked through the socket to move a state that the files do not show renamed, the
    // daemon refuses, and nothing moves.
    let req = sectigo::api::Request::ProfilesRename {
        old: crate::common::pn("www"),
        new: crate::common::pn("other"),
    };
    let reply = sectigo::api::client::send(&sectigo::api::client::Endpoint::of(&dir), &req)
        .await
        .unwrap()
        .expect("the daemon answers");
    let e = reply.unwrap_err();
    assert!(e.message.contains("www.toml is still there"), "{e}");
    let (_, out, _) = run(&dir, &["certs", "show", &id]).await;
    assert!(out.contains("profile:      www"), "{out}");
    signal(&child, "TERM");
    assert!(wait_bounded(&mut child, 30).is_some());
}

/// `certs deploy ID|NAME`: a certificate imported before its profile had `[deploy]` is put in
/// place (files, then the hook, with certbot's variables) through the daemon, and again by the
/// command itself when no daemon runs; `certs export` and `renew` take the NAME too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_deploy_puts_a_certificate_in_place_by_its_name() {
    let env = Env::new(ScmSimConfig::default()).await;
    quiet_schedule(&env);
    env.profile("web", "expiry_window_days = 30");
    let dir = env.path().to_path_buf();
    let id = env.sim_cert("shop.example.com", 5).to_string();
    let (code, out, err) = run(
        &dir,
        &[
            "certs",
            "import",
            "--profile",
            "web",
            "--cert-id",
            &id,
            "--name",
            "shop",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (child, log) = start_daemon(&env);
    let _show = LogOnPanic(&log);

    // No [deploy] yet: the command says where to add it.
    let (code, _, err) = run(&dir, &["certs", "deploy", "shop"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("has no [deploy] section") && err.contains("web.toml"),
        "{err}"
    );

    let out_dir = dir.join("certs");
    let hook_log = dir.join("hook.log");
    env.profile(
        "web",
        &format!(
            "expiry_window_days = 30\n[deploy]\ndir = {out_dir:?}\nhook = [\"/bin/sh\", \"-c\", \"echo \\\"$RENEWED_LINEAGE $RENEWED_DOMAINS $SECTIGO_CERT_ID\\\" >> {}\"]",
            hook_log.display()
        ),
    );
    let (code, out, err) = run(&dir, &["reload"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&dir, &["certs", "deploy", "shop"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("certificate {id} deployed to"))
            && out.contains("its hook succeeded"),
        "{out}"
    );
    let lineage = out_dir.join("shop");
    for f in ["cert.pem", "chain.pem", "fullchain.pem"] {
        assert!(lineage.join(f).exists(), "{f}");
    }
    let hooked = std::fs::read_to_string(&hook_log).unwrap();
    assert_eq!(
        hooked.trim(),
        format!("{} shop.example.com {id}", lineage.display())
    );
    let (_, out, _) = run(&dir, &["certs", "show", "shop"]).await;
    assert!(out.contains("deployed to"), "the history says so: {out}");

    // `certs export NAME` through the daemon.
    let exported = dir.join("exported");
    std::fs::create_dir_all(&exported).unwrap();
    let out_arg = exported.display().to_string();
    let (code, out, err) = run(&dir, &["certs", "export", "shop", "--out", &out_arg]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(exported.join("shop/fullchain.pem").exists());

    // `renew NAME`: the certificate is due, so no --yes is needed.
    let (code, out, err) = run(&dir, &["renew", "shop"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("certificate {id} renewed")), "{out}");
    assert_eq!(env.sim.billable_count(&id), 1);
    // A name that names nothing renews nothing.
    let (code, _, err) = run(&dir, &["renew", "nosuch.example.com", "--yes"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no certificate with id or name"), "{err}");
    stop(child);

    // The daemon stopped: the command deploys itself (a server rebuilt: the files are gone).
    std::fs::remove_dir_all(&out_dir).unwrap();
    std::fs::remove_file(&hook_log).unwrap();
    let (code, out, err) = run(&dir, &["certs", "deploy", "shop"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out_dir.join("shop/fullchain.pem").exists());
    assert!(std::fs::read_to_string(&hook_log)
        .unwrap()
        .contains("shop.example.com"));
}

/// `certs import` of a certificate that is due, through the daemon: the daemon renews it now,
/// not at its next scheduled cycle (here a year away), so `certs show`'s "renew now" is true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_import_through_the_daemon_is_renewed_now() {
    let env = Env::new(ScmSimConfig::default()).await;
    quiet_schedule(&env);
    env.profile("web", "expiry_window_days = 30");
    let dir = env.path().to_path_buf();
    let (child, log) = start_daemon(&env);
    let _show = LogOnPanic(&log);
    let later = env.sim_cert("later.example.com", 200).to_string();
    let (d, l) = (dir.clone(), later.clone());
    tokio::task::spawn_blocking(move || import(&d, "web", &l))
        .await
        .unwrap();
    assert!(
        !log_has(&log, "cycle started"),
        "a certificate not due starts no cycle"
    );
    let due = env.sim_cert("due.example.com", 5).to_string();
    let (d, i) = (dir.clone(), due.clone());
    tokio::task::spawn_blocking(move || import(&d, "web", &i))
        .await
        .unwrap();
    let sim = &env.sim;
    wait_for("the renewal of the due import", 15, || {
        sim.billable_count(&due) == 1
    });
    assert!(log_has(
        &log,
        "an imported certificate is due: running a cycle now"
    ));
    assert_eq!(env.sim.billable_count(&later), 0);
    stop(child);
}

/// `run --once` while the daemon runs: the daemon runs one cycle now and the command prints
/// its summary, with `run --once`'s exit codes (1 when something failed or needs a person, 0
/// when nothing does), instead of exit 75.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_while_the_daemon_runs_is_a_cycle_of_the_daemon() {
    let (env, dir, bad) = crate::daemon::one_due_certificate().await;
    quiet_schedule(&env);
    let ok = env.sim_cert("ok.example.com", 4).to_string();
    let (d, i) = (dir.clone(), ok.clone());
    tokio::task::spawn_blocking(move || import(&d, "web", &i))
        .await
        .unwrap();
    let (child, log) = start_daemon(&env);
    let _show = LogOnPanic(&log);
    assert_eq!(env.sim.billable_total(), 0, "nothing runs by itself");

    // SCM refuses one of the two: the cycle renews the other, and the command exits 1.
    let mut f = sectigo_sim::Faults::default();
    f.permanent.insert(
        bad.clone(),
        (
            400,
            -180,
            "The certificate profile does not allow renewal".into(),
        ),
    );
    env.sim.set_faults(f);
    let (code, out, err) = run(&dir, &["run", "--once"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&ok)
            && out.contains("renew now: inside the expiry window")
            && out.contains("cycle: 1 renewed, 1 renewal requests, 1 failed"),
        "{out}"
    );
    assert!(
        err.contains(&format!("failed: {bad}:"))
            && err.contains(&format!("needs a person: certificate {bad} (web)")),
        "{err}"
    );
    assert_eq!(env.sim.billable_count(&ok), 1);
    assert!(log_has(&log, "run --once: running a cycle now"));
    // The log and `certs show` say the same next step (one source: the record's next attempt
    // and the policy).
    let (_, shown, _) = run(&dir, &["certs", "show", &bad]).await;
    let next = shown
        .lines()
        .find_map(|l| l.strip_prefix("next action:  "))
        .expect("a next action")
        .to_string();
    assert!(next.starts_with("renew at "), "{next}");
    let text = std::fs::read_to_string(&log).unwrap();
    let refused = text
        .lines()
        .find(|l| l.contains("refused by SCM (attempt 1)"))
        .expect("the refusal in the log");
    assert!(
        refused.contains(&format!("next action: {next}")),
        "{refused} / {next}"
    );

    // Fixed in SCM and renewed by hand: nothing needs a person, exit 0.
    env.sim.set_faults(sectigo_sim::Faults::default());
    let (code, out, err) = run(&dir, &["renew", &bad, "--yes"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&dir, &["run", "--once"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("cycle: 0 renewed, 0 renewal requests, 0 failed"),
        "{out}"
    );
    stop(child);
}

/// A fixed Jira token takes effect at `reload`, and the updates that waited for their retry
/// (5 minutes after a refused token) are delivered then, not at their backoff time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_jira_token_takes_effect_at_reload() {
    let jira = sectigo_sim::JiraSim::start(
        sectigo_core::config::JiraFlavor::Cloud,
        "bot@example.com",
        "jira-token",
    )
    .await
    .unwrap();
    jira.add_issue("CERT-1");
    let (env, dir, id) = crate::daemon::one_due_certificate().await;
    let jira_cfg = |token: &str| {
        format!(
            "[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n[jira]\nurl = \"{}\"\nemail = \"bot@example.com\"\ntoken = \"{token}\"\n",
            jira.url()
        )
    };
    env.connector(&jira_cfg("wrong-token"));
    let (child, log) = start_daemon(&env);
    let _show = LogOnPanic(&log);
    let (code, out, err) = run(&dir, &["certs", "link", &id, "CERT-1"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&dir, &["renew", &id]).await;
    assert_eq!(code, 0, "{out}{err}");
    wait_for("the refused token", 15, || {
        log_has(&log, "Jira updates wait, next try at")
    });
    assert!(jira.issue("CERT-1").unwrap().comments.is_empty());

    env.connector(&jira_cfg("jira-token"));
    let (code, out, err) = run(&dir, &["reload"]).await;
    assert_eq!(code, 0, "{out}{err}");
    wait_for("the Jira comments after the reload", 20, || {
        jira.issue("CERT-1").is_some_and(|i| !i.comments.is_empty())
    });
    assert!(log_has(
        &log,
        "Jira updates waiting for a retry are tried now"
    ));
    stop(child);
}

/// A renewal asked for by hand (`renew ID --yes`) of a certificate that is not due, which SCM
/// refuses: the person who asked hears it (exit 1), its history keeps it, and it is not a
/// standing problem: `status --check` stays green, nothing waits out a backoff, and the log
/// and `certs show` say the same next step (the window's opening).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_renewal_by_hand_of_a_certificate_not_due_is_no_standing_problem() {
    let env = Env::new(ScmSimConfig::default()).await;
    quiet_schedule(&env);
    env.profile("web", "expiry_window_days = 30");
    let dir = env.path().to_path_buf();
    let id = env.sim_cert("later.example.com", 120).to_string();
    let (d, i) = (dir.clone(), id.clone());
    tokio::task::spawn_blocking(move || import(&d, "web", &i))
        .await
        .unwrap();
    let (child, log) = start_daemon(&env);
    let _show = LogOnPanic(&log);
    let mut f = sectigo_sim::Faults::default();
    f.permanent.insert(
        id.clone(),
        (
            400,
            -180,
            "The certificate profile does not allow renewal".into(),
        ),
    );
    env.sim.set_faults(f);
    let (code, out, err) = run(&dir, &["renew", &id, "--yes"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("does not allow renewal"), "{err}");

    let (code, out, _) = run(&dir, &["status", "--check"]).await;
    assert_eq!(code, 0, "not a standing problem: {out}");
    let (code, out, err) = run(&dir, &["certs", "show", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("state:        active")
            && out.contains("renewal asked for by hand not made")
            && out.contains("when the expiry window opens"),
        "{out}"
    );
    // One next step, said the same way by the log and by `certs show`.
    let window = out
        .lines()
        .find_map(|l| l.strip_prefix("next action:  renew at "))
        .and_then(|l| l.split_whitespace().next())
        .map(|w| w.trim_end_matches(':').to_string())
        .expect("the window's date");
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("asked for by hand not made"))
        .expect("the log says so");
    assert!(
        line.contains(&format!("not due before {window}")),
        "{line} / {window}"
    );
    assert!(!line.contains("next attempt"), "{line}");
    stop(child);
}

/// Under the packaged unit hooks go to the root helper: when it answers, the daemon takes the
/// answer at once (it looks at the hooks directory while a hook is handed), not at its next
/// collection pass (here an hour away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_helpers_answer_is_taken_at_once() {
    let env = Env::new(ScmSimConfig::default()).await;
    quiet_schedule(&env);
    let conn = env.path().join("connector.toml");
    let text = std::fs::read_to_string(&conn)
        .unwrap()
        .replace("collect_poll_secs = 1", "collect_poll_secs = 3600");
    std::fs::write(&conn, text).unwrap();
    let dir = env.path().to_path_buf();
    let (out_dir, hooks, hook_log) = (dir.join("certs"), dir.join("hooks"), dir.join("hook.log"));
    env.profile(
        "web",
        &format!(
            "expiry_window_days = 30\n[deploy]\ndir = {out_dir:?}\nhook = [\"/bin/sh\", \"-c\", \"echo $SECTIGO_CERT_ID >> {}\"]",
            hook_log.display()
        ),
    );
    let id = env.sim_cert("shop.example.com", 5).to_string();
    let (d, i) = (dir.clone(), id.clone());
    tokio::task::spawn_blocking(move || import(&d, "web", &i))
        .await
        .unwrap();
    let log = dir.join("daemon.log");
    let _show = LogOnPanic(&log);
    let child = std::process::Command::new(crate::daemon::EXE)
        .arg("--config-dir")
        .arg(&dir)
        .arg("run")
        .arg("--hooks-via")
        .arg(&hooks)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for("the daemon's start", 20, || log_has(&log, "started:"));
    wait_for("the control socket", 5, || env.socket().exists());

    let (code, out, err) = run(&dir, &["renew", &id]).await;
    assert_eq!(code, 0, "{out}{err}");
    wait_for("the hook handed to the helper", 15, || {
        std::fs::read_dir(&hooks).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "request")))
        })
    });
    // The helper (root, in the package) runs the hook and answers.
    let (code, out, err) = run(&dir, &["run-hooks", "--from", hooks.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(hook_log.exists());
    wait_for("the helper's answer taken", 10, || {
        log_has(&log, "deploy hook \"/bin/sh\" succeeded")
    });
    let (code, out, _) = run(&dir, &["status", "--check"]).await;
    assert_eq!(code, 0, "{out}");
    stop(child);
}

/// SIGTERM with a renewal in flight: the daemon says at once what it waits for (SCM's answer
/// to that renewal), and again while it lasts, instead of seconds of silence; the answer is
/// recorded before it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_says_what_it_waits_for() {
    let (env, dir, id) = crate::daemon::one_due_certificate().await;
    quiet_schedule(&env);
    let (mut child, log) = start_daemon(&env);
    let _show = LogOnPanic(&log);
    env.sim.set_faults(sectigo_sim::Faults {
        latency: Duration::from_secs(4),
        ..Default::default()
    });
    let renew = std::process::Command::new(crate::daemon::EXE)
        .arg("--config-dir")
        .arg(&dir)
        .args(["renew", &id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the renewal in flight", 15, || {
        log_has(&log, "renewing due.example.com")
    });
    signal(&child, "TERM");
    let status = tokio::task::spawn_blocking(move || wait_bounded(&mut child, 40))
        .await
        .unwrap()
        .expect("stopped");
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!(
            "stopping: waiting up to 10s for 1 command: SCM's answer to the renewal of due.example.com ({id})"
        )),
        "{text}"
    );
    assert!(
        text.contains("stopping: still waiting for 1 command"),
        "{text}"
    );
    let mut renew = renew;
    let _ = wait_bounded(&mut renew, 10);
    env.sim.set_faults(sectigo_sim::Faults::default());
    let (_, out, _) = run(&dir, &["certs", "show", &id]).await;
    assert!(
        out.contains("renewal requested: SCM certificate") && !out.contains("unknown"),
        "{out}"
    );
}

/// A `renew` against a slow SCM, on a terminal: after two seconds the command says what it
/// waits for, rather than nothing. (`script` gives it a terminal.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_renew_on_a_terminal_says_what_it_waits_for() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("no script(1): no terminal to run the command on; skipped");
        return;
    }
    let (env, dir, id) = crate::daemon::one_due_certificate().await;
    env.sim.set_faults(sectigo_sim::Faults {
        latency: Duration::from_secs(3),
        ..Default::default()
    });
    let cmd = format!(
        "{} --config-dir {} renew {id}",
        crate::daemon::EXE,
        dir.display()
    );
    let o = tokio::task::spawn_blocking(move || {
        crate::common::run_bounded(
            std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]),
            60,
        )
    })
    .await
    .unwrap();
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout
            .contains(&format!("waiting for SCM to answer the renewal of {id}")),
        "{}",
        o.stdout
    );
    assert_eq!(env.sim.billable_count(&id), 1);
}
