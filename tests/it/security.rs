//! The privilege boundary (issue #23): root trusts nothing that the service user, SCM or Jira
//! controls. Root's commands write through no link planted where the service user writes,
//! trust the control socket only when root or the service user serves it and re-check what it
//! says, and the root hook helper reads nothing but regular files of its own directory. The
//! daemon stays answerable to root while others hold its socket. SECURITY.md lists what each
//! test here proves.
//!
//! Tests that need root (another user, chown) print why and pass when not run as root; CI runs
//! as root.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sectigo_core::config::DeployConfig;
use sectigo_engine::deploy::{files, FileSet};

use crate::common::{cid, run_bounded};

pub const EXE: &str = env!("CARGO_BIN_EXE_sectigo-connector");

/// Whether the tests run as root; when not, says which test is skipped and why.
pub fn root_or_skip(test: &str) -> bool {
    let root = rustix_euid_is_root();
    if !root {
        eprintln!("{test}: skipped: needs root (another user, chown); CI runs it as root");
    }
    root
}

fn rustix_euid_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A local user (and its group) for the tests, made once: `(uid, gid)`.
pub fn test_user(name: &str) -> (u32, u32) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").arg(flag).arg(name).output().ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let o = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .output()
            .expect("useradd");
        assert!(
            o.status.success() || id("-u").is_some(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    (id("-u").unwrap(), id("-g").unwrap())
}

/// chown -R
pub fn chown_tree(p: &Path, uid: u32, gid: u32) {
    let ok = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(p)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "chown -R {uid}:{gid} {}", p.display());
}

fn a_set() -> FileSet {
    let c = rcgen::generate_simple_self_signed(vec!["x.example.com".into()]).unwrap();
    FileSet {
        cert: c.cert.pem(),
        chain: c.cert.pem(),
        key: None,
    }
}

fn deploy_cfg(dir: &Path, mode: u32) -> DeployConfig {
    DeployConfig {
        dir: dir.to_path_buf(),
        hook: None,
        owner: None,
        group: None,
        mode,
    }
}

