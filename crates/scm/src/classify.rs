//! One place that decides what every SCM answer means: a pure function of the call, the HTTP
//! status and SCM's error code (the vendor's error table, `scm-error-codes-25.5.tsv`).

use std::time::Duration;

use serde::Deserialize;

/// SCM's error body: `{"code": <negative int>, "description": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ScmErrorBody {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub description: String,
}

/// The call an answer is for: the same SCM code means different things on different calls
/// (-103 on a download is "not collected yet, ask later"; on a renew it is a refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// The OAuth2 token endpoint. Never billable: its failures are never "maybe billed".
    Token,
    /// Billable.
    Renew,
    /// Billable.
    Enroll,
    Replace,
    Download,
    Status,
    Revoke,
    /// The Admin API's list (`GET /api/ssl/v1`). Free, read-only.
    AdminList,
    /// The Admin API's details of one certificate (`GET /api/ssl/v1/{sslId}`). Free, read-only.
    AdminDetails,
}

impl Call {
    pub fn name(self) -> &'static str {
        match self {
            Call::Token => "token",
            Call::Renew => "renew",
            Call::Enroll => "enroll",
            Call::Replace => "replace",
            Call::Download => "download",
            Call::Status => "status",
            Call::Revoke => "revoke",
            Call::AdminList => "admin list",
            Call::AdminDetails => "admin details",
        }
    }

    /// Creates (and bills) a certificate when SCM acts on it.
    pub fn is_billable(self) -> bool {
        matches!(self, Call::Renew | Call::Enroll | Call::Replace)
    }
}

/// What an answer means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    Success,
    /// The CA is still working: ask again later (not an error). Downloads and status only.
    Pending,
    /// Worth retrying with backoff; `retry_after` when the server said how long to wait.
    /// `maybe_processed`: the server may have acted on the request (a gateway timeout).
    Transient {
        retry_after: Option<Duration>,
        maybe_processed: bool,
    },
    /// The bearer token was refused: get a new one once and retry once.
    Unauthorized,
    /// SCM refused, for a reason a person can fix in SCM (`action` says what); retried on the
    /// persisted backoff so that the fix is picked up, never in a loop.
    Refused {
        action: &'static str,
    },
    /// Download: the certificate was revoked in SCM.
    Revoked,
    /// Revoke: the certificate is revoked already (done).
    AlreadyRevoked,
    /// Retrying cannot help (a wrong certificate id, an answer that is not SCM's).
    Permanent,
}

const DCV: &str = "complete Domain Control Validation for the domain in SCM (Domains > DCV), then the next attempt goes through";
const NOT_ISSUED: &str = "the certificate is not in state Issued in SCM: look it up there (revoked, expired, replaced, or still pending?)";
const NO_RENEW: &str = "the SSL certificate profile of the REST account does not allow renewal: change the profile in SCM, or enroll a new certificate";
const CUSTOM_FIELDS: &str = "the custom fields do not fit the SCM account: set the profile's `custom_fields` to the account's mandatory fields (names as in SCM)";
const CERT_PROFILE: &str = "the certificate profile or term is not valid for the REST account: check the account's profile in SCM, or set `scm_profile_id`";
const CSR: &str = "SCM does not accept the CSR (key type or size, encoding): generate a new key and CSR that the account's profile allows";
const PERMISSION: &str =
    "the REST account lacks the permission: grant it in SCM (Enrollment > REST > Accounts)";
const NOT_COLLECTED: &str =
    "SCM has not issued the certificate being renewed yet: collect or approve it in SCM first";
const REVOKE_NOT_ISSUED: &str =
    "only issued certificates can be revoked: this one is not issued in SCM (pending, declined?)";
const OTHER: &str = "see SCM's message; fix the cause in SCM";
const ADMIN_PERMISSION: &str = "the admin API account ([admin] client_id) lacks the privilege: give it a role that may view the SSL certificates of the organisation in SCM";
const ADMIN_ORG: &str = "SCM does not know the organisation, or the admin API account may not see it: check [admin] org_id";

