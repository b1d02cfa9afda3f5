//! Client for SCM's Admin API, SSL records (`/api/ssl/v1`, spec 25.9.2): what SCM itself knows
//! about certificates, which the REST Enrollment API cannot say (list and filter, details:
//! status, expiry, `renewed` and `renewedDate`, the request's `comments`, SCM's own
//! auto-renewal).
//!
//! - Its own account (`[admin]` in a profile: an admin API account, not the REST account) and
//!   its own token; it sends through the same session code as [`crate::ScmClient`]: token
//!   cached and refreshed before expiry, one re-authentication on a 401, the per-host
//!   [`Limits`] shared with every other client, retries with backoff within `retry_max`
//!   honouring `Retry-After`, every answer classified once (calls [`Call::AdminList`],
//!   [`Call::AdminDetails`]).
//! - Reads only: every call is free and idempotent, so every transient error is retried.
//! - No successor id: SCM marks a renewed certificate `renewed` but does not say what replaced
//!   it. The certificate a daemon request made is found by the request marker it wrote into
//!   `comments` ([`AdminClient::find_by_marker`]).
//! - Pages hold at most [`MAX_PAGE_SIZE`] entries (the spec's `maximum`; SCM refuses more).

mod date;
mod records;

use std::collections::HashSet;
use std::sync::Arc;

use sectigo_core::config::{AdminConfig, Profile};
use sectigo_core::secret::Secret;

use crate::session::{Account, Answer, Api, Op, Session};
use crate::{Call, ClientSettings, Limits, ScmError};

pub use date::{parse_scm_date, DateError, ScmDate};
pub use records::{
    parse_details, parse_list, parse_total, AutoRenew, CertDetails, CertStatus, CertSummary,
    CertType,
};

/// Where the SSL operations sit under `[admin] url`.
pub const API_PATH: &str = "/api/ssl/v1";
/// The most entries one list page may ask for (the spec's `size` maximum).
pub const MAX_PAGE_SIZE: u32 = 200;
/// `requestedVia` of what the REST Enrollment API requested (the spec's vocabulary).
pub const REQUESTED_VIA_REST_API: &str = "REST API";
/// The values of the spec's `requestedVia` filter; SCM refuses any other.
pub const REQUESTED_VIA: [&str; 13] = [
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

/// The account a profile's Admin API client uses.
#[derive(Debug, Clone)]
pub struct AdminCreds {
    /// The profile it serves (a log field).
    pub profile: String,
    /// The base URL (`[admin] url`); requests go to `url` + [`API_PATH`].
    pub url: String,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// The `[admin] client_secret_file` the secret came from: read again when the token
    /// endpoint refuses the secret.
    pub client_secret_file: Option<std::path::PathBuf>,
}

impl AdminCreds {
    /// A profile's `[admin]` account; `None` when the profile has no `[admin]`.
    pub fn from_profile(p: &Profile) -> Option<AdminCreds> {
        let a = p.admin.as_ref()?;
        Some(AdminCreds {
            profile: p.name.to_string(),
            url: a.url.clone(),
            token_url: a.token_url.clone(),
            client_id: a.client_id.clone(),
            client_secret: a.client_secret.clone(),
            client_secret_file: a.client_secret_from.file().map(Into::into),
        })
    }
}

/// The list's filters the daemon uses (`None`: not filtered on). SCM matches each as it
/// chooses (the spec does not say whether `commonName` is exact): callers check what they
/// rely on in the answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub common_name: Option<String>,
    pub status: Option<CertStatus>,
    /// The certificate profile (`certType.id`).
    pub ssl_type_id: Option<i64>,
    pub org_id: Option<i64>,
    /// One of [`REQUESTED_VIA`].
    pub requested_via: Option<String>,
}

impl ListFilter {
    /// What a profile's `[admin]` looks at: its `org_id` and `ssl_type_id`.
    pub fn for_admin(a: &AdminConfig) -> ListFilter {
        ListFilter {
            org_id: a.org_id,
            ssl_type_id: a.ssl_type_id,
            ..ListFilter::default()
        }
    }

