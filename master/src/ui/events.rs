//! `GET /api/v1/events`: the operator event stream as server-sent events, for the web UI,
//! `agora events` and scripts. Each protocol event of the actor's subscriber queue (the
//! one the gRPC `Subscribe` reads, filtered by the same view ACLs) becomes one SSE event
//! rendered by `agora_views::events`; a `stats` event (counters and totals) opens the
//! stream and repeats every `stats_interval_ms`.
//!
//! Query: `snapshot` (default true: the first event is the whole visible state, taken in
//! the same actor step the subscription starts, so snapshot + events is consistent),
//! `types` (comma-separated event kinds), `framework_id`, `agent_id` (only events about
//! that framework or agent, plus snapshot/stats/error), `stats_interval_ms` (0: only the
//! first). A bad filter is answered 400 before anything subscribes.
//!
//! Owns nothing: a translation of the service's stream. It must never read the actor's
//! state itself, and never block the actor: the subscriber queue is the actor's bounded
//! one, and a client that stops reading is cut off there with a final `error` event.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use agora_views::events::{self as views, EventKind};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde_json::Value;

use crate::auth::Caller;
use crate::service::{Error, Service, quote};

/// Seconds between `stats` events when the client names no interval.
pub const STATS_INTERVAL_DEFAULT_MS: u64 = 2_000;
/// Shortest and longest `stats_interval_ms` (0 aside, which means none after the first).
pub const STATS_INTERVAL_MIN_MS: u64 = 200;
pub const STATS_INTERVAL_MAX_MS: u64 = 600_000;
/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    snapshot: Option<bool>,
    types: Option<String>,
    framework_id: Option<String>,
    agent_id: Option<String>,
    stats_interval_ms: Option<u64>,
}

/// What one client asked for, checked.
#[derive(Debug, PartialEq)]
pub struct EventsFilter {
    pub snapshot: bool,
    /// `None`: every kind.
    pub kinds: Option<BTreeSet<EventKind>>,
    pub framework_id: Option<String>,
    pub agent_id: Option<String>,
    /// `None`: one `stats` event at the start only.
    pub stats_interval: Option<Duration>,
}

impl EventsFilter {
    pub fn parse(q: EventsQuery) -> Result<EventsFilter, Error> {
        let kinds = match q.types.as_deref() {
            None => None,
            Some(text) => {
                let mut set = BTreeSet::new();
                for name in text.split(',').map(str::trim) {
                    let kind = EventKind::from_name(name).ok_or_else(|| {
                        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
                        Error::invalid(format!(
                            "unknown event type '{}' in types; known: {}",
                            quote(name),
                            known.join(", ")
                        ))
                    })?;
                    set.insert(kind);
                }
                Some(set)
            }
        };
        for (what, id) in [("framework id", &q.framework_id), ("agent id", &q.agent_id)] {
            if let Some(id) = id {
                crate::validate::id(what, id)?;
            }
        }
        let stats_interval = match q.stats_interval_ms.unwrap_or(STATS_INTERVAL_DEFAULT_MS) {
            0 => None,
            ms if (STATS_INTERVAL_MIN_MS..=STATS_INTERVAL_MAX_MS).contains(&ms) => {
                Some(Duration::from_millis(ms))
            }
            ms => {
                return Err(Error::invalid(format!(
                    "stats_interval_ms {ms}: give 0 (none) or {STATS_INTERVAL_MIN_MS} to {STATS_INTERVAL_MAX_MS}"
                )));
            }
        };
        Ok(EventsFilter {
            snapshot: q.snapshot.unwrap_or(true),
            kinds,
            framework_id: q.framework_id,
            agent_id: q.agent_id,
            stats_interval,
        })
    }

    fn wants_kind(&self, kind: EventKind) -> bool {
        kind == EventKind::Error || self.kinds.as_ref().is_none_or(|k| k.contains(&kind))
    }

