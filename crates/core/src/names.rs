//! The names the daemon passes around, each a type of its own and each checked once, where it
//! enters: the command line, the control socket, a state record, an import list, a Jira
//! issue, a configuration file. Past that point a `CertId` is a certificate id, so nothing
//! that joins it into a path, a URL or a log line checks it again (or forgets to).
//!
//! - [`CertId`]: SCM's `certId` (digits in practice): letters, digits, `-`, `_`; 1 to 64.
//! - [`IssueKey`]: a Jira issue key, `PROJECT-123`.
//! - [`ProfileName`]: a profile (its file's stem): letters, digits, `-`, `_`, `.`; 1 to 64; not
//!   starting with `.` (hidden files are not profiles).
//! - [`CertName`]: a certificate's directory name under `[deploy] dir`: letters, digits, `-`,
//!   `_`, `.`; 1 to 128; not starting with `.` (it can never be `..` or a hidden file).
//! - [`CertRef`]: a certificate as an operator names it: its id, or its CN or `--name`.
//!
//! Each is (de)serialized as a plain string and refused when it breaks its rule, so a state
//! record, a socket reply or an import line holding a bad one does not decode.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

/// A string that is not a name of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value} is not {kind} ({rule})")]
pub struct InvalidName {
    /// `a certificate id`, `a Jira issue key`, ...
    pub kind: &'static str,
    /// The value, quoted, escaped and cut to a length fit for a message.
    pub value: String,
    pub rule: &'static str,
}

fn invalid(kind: &'static str, value: &str, rule: &'static str) -> InvalidName {
    let shown = crate::text::bounded(&crate::text::Escaped(value).to_string(), 64);
    InvalidName {
        kind,
        value: format!("{shown:?}"),
        rule,
    }
}

fn plain(s: &str, max: usize, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $rule:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const KIND: &'static str = $kind;
            pub const RULE: &'static str = $rule;

            /// Checks `s` against the rule.
            pub fn parse(s: &str) -> Result<$name, InvalidName> {
                let check: fn(&str) -> bool = $check;
                if check(s) {
                    Ok($name(s.to_string()))
                } else {
                    Err(invalid($kind, s, $rule))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<std::path::Path> for $name {
            fn as_ref(&self) -> &std::path::Path {
                std::path::Path::new(&self.0)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<$name, InvalidName> {
                $name::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(s: String) -> Result<$name, InvalidName> {
                $name::parse(&s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidName;
            fn try_from(s: &str) -> Result<$name, InvalidName> {
                $name::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }
    };
}

name_type!(
    /// SCM's certificate id (`certId`).
    CertId,
    "a certificate id",
    "SCM's certId: digits; at most 64 letters, digits, '-' or '_'",
    |s| plain(s, 64, &['-', '_'])
);

name_type!(
    /// A Jira issue key, `PROJECT-123`.
    IssueKey,
    "a Jira issue key",
    "like CERT-123",
    is_issue_key
);

name_type!(
    /// A profile's name: its file's stem in `profiles.d/`.
    ProfileName,
    "a profile name",
    "1 to 64 letters, digits, '-', '_' or '.', not starting with '.'",
    |s| plain(s, 64, &['-', '_', '.']) && !s.starts_with('.')
);

name_type!(
    /// A certificate's directory name under its profile's `[deploy] dir`.
    CertName,
    "a certificate name",
    "1 to 128 letters, digits, '.', '-' or '_', not starting with '.'",
    |s| plain(s, 128, &['-', '_', '.']) && !s.starts_with('.')
);

name_type!(
    /// A certificate as an operator names it: SCM's certificate id, or the name of a live
    /// certificate (its CN, `*.example.com`, or its `certs import --name`). Resolved to one
    /// certificate once, by the service that carries the request out.
    CertRef,
    "a certificate id or name",
    "SCM's certificate id, or the CN or --name of a live certificate: at most 253 letters, digits, '.', '-', '_' or '*'",
    |s| plain(s, 253, &['.', '-', '_', '*'])
);

impl CertRef {
    /// The id it is, when it can be one (a name may look like an id).
    pub fn as_id(&self) -> Option<CertId> {
        CertId::parse(&self.0).ok()
    }
}

impl From<CertId> for CertRef {
    fn from(id: CertId) -> CertRef {
        CertRef(id.0)
    }
}

/// `PROJECT-123`: a project key (an upper-case letter, then upper-case letters, digits or
/// `_`), `-`, a number; at most 255 characters.
fn is_issue_key(s: &str) -> bool {
    let Some((proj, num)) = s.rsplit_once('-') else {
        return false;
    };
    s.len() <= 255
        && proj.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && proj
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !num.is_empty()
        && num.chars().all(|c| c.is_ascii_digit())
}

impl CertName {
    /// A name made from a certificate's CN: lower case, `*.example.com` → `wildcard.example.com`,
    /// anything but letters, digits, `.`, `-` and `_` made `_`; `None` when nothing usable is
    /// left.
    pub fn from_cn(cn: &str) -> Option<CertName> {
        let n = cn.trim().trim_end_matches('.');
        let n = n
            .strip_prefix("*.")
            .map_or(n.to_string(), |r| format!("wildcard.{r}"));
        let s: String = n
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        CertName::parse(s.trim_start_matches('.')).ok()
    }

    /// The name of a certificate without a CN fit for a file name: `cert-ID`.
    pub fn for_id(id: &CertId) -> CertName {
        CertName(format!("cert-{id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_keeps_its_rule() {
        for ok in ["1234", "abc-12_x"] {
            assert!(CertId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../1", "1/2", "1 2", "1\n2", &"9".repeat(65)] {
            assert!(CertId::parse(bad).is_err(), "{bad:?}");
        }
        for ok in ["CERT-1", "OPS_2-44", "A1-9"] {
            assert!(IssueKey::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["cert-1", "CERT-", "-1", "CERT-1a", "CERT 1", "1A-2"] {
            assert!(IssueKey::parse(bad).is_err(), "{bad:?}");
        }
        for ok in ["web", "web.prod", "a-b_c"] {
            assert!(ProfileName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "..", "a/b", "a b", &"p".repeat(65)] {
            assert!(ProfileName::parse(bad).is_err(), "{bad:?}");
        }
        for ok in ["www.example.com", "wildcard.example.com", "cert-12"] {
            assert!(CertName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../etc", "a/b", ".hidden", "a\0b"] {
            assert!(CertName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bad_name_does_not_decode() {
        let ok: CertName = serde_json::from_str("\"web.example.com\"").unwrap();
        assert_eq!(ok, "web.example.com");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"web.example.com\"");
        let e = serde_json::from_str::<CertName>("\"../../etc/cron.d\"").unwrap_err();
        assert!(e.to_string().contains("not a certificate name"), "{e}");
        assert!(serde_json::from_str::<CertId>("\"1\\n2\"").is_err());
    }

    #[test]
    fn messages_escape_what_they_quote() {
        let e = CertId::parse("1\n\u{1b}[31m").unwrap_err().to_string();
        assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e}");
    }

    #[test]
    fn names_from_cns() {
        let n = |s: &str| CertName::from_cn(s).map(|n| n.to_string());
        assert_eq!(n("*.Example.com").as_deref(), Some("wildcard.example.com"));
        assert_eq!(n("a b/c").as_deref(), Some("a_b_c"));
        assert_eq!(n("..").as_deref(), None);
        assert_eq!(n(""), None);
        assert_eq!(
            CertName::for_id(&CertId::parse("12").unwrap()).as_str(),
            "cert-12"
        );
    }
}
