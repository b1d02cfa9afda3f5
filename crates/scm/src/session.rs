//! One API account on one SCM host, shared by the enrollment client ([`crate::ScmClient`]) and
//! the Admin API client (`admin.rs`): the OAuth2 client-credentials token (cached,
//! refreshed a little before it expires, fetched again once on a 401), the per-host request
//! limits, the retry loop (exponential backoff with jitter within `retry_max`, honouring
//! `Retry-After`), and the bounded reading of every answer, classified once by
//! [`crate::classify`].
//!
//! Invariant: a billable call is never repeated when SCM may have acted on it
//! ([`ScmError::maybe_billed`]); every other transient error is retried.
//!
//! A secret from a `client_secret_file` is read from that file again when the token endpoint
//! refuses it, before the refusal is reported: an operator who fixes the file sees the fix
//! taken at the next call, without a reload, and a refusal says that the file was read again.

use std::sync::Arc;
use std::time::Duration;

use backoff::ExponentialBackoff;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use sectigo_core::clock::SharedClock;
use sectigo_core::secret::Secret;

use crate::classify::{self, Call};
use crate::health::{Admission, HostEvent};
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

    /// The key naming the secret's file, for messages.
    fn secret_file_key(self) -> &'static str {
        match self {
            Api::Enrollment => "client_secret_file",
            Api::Admin => "[admin] client_secret_file",
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
    /// The secret as first read; the session keeps the current one (`Session::secret`).
    pub client_secret: Secret,
    /// The file the secret came from, read again when the token endpoint refuses the secret.
    pub client_secret_file: Option<std::path::PathBuf>,
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
    /// The token endpoint refused the credentials: when, and what it said. Not asked again
    /// for every certificate: until `probe_every` has passed.
    refused: std::sync::Mutex<Option<(Instant, ScmError)>>,
    /// The secret sent to the token endpoint: the account's, or what its file holds since it
    /// was read again.
    secret: std::sync::Mutex<Secret>,
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
            settings,
            limits,
            clock,
            token: Mutex::new(None),
            refused: std::sync::Mutex::new(None),
            secret: std::sync::Mutex::new(account.client_secret.clone()),
            account,
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
    /// Fails at once, sending nothing, when the API's host is known to be down.
    pub(crate) async fn reserve(&self) -> Result<Reserved, ScmError> {
        let limiter = self.limiter_for(&self.url("/"));
        let mut admission = limiter.health.admit(self.probe_every()).await?;
        self.token(false, Some(&mut admission)).await?;
        Ok(Reserved {
            permit: limiter.acquire().await,
            admission,
        })
    }

    /// Whether the API's host or the token endpoint's is down now (an error of this session
    /// was SCM being unreachable, not the call's own).
    pub(crate) fn host_down(&self) -> bool {
        let down = |url: &str| self.limiter_for(url).health.status().down_since.is_some();
        down(&self.url("/")) || down(&self.account.token_url)
    }

    /// How long after a failed probe of a down host the next may go: the retry budget of one
    /// call, so a cycle during an outage ends in about `retry_max`.
    fn probe_every(&self) -> Duration {
        self.settings.retry_max.max(Duration::from_secs(1))
    }

    /// Tells the log and the observer of a host going down or coming back.
    fn report(&self, event: Option<HostEvent>) {
        let Some(ev) = event else {
            return;
        };
        match &ev {
            HostEvent::Down { host, error, .. } => tracing::error!(profile = %self.account.profile,
                "{host} ({}) cannot be reached: {error}; its calls wait for one probe and nothing else is sent until it answers", self.api.name()),
            HostEvent::Up { host, since, .. } => tracing::info!(profile = %self.account.profile,
                "{host} ({}) answers again (unreachable since {})", self.api.name(), sectigo_core::text::ts(*since)),
        }
        self.limits.tell(&ev);
    }

    /// What one attempt's result says of the host it went to. It cannot be reached: no
    /// connection, a timeout, a broken answer, 502, 503 or 504, or a 500 that is not SCM's own
    /// error (a proxy's page). Anything else is an answer: it is reached (SCM's own 500 is
    /// that call's error, not an outage). `Err`: another call found the host down meanwhile;
    /// stop.
    fn note(&self, adm: &mut Admission, outcome: Result<&Answer, &str>) -> Result<(), ScmError> {
        let now = self.clock.now();
        let ev = match outcome {
            Ok(a) if host_failed(a) => adm.unreachable(now, &format!("HTTP {}", a.status))?,
            Ok(_) => adm.reached(now),
            Err(what) => adm.unreachable(now, what)?,
        };
        self.report(ev);
        Ok(())
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
        let policy = ExponentialBackoff {
            initial_interval: Duration::from_millis(500),
            max_interval: Duration::from_secs(60),
            max_elapsed_time: Some(self.settings.retry_max),
            ..Default::default()
        };
        let profile = self.account.profile.clone();
        let api = self.api.name();
        let (slot, adm) = match reserved {
            Some(r) => (Some(r.permit), Some(r.admission)),
            None => (None, None),
        };
        let adm = match adm {
            Some(a) => a,
            None => {
                let host = self.limiter_for(&self.url("/"));
                host.health.admit(self.probe_every()).await?
            }
        };
        let slot = std::sync::Mutex::new(slot);
        let adm = Mutex::new(adm);
        backoff::future::retry_notify(
            policy,
            || async {
                let mut adm = adm.lock().await;
                adm.may_continue().map_err(backoff::Error::permanent)?;
                let slot = slot.lock().expect("slot lock").take();
                match self.call_authed(op, call, slot, &mut adm).await {
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
        slot: Option<crate::limit::Permit>,
        adm: &mut Admission,
    ) -> Result<Answer, ScmError> {
        let token = self.token(false, Some(adm)).await?;
        let a = self.send(op, call, &token, slot, adm).await?;
        if a.status != 401 {
            return finish(call, a);
        }
        if let Some(uri) = a.www_authenticate_uri() {
            warn!(profile = %self.account.profile, authorization_uri = %uri,
                "{} refused the access token; its WWW-Authenticate names this token URL (configured: {})",
                self.api.name(), self.account.token_url);
        }
        let token = self.token(true, Some(adm)).await?;
        let a = self.send(op, call, &token, None, adm).await?;
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
        slot: Option<crate::limit::Permit>,
        adm: &mut Admission,
    ) -> Result<Answer, ScmError> {
        let (method, path, body) = match op {
            Op::Get(p) => (reqwest::Method::GET, *p, None),
            Op::Post(p, b) => (reqwest::Method::POST, *p, Some(b)),
            Op::Delete(p, b) => (reqwest::Method::DELETE, *p, Some(b)),
        };
        let url = self.url(path);
        let _permit = match slot {
            Some(p) => p,
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
        let read = match rb.send().await {
            Ok(resp) => read_answer(resp, &self.clock).await,
            Err(e) => Err(transport_error(&e, &url)),
        };
        match &read {
            Ok(a) => self.note(adm, Ok(a))?,
            Err(e) => self.note(adm, Err(&e.to_string()))?,
        }
        read
    }

    /// A valid access token: the cached one unless `refresh` or about to expire.
    /// `held`: the admission of the call asking, when it has one (its host may be the token
    /// endpoint's too: the call must not wait for itself).
    async fn token(&self, refresh: bool, held: Option<&mut Admission>) -> Result<Secret, ScmError> {
        let valid = |c: &Option<CachedToken>| {
            c.as_ref()
                .filter(|t| Instant::now() < t.refresh_at)
                .map(|t| t.token.clone())
        };
        if !refresh {
            if let Some(t) = valid(&*self.token.lock().await) {
                return Ok(t);
            }
        }
        if let Some((at, e)) = self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            // Not asked again for every certificate; unless the secret's file holds another
            // secret now (the operator fixed it: try it at once).
            if at.elapsed() < self.probe_every() && !self.secret_file_changed() {
                return Err(e);
            }
        }
        // The token endpoint's admission before the token's lock: no call ever waits for a
        // probe's verdict while holding the lock the probe may need.
        let url = &self.account.token_url;
        let limiter = self.limiter_for(url);
        let mut own;
        let adm: &mut Admission = match held {
            Some(a) if a.is_for(&limiter.health) => a,
            _ => {
                own = limiter
                    .health
                    .admit(self.probe_every())
                    .await
                    .map_err(|e| ScmError::TokenUnavailable {
                        what: format!("token endpoint {url}: {e}"),
                        retry_after: None,
                    })?;
                &mut own
            }
        };
        let mut cached = self.token.lock().await;
        if !refresh {
            // Another call may have fetched one meanwhile.
            if let Some(t) = valid(&cached) {
                return Ok(t);
            }
        }
        let t = match self.fetch_token(adm).await {
            Ok(t) => t,
            Err(e @ ScmError::Auth(_)) => {
                *self.refused.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), e.clone()));
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let token = t.token.clone();
        *cached = Some(t);
        Ok(token)
    }

    /// Asks the token endpoint for a token (see [`Session::fetch_token_retrying`]). When the
    /// endpoint refuses the secret and it came from a file, the file is read again: a secret
    /// changed since it was read is tried at once; the refusal reported says the file was
    /// read again, and what it held.
    async fn fetch_token(&self, adm: &mut Admission) -> Result<CachedToken, ScmError> {
        let refused = match self.fetch_token_retrying(adm).await {
            Err(ScmError::Auth(msg)) => msg,
            other => return other,
        };
        let Some(path) = &self.account.client_secret_file else {
            return Err(ScmError::Auth(refused));
        };
        let key = self.api.secret_file_key();
        let current = self.current_secret();
        match sectigo_core::config::read_secret_file(path) {
            Ok(new) if new != current => {
                info!(profile = %self.account.profile,
                    "{} refused the secret; {key} {} holds another one since it was read: trying it",
                    self.api.name(), path.display());
                *self.secret.lock().expect("secret lock") = new;
                match self.fetch_token_retrying(adm).await {
                    Err(ScmError::Auth(again)) => Err(ScmError::Auth(format!(
                        "{again} ({key} {} was read again after the refusal: the secret it holds now was refused too)",
                        path.display()
                    ))),
                    other => other,
                }
            }
            Ok(_) => Err(ScmError::Auth(format!(
                "{refused} ({key} {} was read again after the refusal: it holds the same secret; put the account's current secret in it)",
                path.display()
            ))),
            Err(e) => Err(ScmError::Auth(format!(
                "{refused} ({key} was read again after the refusal: {e})"
            ))),
        }
    }

    /// The secret's file (if it came from one) holds another secret than the one sent.
    fn secret_file_changed(&self) -> bool {
        self.account.client_secret_file.as_ref().is_some_and(|p| {
            sectigo_core::config::read_secret_file(p).is_ok_and(|s| s != self.current_secret())
        })
    }

    fn current_secret(&self) -> Secret {
        self.secret.lock().expect("secret lock").clone()
    }

    /// Asks the token endpoint for a token, retrying for up to `retry_max`. Every failure is
    /// [`ScmError::Auth`] (the credentials were refused) or [`ScmError::TokenUnavailable`]:
    /// nothing was sent to SCM, so nothing can have been billed. An interactive client
    /// ([`ClientSettings::interactive`]) reports an endpoint it cannot connect to at once.
    async fn fetch_token_retrying(&self, adm: &mut Admission) -> Result<CachedToken, ScmError> {
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
        let adm = Mutex::new(adm);
        let stop = |e: ScmError| {
            backoff::Error::permanent(ScmError::TokenUnavailable {
                what: format!("token endpoint {url}: {e}"),
                retry_after: None,
            })
        };
        let fail_fast = self.settings.interactive;
        backoff::future::retry(policy, || async {
            let mut adm = adm.lock().await;
            adm.may_continue().map_err(stop)?;
            let _permit = limiter.acquire().await;
            let secret = self.current_secret();
            let sent = self
                .http
                .post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", self.account.client_id.as_str()),
                    ("client_secret", secret.expose()),
                ])
                .send()
                .await;
            let mut unconnected = false;
            let read = match sent {
                Ok(resp) => read_answer(resp, &self.clock).await,
                Err(e) => {
                    unconnected = e.is_connect();
                    Err(transport_error(&e, url))
                }
            };
            let a = match read {
                Ok(a) => {
                    self.note(&mut adm, Ok(&a)).map_err(stop)?;
                    a
                }
                Err(e) => {
                    let what = e.to_string();
                    self.note(&mut adm, Err(&what)).map_err(stop)?;
                    if fail_fast && unconnected {
                        // Refused, or no such host: asking again in a second will not help.
                        return Err(backoff::Error::permanent(ScmError::TokenUnavailable {
                            what,
                            retry_after: None,
                        }));
                    }
                    return Err(unavailable(what, None));
                }
            };
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

/// Whether an answer says its host failed (not SCM's application answering): 502, 503, 504,
/// or a 500 without SCM's JSON error body.
fn host_failed(a: &Answer) -> bool {
    // A 5xx that carries SCM's own error body is SCM answering (the error table says what it
    // means on each call); a bare 500 or a proxy's 502-504 is the host failing.
    matches!(a.status, 500 | 502..=504)
        && serde_json::from_slice::<classify::ScmErrorBody>(&a.body).is_err()
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
