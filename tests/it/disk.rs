//! The state directory read-only, or its disk full, during renewals: a clear error, no
//! corruption, and never a renewal without its journal entry. These mount a bind mount and a
//! small tmpfs, so they need root: `.ci/run` runs them
//! (`cargo test --test it -- --ignored disk::`).

use std::path::Path;
use std::process::Command;

use crate::common::Env;
use sectigo_model::CertState;
use sectigo_sim::ScmSimConfig;

const EXE: &str = env!("CARGO_BIN_EXE_sectigo-connector");

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd}");
}

fn cli(dir: &Path, args: &[&str]) -> (i32, String) {
    let o = Command::new(EXE)
        .arg("--config-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// An environment whose state lives in `mnt/state`, with `n` due certificates imported.
async fn setup(n: usize) -> (Env, std::path::PathBuf, Vec<sectigo_core::names::CertId>) {
    let env = Env::new(ScmSimConfig::default()).await;
    let mnt = env.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let text = std::fs::read_to_string(env.path().join("connector.toml")).unwrap();
    // Hundreds of renewals in one day: not held by the daily budget (not what is tested).
    let text = text
        .replace(
            &format!("dir = {:?}", env.path().join("state")),
            &format!("dir = {:?}", mnt.join("state")),
        )
        .replace("[renewal]\n", "[renewal]\nmax_per_day = 0\n");
    std::fs::write(env.path().join("connector.toml"), text).unwrap();
    env.profile("web", "expiry_window_days = 30");
    let ids: Vec<sectigo_core::names::CertId> = (0..n)
        .map(|i| env.sim_cert(&format!("d{i}.example.com"), 3))
        .collect();
    (env, mnt, ids)
}

fn import(dir: &Path, ids: &[sectigo_core::names::CertId]) {
    let list = dir.join("ids.txt");
    let text: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
    std::fs::write(&list, text.join("\n")).unwrap();
    let (code, out) = cli(
        dir,
        &[
            "certs",
            "import",
            "--profile",
            "web",
            "--from",
            list.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (mount): run by .ci/run"]
async fn read_only_state_directory() {
    let (env, mnt, ids) = setup(5).await;
    let dir = env.path().to_path_buf();
    import(&dir, &ids);
    let m = mnt.display().to_string();
    sh(&format!(
        "mount --bind {m} {m} && mount -o remount,bind,ro {m}"
    ));
    let d = dir.clone();
    let (code, out) = tokio::task::spawn_blocking(move || cli(&d, &["run", "--once"]))
        .await
        .unwrap();
    sh(&format!("umount {m}"));
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("state") && (out.contains("Read-only") || out.contains("read-only")),
        "a clear error: {out}"
    );
    assert_eq!(
        env.sim.billable_total(),
        0,
        "nothing renewed without a journal entry"
    );
    // Writable again: everything renews, once, and the state opened cleanly.
    let d = dir.clone();
    let (code, out) = tokio::task::spawn_blocking(move || cli(&d, &["run", "--once"]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    assert_eq!(env.sim.billable_total(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (mount): run by .ci/run"]
async fn disk_full_during_renewals() {
    let (env, mnt, ids) = setup(300).await;
    let dir = env.path().to_path_buf();
    let m = mnt.display().to_string();
    sh(&format!("mount -t tmpfs -o size=16m tmpfs {m}"));
    import(&dir, &ids);
    // Leave a little free: the state opens, and fills up during the renewals.
    let free_kib = std::env::var("DISK_FREE_KIB").unwrap_or_else(|_| "560".into());
    sh(&format!("avail=$(df --output=avail -k {m} | tail -1); dd if=/dev/zero of={m}/filler bs=1k count=$((avail - {free_kib})) 2>/dev/null; true"));
    let d = dir.clone();
    let (code, out) = tokio::task::spawn_blocking(move || cli(&d, &["run", "--once"]))
        .await
        .unwrap();
    println!(
        "with a full disk: exit {code}\n{}",
        out.lines()
            .filter(|l| l.contains("ERROR") || l.contains("error"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_ne!(code, 0, "a full disk is reported: {out}");
    let billed_while_full = env.sim.billable_total();
    sh(&format!("rm -f {m}/filler"));

    // No corruption: the state opens; every renewal SCM saw has its journal entry.
    let store = env.store();
    for id in &ids {
        let rec = store.get(id).unwrap().unwrap();
        if env.sim.billable_count(id) > 0 {
            assert!(
                !matches!(rec.state, CertState::Active),
                "{id} was renewed at SCM but the state has no record of it: {:?}",
                rec.state
            );
        }
    }
    drop(store);
    // With space again, the rest renews; nothing is billed twice.
    let d = dir.clone();
    let (code, out) = tokio::task::spawn_blocking(move || cli(&d, &["run", "--once"]))
        .await
        .unwrap();
    sh(&format!("umount {m}"));
    println!(
        "renewed while full: {billed_while_full}; after: {}; exit {code}",
        env.sim.billable_total()
    );
    assert!(
        env.sim.billed_twice().is_empty(),
        "{:?}",
        env.sim.billed_twice()
    );
    assert!(code == 0 || out.contains("outcome unknown"), "{out}");
}
