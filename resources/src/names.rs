//! Character rules for the words of the text syntax: resource and attribute names, set
//! items, principals, label keys and values, attribute text values.
//!
//! Owns: which characters each kind of word may hold, chosen so that every accepted word
//! can be written back into the flag syntax unambiguously (none of `;:,()[]{}=` or
//! whitespace). Returns bare reasons; callers wrap them with the offending item.
//! Must never: accept a word the text parser could not read back, or allocate on the
//! success path.

/// Whether `c` may appear in a resource or attribute name: `[A-Za-z0-9_.-]`.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Whether `c` may appear in a set item, principal, label or attribute text:
/// `[A-Za-z0-9_.-/@+]`.
fn is_token_char(c: char) -> bool {
    is_name_char(c) || matches!(c, '/' | '@' | '+')
}

/// A resource or attribute name: non-empty, `[A-Za-z0-9_.-]+`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".to_string());
    }
    if !name.chars().all(is_name_char) {
        return Err(format!(
            "invalid name '{name}': names may contain only letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

/// A set item, principal, label key or attribute text (`what` says which, for the
/// message): non-empty, `[A-Za-z0-9_.-/@+]+`.
pub(crate) fn check_token(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("empty {what}"));
    }
    check_token_chars(what, s)
}

/// Like [`check_token`] but the empty word is allowed (label values).
pub(crate) fn check_token_chars(what: &str, s: &str) -> Result<(), String> {
    if !s.chars().all(is_token_char) {
        return Err(format!(
            "invalid {what} '{s}': only letters, digits, '_', '.', '-', '/', '@' and '+' are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["cpus", "a.b-c_D9", "-"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        assert!(check_name("").unwrap_err().contains("empty name"));
        for bad in ["a b", "a:b", "a/b", "é", "a(b)"] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn tokens() {
        assert!(check_token("set item", "dev/nvidia0").is_ok());
        assert!(check_token("principal", "ops@example.com").is_ok());
        assert!(
            check_token("set item", "")
                .unwrap_err()
                .contains("empty set item")
        );
        assert!(check_token_chars("label value", "").is_ok());
        for bad in ["a,b", "a=b", "a b", "{", "a;b", "a:b"] {
            let e = check_token("set item", bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
