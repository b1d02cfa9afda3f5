//! One API account on one SCM host, shared by the enrollment client ([`crate::ScmClient`]) and
//! the Admin API client (`admin.rs`): the OAuth2 client-credentials token (cached,
//! refreshed a little before it expires, fetched again once on a 401), the per-host request
//! limits, the retry loop (exponential backoff with jitter within `retry_max`, honouring
//! `Retry-After`), and the bounded reading of every answer, classified once by
//! [`crate::classify`].
//!
//! Invariant: a billable call is never repeated when SCM may have acted on it
//! ([`ScmError::maybe_billed`]); every other transient error is retried.

use std::sync::Arc;
use std::time::Duration;

use backoff::ExponentialBackoff;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, warn};

use sectigo_core::clock::SharedClock;
use sectigo_core::secret::Secret;

use crate::classify::{self, Call};
use crate::{check_answer, parse_token, ClientSettings, HostLimiter, Limits, Reserved, ScmError};
use crate::{TokenAnswer, MAX_BODY};

/// Which API a session talks to: its name in messages, and what an operator checks when its
/// credentials are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// The REST Enrollment API (`/api/v1/certificates`), the profile's REST account.
    Enrollment,
    /// The Admin API (`/api/ssl/v1`), the profile's `[admin]` account.
    Admin,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Enrollment => "SCM",
            Api::Admin => "SCM's Admin API",
        }
    }

    /// What to check when the token endpoint refuses the credentials.
    fn refused_credentials(self) -> &'static str {
        match self {
            Api::Enrollment => "check client_id and client_secret",
            Api::Admin => "check [admin] client_id and client_secret (the admin API account's)",
        }
    }

    /// What to check when the API refuses a fresh token.
    fn refused_token(self) -> &'static str {
        match self {
            Api::Enrollment => {
                "check the REST account's permissions and the profile's token_url"
            }
            Api::Admin => {
                "check that it is an admin API account (not the REST account), its role, and the profile's [admin] token_url"
            }
        }
    }
}

/// The account a session uses.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    /// The profile it serves (a log field).
    pub profile: String,
    /// Requests go to `base_url` + path.
    pub base_url: String,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
}

struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

/// A request. The path may carry a query string (already encoded).
pub(crate) enum Op<'a> {
    Get(&'a str),
    Post(&'a str, Value),
    Delete(&'a str, Value),
}

/// An answer: status, the headers that matter, and a body of at most [`MAX_BODY`] bytes.
pub(crate) struct Answer {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<Duration>,
    pub www_authenticate: Option<String>,
    /// `X-Total-Count` (the Admin API's list), as sent.
    pub total_count: Option<String>,
    pub body: Vec<u8>,
}

pub(crate) struct Session {
    http: reqwest::Client,
    api: Api,
    pub(crate) account: Account,
    settings: ClientSettings,
    limits: Arc<Limits>,
    /// For `Retry-After` given as an HTTP date.
    clock: SharedClock,
    token: Mutex<Option<CachedToken>>,
}

impl Session {
    pub(crate) fn new(
        http: reqwest::Client,
        api: Api,
        account: Account,
        settings: ClientSettings,
        limits: Arc<Limits>,
        clock: SharedClock,
    ) -> Self {
        Session {
            http,
            api,
            account,
            settings,
            limits,
            clock,
            token: Mutex::new(None),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.account.base_url.trim_end_matches('/'), path)
    }

    /// The limiter of `url`'s host (and port), shared with every client of that host.
    pub(crate) fn limiter_for(&self, url: &str) -> Arc<HostLimiter> {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
            })
            .unwrap_or_default();
        self.limits.for_host(&host)
    }

    /// A valid token and a request slot on the API's host (see [`crate::ScmClient::reserve`]).
    pub(crate) async fn reserve(&self) -> Result<Reserved, ScmError> {
        self.token(false).await?;
        Ok(Reserved(self.limiter_for(&self.url("/")).acquire().await))
    }

    /// One call with retries. Calls that bill nothing retry every transient error; billable
    /// ones only those where SCM cannot have acted on the request. The first attempt uses
    /// `reserved` when given.
    pub(crate) async fn call_retrying_in(
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
        let profile = self.account.profile.clone();
        let api = self.api.name();
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
                warn!(profile = %profile, "{api} call failed, retrying in {:.1}s: {e}", d.as_secs_f64());
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
        let a = self.send(op, call, &token, slot).await?;
        if a.status != 401 {
            return finish(call, a);
        }
        if let Some(uri) = a.www_authenticate_uri() {
            warn!(profile = %self.account.profile, authorization_uri = %uri,
                "{} refused the access token; its WWW-Authenticate names this token URL (configured: {})",
                self.api.name(), self.account.token_url);
        }
        let token = self.token(true).await?;
        let a = self.send(op, call, &token, None).await?;
        if a.status == 401 {
            return Err(ScmError::Auth(format!(
                "{} refused a fresh access token for client_id {:?} (HTTP 401); {}",
                self.api.name(),
                self.account.client_id,
                self.api.refused_token()
            )));
        }
        finish(call, a)
    }

    async fn send(
        &self,
        op: &Op<'_>,
        call: Call,
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
                if call == Call::Download {
                    "application/x-pem-file, application/json;q=0.5"
                } else {
                    "application/json"
                },
            );
        if let Some(b) = body {
            rb = rb.json(b);
        }
        debug!(profile = %self.account.profile, "{} {method} {path}", self.api.name());
        let resp = rb.send().await.map_err(|e| transport_error(&e, &url))?;
        read_answer(resp, &self.clock).await
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
        let url = &self.account.token_url;
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
                    ("client_id", self.account.client_id.as_str()),
                    ("client_secret", self.account.client_secret.expose()),
                ])
                .send()
                .await
                .map_err(|e| unavailable(transport_error(&e, url).to_string(), None))?;
            let a = read_answer(resp, &self.clock)
                .await
                .map_err(|e| unavailable(e.to_string(), None))?;
            match parse_token(a.status, &a.body) {
                Ok((token, life)) => {
                    debug!(profile = %self.account.profile, "new {} access token, valid {}s", self.api.name(), life.as_secs());
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
                        "the token endpoint {url} refused client_id {:?} (HTTP {status}: {error} {description}); {}",
                        self.account.client_id,
                        self.api.refused_credentials()
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
async fn read_answer(mut resp: reqwest::Response, clock: &SharedClock) -> Result<Answer, ScmError> {
    let status = resp.status().as_u16();
    let h = resp.headers();
    let text = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = text(reqwest::header::CONTENT_TYPE.as_str()).unwrap_or_default();
    let retry_after = text(reqwest::header::RETRY_AFTER.as_str())
        .and_then(|v| classify::parse_retry_after(&v, clock.now()));
    let www_authenticate = text(reqwest::header::WWW_AUTHENTICATE.as_str());
    let total_count = text("x-total-count");
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
        total_count,
        body,
    })
}

/// Classifies an answer: the answer itself on success, the classified error otherwise.
fn finish(call: Call, a: Answer) -> Result<Answer, ScmError> {
    check_answer(call, a.status, &a.body, a.retry_after).map(|()| a)
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
