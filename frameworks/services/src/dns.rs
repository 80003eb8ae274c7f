//! The DNS server of service discovery: A/AAAA and SRV records for each app's discoverable
//! instances, over UDP and TCP.
//!
//! [`answer`] is pure: a request and a [`Zone`] snapshot in, the response out (tested
//! against tables). What it serves, under the zone's domain (`agora.` by default):
//! - `app.group.agora.`: A (AAAA) records of the agents its instances run on, and SRV
//!   records `0 0 <PORT0> <instance>.app.group.agora.` (with the targets' addresses in
//!   the additional section);
//! - `_<port name>._<tcp|udp>.app.group.agora.`: SRV records of that named port;
//! - `<instance>.app.group.agora.`: that instance's address.
//!
//! Other names under the domain are NXDOMAIN, names outside it are REFUSED (this server
//! is authoritative for its domain only and never recurses). The wire format is
//! hickory-proto's; [`serve_udp`] and [`serve_tcp`] are the thin edges. They must never
//! block on the service actor: they read the latest zone from a watch channel.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, watch};

use crate::discovery::{AppEntry, Endpoint, Zone};

/// TTL of every record: short, as instances come and go.
pub const TTL_SECONDS: u32 = 5;
/// Largest UDP response without EDNS (RFC 1035).
pub const UDP_PLAIN_MAX_BYTES: u16 = 512;
/// Largest UDP response we send even when a client offers more.
pub const UDP_MAX_BYTES: u16 = 4096;
/// TCP connections served at once.
pub const TCP_CONNECTIONS_MAX: usize = 64;
/// A TCP connection idle this long is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);

/// What a query names, relative to the zone.
#[derive(Debug, PartialEq)]
enum Target<'z> {
    /// An app's name.
    App(&'z AppEntry),
    /// A named port of an app (`_http._tcp.<app>`): its index.
    Port(&'z AppEntry, usize),
    /// One instance of an app.
    Instance(&'z AppEntry, &'z Endpoint),
}

fn find<'z>(zone: &'z Zone, qname: &str) -> Option<Target<'z>> {
    if let Some(app) = zone.apps.get(qname) {
        return Some(Target::App(app));
    }
    let (first, rest) = qname.split_once('.')?;
    if let Some(app) = zone.apps.get(rest)
        && let Some(e) = app.endpoints.iter().find(|e| e.label == first)
    {
        return Some(Target::Instance(app, e));
    }
    let name = first.strip_prefix('_')?;
    let (proto, app_name) = rest.split_once('.')?;
    let proto = proto.strip_prefix('_')?;
    let app = zone.apps.get(app_name)?;
    let index = app.ports.iter().position(|(n, p)| {
        n.as_deref() == Some(name) && p.split(',').any(|p| p.eq_ignore_ascii_case(proto))
    })?;
    Some(Target::Port(app, index))
}

