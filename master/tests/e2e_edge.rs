//! End-to-end: edge validation and the error model against a real `agora-master` and
//! `agora-agent`, through a real gRPC client and real HTTP. Adversarial input gets a short,
//! precise refusal with the right code, and a refused call changes nothing: names the
//! agent could not use are refused by the master, oversized names never come back whole,
//! undecodable requests are INVALID_ARGUMENT, every HTTP error has a JSON body, and both
//! batch calls refuse an unknown or unsubscribed framework the same way.

mod support;

use agora_proto::v1;
use support::*;
use tonic::Code;

/// Longest refusal message the master may send (`service::error::MESSAGE_MAX_BYTES`).
const MESSAGE_MAX_BYTES: usize = 1024;

async fn operator(url: String) -> v1::operator_client::OperatorClient<tonic::transport::Channel> {
    v1::operator_client::OperatorClient::connect(url)
        .await
        .expect("connect operator client")
}

/// A refusal with `code`, a message containing `needle`, and a message of bounded size.
fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, needle: &str) -> String {
    let s = r.expect_err("the call must be refused");
    assert_eq!(s.code(), code, "{s:?}");
    assert!(
        s.message().contains(needle),
        "message {:?} should contain {needle:?}",
        s.message()
    );
    assert!(
        s.message().len() <= MESSAGE_MAX_BYTES,
        "message of {} bytes",
        s.message().len()
    );
    s.message().to_string()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

/// A dynamic reservation of `cpus` for `role` with principal `ops`.
fn reservation(role: &str, what: &str) -> Vec<v1::Resource> {
    let mut r = res(what).to_proto();
    for x in &mut r {
        x.reservation = Some(v1::Reservation {
            r#type: v1::reservation::Type::Dynamic as i32,
            role: role.to_string(),
            principal: "ops".into(),
            labels: vec![],
        });
    }
    r
}

fn volume(role: &str, persistence_id: &str) -> Vec<v1::Resource> {
    let mut r = reservation(role, "disk:10");
    r[0].disk = Some(v1::DiskInfo {
        persistence_id: persistence_id.into(),
        container_path: "data".into(),
        ..Default::default()
    });
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_names_are_refused_briefly_and_change_nothing() {
    let cluster = Cluster::start(1);
    let mut op = operator(cluster.url()).await;
    let before = cluster.state();
    let agent_id = before["agents"][0]["id"]
        .as_str()
        .expect("agent id")
        .to_string();

    // A 20,000-character role: refused with a short message (it used to exceed gRPC's
    // header limit, and the client saw only "Stream removed").
    let huge = "r".repeat(20_000);
    let info = v1::FrameworkInfo {
        name: "huge-role".into(),
        roles: vec![huge.clone()],
        ..Default::default()
    };
    let r = Framework::try_subscribe(cluster.addr, info, None)
        .await
        .map(|f| f.id);
    let m = refused(r, Code::InvalidArgument, "longer than 1024 bytes");
    assert!(m.contains("(20000 bytes)"), "{m}");
    let r = op
        .set_quota(v1::SetQuotaRequest {
            quota: Some(v1::QuotaInfo {
                role: huge.clone(),
                guarantee: res("cpus:1").to_proto(),
                limit: vec![],
            }),
            force: true,
        })
        .await;
    refused(r, Code::InvalidArgument, "quota role");
    let r = op
        .update_weights(v1::UpdateWeightsRequest {
            weights: vec![v1::WeightInfo {
                role: huge.clone(),
                weight: 2.0,
            }],
        })
        .await;
    refused(r, Code::InvalidArgument, "weight role");
    // An invalid character deep in a long role is quoted as a short prefix too.
    let bad = format!("{}!", "x/".repeat(400));
    let r = op
        .update_weights(v1::UpdateWeightsRequest {
            weights: vec![v1::WeightInfo {
                role: bad,
                weight: 2.0,
            }],
        })
        .await;
    let m = refused(r, Code::InvalidArgument, "letters, digits");
    assert!(m.len() < 400, "{m}");

    // A reservation and a volume for a role with a 300-byte segment: the agent would fail
    // to make the directory ("File name too long"), so the master refuses, on gRPC and on
    // HTTP alike.
    let long_role = format!("team/{}", "s".repeat(300));
    let r = op
        .reserve_resources(v1::ReserveResourcesRequest {
            agent_id: agent_id.clone(),
            resources: reservation(&long_role, "disk:10"),
        })
        .await;
    refused(r, Code::InvalidArgument, "segment of 300 bytes");
    let r = op
        .create_volumes(v1::VolumesRequest {
            agent_id: agent_id.clone(),
            volumes: volume(&long_role, "v1"),
        })
        .await;
    refused(r, Code::InvalidArgument, "segment of 300 bytes");
    let r = op
        .create_volumes(v1::VolumesRequest {
            agent_id: agent_id.clone(),
            volumes: volume("db", &"p".repeat(256)),
        })
        .await;
    refused(r, Code::InvalidArgument, "persistence id");
    let body = format!(
        r#"{{"agent_id": "{agent_id}", "resources": "disk({long_role},dynamic,principal=ops):10"}}"#
    );
    let (code, text) =
        http_request(cluster.addr, "POST", "/api/v1/reserve", Some(&body)).expect("reserve");
    assert_eq!(code, 400, "{text}");
    let v = json(&text);
    assert_eq!(v["code"], "INVALID_ARGUMENT", "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("segment of 300 bytes")),
        "{v}"
    );

    // Nothing changed: no framework, no quota, no weight, the agent's resources as before.
    let after = cluster.state();
    assert_eq!(after["frameworks"], before["frameworks"]);
    assert_eq!(after["roles"], before["roles"]);
    assert_eq!(
        after["agents"][0]["resources"],
        before["agents"][0]["resources"]
    );
    let quota = op
        .get_quota(v1::Empty {})
        .await
        .expect("quota")
        .into_inner();
    assert!(quota.quotas.is_empty(), "{quota:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_the_agent_cannot_store_are_refused_in_accept() {
    let cluster = Cluster::start(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-edge-accept").await;
    let offer = fw.wait_offers(1).await.remove(0);

    // A task id of 254 bytes is a valid file name, but the agent checkpoints the task as
    // `<id>.pb`: refused before anything is launched.
    let long_id = "t".repeat(254);
    let r = fw
        .accept(
            vec![offer.id.clone()],
            vec![launch(vec![shell_task(
                &long_id,
                "cpus:0.1;mem:16",
                "true",
            )])],
            Some(0.0),
        )
        .await;
    refused(r, Code::InvalidArgument, "longer than 252 bytes");

    // RESERVE for a role with a 300-byte segment in an ACCEPT.
    let reserve = v1::Operation {
        operation: Some(v1::operation::Operation::Reserve(v1::operation::Reserve {
            resources: reservation(&format!("e2e/{}", "s".repeat(300)), "cpus:1"),
        })),
    };
    let r = fw
        .accept(vec![offer.id.clone()], vec![reserve], Some(0.0))
        .await;
    refused(r, Code::InvalidArgument, "segment of 300 bytes");

    // The refused calls changed nothing: the offer is still outstanding and usable.
    let s = cluster.state();
    assert!(
        s["offers"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o["id"] == offer.id.as_str())),
        "{s}"
    );
    assert!(s["tasks"].as_array().is_some_and(|t| t.is_empty()), "{s}");
    let ok = fw
        .accept(
            vec![offer.id.clone()],
            vec![launch(vec![shell_task(
                &"t".repeat(252),
                "cpus:0.1;mem:16",
                "true",
            )])],
            Some(0.0),
        )
        .await
        .expect("a 252-byte task id is accepted");
    assert_eq!(ok.launched_task_ids.len(), 1);
    fw.wait_for("the 252-byte task ran", |s| {
        s.values()
            .any(|x| x.state == agora_proto::TaskState::Finished as i32)
    })
    .await;
}

/// Sends raw bytes as a gRPC request body (to send what no message encodes to).
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

async fn raw_call(
    url: String,
    path: &'static str,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(url)
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    grpc.unary(
        tonic::Request::new(body),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_invalid_argument() {
    let cluster = Cluster::start(0);
    // Field 1 of SetQuotaRequest (the quota message) holding an invalid varint.
    let garbage = vec![0x0a, 0x03, 0x08, 0xff, 0xff];
    for path in [
        "/agora.v1.Operator/SetQuota",
        "/agora.v1.Scheduler/Accept",
        "/agora.v1.AgentApi/Heartbeat",
    ] {
        let r = raw_call(cluster.url(), path, garbage.clone()).await;
        refused(r, Code::InvalidArgument, "failed to decode");
    }
    // A well-formed request on the same path is still served.
    let empty_quota = raw_call(cluster.url(), "/agora.v1.Operator/GetQuota", vec![]).await;
    assert!(empty_quota.is_ok(), "{empty_quota:?}");
    let mut op = operator(cluster.url()).await;
    assert!(
        op.get_quota(v1::Empty {})
            .await
            .expect("quota")
            .into_inner()
            .quotas
            .is_empty()
    );
}

#[test]
fn every_http_error_has_a_json_body() {
    let cluster = Cluster::start(0);
    let check = |method: &str, path: &str, body: Option<&str>, status: u16, code: &str| {
        let (got, text) = http_request(cluster.addr, method, path, body).expect("request");
        assert_eq!(
            got,
            status,
            "{method} {}: {text}",
            &path[..path.len().min(80)]
        );
        let v = json(&text);
        assert_eq!(v["code"], code, "{v}");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty() && e.len() <= MESSAGE_MAX_BYTES),
            "{v}"
        );
        v
    };
    check("GET", "/no/such/endpoint", None, 404, "NOT_FOUND");
    check("POST", "/api/v1/state", Some("{}"), 405, "NOT_FOUND");
    check("DELETE", "/api/v1/weights", None, 405, "NOT_FOUND");
    let long = format!("/api/v1/state?x={}", "a".repeat(20_000));
    check("GET", &long, None, 414, "INVALID_ARGUMENT");
    // Just over axum's 2 MiB body limit (all of it is read, so the refusal is not lost to
    // a reset connection).
    let big = format!("[{}]", " ".repeat(2 * 1024 * 1024 + 16));
    check(
        "PUT",
        "/api/v1/weights",
        Some(&big),
        413,
        "RESOURCE_EXHAUSTED",
    );
    check(
        "PUT",
        "/api/v1/weights",
        Some("{not json"),
        400,
        "INVALID_ARGUMENT",
    );
    check(
        "GET",
        "/api/v1/tasks?state=SLEEPING",
        None,
        400,
        "INVALID_ARGUMENT",
    );
    check(
        "GET",
        "/api/v1/agents/no-such-agent",
        None,
        404,
        "NOT_FOUND",
    );
    check(
        "GET",
        "/api/v1/frameworks/no-such-framework",
        None,
        404,
        "NOT_FOUND",
    );
    check(
        "POST",
        "/api/v1/frameworks/no-such-framework/teardown",
        None,
        404,
        "NOT_FOUND",
    );
    let huge_role = format!("/api/v1/quota?role={}", "r".repeat(5_000));
    check("DELETE", &huge_role, None, 400, "INVALID_ARGUMENT");
    // Nothing of that changed the weights.
    let (code, text) = http_get(cluster.addr, "/api/v1/weights").expect("weights");
    assert_eq!(code, 200);
    assert!(!text.contains("\"a\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_batch_calls_refuse_an_unknown_or_unsubscribed_framework_whole() {
    let cluster = Cluster::start(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-edge-batches").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let accept = |framework_id: &str| v1::AcceptBatchRequest {
        framework_id: framework_id.to_string(),
        accepts: vec![v1::AcceptRequest {
            framework_id: String::new(),
            offer_ids: vec![offer.id.clone()],
            operations: vec![launch(vec![shell_task("b1", "cpus:0.1;mem:16", "true")])],
            filters: None,
        }],
    };
    let ack = |framework_id: &str| v1::AcknowledgeBatchRequest {
        framework_id: framework_id.to_string(),
        acks: vec![v1::AcknowledgeRequest {
            framework_id: String::new(),
            agent_id: offer.agent_id.clone(),
            task_id: "b1".into(),
            uuid: "u".into(),
        }],
    };
    let mut client = fw.client.clone();
    let a = client.accept_batch(accept("no-such-framework")).await;
    let b = client.acknowledge_batch(ack("no-such-framework")).await;
    let ma = refused(a, Code::NotFound, "unknown framework id");
    let mb = refused(b, Code::NotFound, "unknown framework id");
    assert_eq!(ma, mb);

    // The framework's stream ends: it is disconnected (failing over), not subscribed.
    let id = fw.id.clone();
    drop(fw);
    cluster.wait_until("framework disconnected", |s| {
        s["frameworks"].as_array().is_some_and(|f| {
            f.iter()
                .any(|f| f["id"] == id.as_str() && f["status"] == "disconnected")
        })
    });
    let a = client.accept_batch(accept(&id)).await;
    let b = client.acknowledge_batch(ack(&id)).await;
    let ma = refused(a, Code::FailedPrecondition, "not subscribed");
    let mb = refused(b, Code::FailedPrecondition, "not subscribed");
    assert_eq!(ma, mb);
    // Nothing launched.
    let s = cluster.state();
    assert!(s["tasks"].as_array().is_some_and(|t| t.is_empty()), "{s}");
}
