//! A simulator of Jira's REST API, Cloud (v3) and Data Center (v2): issues with a small
//! workflow, comments, attachments and transitions, recorded so tests can assert them.
//!
//! Validates like Jira: authentication (Basic email:token for Cloud; Bearer PAT or Basic for
//! Data Center), comment bodies (an ADF document on v3, a string on v2), transition ids as
//! strings, attachments only with `X-Atlassian-Token: no-check` and a multipart `file` part.
//! Faults: down (503), 429 with Retry-After, 500s, latency.

// Handlers return the answer to send as the error of their checks: an axum `Response`.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use rand::Rng;
use serde_json::{json, Value};

use sectigo_core::config::JiraFlavor;

/// The workflow: (transition id, name, from statuses, to status).
const WORKFLOW: &[(&str, &str, &[&str], &str)] = &[
    (
        "11",
        "Start Renewal",
        &[
            "Open",
            "Renewed",
            "Needs Attention",
            "Renewal Requested",
            "Certificate Enrolled",
        ],
        "Renewal In Progress",
    ),
    (
        "21",
        "Renewed",
        &[
            "Open",
            "Renewal In Progress",
            "Needs Attention",
            "Renewal Requested",
        ],
        "Renewed",
    ),
    (
        "31",
        "Flag Problem",
        &["Open", "Renewal In Progress", "Renewed"],
        "Needs Attention",
    ),
    ("41", "Reopen", &["Renewed", "Needs Attention"], "Open"),
    // The Certificate issue type's workflow (project CERT), after Sectigo's Jira app: a person
    // moves an issue into a "requested" status; the connector moves it on.
    (
        "101",
        "Enroll Certificate",
        &["Certificate Request", "Request Failed"],
        "Enrollment Requested",
    ),
    (
        "111",
        "Certificate Enrolled",
        &["Enrollment Requested"],
        "Certificate Enrolled",
    ),
    (
        "121",
        "Request Failed",
        &[
            "Enrollment Requested",
            "Renewal Requested",
            "Revocation Requested",
        ],
        "Request Failed",
    ),
    (
        "131",
        "Renew Certificate",
        &["Certificate Enrolled", "Renewed", "Request Failed"],
        "Renewal Requested",
    ),
    (
        "141",
        "Revoke Certificate",
        &[
            "Certificate Enrolled",
            "Renewed",
            "Request Failed",
            "Renewal In Progress",
        ],
        "Revocation Requested",
    ),
    (
        "151",
        "Certificate Revoked",
        &["Revocation Requested"],
        "Certificate Revoked",
    ),
];

/// Custom fields of the Certificate issue type: (id, name, kind). Text areas are ADF documents
/// on Cloud (v3) and strings on Data Center; the profile is a single-select option.
const CUSTOM_FIELDS: &[(&str, &str, FieldKind)] = &[
    (
        "customfield_10101",
        "Certificate CSR text",
        FieldKind::TextArea,
    ),
    (
        "customfield_10102",
        "Certificate profile",
        FieldKind::Select,
    ),
    ("customfield_10103", "Certificate ID", FieldKind::Text),
    ("customfield_10104", "Revocation reason", FieldKind::Text),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Text,
    TextArea,
    Select,
}

#[derive(Debug, Clone, Default)]
pub struct JiraFaults {
    pub latency: Duration,
    /// Every request answered 503 (Jira down for maintenance).
    pub down: bool,
    /// Share of requests answered 429 with `Retry-After: retry_after_secs`.
    pub rate_429: f64,
    pub retry_after_secs: u64,
    /// Share of requests answered 500.
    pub error_500: f64,
}

#[derive(Debug, Clone, Default)]
pub struct SimIssue {
    pub status: String,
    pub project: String,
    pub issue_type: String,
    pub summary: String,
    /// Custom field values by field name (plain text).
    pub fields: BTreeMap<String, String>,
    /// Field edits received (`PUT /issue/{key}`), by field id, in order.
    pub edits: Vec<(String, Value)>,
    /// Comment bodies as plain text (ADF flattened).
    pub comments: Vec<String>,
    /// (file name, content).
    pub attachments: Vec<(String, Vec<u8>)>,
    /// Transitions performed, by name.
    pub transitions: Vec<String>,
    /// Answered in place of the issue's `fields` in searches (a malformed issue).
    pub corrupt_fields: Option<Value>,
}

