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

use crate::config::JiraFlavor;

/// The workflow: (transition id, name, from statuses, to status).
const WORKFLOW: &[(&str, &str, &[&str], &str)] = &[
    (
        "11",
        "Start Renewal",
        &["Open", "Renewed", "Needs Attention"],
        "Renewal In Progress",
    ),
    (
        "21",
        "Renewed",
        &["Open", "Renewal In Progress", "Needs Attention"],
        "Renewed",
    ),
    (
        "31",
        "Flag Problem",
        &["Open", "Renewal In Progress", "Renewed"],
        "Needs Attention",
    ),
    ("41", "Reopen", &["Renewed", "Needs Attention"], "Open"),
];

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
    /// Comment bodies as plain text (ADF flattened).
    pub comments: Vec<String>,
    /// (file name, content).
    pub attachments: Vec<(String, Vec<u8>)>,
    /// Transitions performed, by name.
    pub transitions: Vec<String>,
}

struct Inner {
    issues: BTreeMap<String, SimIssue>,
    faults: JiraFaults,
    requests: usize,
    refused_auth: usize,
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
            }),
        });
        let v = match flavor {
            JiraFlavor::Cloud => "3",
            JiraFlavor::Datacenter => "2",
        };
        let app = Router::new()
            .route(&format!("/rest/api/{v}/issue/:key"), get(issue))
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
                ..Default::default()
            },
        );
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
    if !sim.inner.lock().unwrap().issues.contains_key(key) {
        return Err(error(
            StatusCode::NOT_FOUND,
            "Issue does not exist or you do not have permission to see it.",
        ));
    }
    Ok(())
}

async fn issue(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    if let Err(r) = admit(&sim, &headers, &key).await {
        return r;
    }
    let i = sim.inner.lock().unwrap();
    let is = &i.issues[&key];
    let att: Vec<Value> = is
        .attachments
        .iter()
        .enumerate()
        .map(|(n, (f, c))| json!({"id": (10000 + n).to_string(), "filename": f, "size": c.len()}))
        .collect();
    Json(json!({"key": key, "fields": {"status": {"name": is.status}, "attachment": att}}))
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
    crate::jira::adf::text(body)
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
                JiraFlavor::Cloud => crate::jira::adf::document(c),
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
