//! `sectigo-connector demo`: the daemon's engine against the SCM simulator on loopback, with
//! sample profiles and certificates in a temporary directory, showing renewals happen.

use std::fmt::Write as _;
use std::path::Path;

use chrono::Duration;
use tokio_util::sync::CancellationToken;

use sectigo_core::config::{Config, JiraFlavor};
use sectigo_core::names::{CertId, IssueKey, ProfileName};
use sectigo_engine::{explain, Engine, ImportLine, Mode, Shared};
use sectigo_model::{CertRecord, CertState};
use sectigo_sim::{Faults, JiraSim, ScmSim, ScmSimConfig};

use crate::api::Request;
use crate::lifecycle::Connector;
use crate::render::plural;

use crate::exit::{CliError, Exit};

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::new(Exit::Failed, anyhow::anyhow!("demo: {e}"))
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text).map_err(|e| fail(format!("{}: {e}", path.display())))
}

/// Writes a demo configuration for `sim` into `dir`.
pub fn write_config(dir: &Path, sim: &ScmSim, jira: &JiraSim) -> Result<(), CliError> {
    std::fs::create_dir_all(dir.join("profiles.d")).map_err(fail)?;
    write(
        &dir.join("connector.toml"),
        &format!(
            "[jira]\nurl = \"{}\"\nflavor = \"cloud\"\nemail = \"connector@example.com\"\ntoken_file = \"jira.token\"\n\n[jira.transitions]\nrenewal_started = \"Start Renewal\"\nrenewed = \"Renewed\"\nrenewal_failed = \"Flag Problem\"\nexpiring_no_auto_renew = \"Flag Problem\"\noutcome_unknown = \"Flag Problem\"\n\n[jira.workflow]\nenabled = true\npoll_cron = \"* * * * * *\"\n\n[state]\ndir = {:?}\n\n[schedule]\ncron = \"*/10 * * * * *\"\n\n[log]\nlevel = \"info\"\nformat = \"text\"\nfile = {:?}\n\n[scm]\ntimeout_secs = 5\nmax_concurrent = 4\nmax_requests_per_second = 20\nretry_max_secs = 20\n\n[renewal]\ncollect_poll_secs = 1\n\n[control]\nsocket = {:?}\n",
            jira.url(),
            dir.join("state"),
            dir.join("logs"),
            dir.join("control.sock"),
        ),
    )?;
    write(&dir.join("profiles.d/demo.secret"), "sim-secret\n")?;
    write(&dir.join("jira.token"), "demo-jira-token\n")?;
    let profile = |window: u32, auto: bool, force: bool, comments: &str| {
        format!(
            "client_id = \"sim-client\"\nclient_secret_file = \"demo.secret\"\nscm_url = \"{}\"\ntoken_url = \"{}\"\nssl_cert_comments = \"{comments}\"\nexpiry_window_days = {window}\nauto_renew = {auto}\nforce_renewal = {force}\nscm_profile_id = 1\n",
            sim.url(),
            sim.token_url()
        )
    };
    write(
        &dir.join("profiles.d/web.toml"),
        &profile(30, true, false, "renewed by sectigo-connector (web)"),
    )?;
    write(
        &dir.join("profiles.d/legacy.toml"),
        &profile(30, false, false, ""),
    )?;
    write(
        &dir.join("profiles.d/rotate.toml"),
        &profile(30, true, true, "key rotation"),
    )?;
    // A certificate declared in a file: enrolled by `certs apply`, deployed to deploy/shop/.
    std::fs::create_dir_all(dir.join("certificates.d")).map_err(fail)?;
    write(
        &dir.join("certificates.d/shop.toml"),
        &format!(
            "profile = \"web\"\nnames = [\"shop.example.com\", \"www.shop.example.com\"]\nkey_type = \"ec-p256\"\nenroll = \"confirm\"\n\n[deploy]\ndir = {:?}\n",
            dir.join("deploy")
        ),
    )?;
    Ok(())
}

fn inventory(title: &str, recs: &[CertRecord]) -> String {
    let mut o = String::new();
    writeln!(o, "\n{title}").ok();
    writeln!(
        o,
        "  {:<6} {:<8} {:<12} {:<22} {:<11} JIRA",
        "ID", "PROFILE", "STATE", "SUBJECT", "EXPIRES"
    )
    .ok();
    for r in recs {
        writeln!(
            o,
            "  {:<6} {:<8} {:<12} {:<22} {:<11} {}",
            r.id,
            r.profile,
            r.state.name(),
            r.subject_cn,
            r.not_after.format("%Y-%m-%d"),
            r.jira_issue.as_deref().unwrap_or("-")
        )
        .ok();
    }
    o
}