    /// The request path and query for one page. Spaces are `%20` (`requestedVia=REST%20API`).
    pub fn path(&self, position: u32, size: u32) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("size", &size.to_string());
        q.append_pair("position", &position.to_string());
        if let Some(cn) = &self.common_name {
            q.append_pair("commonName", cn);
        }
        if let Some(s) = &self.status {
            q.append_pair("status", s.as_str());
        }
        if let Some(t) = self.ssl_type_id {
            q.append_pair("sslTypeId", &t.to_string());
        }
        if let Some(o) = self.org_id {
            q.append_pair("orgId", &o.to_string());
        }
        if let Some(v) = &self.requested_via {
            q.append_pair("requestedVia", v);
        }
        // The form encoding writes a space as `+` and a literal `+` as `%2B`.
        format!("{API_PATH}?{}", q.finish().replace('+', "%20"))
    }
}

/// One page of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<CertSummary>,
    /// `X-Total-Count`: every match, all pages together (`None`: SCM did not say).
    pub total: Option<u64>,
}

/// A client of one profile's Admin API account.
pub struct AdminClient {
    session: Session,
}

impl AdminClient {
    /// `http` from [`crate::http_client`]; `limits` shared with the enrollment clients (one
    /// limiter per host: the Admin API's host has its own); `settings.clock` reads
    /// `Retry-After` dates.
    pub fn new(
        http: reqwest::Client,
        creds: AdminCreds,
        settings: ClientSettings,
        limits: Arc<Limits>,
    ) -> Self {
        let clock = settings.clock.clone();
        let account = Account {
            profile: creds.profile,
            base_url: creds.url,
            token_url: creds.token_url,
            client_id: creds.client_id,
            client_secret: creds.client_secret,
            client_secret_file: creds.client_secret_file,
        };
        AdminClient {
            session: Session::new(http, Api::Admin, account, settings, limits, clock),
        }
    }

    pub fn profile(&self) -> &str {
        &self.session.account.profile
    }

    /// Asks the token endpoint for a token (free; `check-config --online`): `Ok` when the
    /// admin account's credentials are taken.
    pub async fn check_token(&self) -> Result<(), ScmError> {
        self.session.reserve().await.map(|_| ())
    }

    async fn get(&self, path: &str, call: Call) -> Result<Answer, ScmError> {
        self.session
            .call_retrying_in(&Op::Get(path), call, None)
            .await
    }

    /// One page: the certificates matching `filter` from the `position`-th (0 first), at most
    /// `size` of them (taken as 1..=[`MAX_PAGE_SIZE`]), and the total.
    pub async fn list(
        &self,
        filter: &ListFilter,
        position: u32,
        size: u32,
    ) -> Result<Page, ScmError> {
        let size = size.clamp(1, MAX_PAGE_SIZE);
        let a = self
            .get(&filter.path(position, size), Call::AdminList)
            .await?;
        Ok(Page {
            items: parse_list(a.status, &a.body)?,
            total: parse_total(a.total_count.as_deref()),
        })
    }

