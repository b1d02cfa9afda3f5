//! SCM's Admin API, SSL records (`/api/ssl/v1`, spec `scm-admin-ssl-25.9.2.prism.json`), over
//! the simulator's certificates, on a host of its own ([`ScmSim::admin_url`]):
//!
//! - `GET /api/ssl/v1`: the list (`SSLIdentity`: `sslId`, `commonName`,
//!   `subjectAlternativeNames`, `serialNumber`), filtered by `commonName`, `status`,
//!   `sslTypeId`, `orgId`, `requestedVia`, paged by `position` (0 first) and `size` (0..=200,
//!   the spec's maximum: more is refused with 400, as are values outside the spec's enums),
//!   with `X-Total-Count`. In id order.
//! - `GET /api/ssl/v1/{sslId}`: the details (`CertDetailsResponse`); 404 for an unknown id.
//! - Its own accounts ([`ScmSimConfig::admin_clients`]) at the same token endpoint: their
//!   tokens work here only, and the REST accounts' tokens do not work here.
//! - What the REST API does shows here: a renew marks the old certificate `renewed` with
//!   `renewedDate`, the new one keeps the request's `comments` (the daemon's marker) and is
//!   `requestedVia` "REST API"; a replace marks the old one `Replaced`. Test controls do what a
//!   person or SCM itself does: [`ScmSim::renew_in_ui`], [`ScmSim::auto_renew`],
//!   [`ScmSim::set_auto_renew`], [`ScmSim::set_admin_fields`].
//! - Its requests are logged apart ([`ScmSim::admin_requests`]); reading bills nothing.

use super::*;

/// The simulator's two hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Host {
    /// The REST Enrollment API and the token endpoint.
    Enrollment,
    /// The Admin API.
    Admin,
}

/// How the Admin API writes dates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AdminDateFormat {
    /// `2026-05-21T14:15:22Z`: the spec's `format: date-time`.
    #[default]
    Iso,
    /// `2026-05-21`.
    IsoDay,
    /// `05/21/2026`: Sectigo's example traffic (25.5) and public clients' tests.
    MonthDayYear,
}

impl AdminDateFormat {
    fn write(self, t: DateTime<Utc>) -> String {
        match self {
            AdminDateFormat::Iso => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            AdminDateFormat::IsoDay => t.format("%Y-%m-%d").to_string(),
            AdminDateFormat::MonthDayYear => t.format("%m/%d/%Y").to_string(),
        }
    }
}

/// The spec's `status` filter values.
const STATUSES: [&str; 12] = [
    "Invalid",
    "Requested",
    "Approved",
    "Declined",
    "Applied",
    "Issued",
    "Revoked",
    "Expired",
    "Replaced",
    "Rejected",
    "SA Approved",
    "Init",
];

/// The spec's `requestedVia` filter values.
const REQUESTED_VIA: [&str; 13] = [
    "Enrollment Form",
    "Client Admin",
    "Web API",
    "Discovery",
    "Imported",
    "SCEP",
    "CD Agent",
    "MS Agent",
    "MS CA",
    "Bulk Request",
    "ACME",
    "EST",
    "REST API",
];

/// `size` when a list request gives none (SCM's own default is not documented).
const DEFAULT_PAGE_SIZE: usize = 10;
/// The spec's `size` maximum.
const MAX_PAGE_SIZE: i64 = 200;
/// `autoRenewDetails.daysBeforeExpiration` while SCM's auto-renewal is on.
const AUTO_RENEW_DAYS: i64 = 30;

/// What the Admin API shows of a certificate beyond what the REST API knows.
#[derive(Debug, Clone)]
pub(super) struct AdminRecord {
    serial: u64,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    requested_at: DateTime<Utc>,
    comments: String,
    org_id: i64,
    ssl_type_id: i64,
    requested_via: String,
    renewed_at: Option<DateTime<Utc>>,
    replaced_at: Option<DateTime<Utc>>,
    /// `autoRenewDetails.state`.
    auto_renew: &'static str,
}

