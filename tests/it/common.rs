//! Test harness: a temporary configuration directory pointing at an SCM simulator.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sectigo_core::clock::{ManualClock, SharedClock};
use sectigo_core::config::Config;
use sectigo_core::names::{CertId, ProfileName};
use sectigo_engine::{Engine, ImportLine, Shared};
use sectigo_model::CertRecord;
use sectigo_sim::{ScmSim, ScmSimConfig};
use sectigo_state::SharedStore;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub sim: ScmSim,
    /// The time of the simulator and of the engines this harness builds.
    pub clock: SharedClock,
    /// Set by [`Env::manual`]: the tests move it instead of waiting.
    manual: Option<ManualClock>,
}

impl Env {
    /// A simulator on the wall clock (the real binary, which reads the wall clock, can run
    /// against it).
    pub async fn new(sim_cfg: ScmSimConfig) -> Env {
        Env::start(sim_cfg, None).await
    }

    /// A simulator and engines on one clock that only the test moves ([`Env::advance`]).
    pub async fn manual(sim_cfg: ScmSimConfig) -> Env {
        Env::start(sim_cfg, Some(ManualClock::new())).await
    }

    async fn start(mut sim_cfg: ScmSimConfig, manual: Option<ManualClock>) -> Env {
        if let Some(m) = &manual {
            sim_cfg.clock = m.shared();
        }
        let clock = sim_cfg.clock.clone();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("profiles.d")).unwrap();
        let sim = ScmSim::start(sim_cfg).await.unwrap();
        let env = Env {
            dir,
            sim,
            clock,
            manual,
        };
        env.connector("");
        env
    }

    /// The harness's time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Sets the manual clock (simulator and engines) to `t`.
    pub fn set_now(&self, t: DateTime<Utc>) {
        self.manual
            .as_ref()
            .expect("Env::manual moves its clock; Env::new runs on the wall clock")
            .set(t);
    }

    /// Moves the manual clock (simulator and engines) forward.
    pub fn advance(&self, by: Duration) {
        self.manual
            .as_ref()
            .expect("Env::manual moves its clock; Env::new runs on the wall clock")
            .advance(by);
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("control.sock")
    }

    /// Writes connector.toml: fast test settings plus `extra` sections.
    pub fn connector(&self, extra: &str) {
        let text = format!(
            "[state]\ndir = {:?}\ncache_mb = 16\n\n[scm]\ntimeout_secs = 5\nmax_concurrent = 8\nmax_requests_per_second = 200\nretry_max_secs = 30\n\n[renewal]\ncollect_poll_secs = 1\n\n[control]\nsocket = {:?}\n\n[log]\nlevel = \"debug\"\nformat = \"text\"\n{extra}",
            self.path().join("state"),
            self.socket()
        );
        std::fs::write(self.path().join("connector.toml"), text).unwrap();
    }

    /// Writes profiles.d/NAME.toml for the simulator's client, plus `extra` keys.
    pub fn profile(&self, name: &str, extra: &str) {
        let text = format!(
            "client_id = \"sim-client\"\nclient_secret = \"sim-secret\"\nscm_url = \"{}\"\ntoken_url = \"{}\"\n{extra}\n",
            self.sim.url(),
            self.sim.token_url()
        );
        let p = self.path().join("profiles.d").join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    pub fn config(&self) -> Config {
        Config::load(self.path()).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn store(&self) -> SharedStore {
        sectigo_state::open(&self.config().connector.state).unwrap()
    }

    pub fn engine_with(&self, store: SharedStore) -> Arc<Engine> {
        self.engine_on(store, self.clock.clone())
    }

    /// An engine on its own clock (the simulator keeps the harness's).
    pub fn engine_on(&self, store: SharedStore, clock: SharedClock) -> Arc<Engine> {
        let cfg = self.config();
        Arc::new(Engine::new(&cfg, store, Shared::new(&cfg), clock).unwrap())
    }

    /// A certificate in the simulator expiring in `days` (issued a year before that).
    pub fn sim_cert(&self, cn: &str, days: i64) -> CertId {
        let now = self.now();
        self.sim.add_certificate(
            cn,
            &[cn],
            now + Duration::days(days) - Duration::days(365),
            now + Duration::days(days),
        )
    }

    /// Creates certificates in the simulator and imports them into `profile`.
    pub async fn seed(&self, engine: &Engine, profile: &str, days: &[i64]) -> Vec<CertId> {
        let mut ids = Vec::new();
        for (i, d) in days.iter().enumerate() {
            ids.push(self.sim_cert(&format!("{profile}-{i}.example.com"), *d));
        }
        let lines = ids
            .iter()
            .map(|id| ImportLine {
                cert_id: id.clone(),
                issue: None,
                name: None,
            })
            .collect();
        let s = engine.importer().import(&pn(profile), lines).await.unwrap();
        assert_eq!(s.imported.len(), ids.len(), "import failed: {:?}", s.failed);
        ids
    }
}

pub fn records(store: &SharedStore) -> Vec<CertRecord> {
    let mut v = Vec::new();
    store
        .scan(&mut |r| {
            v.push(r);
            true
        })
        .unwrap();
    v
}

/// A profile name a test writes.
pub fn pn(s: &str) -> ProfileName {
    ProfileName::parse(s).unwrap()
}

/// An issue key a test writes.
pub fn ik(s: &str) -> sectigo_core::names::IssueKey {
    sectigo_core::names::IssueKey::parse(s).unwrap()
}

/// A certificate id a test writes.
pub fn cid(s: &str) -> CertId {
    CertId::parse(s).unwrap()
}

pub fn get(store: &SharedStore, id: &str) -> CertRecord {
    store
        .get(&cid(id))
        .unwrap()
        .unwrap_or_else(|| panic!("certificate {id} not tracked"))
}

impl Drop for Env {
    /// A failing test must not leave its daemons running: kill any started on this directory.
    fn drop(&mut self) {
        let pattern = format!("--config-dir {}", self.dir.path().display());
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f", "--", &pattern])
            .status();
    }
}

/// Sends `SIGNAME` (`TERM`, `HUP`, `KILL`) to a child process, with kill(1).
pub fn signal(child: &std::process::Child, name: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{name} {}", child.id());
}

/// What a finished command left: exit code (-1 for a signal), stdout, stderr.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to its end, but for at most `secs`: a command that hangs is killed and the test
/// fails with what it printed, rather than the whole suite waiting forever.
pub fn run_bounded(cmd: &mut std::process::Command, secs: u64) -> Output {
    use std::io::Read as _;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = r.read_to_end(&mut b);
            String::from_utf8_lossy(&b).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let status = wait_bounded(&mut child, secs);
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    match status {
        Some(s) => Output {
            code: s.code().unwrap_or(-1),
            stdout,
            stderr,
        },
        None => panic!(
            "{cmd:?} still running after {secs} s; killed.\nstdout:\n{stdout}\nstderr:\n{stderr}"
        ),
    }
}

/// Waits for `child` for at most `secs`; kills it and returns `None` when it has not ended.
pub fn wait_bounded(
    child: &mut std::process::Child,
    secs: u64,
) -> Option<std::process::ExitStatus> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if std::time::Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
