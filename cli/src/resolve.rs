//! Which agent, framework or task an operator means: an exact id, a name (an agent's
//! hostname, a framework's name), or a unique prefix of an id.
//!
//! [`pick`] is pure and tested; the `*_by` functions fetch the lists it picks from. An id
//! that matches nothing, or more than one thing, is an error listing the candidates; it
//! must never guess.

use serde_json::Value;

use crate::client::{ApiError, Master, encode};

/// Candidates listed in an "ambiguous" message at most.
pub const CANDIDATES_SHOWN_MAX: usize = 10;
/// Tasks read per page while looking for one (the master's page maximum).
pub const TASK_PAGE: usize = 1000;

/// Something an operator can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    /// A second name it answers to exactly (hostname, framework name).
    pub name: String,
    /// How to show it in a list ("ID  (hostname)").
    pub label: String,
    /// For tasks: the framework it belongs to.
    pub framework_id: String,
}

/// The id did not name exactly one thing (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError(pub String);

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResolveError {}

fn ambiguous(what: &str, given: &str, matches: &[&Candidate], hint: &str) -> ResolveError {
    let mut lines: Vec<String> = matches
        .iter()
        .take(CANDIDATES_SHOWN_MAX)
        .map(|c| format!("  {}", c.label))
        .collect();
    if matches.len() > CANDIDATES_SHOWN_MAX {
        lines.push(format!(
            "  ... and {} more",
            matches.len() - CANDIDATES_SHOWN_MAX
        ));
    }
    ResolveError(format!(
        "{what} '{given}' is ambiguous: it matches {} {what}s:\n{}\n{hint}",
        matches.len(),
        lines.join("\n")
    ))
}

/// The one candidate `given` names: an exact id, else an exact name, else a unique id
/// prefix. `what` names the kind in messages ("agent").
pub fn pick<'a>(
    what: &str,
    given: &str,
    candidates: &'a [Candidate],
    hint: &str,
) -> Result<&'a Candidate, ResolveError> {
    if given.is_empty() {
        return Err(ResolveError(format!("no {what} given")));
    }
    let stages: [&dyn Fn(&Candidate) -> bool; 3] = [
        &|c| c.id == given,
        &|c| !c.name.is_empty() && c.name == given,
        &|c| c.id.starts_with(given),
    ];
    for matches_stage in stages {
        let found: Vec<&Candidate> = candidates.iter().filter(|c| matches_stage(c)).collect();
        match found.len() {
            0 => continue,
            1 => return Ok(found[0]),
            _ => return Err(ambiguous(what, given, &found, hint)),
        }
    }
    Err(ResolveError(format!(
        "no {what} matches '{given}' ({} {what}s known; `agora {what}s` lists them)",
        candidates.len()
    )))
}

fn text(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Agents as candidates, from `GET /api/v1/agents`.
pub fn agent_candidates(agents: &Value) -> Vec<Candidate> {
    agents
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| Candidate {
            id: text(a, "id"),
            name: text(a, "hostname"),
            label: format!(
                "{}  ({}, {})",
                text(a, "id"),
                text(a, "hostname"),
                text(a, "status")
            ),
            framework_id: String::new(),
        })
        .collect()
}

/// Frameworks as candidates, from `GET /api/v1/frameworks`.
pub fn framework_candidates(frameworks: &Value) -> Vec<Candidate> {
    frameworks
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| Candidate {
            id: text(f, "id"),
            name: text(f, "name"),
            label: format!(
                "{}  ({}, {})",
                text(f, "id"),
                text(f, "name"),
                text(f, "status")
            ),
            framework_id: String::new(),
        })
        .collect()
}

/// Tasks as candidates (the task views of `GET /api/v1/tasks`).
pub fn task_candidates(tasks: &[Value]) -> Vec<Candidate> {
    tasks
        .iter()
        .map(|t| Candidate {
            id: text(t, "id"),
            name: String::new(),
            label: format!(
                "{}  (framework {}, {})",
                text(t, "id"),
                text(t, "framework_id"),
                text(t, "state")
            ),
            framework_id: text(t, "framework_id"),
        })
        .collect()
}

/// Errors of the fetch-and-pick functions.
#[derive(Debug)]
pub enum LookupError {
    Api(ApiError),
    Resolve(ResolveError),
}

impl From<ApiError> for LookupError {
    fn from(e: ApiError) -> Self {
        LookupError::Api(e)
    }
}

impl From<ResolveError> for LookupError {
    fn from(e: ResolveError) -> Self {
        LookupError::Resolve(e)
    }
}

impl From<LookupError> for anyhow::Error {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::Api(e) => e.into(),
            LookupError::Resolve(e) => e.into(),
        }
    }
}

