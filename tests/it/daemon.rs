//! The real binary as a daemon: start, log, control socket, reload on SIGHUP, stop on SIGTERM,
//! and the systemd notifications it sends.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{run_bounded, signal, wait_bounded, Env};
use sectigo_sim::ScmSimConfig;

pub(crate) const EXE: &str = env!("CARGO_BIN_EXE_sectigo-connector");

/// Runs one command; a command still running after a minute fails the test.
pub(crate) fn cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let o = run_bounded(
        Command::new(EXE).arg("--config-dir").arg(dir).args(args),
        60,
    );
    (o.code, o.stdout, o.stderr)
}

/// Prints the daemon's log when the test fails, so that a failure in CI shows what the daemon
/// was doing.
pub(crate) struct LogOnPanic<'a>(pub(crate) &'a Path);
impl Drop for LogOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.0).unwrap_or_default();
            eprintln!(
                "--- the daemon's log ({}):\n{log}--- end of log",
                self.0.display()
            );
        }
    }
}

pub(crate) fn spawn(dir: &Path, log: &Path, notify: Option<&Path>) -> Child {
    let mut c = Command::new(EXE);
    c.arg("--config-dir")
        .arg(dir)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    if let Some(n) = notify {
        c.env("NOTIFY_SOCKET", n).env("WATCHDOG_USEC", "300000");
    }
    c.spawn().unwrap()
}

/// `certs import` of one certificate into `profile`; it must succeed.
pub(crate) fn import(dir: &Path, profile: &str, id: &str) {
    let (code, out, err) = cli(
        dir,
        &["certs", "import", "--profile", profile, "--cert-id", id],
    );
    assert_eq!(code, 0, "import {id}: {out}{err}");
}

/// An environment whose profile "web" (a 30-day window) tracks one certificate 5 days from
/// expiry: (the environment, its directory, the certificate's id).
pub(crate) async fn one_due_certificate() -> (Env, std::path::PathBuf, String) {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "expiry_window_days = 30");
    let id = env.sim_cert("due.example.com", 5).to_string();
    let dir = env.path().to_path_buf();
    let (d, i) = (dir.clone(), id.clone());
    tokio::task::spawn_blocking(move || import(&d, "web", &i))
        .await
        .unwrap();
    (env, dir, id)
}

/// Polls `f` until it is true or the deadline passes.
pub(crate) fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

pub(crate) fn log_has(log: &Path, s: &str) -> bool {
    std::fs::read_to_string(log).unwrap_or_default().contains(s)
}

