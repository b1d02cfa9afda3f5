//! `certs discover`: what SCM's Admin API lists for a profile's `[admin]` account (within its
//! `org_id` and `ssl_type_id`) that the daemon does not track yet. The pure parts: what one
//! certificate found looks like, the `--cn` pattern, and which details count (issued, inside
//! `--expiring-within`). The command streams the pages (`src/cli/discover.rs`).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use sectigo_core::config::AdminConfig;
use sectigo_scm::admin::{CertDetails, CertStatus, ListFilter};

/// One issued certificate SCM lists and the daemon does not track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// SCM's id (the REST API's `certId`).
    pub id: i64,
    pub common_name: String,
    /// Its expiry as SCM wrote it (ISO 8601), if SCM said.
    pub expires: Option<String>,
    /// SCM's own auto-renewal is on for it: importing it means two renewers (both bill).
    pub scm_auto_renew: bool,
    /// How it was requested (`REST API`, `Client Admin`, ...).
    pub requested_via: Option<String>,
}

/// What `certs discover` looks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// `--cn`: a common name, `*` matching any run of characters (case ignored).
    pub cn: Option<String>,
    /// `--expiring-within DAYS`.
    pub expiring_within_days: Option<i64>,
}

impl Wanted {
    /// The list's filter: the profile's `[admin]` scope, and `commonName` when the pattern is
    /// a plain name (SCM filters; the answer is checked here all the same).
    pub fn filter(&self, admin: &AdminConfig) -> ListFilter {
        let mut f = ListFilter::for_admin(admin);
        f.common_name = self.cn.clone().filter(|p| !p.contains('*'));
        f
    }

    /// Whether a listed name is worth its details (free, but within the rate limit).
    pub fn name_fits(&self, cn: &str) -> bool {
        self.cn.as_deref().is_none_or(|p| glob(p, cn))
    }

    /// The certificate, when it is what is looked for: issued (by SCM's status), within the
    /// expiry horizon at `now`, and its name fits.
    pub fn found(&self, d: &CertDetails, now: DateTime<Utc>) -> Option<Found> {
        if d.status != CertStatus::Issued || !self.name_fits(&d.common_name) {
            return None;
        }
        if let Some(days) = self.expiring_within_days {
            let exp = d.expires?;
            if exp.earliest() > now + Duration::days(days) {
                return None;
            }
        }
        Some(Found {
            id: d.ssl_id,
            common_name: d.common_name.clone(),
            expires: d.expires.map(|e| e.to_string()),
            scm_auto_renew: d.auto_renew_on(),
            requested_via: d.requested_via.clone(),
        })
    }
}

/// `pattern` matches `text`, ignoring ASCII case; `*` matches any run of characters
/// (including none, and dots).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    // The classic two-pointer match with one backtrack point.
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == t[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

impl crate::Engine {
    /// Which of `ids` are tracked (any state).
    pub async fn tracked(
        &self,
        ids: Vec<sectigo_core::names::CertId>,
    ) -> Result<Vec<sectigo_core::names::CertId>, crate::EngineError> {
        self.ledger
            .read(move |s| {
                let mut out = Vec::new();
                for id in ids {
                    if s.get(&id)?.is_some() {
                        out.push(id);
                    }
                }
                Ok(out)
            })
            .await
    }
}

/// The details of `ids`, read `concurrency` at a time (the Admin API host's limits pace
/// them), in no particular order.
pub async fn details_of(
    admin: &sectigo_scm::admin::AdminClient,
    ids: Vec<i64>,
    concurrency: usize,
) -> Vec<(i64, Result<CertDetails, sectigo_scm::ScmError>)> {
    use futures::StreamExt;
    futures::stream::iter(ids)
        .map(|id| async move { (id, admin.details(id).await) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// Progress of a discovery, for a terminal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Certificates listed so far, and SCM's total (`X-Total-Count`) when it said.
    pub listed: u64,
    pub total: Option<u64>,
    /// Of them: tracked already, details read, found.
    pub tracked: u64,
    pub detailed: u64,
    pub found: u64,
    pub imported: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use sectigo_scm::admin::parse_details;

    #[test]
    fn patterns() {
        assert!(glob("*.example.com", "a.example.com"));
        assert!(glob("*.example.com", "*.example.com"));
        assert!(glob("*.EXAMPLE.com", "a.b.example.com"));
        assert!(!glob("*.example.com", "example.com"));
        assert!(glob("shop*", "shop-1.example.com"));
        assert!(glob("a.example.com", "A.example.com"));
        assert!(!glob("a.example.com", "a.example.co"));
        assert!(glob("*", ""));
        assert!(glob("*a*b*", "xxaxxbxx"));
        assert!(!glob("*a*b", "xxaxxbxx"));
    }

    #[test]
    fn issued_inside_the_horizon_only() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let d = |status: &str, expires: &str, auto: &str| {
            parse_details(
                200,
                serde_json::json!({"sslId": 9, "commonName": "a.example.com", "status": status,
                    "expires": expires, "autoRenewDetails": {"state": auto}})
                .to_string()
                .as_bytes(),
            )
            .unwrap()
        };
        let w = Wanted {
            cn: Some("*.example.com".into()),
            expiring_within_days: Some(30),
        };
        let f = w
            .found(&d("Issued", "12/20/2026", "Scheduled"), now)
            .unwrap();
        assert_eq!((f.id, f.scm_auto_renew), (9, true));
        assert_eq!(f.expires.as_deref(), Some("2026-12-20"));
        assert!(w
            .found(&d("Issued", "2027-02-01", "Not scheduled"), now)
            .is_none());
        assert!(w
            .found(&d("Revoked", "2026-12-20", "Not scheduled"), now)
            .is_none());
        assert!(Wanted::default()
            .found(&d("Issued", "2027-02-01", "Not scheduled"), now)
            .is_some());
    }
}