fn entries(p: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(p)
        .map(|e| e.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Root's `certs export --out DIR` and the daemon's deploy share `files::write_set`. Another
/// process that can write in DIR swaps each temporary directory the writer makes for a link to
/// a directory of root's, as fast as it can: nothing is ever written or chmod-ed there.
#[test]
fn a_set_is_never_written_through_a_link_swapped_into_its_directory() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let victim = t.path().join("victim");
    std::fs::create_dir(&out).unwrap();
    std::fs::create_dir(&victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Root's own file of that name (another tool's deploy directory, say).
    let root_file = victim.join("fullchain.pem");
    std::fs::write(&root_file, "root's").unwrap();
    std::fs::set_permissions(&root_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let attacker = {
        let (out, victim, stop, swaps) = (out.clone(), victim.clone(), stop.clone(), swaps.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for p in entries(&out) {
                    let n = p.file_name().unwrap().to_string_lossy().into_owned();
                    let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
                    // As soon as the last file is there: its mode, then the directory's, are
                    // still to be set.
                    let written = std::fs::symlink_metadata(p.join("fullchain.pem")).is_ok();
                    if n.starts_with('.') && n.ends_with(".tmp") && is_dir && written {
                        // Swapped in one step (renameat2 RENAME_EXCHANGE): the writer never
                        // finds the name missing, only the link.
                        let link = out.join(format!("swap-{n}"));
                        let _ = std::os::unix::fs::symlink(&victim, &link);
                        let swapped = rustix::fs::renameat_with(
                            rustix::fs::CWD,
                            &link,
                            rustix::fs::CWD,
                            &p,
                            rustix::fs::RenameFlags::EXCHANGE,
                        );
                        if swapped.is_ok() {
                            swaps.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        })
    };
    let cfg = deploy_cfg(&out, 0o644);
    let name = "x.example.com".parse().unwrap();
    let set = a_set();
    let mut written = 0;
    for i in 0..3000 {
        written += usize::from(files::write_set(&cfg, &name, &cid("77"), &set, i).is_ok());
        if swaps.load(Ordering::Relaxed) >= 10 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    assert!(
        swaps.load(Ordering::Relaxed) > 0,
        "the attacker never got a directory to swap ({written} sets written)"
    );
    assert_eq!(
        entries(&victim),
        vec![root_file.clone()],
        "written through the link"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode(&root_file),
        0o600,
        "root's file was chmod-ed through the link"
    );
    assert_eq!(
        mode(&victim),
        0o700,
        "root's directory was chmod-ed through the link"
    );
    assert_eq!(std::fs::read_to_string(&root_file).unwrap(), "root's");
}

/// Links and files already at the names the writer uses (the set's link, a stale temporary
/// link, old versions) are replaced or removed, never followed: their targets keep their
/// content and mode.
#[test]
fn links_planted_at_a_sets_names_are_not_followed() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let victim = t.path().join("victim.txt");
    std::fs::write(&victim, "root's").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let victim_dir = t.path().join("victim-dir");
    std::fs::create_dir(&victim_dir).unwrap();
    std::fs::write(victim_dir.join("keep"), "x").unwrap();
    for (n, target) in [
        ("x.example.com", &victim_dir),
        (".x.example.com.link.tmp", &victim),
        (".x.example.com.77.1", &victim_dir),
        (".x.example.com.77.5.tmp", &victim_dir),
    ] {
        std::os::unix::fs::symlink(target, out.join(n)).unwrap();
    }
    let cfg = deploy_cfg(&out, 0o644);
    let written = files::write_set(
        &cfg,
        &"x.example.com".parse().unwrap(),
        &cid("77"),
        &a_set(),
        5,
    )
    .unwrap();
    assert!(written.join("cert.pem").is_file());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's");
    assert_eq!(
        std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(entries(&victim_dir), vec![victim_dir.join("keep")]);
}

/// A reply line a daemon could send for `certs export 77`, with these name and mode.
fn exported(name: &str, mode: u32) -> String {
    let c = rcgen::generate_simple_self_signed(vec!["x.example.com".into()]).unwrap();
    serde_json::json!({"Ok": {"reply": "exported", "data": {
        "id": "77", "name": name, "cert": c.cert.pem(), "chain": c.cert.pem(), "mode": mode,
    }}})
    .to_string()
}

/// A daemon of this process (root's, when the tests run as root) on `socket`, serving
/// `state_dir` as far as its greeting says: it answers each connection's request with `reply`,
/// then `tail` (`None`: an endless stream). A command that sends its request at once (one
/// that does not wait for the greeting) is answered too.
fn fake_daemon(
    socket: &Path,
    state_dir: &Path,
    reply: String,
    tail: Option<Vec<u8>>,
) -> std::thread::JoinHandle<()> {
    use std::io::{BufRead as _, Write as _};
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    let hello = greeting(state_dir);
    std::thread::spawn(move || {
        for c in listener.incoming() {
            let Ok(mut c) = c else { return };
            let mut r = std::io::BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            c.set_read_timeout(Some(std::time::Duration::from_millis(300)))
                .unwrap();
            if r.read_line(&mut line).is_err() || line.is_empty() {
                let _ = writeln!(c, "{hello}");
                c.set_read_timeout(None).unwrap();
                let _ = r.read_line(&mut line);
            }
            let _ = writeln!(c, "{reply}");
            match &tail {
                Some(t) => {
                    let _ = c.write_all(t);
                }
                None => {
                    let chunk = vec![b'x'; 64 * 1024];
                    while c.write_all(&chunk).is_ok() {}
                }
            }
        }
    })
}

/// The greeting of a daemon serving `state_dir` (its wire form, spelled out).
fn greeting(state_dir: &Path) -> String {
    let m = std::fs::metadata(state_dir).unwrap();
    serde_json::json!({
        "hello": "sectigo-connector",
        "state_dir": std::fs::canonicalize(state_dir).unwrap(),
        "dev": m.dev(),
        "ino": m.ino(),
    })
    .to_string()
}

/// A configuration directory whose connector.toml names `socket` and `state_dir`.
fn config_dir(at: &Path, socket: &Path, state_dir: &Path) -> PathBuf {
    std::fs::create_dir_all(at).unwrap();
    std::fs::write(
        at.join("connector.toml"),
        format!("[state]\ndir = {state_dir:?}\n[control]\nsocket = {socket:?}\n"),
    )
    .unwrap();
    at.to_path_buf()
}

fn cli(dir: &Path, args: &[&str]) -> crate::common::Output {
    run_bounded(
        Command::new(EXE).arg("--config-dir").arg(dir).args(args),
        30,
    )
}

/// What a daemon says is checked again where the command writes it: a certificate name that
/// leaves the directory (`../x`) does not decode, a file mode over 0644 (setuid, world-writable)
/// is refused, and a state export is never longer than announced (an endless one does not fill
/// root's disk). Nothing is written.
#[test]
fn hostile_replies_from_the_socket_are_refused_and_nothing_is_written() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    std::fs::create_dir(&state).unwrap();
    for (n, (reply, why)) in [
        (exported("../x", 0o644), "not a certificate name"),
        (exported("x.example.com", 0o4777), "more than 0o644"),
        (exported("x.example.com", 0o777), "more than 0o644"),
        (exported("x.example.com", 0o666), "more than 0o644"),
    ]
    .into_iter()
    .enumerate()
    {
        let socket = t.path().join(format!("s{n}.sock"));
        let dir = config_dir(&t.path().join(format!("etc{n}")), &socket, &state);
        let _d = fake_daemon(&socket, &state, reply, Some(Vec::new()));
        let out = t.path().join(format!("out{n}"));
        let o = cli(
            &dir,
            &["certs", "export", "77", "--out", out.to_str().unwrap()],
        );
        assert_ne!(o.code, 0, "{why}: {}{}", o.stdout, o.stderr);
        assert!(o.stderr.contains(why), "{why}: {}", o.stderr);
        assert!(!out.exists(), "{why}: something was written");
        assert!(!t.path().join("x").exists(), "{why}: written outside --out");
    }
    // A state export that goes on past the bytes it announced.
    let socket = t.path().join("export.sock");
    let dir = config_dir(&t.path().join("etc-export"), &socket, &state);
    let counts = serde_json::to_value(sectigo_state::Counts::default()).unwrap();
    let reply = serde_json::json!({"Ok": {"reply": "state-exported", "data": {"counts": counts, "bytes": 10}}});
    let _d = fake_daemon(&socket, &state, reply.to_string(), None);
    let file = t.path().join("backup.jsonl");
    let o = cli(&dir, &["state", "export", file.to_str().unwrap()]);
    assert_ne!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("more than the 10 bytes"), "{}", o.stderr);
    assert!(!file.exists());
    assert_eq!(
        entries(t.path())
            .iter()
            .filter(|p| p.to_string_lossy().contains("backup.jsonl"))
            .count(),
        0,
        "no partial file is left"
    );
}

/// A certificate named `../x` reaches no path: a state record holding it does not decode
/// (`certs export` as root refuses, nothing is written), nor does an import line (nothing is
/// imported).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_name_in_a_record_or_an_import_line_is_refused() {
    use crate::common::Env;
    let a = Env::new(sectigo_sim::ScmSimConfig::default()).await;
    let b = Env::new(sectigo_sim::ScmSimConfig::default()).await;
    a.profile("web", "");
    b.profile("web", "");
    let id = a.sim_cert("web.example.com", 100);
    let (da, db) = (a.path().to_path_buf(), b.path().to_path_buf());
    tokio::task::spawn_blocking(move || {
        let o = cli(
            &da,
            &["certs", "import", "--profile", "web", "--cert-id", &id],
        );
        assert_eq!(o.code, 0, "{}", o.stderr);
        let backup = da.join("backup.jsonl");
        let o = cli(&da, &["state", "export", backup.to_str().unwrap()]);
        assert_eq!(o.code, 0, "{}", o.stderr);

        // An import line: the certificate's record with a name that leaves the directory.
        let text = std::fs::read_to_string(&backup).unwrap();
        let hostile: String = text
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                if let Some(c) = v.get_mut("cert") {
                    c["name"] = "../x".into();
                }
                format!("{v}\n")
            })
            .collect();
        assert_ne!(hostile, text);
        let forged = db.join("forged.jsonl");
        std::fs::write(&forged, hostile).unwrap();
        let o = cli(&db, &["state", "import", forged.to_str().unwrap()]);
        assert_ne!(o.code, 0, "{}", o.stdout);
        assert!(o.stderr.contains("not a certificate name"), "{}", o.stderr);
        let o = cli(&db, &["certs", "list", "--json"]);
        assert_eq!(o.stdout.trim(), "[]", "nothing imported: {}", o.stderr);

        // A record in the state itself.
        {
            let db = sled::open(da.join("state").join("db")).unwrap();
            let certs = db.open_tree("certs").unwrap();
            let v = certs.get(id.as_bytes()).unwrap().unwrap();
            let mut rec: serde_json::Value = serde_json::from_slice(&v).unwrap();
            rec["name"] = "../x".into();
            certs
                .insert(id.as_bytes(), serde_json::to_vec(&rec).unwrap())
                .unwrap();
            db.flush().unwrap();
        }
        let out = da.join("out");
        let o = cli(
            &da,
            &["certs", "export", &id, "--out", out.to_str().unwrap()],
        );
        assert_ne!(o.code, 0, "{}", o.stdout);
        assert!(o.stderr.contains("not a certificate name"), "{}", o.stderr);
        assert!(!da.join("x").exists() && !out.exists(), "nothing written");
    })
    .await
    .unwrap();
}

