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
    let _ = run_bounded;
}
