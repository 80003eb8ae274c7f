//! The driver's batched calls against a scripted master (a real tonic `Scheduler` server on
//! loopback): a burst of status updates is acknowledged with `AcknowledgeBatch` after every
//! callback ran, in event order; a master without the batch call gets one `Acknowledge`
//! per update; `accept_batch` reports each item's outcome by index.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agora_proto::v1::event::{self, Event as Ev};
use agora_proto::v1::scheduler_server::{Scheduler as SchedulerApi, SchedulerServer};
use agora_proto::v1::{
    AcceptBatchRequest, AcceptBatchResponse, AcceptRequest, AcceptResponse,
    AcknowledgeBatchRequest, AcknowledgeRequest, BatchResponse, DeclineRequest, Empty, Event,
    FrameworkInfo, KillRequest, MessageRequest, Offer, ReconcileRequest, ReviveRequest,
    ShutdownRequest, SubscribeRequest, SuppressRequest, TaskStatus, TeardownRequest,
    UpdateFrameworkRequest, batch_response,
};
use agora_sdk::{AcceptItem, Driver, DriverConfig, MAX_ACCEPTS_PER_CALL, Scheduler, SdkError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Code, Request, Response, Status};

const FRAMEWORK: &str = "fw-1";

type EventTx = mpsc::Sender<Result<Event, Status>>;

#[derive(Default)]
struct Seen {
    /// Acknowledgements, with the call that carried them (0, 1, ... per batch call).
    batch_calls: usize,
    batched: Vec<AcknowledgeRequest>,
    singles: Vec<AcknowledgeRequest>,
    accept_batches: Vec<AcceptBatchRequest>,
    /// Task ids a deferring scheduler made durable (in `before_acknowledge`).
    durable: Vec<String>,
    /// Acknowledgements that reached the master before their update was durable.
    acked_before_durable: Vec<String>,
    /// `before_acknowledge` calls.
    flushes: usize,
}

struct FakeMaster {
    updates: usize,
    batch_supported: bool,
    seen: Arc<Mutex<Seen>>,
    /// Keeps the event stream open.
    streams: Arc<Mutex<Vec<EventTx>>>,
}

fn update(i: usize) -> Event {
    Event {
        event: Some(Ev::Update(event::Update {
            status: Some(TaskStatus {
                task_id: format!("t{i}"),
                agent_id: "a1".into(),
                framework_id: FRAMEWORK.into(),
                uuid: format!("u{i}"),
                ..Default::default()
            }),
        })),
    }
}

#[tonic::async_trait]
impl SchedulerApi for FakeMaster {
    type SubscribeStream = ReceiverStream<Result<Event, Status>>;