struct Inner {
    issues: BTreeMap<String, SimIssue>,
    faults: JiraFaults,
    requests: usize,
    refused_auth: usize,
    /// JQL searches received.
    searches: usize,
    /// `GET /issue/{key}` answered.
    issue_reads: std::sync::atomic::AtomicUsize,
}

struct Sim {
    flavor: JiraFlavor,
    email: String,
    token: String,
    inner: Mutex<Inner>,
}

pub struct JiraSim {
    addr: SocketAddr,
    sim: Arc<Sim>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl JiraSim {
    /// Starts a simulator of `flavor` accepting `email` + `token` (Cloud: Basic; Data Center:
    /// `token` as a Bearer PAT, or Basic `email:token`).
    pub async fn start(flavor: JiraFlavor, email: &str, token: &str) -> std::io::Result<JiraSim> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let sim = Arc::new(Sim {
            flavor,
            email: email.into(),
            token: token.into(),
            inner: Mutex::new(Inner {
                issues: BTreeMap::new(),
                faults: JiraFaults::default(),
                requests: 0,
                refused_auth: 0,
                searches: 0,
                issue_reads: Default::default(),
            }),
        });
        let v = match flavor {
            JiraFlavor::Cloud => "3",
            JiraFlavor::Datacenter => "2",
        };
        let search_path = match flavor {
            JiraFlavor::Cloud => "/rest/api/3/search/jql",
            JiraFlavor::Datacenter => "/rest/api/2/search",
        };
        let app = Router::new()
            .route(&format!("/rest/api/{v}/issue/:key"), get(issue).put(edit))
            .route(search_path, post(search))
            .route(&format!("/rest/api/{v}/field"), get(fields))
            .route(&format!("/rest/api/{v}/myself"), get(myself))
            .route(
                &format!("/rest/api/{v}/issue/:key/comment"),
                get(comments).post(add_comment),
            )
            .route(
                &format!("/rest/api/{v}/issue/:key/transitions"),
                get(transitions).post(do_transition),
            )
            .route(
                &format!("/rest/api/{v}/issue/:key/attachments"),
                post(attach),
            )
            .fallback(|uri: Uri| async move {
                (StatusCode::NOT_FOUND, format!("no such resource: {uri}"))
            })
            .with_state(sim.clone());
        let tx = super::serve(listener, app);
        Ok(JiraSim {
            addr,
            sim,
            _stop: tx,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates an issue in status "Open".
    pub fn add_issue(&self, key: &str) {
        self.sim.inner.lock().unwrap().issues.insert(
            key.into(),
            SimIssue {
                status: "Open".into(),
                project: key.split('-').next().unwrap_or("").into(),
                issue_type: "Task".into(),
                ..Default::default()
            },
        );
    }

    /// Creates a Certificate issue as a person does in Sectigo's layout: project CERT, status
    /// "Certificate Request", with the fields Certificate profile and Certificate CSR text.
    pub fn add_certificate_issue(&self, key: &str, summary: &str, profile: &str, csr: &str) {
        let mut fields = BTreeMap::new();
        fields.insert("Certificate profile".to_string(), profile.to_string());
        fields.insert("Certificate CSR text".to_string(), csr.to_string());
        self.sim.inner.lock().unwrap().issues.insert(
            key.into(),
            SimIssue {
                status: "Certificate Request".into(),
                project: key.split('-').next().unwrap_or("").into(),
                issue_type: "Certificate".into(),
                summary: summary.into(),
                fields,
                ..Default::default()
            },
        );
    }

    /// Performs a transition by name, as a person in Jira's UI does. Panics when it is not
    /// available from the issue's status (a test's mistake).
    pub fn person_transitions(&self, key: &str, name: &str) {
        let mut i = self.sim.inner.lock().unwrap();
        let is = i.issues.get_mut(key).expect("issue exists");
        let (_, _, _, to) = WORKFLOW
            .iter()
            .find(|(_, n, from, _)| *n == name && from.contains(&is.status.as_str()))
            .unwrap_or_else(|| panic!("{name:?} is not available from {:?}", is.status));
        is.status = to.to_string();
    }

    /// Sets a custom field by name, as a person editing the issue does.
    pub fn set_field(&self, key: &str, name: &str, value: &str) {
        let mut i = self.sim.inner.lock().unwrap();
        let is = i.issues.get_mut(key).expect("issue exists");
        is.fields.insert(name.into(), value.into());
    }

    pub fn searches(&self) -> usize {
        self.sim.inner.lock().unwrap().searches
    }

    /// How many `GET /issue/{key}` the simulator answered.
    pub fn issue_reads(&self) -> usize {
        let i = self.sim.inner.lock().unwrap();
        i.issue_reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes searches answer `value` in place of the issue's `fields` (a malformed issue).
    pub fn corrupt_fields(&self, key: &str, value: Value) {
        let mut i = self.sim.inner.lock().unwrap();
        if let Some(is) = i.issues.get_mut(key) {
            is.corrupt_fields = Some(value);
        }
    }

    pub fn issue(&self, key: &str) -> Option<SimIssue> {
        self.sim.inner.lock().unwrap().issues.get(key).cloned()
    }

    pub fn set_faults(&self, f: JiraFaults) {
        self.sim.inner.lock().unwrap().faults = f;
    }

    pub fn requests(&self) -> usize {
        self.sim.inner.lock().unwrap().requests
    }

    pub fn refused_auth(&self) -> usize {
        self.sim.inner.lock().unwrap().refused_auth
    }
}

fn error(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"errorMessages": [msg], "errors": {}}).to_string(),
    )
        .into_response()
}

/// Faults, authentication and the issue's existence, common to every endpoint.
async fn admit(sim: &Sim, headers: &HeaderMap, key: &str) -> Result<(), Response> {
    admit_any(sim, headers).await?;
    if !sim.inner.lock().unwrap().issues.contains_key(key) {
        return Err(error(
            StatusCode::NOT_FOUND,
            "Issue does not exist or you do not have permission to see it.",
        ));
    }
    Ok(())
}

/// Faults and authentication.
async fn admit_any(sim: &Sim, headers: &HeaderMap) -> Result<(), Response> {
    let faults = {
        let mut i = sim.inner.lock().unwrap();
        i.requests += 1;
        i.faults.clone()
    };
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if faults.down {
        let after = faults.retry_after_secs.max(1).to_string();
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", after)],
            "Jira is down for maintenance",
        )
            .into_response());
    }
    let roll: f64 = rand::thread_rng().gen();
    if roll < faults.rate_429 {
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", faults.retry_after_secs.to_string())],
            "",
        )
            .into_response());
    }
    if roll < faults.rate_429 + faults.error_500 {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error",
        ));
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", sim.email, sim.token))
    );
    let ok = auth == basic
        || (sim.flavor == JiraFlavor::Datacenter && auth == format!("Bearer {}", sim.token));
    if !ok {
        sim.inner.lock().unwrap().refused_auth += 1;
        return Err((
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Basic realm=\"protected-area\"")],
            "Client must be authenticated to access this resource.",
        )
            .into_response());
    }
    Ok(())
}

