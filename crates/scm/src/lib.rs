//! Client for Sectigo Certificate Manager's REST Enrollment API (`/api/v1/certificates`),
//! with OAuth2 client credentials.
//!
//! One [`ScmClient`] per profile; request limits are shared per host through [`Limits`]. Every
//! answer goes through [`classify`] once; transient errors are retried with exponential backoff
//! and jitter within `[scm] retry_max_secs`, honouring `Retry-After`. Billable calls (renew,
//! enroll) are retried only when SCM cannot have acted on them.

pub mod classify;
mod error;
pub mod limit;
pub use sectigo_core::x509::pem;

use std::sync::Arc;
use std::time::Duration;

use backoff::ExponentialBackoff;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, warn};

pub use classify::{Call, Class, ScmErrorBody};
pub use error::ScmError;
pub use limit::{HostLimiter, Limits};
pub use pem::{parse_bundle, CertInfo, PemError};

use sectigo_core::names::CertId;
use sectigo_core::secret::Secret;

/// Largest response body read from SCM or the token endpoint.
const MAX_BODY: usize = 2 * 1024 * 1024;

/// Settings shared by all clients.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub timeout: Duration,
    pub retry_max: Duration,
    pub ca_bundle: Option<std::path::PathBuf>,
    /// For a `Retry-After` given as a date.
    pub clock: sectigo_core::clock::SharedClock,
}

/// The per-profile parameters of a client.
#[derive(Debug, Clone)]
pub struct ProfileCreds {
    pub profile: String,
    pub scm_url: String,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
}

/// The body of a renew call.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RenewRequest {
    #[serde(rename = "profileId", skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<i64>,
    #[serde(rename = "customFields")]
    pub custom_fields: Map<String, Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub comments: String,
    /// A CSR (Base64 DER) for a new key (`key_rotation = "new"`); `None`: SCM keeps the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
}

/// The request id of a billable call, as it is appended to `comments`: searching SCM for it
/// finds the request whose answer was lost.
pub fn request_tag(id: &str) -> String {
    format!("[sectigo-connector request {id}]")
}

/// `comments` with the request id appended, within SCM's 1024 characters: the profile's own
/// comments are shortened if they must be, never the id.
pub fn comments_with_request(comments: &str, request: &str) -> String {
    let tag = request_tag(request);
    let room = sectigo_core::config::MAX_COMMENTS.saturating_sub(tag.chars().count() + 1);
    let own: String = comments.chars().take(room).collect();
    if own.is_empty() {
        tag
    } else {
        format!("{own} {tag}")
    }
}

/// The body of an enroll call (SSL).
#[derive(Debug, Clone, Default, Serialize)]
pub struct EnrollRequest {
    /// Single-line Base64 PKCS#10, no BEGIN/END lines.
    pub csr: String,
    #[serde(rename = "subjAltNames", skip_serializing_if = "Vec::is_empty")]
    pub subj_alt_names: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub comments: String,
    #[serde(rename = "customFields")]
    pub custom_fields: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct CertIdResponse {
    #[serde(rename = "certId")]
    cert_id: Value,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A request slot on an SCM host, taken ahead of a billable call (see [`ScmClient::reserve`]).
pub struct Reserved(limit::Permit);

struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

/// A downloaded certificate: the PEM as SCM sent it, and what it says.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub pem: String,
    pub info: CertInfo,
}

pub struct ScmClient {
    http: reqwest::Client,
    creds: ProfileCreds,
    settings: ClientSettings,
    limits: Arc<Limits>,
    token: Mutex<Option<CachedToken>>,
}

/// The HTTP client for SCM could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("[scm] ca_bundle {path}: {source}")]
    CaBundleUnreadable {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("[scm] ca_bundle {path}: not a PEM CA bundle: {source}")]
    CaBundleInvalid {
        path: std::path::PathBuf,
        source: reqwest::Error,
    },
    #[error("[scm] ca_bundle {path}: holds no certificate")]
    CaBundleEmpty { path: std::path::PathBuf },
    #[error("HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// Builds the HTTP client all SCM calls use: rustls with public roots, plus the optional
/// private CA bundle; no redirects (a credential is never sent to another host).
pub fn http_client(settings: &ClientSettings) -> Result<reqwest::Client, ClientError> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sectigo-connector/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &settings.ca_bundle {
        let pem = std::fs::read(path).map_err(|source| ClientError::CaBundleUnreadable {
            path: path.clone(),
            source,
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
            ClientError::CaBundleInvalid {
                path: path.clone(),
                source,
            }
        })?;
        if certs.is_empty() {
            return Err(ClientError::CaBundleEmpty { path: path.clone() });
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(ClientError::Build)
}

enum Op<'a> {
    Get(&'a str),
    Post(&'a str, Value),
    Delete(&'a str, Value),
}

struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<Duration>,
    www_authenticate: Option<String>,
    body: Vec<u8>,
}

impl ScmClient {
    pub fn new(
        http: reqwest::Client,
        creds: ProfileCreds,
        settings: ClientSettings,
        limits: Arc<Limits>,
    ) -> Self {
        ScmClient {
            http,
            creds,
            settings,
            limits,
            token: Mutex::new(None),
        }
    }

    pub fn profile(&self) -> &str {
        &self.creds.profile
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.creds.scm_url.trim_end_matches('/'), path)
    }

    fn limiter_for(&self, url: &str) -> Arc<HostLimiter> {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
            })
            .unwrap_or_default();
        self.limits.for_host(&host)
    }

