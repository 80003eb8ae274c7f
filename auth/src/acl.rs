//! Authorisation: the ACL file (`--acls`) and the pure decision "may principal P do action
//! A on object O". Rules are listed per action; the first rule whose principals and objects
//! both match decides (a rule whose objects are `"NONE"` matches every object and denies);
//! when no rule matches, the answer is `permissive` (default false: deny).
//!
//! Owns the file format and the decision only. It must never do I/O, read a clock or
//! know where a check is made: callers pass the action, the caller's principal (`None`
//! for an unauthenticated caller, matched only by `"ANY"`) and the object.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

/// Everything an ACL can govern, with the object each one is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Subscribe with a role (object: each role of the framework).
    RegisterFramework,
    /// Launch a task (object: the OS user it runs as: the command's, else the framework's).
    RunTask,
    /// Dynamically reserve resources (object: the reservation's role).
    ReserveResources,
    /// Unreserve (object: the principal that made the reservation).
    UnreserveResources,
    /// Create a persistent volume (object: the role of the volume's resources).
    CreateVolume,
    /// Destroy a persistent volume (object: the principal that created it).
    DestroyVolume,
    /// Set or remove a role's quota (object: the role).
    SetQuota,
    /// Change a role's weight (object: the role).
    UpdateWeights,
    /// Tear a framework down as an operator (object: the framework's principal).
    TeardownFramework,
    /// See a framework in state views (object: the framework's user).
    ViewFrameworks,
    /// See a task in state views (object: the task's user).
    ViewTasks,
    /// Read a task sandbox (object: the task's user).
    AccessSandbox,
    /// Drain, deactivate, reactivate or mark an agent gone (object: the agent id).
    DrainAgent,
    /// Register an agent (object: the agent's hostname).
    RegisterAgent,
}

impl Action {
    pub const ALL: [Action; 14] = [
        Action::RegisterFramework,
        Action::RunTask,
        Action::ReserveResources,
        Action::UnreserveResources,
        Action::CreateVolume,
        Action::DestroyVolume,
        Action::SetQuota,
        Action::UpdateWeights,
        Action::TeardownFramework,
        Action::ViewFrameworks,
        Action::ViewTasks,
        Action::AccessSandbox,
        Action::DrainAgent,
        Action::RegisterAgent,
    ];

    /// The name used in the ACL file and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Action::RegisterFramework => "register_framework",
            Action::RunTask => "run_task",
            Action::ReserveResources => "reserve_resources",
            Action::UnreserveResources => "unreserve_resources",
            Action::CreateVolume => "create_volume",
            Action::DestroyVolume => "destroy_volume",
            Action::SetQuota => "set_quota",
            Action::UpdateWeights => "update_weights",
            Action::TeardownFramework => "teardown_framework",
            Action::ViewFrameworks => "view_frameworks",
            Action::ViewTasks => "view_tasks",
            Action::AccessSandbox => "access_sandbox",
            Action::DrainAgent => "drain_agent",
            Action::RegisterAgent => "register_agent",
        }
    }

    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principals {
    /// Every caller, authenticated or not.
    Any,
    Some(Vec<String>),
}

