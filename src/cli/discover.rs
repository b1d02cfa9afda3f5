//! `certs discover --profile P [--cn PATTERN] [--expiring-within DAYS] [--json] [--import]`:
//! SCM's issued certificates that the profile's `[admin]` account sees and the daemon does not
//! track yet (the pure parts are `sectigo_engine::discover`).
//!
//! Runs here, where the person waits: SCM's list is read page by page (200 a page), the tracked
//! ids of each page are asked of the daemon (or of the state, opened here when no daemon runs),
//! the details of the others are read within the Admin API host's request limits, and, with
//! `--import`, each page's finds are imported (downloads on the REST host) while the next
//! page's details are read. Memory holds one page and the finds (ids and names), never the
//! whole list with its details. Progress goes to standard error on a terminal only.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use sectigo_core::config::Config;
use sectigo_core::names::{CertId, ProfileName};
use sectigo_core::text::Escaped;
use sectigo_engine::discover::{Found, Progress, Wanted};
use sectigo_engine::{ImportLine, ImportSummary, ScmClients};
use sectigo_scm::admin::{AdminClient, CertSummary, MAX_PAGE_SIZE};
use sectigo_scm::Limits;

use crate::api::{Request, Response};
use crate::exit::{CliError, Exit};

use super::output::write_out;

/// Where the tracked ids are asked and the finds imported: the running daemon, or the state
/// opened here.
enum Backend {
    Daemon(crate::api::client::Endpoint),
    /// Root, and the state is the service user's: each request carried out by the command run
    /// as the state's owner (root never opens the service user's state).
    Owner(super::owner::Owner, std::path::PathBuf),
    Local(Box<super::Here>),
}

impl Backend {
    async fn call(&self, req: Request) -> Result<Response, CliError> {
        let reply = match self {
            Backend::Daemon(socket) => crate::api::client::send(socket, &req)
                .await
                .map_err(|e| CliError::temp(format!("the daemon stopped answering: {e}")))?
                .ok_or_else(|| CliError::temp("the daemon stopped answering"))?,
            Backend::Owner(owner, dir) => owner.reply(dir, &req, &mut tokio::io::sink()).await?,
            Backend::Local(here) => here.execute(req).await,
        };
        reply.map_err(|e| CliError::new(Exit::from(e.kind), anyhow::anyhow!(e.message)))
    }

    async fn tracked(&self, ids: Vec<CertId>) -> Result<Vec<CertId>, CliError> {
        match self.call(Request::CertsTracked { ids }).await? {
            Response::Tracked(t) => Ok(t),
            other => Err(CliError::failed(format!("unexpected reply {other:?}"))),
        }
    }

    async fn import(
        &self,
        profile: &ProfileName,
        found: &[Found],
    ) -> Result<ImportSummary, CliError> {
        let ids: Vec<(CertId, bool)> = found
            .iter()
            .filter_map(|f| Some((CertId::parse(&f.id.to_string()).ok()?, f.scm_auto_renew)))
            .collect();
        let req = Request::CertsImport {
            profile: profile.clone(),
            lines: ids
                .iter()
                .map(|(id, _)| ImportLine {
                    cert_id: id.clone(),
                    issue: None,
                    name: None,
                })
                .collect(),
            scm_auto_renew: ids
                .iter()
                .filter(|(_, a)| *a)
                .map(|(id, _)| id.clone())
                .collect(),
        };
        match self.call(req).await? {
            Response::Imported(s) => Ok(s),
            other => Err(CliError::failed(format!("unexpected reply {other:?}"))),
        }
    }
}

/// What the command was asked.
pub struct Args {
    pub profile: ProfileName,
    pub wanted: Wanted,
    pub json: bool,
    pub import: bool,
}

