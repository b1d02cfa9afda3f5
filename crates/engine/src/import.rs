//! Onboarding existing SCM certificates: download each to learn its subject and notAfter.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sectigo_core::text::ts;
use tracing::{info, warn};

use super::{Engine, EngineError};
use sectigo_state::{blocking, CertOrigin, CertRecord};

/// One certificate to import: `ID [ISSUE-KEY]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportLine {
    pub cert_id: String,
    pub issue: Option<String>,
    /// The directory name under the profile's `[deploy] dir` (`--name`).
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportSummary {
    pub imported: Vec<String>,
    pub skipped: Vec<String>,
    pub failed: Vec<(String, String)>,
    /// How many of `failed` failed for a reason that passes (SCM unreachable, busy): when all
    /// did, the command's exit code says "try again later" (75).
    #[serde(default)]
    pub temporary: usize,
}

/// A Jira issue key: `PROJECT-123`.
pub fn is_issue_key(s: &str) -> bool {
    let Some((proj, num)) = s.rsplit_once('-') else {
        return false;
    };
    !proj.is_empty()
        && proj.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && proj
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !num.is_empty()
        && num.chars().all(|c| c.is_ascii_digit())
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
        let mut parts = line.split_whitespace();
        let id = parts.next().unwrap_or_default();
        let issue = parts.next();
        if parts.next().is_some() {
            errs.push(format!(
                "line {}: expected `ID [ISSUE-KEY]`, got {line:?}",
                i + 1
            ));
            continue;
        }
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errs.push(format!("line {}: {id:?} is not a certificate id", i + 1));
            continue;
        }
        if let Some(k) = issue {
            if !is_issue_key(k) {
                errs.push(format!(
                    "line {}: {k:?} is not a Jira issue key (like CERT-123)",
                    i + 1
                ));
                continue;
            }
        }
        out.push(ImportLine {
            cert_id: id.to_string(),
            issue: issue.map(str::to_string),
            name: None,
        });
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

impl Engine {
    /// Starts tracking existing certificates of `profile`. Downloads run in parallel within the
    /// SCM limits; already tracked ones are skipped; failures are listed, not fatal.
    pub async fn import(
        &self,
        profile: &str,
        lines: Vec<ImportLine>,
        now: DateTime<Utc>,
    ) -> Result<ImportSummary, EngineError> {
        let client = self.client(profile)?.clone();
        if let Some(n) = lines
            .iter()
            .filter_map(|l| l.name.as_deref())
            .find(|n| !crate::deploy::valid_name(n))
        {
            return Err(EngineError::Invalid(format!(
                "--name {n:?}: a directory name is 1 to 128 letters, digits, '.', '-' or '_', not starting with '.'"
            )));
        }
        let mut summary = ImportSummary::default();
        let mut todo = Vec::new();
        for l in lines {
            if self.get(&l.cert_id).await?.is_some()
                || todo.iter().any(|t: &ImportLine| t.cert_id == l.cert_id)
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
                        let r = match client.download(&l.cert_id).await {
                            Ok(d) => {
                                let mut rec = super::issued_record(
                                    &l.cert_id,
                                    profile,
                                    &d.info,
                                    CertOrigin::Imported { at: now },
                                    l.issue.clone(),
                                );
                                rec.name = l.name.clone();
                                rec.log(now, "imported");
                                Ok(rec)
                            }
                            Err(e) => Err(e),
                        };
                        (l, r)
                    }
                })
                .buffer_unordered(self.concurrency.max(1))
                .collect()
                .await;
        let mut batch = Vec::new();
        for (l, r) in results {
            match r {
                Ok(rec) => {
                    info!(profile = %profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
                        "imported {} (expires {})", rec.subject_cn, ts(rec.not_after));
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
            let c = chunk.to_vec();
            blocking(&self.store, move |s| s.put(&c)).await?;
        }
        // The profile's identity, so that its file renamed by hand before any daemon ran is
        // still recognised (by `run --once` as by the daemon).
        if let Some(p) = self.profiles.get(profile) {
            let (name, (client_id, scm_url)) = (profile.to_string(), p.identity());
            blocking(&self.store, move |s| {
                let mut st = s.profile_state(&name)?.unwrap_or_default();
                if (st.client_id.as_str(), st.scm_url.as_str())
                    != (client_id.as_str(), scm_url.as_str())
                {
                    st.client_id = client_id;
                    st.scm_url = scm_url;
                    s.put_profile_state(&name, &st)?;
                }
                Ok(())
            })
            .await?;
        }
        self.flush().await?;
        Ok(summary)
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
                cert_id: "123".into(),
                issue: Some("CERT-1".into()),
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