fn address_records(name: &Name, ip: Option<IpAddr>, want: RecordType) -> Option<Record> {
    match (ip?, want) {
        (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => Some(Record::from_rdata(
            name.clone(),
            TTL_SECONDS,
            RData::A(A(v4)),
        )),
        (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => Some(Record::from_rdata(
            name.clone(),
            TTL_SECONDS,
            RData::AAAA(AAAA(v6)),
        )),
        _ => None,
    }
}

fn instance_name(app_name: &Name, e: &Endpoint) -> Option<Name> {
    app_name.prepend_label(e.label.as_str()).ok()
}

/// SRV records of port `index` of every endpoint, and the targets' addresses.
fn srv_records(
    app_name: &Name,
    app: &AppEntry,
    index: usize,
    owner: &Name,
) -> (Vec<Record>, Vec<Record>) {
    let mut answers = Vec::new();
    let mut additionals = Vec::new();
    for e in &app.endpoints {
        let (Some(port), Some(target)) = (e.ports.get(index), instance_name(app_name, e)) else {
            continue;
        };
        answers.push(Record::from_rdata(
            owner.clone(),
            TTL_SECONDS,
            RData::SRV(SRV::new(0, 0, *port, target.clone())),
        ));
        additionals.extend(address_records(&target, e.ip, RecordType::ANY));
    }
    (answers, additionals)
}

/// The response to `request` from `zone`; `None` for what must not be answered (a
/// response sent to us).
pub fn answer(zone: &Zone, request: &Message) -> Option<Message> {
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_MAX_BYTES);
        response.set_edns(edns);
    }
    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return Some(response);
    }
    let [query] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return Some(response);
    };
    response.add_query(query.clone());
    let qname = query.name().to_lowercase();
    let mut text = qname.to_ascii();
    if !text.ends_with('.') {
        text.push('.');
    }
    let in_domain = text == zone.domain || text.ends_with(&format!(".{}", zone.domain));
    if !in_domain {
        response.metadata.response_code = ResponseCode::Refused;
        return Some(response);
    }
    response.metadata.authoritative = true;
    let owner = query.name().clone();
    let want = query.query_type();
    let Some(target) = find(zone, &text) else {
        // The domain's own name exists (with no records of its own).
        if text != zone.domain {
            response.metadata.response_code = ResponseCode::NXDomain;
        }
        return Some(response);
    };
    match target {
        Target::App(app) => {
            let app_name = Name::from_ascii(&text).ok()?;
            if matches!(want, RecordType::A | RecordType::AAAA | RecordType::ANY) {
                let mut ips: Vec<IpAddr> = app.endpoints.iter().filter_map(|e| e.ip).collect();
                ips.sort();
                ips.dedup();
                for ip in ips {
                    response
                        .answers
                        .extend(address_records(&owner, Some(ip), want));
                }
            }
            if matches!(want, RecordType::SRV | RecordType::ANY) {
                let (answers, additionals) = srv_records(&app_name, app, 0, &owner);
                response.answers.extend(answers);
                response.additionals.extend(additionals);
            }
        }
        Target::Port(app, index) => {
            if matches!(want, RecordType::SRV | RecordType::ANY) {
                let app_text = text.splitn(3, '.').nth(2).unwrap_or_default();
                let app_name = Name::from_ascii(app_text).ok()?;
                let (answers, additionals) = srv_records(&app_name, app, index, &owner);
                response.answers.extend(answers);
                response.additionals.extend(additionals);
            }
        }
        Target::Instance(_, e) => {
            response.answers.extend(address_records(&owner, e.ip, want));
        }
    }
    Some(response)
}

/// The encoded response for an encoded request, within `limit` bytes (a larger one is sent
/// truncated, so the client asks again over TCP). `None`: send nothing.
pub fn respond(zone: &Zone, request: &[u8], limit: usize) -> Option<Vec<u8>> {
    let response = match Message::from_vec(request) {
        Ok(m) => answer(zone, &m)?,
        Err(_) => {
            // Answer FORMERR when at least the id can be read.
            if request.len() < 2 {
                return None;
            }
            let id = u16::from_be_bytes([request[0], request[1]]);
            Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
        }
    };
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.truncate().to_vec().ok()
}

/// The UDP size a request allows (EDNS's payload, at least 512, at most [`UDP_MAX_BYTES`]).
fn udp_limit(request: &[u8]) -> usize {
    let offered = Message::from_vec(request)
        .ok()
        .and_then(|m| m.edns.map(|e| e.max_payload()))
        .unwrap_or(UDP_PLAIN_MAX_BYTES);
    offered.clamp(UDP_PLAIN_MAX_BYTES, UDP_MAX_BYTES) as usize
}

/// Answer UDP queries on `socket` from the latest zone until the process ends.
pub async fn serve_udp(socket: UdpSocket, zone: watch::Receiver<Arc<Zone>>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "dns: udp receive failed");
                continue;
            }
        };
        let request = &buf[..n];
        let current = zone.borrow().clone();
        if let Some(bytes) = respond(&current, request, udp_limit(request))
            && let Err(e) = socket.send_to(&bytes, from).await
        {
            tracing::debug!(error = %e, client = %from, "dns: udp send failed");
        }
    }
}

/// Answer TCP queries (RFC 7766 framing: a 2-byte length before each message) from the
/// latest zone, at most [`TCP_CONNECTIONS_MAX`] connections at once.
pub async fn serve_tcp(listener: TcpListener, zone: watch::Receiver<Arc<Zone>>) {
    let slots = Arc::new(Semaphore::new(TCP_CONNECTIONS_MAX));
    loop {
        let (mut stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "dns: tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Over the limit: the client falls back or retries.
            continue;
        };
        let zone = zone.clone();
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                let mut len = [0u8; 2];
                match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
                    Ok(Ok(_)) => {}
                    _ => return,
                }
                let mut request = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut request).await.is_err() {
                    return;
                }
                let current = zone.borrow().clone();
                let Some(bytes) = respond(&current, &request, usize::from(u16::MAX)) else {
                    continue;
                };
                let Ok(n) = u16::try_from(bytes.len()) else {
                    return;
                };
                if stream.write_all(&n.to_be_bytes()).await.is_err()
                    || stream.write_all(&bytes).await.is_err()
                {
                    tracing::debug!(client = %from, "dns: tcp write failed");
                    return;
                }
            }
        });
    }
}

