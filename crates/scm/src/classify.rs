//! One place that decides what every SCM answer means. Pure functions of the response.

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

/// What an answer means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    Success,
    /// The CA is still working: ask again later (not an error).
    Pending,
    /// Worth retrying with backoff; `retry_after` when the server said how long to wait.
    /// `maybe_processed`: the server may have acted on the request (a gateway timeout).
    Transient {
        retry_after: Option<Duration>,
        maybe_processed: bool,
    },
    /// The bearer token was refused: get a new one once and retry once.
    Unauthorized,
    /// Retrying cannot help; a human must act.
    Permanent,
}

/// Codes that mean "not issued yet, ask later".
pub fn is_pending_code(code: i64, description: &str) -> bool {
    matches!(code, -103 | -109 | -183 | -1400 | -107)
        || (code == 0 && description.to_ascii_lowercase().contains("being processed"))
}

/// Classifies an HTTP answer. `body` is SCM's error body when it could be parsed.
pub fn classify(status: u16, body: Option<&ScmErrorBody>, retry_after: Option<Duration>) -> Class {
    match status {
        200..=299 => Class::Success,
        401 => Class::Unauthorized,
        408 | 425 => Class::Transient {
            retry_after,
            maybe_processed: false,
        },
        429 => Class::Transient {
            retry_after,
            maybe_processed: false,
        },
        400 | 404 | 409 if body.is_some_and(|b| is_pending_code(b.code, &b.description)) => {
            Class::Pending
        }
        // A gateway timeout: the request reached something that may have forwarded it.
        504 => Class::Transient {
            retry_after,
            maybe_processed: true,
        },
        500..=599 => Class::Transient {
            retry_after,
            maybe_processed: false,
        },
        _ => Class::Permanent,
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
    fn classification_table() {
        let ra = Some(Duration::from_secs(7));
        let t = |retry_after, maybe_processed| Class::Transient {
            retry_after,
            maybe_processed,
        };
        let cases: Vec<(u16, Option<ScmErrorBody>, Option<Duration>, Class)> = vec![
            (200, None, None, Class::Success),
            (202, None, None, Class::Success),
            (
                404,
                Some(b(-103, "Certificate is not collected yet")),
                None,
                Class::Pending,
            ),
            (
                404,
                Some(b(-109, "not available now, try later")),
                None,
                Class::Pending,
            ),
            (
                400,
                Some(b(0, "Being processed by Sectigo")),
                None,
                Class::Pending,
            ),
            (
                400,
                Some(b(-1400, "request is being processed")),
                None,
                Class::Pending,
            ),
            (
                400,
                Some(b(-183, "Certificate is not collectable")),
                None,
                Class::Pending,
            ),
            (400, Some(b(-107, "DCV incomplete")), None, Class::Pending),
            (429, None, ra, t(ra, false)),
            (503, None, ra, t(ra, false)),
            (500, Some(b(-1, "internal")), None, t(None, false)),
            (502, None, None, t(None, false)),
            (504, None, None, t(None, true)),
            (408, None, None, t(None, false)),
            (401, None, None, Class::Unauthorized),
            (400, Some(b(-138, "invalid CSR")), None, Class::Permanent),
            (
                400,
                Some(b(-180, "profile doesn't allow renew")),
                None,
                Class::Permanent,
            ),
            (400, Some(b(-110, "revoked")), None, Class::Permanent),
            (
                400,
                Some(b(-130, "state is not ISSUED")),
                None,
                Class::Permanent,
            ),
            (
                400,
                Some(b(-124, "wrong certificate id")),
                None,
                Class::Permanent,
            ),
            (400, Some(b(-16, "unknown user")), None, Class::Permanent),
            (403, None, None, Class::Permanent),
            (404, Some(b(-124, "wrong id")), None, Class::Permanent),
            (
                400,
                Some(b(0, "Some other problem")),
                None,
                Class::Permanent,
            ),
            (404, None, None, Class::Permanent),
        ];
        for (status, body, ra, want) in cases {
            assert_eq!(
                classify(status, body.as_ref(), ra),
                want,
                "{status} {body:?}"
            );
        }
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
