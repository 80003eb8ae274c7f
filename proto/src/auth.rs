//! The credential wire format every Agora API shares: a principal and its shared secret,
//! sent on every call as the `authorization` header (gRPC metadata or HTTP) in HTTP Basic
//! form, `Basic base64(principal ":" secret)`.
//!
//! Owns the encoding and decoding only. It must never decide whether a credential is
//! valid (the master does) and never log or print a secret (`Credential`'s `Debug` hides it).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The header (gRPC metadata key) that carries the credential.
pub const AUTHORIZATION: &str = "authorization";

/// A principal and its shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Who the caller is (a framework, an agent, an operator).
    pub principal: String,
    /// The shared secret the master holds for `principal`.
    pub secret: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("principal", &self.principal)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// Why an `authorization` value is not a usable credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Not `Basic <base64>`.
    NotBasic,
    /// The part after `Basic ` is not base64 of UTF-8 text.
    BadEncoding,
    /// The decoded text has no `:` between principal and secret.
    NoColon,
    /// The principal is empty.
    EmptyPrincipal,
    /// The secret is empty.
    EmptySecret,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderError::NotBasic => {
                "the authorization header is not of the form 'Basic base64(principal:secret)'"
            }
            HeaderError::BadEncoding => {
                "the authorization header's credential is not base64 of UTF-8 text"
            }
            HeaderError::NoColon => {
                "the authorization header's credential has no ':' between principal and secret"
            }
            HeaderError::EmptyPrincipal => "the authorization header names an empty principal",
            HeaderError::EmptySecret => "the authorization header carries an empty secret",
        })
    }
}

impl std::error::Error for HeaderError {}

impl Credential {
    /// The `authorization` header value for this credential.
    pub fn to_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.principal, self.secret))
        )
    }

    /// Read an `authorization` header value. The principal is everything before the first
    /// `:` (principals cannot contain one), the secret everything after.
    pub fn from_header(value: &str) -> Result<Credential, HeaderError> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').ok_or(HeaderError::NotBasic)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(HeaderError::NotBasic);
        }
        let bytes = STANDARD
            .decode(rest.trim())
            .map_err(|_| HeaderError::BadEncoding)?;
        let text = String::from_utf8(bytes).map_err(|_| HeaderError::BadEncoding)?;
        let (principal, secret) = text.split_once(':').ok_or(HeaderError::NoColon)?;
        if principal.is_empty() {
            return Err(HeaderError::EmptyPrincipal);
        }
        if secret.is_empty() {
            return Err(HeaderError::EmptySecret);
        }
        Ok(Credential {
            principal: principal.to_string(),
            secret: secret.to_string(),
        })
    }
}

/// A tonic interceptor that adds a credential to every call of a client, so no call can
/// be sent without it. With no credential it passes calls through unchanged.
#[derive(Clone, Debug, Default)]
pub struct AuthInterceptor {
    header: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl AuthInterceptor {
    /// An interceptor sending `credential` (none: send nothing). Fails if the principal or
    /// secret cannot travel in a header (control characters).
    pub fn new(credential: Option<&Credential>) -> Result<AuthInterceptor, HeaderError> {
        let header = match credential {
            None => None,
            Some(c) => {
                if c.principal.is_empty() {
                    return Err(HeaderError::EmptyPrincipal);
                }
                if c.secret.is_empty() {
                    return Err(HeaderError::EmptySecret);
                }
                if c.principal.contains(':') {
                    return Err(HeaderError::NoColon);
                }
                // Base64 is always valid header text.
                Some(
                    c.to_header()
                        .parse()
                        .map_err(|_| HeaderError::BadEncoding)?,
                )
            }
        };
        Ok(AuthInterceptor { header })
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(h) = &self.header {
            request.metadata_mut().insert(AUTHORIZATION, h.clone());
        }
        Ok(request)
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
    fn round_trip_keeps_colons_in_the_secret() {
        let c = cred("ops", "s3:cr:et");
        assert_eq!(Credential::from_header(&c.to_header()), Ok(c));
        // The RFC 7617 example.
        assert_eq!(
            Credential::from_header("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Ok(cred("Aladdin", "open sesame"))
        );
        assert_eq!(
            Credential::from_header("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Ok(cred("Aladdin", "open sesame"))
        );
    }

    #[test]
    fn bad_headers_are_refused_precisely() {
        use HeaderError::*;
        assert_eq!(Credential::from_header(""), Err(NotBasic));
        assert_eq!(Credential::from_header("Bearer abc"), Err(NotBasic));
        assert_eq!(Credential::from_header("Basic !!!"), Err(BadEncoding));
        let b = |t: &str| format!("Basic {}", STANDARD.encode(t));
        assert_eq!(Credential::from_header(&b("nocolon")), Err(NoColon));
        assert_eq!(Credential::from_header(&b(":s")), Err(EmptyPrincipal));
        assert_eq!(Credential::from_header(&b("p:")), Err(EmptySecret));
        let not_utf8 = format!("Basic {}", STANDARD.encode([0xff, b':', b'x']));
        assert_eq!(Credential::from_header(&not_utf8), Err(BadEncoding));
    }

    #[test]
    fn debug_hides_the_secret() {
        let text = format!("{:?}", cred("ops", "hunter2"));
        assert!(text.contains("ops") && !text.contains("hunter2"), "{text}");
    }

    #[test]
    fn interceptor_adds_the_header_and_refuses_unsendable_credentials() {
        use tonic::service::Interceptor;
        let mut i = AuthInterceptor::new(Some(&cred("fw", "pw"))).expect("valid");
        let r = i.call(tonic::Request::new(())).expect("passes");
        let h = r.metadata().get(AUTHORIZATION).expect("header");
        assert_eq!(
            Credential::from_header(h.to_str().expect("ascii")),
            Ok(cred("fw", "pw"))
        );
        let mut none = AuthInterceptor::new(None).expect("valid");
        let r = none.call(tonic::Request::new(())).expect("passes");
        assert!(r.metadata().get(AUTHORIZATION).is_none());
        assert!(AuthInterceptor::new(Some(&cred("", "pw"))).is_err());
        assert!(AuthInterceptor::new(Some(&cred("a:b", "pw"))).is_err());
        assert!(AuthInterceptor::new(Some(&cred("a", ""))).is_err());
    }
}
