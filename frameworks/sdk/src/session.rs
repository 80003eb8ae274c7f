//! The driver's decision logic, kept free of sockets so it can be unit-tested: turning a
//! wire [`Event`] into a step, dispatching a step to the scheduler (callback first, then the
//! acknowledgement), collecting the acknowledgements of a burst of events for one
//! `AcknowledgeBatch` call, the reconnection backoff, master-address normalisation, and
//! which subscribe failures are worth retrying.
//!
//! This module must never open a connection or sleep; `driver` does the I/O and asks this
//! module what to do.

use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use agora_proto::v1::event::{self, Event as Ev};
use agora_proto::v1::{AcknowledgeRequest, Event, Offer, TaskStatus};

use crate::driver::Driver;
use crate::scheduler::{Scheduler, Subscribed};

/// One decoded event, ready to dispatch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Subscribed(Subscribed),
    Offers(Vec<Offer>),
    Rescinded {
        offer_id: String,
        reason: String,
    },
    /// A status update and, when it carries a uuid, the acknowledgement to send after the
    /// callback returns.
    Update {
        status: TaskStatus,
        ack: Option<AcknowledgeRequest>,
    },
    Message {
        agent_id: String,
        executor_id: String,
        data: Vec<u8>,
    },
    Failure {
        agent_id: String,
        executor_id: String,
        exit_code: Option<i32>,
    },
    /// The master ends the subscription; terminal for the driver.
    Error(String),
    Heartbeat,
    /// Nothing to do (an event with no payload, or an UPDATE without a status).
    Ignore(&'static str),
}

/// Why a stream has to be abandoned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolError(pub String);

/// Per-stream state: what the driver knows about the subscription this stream carries.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    master_address: String,
    /// The id the subscription was requested with (None: a new framework).
    requested_id: Option<String>,
    /// The id SUBSCRIBED gave; None until then.
    framework_id: Option<String>,
}

impl Session {
    pub(crate) fn new(master_address: &str, requested_id: Option<String>) -> Session {
        Session {
            master_address: master_address.to_string(),
            requested_id: requested_id.filter(|id| !id.is_empty()),
            framework_id: None,
        }
    }

    pub(crate) fn framework_id(&self) -> Option<&str> {
        self.framework_id.as_deref()
    }

    /// Classify one event. The first event of a stream must be SUBSCRIBED with a non-empty
    /// framework id; anything else is a protocol error (the stream is dropped and the
    /// driver reconnects).
    pub(crate) fn handle(&mut self, event: Event) -> Result<Step, ProtocolError> {
        let Some(ev) = event.event else {
            return Ok(Step::Ignore("event without payload"));
        };
        if self.framework_id.is_none() && !matches!(ev, Ev::Subscribed(_) | Ev::Error(_)) {
            return Err(ProtocolError(format!(
                "first event was {} instead of SUBSCRIBED",
                event_name(&ev)
            )));
        }
        Ok(match ev {
            Ev::Subscribed(s) => return self.on_subscribed(s),
            // An ERROR, even before SUBSCRIBED, is the master's final word: pass it on.
            Ev::Error(e) => Step::Error(e.message),
            Ev::Offers(o) => Step::Offers(o.offers),
            Ev::Rescind(r) => Step::Rescinded {
                offer_id: r.offer_id,
                reason: r.reason,
            },
            Ev::Update(u) => match u.status {
                None => Step::Ignore("UPDATE without a status"),
                Some(status) => {
                    let ack = (!status.uuid.is_empty()).then(|| AcknowledgeRequest {
                        framework_id: self.framework_id.clone().unwrap_or_default(),
                        agent_id: status.agent_id.clone(),
                        task_id: status.task_id.clone(),
                        uuid: status.uuid.clone(),
                    });
                    Step::Update { status, ack }
                }
            },
            Ev::Message(m) => Step::Message {
                agent_id: m.agent_id,
                executor_id: m.executor_id,
                data: m.data,
            },
            Ev::Failure(f) => Step::Failure {
                agent_id: f.agent_id,
                executor_id: f.executor_id,
                exit_code: f.exit_code,
            },
            Ev::Heartbeat(_) => Step::Heartbeat,
        })
    }