impl AdminRecord {
    /// A certificate the REST account requested (or one added as if it had been).
    pub(super) fn new(
        cfg: &ScmSimConfig,
        serial: u64,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        AdminRecord {
            serial,
            not_before,
            not_after,
            requested_at: now,
            comments: String::new(),
            org_id: cfg.org_id,
            ssl_type_id: cfg.ssl_type_id,
            requested_via: "REST API".into(),
            renewed_at: None,
            replaced_at: None,
            auto_renew: "Not scheduled",
        }
    }
}

/// What a test sets on a certificate's record ([`ScmSim::set_admin_fields`]); `None`: as is.
#[derive(Debug, Clone, Default)]
pub struct AdminFields {
    pub org_id: Option<i64>,
    pub ssl_type_id: Option<i64>,
    /// One of the spec's values ("REST API", "Client Admin", "Enrollment Form", ...).
    pub requested_via: Option<String>,
    pub comments: Option<String>,
}

/// The REST API renewed `old` as `new` with these `comments` (and `profileId`).
pub(super) fn renewed_through_rest(
    inner: &mut Inner,
    old: &str,
    new: &str,
    now: DateTime<Utc>,
    comments: &str,
    profile_id: Option<i64>,
) {
    let Some(o) = inner.certs.get_mut(old) else {
        return;
    };
    o.admin.renewed_at = Some(now);
    let (org, ty) = (o.admin.org_id, o.admin.ssl_type_id);
    if let Some(n) = inner.certs.get_mut(new) {
        n.admin.org_id = org;
        n.admin.ssl_type_id = profile_id.unwrap_or(ty);
        n.admin.comments = comments.to_string();
    }
}

/// The REST API enrolled `id` with these `comments`.
pub(super) fn requested_through_rest(inner: &mut Inner, id: &str, comments: &str) {
    if let Some(c) = inner.certs.get_mut(id) {
        c.admin.comments = comments.to_string();
    }
}

/// The REST API replaced `old` with `new`.
pub(super) fn replaced_through_rest(inner: &mut Inner, old: &str, new: &str, now: DateTime<Utc>) {
    let Some(o) = inner.certs.get_mut(old) else {
        return;
    };
    o.admin.replaced_at = Some(now);
    let (org, ty) = (o.admin.org_id, o.admin.ssl_type_id);
    if let Some(n) = inner.certs.get_mut(new) {
        n.admin.org_id = org;
        n.admin.ssl_type_id = ty;
    }
}

/// The token endpoint's answer to an admin API account, `None` for any other client.
pub(super) fn admin_token(sim: &Sim, id: &str, secret: &str) -> Option<Response> {
    if !sim
        .cfg
        .admin_clients
        .iter()
        .any(|(i, s)| i == id && s == secret)
    {
        return None;
    }
    let tok: String = (0..32)
        .map(|_| format!("{:02x}", rand::thread_rng().gen::<u8>()))
        .collect();
    sim.inner
        .lock()
        .unwrap()
        .admin_tokens
        .insert(tok.clone(), sim.now());
    Some((StatusCode::OK, [("content-type", "application/json")], json!({"access_token": tok, "expires_in": sim.cfg.token_ttl.as_secs(), "token_type": "Bearer", "scope": "profile email"}).to_string()).into_response())
}

pub(super) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/api/ssl/v1", get(list))
        .route("/api/ssl/v1/:id", get(details))
        .fallback(|| async { scm_error(StatusCode::NOT_FOUND, -1, "Unknown error.") })
        .with_state(sim)
}

/// Logging, faults and the admin token check around an Admin API answer.
async fn admin_call(
    sim: &Sim,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    answer: impl FnOnce() -> Response,
) -> Response {
    let resp = match admit_on(sim, Host::Admin, method, uri, true).await {
        Err(r) => r,
        Ok(()) => match authorize_admin(sim, headers) {
            Err(r) => r,
            Ok(()) => answer(),
        },
    };
    record_status_on(sim, Host::Admin, &resp);
    resp
}

