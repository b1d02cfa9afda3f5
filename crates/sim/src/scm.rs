//! A simulator of SCM's REST Enrollment API and its OAuth2 token endpoint.
//!
//! - `POST /auth/token` (client credentials) and `/api/v1/certificates/...` (enroll, download,
//!   status, renew, replace, revoke), validated like the vendor validates them.
//! - Issues real X.509 certificates (rcgen) chained to a simulator CA; a renewed or enrolled
//!   certificate stays pending (download: 404 -109) for `issue_delay`, then is issued.
//! - Counts every billable call per certificate; logs every request with its arrival time.
//! - Fault injection: latency, share of 5xx, 429 with Retry-After, dropped connections,
//!   tokens that stop working early, invalid credentials, permanent errors for chosen ids,
//!   a server-side request-rate limit, and a token endpoint that is down or drops connections.
//! - What the vendor's error table describes, per call: DCV incomplete (-107 on renew and
//!   enroll), accounts that need approval (status `Requested`, then issued or `Declined`),
//!   certificates revoked in the SCM UI (download -110, renew -130), revoking twice (-159),
//!   revoking what is not issued (-102).
//! - SCM's Admin API (`/api/ssl/v1` list and details) on a host of its own
//!   ([`ScmSim::admin_url`]), over the same certificates, with its own accounts and tokens:
//!   see `scm_admin.rs`.

// Handlers return the answer to send as the error of their checks: an axum `Response`.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::Rng;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use serde_json::{json, Value};
use tokio::time::Instant;

use sectigo_core::clock::SharedClock;

#[path = "scm_admin.rs"]
mod admin;
pub use admin::{AdminDateFormat, AdminFields};
use admin::{AdminRecord, Host};

#[derive(Debug, Clone)]
pub struct ScmSimConfig {
    /// Accepted (client_id, client_secret) pairs.
    pub clients: Vec<(String, String)>,
    /// `expires_in` of issued access tokens.
    pub token_ttl: Duration,
    /// How long a renewed or enrolled certificate stays pending.
    pub issue_delay: Duration,
    /// Validity of certificates the simulator issues.
    pub validity_days: i64,
    /// Reject a renew without `profileId` (the 25.11 schema marks it required).
    pub require_profile_id: bool,
    /// The REST account needs approval: a renewed or enrolled certificate waits (status
    /// `Requested`, download -109) until [`ScmSim::approve`], or is [`ScmSim::decline`]d.
    pub approval_required: bool,
    /// The simulator's time: when certificates are issued, their validity, token expiry. A
    /// test hands a `ManualClock` and moves it instead of sleeping.
    pub clock: SharedClock,
    /// Accepted (client_id, client_secret) pairs of admin API accounts: their tokens work on
    /// the Admin API only, and the REST accounts' tokens do not.
    pub admin_clients: Vec<(String, String)>,
    /// How the Admin API writes dates (`expires`, `renewedDate`, ...).
    pub admin_dates: AdminDateFormat,
    /// The organisation (`orgId`) and certificate profile (`sslTypeId`) of what the REST
    /// account enrolls (SCM fixes both on the account); a renew with `profileId` takes that
    /// profile.
    pub org_id: i64,
    pub ssl_type_id: i64,
}

impl Default for ScmSimConfig {
    fn default() -> Self {
        ScmSimConfig {
            clients: vec![("sim-client".into(), "sim-secret".into())],
            token_ttl: Duration::from_secs(300),
            issue_delay: Duration::ZERO,
            validity_days: 90,
            require_profile_id: false,
            approval_required: false,
            clock: sectigo_core::clock::system(),
            admin_clients: vec![("sim-admin".into(), "sim-admin-secret".into())],
            admin_dates: AdminDateFormat::default(),
            org_id: 1,
            ssl_type_id: 1,
        }
    }
}

/// Faults to inject; change them at any time with [`ScmSim::set_faults`].
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Added before every answer.
    pub latency: Duration,
    /// Share (0..1) of API requests answered 500/503 before doing anything.
    pub error_5xx: f64,
    /// Share of API requests answered 429 with `Retry-After: retry_after_secs`.
    pub rate_429: f64,
    pub retry_after_secs: u64,
    /// Share of API requests whose connection is dropped (before doing anything).
    pub drop: f64,
    /// Access tokens stop working after this long, whatever `expires_in` said.
    pub token_revoke_after: Option<Duration>,
    /// The token endpoint answers 503.
    pub token_endpoint_down: bool,
    /// Every API request is answered 503 with a proxy's HTML page (SCM down behind its load
    /// balancer), before doing anything.
    pub api_down: bool,
    /// The token endpoint drops every connection after its headers (an outage mid-answer).
    pub token_endpoint_drop: bool,
    /// Certificate id → (HTTP status, SCM code, description) answered to every call on it.
    pub permanent: HashMap<String, (u16, i64, String)>,
    /// Server-side limit on requests started per second (429 beyond it).
    pub max_rps: Option<usize>,
}

