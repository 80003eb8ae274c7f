//! The shape of the allocator's explanation: `GET /api/v1/allocator/explain?role=R` or
//! `?framework=ID` on the master, `agora explain --json` in the CLI, and the words
//! `agora explain` prints ([`describe`]).
//!
//! The types mirror `agora_allocator::Explanation` field for field (so the JSON is what
//! the allocator means), but they are this crate's own: they deserialise too, so a client
//! reads exactly what the master wrote. Pure formatting: no fetching, no policy.

use agora_resources::Resources;
use serde::{Deserialize, Serialize};

/// Why a role or a framework is or is not getting offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// `"role"` or `"framework"`.
    pub kind: String,
    /// When the allocator answered, in milliseconds since the epoch.
    pub at_ms: u64,
    /// The role explained, or each role of the framework explained.
    pub roles: Vec<RoleExplain>,
    pub framework: Option<FrameworkExplain>,
    /// Held resources that concern the target.
    pub holds: Vec<HoldInfo>,
    /// Plain-language reasons, most important first.
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleExplain {
    pub role: String,
    pub weight: f64,
    pub dominant_share: f64,
    pub weighted_share: f64,
    pub allocated: Resources,
    pub reserved: Resources,
    pub quota: Option<QuotaExplain>,
    pub eligible_frameworks: usize,
    pub suppressed_frameworks: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuotaExplain {
    pub guarantee: Resources,
    pub limit: Option<Resources>,
    pub consumed: Resources,
    pub unmet_guarantee: Resources,
    pub headroom_to_limit: Option<Resources>,
    pub at_limit: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameworkExplain {
    pub framework: String,
    pub active: bool,
    pub capabilities: Vec<String>,
    pub min_allocatable: Vec<Resources>,
    pub roles: Vec<FrameworkRoleExplain>,
    pub demands: Vec<DemandExplain>,
    pub holds: Vec<HoldInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameworkRoleExplain {
    pub role: String,
    pub dominant_share: f64,
    pub allocated: Resources,
    pub suppressed: bool,
    pub subscribed: bool,
    pub filters: Vec<FilterInfo>,
    pub filters_total: usize,
    pub constraint_mismatches: Vec<String>,
    pub constraint_mismatches_total: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilterInfo {
    pub agent: String,
    pub role: String,
    pub refused: Resources,
    pub until_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoldInfo {
    pub agent: String,
    pub framework: String,
    pub role: String,
    pub needed: Resources,
    pub free_now: Resources,
    pub since_ms: u64,
    pub expires_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemandExplain {
    pub role: String,
    pub shape: Resources,
    pub count: u32,
    pub same_agent: bool,
}

mod convert {
    use super::*;
    use agora_allocator as a;

    impl From<&a::HoldInfo> for HoldInfo {
        fn from(h: &a::HoldInfo) -> Self {
            HoldInfo {
                agent: h.agent.clone(),
                framework: h.framework.clone(),
                role: h.role.clone(),
                needed: h.needed.clone(),
                free_now: h.free_now.clone(),
                since_ms: h.since_ms,
                expires_ms: h.expires_ms,
            }
        }
    }

    impl From<&a::RoleExplain> for RoleExplain {
        fn from(r: &a::RoleExplain) -> Self {
            RoleExplain {
                role: r.role.clone(),
                weight: r.weight,
                dominant_share: r.dominant_share,
                weighted_share: r.weighted_share,
                allocated: r.allocated.clone(),
                reserved: r.reserved.clone(),
                quota: r.quota.as_ref().map(|q| QuotaExplain {
                    guarantee: q.guarantee.clone(),
                    limit: q.limit.clone(),
                    consumed: q.consumed.clone(),
                    unmet_guarantee: q.unmet_guarantee.clone(),
                    headroom_to_limit: q.headroom_to_limit.clone(),
                    at_limit: q.at_limit,
                }),
                eligible_frameworks: r.eligible_frameworks,
                suppressed_frameworks: r.suppressed_frameworks,
            }
        }
    }

    impl From<&a::FrameworkRoleExplain> for FrameworkRoleExplain {
        fn from(r: &a::FrameworkRoleExplain) -> Self {
            FrameworkRoleExplain {
                role: r.role.clone(),
                dominant_share: r.dominant_share,
                allocated: r.allocated.clone(),
                suppressed: r.suppressed,
                subscribed: r.subscribed,
                filters: r
                    .filters
                    .iter()
                    .map(|f| FilterInfo {
                        agent: f.agent.clone(),
                        role: f.role.clone(),
                        refused: f.refused.clone(),
                        until_ms: f.until_ms,
                    })
                    .collect(),
                filters_total: r.filters_total,
                constraint_mismatches: r.constraint_mismatches.clone(),
                constraint_mismatches_total: r.constraint_mismatches_total,
            }
        }
    }

    impl From<&a::Explanation> for Explanation {
        fn from(e: &a::Explanation) -> Self {
            Explanation {
                kind: e.kind.to_string(),
                at_ms: e.at_ms,
                roles: e.roles.iter().map(Into::into).collect(),
                framework: e.framework.as_ref().map(|f| FrameworkExplain {
                    framework: f.framework.clone(),
                    active: f.active,
                    capabilities: f.capabilities.iter().map(|c| c.to_string()).collect(),
                    min_allocatable: f.min_allocatable.clone(),
                    roles: f.roles.iter().map(Into::into).collect(),
                    demands: f
                        .demands
                        .iter()
                        .map(|d| DemandExplain {
                            role: d.role.clone(),
                            shape: d.shape.clone(),
                            count: d.count,
                            same_agent: d.same_agent,
                        })
                        .collect(),
                    holds: f.holds.iter().map(Into::into).collect(),
                }),
                holds: e.holds.iter().map(Into::into).collect(),
                reasons: e.reasons.clone(),
            }
        }
    }
}

fn text(r: &Resources) -> String {
    if r.is_empty() {
        "nothing".into()
    } else {
        r.to_string()
    }
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn role_words(r: &RoleExplain, out: &mut Vec<String>) {
    out.push(format!(
        "role '{}': weight {}, dominant share {} (weighted {}), allocated {}",
        r.role,
        r.weight,
        percent(r.dominant_share),
        percent(r.weighted_share),
        text(&r.allocated)
    ));
    if !r.reserved.is_empty() {
        out.push(format!("  reserved for it: {}", r.reserved));
    }
    if let Some(q) = &r.quota {
        let limit = q
            .limit
            .as_ref()
            .map_or("none".to_string(), Resources::to_string);
        out.push(format!(
            "  quota: guarantee {}, limit {limit}, consumed {}",
            text(&q.guarantee),
            text(&q.consumed)
        ));
        if !q.unmet_guarantee.is_empty() {
            out.push(format!(
                "  still owed by its guarantee: {}",
                q.unmet_guarantee
            ));
        }
        if q.at_limit {
            out.push("  at its quota limit: offered nothing unreserved".into());
        } else if let Some(h) = &q.headroom_to_limit {
            out.push(format!("  room before its limit: {}", text(h)));
        }
    }
    out.push(format!(
        "  frameworks: {} may get offers now, {} suppressed or inactive",
        r.eligible_frameworks, r.suppressed_frameworks
    ));
}

/// The explanation in words, a line each, for a terminal: what the target has, then why it
/// is or is not offered more. Lines end with `\n`.
pub fn describe(e: &Explanation) -> String {
    let mut out = Vec::new();
    if let Some(f) = &e.framework {
        {
            out.push(format!(
                "framework {} is {}",
                f.framework,
                if f.active {
                    "subscribed"
                } else {
                    "not subscribed (disconnected or inactive)"
                }
            ));
            for r in &f.roles {
                let mut flags = Vec::new();
                if r.suppressed {
                    flags.push("suppressed offers".to_string());
                }
                if !r.subscribed {
                    flags.push("no longer subscribed".to_string());
                }
                out.push(format!(
                    "  in role '{}': its own share {}, allocated {}{}",
                    r.role,
                    percent(r.dominant_share),
                    text(&r.allocated),
                    if flags.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", flags.join(", "))
                    }
                ));
                if r.filters_total > 0 {
                    let agents: Vec<&str> = r.filters.iter().map(|f| f.agent.as_str()).collect();
                    out.push(format!(
                        "    declined and filtered on {} agent(s): {}{}",
                        r.filters_total,
                        agents.join(", "),
                        if r.filters_total > agents.len() {
                            ", ..."
                        } else {
                            ""
                        }
                    ));
                }
                if r.constraint_mismatches_total > 0 {
                    out.push(format!(
                        "    its offer constraints exclude {} agent(s): {}",
                        r.constraint_mismatches_total,
                        r.constraint_mismatches.join(", ")
                    ));
                }
            }
            for d in &f.demands {
                out.push(format!(
                    "  waits for {} x {} in role '{}'{}",
                    d.count,
                    d.shape,
                    d.role,
                    if d.same_agent { " on one agent" } else { "" }
                ));
            }
            if !f.min_allocatable.is_empty() {
                let mins: Vec<String> = f.min_allocatable.iter().map(text).collect();
                out.push(format!(
                    "  offered only when at least one of these is free: {}",
                    mins.join(" | ")
                ));
            }
        }
    }
    for r in &e.roles {
        role_words(r, &mut out);
    }
    for h in &e.holds {
        out.push(format!(
            "held on agent {} for framework {} (role '{}'): needs {}, free now {}",
            h.agent,
            h.framework,
            h.role,
            text(&h.needed),
            text(&h.free_now)
        ));
    }
    if e.reasons.is_empty() {
        out.push(format!(
            "why: nothing holds the {} back; it is offered free resources when its share is the lowest",
            e.kind
        ));
    } else {
        out.push("why:".into());
        out.extend(e.reasons.iter().map(|r| format!("  - {r}")));
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(t: &str) -> Resources {
        Resources::parse(t).expect("valid")
    }

    fn role(name: &str) -> RoleExplain {
        RoleExplain {
            role: name.into(),
            weight: 2.0,
            dominant_share: 0.25,
            weighted_share: 0.125,
            allocated: r("cpus:1"),
            reserved: Resources::new(),
            quota: Some(QuotaExplain {
                guarantee: r("cpus:2"),
                limit: Some(r("cpus:1")),
                consumed: r("cpus:1"),
                unmet_guarantee: r("cpus:1"),
                headroom_to_limit: Some(Resources::new()),
                at_limit: true,
            }),
            eligible_frameworks: 0,
            suppressed_frameworks: 1,
        }
    }

    #[test]
    fn a_role_in_words_names_its_numbers_and_reasons() {
        let e = Explanation {
            kind: "role".into(),
            at_ms: 5,
            roles: vec![role("eng")],
            framework: None,
            holds: vec![],
            reasons: vec!["at quota limit".into()],
        };
        let words = describe(&e);
        assert!(
            words.contains("role 'eng': weight 2, dominant share 25.0% (weighted 12.5%)"),
            "{words}"
        );
        assert!(
            words.contains("quota: guarantee cpus:2, limit cpus:1, consumed cpus:1"),
            "{words}"
        );
        assert!(words.contains("at its quota limit"), "{words}");
        assert!(words.ends_with("why:\n  - at quota limit\n"), "{words}");
        // The JSON form reads back as it was written.
        let json = serde_json::to_value(&e).expect("serialise");
        assert_eq!(json["roles"][0]["quota"]["limit"], r("cpus:1").to_json());
        let back: Explanation = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, e);
    }

    #[test]
    fn a_framework_in_words_names_filters_and_demands() {
        let e = Explanation {
            kind: "framework".into(),
            at_ms: 5,
            roles: vec![role("eng")],
            framework: Some(FrameworkExplain {
                framework: "f1".into(),
                active: false,
                capabilities: vec![],
                min_allocatable: vec![],
                roles: vec![FrameworkRoleExplain {
                    role: "eng".into(),
                    dominant_share: 0.1,
                    allocated: Resources::new(),
                    suppressed: true,
                    subscribed: true,
                    filters: vec![FilterInfo {
                        agent: "a1".into(),
                        role: "eng".into(),
                        refused: r("cpus:1"),
                        until_ms: 9,
                    }],
                    filters_total: 2,
                    constraint_mismatches: vec![],
                    constraint_mismatches_total: 0,
                }],
                demands: vec![DemandExplain {
                    role: "eng".into(),
                    shape: r("cpus:8"),
                    count: 2,
                    same_agent: false,
                }],
                holds: vec![],
            }),
            holds: vec![],
            reasons: vec![],
        };
        let words = describe(&e);
        assert!(
            words.starts_with("framework f1 is not subscribed"),
            "{words}"
        );
        assert!(words.contains("(suppressed offers)"), "{words}");
        assert!(words.contains("filtered on 2 agent(s): a1, ..."), "{words}");
        assert!(words.contains("waits for 2 x cpus:8"), "{words}");
        assert!(
            words.contains("why: nothing holds the framework back"),
            "{words}"
        );
    }
}
