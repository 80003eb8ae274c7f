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
//! unreserved and non-revocable). Killing tasks (preemption proper) is not decided here.

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