fn notifications(sock: &UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_commands_reload_and_stop() {
    let env = Env::new(ScmSimConfig::default()).await;
    // Port 0: the daemon binds a free port and logs it (a port picked here and released could
    // be taken by another test's server before the daemon binds it).
    env.connector("[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    env.profile("web", "expiry_window_days = 30");
    let cert = env.sim_cert("due.example.com", 5);
    let later = env.sim_cert("later.example.com", 200);
    // Imported before the daemon starts (with the daemon running, a due import is renewed at
    // once: `first_hour` tests that); `renew` renews it through the daemon below.
    let (code, out, err) = cli(
        env.path(),
        &[
            "certs",
            "import",
            "--profile",
            "web",
            "--cert-id",
            &cert,
            "--issue",
            "CERT-7",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("imported 1"), "{out}");
    let log = env.path().join("daemon.log");
    let _show = LogOnPanic(&log);
    let notify_path = env.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Read notifications as they come, as systemd does.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (r, n) = (received.clone(), notify.try_clone().unwrap());
    let reader = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            let batch = notifications(&n);
            let stop = batch.iter().any(|m| m.contains("STOPPING=1"));
            r.lock().unwrap().extend(batch);
            if stop {
                break;
            }
        }
    });

    let dir = env.path().to_path_buf();
    let mut child = spawn(&dir, &log, Some(&notify_path));
    wait_for("start", 10, || log_has(&log, "started:"));
    assert!(
        log_has(&log, "profile \"web\" loaded from"),
        "one line per profile"
    );
    // PR_SET_DUMPABLE: the kernel says the process holding the secrets is not dumpable.
    assert!(log_has(&log, "core dumps off"), "not dumpable");
    wait_for("the control socket", 5, || env.socket().exists());
    let metrics_port: u16 = std::fs::read_to_string(&log)
        .unwrap()
        .split("metrics on http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next()?.parse().ok())
        .expect("the log names the metrics address");

    // Commands go through the running daemon (it holds the state).
    let d = dir.clone();
    let l = later.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        cli(
            &d,
            &["certs", "import", "--profile", "web", "--cert-id", &l],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("imported 1"), "{out}");
    let d = dir.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || cli(&d, &["status"]))
        .await
        .unwrap();
    assert_eq!(code, 0);
    assert!(out.contains("daemon:        running"), "{out}");
    assert!(out.contains("2 tracked"), "{out}");
    let d = dir.clone();
    let c = cert.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || cli(&d, &["certs", "show", &c]))
        .await
        .unwrap();
    assert_eq!(code, 0);
    assert!(
        out.contains("CN=due.example.com")
            && out.contains("CERT-7")
            && out.contains("next action:  renew now: inside the expiry window"),
        "{out}"
    );
    let d = dir.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || cli(&d, &["certs", "list", "--due"]))
        .await
        .unwrap();
    assert_eq!(code, 0);
    assert!(
        out.contains("due.example.com") && !out.contains("later.example.com"),
        "{out}"
    );
    let d = dir.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || cli(&d, &["certs", "show", "424242"]))
        .await
        .unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no certificate with id \"424242\""), "{err}");

    // `renew ID` through the daemon, then the renewal is recorded.
    let d = dir.clone();
    let c = cert.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || cli(&d, &["renew", &c]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("renewed: new certificate"), "{out}");
    assert_eq!(env.sim.billable_count(&cert), 1);

    // Billable beyond the ordinary needs --yes: a certificate not due, several at once, and
    // a force renewal are refused with what they would bill (no terminal here to ask).
    let d = dir.clone();
    let (l, c) = (later.clone(), cert.clone());
    let refused = tokio::task::spawn_blocking(move || {
        [
            cli(&d, &["renew", &l]),
            cli(&d, &["renew", &c, &l]),
            cli(&d, &["force-renew", "web"]),
        ]
    })
    .await
    .unwrap();
    assert_eq!(refused[0].0, 2, "{:?}", refused[0]);
    assert!(
        refused[0].2.contains("renew would bill 1 renewal")
            && refused[0].2.contains("not due (outside its expiry window)")
            && refused[0].2.contains("--yes"),
        "{}",
        refused[0].2
    );
    assert_eq!(refused[1].0, 2);
    assert!(
        refused[1].2.contains("renew would bill 2 renewals"),
        "{}",
        refused[1].2
    );
    assert_eq!(refused[2].0, 2);
    assert!(
        refused[2]
            .2
            .contains("force-renew web starts 2 billable renewals"),
        "{}",
        refused[2].2
    );
    assert_eq!(
        env.sim.billable_count(&later),
        0,
        "nothing billed without --yes"
    );

    // force-renew starts a cycle at once (the schedule here is yearly).
    let d = dir.clone();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || cli(&d, &["force-renew", "web", "--yes"]))
            .await
            .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    wait_for("the force renewal", 10, || {
        log_has(&log, "force renewal of profile \"web\" complete")
    });
    assert_eq!(
        env.sim.billable_count(&later),
        1,
        "the force renewal renewed the far-from-due certificate"
    );

    // profiles rename: the file and the certificates move together; the daemon reloads.
    let d = dir.clone();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || cli(&d, &["profiles", "rename", "web", "www"]))
            .await
            .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        env.path().join("profiles.d/www.toml").exists()
            && !env.path().join("profiles.d/web.toml").exists()
    );
    wait_for("the reload after the rename", 5, || {
        log_has(&log, "configuration reloaded: 1 profiles")
    });
    let d = dir.clone();
    let (_, out, _) = tokio::task::spawn_blocking(move || cli(&d, &["profiles", "list"]))
        .await
        .unwrap();
    assert!(
        out.lines()
            .any(|l| l.starts_with("www ") && l.split_whitespace().nth(1) == Some("2")),
        "{out}"
    );
    assert!(!out.contains("orphaned"), "{out}");

    // The inventory: live certificates by default, with the days they have left; the
    // superseded ones with --all or --state; a name finds its live certificate.
    let d = dir.clone();
    let outs = tokio::task::spawn_blocking(move || {
        [
            cli(&d, &["certs", "list"]),
            cli(&d, &["certs", "list", "--all"]),
            cli(&d, &["certs", "list", "--state", "superseded"]),
            cli(&d, &["certs", "list", "--profile", "nosuch"]),
            cli(&d, &["certs", "list", "--state", "asleep"]),
            cli(&d, &["certs", "show", "due.example.com"]),
        ]
    })
    .await
    .unwrap();
    let live = &outs[0].1;
    assert!(
        live.contains(" DAYS ") && live.ends_with("2 certificates\n"),
        "{live}"
    );
    assert!(!live.contains("superseded"), "{live}");
    assert!(outs[1].1.ends_with("5 certificates\n"), "{}", outs[1].1);
    assert!(outs[2].1.ends_with("3 certificates\n"), "{}", outs[2].1);
    assert_eq!(
        outs[3].0, 2,
        "an unknown profile is an error: {:?}",
        outs[3]
    );
    assert!(
        outs[3].2.contains("no profile named \"nosuch\""),
        "{}",
        outs[3].2
    );
    assert_eq!(outs[4].0, 2);
    assert!(outs[4].2.contains("use one of active"), "{}", outs[4].2);
    assert_eq!(outs[5].0, 0, "{}", outs[5].2);
    assert!(
        outs[5].1.contains("CN=due.example.com") && outs[5].1.contains("state:        active"),
        "{}",
        outs[5].1
    );

    // Metrics: per-certificate series and the counters.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let text = http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "sectigo_certificate_not_after_seconds{profile=\"www\",cert_id=\"",
        "sectigo_certificate_next_renewal_seconds{",
        "sectigo_renewals_total{result=\"requested\"} 3",
        "sectigo_renewals_total{result=\"renewed\"} 3",
        "sectigo_certificates{state=\"superseded\"} 3",
        "sectigo_certificates{state=\"active\"} 2",
        "sectigo_jira_pending_updates 0",
        "sectigo_last_cycle_finished_seconds ",
    ] {
        assert!(text.contains(want), "metrics lack {want:?}:\n{text}");
    }

    // A local user holding half-sent requests: the daemon keeps at most 16 of them open, and
    // drops them after the header timeout, so its file handles are never starved.
    // The daemon is not dumpable, so only root may list its descriptors.
    let fds = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()
            .map(|d| d.count())
    };
    let before = fds(child.id());
    let mut held = Vec::new();
    for _ in 0..200 {
        use tokio::io::AsyncWriteExt as _;
        let connect = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port));
        if let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
            let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
            held.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    match (before, fds(child.id())) {
        (Some(before), Some(during)) => assert!(
            during <= before + 16 + 4,
            "{during} file handles with 200 half-sent requests (before: {before})"
        ),
        _ => eprintln!(
            "not root: the daemon's descriptors cannot be counted; checking the scrape only"
        ),
    }
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => break,
            _ if Instant::now() < end => tokio::time::sleep(Duration::from_millis(200)).await,
            other => panic!("no scrape within 10 s of the flood: {other:?}"),
        }
    }
    drop(held);

    // `status --check` (monitoring): a healthy daemon needs nobody.
    let d = dir.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || cli(&d, &["status", "--check"]))
        .await
        .unwrap();
    assert_eq!((code, out.as_str()), (0, "OK: nothing needs a person\n"));

    // A valid new configuration replaces the old one.
    env.profile("db", "");
    signal(&child, "HUP");
    wait_for("reload", 5, || {
        log_has(&log, "configuration reloaded: 2 profiles")
    });
    // An invalid one is refused with its errors; the old one stays in force.
    std::fs::write(env.path().join("profiles.d/bad.toml"), "client_id = 5\n").unwrap();
    signal(&child, "HUP");
    wait_for("refused reload", 5, || {
        log_has(
            &log,
            "configuration reload failed, keeping the running configuration",
        )
    });
    assert!(
        log_has(&log, "bad.toml: key `client_id`"),
        "the reload error names the file and key"
    );
    let d = dir.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || cli(&d, &["profiles", "list"]))
        .await
        .unwrap();
    assert_eq!(code, 0);
    assert!(
        out.contains("db") && out.contains("www") && !out.contains("bad"),
        "{out}"
    );
    // `reload` (systemd's ExecReload=) waits for the verdict: 78 with the errors ...
    let d = dir.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || cli(&d, &["reload"]))
        .await
        .unwrap();
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("refused") && out.contains("bad.toml: key `client_id`"),
        "{out}"
    );
    let d = dir.clone();
    let (_, out, _) = tokio::task::spawn_blocking(move || cli(&d, &["status"]))
        .await
        .unwrap();
    assert!(
        out.contains("last reload:") && out.contains("(reload command): refused"),
        "{out}"
    );
    let d = dir.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || cli(&d, &["status", "--check"]))
        .await
        .unwrap();
    assert_eq!(code, 1, "a refused reload needs a person: {out}");
    assert!(
        out.contains("configuration: the last reload (reload command") && out.contains("bad.toml"),
        "{out}"
    );
    std::fs::remove_file(env.path().join("profiles.d/bad.toml")).unwrap();
    // ... and 0 once the configuration is good again.
    let d = dir.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || cli(&d, &["reload"]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("configuration reloaded"), "{out}");

    // SIGTERM: stops within a second, exit 0.
    let start = Instant::now();
    signal(&child, "TERM");
    let status = tokio::task::spawn_blocking(move || wait_bounded(&mut child, 20))
        .await
        .unwrap()
        .expect("the daemon stops on SIGTERM (killed after 20 s)");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(status.code(), Some(0));
    assert!(log_has(&log, "stopped"));
    assert!(!env.socket().exists(), "socket removed");

    reader.join().unwrap();
    let msgs = received.lock().unwrap().join("\n");
    for want in [
        "READY=1",
        "STATUS=",
        "RELOADING=1",
        "MONOTONIC_USEC=",
        "STOPPING=1",
        "WATCHDOG=1",
    ] {
        assert!(msgs.contains(want), "missing {want} in {msgs}");
    }

    // With the daemon stopped, commands open the state directly; for monitoring, a stopped
    // daemon needs a person.
    let (code, out, _) = cli(&dir, &["status", "--check"]);
    assert_eq!(code, 1);
    assert!(out.contains("daemon: not running"), "{out}");
    let (code, out, err) = cli(&dir, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("daemon:        not running") && out.contains("5 tracked"),
        "{out}"
    );
    // The secret never reached the log.
    assert!(!std::fs::read_to_string(&log)
        .unwrap()
        .contains("sim-secret"));
}