/// Only an admin account's live token: a REST account's token is refused (401).
fn authorize_admin(sim: &Sim, headers: &HeaderMap) -> Result<(), Response> {
    let unauthorized = || {
        (StatusCode::UNAUTHORIZED, [("www-authenticate", format!("Bearer realm=\"apiclients\", authorization_uri=\"{}\", error=\"invalid_token\"", sim.token_url))], "").into_response()
    };
    let Some(tok) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Err(unauthorized());
    };
    let faults = sim.faults.lock().unwrap().clone();
    let inner = sim.inner.lock().unwrap();
    let Some(issued) = inner.admin_tokens.get(tok) else {
        return Err(unauthorized());
    };
    let life = faults
        .token_revoke_after
        .unwrap_or(sim.cfg.token_ttl)
        .min(sim.cfg.token_ttl);
    if sim.now() - *issued >= chrono::Duration::from_std(life).unwrap_or(chrono::Duration::MAX) {
        return Err(unauthorized());
    }
    Ok(())
}

/// The status the Admin API shows for `c` now.
fn status_of(sim: &Sim, c: &SimCert) -> &'static str {
    if c.revoked {
        "Revoked"
    } else if c.approval == Approval::Declined {
        "Declined"
    } else if c.approval == Approval::Waiting {
        "Requested"
    } else if c.admin.replaced_at.is_some() {
        "Replaced"
    } else if sim.now() < c.ready_at {
        "Applied"
    } else if sim.now() >= c.admin.not_after {
        "Expired"
    } else {
        "Issued"
    }
}

fn bad_request(what: &str) -> Response {
    scm_error(StatusCode::BAD_REQUEST, -1, what)
}

/// The list's filters and paging, checked as the spec declares them.
struct ListQuery {
    position: usize,
    size: usize,
    common_name: Option<String>,
    status: Option<String>,
    ssl_type_id: Option<i64>,
    org_id: Option<i64>,
    requested_via: Option<String>,
}

fn list_query(uri: &Uri) -> Result<ListQuery, Response> {
    let mut q: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        // The first of a repeated parameter counts.
        q.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    let int = |name: &str, min: Option<i64>, max: Option<i64>| -> Result<Option<i64>, Response> {
        let Some(v) = q.get(name) else {
            return Ok(None);
        };
        let n: i64 = v
            .trim()
            .parse()
            .map_err(|_| bad_request(&format!("{name}: must be an integer")))?;
        if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
            return Err(bad_request(&format!(
                "{name}: must be between {} and {}",
                min.map_or("-".into(), |m| m.to_string()),
                max.map_or("-".into(), |m| m.to_string())
            )));
        }
        Ok(Some(n))
    };
    let one_of = |name: &str, allowed: &[&str]| -> Result<Option<String>, Response> {
        match q.get(name) {
            None => Ok(None),
            Some(v) if allowed.contains(&v.as_str()) => Ok(Some(v.clone())),
            Some(v) => Err(bad_request(&format!(
                "{name}: {v:?} is not one of {}",
                allowed.join(", ")
            ))),
        }
    };
    Ok(ListQuery {
        size: int("size", Some(0), Some(MAX_PAGE_SIZE))?.map_or(DEFAULT_PAGE_SIZE, |n| n as usize),
        position: int("position", Some(0), None)?.map_or(0, |n| n as usize),
        common_name: q.get("commonName").cloned(),
        status: one_of("status", &STATUSES)?,
        ssl_type_id: int("sslTypeId", Some(1), None)?,
        org_id: int("orgId", None, None)?,
        requested_via: one_of("requestedVia", &REQUESTED_VIA)?,
    })
}