    /// Downloads a certificate (PEM, leaf then chain). `Pending` while SCM has not issued it.
    pub async fn download(&self, cert_id: &str) -> Result<Downloaded, ScmError> {
        let path = format!(
            "/api/v1/certificates/{}",
            sectigo_core::http::path_segment(cert_id)
        );
        let a = self.call_retrying(&Op::Get(&path), Call::Download).await?;
        let pem = String::from_utf8(a.body).map_err(|_| ScmError::Malformed {
            status: a.status,
            what: "the certificate is not UTF-8 text".into(),
        })?;
        let info = parse_bundle(pem.as_bytes()).map_err(|e| ScmError::Malformed {
            status: a.status,
            what: format!("{e} (content type {:?})", a.content_type),
        })?;
        Ok(Downloaded { pem, info })
    }

    /// The certificate's status string (`Issued`, `Applied`, ...).
    pub async fn status(&self, cert_id: &str) -> Result<String, ScmError> {
        let path = format!(
            "/api/v1/certificates/{}/status",
            sectigo_core::http::path_segment(cert_id)
        );
        let a = self.call_retrying(&Op::Get(&path), Call::Status).await?;
        let v: Value = json_body(&a)?;
        Ok(v.get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// Renews a certificate. **Billable.** Returns the new certificate id.
    pub async fn renew(&self, cert_id: &str, req: &RenewRequest) -> Result<CertId, ScmError> {
        self.renew_reserved(None, cert_id, req).await
    }

    /// Gets a valid access token and a request slot on the SCM host, to hold while a billable
    /// call is journaled: the waits (rate limit, token endpoint) then come before the journal
    /// entry, and the window in which a crash leaves an unknown outcome is the call alone.
    pub async fn reserve(&self) -> Result<Reserved, ScmError> {
        self.token(false).await?;
        Ok(Reserved(self.limiter_for(&self.url("/")).acquire().await))
    }

    /// [`ScmClient::renew`], sending the first attempt in a slot taken by [`ScmClient::reserve`].
    pub async fn renew_reserved(
        &self,
        reserved: Option<Reserved>,
        cert_id: &str,
        req: &RenewRequest,
    ) -> Result<CertId, ScmError> {
        let path = format!(
            "/api/v1/certificates/{}/renew",
            sectigo_core::http::path_segment(cert_id)
        );
        let body = serde_json::to_value(req).expect("serializable");
        let a = self
            .call_retrying_in(&Op::Post(&path, body), Call::Renew, reserved)
            .await?;
        cert_id_of(&a)
    }

    /// Enrolls a new certificate from a CSR. **Billable.** Returns the new certificate id.
    pub async fn enroll(&self, req: &EnrollRequest) -> Result<CertId, ScmError> {
        self.enroll_reserved(None, req).await
    }

    /// [`ScmClient::enroll`], sending the first attempt in a slot taken by [`ScmClient::reserve`].
    pub async fn enroll_reserved(
        &self,
        reserved: Option<Reserved>,
        req: &EnrollRequest,
    ) -> Result<CertId, ScmError> {
        let body = serde_json::to_value(req).expect("serializable");
        let a = self
            .call_retrying_in(
                &Op::Post("/api/v1/certificates", body),
                Call::Enroll,
                reserved,
            )
            .await?;
        cert_id_of(&a)
    }

    /// Replaces a certificate with one for a new CSR. Returns the new certificate id.
    pub async fn replace(
        &self,
        cert_id: &str,
        csr: &str,
        comments: &str,
    ) -> Result<CertId, ScmError> {
        let path = format!(
            "/api/v1/certificates/{}/replace",
            sectigo_core::http::path_segment(cert_id)
        );
        let mut body = serde_json::json!({ "csr": csr });
        if !comments.is_empty() {
            body["comments"] = Value::String(comments.to_string());
        }
        let a = self
            .call_retrying(&Op::Post(&path, body), Call::Replace)
            .await?;
        cert_id_of(&a)
    }

    /// Revokes a certificate. `reason_code` per RFC 5280 (0 unspecified, 1 keyCompromise,
    /// 3 affiliationChanged, 4 superseded, 5 cessationOfOperation).
    pub async fn revoke(
        &self,
        cert_id: &str,
        message: &str,
        reason_code: i32,
    ) -> Result<(), ScmError> {
        let path = format!(
            "/api/v1/certificates/{}",
            sectigo_core::http::path_segment(cert_id)
        );
        let body = serde_json::json!({ "message": message, "reasonCode": reason_code });
        self.call_retrying(&Op::Delete(&path, body), Call::Revoke)
            .await
            .map(|_| ())
    }

    /// One call with retries. Calls that bill nothing retry every transient error; billable
    /// ones only those where SCM cannot have acted on the request.
    async fn call_retrying(&self, op: &Op<'_>, call: Call) -> Result<Answer, ScmError> {
        self.call_retrying_in(op, call, None).await
    }

    /// The same; the first attempt uses `reserved` when given.
    async fn call_retrying_in(
        &self,
        op: &Op<'_>,
        call: Call,
        reserved: Option<Reserved>,
    ) -> Result<Answer, ScmError> {
        let idempotent = !call.is_billable();
        let reserved = std::sync::Mutex::new(reserved);
        let policy = ExponentialBackoff {
            initial_interval: Duration::from_millis(500),
            max_interval: Duration::from_secs(60),
            max_elapsed_time: Some(self.settings.retry_max),
            ..Default::default()
        };
        let profile = self.creds.profile.clone();
        backoff::future::retry_notify(
            policy,
            || async {
                let slot = reserved.lock().expect("reserved lock").take();
                match self.call_authed(op, call, slot).await {
                    Ok(a) => Ok(a),
                    Err(e @ ScmError::Transient { .. }) if !idempotent && e.maybe_billed() => {
                        Err(backoff::Error::permanent(e))
                    }
                    Err(ScmError::Transient { what, retry_after: Some(d), maybe_processed }) => {
                        Err(backoff::Error::retry_after(
                            ScmError::Transient { what, retry_after: Some(d), maybe_processed },
                            d,
                        ))
                    }
                    Err(e @ ScmError::Transient { .. }) => Err(backoff::Error::transient(e)),
                    Err(e) => Err(backoff::Error::permanent(e)),
                }
            },
            |e: ScmError, d: Duration| {
                warn!(profile = %profile, "SCM call failed, retrying in {:.1}s: {e}", d.as_secs_f64());
            },
        )
        .await
    }

    /// One call with a bearer token; on 401, a fresh token and one more try.
    async fn call_authed(
        &self,
        op: &Op<'_>,
        call: Call,
        slot: Option<Reserved>,
    ) -> Result<Answer, ScmError> {
        let token = self.token(false).await?;
        let a = self.send(op, &token, slot).await?;
        if a.status != 401 {
            return finish(call, a);
        }
        if let Some(uri) = a.www_authenticate_uri() {
            warn!(profile = %self.creds.profile, authorization_uri = %uri,
                "SCM refused the access token; its WWW-Authenticate names this token URL (configured: {})",
                self.creds.token_url);
        }
        let token = self.token(true).await?;
        let a = self.send(op, &token, None).await?;
        if a.status == 401 {
            return Err(ScmError::Auth(format!(
                "SCM refused a fresh access token for client_id {:?} (HTTP 401); check the REST account's permissions and the profile's token_url",
                self.creds.client_id
            )));
        }
        finish(call, a)
    }

    async fn send(
        &self,
        op: &Op<'_>,
        token: &Secret,
        slot: Option<Reserved>,
    ) -> Result<Answer, ScmError> {
        let (method, path, body) = match op {
            Op::Get(p) => (reqwest::Method::GET, *p, None),
            Op::Post(p, b) => (reqwest::Method::POST, *p, Some(b)),
            Op::Delete(p, b) => (reqwest::Method::DELETE, *p, Some(b)),
        };
        let url = self.url(path);
        let _permit = match slot {
            Some(Reserved(p)) => p,
            None => self.limiter_for(&url).acquire().await,
        };
        let mut rb = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(token.expose())
            .header(
                reqwest::header::ACCEPT,
                if matches!(op, Op::Get(p) if !p.ends_with("/status")) {
                    "application/x-pem-file, application/json;q=0.5"
                } else {
                    "application/json"
                },
            );
        if let Some(b) = body {
            rb = rb.json(b);
        }
        debug!(profile = %self.creds.profile, "SCM {method} {path}");
        let resp = rb.send().await.map_err(|e| transport_error(&e, &url))?;
        read_answer(resp, &*self.settings.clock).await
    }

    /// A valid access token: the cached one unless `refresh` or about to expire.
    async fn token(&self, refresh: bool) -> Result<Secret, ScmError> {
        let mut cached = self.token.lock().await;
        if !refresh {
            if let Some(t) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
                return Ok(t.token.clone());
            }
        }
        let t = self.fetch_token().await?;
        let token = t.token.clone();
        *cached = Some(t);
        Ok(token)
    }

    /// Asks the token endpoint for a token, retrying for up to `retry_max`. Every failure is
    /// [`ScmError::Auth`] (the credentials were refused) or [`ScmError::TokenUnavailable`]:
    /// nothing was sent to SCM, so nothing can have been billed.
    async fn fetch_token(&self) -> Result<CachedToken, ScmError> {
        let url = &self.creds.token_url;
        let limiter = self.limiter_for(url);
        let policy = ExponentialBackoff {
            initial_interval: Duration::from_millis(500),
            max_elapsed_time: Some(self.settings.retry_max),
            ..Default::default()
        };
        let unavailable = |what: String, retry_after: Option<Duration>| {
            let e = ScmError::TokenUnavailable { what, retry_after };
            match retry_after {
                Some(d) => backoff::Error::retry_after(e, d),
                None => backoff::Error::transient(e),
            }
        };
        backoff::future::retry(policy, || async {
            let _permit = limiter.acquire().await;
            let resp = self
                .http
                .post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", self.creds.client_id.as_str()),
                    ("client_secret", self.creds.client_secret.expose()),
                ])
                .send()
                .await
                .map_err(|e| unavailable(transport_error(&e, url).to_string(), None))?;
            let a = read_answer(resp, &*self.settings.clock)
                .await
                .map_err(|e| unavailable(e.to_string(), None))?;
            match parse_token(a.status, &a.body) {
                Ok((token, life)) => {
                    debug!(profile = %self.creds.profile, "new SCM access token, valid {}s", life.as_secs());
                    // Refresh a little before expiry: 30 s, or a tenth of short lifetimes.
                    let early = Duration::from_secs(30).min(life / 10);
                    let now = Instant::now();
                    Ok(CachedToken {
                        token,
                        refresh_at: now.checked_add(life - early).unwrap_or(now),
                    })
                }
                Err(TokenAnswer::Refused { status, error, description }) => {
                    Err(backoff::Error::permanent(ScmError::Auth(format!(
                        "the token endpoint {url} refused client_id {:?} (HTTP {status}: {error} {description}); check client_id and client_secret",
                        self.creds.client_id
                    ))))
                }
                Err(TokenAnswer::Unavailable(what)) => Err(unavailable(
                    format!("token endpoint {url}: {what}"),
                    a.retry_after(),
                )),
            }
        })
        .await
    }
}

