//! Benchmarks at scale. They measure and print; they are not tests.
//!
//!   cargo bench --bench scale -- selection 10000 100000 1000000
//!   cargo bench --bench scale -- daemon 100000
//!   cargo bench --bench scale -- throughput 1000 50 8 100
//!
//! `selection N...`: due selection over N tracked certificates, 0.1% of them due: time per
//! selection (the index range scan plus the policy over what it returns) and memory.
//! `daemon N`: the real binary over a state of N certificates: time from start to READY,
//! RSS when ready and after an idle minute (`IDLE_SECS`), CPU used and wake-ups (context
//! switches of all its threads) while idle. `SECTIGO_BENCH_EXE=PATH` measures another build.
//! `workflow N`: the real binary with `[jira.workflow]` polling the Jira simulator every second,
//! over a state holding N issue records: CPU per poll (three searches, nothing to do).
//! `throughput CERTS LATENCY_MS MAX_CONCURRENT MAX_RPS`: renew CERTS due certificates against
//! the simulator answering after LATENCY_MS: wall time against the ideal
//! (calls × latency / concurrency, or calls / rate, whichever binds), and the most requests
//! seen in any one second.

// The tests (and the benchmarks) drive the real binary, which reads the wall clock, and the
// simulators beside it; where time must move faster, a test takes `Env::manual`'s clock.
#![allow(clippy::disallowed_methods)]

use sectigo_engine::Mode;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as CDuration, Utc};
use sectigo_core::config::Config;
use sectigo_engine::policy::{self, RenewPolicy};
use sectigo_engine::{Engine, ImportLine, Shared};
use sectigo_model::{CertOrigin, CertRecord, CertState};
use sectigo_sim::{Faults, ScmSim, ScmSimConfig};
use sectigo_state::{SledStore, Store};

fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// (utime + stime) in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Fills a state directory with `n` active certificates of profile "bench"; one in a thousand
/// expires within 30 days, the others between 60 and 400 days.
fn populate(dir: &Path, n: usize) -> Duration {
    let store = SledStore::open(dir, 64).unwrap();
    let now = Utc::now();
    let start = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        let days = if i % 1000 == 0 {
            1 + (i / 1000 % 29) as i64
        } else {
            60 + (i % 340) as i64
        };
        batch.push(CertRecord {
            id: format!("{}", 1_000_000 + i).parse().unwrap(),
            profile: "bench".parse().unwrap(),
            subject_cn: format!("host{i}.example.com"),
            sans: vec![format!("host{i}.example.com")],
            serial: format!("{i:016X}"),
            not_before: now + CDuration::days(days) - CDuration::days(365),
            not_after: now + CDuration::days(days),
            state: CertState::Active,
            jira_issue: None,
            origin: CertOrigin::Imported { at: now },
            failures: 0,
            next_attempt: None,
            last_error: None,
            reported_no_auto_renew: None,
            stall_reported: None,
            history: vec![],
            name: None,
            deploy: None,
            scm_auto_renew: false,
        });
        if batch.len() == 1000 {
            store.put(&batch).unwrap();
            batch.clear();
        }
    }
    store.put(&batch).unwrap();
    store.flush().unwrap();
    start.elapsed()
}

