//! Pure decisions: what to do with a certificate, when to retry, how profiles changed. Every
//! function takes `now` as an argument and touches nothing else.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use sectigo_core::names::ProfileName;
use sectigo_model::{CertRecord, CertState, ForceRun, ProfileState};

/// A profile's renewal settings, as the policy sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewPolicy {
    pub expiry_window_days: i64,
    pub auto_renew: bool,
    /// The profile's force renewal, when one is under way (started, not completed).
    pub force: Option<ForceRun>,
}

/// Why a certificate is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Inside the profile's expiry window.
    Window,
    /// The profile's force renewal covers it.
    Forced,
    /// Asked for from its Jira issue (only when active and not renewed recently).
    Requested,
    /// Asked for by the operator (`renew ID`): past the backoff, the window, and a failed or
    /// unknown outcome. [`decide`] never gives it.
    Operator,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Renew now. `due` identifies the due date (the certificate's notAfter): one renewal each.
    Renew { reason: Reason, due: DateTime<Utc> },
    /// Due, but a failed attempt set the next one for `until`.
    Backoff { until: DateTime<Utc> },
    /// Not due before `at`.
    NotDue { at: DateTime<Utc> },
    /// Due, but the profile does not renew automatically: report it once per due date.
    ReportNoAutoRenew { due: DateTime<Utc> },
    /// Due, auto renew off, already reported.
    Reported,
    /// Nothing to do in this state (in flight, replaced, revoked, failed, unknown outcome).
    Idle { why: &'static str },
}

/// SCM statuses (the Admin API's vocabulary, which the REST status call is taken to share)
/// that mean a request will never be issued.
pub fn is_refusal_status(status: &str) -> bool {
    matches!(
        status.to_ascii_lowercase().as_str(),
        "declined" | "rejected" | "invalid"
    )
}

/// The window actually used: the configured one, but never more than two thirds of the
/// certificate's own lifetime, so that a fresh certificate is never due at once (which would
/// renew, and bill, on every cycle).
pub fn effective_window(cert: &CertRecord, window_days: i64) -> Duration {
    let lifetime = cert.not_after - cert.not_before;
    let cap = lifetime * 2 / 3;
    Duration::days(window_days).min(cap.max(Duration::zero()))
}

/// When the certificate enters its window.
pub fn due_at(cert: &CertRecord, window_days: i64) -> DateTime<Utc> {
    cert.not_after - effective_window(cert, window_days)
}

/// Whether the force run covers this certificate: it was not itself produced by a renewal
/// since the run started.
pub fn force_covers(cert: &CertRecord, run: &ForceRun) -> bool {
    run.completed.is_none() && cert.renewed_at().is_none_or(|at| at < run.started)
}

/// Whether a certificate is due for renewal by its dates alone (whatever its state, backoff or
/// auto-renew): the one rule the cycle, `certs list --due` and `renew`'s confirmation share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The profile's force renewal covers it.
    Forced,
    /// Inside its expiry window (capped at two thirds of its lifetime).
    Window,
    /// Not before this time.
    NotBefore(DateTime<Utc>),
}

pub fn due(cert: &CertRecord, p: &RenewPolicy, now: DateTime<Utc>) -> Due {
    if p.force.as_ref().is_some_and(|r| force_covers(cert, r)) {
        return Due::Forced;
    }
    match due_at(cert, p.expiry_window_days) {
        at if now < at => Due::NotBefore(at),
        _ => Due::Window,
    }
}

pub fn decide(cert: &CertRecord, p: &RenewPolicy, now: DateTime<Utc>) -> Decision {
    match &cert.state {
        CertState::Active => {}
        CertState::RenewRequested { .. } | CertState::Collecting { .. } => {
            return Decision::Idle { why: "a renewal is in flight" }
        }
        CertState::Superseded { .. } => return Decision::Idle { why: "replaced by its renewal" },
        CertState::Revoked { .. } => return Decision::Idle { why: "revoked" },
        CertState::Failed { .. } => {
            return Decision::Idle { why: "SCM refused its renewal; `renew ID` retries" }
        }
        CertState::OutcomeUnknown { .. } => {
            return Decision::Idle {
                why: "a renewal's outcome is unknown; check SCM, then `certs resolve ID --renewed-as NEW_ID` or `certs resolve ID --not-renewed`",
            }
        }
    }
    let reason = match due(cert, p, now) {
        Due::NotBefore(at) => return Decision::NotDue { at },
        Due::Forced => Reason::Forced,
        Due::Window => Reason::Window,
    };
    if reason == Reason::Window && !p.auto_renew {
        return if cert.reported_no_auto_renew == Some(cert.not_after) {
            Decision::Reported
        } else {
            Decision::ReportNoAutoRenew {
                due: cert.not_after,
            }
        };
    }
    match cert.next_attempt {
        Some(until) if now < until => Decision::Backoff { until },
        _ => Decision::Renew {
            reason,
            due: cert.not_after,
        },
    }
}

