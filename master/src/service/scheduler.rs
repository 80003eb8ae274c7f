//! Scheduler calls (frameworks -> master). Authentication and rate limits happened in the
//! auth middleware; here each call is checked against the `Gate` (principal, framework
//! ownership, ACLs) and the edge limits before the actor sees it.

use agora_proto::v1;

use super::{Error, Result, Service};
use crate::actor::{Command, SchedulerCall, Subscription};
use crate::auth::Caller;
use crate::validate;

/// Most items in one batched call (`UpdateStatuses`, `AcknowledgeBatch`, `AcceptBatch`):
/// one call is one actor command, and a command must stay short so others are not held
/// up behind it.
pub const MAX_BATCH: usize = 10_000;

/// Check a batch's size and that every item names the batch's owner or nobody (then it is
/// filled in): `what` names the items, `owner_kind` the field ("agent id").
pub fn check_batch<T>(
    what: &str,
    owner_kind: &str,
    owner: &str,
    items: &mut [T],
    field: impl Fn(&mut T) -> &mut String,
) -> Result<()> {
    if items.len() > MAX_BATCH {
        return Err(Error::invalid(format!(
            "{} {what} in one call; at most {MAX_BATCH}",
            items.len()
        )));
    }
    for (i, item) in items.iter_mut().enumerate() {
        let f = field(item);
        if f.is_empty() {
            f.push_str(owner);
        } else if f != owner {
            return Err(Error::invalid(format!(
                "{what} #{i} names {owner_kind} '{}', not the batch's '{}'",
                super::quote(f),
                super::quote(owner)
            )));
        }
    }
    Ok(())
}

/// A refused item of a batch, by its index in the request.
pub fn refusal(index: usize, e: &Error) -> v1::batch_response::Refused {
    v1::batch_response::Refused {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        code: e.code() as i32,
        message: e.message().to_string(),
    }
}

impl Service {
    async fn scheduler(&self, call: SchedulerCall) -> Result<()> {
        self.call(|reply| Command::Scheduler { call, reply }).await
    }

    /// Calls that name a framework: only its owner may make them.
    async fn owned(&self, caller: &Caller, framework_id: &str, call: SchedulerCall) -> Result<()> {
        super::framework_id(framework_id)?;
        self.gate.check_owner(caller, framework_id)?;
        self.scheduler(call).await.map(|_| ())
    }

    /// SUBSCRIBE: the framework's description is checked against the edge limits before
    /// the ACLs judge its roles (a refusal never quotes a whole oversized role).
    pub async fn subscribe(
        &self,
        caller: &Caller,
        request: v1::SubscribeRequest,
    ) -> Result<Subscription> {
        let info = request
            .framework
            .clone()
            .ok_or_else(|| Error::invalid("subscribe needs a framework"))?;
        validate::framework_info(&mut info.clone())?;
        self.gate.check_subscribe(caller, &info)?;
        let sub = self
            .call(|reply| Command::Subscribe { request, reply })
            .await?;
        self.gate
            .record_framework(caller, &sub.framework_id, &info.user);
        Ok(sub)
    }

    pub async fn teardown(&self, caller: &Caller, r: v1::TeardownRequest) -> Result<()> {
        let id = r.framework_id.clone();
        self.owned(caller, &id, SchedulerCall::Teardown(r)).await?;
        self.gate.forget_framework(&id);
        Ok(())
    }

    pub async fn accept(
        &self,
        caller: &Caller,
        r: v1::AcceptRequest,
    ) -> Result<v1::AcceptResponse> {
        validate::accept_limits(&r)?;
        self.gate.check_accept(caller, &r)?;
        let request = Box::new(r);
        self.call(|reply| Command::Accept { request, reply }).await
    }