    /// Whether an event of `kind` with `payload` goes to this client.
    pub fn wants(&self, kind: EventKind, payload: &Value) -> bool {
        if !self.wants_kind(kind) {
            return false;
        }
        let (framework, agent) = views::event_subjects(kind, payload);
        let task = matches!(kind, EventKind::TaskAdded | EventKind::TaskUpdated);
        let of_framework = task
            || matches!(
                kind,
                EventKind::FrameworkAdded
                    | EventKind::FrameworkUpdated
                    | EventKind::FrameworkRemoved
            );
        let of_agent = task
            || matches!(
                kind,
                EventKind::AgentAdded | EventKind::AgentUpdated | EventKind::AgentRemoved
            );
        // Stream-wide events (snapshot, stats, error) always pass; an event of the other
        // family (an agent's when filtering by framework) never does.
        let keeps =
            |want: &Option<String>, subject: Option<&str>, of_kind: bool, other: bool| match want {
                None => true,
                Some(w) if of_kind => subject == Some(w.as_str()),
                Some(_) => !other,
            };
        keeps(&self.framework_id, framework, of_framework, of_agent)
            && keeps(&self.agent_id, agent, of_agent, of_framework)
    }
}

fn sse(kind: EventKind, payload: &Value) -> SseEvent {
    SseEvent::default()
        .event(kind.name())
        .data(payload.to_string())
}

/// The `stats` payload from the master's counters and gauges.
pub fn stats_of(master_id: &str, m: &crate::actor::MetricsSnapshot) -> views::Stats {
    let (cycles, seconds) = m.metrics.cycles();
    let counts = |map: &std::collections::BTreeMap<&'static str, u64>| {
        map.iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<Vec<_>>()
    };
    views::Stats {
        master_id: master_id.to_string(),
        offers_sent: m.metrics.offers_sent,
        offers_accepted: m.metrics.offers_accepted,
        offers_declined: m.metrics.offers_declined,
        offers_rescinded: m.metrics.offers_rescinded,
        offers_outstanding: m.gauges.offers_outstanding,
        tasks_launched: m.metrics.tasks_launched,
        status_updates: m.metrics.status_updates,
        allocation_cycles: cycles,
        allocation_seconds_sum: seconds,
        agents_by_status: counts(&m.gauges.agents_by_status),
        frameworks_by_status: counts(&m.gauges.frameworks_by_status),
        tasks_by_state: counts(&m.gauges.tasks_by_state),
        resources: m
            .gauges
            .resources
            .iter()
            .map(|(kind, total, allocated, offered)| views::ResourceTotals {
                kind: kind.clone(),
                total: *total,
                allocated: *allocated,
                offered: *offered,
            })
            .collect(),
        roles: m
            .gauges
            .role_shares
            .iter()
            .map(|(role, share, weight)| views::RoleShare {
                role: role.clone(),
                dominant_share: *share,
                weight: *weight,
            })
            .collect(),
    }
}

type EventStream = Pin<
    Box<dyn Stream<Item = Result<agora_proto::v1::OperatorEvent, crate::service::Error>> + Send>,
>;

struct Feed {
    service: Service,
    events: EventStream,
    filter: EventsFilter,
    master_id: String,
    /// The first stats event is due at once (after the snapshot); then every interval.
    stats_due: bool,
    /// The snapshot asked for has not been read off the subscriber queue yet.
    awaiting_snapshot: bool,
    tick: Option<tokio::time::Interval>,
    ended: bool,
}

impl Feed {
    async fn stats(&mut self) -> Option<SseEvent> {
        if !self.filter.wants_kind(EventKind::Stats) {
            return None;
        }
        Some(match self.service.metrics().await {
            Ok(m) => sse(
                EventKind::Stats,
                &views::stats_json(&stats_of(&self.master_id, &m)),
            ),
            Err(e) => {
                self.ended = true;
                sse(EventKind::Error, &views::error_json(e.message()))
            }
        })
    }

