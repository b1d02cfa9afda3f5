//! The packaged daemon under a real systemd (PID 1 of a booted Debian container): installed from
//! the .deb, started, driven, reloaded, killed, wedged and stopped as an operator and systemd
//! would, against the project's simulators on the host's loopback (the container shares the
//! host's network).
//!
//! Needs root, `systemd-nspawn`, a Debian root file system (`SECTIGO_NSPAWN_ROOT`, made by
//! debootstrap) and the .deb (`SECTIGO_DEB`): `.ci/run` provides all three and runs
//! `cargo test --test it -- --ignored systemd::`. Each step has a deadline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{run_bounded, wait_bounded, Output};
use sectigo_core::config::JiraFlavor;
use sectigo_sim::{Faults, JiraSim, ScmSim, ScmSimConfig};

const UNIT: &str = "sectigo-connector.service";

/// A booted container; powered off (and its ephemeral copy removed) on drop.
struct Container {
    nspawn: Child,
    /// The container's PID 1, as the host sees it.
    init: u32,
    /// Shared with the container at /mnt/host.
    host_dir: tempfile::TempDir,
}

impl Container {
    fn boot(root: &Path, deb: &Path) -> Container {
        let host_dir = tempfile::tempdir().unwrap();
        std::fs::copy(deb, host_dir.path().join("sectigo-connector.deb")).unwrap();
        let console = std::fs::File::create(host_dir.path().join("console.log")).unwrap();
        let nspawn = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(root)
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--ephemeral",
                "--quiet",
            ])
            .arg(format!("--bind={}:/mnt/host", host_dir.path().display()))
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("systemd-nspawn");
        let mut c = Container {
            init: 0,
            nspawn,
            host_dir,
        };
        let end = Instant::now() + Duration::from_secs(60);
        while c.init == 0 {
            assert!(Instant::now() < end, "no init: {}", c.console());
            c.init = init_of(c.nspawn.id()).unwrap_or(0);
            std::thread::sleep(Duration::from_millis(100));
        }
        // Until PID 1 listens on its bus, systemctl fails at once: ask again.
        let end = Instant::now() + Duration::from_secs(120);
        loop {
            let o = c.sh_bounded("systemctl is-system-running --wait", 120);
            if o.stdout.contains("running") || o.stdout.contains("degraded") {
                return c;
            }
            assert!(
                Instant::now() < end,
                "the container did not boot: {}{}\n{}",
                o.stdout,
                o.stderr,
                c.console()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.host_dir.path().join("console.log")).unwrap_or_default()
    }

    /// Runs `script` with sh inside the container, at most `secs`.
    fn sh_bounded(&self, script: &str, secs: u64) -> Output {
        run_bounded(
            Command::new("nsenter")
                .arg("-t")
                .arg(self.init.to_string())
                .args(["-a", "--", "sh", "-c", script]),
            secs,
        )
    }

    fn sh(&self, script: &str) -> Output {
        self.sh_bounded(script, 60)
    }

    /// Runs `script`; it must succeed.
    fn ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert_eq!(
            o.code,
            0,
            "{script}: exit {}\n{}{}\n{}",
            o.code,
            o.stdout,
            o.stderr,
            self.journal()
        );
        o.stdout
    }

    fn journal(&self) -> String {
        self.sh("journalctl -u sectigo-connector --no-pager -n 60 -o short-iso")
            .stdout
    }

    fn show(&self, prop: &str) -> String {
        self.sh(&format!("systemctl show -p {prop} --value {UNIT}"))
            .stdout
            .trim()
            .to_string()
    }

    /// Writes `text` at `path` inside the container, owned root:sectigo-connector, 0640.
    fn write(&self, path: &str, text: &str) {
        let name = path.replace('/', "_");
        std::fs::write(self.host_dir.path().join(&name), text).unwrap();
        self.ok(&format!(
            "install -m 0640 -o root -g sectigo-connector /mnt/host/{name} {path}"
        ));
    }

    fn wait_until(&self, what: &str, secs: u64, mut f: impl FnMut(&Container) -> bool) {
        let end = Instant::now() + Duration::from_secs(secs);
        while !f(self) {
            assert!(
                Instant::now() < end,
                "timed out after {secs} s waiting for {what}\n{}",
                self.journal()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM asks nspawn to power the container off; SIGKILL if it does not.
        let _ = Command::new("kill")
            .arg(self.nspawn.id().to_string())
            .status();
        if wait_bounded(&mut self.nspawn, 30).is_none() {
            eprintln!("the container did not power off within 30 s; killed");
        }
    }
}

/// The container's init: the child of nspawn that runs systemd (nspawn's first child is a
/// short-lived helper).
fn init_of(nspawn: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children"))
        .unwrap_or_default();
    text.split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "systemd")
        })
}

