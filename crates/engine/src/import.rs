//! Onboarding existing SCM certificates: download each to learn its subject and notAfter.

use futures::StreamExt;
use tracing::{info, warn};

use sectigo_core::names::{CertId, CertName, IssueKey, ProfileName};
use sectigo_core::text::ts;
use sectigo_model::{CertOrigin, CertRecord};

use crate::clients::ScmClients;
use crate::collect::issued_record;
use crate::error::EngineError;
use crate::ledger::Ledger;
use crate::settings::{Profiles, Tuning};

/// One certificate to import: `ID [ISSUE-KEY]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportLine {
    pub cert_id: CertId,
    pub issue: Option<IssueKey>,
    /// The directory name under the profile's `[deploy] dir` (`--name`).
    #[serde(default)]
    pub name: Option<CertName>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportSummary {
    pub imported: Vec<CertId>,
    pub skipped: Vec<CertId>,
    pub failed: Vec<(CertId, String)>,
    /// How many of `failed` failed for a reason that passes (SCM unreachable, busy): when all
    /// did, the command's exit code says "try again later" (75).
    #[serde(default)]
    pub temporary: usize,
}

/// Parses an import list: one `ID [ISSUE-KEY]` per line; blank lines and `#` comments ignored.
/// Every bad line is reported (line number and why), not just the first.
pub fn parse_import_lines(text: &str) -> Result<Vec<ImportLine>, Vec<String>> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match parse_import_line(line) {
            Ok(l) => out.push(l),
            Err(e) => errs.push(format!("line {}: {e}", i + 1)),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

fn parse_import_line(line: &str) -> Result<ImportLine, String> {
    let mut parts = line.split_whitespace();
    let id = parts.next().unwrap_or_default();
    let issue = parts.next();
    if parts.next().is_some() {
        return Err(format!(
            "expected `ID [ISSUE-KEY]`, got {:?}",
            sectigo_core::text::bounded(line, 80)
        ));
    }
    Ok(ImportLine {
        cert_id: CertId::parse(id).map_err(|e| e.to_string())?,
        issue: issue
            .map(IssueKey::parse)
            .transpose()
            .map_err(|e| e.to_string())?,
        name: None,
    })
}

#[derive(Clone)]
pub struct Importer {
    pub(crate) ledger: Ledger,
    pub(crate) scm: ScmClients,
    pub(crate) profiles: Profiles,
    pub(crate) tuning: Tuning,
}

impl Importer {
    /// Starts tracking existing certificates of `profile`. Downloads run in parallel within the
    /// SCM limits; already tracked ones are skipped; failures are listed, not fatal.
    pub async fn import(
        &self,
        profile: &ProfileName,
        lines: Vec<ImportLine>,
    ) -> Result<ImportSummary, EngineError> {
        self.import_flagged(profile, lines, &[]).await
    }

    /// [`Importer::import`], with the certificates SCM's own auto-renewal is on for (seen by
    /// `certs discover`): each is imported with the warning that both would renew, and bill.
    pub async fn import_flagged(
        &self,
        profile: &ProfileName,
        lines: Vec<ImportLine>,
        scm_auto_renew: &[CertId],
    ) -> Result<ImportSummary, EngineError> {
        let auto: std::collections::HashSet<&CertId> = scm_auto_renew.iter().collect();
        let auto = &auto;
        let client = self.scm.get(profile)?;
        let now = self.ledger.now();
        let mut summary = ImportSummary::default();
        let mut todo: Vec<ImportLine> = Vec::new();
        for l in lines {
            if self.ledger.get(&l.cert_id).await?.is_some()
                || todo.iter().any(|t| t.cert_id == l.cert_id)
            {
                summary.skipped.push(l.cert_id);
            } else {
                todo.push(l);
            }
        }
        let results: Vec<(ImportLine, Result<CertRecord, sectigo_scm::ScmError>)> =
            futures::stream::iter(todo)
                .map(|l| {
                    let client = client.clone();
                    async move {
                        let r = client.download(&l.cert_id).await.map(|d| {
                            let mut rec = issued_record(
                                &l.cert_id,
                                profile,
                                &d.info,
                                CertOrigin::Imported { at: now },
                                l.issue.clone(),
                            );
                            rec.name = l.name.clone();
                            rec.log(now, "imported");
                            if auto.contains(&l.cert_id) {
                                rec.scm_auto_renew = true;
                                rec.log(now, "SCM's own auto-renewal is on for it: both would renew (and bill); turn it off in SCM");
                            }
                            rec
                        });
                        (l, r)
                    }
                })
                .buffer_unordered(self.tuning.concurrency)
                .collect()
                .await;
        let mut batch = Vec::new();
        for (l, r) in results {
            match r {
                Ok(rec) => {
                    info!(profile = %profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
                        "imported {} (expires {})", rec.subject_cn, ts(rec.not_after));
                    if rec.scm_auto_renew {
                        warn!(profile = %profile, cert_id = %rec.id, "SCM's own auto-renewal is on for {} ({}): SCM and the daemon would both renew (and bill) it; turn it off in SCM", rec.id, rec.subject_cn);
                    }
                    summary.imported.push(rec.id.clone());
                    batch.push(rec);
                }
                Err(e) => {
                    warn!(profile = %profile, cert_id = %l.cert_id, "import failed: {e}");
                    if e.is_transient() {
                        summary.temporary += 1;
                    }
                    summary.failed.push((l.cert_id, e.to_string()));
                }
            }
        }
        for chunk in batch.chunks(1000) {
            self.ledger.put(chunk.to_vec()).await?;
        }
        self.remember_identity(profile).await?;
        self.ledger.flush().await?;
        Ok(summary)
    }

    /// The profile's identity, and that the configuration this import ran with has it, so
    /// that its file renamed by hand before any daemon ran is still recognised (by `run
    /// --once` as by the daemon).
    async fn remember_identity(&self, profile: &ProfileName) -> Result<(), EngineError> {
        let Some(p) = self.profiles.get(profile) else {
            return Ok(());
        };
        let (name, (client_id, scm_url)) = (profile.clone(), p.identity());
        self.ledger
            .read(move |s| {
                let mut st = s.profile_state(&name)?.unwrap_or_default();
                if (st.client_id.as_str(), st.scm_url.as_str())
                    != (client_id.as_str(), scm_url.as_str())
                    || !st.configured
                {
                    st.client_id = client_id;
                    st.scm_url = scm_url;
                    st.configured = true;
                    s.put_profile_state(&name, &st)?;
                }
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_lines() {
        let ok = parse_import_lines("# list\n123 CERT-1\n\n456\n 789  OPS_2-44 # note\n").unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(
            ok[0],
            ImportLine {
                cert_id: CertId::parse("123").unwrap(),
                issue: Some(IssueKey::parse("CERT-1").unwrap()),
                name: None,
            }
        );
        assert_eq!(ok[1].issue, None);
        assert_eq!(ok[2].issue.as_deref(), Some("OPS_2-44"));
        let errs = parse_import_lines("1 cert-1\n2 A-1 extra\n3/4\n5 CERT-9").unwrap_err();
        assert_eq!(errs.len(), 3);
        assert!(errs[0].starts_with("line 1"));
        assert!(errs[2].starts_with("line 3"));
    }
}