    fn on_subscribed(&mut self, s: event::Subscribed) -> Result<Step, ProtocolError> {
        if s.framework_id.is_empty() {
            return Err(ProtocolError(
                "SUBSCRIBED event carries no framework id".into(),
            ));
        }
        if let Some(requested) = &self.requested_id
            && *requested != s.framework_id
        {
            tracing::warn!(
                requested = %requested,
                given = %s.framework_id,
                "master assigned a different framework id than the one re-subscribed with"
            );
        }
        let resubscribed = self.requested_id.as_deref() == Some(s.framework_id.as_str());
        let secs = s.heartbeat_interval_seconds;
        let heartbeat_interval = if secs.is_finite() && secs > 0.0 {
            Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO)
        } else {
            Duration::ZERO
        };
        self.framework_id = Some(s.framework_id.clone());
        Ok(Step::Subscribed(Subscribed {
            framework_id: s.framework_id,
            master_id: s.master_id,
            master_address: self.master_address.clone(),
            heartbeat_interval,
            resubscribed,
        }))
    }
}

fn event_name(ev: &Ev) -> &'static str {
    match ev {
        Ev::Subscribed(_) => "SUBSCRIBED",
        Ev::Offers(_) => "OFFERS",
        Ev::Rescind(_) => "RESCIND",
        Ev::Update(_) => "UPDATE",
        Ev::Message(_) => "MESSAGE",
        Ev::Failure(_) => "FAILURE",
        Ev::Error(_) => "ERROR",
        Ev::Heartbeat(_) => "HEARTBEAT",
    }
}

/// Sends acknowledgements. The driver's implementation calls the master; tests record.
pub(crate) trait Acknowledger {
    fn acknowledge(&self, ack: AcknowledgeRequest) -> impl Future<Output = ()> + Send;
}

/// Most acknowledgements in one `AcknowledgeBatch` call (the master refuses larger calls).
pub(crate) const MAX_ACKS_PER_CALL: usize = 10_000;

/// The acknowledgements of the events read in one go: `dispatch` queues each after its
/// callback; the driver sends them in one `AcknowledgeBatch` once no further event is
/// ready or [`MAX_ACKS_PER_CALL`] are queued (so a burst of updates costs one call, and
/// an update that arrives alone is acknowledged at once, as before).
#[derive(Debug, Default)]
pub(crate) struct AckQueue {
    // Locked only to push or take, never across an await.
    acks: Mutex<Vec<AcknowledgeRequest>>,
}