fn journal_json(c: &Container) -> Vec<serde_json::Value> {
    c.sh("journalctl -u sectigo-connector --no-pager -o json")
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn field<'a>(v: &'a serde_json::Value, k: &str) -> &'a str {
    v.get(k).and_then(|f| f.as_str()).unwrap_or("")
}

fn main_pid(c: &Container) -> String {
    c.show("MainPID")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, systemd-nspawn, a Debian root (SECTIGO_NSPAWN_ROOT) and the .deb (SECTIGO_DEB): run by .ci/run"]
async fn the_package_under_a_booted_systemd() {
    let _one = ONE_CONTAINER.lock().await;
    let root = PathBuf::from(std::env::var("SECTIGO_NSPAWN_ROOT").expect("SECTIGO_NSPAWN_ROOT"));
    let deb = PathBuf::from(std::env::var("SECTIGO_DEB").expect("SECTIGO_DEB"));
    let sim = ScmSim::start(ScmSimConfig::default()).await.unwrap();
    let jira = JiraSim::start(JiraFlavor::Cloud, "bot@example.com", "jira-token")
        .await
        .unwrap();
    jira.add_issue("CERT-1");
    let now = chrono::Utc::now();
    let due = sim.add_certificate(
        "due.example.com",
        &["due.example.com"],
        now - chrono::Duration::days(360),
        now + chrono::Duration::days(5),
    );
    let other = sim.add_certificate(
        "other.example.com",
        &["other.example.com"],
        now - chrono::Duration::days(360),
        now + chrono::Duration::days(5),
    );
    let (scm_url, token_url, jira_url) = (sim.url(), sim.token_url(), jira.url());
    let leaf_key = sim.leaf_key_pem();
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let steps = tokio::task::spawn_blocking(move || {
        let mut figures = Vec::new();
        let t = Instant::now();
        let c = Container::boot(&root, &deb);
        figures.push(format!("boot: {:.1} s", t.elapsed().as_secs_f64()));

        // Install: the service user, the files; nothing enabled or started.
        c.ok("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /mnt/host/sectigo-connector.deb");
        assert_eq!(c.show("UnitFileState"), "disabled", "installing enables nothing");
        c.ok("getent passwd sectigo-connector");
        let exposure = c.ok(&format!("systemd-analyze security --no-pager {UNIT} | tail -1"));
        let level: f64 = exposure
            .split("level for")
            .nth(1)
            .and_then(|r| r.split(':').nth(1))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in {exposure:?}"));
        assert!(level <= 1.2, "exposure {level} of the installed unit: {exposure}");
        figures.push(format!("exposure of the installed unit: {level}"));

        // Configure: one profile against the simulator, Jira against its simulator; a drop-in
        // shortens the restart and watchdog times for the test (the same mechanisms).
        c.ok("rm -f /etc/sectigo-connector/profiles.d/example.toml /etc/sectigo-connector/profiles.d/example.secret");
        c.write(
            "/etc/sectigo-connector/connector.toml",
            &format!(
                "[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n[scm]\ntimeout_secs = 10\n[renewal]\ncollect_poll_secs = 1\n[jira]\nurl = \"{jira_url}\"\nemail = \"bot@example.com\"\ntoken = \"jira-token\"\n[jira.transitions]\nrenewed = \"Renewed\"\n"
            ),
        );
        c.write(
            "/etc/sectigo-connector/profiles.d/web.toml",
            // A window shorter than the certificates' 5 days: an import does not renew them at
            // once (a due import through the daemon would), the test's `renew --yes` does.
            &format!("client_id = \"sim-client\"\nclient_secret = \"sim-secret\"\nscm_url = \"{scm_url}\"\ntoken_url = \"{token_url}\"\nexpiry_window_days = 3\n[deploy]\ndir = \"/var/lib/sectigo-connector/certs\"\nhook = [\"systemctl\", \"reload-or-restart\", \"nginx\"]\n"),
        );
        c.ok("mkdir -p /etc/systemd/system/sectigo-connector.service.d && printf '[Service]\\nRestartSec=1s\\nWatchdogSec=3s\\nTimeoutAbortSec=2s\\n' > /etc/systemd/system/sectigo-connector.service.d/test.conf && systemctl daemon-reload");
        c.ok("sectigo-connector check-config");

        // nginx serves what the daemon deploys: its key (reused across renewals) is the
        // server's; its certificate is the daemon's DIR/web/fullchain.pem. Not started yet:
        // the first deploy's hook starts it.
        let have_nginx = c.sh("test -x /usr/sbin/nginx").code == 0;
        if have_nginx {
            c.ok("systemctl stop nginx; rm -f /etc/nginx/sites-enabled/default");
            c.write("/etc/nginx/sectigo-key.pem", &leaf_key);
            c.write(
                "/etc/nginx/sites-enabled/sectigo",
                &format!("server {{\n  listen 127.0.0.1:{tls_port} ssl;\n  ssl_certificate /var/lib/sectigo-connector/certs/web/fullchain.pem;\n  ssl_certificate_key /etc/nginx/sectigo-key.pem;\n  location / {{ return 200 \"ok\\n\"; }}\n}}\n"),
            );
            c.ok("systemctl enable --now sectigo-connector-hooks.path");
        } else {
            eprintln!("no nginx in the container root: the deploy-to-nginx step is skipped");
        }

        // Start: active once READY=1 arrived, with the STATUS line.
        let t = Instant::now();
        c.ok(&format!("systemctl enable --now {UNIT}"));
        figures.push(format!("enable --now until active: {:.2} s", t.elapsed().as_secs_f64()));
        assert_eq!(c.show("ActiveState"), "active");
        assert!(c.show("StatusText").contains("next cycle"), "{}", c.show("StatusText"));

        // Commands as root reach the daemon through its control socket.
        let out = c.ok(&format!(
            "sectigo-connector certs import --profile web --cert-id {due} --issue CERT-1 --name web"
        ));
        assert!(out.contains("imported 1"), "{out}");
        c.ok(&format!("sectigo-connector certs import --profile web --cert-id {other}"));
        let out = c.ok(&format!("sectigo-connector renew {due} --yes"));
        assert!(out.contains("renewed"), "{out}");
        c.wait_until("the Jira comment", 20, |_| {
            jira.issue("CERT-1").is_some_and(|i| !i.comments.is_empty())
        });
        assert_eq!(sim.billable_count(&due), 1);
        let status = c.ok("sectigo-connector status");
        assert!(status.contains("daemon:        running"), "{status}");


        // The renewal reached nginx: its TLS handshake shows the new certificate, then (after
        // one more renewal) the next one. The hook ran as root through the helper unit.
        if have_nginx {
            let mut id = due.to_string();
            for round in 0..2 {
                if round > 0 {
                    // Not due (just renewed): billed only with --yes.
                    let o = c.sh(&format!("sectigo-connector renew {id}"));
                    assert_eq!(o.code, 2, "{}{}", o.stdout, o.stderr);
                    let out = c.ok(&format!("sectigo-connector renew {id} --yes"));
                    assert!(out.contains("renewed"), "{out}");
                }
                let shown = c.ok(&format!("sectigo-connector certs show {id} --json"));
                let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
                id = v["record"]["state"]["by"]
                    .as_str()
                    .or_else(|| v["state"]["by"].as_str())
                    .unwrap_or_else(|| panic!("{id} is not superseded: {shown}"))
                    .to_string();
                let shown = c.ok(&format!("sectigo-connector certs show {id} --json"));
                let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
                let serial = v["record"]["serial"]
                    .as_str()
                    .or_else(|| v["serial"].as_str())
                    .unwrap()
                    .to_string();
                let want = u128::from_str_radix(&serial, 16).unwrap();
                let t = Instant::now();
                c.wait_until("nginx serving the renewed certificate", 30, |c| {
                    let o = c.sh(&format!("openssl s_client -connect 127.0.0.1:{tls_port} </dev/null 2>/dev/null | openssl x509 -noout -serial"));
                    o.stdout
                        .trim()
                        .strip_prefix("serial=")
                        .and_then(|h| u128::from_str_radix(h, 16).ok())
                        == Some(want)
                });
                figures.push(format!("renewal {round}: nginx serving certificate {id} {:.1} s after the renew command returned", t.elapsed().as_secs_f64()));
            }
            let hooks = c.sh("journalctl -u sectigo-connector-hooks --no-pager").stdout;
            assert!(hooks.contains("running the deploy hook"), "{hooks}");
            c.wait_until("the helper's answer taken", 20, |c| {
                !c.ok("sectigo-connector status").contains("deploy-failed")
                    && c.journal().contains("deploy hook \"systemctl\" succeeded")
            });
        }

        // The packaged backup: off until enabled; its service exports through the daemon as
        // the service user, into a file only that user reads.
        assert_eq!(
            c.sh("systemctl is-enabled sectigo-connector-backup.timer").stdout.trim(),
            "disabled"
        );
        let tracked = serde_json::from_str::<Vec<serde_json::Value>>(
            &c.ok("sectigo-connector certs list --all --json"),
        )
        .unwrap()
        .len();
        c.ok("systemctl start sectigo-connector-backup.service");
        let backup = "/var/backups/sectigo-connector/state.jsonl";
        assert_eq!(
            c.ok(&format!("stat -c '%a %U' {backup}")).trim(),
            "600 sectigo-connector"
        );
        let tail = c.ok(&format!("tail -1 {backup}"));
        assert!(
            tail.starts_with(&format!("{{\"end\":{{\"certificates\":{tracked},")),
            "{tail}"
        );
        assert!(
            c.journal()
                .contains(&format!("state exported: {tracked} certificates")),
            "the daemon spooled it"
        );
        // Restore as the README says, as root: the daemon starts on it and has it all.
        let before = c.ok("sectigo-connector certs list --all --json");
        let o = c.sh(&format!("sectigo-connector state import {backup}"));
        assert_eq!(o.code, 75, "refused while the daemon runs: {}{}", o.stdout, o.stderr);
        c.ok(&format!("systemctl stop {UNIT}"));
        // The database and keys move away; the deployed files (under certs/) stay in place.
        c.ok("mkdir /root/state.old && mv /var/lib/sectigo-connector/db /root/state.old/ && (mv /var/lib/sectigo-connector/keys /root/state.old/ 2>/dev/null || true)");
        let out = c.ok(&format!("sectigo-connector state import {backup}"));
        assert!(out.contains(&format!("{tracked} certificates")), "{out}");
        assert_eq!(
            c.ok("find /var/lib/sectigo-connector ! -user sectigo-connector | wc -l").trim(),
            "0",
            "the imported files belong to the service user"
        );
        c.ok(&format!("systemctl start {UNIT}"));
        assert_eq!(c.show("ActiveState"), "active");
        assert_eq!(c.ok("sectigo-connector certs list --all --json"), before);
        c.ok("rm -rf /root/state.old");

        // journald: the fields, and priorities that match the levels.
        c.wait_until("the journal's records", 10, |c| {
            journal_json(c)
                .iter()
                .any(|v| field(v, "JIRA_KEY") == "CERT-1")
        });
        let records = journal_json(&c);
        let renewed = records
            .iter()
            .find(|v| field(v, "CERT_ID") == due && field(v, "MESSAGE").contains("renewed"))
            .unwrap_or_else(|| panic!("no record of the renewal with CERT_ID={due}"));
        assert_eq!(field(renewed, "PROFILE"), "web");
        assert_eq!(field(renewed, "PRIORITY"), "6", "a renewal is INFO");
        assert_eq!(field(renewed, "SYSLOG_IDENTIFIER"), "sectigo-connector");

        // `systemctl reload`: a good configuration is taken, a bad one refused (and reported).
        c.write(
            "/etc/sectigo-connector/profiles.d/db.toml",
            &format!("client_id = \"sim-client\"\nclient_secret = \"sim-secret\"\nscm_url = \"{scm_url}\"\ntoken_url = \"{token_url}\"\n"),
        );
        c.ok(&format!("systemctl reload {UNIT}"));
        assert!(c.journal().contains("configuration reloaded: 2 profiles"), "{}", c.journal());
        c.write("/etc/sectigo-connector/profiles.d/bad.toml", "client_id = 5\n");
        let o = c.sh(&format!("systemctl reload {UNIT}"));
        assert_ne!(o.code, 0, "a refused configuration fails the reload");
        assert_eq!(c.show("ActiveState"), "active", "and the daemon runs on");
        // The daemon's own record (its PID), not the `reload` command's output (ExecReload=
        // logs to the unit's journal too, with the same identifier), which may come first.
        let daemon = main_pid(&c);
        let refusal = |v: &serde_json::Value| {
            field(v, "_PID") == daemon
                && field(v, "SYSLOG_IDENTIFIER") == "sectigo-connector"
                && field(v, "MESSAGE").contains("configuration reload failed")
                && field(v, "MESSAGE").contains("bad.toml: key `client_id`")
        };
        c.wait_until("the daemon's record of the refusal", 20, |c| {
            journal_json(c).iter().any(refusal)
        });
        let refused = journal_json(&c)
            .into_iter()
            .find(|v| refusal(v))
            .expect("the refusal names the file and key");
        assert!(
            ["3", "4"].contains(&field(&refused, "PRIORITY")),
            "a refusal is an error or a warning: {refused}"
        );
        c.ok("rm /etc/sectigo-connector/profiles.d/bad.toml");

        // kill -9: systemd restarts it.
        let (pid, restarts) = (main_pid(&c), c.show("NRestarts"));
        // The daemon, not the unit's other processes (a helper of the unit, gone meanwhile,
        // once failed the kill with EIO). Older systemd spells the option --kill-who=; newer
        // ones --kill-whom= (and still take the old name): ask its --help which it has.
        c.ok(&format!(
            "if systemctl --help | grep -q -- --kill-whom; then w=--kill-whom; else w=--kill-who; fi; systemctl kill \"$w=main\" -s KILL {UNIT}"
        ));
        let t = Instant::now();
        c.wait_until("the restart after kill -9", 30, |c| {
            c.show("ActiveState") == "active" && main_pid(c) != pid && main_pid(c) != "0"
        });
        figures.push(format!("kill -9 to active again: {:.1} s (RestartSec=1s)", t.elapsed().as_secs_f64()));
        assert_ne!(c.show("NRestarts"), restarts);

        // The watchdog: a daemon that stops pinging (SIGSTOP) is killed and restarted.
        let pid = main_pid(&c);
        let t = Instant::now();
        c.ok(&format!("kill -STOP {pid}"));
        c.wait_until("the watchdog's restart", 30, |c| {
            c.show("ActiveState") == "active" && main_pid(c) != pid && main_pid(c) != "0"
        });
        figures.push(format!("SIGSTOP to active again: {:.1} s (WatchdogSec=3s)", t.elapsed().as_secs_f64()));
        let journal = c.sh("journalctl -u sectigo-connector --no-pager").stdout;
        assert!(journal.contains("Watchdog timeout"), "{journal}");

        // `systemctl stop` with a renewal in flight: it waits for SCM's answer and records it.
        sim.set_faults(Faults {
            latency: Duration::from_secs(2),
            ..Default::default()
        });
        let renew = Command::new("nsenter")
            .arg("-t")
            .arg(c.init.to_string())
            .args(["-a", "--", "sectigo-connector", "renew", &other, "--yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        c.wait_until("the renewal in flight", 10, |c| {
            c.journal().contains("renewing other.example.com")
        });
        let t = Instant::now();
        c.ok(&format!("systemctl stop {UNIT}"));
        let took = t.elapsed();
        figures.push(format!("stop with a renewal in flight: {:.1} s (SCM answering after 2 s)", took.as_secs_f64()));
        assert!(took < Duration::from_secs(90), "within TimeoutStopSec");
        assert_eq!(c.show("ActiveState"), "inactive");
        let mut renew = renew;
        let _ = wait_bounded(&mut renew, 10);
        sim.set_faults(Faults::default());
        assert_eq!(sim.billable_count(&other), 1, "renewed once");
        let shown = c.ok(&format!("sectigo-connector certs show {other}"));
        assert!(
            shown.contains("renewal requested: SCM certificate") && !shown.contains("unknown"),
            "SCM's answer was recorded before the daemon stopped: {shown}"
        );

        // Exit 78 (a bad configuration) is not restarted in a loop.
        c.write("/etc/sectigo-connector/connector.toml", "[scm]\nbogus = 1\n");
        let _ = c.sh(&format!("systemctl start {UNIT}"));
        std::thread::sleep(Duration::from_secs(4));
        assert_eq!(c.show("ActiveState"), "failed");
        assert_eq!(c.show("ExecMainStatus"), "78");
        let restarts = c.show("NRestarts");
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(c.show("NRestarts"), restarts, "no restart loop on exit 78");

        // remove keeps the configuration and the state; purge removes both.
        c.ok("DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq sectigo-connector");
        c.ok("test ! -e /usr/bin/sectigo-connector");
        c.ok("test -f /etc/sectigo-connector/connector.toml && test -d /var/lib/sectigo-connector");
        c.ok("DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq sectigo-connector");
        c.ok("test ! -e /etc/sectigo-connector/connector.toml && test ! -e /var/lib/sectigo-connector");
        c.ok("! dpkg -s sectigo-connector >/dev/null 2>&1");
        figures
    })
    .await
    .unwrap();
    for f in steps {
        println!("systemd figure: {f}");
    }
}

/// One container at a time: two booted systemds side by side would share the host's CPUs and
/// make each step's deadline a race.
static ONE_CONTAINER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The README's quick start (its first `sh` block), as a person types it, in a fresh booted
/// Debian: from `apt install` of the .deb to the first renewal, with nothing done beforehand.
/// What differs from a person's session is said here, and only that: the .deb's download
/// directory is /mnt/host; `$EDITOR` is a script that makes the edits the comments ask for
/// (the simulator's URLs and its account, where a person types SCM's); the placeholder
/// certificate id is the simulator's; `journalctl -f` is stopped after 3 s (a person's
/// Ctrl-C). Every command must succeed; the transcript is printed (docs/first-hour.md is one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, systemd-nspawn, a Debian root (SECTIGO_NSPAWN_ROOT) and the .deb (SECTIGO_DEB): run by .ci/run"]
async fn the_readme_quick_start_as_typed() {
    let _one = ONE_CONTAINER.lock().await;
    let root = PathBuf::from(std::env::var("SECTIGO_NSPAWN_ROOT").expect("SECTIGO_NSPAWN_ROOT"));
    let deb = PathBuf::from(std::env::var("SECTIGO_DEB").expect("SECTIGO_DEB"));
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let commands = quick_start(&readme);
    assert!(
        commands.len() >= 8 && commands[0].starts_with("apt install"),
        "the quick start's commands: {commands:?}"
    );
    let sim = ScmSim::start(ScmSimConfig::default()).await.unwrap();
    let now = chrono::Utc::now();
    // SCM's certificate, due (its window is the example's 30 days).
    let id = sim.add_certificate(
        "shop.example.com",
        &["shop.example.com"],
        now - chrono::Duration::days(360),
        now + chrono::Duration::days(10),
    );
    let (scm_url, token_url) = (sim.url(), sim.token_url());
    let deb_name = deb.file_name().unwrap().to_string_lossy().into_owned();

    let (transcript, billed) = tokio::task::spawn_blocking(move || {
        let c = Container::boot(&root, &deb);
        if deb_name != "sectigo-connector.deb" {
            std::fs::copy(&deb, c.host_dir.path().join(&deb_name)).unwrap();
        }
        // The person's editor, and apt's "yes" (a person answers its prompt).
        let editor = format!(
            "#!/bin/sh\nset -e\ncase \"$1\" in\n*.toml) sed -i -e 's|^client_id = .*|client_id = \"sim-client\"|' -e 's|^scm_url = .*|scm_url = \"{scm_url}\"|' -e 's|^token_url = .*|token_url = \"{token_url}\"|' -e 's|^client_secret_file = .*|client_secret_file = \"web.secret\"|' \"$1\" ;;\n*.secret) printf 'sim-secret\\n' > \"$1\" ;;\n*) exit 1 ;;\nesac\n"
        );
        std::fs::write(c.host_dir.path().join("editor"), editor).unwrap();
        c.ok("install -m 0755 /mnt/host/editor /usr/local/bin/person-edits");
        c.ok("echo 'APT::Get::Assume-Yes \"true\";' > /etc/apt/apt.conf.d/90person-says-yes");
        let mut transcript = String::new();
        let mut cwd = "/mnt/host".to_string();
        for cmd in &commands {
            let typed = cmd.replace("1234567", id.as_ref());
            let follow = typed.starts_with("journalctl") && typed.ends_with(" -f");
            let script = format!(
                "cd {cwd} && export EDITOR=person-edits TERM=dumb && {}{typed}",
                if follow { "timeout 3 " } else { "" }
            );
            let o = c.sh_bounded(&script, 120);
            transcript.push_str(&format!("# {typed}\n{}{}", o.stdout, o.stderr));
            let ok = o.code == 0 || (follow && o.code == 124);
            assert!(
                ok,
                "the quick start failed at `{typed}` (exit {}):\n{transcript}\n{}",
                o.code,
                c.journal()
            );
            if let Some(dir) = typed.strip_prefix("cd ") {
                cwd = dir.trim().to_string();
            }
        }
        // The first renewal: the imported certificate was due, so the daemon renewed it.
        c.wait_until("the first renewal", 30, |_| sim.billable_count(&id) == 1);
        let shown = c.ok(&format!("sectigo-connector certs show {id}"));
        transcript.push_str(&format!("# sectigo-connector certs show {id}\n{shown}"));
        (transcript, sim.billable_count(&id))
    })
    .await
    .unwrap();
    println!("the quick start, as typed:\n{transcript}");
    assert_eq!(billed, 1, "renewed once");
}

/// The commands of the README's quick start: the first `sh` block after its heading, without
/// comments.
fn quick_start(readme: &str) -> Vec<String> {
    let section = readme
        .split("## Quick start")
        .nth(1)
        .expect("a quick start in the README");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block in the quick start");
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}