/// A child process, killed when dropped (a failing test leaves none behind).
pub struct Killed(pub std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A test user's daemon-like process serving `socket` with `line` as its first line, for as
/// long as the returned child lives.
fn socket_of_user(uid: u32, gid: u32, socket: &Path, line: &str) -> Killed {
    use std::io::BufRead as _;
    let script = r#"
        use IO::Socket::UNIX; use Socket; $| = 1;
        my ($p, $line) = @ARGV; unlink $p;
        my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $p, Listen => 8) or die "listen $p: $!";
        chmod 0777, $p; print "ready\n";
        while (my $c = $s->accept) { print $c "$line\n"; sleep 1; close $c; }
    "#;
    let mut child = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "--", "perl", "-e", script])
        .arg(socket)
        .arg(line)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("setpriv perl");
    let mut ready = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let child = Killed(child);
    assert_eq!(ready.trim(), "ready");
    child
}

/// Root's command treats the control socket as untrusted: served by a user that is neither
/// root nor the service user (the owner of `[state] dir`), it is refused before anything is
/// sent, naming the socket and the uid found; the service user's own daemon is accepted.
#[test]
fn a_socket_served_by_another_user_is_refused() {
    if !root_or_skip("a_socket_served_by_another_user_is_refused") {
        return;
    }
    let (uid, gid) = test_user("sectest-other");
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = t.path().join("run");
    std::fs::create_dir(&run).unwrap();
    chown_tree(&run, uid, gid);
    let state = t.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let socket = run.join("control.sock");
    let dir = config_dir(&t.path().join("etc"), &socket, &state);
    // It answers as a daemon would (to a command that sends its request at once).
    let reply =
        serde_json::json!({"Ok": {"reply": "certs", "data": {"records": [], "configured": []}}});
    let _server = socket_of_user(uid, gid, &socket, &reply.to_string());
    let o = cli(&dir, &["certs", "list"]);
    assert_ne!(o.code, 0, "{}", o.stdout);
    for want in [
        socket.display().to_string(),
        format!("uid {uid}"),
        "neither root nor the service user".into(),
    ] {
        assert!(o.stderr.contains(&want), "{want}: {}", o.stderr);
    }
    // The same user owning the state: it is the service user, and its daemon is trusted (its
    // greeting is then read).
    chown_tree(&state, uid, gid);
    let o = cli(&dir, &["certs", "list"]);
    assert!(
        !o.stderr.contains("neither root nor the service user"),
        "{}",
        o.stderr
    );
}