/// An exact answer for the next API request (consumed in order, before any other fault).
#[derive(Debug, Clone)]
pub enum Scripted {
    /// 429 with `Retry-After: secs`.
    TooMany(u64),
    /// This status with an SCM error body.
    Status(u16),
    /// Drop the connection after the headers.
    Drop,
    /// An HTML error page with this status (a proxy's answer).
    Html(u16),
    /// This status, content type and body, verbatim.
    Raw(u16, &'static str, String),
    /// This status, content type and body bytes (not necessarily UTF-8), verbatim.
    Bytes(u16, &'static str, Vec<u8>),
    /// A redirect (302) to this URL.
    Redirect(String),
    /// A 200 whose body comes one byte every `every`, `bytes` times.
    Drip { bytes: usize, every: Duration },
}

#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub status: u16,
}

#[derive(Debug, Clone)]
struct SimCert {
    cn: String,
    sans: Vec<String>,
    pem: String,
    ready_at: DateTime<Utc>,
    revoked: bool,
    renewed_to: Vec<String>,
    approval: Approval,
    /// What the Admin API shows beyond the above.
    admin: AdminRecord,
}

/// Where a request stands on an account that needs approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Approval {
    Approved,
    Waiting,
    Declined,
}

struct Inner {
    certs: BTreeMap<String, SimCert>,
    next_id: u64,
    tokens: HashMap<String, (DateTime<Utc>, String)>,
    billable: BTreeMap<String, u32>,
    enrolled: Vec<(String, String)>,
    /// SCM's replace calls: the certificate replaced and its replacement.
    replaced: Vec<(String, String)>,
    /// SCM's revoke calls that revoked: the certificate and the reason code.
    revocations: Vec<(String, i64)>,
    log: Vec<LoggedRequest>,
    comments: Vec<String>,
    profile_ids: Vec<Option<i64>>,
    /// Domains whose Domain Control Validation is incomplete: renew and enroll refuse them.
    dcv_incomplete: std::collections::HashSet<String>,
    /// Requests to the Admin API's host, in arrival order.
    admin_log: Vec<LoggedRequest>,
    /// Access tokens of admin API accounts: token → issued at.
    admin_tokens: HashMap<String, DateTime<Utc>>,
}

struct Sim {
    cfg: ScmSimConfig,
    script: Mutex<std::collections::VecDeque<Scripted>>,
    /// Exact answers for the next Admin API requests.
    admin_script: Mutex<std::collections::VecDeque<Scripted>>,
    faults: Mutex<Faults>,
    inner: Mutex<Inner>,
    ca_key: KeyPair,
    ca_cert: rcgen::Certificate,
    leaf_key: KeyPair,
    token_url: String,
    active: AtomicUsize,
    max_active: AtomicUsize,
    /// REST API answers still to be lost after the request was carried out
    /// ([`ScmSim::lose_answers`]).
    lose_answers: AtomicUsize,
}

/// A running simulator. Dropping it stops the server.
pub struct ScmSim {
    addr: SocketAddr,
    admin_addr: SocketAddr,
    sim: Arc<Sim>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _admin_stop: tokio::sync::oneshot::Sender<()>,
}

fn to_time(t: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp()).expect("timestamp in range")
}

impl Sim {
    fn now(&self) -> DateTime<Utc> {
        self.cfg.clock.now()
    }

    /// When a certificate requested now is issued.
    fn issued_at(&self) -> DateTime<Utc> {
        self.now() + chrono::Duration::from_std(self.cfg.issue_delay).unwrap_or_default()
    }

    fn make_pem(
        &self,
        serial: u64,
        cn: &str,
        sans: &[String],
        nb: DateTime<Utc>,
        na: DateTime<Utc>,
        key: Option<&rcgen::PublicKey>,
    ) -> String {
        let mut p = CertificateParams::new(sans.to_vec()).expect("valid SANs");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name
            .push(DnType::OrganizationName, "Sectigo Simulator Customer");
        p.not_before = to_time(nb);
        p.not_after = to_time(na);
        p.serial_number = Some(rcgen::SerialNumber::from(serial.to_be_bytes().to_vec()));
        if sans.is_empty() {
            p.subject_alt_names = vec![SanType::DnsName(cn.try_into().expect("valid CN"))];
        }
        // A CSR's public key when there was one (as a CA certifies it), else the simulator's
        // one leaf key.
        let leaf = match key {
            Some(k) => p.signed_by(k, &self.ca_cert, &self.ca_key),
            None => p.signed_by(&self.leaf_key, &self.ca_cert, &self.ca_key),
        }
        .expect("sign leaf");
        format!("{}{}", leaf.pem(), self.ca_cert.pem())
    }

    #[allow(clippy::too_many_arguments)]
    fn new_cert(
        &self,
        inner: &mut Inner,
        cn: &str,
        sans: &[String],
        nb: DateTime<Utc>,
        na: DateTime<Utc>,
        ready_at: DateTime<Utc>,
        key: Option<&rcgen::PublicKey>,
    ) -> String {
        inner.next_id += 1;
        let id = inner.next_id.to_string();
        let pem = self.make_pem(inner.next_id, cn, sans, nb, na, key);
        let admin = AdminRecord::new(&self.cfg, inner.next_id, nb, na, self.now());
        inner.certs.insert(
            id.clone(),
            SimCert {
                cn: cn.into(),
                sans: sans.to_vec(),
                pem,
                ready_at,
                revoked: false,
                renewed_to: vec![],
                approval: Approval::Approved,
                admin,
            },
        );
        id
    }