/// Longest an access token is kept, whatever `expires_in` says.
pub const MAX_TOKEN_LIFE: Duration = Duration::from_secs(86_400);

/// Why a token endpoint's answer gives no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenAnswer {
    /// The credentials were refused (HTTP 400, 401, 403).
    Refused {
        status: u16,
        error: String,
        description: String,
    },
    /// Anything else: try again later.
    Unavailable(String),
}

/// The token and its lifetime from a token endpoint's answer. Pure; `expires_in` is capped at
/// [`MAX_TOKEN_LIFE`] (absent: 300 s), so no answer can overflow a deadline.
pub fn parse_token(status: u16, body: &[u8]) -> Result<(Secret, Duration), TokenAnswer> {
    match status {
        200..=299 => {
            let t: TokenResponse = serde_json::from_slice(body)
                .map_err(|e| TokenAnswer::Unavailable(format!("answer not understood: {e}")))?;
            if t.access_token.is_empty() {
                return Err(TokenAnswer::Unavailable("empty access_token".into()));
            }
            let life = Duration::from_secs(t.expires_in.unwrap_or(300)).min(MAX_TOKEN_LIFE);
            Ok((Secret::new(t.access_token), life))
        }
        400 | 401 | 403 => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let text = |k: &str, default: &str| {
                let s = v.get(k).and_then(Value::as_str).unwrap_or(default);
                sectigo_core::text::bounded(&sectigo_core::text::Escaped(s).to_string(), 200)
            };
            Err(TokenAnswer::Refused {
                status,
                error: text("error", "refused"),
                description: text("error_description", ""),
            })
        }
        s => Err(TokenAnswer::Unavailable(format!("HTTP {s}"))),
    }
}