impl AckQueue {
    /// Everything queued, oldest first; the queue is empty afterwards.
    pub(crate) fn take(&self) -> Vec<AcknowledgeRequest> {
        self.acks
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.acks.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Whether the driver should send now rather than read another ready event first.
    pub(crate) fn is_full(&self) -> bool {
        self.len() >= MAX_ACKS_PER_CALL
    }
}

impl Acknowledger for AckQueue {
    async fn acknowledge(&self, ack: AcknowledgeRequest) {
        if let Ok(mut acks) = self.acks.lock() {
            acks.push(ack);
        }
    }
}

/// The output of `fut` if it is ready at the first poll; otherwise `None` (and `fut` is
/// dropped, so it must be cancel-safe, as reading a tonic stream's next message is).
pub(crate) async fn ready_now<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(v) => Poll::Ready(Some(v)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// What the driver does after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// The master ended the subscription with this error.
    MasterError(String),
    /// `Driver::stop` was called (possibly by the callback just run).
    Stopped,
}

/// Run one step: call the scheduler, then (for an update with a uuid) acknowledge it —
/// always in that order, and even when the callback asked the driver to stop, so the agent
/// does not resend an update the scheduler has already seen.
pub(crate) async fn dispatch<S: Scheduler, A: Acknowledger>(
    scheduler: &mut S,
    driver: &Driver,
    acker: &A,
    step: Step,
) -> Flow {
    match step {
        Step::Subscribed(info) => scheduler.subscribed(driver, info).await,
        Step::Offers(offers) => scheduler.offers(driver, offers).await,
        Step::Rescinded { offer_id, reason } => scheduler.rescinded(driver, offer_id, reason).await,
        Step::Update { status, ack } => {
            scheduler.status_update(driver, status).await;
            if let Some(ack) = ack {
                acker.acknowledge(ack).await;
            }
        }
        Step::Message {
            agent_id,
            executor_id,
            data,
        } => scheduler.message(driver, agent_id, executor_id, data).await,
        Step::Failure {
            agent_id,
            executor_id,
            exit_code,
        } => {
            scheduler
                .failure(driver, agent_id, executor_id, exit_code)
                .await
        }
        Step::Error(message) => {
            scheduler.error(driver, message.clone()).await;
            return Flow::MasterError(message);
        }
        Step::Heartbeat => {}
        Step::Ignore(why) => tracing::debug!(why, "ignoring event"),
    }
    if driver.is_stopped() {
        Flow::Stopped
    } else {
        Flow::Continue
    }
}

/// Bounded exponential backoff: `min`, `2·min`, `4·min`, ... capped at `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The delay to wait now; the following one doubles, up to `max`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        d
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Turn a master address as an operator writes it (`host:port`, `http://host:port`) into
/// a URI tonic accepts. Only `http` and `https` schemes are allowed.
pub fn normalize_address(address: &str) -> Result<String, String> {
    let a = address.trim();
    if a.is_empty() {
        return Err("empty address".into());
    }
    let uri = if let Some((scheme, rest)) = a.split_once("://") {
        if scheme != "http" && scheme != "https" {
            return Err(format!("unsupported scheme {scheme:?} (use http or https)"));
        }
        if rest.is_empty() {
            return Err("no host".into());
        }
        a.to_string()
    } else {
        format!("http://{a}")
    };
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or_default();
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err("no host".into());
    }
    match uri.parse::<tonic::transport::Uri>() {
        Ok(_) => Ok(uri.trim_end_matches('/').to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The metadata key a master that is not the leader names the leader in (`HOST:PORT`).
pub const LEADER_METADATA: &str = "agora-leader";

/// The leader a refusal from master `from` (an address as `masters` hold it) names, as a
/// URI in the same scheme as `from`. `None`: not a "not the leader" refusal.
pub fn leader_named_by(status: &tonic::Status, from: &str) -> Option<String> {
    let named = status.metadata().get(LEADER_METADATA)?.to_str().ok()?;
    let scheme = if from.starts_with("https://") {
        "https://"
    } else {
        "http://"
    };
    normalize_address(&format!("{scheme}{named}")).ok()
}

/// Whether a failed `Subscribe` should be retried (possibly on another master), or is the
/// master's final word.
pub(crate) fn subscribe_error_is_retryable(code: tonic::Code) -> bool {
    use tonic::Code::*;
    match code {
        // Transport trouble, overload, a master that is not (yet) leading.
        Unavailable | Unknown | Internal | DeadlineExceeded | ResourceExhausted | Aborted
        | Cancelled | Ok => true,
        // The request itself is wrong or not allowed, or the framework is gone: retrying
        // the same subscription cannot succeed.
        InvalidArgument | NotFound | AlreadyExists | PermissionDenied | FailedPrecondition
        | OutOfRange | Unimplemented | DataLoss | Unauthenticated => false,
    }
}

/// How long the driver waits for the next event before declaring the stream dead: three
/// missed heartbeats (plus a second of slack). `None` when the master sends no heartbeats.
pub(crate) fn heartbeat_deadline(interval: Duration) -> Option<Duration> {
    if interval.is_zero() {
        None
    } else {
        Some(interval.saturating_mul(3) + Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn subscribed(id: &str) -> Event {
        Event {
            event: Some(Ev::Subscribed(event::Subscribed {
                framework_id: id.into(),
                heartbeat_interval_seconds: 15.0,
                master_id: "m1".into(),
            })),
        }
    }

    fn update(task: &str, uuid: &str) -> Event {
        Event {
            event: Some(Ev::Update(event::Update {
                status: Some(TaskStatus {
                    task_id: task.into(),
                    agent_id: "a1".into(),
                    uuid: uuid.into(),
                    ..Default::default()
                }),
            })),
        }
    }

    #[test]
    fn first_event_must_be_subscribed() {
        let mut s = Session::new("http://m:5050", None);
        assert!(s.handle(update("t", "u")).is_err());
        let mut s = Session::new("http://m:5050", None);
        let hb = Event {
            event: Some(Ev::Heartbeat(event::Heartbeat {})),
        };
        assert!(s.handle(hb).is_err());
    }

    #[test]
    fn error_before_subscribed_is_passed_on() {
        let mut s = Session::new("http://m:5050", None);
        let e = Event {
            event: Some(Ev::Error(event::Error {
                message: "framework torn down".into(),
            })),
        };
        assert_eq!(s.handle(e), Ok(Step::Error("framework torn down".into())));
    }

    #[test]
    fn subscribed_sets_framework_id_and_flags() {
        let mut s = Session::new("http://m:5050", None);
        let Ok(Step::Subscribed(info)) = s.handle(subscribed("fw-1")) else {
            panic!("expected Subscribed");
        };
        assert_eq!(info.framework_id, "fw-1");
        assert_eq!(info.master_id, "m1");
        assert_eq!(info.master_address, "http://m:5050");
        assert_eq!(info.heartbeat_interval, Duration::from_secs(15));
        assert!(!info.resubscribed);
        assert_eq!(s.framework_id(), Some("fw-1"));

        let mut s = Session::new("http://m:5050", Some("fw-1".into()));
        let Ok(Step::Subscribed(info)) = s.handle(subscribed("fw-1")) else {
            panic!("expected Subscribed");
        };
        assert!(info.resubscribed);
    }

    #[test]
    fn subscribed_without_id_is_a_protocol_error() {
        let mut s = Session::new("x", None);
        assert!(s.handle(subscribed("")).is_err());
    }

    #[test]
    fn weird_heartbeat_intervals_mean_none() {
        for v in [f64::NAN, -1.0, 0.0, f64::INFINITY] {
            let mut s = Session::new("x", None);
            let e = Event {
                event: Some(Ev::Subscribed(event::Subscribed {
                    framework_id: "f".into(),
                    heartbeat_interval_seconds: v,
                    master_id: String::new(),
                })),
            };
            let Ok(Step::Subscribed(info)) = s.handle(e) else {
                panic!("expected Subscribed");
            };
            assert_eq!(info.heartbeat_interval, Duration::ZERO, "{v}");
        }
    }

    #[test]
    fn update_with_uuid_carries_ack_and_without_does_not() {
        let mut s = Session::new("x", None);
        s.handle(subscribed("fw-1")).unwrap();
        let Ok(Step::Update { ack, .. }) = s.handle(update("t1", "u1")) else {
            panic!("expected Update");
        };
        assert_eq!(
            ack,
            Some(AcknowledgeRequest {
                framework_id: "fw-1".into(),
                agent_id: "a1".into(),
                task_id: "t1".into(),
                uuid: "u1".into(),
            })
        );
        let Ok(Step::Update { ack, .. }) = s.handle(update("t1", "")) else {
            panic!("expected Update");
        };
        assert_eq!(ack, None);
    }

    #[test]
    fn empty_and_statusless_events_are_ignored() {
        let mut s = Session::new("x", None);
        s.handle(subscribed("fw-1")).unwrap();
        assert!(matches!(
            s.handle(Event { event: None }),
            Ok(Step::Ignore(_))
        ));
        let e = Event {
            event: Some(Ev::Update(event::Update { status: None })),
        };
        assert!(matches!(s.handle(e), Ok(Step::Ignore(_))));
    }

    // ---- dispatch ordering -------------------------------------------------------------

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<String>>>);
    impl Log {
        fn push(&self, s: String) {
            self.0.lock().unwrap().push(s);
        }
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    struct Recorder {
        log: Log,
        stop_on_update: bool,
    }

    impl Scheduler for Recorder {
        async fn subscribed(&mut self, _d: &Driver, info: Subscribed) {
            self.log.push(format!("subscribed {}", info.framework_id));
        }
        async fn offers(&mut self, _d: &Driver, offers: Vec<Offer>) {
            self.log.push(format!("offers {}", offers.len()));
        }
        async fn status_update(&mut self, d: &Driver, status: TaskStatus) {
            // Yield so a wrongly ordered ack would get the chance to run first.
            tokio::task::yield_now().await;
            self.log.push(format!("update {}", status.task_id));
            if self.stop_on_update {
                d.stop();
            }
        }
        async fn error(&mut self, _d: &Driver, message: String) {
            self.log.push(format!("error {message}"));
        }
    }

    struct RecordingAcker(Log);
    impl Acknowledger for RecordingAcker {
        async fn acknowledge(&self, ack: AcknowledgeRequest) {
            self.0.push(format!("ack {} {}", ack.task_id, ack.uuid));
        }
    }

    fn test_driver() -> Driver {
        Driver::new(crate::DriverConfig::new(vec!["127.0.0.1:1".into()]))
    }

    #[tokio::test]
    async fn updates_are_acknowledged_after_the_callback_in_event_order() {
        let log = Log::default();
        let mut sched = Recorder {
            log: log.clone(),
            stop_on_update: false,
        };
        let acker = RecordingAcker(log.clone());
        let driver = test_driver();
        let mut s = Session::new("x", None);
        let events = vec![
            subscribed("fw-1"),
            update("t1", "u1"),
            update("t2", ""),
            update("t3", "u3"),
        ];
        for e in events {
            let step = s.handle(e).unwrap();
            assert_eq!(
                dispatch(&mut sched, &driver, &acker, step).await,
                Flow::Continue
            );
        }
        assert_eq!(
            log.take(),
            vec![
                "subscribed fw-1",
                "update t1",
                "ack t1 u1",
                "update t2",
                "update t3",
                "ack t3 u3"
            ]
        );
    }

    #[tokio::test]
    async fn stop_from_a_callback_still_acknowledges_then_stops() {
        let log = Log::default();
        let mut sched = Recorder {
            log: log.clone(),
            stop_on_update: true,
        };
        let acker = RecordingAcker(log.clone());
        let driver = test_driver();
        let mut s = Session::new("x", None);
        let step = s.handle(subscribed("fw-1")).unwrap();
        assert_eq!(
            dispatch(&mut sched, &driver, &acker, step).await,
            Flow::Continue
        );
        let step = s.handle(update("t1", "u1")).unwrap();
        assert_eq!(
            dispatch(&mut sched, &driver, &acker, step).await,
            Flow::Stopped
        );
        assert_eq!(
            log.take(),
            vec!["subscribed fw-1", "update t1", "ack t1 u1"]
        );
    }

    #[tokio::test]
    async fn master_error_calls_error_and_ends() {
        let log = Log::default();
        let mut sched = Recorder {
            log: log.clone(),
            stop_on_update: false,
        };
        let acker = RecordingAcker(log.clone());
        let driver = test_driver();
        let flow = dispatch(
            &mut sched,
            &driver,
            &acker,
            Step::Error("framework fw-1 torn down".into()),
        )
        .await;
        assert_eq!(flow, Flow::MasterError("framework fw-1 torn down".into()));
        assert_eq!(log.take(), vec!["error framework fw-1 torn down"]);
    }

    // ---- backoff, addresses, error classes --------------------------------------------

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let got: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(got, vec![500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn backoff_with_max_below_min_uses_min() {
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(2));
        assert_eq!(b.next_delay(), Duration::from_secs(2));
    }

    #[test]
    fn addresses_are_normalised() {
        assert_eq!(
            normalize_address("127.0.0.1:5050").as_deref(),
            Ok("http://127.0.0.1:5050")
        );
        assert_eq!(
            normalize_address(" http://master.example:5050/ ").as_deref(),
            Ok("http://master.example:5050")
        );
        assert_eq!(
            normalize_address("https://m:443").as_deref(),
            Ok("https://m:443")
        );
        assert!(normalize_address("").is_err());
        assert!(normalize_address("ftp://m:1").is_err());
        assert!(normalize_address("http://").is_err());
        assert!(normalize_address("bad host:1").is_err());
    }

    #[test]
    fn only_transient_subscribe_failures_are_retried() {
        assert!(subscribe_error_is_retryable(tonic::Code::Unavailable));
        assert!(subscribe_error_is_retryable(tonic::Code::DeadlineExceeded));
        assert!(!subscribe_error_is_retryable(tonic::Code::InvalidArgument));
        assert!(!subscribe_error_is_retryable(tonic::Code::PermissionDenied));
        assert!(!subscribe_error_is_retryable(tonic::Code::NotFound));
    }

    #[test]
    fn heartbeat_deadline_is_three_intervals_plus_slack() {
        assert_eq!(heartbeat_deadline(Duration::ZERO), None);
        assert_eq!(
            heartbeat_deadline(Duration::from_secs(15)),
            Some(Duration::from_secs(46))
        );
    }

    #[tokio::test]
    async fn a_burst_is_acknowledged_together_after_every_callback() {
        let log = Log::default();
        let mut sched = Recorder {
            log: log.clone(),
            stop_on_update: false,
        };
        let queue = AckQueue::default();
        let driver = test_driver();
        let mut s = Session::new("x", None);
        for e in [
            subscribed("fw-1"),
            update("t1", "u1"),
            update("t2", ""),
            update("t3", "u3"),
        ] {
            let step = s.handle(e).unwrap();
            assert_eq!(
                dispatch(&mut sched, &driver, &queue, step).await,
                Flow::Continue
            );
        }
        // Every callback ran; the two acknowledgements wait, in event order.
        assert_eq!(
            log.take(),
            vec!["subscribed fw-1", "update t1", "update t2", "update t3"]
        );
        assert_eq!(queue.len(), 2);
        assert!(!queue.is_full());
        let acks = queue.take();
        let ids: Vec<(&str, &str, &str)> = acks
            .iter()
            .map(|a| (a.framework_id.as_str(), a.task_id.as_str(), a.uuid.as_str()))
            .collect();
        assert_eq!(ids, [("fw-1", "t1", "u1"), ("fw-1", "t3", "u3")]);
        assert_eq!(queue.len(), 0);
    }

    #[tokio::test]
    async fn ready_now_polls_once() {
        assert_eq!(ready_now(async { 7 }).await, Some(7));
        assert_eq!(ready_now(std::future::pending::<u8>()).await, None);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u8>(1);
        assert_eq!(ready_now(rx.recv()).await, None);
        tx.send(3).await.unwrap();
        assert_eq!(ready_now(rx.recv()).await, Some(Some(3)));
    }
}