/// What a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Objects {
    /// Every object: the rule allows.
    Any,
    /// Every object: the rule denies.
    None,
    /// These objects exactly: the rule allows them and does not match others.
    Some(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub principals: Principals,
    pub objects: Objects,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AclError {
    #[error("acls: not valid JSON: {0}")]
    Json(String),
    #[error("acls: the top level must be a JSON object of action name -> list of rules")]
    NotObject,
    #[error("acls: unknown action '{0}' (known: {known})", known = known_actions())]
    UnknownAction(String),
    #[error("acls: 'permissive' must be true or false")]
    Permissive,
    #[error("acls: {action}: the rules must be a JSON list")]
    NotList { action: String },
    #[error("acls: {action} rule {index}: {reason}")]
    BadRule {
        action: String,
        index: usize,
        reason: String,
    },
}

fn known_actions() -> String {
    Action::ALL
        .iter()
        .map(|a| a.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The outcome of a check, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied by rule `index` of the action, or (`None`) because no rule matched.
    Deny {
        rule: Option<usize>,
    },
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// A parsed ACL file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acls {
    pub permissive: bool,
    pub rules: BTreeMap<Action, Vec<Rule>>,
}

fn string_list(v: &serde_json::Value, what: &str, none_ok: bool) -> Result<Objects, String> {
    use serde_json::Value;
    match v {
        Value::String(s) if s == "ANY" => Ok(Objects::Any),
        Value::String(s) if s == "NONE" && none_ok => Ok(Objects::None),
        Value::String(s) => Err(format!(
            "{what} must be a list of strings or {}, got the string '{s}'",
            if none_ok {
                "\"ANY\" or \"NONE\""
            } else {
                "\"ANY\""
            }
        )),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(format!("{what} is an empty list (it would match nothing)"));
            }
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) if !s.is_empty() => out.push(s.clone()),
                    Value::String(_) => return Err(format!("{what} lists an empty string")),
                    other => return Err(format!("{what} lists a non-string: {other}")),
                }
            }
            Ok(Objects::Some(out))
        }
        other => Err(format!(
            "{what} must be a list of strings or \"ANY\", got {other}"
        )),
    }
}

impl Acls {
    /// Parse the ACL file's text:
    /// `{"permissive": false, "register_framework": [{"principals": ["a"], "objects": ["r"]}]}`.
    pub fn parse(text: &str) -> Result<Acls, AclError> {
        use serde_json::Value;
        let doc: Value = serde_json::from_str(text).map_err(|e| AclError::Json(e.to_string()))?;
        let Value::Object(map) = doc else {
            return Err(AclError::NotObject);
        };
        let mut acls = Acls::default();
        for (key, value) in map {
            if key == "permissive" {
                acls.permissive = value.as_bool().ok_or(AclError::Permissive)?;
                continue;
            }
            let action =
                Action::from_name(&key).ok_or_else(|| AclError::UnknownAction(key.clone()))?;
            let Value::Array(items) = value else {
                return Err(AclError::NotList { action: key });
            };
            let mut rules = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let bad = |reason: String| AclError::BadRule {
                    action: key.clone(),
                    index,
                    reason,
                };
                let Value::Object(fields) = item else {
                    return Err(bad(
                        "a rule must be an object with \"principals\" and \"objects\"".into(),
                    ));
                };
                if let Some(k) = fields
                    .keys()
                    .find(|k| *k != "principals" && *k != "objects")
                {
                    return Err(bad(format!(
                        "unknown field '{k}' (a rule has \"principals\" and \"objects\")"
                    )));
                }
                let principals = match fields.get("principals") {
                    None => return Err(bad("missing \"principals\"".into())),
                    Some(v) => match string_list(v, "principals", false).map_err(&bad)? {
                        Objects::Any => Principals::Any,
                        Objects::Some(list) => Principals::Some(list),
                        Objects::None => Principals::Some(Vec::new()),
                    },
                };
                let objects = match fields.get("objects") {
                    None => return Err(bad("missing \"objects\"".into())),
                    Some(v) => string_list(v, "objects", true).map_err(&bad)?,
                };
                rules.push(Rule {
                    principals,
                    objects,
                });
            }
            acls.rules.insert(action, rules);
        }
        Ok(acls)
    }

    /// May `principal` (None: unauthenticated) do `action` on `object`?
    pub fn decide(&self, principal: Option<&str>, action: Action, object: &str) -> Decision {
        let rules = self.rules.get(&action).map(Vec::as_slice).unwrap_or(&[]);
        for (index, rule) in rules.iter().enumerate() {
            let subject = match (&rule.principals, principal) {
                (Principals::Any, _) => true,
                (Principals::Some(list), Some(p)) => list.iter().any(|x| x == p),
                (Principals::Some(_), None) => false,
            };
            if !subject {
                continue;
            }
            match &rule.objects {
                Objects::Any => return Decision::Allow,
                Objects::None => return Decision::Deny { rule: Some(index) },
                Objects::Some(list) if list.iter().any(|x| x == object) => {
                    return Decision::Allow;
                }
                Objects::Some(_) => {}
            }
        }
        if self.permissive {
            Decision::Allow
        } else {
            Decision::Deny { rule: None }
        }
    }
}