impl Answer {
    fn www_authenticate_uri(&self) -> Option<String> {
        self.www_authenticate
            .as_deref()
            .and_then(classify::authorization_uri)
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// Reads status, the headers that matter and a bounded body.
async fn read_answer(
    mut resp: reqwest::Response,
    clock: &dyn sectigo_core::clock::Clock,
) -> Result<Answer, ScmError> {
    let status = resp.status().as_u16();
    let h = resp.headers();
    let text = |name: reqwest::header::HeaderName| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = text(reqwest::header::CONTENT_TYPE).unwrap_or_default();
    let retry_after = text(reqwest::header::RETRY_AFTER)
        .and_then(|v| classify::parse_retry_after(&v, clock.now()));
    let www_authenticate = text(reqwest::header::WWW_AUTHENTICATE);
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > MAX_BODY {
                    return Err(ScmError::Malformed {
                        status,
                        what: format!("the body is larger than {} bytes", MAX_BODY),
                    });
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(ScmError::Transient {
                    what: format!(
                        "the connection broke while reading the answer (HTTP {status}): {}",
                        sectigo_core::http::error_chain(&e)
                    ),
                    retry_after: None,
                    maybe_processed: true,
                })
            }
        }
    }
    Ok(Answer {
        status,
        content_type,
        retry_after,
        www_authenticate,
        body,
    })
}

