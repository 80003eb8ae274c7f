//! The dependency graph between jobs, on petgraph: an edge `parent -> child` says the child
//! runs after the parent succeeds. The graph is always a DAG.
//!
//! Owns the graph's shape: which jobs exist as nodes, their parents and children, cycle
//! refusal (naming the cycle), descendants in dependency order, and the JSON and DOT
//! exports. Pure. It must never decide *when* a job runs (the engine applies Chronos's
//! rule with the run history) and never hold a cycle, not even for a moment: a change is
//! checked completely before it is made.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::Direction;
use petgraph::algo::{astar, toposort};
use petgraph::dot::{Config, Dot};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{Dfs, EdgeRef, IntoEdgeReferences};
use serde::Serialize;

/// A refused graph change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DagError {
    /// A parent that is not a job.
    #[error("unknown parent job {parent:?}")]
    UnknownParent { index: usize, parent: String },
    /// The change would close a cycle; `cycle` lists it, first job repeated at the end.
    #[error("adding parent {parent:?} to {job:?} closes the cycle {}", cycle.join(" -> "))]
    Cycle {
        index: usize,
        job: String,
        parent: String,
        cycle: Vec<String>,
    },
    /// The job still has children.
    #[error("jobs {} depend on {job:?}", children.join(", "))]
    HasChildren { job: String, children: Vec<String> },
}

/// One node of the exported graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphNode {
    pub id: String,
    /// What the engine says about the job (e.g. `SUCCESS`, `FAILED`, `BLOCKED`, `IDLE`).
    pub status: String,
}

/// One edge of the exported graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphEdge {
    pub parent: String,
    pub child: String,
}

/// The exported graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphExport {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

/// The job graph.
#[derive(Debug, Clone, Default)]
pub struct Dag {
    graph: StableDiGraph<String, ()>,
    index: HashMap<String, NodeIndex>,
}

impl Dag {
    /// An empty graph.
    pub fn new() -> Dag {
        Dag::default()
    }

    /// Whether `job` is a node.
    pub fn contains(&self, job: &str) -> bool {
        self.index.contains_key(job)
    }

    fn node(&mut self, job: &str) -> NodeIndex {
        if let Some(&n) = self.index.get(job) {
            return n;
        }
        let n = self.graph.add_node(job.to_string());
        self.index.insert(job.to_string(), n);
        n
    }

    /// Check that `job` (existing or about to be added) may have exactly `parents`:
    /// every parent is a node (or `job` itself is refused earlier by validation), and
    /// no parent is reachable from `job`. Changes nothing.
    pub fn check_parents(&self, job: &str, parents: &[String]) -> Result<(), DagError> {
        for (index, parent) in parents.iter().enumerate() {
            let Some(&p) = self.index.get(parent) else {
                return Err(DagError::UnknownParent {
                    index,
                    parent: parent.clone(),
                });
            };
            let Some(&j) = self.index.get(job) else {
                continue; // a new job has no children yet: no cycle possible
            };
            if let Some((_, path)) = astar(&self.graph, j, |n| n == p, |_| 1u32, |_| 0u32) {
                // job -> ... -> parent, and the new edge parent -> job closes it.
                let mut cycle: Vec<String> = path.iter().map(|n| self.graph[*n].clone()).collect();
                cycle.push(job.to_string());
                return Err(DagError::Cycle {
                    index,
                    job: job.to_string(),
                    parent: parent.clone(),
                    cycle,
                });
            }
        }
        Ok(())
    }