/// The daemon of the configuration in `dir`, logging to `log`; killed when dropped.
fn daemon(dir: &Path, log: &Path) -> Killed {
    Killed(
        Command::new(EXE)
            .arg("--config-dir")
            .arg(dir)
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Issue #23 item 11: two configurations with one `[control] socket`. A command of the second
/// talked to the first one's daemon (`certs list` showed its certificates); now it refuses,
/// naming both state directories and the key to set. The second daemon does not take the
/// socket away from the first either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_configurations_sharing_a_socket_are_told_apart() {
    use crate::common::Env;
    let a = Env::new(sectigo_sim::ScmSimConfig::default()).await;
    a.connector("[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n");
    a.profile("web", "");
    let id = a.sim_cert("a-only.example.com", 100);
    let t = tempfile::tempdir().unwrap();
    let b_state = t.path().join("state-b");
    let b = config_dir(&t.path().join("etc-b"), &a.socket(), &b_state);
    std::fs::write(
        b.join("connector.toml"),
        format!(
            "[state]\ndir = {b_state:?}\n[control]\nsocket = {:?}\n[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n[log]\nformat = \"text\"\n",
            a.socket()
        ),
    )
    .unwrap();
    let (da, socket) = (a.path().to_path_buf(), a.socket());
    tokio::task::spawn_blocking(move || {
        let o = cli(
            &da,
            &["certs", "import", "--profile", "web", "--cert-id", &id],
        );
        assert_eq!(o.code, 0, "{}", o.stderr);
        let _a = daemon(&da, &da.join("daemon.log"));
        wait_for("daemon A's socket", 10, || socket.exists());
        let o = cli(&b, &["certs", "list"]);
        assert_eq!(o.code, 78, "{}{}", o.stdout, o.stderr);
        assert!(!o.stdout.contains("a-only.example.com"), "{}", o.stdout);
        let a_state = std::fs::canonicalize(da.join("state")).unwrap();
        for want in [
            a_state.display().to_string(),
            b_state.display().to_string(),
            "[control] socket".into(),
        ] {
            assert!(o.stderr.contains(&want), "{want}: {}", o.stderr);
        }
        // B's daemon starts beside A's: it leaves A's socket alone (and says why).
        let b_log = t.path().join("daemon-b.log");
        let _b = daemon(&b, &b_log);
        wait_for("daemon B's start", 10, || {
            std::fs::read_to_string(&b_log)
                .unwrap_or_default()
                .contains("another daemon answers on it")
        });
        let o = cli(&da, &["certs", "list"]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(o.stdout.contains("a-only.example.com"), "{}", o.stdout);
        assert_eq!(cli(&b, &["status"]).code, 78);
    })
    .await
    .unwrap();
}

/// Idle connections of a member of the socket's group, as many as it can open, make root's
/// command neither fail nor wait: root and the service user have connections of their own,
/// and each other uid holds at most 8, so a second member is served too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_of_another_user_do_not_lock_root_out() {
    use crate::common::Env;
    if !root_or_skip("idle_connections_of_another_user_do_not_lock_root_out") {
        return;
    }
    let (uid, _) = test_user("sectest-other");
    let (uid2, _) = test_user("sectest-third");
    let env = Env::new(sectigo_sim::ScmSimConfig::default()).await;
    env.connector("[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n");
    // The socket (0660, root's group, as the test runs the daemon as root) is reached by the
    // members of group 0 below.
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (dir, socket) = (env.path().to_path_buf(), env.socket());
    tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let _d = daemon(&dir, &dir.join("daemon.log"));
        wait_for("the socket", 10, || socket.exists());
        let as_member = |uid: u32, script: &str| {
            Command::new("setpriv")
                .arg(format!("--reuid={uid}"))
                .args(["--regid=0", "--clear-groups", "--", "perl", "-e", script])
                .arg(&socket)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("setpriv perl")
        };
        let hold = r#"
            use IO::Socket::UNIX; use Socket; $| = 1; my @s;
            for (1..64) { my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) or last; push @s, $c; }
            print scalar(@s), "\n"; sleep 120;
        "#;
        let mut holder = Killed(as_member(uid, hold));
        let mut opened = String::new();
        std::io::BufReader::new(holder.0.stdout.as_mut().unwrap())
            .read_line(&mut opened)
            .unwrap();
        assert!(opened.trim().parse::<u32>().unwrap() >= 40, "{opened}");
        let t = std::time::Instant::now();
        let o = cli(&dir, &["status"]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(o.stdout.contains("daemon:        running"), "{}", o.stdout);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "answered in {:?}",
            t.elapsed()
        );
        let ask = r#"
            use IO::Socket::UNIX; use Socket; $| = 1;
            my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) or die;
            my $hello = <$c>; print $c "{\"cmd\":\"status\"}\n"; shutdown($c, 1);
            my $r = <$c>; print $r;
        "#;
        let o = run_bounded(
            Command::new("setpriv")
                .arg(format!("--reuid={uid2}"))
                .args(["--regid=0", "--clear-groups", "--", "perl", "-e", ask])
                .arg(&socket),
            20,
        );
        assert!(o.stdout.starts_with("{\"Ok\""), "{}{}", o.stdout, o.stderr);
    })
    .await
    .unwrap();
}

/// `/metrics` cannot be starved for long by connections that say nothing (no uid is known on
/// TCP, so each is dropped after the header deadline, 5 s): a scrape gets through within it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_starve_metrics() {
    use crate::common::Env;
    let env = Env::new(sectigo_sim::ScmSimConfig::default()).await;
    env.connector("[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let log = env.path().join("daemon.log");
    let _d = daemon(env.path(), &log);
    let l = log.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("metrics", 10, || {
            std::fs::read_to_string(&l)
                .unwrap_or_default()
                .contains("metrics on http://")
        })
    })
    .await
    .unwrap();
    let port: u16 = std::fs::read_to_string(&log)
        .unwrap()
        .split("metrics on http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..64 {
        if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            held.push(c);
        }
    }
    let t = std::time::Instant::now();
    let url = format!("http://127.0.0.1:{port}/metrics");
    loop {
        match reqwest::get(&url).await {
            Ok(r) if r.status().is_success() => break,
            other => {
                assert!(
                    t.elapsed() < std::time::Duration::from_secs(9),
                    "no scrape within 9 s of 64 idle connections: {other:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    drop(held);
}

/// Root's `state export FILE` into a directory the service user can write (the packaged
/// backup's /var/backups/sectigo-connector): a link planted at `FILE.partial` is not followed
/// (its target keeps its content), a world-readable file planted there is not used, and FILE
/// is a new file, 0600.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_export_uses_nothing_planted_beside_its_file() {
    use crate::common::Env;
    let env = Env::new(sectigo_sim::ScmSimConfig::default()).await;
    let dir = env.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let backups = dir.join("backups");
        std::fs::create_dir(&backups).unwrap();
        let victim = dir.join("root-only.txt");
        std::fs::write(&victim, "root's").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = backups.join("state.jsonl");
        let partial = backups.join("state.jsonl.partial");
        for planted in ["link", "world-readable file"] {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(&file);
            if planted == "link" {
                std::os::unix::fs::symlink(&victim, &partial).unwrap();
            } else {
                std::fs::write(&partial, "old").unwrap();
                std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
            let o = cli(&dir, &["state", "export", file.to_str().unwrap()]);
            assert_eq!(o.code, 0, "{planted}: {}", o.stderr);
            assert_eq!(
                std::fs::read_to_string(&victim).unwrap(),
                "root's",
                "{planted}"
            );
            let m = std::fs::symlink_metadata(&file).unwrap();
            assert!(m.is_file(), "{planted}: FILE is a new file, not the link");
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "{planted}");
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                text.contains("sectigo-connector-state"),
                "{planted}: {text}"
            );
            // What was planted is left as it was.
            let p = std::fs::symlink_metadata(&partial).unwrap();
            assert_eq!(p.file_type().is_symlink(), planted == "link", "{planted}");
        }
        assert_eq!(
            std::fs::read_to_string(&partial).unwrap(),
            "old",
            "the planted file was not used"
        );
    })
    .await
    .unwrap();
}