#[test]
fn exit_codes() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("connector.toml"), "[scm]\nbogus = 1\n").unwrap();
    let (code, _, err) = cli(d.path(), &["check-config"]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("connector.toml: key `scm.bogus`"), "{err}");
    let (code, _, _) = cli(d.path(), &["run"]);
    assert_eq!(
        code, 78,
        "run refuses a bad configuration with 78 (RestartPreventExitStatus)"
    );
    let (code, _, err) = cli(d.path(), &["certs", "frobnicate"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = cli(d.path(), &["run", "--dry-run"]);
    assert_eq!(code, 2, "--dry-run needs --once: {err}");
    let (code, out, _) = cli(d.path(), &["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Exit codes") && out.contains("check-config") && out.contains("force-renew"),
        "{out}"
    );
}

/// The README's first command: the demo runs the real engine against the simulators, renews
/// what is due exactly once, and enrolls a certificate requested from a Jira issue.
#[test]
fn the_demo_shows_renewals_and_an_enrollment_from_jira() {
    let out = Command::new(EXE).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for want in [
        "Cycle 2: 0 renewal requests",
        "CERT-101: status \"Renewed\"",
        "CERT-400: status \"Certificate Enrolled\", summary \"Certificate enrolled:new.example.com\"",
        "CERT-401: status \"Request Failed\"",
        "Every due certificate renewed exactly once.",
        // What an operator would look at.
        "$ sectigo-connector status",
        // 13, and the one declared in certificates.d/shop.toml (#26).
        "certificates:  14 tracked",
        "Issued and deployed to ",
        "cert.pem, chain.pem, fullchain.pem, privkey.pem",
        "next action:  renew at 20",
        "`demo --keep` keeps it",
    ] {
        assert!(stdout.contains(want), "{want:?} missing in:\n{stdout}");
    }
    assert_eq!(
        stdout.matches("waiting for issuance").count(),
        1,
        "said once:\n{stdout}"
    );
    // Quiet: the daemon's log goes to the file it names, not to the terminal.
    assert!(stderr.trim().is_empty(), "log lines on stderr:\n{stderr}");
    assert!(stdout.contains("--verbose shows it here too"), "{stdout}");
    readable(&stdout);
}

/// One timestamp style (RFC 3339, seconds), no debug names, and plurals that agree.
fn readable(text: &str) {
    assert!(
        !text.contains(" UTC"),
        "a chrono Display timestamp:\n{text}"
    );
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices('Z') {
        // `:21.123456Z`: fractional seconds
        let before = &bytes[i.saturating_sub(4)..i];
        assert!(
            !(before.contains(&b'.') && before.iter().filter(|b| b.is_ascii_digit()).count() >= 2),
            "fractional seconds near {:?}",
            &text[i.saturating_sub(30)..i + 1]
        );
    }
    for debug in [
        "Some(",
        "None",
        "NomError",
        "Done(",
        "format Auto",
        "Cloud {",
        "\\n",
    ] {
        assert!(!text.contains(debug), "{debug:?} in:\n{text}");
    }
    for noun in [
        "comments",
        "requests",
        "certificates",
        "enrollments",
        "renewals",
        "updates",
        "issues",
        "profiles",
        "keys",
        "lines",
        "calls",
    ] {
        assert!(
            !text.contains(&format!(" 1 {noun}")),
            "\"1 {noun}\" in:\n{text}"
        );
    }
}

#[test]
fn the_demo_keeps_its_directory_for_the_commands_it_suggests() {
    let out = Command::new(EXE)
        .args(["demo", "--keep", "--verbose"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("INFO"),
        "--verbose shows the log:\n{stderr}"
    );
    let dir = stdout
        .split("The directory is kept: ")
        .nth(1)
        .and_then(|r| r.lines().next())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no kept directory in:\n{stdout}"));
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = Remove(dir.clone());
    // Every suggested command works as printed.
    let suggested: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("sectigo-connector "))
        .collect();
    assert!(suggested.len() >= 5, "{stdout}");
    for c in suggested {
        let o = run_bounded(Command::new(EXE).args(c.split_whitespace()), 60);
        let (code, out, err) = (o.code, o.stdout, o.stderr);
        assert_eq!(code, 0, "{c}: {out}{err}");
        readable(&out);
    }
    assert!(std::fs::read_dir(dir.join("logs")).unwrap().count() > 0);
}

/// `run --once` exits 1 while anything needs a person, including what an earlier run left
/// (here an unknown outcome), not only this run's failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_exits_1_while_a_person_is_needed() {
    let (env, dir, id) = one_due_certificate().await;
    // The renew call's connection drops: SCM may have renewed, so the outcome is unknown.
    env.sim.set_faults(sectigo_sim::Faults {
        drop: 1.0,
        ..Default::default()
    });
    let d = dir.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || cli(&d, &["run", "--once"]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{err}");
    env.sim.set_faults(sectigo_sim::Faults::default());
    // Nothing fails this time, but the unknown outcome still needs a person.
    let d = dir.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || cli(&d, &["run", "--once"]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!(
            "needs a person: certificate {id} (web): outcome unknown"
        )),
        "{err}"
    );
    assert!(
        out.contains("cycle: 0 renewed, 0 renewal requests, 0 failed"),
        "{out}"
    );
}