    /// The next SSE event for the client, or `None` when the stream is over.
    async fn next(&mut self) -> Option<SseEvent> {
        if self.ended {
            return None;
        }
        loop {
            // The first stats event follows the snapshot (when one was asked for).
            if !self.awaiting_snapshot
                && std::mem::take(&mut self.stats_due)
                && let Some(e) = self.stats().await
            {
                return Some(e);
            }
            let tick = async {
                match &mut self.tick {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                item = self.events.next() => match item {
                    None => return None,
                    Some(Err(status)) => {
                        self.ended = true;
                        return Some(sse(EventKind::Error, &views::error_json(status.message())));
                    }
                    Some(Ok(ev)) => {
                        self.awaiting_snapshot = false;
                        let Some((kind, payload)) = ev.event.as_ref().and_then(views::event_json) else {
                            continue;
                        };
                        if self.filter.wants(kind, &payload) {
                            return Some(sse(kind, &payload));
                        }
                    }
                },
                () = tick => {
                    if let Some(e) = self.stats().await {
                        return Some(e);
                    }
                }
            }
        }
    }
}

/// `GET /api/v1/events`.
pub async fn events(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, Error> {
    let Query(q) =
        query.map_err(|r| Error::invalid(format!("invalid query: {}", r.body_text())))?;
    let filter = EventsFilter::parse(q)?;
    let caller = caller.map(|Extension(c)| c).unwrap_or_default();
    let master_id = s.health().await?.master_id;
    let events = s.subscribe_events_from(caller, filter.snapshot).await?;
    let tick = filter.stats_interval.map(|every| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let filter_snapshot = filter.snapshot;
    let feed = Feed {
        service: s,
        events: Box::pin(events),
        filter,
        master_id,
        stats_due: true,
        awaiting_snapshot: filter_snapshot,
        tick,
        ended: false,
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let e = feed.next().await?;
        Some((Ok::<_, Infallible>(e), feed))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(text: &str) -> Result<EventsFilter, Error> {
        let uri: axum::http::Uri = format!("/api/v1/events?{text}").parse().expect("uri");
        let Query(q) =
            Query::<EventsQuery>::try_from_uri(&uri).map_err(|e| Error::invalid(e.body_text()))?;
        EventsFilter::parse(q)
    }

    #[test]
    fn filters_parse_and_bad_ones_are_refused() {
        let f = q("").expect("defaults");
        assert!(f.snapshot && f.kinds.is_none());
        assert_eq!(f.stats_interval, Some(Duration::from_millis(2000)));
        let f = q("snapshot=false&types=task_added,task_updated&stats_interval_ms=0").expect("ok");
        assert!(!f.snapshot && f.stats_interval.is_none());
        assert_eq!(f.kinds.map(|k| k.len()), Some(2));
        for bad in [
            "types=tasks",
            "types=",
            "stats_interval_ms=5",
            "snapshot=maybe",
            "nope=1",
            "agent_id=a/b",
            "stats_interval_ms=-1",
        ] {
            let e = q(bad).expect_err(bad);
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e:?}");
        }
    }

    #[test]
    fn events_are_kept_by_kind_and_subject() {
        let f = q("framework_id=f1").expect("ok");
        let task = json!({"framework_id": "f1", "agent_id": "a1"});
        let other = json!({"framework_id": "f2", "agent_id": "a1"});
        assert!(f.wants(EventKind::TaskUpdated, &task));
        assert!(!f.wants(EventKind::TaskUpdated, &other));
        assert!(f.wants(EventKind::FrameworkAdded, &json!({"id": "f1"})));
        assert!(!f.wants(EventKind::FrameworkRemoved, &json!({"framework_id": "f2"})));
        assert!(!f.wants(EventKind::AgentUpdated, &json!({"id": "a1"})));
        assert!(f.wants(EventKind::Stats, &json!({})));
        let a = q("agent_id=a1&types=agent_updated,task_added").expect("ok");
        assert!(a.wants(EventKind::AgentUpdated, &json!({"id": "a1"})));
        assert!(!a.wants(EventKind::AgentUpdated, &json!({"id": "a2"})));
        assert!(a.wants(EventKind::TaskAdded, &task));
        assert!(!a.wants(EventKind::TaskUpdated, &task), "not a chosen type");
        assert!(!a.wants(EventKind::FrameworkAdded, &json!({"id": "f1"})));
        assert!(a.wants(EventKind::Error, &json!({})), "errors always pass");
    }
}