    /// ACCEPT_BATCH: the whole call is refused as `AcknowledgeBatch` refuses it (not the
    /// caller's framework, unknown or not subscribed, too many items, an item of another
    /// framework); otherwise each item is judged like one `Accept` and refusals come back
    /// by index.
    pub async fn accept_batch(
        &self,
        caller: &Caller,
        mut r: v1::AcceptBatchRequest,
    ) -> Result<v1::AcceptBatchResponse> {
        self.gate.check_owner(caller, &r.framework_id)?;
        check_batch(
            "accepts",
            "framework id",
            &r.framework_id,
            &mut r.accepts,
            |a| &mut a.framework_id,
        )?;
        self.require_connected(&r.framework_id).await?;
        let n = r.accepts.len();
        // The edge limits and the ACLs judge each item; the ones they refuse never reach
        // the actor.
        let mut refused = Vec::new();
        let mut items = Vec::with_capacity(n);
        for (i, a) in r.accepts.into_iter().enumerate() {
            let judged =
                validate::accept_limits(&a).and_then(|()| self.gate.check_accept(caller, &a));
            match judged {
                Ok(()) => items.push((i, a)),
                Err(e) => refused.push(refusal(i, &e)),
            }
        }
        let mut responses = vec![v1::AcceptResponse::default(); n];
        if !items.is_empty() {
            let results = self
                .call(|reply| Command::AcceptBatch { items, reply })
                .await?;
            for (i, result) in results {
                match result {
                    Ok(resp) => {
                        if let Some(slot) = responses.get_mut(i) {
                            *slot = resp;
                        }
                    }
                    Err(e) => refused.push(refusal(i, &e)),
                }
            }
        }
        refused.sort_by_key(|x| x.index);
        Ok(v1::AcceptBatchResponse { responses, refused })
    }

    pub async fn decline(&self, caller: &Caller, r: v1::DeclineRequest) -> Result<()> {
        let id = r.framework_id.clone();
        self.owned(caller, &id, SchedulerCall::Decline(r)).await
    }

    pub async fn revive(&self, caller: &Caller, r: v1::ReviveRequest) -> Result<()> {
        let id = r.framework_id.clone();
        self.owned(caller, &id, SchedulerCall::Revive(r)).await
    }

    pub async fn suppress(&self, caller: &Caller, r: v1::SuppressRequest) -> Result<()> {
        let id = r.framework_id.clone();
        self.owned(caller, &id, SchedulerCall::Suppress(r)).await
    }

    pub async fn kill(&self, caller: &Caller, r: v1::KillRequest) -> Result<()> {
        let id = r.framework_id.clone();
        self.owned(caller, &id, SchedulerCall::Kill(r)).await
    }

    pub async fn shutdown(&self, caller: &Caller, r: v1::ShutdownRequest) -> Result<()> {
        let id = r.framework_id.clone();
        self.owned(caller, &id, SchedulerCall::Shutdown(r)).await
    }

    pub async fn acknowledge(&self, caller: &Caller, r: v1::AcknowledgeRequest) -> Result<()> {
        let id = r.framework_id.clone();
        self.owned(caller, &id, SchedulerCall::Acknowledge(r)).await
    }

    /// ACKNOWLEDGE_BATCH: refused whole exactly as `accept_batch` is.
    pub async fn acknowledge_batch(
        &self,
        caller: &Caller,
        mut r: v1::AcknowledgeBatchRequest,
    ) -> Result<v1::BatchResponse> {
        self.gate.check_owner(caller, &r.framework_id)?;
        check_batch(
            "acknowledgements",
            "framework id",
            &r.framework_id,
            &mut r.acks,
            |a| &mut a.framework_id,
        )?;
        self.require_connected(&r.framework_id).await?;
        let refused = self
            .call(|reply| Command::AcknowledgeBatch { request: r, reply })
            .await?;
        Ok(v1::BatchResponse { refused })
    }

    pub async fn reconcile(&self, caller: &Caller, r: v1::ReconcileRequest) -> Result<()> {
        let id = r.framework_id.clone();
        self.owned(caller, &id, SchedulerCall::Reconcile(r)).await
    }

    pub async fn message(&self, caller: &Caller, r: v1::MessageRequest) -> Result<()> {
        let id = r.framework_id.clone();
        self.owned(caller, &id, SchedulerCall::Message(r)).await
    }

    /// UPDATE_FRAMEWORK: the checks of a subscription (limits, principal, every role's
    /// ACL) plus ownership.
    pub async fn update_framework(
        &self,
        caller: &Caller,
        r: v1::UpdateFrameworkRequest,
    ) -> Result<()> {
        let info = r
            .framework
            .clone()
            .ok_or_else(|| Error::invalid("update needs a framework"))?;
        validate::framework_info(&mut info.clone())?;
        self.gate.check_subscribe(caller, &info)?;
        self.gate.check_owner(caller, &info.id)?;
        self.scheduler(SchedulerCall::UpdateFramework(Box::new(r)))
            .await?;
        self.gate.record_framework(caller, &info.id, &info.user);
        Ok(())
    }
}
