//! Benchmarks at scale. They measure and print; they are not tests.
//!
//!   cargo bench --bench scale -- selection 10000 100000 1000000
//!   cargo bench --bench scale -- daemon 100000
//!   cargo bench --bench scale -- throughput 1000 50 8 100
//!   cargo bench --bench scale -- outage 1000 10 token-down
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
//! `outage CERTS RETRY_MAX_SECS MODE [MAX_CONCURRENT [MAX_RPS]]` (defaults 4 and 5, as shipped):
//! one `run --once` of the real binary over CERTS due certificates while SCM is out (MODE
//! `token-down`: its token endpoint answers 503; `refused`: nothing listens at its host;
//! `api-5xx`: tokens are issued, every API call answers 5xx), then one more once it is back:
//! wall time, requests to the token endpoint and to the API, billable calls, exit code,
//! "needs a person" lines, and how many certificates got their own failure and backoff.
//! Each run is stopped after `OUTAGE_TIMEOUT_SECS` (default 900) and reported as far as it got.

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
            format!("[state]\ndir = {:?}\n[scm]\nmax_concurrent = {concurrency}\nmax_requests_per_second = {rps}\n[renewal]\nmax_per_day = 0\n[log]\nlevel = \"warn\"\n", tmp.path().join("state")),
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