/// A renewal failure is a WARN once; when it repeats it is an ERROR (a person must look).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_repeats_is_an_error() {
    let (env, dir, id) = one_due_certificate().await;
    std::fs::write(
        env.path().join("connector.toml"),
        std::fs::read_to_string(env.path().join("connector.toml"))
            .unwrap()
            .replace("retry_max_secs = 30", "retry_max_secs = 1"),
    )
    .unwrap();
    let mut f = sectigo_sim::Faults::default();
    f.permanent.insert(
        id.clone(),
        (
            503,
            -2,
            "Internal error. Please contact Support for details.".into(),
        ),
    );
    env.sim.set_faults(f);
    let i = id.clone();
    let runs =
        tokio::task::spawn_blocking(move || (cli(&dir, &["renew", &i]), cli(&dir, &["renew", &i])))
            .await
            .unwrap();
    let (first, second) = (runs.0 .2, runs.1 .2);
    let line = |log: &str, what: &str| {
        log.lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} in {log}"))
            .to_string()
    };
    assert!(
        line(&first, "failed (attempt 1)").contains("WARN"),
        "{first}"
    );
    assert!(
        line(&second, "failed again (attempt 2)").contains("ERROR"),
        "{second}"
    );
}

/// `[notify] command`: without Jira, each event that needs a person runs the command, with
/// the event, the certificate, the profile and the message in its environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_tells_a_person_without_jira() {
    let env = Env::new(ScmSimConfig::default()).await;
    let log = env.path().join("notify.log");
    env.connector(&format!(
        "[notify]\ncommand = [\"/bin/sh\", \"-c\", \"printf '%s|%s|%s|%s\\\\n' \\\"$SECTIGO_EVENT\\\" \\\"$SECTIGO_CERT_ID\\\" \\\"$SECTIGO_PROFILE\\\" \\\"$(echo $SECTIGO_MESSAGE | head -c 40)\\\" >> {}\"]\n",
        log.display()
    ));
    env.profile("web", "expiry_window_days = 30");
    env.profile("manual", "expiry_window_days = 30\nauto_renew = false");
    let lost = env.sim_cert("lost.example.com", 5);
    let manual = env.sim_cert("manual.example.com", 5);
    let dir = env.path().to_path_buf();
    let (d, l, m) = (dir.clone(), lost.clone(), manual.clone());
    tokio::task::spawn_blocking(move || {
        import(&d, "web", &l);
        import(&d, "manual", &m);
    })
    .await
    .unwrap();
    env.sim.set_faults(sectigo_sim::Faults {
        drop: 1.0,
        ..Default::default()
    });
    let d = dir.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || cli(&d, &["run", "--once"]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{err}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "outcome_unknown|{lost}|web|Needs a human: the outcome"
        ))),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "expiring_no_auto_renew|{manual}|manual|Certificate {manual}"
        ))),
        "{text}"
    );
    // Every connection dropped: the SCM host is down, and a person hears that once (not
    // once per certificate).
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("scm_unreachable|||Needs a human:"))
            .count(),
        1,
        "{text}"
    );
    assert_eq!(lines.len(), 3, "each event once: {text}");
}