fn serial_of(c: &SimCert) -> String {
    c.admin
        .serial
        .to_be_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

async fn list(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    admin_call(&sim, &method, &uri, &headers, || {
        let q = match list_query(&uri) {
            Ok(q) => q,
            Err(r) => return r,
        };
        let inner = sim.inner.lock().unwrap();
        let mut matching: Vec<(u64, &SimCert)> = inner
            .certs
            .iter()
            .filter_map(|(id, c)| Some((id.parse::<u64>().ok()?, c)))
            .filter(|(_, c)| {
                q.common_name
                    .as_ref()
                    .is_none_or(|cn| c.cn.eq_ignore_ascii_case(cn))
                    && q.status.as_deref().is_none_or(|s| status_of(&sim, c) == s)
                    && q.ssl_type_id.is_none_or(|t| c.admin.ssl_type_id == t)
                    && q.org_id.is_none_or(|o| c.admin.org_id == o)
                    && q.requested_via
                        .as_deref()
                        .is_none_or(|v| c.admin.requested_via == v)
            })
            .collect();
        matching.sort_by_key(|(id, _)| *id);
        let total = matching.len();
        let page: Vec<Value> = matching
            .into_iter()
            .skip(q.position)
            .take(q.size)
            .map(|(id, c)| {
                json!({
                    "sslId": id,
                    "commonName": c.cn,
                    "subjectAlternativeNames": c.sans,
                    "serialNumber": serial_of(c),
                })
            })
            .collect();
        (
            StatusCode::OK,
            [
                ("content-type", "application/json".to_string()),
                ("x-total-count", total.to_string()),
            ],
            Value::Array(page).to_string(),
        )
            .into_response()
    })
    .await
}

async fn details(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    admin_call(&sim, &method, &uri, &headers, || {
        if !id.parse::<i64>().is_ok_and(|n| n >= 1) {
            return bad_request(&format!("sslId: {id:?} must be an integer of at least 1"));
        }
        let inner = sim.inner.lock().unwrap();
        let Some(c) = inner.certs.get(&id) else {
            return scm_error(
                StatusCode::NOT_FOUND,
                -124,
                &format!("Wrong SSL certificate id {id}."),
            );
        };
        let date = |t: DateTime<Utc>| sim.cfg.admin_dates.write(t);
        let a = &c.admin;
        let n: i64 = id.parse().unwrap_or_default();
        let mut d = json!({
            "commonName": c.cn,
            "sslId": n,
            "id": n,
            "orgId": a.org_id,
            "status": status_of(&sim, c),
            "backendCertId": a.serial.to_string(),
            "vendor": "Sectigo Simulator",
            "certType": {
                "id": a.ssl_type_id,
                "name": format!("Simulator SSL profile {}", a.ssl_type_id),
                "description": "",
                "terms": [sim.cfg.validity_days],
                "keyTypes": {"RSA": ["2048", "3072", "4096"], "EC": ["P-256", "P-384"]},
                "useSecondaryOrgName": false
            },
            "subType": "",
            "validationType": "Domain Validation (DV)",
            "term": (a.not_after - a.not_before).num_days(),
            "owner": "Simulator Admin",
            "ownerId": 1,
            "requester": "sim-client",
            "requestedVia": a.requested_via,
            "comments": a.comments,
            "requested": date(a.requested_at),
            "expires": date(a.not_after),
            "renewed": a.renewed_at.is_some(),
            "serialNumber": serial_of(c),
            "keyType": "EC - P-256",
            "subjectAlternativeNames": c.sans,
            "customFields": [],
            "certificateDetails": {
                "issuer": "CN=Sectigo Simulator RSA Domain Validation CA",
                "subject": format!("CN={}", c.cn)
            },
            "autoInstallDetails": {"state": "Not configured"},
            "autoRenewDetails": {"state": a.auto_renew},
            "suspendNotifications": false
        });
        if c.approval == Approval::Approved {
            d["approved"] = json!(date(a.requested_at));
            if sim.now() >= c.ready_at {
                d["issued"] = json!(date(c.ready_at));
            }
        }
        if let Some(t) = a.renewed_at {
            d["renewedDate"] = json!(date(t));
        }
        if let Some(t) = a.replaced_at {
            d["replaced"] = json!(date(t));
        }
        if a.auto_renew != "Not scheduled" {
            d["autoRenewDetails"]["daysBeforeExpiration"] = json!(AUTO_RENEW_DAYS);
        }
        (
            StatusCode::OK,
            [("content-type", "application/json")],
            d.to_string(),
        )
            .into_response()
    })
    .await
}

/// Who renewed a certificate outside the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutsideRenewal {
    /// A person, in SCM's web UI.
    WebUi,
    /// SCM's own auto-renewal.
    Auto,
}