fn selection(sizes: &[usize]) {
    println!("| tracked | due | populate | selection (median of 7) | RSS after | peak RSS |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &n in sizes {
        // Each size in a child process, so that memory figures are its own.
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args(["selection-one", &n.to_string()])
            .output()
            .unwrap();
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
}

fn selection_one(n: usize) {
    let tmp = tempfile::tempdir().unwrap();
    // Populate in another process: this one's memory is then the selection's alone.
    let start = Instant::now();
    let st = Command::new(std::env::current_exe().unwrap())
        .args(["populate", tmp.path().to_str().unwrap(), &n.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let fill = start.elapsed();
    // Reopen: a daemon starting on this state.
    let store = SledStore::open(tmp.path(), 64).unwrap();
    let now = Utc::now();
    let pol = RenewPolicy {
        expiry_window_days: 30,
        auto_renew: true,
        force: None,
    };
    let mut times = Vec::new();
    let mut due = 0;
    for _ in 0..7 {
        let t = Instant::now();
        let cands = store
            .active_expiring_before(now + CDuration::days(30))
            .unwrap();
        due = cands
            .iter()
            .filter(|c| matches!(policy::decide(c, &pol, now), policy::Decision::Renew { .. }))
            .count();
        times.push(t.elapsed());
    }
    times.sort();
    let pid = std::process::id();
    println!(
        "| {n} | {due} | {:.1} s | {:.2} ms | {:.0} MiB | {:.0} MiB |",
        fill.as_secs_f64(),
        times[3].as_secs_f64() * 1000.0,
        mib(proc_status(pid, "VmRSS:")),
        mib(proc_status(pid, "VmHWM:"))
    );
}

fn daemon(n: usize) {
    let exe = daemon_exe();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let start = Instant::now();
    let st = Command::new(std::env::current_exe().unwrap())
        .args(["populate", state.to_str().unwrap(), &n.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let fill = start.elapsed();
    std::fs::create_dir_all(tmp.path().join("profiles.d")).unwrap();
    std::fs::write(
        tmp.path().join("connector.toml"),
        format!("[state]\ndir = {state:?}\n[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n[control]\nsocket = {:?}\n[log]\nformat = \"text\"\n", tmp.path().join("sock")),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("profiles.d/bench.toml"),
        "client_id = \"c\"\nclient_secret = \"s\"\nscm_url = \"https://scm.example.com\"\n",
    )
    .unwrap();
    let notify_path = tmp.path().join("notify");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let start = Instant::now();
    let mut child = Command::new(&exe)
        .arg("--config-dir")
        .arg(tmp.path())
        .arg("run")
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 4096];
    let ready = loop {
        let k = sock.recv(&mut buf).expect("READY within 30 s");
        if String::from_utf8_lossy(&buf[..k]).contains("READY=1") {
            break start.elapsed();
        }
    };
    let pid = child.id();
    let rss_ready = proc_status(pid, "VmRSS:");
    // Idle: the scheduler's ticker (tokio-cron-scheduler looks for due jobs every 500 ms) is
    // all that runs. Measured as CPU time and as context switches of all the daemon's threads.
    let idle = Duration::from_secs(
        std::env::var("IDLE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    );
    std::thread::sleep(Duration::from_secs(2));
    let (t0, w0) = (cpu_ticks(pid), wakeups(pid));
    std::thread::sleep(idle);
    let (idle_ticks, woke) = (cpu_ticks(pid) - t0, wakeups(pid) - w0);
    let rss_idle = proc_status(pid, "VmRSS:");
    terminate(pid);
    child.wait().unwrap();
    let secs = idle.as_secs_f64();
    println!("| tracked | populate | start to READY | RSS at READY | RSS after idle | idle: CPU | idle: share of a core | idle: wake-ups/s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {n} | {:.1} s | {:.0} ms | {:.1} MiB | {:.1} MiB | {} ms in {secs:.0} s | {:.3} % | {:.1} |",
        fill.as_secs_f64(),
        ready.as_secs_f64() * 1000.0,
        mib(rss_ready),
        mib(rss_idle),
        idle_ticks * 10,
        idle_ticks as f64 / 100.0 / secs * 100.0,
        woke as f64 / secs
    );
}

/// Context switches (voluntary and not) of all the threads of `pid`: each is a wake-up.
fn wakeups(pid: u32) -> u64 {
    let mut n = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        for l in status.lines() {
            if l.starts_with("voluntary_ctxt_switches:")
                || l.starts_with("nonvoluntary_ctxt_switches:")
            {
                n += l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    n
}

fn workflow(n: usize) {
    use sectigo_model::{EnrollState, IssueRecord};
    let exe = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/sectigo-connector");
    assert!(exe.exists(), "build it first: cargo build --release");
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    {
        let store = SledStore::open(&state, 64).unwrap();
        let now = Utc::now();
        let recs: Vec<IssueRecord> = (0..n)
            .map(|i| {
                let mut r = IssueRecord::new(&format!("CERT-{i}").parse().unwrap());
                r.csr_sha256 = Some(format!("{i:064x}"));
                r.enroll = Some(EnrollState::Issued {
                    cert_id: i.to_string().parse().unwrap(),
                    at: now,
                });
                r
            })
            .collect();
        for chunk in recs.chunks(1000) {
            store.commit_all(&[], chunk, &[]).unwrap();
        }
        store.flush().unwrap();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let jira = rt
        .block_on(sectigo_sim::JiraSim::start(
            sectigo_core::config::JiraFlavor::Cloud,
            "bot@example.com",
            "t",
        ))
        .unwrap();
    std::fs::create_dir_all(tmp.path().join("profiles.d")).unwrap();
    std::fs::write(
        tmp.path().join("connector.toml"),
        format!("[state]\ndir = {state:?}\n[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = false\n[control]\nsocket = {:?}\n[log]\nformat = \"text\"\n[jira]\nurl = \"{}\"\nemail = \"bot@example.com\"\ntoken = \"t\"\n[jira.workflow]\nenabled = true\npoll_cron = \"* * * * * *\"\n", tmp.path().join("sock"), jira.url()),
    )
    .unwrap();
    let mut child = Command::new(&exe)
        .arg("--config-dir")
        .arg(tmp.path())
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(3));
    let (t0, s0) = (cpu_ticks(pid), jira.searches());
    std::thread::sleep(Duration::from_secs(10));
    let (ticks, searches) = (cpu_ticks(pid) - t0, jira.searches() - s0);
    let rss = proc_status(pid, "VmRSS:");
    terminate(pid);
    child.wait().unwrap();
    let polls = searches / 3;
    println!("| issue records | polls in 10 s | CPU in 10 s | CPU per poll | RSS |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {n} | {polls} | {} ms | {:.1} ms | {:.1} MiB |",
        ticks * 10,
        (ticks * 10) as f64 / polls.max(1) as f64,
        mib(rss)
    );
}

fn throughput(certs: usize, latency_ms: u64, concurrency: usize, rps: f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let sim = ScmSim::start(ScmSimConfig { token_ttl: Duration::from_secs(3600), ..Default::default() }).await.unwrap();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("profiles.d")).unwrap();
        std::fs::write(
            tmp.path().join("connector.toml"),
            format!("[state]\ndir = {:?}\n[scm]\nmax_concurrent = {concurrency}\nmax_requests_per_second = {rps}\n[log]\nlevel = \"warn\"\n", tmp.path().join("state")),
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("profiles.d/bench.toml"),
            format!("client_id = \"sim-client\"\nclient_secret = \"sim-secret\"\nscm_url = \"{}\"\ntoken_url = \"{}\"\n", sim.url(), sim.token_url()),
        )
        .unwrap();
        let cfg = Config::load(tmp.path()).unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&cfg.connector.state.dir, 64).unwrap());
        let engine =
            Engine::new(&cfg, store, Shared::new(&cfg), sectigo_core::clock::system()).unwrap();
        let now = Utc::now();
        let ids: Vec<sectigo_core::names::CertId> = (0..certs).map(|i| sim.add_certificate(&format!("t{i}.example.com"), &[], now - CDuration::days(360), now + CDuration::days(5))).collect();
        let lines = ids.iter().map(|id| ImportLine { cert_id: id.clone(), issue: None, name: None }).collect();
        engine.importer().import(&"bench".parse().unwrap(), lines).await.unwrap();
        sim.set_faults(Faults { latency: Duration::from_millis(latency_ms), ..Default::default() });
        let before = sim.requests().len();
        let start = Instant::now();
        let r = engine.cycle()
        .run(Mode::Live, &tokio_util::sync::CancellationToken::new()).await.unwrap();
        let wall = start.elapsed();
        let calls = sim.requests()[before..].iter().filter(|q| q.path.starts_with("/api/")).count();
        let by_latency = calls as f64 * latency_ms as f64 / 1000.0 / concurrency as f64;
        let by_rate = calls as f64 / rps;
        let ideal = by_latency.max(by_rate);
        println!("| certificates | latency | max_concurrent | max rps | API calls | renewed | wall time | ideal ({}) | ratio | most requests in 1 s |", if by_rate >= by_latency { "rate-bound" } else { "latency-bound" });
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {certs} | {latency_ms} ms | {concurrency} | {rps} | {calls} | {} | {:.2} s | {:.2} s | {:.3} | {} |",
            r.summary.renewed,
            wall.as_secs_f64(),
            ideal,
            wall.as_secs_f64() / ideal,
            sim.max_requests_in_since(Duration::from_secs(1), before)
        );
        assert!(sim.billed_twice().is_empty());
    });
}

/// `state export` and `state import` of N tracked certificates: how long writers pause for an
/// export (it holds them off while it writes the snapshot), the file's size, and the import.
fn backup(sizes: &[usize]) {
    println!("| tracked | export (writers paused) | read back | file | import | peak RSS |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &n in sizes {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["backup-one", &n.to_string()])
            .output()
            .unwrap();
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
}

fn backup_one(n: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let st = Command::new(std::env::current_exe().unwrap())
        .args(["populate", a.to_str().unwrap(), &n.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let file = tmp.path().join("state.jsonl");
    let (keys_a, keys_b) = (
        sectigo_state::KeyStore::new(&a),
        sectigo_state::KeyStore::new(&b),
    );
    let store = SledStore::open(&a, 64).unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&file).unwrap());
    let t = Instant::now();
    let counts =
        sectigo_state::export::export(&store, &keys_a, true, "bench", Utc::now(), &mut out)
            .unwrap();
    let export = t.elapsed();
    drop(out);
    assert_eq!(counts.certificates, n as u64);
    drop(store);
    let bytes = std::fs::metadata(&file).unwrap().len();
    let t = Instant::now();
    let read = sectigo_state::export::verify(std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(&file).unwrap(),
    ))
    .unwrap();
    let verify = t.elapsed();
    assert_eq!(read, counts);
    let restored = SledStore::open(&b, 64).unwrap();
    let t = Instant::now();
    sectigo_state::export::import(&restored, &keys_b, &mut || {
        std::fs::File::open(&file).map(|f| std::io::BufReader::with_capacity(1 << 20, f))
    })
    .unwrap();
    let import = t.elapsed();
    assert_eq!(restored.len().unwrap(), n);
    println!(
        "| {n} | {:.2} s | {:.1} s | {:.0} MiB | {:.1} s | {:.0} MiB |",
        export.as_secs_f64(),
        verify.as_secs_f64(),
        bytes as f64 / 1048576.0,
        import.as_secs_f64(),
        mib(proc_status(std::process::id(), "VmHWM:"))
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let nums = |from: usize| -> Vec<usize> {
        args.iter()
            .skip(from)
            .filter_map(|a| a.parse().ok())
            .collect()
    };
    match args.first().map(String::as_str) {
        Some("selection") => selection(&nums(1)),
        Some("selection-one") => selection_one(nums(1)[0]),
        Some("populate") => {
            populate(Path::new(&args[1]), args[2].parse().unwrap());
        }
        Some("backup") => backup(&nums(1)),
        Some("backup-one") => backup_one(nums(1)[0]),
        Some("daemon") => daemon(nums(1).first().copied().unwrap_or(100_000)),
        Some("workflow") => {
            for n in nums(1) {
                workflow(n);
            }
        }
        Some("throughput") => {
            let n = nums(1);
            throughput(n.first().copied().unwrap_or(1000), n.get(1).copied().unwrap_or(50) as u64, n.get(2).copied().unwrap_or(8), n.get(3).copied().unwrap_or(100) as f64)
        }
        _ => eprintln!("usage: cargo bench --bench scale -- selection N... | backup N... | daemon N | workflow N... | throughput CERTS LATENCY_MS MAX_CONCURRENT MAX_RPS"),
    }
}

/// SIGTERM to our own child, with kill(1).
fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// The daemon binary measured: `target/release/sectigo-connector`, or `SECTIGO_BENCH_EXE` (to
/// hold another build, e.g. an earlier version, against the same harness).
fn daemon_exe() -> PathBuf {
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
