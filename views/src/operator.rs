//! The shape of the operator's role, weight and quota views: `GET /api/v1/roles`,
//! `/api/v1/weights`, `/api/v1/quota`.

use agora_proto::v1::RoleState;
use agora_resources::Resources;
use serde_json::{Value, json};

/// `[{"name", "weight", "dominant_share", "allocated", "frameworks"}]`.
pub fn roles_json(roles: &[RoleState]) -> Value {
    Value::Array(roles.iter().map(crate::state::role_json).collect())
}

/// `[{"role": "spark", "weight": 2.5}]`.
pub fn weights_json<'a>(weights: impl IntoIterator<Item = (&'a str, f64)>) -> Value {
    Value::Array(
        weights
            .into_iter()
            .map(|(role, weight)| json!({ "role": role, "weight": weight }))
            .collect(),
    )
}

/// One role's quota, resources in the flag syntax: `{"role", "guarantee", "limit"
/// (null: none), "consumed"}`.
pub fn quota_json(
    role: &str,
    guarantee: &Resources,
    limit: Option<&Resources>,
    consumed: &Resources,
) -> Value {
    json!({
        "role": role,
        "guarantee": guarantee.to_string(),
        "limit": limit.map(ToString::to_string),
        "consumed": consumed.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_and_weights() {
        let g = Resources::parse("cpus:2;mem:64").expect("valid");
        let v = quota_json("eng", &g, None, &Resources::new());
        assert_eq!(v["guarantee"], "cpus:2;mem:64");
        assert!(v["limit"].is_null());
        assert_eq!(v["consumed"], "");
        let w = weights_json([("a", 1.0), ("b", 2.5)]);
        assert_eq!(w[1]["role"], "b");
        assert_eq!(w[1]["weight"], 2.5);
    }
}
