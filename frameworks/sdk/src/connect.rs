//! How a client reaches a master securely: the gRPC endpoint for an `http://` or
//! `https://` address (TLS verified against the operator's CA, with a client certificate
//! for mutual TLS) and the credential every call carries (`authorization: Basic ...`,
//! added by an interceptor so no call can go without it).
//!
//! Owns endpoint and credential set-up for the SDK and the CLI. It must never open a
//! connection itself (callers connect with their own timeouts) and never print a secret.

use std::path::Path;

pub use agora_proto::auth::{AuthInterceptor, Credential};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::SdkError;

/// A channel whose every call carries the configured credential.
pub type AuthChannel = InterceptedService<Channel, AuthInterceptor>;

/// TLS settings for `https://` masters (PEM contents).
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// CA certificates the master's certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// Client certificate and key, for masters that require client certificates.
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("client_certificate", &self.client_identity.is_some())
            .finish_non_exhaustive()
    }
}

fn security(reason: String) -> SdkError {
    SdkError::Security { reason }
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, SdkError> {
    std::fs::read(path).map_err(|e| security(format!("cannot read {what} {}: {e}", path.display())))
}

impl TlsOptions {
    /// Read the CA and (both or neither) client certificate and key from PEM files.
    pub fn from_files(
        ca: &Path,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
    ) -> Result<TlsOptions, SdkError> {
        let client_identity = match (client_cert, client_key) {
            (Some(c), Some(k)) => Some((read("client certificate", c)?, read("client key", k)?)),
            (None, None) => None,
            _ => {
                return Err(security(
                    "a client certificate needs its key and a key needs its certificate".into(),
                ));
            }
        };
        Ok(TlsOptions {
            ca_pem: read("CA certificate", ca)?,
            client_identity,
        })
    }
}

/// The credential of `principal` with the secret in `secret_file` (one trailing newline is
/// ignored, so `echo secret > file` works).
pub fn credential_from_file(principal: &str, secret_file: &Path) -> Result<Credential, SdkError> {
    let text = std::fs::read_to_string(secret_file).map_err(|e| {
        security(format!(
            "cannot read the secret file {}: {e}",
            secret_file.display()
        ))
    })?;
    let secret = text
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&text)
        .to_string();
    let c = Credential {
        principal: principal.to_string(),
        secret,
    };
    AuthInterceptor::new(Some(&c)).map_err(|e| {
        security(format!(
            "credential of principal '{principal}' from {}: {e}",
            secret_file.display()
        ))
    })?;
    Ok(c)
}

/// The endpoint for a normalised master URI. `https://` needs `tls` (the master's CA);
/// `tls` with an `http://` address is refused rather than silently sending plain text.
pub fn endpoint(uri: &str, tls: Option<&TlsOptions>) -> Result<Endpoint, SdkError> {
    let invalid = |reason: String| SdkError::InvalidAddress {
        address: uri.to_string(),
        reason,
    };
    let endpoint = Endpoint::from_shared(uri.to_string()).map_err(|e| invalid(e.to_string()))?;
    let https = uri.starts_with("https://");
    match (https, tls) {
        (false, None) => Ok(endpoint),
        (false, Some(_)) => Err(invalid(
            "TLS is configured but the address is not https://".into(),
        )),
        (true, None) => Err(invalid(
            "an https:// master needs a CA certificate to verify it (--tls-ca)".into(),
        )),
        (true, Some(t)) => {
            let mut config =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&t.ca_pem));
            if let Some((cert, key)) = &t.client_identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            endpoint
                .tls_config(config)
                .map_err(|e| invalid(format!("TLS set-up: {e}")))
        }
    }
}

/// The interceptor sending `credential`, or why it cannot be sent.
pub fn interceptor(credential: Option<&Credential>) -> Result<AuthInterceptor, SdkError> {
    AuthInterceptor::new(credential).map_err(|e| security(format!("unusable credential: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_refuse_mismatched_tls() {
        let tls = TlsOptions {
            ca_pem: b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_vec(),
            client_identity: None,
        };
        assert!(endpoint("http://127.0.0.1:5050", None).is_ok());
        let e = endpoint("http://127.0.0.1:5050", Some(&tls)).expect_err("plain with TLS");
        assert!(e.to_string().contains("not https://"), "{e}");
        let e = endpoint("https://127.0.0.1:5050", None).expect_err("https without CA");
        assert!(e.to_string().contains("needs a CA certificate"), "{e}");
    }

    #[test]
    fn secret_files_drop_one_newline_and_refuse_empty_secrets() {
        let dir = std::env::temp_dir().join(format!("agora-sdk-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("s");
        std::fs::write(&f, "pw\n").expect("write");
        let c = credential_from_file("fw", &f).expect("valid");
        assert_eq!((c.principal.as_str(), c.secret.as_str()), ("fw", "pw"));
        std::fs::write(&f, "\n").expect("write");
        let e = credential_from_file("fw", &f).expect_err("empty");
        assert!(e.to_string().contains("empty secret"), "{e}");
        assert!(credential_from_file("a:b", &dir.join("s")).is_err());
        assert!(credential_from_file("fw", &dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