/// A configuration whose profile "web" deploys into `DIR/certs` with a hook that appends its
/// certificate id to `DIR/hook.log`; returns (the hooks directory, the hook's log).
fn hook_setup(env: &crate::common::Env) -> (PathBuf, PathBuf) {
    let log = env.path().join("hook.log");
    env.profile(
        "web",
        &format!(
            "[deploy]\ndir = {:?}\nhook = [\"/bin/sh\", \"-c\", \"echo \\\"$SECTIGO_CERT_ID $SECTIGO_OLD_CERT_ID\\\" >> {}\"]",
            env.path().join("certs"),
            log.display()
        ),
    );
    let hooks = env.path().join("hooks");
    std::fs::create_dir(&hooks).unwrap();
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o750)).unwrap();
    (hooks, log)
}

/// A request as the daemon writes it, for certificate `id`, with `edit` applied to its JSON.
fn hook_request(id: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v = serde_json::json!({
        "cert_id": id, "old_cert_id": null, "profile": "web", "name": "web.example.com",
        "names": ["web.example.com"], "not_after": "2027-01-01T00:00:00Z",
        "at": chrono::Utc::now(),
    });
    edit(&mut v);
    v.to_string()
}

fn run_hooks(dir: &Path, hooks: &Path) -> crate::common::Output {
    run_bounded(
        Command::new(EXE)
            .arg("--config-dir")
            .arg(dir)
            .args(["run-hooks", "--from"])
            .arg(hooks),
        30,
    )
}

fn names_in(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = entries(p)
        .iter()
        .map(|e| e.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The root helper reads nothing but the regular files of its directory: a FIFO named like a
/// request does not hang it, a link to a root-only file is not read (nothing of it is echoed
/// into the answer the service user reads), a directory named like a request and an oversized
/// file are set aside (`*.rejected`, so the path unit stops starting it), and a request owned
/// by another user is refused. The valid request among them is served.
#[test]
fn run_hooks_reads_only_the_regular_files_of_its_directory() {
    use crate::common::Env;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(Env::new(sectigo_sim::ScmSimConfig::default()));
    let (hooks, log) = hook_setup(&env);
    let secret = env.path().join("root-only.json");
    std::fs::write(&secret, "{\"TOPSECRET_abc\": 1}").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(hooks.join("100.request"), hook_request("100", |_| {})).unwrap();
    let fifo = Command::new("mkfifo")
        .arg(hooks.join("101.request"))
        .status()
        .unwrap();
    assert!(fifo.success());
    std::os::unix::fs::symlink(&secret, hooks.join("102.request")).unwrap();
    std::fs::create_dir(hooks.join("103.request")).unwrap();
    std::fs::write(hooks.join("104.request"), " ".repeat(200 * 1024)).unwrap();
    if root_or_skip(
        "run_hooks_reads_only_the_regular_files_of_its_directory (a request of another user)",
    ) {
        let (uid, gid) = test_user("sectest-other");
        let p = hooks.join("105.request");
        std::fs::write(&p, hook_request("105", |_| {})).unwrap();
        chown_tree(&p, uid, gid);
    }
    let o = run_hooks(env.path(), &hooks);
    assert_eq!(o.code, 1, "refusals are failures: {}", o.stderr);
    assert!(!o.stderr.contains("TOPSECRET"), "{}", o.stderr);
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "100");
    let left = names_in(&hooks);
    assert!(
        !left.iter().any(|n| n.ends_with(".request")),
        "each request is gone or set aside: {left:?}"
    );
    for (id, why) in [
        ("101", "a FIFO"),
        ("102", "a symbolic link"),
        ("103", "a directory"),
        ("104", "larger than"),
    ] {
        assert!(
            left.iter()
                .any(|n| n.starts_with(&format!("{id}.request.")) && n.ends_with(".rejected")),
            "{id} set aside: {left:?}"
        );
        let answer = std::fs::read_to_string(hooks.join(format!("{id}.result"))).unwrap();
        let a: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(a["ok"], false, "{answer}");
        assert!(a["message"].as_str().unwrap().contains(why), "{answer}");
        assert!(!answer.contains("TOPSECRET"), "{answer}");
    }
    if left.iter().any(|n| n.starts_with("105.")) {
        let answer = std::fs::read_to_string(hooks.join("105.result")).unwrap();
        assert!(answer.contains("owned by uid"), "{answer}");
    }
    // A second run finds nothing to do.
    let o = run_hooks(env.path(), &hooks);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

/// Every field of a request is checked before any hook runs: an old certificate id, a name or
/// a DNS name carrying shell syntax or a newline, an unknown field, another certificate's
/// id, a profile that does not deploy.
#[test]
fn run_hooks_refuses_forged_fields_before_any_hook_runs() {
    use crate::common::Env;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(Env::new(sectigo_sim::ScmSimConfig::default()));
    let (hooks, log) = hook_setup(&env);
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let forged: Vec<(&str, Edit)> = vec![
        ("200", Box::new(|v| v["old_cert_id"] = "$(id)".into())),
        ("201", Box::new(|v| v["old_cert_id"] = "`id`".into())),
        ("202", Box::new(|v| v["old_cert_id"] = "1\n2".into())),
        ("203", Box::new(|v| v["name"] = "../../etc".into())),
        (
            "204",
            Box::new(|v| v["names"] = serde_json::json!(["a.example.com", "$(reboot)"])),
        ),
        (
            "205",
            Box::new(|v| v["names"] = serde_json::json!(["a\nb.example.com"])),
        ),
        (
            "206",
            Box::new(|v| v["command"] = serde_json::json!(["/bin/sh"])),
        ),
        ("207", Box::new(|v| v["cert_id"] = "999".into())),
        ("208", Box::new(|v| v["profile"] = "nope".into())),
    ];
    let ids: Vec<&str> = forged.iter().map(|(i, _)| *i).collect();
    for (id, edit) in forged {
        std::fs::write(hooks.join(format!("{id}.request")), hook_request(id, edit)).unwrap();
    }
    let o = run_hooks(env.path(), &hooks);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        !log.exists(),
        "a hook ran: {:?}",
        std::fs::read_to_string(&log)
    );
    for id in ids {
        let answer = std::fs::read_to_string(hooks.join(format!("{id}.result"))).unwrap();
        assert!(answer.contains("\"ok\":false"), "{id}: {answer}");
        assert!(!hooks.join(format!("{id}.request")).exists(), "{id}");
    }
}

/// The request directory itself: swapped for a link to another directory, or writable by
/// others, it is refused and nothing in it is read or run.
#[test]
fn run_hooks_refuses_a_directory_that_is_a_link_or_open_to_others() {
    use crate::common::Env;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(Env::new(sectigo_sim::ScmSimConfig::default()));
    let (hooks, log) = hook_setup(&env);
    std::fs::write(hooks.join("300.request"), hook_request("300", |_| {})).unwrap();
    let link = env.path().join("hooks-link");
    std::os::unix::fs::symlink(&hooks, &link).unwrap();
    let o = run_hooks(env.path(), &link);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("refused"), "{}", o.stderr);
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = run_hooks(env.path(), &hooks);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("writable by nobody else"), "{}", o.stderr);
    assert!(!log.exists(), "a hook ran");
    assert!(hooks.join("300.request").exists(), "nothing was touched");
    // Back to 0750: served.
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o750)).unwrap();
    let o = run_hooks(env.path(), &hooks);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "300");
    // The helper's unit cannot run for ever.
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/sectigo-connector-hooks.service"),
    )
    .unwrap();
    assert!(unit.contains("\nTimeoutStartSec="), "{unit}");
}

