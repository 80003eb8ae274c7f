//! Reclaiming by rescinding offers (issue 18, item 3, first step): which outstanding
//! offers to take back so that resources a role is owed (its unmet quota guarantee, or a
//! higher-priority demand) become free, following the quota rules of the mission (section
//! 5): prefer offers at least as large as the request; once one offer on an agent is
//! rescinded, rescind every unaccepted offer there; touch at least as many agents as the
//! role has frameworks.
//!
//! Owns only the choice: a pure function of the offers the master holds, the request and
//! the role. Must never rescind an offer made to the role it reclaims for (or to one of its
//! sub-roles), nor count reserved or revocable resources toward the request (quota is
//! unreserved and non-revocable). `plan_preemption` chooses tasks of lower priority to
//! kill when rescinding offers was not enough, within a disruption budget per role.

use std::collections::BTreeMap;

use agora_resources::{Resources, Value};

use crate::QuotaStatus;

/// An offer made and not yet answered, as the master holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct OutstandingOffer {
    pub id: String,
    pub agent: String,
    pub framework: String,
    pub role: String,
    pub resources: Resources,
}

/// What a role is owed and how many of its frameworks may use it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReclaimRequest {
    pub role: String,
    /// Scalar amounts to free (unreserved, non-revocable).
    pub amounts: Resources,
    /// Agents to touch at least (the role's frameworks), so each may be offered some.
    pub min_agents: usize,
}

/// Per role with a quota, what its guarantee still lacks (`guarantee - consumed`, kinds
/// already met left out); `frameworks(role)` gives the role's eligible frameworks, and a
/// role without any is owed nothing now (nobody would take the resources).
pub fn quota_requests(
    quotas: &[QuotaStatus],
    frameworks: impl Fn(&str) -> usize,
) -> Vec<ReclaimRequest> {
    let mut out = Vec::new();
    for q in quotas {
        let n = frameworks(&q.role);
        if n == 0 {
            continue;
        }
        let mut owed = Resources::new();
        for name in q.guarantee.names() {
            let g = q.guarantee.scalar(name).thousandths();
            let c = q.consumed.scalar(name).thousandths();
            if g > c {
                let text = format!("{name}:{}.{:03}", (g - c) / 1000, (g - c) % 1000);
                if let Ok(r) = Resources::parse(&text)
                    && let Ok(sum) = owed.checked_add(&r)
                {
                    owed = sum;
                }
            }
        }
        if !owed.is_empty() {
            out.push(ReclaimRequest {
                role: q.role.clone(),
                amounts: owed,
                min_agents: n,
            });
        }
    }
    out
}

fn in_subtree(root: &str, role: &str) -> bool {
    role == root
        || (role.len() > root.len()
            && role.starts_with(root)
            && role.as_bytes().get(root.len()) == Some(&b'/'))
}

/// Unreserved, non-revocable scalar amounts of `r` by name (thousandths).
fn quota_amounts(r: &Resources) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for e in r {
        if let (Value::Scalar(s), None, false) = (&e.value, &e.reservation, e.revocable) {
            *out.entry(e.name.clone()).or_default() += s.thousandths();
        }
    }
    out
}

/// How much of `want` `have` covers (sum over kinds of min(have, want)).
fn progress(have: &BTreeMap<String, u64>, want: &BTreeMap<String, u64>) -> u64 {
    want.iter()
        .map(|(k, w)| have.get(k).copied().unwrap_or(0).min(*w))
        .sum()
}

fn covers(have: &BTreeMap<String, u64>, want: &BTreeMap<String, u64>) -> bool {
    want.iter()
        .all(|(k, w)| have.get(k).copied().unwrap_or(0) >= *w)
}

