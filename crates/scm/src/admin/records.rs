//! What the Admin API says about certificates: the list's summaries and one certificate's
//! details, typed for what the daemon needs. Reading is tolerant (unknown fields ignored,
//! `null` taken as absent, ids as numbers or numeric strings, `sslId` or `id`) and strict where
//! it matters: an answer that is not the expected JSON, or a date in no form SCM uses, is
//! [`ScmError::Malformed`]. Pure functions of status and body; fuzzed with the SCM answers.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::date::{parse_scm_date, ScmDate};
use crate::ScmError;

/// One entry of `GET /api/ssl/v1` (the spec's `SSLIdentity`). The list carries no status or
/// expiry: [`super::AdminClient::details`] has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// SCM's certificate id: the REST Enrollment API's `certId` for the same certificate.
    pub ssl_id: i64,
    pub common_name: String,
    /// Absent from the 25.5 example traffic; in the 25.9.2 spec.
    pub subject_alternative_names: Vec<String>,
    pub serial_number: Option<String>,
}

/// A certificate's status: the vocabulary of the spec's `status` filter. The details field is
/// free text in the spec, so anything else is kept as [`CertStatus::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CertStatus {
    Invalid,
    Requested,
    Approved,
    Declined,
    Applied,
    Issued,
    Revoked,
    Expired,
    Replaced,
    Rejected,
    SaApproved,
    Init,
    /// A status the spec does not list (as SCM wrote it).
    Other(String),
}

impl CertStatus {
    /// Every status of the spec's filter, in its order.
    pub const ALL: [CertStatus; 12] = [
        CertStatus::Invalid,
        CertStatus::Requested,
        CertStatus::Approved,
        CertStatus::Declined,
        CertStatus::Applied,
        CertStatus::Issued,
        CertStatus::Revoked,
        CertStatus::Expired,
        CertStatus::Replaced,
        CertStatus::Rejected,
        CertStatus::SaApproved,
        CertStatus::Init,
    ];

    /// SCM's word (`"SA Approved"` for [`CertStatus::SaApproved`]).
    pub fn as_str(&self) -> &str {
        match self {
            CertStatus::Invalid => "Invalid",
            CertStatus::Requested => "Requested",
            CertStatus::Approved => "Approved",
            CertStatus::Declined => "Declined",
            CertStatus::Applied => "Applied",
            CertStatus::Issued => "Issued",
            CertStatus::Revoked => "Revoked",
            CertStatus::Expired => "Expired",
            CertStatus::Replaced => "Replaced",
            CertStatus::Rejected => "Rejected",
            CertStatus::SaApproved => "SA Approved",
            CertStatus::Init => "Init",
            CertStatus::Other(s) => s,
        }
    }

    /// Reads SCM's word, ignoring case and surrounding spaces.
    pub fn parse(s: &str) -> CertStatus {
        let t = s.trim();
        CertStatus::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(t))
            .unwrap_or_else(|| CertStatus::Other(t.to_string()))
    }
}

impl std::fmt::Display for CertStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CertStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The certificate profile ("SSL type") a certificate was enrolled from (`certType`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertType {
    /// The `sslTypeId` the list filters on.
    pub id: i64,
    pub name: String,
}

/// SCM's own auto-renewal of a certificate (`autoRenewDetails`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutoRenew {
    /// `Not scheduled`, `Scheduled`, `Started`, `Successful` or `Failed` (the spec's).
    pub state: String,
    pub days_before_expiration: Option<i64>,
}

impl AutoRenew {
    /// SCM will renew (or is renewing) this certificate itself: `Scheduled` or `Started`.
    pub fn is_on(&self) -> bool {
        let s = self.state.trim();
        s.eq_ignore_ascii_case("Scheduled") || s.eq_ignore_ascii_case("Started")
    }

    /// SCM renewed this certificate itself: `Successful`.
    pub fn succeeded(&self) -> bool {
        self.state.trim().eq_ignore_ascii_case("Successful")
    }
}

/// `GET /api/ssl/v1/{sslId}` (the spec's `CertDetailsResponse`), the fields the daemon uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertDetails {
    /// `id` (or the deprecated `sslId`).
    pub ssl_id: i64,
    pub common_name: String,
    pub status: CertStatus,
    pub serial_number: Option<String>,
    pub subject_alternative_names: Vec<String>,
    pub expires: Option<ScmDate>,
    pub requested: Option<ScmDate>,
    pub issued: Option<ScmDate>,
    pub revoked: Option<ScmDate>,
    /// SCM marks a certificate renewed when a renewal of it was requested (through any API,
    /// the web UI or SCM's auto-renewal). It names no successor.
    pub renewed: bool,
    pub renewed_date: Option<ScmDate>,
    /// The request's `comments`: the daemon's request marker
    /// ([`crate::request_tag`]) when the daemon asked for this certificate.
    pub comments: String,
    pub org_id: Option<i64>,
    pub cert_type: Option<CertType>,
    /// How it was requested: `REST API`, `Client Admin` (the web UI), `Enrollment Form`, ...
    pub requested_via: Option<String>,
    pub auto_renew: Option<AutoRenew>,
    /// Days.
    pub term: Option<i64>,
    pub backend_cert_id: Option<String>,
}