/// Codes that mean "not issued yet, ask later" on a download or a status call.
fn is_pending_code(code: i64, description: &str) -> bool {
    matches!(code, -103 | -109 | -183 | -1400)
        || (code == 0 && description.to_ascii_lowercase().contains("being processed"))
}

/// SCM's codes that say "try again later" on any call: the request was refused, not acted on.
fn is_try_later_code(code: i64) -> bool {
    matches!(code, -129 | -140 | -195 | -196)
}

/// What a person must do about a refusal of a billable call, by SCM code.
fn refusal_of_billable(code: i64) -> &'static str {
    match code {
        -107 | -737 => DCV,
        -130 => NOT_ISSUED,
        -180 => NO_RENEW,
        -62 | -131 | -134 | -135 | -159 | -160 => CUSTOM_FIELDS,
        -36 | -39 | -111 | -172 | -184 | -185 => CERT_PROFILE,
        -9 | -10 | -11 | -13 | -78 | -138 | -141 | -170 | -194 => CSR,
        -3 | -25 | -37 | -226 | -738 => PERMISSION,
        -103 | -109 | -183 => NOT_COLLECTED,
        _ => OTHER,
    }
}

/// Classifies an HTTP answer to `call`. `body` is SCM's error body when it could be parsed.
/// Pure: table-tested below against the vendor's error table.
pub fn classify(
    call: Call,
    status: u16,
    body: Option<&ScmErrorBody>,
    retry_after: Option<Duration>,
) -> Class {
    let transient = |maybe_processed: bool| Class::Transient {
        retry_after,
        // Nothing the token endpoint does is billable.
        maybe_processed: maybe_processed && call != Call::Token,
    };
    match status {
        200..=299 => return Class::Success,
        401 => return Class::Unauthorized,
        408 | 425 | 429 => return transient(false),
        // A gateway timeout: the request reached something that may have forwarded it.
        504 => return transient(true),
        500..=599 => return transient(false),
        _ => {}
    }
    let Some(b) = body.filter(|b| b.code != 0 || !b.description.is_empty()) else {
        // No SCM error body: a proxy's page, or SCM answering without its JSON.
        return Class::Permanent;
    };
    if is_try_later_code(b.code) {
        return transient(false);
    }
    match call {
        Call::Token => Class::Permanent,
        Call::Download | Call::Status => match b.code {
            c if is_pending_code(c, &b.description) => Class::Pending,
            -110 => Class::Revoked,
            -107 => Class::Refused { action: DCV },
            _ => Class::Permanent,
        },
        Call::Renew | Call::Enroll | Call::Replace => match b.code {
            // A certificate id that does not exist will not start to exist.
            -123 | -124 => Class::Permanent,
            c => Class::Refused {
                action: refusal_of_billable(c),
            },
        },
        Call::Revoke => match b.code {
            -159 | -110 => Class::AlreadyRevoked,
            -102 => Class::Refused {
                action: REVOKE_NOT_ISSUED,
            },
            -3 | -25 | -37 => Class::Refused { action: PERMISSION },
            _ => Class::Permanent,
        },
        // Reads of SCM's records: nothing is pending, nothing billed; a wrong id stays wrong.
        Call::AdminList | Call::AdminDetails => match b.code {
            -3 | -25 | -37 | -226 | -738 => Class::Refused {
                action: ADMIN_PERMISSION,
            },
            -639 | -1021 | -1023 => Class::Refused { action: ADMIN_ORG },
            _ => Class::Permanent,
        },
    }
}

pub use sectigo_core::http::parse_retry_after;

