//! `connector.toml`: the global settings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::reader::KeyReader;
use super::secret_source::{read_secret, SecretFrom, SecretSpec};
use super::url_check::check_url;
use crate::secret::Secret;

pub const DEFAULT_CRON: &str = "0 0 * * * *";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sectigo-connector";

#[derive(Debug, Clone, Serialize)]
pub struct ConnectorConfig {
    pub state: StateConfig,
    pub schedule: ScheduleConfig,
    pub log: LogConfig,
    pub scm: ScmConfig,
    pub renewal: RenewalConfig,
    pub control: ControlConfig,
    pub metrics: MetricsConfig,
    pub jira: Option<JiraConfig>,
    /// `[notify] command`: argv run for each event that needs a person.
    pub notify: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricsConfig {
    /// Loopback address of the Prometheus endpoint (`/metrics`); unset: off.
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ControlConfig {
    /// The control socket: commands given while the daemon runs go through it.
    pub socket: PathBuf,
}

pub const DEFAULT_CONTROL_SOCKET: &str = "/run/sectigo-connector/control.sock";

#[derive(Debug, Clone, Serialize)]
pub struct StateConfig {
    pub dir: PathBuf,
    /// sled's page cache, in MiB: bounds the daemon's memory whatever the inventory's size.
    pub cache_mb: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScheduleConfig {
    pub cron: String,
    pub run_at_start: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Journald,
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScmConfig {
    pub timeout_secs: u64,
    pub max_concurrent: usize,
    pub max_requests_per_second: f64,
    /// How long one call may keep retrying transient errors before the attempt counts as failed.
    pub retry_max_secs: u64,
    /// Extra PEM CA certificates to trust (private deployments); public roots are always trusted.
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RenewalConfig {
    /// First delay after a failed renewal attempt; doubles per failure.
    pub retry_initial_mins: u64,
    /// Longest delay between attempts.
    pub retry_max_hours: u64,
    /// How often a renewed certificate that the CA has not issued yet is polled.
    pub collect_poll_secs: u64,
    /// A renewal or enrollment accepted but not issued after this long is reported as stalled.
    pub collect_timeout_hours: u64,
    /// Per profile, in a rolling 24 h: scheduled renewals beyond this many wait (0: no
    /// limit). A profile's `max_renewals_per_day` overrides it.
    pub max_per_day: u32,
    /// With a profile's `[admin]`: an outcome-unknown renewal or enrollment that SCM shows no
    /// certificate for this many minutes after the call is declared not renewed by the daemon.
    pub settle_after_minutes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JiraFlavor {
    Cloud,
    Datacenter,
}

#[derive(Debug, Clone, Serialize)]
pub struct JiraConfig {
    pub url: String,
    pub flavor: JiraFlavor,
    pub email: Option<String>,
    pub token: Secret,
    /// Where the token was read from (what to name when Jira refuses it).
    #[serde(skip)]
    pub token_from: SecretFrom,
    /// Transition names per event (`renewal_started`, `renewed`, `renewal_failed`,
    /// `expiring_no_auto_renew`, `outcome_unknown`); absent = comment only.
    pub transitions: BTreeMap<String, String>,
    pub timeout_secs: u64,
    /// Certificates requested, renewed and revoked from Jira issues; `None`: off.
    pub workflow: Option<WorkflowConfig>,
    /// The file holding the token, when other users can read it (a warning).
    #[serde(skip)]
    pub token_readable_by_others: Option<PathBuf>,
}

pub const DEFAULT_POLL_CRON: &str = "0 * * * * *";

/// `[jira.workflow]`: the daemon polls Jira for Certificate issues that a person moved into a
/// "requested" status, and enrolls, renews or revokes as asked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowConfig {
    /// When Jira is polled (cron with seconds; default every minute).
    pub poll_cron: String,
    pub enroll_jql: String,
    pub renew_jql: String,
    pub revoke_jql: String,
    /// Jira field names (custom fields are looked up by name and cached).
    pub csr_field: String,
    pub profile_field: String,
    pub cert_id_field: String,
    /// A field holding the revocation reason; unset: `revoke_reason_code` and a stock message.
    pub revoke_reason_field: Option<String>,
    /// RFC 5280 reason code sent when the reason field is empty or not a known reason.
    pub revoke_reason_code: i32,
    /// Transitions performed afterwards, by name or target status.
    pub enrolled_transition: String,
    pub revoked_transition: String,
    pub failed_transition: String,
    /// At most this many issues per search (per action and poll).
    pub max_issues: usize,
    /// The profiles issues may use; `None`: all.
    pub profiles: Option<Vec<String>>,
    /// Enrollments started from Jira in a rolling 24 hours; past it, requests wait.
    pub max_enrollments_per_day: u32,
    /// A renewal asked for from Jira within this time of the certificate's last renewal is
    /// refused.
    pub min_renewal_interval_hours: u64,
}

impl WorkflowConfig {
    /// The transition to perform after each workflow event.
    pub fn transitions(&self) -> [(&'static str, &str); 4] {
        [
            ("enrolled", &self.enrolled_transition),
            ("revoked", &self.revoked_transition),
            ("request_failed", &self.failed_transition),
            ("enroll_outcome_unknown", &self.failed_transition),
        ]
    }
}

pub const JIRA_EVENTS: &[&str] = &[
    "renewal_started",
    "renewed",
    "renewal_failed",
    "expiring_no_auto_renew",
    "outcome_unknown",
    "renewal_stalled",
    "revoked_in_scm",
];

impl ConnectorConfig {
    pub fn read(r: &mut KeyReader<'_>, credentials_dir: Option<&std::path::Path>) -> Self {
        let state = StateConfig {
            dir: r.or("state.dir", PathBuf::from(DEFAULT_STATE_DIR)),
            cache_mb: r.or("state.cache_mb", 64u64),
        };
        if state.dir.as_os_str().is_empty() {
            r.error("state.dir", "must not be empty");
        }
        if !(4..=65536).contains(&state.cache_mb) {
            r.error("state.cache_mb", "must be between 4 and 65536 (MiB)");
        }

        let schedule = ScheduleConfig {
            cron: r.or("schedule.cron", DEFAULT_CRON.to_string()),
            run_at_start: r.or("schedule.run_at_start", true),
        };
        if let Err(e) = crate::schedule::validate_cron(&schedule.cron) {
            r.error(
                "schedule.cron",
                format!(
                    "invalid cron expression {:?}: {e}; six fields with seconds, e.g. \"0 0 * * * *\" (hourly)",
                    schedule.cron
                ),
            );
        }

        let log = LogConfig {
            level: r.or("log.level", "info".to_string()),
            format: r.or("log.format", LogFormat::Auto),
            file: r.opt("log.file"),
        };
        if let Err(e) = crate::config::log_directive(&log.level) {
            r.error("log.level", e.to_string());
        }

        let scm = ScmConfig {
            timeout_secs: r.or("scm.timeout_secs", 30u64),
            max_concurrent: r.or("scm.max_concurrent", 4usize),
            max_requests_per_second: r.or("scm.max_requests_per_second", 5.0f64),
            retry_max_secs: r.or("scm.retry_max_secs", 300u64),
            ca_bundle: r.opt("scm.ca_bundle"),
        };
        if !(1..=600).contains(&scm.timeout_secs) {
            r.error("scm.timeout_secs", "must be between 1 and 600 seconds");
        }
        if !(1..=256).contains(&scm.max_concurrent) {
            r.error("scm.max_concurrent", "must be between 1 and 256");
        }
        if !(scm.max_requests_per_second > 0.0 && scm.max_requests_per_second <= 10_000.0) {
            r.error(
                "scm.max_requests_per_second",
                "must be greater than 0 and at most 10000",
            );
        }
        if scm.retry_max_secs > 86_400 {
            r.error("scm.retry_max_secs", "must be at most 86400 seconds");
        }
        if let Some(ca) = &scm.ca_bundle {
            // The same file the SCM client loads: it must hold at least one CA certificate.
            let verdict = match crate::config::reader::read_config_file(ca) {
                Err(e) => Some(e.explained(ca)),
                Ok(text) => match crate::x509::pem::count_certificates(text.as_bytes()) {
                    Ok(0) => Some("holds no PEM certificate".to_string()),
                    Ok(_) => None,
                    Err(e) => Some(e.to_string()),
                },
            };
            if let Some(v) = verdict {
                r.error("scm.ca_bundle", format!("{}: {v}", ca.display()));
            }
        }

        let renewal = RenewalConfig {
            retry_initial_mins: r.or("renewal.retry_initial_mins", 60u64),
            retry_max_hours: r.or("renewal.retry_max_hours", 32u64),
            collect_poll_secs: r.or("renewal.collect_poll_secs", 60u64),
            collect_timeout_hours: r.or("renewal.collect_timeout_hours", 24u64),
            max_per_day: r.or("renewal.max_per_day", 100u32),
            settle_after_minutes: r.or("renewal.settle_after_minutes", 30u64),
        };
        if !(1..=7 * 24 * 60).contains(&renewal.settle_after_minutes) {
            r.error(
                "renewal.settle_after_minutes",
                "must be between 1 and 10080 minutes (7 days)",
            );
        }
        if !(1..=1440).contains(&renewal.retry_initial_mins) {
            r.error(
                "renewal.retry_initial_mins",
                "must be between 1 and 1440 minutes",
            );
        }
        if !(1..=168).contains(&renewal.retry_max_hours) {
            r.error("renewal.retry_max_hours", "must be between 1 and 168 hours");
        }
        if !(1..=24 * 90).contains(&renewal.collect_timeout_hours) {
            r.error(
                "renewal.collect_timeout_hours",
                "must be between 1 and 2160 hours (90 days)",
            );
        }
        if !(1..=3600).contains(&renewal.collect_poll_secs) {
            r.error(
                "renewal.collect_poll_secs",
                "must be between 1 and 3600 seconds",
            );
        }

        let control = ControlConfig {
            socket: r.or("control.socket", PathBuf::from(DEFAULT_CONTROL_SOCKET)),
        };
        if !control.socket.is_absolute() {
            r.error("control.socket", "must be an absolute path");
        }

        let metrics = MetricsConfig {
            listen: r.opt("metrics.listen"),
        };
        if let Some(a) = metrics.listen {
            if !a.ip().is_loopback() {
                r.error("metrics.listen", format!("{a} is not a loopback address; the endpoint has no authentication: use 127.0.0.1:PORT or [::1]:PORT (and a reverse proxy to expose it)"));
            }
        }

        let notify: Option<Vec<String>> = r.opt("notify.command");
        if let Some(n) = &notify {
            if n.first().is_none_or(|p| p.trim().is_empty()) {
                r.error(
                    "notify.command",
                    "is an argv such as [\"/usr/local/bin/page-oncall\"]: its first element names the program",
                );
            }
        }
        let jira = Self::read_jira(r, credentials_dir);
        ConnectorConfig {
            notify,
            state,
            schedule,
            log,
            scm,
            renewal,
            control,
            metrics,
            jira,
        }
    }

    fn read_jira(
        r: &mut KeyReader<'_>,
        credentials_dir: Option<&std::path::Path>,
    ) -> Option<JiraConfig> {
        let url: Option<String> = r.opt("jira.url");
        let flavor: Option<JiraFlavor> = r.opt("jira.flavor");
        let email: Option<String> = r.opt("jira.email");
        let token_inline: Option<Secret> = r.opt_secret("jira.token");
        let token_file: Option<PathBuf> = r.opt("jira.token_file");
        let timeout_secs = r.or("jira.timeout_secs", 30u64);
        let mut transitions = BTreeMap::new();
        for ev in JIRA_EVENTS {
            if let Some(name) = r.opt::<String>(&format!("jira.transitions.{ev}")) {
                transitions.insert(ev.to_string(), name);
            }
        }
        let any = url.is_some()
            || flavor.is_some()
            || email.is_some()
            || token_inline.is_some()
            || token_file.is_some();
        if !any {
            return None;
        }
        let Some(url) = url else {
            r.error("jira.url", "missing; required when a [jira] section is present (remove the section to turn Jira off)");
            return None;
        };
        if let Err(e) = check_url(&url) {
            r.error("jira.url", e);
        }
        let flavor = flavor.unwrap_or(JiraFlavor::Cloud);
        if flavor == JiraFlavor::Cloud && email.is_none() {
            r.error(
                "jira.email",
                "missing; Jira Cloud authenticates with the account's email and an API token",
            );
        }
        let spec = SecretSpec {
            inline: token_inline,
            file: token_file,
            credential: "jira.token",
        };
        let exposed = super::secret_source::exposed_file(&spec, r.file());
        let (token, token_from) = match read_secret(&spec, r.file(), credentials_dir) {
            Ok(t) => t,
            Err(e) => {
                let key = if e.is_about_the_file() {
                    "jira.token_file"
                } else {
                    "jira.token"
                };
                r.error(key, e);
                (Secret::new(""), SecretFrom::Inline)
            }
        };
        if token
            .expose()
            .chars()
            .any(|c| c.is_control() || !c.is_ascii())
        {
            r.error(
                "jira.token",
                "holds control or non-ASCII characters; it cannot be sent in an HTTP header",
            );
        }
        if !(1..=600).contains(&timeout_secs) {
            r.error("jira.timeout_secs", "must be between 1 and 600 seconds");
        }
        let workflow = Self::read_workflow(r);
        if let Some(w) = &workflow {
            for (ev, name) in w.transitions() {
                transitions.insert(ev.to_string(), name.to_string());
            }
        }
        Some(JiraConfig {
            url,
            flavor,
            email,
            token,
            token_from,
            transitions,
            timeout_secs,
            workflow,
            token_readable_by_others: exposed,
        })
    }

    fn read_workflow(r: &mut KeyReader<'_>) -> Option<WorkflowConfig> {
        const JQL: &str = "project = CERT AND issuetype = Certificate AND status = ";
        let enabled: bool = r.or("jira.workflow.enabled", false);
        let text = |r: &mut KeyReader<'_>, key: &str, default: String| -> String {
            let full = format!("jira.workflow.{key}");
            let v: String = r.or(&full, default);
            if v.trim().is_empty() {
                r.error(&full, "must not be empty");
            }
            v
        };
        let w = WorkflowConfig {
            poll_cron: text(r, "poll_cron", DEFAULT_POLL_CRON.into()),
            enroll_jql: text(r, "enroll_jql", format!("{JQL}\"Enrollment Requested\"")),
            renew_jql: text(r, "renew_jql", format!("{JQL}\"Renewal Requested\"")),
            revoke_jql: text(r, "revoke_jql", format!("{JQL}\"Revocation Requested\"")),
            csr_field: text(r, "csr_field", "Certificate CSR text".into()),
            profile_field: text(r, "profile_field", "Certificate profile".into()),
            cert_id_field: text(r, "cert_id_field", "Certificate ID".into()),
            revoke_reason_field: r
                .opt::<String>("jira.workflow.revoke_reason_field")
                .filter(|s| !s.trim().is_empty()),
            revoke_reason_code: r.or("jira.workflow.revoke_reason_code", 0i32),
            enrolled_transition: text(r, "enrolled_transition", "Certificate Enrolled".into()),
            revoked_transition: text(r, "revoked_transition", "Certificate Revoked".into()),
            failed_transition: text(r, "failed_transition", "Request Failed".into()),
            max_issues: r.or("jira.workflow.max_issues", 100usize),
            profiles: r.opt::<Vec<String>>("jira.workflow.profiles"),
            max_enrollments_per_day: r.or("jira.workflow.max_enrollments_per_day", 20u32),
            min_renewal_interval_hours: r.or("jira.workflow.min_renewal_interval_hours", 24u64),
        };
        if let Err(e) = crate::schedule::validate_cron(&w.poll_cron) {
            r.error(
                "jira.workflow.poll_cron",
                format!("invalid cron expression {:?}: {e}; six fields with seconds, e.g. \"0 * * * * *\" (every minute)", w.poll_cron),
            );
        }
        if !crate::x509::revocation::REASON_CODES.contains(&w.revoke_reason_code) {
            r.error(
                "jira.workflow.revoke_reason_code",
                "must be an RFC 5280 reason code SCM accepts: 0 (unspecified), 1 (keyCompromise), 3 (affiliationChanged), 4 (superseded) or 5 (cessationOfOperation)",
            );
        }
        if !(1..=1000).contains(&w.max_issues) {
            r.error("jira.workflow.max_issues", "must be between 1 and 1000");
        }
        if w.max_enrollments_per_day > 10_000 {
            r.error(
                "jira.workflow.max_enrollments_per_day",
                "must be between 0 (no enrollments from Jira) and 10000",
            );
        }
        if w.min_renewal_interval_hours > 24 * 366 {
            r.error(
                "jira.workflow.min_renewal_interval_hours",
                "must be between 0 and 8784 hours (a year)",
            );
        }
        enabled.then_some(w)
    }
}