/// Bind the DNS server on `address` (UDP and TCP, the same port; port 0 picks a free one
/// for both) and serve `zone`. Returns the bound address.
pub async fn start(
    address: SocketAddr,
    zone: watch::Receiver<Arc<Zone>>,
) -> std::io::Result<SocketAddr> {
    // With port 0, take the UDP port first and the same TCP port after it.
    let udp = UdpSocket::bind(address).await?;
    let bound = udp.local_addr()?;
    let tcp = TcpListener::bind(bound).await?;
    tokio::spawn(serve_udp(udp, zone.clone()));
    tokio::spawn(serve_tcp(tcp, zone));
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use std::collections::BTreeMap;

    fn zone() -> Zone {
        let web = AppEntry {
            app_id: "/prod/web".into(),
            ports: vec![
                (Some("http".into()), "tcp".into()),
                (Some("admin".into()), "tcp".into()),
            ],
            endpoints: vec![
                Endpoint {
                    label: "a1-1".into(),
                    ip: Some("127.0.0.10".parse().unwrap()),
                    ports: vec![31000, 31001],
                },
                Endpoint {
                    label: "a1-2".into(),
                    ip: Some("127.0.0.11".parse().unwrap()),
                    ports: vec![31005, 31006],
                },
                Endpoint {
                    label: "a1-3".into(),
                    ip: Some("127.0.0.10".parse().unwrap()),
                    ports: vec![31002, 31003],
                },
            ],
        };
        let idle = AppEntry {
            app_id: "/idle".into(),
            ports: vec![],
            endpoints: vec![],
        };
        let v6 = AppEntry {
            app_id: "/six".into(),
            ports: vec![(None, "tcp".into())],
            endpoints: vec![Endpoint {
                label: "b-1".into(),
                ip: Some("::1".parse().unwrap()),
                ports: vec![8080],
            }],
        };
        Zone {
            domain: "agora.".into(),
            apps: BTreeMap::from([
                ("web.prod.agora.".to_string(), web),
                ("idle.agora.".to_string(), idle),
                ("six.agora.".to_string(), v6),
            ]),
        }
    }

    fn ask(name: &str, t: RecordType) -> Message {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        answer(&zone(), &m).unwrap()
    }

    /// The answers as text: `A 127.0.0.10`, `SRV 31000 a1-1.web.prod.agora.`.
    fn texts(records: &[Record]) -> Vec<String> {
        let mut v: Vec<String> = records
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => format!("{} A {}", r.name, a.0),
                RData::AAAA(a) => format!("{} AAAA {}", r.name, a.0),
                RData::SRV(s) => format!("{} SRV {} {}", r.name, s.port, s.target),
                other => format!("{other:?}"),
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn answer_table() {
        use RecordType as T;
        // (name, type, response code, answers)
        let cases: Vec<(&str, RecordType, ResponseCode, Vec<&str>)> = vec![
            (
                "web.prod.agora.",
                T::A,
                ResponseCode::NoError,
                vec![
                    "web.prod.agora. A 127.0.0.10",
                    "web.prod.agora. A 127.0.0.11",
                ],
            ),
            // Case does not matter; the owner keeps the asker's case.
            (
                "WEB.Prod.agora.",
                T::A,
                ResponseCode::NoError,
                vec![
                    "WEB.Prod.agora. A 127.0.0.10",
                    "WEB.Prod.agora. A 127.0.0.11",
                ],
            ),
            (
                "web.prod.agora.",
                T::SRV,
                ResponseCode::NoError,
                vec![
                    "web.prod.agora. SRV 31000 a1-1.web.prod.agora.",
                    "web.prod.agora. SRV 31002 a1-3.web.prod.agora.",
                    "web.prod.agora. SRV 31005 a1-2.web.prod.agora.",
                ],
            ),
            (
                "_admin._tcp.web.prod.agora.",
                T::SRV,
                ResponseCode::NoError,
                vec![
                    "_admin._tcp.web.prod.agora. SRV 31001 a1-1.web.prod.agora.",
                    "_admin._tcp.web.prod.agora. SRV 31003 a1-3.web.prod.agora.",
                    "_admin._tcp.web.prod.agora. SRV 31006 a1-2.web.prod.agora.",
                ],
            ),
            (
                "_admin._udp.web.prod.agora.",
                T::SRV,
                ResponseCode::NXDomain,
                vec![],
            ),
            (
                "_nope._tcp.web.prod.agora.",
                T::SRV,
                ResponseCode::NXDomain,
                vec![],
            ),
            (
                "a1-2.web.prod.agora.",
                T::A,
                ResponseCode::NoError,
                vec!["a1-2.web.prod.agora. A 127.0.0.11"],
            ),
            ("a1-9.web.prod.agora.", T::A, ResponseCode::NXDomain, vec![]),
            // An app with nothing discoverable exists, with no records.
            ("idle.agora.", T::A, ResponseCode::NoError, vec![]),
            ("idle.agora.", T::SRV, ResponseCode::NoError, vec![]),
            // A name of another type: no data.
            ("web.prod.agora.", T::TXT, ResponseCode::NoError, vec![]),
            ("web.prod.agora.", T::AAAA, ResponseCode::NoError, vec![]),
            (
                "six.agora.",
                T::AAAA,
                ResponseCode::NoError,
                vec!["six.agora. AAAA ::1"],
            ),
            ("six.agora.", T::A, ResponseCode::NoError, vec![]),
            ("agora.", T::A, ResponseCode::NoError, vec![]),
            ("nothing.agora.", T::A, ResponseCode::NXDomain, vec![]),
            ("prod.agora.", T::A, ResponseCode::NXDomain, vec![]),
            // Outside the domain: not ours.
            ("example.com.", T::A, ResponseCode::Refused, vec![]),
            ("agora.example.", T::A, ResponseCode::Refused, vec![]),
        ];
        for (name, t, code, want) in cases {
            let r = ask(name, t);
            assert_eq!(r.metadata.id, 7);
            assert_eq!(r.metadata.message_type, MessageType::Response);
            assert_eq!(r.metadata.response_code, code, "{name} {t}");
            assert_eq!(texts(&r.answers), want, "{name} {t}");
        }
        // SRV answers carry their targets' addresses.
        let r = ask("web.prod.agora.", T::SRV);
        assert_eq!(
            texts(&r.additionals),
            vec![
                "a1-1.web.prod.agora. A 127.0.0.10",
                "a1-2.web.prod.agora. A 127.0.0.11",
                "a1-3.web.prod.agora. A 127.0.0.10",
            ]
        );
        assert!(r.metadata.authoritative);
    }

    #[test]
    fn bad_requests() {
        // No question, two questions: FORMERR. Another opcode: NOTIMP. A response: silence.
        let mut none = Message::new(1, MessageType::Query, OpCode::Query);
        assert_eq!(
            answer(&zone(), &none).unwrap().metadata.response_code,
            ResponseCode::FormErr
        );
        let q = Query::query(Name::from_ascii("web.prod.agora.").unwrap(), RecordType::A);
        none.add_query(q.clone());
        none.add_query(q.clone());
        assert_eq!(
            answer(&zone(), &none).unwrap().metadata.response_code,
            ResponseCode::FormErr
        );
        let mut update = Message::new(2, MessageType::Query, OpCode::Update);
        update.add_query(q.clone());
        assert_eq!(
            answer(&zone(), &update).unwrap().metadata.response_code,
            ResponseCode::NotImp
        );
        let mut resp = Message::new(3, MessageType::Response, OpCode::Query);
        resp.add_query(q);
        assert!(answer(&zone(), &resp).is_none());
        // Garbage: FORMERR with the id it starts with; too short to hold an id: nothing.
        let bytes = respond(&zone(), &[0x12, 0x34, 0xff], 512).unwrap();
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert!(respond(&zone(), &[0x12], 512).is_none());
    }

    #[test]
    fn large_answers_are_truncated_over_udp() {
        let mut z = zone();
        let big = AppEntry {
            app_id: "/big".into(),
            ports: vec![(None, "tcp".into())],
            endpoints: (0..200)
                .map(|i| Endpoint {
                    label: format!("i-{i}"),
                    ip: Some(IpAddr::from([127, 0, 1, (i % 250) as u8])),
                    ports: vec![30000 + i as u16],
                })
                .collect(),
        };
        z.apps.insert("big.agora.".into(), big);
        let mut m = Message::new(9, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("big.agora.").unwrap(),
            RecordType::SRV,
        ));
        let request = m.to_vec().unwrap();
        let udp = Message::from_vec(&respond(&z, &request, 512).unwrap()).unwrap();
        assert!(udp.metadata.truncation);
        assert!(udp.answers.is_empty());
        let tcp = Message::from_vec(&respond(&z, &request, 65_535).unwrap()).unwrap();
        assert!(!tcp.metadata.truncation);
        assert_eq!(tcp.answers.len(), 200);
    }
}
