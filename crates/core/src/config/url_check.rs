//! URL rules: `https://` always; plain `http://` only to loopback (tests and simulators).

use std::net::IpAddr;

/// Checks an endpoint URL; the error says what would be valid.
pub fn check_url(s: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(s).map_err(|e| format!("{s:?} is not a valid URL: {e}"))?;
    match u.scheme() {
        "https" => {}
        "http" if is_loopback(&u) => {}
        "http" => {
            return Err(format!(
                "{s:?} uses plain http://; use https:// (http:// is allowed only to loopback, for tests)"
            ))
        }
        other => return Err(format!("{s:?} has scheme {other:?}; use https://")),
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "{:?} must not carry credentials in the URL",
            redact(&u)
        ));
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
            .contains("pw123"));
    }
}
