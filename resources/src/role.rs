//! Role names: [`validate_role`] and the hierarchy test used by
//! `Resources::allocatable_to`.
//!
//! Owns: what a valid role is (`/`-separated segments of `[A-Za-z0-9_.-]+`, no segment
//! `.` or `..`, none starting with `-`; `*` is not a role, it means unreserved) and
//! what "ancestor" means (`eng` is an ancestor of `eng/ml`, not of `eng2` or `engine/x`).
//! Must never: treat a prefix that does not end on a segment boundary as an ancestor,
//! or panic on any input.

use crate::error::ResourceError;

/// Checks a role name: non-empty, `/`-separated segments, each `[A-Za-z0-9_.-]+` but not
/// `.` or `..` and not starting with `-`. `*` is not a role (it means unreserved).
pub fn validate_role(role: &str) -> Result<(), ResourceError> {
    let fail = |reason: &str| {
        Err(ResourceError::InvalidRole {
            role: role.to_string(),
            reason: reason.to_string(),
        })
    };
    if role.is_empty() {
        return fail("a role must not be empty");
    }
    if role == "*" {
        return fail("'*' means unreserved and is not a role");
    }
    for segment in role.split('/') {
        if segment.is_empty() {
            return fail("empty segment (a role must not start or end with '/' or hold '//')");
        }
        if segment == "." || segment == ".." {
            return fail("segments '.' and '..' are not allowed");
        }
        if segment.starts_with('-') {
            return fail("a segment must not start with '-'");
        }
        if !segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return fail("segments may contain only letters, digits, '_', '.' and '-'");
        }
    }
    Ok(())
}

/// Whether `ancestor` is `role` itself or one of its ancestors (`eng` for `eng/ml`).
pub(crate) fn is_self_or_ancestor(ancestor: &str, role: &str) -> bool {
    match role.strip_prefix(ancestor) {
        Some("") => true,
        Some(rest) => !ancestor.is_empty() && rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_roles() {
        for ok in ["spark", "eng/ml", "a.b_c-d", "x/y/z", "A9", "a..b"] {
            assert!(validate_role(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_roles_naming_them() {
        for (bad, why) in [
            ("", "empty"),
            ("*", "unreserved"),
            ("/eng", "empty segment"),
            ("eng/", "empty segment"),
            ("eng//ml", "empty segment"),
            (".", "'.' and '..'"),
            ("eng/..", "'.' and '..'"),
            ("-eng", "'-'"),
            ("eng/-ml", "'-'"),
            ("a b", "only letters"),
            ("a,b", "only letters"),
        ] {
            let e = validate_role(bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("'{bad}'")) && e.contains(why),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn hierarchy() {
        assert!(is_self_or_ancestor("eng", "eng"));
        assert!(is_self_or_ancestor("eng", "eng/ml"));
        assert!(is_self_or_ancestor("eng/ml", "eng/ml/x"));
        assert!(!is_self_or_ancestor("eng/ml", "eng"));
        assert!(!is_self_or_ancestor("eng/ml", "eng/ml2"));
        assert!(!is_self_or_ancestor("eng", "engine"));
        assert!(!is_self_or_ancestor("", "eng"));
    }
}
