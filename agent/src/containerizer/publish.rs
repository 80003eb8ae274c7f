//! Port publishing for containers in their own network namespace (`--network isolated`).
//!
//! Such a container has only a loopback interface: nothing reaches it and it reaches
//! nothing. [`publish`] makes its allocated ports reachable: for each port P the agent
//! listens on `<publish address>:P` in the host's namespace and forwards every connection
//! to `127.0.0.1:P` *inside* the container. The inside socket is made by a thread of the
//! agent that entered the container's network namespace (a socket belongs to the namespace
//! of the thread that creates it), so no interface, address, route, bridge or firewall
//! rule is created anywhere: two containers can each listen on their own 8080, a port the
//! container was not given is unreachable, and containers cannot reach each other or the
//! host.
//!
//! Owns the listeners, the connector thread and the copying tasks of one container; all
//! end when the [`Published`] handle is dropped. Must never connect anywhere but the
//! container's loopback, and never hold more than [`MAX_CONNECTIONS_PER_PORT`] connections
//! per port.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;

/// Most connections forwarded at once per published port; more wait to be accepted.
pub const MAX_CONNECTIONS_PER_PORT: usize = 1024;
/// Longest wait for the container to accept a forwarded connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connection requests queued for the connector thread.
const CONNECT_QUEUE: usize = 256;

type ConnectRequest = (u16, oneshot::Sender<std::io::Result<TcpStream>>);

/// A container's published ports; dropping it stops forwarding (open connections end).
#[derive(Debug)]
pub struct Published {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Published {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Whether `netns` (an open `/proc/<pid>/ns/net`) is a network namespace other than the
/// agent's (compared by the namespace's inode, so the process may end meanwhile).
pub fn is_own_namespace(netns: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (netns.metadata(), std::fs::metadata("/proc/self/ns/net")) {
        (Ok(theirs), Ok(ours)) => (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()),
        _ => false,
    }
}

/// Publishes `ports` of the container whose network namespace is `netns` (an open
/// `/proc/<pid>/ns/net`) on `address`. Fails, publishing nothing, when a port cannot be
/// bound (e.g. another process holds it on the host).
pub fn publish(netns: OwnedFd, address: IpAddr, ports: &[u16]) -> Result<Published, String> {
    let mut listeners = Vec::with_capacity(ports.len());
    for &port in ports {
        let addr = SocketAddr::new(address, port);
        let l = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|e| format!("cannot publish port {port} on {address}: {e}"))?;
        listeners.push((port, l));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ConnectRequest>(CONNECT_QUEUE);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("agora-publish".into())
        .spawn(move || {
            // This thread stays in the container's namespace until it ends.
            let entered = super::spawn::enter_network_namespace(&netns);
            drop(netns);
            let failed = entered.is_err();
            let _ = ready_tx.send(entered);
            if failed {
                return;
            }
            while let Some((port, reply)) = rx.blocking_recv() {
                let target = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
                let _ = reply.send(TcpStream::connect_timeout(&target, CONNECT_TIMEOUT));
            }
        })
        .map_err(|e| format!("cannot start the port forwarder: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("cannot enter the container's network: {e}")),
        Err(_) => return Err("the port forwarder stopped".into()),
    }
    let tasks = listeners
        .into_iter()
        .map(|(port, listener)| tokio::spawn(forward(port, listener, tx.clone())))
        .collect();
    Ok(Published { tasks })
}

/// Accepts on one published port and forwards each connection into the container.
async fn forward(
    port: u16,
    listener: tokio::net::TcpListener,
    connector: tokio::sync::mpsc::Sender<ConnectRequest>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_PORT));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (mut outside, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(port, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let connector = connector.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (reply, rx) = oneshot::channel();
            if connector.send((port, reply)).await.is_err() {
                return;
            }
            let inside = match rx.await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(port, %peer, "the container refused a forwarded connection: {e}");
                    return;
                }
                Err(_) => return,
            };
            let inside = match inside
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpStream::from_std(inside))
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(port, "cannot use a forwarded connection: {e}");
                    return;
                }
            };
            let mut inside = inside;
            let _ = tokio::io::copy_bidirectional(&mut outside, &mut inside).await;
        });
    }
}