/// A field's value in the flavour's representation, or `None` when empty.
fn field_value(flavor: JiraFlavor, is: &SimIssue, id: &str) -> Option<Value> {
    match id {
        "summary" => Some(Value::String(is.summary.clone())),
        "status" => Some(json!({"name": is.status})),
        "issuetype" => Some(json!({"name": is.issue_type})),
        "project" => Some(json!({"key": is.project})),
        "attachment" => Some(Value::Array(
            is.attachments
                .iter()
                .enumerate()
                .map(|(n, (f, c))| json!({"id": (10000 + n).to_string(), "filename": f, "size": c.len()}))
                .collect(),
        )),
        _ => {
            let (_, name, kind) = CUSTOM_FIELDS.iter().find(|(fid, _, _)| *fid == id)?;
            let v = is.fields.get(*name).filter(|v| !v.is_empty())?;
            Some(match (kind, flavor) {
                (FieldKind::TextArea, JiraFlavor::Cloud) => sectigo_jira::adf::document(v),
                (FieldKind::Select, _) => json!({"value": v, "id": "10200"}),
                _ => Value::String(v.clone()),
            })
        }
    }
}

/// Evaluates the JQL subset the connector's defaults use: clauses `field = value`,
/// `field != value` and `field in (a, b)` joined by AND, an optional ORDER BY; fields
/// project, issuetype (type), status, key. Values compare case-insensitively, as Jira does.
fn jql_matches(jql: &str) -> Result<impl Fn(&str, &SimIssue) -> bool, String> {
    let q = match jql.to_lowercase().find(" order by ") {
        Some(p) => &jql[..p],
        None => jql,
    };
    let mut clauses = Vec::new();
    for clause in split_and(q) {
        let c = clause.trim();
        let (field, op, rest) = if let Some(p) = c.find("!=") {
            (&c[..p], "!=", &c[p + 2..])
        } else if let Some(p) = c.find('=') {
            (&c[..p], "=", &c[p + 1..])
        } else if let Some(p) = c.to_lowercase().find(" in ") {
            (&c[..p], "in", &c[p + 4..])
        } else {
            return Err(format!(
                "Error in the JQL Query: Expecting operator but got '{c}'."
            ));
        };
        let field = field.trim().to_lowercase();
        let field = match field.as_str() {
            "type" => "issuetype".to_string(),
            f @ ("project" | "issuetype" | "status" | "key") => f.to_string(),
            other => {
                return Err(format!(
                    "Field '{other}' does not exist or you do not have permission to view it."
                ))
            }
        };
        let rest = rest.trim();
        let values: Vec<String> = if op == "in" {
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| {
                    format!("Error in the JQL Query: Expecting '(' after 'in' in '{c}'.")
                })?;
            inner.split(',').map(unquote).collect()
        } else {
            vec![unquote(rest)]
        };
        if values.iter().any(String::is_empty) {
            return Err(format!(
                "Error in the JQL Query: Expecting a value in '{c}'."
            ));
        }
        clauses.push((field, op == "!=", values));
    }
    if clauses.is_empty() {
        return Err("Error in the JQL Query: the query is empty.".into());
    }
    Ok(move |key: &str, is: &SimIssue| {
        clauses.iter().all(|(field, negated, values)| {
            let actual = match field.as_str() {
                "project" => &is.project,
                "issuetype" => &is.issue_type,
                "status" => &is.status,
                _ => key,
            };
            values.iter().any(|v| v.eq_ignore_ascii_case(actual)) != *negated
        })
    })
}

