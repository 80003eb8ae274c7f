//! A master's address as the agent's flags give it (`HOST:PORT`, `http://` or `https://`).
//!
//! Owns the parsing and validation of `--master` (and `--listen`) values. It must never
//! connect anywhere: the master link dials what this module parsed.

use std::fmt;
use std::str::FromStr;

/// A master's `HOST:PORT` (an `http://` prefix is accepted and dropped; `https://` means
/// the master serves TLS).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MasterAddr {
    authority: String,
    tls: bool,
}

/// A `HOST:PORT` that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid address {input:?}: {reason}")]
pub struct AddrError {
    /// The text given.
    pub input: String,
    /// Why it was refused.
    pub reason: String,
}

impl MasterAddr {
    /// The gRPC endpoint URI, `http://HOST:PORT` (or `https://` for a TLS master).
    pub fn uri(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }

    /// Whether the master was given as `https://`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// `HOST:PORT`.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

/// The metadata key a master that is not the leader names the leader in (`HOST:PORT`).
pub const LEADER_METADATA: &str = "agora-leader";

impl MasterAddr {
    /// The leader a refusal from master `from` names ("not the leader; the leader is
    /// ADDR"), reached the way `from` was (TLS or not). `None`: not such a refusal.
    pub fn leader_named_by(status: &tonic::Status, from: &MasterAddr) -> Option<MasterAddr> {
        let named = status.metadata().get(LEADER_METADATA)?.to_str().ok()?;
        let scheme = if from.tls { "https://" } else { "" };
        MasterAddr::from_str(&format!("{scheme}{named}")).ok()
    }
}

impl fmt::Display for MasterAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tls {
            f.write_str("https://")?;
        }
        f.write_str(&self.authority)
    }
}

impl FromStr for MasterAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<MasterAddr, AddrError> {
        let err = |reason: &str| AddrError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = s.trim();
        let (tls, bare) = match trimmed.strip_prefix("https://") {
            Some(rest) => (true, rest),
            None => (false, trimmed.strip_prefix("http://").unwrap_or(trimmed)),
        };
        let bare = bare.strip_suffix('/').unwrap_or(bare);
        if bare.is_empty() {
            return Err(err("empty"));
        }
        if bare.contains("://") {
            return Err(err(
                "only HOST:PORT, http://HOST:PORT or https://HOST:PORT is supported",
            ));
        }
        if bare.contains('/') || bare.contains('@') || bare.contains('?') {
            return Err(err("expected HOST:PORT without a path"));
        }
        let uri: tonic::transport::Uri = format!("http://{bare}")
            .parse()
            .map_err(|e| err(&format!("{e}")))?;
        let Some(authority) = uri.authority() else {
            return Err(err("expected HOST:PORT"));
        };
        if authority.host().is_empty() {
            return Err(err("missing host"));
        }
        match authority.port_u16() {
            None => return Err(err("missing port")),
            Some(0) => return Err(err("port 0 is not allowed")),
            Some(_) => {}
        }
        Ok(MasterAddr {
            authority: authority.as_str().to_string(),
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_addresses() {
        let ok = |s: &str| MasterAddr::from_str(s).map(|a| a.to_string());
        assert_eq!(ok("localhost:5050"), Ok("localhost:5050".into()));
        assert_eq!(ok("10.0.0.1:5050"), Ok("10.0.0.1:5050".into()));
        assert_eq!(ok("http://m1:5050/"), Ok("m1:5050".into()));
        assert_eq!(ok("[::1]:5050"), Ok("[::1]:5050".into()));
        assert_eq!(
            MasterAddr::from_str("m1:5050").map(|a| a.uri()),
            Ok("http://m1:5050".into())
        );
        let tls = MasterAddr::from_str("https://m1:5050").expect("https");
        assert!(tls.is_tls());
        assert_eq!(tls.uri(), "https://m1:5050");
        assert_eq!(tls.to_string(), "https://m1:5050");
        for bad in [
            "",
            "m1",
            "m1:",
            ":5050",
            "m1:0",
            "m1:99999",
            "ftp://m1:5050",
            "m1:5050/x",
            "u@m1:1",
        ] {
            assert!(MasterAddr::from_str(bad).is_err(), "{bad:?} accepted");
        }
        let mut refusal = tonic::Status::unavailable("not the leader; the leader is m2:5050");
        refusal
            .metadata_mut()
            .insert(LEADER_METADATA, "m2:5050".parse().expect("ascii"));
        let named = MasterAddr::leader_named_by(&refusal, &tls).expect("named");
        assert_eq!(named.to_string(), "https://m2:5050");
        assert_eq!(
            MasterAddr::leader_named_by(&tonic::Status::unavailable("busy"), &tls),
            None
        );
        let err = MasterAddr::from_str("m1").expect_err("no port");
        assert_eq!(err.to_string(), "invalid address \"m1\": missing port");
    }
}