pub fn discover(dir: &Path, args: Args) -> Result<i32, CliError> {
    let cfg = Config::load(dir)?;
    let Some(profile) = cfg.profiles.get(&args.profile) else {
        return Err(CliError::usage(format!(
            "no profile {} (profiles.d/{}.toml)",
            args.profile, args.profile
        )));
    };
    let Some(admin_cfg) = profile.admin.clone() else {
        return Err(CliError::new(
            Exit::Config,
            anyhow::anyhow!(
                "profile {} has no [admin] section: certs discover reads SCM's Admin API ([admin] url, client_id, client_secret in {})",
                args.profile,
                profile.file.display()
            ),
        ));
    };
    super::runtime()?.block_on(async move {
        let socket = crate::api::client::Endpoint::of(dir);
        let daemon = crate::api::client::send(&socket, &Request::CertsTracked { ids: vec![] })
            .await
            .ok()
            .flatten()
            .is_some();
        let backend = if daemon {
            Backend::Daemon(socket)
        } else if let Some(owner) = super::owner::Owner::of_state(dir) {
            Backend::Owner(owner, dir.to_path_buf())
        } else {
            Backend::Local(Box::new(super::Here::open(dir)?))
        };
        let clock = sectigo_core::clock::system();
        let limits = Arc::new(Limits::new(
            cfg.connector.scm.max_concurrent,
            cfg.connector.scm.max_requests_per_second,
        ));
        let clients = ScmClients::new(&cfg, limits, clock.clone())?;
        let admin = clients
            .admin(&args.profile)
            .ok_or_else(|| CliError::failed("no Admin API client"))?;
        let filter = args.wanted.filter(&admin_cfg);
        let concurrency = (cfg.connector.scm.max_concurrent * 2).max(1);
        run(&backend, &admin, filter, &args, concurrency, clock.now()).await
    })
}

/// The pages, their details and imports; prints what is found.
async fn run(
    backend: &Backend,
    admin: &AdminClient,
    filter: sectigo_scm::admin::ListFilter,
    args: &Args,
    concurrency: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<i32, CliError> {
    let tty = std::io::stderr().is_terminal();
    let mut progress = Progress::default();
    let mut all_found: Vec<Found> = Vec::new();
    let mut summary = ImportSummary::default();
    let mut failed_details: Vec<(i64, String)> = Vec::new();
    let mut auto_on = 0u64;
    let mut pages = admin.pages(filter, MAX_PAGE_SIZE);
    if !args.json {
        write_out("ID\tCN\tEXPIRES\tSCM AUTO-RENEW\n");
    }
    // The previous page's finds, imported while this page's details are read.
    let mut to_import: Vec<Found> = Vec::new();
    loop {
        // This page's list, tracked ids and details while the previous page's finds are
        // imported (two hosts, two rate limits).
        let fetch = fetch_page(&mut pages, backend, admin, &args.wanted, concurrency, now);
        let import = async {
            if args.import && !to_import.is_empty() {
                Some(backend.import(&args.profile, &to_import).await)
            } else {
                None
            }
        };
        let (fetched, imported) = tokio::join!(fetch, import);
        if let Some(s) = imported {
            let s = s?;
            progress.imported += s.imported.len() as u64;
            merge(&mut summary, s);
        }
        to_import.clear();
        let Some(page) = fetched? else {
            break;
        };
        progress.listed += page.listed;
        progress.total = pages.total();
        progress.tracked += page.tracked;
        progress.detailed += page.detailed;
        failed_details.extend(page.failed);
        let page_found = page.found;
        progress.found += page_found.len() as u64;
        auto_on += page_found.iter().filter(|f| f.scm_auto_renew).count() as u64;
        if !args.json {
            let mut out = String::new();
            for f in &page_found {
                out.push_str(&line(f));
            }
            write_out(&out);
        }
        if tty {
            eprint!("\r{}", progress_line(&progress, args.import));
        }
        if args.import {
            to_import = page_found.clone();
        }
        if args.json {
            all_found.extend(page_found);
        }
    }
    if args.import && !to_import.is_empty() {
        let s = backend.import(&args.profile, &to_import).await?;
        progress.imported += s.imported.len() as u64;
        merge(&mut summary, s);
    }
    if tty {
        eprintln!("\r{}", progress_line(&progress, args.import));
    }
    for (id, e) in &failed_details {
        eprintln!("failed: {id}: details: {e}");
    }
    if args.json {
        let mut doc = serde_json::json!({
            "found": all_found,
            "listed": progress.listed,
            "tracked": progress.tracked,
            "failed_details": failed_details.iter().map(|(id, e)| serde_json::json!({"id": id, "error": e})).collect::<Vec<_>>(),
        });
        if args.import {
            doc["import"] = serde_json::to_value(&summary).unwrap_or_default();
        }
        write_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        ));
    } else {
        let auto = if auto_on > 0 {
            format!(", {auto_on} with SCM's own auto-renewal on")
        } else {
            String::new()
        };
        write_out(&format!(
            "{} not tracked{auto} (of {} listed; {} tracked already)\n",
            progress.found, progress.listed, progress.tracked
        ));
        if args.import {
            let (out, err) =
                crate::render::text(&Response::Imported(summary.clone()), super::now());
            write_out(&out);
            eprint!("{err}");
        }
    }
    let failed = !failed_details.is_empty() || !summary.failed.is_empty();
    Ok(if !failed {
        0
    } else if summary.failed.len() == summary.temporary && failed_details.is_empty() {
        Exit::TempFail.code()
    } else {
        Exit::Failed.code()
    })
}

