//! The files as the daemon's user finds them (issue #27): `check-config` run as root checks
//! every file the daemon reads as the service user (the owner of `[state] dir`), the daemon's
//! own "cannot read" errors name the user it runs as and the fix, and a warning's fix never
//! makes a file unreadable to the service user.
//!
//! These tests create a system user (`useradd --system`) and remove it after, so they need
//! root: run as another user they say so and pass (CI runs them as root).

use std::os::unix::fs::{chown, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::run_bounded;

const EXE: &str = env!("CARGO_BIN_EXE_sectigo-connector");

/// A system user made for one test, removed (with its group) when dropped.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    /// `None` (and a line saying why) when not root.
    fn create(test: &str) -> Option<TestUser> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped {test}: not root (it creates a system user; CI runs it as root)");
            return None;
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("sctest{}x{n}", std::process::id());
        let ok = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args(["--shell", "/usr/sbin/nologin", &name])
            .status()
            .unwrap_or_else(|e| panic!("useradd: {e}"))
            .success();
        assert!(ok, "useradd {name} failed");
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").args([flag, &name]).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        Some(TestUser { name, uid, gid })
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
        let _ = Command::new("groupdel")
            .arg(&self.name)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A configuration as `cp` run by root leaves it: root:root 0640 files, in a directory tree
/// anyone may enter; the state directory belongs to `user`.
struct Layout {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    state: PathBuf,
}

impl Layout {
    fn new(user: &TestUser, profile: &str) -> Layout {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tmp.path().join("etc");
        let state = tmp.path().join("state");
        std::fs::create_dir_all(dir.join("profiles.d")).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        chown(&state, Some(user.uid), Some(user.gid)).unwrap();
        let l = Layout {
            _tmp: tmp,
            dir,
            state,
        };
        l.write(
            "connector.toml",
            &format!(
                "[state]\ndir = {:?}\n[control]\nsocket = {:?}\n",
                l.state,
                l.state.join("control.sock")
            ),
            0o640,
        );
        l.write("profiles.d/web.toml", profile, 0o640);
        l
    }

    fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `check-config` as root: (exit code, stdout and stderr).
    fn check(&self) -> (i32, String) {
        let o = run_bounded(
            Command::new(EXE)
                .arg("--config-dir")
                .arg(&self.dir)
                .arg("check-config"),
            60,
        );
        (o.code, format!("{}{}", o.stdout, o.stderr))
    }

    /// A command as `user`, the way the unit runs the daemon.
    fn run_as(&self, user: &TestUser, args: &[&str]) -> (i32, String) {
        let o = run_bounded(
            Command::new(EXE)
                .arg("--config-dir")
                .arg(&self.dir)
                .args(args)
                .env_remove("CREDENTIALS_DIRECTORY")
                .uid(user.uid)
                .gid(user.gid),
            60,
        );
        (o.code, format!("{}{}", o.stdout, o.stderr))
    }
}

fn give_to_group(p: &Path, user: &TestUser, mode: u32) {
    chown(p, Some(0), Some(user.gid)).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

const PROFILE: &str = "client_id = \"c\"\nclient_secret_file = \"web.secret\"\nscm_url = \"https://acme.enroll.enterprise.sectigo.com\"\n";

/// The quick start's trap: files copied by root are root:root 0640. `check-config` as root
/// says the daemon cannot read them, naming each file, the user and the `chgrp` that fixes it;
/// after the fix it passes, and says whom it checked for.
#[test]
fn check_config_as_root_checks_what_the_service_user_can_read() {
    let Some(user) = TestUser::create("check_config_as_root_checks_what_the_service_user_can_read")
    else {
        return;
    };
    let l = Layout::new(&user, PROFILE);
    let secret = l.write("profiles.d/web.secret", "s3cret\n", 0o640);
    let (code, out) = l.check();
    assert_eq!(code, 78, "{out}");
    for f in [
        l.path("connector.toml"),
        l.path("profiles.d/web.toml"),
        secret.clone(),
    ] {
        let f = f.display().to_string();
        let fix = format!("chgrp {} {f} && chmod 0640 {f}", user.name);
        assert!(
            out.lines().any(|line| line.contains(&f)
                && line.contains(&format!("runs as {}", user.name))
                && line.contains(&fix)),
            "{f}: {out}"
        );
    }
    assert!(
        out.contains("key `client_secret_file`"),
        "the secret file is named by its key: {out}"
    );
    assert!(!out.contains("s3cret"), "{out}");

    // The fix as printed: the group's read bit.
    for f in [
        l.path("connector.toml"),
        l.path("profiles.d/web.toml"),
        secret.clone(),
    ] {
        give_to_group(&f, &user, 0o640);
    }
    // A directory on the way that the user may not list is named too.
    std::fs::set_permissions(l.path("profiles.d"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let (code, out) = l.check();
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("cannot list the directory")
            && out.contains(&format!(
                "chgrp {} {d} && chmod g+rx {d}",
                user.name,
                d = l.path("profiles.d").display()
            )),
        "{out}"
    );
    give_to_group(&l.path("profiles.d"), &user, 0o750);
    let (code, out) = l.check();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("read as:   user {}", user.name))
            && out.contains(&format!("the owner of [state] dir {}", l.state.display())),
        "{out}"
    );
    // And the daemon's user reads it all indeed.
    let (code, out) = l.run_as(&user, &["check-config"]);
    assert_eq!(code, 0, "{out}");
}

/// The daemon itself, as the service user, meets a file it cannot read: its error names the
/// file, the user it runs as and the fix (it said only "Permission denied").
#[test]
fn the_daemon_names_its_user_and_the_fix_when_it_cannot_read_a_file() {
    let Some(user) =
        TestUser::create("the_daemon_names_its_user_and_the_fix_when_it_cannot_read_a_file")
    else {
        return;
    };
    let l = Layout::new(&user, PROFILE);
    give_to_group(&l.path("connector.toml"), &user, 0o640);
    give_to_group(&l.path("profiles.d"), &user, 0o750);
    let secret = l.write("profiles.d/web.secret", "s3cret\n", 0o640);
    // The profile root:root 0640 (as `cp` leaves it), its secret too.
    let (code, out) = l.run_as(&user, &["run", "--once"]);
    assert_eq!(code, 78, "{out}");
    let p = l.path("profiles.d/web.toml").display().to_string();
    assert!(
        out.contains(&format!("{p}: cannot read the file"))
            && out.contains(&format!("running as user {}", user.name))
            && out.contains(&format!("chgrp {} {p} && chmod 0640 {p}", user.name)),
        "{out}"
    );
    give_to_group(&l.path("profiles.d/web.toml"), &user, 0o640);
    let (code, out) = l.run_as(&user, &["run", "--once"]);
    assert_eq!(code, 78, "{out}");
    let s = secret.display().to_string();
    assert!(
        out.contains("key `client_secret_file`")
            && out.contains(&format!("cannot read the secret file {s}"))
            && out.contains(&format!("running as user {}", user.name))
            && out.contains(&format!("chgrp {} {s} && chmod 0640 {s}", user.name)),
        "{out}"
    );
    assert!(!out.contains("s3cret"), "{out}");
}

/// A secret readable by other users: the warning's fix keeps it readable to the service user
/// (`chmod o-r` on a root:root file locked the daemon out), and following it works.
#[test]
fn a_warnings_fix_never_locks_the_service_user_out() {
    let Some(user) = TestUser::create("a_warnings_fix_never_locks_the_service_user_out") else {
        return;
    };
    let l = Layout::new(
        &user,
        "client_id = \"c\"\nclient_secret = \"inline-s3cret\"\nscm_url = \"https://acme.enroll.enterprise.sectigo.com\"\n",
    );
    give_to_group(&l.path("connector.toml"), &user, 0o640);
    // root:root 0644: everyone reads it, the service user too.
    let p = l.path("profiles.d/web.toml");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out) = l.check();
    assert_eq!(code, 0, "{out}");
    let f = p.display().to_string();
    let fix = format!("chgrp {} {f} && chmod 0640 {f}", user.name);
    assert!(
        out.contains("readable by other users") && out.contains(&format!("run `{fix}`")),
        "{out}"
    );
    assert!(!out.contains("chmod o-r"), "{out}");
    // Following it: no warning, and the daemon's user still reads the file.
    give_to_group(&p, &user, 0o640);
    let (code, out) = l.check();
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning"), "{out}");
    let (code, out) = l.run_as(&user, &["check-config"]);
    assert_eq!(code, 0, "{out}");

    // A file the service user owns: `chmod o-r` keeps the owner's read bit, and is what it says.
    chown(&p, Some(user.uid), Some(user.gid)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out) = l.check();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("run `chmod o-r {f}`")), "{out}");
}
