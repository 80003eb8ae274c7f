//! A real 3-member etcd cluster on loopback for tests named `needs_etcd_*` (Debian's
//! `etcd-server`; `scripts/test.sh` installs it, or filters those tests out where it
//! cannot). Each member has its own data directory under the test's temporary
//! directory and its own client and peer ports; every member is killed when the cluster
//! is dropped, also when a test fails.
//!
//! Included by path (`#[path = "support/etcd.rs"]`) next to `support/mod.rs`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::support::{Proc, free_port, http_get};

/// The etcd binary: `$AGORA_ETCD`, else `etcd` on the PATH, else Debian's path.
pub fn etcd_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("AGORA_ETCD") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("etcd");
        if p.exists() {
            return p;
        }
    }
    let debian = PathBuf::from("/usr/bin/etcd");
    assert!(
        debian.exists(),
        "etcd is not installed (apt-get install etcd-server); tests named needs_etcd_* need it"
    );
    debian
}

pub struct Member {
    pub name: String,
    pub client: SocketAddr,
    pub peer: SocketAddr,
    pub dir: PathBuf,
    pub proc: Option<Proc>,
    args: Vec<String>,
}

pub struct EtcdCluster {
    pub members: Vec<Member>,
    log_dir: PathBuf,
}

impl EtcdCluster {
    /// Start `n` members under `dir` and wait until each answers `/health`.
    pub fn start(dir: &Path, n: usize) -> EtcdCluster {
        let token = format!("agora-test-{}", uuid::Uuid::new_v4());
        let mut members: Vec<Member> = (0..n)
            .map(|i| {
                let client: SocketAddr =
                    format!("127.0.0.1:{}", free_port()).parse().expect("addr");
                let peer: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
                Member {
                    name: format!("etcd{i}"),
                    client,
                    peer,
                    dir: dir.join(format!("etcd{i}")),
                    proc: None,
                    args: Vec::new(),
                }
            })
            .collect();
        let initial: Vec<String> = members
            .iter()
            .map(|m| format!("{}=http://{}", m.name, m.peer))
            .collect();
        let initial = initial.join(",");
        for m in &mut members {
            m.args = vec![
                "--name".into(),
                m.name.clone(),
                "--data-dir".into(),
                m.dir.display().to_string(),
                "--listen-client-urls".into(),
                format!("http://{}", m.client),
                "--advertise-client-urls".into(),
                format!("http://{}", m.client),
                "--listen-peer-urls".into(),
                format!("http://{}", m.peer),
                "--initial-advertise-peer-urls".into(),
                format!("http://{}", m.peer),
                "--initial-cluster".into(),
                initial.clone(),
                "--initial-cluster-token".into(),
                token.clone(),
                "--initial-cluster-state".into(),
                "new".into(),
                // Keep test members light: no periodic snapshots of a large log.
                "--snapshot-count".into(),
                "10000".into(),
            ];
        }
        let mut c = EtcdCluster {
            members,
            log_dir: dir.to_path_buf(),
        };
        for i in 0..n {
            c.start_member(i);
        }
        for i in 0..n {
            c.wait_member(i);
        }
        c
    }

    /// (Re)start member `i` on its data directory.
    pub fn start_member(&mut self, i: usize) {
        let m = &mut self.members[i];
        let log = self
            .log_dir
            .join(format!("{}-{}.log", m.name, uuid::Uuid::new_v4()));
        m.proc = Some(Proc::spawn(&m.name, &etcd_binary(), &m.args, log));
    }

    /// Wait until member `i` is healthy (it has a leader and serves reads).
    pub fn wait_member(&self, i: usize) {
        let m = &self.members[i];
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok((200, body)) = http_get(m.client, "/health")
                && body.contains("true")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "etcd member {} never became healthy\n{}",
            m.name,
            self.logs()
        );
    }

    /// Kill member `i` (SIGKILL).
    pub fn kill_member(&mut self, i: usize) {
        if let Some(p) = self.members[i].proc.as_mut() {
            p.kill9();
        }
    }

    /// Every member's client URL, comma-separated (for `--etcd-endpoints`).
    pub fn endpoints(&self) -> String {
        self.member_endpoints(&(0..self.members.len()).collect::<Vec<_>>())
    }

    pub fn member_endpoints(&self, which: &[usize]) -> String {
        which
            .iter()
            .map(|&i| format!("http://{}", self.members[i].client))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn endpoint_list(&self) -> Vec<String> {
        (0..self.members.len())
            .map(|i| format!("http://{}", self.members[i].client))
            .collect()
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for m in &self.members {
            if let Some(p) = &m.proc {
                let text = p.log_text();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                s += &format!("--- {} (last lines) ---\n", m.name);
                for l in tail.into_iter().rev() {
                    s += l;
                    s.push('\n');
                }
            }
        }
        s
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(p) = m.proc.as_mut() {
                p.kill9();
            }
        }
    }
}