/// Splits on AND outside quotes.
fn split_and(q: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let words: Vec<&str> = q.split(' ').collect();
    for w in words {
        if !quoted && w.eq_ignore_ascii_case("and") {
            out.push(String::new());
            continue;
        }
        quoted ^= w.matches('"').count() % 2 == 1;
        let cur = out.last_mut().expect("non-empty");
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    out
}

fn unquote(v: &str) -> String {
    v.trim().trim_matches('"').trim_matches('\'').to_string()
}

async fn search(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = admit_any(&sim, &headers).await {
        return r;
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Unexpected character in the request body.",
            )
        }
    };
    let Some(jql) = v["jql"].as_str() else {
        return error(StatusCode::BAD_REQUEST, "jql is required.");
    };
    let matches = match jql_matches(jql) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let max = v["maxResults"].as_u64().unwrap_or(50).clamp(1, 100) as usize;
    let fields: Vec<String> = v["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let start = match sim.flavor {
        JiraFlavor::Cloud => v["nextPageToken"]
            .as_str()
            .and_then(|t| t.parse::<usize>().ok())
            .unwrap_or(0),
        JiraFlavor::Datacenter => v["startAt"].as_u64().unwrap_or(0) as usize,
    };
    let mut i = sim.inner.lock().unwrap();
    i.searches += 1;
    let all: Vec<(&String, &SimIssue)> = i.issues.iter().filter(|(k, is)| matches(k, is)).collect();
    let total = all.len();
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(max)
        .enumerate()
        .map(|(n, (k, is))| {
            let mut f = serde_json::Map::new();
            for id in &fields {
                f.insert(
                    id.clone(),
                    field_value(sim.flavor, is, id).unwrap_or(Value::Null),
                );
            }
            let f = is.corrupt_fields.clone().unwrap_or(Value::Object(f));
            json!({"id": (10000 + start + n).to_string(), "key": k, "fields": f})
        })
        .collect();
    let end = start + page.len();
    match sim.flavor {
        JiraFlavor::Cloud => {
            let mut b = json!({"issues": page, "isLast": end >= total});
            if end < total {
                b["nextPageToken"] = Value::String(end.to_string());
            }
            Json(b).into_response()
        }
        JiraFlavor::Datacenter => {
            Json(json!({"startAt": start, "maxResults": max, "total": total, "issues": page}))
                .into_response()
        }
    }
}

async fn fields(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if let Err(r) = admit_any(&sim, &headers).await {
        return r;
    }
    let mut all = vec![
        json!({"id": "summary", "key": "summary", "name": "Summary", "custom": false, "schema": {"type": "string", "system": "summary"}}),
        json!({"id": "status", "key": "status", "name": "Status", "custom": false, "schema": {"type": "status", "system": "status"}}),
    ];
    for (id, name, kind) in CUSTOM_FIELDS {
        let t = if *kind == FieldKind::Select {
            "option"
        } else {
            "string"
        };
        all.push(json!({"id": id, "key": id, "name": name, "custom": true, "schema": {"type": t, "customId": id[12..].parse::<u64>().unwrap_or(0)}}));
    }
    Json(Value::Array(all)).into_response()
}