    /// Every certificate matching `filter`, page by page (see [`Pages`]).
    pub fn pages(&self, filter: ListFilter, size: u32) -> Pages<'_> {
        Pages {
            client: self,
            filter,
            size: size.clamp(1, MAX_PAGE_SIZE),
            position: 0,
            total: None,
            seen: HashSet::new(),
            fetched: 0,
            done: false,
        }
    }

    /// Every certificate matching `filter`, in pages of [`MAX_PAGE_SIZE`].
    pub async fn list_all(&self, filter: &ListFilter) -> Result<Vec<CertSummary>, ScmError> {
        let mut pages = self.pages(filter.clone(), MAX_PAGE_SIZE);
        let mut all = Vec::new();
        while let Some(page) = pages.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    /// One certificate's details. An id SCM does not know: [`ScmError::Permanent`] (HTTP 404
    /// or 400).
    pub async fn details(&self, ssl_id: i64) -> Result<CertDetails, ScmError> {
        let a = self
            .get(&format!("{API_PATH}/{ssl_id}"), Call::AdminDetails)
            .await?;
        parse_details(a.status, &a.body)
    }

    /// The certificates that the daemon's request `request_id` made: those with common name
    /// `common_name` whose `comments` carry the request's marker ([`crate::request_tag`]),
    /// newest first. Usually none (SCM has not made it, or the request never arrived) or one.
    /// Costs one list and one details call per certificate of that name (the list carries no
    /// comments).
    pub async fn find_by_marker(
        &self,
        request_id: &str,
        common_name: &str,
    ) -> Result<Vec<CertDetails>, ScmError> {
        let filter = ListFilter {
            common_name: Some(common_name.to_string()),
            ..ListFilter::default()
        };
        let mut candidates: Vec<CertSummary> = self
            .list_all(&filter)
            .await?
            .into_iter()
            .filter(|s| s.common_name.eq_ignore_ascii_case(common_name))
            .collect();
        candidates.sort_by_key(|s| std::cmp::Reverse(s.ssl_id));
        let mut found = Vec::new();
        for s in candidates {
            let d = self.details(s.ssl_id).await?;
            if d.carries_request(request_id) {
                found.push(d);
            }
        }
        Ok(found)
    }
}

/// The daemon's certificate id (the REST API's `certId`, a string) as an Admin API id.
pub fn ssl_id_of(cert_id: &str) -> Option<i64> {
    cert_id.trim().parse().ok().filter(|id| *id > 0)
}

/// The list, page by page ([`AdminClient::pages`]): an async iterator.
///
/// Stops at `X-Total-Count` (the latest page's), at an empty page, or, when SCM gives no
/// total, at a short page. Each certificate is given once: a certificate seen on an earlier
/// page (the list shifted while it was read) is left out, and a page with nothing new ends the
/// list (a server that ignores `position` cannot make it loop).
pub struct Pages<'a> {
    client: &'a AdminClient,
    filter: ListFilter,
    size: u32,
    position: u32,
    total: Option<u64>,
    seen: HashSet<i64>,
    fetched: usize,
    done: bool,
}

/// Pages read at most (ten million certificates at the largest page size).
const MAX_PAGES: usize = 50_000;

impl Pages<'_> {
    /// The next page's certificates not given before; `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<CertSummary>>, ScmError> {
        while !self.done {
            let page = self
                .client
                .list(&self.filter, self.position, self.size)
                .await?;
            self.fetched += 1;
            let n = page.items.len();
            self.total = page.total.or(self.total);
            self.position = self
                .position
                .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
            let new: Vec<CertSummary> = page
                .items
                .into_iter()
                .filter(|s| self.seen.insert(s.ssl_id))
                .collect();
            self.done = n == 0
                || new.is_empty()
                || self.fetched >= MAX_PAGES
                || self.position == u32::MAX
                || match page.total {
                    Some(t) => u64::from(self.position) >= t,
                    None => n < self.size as usize,
                };
            if !new.is_empty() {
                return Ok(Some(new));
            }
        }
        Ok(None)
    }

    /// `X-Total-Count` of the latest page read.
    pub fn total(&self) -> Option<u64> {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_paths_carry_each_filter() {
        assert_eq!(
            ListFilter::default().path(0, 200),
            "/api/ssl/v1?size=200&position=0"
        );
        let f = ListFilter {
            common_name: Some("*.shop example+1.com".into()),
            status: Some(CertStatus::SaApproved),
            ssl_type_id: Some(12),
            org_id: Some(7),
            requested_via: Some(REQUESTED_VIA_REST_API.into()),
        };
        assert_eq!(
            f.path(400, 50),
            "/api/ssl/v1?size=50&position=400&commonName=*.shop%20example%2B1.com&status=SA%20Approved&sslTypeId=12&orgId=7&requestedVia=REST%20API"
        );
    }

    #[test]
    fn daemon_ids_as_admin_ids() {
        assert_eq!(ssl_id_of("1001"), Some(1001));
        assert_eq!(ssl_id_of("0"), None);
        assert_eq!(ssl_id_of("abc"), None);
        assert_eq!(ssl_id_of("-3"), None);
    }
}