/// Root's `state import` into the service user's state directory: a `keys` or `db` planted
/// there as a link to a directory of root's is refused before anything is written; a link
/// planted deeper (`db/db` to a root-only file) is not written through either, because the
/// import runs as the directory's owner; and a clean import leaves everything to that user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_import_as_root_follows_no_link_the_service_user_planted() {
    use crate::common::Env;
    if !root_or_skip("state_import_as_root_follows_no_link_the_service_user_planted") {
        return;
    }
    let (uid, gid) = test_user("sectest-svc");
    let a = Env::new(sectigo_sim::ScmSimConfig::default()).await;
    let b = Env::new(sectigo_sim::ScmSimConfig::default()).await;
    a.profile("web", "");
    b.profile("web", "");
    let id = a.sim_cert("web.example.com", 100);
    let (da, db) = (a.path().to_path_buf(), b.path().to_path_buf());
    tokio::task::spawn_blocking(move || {
        let o = cli(
            &da,
            &["certs", "import", "--profile", "web", "--cert-id", &id],
        );
        assert_eq!(o.code, 0, "{}", o.stderr);
        let backup = da.join("backup.jsonl");
        let o = cli(&da, &["state", "export", backup.to_str().unwrap()]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        // With a private key in it.
        let pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let mut lines: Vec<serde_json::Value> = std::fs::read_to_string(&backup)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut end = lines.pop().unwrap();
        end["end"]["keys"] = 1.into();
        lines.push(serde_json::json!({"key": {"name": "r-1", "pem": pem}}));
        lines.push(end);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&backup, text).unwrap();

        // B's state directory is the service user's; B's own directory, root's, is
        // traversable (as /var/lib is).
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = db.join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
        chown_tree(&state, uid, gid);
        let root_dir = db.join("root-only");
        std::fs::create_dir(&root_dir).unwrap();
        std::fs::set_permissions(&root_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let lchown = |p: &Path| std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
        for planted in ["keys", "db"] {
            let link = state.join(planted);
            std::os::unix::fs::symlink(&root_dir, &link).unwrap();
            lchown(&link);
            let o = cli(&db, &["state", "import", backup.to_str().unwrap()]);
            assert_ne!(o.code, 0, "{planted}: {}", o.stdout);
            assert!(
                o.stderr
                    .contains(&format!("{planted}: a symbolic link: refused")),
                "{planted}: {}",
                o.stderr
            );
            assert_eq!(entries(&root_dir), Vec::<PathBuf>::new(), "{planted}");
            std::fs::remove_file(&link).unwrap();
        }
        // Deeper: the database's own file, a link to a root-only file.
        let root_file = db.join("root-only.bin");
        std::fs::write(&root_file, "root's").unwrap();
        std::fs::set_permissions(&root_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::create_dir(state.join("db")).unwrap();
        chown_tree(&state.join("db"), uid, gid);
        for f in ["db", "conf"] {
            let l = state.join("db").join(f);
            std::os::unix::fs::symlink(&root_file, &l).unwrap();
            lchown(&l);
        }
        let _ = cli(&db, &["state", "import", backup.to_str().unwrap()]);
        assert_eq!(std::fs::read_to_string(&root_file).unwrap(), "root's");
        assert_eq!(
            std::fs::metadata(&root_file).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        std::fs::remove_dir_all(state.join("db")).unwrap();
        let _ = std::fs::remove_dir_all(state.join("keys"));

        // A clean import: everything it made is the service user's.
        let o = cli(&db, &["state", "import", backup.to_str().unwrap()]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(o.stdout.contains(&format!("as uid {uid}")), "{}", o.stdout);
        let find = Command::new("find")
            .arg(&state)
            .args(["!", "-uid", &uid.to_string()])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&find.stdout),
            "",
            "not the service user's"
        );
        assert!(state.join("keys").join("r-1.key").is_file());
    })
    .await
    .unwrap();
}

/// Root's commands do not write the daemon's `[log] file` directory, which the service user
/// controls: not `run-hooks` (its journal only), not `certs list` run while the daemon is
/// stopped. A link planted as the directory, or at the day's file name, is not followed.
#[test]
fn root_commands_write_no_log_file_in_the_service_users_directory() {
    use crate::common::Env;
    if !root_or_skip("root_commands_write_no_log_file_in_the_service_users_directory") {
        return;
    }
    let (uid, gid) = test_user("sectest-svc");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(Env::new(sectigo_sim::ScmSimConfig::default()));
    let root_dir = env.path().join("root-only");
    std::fs::create_dir(&root_dir).unwrap();
    let logs = env.path().join("logs");
    let (hooks, _) = hook_setup(&env);
    for planted in ["directory link", "directory of the service user"] {
        let _ = std::fs::remove_file(&logs);
        let _ = std::fs::remove_dir_all(&logs);
        if planted == "directory link" {
            std::os::unix::fs::symlink(&root_dir, &logs).unwrap();
        } else {
            std::fs::create_dir(&logs).unwrap();
            chown_tree(&logs, uid, gid);
        }
        env.connector("");
        let toml = env.path().join("connector.toml");
        let text = std::fs::read_to_string(&toml).unwrap().replace(
            "format = \"text\"\n",
            &format!("format = \"text\"\nfile = {logs:?}\n"),
        );
        std::fs::write(&toml, text).unwrap();
        std::fs::write(hooks.join("400.request"), hook_request("400", |_| {})).unwrap();
        let o = run_hooks(env.path(), &hooks);
        assert_eq!(o.code, 0, "{planted}: {}", o.stderr);
        let o = cli(env.path(), &["certs", "list"]);
        assert_eq!(o.code, 0, "{planted}: {}", o.stderr);
        assert_eq!(entries(&root_dir), Vec::<PathBuf>::new(), "{planted}");
        if planted != "directory link" {
            assert_eq!(entries(&logs), Vec::<PathBuf>::new(), "{planted}");
        }
    }
}

/// A group for the tests, made once: its gid.
fn test_group(name: &str) -> u32 {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let gid = || -> Option<u32> {
        let o = Command::new("getent").args(["group", name]).output().ok()?;
        String::from_utf8_lossy(&o.stdout)
            .split(':')
            .nth(2)?
            .trim()
            .parse()
            .ok()
    };
    if gid().is_none() {
        let _ = Command::new("groupadd").args(["--system", name]).status();
    }
    gid().expect("groupadd")
}

/// A deployed private key is the owner's alone (0600) unless `[deploy] group` names a group:
/// then 0640, that group's, whatever `[deploy] mode` says (here 0644: the certificates are
/// world-readable, the key is not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_key_is_readable_by_the_deploy_group_only() {
    use crate::common::Env;
    if !root_or_skip("a_deployed_key_is_readable_by_the_deploy_group_only") {
        return;
    }
    let gid = test_group("sectest-keys");
    let env = Env::new(sectigo_sim::ScmSimConfig::default()).await;
    let out = env.path().join("certs");
    env.profile(
        "web",
        &format!("key_rotation = \"new\"\nkey_type = \"ec-p256\"\n[deploy]\ndir = {out:?}\ngroup = \"sectest-keys\"\nmode = \"0644\""),
    );
    let store = env.store();
    let engine = env.engine_with(store.clone());
    engine.book().sync().await.unwrap();
    env.seed(&engine, "web", &[5]).await;
    engine
        .cycle()
        .run(
            sectigo_engine::Mode::Live,
            &tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap();
    let set = out.join("web-0.example.com");
    let meta = |f: &str| std::fs::metadata(set.join(f)).unwrap();
    assert_eq!(meta("privkey.pem").permissions().mode() & 0o7777, 0o640);
    assert_eq!(meta("privkey.pem").gid(), gid);
    assert_eq!(meta("cert.pem").permissions().mode() & 0o7777, 0o644);
    assert_eq!(meta("cert.pem").gid(), gid);
}

/// A certificate whose CN and SANs (SCM's text) hold a newline, ESC, BEL and NUL: `certs
/// list`, `certs show`, `status` and the log of a cycle show them escaped (no forged line, no
/// terminal escape), and the `[notify]` command still starts (a NUL in its environment kept it
/// from starting, so the alert was never sent) and gets the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_from_scm_reach_no_terminal_log_or_notify_command() {
    use crate::common::Env;
    let env = Env::new(sectigo_sim::ScmSimConfig::default()).await;
    let marker = env.path().join("notified");
    env.connector(&format!(
        "[notify]\ncommand = [\"/bin/sh\", \"-c\", \"printf '%s' \\\"$SECTIGO_MESSAGE\\\" > {}\"]\n",
        marker.display()
    ));
    env.profile("web", "auto_renew = false\nexpiry_window_days = 30");
    let forged = "2026-12-01T00:00:00.000000Z  INFO sectigo: FORGED";
    let cn = format!("evil\n{forged}\u{1b}[2J\u{0}.example.com");
    let now = chrono::Utc::now();
    let id = env.sim.add_certificate(
        &cn,
        &["www.example.com", "x\u{1b}]0;title\u{7}.example.com"],
        now - chrono::Duration::days(300),
        now + chrono::Duration::days(5),
    );
    let dir = env.path().to_path_buf();
    let marker2 = marker.clone();
    tokio::task::spawn_blocking(move || {
        let o = cli(
            &dir,
            &["certs", "import", "--profile", "web", "--cert-id", &id],
        );
        assert_eq!(o.code, 0, "{}", o.stderr);
        let mut all = String::new();
        for args in [
            vec!["certs", "list"],
            vec!["certs", "show", &id],
            vec!["certs", "list", "--json"],
            vec!["run", "--once"],
            vec!["status"],
        ] {
            let o = cli(&dir, &args);
            all.push_str(&o.stdout);
            all.push_str(&o.stderr);
        }
        assert!(all.contains("FORGED"), "the CN is shown: {all}");
        for c in ['\u{1b}', '\u{0}', '\u{7}', '\r'] {
            assert!(!all.contains(c), "{c:?} reached the output:\n{all}");
        }
        for l in all.lines() {
            assert!(!l.starts_with(forged), "a forged line: {l}");
        }
        let message = std::fs::read_to_string(&marker2).expect("the notify command ran");
        assert!(
            message.contains("FORGED") && message.contains("Auto Renew off"),
            "{message}"
        );
        assert!(
            !message.contains('\u{0}') && !message.contains('\u{1b}'),
            "{message:?}"
        );
    })
    .await
    .unwrap();
}

