//! What each declared certificate needs (`certs plan`, and each cycle): a pure function of the
//! declarations, what the state remembers of them, their certificates and the renewal
//! policies, at `now`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use sectigo_core::config::{conflicts, Declared, EnrollMode};
use sectigo_core::names::{CertId, CertName, ProfileName};
use sectigo_model::{CertRecord, CertState, DeclaredRecord, EnrollState};

use crate::policy::{self, Decision, RenewPolicy};

/// What a declared certificate needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Its certificate is issued, as declared, and not due.
    Ok,
    /// None is tracked: SCM's enroll (billable).
    Enroll,
    /// Its names or key type changed: SCM's replace, with a CSR for a new key (billable).
    Replace,
    /// Inside its expiry window: renewed as any certificate, with the profile's key_rotation.
    Renew,
    /// Requested (enroll, replace or renewal), not issued yet.
    Waiting,
    /// One of its names is declared in another file too: neither is enrolled until resolved.
    Conflict,
    /// Its file was removed: no longer renewed, never revoked; listed until `certs forget`.
    Undeclared,
    /// The answer to its enroll or replace call was lost: never sent again; a person checks.
    Unknown,
    /// SCM accepted it and it can never be collected, or its renewal failed for good.
    Failed,
    /// Its certificate was revoked: nothing more is done for it until its file goes.
    Revoked,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Ok => "ok",
            Action::Enroll => "enroll",
            Action::Replace => "replace",
            Action::Renew => "renew",
            Action::Waiting => "waiting",
            Action::Conflict => "conflict",
            Action::Undeclared => "undeclared",
            Action::Unknown => "unknown",
            Action::Failed => "failed",
            Action::Revoked => "revoked",
        }
    }

    /// A step `certs apply` (or, with `enroll = "auto"`, the daemon) takes, billed by SCM.
    pub fn billable(self) -> bool {
        matches!(self, Action::Enroll | Action::Replace)
    }
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanItem {
    pub name: CertName,
    pub profile: ProfileName,
    pub action: Action,
    /// Its current certificate, when it has one.
    #[serde(default)]
    pub cert_id: Option<CertId>,
    /// `confirm` or `auto`; `None` when undeclared.
    #[serde(default)]
    pub enroll: Option<EnrollMode>,
    pub names: Vec<String>,
    /// Why, in words.
    pub detail: String,
}