    /// A renewed or enrolled certificate: waits for approval when the account needs it.
    #[allow(clippy::too_many_arguments)]
    fn requested_cert(
        &self,
        inner: &mut Inner,
        cn: &str,
        sans: &[String],
        nb: DateTime<Utc>,
        na: DateTime<Utc>,
        ready_at: DateTime<Utc>,
        key: Option<&rcgen::PublicKey>,
    ) -> String {
        let id = self.new_cert(inner, cn, sans, nb, na, ready_at, key);
        if self.cfg.approval_required {
            if let Some(c) = inner.certs.get_mut(&id) {
                c.approval = Approval::Waiting;
            }
        }
        id
    }

    /// SCM's refusal when a name's DCV is incomplete, as its error table words it.
    fn dcv_refusal(inner: &Inner, names: &[&str]) -> Option<Response> {
        let n = names.iter().find(|n| inner.dcv_incomplete.contains(**n))?;
        Some(scm_error(
            StatusCode::BAD_REQUEST,
            -107,
            &format!("Domain Control Validation is either incomplete or expired for {n}. Please complete it before requesting a certificate."),
        ))
    }
}

impl ScmSim {
    pub async fn start(cfg: ScmSimConfig) -> std::io::Result<ScmSim> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let ca_key = KeyPair::generate().expect("keygen");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(
            DnType::CommonName,
            "Sectigo Simulator RSA Domain Validation CA",
        );
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let sim = Arc::new(Sim {
            cfg,
            script: Mutex::new(Default::default()),
            admin_script: Mutex::new(Default::default()),
            faults: Mutex::new(Faults::default()),
            inner: Mutex::new(Inner {
                certs: BTreeMap::new(),
                next_id: 1000,
                tokens: HashMap::new(),
                billable: BTreeMap::new(),
                enrolled: Vec::new(),
                replaced: Vec::new(),
                revocations: Vec::new(),
                log: Vec::new(),
                comments: Vec::new(),
                profile_ids: Vec::new(),
                dcv_incomplete: Default::default(),
                admin_log: Vec::new(),
                admin_tokens: HashMap::new(),
            }),
            ca_key,
            ca_cert,
            leaf_key: KeyPair::generate().expect("keygen"),
            token_url: format!("http://{addr}/auth/token"),
            active: AtomicUsize::new(0),
            max_active: AtomicUsize::new(0),
            lose_answers: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/auth/token", post(token))
            .route("/api/v1/certificates", post(enroll))
            .route("/api/v1/certificates/:id", get(download).delete(revoke))
            .route("/api/v1/certificates/:id/status", get(status))
            .route("/api/v1/certificates/:id/renew", post(renew))
            .route("/api/v1/certificates/:id/replace", post(replace))
            .fallback(|| async { scm_error(StatusCode::NOT_FOUND, -1, "Unknown error.") })
            .with_state(sim.clone());
        let tx = super::serve(listener, app);
        // The Admin API is on a host of its own, as in SCM.
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let admin_addr = admin_listener.local_addr()?;
        let admin_tx = super::serve(admin_listener, admin::router(sim.clone()));
        Ok(ScmSim {
            addr,
            admin_addr,
            sim,
            _stop: tx,
            _admin_stop: admin_tx,
        })
    }

    /// The SCM URL of a profile pointing here.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token_url(&self) -> String {
        self.sim.token_url.clone()
    }

    /// Queues exact answers for the next API requests.
    pub fn script(&self, answers: Vec<Scripted>) {
        self.sim.script.lock().unwrap().extend(answers);
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.sim.inner.lock().unwrap().tokens.len()
    }

    /// The access tokens issued so far, of both APIs (to check that none reaches a log).
    pub fn tokens(&self) -> Vec<String> {
        let inner = self.sim.inner.lock().unwrap();
        inner
            .tokens
            .keys()
            .chain(inner.admin_tokens.keys())
            .cloned()
            .collect()
    }

    pub fn set_faults(&self, f: Faults) {
        *self.sim.faults.lock().unwrap() = f;
    }

    /// Adds an issued certificate (as if enrolled earlier); returns its id.
    /// The PEM (leaf and chain) a download of `id` returns.
    pub fn pem(&self, id: &str) -> Option<String> {
        self.sim
            .inner
            .lock()
            .unwrap()
            .certs
            .get(id)
            .map(|c| c.pem.clone())
    }

    /// The private key (PKCS#8 PEM) of every certificate the simulator issued without a CSR
    /// (the imported ones and plain renewals), as the server using them holds it.
    pub fn leaf_key_pem(&self) -> String {
        self.sim.leaf_key.serialize_pem()
    }