/// Classifies an answer: the answer itself on success, the classified error otherwise.
fn finish(call: Call, a: Answer) -> Result<Answer, ScmError> {
    check_answer(call, a.status, &a.body, a.retry_after).map(|()| a)
}

/// What an SCM answer (status, body, Retry-After) to `call` means: `Ok` for success, else the
/// classified error. Pure; the client and the fuzzers use it.
pub fn check_answer(
    call: Call,
    status: u16,
    raw: &[u8],
    retry_after: Option<Duration>,
) -> Result<(), ScmError> {
    let body: Option<ScmErrorBody> = serde_json::from_slice(raw).ok();
    match classify::classify(call, status, body.as_ref(), retry_after) {
        Class::Success => Ok(()),
        Class::Pending => {
            let b = body.unwrap_or_default();
            Err(ScmError::Pending {
                code: b.code,
                description: b.description,
            })
        }
        Class::Transient {
            retry_after,
            maybe_processed,
        } => Err(ScmError::Transient {
            what: format!(
                "SCM answered HTTP {}{}",
                status,
                describe(body.as_ref(), raw)
            ),
            retry_after,
            maybe_processed,
        }),
        Class::Unauthorized => Err(ScmError::Auth(format!(
            "HTTP 401{}",
            describe(body.as_ref(), raw)
        ))),
        Class::Refused { action } => {
            let b = body.unwrap_or_default();
            Err(ScmError::Refused {
                call: call.name(),
                code: b.code,
                description: b.description,
                action,
            })
        }
        Class::Revoked => Err(ScmError::Revoked {
            description: body.map(|b| b.description).unwrap_or_default(),
        }),
        Class::AlreadyRevoked => Err(ScmError::AlreadyRevoked {
            description: body.map(|b| b.description).unwrap_or_default(),
        }),
        Class::Permanent => Err(ScmError::Permanent {
            status,
            code: body.as_ref().map(|b| b.code),
            description: body.map(|b| b.description).unwrap_or_else(|| snippet(raw)),
        }),
    }
}