/// The offers to rescind for `request`, by id, in the order chosen. Agents are taken one
/// at a time: while some agent's offers (to other roles) cover all that is still owed, the
/// smallest such agent (the least disruption; ties by agent id); otherwise the agent whose
/// offers cover the most of it. Every offer on a chosen agent is rescinded. Agents are
/// taken until the request is covered and at least `min_agents` agents are touched, or no
/// agent with a useful offer is left.
pub fn plan_rescinds(offers: &[OutstandingOffer], request: &ReclaimRequest) -> Vec<String> {
    let mut by_agent: BTreeMap<&str, (Vec<&OutstandingOffer>, BTreeMap<String, u64>)> =
        BTreeMap::new();
    for o in offers {
        if in_subtree(&request.role, &o.role) {
            continue;
        }
        let slot = by_agent.entry(&o.agent).or_default();
        slot.0.push(o);
        for (k, v) in quota_amounts(&o.resources) {
            *slot.1.entry(k).or_default() += v;
        }
    }
    let mut owed = quota_amounts(&request.amounts);
    let mut chosen: Vec<String> = Vec::new();
    let mut touched = 0usize;
    loop {
        let owed_left = owed.values().any(|v| *v > 0);
        if !owed_left && touched >= request.min_agents {
            break;
        }
        let useful = |have: &BTreeMap<String, u64>| {
            if owed_left {
                progress(have, &owed) > 0
            } else {
                // Only the agent count is left: any offer of the kinds requested helps.
                let kinds = quota_amounts(&request.amounts);
                kinds.keys().any(|k| have.get(k).copied().unwrap_or(0) > 0)
            }
        };
        let size = |have: &BTreeMap<String, u64>| have.values().sum::<u64>();
        let pick = if owed_left {
            by_agent
                .iter()
                .filter(|(_, (_, have))| useful(have) && covers(have, &owed))
                .min_by_key(|(a, (_, have))| (size(have), **a))
                .or_else(|| {
                    by_agent
                        .iter()
                        .filter(|(_, (_, have))| useful(have))
                        .max_by(|(a, (_, x)), (b, (_, y))| {
                            progress(x, &owed).cmp(&progress(y, &owed)).then(b.cmp(a))
                        })
                })
        } else {
            by_agent
                .iter()
                .filter(|(_, (_, have))| useful(have))
                .min_by_key(|(a, (_, have))| (size(have), **a))
        }
        .map(|(a, _)| *a);
        let Some(agent) = pick else {
            break;
        };
        let Some((list, have)) = by_agent.remove(agent) else {
            break;
        };
        for (k, v) in owed.iter_mut() {
            *v = v.saturating_sub(have.get(k).copied().unwrap_or(0));
        }
        chosen.extend(list.into_iter().map(|o| o.id.clone()));
        touched += 1;
    }
    chosen
}

/// A task that could be preempted, as the master knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunningTask {
    pub id: String,
    pub agent: String,
    pub framework: String,
    pub role: String,
    /// The task's role's (or framework's) priority; higher wins.
    pub priority: i32,
    /// Runs on revocable resources: preempted before any regular task.
    pub revocable: bool,
    pub started_ms: crate::Millis,
    pub resources: Resources,
}

/// How much disruption preemption may cause to one role: at most `max_kills` of its
/// tasks per `window_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DisruptionBudget {
    pub max_kills: u32,
    pub window_ms: crate::Millis,
}

/// One decision, with its reason in words (for explain and the task's status message).
#[derive(Clone, Debug, PartialEq)]
pub struct Preemption {
    pub task: String,
    pub reason: String,
}