/// One page: what it listed, how many were tracked already, the details read, what was found
/// and the details that could not be read.
struct Fetched {
    listed: u64,
    tracked: u64,
    detailed: u64,
    found: Vec<Found>,
    failed: Vec<(i64, String)>,
}

/// The next page, its tracked ids left out, the others' details read; `None` after the last.
async fn fetch_page(
    pages: &mut sectigo_scm::admin::Pages<'_>,
    backend: &Backend,
    admin: &AdminClient,
    wanted: &Wanted,
    concurrency: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Fetched>, CliError> {
    let page = match pages.next_page().await {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(CliError::new(
                if e.is_transient() {
                    Exit::TempFail
                } else {
                    Exit::Failed
                },
                anyhow::anyhow!("SCM's Admin API list: {e}"),
            ))
        }
    };
    let listed = page.len() as u64;
    let fits: Vec<CertSummary> = page
        .into_iter()
        .filter(|s| wanted.name_fits(&s.common_name))
        .collect();
    let ids: Vec<CertId> = fits
        .iter()
        .filter_map(|s| CertId::parse(&s.ssl_id.to_string()).ok())
        .collect();
    let tracked = backend.tracked(ids).await?;
    let tracked: std::collections::HashSet<String> =
        tracked.iter().map(|t| t.to_string()).collect();
    let untracked: Vec<i64> = fits
        .iter()
        .map(|s| s.ssl_id)
        .filter(|id| !tracked.contains(&id.to_string()))
        .collect();
    let details = sectigo_engine::discover::details_of(admin, untracked, concurrency).await;
    let mut out = Fetched {
        listed,
        tracked: tracked.len() as u64,
        detailed: details.len() as u64,
        found: Vec::new(),
        failed: Vec::new(),
    };
    for (id, d) in details {
        match d {
            Ok(d) => out.found.extend(wanted.found(&d, now)),
            Err(e) => out.failed.push((id, e.to_string())),
        }
    }
    out.found.sort_by_key(|f| f.id);
    Ok(Some(out))
}

fn merge(into: &mut ImportSummary, s: ImportSummary) {
    into.imported.extend(s.imported);
    into.skipped.extend(s.skipped);
    into.failed.extend(s.failed);
    into.temporary += s.temporary;
}

/// One certificate found, as a line (SCM's text escaped).
fn line(f: &Found) -> String {
    format!(
        "{}\t{}\t{}\t{}\n",
        f.id,
        Escaped(&f.common_name),
        f.expires.as_deref().unwrap_or("-"),
        if f.scm_auto_renew {
            "on (SCM renews it too: both would bill; turn it off in SCM before importing)"
        } else {
            "off"
        }
    )
}

fn progress_line(p: &Progress, import: bool) -> String {
    let total = p.total.map(|t| format!("/{t}")).unwrap_or_default();
    let mut s = format!(
        "listed {}{total}, tracked already {}, details read {}, found {}",
        p.listed, p.tracked, p.detailed, p.found
    );
    if import {
        s.push_str(&format!(", imported {}", p.imported));
    }
    s
}