impl ScmSim {
    /// The Admin API's base URL (`[admin] url` of a profile pointing here): a host of its own.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// Every request to the Admin API's host, in arrival order.
    pub fn admin_requests(&self) -> Vec<LoggedRequest> {
        self.sim.inner.lock().unwrap().admin_log.clone()
    }

    /// The most Admin API requests that arrived within any `window`.
    pub fn admin_max_requests_in(&self, window: Duration) -> usize {
        max_in(self.admin_requests(), window)
    }

    /// Access tokens issued to admin API accounts so far.
    pub fn admin_tokens_issued(&self) -> usize {
        self.sim.inner.lock().unwrap().admin_tokens.len()
    }

    /// Queues exact answers for the next Admin API requests.
    pub fn admin_script(&self, answers: Vec<Scripted>) {
        self.sim.admin_script.lock().unwrap().extend(answers);
    }

    /// Sets what the Admin API shows of certificate `id` (organisation, certificate profile,
    /// how it was requested, comments). Unknown ids are ignored.
    pub fn set_admin_fields(&self, id: &str, f: AdminFields) {
        if let Some(c) = self.sim.inner.lock().unwrap().certs.get_mut(id) {
            let a = &mut c.admin;
            a.org_id = f.org_id.unwrap_or(a.org_id);
            a.ssl_type_id = f.ssl_type_id.unwrap_or(a.ssl_type_id);
            a.requested_via = f.requested_via.unwrap_or(a.requested_via.clone());
            a.comments = f.comments.unwrap_or(a.comments.clone());
        }
    }

    /// Renews `id` as a person would in SCM's web UI; returns the new certificate's id. The old
    /// one is marked renewed (with the date); the new one has the same names, organisation and
    /// profile, `requestedVia` "Client Admin", and comments without any daemon marker. Bills
    /// nothing the daemon counts. Panics on an unknown id (test equipment).
    pub fn renew_in_ui(&self, id: &str) -> String {
        self.renew_outside(id, OutsideRenewal::WebUi)
    }

    /// Renews `id` as SCM's own auto-renewal does; returns the new id. As
    /// [`ScmSim::renew_in_ui`], but the old certificate's `autoRenewDetails` say `Successful`,
    /// the new one is requested as the old one was and auto-renewal stays on for it.
    pub fn auto_renew(&self, id: &str) -> String {
        self.renew_outside(id, OutsideRenewal::Auto)
    }

    /// Turns SCM's own auto-renewal of `id` on (`autoRenewDetails.state` `Scheduled`) or off
    /// (`Not scheduled`).
    pub fn set_auto_renew(&self, id: &str, on: bool) {
        if let Some(c) = self.sim.inner.lock().unwrap().certs.get_mut(id) {
            c.admin.auto_renew = if on { "Scheduled" } else { "Not scheduled" };
        }
    }

    fn renew_outside(&self, id: &str, how: OutsideRenewal) -> String {
        let sim = &self.sim;
        let now = sim.now();
        let mut inner = sim.inner.lock().unwrap();
        let old = inner
            .certs
            .get(id)
            .cloned()
            .unwrap_or_else(|| panic!("the simulator has no certificate {id}"));
        let new_id = sim.new_cert(
            &mut inner,
            &old.cn,
            &old.sans,
            now,
            now + chrono::Duration::days(sim.cfg.validity_days),
            sim.issued_at(),
            None,
        );
        let o = inner.certs.get_mut(id).expect("exists");
        o.admin.renewed_at = Some(now);
        if how == OutsideRenewal::Auto {
            o.admin.auto_renew = "Successful";
        }
        let n = inner.certs.get_mut(&new_id).expect("just made");
        n.admin.org_id = old.admin.org_id;
        n.admin.ssl_type_id = old.admin.ssl_type_id;
        match how {
            OutsideRenewal::WebUi => n.admin.requested_via = "Client Admin".into(),
            OutsideRenewal::Auto => {
                n.admin.requested_via = old.admin.requested_via.clone();
                n.admin.auto_renew = "Scheduled";
            }
        }
        new_id
    }
}