    async fn subscribe(
        &self,
        _: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let (tx, rx) = mpsc::channel(self.updates + 1);
        let subscribed = Event {
            event: Some(Ev::Subscribed(event::Subscribed {
                framework_id: FRAMEWORK.into(),
                heartbeat_interval_seconds: 0.0,
                master_id: "m".into(),
            })),
        };
        // The whole burst is queued before the client reads the first event.
        for e in std::iter::once(subscribed).chain((0..self.updates).map(update)) {
            tx.send(Ok(e))
                .await
                .map_err(|_| Status::internal("closed"))?;
        }
        if let Ok(mut s) = self.streams.lock() {
            s.push(tx);
        }
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn teardown(&self, _: Request<TeardownRequest>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn accept(&self, _: Request<AcceptRequest>) -> Result<Response<AcceptResponse>, Status> {
        Err(Status::unimplemented("accept"))
    }

    async fn accept_batch(
        &self,
        r: Request<AcceptBatchRequest>,
    ) -> Result<Response<AcceptBatchResponse>, Status> {
        let r = r.into_inner();
        // Item 0 launches its task; every other item is refused (its offer is unknown).
        let responses = r
            .accepts
            .iter()
            .enumerate()
            .map(|(i, _)| AcceptResponse {
                launched_task_ids: if i == 0 { vec!["t0".into()] } else { vec![] },
            })
            .collect();
        let refused = (1..r.accepts.len())
            .map(|i| batch_response::Refused {
                index: i as u32,
                code: Code::NotFound as i32,
                message: format!("offer o{i} is not outstanding"),
            })
            .collect();
        if let Ok(mut s) = self.seen.lock() {
            s.accept_batches.push(r);
        }
        Ok(Response::new(AcceptBatchResponse { responses, refused }))
    }

    async fn decline(&self, _: Request<DeclineRequest>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn revive(&self, _: Request<ReviveRequest>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn suppress(&self, _: Request<SuppressRequest>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn kill(&self, _: Request<KillRequest>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn shutdown(&self, _: Request<ShutdownRequest>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn acknowledge(&self, r: Request<AcknowledgeRequest>) -> Result<Response<Empty>, Status> {
        if let Ok(mut s) = self.seen.lock() {
            s.singles.push(r.into_inner());
        }
        Ok(Response::new(Empty {}))
    }

    async fn acknowledge_batch(
        &self,
        r: Request<AcknowledgeBatchRequest>,
    ) -> Result<Response<BatchResponse>, Status> {
        if !self.batch_supported {
            return Err(Status::unimplemented("AcknowledgeBatch"));
        }
        let r = r.into_inner();
        if r.framework_id != FRAMEWORK {
            return Err(Status::not_found("unknown framework"));
        }
        if let Ok(mut s) = self.seen.lock() {
            s.batch_calls += 1;
            let early: Vec<String> = r
                .acks
                .iter()
                .filter(|a| !s.durable.contains(&a.task_id))
                .map(|a| a.task_id.clone())
                .collect();
            s.acked_before_durable.extend(early);
            s.batched.extend(r.acks);
        }
        Ok(Response::new(BatchResponse::default()))
    }

    async fn reconcile(&self, _: Request<ReconcileRequest>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn message(&self, _: Request<MessageRequest>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn update_framework(
        &self,
        _: Request<UpdateFrameworkRequest>,
    ) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }
}

async fn start(updates: usize, batch_supported: bool) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let master = FakeMaster {
        updates,
        batch_supported,
        seen: Arc::clone(&seen),
        streams: Arc::default(),
    };
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(SchedulerServer::new(master))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    (addr, seen)
}

/// Records the task ids of the updates it was given.
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Scheduler for Recorder {
    async fn offers(&mut self, _: &Driver, _: Vec<Offer>) {}

    async fn status_update(&mut self, _: &Driver, status: TaskStatus) {
        if let Ok(mut u) = self.0.lock() {
            u.push(status.task_id);
        }
    }
}

/// Keeps updates in memory in `status_update` and makes them "durable" (into
/// `Seen::durable`) only in `before_acknowledge`, as a framework writing a burst in one
/// transaction does.
struct Deferring {
    pending: Vec<String>,
    seen: Arc<Mutex<Seen>>,
    /// Cannot write: stops the driver instead.
    broken: bool,
}

impl Scheduler for Deferring {
    async fn offers(&mut self, _: &Driver, _: Vec<Offer>) {}

    async fn status_update(&mut self, _: &Driver, status: TaskStatus) {
        self.pending.push(status.task_id);
    }

    async fn before_acknowledge(&mut self, driver: &Driver) {
        if self.broken {
            driver.stop();
            return;
        }
        if let Ok(mut s) = self.seen.lock() {
            s.flushes += 1;
            s.durable.append(&mut self.pending);
        }
    }
}

/// Run a driver against `addr` in the background; its handle and the updates it saw.
fn run_driver(addr: SocketAddr) -> (Driver, Arc<Mutex<Vec<String>>>) {
    let driver = Driver::new(DriverConfig::new(vec![addr.to_string()]));
    let updates = Arc::new(Mutex::new(Vec::new()));
    let scheduler = Recorder(Arc::clone(&updates));
    let running = driver.clone();
    tokio::spawn(async move {
        let info = FrameworkInfo {
            name: "batched".into(),
            ..Default::default()
        };
        let _ = running.run(info, scheduler).await;
    });
    (driver, updates)
}

/// Wait (bounded) until `done` holds of what the master saw.
async fn wait_for(seen: &Mutex<Seen>, what: &str, done: impl Fn(&Seen) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if seen.lock().is_ok_and(|s| done(&s)) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_burst_of_updates_is_acknowledged_in_batches_in_event_order() {
    const N: usize = 300;
    let (addr, seen) = start(N, true).await;
    let (driver, updates) = run_driver(addr);
    wait_for(&seen, "every acknowledgement", |s| s.batched.len() >= N).await;
    driver.stop();
    let s = seen.lock().expect("seen");
    assert!(s.singles.is_empty(), "single Acknowledge calls were made");
    assert_eq!(s.batched.len(), N, "an update acknowledged twice");
    for (i, ack) in s.batched.iter().enumerate() {
        assert_eq!(
            ack.uuid,
            format!("u{i}"),
            "acknowledgements out of event order"
        );
        assert_eq!(ack.task_id, format!("t{i}"));
        assert_eq!(ack.agent_id, "a1");
        assert_eq!(ack.framework_id, FRAMEWORK);
    }
    // The burst was queued before the driver read it: it cannot take one call per update.
    assert!(
        s.batch_calls < N / 2,
        "{} AcknowledgeBatch calls for {N} updates",
        s.batch_calls
    );
    // Every callback ran (acknowledgements only follow callbacks).
    assert_eq!(updates.lock().map(|u| u.len()).unwrap_or(0), N);
}

#[tokio::test]
async fn updates_are_acknowledged_only_after_before_acknowledge_made_them_durable() {
    const N: usize = 300;
    let (addr, seen) = start(N, true).await;
    let driver = Driver::new(DriverConfig::new(vec![addr.to_string()]));
    let scheduler = Deferring {
        pending: Vec::new(),
        seen: Arc::clone(&seen),
        broken: false,
    };
    let running = driver.clone();
    tokio::spawn(async move {
        let info = FrameworkInfo {
            name: "deferring".into(),
            ..Default::default()
        };
        let _ = running.run(info, scheduler).await;
    });
    wait_for(&seen, "every acknowledgement", |s| s.batched.len() >= N).await;
    driver.stop();
    let s = seen.lock().expect("seen");
    assert_eq!(s.batched.len(), N);
    assert!(
        s.acked_before_durable.is_empty(),
        "acknowledged before durable: {:?}",
        s.acked_before_durable
    );
    assert!(
        s.flushes >= 1 && s.flushes <= s.batch_calls,
        "one before_acknowledge per acknowledgement call at most ({} for {} calls)",
        s.flushes,
        s.batch_calls
    );
}

#[tokio::test]
async fn a_scheduler_that_stops_in_before_acknowledge_gets_nothing_acknowledged() {
    const N: usize = 50;
    let (addr, seen) = start(N, true).await;
    let driver = Driver::new(DriverConfig::new(vec![addr.to_string()]));
    let scheduler = Deferring {
        pending: Vec::new(),
        seen: Arc::clone(&seen),
        broken: true,
    };
    let info = FrameworkInfo {
        name: "broken".into(),
        ..Default::default()
    };
    let finished = tokio::time::timeout(Duration::from_secs(10), driver.run(info, scheduler))
        .await
        .expect("the driver stops after the failed before_acknowledge");
    assert!(finished.is_ok(), "{:?}", finished.err());
    let s = seen.lock().expect("seen");
    assert!(
        s.batched.is_empty() && s.singles.is_empty(),
        "{} updates acknowledged that were never durable",
        s.batched.len() + s.singles.len()
    );
}

#[tokio::test]
async fn a_master_without_the_batch_call_gets_single_acknowledgements() {
    const N: usize = 20;
    let (addr, seen) = start(N, false).await;
    let (driver, _updates) = run_driver(addr);
    wait_for(&seen, "every acknowledgement", |s| s.singles.len() >= N).await;
    driver.stop();
    let s = seen.lock().expect("seen");
    let uuids: Vec<&str> = s.singles.iter().map(|a| a.uuid.as_str()).collect();
    let want: Vec<String> = (0..N).map(|i| format!("u{i}")).collect();
    assert_eq!(uuids, want);
}

#[tokio::test]
async fn accept_batch_reports_each_item() {
    let (addr, seen) = start(0, true).await;
    let (driver, _updates) = run_driver(addr);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !driver.is_subscribed() {
        assert!(tokio::time::Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let item = |offer: &str| AcceptItem {
        offer_ids: vec![offer.into()],
        operations: vec![],
        refuse_seconds: Some(1.0),
    };
    let results = driver
        .accept_batch(vec![item("o0"), item("o1"), item("o2")])
        .await
        .expect("the call");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().ok(), Some(&vec!["t0".to_string()]));
    for (i, r) in results.iter().enumerate().skip(1) {
        match r {
            Err(SdkError::Rpc { code, message, .. }) => {
                assert_eq!(*code, Code::NotFound);
                assert_eq!(*message, format!("offer o{i} is not outstanding"));
            }
            other => panic!("item {i}: {other:?}"),
        }
    }
    {
        let s = seen.lock().expect("seen");
        assert_eq!(s.accept_batches.len(), 1);
        let call = &s.accept_batches[0];
        assert_eq!(call.framework_id, FRAMEWORK);
        let offers: Vec<&str> = call
            .accepts
            .iter()
            .map(|a| a.offer_ids[0].as_str())
            .collect();
        assert_eq!(offers, ["o0", "o1", "o2"]);
        assert!(
            call.accepts
                .iter()
                .all(|a| a.filters.as_ref().and_then(|f| f.refuse_seconds) == Some(1.0))
        );
    }
    // Too many items: refused before anything is sent.
    let many = vec![AcceptItem::default(); MAX_ACCEPTS_PER_CALL + 1];
    assert!(matches!(
        driver.accept_batch(many).await,
        Err(SdkError::TooManyItems { .. })
    ));
    assert_eq!(seen.lock().map(|s| s.accept_batches.len()).unwrap_or(0), 1);
    driver.stop();
}