    pub fn add_certificate(
        &self,
        cn: &str,
        sans: &[&str],
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> sectigo_core::names::CertId {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut inner = self.sim.inner.lock().unwrap();
        let id = self.sim.new_cert(
            &mut inner,
            cn,
            &sans,
            not_before,
            not_after,
            self.sim.now(),
            None,
        );
        sectigo_core::names::CertId::parse(&id).expect("the simulator's ids are numbers")
    }

    /// Renewals of one certificate id (billable; more than one is a double renewal).
    pub fn billable_count(&self, id: &str) -> u32 {
        self.sim
            .inner
            .lock()
            .unwrap()
            .billable
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// Every billable call: renewals and enrollments.
    pub fn billable_total(&self) -> u32 {
        let i = self.sim.inner.lock().unwrap();
        i.billable.values().sum::<u32>() + i.enrolled.len() as u32
    }

    /// Every renewal count above one, by certificate id: a double renewal.
    pub fn billed_twice(&self) -> Vec<(String, u32)> {
        self.sim
            .inner
            .lock()
            .unwrap()
            .billable
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }

    /// Every enrollment accepted: (subject CN, new certificate id), in order.
    pub fn enrollments(&self) -> Vec<(String, String)> {
        self.sim.inner.lock().unwrap().enrolled.clone()
    }

    /// SCM's replace calls answered: (the certificate replaced, its replacement).
    pub fn replacements(&self) -> Vec<(String, String)> {
        self.sim.inner.lock().unwrap().replaced.clone()
    }

    /// SCM's revoke calls that revoked: (the certificate, the reason code).
    pub fn revocations(&self) -> Vec<(String, i64)> {
        self.sim.inner.lock().unwrap().revocations.clone()
    }

    /// The ids a certificate was renewed to.
    pub fn renewals_of(&self, id: &str) -> Vec<String> {
        self.sim
            .inner
            .lock()
            .unwrap()
            .certs
            .get(id)
            .map(|c| c.renewed_to.clone())
            .unwrap_or_default()
    }

    /// Approves a request waiting for approval (`approval_required`): it is issued.
    pub fn approve(&self, id: &str) {
        if let Some(c) = self.sim.inner.lock().unwrap().certs.get_mut(id) {
            c.approval = Approval::Approved;
        }
    }

    /// Declines a request waiting for approval: status `Declined`, never issued.
    pub fn decline(&self, id: &str) {
        if let Some(c) = self.sim.inner.lock().unwrap().certs.get_mut(id) {
            c.approval = Approval::Declined;
        }
    }

    /// Revokes a certificate as a person would in SCM's web UI (not through the API).
    pub fn revoke_in_ui(&self, id: &str) {
        if let Some(c) = self.sim.inner.lock().unwrap().certs.get_mut(id) {
            c.revoked = true;
        }
    }

    /// Marks a domain's Domain Control Validation incomplete (`true`) or complete again.
    pub fn set_dcv_incomplete(&self, domain: &str, incomplete: bool) {
        let mut inner = self.sim.inner.lock().unwrap();
        if incomplete {
            inner.dcv_incomplete.insert(domain.to_string());
        } else {
            inner.dcv_incomplete.remove(domain);
        }
    }

    /// Requests waiting for approval, by id.
    pub fn awaiting_approval(&self) -> Vec<String> {
        let inner = self.sim.inner.lock().unwrap();
        inner
            .certs
            .iter()
            .filter(|(_, c)| c.approval == Approval::Waiting)
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn is_revoked(&self, id: &str) -> bool {
        self.sim
            .inner
            .lock()
            .unwrap()
            .certs
            .get(id)
            .is_some_and(|c| c.revoked)
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.sim.inner.lock().unwrap().log.clone()
    }

    /// The `comments` and `profileId` of every renew/enroll received.
    pub fn received_comments(&self) -> Vec<String> {
        self.sim.inner.lock().unwrap().comments.clone()
    }

    pub fn received_profile_ids(&self) -> Vec<Option<i64>> {
        self.sim.inner.lock().unwrap().profile_ids.clone()
    }

    /// The most API requests (not token requests) that arrived within any `window`.
    pub fn max_requests_in(&self, window: Duration) -> usize {
        self.max_requests_in_since(window, 0)
    }

    /// The same, over the requests from the `from`-th on (a phase of a run).
    pub fn max_requests_in_since(&self, window: Duration, from: usize) -> usize {
        let mut log = self.requests();
        max_in(log.split_off(from.min(log.len())), window)
    }

    /// The next `n` successful REST API answers are lost: the request is carried out (a renew
    /// renews and bills), then the connection drops before the answer (a crash or a network
    /// cut at the worst moment).
    pub fn lose_answers(&self, n: usize) {
        self.sim.lose_answers.store(n, Ordering::SeqCst);
    }

    /// The most requests the simulator was handling at once.
    pub fn max_concurrent_seen(&self) -> usize {
        self.sim.max_active.load(Ordering::SeqCst)
    }
}

/// The most API requests (paths under `/api/`) of `log` that arrived within any `window`.
fn max_in(log: Vec<LoggedRequest>, window: Duration) -> usize {
    let at: Vec<Instant> = log
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .map(|r| r.at)
        .collect();
    let mut best = 0;
    let mut j = 0;
    for i in 0..at.len() {
        while at[i] - at[j] >= window {
            j += 1;
        }
        best = best.max(i - j + 1);
    }
    best
}

fn scm_error(status: StatusCode, code: i64, description: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"code": code, "description": description}).to_string(),
    )
        .into_response()
}

struct Guard<'a>(&'a Sim);
impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Arrival bookkeeping and faults common to every endpoint. `Err` is the answer to send.
async fn admit(sim: &Sim, method: &Method, uri: &Uri, api: bool) -> Result<(), Response> {
    admit_on(sim, Host::Enrollment, method, uri, api).await
}