    /// Make `job` a node whose parents are exactly `parents` (checked first; on error
    /// nothing changes).
    pub fn set_parents(&mut self, job: &str, parents: &[String]) -> Result<(), DagError> {
        self.check_parents(job, parents)?;
        let j = self.node(job);
        let old: Vec<_> = self
            .graph
            .edges_directed(j, Direction::Incoming)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.graph.remove_edge(e);
        }
        for parent in parents {
            let p = self.index[parent.as_str()];
            self.graph.add_edge(p, j, ());
        }
        Ok(())
    }

    /// Remove `job`; refused while other jobs depend on it.
    pub fn remove(&mut self, job: &str) -> Result<(), DagError> {
        let children = self.children(job);
        if !children.is_empty() {
            return Err(DagError::HasChildren {
                job: job.to_string(),
                children,
            });
        }
        if let Some(n) = self.index.remove(job) {
            self.graph.remove_node(n);
        }
        Ok(())
    }

    fn neighbours(&self, job: &str, dir: Direction) -> Vec<String> {
        let Some(&n) = self.index.get(job) else {
            return Vec::new();
        };
        let mut out: Vec<String> = self
            .graph
            .neighbors_directed(n, dir)
            .map(|m| self.graph[m].clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The jobs `job` depends on, sorted.
    pub fn parents(&self, job: &str) -> Vec<String> {
        self.neighbours(job, Direction::Incoming)
    }

    /// The jobs that depend on `job`, sorted.
    pub fn children(&self, job: &str) -> Vec<String> {
        self.neighbours(job, Direction::Outgoing)
    }

    /// Every job downstream of `job` (not `job` itself), parents before children.
    pub fn descendants_in_order(&self, job: &str) -> Vec<String> {
        let Some(&start) = self.index.get(job) else {
            return Vec::new();
        };
        let mut reachable = BTreeSet::new();
        let mut dfs = Dfs::new(&self.graph, start);
        while let Some(n) = dfs.next(&self.graph) {
            if n != start {
                reachable.insert(n);
            }
        }
        // The graph is acyclic by construction, so toposort cannot fail; an empty order
        // would only under-report.
        toposort(&self.graph, None)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| reachable.contains(n))
            .map(|n| self.graph[n].clone())
            .collect()
    }

    /// Nodes (sorted by id) and edges, with each node's status from `status`.
    pub fn export(&self, status: impl Fn(&str) -> String) -> GraphExport {
        let mut nodes: Vec<GraphNode> = self
            .index
            .keys()
            .map(|id| GraphNode {
                id: id.clone(),
                status: status(id),
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut edges: Vec<GraphEdge> = self
            .graph
            .edge_references()
            .map(|e| GraphEdge {
                parent: self.graph[e.source()].clone(),
                child: self.graph[e.target()].clone(),
            })
            .collect();
        edges.sort_by(|a, b| (&a.parent, &a.child).cmp(&(&b.parent, &b.child)));
        GraphExport { nodes, edges }
    }

    /// Graphviz DOT: one node per job, coloured by `status` (green SUCCESS, red FAILED,
    /// orange BLOCKED, blue ACTIVE).
    pub fn to_dot(&self, status: impl Fn(&str) -> String) -> String {
        let statuses: BTreeMap<&str, String> = self
            .index
            .keys()
            .map(|id| (id.as_str(), status(id)))
            .collect();
        let node_attrs = |_: &StableDiGraph<String, ()>, (_, id): (NodeIndex, &String)| {
            let s = statuses.get(id.as_str()).map(String::as_str).unwrap_or("");
            let colour = match s {
                "SUCCESS" => "green",
                "FAILED" => "red",
                "BLOCKED" => "orange",
                "ACTIVE" => "blue",
                _ => "black",
            };
            format!("color={colour} tooltip=\"{s}\"")
        };
        format!(
            "{:?}",
            Dot::with_attr_getters(
                &self.graph,
                &[Config::EdgeNoLabel],
                &|_, _| String::new(),
                &node_attrs,
            )
        )
    }

    /// Number of jobs.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no jobs.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn chain() -> Dag {
        let mut d = Dag::new();
        d.set_parents("a", &[]).unwrap();
        d.set_parents("b", &ids(&["a"])).unwrap();
        d.set_parents("c", &ids(&["b"])).unwrap();
        d
    }

    #[test]
    fn parents_children_and_descendants_in_order() {
        let mut d = chain();
        d.set_parents("x", &[]).unwrap();
        d.set_parents("d", &ids(&["a", "x"])).unwrap();
        assert_eq!(d.parents("d"), ids(&["a", "x"]));
        assert_eq!(d.children("a"), ids(&["b", "d"]));
        let order = d.descendants_in_order("a");
        assert_eq!(order.len(), 3);
        let pos = |j: &str| order.iter().position(|x| x == j).unwrap();
        assert!(pos("b") < pos("c"));
        assert!(d.descendants_in_order("c").is_empty());
    }

    #[test]
    fn a_cycle_is_refused_and_named_and_nothing_changes() {
        let mut d = chain();
        let before = d.export(|_| String::new());
        let e = d.set_parents("a", &ids(&["c"])).unwrap_err();
        assert_eq!(
            e,
            DagError::Cycle {
                index: 0,
                job: "a".into(),
                parent: "c".into(),
                cycle: ids(&["a", "b", "c", "a"]),
            }
        );
        assert!(e.to_string().contains("a -> b -> c -> a"), "{e}");
        assert_eq!(d.export(|_| String::new()), before);
        // Replacing b's parents still cannot make b its own ancestor.
        assert!(matches!(
            d.set_parents("b", &ids(&["c"])),
            Err(DagError::Cycle { .. })
        ));
    }

    #[test]
    fn unknown_parent_and_removal_with_children_are_refused() {
        let mut d = chain();
        assert_eq!(
            d.set_parents("z", &ids(&["a", "nope"])),
            Err(DagError::UnknownParent {
                index: 1,
                parent: "nope".into()
            })
        );
        assert!(!d.contains("z"), "a refused change adds nothing");
        assert!(matches!(d.remove("a"), Err(DagError::HasChildren { .. })));
        d.remove("c").unwrap();
        assert_eq!(d.children("b"), Vec::<String>::new());
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn replacing_parents_drops_old_edges() {
        let mut d = chain();
        d.set_parents("x", &[]).unwrap();
        d.set_parents("c", &ids(&["x"])).unwrap();
        assert_eq!(d.children("b"), Vec::<String>::new());
        assert_eq!(d.parents("c"), ids(&["x"]));
    }

    #[test]
    fn exports_json_and_dot() {
        let d = chain();
        let g = d.export(|id| {
            if id == "a" {
                "FAILED".into()
            } else {
                "BLOCKED".into()
            }
        });
        assert_eq!(
            serde_json::to_value(&g).unwrap(),
            serde_json::json!({
                "nodes": [
                    {"id": "a", "status": "FAILED"},
                    {"id": "b", "status": "BLOCKED"},
                    {"id": "c", "status": "BLOCKED"},
                ],
                "edges": [
                    {"parent": "a", "child": "b"},
                    {"parent": "b", "child": "c"},
                ],
            })
        );
        let dot = d.to_dot(|id| {
            if id == "a" {
                "FAILED".into()
            } else {
                "IDLE".into()
            }
        });
        assert!(dot.starts_with("digraph {"), "{dot}");
        assert!(
            dot.contains("label = \"\\\"a\\\"\"") || dot.contains("\"a\""),
            "{dot}"
        );
        assert!(dot.contains("color=red"), "{dot}");
        assert_eq!(dot.matches("->").count(), 2, "{dot}");
    }

    use proptest::prelude::*;

    proptest! {
        /// Whatever edges are asked for, the graph stays acyclic, and every refusal of a
        /// cycle names a real path closing on the new edge.
        #[test]
        fn random_edges_never_make_a_cycle(edges in prop::collection::vec((0usize..8, 0usize..8), 0..40)) {
            let mut d = Dag::new();
            let name = |i: usize| format!("j{i}");
            for i in 0..8 { d.set_parents(&name(i), &[]).unwrap(); }
            let mut parents: Vec<Vec<String>> = vec![Vec::new(); 8];
            for (p, c) in edges {
                if p == c || parents[c].contains(&name(p)) { continue; }
                let mut want = parents[c].clone();
                want.push(name(p));
                match d.set_parents(&name(c), &want) {
                    Ok(()) => parents[c] = want,
                    Err(DagError::Cycle { cycle, .. }) => {
                        prop_assert_eq!(cycle.first(), cycle.last());
                        prop_assert_eq!(cycle.first().unwrap(), &name(c));
                        for w in cycle.windows(2) {
                            // every hop is an existing edge, except the refused one.
                            let existing = d.children(&w[0]).contains(&w[1]);
                            let refused = w[0] == name(p) && w[1] == name(c);
                            prop_assert!(existing || refused, "{:?}", cycle);
                        }
                    }
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
            prop_assert!(toposort(&d.graph, None).is_ok());
        }
    }
}
