//! Service discovery's view of the core: for each app, the instances clients may be sent
//! to (the core's [`Core::discoverable`]: ready instances, and during a blue/green
//! deployment only one version's), with their address and ports, under DNS names.
//!
//! Names: an app `/group/app` is `app.group.<domain>` (its path segments reversed, as
//! Mesos-DNS named tasks); an instance is `<instance>.app.group.<domain>`, `<instance>`
//! being its task id's last part (`18c2f0a1b2c-7`). A [`Zone`] is a snapshot the DNS
//! server answers from; the service actor builds a new one when the core changed.
//!
//! Pure: this module must never do I/O or resolve names (agent addresses come from the
//! cluster view the daemon fetched).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::core::Core;

/// The default domain apps are named under.
pub const DEFAULT_DOMAIN: &str = "agora";

/// One instance as discovery lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Its DNS label (unique within the app).
    pub label: String,
    /// The agent's address; `None` when unknown (no A record, SRV still lists the port).
    pub ip: Option<IpAddr>,
    /// Host ports in `portDefinitions` order.
    pub ports: Vec<u16>,
}

/// One app's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppEntry {
    /// The app id.
    pub app_id: String,
    /// Port names and protocols in `portDefinitions` order (`_name._tcp.<app>` SRV names).
    pub ports: Vec<(Option<String>, String)>,
    /// The listed instances, by label.
    pub endpoints: Vec<Endpoint>,
}

/// Everything discovery answers, by lower-case fully qualified app name (`web.prod.agora.`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Zone {
    /// The domain, fully qualified and lower case (`agora.`).
    pub domain: String,
    /// Apps by name.
    pub apps: BTreeMap<String, AppEntry>,
}

/// `domain` as a lower-case fully qualified name (`agora` -> `agora.`).
pub fn fqdn(domain: &str) -> String {
    let d = domain.trim_matches('.').to_ascii_lowercase();
    format!("{d}.")
}

/// The DNS name of an app: `/group/app` under `agora.` -> `app.group.agora.`.
pub fn app_name(app_id: &str, domain_fqdn: &str) -> String {
    let mut labels: Vec<&str> = app_id.split('/').filter(|s| !s.is_empty()).collect();
    labels.reverse();
    format!("{}.{domain_fqdn}", labels.join("."))
}

/// An instance's DNS label from its task id (`web_prod.18c2f0a1b2c-7` -> `18c2f0a1b2c-7`):
/// lower-case letters, digits and `-` only, at most 63 bytes.
pub fn instance_label(task_id: &str) -> String {
    let last = task_id.rsplit('.').next().unwrap_or(task_id);
    let label: String = last
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(63)
        .collect();
    if label.is_empty() {
        "instance".into()
    } else {
        label
    }
}

/// The zone of the core's apps under `domain`. An instance's address is its agent's from
/// the cluster view, or its hostname when that is an IP address.
pub fn zone(core: &Core, domain: &str) -> Zone {
    let domain = fqdn(domain);
    let mut apps = BTreeMap::new();
    for (id, app) in core.apps() {
        let mut endpoints: Vec<Endpoint> = core
            .discoverable(id)
            .into_iter()
            .map(|i| Endpoint {
                label: instance_label(&i.task_id),
                ip: core
                    .agent(&i.agent_id)
                    .and_then(|a| a.ip)
                    .or_else(|| i.host.parse().ok()),
                ports: i.ports.clone(),
            })
            .collect();
        endpoints.sort_by(|a, b| a.label.cmp(&b.label));
        apps.insert(
            app_name(id, &domain),
            AppEntry {
                app_id: id.clone(),
                ports: app
                    .def
                    .port_definitions
                    .iter()
                    .map(|p| (p.name.clone(), p.protocol.clone()))
                    .collect(),
                endpoints,
            },
        );
    }
    Zone { domain, apps }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(fqdn("agora"), "agora.");
        assert_eq!(fqdn("Example.COM."), "example.com.");
        assert_eq!(app_name("/web", "agora."), "web.agora.");
        assert_eq!(app_name("/prod/eu/web", "agora."), "web.eu.prod.agora.");
        assert_eq!(instance_label("prod_web.18c2f0a1b2c-7"), "18c2f0a1b2c-7");
        assert_eq!(instance_label("odd"), "odd");
        assert_eq!(instance_label("x._"), "instance");
    }
}