/// One `run --once` of the real binary, bounded: stdout and stderr to files, killed (TERM, then
/// KILL) when it outlives `limit`. Returns the exit code (`None`: killed) and the wall time.
async fn run_once_bounded(
    exe: &Path,
    dir: &Path,
    tag: &str,
    limit: Duration,
) -> (Option<i32>, Duration, PathBuf, PathBuf) {
    let (out, err) = (
        dir.join(format!("{tag}.stdout")),
        dir.join(format!("{tag}.stderr")),
    );
    let start = Instant::now();
    let mut child = Command::new(exe)
        .arg("--config-dir")
        .arg(dir)
        .args(["run", "--once"])
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if start.elapsed() >= limit {
            eprintln!(
                "outage: {tag}: still running after {} s: stopping it",
                limit.as_secs()
            );
            terminate(child.id());
            let grace = Instant::now();
            while child.try_wait().unwrap().is_none() && grace.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            child.wait().unwrap();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    (code, start.elapsed(), out, err)
}

/// The kernel's count of TCP connections that failed from SYN-SENT (a refused connect), for
/// the whole network namespace.
fn tcp_attempt_fails() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let i = names.split_whitespace().position(|n| n == "AttemptFails")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// What a run left in the state.
struct Left {
    by_state: std::collections::BTreeMap<&'static str, usize>,
    /// Records with a failure count.
    failed: usize,
    /// Records with a next attempt set (their own backoff).
    with_next: usize,
    /// The earliest and the latest next attempt.
    spread: Option<(chrono::DateTime<Utc>, chrono::DateTime<Utc>)>,
}

fn outage_state(state: &Path) -> Left {
    let store = SledStore::open(state, 64).unwrap();
    let recs = store.by_profile(&"bench".parse().unwrap()).unwrap();
    let mut by_state = std::collections::BTreeMap::new();
    for r in &recs {
        *by_state.entry(r.state.name()).or_insert(0) += 1;
    }
    let next: Vec<_> = recs.iter().filter_map(|r| r.next_attempt).collect();
    Left {
        by_state,
        failed: recs.iter().filter(|r| r.failures > 0).count(),
        with_next: next.len(),
        spread: next
            .iter()
            .min()
            .zip(next.iter().max())
            .map(|(a, b)| (*a, *b)),
    }
}

/// Lines of a run's stderr: (all, ERROR, WARN, "needs a person", "SCM call failed, retrying").
fn outage_lines(err: &Path) -> (usize, usize, usize, usize, usize) {
    let text = std::fs::read_to_string(err).unwrap_or_default();
    let count = |pat: &str| text.lines().filter(|l| l.contains(pat)).count();
    (
        text.lines().count(),
        count(" ERROR "),
        count(" WARN "),
        count("needs a person"),
        count("SCM call failed, retrying"),
    )
}

/// `outage CERTS RETRY_MAX_SECS MODE [MAX_CONCURRENT [MAX_RPS]]`: one `run --once` of the real
/// binary over CERTS due certificates while SCM is out, then one more once it is back.
/// MODE: `token-down` (the token endpoint answers 503), `refused` (nothing listens at SCM's
/// host: a closed loopback port), `api-5xx` (tokens are issued, every API call answers 5xx).
/// Each run is stopped after `OUTAGE_TIMEOUT_SECS` (default 900); a stopped run is reported
/// as far as it got, with an extrapolation to all CERTS.
fn outage(certs: usize, retry_max: u64, mode: &str, concurrency: usize, rps: f64) {
    assert!(
        matches!(mode, "token-down" | "refused" | "api-5xx"),
        "MODE is token-down, refused or api-5xx"
    );
    let exe = daemon_exe();
    let limit = Duration::from_secs(
        std::env::var("OUTAGE_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(900),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let sim = ScmSim::start(ScmSimConfig::default()).await.unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let state = dir.join("state");
        // `[notify] command`: one line per event that would page someone.
        let notified = dir.join("notified");
        let notifications = || std::fs::read_to_string(&notified).map_or(0, |t| t.lines().count());
        std::fs::create_dir_all(dir.join("profiles.d")).unwrap();
        std::fs::write(
            dir.join("connector.toml"),
            format!("[state]\ndir = {state:?}\n[scm]\nmax_concurrent = {concurrency}\nmax_requests_per_second = {rps}\nretry_max_secs = {retry_max}\n[renewal]\nmax_per_day = 0\n[control]\nsocket = {:?}\n[log]\nformat = \"text\"\n[notify]\ncommand = [\"sh\", \"-c\", \"echo \\\"$SECTIGO_EVENT $SECTIGO_CERT_ID\\\" >> {}\"]\n", dir.join("sock"), notified.display()),
        )
        .unwrap();
        let profile = |url: &str, token_url: &str| {
            let file = dir.join("profiles.d/bench.toml");
            std::fs::write(
                &file,
                format!("client_id = \"sim-client\"\nclient_secret = \"sim-secret\"\nscm_url = \"{url}\"\ntoken_url = \"{token_url}\"\n"),
            )
            .unwrap();
            // Not readable by others: the daemon would warn about the secret (a line per run).
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        };
        eprintln!("outage: {certs} certificates, {mode}, retry_max_secs {retry_max}: working in {}", dir.display());
        if mode == "refused" {
            // A port that was free a moment ago and is closed now: every connect is refused.
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            profile(&format!("http://127.0.0.1:{port}"), &format!("http://127.0.0.1:{port}/auth/token"));
        } else {
            profile(&sim.url(), &sim.token_url());
        }
        // CERTS certificates the simulator knows (so that renewing them works once SCM is
        // back), tracked in the state directly, all inside the 30-day window (1 to 29 days).
        let now = Utc::now();
        {
            let store = SledStore::open(&state, 64).unwrap();
            let mut batch = Vec::with_capacity(1000);
            for i in 0..certs {
                let cn = format!("host{i}.example.com");
                let (nb, na) = (now - CDuration::days(360), now + CDuration::days(1 + (i % 29) as i64));
                let id = sim.add_certificate(&cn, &[&cn], nb, na);
                batch.push(CertRecord {
                    id: id.clone(),
                    profile: "bench".parse().unwrap(),
                    subject_cn: cn.clone(),
                    sans: vec![cn],
                    serial: format!("{:016X}", id.parse::<u64>().unwrap()),
                    not_before: nb,
                    not_after: na,
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
        }
        sim.set_faults(match mode {
            "token-down" => Faults { token_endpoint_down: true, ..Default::default() },
            "api-5xx" => Faults { error_5xx: 1.0, ..Default::default() },
            _ => Faults::default(),
        });

        // The run during the outage.
        let (log0, billed0, fails0) = (sim.requests().len(), sim.billable_total(), tcp_attempt_fails());
        let (t0, i0) = (Utc::now(), tokio::time::Instant::now());
        let (code, wall, out, err) = run_once_bounded(&exe, dir, "outage", limit).await;
        let notified_outage = notifications();
        let log = sim.requests();
        let token = log[log0..].iter().filter(|q| q.path == "/auth/token").count();
        let api = log[log0..].iter().filter(|q| q.path.starts_with("/api/")).count();
        let billed = sim.billable_total() - billed0;
        let refused = tcp_attempt_fails().zip(fails0).map(|(b, a)| b - a);
        let Left {
            by_state,
            failed,
            with_next,
            spread,
        } = outage_state(&state);
        let (lines, errors, warns, needs, retrying) = outage_lines(&err);
        let cycle = std::fs::read_to_string(&out).unwrap_or_default().lines().filter(|l| l.starts_with("cycle:")).collect::<Vec<_>>().join(" ");
        let secs = wall.as_secs_f64();
        let counts = |n: usize| if mode == "refused" { "N/A".to_string() } else { n.to_string() };
        println!("| certificates | retry_max_secs | mode | max_concurrent | max rps | wall time | exit | token requests | API requests | billable | stderr: \"needs a person\" | notify commands | own failure count | own next_attempt |");
        println!("|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {certs} | {retry_max} | {mode} | {concurrency} | {rps} | {secs:.1} s | {} | {} | {} | {billed} | {needs} | {notified_outage} | {failed} | {with_next} |",
            code.map_or(format!("killed at {} s", limit.as_secs()), |c| c.to_string()),
            counts(token),
            counts(api),
        );
        println!();
        println!("outage run: states after {by_state:?}; stdout {cycle:?}");
        if let Some((a, b)) = spread {
            println!("outage run: next attempts from {} to {} ({:.0} to {:.0} min after the run started)", a.format("%H:%M:%S"), b.format("%H:%M:%S"), (a - now).num_seconds() as f64 / 60.0, (b - now).num_seconds() as f64 / 60.0);
        }
        println!("outage run: stderr {lines} lines: {errors} ERROR, {warns} WARN, {needs} \"needs a person\", {retrying} \"SCM call failed, retrying\"");
        if mode == "refused" {
            println!("outage run: the simulator saw {} requests (nothing listens where the profile points); connections refused meanwhile (kernel TCP AttemptFails, the whole machine): {}", token + api, refused.map_or("unknown".into(), |n| n.to_string()));
        }
        println!("outage run: {:.2} token requests/s, {:.2} API requests/s", token as f64 / secs, api as f64 / secs);
        if code.is_none() {
            // Stopped: extrapolate from the certificates done, up to the last one done (the
            // one under way when it was stopped counts neither its time nor its requests).
            let done = failed.max(
                by_state
                    .iter()
                    .filter(|(s, _)| **s != "active")
                    .map(|(_, n)| n)
                    .sum(),
            );
            let last = std::fs::read_to_string(&err)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("sectigo_engine::renew:") && !l.contains(" INFO "))
                .filter_map(|l| l.split_whitespace().next())
                .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| (t.with_timezone(&Utc) - t0).to_std().unwrap_or_default())
                .max();
            match last {
                Some(t_last) if done > 0 => {
                    let upto = i0 + t_last;
                    let by_then = |f: &dyn Fn(&str) -> bool| {
                        log[log0..].iter().filter(|q| q.at <= upto && f(&q.path)).count()
                    };
                    let (token_by, api_by) = (
                        by_then(&|p| p == "/auth/token"),
                        by_then(&|p| p.starts_with("/api/")),
                    );
                    let (k, each) = (
                        certs as f64 / done as f64,
                        t_last.as_secs_f64() / done as f64,
                    );
                    println!(
                        "outage run: stopped after {secs:.0} s; {done} of {certs} certificates done, the last at {:.0} s ({each:.0} s each; by then {} token and {} API requests)",
                        t_last.as_secs_f64(),
                        counts(token_by),
                        counts(api_by),
                    );
                    println!(
                        "outage run: EXTRAPOLATED (linearly) to all {certs}: {:.0} s ({:.1} h), {} token requests, {} API requests",
                        each * certs as f64,
                        each * certs as f64 / 3600.0,
                        if mode == "refused" {
                            refused.map_or("N/A".into(), |n| {
                                format!("≈{:.0} connection attempts refused", n as f64 * t_last.as_secs_f64() / secs * k)
                            })
                        } else {
                            format!("{:.0}", token_by as f64 * k)
                        },
                        if mode == "refused" { "N/A".to_string() } else { format!("{:.0}", api_by as f64 * k) },
                    );
                }
                _ => println!("outage run: stopped after {secs:.0} s with no certificate done: nothing to extrapolate from"),
            }
        }

        // SCM is back: the next cycle.
        sim.set_faults(Faults::default());
        if mode == "refused" {
            profile(&sim.url(), &sim.token_url());
        }
        let (log0, billed0) = (sim.requests().len(), sim.billable_total());
        let (code, wall, out, err) = run_once_bounded(&exe, dir, "after", limit).await;
        let notified_after = notifications() - notified_outage;
        let log = sim.requests();
        let token = log[log0..].iter().filter(|q| q.path == "/auth/token").count();
        let api = log[log0..].iter().filter(|q| q.path.starts_with("/api/")).count();
        let billed = sim.billable_total() - billed0;
        let Left {
            by_state,
            with_next,
            ..
        } = outage_state(&state);
        let (_, _, _, needs, _) = outage_lines(&err);
        let cycle = std::fs::read_to_string(&out).unwrap_or_default().lines().filter(|l| l.starts_with("cycle:")).collect::<Vec<_>>().join(" ");
        println!();
        println!("| next cycle, SCM back | wall time | exit | token requests | API requests | renew calls | renewed | still waiting out their backoff | stderr: \"needs a person\" | notify commands |");
        println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {certs} certificates | {:.1} s | {} | {token} | {api} | {billed} | {} | {with_next} | {needs} | {notified_after} |",
            wall.as_secs_f64(),
            code.map_or(format!("killed at {} s", limit.as_secs()), |c| c.to_string()),
            by_state.get("superseded").copied().unwrap_or(0),
        );
        println!();
        println!("next cycle: states after {by_state:?}; stdout {cycle:?}");
        if std::env::var_os("OUTAGE_KEEP").is_some() {
            let kept = tmp.keep();
            println!("kept: {}", kept.display());
        }
    });
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
        Some("outage") => {
            let n = |i: usize| args.get(i).and_then(|a| a.parse::<usize>().ok());
            outage(
                n(1).unwrap_or(1000),
                n(2).unwrap_or(10) as u64,
                args.get(3).map_or("token-down", String::as_str),
                n(4).unwrap_or(4),
                args.get(5).and_then(|a| a.parse().ok()).unwrap_or(5.0),
            )
        }
        _ => eprintln!("usage: cargo bench --bench scale -- selection N... | backup N... | daemon N | workflow N... | throughput CERTS LATENCY_MS MAX_CONCURRENT MAX_RPS | outage CERTS RETRY_MAX_SECS token-down|refused|api-5xx [MAX_CONCURRENT [MAX_RPS]]"),
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