/// The refusal message: names the principal, the action and the object, and why.
pub fn denial_message(
    principal: Option<&str>,
    action: Action,
    object: &str,
    d: &Decision,
) -> String {
    let who = match principal {
        Some(p) => format!("principal '{p}'"),
        None => "an unauthenticated caller".to_string(),
    };
    let why = match d {
        Decision::Allow => "allowed".to_string(),
        Decision::Deny { rule: Some(i) } => format!("denied by {action} rule {i}"),
        Decision::Deny { rule: None } => format!("no {action} rule allows it"),
    };
    format!("{who} is not authorized to {action} on '{object}' ({why})")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: &str = "alice";
    const DENIED: &str = "mallory";
    const OBJECT: &str = "obj";

    /// One rule per action: only `alice`, only `obj`. An explicit NONE rule for mallory.
    fn matrix_acls() -> Acls {
        let mut doc = serde_json::Map::new();
        for a in Action::ALL {
            doc.insert(
                a.name().to_string(),
                serde_json::json!([
                    {"principals": [DENIED], "objects": "NONE"},
                    {"principals": [ALLOWED], "objects": [OBJECT]},
                ]),
            );
        }
        Acls::parse(&serde_json::Value::Object(doc).to_string()).expect("valid")
    }

    #[test]
    fn acl_matrix_every_action_allowed_denied_and_unconfigured() {
        let acls = matrix_acls();
        let none = Acls {
            permissive: true,
            ..Acls::default()
        };
        for a in Action::ALL {
            assert_eq!(
                acls.decide(Some(ALLOWED), a, OBJECT),
                Decision::Allow,
                "{a}"
            );
            assert_eq!(
                acls.decide(Some(DENIED), a, OBJECT),
                Decision::Deny { rule: Some(0) },
                "{a}"
            );
            // Allowed principal, other object: no rule matches: deny by default.
            assert_eq!(
                acls.decide(Some(ALLOWED), a, "other"),
                Decision::Deny { rule: None },
                "{a}"
            );
            assert_eq!(
                acls.decide(None, a, OBJECT),
                Decision::Deny { rule: None },
                "{a}"
            );
            // No ACLs configured is modelled by the caller as "no check"; an empty
            // permissive file allows all the same.
            assert_eq!(none.decide(Some(DENIED), a, OBJECT), Decision::Allow, "{a}");
            assert_eq!(none.decide(None, a, OBJECT), Decision::Allow, "{a}");
            // Configured but without a rule for the action: denied.
            assert_eq!(
                Acls::default().decide(Some(ALLOWED), a, OBJECT),
                Decision::Deny { rule: None },
                "{a}"
            );
        }
    }

    #[test]
    fn first_matching_rule_wins_and_any_none_work() {
        let acls = Acls::parse(
            r#"{
              "run_task": [
                {"principals": ["ops"], "objects": "ANY"},
                {"principals": "ANY", "objects": ["nobody"]},
                {"principals": ["ops", "dev"], "objects": "NONE"}
              ],
              "set_quota": [
                {"principals": ["dev"], "objects": "NONE"},
                {"principals": ["dev"], "objects": ["dev-role"]}
              ]
            }"#,
        )
        .expect("valid");
        assert!(acls.decide(Some("ops"), Action::RunTask, "root").allowed());
        assert!(
            acls.decide(Some("dev"), Action::RunTask, "nobody")
                .allowed()
        );
        assert!(acls.decide(None, Action::RunTask, "nobody").allowed());
        assert_eq!(
            acls.decide(Some("dev"), Action::RunTask, "root"),
            Decision::Deny { rule: Some(2) }
        );
        assert_eq!(
            acls.decide(Some("eve"), Action::RunTask, "root"),
            Decision::Deny { rule: None }
        );
        // The NONE rule comes first, so the later allow never applies.
        assert_eq!(
            acls.decide(Some("dev"), Action::SetQuota, "dev-role"),
            Decision::Deny { rule: Some(0) }
        );
        let permissive = Acls::parse(
            r#"{"permissive": true, "run_task": [{"principals": ["x"], "objects": "NONE"}]}"#,
        )
        .expect("valid");
        assert!(
            permissive
                .decide(Some("y"), Action::RunTask, "root")
                .allowed()
        );
        assert!(
            !permissive
                .decide(Some("x"), Action::RunTask, "root")
                .allowed()
        );
    }

    #[test]
    fn denial_message_names_principal_action_and_object() {
        let acls = matrix_acls();
        let d = acls.decide(Some(DENIED), Action::SetQuota, "eng");
        assert_eq!(
            denial_message(Some(DENIED), Action::SetQuota, "eng", &d),
            "principal 'mallory' is not authorized to set_quota on 'eng' (denied by set_quota rule 0)"
        );
        let d = acls.decide(None, Action::RunTask, "root");
        assert_eq!(
            denial_message(None, Action::RunTask, "root", &d),
            "an unauthenticated caller is not authorized to run_task on 'root' (no run_task rule allows it)"
        );
    }

    #[test]
    fn bad_files_are_refused_precisely() {
        let err = |t: &str| Acls::parse(t).expect_err(t).to_string();
        assert!(err("nope").starts_with("acls: not valid JSON"));
        assert!(err("[]").contains("top level must be a JSON object"));
        assert!(
            err(r#"{"launch": []}"#)
                .starts_with("acls: unknown action 'launch' (known: register_framework, run_task")
        );
        assert_eq!(
            err(r#"{"permissive": "yes"}"#),
            "acls: 'permissive' must be true or false"
        );
        assert_eq!(
            err(r#"{"run_task": {}}"#),
            "acls: run_task: the rules must be a JSON list"
        );
        assert!(err(r#"{"run_task": [1]}"#).contains("run_task rule 0: a rule must be an object"));
        assert!(err(r#"{"run_task": [{"objects": "ANY"}]}"#).contains("missing \"principals\""));
        assert!(err(r#"{"run_task": [{"principals": "ANY"}]}"#).contains("missing \"objects\""));
        assert!(
            err(r#"{"run_task": [{"principals": "NONE", "objects": "ANY"}]}"#)
                .contains("got the string 'NONE'")
        );
        assert!(
            err(r#"{"run_task": [{"principals": [], "objects": "ANY"}]}"#).contains("empty list")
        );
        assert!(
            err(r#"{"run_task": [{"principals": [""], "objects": "ANY"}]}"#)
                .contains("empty string")
        );
        assert!(
            err(r#"{"run_task": [{"principals": [1], "objects": "ANY"}]}"#).contains("non-string")
        );
        assert!(
            err(r#"{"run_task": [{"principals": "ANY", "objects": "all"}]}"#)
                .contains("got the string 'all'")
        );
        assert!(
            err(r#"{"run_task": [{"principals": "ANY", "objects": "ANY", "x": 1}]}"#)
                .contains("unknown field 'x'")
        );
        assert!(
            err(r#"{"run_task": [{"principals": "ANY", "objects": 3}]}"#)
                .contains("must be a list")
        );
    }

    #[test]
    fn every_action_name_round_trips() {
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(a));
        }
        assert_eq!(Action::from_name("RUN_TASK"), None);
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics_on_any_text(text in "\\PC{0,200}") {
            let _ = Acls::parse(&text);
        }

        #[test]
        fn parser_never_panics_on_acl_shaped_json(
            action in proptest::sample::select(vec!["run_task", "set_quota", "bogus", "permissive"]),
            principals in proptest::sample::select(vec![r#""ANY""#, r#""NONE""#, r#"["a"]"#, "[]", "[1]", "null", r#"{"a":1}"#]),
            objects in proptest::sample::select(vec![r#""ANY""#, r#""NONE""#, r#"["a",""]"#, "[]", "3", "true"]),
            who in proptest::option::of("[a-z]{0,3}"),
            object in "[a-z]{0,3}",
        ) {
            let text = format!(r#"{{"{action}": [{{"principals": {principals}, "objects": {objects}}}]}}"#);
            if let Ok(acls) = Acls::parse(&text) {
                for a in Action::ALL {
                    let _ = acls.decide(who.as_deref(), a, &object);
                }
            }
        }
    }
}
