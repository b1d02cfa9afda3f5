//! Certificates declared in files (#26), at scale. They measure and print; they are not tests.
//!
//!   cargo build --release && cargo bench --bench declared -- 1000 10000
//!
//! For each N, in a child process of its own (so that memory figures are its own), over N
//! files in `certificates.d/`:
//! - `steady`: N declared certificates, each tracked and issued as declared (what every
//!   cycle meets once the fleet is enrolled): loading the configuration, `certs plan`
//!   (in-process, median of 3), one whole cycle (collect, reconcile, decide; nothing due, so
//!   nothing is sent to SCM), and the process's RSS;
//! - `fresh`: N declared, nothing tracked yet (the first `certs plan` of a new fleet: N
//!   billable enrollments listed);
//! - the real binary's `certs plan --json` over the `steady` state (no daemon: it opens the
//!   state itself): wall time and peak RSS. `SECTIGO_BENCH_EXE=PATH` measures another build
//!   (default: target/release/sectigo-connector).

#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Duration as CDuration, Utc};
use sectigo_core::config::Config;
use sectigo_engine::{Engine, Mode, Shared};
use sectigo_model::{CertOrigin, CertRecord, CertState, DeclaredRecord};
use sectigo_state::{SledStore, Store};
use tokio_util::sync::CancellationToken;

fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn exe() -> PathBuf {
    let exe = std::env::var_os("SECTIGO_BENCH_EXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/sectigo-connector")
        });
    assert!(
        exe.exists(),
        "build it first: cargo build --release ({})",
        exe.display()
    );
    exe
}

/// The configuration directory: one profile, `n` declarations `d0..`, and (when `tracked`) a
/// state holding each one's certificate, issued as declared, 60 to 400 days from expiry.
fn setup(dir: &Path, n: usize, tracked: bool) {
    let state = dir.join("state");
    std::fs::create_dir_all(dir.join("profiles.d")).unwrap();
    std::fs::create_dir_all(dir.join("certificates.d")).unwrap();
    std::fs::write(
        dir.join("connector.toml"),
        format!(
            "[state]\ndir = {state:?}\n[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n[control]\nsocket = {:?}\n[log]\nformat = \"text\"\nlevel = \"warn\"\n",
            dir.join("sock")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("profiles.d/bench.toml"),
        format!(
            "client_id = \"c\"\nclient_secret = \"s\"\nscm_url = \"https://scm.example.com\"\nallowed_domains = [\"*.example.com\"]\n[deploy]\ndir = {:?}\n",
            dir.join("deploy")
        ),
    )
    .unwrap();
    for i in 0..n {
        std::fs::write(
            dir.join(format!("certificates.d/d{i}.toml")),
            format!(
                "profile = \"bench\"\nnames = [\"d{i}.example.com\", \"www.d{i}.example.com\"]\n"
            ),
        )
        .unwrap();
    }
    if !tracked {
        return;
    }
    let store = SledStore::open(&state, 64).unwrap();
    let now = Utc::now();
    let (mut certs, mut decls) = (Vec::new(), Vec::new());
    for i in 0..n {
        let days = 60 + (i % 340) as i64;
        let names = vec![format!("d{i}.example.com"), format!("www.d{i}.example.com")];
        let id: sectigo_core::names::CertId = format!("{}", 1_000_000 + i).parse().unwrap();
        let name: sectigo_core::names::CertName = format!("d{i}").parse().unwrap();
        certs.push(CertRecord {
            id: id.clone(),
            profile: "bench".parse().unwrap(),
            subject_cn: names[0].clone(),
            sans: names.clone(),
            serial: format!("{i:016X}"),
            not_before: now + CDuration::days(days) - CDuration::days(365),
            not_after: now + CDuration::days(days),
            state: CertState::Active,
            jira_issue: None,
            origin: CertOrigin::Enrolled { at: now },
            failures: 0,
            next_attempt: None,
            last_error: None,
            reported_no_auto_renew: None,
            stall_reported: None,
            history: vec![],
            name: Some(name.clone()),
            deploy: None,
            scm_auto_renew: false,
        });
        let mut d = DeclaredRecord::new(&name, &"bench".parse().unwrap());
        d.names = names;
        d.key_type = "ec-p256".into();
        d.cert_id = Some(id);
        decls.push(d);
        if certs.len() == 1000 {
            store.commit_declared(&certs, &decls, &[], &[]).unwrap();
            certs.clear();
            decls.clear();
        }
    }
    store.commit_declared(&certs, &decls, &[], &[]).unwrap();
    store.flush().unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// One scenario, in this process: prints a table row.
fn one(scenario: &str, n: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let tracked = scenario == "steady";
    setup(tmp.path(), n, tracked);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Instant::now();
    let cfg = Config::load(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    let load = t.elapsed();
    assert_eq!(cfg.declared.len(), n);
    let store = sectigo_state::open(&cfg.connector.state).unwrap();
    let engine = Engine::new(
        &cfg,
        store,
        Shared::new(&cfg),
        sectigo_core::clock::system(),
    )
    .unwrap();
    let mut plans = Vec::new();
    let mut items = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        items = rt.block_on(engine.declared().plan()).unwrap();
        plans.push(t.elapsed());
    }
    let billable = items.iter().filter(|i| i.action.billable()).count();
    let cycle = if tracked {
        let t = Instant::now();
        let r = rt
            .block_on(engine.cycle().run(Mode::Live, &CancellationToken::new()))
            .unwrap();
        assert!(r.declared.enrolled.is_empty() && r.summary.requested == 0);
        ms(t.elapsed())
    } else {
        "-".into()
    };
    let pid = std::process::id();
    println!(
        "| {scenario} | {n} | {billable} | {} | {} | {cycle} | {:.0} MiB |",
        ms(load),
        ms(median(plans)),
        mib(proc_status(pid, "VmHWM:"))
    );
    if tracked {
        drop(engine);
        drop(rt);
        binary_plan(tmp.path(), n);
    }
}

/// The real binary's `certs plan --json` (it opens the state itself): wall time and peak RSS,
/// sampled from /proc while it runs.
fn binary_plan(dir: &Path, n: usize) {
    let t = Instant::now();
    let mut child = Command::new(exe())
        .arg("--config-dir")
        .arg(dir)
        .args(["certs", "plan", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0;
    let status = loop {
        peak = peak.max(proc_status(child.id(), "VmHWM:"));
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(status.success());
    eprintln!(
        "binary `certs plan --json` over {n} declared (tracked): {} , peak RSS {:.0} MiB",
        ms(t.elapsed()),
        mib(peak)
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("one") {
        one(&args[1], args[2].parse().unwrap());
        return;
    }
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![10_000]
    } else {
        sizes
    };
    println!("| scenario | declared | billable | load config | certs plan (median of 3) | cycle | peak RSS |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        for scenario in ["fresh", "steady"] {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["one", scenario, &n.to_string()])
                .output()
                .unwrap();
            print!("{}", String::from_utf8_lossy(&out.stdout));
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