async fn all(engine: &Engine) -> Result<Vec<CertRecord>, CliError> {
    let mut v = engine.operator().certificates().await.map_err(fail)?;
    v.sort_by(|a, b| (&a.profile, a.not_after).cmp(&(&b.profile, b.not_after)));
    Ok(v)
}

/// Prints an issue of the Jira simulator: status, attachments, the first line of each comment;
/// with `fields`, also the summary and the certificate id.
fn show_issue(jira: &JiraSim, key: &str, fields: bool) {
    let Some(issue) = jira.issue(key) else {
        return;
    };
    let attachments: Vec<&str> = issue.attachments.iter().map(|(f, _)| f.as_str()).collect();
    let extra = if fields {
        format!(
            ", summary {:?}, certificate id {}",
            issue.summary,
            issue
                .fields
                .get("Certificate ID")
                .map(String::as_str)
                .unwrap_or("-")
        )
    } else {
        format!(
            ", {}",
            plural(issue.comments.len() as u64, "comment", "comments")
        )
    };
    println!(
        "  {key}: status {:?}{extra}, attachments: {}",
        issue.status,
        if attachments.is_empty() {
            "-".to_string()
        } else {
            attachments.join(", ")
        }
    );
    for c in &issue.comments {
        println!("    - {}", c.lines().next().unwrap_or(""));
    }
}

/// The demo's equipment and the connector under test.
struct Demo {
    dir: std::path::PathBuf,
    sim: ScmSim,
    jira: JiraSim,
    conn: Connector,
}

/// Starts the simulators (with a little realism: latency and some transient errors that the
/// client retries), writes the configuration into `dir`, and starts the connector on it.
async fn set_up(dir: &Path, verbose: bool) -> Result<(Demo, crate::logging::Logging), CliError> {
    let sim = ScmSim::start(ScmSimConfig {
        issue_delay: std::time::Duration::from_secs(2),
        validity_days: 90,
        ..Default::default()
    })
    .await
    .map_err(fail)?;
    sim.set_faults(Faults {
        latency: std::time::Duration::from_millis(20),
        error_5xx: 0.1,
        ..Default::default()
    });
    let jira = JiraSim::start(
        JiraFlavor::Cloud,
        "connector@example.com",
        "demo-jira-token",
    )
    .await
    .map_err(fail)?;
    for key in ["CERT-101", "CERT-102", "CERT-201", "CERT-301"] {
        jira.add_issue(key);
    }
    write_config(dir, &sim, &jira)?;
    let cfg = Config::load(dir)?;
    let log = crate::logging::init_with(&cfg.connector.log, verbose).map_err(fail)?;
    let store = sectigo_state::open(&cfg.connector.state)?;
    let shared = Shared::new(&cfg);
    let (conn, _) = Connector::start(cfg, store, shared, sectigo_core::clock::system())
        .await
        .map_err(fail)?;
    let demo = Demo {
        dir: dir.to_path_buf(),
        sim,
        jira,
        conn,
    };
    Ok((demo, log))
}

impl Demo {
    fn engine(&self) -> &Engine {
        self.conn.engine()
    }

