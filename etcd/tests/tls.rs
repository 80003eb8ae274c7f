//! The etcd client over TLS against a real etcd member started with client-certificate
//! authentication (Debian's `etcd-server`): with the CA and a client certificate every call
//! works; without the certificate, over plain HTTP, or with an `https://` endpoint and no
//! CA, nothing does. Named `needs_etcd_*`: `scripts/test.sh` shows it as skipped where
//! etcd cannot be installed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_etcd::client::{self as kv, EtcdClient, EtcdError, EtcdTls};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn etcd_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("AGORA_ETCD") {
        return PathBuf::from(p);
    }
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("etcd"))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"))
}

/// The member and its directory, both gone when the test ends (also on failure).
struct Member {
    child: Child,
    dir: PathBuf,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write pem");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_etcd_tls_with_a_client_certificate_and_nothing_without() {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let dir = std::env::temp_dir().join(format!(
        "agora-etcd-tls-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(names).expect("params");
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, &ca, &ca_key).expect("signed");
        (cert.pem(), key.serialize_pem())
    };
    let (sc, sk) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (cc, ck) = leaf(vec!["agora".into()], ExtendedKeyUsagePurpose::ClientAuth);
    let ca_file = write(&dir, "ca.pem", &ca.pem());
    let (sc, sk) = (
        write(&dir, "server.pem", &sc),
        write(&dir, "server.key", &sk),
    );
    let (cc, ck) = (
        write(&dir, "client.pem", &cc),
        write(&dir, "client.key", &ck),
    );

    let (client_port, peer_port) = (free_port(), free_port());
    let client_url = format!("https://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let log = std::fs::File::create(dir.join("etcd.log")).expect("log");
    let child = Command::new(etcd_binary())
        .args(["--name", "tls0", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("tls0={peer_url}")])
        .arg("--cert-file")
        .arg(&sc)
        .arg("--key-file")
        .arg(&sk)
        .arg("--trusted-ca-file")
        .arg(&ca_file)
        .arg("--client-cert-auth")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("etcd is installed (apt-get install etcd-server)");
    let member = Member { child, dir };
    let logs = || std::fs::read_to_string(member.dir.join("etcd.log")).unwrap_or_default();

    let tls = EtcdTls::from_files(&ca_file, Some(&cc), Some(&ck)).expect("pem files");
    let client =
        EtcdClient::with_tls(std::slice::from_ref(&client_url), Some(&tls)).expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = client.get(b"/probe").await {
        assert!(Instant::now() < deadline, "etcd over TLS: {e}\n{}", logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lease = client.grant(5).await.expect("lease over TLS");
    let r = client
        .txn(agora_proto::etcd::TxnRequest {
            compare: vec![kv::created_at(b"/k", 0)],
            success: vec![kv::put(b"/k", b"v".to_vec(), lease)],
            failure: Vec::new(),
        })
        .await
        .expect("txn over TLS");
    assert!(r.succeeded);
    assert_eq!(
        client.get(b"/k").await.expect("get").map(|k| k.value),
        Some(b"v".to_vec())
    );
    client.revoke(lease).await.expect("revoke");
    assert_eq!(
        client.get(b"/k").await.expect("get"),
        None,
        "the lease took its key"
    );

    // Without the client certificate, over plain HTTP: refused.
    let anonymous = EtcdTls {
        ca_pem: tls.ca_pem.clone(),
        client_pem: None,
    };
    let without =
        EtcdClient::with_tls(std::slice::from_ref(&client_url), Some(&anonymous)).expect("client");
    assert!(without.get(b"/k").await.is_err(), "no client certificate");
    let plain = EtcdClient::new(&[format!("http://127.0.0.1:{client_port}")]).expect("client");
    assert!(
        plain.get(b"/k").await.is_err(),
        "plain HTTP to a TLS member"
    );
    // An https endpoint without a CA is refused before anything is dialled.
    assert!(matches!(
        EtcdClient::new(std::slice::from_ref(&client_url)),
        Err(EtcdError::Tls(_))
    ));
    // A certificate without its key is refused when read.
    assert!(EtcdTls::from_files(&ca_file, Some(&cc), None).is_err());
    drop(member);
}
