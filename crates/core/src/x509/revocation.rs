//! Revocation reasons: the RFC 5280 CRLReason codes that SCM's revoke call accepts, and the
//! names a person may type for them in a Jira field.

/// The RFC 5280 reason codes SCM's revoke accepts: unspecified (0), keyCompromise (1),
/// affiliationChanged (3), superseded (4), cessationOfOperation (5).
pub const REASON_CODES: &[i32] = &[0, 1, 3, 4, 5];

/// The reason code for a reason field's text: a code, or an RFC 5280 name in any case.
pub fn reason_code(text: &str) -> Option<i32> {
    let t: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    let code = match t.as_str() {
        "unspecified" => 0,
        "keycompromise" => 1,
        "affiliationchanged" => 3,
        "superseded" => 4,
        "cessationofoperation" => 5,
        other => other.parse().ok()?,
    };
    REASON_CODES.contains(&code).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes() {
        for (text, want) in [
            ("keyCompromise", Some(1)),
            ("Key Compromise", Some(1)),
            ("superseded", Some(4)),
            ("5", Some(5)),
            ("Cessation of operation", Some(5)),
            // cACompromise: not for subscribers.
            ("2", None),
            ("the server was decommissioned", None),
            ("6", None),
            ("", None),
            ("nonsense", None),
        ] {
            assert_eq!(reason_code(text), want, "{text:?}");
        }
    }
}