/// The names a certificate carries: its CN first, then its SANs (lower case, once each).
pub fn cert_names(c: &CertRecord) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in std::iter::once(&c.subject_cn).chain(c.sans.iter()) {
        let n = n.trim_end_matches('.').to_ascii_lowercase();
        if !n.is_empty() && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// Same CN (first name) and the same set of names.
fn same_names(a: &[String], b: &[String]) -> bool {
    let mut x: Vec<&String> = a.iter().collect();
    let mut y: Vec<&String> = b.iter().collect();
    let first = a.first() == b.first();
    x.sort();
    y.sort();
    first && x == y
}

/// The plan: one item per declaration (by name), then one per undeclared certificate still
/// tracked. `certs` holds each name's current certificate (its renewals followed).
pub fn plan(
    decls: &BTreeMap<CertName, Declared>,
    records: &BTreeMap<CertName, DeclaredRecord>,
    certs: &BTreeMap<CertName, CertRecord>,
    pols: &BTreeMap<ProfileName, RenewPolicy>,
    now: DateTime<Utc>,
) -> Vec<PlanItem> {
    let clashes = conflicts(decls.values());
    let mut out = Vec::with_capacity(decls.len());
    for d in decls.values() {
        let rec = records.get(&d.name);
        let cert = certs.get(&d.name);
        let (action, detail) = match clash(d, &clashes) {
            Some(why) => (Action::Conflict, why),
            None => decide(d, rec, cert, pols, now),
        };
        out.push(PlanItem {
            name: d.name.clone(),
            profile: d.profile.clone(),
            action,
            cert_id: cert.map(|c| c.id.clone()),
            enroll: Some(d.enroll),
            names: d.names.clone(),
            detail,
        });
    }
    for rec in records.values().filter(|r| !decls.contains_key(&r.name)) {
        let cert = certs.get(&rec.name);
        let held = cert.is_some_and(|c| c.state.is_live()) || rec.in_flight();
        if !held {
            continue;
        }
        out.push(PlanItem {
            name: rec.name.clone(),
            profile: rec.profile.clone(),
            action: Action::Undeclared,
            cert_id: cert.map(|c| c.id.clone()),
            enroll: None,
            names: rec.names.clone(),
            detail: match cert {
                Some(c) => format!(
                    "certificates.d/{}.toml was removed: {} is no longer renewed (never revoked); `certs forget {}` stops tracking it",
                    rec.name, c.id, c.id
                ),
                None => format!(
                    "certificates.d/{}.toml was removed while its enrollment is under way; it is still collected, then no longer renewed",
                    rec.name
                ),
            },
        });
    }
    out
}

/// The conflict a declaration is in, in words.
fn clash(d: &Declared, clashes: &BTreeMap<String, Vec<CertName>>) -> Option<String> {
    let (name, holders) = d
        .names
        .iter()
        .find_map(|n| clashes.get(n).map(|h| (n, h)))?;
    let others: Vec<String> = holders
        .iter()
        .filter(|h| **h != d.name)
        .map(|h| format!("certificates.d/{h}.toml"))
        .collect();
    Some(format!(
        "{name} is also declared in {}: neither is enrolled until one file drops it",
        others.join(", ")
    ))
}

fn decide(
    d: &Declared,
    rec: Option<&DeclaredRecord>,
    cert: Option<&CertRecord>,
    pols: &BTreeMap<ProfileName, RenewPolicy>,
    now: DateTime<Utc>,
) -> (Action, String) {
    let what = |r: &DeclaredRecord| match r.op {
        Some(sectigo_model::DeclaredOp::Replace { .. }) => "replacement",
        _ => "enrollment",
    };
    if let Some(r) = rec {
        match &r.enroll {
            Some(EnrollState::Requested { at, .. }) => {
                return (
                    Action::Waiting,
                    format!("{} requested at {}", what(r), ts(*at)),
                )
            }
            Some(EnrollState::Collecting { cert_id, at, .. }) => {
                return (
                    Action::Waiting,
                    format!(
                        "{} accepted by SCM as {cert_id} at {}, not issued yet",
                        what(r),
                        ts(*at)
                    ),
                )
            }
            Some(EnrollState::OutcomeUnknown { request, .. }) => {
                return (
                    Action::Unknown,
                    format!(
                        "the answer to its {} call was lost: SCM may have issued (and billed) it, so it is not sent again; search SCM for request {}, then `certs import --profile {} --cert-id ID --name {}` if it did, `certs resolve {} --not-renewed` if not",
                        what(r),
                        request.as_deref().unwrap_or("?"),
                        d.profile,
                        d.name,
                        d.name
                    ),
                )
            }
            Some(EnrollState::Failed { reason, .. }) if cert.is_none_or(|c| Some(&c.id) == r.cert_id.as_ref()) && r.op.is_some() => {
                return (Action::Failed, reason.clone())
            }
            _ => {}
        }
    }
    let refused = rec.and_then(|r| match &r.enroll {
        Some(EnrollState::Rejected { reason, .. }) => {
            Some(format!(" (the last attempt was refused: {reason})"))
        }
        _ => None,
    });
    let Some(cert) = cert else {
        return (
            Action::Enroll,
            format!(
                "no certificate is tracked for it: SCM's enroll for {} ({}){}",
                d.names.join(", "),
                d.key_type.name(),
                refused.unwrap_or_default()
            ),
        );
    };
    match &cert.state {
        CertState::Revoked { at } => {
            return (
                Action::Revoked,
                format!(
                "{} was revoked at {}; remove certificates.d/{}.toml, or forget it to enroll anew",
                cert.id,
                ts(*at),
                d.name
            ),
            )
        }
        CertState::RenewRequested { .. } | CertState::Collecting { .. } => {
            return (
                Action::Waiting,
                format!("a renewal of {} is under way", cert.id),
            )
        }
        CertState::OutcomeUnknown { .. } => {
            return (
                Action::Unknown,
                format!(
                    "the outcome of {}'s renewal is unknown: `certs resolve {}`",
                    cert.id, cert.id
                ),
            )
        }
        CertState::Failed { reason, .. } => return (Action::Failed, reason.clone()),
        _ => {}
    }
    let had = match rec.map(|r| &r.names).filter(|n| !n.is_empty()) {
        Some(n) => n.clone(),
        None => cert_names(cert),
    };
    let had_key = rec.map(|r| r.key_type.as_str()).unwrap_or_default();
    if !same_names(&had, &d.names) {
        return (
            Action::Replace,
            format!(
                "its names changed: {} → {}{}",
                had.join(", "),
                d.names.join(", "),
                refused.unwrap_or_default()
            ),
        );
    }
    if !had_key.is_empty() && had_key != d.key_type.name() {
        return (
            Action::Replace,
            format!(
                "its key type changed: {had_key} → {}{}",
                d.key_type.name(),
                refused.unwrap_or_default()
            ),
        );
    }
    let Some(p) = pols.get(&d.profile) else {
        return (Action::Ok, format!("{} is issued", cert.id));
    };
    match policy::decide(cert, p, now) {
        Decision::Renew { .. } => (
            Action::Renew,
            format!(
                "{} expires {}: inside its expiry window, renewed by the cycle",
                cert.id,
                ts(cert.not_after)
            ),
        ),
        other => (
            Action::Ok,
            format!(
                "{} valid until {}; {}",
                cert.id,
                ts(cert.not_after),
                crate::explain(&other)
            ),
        ),
    }
}

fn ts(t: DateTime<Utc>) -> String {
    sectigo_core::text::ts(t)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use sectigo_core::x509::keygen::KeyType;
    use sectigo_model::{CertOrigin, DeclaredOp};

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
    }

    fn decl(name: &str, names: &[&str]) -> Declared {
        Declared {
            name: name.parse().unwrap(),
            file: format!("/etc/x/certificates.d/{name}.toml").into(),
            profile: "web".parse().unwrap(),
            names: names.iter().map(|s| s.to_string()).collect(),
            key_type: KeyType::EcP256,
            enroll: EnrollMode::Confirm,
            deploy: None,
        }
    }

    fn cert(id: &str, name: &str, names: &[&str], days: i64, state: CertState) -> CertRecord {
        CertRecord {
            id: id.parse().unwrap(),
            profile: "web".parse().unwrap(),
            subject_cn: names[0].into(),
            sans: names.iter().map(|s| s.to_string()).collect(),
            serial: "01".into(),
            not_before: t0() - Duration::days(10),
            not_after: t0() + Duration::days(days),
            state,
            jira_issue: None,
            origin: CertOrigin::Enrolled { at: t0() },
            failures: 0,
            next_attempt: None,
            last_error: None,
            reported_no_auto_renew: None,
            stall_reported: None,
            history: vec![],
            name: Some(name.parse().unwrap()),
            deploy: None,
            scm_auto_renew: false,
        }
    }

    fn record(name: &str, names: &[&str], key: &str, id: Option<&str>) -> DeclaredRecord {
        let mut r = DeclaredRecord::new(&name.parse().unwrap(), &"web".parse().unwrap());
        r.names = names.iter().map(|s| s.to_string()).collect();
        r.key_type = key.into();
        r.cert_id = id.map(|i| i.parse().unwrap());
        r
    }

    fn pols() -> BTreeMap<ProfileName, RenewPolicy> {
        BTreeMap::from([(
            "web".parse().unwrap(),
            RenewPolicy {
                expiry_window_days: 30,
                auto_renew: true,
                force: None,
            },
        )])
    }

    fn by_name<T: Clone>(items: &[(&str, T)]) -> BTreeMap<CertName, T> {
        items
            .iter()
            .map(|(n, v)| (n.parse().unwrap(), v.clone()))
            .collect()
    }

    fn actions(p: &[PlanItem]) -> Vec<(String, Action)> {
        p.iter().map(|i| (i.name.to_string(), i.action)).collect()
    }

    #[test]
    fn every_state_of_a_declaration() {
        let decls = by_name(&[
            ("new", decl("new", &["new.example.com"])),
            (
                "same",
                decl("same", &["same.example.com", "www.same.example.com"]),
            ),
            (
                "grown",
                decl("grown", &["grown.example.com", "b.example.com"]),
            ),
            ("rekey", decl("rekey", &["rekey.example.com"])),
            ("due", decl("due", &["due.example.com"])),
            ("asked", decl("asked", &["asked.example.com"])),
            ("lost", decl("lost", &["lost.example.com"])),
            ("a", decl("a", &["shared.example.com", "a.example.com"])),
            ("b", decl("b", &["shared.example.com"])),
            ("gone", decl("gone", &["gone.example.com"])),
        ]);
        let mut asked = record("asked", &["asked.example.com"], "ec-p256", None);
        asked.op = Some(DeclaredOp::Enroll);
        asked.enroll = Some(EnrollState::Collecting {
            profile: "web".parse().unwrap(),
            cert_id: "77".parse().unwrap(),
            at: t0(),
        });
        let mut lost = record("lost", &["lost.example.com"], "ec-p256", None);
        lost.op = Some(DeclaredOp::Enroll);
        lost.enroll = Some(EnrollState::OutcomeUnknown {
            profile: "web".parse().unwrap(),
            at: t0(),
            request: Some("r-1".into()),
        });
        let mut records = by_name(&[
            (
                "same",
                record(
                    "same",
                    &["same.example.com", "www.same.example.com"],
                    "ec-p256",
                    Some("1"),
                ),
            ),
            (
                "grown",
                record("grown", &["grown.example.com"], "ec-p256", Some("2")),
            ),
            (
                "rekey",
                record("rekey", &["rekey.example.com"], "rsa-2048", Some("3")),
            ),
            (
                "due",
                record("due", &["due.example.com"], "ec-p256", Some("4")),
            ),
            ("asked", asked),
            ("lost", lost),
            (
                "old",
                record("old", &["old.example.com"], "ec-p256", Some("5")),
            ),
        ]);
        records.insert(
            "forgotten".parse().unwrap(),
            record("forgotten", &["f.example.com"], "ec-p256", Some("6")),
        );
        let certs = by_name(&[
            (
                "same",
                cert(
                    "1",
                    "same",
                    &["same.example.com", "www.same.example.com"],
                    80,
                    CertState::Active,
                ),
            ),
            (
                "grown",
                cert("2", "grown", &["grown.example.com"], 80, CertState::Active),
            ),
            (
                "rekey",
                cert("3", "rekey", &["rekey.example.com"], 80, CertState::Active),
            ),
            (
                "due",
                cert("4", "due", &["due.example.com"], 10, CertState::Active),
            ),
            (
                "old",
                cert("5", "old", &["old.example.com"], 80, CertState::Active),
            ),
        ]);
        let p = plan(&decls, &records, &certs, &pols(), t0());
        assert_eq!(
            actions(&p),
            vec![
                ("a".into(), Action::Conflict),
                ("asked".into(), Action::Waiting),
                ("b".into(), Action::Conflict),
                ("due".into(), Action::Renew),
                ("gone".into(), Action::Enroll),
                ("grown".into(), Action::Replace),
                ("lost".into(), Action::Unknown),
                ("new".into(), Action::Enroll),
                ("rekey".into(), Action::Replace),
                ("same".into(), Action::Ok),
                // Its file is gone, its certificate still tracked: listed, never revoked.
                ("old".into(), Action::Undeclared),
                // "forgotten": no file, no certificate: not listed.
            ]
        );
        assert!(
            p[0].detail.contains("certificates.d/b.toml"),
            "{}",
            p[0].detail
        );
        assert!(
            p[5].detail
                .contains("grown.example.com → grown.example.com, b.example.com"),
            "{}",
            p[5].detail
        );
        assert!(
            p[8].detail.contains("rsa-2048 → ec-p256"),
            "{}",
            p[8].detail
        );
        assert!(Action::Enroll.billable() && Action::Replace.billable());
        assert!(!Action::Renew.billable() && !Action::Undeclared.billable());
    }

    #[test]
    fn an_adopted_certificate_is_compared_by_its_names_and_order_matters_for_the_cn() {
        let decls = by_name(&[("x", decl("x", &["x.example.com", "y.example.com"]))]);
        let certs = by_name(&[(
            "x",
            cert(
                "9",
                "x",
                &["x.example.com", "y.example.com"],
                80,
                CertState::Active,
            ),
        )]);
        let p = plan(&decls, &BTreeMap::new(), &certs, &pols(), t0());
        assert_eq!(p[0].action, Action::Ok, "{}", p[0].detail);
        let decls = by_name(&[("x", decl("x", &["y.example.com", "x.example.com"]))]);
        let p = plan(&decls, &BTreeMap::new(), &certs, &pols(), t0());
        assert_eq!(p[0].action, Action::Replace, "a new CN");
    }

    #[test]
    fn revoked_and_refused() {
        let decls = by_name(&[("x", decl("x", &["x.example.com"]))]);
        let certs = by_name(&[(
            "x",
            cert(
                "9",
                "x",
                &["x.example.com"],
                80,
                CertState::Revoked { at: t0() },
            ),
        )]);
        let p = plan(&decls, &BTreeMap::new(), &certs, &pols(), t0());
        assert_eq!(p[0].action, Action::Revoked);
        let mut r = record("x", &["x.example.com"], "ec-p256", None);
        r.enroll = Some(EnrollState::Rejected {
            reason: "SCM refused".into(),
            at: t0(),
        });
        let p = plan(
            &decls,
            &by_name(&[("x", r)]),
            &BTreeMap::new(),
            &pols(),
            t0(),
        );
        assert_eq!(p[0].action, Action::Enroll);
        assert!(p[0].detail.contains("refused"), "{}", p[0].detail);
    }
}