/// The agent id `given` names (id, hostname or unique id prefix).
pub async fn agent_id(master: &Master, given: &str) -> Result<String, LookupError> {
    let all = master.get("/api/v1/agents").await?;
    let c = agent_candidates(&all);
    Ok(
        pick("agent", given, &c, "give more of the id, or the hostname")?
            .id
            .clone(),
    )
}

/// The framework id `given` names (id, name or unique id prefix).
pub async fn framework_id(master: &Master, given: &str) -> Result<String, LookupError> {
    let all = master.get("/api/v1/frameworks").await?;
    let c = framework_candidates(&all);
    Ok(pick("framework", given, &c, "give more of the id")?
        .id
        .clone())
}

/// Every task matching the filters, all pages (`query`: `framework_id=..&state=..`, may
/// be empty).
pub async fn all_tasks(master: &Master, query: &str) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let page = master
            .get(&format!(
                "/api/v1/tasks?{query}{sep}offset={}&limit={TASK_PAGE}",
                out.len()
            ))
            .await?;
        let tasks = page
            .get("tasks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let total = page.get("total").and_then(Value::as_u64).unwrap_or(0) as usize;
        let got = tasks.len();
        out.extend(tasks);
        if got == 0 || out.len() >= total {
            return Ok(out);
        }
    }
}

/// The (framework id, task id) `given` names, optionally within one framework.
pub async fn task(
    master: &Master,
    given: &str,
    framework: Option<&str>,
) -> Result<(String, String), LookupError> {
    let query = match framework {
        Some(f) => format!("framework_id={}", encode(&framework_id(master, f).await?)),
        None => String::new(),
    };
    let tasks = all_tasks(master, &query).await?;
    let c = task_candidates(&tasks);
    let t = pick(
        "task",
        given,
        &c,
        "give more of the id, or the framework with --framework",
    )?;
    Ok((t.framework_id.clone(), t.id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn agents() -> Vec<Candidate> {
        agent_candidates(&json!([
            {"id": "a1-0001", "hostname": "web-1", "status": "registered"},
            {"id": "a1-0002", "hostname": "web-2", "status": "registered"},
            {"id": "b7-0003", "hostname": "a1", "status": "deactivated"},
        ]))
    }

    #[test]
    fn exact_id_then_name_then_unique_prefix() {
        let c = agents();
        assert_eq!(pick("agent", "a1-0002", &c, "").unwrap().id, "a1-0002");
        assert_eq!(pick("agent", "web-1", &c, "").unwrap().id, "a1-0001");
        // A hostname equal to a prefix of other ids wins over the prefix.
        assert_eq!(pick("agent", "a1", &c, "").unwrap().id, "b7-0003");
        assert_eq!(pick("agent", "b7", &c, "").unwrap().id, "b7-0003");
    }

    #[test]
    fn ambiguous_prefixes_list_the_candidates() {
        let c = agents();
        let e = pick("agent", "a1-", &c, "give more of the id").unwrap_err();
        assert!(
            e.0.starts_with("agent 'a1-' is ambiguous: it matches 2 agents:"),
            "{e}"
        );
        assert!(e.0.contains("  a1-0001  (web-1, registered)"), "{e}");
        assert!(e.0.contains("  a1-0002  (web-2, registered)"), "{e}");
        assert!(e.0.ends_with("give more of the id"), "{e}");
    }

    #[test]
    fn nothing_matching_is_an_error_not_a_guess() {
        let c = agents();
        let e = pick("agent", "zz", &c, "").unwrap_err();
        assert_eq!(
            e.0,
            "no agent matches 'zz' (3 agents known; `agora agents` lists them)"
        );
        assert!(pick("agent", "", &c, "").is_err());
    }

    #[test]
    fn the_same_task_id_in_two_frameworks_is_ambiguous() {
        let c = task_candidates(&[
            json!({"id": "web-0", "framework_id": "f1", "state": "RUNNING"}),
            json!({"id": "web-0", "framework_id": "f2", "state": "FINISHED"}),
            json!({"id": "db-0", "framework_id": "f1", "state": "RUNNING"}),
        ]);
        let e = pick("task", "web-0", &c, "use --framework").unwrap_err();
        assert!(e.0.contains("framework f2, FINISHED"), "{e}");
        let t = pick("task", "d", &c, "").unwrap();
        assert_eq!((t.framework_id.as_str(), t.id.as_str()), ("f1", "db-0"));
    }

    #[test]
    fn long_candidate_lists_are_cut() {
        let many: Vec<Candidate> = (0..15)
            .map(|i| Candidate {
                id: format!("x{i:02}"),
                name: String::new(),
                label: format!("x{i:02}"),
                framework_id: String::new(),
            })
            .collect();
        let e = pick("agent", "x", &many, "").unwrap_err();
        assert!(e.0.contains("... and 5 more"), "{e}");
    }
}
