//! The actor's resource operations: RESERVE, UNRESERVE, CREATE and DESTROY, from a
//! framework's ACCEPT (on offered resources) or from an operator (on an agent's free
//! resources), and the agent resources they leave behind.
//!
//! Owns: the validation rules of the four operations, the conversion each one makes
//! (`from` -> `to`, same amounts), applying conversions to the allocator, the agent's
//! total, the registry and the agent (`CheckpointResources`), and re-applying the
//! recorded reservations and volumes when an agent (re-)registers.
//!
//! Invariants: an agent's total in the master, in the allocator and (once the command
//! arrives) on the agent differ from what the agent reports only by the conversions
//! recorded here; the record per agent (`Master::checkpointed`) is exactly the dynamically
//! reserved and volume entries of its total. Must never: change anything before every
//! operation of a call validated, unreserve a static reservation, or destroy a volume a
//! live task uses.

use crate::service::Error;
use agora_proto::v1;
use agora_resources::{ReservationKind, Resource, Resources};
use tracing::{info, warn};

use super::Master;
use crate::registry::RegistryOp;

/// The four resource operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Reserve,
    Unreserve,
    Create,
    Destroy,
}

impl OpKind {
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Reserve => "RESERVE",
            OpKind::Unreserve => "UNRESERVE",
            OpKind::Create => "CREATE",
            OpKind::Destroy => "DESTROY",
        }
    }
}

/// Who asks for an operation.
#[derive(Clone, Copy, Debug)]
pub(super) enum Requester<'a> {
    /// A framework accepting an offer made to `role`; `principal` may be empty.
    Framework {
        role: &'a str,
        principal: &'a str,
    },
    Operator,
}

/// One validated operation: `from` becomes `to` (the same amounts).
#[derive(Clone, Debug)]
pub(super) struct Conversion {
    pub from: Resources,
    pub to: Resources,
}

/// The entries of an agent's total the master must remember for it: dynamic reservations
/// and persistent volumes (static ones come back with the agent's flags).
pub(super) fn checkpointed_of(total: &Resources) -> Resources {
    total.filter(|r| {
        r.volume.is_some()
            || r.reservation
                .as_ref()
                .is_some_and(|x| x.kind == ReservationKind::Dynamic)
    })
}

/// What an entry of the record was made from: no volume, and no dynamic reservation.
fn origin(r: &Resource) -> Resource {
    let mut o = r.clone();
    o.volume = None;
    if o.reservation
        .as_ref()
        .is_some_and(|x| x.kind == ReservationKind::Dynamic)
    {
        o.reservation = None;
    }
    o
}

fn single(r: Resource) -> Resources {
    let mut out = Resources::new();
    // Taken from a valid bag, only with a qualifier dropped: always valid.
    let _ = out.push(r);
    out
}

/// `base` with the recorded entries applied; entries whose origin the agent no longer
/// reports are skipped (and named in the second value).
pub(super) fn apply_record(base: &Resources, record: &Resources) -> (Resources, Vec<String>) {
    let mut total = base.clone();
    let mut skipped = Vec::new();
    for r in record {
        let applied = total
            .checked_sub(&single(origin(r)))
            .and_then(|t| t.checked_add(&single(r.clone())));
        match applied {
            Ok(t) => total = t,
            Err(_) => skipped.push(r.to_string()),
        }
    }
    (total, skipped)
}

/// Does `total` hold a volume of `role` with `persistence_id`?
fn has_volume(total: &Resources, role: &str, persistence_id: &str) -> bool {
    total.iter().any(|r| {
        r.volume
            .as_ref()
            .is_some_and(|v| v.persistence_id == persistence_id)
            && r.reservation.as_ref().is_some_and(|x| x.role == role)
    })
}