/// The marker's text before the request id (see [`crate::request_tag`]).
const MARKER_START: &str = "[sectigo-connector request ";

impl CertDetails {
    /// The certificate profile id (`certType.id`), the list's `sslTypeId`.
    pub fn ssl_type_id(&self) -> Option<i64> {
        self.cert_type.as_ref().map(|t| t.id)
    }

    /// Whether the daemon's request `request_id` asked for this certificate (its marker is in
    /// `comments`).
    pub fn carries_request(&self, request_id: &str) -> bool {
        self.comments.contains(&crate::request_tag(request_id))
    }

    /// The ids of every daemon request marker in `comments` (usually none or one).
    pub fn request_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut rest = self.comments.as_str();
        while let Some(i) = rest.find(MARKER_START) {
            rest = &rest[i + MARKER_START.len()..];
            match rest.find(']') {
                Some(j) if j > 0 && !rest[..j].contains([' ', '[']) => {
                    ids.push(rest[..j].to_string());
                    rest = &rest[j + 1..];
                }
                _ => {}
            }
        }
        ids
    }

    /// SCM's own auto-renewal will renew (or is renewing) it.
    pub fn auto_renew_on(&self) -> bool {
        self.auto_renew.as_ref().is_some_and(AutoRenew::is_on)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSummary {
    #[serde(default)]
    ssl_id: Option<Value>,
    #[serde(default)]
    common_name: Option<String>,
    #[serde(default)]
    subject_alternative_names: Option<Vec<Option<String>>>,
    #[serde(default)]
    serial_number: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCertType {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAutoRenew {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    days_before_expiration: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDetails {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    ssl_id: Option<Value>,
    #[serde(default)]
    common_name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    serial_number: Option<String>,
    #[serde(default)]
    subject_alternative_names: Option<Vec<Option<String>>>,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    requested: Option<String>,
    #[serde(default)]
    issued: Option<String>,
    #[serde(default)]
    revoked: Option<String>,
    #[serde(default)]
    renewed: Option<bool>,
    #[serde(default)]
    renewed_date: Option<String>,
    #[serde(default)]
    comments: Option<String>,
    #[serde(default)]
    org_id: Option<Value>,
    #[serde(default)]
    cert_type: Option<RawCertType>,
    /// Not in the 25.9.2 spec (it has `certType.id`); read when present.
    #[serde(default)]
    ssl_type_id: Option<Value>,
    #[serde(default)]
    requested_via: Option<String>,
    #[serde(default)]
    auto_renew_details: Option<RawAutoRenew>,
    #[serde(default)]
    term: Option<i64>,
    #[serde(default)]
    backend_cert_id: Option<String>,
}

fn malformed(status: u16, what: impl Into<String>) -> ScmError {
    ScmError::Malformed {
        status,
        what: what.into(),
    }
}

fn not_json(status: u16, expected: &str, e: &serde_json::Error, body: &[u8]) -> ScmError {
    malformed(
        status,
        format!("expected {expected}: {e}; got {}", crate::snippet(body)),
    )
}

/// An id: a JSON integer, or a string of digits.
fn id_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn names(v: Option<Vec<Option<String>>>) -> Vec<String> {
    v.unwrap_or_default().into_iter().flatten().collect()
}

fn blank_is_none(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// The entries of a list answer (`[{"sslId": 58, "commonName": "ccmqa.com"}, ...]`).
pub fn parse_list(status: u16, body: &[u8]) -> Result<Vec<CertSummary>, ScmError> {
    let raw: Vec<RawSummary> = serde_json::from_slice(body)
        .map_err(|e| not_json(status, "a JSON array of certificates", &e, body))?;
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let ssl_id = r.ssl_id.as_ref().and_then(id_of).ok_or_else(|| {
                malformed(
                    status,
                    format!("list entry {i} has no integer sslId ({:?})", r.ssl_id),
                )
            })?;
            Ok(CertSummary {
                ssl_id,
                common_name: r.common_name.unwrap_or_default(),
                subject_alternative_names: names(r.subject_alternative_names),
                serial_number: blank_is_none(r.serial_number),
            })
        })
        .collect()
}

/// `X-Total-Count`: the number of certificates matching the filter, all pages together.
/// Absent or not a count (negative, text): `None`.
pub fn parse_total(header: Option<&str>) -> Option<u64> {
    header?.trim().parse().ok()
}

/// A details answer.
pub fn parse_details(status: u16, body: &[u8]) -> Result<CertDetails, ScmError> {
    let expected = "a JSON object (certificate details)";
    let v: Value =
        serde_json::from_slice(body).map_err(|e| not_json(status, expected, &e, body))?;
    if !v.is_object() {
        return Err(malformed(
            status,
            format!("expected {expected}; got {}", crate::snippet(body)),
        ));
    }
    let r = RawDetails::deserialize(v).map_err(|e| not_json(status, expected, &e, body))?;
    let ssl_id =
        r.id.as_ref()
            .and_then(id_of)
            .or_else(|| r.ssl_id.as_ref().and_then(id_of))
            .ok_or_else(|| malformed(status, "the details carry no integer id or sslId"))?;
    let date = |field: &str, v: Option<String>| -> Result<Option<ScmDate>, ScmError> {
        match blank_is_none(v) {
            None => Ok(None),
            Some(t) => parse_scm_date(&t)
                .map(Some)
                .map_err(|e| malformed(status, format!("certificate {ssl_id}: {field}: {e}"))),
        }
    };
    let cert_type = r.cert_type.and_then(|t| {
        let id = t.id.as_ref().and_then(id_of)?;
        Some(CertType {
            id,
            name: t.name.unwrap_or_default(),
        })
    });
    let cert_type = match (cert_type, r.ssl_type_id.as_ref().and_then(id_of)) {
        (Some(t), _) => Some(t),
        (None, Some(id)) => Some(CertType {
            id,
            name: String::new(),
        }),
        (None, None) => None,
    };
    Ok(CertDetails {
        ssl_id,
        common_name: r.common_name.unwrap_or_default(),
        status: CertStatus::parse(r.status.as_deref().unwrap_or_default()),
        serial_number: blank_is_none(r.serial_number),
        subject_alternative_names: names(r.subject_alternative_names),
        expires: date("expires", r.expires)?,
        requested: date("requested", r.requested)?,
        issued: date("issued", r.issued)?,
        revoked: date("revoked", r.revoked)?,
        renewed: r.renewed.unwrap_or(false),
        renewed_date: date("renewedDate", r.renewed_date)?,
        comments: r.comments.unwrap_or_default(),
        org_id: r.org_id.as_ref().and_then(id_of),
        cert_type,
        requested_via: blank_is_none(r.requested_via),
        auto_renew: r.auto_renew_details.map(|a| AutoRenew {
            state: a.state.unwrap_or_default(),
            days_before_expiration: a.days_before_expiration,
        }),
        term: r.term,
        backend_cert_id: blank_is_none(r.backend_cert_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone, Utc};

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn day(y: i32, m: u32, d: u32) -> Option<ScmDate> {
        Some(ScmDate::Day(NaiveDate::from_ymd_opt(y, m, d).unwrap()))
    }

    #[test]
    fn the_vendors_list_example() {
        let l = parse_list(200, &fixture("admin-list-25.5.json")).unwrap();
        assert_eq!(
            l,
            vec![CertSummary {
                ssl_id: 58,
                common_name: "ccmqa.com".into(),
                subject_alternative_names: vec![],
                serial_number: None,
            }]
        );
        // The spec's schema (Prism's placeholder): every field, an int32 id.
        let l = parse_list(200, &fixture("admin-list-prism-25.9.2.json")).unwrap();
        assert_eq!(l[0].ssl_id, -2147483648);
        assert_eq!(l[0].subject_alternative_names, vec!["string"]);
        assert_eq!(l[0].serial_number.as_deref(), Some("string"));
        assert_eq!(parse_list(200, b"[]").unwrap(), vec![]);
    }

    #[test]
    fn the_vendors_details_example() {
        let d = parse_details(200, &fixture("admin-details-25.5.json")).unwrap();
        assert_eq!(d.ssl_id, 54);
        assert_eq!(d.common_name, "ccmqa.com");
        assert_eq!(d.status, CertStatus::Issued);
        assert_eq!(d.org_id, Some(99));
        assert_eq!(
            d.cert_type,
            Some(CertType {
                id: 1009,
                name: "SSL SASP 1908375227".into()
            })
        );
        assert_eq!(d.ssl_type_id(), Some(1009));
        assert_eq!(d.requested_via.as_deref(), Some("Enrollment Form"));
        assert_eq!(d.comments, "some comments");
        assert_eq!(d.requested, day(2025, 5, 21));
        assert_eq!(d.expires, day(2026, 5, 21));
        assert!(!d.renewed);
        assert_eq!(d.renewed_date, None);
        assert_eq!(d.serial_number.as_deref(), Some("00:0::11::2:2::33"));
        assert_eq!(d.subject_alternative_names, vec!["ccmqa.com"]);
        assert_eq!(d.term, Some(365));
        assert_eq!(d.backend_cert_id.as_deref(), Some("7344326"));
        assert_eq!(
            d.auto_renew,
            Some(AutoRenew {
                state: "Not scheduled".into(),
                days_before_expiration: None
            })
        );
        assert!(!d.auto_renew_on());
        assert!(d.request_ids().is_empty());

        let d = parse_details(200, &fixture("admin-details-public-client.json")).unwrap();
        assert_eq!((d.ssl_id, d.org_id), (1234, Some(1234)));
        assert_eq!(d.expires, day(2023, 2, 16));
        assert_eq!(d.cert_type, None);
        assert_eq!(d.auto_renew, None);
    }

    #[test]
    fn the_specs_details_as_prism_serves_them() {
        let d = parse_details(200, &fixture("admin-details-prism-25.9.2.json")).unwrap();
        let t = Some(ScmDate::At(
            Utc.with_ymd_and_hms(2019, 8, 24, 14, 15, 22).unwrap(),
        ));
        assert_eq!((d.expires, d.renewed_date, d.issued), (t, t, t));
        assert!(d.renewed);
        assert_eq!(d.status, CertStatus::Other("string".into()));
        // Random values valid against the schema: still read.
        let d = parse_details(200, &fixture("admin-details-prism-dynamic-25.9.2.json")).unwrap();
        assert!(d.expires.is_some());
        assert!(d.auto_renew.is_some());
    }

    #[test]
    fn tolerant_of_what_does_not_matter() {
        // Unknown fields, nulls, the deprecated sslId alone, ids as strings, empty dates.
        let d = parse_details(
            200,
            br#"{"sslId":"77","commonName":null,"status":" issued ","expires":"",
                "renewedDate":null,"subjectAlternativeNames":[null,"a.example"],
                "sslTypeId":12,"brandNewField":{"x":[1,2]},"renewed":true}"#,
        )
        .unwrap();
        assert_eq!(d.ssl_id, 77);
        assert_eq!(d.common_name, "");
        assert_eq!(d.status, CertStatus::Issued);
        assert_eq!((d.expires, d.renewed_date), (None, None));
        assert_eq!(d.subject_alternative_names, vec!["a.example"]);
        assert_eq!(d.ssl_type_id(), Some(12));
        assert!(d.renewed);
    }

    #[test]
    fn unreadable_answers_are_malformed_and_say_why() {
        for (body, want) in [
            (&b"<html>oops</html>"[..], "expected a JSON object"),
            (b"[]", "expected a JSON object"),
            (b"{}", "no integer id"),
            (br#"{"id":5,"expires":"next tuesday"}"#, "expires"),
            (br#"{"id":5,"renewedDate":"31/12/2026"}"#, "renewedDate"),
            (br#"{"id":5,"renewed":"yes"}"#, "expected a JSON object"),
        ] {
            match parse_details(200, body) {
                Err(ScmError::Malformed { status: 200, what }) => {
                    assert!(
                        what.contains(want),
                        "{}: {what}",
                        String::from_utf8_lossy(body)
                    )
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
        for body in [
            &b"{}"[..],
            b"[{\"commonName\":\"a\"}]",
            b"[{\"sslId\":1.5}]",
            b"null",
        ] {
            assert!(
                matches!(parse_list(200, body), Err(ScmError::Malformed { .. })),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn totals() {
        assert_eq!(parse_total(Some("42")), Some(42));
        assert_eq!(parse_total(Some(" 0 ")), Some(0));
        assert_eq!(parse_total(Some("-66860413")), None);
        assert_eq!(parse_total(Some("many")), None);
        assert_eq!(parse_total(None), None);
    }

    #[test]
    fn statuses_and_markers() {
        for s in CertStatus::ALL {
            assert_eq!(CertStatus::parse(s.as_str()), s);
        }
        assert_eq!(CertStatus::parse("sa approved"), CertStatus::SaApproved);
        assert_eq!(
            CertStatus::parse("Downloaded"),
            CertStatus::Other("Downloaded".into())
        );
        let mut d = parse_details(200, br#"{"id":1}"#).unwrap();
        d.comments = crate::comments_with_request("renewed by cron", "r-1a2b3c4d5e");
        assert!(d.carries_request("r-1a2b3c4d5e"));
        assert!(!d.carries_request("r-1a2b3c4d5"));
        assert_eq!(d.request_ids(), vec!["r-1a2b3c4d5e"]);
        d.comments = "[sectigo-connector request ] [sectigo-connector request r-9] x [sectigo-connector request r-".into();
        assert_eq!(d.request_ids(), vec!["r-9"]);
        assert!(AutoRenew {
            state: "Scheduled".into(),
            days_before_expiration: Some(30)
        }
        .is_on());
    }
}