fn describe(body: Option<&ScmErrorBody>, raw: &[u8]) -> String {
    match body {
        Some(b) => format!(" (code {}: {})", b.code, b.description),
        None if raw.is_empty() => String::new(),
        None => format!(" ({})", snippet(raw)),
    }
}

/// The start of a body that is not SCM's JSON (an HTML error page, say), for messages.
fn snippet(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(&raw[..raw.len().min(120)]);
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("unexpected body {:?}", s.trim())
}

fn json_body(a: &Answer) -> Result<Value, ScmError> {
    serde_json::from_slice(&a.body).map_err(|e| ScmError::Malformed {
        status: a.status,
        what: format!("expected JSON: {e}; got {}", snippet(&a.body)),
    })
}

fn cert_id_of(a: &Answer) -> Result<CertId, ScmError> {
    parse_cert_id(a.status, &a.body)
}

/// The new certificate id of a successful renew or enroll answer (`{"certId": ...}`), checked
/// as every certificate id is (it goes into paths, URLs and log lines).
pub fn parse_cert_id(status: u16, body: &[u8]) -> Result<CertId, ScmError> {
    let r: CertIdResponse = serde_json::from_slice(body).map_err(|e| ScmError::Malformed {
        status,
        what: format!("expected {{\"certId\": ...}}: {e}; got {}", snippet(body)),
    })?;
    let text = match r.cert_id {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        other => {
            return Err(ScmError::Malformed {
                status,
                what: format!("certId is {}", snippet(other.to_string().as_bytes())),
            })
        }
    };
    CertId::parse(&text).map_err(|e| ScmError::Malformed {
        status,
        what: format!("certId: {e}"),
    })
}

fn transport_error(e: &reqwest::Error, url: &str) -> ScmError {
    // Connection never established: SCM cannot have seen the request.
    let maybe_processed = !e.is_connect() && !e.is_builder();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    ScmError::Transient {
        what: format!(
            "request to {host} {kind}: {}",
            sectigo_core::http::error_chain(e)
        ),
        retry_after: None,
        maybe_processed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_fit_in_the_comments() {
        assert_eq!(
            comments_with_request("renewed by cron", "r-1a2b3c4d5e"),
            "renewed by cron [sectigo-connector request r-1a2b3c4d5e]"
        );
        assert_eq!(
            comments_with_request("", "r-1"),
            "[sectigo-connector request r-1]"
        );
        let long = "é".repeat(1024);
        let c = comments_with_request(&long, "r-1a2b3c4d5e");
        assert_eq!(c.chars().count(), 1024);
        assert!(c.ends_with("[sectigo-connector request r-1a2b3c4d5e]"));
    }

    #[test]
    fn token_answers_are_bounded_and_never_panic() {
        let (t, life) = parse_token(
            200,
            br#"{"access_token":"abc","expires_in":18446744073709551615}"#,
        )
        .unwrap();
        assert_eq!(t.expose(), "abc");
        assert_eq!(life, MAX_TOKEN_LIFE);
        let (_, life) = parse_token(200, br#"{"access_token":"abc"}"#).unwrap();
        assert_eq!(life, Duration::from_secs(300));
        let (_, life) = parse_token(200, br#"{"access_token":"abc","expires_in":0}"#).unwrap();
        assert_eq!(life, Duration::ZERO);
        assert!(matches!(
            parse_token(200, br#"{"access_token":"abc","expires_in":-5}"#),
            Err(TokenAnswer::Unavailable(_))
        ));
        assert!(matches!(
            parse_token(200, br#"{"access_token":""}"#),
            Err(TokenAnswer::Unavailable(_))
        ));
        assert!(matches!(
            parse_token(401, br#"{"error":"invalid_client","error_description":"bad\nline"}"#),
            Err(TokenAnswer::Refused { status: 401, ref description, .. }) if !description.contains('\n')
        ));
        assert!(matches!(
            parse_token(503, b""),
            Err(TokenAnswer::Unavailable(_))
        ));
        // The longest lifetime still makes a deadline.
        let now = Instant::now();
        assert!(now.checked_add(MAX_TOKEN_LIFE).is_some());
    }
}