/// The socket's group may use the daemon but never gets a private key it made: `certs export`
/// asked with the key by a member of the group comes without it (root's comes with it), and
/// `state export` of a state holding keys is refused to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sockets_group_never_gets_a_private_key() {
    use crate::common::Env;
    if !root_or_skip("the_sockets_group_never_gets_a_private_key") {
        return;
    }
    let (uid, _) = test_user("sectest-other");
    let env = Env::new(sectigo_sim::ScmSimConfig::default()).await;
    env.connector("[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n");
    env.profile(
        "web",
        &format!(
            "key_rotation = \"new\"\nkey_type = \"ec-p256\"\n[deploy]\ndir = {:?}",
            env.path().join("certs")
        ),
    );
    let new_id = {
        let store = env.store();
        let engine = env.engine_with(store.clone());
        engine.book().sync().await.unwrap();
        let ids = env.seed(&engine, "web", &[5]).await;
        engine
            .cycle()
            .run(
                sectigo_engine::Mode::Live,
                &tokio_util::sync::CancellationToken::new(),
            )
            .await
            .unwrap();
        match crate::common::get(&store, &ids[0]).state {
            sectigo_model::CertState::Superseded { by, .. } => by,
            s => panic!("{s:?}"),
        }
    };
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (dir, socket) = (env.path().to_path_buf(), env.socket());
    tokio::task::spawn_blocking(move || {
        let _d = daemon(&dir, &dir.join("daemon.log"));
        wait_for("the socket", 10, || socket.exists());
        let ask = r#"
            use IO::Socket::UNIX; use Socket; $| = 1;
            my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) or die;
            my $hello = <$c>; print $c "$ARGV[1]\n"; shutdown($c, 1);
            my $r = <$c>; print $r;
        "#;
        let member = |req: &str| {
            run_bounded(
                Command::new("setpriv")
                    .arg(format!("--reuid={uid}"))
                    .args(["--regid=0", "--clear-groups", "--", "perl", "-e", ask])
                    .arg(&socket)
                    .arg(req),
                30,
            )
            .stdout
        };
        let export = format!("{{\"cmd\":\"certs-export\",\"id\":\"{new_id}\",\"key\":true}}");
        let reply = member(&export);
        assert!(
            reply.starts_with("{\"Ok\":{\"reply\":\"exported\""),
            "{reply}"
        );
        assert!(!reply.contains("PRIVATE KEY"), "{reply}");
        let reply = member("{\"cmd\":\"state-export\",\"keys\":true}");
        assert!(reply.starts_with("{\"Err\""), "{reply}");
        assert!(!reply.contains("PRIVATE KEY"), "{reply}");
        // Root's export has it.
        let out = dir.join("out");
        let o = cli(
            &dir,
            &["certs", "export", &new_id, "--out", out.to_str().unwrap()],
        );
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(out.join("web-0.example.com/privkey.pem").is_file());
    })
    .await
    .unwrap();
}