impl Master {
    /// Validate one operation of `kind` on `items` against `pool` (what the requester may
    /// convert: the offer, or the agent's unused resources) and `total` (the agent's total
    /// after the call's earlier operations); both are advanced past it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn plan_op(
        &self,
        agent_id: &str,
        what: &str,
        kind: OpKind,
        items: &[v1::Resource],
        who: Requester<'_>,
        pool: &mut Resources,
        total: &mut Resources,
    ) -> Result<Conversion, Error> {
        let op = kind.name();
        let asked = Resources::from_proto(items)
            .map_err(|e| Error::invalid_argument(format!("{what} ({op}): {e}")))?;
        if asked.is_empty() {
            return Err(Error::invalid_argument(format!(
                "{what} ({op}) names no resources"
            )));
        }
        let bad = |r: &Resource, why: &str| {
            Error::invalid_argument(format!("{what} ({op}): '{r}' {why}"))
        };
        let mut from = Resources::new();
        let mut to = Resources::new();
        for r in &asked {
            // An offer may hold reservations of an ancestor role (`eng` offered to
            // `eng/ml`); a framework changes only those of its offer's own role.
            if let (Requester::Framework { role, .. }, Some(res), false) =
                (who, &r.reservation, kind == OpKind::Reserve)
                && res.role != role
            {
                return Err(bad(
                    r,
                    &format!(
                        "is reserved for role '{}', not the offer's role '{role}': a framework changes only reservations of its offer's role",
                        res.role
                    ),
                ));
            }
            let (f, t) = match kind {
                OpKind::Reserve => {
                    let Some(res) = &r.reservation else {
                        return Err(bad(r, "has no reservation; name the role, type dynamic"));
                    };
                    if res.kind != ReservationKind::Dynamic {
                        return Err(bad(r, "is not a dynamic reservation"));
                    }
                    if r.volume.is_some() {
                        return Err(bad(r, "is a volume; reserve the disk, then CREATE"));
                    }
                    if r.revocable {
                        return Err(bad(
                            r,
                            "is revocable; revocable resources cannot be reserved",
                        ));
                    }
                    let mut t = r.clone();
                    if let Requester::Framework { role, principal } = who {
                        if res.role != role {
                            return Err(bad(
                                r,
                                &format!(
                                    "reserves for role '{}', but the offer is for role '{role}': a framework reserves only for the role of its offer",
                                    res.role
                                ),
                            ));
                        }
                        match (&res.principal, principal.is_empty()) {
                            (Some(p), _) if p != principal => {
                                return Err(Error::permission_denied(format!(
                                    "{what} ({op}): '{r}' names principal '{p}', but the framework's principal is '{principal}'"
                                )));
                            }
                            (None, false) => {
                                if let Some(x) = t.reservation.as_mut() {
                                    x.principal = Some(principal.to_string());
                                }
                            }
                            _ => {}
                        }
                    }
                    let mut f = r.clone();
                    f.reservation = None;
                    (f, t)
                }
                OpKind::Unreserve => {
                    match &r.reservation {
                        None => return Err(bad(r, "is not reserved")),
                        Some(x) if x.kind == ReservationKind::Static => {
                            return Err(Error::failed_precondition(format!(
                                "{what} ({op}): '{r}' is a static reservation (from the agent's flags); static reservations cannot be unreserved"
                            )));
                        }
                        Some(_) => {}
                    }
                    if r.volume.is_some() {
                        return Err(Error::failed_precondition(format!(
                            "{what} ({op}): '{r}' is a persistent volume; DESTROY it first"
                        )));
                    }
                    let mut t = r.clone();
                    t.reservation = None;
                    (r.clone(), t)
                }
                OpKind::Create => {
                    let (Some(v), Some(res)) = (&r.volume, &r.reservation) else {
                        return Err(bad(
                            r,
                            "is not a volume (reserved disk with a persistence id and a container path)",
                        ));
                    };
                    if has_volume(total, &res.role, &v.persistence_id)
                        || has_volume(&to, &res.role, &v.persistence_id)
                    {
                        return Err(Error::already_exists(format!(
                            "{what} ({op}): volume '{}' of role '{}' already exists on agent '{agent_id}'",
                            v.persistence_id, res.role
                        )));
                    }
                    let mut f = r.clone();
                    f.volume = None;
                    (f, r.clone())
                }
                OpKind::Destroy => {
                    let (Some(v), Some(res)) = (&r.volume, &r.reservation) else {
                        return Err(bad(r, "is not a volume"));
                    };
                    if !has_volume(total, &res.role, &v.persistence_id) {
                        return Err(Error::not_found(format!(
                            "{what} ({op}): no volume '{}' of role '{}' on agent '{agent_id}'",
                            v.persistence_id, res.role
                        )));
                    }
                    if let Some(task) =
                        self.task_using_volume(agent_id, &res.role, &v.persistence_id)
                    {
                        return Err(Error::failed_precondition(format!(
                            "{what} ({op}): volume '{}' is in use by task '{task}'",
                            v.persistence_id
                        )));
                    }
                    let mut t = r.clone();
                    t.volume = None;
                    (r.clone(), t)
                }
            };
            from = from
                .checked_add(&single(f))
                .map_err(|e| Error::invalid_argument(format!("{what} ({op}): {e}")))?;
            to = to
                .checked_add(&single(t))
                .map_err(|e| Error::invalid_argument(format!("{what} ({op}): {e}")))?;
        }
        let rest = pool.checked_sub(&from).map_err(|e| match who {
            Requester::Framework { .. } => Error::invalid_argument(format!(
                "{what} ({op}): the resources are not in the offered resources ({pool}): {e}"
            )),
            Requester::Operator => Error::failed_precondition(format!(
                "{op}: the resources are not available on agent '{agent_id}' (in use by tasks, or not there): {e}"
            )),
        })?;
        let converted = |base: &Resources| {
            base.checked_sub(&from)
                .and_then(|b| b.checked_add(&to))
                .map_err(|e| Error::internal(format!("{what} ({op}): {e}")))
        };
        *total = converted(total)?;
        *pool = rest
            .checked_add(&to)
            .map_err(|e| Error::internal(format!("{what} ({op}): {e}")))?;
        Ok(Conversion { from, to })
    }

    /// Validate operation `i` of an ACCEPT, a RESERVE, UNRESERVE, CREATE or DESTROY (see
    /// [`Master::plan_op`]).
    pub(super) fn plan_accept_op(
        &self,
        i: usize,
        op: &v1::operation::Operation,
        who: Requester<'_>,
        agent_id: &str,
        remaining: &mut Resources,
        planned_total: &mut Resources,
    ) -> Result<Conversion, Error> {
        use v1::operation::Operation as Op;
        let (kind, items) = match op {
            Op::Reserve(x) => (OpKind::Reserve, &x.resources),
            Op::Unreserve(x) => (OpKind::Unreserve, &x.resources),
            Op::Create(x) => (OpKind::Create, &x.volumes),
            Op::Destroy(x) => (OpKind::Destroy, &x.volumes),
            Op::Launch(_) | Op::LaunchGroup(_) => {
                return Err(Error::internal(format!(
                    "operation {i} is not a resource operation"
                )));
            }
        };
        let what = format!("operation {i}");
        self.plan_op(agent_id, &what, kind, items, who, remaining, planned_total)
    }

    /// The first live task on the agent whose resources hold that volume.
    fn task_using_volume(
        &self,
        agent_id: &str,
        role: &str,
        persistence_id: &str,
    ) -> Option<String> {
        let agent = self.agents.get(agent_id)?;
        let mut keys: Vec<&(String, String)> = agent.tasks.iter().collect();
        keys.sort();
        keys.into_iter().find_map(|k| {
            let t = self.tasks.get(k)?;
            (!t.state.is_terminal()
                && has_volume(&t.resources.to_resources(), role, persistence_id))
            .then(|| format!("{}' of framework '{}", k.1, k.0))
        })
    }

    /// Apply validated conversions on an agent: allocator (when the agent is in it; as
    /// part of `allocated_to`'s allocation for an ACCEPT), master total, record, registry
    /// and agent. The allocator refusing (its book disagrees with the master's) undoes
    /// the conversions made so far and is reported.
    pub(super) fn apply_conversions(
        &mut self,
        agent_id: &str,
        allocated_to: Option<(&str, &str)>,
        conversions: &[Conversion],
    ) -> Result<(), Error> {
        if self.agent_in_allocator(agent_id) {
            for (i, c) in conversions.iter().enumerate() {
                if let Err(e) =
                    self.allocator
                        .convert_resources(agent_id, allocated_to, &c.from, &c.to)
                {
                    for done in conversions[..i].iter().rev() {
                        if let Err(e) = self.allocator.convert_resources(
                            agent_id,
                            allocated_to,
                            &done.to,
                            &done.from,
                        ) {
                            warn!(agent = agent_id, error = %e, "undoing a resource conversion");
                        }
                    }
                    return Err(Error::failed_precondition(format!(
                        "agent '{agent_id}': {e}"
                    )));
                }
            }
        }
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return Err(Error::not_found(format!("unknown agent id '{agent_id}'")));
        };
        for c in conversions {
            match agent
                .total
                .checked_sub(&c.from)
                .and_then(|t| t.checked_add(&c.to))
            {
                Ok(t) => agent.total = t,
                Err(e) => warn!(agent = agent_id, error = %e, "converting the agent's total"),
            }
        }
        let record = checkpointed_of(&agent.total);
        info!(agent = agent_id, resources = %record, "agent reservations and volumes changed");
        self.persist(RegistryOp::SetAgentResources {
            id: agent_id.to_string(),
            resources: record.to_string(),
        });
        self.checkpointed.insert(agent_id.to_string(), record);
        self.send_checkpoint(agent_id);
        self.emit_agent(agent_id, false);
        self.needs_allocation = true;
        Ok(())
    }

    /// Tell the agent its reservations and volumes (it may be disconnected: it hears
    /// them again when it re-registers).
    pub(super) fn send_checkpoint(&mut self, agent_id: &str) {
        let resources = self
            .checkpointed
            .get(agent_id)
            .map(Resources::to_proto)
            .unwrap_or_default();
        self.send_agent(
            agent_id,
            v1::agent_command::Command::CheckpointResources(
                v1::agent_command::CheckpointResources { resources },
            ),
        );
    }

    /// A (re-)registering agent's total: what it reports, with its recorded reservations
    /// and volumes applied.
    pub(super) fn with_checkpointed(&self, agent_id: &str, reported: Resources) -> Resources {
        let Some(record) = self.checkpointed.get(agent_id) else {
            return reported;
        };
        let (total, skipped) = apply_record(&reported, record);
        if !skipped.is_empty() {
            warn!(agent = agent_id, skipped = %skipped.join(";"), "the agent no longer reports what these reservations or volumes were made from; they are not applied");
        }
        total
    }

    /// An operator's RESERVE / UNRESERVE / CREATE / DESTROY on an agent's unused
    /// resources. Outstanding offers on the agent are rescinded when the operation needs
    /// what they hold (and only after the whole operation validated).
    pub(super) fn operator_resource_op(
        &mut self,
        agent_id: &str,
        kind: OpKind,
        items: &[v1::Resource],
    ) -> Result<(), Error> {
        crate::validate::id("agent id", agent_id)?;
        let Some(agent) = self.agents.get(agent_id) else {
            return Err(Error::not_found(format!("unknown agent id '{agent_id}'")));
        };
        match agent.status {
            crate::state::agent::AgentStatus::Removed => {
                return Err(Error::failed_precondition(format!(
                    "agent '{agent_id}' was removed"
                )));
            }
            crate::state::agent::AgentStatus::Recovering(_) => {
                return Err(Error::unavailable(format!(
                    "agent '{agent_id}' has not re-registered since the master restarted; retry later"
                )));
            }
            _ => {}
        }
        let mut used = Resources::new();
        for key in &agent.tasks {
            if let Some(t) = self.tasks.get(key).filter(|t| !t.state.is_terminal()) {
                used = used
                    .checked_add(&t.resources.to_resources())
                    .map_err(|e| Error::internal(e.to_string()))?;
            }
        }
        let mut offered = Resources::new();
        for id in &agent.offers {
            if let Some(o) = self.offers.get(id) {
                offered = offered
                    .checked_add(&o.resources)
                    .map_err(|e| Error::internal(e.to_string()))?;
            }
        }
        let mut total = agent.total.clone();
        let mut pool = total.checked_sub(&used).map_err(|e| {
            Error::internal(format!("agent '{agent_id}': tasks exceed the total: {e}"))
        })?;
        let free_now = pool.checked_sub(&offered).ok();
        let conversion = self.plan_op(
            agent_id,
            "operation",
            kind,
            items,
            Requester::Operator,
            &mut pool,
            &mut total,
        )?;
        if free_now.is_none_or(|f| !f.contains(&conversion.from)) {
            let offers: Vec<String> = self
                .agents
                .get(agent_id)
                .map(|a| a.offers.iter().cloned().collect())
                .unwrap_or_default();
            for o in offers {
                self.rescind_offer(&o, "an operator changed the agent's reservations", true);
            }
        }
        self.apply_conversions(agent_id, None, std::slice::from_ref(&conversion))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(text: &str) -> Resources {
        Resources::parse(text).unwrap()
    }

    #[test]
    fn the_record_is_dynamic_reservations_and_volumes() {
        let total =
            res("cpus:2;cpus(db):1;cpus(db,dynamic,principal=p):3;disk(db,volume=v,path=d):10");
        assert_eq!(
            checkpointed_of(&total),
            res("cpus(db,dynamic,principal=p):3;disk(db,volume=v,path=d):10")
        );
    }

    #[test]
    fn a_record_applies_to_what_the_agent_reports() {
        let reported = res("cpus:4;disk:100;disk(db):50");
        let record = res(
            "cpus(db,dynamic):1;disk(db,dynamic,volume=v1,path=d):30;disk(db,volume=v2,path=e):50",
        );
        let (total, skipped) = apply_record(&reported, &record);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(
            total,
            res(
                "cpus:3;disk:70;cpus(db,dynamic):1;disk(db,dynamic,volume=v1,path=d):30;disk(db,volume=v2,path=e):50"
            )
        );
        assert_eq!(checkpointed_of(&total), record);
        // An agent that shrank keeps what still fits.
        let (total, skipped) = apply_record(&res("cpus:4;disk:10"), &record);
        assert_eq!(total, res("cpus:3;disk:10;cpus(db,dynamic):1"));
        assert_eq!(skipped.len(), 2);
    }

    // -------------------------------------------------------------------------------
    // The actor's bookkeeping, driven in-process (no network, a manual clock).
    // -------------------------------------------------------------------------------

    use std::sync::Arc;

    use crate::clock::ManualClock;
    use crate::config::MasterConfig;
    use crate::registry::MemRegistry;

    const BASE: &str = "cpus:4;mem:1024;disk:1000;disk(db):100";

    fn start(stored: &MemRegistry) -> Master {
        let recovered = stored.state();
        let (m, _handle, _rx) = Master::new(
            MasterConfig::default(),
            Arc::new(ManualClock::new(1_000)),
            Box::new(stored.clone()),
            recovered,
        )
        .unwrap();
        m
    }

    fn register(m: &mut Master, id: &str) -> super::super::AgentStream {
        m.register_agent(v1::RegisterAgentRequest {
            info: Some(v1::AgentInfo {
                id: id.to_string(),
                hostname: "h".into(),
                resources: res(BASE).to_proto(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap()
    }

    /// The resources of the last `CheckpointResources` the agent was sent.
    fn last_checkpoint(stream: &mut super::super::AgentStream) -> Option<Resources> {
        let mut last = None;
        while let Ok(Ok(cmd)) = stream.commands.try_recv() {
            if let Some(v1::agent_command::Command::CheckpointResources(c)) = cmd.command {
                last = Some(Resources::from_proto(&c.resources).unwrap());
            }
        }
        last
    }

    fn offers(sub: &mut super::super::Subscription) -> Vec<v1::Offer> {
        let mut out = Vec::new();
        while let Ok(Ok(ev)) = sub.events.try_recv() {
            if let Some(v1::event::Event::Offers(o)) = ev.event {
                out.extend(o.offers);
            }
        }
        out
    }

    fn accept(m: &mut Master, fw: &str, offer: &str, ops: Vec<v1::Operation>) -> Result<(), Error> {
        m.accept(v1::AcceptRequest {
            framework_id: fw.to_string(),
            offer_ids: vec![offer.to_string()],
            operations: ops,
            filters: Some(v1::Filters {
                refuse_seconds: Some(0.0),
            }),
        })
        .map(|_| ())
    }

    fn operation(kind: OpKind, text: &str) -> v1::Operation {
        use v1::operation::{Create, Destroy, Operation as Op, Reserve, Unreserve};
        let r = res(text).to_proto();
        v1::Operation {
            operation: Some(match kind {
                OpKind::Reserve => Op::Reserve(Reserve { resources: r }),
                OpKind::Unreserve => Op::Unreserve(Unreserve { resources: r }),
                OpKind::Create => Op::Create(Create { volumes: r }),
                OpKind::Destroy => Op::Destroy(Destroy { volumes: r }),
            }),
        }
    }

    #[tokio::test]
    async fn accept_converts_master_allocator_registry_and_agent_in_step() {
        let stored = MemRegistry::new();
        let mut m = start(&stored);
        let mut agent = register(&mut m, "");
        let aid = agent.agent_id.clone();
        assert_eq!(last_checkpoint(&mut agent), Some(Resources::new()));
        let mut sub = m
            .subscribe(v1::SubscribeRequest {
                framework: Some(v1::FrameworkInfo {
                    name: "db".into(),
                    roles: vec!["db".into()],
                    principal: "alice".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .unwrap();
        let fw = sub.framework_id.clone();
        m.allocate();
        m.commit().await.unwrap();
        let offer = offers(&mut sub).remove(0);

        // Refused: a volume on unreserved disk, a second op over the same resources.
        let before = m.agents[&aid].total.clone();
        let e = accept(
            &mut m,
            &fw,
            &offer.id,
            vec![
                operation(OpKind::Reserve, "disk(db,dynamic):600"),
                operation(OpKind::Reserve, "disk(db,dynamic):600"),
            ],
        )
        .unwrap_err();
        assert!(e.message().contains("operation 1 (RESERVE)"), "{e:?}");
        assert_eq!(m.agents[&aid].total, before);
        assert!(m.registry_pending.is_empty());
        assert!(last_checkpoint(&mut agent).is_none());

        // RESERVE then CREATE on the reservation, one call.
        accept(
            &mut m,
            &fw,
            &offer.id,
            vec![
                operation(OpKind::Reserve, "disk(db,dynamic):300"),
                operation(
                    OpKind::Create,
                    "disk(db,dynamic,principal=alice,volume=v,path=d):200",
                ),
                operation(OpKind::Create, "disk(db,volume=s,path=d):100"),
            ],
        )
        .unwrap();
        let record = res("disk(db,dynamic,principal=alice):100;\
             disk(db,dynamic,principal=alice,volume=v,path=d):200;disk(db,volume=s,path=d):100");
        let total = res(BASE)
            .checked_sub(&res("disk:300;disk(db):100"))
            .unwrap()
            .checked_add(&record)
            .unwrap();
        assert_eq!(m.agents[&aid].total, total);
        assert_eq!(m.checkpointed[&aid], record);
        assert_eq!(last_checkpoint(&mut agent), Some(record.clone()));
        m.allocator.check_invariants().unwrap();
        m.commit().await.unwrap();
        assert_eq!(stored.state().agent_resources[&aid], record.to_string());

        // A restarted master re-applies the record when the agent re-registers.
        drop(m);
        let mut m = start(&stored);
        let mut agent = register(&mut m, &aid);
        assert_eq!(m.agents[&aid].total, total);
        assert_eq!(last_checkpoint(&mut agent), Some(record.clone()));

        // Operator: DESTROY and UNRESERVE the dynamic part; the static volume stays.
        let e = m
            .operator_resource_op(
                &aid,
                OpKind::Unreserve,
                &res("disk(db,dynamic,principal=alice):300").to_proto(),
            )
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
        m.operator_resource_op(
            &aid,
            OpKind::Destroy,
            &res("disk(db,dynamic,principal=alice,volume=v,path=d):200").to_proto(),
        )
        .unwrap();
        m.operator_resource_op(
            &aid,
            OpKind::Unreserve,
            &res("disk(db,dynamic,principal=alice):300").to_proto(),
        )
        .unwrap();
        let left = res("disk(db,volume=s,path=d):100");
        assert_eq!(m.checkpointed[&aid], left);
        assert_eq!(last_checkpoint(&mut agent), Some(left));
        m.allocator.check_invariants().unwrap();
        let e = m
            .operator_resource_op(
                "nope",
                OpKind::Reserve,
                &res("cpus(x,dynamic):1").to_proto(),
            )
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
    }

    proptest::proptest! {
        /// Whatever an agent reports and however its resources were converted (reserve
        /// some cpus and disk, make a volume of part of the disk), the record re-applied
        /// to the report gives back exactly the converted total.
        #[test]
        fn the_record_rebuilds_the_total(
            cpus in 1u64..64, mem in 1u64..4096, disk in 2u64..4096,
            rc in 0u64..64, rd in 0u64..4096, vd in 0u64..4096,
        ) {
            let base = res(&format!("cpus:{cpus};mem:{mem};disk:{disk};ports:[1-9]"));
            let rc = rc.min(cpus);
            let rd = rd.min(disk);
            let vd = vd.min(rd);
            let mut total = base.clone();
            let convert = |t: &Resources, from: &str, to: &str| {
                t.checked_sub(&res(from)).unwrap().checked_add(&res(to)).unwrap()
            };
            total = convert(&total, &format!("cpus:{rc};disk:{rd}"), &format!("cpus(r,dynamic,principal=p):{rc};disk(r,dynamic):{rd}"));
            total = convert(&total, &format!("disk(r,dynamic):{vd}"), &format!("disk(r,dynamic,volume=v,path=p):{vd}"));
            let (rebuilt, skipped) = apply_record(&base, &checkpointed_of(&total));
            proptest::prop_assert!(skipped.is_empty());
            proptest::prop_assert_eq!(rebuilt, total);
        }
    }

    #[test]
    fn a_framework_of_a_sub_role_cannot_change_its_parents_reservations() {
        let stored = MemRegistry::new();
        let mut m = start(&stored);
        let _agent = register(&mut m, "");
        let mut sub = m
            .subscribe(v1::SubscribeRequest {
                framework: Some(v1::FrameworkInfo {
                    name: "ml".into(),
                    roles: vec!["db/ml".into()],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .unwrap();
        let fw = sub.framework_id.clone();
        m.allocate();
        let offer = offers(&mut sub).remove(0);
        // The offer holds db's static disk, usable by db/ml, but not db/ml's to change.
        assert!(
            Resources::from_proto(&offer.resources)
                .unwrap()
                .contains(&res("disk(db):100"))
        );
        let e = accept(
            &mut m,
            &fw,
            &offer.id,
            vec![operation(OpKind::Create, "disk(db,volume=x,path=p):100")],
        )
        .unwrap_err();
        assert!(
            e.message().contains("not the offer's role 'db/ml'"),
            "{e:?}"
        );
        // Its own role it may reserve for, and make a volume of that.
        accept(
            &mut m,
            &fw,
            &offer.id,
            vec![
                operation(OpKind::Reserve, "disk(db/ml,dynamic):10"),
                operation(OpKind::Create, "disk(db/ml,dynamic,volume=x,path=p):10"),
            ],
        )
        .unwrap();
        m.allocator.check_invariants().unwrap();
    }
}