/// `GET /myself`: the authenticated user (Cloud: an account id; Data Center: a user name).
async fn myself(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if let Err(r) = admit_any(&sim, &headers).await {
        return r;
    }
    let user = match sim.flavor {
        JiraFlavor::Cloud => {
            json!({"accountId": "5b10ac8d82e05b22cc7d4ef5", "accountType": "atlassian", "displayName": "Certificate Bot", "emailAddress": sim.email, "active": true})
        }
        JiraFlavor::Datacenter => {
            json!({"name": "certbot", "key": "JIRAUSER10100", "displayName": "Certificate Bot", "emailAddress": "certbot@example.com", "active": true})
        }
    };
    Json(user).into_response()
}

/// `PUT /issue/{key}`: sets the summary and text custom fields (what the edit screen holds).
async fn edit(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = admit(&sim, &headers, &key).await {
        return r;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(fields) = v["fields"].as_object() else {
        return error(
            StatusCode::BAD_REQUEST,
            "Can not deserialize the request: fields is required.",
        );
    };
    let mut errors = serde_json::Map::new();
    for (id, val) in fields {
        let settable = id == "summary"
            || CUSTOM_FIELDS
                .iter()
                .any(|(fid, _, k)| fid == id && *k == FieldKind::Text);
        if !settable {
            errors.insert(
                id.clone(),
                Value::String(format!(
                    "Field '{id}' cannot be set. It is not on the appropriate screen, or unknown."
                )),
            );
        } else if !val.is_string() {
            errors.insert(
                id.clone(),
                Value::String("Operation value must be a string".into()),
            );
        }
    }
    if !errors.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            json!({"errorMessages": [], "errors": errors}).to_string(),
        )
            .into_response();
    }
    let mut i = sim.inner.lock().unwrap();
    let is = i.issues.get_mut(&key).expect("admitted");
    for (id, val) in fields {
        let text = val.as_str().unwrap_or("").to_string();
        if id == "summary" {
            is.summary = text;
        } else if let Some((_, name, _)) = CUSTOM_FIELDS.iter().find(|(fid, _, _)| fid == id) {
            is.fields.insert(name.to_string(), text);
        }
        is.edits.push((id.clone(), val.clone()));
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn issue(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&sim, &headers, &key).await {
        return r;
    }
    let i = sim.inner.lock().unwrap();
    i.issue_reads
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Some(is) = i.issues.get(&key) else {
        return error(
            StatusCode::NOT_FOUND,
            "Issue does not exist or you do not have permission to see it.",
        );
    };
    // `?fields=a,b`: those fields only, as Jira answers them.
    if let Some(list) = q.get("fields") {
        let mut f = serde_json::Map::new();
        for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            f.insert(
                id.to_string(),
                field_value(sim.flavor, is, id).unwrap_or(Value::Null),
            );
        }
        return Json(json!({"key": key, "fields": f})).into_response();
    }
    let att = field_value(sim.flavor, is, "attachment");
    Json(json!({"key": key, "fields": {"status": {"name": is.status}, "summary": is.summary, "attachment": att}}))
        .into_response()
}

struct Json(Value);
impl IntoResponse for Json {
    fn into_response(self) -> Response {
        (
            StatusCode::OK,
            [("content-type", "application/json")],
            self.0.to_string(),
        )
            .into_response()
    }
}

fn flatten(body: &Value) -> String {
    sectigo_jira::adf::text(body)
}

async fn comments(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(_q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&sim, &headers, &key).await {
        return r;
    }
    let i = sim.inner.lock().unwrap();
    let cs: Vec<Value> = i.issues[&key]
        .comments
        .iter()
        .enumerate()
        .rev()
        .map(|(n, c)| {
            let body = match sim.flavor {
                JiraFlavor::Cloud => sectigo_jira::adf::document(c),
                JiraFlavor::Datacenter => Value::String(c.clone()),
            };
            json!({"id": (10000 + n).to_string(), "body": body})
        })
        .collect();
    Json(json!({"startAt": 0, "maxResults": 100, "total": cs.len(), "comments": cs}))
        .into_response()
}

