//! The master's credential store: which principals exist and their shared secrets, read
//! from the `--credentials` JSON file (`[{"principal": "p", "secret": "s"}, ...]`).
//!
//! Owns parsing (with errors that name the entry and the reason) and verification. It
//! must never print a secret, and never compare secrets in time that depends on where
//! they first differ.

use std::collections::HashMap;

use agora_proto::auth::Credential;
use subtle::ConstantTimeEq;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CredentialsError {
    #[error("credentials: not a JSON array of {{\"principal\", \"secret\"}} objects: {0}")]
    Json(String),
    #[error("credentials: entry {index} has an empty principal")]
    EmptyPrincipal { index: usize },
    #[error(
        "credentials: entry {index}: principal '{principal}' must not contain ':', whitespace or control characters"
    )]
    BadPrincipal { index: usize, principal: String },
    #[error("credentials: entry {index}: principal '{principal}' has an empty secret")]
    EmptySecret { index: usize, principal: String },
    #[error(
        "credentials: entry {index}: the secret of principal '{principal}' contains control characters"
    )]
    BadSecret { index: usize, principal: String },
    #[error("credentials: principal '{principal}' is listed twice (entries {first} and {second})")]
    Duplicate {
        principal: String,
        first: usize,
        second: usize,
    },
    #[error("credentials: the file lists no principal")]
    Empty,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    principal: String,
    secret: String,
}

/// Principals and their secrets. `Debug` shows principals only.
#[derive(Clone, Default)]
pub struct Credentials {
    secrets: HashMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut principals: Vec<&String> = self.secrets.keys().collect();
        principals.sort();
        f.debug_struct("Credentials")
            .field("principals", &principals)
            .finish()
    }
}

/// Whether a principal name can be used in a credential header and a log line.
pub fn principal_ok(p: &str) -> bool {
    !p.is_empty()
        && !p
            .chars()
            .any(|c| c == ':' || c.is_whitespace() || c.is_control())
}

impl Credentials {
    /// Parse the credentials file's text.
    pub fn parse(text: &str) -> Result<Credentials, CredentialsError> {
        let entries: Vec<Entry> =
            serde_json::from_str(text).map_err(|e| CredentialsError::Json(e.to_string()))?;
        if entries.is_empty() {
            return Err(CredentialsError::Empty);
        }
        let mut secrets = HashMap::new();
        let mut index_of: HashMap<String, usize> = HashMap::new();
        for (index, e) in entries.into_iter().enumerate() {
            if e.principal.is_empty() {
                return Err(CredentialsError::EmptyPrincipal { index });
            }
            if !principal_ok(&e.principal) {
                return Err(CredentialsError::BadPrincipal {
                    index,
                    principal: e.principal,
                });
            }
            if e.secret.is_empty() {
                return Err(CredentialsError::EmptySecret {
                    index,
                    principal: e.principal,
                });
            }
            if e.secret.chars().any(char::is_control) {
                return Err(CredentialsError::BadSecret {
                    index,
                    principal: e.principal,
                });
            }
            if let Some(first) = index_of.get(&e.principal) {
                return Err(CredentialsError::Duplicate {
                    principal: e.principal,
                    first: *first,
                    second: index,
                });
            }
            index_of.insert(e.principal.clone(), index);
            secrets.insert(e.principal, e.secret.into_bytes());
        }
        Ok(Credentials { secrets })
    }

    /// Whether `c` names a known principal with its secret. An unknown principal costs
    /// the same comparison as a known one, so timing does not tell which principals exist.
    pub fn verify(&self, c: &Credential) -> bool {
        const DECOY: &[u8] = b"agora-decoy-secret-never-valid";
        let (expected, known) = match self.secrets.get(&c.principal) {
            Some(s) => (s.as_slice(), true),
            None => (DECOY, false),
        };
        // subtle compares equal-length slices in constant time; a length mismatch returns
        // early, which reveals only the secret's length.
        let equal: bool = expected.ct_eq(c.secret.as_bytes()).into();
        equal && known
    }

    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(p: &str, s: &str) -> Credential {
        Credential {
            principal: p.into(),
            secret: s.into(),
        }
    }

    #[test]
    fn parses_and_verifies() {
        let c = Credentials::parse(
            r#"[{"principal": "fw", "secret": "s1"}, {"principal": "ops", "secret": "s:2"}]"#,
        )
        .expect("valid");
        assert_eq!(c.len(), 2);
        assert!(c.verify(&cred("fw", "s1")));
        assert!(c.verify(&cred("ops", "s:2")));
        assert!(!c.verify(&cred("fw", "s2")));
        assert!(!c.verify(&cred("fw", "s1x")));
        assert!(!c.verify(&cred("fw", "")));
        assert!(!c.verify(&cred("nobody", "s1")));
        // The decoy secret never authenticates an unknown principal.
        assert!(!c.verify(&cred("nobody", "agora-decoy-secret-never-valid")));
        let debug = format!("{c:?}");
        assert!(debug.contains("fw") && !debug.contains("s1"), "{debug}");
    }

    #[test]
    fn refuses_bad_files_precisely() {
        let err = |t: &str| Credentials::parse(t).expect_err(t).to_string();
        assert!(err("not json").starts_with("credentials: not a JSON array"));
        assert!(err(r#"{"principal": "a", "secret": "b"}"#).contains("not a JSON array"));
        assert!(err(r#"[{"principal": "a"}]"#).contains("missing field `secret`"));
        assert!(err(r#"[{"principal": "a", "secret": "b", "x": 1}]"#).contains("unknown field"));
        assert_eq!(err("[]"), "credentials: the file lists no principal");
        assert_eq!(
            err(r#"[{"principal": "", "secret": "b"}]"#),
            "credentials: entry 0 has an empty principal"
        );
        assert_eq!(
            err(r#"[{"principal": "a", "secret": "b"}, {"principal": "c", "secret": ""}]"#),
            "credentials: entry 1: principal 'c' has an empty secret"
        );
        assert!(err(r#"[{"principal": "a:b", "secret": "b"}]"#).contains("must not contain ':'"));
        assert!(err(r#"[{"principal": "a b", "secret": "b"}]"#).contains("must not contain"));
        assert!(err(r#"[{"principal": "a", "secret": "b\n"}]"#).contains("control characters"));
        assert_eq!(
            err(r#"[{"principal": "a", "secret": "b"}, {"principal": "a", "secret": "c"}]"#),
            "credentials: principal 'a' is listed twice (entries 0 and 1)"
        );
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,120}") {
            let _ = Credentials::parse(&text);
            let _ = Credential::from_header(&text);
            let _ = Credential::from_header(&format!("Basic {text}"));
        }

        /// Only the exact secret of a known principal verifies.
        #[test]
        fn only_the_exact_secret_verifies(secret in "[ -~]{1,40}", guess in "[ -~]{0,40}") {
            let file = serde_json::json!([{"principal": "p", "secret": secret}]).to_string();
            let c = Credentials::parse(&file).expect("valid");
            proptest::prop_assert_eq!(c.verify(&cred("p", &guess)), guess == secret);
            proptest::prop_assert!(!c.verify(&cred("q", &secret)));
        }
    }
}