/// `check-config --online` asks each token endpoint and Jira, and names what is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_online_names_what_is_refused() {
    let env = Env::new(ScmSimConfig::default()).await;
    let jira = sectigo_sim::JiraSim::start(
        sectigo_core::config::JiraFlavor::Cloud,
        "bot@example.com",
        "jira-token",
    )
    .await
    .unwrap();
    env.connector(&format!(
        "[jira]\nurl = \"{}\"\nemail = \"bot@example.com\"\ntoken = \"wrong-token\"\n",
        jira.url()
    ));
    env.profile("good", "");
    std::fs::write(
        env.path().join("profiles.d/bad.toml"),
        format!(
            "client_id = \"sim-client\"\nclient_secret = \"not-the-secret\"\nscm_url = \"{}\"\ntoken_url = \"{}\"\n",
            env.sim.url(),
            env.sim.token_url()
        ),
    )
    .unwrap();
    let dir = env.path().to_path_buf();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || cli(&dir, &["check-config", "--online"]))
            .await
            .unwrap();
    assert_eq!(
        code, 78,
        "refused credentials are a configuration error: {out}{err}"
    );
    assert!(
        out.contains("online: profile good: the token endpoint"),
        "{out}"
    );
    assert!(out.contains("online: profile bad: REFUSED by"), "{out}");
    assert!(
        out.contains("online: jira") && out.contains("REFUSED"),
        "{out}"
    );
    assert!(
        !out.contains("not-the-secret") && !out.contains("wrong-token"),
        "{out}"
    );
    assert_eq!(env.sim.billable_total(), 0);

    // The right token, and transitions checked against an issue: a typo is named.
    jira.add_issue("CERT-1");
    env.connector(&format!(
        "[jira]\nurl = \"{}\"\nemail = \"bot@example.com\"\ntoken = \"jira-token\"\n[jira.transitions]\nrenewal_started = \"Start Renewal\"\nrenewed = \"renewed\"\nrenewal_failed = \"Flag Probelm\"\n",
        jira.url()
    ));
    std::fs::remove_file(env.path().join("profiles.d/bad.toml")).unwrap();
    let dir = env.path().to_path_buf();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        (
            cli(&dir, &["check-config", "--online"]),
            cli(&dir, &["check-config", "--online", "--issue", "CERT-1"]),
            cli(&dir, &["check-config", "--online", "--issue", "NOPE-9"]),
        )
    })
    .await
    .map(|(without, with, missing)| {
        assert_eq!(without.0, 0, "{}{}", without.1, without.2);
        assert!(
            without
                .1
                .contains("credentials taken, for Certificate Bot (bot@example.com)")
                && without
                    .1
                    .contains("3 configured transitions are not checked")
                && without.1.contains("--issue KEY"),
            "{}",
            without.1
        );
        assert_eq!(
            missing.0, 1,
            "an issue Jira does not show is refused: {}",
            missing.1
        );
        with
    })
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "CERT-1 offers \"Start Renewal\" (to \"Renewal In Progress\")",
        "renewal_started = \"Start Renewal\": offered on CERT-1",
        "renewed = \"renewed\": offered on CERT-1",
        "renewal_failed = \"Flag Probelm\": NOT offered on CERT-1",
    ] {
        assert!(out.contains(want), "{want:?} in:\n{out}");
    }
}