/// The `authorization_uri` parameter of a `WWW-Authenticate` header, if any.
pub fn authorization_uri(www_authenticate: &str) -> Option<String> {
    let i = www_authenticate.find("authorization_uri=")?;
    let rest = &www_authenticate[i + "authorization_uri=".len()..];
    let v = if let Some(r) = rest.strip_prefix('"') {
        r.split('"').next()?
    } else {
        rest.split([',', ' ']).next()?
    };
    Some(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(code: i64, d: &str) -> ScmErrorBody {
        ScmErrorBody {
            code,
            description: d.into(),
        }
    }

    #[test]
    fn classification_by_status() {
        let ra = Some(Duration::from_secs(7));
        let t = |retry_after, maybe_processed| Class::Transient {
            retry_after,
            maybe_processed,
        };
        for call in [
            Call::Renew,
            Call::Download,
            Call::Revoke,
            Call::AdminList,
            Call::AdminDetails,
        ] {
            let cases: Vec<(u16, Option<ScmErrorBody>, Option<Duration>, Class)> = vec![
                (200, None, None, Class::Success),
                (202, None, None, Class::Success),
                (429, None, ra, t(ra, false)),
                (503, None, ra, t(ra, false)),
                (500, Some(b(-1, "internal")), None, t(None, false)),
                (502, None, None, t(None, false)),
                (504, None, None, t(None, true)),
                (408, None, None, t(None, false)),
                (401, None, None, Class::Unauthorized),
                (403, None, None, Class::Permanent),
                (404, None, None, Class::Permanent),
                (
                    400,
                    Some(b(-195, "CA is not available now. Please try again later.")),
                    None,
                    t(None, false),
                ),
                (
                    400,
                    Some(b(-140, "CSR decoding temporarily unavailable.")),
                    None,
                    t(None, false),
                ),
            ];
            for (status, body, ra, want) in cases {
                assert_eq!(
                    classify(call, status, body.as_ref(), ra),
                    want,
                    "{call:?} {status} {body:?}"
                );
            }
        }
    }

    #[test]
    fn a_token_endpoint_failure_is_never_maybe_billed() {
        for status in [500, 502, 503, 504, 429] {
            assert_eq!(
                classify(Call::Token, status, None, None),
                Class::Transient {
                    retry_after: None,
                    maybe_processed: false
                },
                "{status}"
            );
        }
    }

    #[test]
    fn the_same_code_means_different_things_on_different_calls() {
        use Call::*;
        let refused = |action| Class::Refused { action };
        // (call, code, description from the vendor table, what it means)
        let cases: Vec<(Call, i64, &str, Class)> = vec![
            (
                Download,
                -103,
                "Certificate has not been collected yet.",
                Class::Pending,
            ),
            (
                Download,
                -109,
                "Certificate is not available now, please try again later.",
                Class::Pending,
            ),
            (
                Download,
                -183,
                "Certificate is not collectable.",
                Class::Pending,
            ),
            (
                Download,
                -1400,
                "request is being processed",
                Class::Pending,
            ),
            (Download, 0, "Being processed by Sectigo", Class::Pending),
            (
                Status,
                -109,
                "Certificate is not available now",
                Class::Pending,
            ),
            (
                Download,
                -110,
                "Certificate has been revoked and cannot be downloaded.",
                Class::Revoked,
            ),
            (
                Download,
                -107,
                "Domain Control Validation is either incomplete or expired for a.example.",
                refused(DCV),
            ),
            (
                Download,
                -124,
                "Wrong SSL certificate id 9.",
                Class::Permanent,
            ),
            (
                Renew,
                -107,
                "Domain Control Validation is either incomplete or expired for a.example.",
                refused(DCV),
            ),
            (
                Enroll,
                -107,
                "Domain Control Validation is either incomplete or expired for a.example.",
                refused(DCV),
            ),
            (
                Renew,
                -103,
                "Certificate has not been collected yet.",
                refused(NOT_COLLECTED),
            ),
            (
                Renew,
                -109,
                "Certificate is not available now, please try again later.",
                refused(NOT_COLLECTED),
            ),
            (
                Renew,
                -130,
                "SSL state is not 'ISSUED': 9",
                refused(NOT_ISSUED),
            ),
            (
                Renew,
                -180,
                "This SSL Certificate Profile doesn't allow renew",
                refused(NO_RENEW),
            ),
            (
                Renew,
                -62,
                "Missing mandatory custom field!",
                refused(CUSTOM_FIELDS),
            ),
            (
                Renew,
                -135,
                "Custom field cannot be found.",
                refused(CUSTOM_FIELDS),
            ),
            (
                Renew,
                -111,
                "No certificate profile found by id 7",
                refused(CERT_PROFILE),
            ),
            (Enroll, -138, "Invalid CSR.", refused(CSR)),
            (
                Enroll,
                -170,
                "Based on the customer configuration, ECC CSRs are not allowed.",
                refused(CSR),
            ),
            (
                Renew,
                -25,
                "You are not authorized to execute renew",
                refused(PERMISSION),
            ),
            (Renew, -124, "Wrong SSL certificate id 9.", Class::Permanent),
            (
                Renew,
                -123,
                "SSL Certificate to renew is invalid (null)",
                Class::Permanent,
            ),
            // An unknown negative code on a billable call: a refusal, reported with its text.
            (Renew, -4242, "Something new", refused(OTHER)),
            (
                Revoke,
                -159,
                "Your certificate already revoked",
                Class::AlreadyRevoked,
            ),
            (
                Revoke,
                -110,
                "Certificate has been revoked and cannot be downloaded.",
                Class::AlreadyRevoked,
            ),
            (
                Revoke,
                -102,
                "Only issued certificates could be revoked.",
                refused(REVOKE_NOT_ISSUED),
            ),
            (
                Revoke,
                -124,
                "Wrong SSL certificate id 9.",
                Class::Permanent,
            ),
            (Token, -1, "whatever", Class::Permanent),
            (
                AdminList,
                -226,
                "This Admin account does not have privileges required to manage 'x' <org>.",
                refused(ADMIN_PERMISSION),
            ),
            (
                AdminList,
                -639,
                "Supplied orgid invalid..",
                refused(ADMIN_ORG),
            ),
            (
                AdminDetails,
                -124,
                "Wrong SSL certificate id 9.",
                Class::Permanent,
            ),
            (
                AdminDetails,
                -3,
                "You are not authorized to perform x.",
                refused(ADMIN_PERMISSION),
            ),
            // Not pending on the Admin API: a read that cannot succeed now is not retried.
            (
                AdminDetails,
                -109,
                "Certificate is not available now",
                Class::Permanent,
            ),
        ];
        for (call, code, d, want) in cases {
            for status in [400, 404, 409] {
                assert_eq!(
                    classify(call, status, Some(&b(code, d)), None),
                    want,
                    "{call:?} {status} {code} {d}"
                );
            }
        }
    }

    #[test]
    fn every_code_of_the_vendor_table_has_a_meaning_on_every_call() {
        // The table ships beside the repository; each of its codes, on each call, is one of
        // the documented classes (never a panic, never Success).
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/contracts/scm/scm-error-codes-25.5.tsv"
        );
        let Ok(table) = std::fs::read_to_string(path) else {
            eprintln!("skipped: {path} is not there");
            return;
        };
        let mut n = 0;
        for line in table.lines().filter(|l| !l.starts_with('#')) {
            let Some((code, text)) = line.split_once('\t') else {
                continue;
            };
            let code: i64 = code.parse().unwrap();
            for call in [
                Call::Renew,
                Call::Enroll,
                Call::Download,
                Call::Status,
                Call::Revoke,
                Call::AdminList,
                Call::AdminDetails,
            ] {
                let c = classify(call, 400, Some(&b(code, text)), None);
                assert_ne!(c, Class::Success);
                if call.is_billable() && !matches!(code, -123 | -124) {
                    assert!(
                        matches!(c, Class::Refused { .. } | Class::Transient { .. }),
                        "{call:?} {code}: {c:?}"
                    );
                }
                n += 1;
            }
        }
        assert!(n > 700, "{n}");
    }

    #[test]
    fn www_authenticate() {
        let h = r#"Bearer realm="apiclients", authorization_uri="https://auth.example/token", error="invalid_token""#;
        assert_eq!(
            authorization_uri(h).as_deref(),
            Some("https://auth.example/token")
        );
        assert_eq!(
            authorization_uri("Bearer authorization_uri=https://a/t, x=y").as_deref(),
            Some("https://a/t")
        );
        assert_eq!(authorization_uri("Basic realm=x"), None);
    }
}