/// The delay before attempt `failures + 1`: `initial` doubling per failure, at most `max`.
pub fn retry_delay(failures: u32, initial: Duration, max: Duration) -> Duration {
    let shift = failures.saturating_sub(1).min(30);
    (initial * (1i32 << shift)).min(max)
}

/// When to try again after the `failures`-th failure: never later than an hour before the
/// certificate expires while that is still ahead.
pub fn next_attempt(
    failures: u32,
    now: DateTime<Utc>,
    not_after: DateTime<Utc>,
    initial: Duration,
    max: Duration,
) -> DateTime<Utc> {
    let delay = retry_delay(failures, initial, max);
    let next = now + delay;
    let limit = not_after - Duration::hours(1);
    if next <= limit {
        next
    } else if limit > now {
        limit
    } else {
        now + delay.min(initial)
    }
}

/// A force run to start, if any: when the setting goes from off to on.
pub fn force_run_to_start(
    setting: bool,
    st: &ProfileState,
    now: DateTime<Utc>,
) -> Option<ForceRun> {
    (setting && !st.force_setting_seen).then(|| new_force_run(now, "setting"))
}

pub fn new_force_run(now: DateTime<Utc>, cause: &str) -> ForceRun {
    ForceRun {
        started: now,
        deadline: now + Duration::hours(24),
        completed: None,
        cause: cause.into(),
    }
}

/// A force run is complete when no certificate of the profile still needs it.
pub fn force_complete(certs: &[CertRecord], run: &ForceRun) -> bool {
    certs.iter().all(|c| match c.state {
        CertState::Active => !force_covers(c, run),
        ref s => !s.is_in_flight(),
    })
}

/// How the configured profiles relate to the ones the state remembers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProfileChanges {
    /// (old, new): a file renamed by hand. `old` was in the last configuration applied and is
    /// gone from this one; `new` is new to the state; they share client_id and scm_url, and
    /// neither shares it with another profile that went or came.
    pub renamed: Vec<(ProfileName, ProfileName)>,
    /// Gone from the last configuration while profiles with its client_id and scm_url
    /// appeared, but which one is its new name cannot be told: nothing moves, and the
    /// operator is asked to run `profiles rename OLD NEW`. (old, the candidates.)
    pub ambiguous: Vec<(ProfileName, Vec<ProfileName>)>,
    /// Remembered, no longer configured, not renamed: its certificates are orphaned.
    pub vanished: Vec<ProfileName>,
    /// Configured, not yet remembered (and not a rename's new name).
    pub added: Vec<ProfileName>,
}

/// Compares the configured profiles (name → identity: client_id, scm_url) with the remembered
/// ones. A rename is a profile of the last applied configuration (`configured` in its state)
/// that is gone, while exactly one profile new to the state, with the same identity, appeared:
/// what `mv OLD.toml NEW.toml` between two reloads (or a stop and a start) looks like. A
/// profile removed earlier is never taken for one, nor is a name the state already knows.
pub fn profile_changes(
    configured: &BTreeMap<ProfileName, (String, String)>,
    remembered: &BTreeMap<ProfileName, ProfileState>,
) -> ProfileChanges {
    let identity = |st: &ProfileState| (st.client_id.clone(), st.scm_url.clone());
    let appeared: Vec<&ProfileName> = configured
        .keys()
        .filter(|n| !remembered.contains_key(*n))
        .collect();
    let gone: Vec<&ProfileName> = remembered
        .iter()
        .filter(|(n, st)| st.configured && !configured.contains_key(*n))
        .map(|(n, _)| n)
        .collect();
    let candidates = |old: &ProfileName| -> Vec<ProfileName> {
        let id = identity(&remembered[old]);
        appeared
            .iter()
            .filter(|n| configured[**n] == id)
            .map(|n| (*n).clone())
            .collect()
    };
    let claimants = |new: &ProfileName| -> usize {
        gone.iter()
            .filter(|o| identity(&remembered[**o]) == configured[new])
            .count()
    };
    let mut ch = ProfileChanges::default();
    for old in &gone {
        match &candidates(old)[..] {
            [] => {}
            [new] if claimants(new) == 1 => ch.renamed.push(((*old).clone(), new.clone())),
            many => ch.ambiguous.push(((*old).clone(), many.to_vec())),
        }
    }
    ch.vanished = remembered
        .keys()
        .filter(|n| !configured.contains_key(*n) && !ch.renamed.iter().any(|(o, _)| o == *n))
        .cloned()
        .collect();
    ch.added = appeared
        .into_iter()
        .filter(|n| !ch.renamed.iter().any(|(_, m)| m == *n))
        .cloned()
        .collect();
    ch
}