/// `run --once --dry-run` proves the credentials (a token is free) and bills nothing: with a
/// wrong secret it says so and exits 1, instead of "1 would be renewed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_proves_the_credentials() {
    let (env, dir, _) = one_due_certificate().await;
    let d = dir.clone();
    let (good, bad) = tokio::task::spawn_blocking(move || {
        let good = cli(&d, &["run", "--once", "--dry-run"]);
        let p = d.join("profiles.d/web.toml");
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("sim-secret", "wrong-secret");
        std::fs::write(&p, text).unwrap();
        (good, cli(&d, &["run", "--once", "--dry-run"]))
    })
    .await
    .unwrap();
    assert_eq!(good.0, 0, "{}{}", good.1, good.2);
    assert!(
        good.1.contains("dry run: profile web: credentials taken"),
        "{}",
        good.1
    );
    assert!(good.1.contains("dry run: 1 would be renewed"), "{}", good.1);
    assert_eq!(bad.0, 1, "{}{}", bad.1, bad.2);
    assert!(
        bad.1.contains("dry run: profile web: credentials REFUSED"),
        "{}",
        bad.1
    );
    assert_eq!(env.sim.billable_total(), 0);

    // While the daemon runs (it holds the state), the dry run goes through it.
    let p = dir.join("profiles.d/web.toml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("wrong-secret", "sim-secret");
    std::fs::write(&p, text).unwrap();
    env.connector("[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n");
    let log = dir.join("daemon.log");
    let _show = LogOnPanic(&log);
    let mut daemon = spawn(&dir, &log, None);
    wait_for("the control socket", 10, || env.socket().exists());
    let d = dir.clone();
    let through = tokio::task::spawn_blocking(move || cli(&d, &["run", "--once", "--dry-run"]))
        .await
        .unwrap();
    signal(&daemon, "TERM");
    tokio::task::spawn_blocking(move || wait_bounded(&mut daemon, 20))
        .await
        .unwrap();
    assert_eq!(through.0, 0, "{}{}", through.1, through.2);
    assert!(
        through.1.contains("dry run: 1 would be renewed"),
        "{}",
        through.1
    );
    assert!(
        !through.2.contains("in use by another process"),
        "{}",
        through.2
    );
    assert_eq!(
        env.sim.billable_total(),
        0,
        "a dry run through the daemon bills nothing"
    );
}

/// A dry run with nothing due still proves every profile's credentials (issue #27): a wrong
/// secret is named (the profile, its file and the key), exit 1, where it printed "0 would be
/// renewed" and exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_with_nothing_due_still_proves_the_credentials() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "expiry_window_days = 30");
    let secret = env.path().join("profiles.d/other.secret");
    std::fs::write(&secret, "wrong-secret\n").unwrap();
    std::fs::write(
        env.path().join("profiles.d/other.toml"),
        format!(
            "client_id = \"sim-client\"\nclient_secret_file = \"other.secret\"\nscm_url = \"{}\"\ntoken_url = \"{}\"\n",
            env.sim.url(),
            env.sim.token_url()
        ),
    )
    .unwrap();
    let dir = env.path().to_path_buf();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || cli(&dir, &["run", "--once", "--dry-run"]))
            .await
            .unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("dry run: 0 would be renewed"), "{out}");
    assert!(
        out.contains("dry run: profile web: credentials taken"),
        "{out}"
    );
    let other = env.path().join("profiles.d/other.toml");
    assert!(
        out.lines().any(
            |l| l.starts_with("dry run: profile other: credentials REFUSED")
                && l.contains("`client_secret_file`")
                && l.contains(&secret.display().to_string())
                && l.contains(&other.display().to_string())
        ),
        "{out}"
    );
    assert!(!out.contains("wrong-secret"), "{out}");
    assert_eq!(env.sim.billable_total(), 0);
}

/// A profile file renamed by hand after an import, before any daemon ran: `run --once`
/// recognises it (the import recorded the profile's identity) and renews, nothing orphaned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_renamed_by_hand_after_an_import_is_recognised_by_run_once() {
    let (env, dir, id) = one_due_certificate().await;
    let d = dir.clone();
    let (run, list) = tokio::task::spawn_blocking(move || {
        std::fs::rename(
            d.join("profiles.d/web.toml"),
            d.join("profiles.d/store.toml"),
        )
        .unwrap();
        (
            cli(&d, &["run", "--once"]),
            cli(&d, &["certs", "list", "--all"]),
        )
    })
    .await
    .unwrap();
    assert_eq!(run.0, 0, "{}{}", run.1, run.2);
    assert!(
        run.2
            .contains("profile file renamed by hand: \"web\" is now \"store\""),
        "{}",
        run.2
    );
    assert_eq!(env.sim.billable_count(&id), 1);
    assert!(
        !list.1.contains("orphaned") && list.1.contains("store"),
        "{}",
        list.1
    );
}