    /// The declared certificate: planned, refused without a yes, applied, issued, deployed.
    async fn declared(&self) -> Result<(), CliError> {
        let (engine, cfg) = (self.engine(), self.conn.config());
        println!("\nCertificates declared in files (certificates.d/shop.toml):");
        println!("\n$ sectigo-connector certs plan");
        print!("{}", operator(engine, cfg, Request::CertsPlan).await);
        println!("\n$ sectigo-connector certs apply");
        print!(
            "{}",
            operator(engine, cfg, Request::CertsApply { yes: false }).await
        );
        println!("\n$ sectigo-connector certs apply --yes");
        print!(
            "{}",
            operator(engine, cfg, Request::CertsApply { yes: true }).await
        );
        // SCM issues it after a moment: each pass collects what was accepted.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let dir = self.dir.join("deploy/shop");
        while !dir.join("fullchain.pem").exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            engine
                .declared()
                .run(sectigo_engine::Consent::Operator)
                .await
                .map_err(fail)?;
        }
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .map(|r| {
                r.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        println!(
            "\nIssued and deployed to {}: {}",
            dir.display(),
            files.join(", ")
        );
        println!("\n$ sectigo-connector certs plan");
        print!("{}", operator(engine, cfg, Request::CertsPlan).await);
        Ok(())
    }

    fn introduce(&self, verbose: bool) {
        println!("sectigo-connector demo");
        println!(
            "  SCM simulator:  {} (token endpoint {})",
            self.sim.url(),
            self.sim.token_url()
        );
        println!(
            "  Jira simulator: {} (Cloud, REST v3; issues CERT-101, CERT-102, CERT-201, CERT-301)",
            self.jira.url()
        );
        println!("  configuration:  {} (3 profiles: web renews 30 days ahead; legacy has auto_renew = false; rotate has force_renewal = true)", self.dir.display());
        println!(
            "  the daemon's log: {}{}",
            self.dir.join("logs").display(),
            if verbose {
                " and standard error"
            } else {
                " (--verbose shows it here too)"
            }
        );
    }

    /// Sample certificates in SCM, imported as `certs import` does.
    async fn import_samples(&self) -> Result<(), CliError> {
        let now = self.engine().clock().now();
        let d = Duration::days;
        let samples: [(&str, &str, i64, Option<&str>); 8] = [
            ("web", "shop.example.com", 5, Some("CERT-101")),
            ("web", "api.example.com", 12, Some("CERT-102")),
            ("web", "www.example.com", 29, None),
            ("web", "blog.example.com", 60, None),
            ("web", "mail.example.com", 200, None),
            ("legacy", "old.example.com", 9, Some("CERT-201")),
            ("legacy", "intranet.example.com", 120, None),
            ("rotate", "vpn.example.com", 300, Some("CERT-301")),
        ];
        for (profile, cn, days, issue) in samples {
            let id = self
                .sim
                .add_certificate(cn, &[cn], now - d(365 - days), now + d(days));
            let line = ImportLine {
                cert_id: id,
                issue: issue.map(IssueKey::parse).transpose().map_err(fail)?,
                name: None,
            };
            let profile = ProfileName::parse(profile).map_err(fail)?;
            self.engine()
                .importer()
                .import(&profile, vec![line])
                .await
                .map_err(fail)?;
        }
        print!("{}", inventory("Inventory after `certs import` (each certificate downloaded from SCM to learn its expiry):", &all(self.engine()).await?));
        Ok(())
    }

    /// Two cycles, as `run` makes them on its schedule: the first renews what is due, the
    /// second finds nothing left to renew.
    async fn cycles(&self) -> Result<(), CliError> {
        println!("\nCycle 1 (what `run` does on its schedule):");
        let cancel = CancellationToken::new();
        let report = self.conn.cycle(Mode::Live, &cancel).await.map_err(fail)?;
        for p in &report.planned {
            println!(
                "  {:<6} {:<8} {:<22} {}",
                p.id,
                p.profile,
                p.subject_cn,
                explain(&p.decision)
            );
        }
        let waited = tokio::time::Instant::now();
        if report.summary.pending > 0 {
            println!(
                "  ... {} renewals accepted by SCM, waiting for issuance",
                report.summary.pending
            );
            let every = std::time::Duration::from_secs(1);
            self.conn
                .collect_until_settled(every, std::time::Duration::from_secs(30))
                .await
                .map_err(fail)?;
        }
        println!(
            "  ... issued and collected after {:.0} s",
            waited.elapsed().as_secs_f64()
        );
        print!("{}", inventory("Inventory after cycle 1 (renewed certificates are superseded by their renewal, which keeps the Jira link):", &all(self.engine()).await?));
        let second = self.conn.cycle(Mode::Live, &cancel).await.map_err(fail)?;
        println!("\nCycle 2: {} renewal requests (everything due was renewed once; nothing is renewed twice)", second.summary.requested);
        let (delivered, pending) = self
            .conn
            .deliver(std::time::Duration::from_secs(30))
            .await
            .unwrap_or_default();
        println!("\nJira: {delivered} updates delivered from the outbox ({pending} left)");
        for key in ["CERT-101", "CERT-102", "CERT-201", "CERT-301"] {
            show_issue(&self.jira, key, false);
        }
        Ok(())
    }

    /// Certificates requested from Jira: a person files Certificate issues and moves them to
    /// "Enrollment Requested"; the daemon's poller (every second here) does the rest.
    async fn workflow(&self) -> Result<(), CliError> {
        println!("\nJira workflow ([jira.workflow]): two Certificate issues are moved to \"Enrollment Requested\":");
        let csr = {
            let key = rcgen::KeyPair::generate().map_err(fail)?;
            let mut p =
                rcgen::CertificateParams::new(vec!["new.example.com".to_string()]).map_err(fail)?;
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "new.example.com");
            p.serialize_request(&key)
                .map_err(fail)?
                .pem()
                .map_err(fail)?
        };
        let jira = &self.jira;
        jira.add_certificate_issue("CERT-400", "new web server", "web", &csr);
        jira.add_certificate_issue(
            "CERT-401",
            "pasted the wrong thing",
            "web",
            "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
        );
        println!("  CERT-400: profile web, a CSR for new.example.com");
        println!("  CERT-401: profile web, a public key pasted instead of a CSR");
        for key in ["CERT-400", "CERT-401"] {
            jira.person_transitions(key, "Enroll Certificate");
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(r) = self.conn.poll().await {
                if r.done + r.rejected + r.collected > 0 {
                    println!("  poll: {r}");
                }
            }
            self.conn.deliver(std::time::Duration::from_secs(10)).await;
            let settled = ["CERT-400", "CERT-401"].iter().all(|k| {
                jira.issue(k)
                    .is_some_and(|i| i.status != "Enrollment Requested")
            });
            if settled || tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        for key in ["CERT-400", "CERT-401"] {
            show_issue(jira, key, true);
        }
        Ok(())
    }

    /// What SCM saw; fails if anything was billed twice.
    fn scm_summary(&self) -> Result<(), CliError> {
        let sim = &self.sim;
        let calls = sim.requests();
        let api = calls.iter().filter(|r| r.path.starts_with("/api/")).count();
        let errors = calls.iter().filter(|r| r.status >= 500).count();
        println!("\nSCM simulator: {} ({}, the rest renewals), {} ({} answered 5xx by fault injection and retried), most requests in one second: {}",
            plural(sim.billable_total() as u64, "billable call", "billable calls"),
            plural(sim.enrollments().len() as u64, "enrollment", "enrollments"),
            plural(api as u64, "API request", "API requests"),
            errors, sim.max_requests_in(std::time::Duration::from_secs(1)));
        let twice = sim.billed_twice();
        if !twice.is_empty() {
            return Err(fail(format!("certificates renewed twice: {twice:?}")));
        }
        println!("Every due certificate renewed exactly once.");
        Ok(())
    }

    /// What an operator sees: `status`, and `certs show` of a renewed certificate. Returns
    /// that certificate's id.
    async fn operator_views(&self) -> Result<Option<CertId>, CliError> {
        let cfg = Config::load(&self.dir)?;
        println!("\n$ sectigo-connector status");
        print!("{}", operator(self.engine(), &cfg, Request::Status).await);
        let renewed = all(self.engine())
            .await?
            .into_iter()
            .find(|r| r.subject_cn == "shop.example.com" && r.state == CertState::Active)
            .map(|r| r.id);
        if let Some(id) = &renewed {
            println!("\n$ sectigo-connector certs show {id}");
            let show = Request::CertsShow {
                id: id.clone().into(),
            };
            print!("{}", operator(self.engine(), &cfg, show).await);
        }
        Ok(renewed)
    }
}

pub async fn run(verbose: bool, keep: bool) -> Result<i32, CliError> {
    let tmp = tempfile::Builder::new()
        .prefix("sectigo-connector-demo-")
        .tempdir()
        .map_err(fail)?;
    let (demo, _log) = set_up(tmp.path(), verbose).await?;
    demo.introduce(verbose);
    demo.import_samples().await?;
    demo.cycles().await?;
    demo.workflow().await?;
    demo.declared().await?;
    demo.scm_summary()?;
    let renewed = demo.operator_views().await?;
    demo.conn.stop().await.map_err(fail)?;
    drop(demo);
    if keep {
        print_kept(tmp.keep(), renewed);
    } else {
        println!(
            "\nThe demo's directory is removed now; `demo --keep` keeps it, with commands to try on it."
        );
    }
    Ok(0)
}

fn print_kept(kept: std::path::PathBuf, renewed: Option<CertId>) {
    let d = kept.display();
    let id = renewed.map_or_else(|| "ID".to_string(), |i| i.to_string());
    println!("\nThe directory is kept: {d}");
    println!("The simulators stopped with the demo, so try the commands that read the state:");
    for c in [
        "status".to_string(),
        "certs list --all".into(),
        format!("certs show {id}"),
        "profiles list".into(),
        "check-config".into(),
        format!("state export {d}/backup.jsonl"),
    ] {
        println!("  sectigo-connector --config-dir {d} {c}");
    }
    println!("and read the daemon's log in {d}/logs/. Remove the directory when done: rm -r {d}");
}

/// A request as a command would make it, rendered as the command prints it.
async fn operator(engine: &Engine, cfg: &Config, req: Request) -> String {
    match crate::api::service::execute(req, engine, cfg, None).await {
        Ok(r) => crate::render::text(&r, engine.clock().now()).0,
        Err(e) => format!("error: {e}\n"),
    }
}
