//! Client for Sectigo Certificate Manager's REST Enrollment API (`/api/v1/certificates`),
//! with OAuth2 client credentials, and for its Admin API's SSL records ([`admin`]).
//!
//! One [`ScmClient`] per profile; request limits are shared per host through [`Limits`]. Every
//! answer goes through [`classify`] once; transient errors are retried with exponential backoff
//! and jitter within `[scm] retry_max_secs`, honouring `Retry-After`. Billable calls (renew,
//! enroll) are retried only when SCM cannot have acted on them. Both clients send through one
//! session type (token, limits, retries, reading answers): `session.rs`.

pub mod admin;
pub mod classify;
mod error;
pub mod health;
pub mod limit;
mod session;
pub use sectigo_core::x509::pem;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use classify::{Call, Class, ScmErrorBody};
pub use error::ScmError;
pub use health::{HostEvent, HostStatus, Observer};
pub use limit::{HostLimiter, Limits};
pub use pem::{parse_bundle, CertInfo, PemError};

use sectigo_core::names::CertId;
use sectigo_core::secret::Secret;
use session::{Account, Answer, Api, Op, Session};

/// Largest response body read from SCM or the token endpoint.
pub(crate) const MAX_BODY: usize = 2 * 1024 * 1024;

/// Settings shared by all clients.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub timeout: Duration,
    pub retry_max: Duration,
    pub ca_bundle: Option<std::path::PathBuf>,
    /// For a `Retry-After` given as a date.
    pub clock: sectigo_core::clock::SharedClock,
    /// A client for a command a person waits on (`check-config --online`), see
    /// [`ClientSettings::interactive`]; `false`: the daemon's.
    pub interactive: bool,
}

/// How long an interactive client retries transient errors (a 503, a dropped connection):
/// with the request timeout, what a person waits at most for one endpoint.
pub const INTERACTIVE_RETRY: Duration = Duration::from_secs(3);

impl ClientSettings {
    /// The settings of a command a person waits on: a token endpoint that cannot be reached
    /// (connection refused, a name that does not resolve) is reported at once, and other
    /// transient errors are retried for [`INTERACTIVE_RETRY`] at most instead of `retry_max`
    /// (the daemon's, minutes). Each endpoint answers or is reported within the request
    /// timeout plus a few seconds.
    pub fn interactive(mut self) -> Self {
        self.interactive = true;
        self.retry_max = self.retry_max.min(INTERACTIVE_RETRY);
        self
    }
}

/// The per-profile parameters of a client.
#[derive(Debug, Clone)]
pub struct ProfileCreds {
    pub profile: String,
    pub scm_url: String,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// The `client_secret_file` the secret came from: read again when the token endpoint
    /// refuses the secret, so that a fixed file takes effect without a reload.
    pub client_secret_file: Option<std::path::PathBuf>,
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
pub struct Reserved {
    pub(crate) permit: limit::Permit,
    /// The call's admission to the host, taken with the slot: the call never waits for a
    /// probe's verdict while it holds a slot the probe may need.
    pub(crate) admission: health::Admission,
}

/// A downloaded certificate: the PEM as SCM sent it, and what it says.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub pem: String,
    pub info: CertInfo,
}

pub struct ScmClient {
    session: Session,
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

impl ScmClient {
    pub fn new(
        http: reqwest::Client,
        creds: ProfileCreds,
        settings: ClientSettings,
        limits: Arc<Limits>,
    ) -> Self {
        let account = Account {
            profile: creds.profile,
            base_url: creds.scm_url,
            token_url: creds.token_url,
            client_id: creds.client_id,
            client_secret: creds.client_secret,
            client_secret_file: creds.client_secret_file,
        };
        let clock = settings.clock.clone();
        ScmClient {
            session: Session::new(http, Api::Enrollment, account, settings, limits, clock),
        }
    }

    pub fn profile(&self) -> &str {
        &self.session.account.profile
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

    /// Whether SCM's host or its token endpoint's cannot be reached now: an error that came
    /// with it is SCM's outage, not the call's own.
    pub fn host_down(&self) -> bool {
        self.session.host_down()
    }

    /// Gets a valid access token and a request slot on the SCM host, to hold while a billable
    /// call is journaled: the waits (rate limit, token endpoint) then come before the journal
    /// entry, and the window in which a crash leaves an unknown outcome is the call alone.
    /// Fails at once, sending nothing, when the host is known to be down.
    pub async fn reserve(&self) -> Result<Reserved, ScmError> {
        self.session.reserve().await
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

    /// One call with retries (see [`Session::call_retrying_in`]).
    async fn call_retrying(&self, op: &Op<'_>, call: Call) -> Result<Answer, ScmError> {
        self.session.call_retrying_in(op, call, None).await
    }

    /// The same; the first attempt uses `reserved` when given.
    async fn call_retrying_in(
        &self,
        op: &Op<'_>,
        call: Call,
        reserved: Option<Reserved>,
    ) -> Result<Answer, ScmError> {
        self.session.call_retrying_in(op, call, reserved).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

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