async fn add_comment(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = admit(&sim, &headers, &key).await {
        return r;
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Unexpected character in the request body.",
            )
        }
    };
    let text = match (sim.flavor, &v["body"]) {
        (JiraFlavor::Datacenter, Value::String(s)) if !s.trim().is_empty() => s.clone(),
        (JiraFlavor::Cloud, doc @ Value::Object(_))
            if doc["type"] == "doc" && doc["version"] == 1 && doc["content"].is_array() =>
        {
            let t = flatten(doc);
            if t.trim().is_empty() {
                return error(StatusCode::BAD_REQUEST, "Comment body can not be empty!");
            }
            t.trim_end().to_string()
        }
        (JiraFlavor::Cloud, _) => return error(
            StatusCode::BAD_REQUEST,
            "Comment body is not valid! The body must be an Atlassian Document Format document.",
        ),
        (JiraFlavor::Datacenter, _) => {
            return error(StatusCode::BAD_REQUEST, "Comment body can not be empty!")
        }
    };
    let mut i = sim.inner.lock().unwrap();
    let is = i.issues.get_mut(&key).expect("admitted");
    is.comments.push(text);
    let id = 10000 + is.comments.len() - 1;
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        json!({"id": id.to_string()}).to_string(),
    )
        .into_response()
}

async fn transitions(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    if let Err(r) = admit(&sim, &headers, &key).await {
        return r;
    }
    let i = sim.inner.lock().unwrap();
    let status = &i.issues[&key].status;
    let ts: Vec<Value> = WORKFLOW
        .iter()
        .filter(|(_, _, from, _)| from.contains(&status.as_str()))
        .map(|(id, name, _, to)| json!({"id": id, "name": name, "to": {"name": to, "id": format!("1{id}")}}))
        .collect();
    Json(json!({"expand": "transitions", "transitions": ts})).into_response()
}

async fn do_transition(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = admit(&sim, &headers, &key).await {
        return r;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(id) = v["transition"]["id"].as_str() else {
        return error(
            StatusCode::BAD_REQUEST,
            "Can not deserialize transition: the transition id must be a string.",
        );
    };
    let mut i = sim.inner.lock().unwrap();
    let is = i.issues.get_mut(&key).expect("admitted");
    match WORKFLOW.iter().find(|(tid, _, from, _)| *tid == id && from.contains(&is.status.as_str())) {
        Some((_, name, _, to)) => {
            is.status = to.to_string();
            is.transitions.push(name.to_string());
            StatusCode::NO_CONTENT.into_response()
        }
        None => (StatusCode::BAD_REQUEST, [("content-type", "application/json")], json!({"errorMessages": [format!("Transition id '{id}' is not valid for this issue.")], "errors": {}}).to_string()).into_response(),
    }
}

async fn attach(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = admit(&sim, &headers, &key).await {
        return r;
    }
    if headers
        .get("x-atlassian-token")
        .and_then(|v| v.to_str().ok())
        != Some("no-check")
    {
        return (StatusCode::FORBIDDEN, "XSRF check failed").into_response();
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(boundary) = ct.strip_prefix("multipart/form-data; boundary=") else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected multipart/form-data",
        );
    };
    let Some((filename, content)) = multipart_file(&body, boundary) else {
        return error(
            StatusCode::BAD_REQUEST,
            "No file named 'file' in the request.",
        );
    };
    let mut i = sim.inner.lock().unwrap();
    let is = i.issues.get_mut(&key).expect("admitted");
    is.attachments.push((filename.clone(), content.clone()));
    Json(json!([{"filename": filename, "size": content.len()}])).into_response()
}

/// The part named `file` of a multipart body: (file name, content).
fn multipart_file(body: &[u8], boundary: &str) -> Option<(String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let text = body;
    let mut parts = Vec::new();
    let mut start = 0;
    while let Some(pos) = find(&text[start..], delim.as_bytes()) {
        parts.push(start + pos);
        start += pos + delim.len();
    }
    for w in parts.windows(2) {
        let part = &text[w[0] + delim.len()..w[1]];
        let split = find(part, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&part[..split]);
        if !head.contains("name=\"file\"") {
            continue;
        }
        let filename = head
            .split("filename=\"")
            .nth(1)?
            .split('"')
            .next()?
            .to_string();
        let mut content = part[split + 4..].to_vec();
        if content.ends_with(b"\r\n") {
            content.truncate(content.len() - 2);
        }
        return Some((filename, content));
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
