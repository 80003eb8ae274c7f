//! TLS for the master's one port (`--tls-cert`, `--tls-key`, optional `--tls-client-ca`
//! which makes client certificates mandatory): builds the rustls server configuration
//! from PEM bytes, with ALPN offering h2 (gRPC) and http/1.1 (HTTP API).
//!
//! Owns certificate and key parsing only. It must never read files (the binary does) and
//! never accept a connection itself (`server.rs` does).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// PEM contents of the TLS files.
#[derive(Clone)]
pub struct TlsFiles {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// Client certificates signed by one of these CAs are required when set.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("tls: --tls-cert holds no PEM certificate")]
    NoCertificate,
    #[error("tls: --tls-cert: {0}")]
    Certificate(String),
    #[error("tls: --tls-key holds no PEM private key: {0}")]
    Key(String),
    #[error("tls: --tls-client-ca holds no PEM certificate")]
    NoClientCa,
    #[error("tls: --tls-client-ca: {0}")]
    ClientCa(String),
    #[error("tls: {0}")]
    Config(String),
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// The server configuration for `files`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certificates(&files.cert_pem).map_err(TlsError::Certificate)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key =
        PrivateKeyDer::from_pem_slice(&files.key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let cas = certificates(pem).map_err(TlsError::ClientCa)?;
            if cas.is_empty() {
                return Err(TlsError::NoClientCa);
            }
            let mut roots = RootCertStore::empty();
            for ca in cas {
                roots
                    .add(ca)
                    .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("certificate and key do not fit together: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The CAs the master verifies the TLS endpoints it dials against (agents' `--listen`
/// endpoints, for the sandbox proxy: `--agent-tls-ca`). Cheap to clone.
#[derive(Clone)]
pub struct ClientTls(pub Arc<rustls::ClientConfig>);

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

/// A client configuration trusting only the CA certificates in `ca_pem` (`flag` names
/// the file in errors), speaking HTTP/1.1.
pub fn client_config(flag: &str, ca_pem: &[u8]) -> Result<ClientTls, TlsError> {
    let cas = certificates(ca_pem).map_err(|e| TlsError::Config(format!("{flag}: {e}")))?;
    if cas.is_empty() {
        return Err(TlsError::Config(format!("{flag} holds no PEM certificate")));
    }
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| TlsError::Config(format!("{flag}: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ClientTls(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_needs_a_ca_certificate() {
        let (cert, key) = self_signed();
        assert!(client_config("--agent-tls-ca", cert.as_bytes()).is_ok());
        assert_eq!(
            client_config("--agent-tls-ca", b"junk")
                .expect_err("no certificate")
                .to_string(),
            "tls: --agent-tls-ca holds no PEM certificate"
        );
        assert!(client_config("--agent-tls-ca", key.as_bytes()).is_err());
    }

    fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
        (c.cert.pem(), c.key_pair.serialize_pem())
    }

    #[test]
    fn builds_with_and_without_client_ca() {
        let (cert, key) = self_signed();
        let files = TlsFiles {
            cert_pem: cert.clone().into_bytes(),
            key_pem: key.clone().into_bytes(),
            client_ca_pem: None,
        };
        let c = server_config(&files).expect("valid");
        assert_eq!(c.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        let mutual = TlsFiles {
            client_ca_pem: Some(cert.into_bytes()),
            ..files
        };
        server_config(&mutual).expect("valid with a client CA");
    }

    #[test]
    fn bad_pem_is_refused_precisely() {
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let make = |c: &str, k: &str, ca: Option<&str>| TlsFiles {
            cert_pem: c.as_bytes().to_vec(),
            key_pem: k.as_bytes().to_vec(),
            client_ca_pem: ca.map(|s| s.as_bytes().to_vec()),
        };
        let err = |f: TlsFiles| server_config(&f).expect_err("invalid").to_string();
        assert_eq!(
            err(make("", &key, None)),
            "tls: --tls-cert holds no PEM certificate"
        );
        assert!(err(make(&cert, "", None)).starts_with("tls: --tls-key holds no PEM private key"));
        assert!(err(make(&key, &key, None)).contains("no PEM certificate"));
        assert!(err(make(&cert, &other_key, None)).contains("do not fit together"));
        assert_eq!(
            err(make(&cert, &key, Some("junk"))),
            "tls: --tls-client-ca holds no PEM certificate"
        );
    }
}