/// The same on one of the simulator's hosts: each has its own request log (and rate limit)
/// and its own scripted answers; latency and random faults apply to both.
async fn admit_on(
    sim: &Sim,
    host: Host,
    method: &Method,
    uri: &Uri,
    api: bool,
) -> Result<(), Response> {
    let now = Instant::now();
    let faults = sim.faults.lock().unwrap().clone();
    let over_rate = {
        let mut guard = sim.inner.lock().unwrap();
        let inner = &mut *guard;
        let log = match host {
            Host::Enrollment => &mut inner.log,
            Host::Admin => &mut inner.admin_log,
        };
        let over = faults.max_rps.is_some_and(|max| {
            log.iter()
                .rev()
                .take_while(|r| now - r.at < Duration::from_secs(1))
                .filter(|r| r.path.starts_with("/api/"))
                .count()
                >= max
        });
        log.push(LoggedRequest {
            at: now,
            method: method.to_string(),
            path: uri.path().to_string(),
            status: 0,
        });
        over && api
    };
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if over_rate {
        return Err(too_many(faults.retry_after_secs.max(1)));
    }
    if !api {
        return Ok(());
    }
    let scripted = match host {
        Host::Enrollment => sim.script.lock().unwrap().pop_front(),
        Host::Admin => sim.admin_script.lock().unwrap().pop_front(),
    };
    if let Some(answer) = scripted {
        return Err(match answer {
            Scripted::TooMany(secs) => too_many(secs),
            Scripted::Status(st) => scm_error(
                StatusCode::from_u16(st).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                -2,
                "Internal error. Please contact Support for details.",
            ),
            Scripted::Drop => dropped(),
            Scripted::Html(st) => (
                StatusCode::from_u16(st).unwrap_or(StatusCode::OK),
                [("content-type", "text/html")],
                "<!DOCTYPE html><html><body><h1>Gateway error</h1></body></html>",
            )
                .into_response(),
            Scripted::Raw(st, ct, body) => (
                StatusCode::from_u16(st).unwrap_or(StatusCode::OK),
                [("content-type", ct)],
                body,
            )
                .into_response(),
            Scripted::Bytes(st, ct, body) => (
                StatusCode::from_u16(st).unwrap_or(StatusCode::OK),
                [("content-type", ct)],
                body,
            )
                .into_response(),
            Scripted::Redirect(to) => (StatusCode::FOUND, [("location", to)], "").into_response(),
            Scripted::Drip { bytes, every } => {
                let stream = futures::stream::unfold(0usize, move |i| async move {
                    if i >= bytes {
                        return None;
                    }
                    tokio::time::sleep(every).await;
                    Some((
                        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"-")),
                        i + 1,
                    ))
                });
                Response::builder()
                    .status(200)
                    .header("content-type", "application/x-pem-file")
                    .body(Body::from_stream(stream))
                    .expect("response")
            }
        });
    }
    if faults.api_down {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/html")],
            "<html><body><h1>503 Service Unavailable</h1></body></html>",
        )
            .into_response());
    }
    let roll: f64 = rand::thread_rng().gen();
    if roll < faults.rate_429 {
        return Err(too_many(faults.retry_after_secs));
    }
    if roll < faults.rate_429 + faults.error_5xx {
        return Err(if rand::thread_rng().gen_bool(0.5) {
            scm_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                -2,
                "Internal error. Please contact Support for details.",
            )
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("content-type", "text/html")],
                "<html><body><h1>503 Service Unavailable</h1></body></html>",
            )
                .into_response()
        });
    }
    if roll < faults.rate_429 + faults.error_5xx + faults.drop {
        return Err(dropped());
    }
    Ok(())
}

fn dropped() -> Response {
    let stream = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::other("dropped by the simulator"))
    });
    Response::builder()
        .status(200)
        .body(Body::from_stream(stream))
        .expect("response")
}

fn too_many(secs: u64) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            ("retry-after", secs.to_string()),
            ("content-type", "application/json".into()),
        ],
        json!({"code": -1, "description": "Too many requests"}).to_string(),
    )
        .into_response()
}

fn record_status(sim: &Sim, resp: &Response) {
    record_status_on(sim, Host::Enrollment, resp)
}

fn record_status_on(sim: &Sim, host: Host, resp: &Response) {
    let mut inner = sim.inner.lock().unwrap();
    let log = match host {
        Host::Enrollment => &mut inner.log,
        Host::Admin => &mut inner.admin_log,
    };
    if let Some(last) = log.iter_mut().rev().find(|r| r.status == 0) {
        last.status = resp.status().as_u16();
    }
}

/// Checks the bearer token.
fn authorize(sim: &Sim, headers: &HeaderMap) -> Result<(), Response> {
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
    let Some((issued, _)) = inner.tokens.get(tok) else {
        return Err(unauthorized());
    };
    let life = faults
        .token_revoke_after
        .unwrap_or(sim.cfg.token_ttl)
        .min(sim.cfg.token_ttl);
    // A lifetime beyond chrono's range never ends (not: has ended at once).
    if sim.now() - *issued >= chrono::Duration::from_std(life).unwrap_or(chrono::Duration::MAX) {
        return Err(unauthorized());
    }
    Ok(())
}

