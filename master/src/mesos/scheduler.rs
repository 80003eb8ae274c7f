//! `POST /api/v1/scheduler`: Mesos's scheduler HTTP API.
//!
//! SUBSCRIBE answers `200` with a RecordIO stream of events (JSON or protobuf, as the
//! `Accept` header asks) and a `Mesos-Stream-Id` header; every other call must carry that
//! header and is answered `202 Accepted` once the service layer took it. A body that is
//! not a call, a call of unknown type or with fields of the wrong type is refused before
//! the service layer sees it, so nothing changes.

use std::sync::{Arc, Mutex};

use agora_mesos::schema::scheduler as s;
use agora_mesos::translate::scheduler::{
    SchedulerCall, call_to_agora, event_to_mesos, master_info,
};
use agora_mesos::{Format, Refusal, recordio};
use agora_proto::v1;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::{MesosState, header_text, host_and_port, refusal_of, refuse};
use crate::actor::Command;
use crate::auth::Caller;
use crate::grpc::ClosingStream;

pub const STREAM_ID_HEADER: &str = "Mesos-Stream-Id";
/// The streaming media type newer Mesos clients accept, with `Message-Accept`.
const RECORDIO: &str = "application/recordio";

pub async fn call(
    State(st): State<MesosState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = caller.map(|Extension(c)| c).unwrap_or_default();
    match answer(&st, &caller, &headers, &body).await {
        Ok(r) => r,
        Err(r) => refuse(r),
    }
}

async fn answer(
    st: &MesosState,
    caller: &Caller,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Refusal> {
    let format_in = Format::of_content_type(header_text(headers, "content-type"))?;
    // `Accept: application/recordio` (newer Mesos clients) names the records' format in
    // `Message-Accept`.
    let recordio = header_text(headers, "accept").is_some_and(|a| {
        a.split(',')
            .any(|t| t.split(';').next().unwrap_or("").trim() == RECORDIO)
    });
    let format_out = if recordio {
        Format::of_accept(header_text(headers, "message-accept"))?
    } else {
        Format::of_accept(header_text(headers, "accept"))?
    };
    let call: s::Call = format_in.decode(body)?;
    let call = call_to_agora(&call)?;
    let stream_id = header_text(headers, STREAM_ID_HEADER);
    if let SchedulerCall::Subscribe(request) = call {
        if stream_id.is_some() {
            return Err(Refusal::bad_request(format!(
                "Subscribe calls should not include the '{STREAM_ID_HEADER}' header"
            )));
        }
        return subscribe(st, caller, headers, request, format_out, recordio).await;
    }
    check_stream(st, call.framework_id(), stream_id)?;
    let svc = &st.service;
    let done = match call {
        SchedulerCall::Subscribe(_) => unreachable!("answered above"),
        SchedulerCall::Teardown(r) => svc.teardown(caller, r).await,
        SchedulerCall::Accept(r) => svc.accept(caller, r).await.map(|_| ()),
        SchedulerCall::Decline(r) => svc.decline(caller, r).await,
        SchedulerCall::Revive(r) => svc.revive(caller, r).await,
        SchedulerCall::Suppress(r) => svc.suppress(caller, r).await,
        SchedulerCall::Kill(r) => svc.kill(caller, r).await,
        SchedulerCall::Shutdown(r) => svc.shutdown(caller, r).await,
        SchedulerCall::Acknowledge(r) => svc.acknowledge(caller, r).await,
        SchedulerCall::Reconcile(r) => svc.reconcile(caller, r).await,
        SchedulerCall::Message(r) => svc.message(caller, r).await,
        SchedulerCall::UpdateFramework(r) => svc.update_framework(caller, r).await,
        // Nothing to change; the stream check above showed the framework subscribed.
        SchedulerCall::NoChange { .. } => Ok(()),
    };
    done.map_err(|e| refusal_of(&e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// A non-SUBSCRIBE call must carry the stream id of its framework's current stream.
fn check_stream(st: &MesosState, framework_id: &str, got: Option<&str>) -> Result<(), Refusal> {
    let Some(got) = got else {
        return Err(Refusal::bad_request(format!(
            "All non-subscribe calls should include the '{STREAM_ID_HEADER}' header"
        )));
    };
    let current = st
        .streams
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(framework_id)
        .cloned();
    match current {
        None => Err(Refusal::forbidden(format!(
            "Framework '{}' is not subscribed on a Mesos stream of this master",
            agora_mesos::json::quote(framework_id)
        ))),
        Some(current) if current != got => Err(Refusal::bad_request(format!(
            "The stream ID '{}' included in this request didn't match the stream ID currently associated with framework ID '{}'",
            agora_mesos::json::quote(got),
            agora_mesos::json::quote(framework_id)
        ))),
        Some(_) => Ok(()),
    }
}

/// Forgets a framework's stream id when its stream ends, unless a newer one replaced it.
struct StreamGuard {
    streams: Arc<Mutex<std::collections::HashMap<String, String>>>,
    framework_id: String,
    stream_id: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if streams.get(&self.framework_id) == Some(&self.stream_id) {
            streams.remove(&self.framework_id);
        }
    }
}

async fn subscribe(
    st: &MesosState,
    caller: &Caller,
    headers: &HeaderMap,
    request: v1::SubscribeRequest,
    format: Format,
    recordio: bool,
) -> Result<Response, Refusal> {
    let sub = st
        .service
        .subscribe(caller, request)
        .await
        .map_err(|e| refusal_of(&e))?;
    let stream_id = uuid::Uuid::new_v4().to_string();
    st.streams
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(sub.framework_id.clone(), stream_id.clone());
    let guard = StreamGuard {
        streams: st.streams.clone(),
        framework_id: sub.framework_id.clone(),
        stream_id: stream_id.clone(),
    };
    let (host, port) = host_and_port(headers);
    let ip = host
        .parse()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let master = master_info("", &host, ip, port);
    let events = ClosingStream::new(
        sub.events,
        st.service.handle().clone(),
        Command::FrameworkStreamClosed {
            framework_id: sub.framework_id,
            epoch: sub.epoch,
        },
    );
    // The stream ends after an error (the master closed the subscription): Mesos tells
    // it as an ERROR event.
    let body =
        events
            .scan(false, |ended, item| {
                if *ended {
                    return futures::future::ready(None);
                }
                let event = match item {
                    Ok(e) => e,
                    Err(status) => {
                        *ended = true;
                        v1::Event {
                            event: Some(v1::event::Event::Error(v1::event::Error {
                                message: status.message().to_string(),
                            })),
                        }
                    }
                };
                futures::future::ready(Some(event))
            })
            .filter_map(move |e| {
                let _keep = &guard;
                futures::future::ready(event_to_mesos(&e, &master).map(|m| {
                    Ok::<_, std::convert::Infallible>(recordio::encode(&format.encode(&m)))
                }))
            });
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    let message_type = HeaderValue::from_static(format.content_type());
    if recordio {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(RECORDIO));
        h.insert("Message-Content-Type", message_type);
    } else {
        h.insert(header::CONTENT_TYPE, message_type);
    }
    if let Ok(v) = HeaderValue::from_str(&stream_id) {
        h.insert(STREAM_ID_HEADER, v);
    }
    Ok(response)
}