/// What operators read is words, not the code's names, with correct plurals.
#[test]
fn output_speaks_words_not_debug_names() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("profiles.d")).unwrap();
    std::fs::write(
        d.path().join("connector.toml"),
        "[jira]\nurl = \"https://example.atlassian.net\"\nemail = \"a@example.com\"\ntoken = \"t\"\n",
    )
    .unwrap();
    let (code, out, err) = cli(d.path(), &["check-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("format auto") && !out.contains("Auto"),
        "{out}"
    );
    assert!(
        out.contains("jira:      cloud at") && !out.contains("Cloud"),
        "{out}"
    );
    let list = d.path().join("ids.txt");
    std::fs::write(&list, "123 CERT-1 extra words\n").unwrap();
    let (code, _, err) = cli(
        d.path(),
        &[
            "certs",
            "import",
            "--profile",
            "web",
            "--from",
            list.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("1 bad line, nothing imported"), "{err}");
}

/// SCM unreachable is a temporary failure (75, as documented), for `renew` and `certs import`
/// alike; and nothing is billed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scm_unreachable_is_exit_75() {
    let (env, dir, id) = one_due_certificate().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let toml = std::fs::read_to_string(dir.join("connector.toml"))
        .unwrap()
        .replace("retry_max_secs = 30", "retry_max_secs = 1");
    std::fs::write(dir.join("connector.toml"), toml).unwrap();
    std::fs::write(
        dir.join("profiles.d/web.toml"),
        format!("client_id = \"sim-client\"\nclient_secret = \"sim-secret\"\nscm_url = \"http://127.0.0.1:{port}\"\ntoken_url = \"http://127.0.0.1:{port}/auth/token\"\nexpiry_window_days = 30\n"),
    )
    .unwrap();
    let other = env.sim_cert("other.example.com", 100);
    let (code, out, err) = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || cli(&dir, &["renew", &id])
    })
    .await
    .unwrap();
    assert_eq!(code, 75, "{out}{err}");
    assert!(
        err.contains("try again later (nothing was billed)"),
        "{err}"
    );
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        cli(
            &dir,
            &["certs", "import", "--profile", "web", "--cert-id", &other],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 75, "{out}{err}");
    assert!(out.contains("failed 1"), "{out}");
    assert_eq!(env.sim.billable_total(), 0);
}

