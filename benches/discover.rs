//! Benchmark of `certs discover --import` (a measurement, not a test).
//!
//!   cargo bench --bench discover -- CERTS MAX_RPS [MAX_CONCURRENT]
//!
//! The simulator holds CERTS issued certificates in the profile's organisation (plus 5% in
//! another one, which the filter leaves out); none is tracked. The real binary (no daemon
//! runs: the state is opened by the command) discovers and imports them all, with `[scm]
//! max_requests_per_second = MAX_RPS` (per host: the Admin API's and the REST API's are paced
//! apart) and `max_concurrent = MAX_CONCURRENT` (default 8). Printed: wall time against the
//! ideal the rate limit sets (the busier host's requests / MAX_RPS), the requests to each host
//! (list pages, details, downloads, tokens), the most requests seen in any one second on each
//! host, the command's peak RSS (VmHWM), and what it imported. `SECTIGO_BENCH_EXE=PATH`
//! measures another build (default `target/release/sectigo-connector`).

// The benchmark drives the real binary, which reads the wall clock.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Duration as CDuration, Utc};
use sectigo_sim::{AdminFields, ScmSim, ScmSimConfig};

fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
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

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n = |i: usize| args.get(i).and_then(|a| a.parse::<f64>().ok());
    let certs = n(0).unwrap_or(10_000.0) as usize;
    let rps = n(1).unwrap_or(100.0);
    let concurrency = n(2).unwrap_or(8.0) as usize;
    let exe = exe();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let sim = ScmSim::start(ScmSimConfig::default()).await.unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(dir.join("profiles.d")).unwrap();
        std::fs::write(
            dir.join("connector.toml"),
            format!(
                "[state]\ndir = {:?}\n[scm]\nmax_concurrent = {concurrency}\nmax_requests_per_second = {rps}\n[control]\nsocket = {:?}\n[log]\nformat = \"text\"\nlevel = \"warn\"\n",
                dir.join("state"),
                dir.join("sock")
            ),
        )
        .unwrap();
        let file = dir.join("profiles.d/bench.toml");
        std::fs::write(
            &file,
            format!(
                "client_id = \"sim-client\"\nclient_secret = \"sim-secret\"\nscm_url = \"{}\"\ntoken_url = \"{}\"\n[admin]\nurl = \"{}\"\nclient_id = \"sim-admin\"\nclient_secret = \"sim-admin-secret\"\norg_id = 1\n",
                sim.url(),
                sim.token_url(),
                sim.admin_url()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let t = Instant::now();
        let now = Utc::now();
        let others = certs / 20;
        for i in 0..certs + others {
            let cn = format!("host{i}.example.com");
            let id = sim.add_certificate(
                &cn,
                &[&cn],
                now - CDuration::days(300),
                now + CDuration::days(10 + (i % 300) as i64),
            );
            if i >= certs {
                sim.set_admin_fields(
                    &id,
                    AdminFields {
                        org_id: Some(2),
                        ..Default::default()
                    },
                );
            }
        }
        eprintln!(
            "discover: {certs} certificates (+{others} in another organisation) made in {:.1} s; MAX_RPS {rps}, MAX_CONCURRENT {concurrency}; working in {}",
            t.elapsed().as_secs_f64(),
            dir.display()
        );

        let start = Instant::now();
        let mut child = Command::new(&exe)
            .arg("--config-dir")
            .arg(&dir)
            .args(["certs", "discover", "--profile", "bench", "--import"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut { stdout }, &mut s).unwrap();
            s
        });
        // Peak RSS: VmHWM, read until the process exits.
        let (peak, status) = tokio::task::spawn_blocking(move || {
            let mut peak = 0;
            loop {
                peak = peak.max(proc_status(pid, "VmHWM:"));
                if let Some(s) = child.try_wait().unwrap() {
                    return (peak, s);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .unwrap();
        let wall = start.elapsed();
        let out = reader.join().unwrap();

        let admin = sim.admin_requests();
        let lists = admin.iter().filter(|r| r.path == "/api/ssl/v1").count();
        let details = admin.len() - lists;
        let rest = sim.requests();
        let downloads = rest
            .iter()
            .filter(|r| {
                r.method == "GET"
                    && r.path.starts_with("/api/v1/certificates/")
                    && !r.path.ends_with("/status")
            })
            .count();
        let tokens = rest.iter().filter(|r| r.path.contains("token")).count();
        let busiest = admin.len().max(rest.len() - tokens);
        let ideal = busiest as f64 / rps;
        let summary = out.lines().rev().take(2).collect::<Vec<_>>();
        println!("| certificates | MAX_RPS | wall | ideal (busiest host / rate) | wall / ideal | Admin API: lists + details | REST: downloads | tokens | most/s Admin | most/s REST | peak RSS | exit | result |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        println!(
            "| {certs} | {rps} | {:.1} s | {ideal:.1} s | {:.2} | {lists} + {details} | {downloads} | {tokens} | {} | {} | {:.1} MiB | {} | {} |",
            wall.as_secs_f64(),
            wall.as_secs_f64() / ideal,
            sim.admin_max_requests_in(Duration::from_secs(1)),
            sim.max_requests_in(Duration::from_secs(1)),
            peak as f64 / 1024.0,
            status.code().unwrap_or(-1),
            summary.iter().rev().cloned().collect::<Vec<_>>().join("; ")
        );
        assert_eq!(sim.billable_total(), 0, "discovery billed");
    });
}