/// Root's commands never open the service user's state themselves when no daemon runs: the
/// service user can plant links in it that the store follows (sled opens `db/conf` for writing
/// before it takes its lock). They run as the state's owner instead (`serve-local`): `certs
/// list` and `run --once` work and show the state; `state export` is still written by root,
/// 0600; and a link planted at `db/conf` makes none of them create root's file.
#[test]
fn root_never_opens_the_service_users_state() {
    use crate::common::Env;
    if !root_or_skip("root_never_opens_the_service_users_state") {
        return;
    }
    let (uid, gid) = test_user("sectest-svc");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(Env::new(sectigo_sim::ScmSimConfig::default()));
    env.profile("web", "");
    let id = env.sim_cert("web.example.com", 100);
    let dir = env.path().to_path_buf();
    let o = cli(
        &dir,
        &["certs", "import", "--profile", "web", "--cert-id", &id],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    // The packaged layout: the configuration root's and readable by the service user's
    // group, the state the service user's.
    let ok = Command::new("chmod")
        .args(["-R", "go+rX"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(ok.success());
    let state = dir.join("state");
    chown_tree(&state, uid, gid);
    let root_dir = dir.join("root-only");
    std::fs::create_dir(&root_dir).unwrap();
    std::fs::set_permissions(&root_dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    let o = cli(&dir, &["certs", "list"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains(id.as_str()), "{}", o.stdout);
    let backup = root_dir.join("backup.jsonl");
    let o = cli(&dir, &["state", "export", backup.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let m = std::fs::metadata(&backup).unwrap();
    assert_eq!((m.uid(), m.permissions().mode() & 0o777), (0, 0o600));
    assert!(std::fs::read_to_string(&backup)
        .unwrap()
        .contains(id.as_str()));
    let o = cli(&dir, &["run", "--once"]);
    assert!(o.code == 0 || o.code == 1, "{}", o.stderr);
    let find = Command::new("find")
        .arg(&state)
        .args(["!", "-uid", &uid.to_string()])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&find.stdout), "", "root made these");

    // The planted link: a file root would create, in a directory only root can write.
    let target = root_dir.join("planted");
    let conf = state.join("db").join("conf");
    std::fs::remove_file(&conf).unwrap();
    std::os::unix::fs::symlink(&target, &conf).unwrap();
    std::os::unix::fs::lchown(&conf, Some(uid), Some(gid)).unwrap();
    for args in [
        &["certs", "list"][..],
        &["run", "--once"],
        &[
            "state",
            "export",
            root_dir.join("b2.jsonl").to_str().unwrap(),
        ],
    ] {
        let _ = cli(&dir, args);
        assert!(
            !target.exists(),
            "{args:?} made root write through the link"
        );
    }
}