/// An outage and a spent budget, as a person sees them from the running daemon: one
/// `[notify]` event when SCM goes down and one when it answers again, one when a budget holds
/// renewals; `status --check` names the host, the waiting renewals and the key to change; the
/// metrics have an up/down gauge per host and the budget's use and limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_and_a_spent_budget_are_told_once_each() {
    let env = Env::new(ScmSimConfig::default()).await;
    let notified = env.path().join("notify.log");
    env.connector(&format!(
        "[schedule]\ncron = \"*/2 * * * * *\"\nrun_at_start = true\n[metrics]\nlisten = \"127.0.0.1:0\"\n[notify]\ncommand = [\"/bin/sh\", \"-c\", \"printf '%s|%s\\\\n' \\\"$SECTIGO_EVENT\\\" \\\"$SECTIGO_PROFILE\\\" >> {}\"]\n",
        notified.display()
    ));
    let toml = std::fs::read_to_string(env.path().join("connector.toml"))
        .unwrap()
        .replace("retry_max_secs = 30", "retry_max_secs = 1");
    std::fs::write(env.path().join("connector.toml"), toml).unwrap();
    env.profile("web", "expiry_window_days = 30");
    env.profile("small", "expiry_window_days = 30\nmax_renewals_per_day = 1");
    let dir = env.path().to_path_buf();
    let web = env.sim_cert("web.example.com", 5).to_string();
    let small: Vec<String> = (0..3)
        .map(|i| {
            env.sim_cert(&format!("small{i}.example.com"), 3 + i)
                .to_string()
        })
        .collect();
    let (d, w, s) = (dir.clone(), web.clone(), small.clone());
    tokio::task::spawn_blocking(move || {
        import(&d, "web", &w);
        for id in &s {
            import(&d, "small", id);
        }
    })
    .await
    .unwrap();
    env.sim.set_faults(sectigo_sim::Faults {
        api_down: true,
        ..Default::default()
    });
    let log = dir.join("daemon.log");
    let _show = LogOnPanic(&log);
    let mut child = spawn(&dir, &log, None);
    let events = |name: &str| {
        std::fs::read_to_string(&notified)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(&format!("{name}|")))
            .count()
    };
    wait_for("the outage's notification", 20, || {
        events("scm_unreachable") > 0
    });
    wait_for("the control socket", 5, || env.socket().exists());
    let host = env.sim.url().trim_start_matches("http://").to_string();
    // The outage, as status --check says it.
    let d = dir.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || cli(&d, &["status", "--check"]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}{err}");
    let text = format!("{out}{err}");
    assert!(
        text.contains(&format!("SCM unreachable: {host} since")) && text.contains("HTTP 503"),
        "{text}"
    );
    let metrics_port: u16 = std::fs::read_to_string(&log)
        .unwrap()
        .split("metrics on http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next()?.parse().ok())
        .expect("the log names the metrics address");
    let http = reqwest::Client::new();
    let metrics = || async {
        http.get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let m = metrics().await;
    assert!(
        m.contains(&format!("sectigo_scm_up{{host=\"{host}\"}} 0")),
        "{m}"
    );
    // Several cycles of the outage: still one event, one ERROR line.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(events("scm_unreachable"), 1);
    let errors = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("cannot be reached"))
        .count();
    assert_eq!(errors, 1, "one ERROR for the outage");
    assert_eq!(env.sim.billable_total(), 0);

    // SCM answers again: one event; web renews; small renews its most urgent one, and the two
    // others wait for its budget (one event).
    env.sim.set_faults(sectigo_sim::Faults::default());
    wait_for("the end of the outage", 20, || events("scm_reachable") > 0);
    wait_for("the renewals", 20, || {
        env.sim.billable_count(&web) == 1 && events("budget_reached") > 0
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(events("scm_reachable"), 1);
    assert_eq!(events("budget_reached"), 1);
    assert_eq!(env.sim.billable_count(&small[0]), 1, "the most urgent");
    assert_eq!(
        env.sim.billable_count(&small[1]) + env.sim.billable_count(&small[2]),
        0
    );
    let d = dir.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || cli(&d, &["status", "--check"]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}{err}");
    let text = format!("{out}{err}");
    assert!(!text.contains("SCM unreachable"), "{text}");
    assert!(
        text.contains("budget: 2 scheduled renewals of profile small wait")
            && text.contains("max_renewals_per_day"),
        "{text}"
    );
    let m = metrics().await;
    for want in [
        format!("sectigo_scm_up{{host=\"{host}\"}} 1"),
        "sectigo_renewals_billed_24h{profile=\"small\"} 1".to_string(),
        "sectigo_renewal_budget{profile=\"small\"} 1".to_string(),
    ] {
        assert!(m.contains(&want), "metrics lack {want:?}:\n{m}");
    }
    let d = dir.clone();
    let (_, out, _) = tokio::task::spawn_blocking(move || cli(&d, &["profiles", "list"]))
        .await
        .unwrap();
    let row = out.lines().find(|l| l.starts_with("small")).unwrap();
    assert!(row.contains("1/1"), "{out}");
    signal(&child, "TERM");
    wait_bounded(&mut child, 30);
}

/// `expiry_window_days = 300` typed for `30`: `check-config` (against the running daemon)
/// and `reload` say how many more certificates that makes due and how many the daily budget
/// lets through today, before anything is billed; without a daemon, `check-config` counts
/// what a first start would renew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_and_check_config_tell_what_a_wider_window_costs() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.connector("[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n");
    env.profile("web", "expiry_window_days = 30\nmax_renewals_per_day = 3");
    let dir = env.path().to_path_buf();
    let ids: Vec<String> = (0..10)
        .map(|i| {
            env.sim_cert(&format!("w{i}.example.com"), 40 + 10 * i)
                .to_string()
        })
        .collect();
    let d = dir.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        for id in &ids {
            import(&d, "web", id);
        }
        cli(&d, &["check-config"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(
            "due: against the state (no daemon runs), these files make no certificate due"
        ),
        "{out}"
    );
    let typo = |d: &Path| {
        let p = d.join("profiles.d/web.toml");
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            t.replace("expiry_window_days = 30", "expiry_window_days = 300"),
        )
        .unwrap();
    };
    typo(&dir);
    let d = dir.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || cli(&d, &["check-config"]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("due: against the state (no daemon runs): profile web: 10 certificates due now; the daily budget (0 of 3 used in 24 h) lets 3 through today, 7 wait"),
        "{out}"
    );
    // Back to 30, and the daemon runs it.
    let p = dir.join("profiles.d/web.toml");
    let t = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        t.replace("expiry_window_days = 300", "expiry_window_days = 30"),
    )
    .unwrap();
    let log = dir.join("daemon.log");
    let _show = LogOnPanic(&log);
    let mut child = spawn(&dir, &log, None);
    wait_for("the control socket", 10, || env.socket().exists());
    typo(&dir);
    let d = dir.clone();
    let (check, reload) =
        tokio::task::spawn_blocking(move || (cli(&d, &["check-config"]), cli(&d, &["reload"])))
            .await
            .unwrap();
    assert_eq!(check.0, 0, "{check:?}");
    assert!(
        check.1.contains("due: against the running daemon's state: profile web: 10 more certificates due now that the running configuration does not renew yet; the daily budget (0 of 3 used in 24 h) lets 3 through today, 7 wait"),
        "{}",
        check.1
    );
    assert_eq!(reload.0, 0, "{reload:?}");
    assert!(
        reload
            .1
            .contains("profile web: 10 more certificates due now")
            && reload.1.contains("lets 3 through today, 7 wait"),
        "{}",
        reload.1
    );
    assert!(
        log_has(&log, "10 more certificates due now"),
        "the log says it too"
    );
    assert_eq!(
        env.sim.billable_total(),
        0,
        "told before anything is billed"
    );
    signal(&child, "TERM");
    wait_bounded(&mut child, 30);
}
