//! Jira client for Cloud (REST v3, Atlassian Document Format, email + API token) and Data
//! Center (REST v2, plain text, personal access token): comments, transitions, attachments.
//! Every answer is classified once: transient (429/503 with Retry-After, 5xx, timeouts),
//! authentication (401), or permanent (403, 404, 400) with what to fix.

pub mod adf;
pub mod deliver;
pub mod outbox;

use std::time::Duration;

use base64::Engine as _;
use sectigo_core::clock::SharedClock;
use serde::Deserialize;
use serde_json::{json, Value};

use sectigo_core::config::{JiraConfig, JiraFlavor};

/// The largest answer read; a larger one is not read further (a search asks for smaller
/// pages, see [`JiraClient::search`]).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum JiraError {
    #[error("{what}")]
    Transient {
        what: String,
        retry_after: Option<Duration>,
    },
    #[error("Jira refused the credentials (HTTP 401): check [jira] email and token (Cloud: an API token of that account; Data Center: a personal access token)")]
    Auth,
    #[error("{what}")]
    Permanent { status: u16, what: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub id: String,
    pub name: String,
    pub to: String,
}

impl Transition {
    /// A configured transition names one by its name or by the status it leads to.
    pub fn answers_to(&self, configured: &str) -> bool {
        self.name.eq_ignore_ascii_case(configured) || self.to.eq_ignore_ascii_case(configured)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MyselfBody {
    display_name: Option<String>,
    email_address: Option<String>,
    name: Option<String>,
    account_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TransitionsBody {
    #[serde(default)]
    transitions: Vec<TransitionBody>,
}

#[derive(Debug, Deserialize)]
struct TransitionBody {
    id: Value,
    #[serde(default)]
    name: String,
    #[serde(default)]
    to: Option<StatusBody>,
}

#[derive(Debug, Deserialize)]
struct StatusBody {
    #[serde(default)]
    name: String,
}

pub struct JiraClient {
    http: reqwest::Client,
    base: String,
    flavor: JiraFlavor,
    /// The Authorization header, marked sensitive: no Debug output (ours, hyper's, reqwest's)
    /// ever prints it.
    auth: reqwest::header::HeaderValue,
    clock: SharedClock,
}

/// The Jira client could not be built from `[jira]`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("[jira] token: holds characters that cannot go in an HTTP header")]
    TokenNotAHeader,
    #[error("HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// A Jira answer that is not the JSON expected.
#[derive(Debug, thiserror::Error)]
#[error("Jira's answer is not the expected JSON: {0}")]
pub struct BadAnswer(#[from] serde_json::Error);

impl JiraClient {
    /// A client for `[jira]`; `clock` reads a `Retry-After` given as a date.
    pub fn new(cfg: &JiraConfig, clock: SharedClock) -> Result<JiraClient, ClientError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(cfg.timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sectigo-connector/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Build)?;
        let value = match &cfg.email {
            Some(email) => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{email}:{}", cfg.token.expose()))
            ),
            None => format!("Bearer {}", cfg.token.expose()),
        };
        let mut auth = reqwest::header::HeaderValue::from_str(&value)
            .map_err(|_| ClientError::TokenNotAHeader)?;
        auth.set_sensitive(true);
        Ok(JiraClient {
            http,
            base: cfg.url.trim_end_matches('/').to_string(),
            flavor: cfg.flavor,
            auth,
            clock,
        })
    }

    pub fn flavor(&self) -> JiraFlavor {
        self.flavor
    }

    fn api(&self, path: &str) -> String {
        self.api_root(&format!("issue/{path}"))
    }

    fn api_root(&self, path: &str) -> String {
        let v = match self.flavor {
            JiraFlavor::Cloud => 3,
            JiraFlavor::Datacenter => 2,
        };
        format!("{}/rest/api/{v}/{path}", self.base)
    }

    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header("Accept", "application/json")
            .header(reqwest::header::AUTHORIZATION, self.auth.clone())
    }

    async fn send(
        &self,
        rb: reqwest::RequestBuilder,
        what: &str,
        key: &str,
    ) -> Result<Vec<u8>, JiraError> {
        self.send_capped(rb, what, key)
            .await?
            .ok_or_else(|| too_large(what, key))
    }

    /// Sends and reads the answer: `None` when Jira accepted but the answer is larger than
    /// [`MAX_BODY`] (read no further than that).
    async fn send_capped(
        &self,
        rb: reqwest::RequestBuilder,
        what: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, JiraError> {
        let mut resp = rb.send().await.map_err(|e| JiraError::Transient {
            what: format!(
                "{what} on {key}: Jira unreachable: {}",
                sectigo_core::http::error_chain(&e)
            ),
            retry_after: None,
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| sectigo_core::http::parse_retry_after(v, self.clock.now()));
        let mut body = Vec::new();
        while let Some(c) = resp.chunk().await.map_err(|e| JiraError::Transient {
            what: format!(
                "{what} on {key}: the answer broke off: {}",
                sectigo_core::http::error_chain(&e)
            ),
            retry_after: None,
        })? {
            if body.len() + c.len() > MAX_BODY {
                // An error is an error whatever its size; a success is too large to take.
                classify(status, &body, retry_after, what, key)?;
                return Ok(None);
            }
            body.extend_from_slice(&c);
        }
        classify(status, &body, retry_after, what, key)?;
        Ok(Some(body))
    }

    /// Adds a comment. `text` is plain text; paragraphs are separated by blank lines.
    pub async fn add_comment(&self, key: &str, text: &str) -> Result<(), JiraError> {
        let body = match self.flavor {
            JiraFlavor::Cloud => json!({ "body": adf::document(text) }),
            JiraFlavor::Datacenter => json!({ "body": text }),
        };
        let rb = self
            .req(
                reqwest::Method::POST,
                &self.api(&format!(
                    "{}/comment",
                    sectigo_core::http::path_segment(key)
                )),
            )
            .json(&body);
        self.send(rb, "adding a comment", key).await.map(|_| ())
    }

    /// GETs `{issue key}{suffix}` under the issue API and returns the body.
    async fn get(&self, key: &str, suffix: &str, what: &str) -> Result<Vec<u8>, JiraError> {
        let url = self.api(&format!(
            "{}{suffix}",
            sectigo_core::http::path_segment(key)
        ));
        self.send(self.req(reqwest::Method::GET, &url), what, key)
            .await
    }

    /// The plain text of the issue's comments (newest first, at most 100).
    pub async fn comments(&self, key: &str) -> Result<Vec<String>, JiraError> {
        let what = "reading comments";
        let body = self
            .get(key, "/comment?orderBy=-created&maxResults=100", what)
            .await?;
        let v: Value = parse(&body, what, key)?;
        Ok(v["comments"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| match &c["body"] {
                        Value::String(s) => s.clone(),
                        doc => adf::text(doc),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn transitions(&self, key: &str) -> Result<Vec<Transition>, JiraError> {
        let body = self.get(key, "/transitions", "listing transitions").await?;
        parse_transitions(&body).map_err(|e| JiraError::Transient {
            what: format!("listing transitions on {key}: {e}"),
            retry_after: None,
        })
    }

    /// Performs a transition, sending its id as a string (as Jira returns it).
    pub async fn transition(&self, key: &str, id: &str) -> Result<(), JiraError> {
        let url = self.api(&format!(
            "{}/transitions",
            sectigo_core::http::path_segment(key)
        ));
        let rb = self
            .req(reqwest::Method::POST, &url)
            .json(&json!({ "transition": { "id": id } }));
        self.send(rb, "transitioning", key).await.map(|_| ())
    }

    /// The file names of the issue's attachments.
    pub async fn attachment_names(&self, key: &str) -> Result<Vec<String>, JiraError> {
        let body = self
            .get(key, "?fields=attachment", "reading attachments")
            .await?;
        let v: Value = parse(&body, "reading attachments", key)?;
        Ok(v["fields"]["attachment"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["filename"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Attaches a file (multipart field `file`, with the XSRF opt-out header Jira requires).
    pub async fn attach(&self, key: &str, filename: &str, content: &[u8]) -> Result<(), JiraError> {
        let url = self.api(&format!(
            "{}/attachments",
            sectigo_core::http::path_segment(key)
        ));
        let part = reqwest::multipart::Part::bytes(content.to_vec())
            .file_name(filename.to_string())
            .mime_str("application/x-pem-file")
            .expect("valid mime");
        let form = reqwest::multipart::Form::new().part("file", part);
        let rb = self
            .req(reqwest::Method::POST, &url)
            .header("X-Atlassian-Token", "no-check")
            .multipart(form);
        self.send(rb, "attaching a file", key).await.map(|_| ())
    }
}

impl JiraClient {
    /// Issues matching `jql`, with the given fields (ids), at most `max`. Cloud pages with
    /// `POST /rest/api/3/search/jql` and `nextPageToken`; Data Center with
    /// `POST /rest/api/2/search` and `startAt`. Returns the issues and whether that was all
    /// of them.
    ///
    /// Issues with large fields cannot block the others: a page whose answer is larger than
    /// [`MAX_BODY`] is asked for again with half as many issues, down to one; an issue too
    /// large even alone is asked for without its fields, to learn its key, and is returned in
    /// [`Search::too_large`] instead of [`Search::issues`].
    pub async fn search(
        &self,
        jql: &str,
        fields: &[String],
        max: usize,
    ) -> Result<Search, JiraError> {
        let what = "searching issues";
        let mut found = Search::default();
        let mut token: Option<String> = None;
        let mut size = SEARCH_PAGE;
        loop {
            let seen = found.issues.len() + found.malformed.len() + found.too_large.len();
            let page = (max - seen).min(size);
            let (v, alone) = match self
                .search_page(jql, fields, page, token.as_deref(), seen)
                .await?
            {
                Some(v) => {
                    size = (size * 2).min(SEARCH_PAGE);
                    (v, false)
                }
                None if page > 1 => {
                    size = page / 2;
                    continue;
                }
                None => {
                    // Only the key (and the place of the next page): the status is small.
                    let v = self
                        .search_page(jql, &["status".to_string()], 1, token.as_deref(), seen)
                        .await?
                        .ok_or_else(|| too_large(what, "JQL search"))?;
                    (v, true)
                }
            };
            let n = v.issues.len();
            // Each issue on its own: one that cannot be read is skipped, the others go on.
            for raw in v.issues {
                match serde_json::from_value::<SearchIssue>(raw.clone()) {
                    Ok(i) if alone => found.too_large.push(i.key),
                    Ok(i) => found.issues.push(FoundIssue {
                        key: i.key,
                        fields: i.fields,
                    }),
                    Err(e) => found.malformed.push(describe_malformed(&raw, &e)),
                }
            }
            let seen = found.issues.len() + found.malformed.len() + found.too_large.len();
            let more = match self.flavor {
                JiraFlavor::Cloud => {
                    token = v.next_page_token;
                    token.is_some() && !v.is_last.unwrap_or(false)
                }
                JiraFlavor::Datacenter => v.total.is_some_and(|t| (seen as u64) < t),
            };
            let complete = if !more {
                Some(true)
            } else if n == 0 || seen >= max {
                // More announced, none sent (or enough taken): not known to be complete.
                Some(false)
            } else {
                None
            };
            if let Some(complete) = complete {
                found.complete = complete;
                return Ok(found);
            }
        }
    }

    /// One page of a search, from `token` (Cloud) or `start` (Data Center); `None` when the
    /// answer is larger than [`MAX_BODY`].
    async fn search_page(
        &self,
        jql: &str,
        fields: &[String],
        page: usize,
        token: Option<&str>,
        start: usize,
    ) -> Result<Option<SearchBody>, JiraError> {
        let what = "searching issues";
        let (url, body) = match self.flavor {
            JiraFlavor::Cloud => {
                let mut b = json!({ "jql": jql, "fields": fields, "maxResults": page });
                if let Some(t) = token {
                    b["nextPageToken"] = Value::String(t.to_string());
                }
                (self.api_root("search/jql"), b)
            }
            JiraFlavor::Datacenter => (
                self.api_root("search"),
                json!({ "jql": jql, "fields": fields, "maxResults": page, "startAt": start }),
            ),
        };
        let rb = self.req(reqwest::Method::POST, &url).json(&body);
        match self.send_capped(rb, what, "JQL search").await? {
            Some(body) => parse(&body, what, "JQL search").map(Some),
            None => Ok(None),
        }
    }

    /// One field of one issue, as text (`GET /issue/{key}?fields=ID`): for a field too large to
    /// fetch in a search (the CSR).
    pub async fn issue_field(&self, key: &str, id: &str) -> Result<Option<String>, JiraError> {
        let what = "reading a field";
        let url = format!(
            "{}?fields={}",
            self.api(&sectigo_core::http::path_segment(key)),
            sectigo_core::http::path_segment(id)
        );
        let rb = self.req(reqwest::Method::GET, &url);
        let body = self.send(rb, what, key).await?;
        let v: SearchIssue = parse(&body, what, key)?;
        Ok(FoundIssue {
            key: v.key,
            fields: v.fields,
        }
        .text(id))
    }

    /// Who Jira takes the credentials for: the display name, and the account (Cloud: its
    /// e-mail or account id; Data Center: the user name).
    pub async fn myself(&self) -> Result<(String, String), JiraError> {
        let what = "asking who the credentials belong to";
        let rb = self.req(reqwest::Method::GET, &self.api_root("myself"));
        let body = self.send(rb, what, "the user").await?;
        let v: MyselfBody = parse(&body, what, "the user")?;
        let account = v
            .email_address
            .or(v.name)
            .or(v.account_id)
            .unwrap_or_default();
        Ok((v.display_name.unwrap_or_default(), account))
    }

    /// Every field Jira knows: (id, name). Custom fields have ids like `customfield_10050`.
    pub async fn fields(&self) -> Result<Vec<(String, String)>, JiraError> {
        let what = "listing fields";
        let rb = self.req(reqwest::Method::GET, &self.api_root("field"));
        let body = self.send(rb, what, "the field list").await?;
        let v: Vec<FieldBody> = parse(&body, what, "the field list")?;
        Ok(v.into_iter().map(|f| (f.id, f.name)).collect())
    }

    /// Sets fields of an issue (`PUT /issue/{key}`): `fields` maps field ids to values.
    pub async fn edit(
        &self,
        key: &str,
        fields: serde_json::Map<String, Value>,
    ) -> Result<(), JiraError> {
        let url = self.api(&sectigo_core::http::path_segment(key));
        let rb = self
            .req(reqwest::Method::PUT, &url)
            .json(&json!({ "fields": fields }));
        self.send(rb, "setting fields", key).await.map(|_| ())
    }
}

/// Field ids by name, from Jira's field list, fetched when first needed and again when a name
/// is not found (a field created since).
#[derive(Default)]
pub struct FieldCache {
    map: tokio::sync::Mutex<Option<Vec<(String, String)>>>,
}

impl FieldCache {
    /// The id of the field called `name` (case-insensitive); an id (`summary`,
    /// `customfield_10050`) is returned as is.
    pub async fn id(&self, client: &JiraClient, name: &str) -> Result<String, JiraError> {
        let mut map = self.map.lock().await;
        for refresh in [false, true] {
            if refresh || map.is_none() {
                *map = Some(client.fields().await?);
            }
            let fields = map.as_ref().expect("filled");
            if let Some((id, _)) = fields
                .iter()
                .find(|(id, n)| n.eq_ignore_ascii_case(name) || id == name)
            {
                return Ok(id.clone());
            }
            if !refresh && name.starts_with("customfield_") {
                return Ok(name.to_string());
            }
        }
        let fields = map.as_ref().expect("filled");
        let mut similar: Vec<&str> = fields
            .iter()
            .map(|(_, n)| n.as_str())
            .filter(|n| {
                let (a, b) = (n.to_lowercase(), name.to_lowercase());
                b.split_whitespace().any(|w| w.len() > 2 && a.contains(w))
            })
            .collect();
        similar.sort_unstable();
        similar.dedup();
        similar.truncate(8);
        Err(JiraError::Permanent {
            status: 404,
            what: format!(
                "Jira has no field named {name:?}{}; create it, or set the field's name in [jira.workflow]",
                if similar.is_empty() {
                    String::new()
                } else {
                    format!(" (similar: {})", similar.join(", "))
                }
            ),
        })
    }
}

/// An issue found by a search: its key and the fields asked for, by id.
#[derive(Debug, Clone)]
pub struct FoundIssue {
    pub key: String,
    pub fields: serde_json::Map<String, Value>,
}

impl FoundIssue {
    /// A field's value as text: a string, the `value`/`name` of an option or object, the text
    /// of an ADF document (Cloud text areas), a number; `None` when empty or absent.
    pub fn text(&self, id: &str) -> Option<String> {
        let t = match self.fields.get(id)? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("doc") => {
                adf::text(&Value::Object(o.clone()))
            }
            Value::Object(o) => o
                .get("value")
                .or_else(|| o.get("name"))
                .and_then(Value::as_str)?
                .to_string(),
            Value::Array(a) => a
                .first()
                .and_then(|v| v.get("value").or(Some(v)))
                .and_then(Value::as_str)?
                .to_string(),
            _ => return None,
        };
        let t = t.trim().to_string();
        (!t.is_empty()).then_some(t)
    }
}

#[derive(Debug, Deserialize)]
struct SearchBody {
    #[serde(default)]
    issues: Vec<Value>,
    #[serde(default, rename = "nextPageToken")]
    next_page_token: Option<String>,
    #[serde(default, rename = "isLast")]
    is_last: Option<bool>,
    #[serde(default)]
    total: Option<u64>,
}

/// Issues per search page, at most: a page of issues whose fields are large may still exceed
/// the answer size limit, and is then asked for in smaller pages (see [`JiraClient::search`]).
const SEARCH_PAGE: usize = 50;

/// A search's result.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub issues: Vec<FoundIssue>,
    /// Whether that was every match.
    pub complete: bool,
    /// Issues that could not be read, described for the log (key when known, escaped).
    pub malformed: Vec<String>,
    /// Keys (as Jira sent them: escape them for a log) of issues whose fields make an answer
    /// larger than [`MAX_BODY`] even alone: matches, but not read.
    pub too_large: Vec<String>,
}

/// The error for an answer larger than [`MAX_BODY`].
fn too_large(what: &str, key: &str) -> JiraError {
    JiraError::Permanent {
        status: 200,
        what: format!("{what} on {key}: Jira's answer is larger than {MAX_BODY} bytes"),
    }
}

/// What to log about an issue of a search page that could not be read.
fn describe_malformed(raw: &Value, e: &serde_json::Error) -> String {
    let key = raw
        .get("key")
        .and_then(Value::as_str)
        .map(|k| sectigo_core::text::bounded(&sectigo_core::text::Escaped(k).to_string(), 40))
        .unwrap_or_else(|| "(no key)".into());
    format!("issue {key}: cannot be read ({e})")
}

#[derive(Debug, Deserialize)]
struct SearchIssue {
    key: String,
    #[serde(default)]
    fields: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct FieldBody {
    id: String,
    #[serde(default)]
    name: String,
}

/// The transitions of a `GET .../transitions` answer. Pure; the client and the fuzzers use it.
pub fn parse_transitions(body: &[u8]) -> Result<Vec<Transition>, BadAnswer> {
    let t: TransitionsBody = serde_json::from_slice(body)?;
    Ok(t.transitions
        .into_iter()
        .map(|t| Transition {
            id: match t.id {
                Value::String(s) => s,
                other => other.to_string(),
            },
            name: t.name,
            to: t.to.map(|s| s.name).unwrap_or_default(),
        })
        .collect())
}

/// One place that decides what a Jira answer means.
pub fn classify(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    what: &str,
    key: &str,
) -> Result<(), JiraError> {
    let detail = || {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let msgs: Vec<String> = v["errorMessages"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let errs: Vec<String> = v["errors"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, m)| format!("{k}: {}", m.as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        // RFC 7807 problem details (gateways, proxies): title, detail, validation messages.
        let problem: Vec<String> = v["validation"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["message"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let all = [msgs, errs, problem].concat().join("; ");
        if all.is_empty() {
            String::from_utf8_lossy(&body[..body.len().min(120)])
                .trim()
                .to_string()
        } else {
            all
        }
    };
    match status {
        200..=299 => Ok(()),
        401 => Err(JiraError::Auth),
        403 => Err(JiraError::Permanent { status, what: format!("{what} on {key}: HTTP 403, no permission ({}); give the Jira account permission to comment, attach and transition in that project", detail()) }),
        404 => Err(JiraError::Permanent { status, what: format!("{what} on {key}: HTTP 404, the issue does not exist or is not visible to the Jira account ({}); relink the certificate with `certs link`", detail()) }),
        429 | 503 => Err(JiraError::Transient { what: format!("{what} on {key}: Jira answered HTTP {status} (busy)"), retry_after }),
        500..=599 | 408 => Err(JiraError::Transient { what: format!("{what} on {key}: Jira answered HTTP {status}: {}", detail()), retry_after }),
        _ => Err(JiraError::Permanent { status, what: format!("{what} on {key}: Jira answered HTTP {status}: {}", detail()) }),
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
    key: &str,
) -> Result<T, JiraError> {
    serde_json::from_slice(body).map_err(|e| JiraError::Transient {
        what: format!("{what} on {key}: Jira's answer is not the expected JSON: {e}"),
        retry_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let ra = Some(Duration::from_secs(3));
        assert!(classify(201, b"{}", None, "x", "K-1").is_ok());
        assert!(classify(204, b"", None, "x", "K-1").is_ok());
        assert!(matches!(
            classify(401, b"", None, "x", "K-1"),
            Err(JiraError::Auth)
        ));
        assert!(matches!(
            classify(429, b"", ra, "x", "K-1"),
            Err(JiraError::Transient {
                retry_after: Some(_),
                ..
            })
        ));
        assert!(matches!(
            classify(503, b"", ra, "x", "K-1"),
            Err(JiraError::Transient {
                retry_after: Some(_),
                ..
            })
        ));
        assert!(matches!(
            classify(500, b"oops", None, "x", "K-1"),
            Err(JiraError::Transient { .. })
        ));
        let e = classify(404, br#"{"errorMessages":["Issue does not exist or you do not have permission to see it."],"errors":{}}"#, None, "adding a comment", "CERT-9").unwrap_err();
        assert!(matches!(e, JiraError::Permanent { status: 404, .. }));
        assert!(
            e.to_string().contains("CERT-9")
                && e.to_string().contains("Issue does not exist")
                && e.to_string().contains("certs link"),
            "{e}"
        );
        let e = classify(
            400,
            br#"{"errorMessages":[],"errors":{"comment":"Comment body can not be empty!"}}"#,
            None,
            "adding a comment",
            "CERT-9",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("comment: Comment body can not be empty!"),
            "{e}"
        );
        assert!(matches!(
            classify(403, b"", None, "x", "K-1"),
            Err(JiraError::Permanent { status: 403, .. })
        ));
    }
}