/// Which tasks to kill so that `request` becomes free for a role of `priority`, after
/// rescinding offers did not suffice. Only tasks of strictly lower priority, never of the
/// role itself or its sub-roles; revocable tasks first, then the lowest priority, then the
/// newest (the least work lost); ties by task id. A victim role's budget counts the kills
/// of `recent` (its kills as (role, time)) within the window ending at `now`; a role at its
/// budget loses no more tasks. Stops as soon as the request is covered; if it cannot be
/// covered within the budgets, nothing is killed (a partial preemption would disrupt for
/// nothing).
pub fn plan_preemption(
    tasks: &[RunningTask],
    request: &ReclaimRequest,
    priority: i32,
    budget: DisruptionBudget,
    recent: &[(String, crate::Millis)],
    now: crate::Millis,
) -> Vec<Preemption> {
    let mut owed = quota_amounts(&request.amounts);
    let mut victims: Vec<&RunningTask> = tasks
        .iter()
        .filter(|t| t.priority < priority && !in_subtree(&request.role, &t.role))
        .filter(|t| progress(&quota_or_revocable(&t.resources), &owed) > 0)
        .collect();
    victims.sort_by(|a, b| {
        b.revocable
            .cmp(&a.revocable)
            .then(a.priority.cmp(&b.priority))
            .then(b.started_ms.cmp(&a.started_ms))
            .then(a.id.cmp(&b.id))
    });
    let mut kills: BTreeMap<&str, u32> = BTreeMap::new();
    for (role, at) in recent {
        if now.saturating_sub(*at) < budget.window_ms {
            *kills.entry(role.as_str()).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for t in victims {
        if owed.values().all(|v| *v == 0) {
            break;
        }
        let used = kills.entry(t.role.as_str()).or_default();
        if *used >= budget.max_kills {
            continue;
        }
        let have = quota_or_revocable(&t.resources);
        if progress(&have, &owed) == 0 {
            continue;
        }
        *used += 1;
        for (k, v) in owed.iter_mut() {
            *v = v.saturating_sub(have.get(k).copied().unwrap_or(0));
        }
        out.push(Preemption {
            task: t.id.clone(),
            reason: format!(
                "preempted for role '{}' (priority {priority} over {}{}): it is owed {}",
                request.role,
                t.priority,
                if t.revocable { ", revocable" } else { "" },
                request.amounts
            ),
        });
    }
    if owed.values().any(|v| *v > 0) {
        return Vec::new();
    }
    out
}

/// Scalar amounts a task frees toward a request: unreserved ones, revocable included (the
/// agent's estimate goes back up when a revocable task ends).
fn quota_or_revocable(r: &Resources) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for e in r {
        if let (Value::Scalar(s), None) = (&e.value, &e.reservation) {
            *out.entry(e.name.clone()).or_default() += s.thousandths();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(text: &str) -> Resources {
        Resources::parse(text).expect("test resources parse")
    }

    fn offer(id: &str, agent: &str, role: &str, r: &str) -> OutstandingOffer {
        OutstandingOffer {
            id: id.into(),
            agent: agent.into(),
            framework: format!("fw-{role}"),
            role: role.into(),
            resources: res(r),
        }
    }

    fn request(role: &str, r: &str, min_agents: usize) -> ReclaimRequest {
        ReclaimRequest {
            role: role.into(),
            amounts: res(r),
            min_agents,
        }
    }

    /// (offers, request, expected rescinded ids), one row per rule.
    #[test]
    fn rescind_plans_follow_the_quota_rules() {
        let rows: Vec<(&str, Vec<OutstandingOffer>, ReclaimRequest, Vec<&str>)> = vec![
            (
                "an offer at least as large as the request beats two smaller ones",
                vec![
                    offer("o1", "a1", "x", "cpus:2;mem:512"),
                    offer("o2", "a2", "x", "cpus:2;mem:512"),
                    offer("o3", "a3", "y", "cpus:8;mem:4096"),
                ],
                request("q", "cpus:4", 1),
                vec!["o3"],
            ),
            (
                "of the covering agents, the smallest",
                vec![
                    offer("o1", "a1", "x", "cpus:16;mem:4096"),
                    offer("o2", "a2", "x", "cpus:4;mem:512"),
                ],
                request("q", "cpus:4", 1),
                vec!["o2"],
            ),
            (
                "once one offer on an agent goes, every offer there goes",
                vec![
                    offer("o1", "a1", "x", "cpus:3"),
                    offer("o2", "a1", "y", "mem:128"),
                    offer("o3", "a2", "x", "cpus:1"),
                ],
                request("q", "cpus:3", 1),
                vec!["o1", "o2"],
            ),
            (
                "no single agent covers: largest contribution first, until covered",
                vec![
                    offer("o1", "a1", "x", "cpus:1"),
                    offer("o2", "a2", "x", "cpus:3"),
                    offer("o3", "a3", "x", "cpus:2"),
                ],
                request("q", "cpus:5", 1),
                vec!["o2", "o3"],
            ),
            (
                "at least as many agents as the role has frameworks",
                vec![
                    offer("o1", "a1", "x", "cpus:8"),
                    offer("o2", "a2", "x", "cpus:1"),
                    offer("o3", "a3", "x", "cpus:2"),
                ],
                request("q", "cpus:4", 2),
                vec!["o1", "o2"],
            ),
            (
                "never the role's own offers, nor its sub-roles'",
                vec![
                    offer("o1", "a1", "q", "cpus:8"),
                    offer("o2", "a2", "q/sub", "cpus:8"),
                    offer("o3", "a3", "qq", "cpus:8"),
                ],
                request("q", "cpus:4", 1),
                vec!["o3"],
            ),
            (
                "reserved and revocable resources do not count toward quota",
                vec![
                    offer("o1", "a1", "x", "cpus(x):8"),
                    offer("o2", "a2", "x", "cpus(*,revocable):8"),
                    offer("o3", "a3", "x", "cpus:1"),
                ],
                request("q", "cpus:4", 1),
                vec!["o3"],
            ),
            (
                "more requested than offered: every useful offer",
                vec![
                    offer("o1", "a1", "x", "cpus:1"),
                    offer("o2", "a2", "x", "mem:64"),
                ],
                request("q", "cpus:4", 1),
                vec!["o1"],
            ),
            (
                "nothing outstanding: nothing",
                vec![],
                request("q", "cpus:4", 3),
                vec![],
            ),
        ];
        for (what, offers, req, want) in rows {
            assert_eq!(plan_rescinds(&offers, &req), want, "{what}");
        }
    }

    fn task(
        id: &str,
        role: &str,
        priority: i32,
        revocable: bool,
        started: u64,
        r: &str,
    ) -> RunningTask {
        RunningTask {
            id: id.into(),
            agent: "a1".into(),
            framework: format!("fw-{role}"),
            role: role.into(),
            priority,
            revocable,
            started_ms: started,
            resources: res(r),
        }
    }

    #[test]
    fn preemption_takes_revocable_then_lowest_priority_then_newest_within_budget() {
        let budget = DisruptionBudget {
            max_kills: 2,
            window_ms: 60_000,
        };
        let tasks = vec![
            task("old-low", "batch", 1, false, 100, "cpus:2"),
            task("new-low", "batch", 1, false, 900, "cpus:2"),
            task("mid", "etl", 5, false, 500, "cpus:2"),
            task("rev", "batch", 3, true, 100, "cpus(*,revocable):1"),
            task("same", "prod", 1, false, 100, "cpus:8"),
            task("higher", "web", 20, false, 100, "cpus:8"),
        ];
        let ids = |p: Vec<Preemption>| p.into_iter().map(|x| x.task).collect::<Vec<_>>();
        let req = |r: &str| request("prod", r, 1);
        // Revocable first, then the lowest priority, newest first.
        assert_eq!(
            ids(plan_preemption(
                &tasks,
                &req("cpus:3"),
                10,
                budget,
                &[],
                1_000
            )),
            vec!["rev", "new-low"]
        );
        // batch may lose 2 in the window: the third victim is the next priority up.
        assert_eq!(
            ids(plan_preemption(
                &tasks,
                &req("cpus:5"),
                10,
                budget,
                &[],
                1_000
            )),
            vec!["rev", "new-low", "mid"]
        );
        // One batch kill a moment ago counts; one long ago does not.
        let recent = vec![("batch".to_string(), 40_000), ("batch".to_string(), 0)];
        assert_eq!(
            ids(plan_preemption(
                &tasks,
                &req("cpus:3"),
                10,
                budget,
                &recent,
                61_000
            )),
            vec!["rev", "mid"]
        );
        // Never the role itself, never higher priority; uncoverable: nothing at all.
        assert_eq!(
            ids(plan_preemption(
                &tasks,
                &req("cpus:40"),
                10,
                budget,
                &[],
                1_000
            )),
            Vec::<String>::new()
        );
        let p = plan_preemption(&tasks, &req("cpus:1"), 10, budget, &[], 1_000);
        assert!(
            p[0].reason.contains("preempted for role 'prod'") && p[0].reason.contains("revocable")
        );
    }

    #[test]
    fn requests_come_from_unmet_guarantees_of_roles_with_frameworks() {
        let q = |role: &str, g: &str, c: &str| QuotaStatus {
            role: role.into(),
            guarantee: res(g),
            limit: None,
            consumed: res(c),
        };
        let quotas = vec![
            q("a", "cpus:8;mem:1024", "cpus:2;mem:2048"),
            q("b", "cpus:4", "cpus:4"),
            q("c", "cpus:4", ""),
        ];
        let frameworks = |r: &str| match r {
            "a" => 2,
            "b" => 1,
            _ => 0,
        };
        assert_eq!(
            quota_requests(&quotas, frameworks),
            vec![ReclaimRequest {
                role: "a".into(),
                amounts: res("cpus:6"),
                min_agents: 2,
            }]
        );
    }
}