/// What a change of configuration does to one profile's renewals now (`reload`,
/// `check-config`): how many certificates it makes due that were not, and how many of those
/// go today within the profile's daily budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DueChange {
    /// Certificates the new configuration would renew now that the running one does not.
    pub newly_due: u64,
    /// Of those, how many the daily budget lets through today (the rest wait).
    pub through_today: u64,
    /// The new configuration's limit (`None`: no limit) and what was billed in 24 h.
    pub limit: Option<u32>,
    pub used: u32,
}

/// Per profile, what going from `before` to `after` makes due among `certs` (the candidates,
/// earliest expiry first) at `now`, with the budget applied as the cycle applies it: forced
/// renewals go whatever the budget (they are consented), scheduled ones take its room in expiry
/// order. `budget` holds each profile's (used, limit) under `after`. Only profiles with newly
/// due certificates are listed.
pub fn due_change(
    certs: &[CertRecord],
    before: &BTreeMap<ProfileName, RenewPolicy>,
    after: &BTreeMap<ProfileName, RenewPolicy>,
    budget: &BTreeMap<ProfileName, (u32, Option<u32>)>,
    now: DateTime<Utc>,
) -> BTreeMap<ProfileName, DueChange> {
    let mut out: BTreeMap<ProfileName, DueChange> = BTreeMap::new();
    let mut room: BTreeMap<&ProfileName, Option<u32>> = budget
        .iter()
        .map(|(p, (used, limit))| (p, limit.map(|l| l.saturating_sub(*used))))
        .collect();
    for c in certs {
        let Some(p) = after.get(&c.profile) else {
            continue;
        };
        let Decision::Renew { reason, .. } = decide(c, p, now) else {
            continue;
        };
        let was_due = before.get(&c.profile).is_some_and(|b| {
            matches!(
                decide(c, b, now),
                Decision::Renew { .. } | Decision::Backoff { .. }
            )
        });
        let goes = match (reason, room.get_mut(&c.profile)) {
            (Reason::Window, Some(Some(left))) => {
                let goes = *left > 0;
                *left = left.saturating_sub(1);
                goes
            }
            _ => true,
        };
        if !was_due {
            let (used, limit) = budget.get(&c.profile).copied().unwrap_or_default();
            let d = out.entry(c.profile.clone()).or_insert(DueChange {
                limit,
                used,
                ..Default::default()
            });
            d.newly_due += 1;
            d.through_today += u64::from(goes);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use sectigo_model::CertOrigin;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::days(day as i64 - 1)
    }

    fn cert(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> CertRecord {
        CertRecord {
            id: "1".parse().unwrap(),
            profile: "p".parse().unwrap(),
            subject_cn: "a.example".into(),
            sans: vec![],
            serial: "01".into(),
            not_before,
            not_after,
            state: CertState::Active,
            jira_issue: None,
            origin: CertOrigin::Imported { at: not_before },
            failures: 0,
            next_attempt: None,
            last_error: None,
            reported_no_auto_renew: None,
            stall_reported: None,
            history: vec![],
            name: None,
            deploy: None,
            scm_auto_renew: false,
        }
    }

    fn pol(window: i64, auto: bool) -> RenewPolicy {
        RenewPolicy {
            expiry_window_days: window,
            auto_renew: auto,
            force: None,
        }
    }

    #[test]
    fn decide_table() {
        let c = cert(t(1), t(366)); // a one-year certificate, expires on day 366
        let due = t(336);
        let mut backoff = c.clone();
        backoff.next_attempt = Some(t(340));
        let mut reported = c.clone();
        reported.reported_no_auto_renew = Some(c.not_after);
        let mut reported_old = c.clone();
        reported_old.reported_no_auto_renew = Some(t(100));
        let forced = RenewPolicy {
            force: Some(new_force_run(t(10), "setting")),
            ..pol(30, false)
        };
        let mut renewed_since = c.clone();
        renewed_since.origin = CertOrigin::Renewed {
            from: "0".parse().unwrap(),
            at: t(11),
        };
        let mut renewed_before = c.clone();
        renewed_before.origin = CertOrigin::Renewed {
            from: "0".parse().unwrap(),
            at: t(9),
        };
        let with_state = |s: CertState| {
            let mut x = c.clone();
            x.state = s;
            x
        };
        let renew = |reason| Decision::Renew {
            reason,
            due: c.not_after,
        };

        let cases: Vec<(&str, CertRecord, RenewPolicy, DateTime<Utc>, Decision)> = vec![
            (
                "before window",
                c.clone(),
                pol(30, true),
                t(300),
                Decision::NotDue { at: due },
            ),
            (
                "window opens",
                c.clone(),
                pol(30, true),
                due,
                renew(Reason::Window),
            ),
            (
                "inside window",
                c.clone(),
                pol(30, true),
                t(350),
                renew(Reason::Window),
            ),
            (
                "already expired",
                c.clone(),
                pol(30, true),
                t(400),
                renew(Reason::Window),
            ),
            (
                "backoff holds",
                backoff.clone(),
                pol(30, true),
                t(338),
                Decision::Backoff { until: t(340) },
            ),
            (
                "backoff over",
                backoff,
                pol(30, true),
                t(341),
                renew(Reason::Window),
            ),
            (
                "no auto renew",
                c.clone(),
                pol(30, false),
                t(350),
                Decision::ReportNoAutoRenew { due: c.not_after },
            ),
            (
                "reported once",
                reported,
                pol(30, false),
                t(350),
                Decision::Reported,
            ),
            (
                "reported for an older due date",
                reported_old,
                pol(30, false),
                t(350),
                Decision::ReportNoAutoRenew { due: c.not_after },
            ),
            (
                "force ignores window and auto renew",
                c.clone(),
                forced.clone(),
                t(12),
                renew(Reason::Forced),
            ),
            (
                "force skips what it renewed",
                renewed_since,
                forced.clone(),
                t(12),
                Decision::NotDue { at: due },
            ),
            (
                "force covers older renewals",
                renewed_before,
                forced,
                t(12),
                renew(Reason::Forced),
            ),
            (
                "in flight",
                with_state(CertState::Collecting {
                    new_id: "2".parse().unwrap(),
                    at: t(1),
                }),
                pol(30, true),
                t(350),
                Decision::Idle {
                    why: "a renewal is in flight",
                },
            ),
            (
                "superseded",
                with_state(CertState::Superseded {
                    by: "2".parse().unwrap(),
                    at: t(1),
                }),
                pol(30, true),
                t(350),
                Decision::Idle {
                    why: "replaced by its renewal",
                },
            ),
            (
                "revoked",
                with_state(CertState::Revoked { at: t(1) }),
                pol(30, true),
                t(350),
                Decision::Idle { why: "revoked" },
            ),
        ];
        for (name, cert, p, now, want) in cases {
            assert_eq!(decide(&cert, &p, now), want, "{name}");
        }
        assert!(matches!(
            decide(
                &with_state(CertState::OutcomeUnknown {
                    due: t(366),
                    at: t(340),
                    request: None,
                }),
                &pol(30, true),
                t(350)
            ),
            Decision::Idle { .. }
        ));
    }

    #[test]
    fn window_never_exceeds_two_thirds_of_lifetime() {
        // A 30-day certificate with a 30-day window is due after 10 days, not at once.
        let c = cert(t(1), t(31));
        assert_eq!(due_at(&c, 30), t(11));
        assert!(matches!(
            decide(&c, &pol(30, true), t(2)),
            Decision::NotDue { .. }
        ));
    }

    #[test]
    fn retry_delays_double_and_cap() {
        let h = Duration::hours;
        let d: Vec<i64> = (1..=8)
            .map(|f| retry_delay(f, h(1), h(32)).num_hours())
            .collect();
        assert_eq!(d, vec![1, 2, 4, 8, 16, 32, 32, 32]);
        assert_eq!(retry_delay(1000, h(1), h(32)), h(32));
    }

    #[test]
    fn next_attempt_never_past_expiry() {
        let h = Duration::hours;
        let now = t(100);
        assert_eq!(next_attempt(1, now, t(200), h(1), h(32)), now + h(1));
        // 32h would pass the point one hour before expiry: retry then instead.
        let na = now + h(10);
        assert_eq!(next_attempt(6, now, na, h(1), h(32)), na - h(1));
        // Already within the last hour (or expired): keep trying at the initial pace.
        assert_eq!(
            next_attempt(6, now, now + Duration::minutes(30), h(1), h(32)),
            now + h(1)
        );
    }

    #[test]
    fn force_runs_start_on_off_to_on_only() {
        let now = t(5);
        let off = ProfileState::default();
        let on = ProfileState {
            force_setting_seen: true,
            ..Default::default()
        };
        assert!(force_run_to_start(true, &off, now).is_some());
        assert!(force_run_to_start(true, &on, now).is_none());
        assert!(force_run_to_start(false, &off, now).is_none());
        let r = force_run_to_start(true, &off, now).unwrap();
        assert_eq!(r.deadline, now + Duration::hours(24));
    }

    #[test]
    fn force_completion() {
        let run = new_force_run(t(10), "command");
        let mut a = cert(t(1), t(366));
        let mut b = a.clone();
        b.id = "2".parse().unwrap();
        assert!(!force_complete(&[a.clone(), b.clone()], &run));
        a.state = CertState::Superseded {
            by: "3".parse().unwrap(),
            at: t(11),
        };
        b.state = CertState::Collecting {
            new_id: "4".parse().unwrap(),
            at: t(11),
        };
        assert!(!force_complete(&[a.clone(), b.clone()], &run));
        b.state = CertState::Superseded {
            by: "4".parse().unwrap(),
            at: t(11),
        };
        let mut n = cert(t(11), t(376));
        n.origin = CertOrigin::Renewed {
            from: "1".parse().unwrap(),
            at: t(11),
        };
        assert!(force_complete(&[a, b, n], &run));
    }

    #[test]
    fn profile_changes_table() {
        let n = |s: &str| ProfileName::parse(s).unwrap();
        let id = |c: &str| (c.to_string(), "https://scm".to_string());
        // Remembered: `configured` says whether the last applied configuration had it.
        let st = |c: &str, configured: bool| ProfileState {
            client_id: c.into(),
            scm_url: "https://scm".into(),
            configured,
            ..Default::default()
        };
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, &'a str)>,       // configured now: name, client_id
            Vec<(&'a str, &'a str, bool)>, // remembered: name, client_id, configured
            ProfileChanges,
        );
        let names = |v: &[&str]| v.iter().map(|s| n(s)).collect::<Vec<_>>();
        let cases: Vec<Case> = vec![
            (
                "a rename, an orphan, a new profile",
                vec![("web2", "a"), ("db", "b"), ("new", "n")],
                vec![("web", "a", true), ("db", "b", true), ("gone", "z", true)],
                ProfileChanges {
                    renamed: vec![(n("web"), n("web2"))],
                    vanished: names(&["gone"]),
                    added: names(&["new"]),
                    ..Default::default()
                },
            ),
            (
                // The issue's case: `db` (same client_id and scm_url) was removed by an
                // earlier reload; `mv web.toml frontend.toml` is web's rename, not db's.
                "a profile removed earlier is never taken for a rename",
                vec![("frontend", "a")],
                vec![("db", "a", false), ("web", "a", true)],
                ProfileChanges {
                    renamed: vec![(n("web"), n("frontend"))],
                    vanished: names(&["db"]),
                    ..Default::default()
                },
            ),
            (
                "only a profile removed earlier: not a rename",
                vec![("frontend", "a"), ("web", "a")],
                vec![("db", "a", false), ("web", "a", true)],
                ProfileChanges {
                    vanished: names(&["db"]),
                    added: names(&["frontend"]),
                    ..Default::default()
                },
            ),
            (
                "two candidates: nothing moves",
                vec![("x", "a"), ("y", "a")],
                vec![("web", "a", true)],
                ProfileChanges {
                    ambiguous: vec![(n("web"), names(&["x", "y"]))],
                    vanished: names(&["web"]),
                    added: names(&["x", "y"]),
                    ..Default::default()
                },
            ),
            (
                "two vanished for one candidate: nothing moves",
                vec![("frontend", "a")],
                vec![("db", "a", true), ("web", "a", true)],
                ProfileChanges {
                    ambiguous: vec![
                        (n("db"), names(&["frontend"])),
                        (n("web"), names(&["frontend"])),
                    ],
                    vanished: names(&["db", "web"]),
                    added: names(&["frontend"]),
                    ..Default::default()
                },
            ),
            (
                "another identity is not a rename",
                vec![("frontend", "b")],
                vec![("web", "a", true)],
                ProfileChanges {
                    vanished: names(&["web"]),
                    added: names(&["frontend"]),
                    ..Default::default()
                },
            ),
            (
                // A name the state knows (a profile that returns) is its own profile.
                "a returning profile is not a rename's new name",
                vec![("db", "a")],
                vec![("db", "a", false), ("web", "a", true)],
                ProfileChanges {
                    vanished: names(&["web"]),
                    ..Default::default()
                },
            ),
            (
                "nothing changed",
                vec![("web", "a")],
                vec![("web", "a", true)],
                ProfileChanges::default(),
            ),
        ];
        for (what, configured, remembered, want) in cases {
            let configured: BTreeMap<ProfileName, (String, String)> =
                configured.iter().map(|(p, c)| (n(p), id(c))).collect();
            let remembered: BTreeMap<ProfileName, ProfileState> = remembered
                .iter()
                .map(|(p, c, on)| (n(p), st(c, *on)))
                .collect();
            assert_eq!(profile_changes(&configured, &remembered), want, "{what}");
        }
    }

    #[test]
    fn a_wider_window_tells_what_it_makes_due_and_what_the_budget_lets_through() {
        let now = t(100);
        // Ten one-year certificates expiring on days 110, 120, ... 200.
        let certs: Vec<CertRecord> = (1..=10)
            .map(|i| {
                let mut c = cert(t(100 + 10 * i) - Duration::days(365), t(100 + 10 * i));
                c.id = i.to_string().parse().unwrap();
                c
            })
            .collect();
        let p: ProfileName = "p".parse().unwrap();
        let before = BTreeMap::from([(p.clone(), pol(30, true))]);
        let after = BTreeMap::from([(p.clone(), pol(300, true))]);
        // 30 days: 3 due (days 110-130). 300: all 10. Budget 5 with 1 used: 4 go, the three
        // already due first (earliest expiry), so 1 of the 7 newly due.
        let budget = BTreeMap::from([(p.clone(), (1, Some(5)))]);
        let ch = due_change(&certs, &before, &after, &budget, now);
        assert_eq!(
            ch[&p],
            DueChange {
                newly_due: 7,
                through_today: 1,
                limit: Some(5),
                used: 1
            }
        );
        // No limit: all go.
        let budget = BTreeMap::from([(p.clone(), (1, None))]);
        assert_eq!(
            due_change(&certs, &before, &after, &budget, now)[&p].through_today,
            7
        );
        // The same configuration: nothing newly due, nothing listed.
        assert!(due_change(&certs, &before, &before, &budget, now).is_empty());
        // A profile unknown before (a first start): everything due is new.
        assert_eq!(
            due_change(&certs, &BTreeMap::new(), &before, &budget, now)[&p].newly_due,
            3
        );
        // Force renewal: consented, never held by the budget.
        let forced = BTreeMap::from([(
            p.clone(),
            RenewPolicy {
                force: Some(new_force_run(now, "setting")),
                ..pol(30, true)
            },
        )]);
        let budget = BTreeMap::from([(p.clone(), (5, Some(5)))]);
        let ch = due_change(&certs, &before, &forced, &budget, now);
        assert_eq!((ch[&p].newly_due, ch[&p].through_today), (7, 7));
        // Auto renew off: reported, not renewed, so never "due" here.
        let off = BTreeMap::from([(p.clone(), pol(300, false))]);
        assert!(due_change(&certs, &before, &off, &budget, now).is_empty());
    }
}