macro_rules! api {
    ($sim:expr, $method:expr, $uri:expr, $headers:expr, $body:block) => {{
        let sim: &Sim = &$sim;
        let n = sim.active.fetch_add(1, Ordering::SeqCst) + 1;
        sim.max_active.fetch_max(n, Ordering::SeqCst);
        let _g = Guard(sim);
        let resp = match admit(sim, &$method, &$uri, true).await {
            Err(r) => r,
            Ok(()) => match authorize(sim, &$headers) {
                Err(r) => r,
                Ok(()) => $body,
            },
        };
        let lose = resp.status().is_success()
            && sim
                .lose_answers
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        let resp = if lose { dropped() } else { resp };
        record_status(sim, &resp);
        resp
    }};
}

async fn token(State(sim): State<Arc<Sim>>, method: Method, uri: Uri, body: String) -> Response {
    let _ = admit(&sim, &method, &uri, false).await;
    let resp = token_answer(&sim, &body);
    record_status(&sim, &resp);
    resp
}

fn token_answer(sim: &Sim, body: &str) -> Response {
    let f = sim.faults.lock().unwrap().clone();
    if f.token_endpoint_down {
        return (StatusCode::SERVICE_UNAVAILABLE, "").into_response();
    }
    if f.token_endpoint_drop {
        return dropped();
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (StatusCode::BAD_REQUEST, [("content-type", "application/json")], json!({"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"}).to_string()).into_response();
    }
    let id = form.get("client_id").cloned().unwrap_or_default();
    let secret = form.get("client_secret").cloned().unwrap_or_default();
    if let Some(r) = admin::admin_token(sim, &id, &secret) {
        return r;
    }
    if !sim
        .cfg
        .clients
        .iter()
        .any(|(i, s)| *i == id && *s == secret)
    {
        return (StatusCode::UNAUTHORIZED, [("content-type", "application/json")], json!({"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"}).to_string()).into_response();
    }
    let tok: String = (0..32)
        .map(|_| format!("{:02x}", rand::thread_rng().gen::<u8>()))
        .collect();
    sim.inner
        .lock()
        .unwrap()
        .tokens
        .insert(tok.clone(), (sim.now(), id));
    (StatusCode::OK, [("content-type", "application/json")], json!({"access_token": tok, "expires_in": sim.cfg.token_ttl.as_secs(), "token_type": "Bearer", "scope": "profile email"}).to_string()).into_response()
}

fn permanent_fault(sim: &Sim, id: &str) -> Option<Response> {
    let f = sim.faults.lock().unwrap();
    f.permanent.get(id).map(|(st, code, d)| {
        scm_error(
            StatusCode::from_u16(*st).unwrap_or(StatusCode::BAD_REQUEST),
            *code,
            d,
        )
    })
}

fn wrong_id(id: &str) -> Response {
    scm_error(
        StatusCode::BAD_REQUEST,
        -124,
        &format!("Wrong SSL certificate id {id}."),
    )
}

async fn download(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    api!(sim, method, uri, headers, {
        if let Some(r) = permanent_fault(&sim, &id) {
            r
        } else {
            let inner = sim.inner.lock().unwrap();
            match inner.certs.get(&id) {
                None => wrong_id(&id),
                Some(c) if c.revoked => scm_error(
                    StatusCode::BAD_REQUEST,
                    -110,
                    "Certificate has been revoked and cannot be downloaded.",
                ),
                Some(c) if c.approval == Approval::Declined => scm_error(
                    StatusCode::BAD_REQUEST,
                    -183,
                    "Certificate is not collectable.",
                ),
                Some(c) if c.approval == Approval::Waiting || sim.now() < c.ready_at => scm_error(
                    StatusCode::NOT_FOUND,
                    -109,
                    "Certificate is not available now, please try again later.",
                ),
                Some(c) => (
                    StatusCode::OK,
                    [("content-type", "application/x-pem-file")],
                    c.pem.clone(),
                )
                    .into_response(),
            }
        }
    })
}

async fn status(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    api!(sim, method, uri, headers, {
        let inner = sim.inner.lock().unwrap();
        match inner.certs.get(&id) {
            None => wrong_id(&id),
            Some(c) => {
                let s = if c.revoked {
                    "Revoked"
                } else if c.approval == Approval::Declined {
                    "Declined"
                } else if c.approval == Approval::Waiting {
                    "Requested"
                } else if sim.now() < c.ready_at {
                    "Applied"
                } else {
                    "Issued"
                };
                (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    json!({"status": s, "dcvInfo": {}}).to_string(),
                )
                    .into_response()
            }
        }
    })
}

/// Parses a JSON request body like the vendor: must be a JSON object.
fn json_object(
    headers: &HeaderMap,
    body: &str,
    required: bool,
) -> Result<serde_json::Map<String, Value>, Response> {
    if body.trim().is_empty() && !required {
        return Ok(serde_json::Map::new());
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(scm_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            -1,
            &format!("Content type '{ct}' not supported"),
        ));
    }
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(scm_error(
            StatusCode::BAD_REQUEST,
            -1,
            "Request body must be a JSON object.",
        )),
        Err(_) => Err(scm_error(
            StatusCode::BAD_REQUEST,
            -1,
            "Malformed JSON request.",
        )),
    }
}

