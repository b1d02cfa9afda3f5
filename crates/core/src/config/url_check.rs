//! URL rules: `https://` always; plain `http://` only to loopback (tests and simulators).

use std::net::IpAddr;

/// An endpoint URL that is not allowed; says what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{0:?} is not a valid URL: {1}")]
    Invalid(String, url::ParseError),
    #[error(
        "{0:?} uses plain http://; use https:// (http:// is allowed only to loopback, for tests)"
    )]
    PlainHttp(String),
    #[error("{0:?} has scheme {1:?}; use https://")]
    Scheme(String, String),
    #[error("{0:?} has no host")]
    NoHost(String),
    /// The URL with its credentials taken out.
    #[error("{0:?} must not carry credentials in the URL")]
    Credentials(String),
}

/// Checks an endpoint URL; the error says what would be valid.
pub fn check_url(s: &str) -> Result<url::Url, UrlError> {
    let u = url::Url::parse(s).map_err(|e| UrlError::Invalid(s.to_string(), e))?;
    match u.scheme() {
        "https" => {}
        "http" if is_loopback(&u) => {}
        "http" => return Err(UrlError::PlainHttp(s.to_string())),
        other => return Err(UrlError::Scheme(s.to_string(), other.to_string())),
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::NoHost(s.to_string()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(UrlError::Credentials(redact(&u)));
    }
    Ok(u)
}

fn redact(u: &url::Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

pub fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rules() {
        for ok in [
            "https://x.enroll.enterprise.sectigo.com",
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com",
            "ftp://example.com",
            "not a url",
            "https://u:p@example.com",
            "http://10.0.0.1",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(!check_url("https://u:pw123@example.com")
            .unwrap_err()
            .to_string()
            .contains("pw123"));
    }
}