fn check_comments(m: &serde_json::Map<String, Value>) -> Result<Option<String>, Response> {
    match m.get("comments") {
        None => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= 1024 => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(scm_error(
            StatusCode::BAD_REQUEST,
            -1,
            "comments: size must be between 0 and 1024",
        )),
        Some(_) => Err(scm_error(
            StatusCode::BAD_REQUEST,
            -1,
            "comments must be a string",
        )),
    }
}

fn check_custom_fields(m: &serde_json::Map<String, Value>, required: bool) -> Result<(), Response> {
    match m.get("customFields") {
        None if required => Err(scm_error(
            StatusCode::BAD_REQUEST,
            -7,
            "customFields is required but missing.",
        )),
        None | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(scm_error(
            StatusCode::BAD_REQUEST,
            -1,
            "customFields must be an object",
        )),
    }
}

async fn renew(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    api!(sim, method, uri, headers, {
        match renew_answer(&sim, &headers, &id, &body) {
            Ok(r) | Err(r) => r,
        }
    })
}

fn renew_answer(
    sim: &Sim,
    headers: &HeaderMap,
    id: &str,
    body: &str,
) -> Result<Response, Response> {
    if let Some(r) = permanent_fault(sim, id) {
        return Err(r);
    }
    let m = json_object(headers, body, false)?;
    check_custom_fields(&m, true)?;
    let comments = check_comments(&m)?;
    // A renewal with a CSR certifies the CSR's key (a new key); without, the old one.
    let key = match m.get("csr") {
        None => None,
        Some(Value::String(c)) => Some(parse_csr(c)?.2),
        Some(_) => {
            return Err(scm_error(
                StatusCode::BAD_REQUEST,
                -1,
                "csr must be a string",
            ))
        }
    };
    let profile_id = match m.get("profileId") {
        None if sim.cfg.require_profile_id => {
            return Err(scm_error(
                StatusCode::BAD_REQUEST,
                -7,
                "profileId is required but missing.",
            ))
        }
        None => None,
        Some(Value::Number(n)) => n.as_i64(),
        Some(_) => {
            return Err(scm_error(
                StatusCode::BAD_REQUEST,
                -1,
                "profileId must be a number",
            ))
        }
    };
    let mut inner = sim.inner.lock().unwrap();
    let Some(old) = inner.certs.get(id).cloned() else {
        return Err(wrong_id(id));
    };
    if old.revoked {
        return Err(scm_error(
            StatusCode::BAD_REQUEST,
            -130,
            &format!("SSL state is not 'ISSUED': {id}"),
        ));
    }
    let names: Vec<&str> = std::iter::once(old.cn.as_str())
        .chain(old.sans.iter().map(String::as_str))
        .collect();
    if let Some(r) = Sim::dcv_refusal(&inner, &names) {
        return Err(r);
    }
    let now = sim.now();
    let new_id = sim.requested_cert(
        &mut inner,
        &old.cn,
        &old.sans,
        now,
        now + chrono::Duration::days(sim.cfg.validity_days),
        sim.issued_at(),
        key.as_ref(),
    );
    inner
        .certs
        .get_mut(id)
        .expect("exists")
        .renewed_to
        .push(new_id.clone());
    *inner.billable.entry(id.to_string()).or_default() += 1;
    admin::renewed_through_rest(
        &mut inner,
        id,
        &new_id,
        now,
        comments.as_deref().unwrap_or_default(),
        profile_id,
    );
    inner.comments.push(comments.unwrap_or_default());
    inner.profile_ids.push(profile_id);
    Ok((
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"certId": new_id}).to_string(),
    )
        .into_response())
}

/// Decodes a single-line Base64 PKCS#10 CSR; returns (CN, DNS SANs).
fn parse_csr(csr: &str) -> Result<(String, Vec<String>, rcgen::PublicKey), Response> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(csr.trim())
        .map_err(|_| {
            scm_error(
                StatusCode::BAD_REQUEST,
                -9,
                "The CSR is not valid Base-64 data!",
            )
        })?;
    let (_, req) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|_| scm_error(StatusCode::BAD_REQUEST, -10, "Error while decoding CSR."))?;
    let (cn, sans) = sectigo_core::x509::csr::names(&req);
    if cn.is_empty() && sans.is_empty() {
        return Err(scm_error(StatusCode::BAD_REQUEST, -138, "Invalid CSR."));
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    let pem = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        lines.join("\n")
    );
    let key = rcgen::CertificateSigningRequestParams::from_pem(&pem)
        .map_err(|_| scm_error(StatusCode::BAD_REQUEST, -10, "Error while decoding CSR."))?
        .public_key;
    Ok((if cn.is_empty() { sans[0].clone() } else { cn }, sans, key))
}

use x509_parser::prelude::FromDer;

async fn enroll(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    api!(sim, method, uri, headers, {
        match enroll_answer(&sim, &headers, &body) {
            Ok(r) | Err(r) => r,
        }
    })
}

fn enroll_answer(sim: &Sim, headers: &HeaderMap, body: &str) -> Result<Response, Response> {
    let m = json_object(headers, body, true)?;
    let Some(Value::String(csr)) = m.get("csr") else {
        return Err(scm_error(
            StatusCode::BAD_REQUEST,
            -7,
            "csr is required but missing.",
        ));
    };
    check_custom_fields(&m, false)?;
    let comments = check_comments(&m)?;
    let (cn, mut sans, key) = parse_csr(csr)?;
    if let Some(Value::Array(extra)) = m.get("subjAltNames") {
        sans.extend(extra.iter().filter_map(Value::as_str).map(str::to_string));
    }
    let now = sim.now();
    let mut inner = sim.inner.lock().unwrap();
    let names: Vec<&str> = std::iter::once(cn.as_str())
        .chain(sans.iter().map(String::as_str))
        .collect();
    if let Some(r) = Sim::dcv_refusal(&inner, &names) {
        return Err(r);
    }
    let id = sim.requested_cert(
        &mut inner,
        &cn,
        &sans,
        now,
        now + chrono::Duration::days(sim.cfg.validity_days),
        sim.issued_at(),
        Some(&key),
    );
    inner.enrolled.push((cn.clone(), id.clone()));
    admin::requested_through_rest(&mut inner, &id, comments.as_deref().unwrap_or_default());
    inner.comments.push(comments.unwrap_or_default());
    Ok((
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"certId": id}).to_string(),
    )
        .into_response())
}

async fn replace(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    api!(sim, method, uri, headers, {
        let r = (|| {
            let m = json_object(&headers, &body, true)?;
            let Some(Value::String(csr)) = m.get("csr") else {
                return Err(scm_error(
                    StatusCode::BAD_REQUEST,
                    -7,
                    "csr is required but missing.",
                ));
            };
            let comments = check_comments(&m)?;
            let (cn, mut sans, key) = parse_csr(csr)?;
            match m.get("subjAltNames") {
                None => {}
                Some(Value::Array(extra)) if extra.iter().all(Value::is_string) => {
                    sans.extend(extra.iter().filter_map(Value::as_str).map(str::to_string));
                }
                Some(_) => {
                    return Err(scm_error(
                        StatusCode::BAD_REQUEST,
                        -1,
                        "subjAltNames must be an array of strings",
                    ))
                }
            }
            let now = sim.now();
            let mut inner = sim.inner.lock().unwrap();
            match inner.certs.get(&id) {
                None => return Err(wrong_id(&id)),
                Some(c) if c.revoked => {
                    return Err(scm_error(
                        StatusCode::BAD_REQUEST,
                        -110,
                        "Certificate has been revoked and cannot be replaced.",
                    ))
                }
                Some(_) => {}
            }
            let names: Vec<&str> = std::iter::once(cn.as_str())
                .chain(sans.iter().map(String::as_str))
                .collect();
            if let Some(r) = Sim::dcv_refusal(&inner, &names) {
                return Err(r);
            }
            let new_id = sim.new_cert(
                &mut inner,
                &cn,
                &sans,
                now,
                now + chrono::Duration::days(sim.cfg.validity_days),
                sim.issued_at(),
                Some(&key),
            );
            admin::replaced_through_rest(&mut inner, &id, &new_id, now);
            inner.replaced.push((id.clone(), new_id.clone()));
            inner.comments.push(comments.unwrap_or_default());
            Ok((
                StatusCode::OK,
                [("content-type", "application/json")],
                json!({"certId": new_id}).to_string(),
            )
                .into_response())
        })();
        match r {
            Ok(r) | Err(r) => r,
        }
    })
}

async fn revoke(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    api!(sim, method, uri, headers, {
        let r = (|| {
            let m = json_object(&headers, &body, true)?;
            match m.get("message") {
                Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 512 => {}
                Some(Value::String(_)) => {
                    return Err(scm_error(
                        StatusCode::BAD_REQUEST,
                        -1,
                        "message: size must be between 1 and 512",
                    ))
                }
                _ => {
                    return Err(scm_error(
                        StatusCode::BAD_REQUEST,
                        -7,
                        "message is required but missing.",
                    ))
                }
            }
            if m.get("reasonCode").is_some_and(|v| !v.is_i64()) {
                return Err(scm_error(
                    StatusCode::BAD_REQUEST,
                    -1,
                    "reasonCode must be an integer",
                ));
            }
            // RFC 5280 reasons SCM accepts (the spec: "not all reasons will be accepted").
            let reason = m.get("reasonCode").and_then(Value::as_i64).unwrap_or(0);
            if ![0, 1, 3, 4, 5].contains(&reason) {
                return Err(scm_error(
                    StatusCode::BAD_REQUEST,
                    -1,
                    "reasonCode is not an accepted revocation reason",
                ));
            }
            let mut inner = sim.inner.lock().unwrap();
            match inner.certs.get_mut(&id) {
                None => Err(wrong_id(&id)),
                Some(c) if c.revoked => Err(scm_error(
                    StatusCode::BAD_REQUEST,
                    -159,
                    "Your certificate already revoked",
                )),
                Some(c) if c.approval != Approval::Approved || sim.now() < c.ready_at => {
                    Err(scm_error(
                        StatusCode::BAD_REQUEST,
                        -102,
                        "Only issued certificates could be revoked.",
                    ))
                }
                Some(c) => {
                    c.revoked = true;
                    inner.revocations.push((id.clone(), reason));
                    Ok(StatusCode::OK.into_response())
                }
            }
        })();
        match r {
            Ok(r) | Err(r) => r,
        }
    })
}
