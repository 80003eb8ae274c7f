//! Security at the master's edge: authentication (shared-secret credentials on every call),
//! authorisation (ACLs), per-principal rate limits on scheduler calls, and TLS.
//!
//! `Gate` is the one object the server, the gRPC services and the HTTP handlers consult.
//! Its middleware runs before any handler: it authenticates the `authorization` header,
//! refuses what must be refused (UNAUTHENTICATED / 401, RESOURCE_EXHAUSTED / 429) and
//! attaches the `Caller` to the request. Handlers then call `authorize` before sending
//! the actor anything, so a refused call never changes state.
//!
//! It must never mutate master state, never log a secret, and never let a request that
//! needs authentication through without a verified principal.

pub use agora_auth::{acl, credentials};
pub mod rate;
pub mod tls;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use agora_proto::auth::{AUTHORIZATION, Credential};
use agora_proto::v1;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use thiserror::Error;
use tonic::{Code, Status};

use crate::service::Error as Refusal;

pub use acl::{Acls, Action};
pub use credentials::Credentials;
pub use rate::RateLimits;
pub use tls::TlsFiles;

use crate::clock::Clock;

/// Security settings; all off by default (the embedded local cluster needs none).
#[derive(Clone, Debug, Default)]
pub struct SecurityConfig {
    /// Principals and secrets (`--credentials`).
    pub credentials: Option<Credentials>,
    /// Scheduler API calls need credentials.
    pub authenticate_frameworks: bool,
    /// Agent API calls need credentials.
    pub authenticate_agents: bool,
    /// Operator API (gRPC) and HTTP endpoints other than `/health` need credentials.
    pub authenticate_http: bool,
    /// `None`: everything is allowed.
    pub acls: Option<Acls>,
    /// `None`: no limit.
    pub rate_limits: Option<RateLimits>,
    /// `None`: plain text.
    pub tls: Option<TlsFiles>,
    /// `Some`: the sandbox proxy reaches agents' `--listen` endpoints over TLS only,
    /// verified against these CAs (`--agent-tls-ca`); `None`: plain HTTP.
    pub agent_tls: Option<tls::ClientTls>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecurityError {
    #[error("{0} needs --credentials (the principals and secrets to check against)")]
    NoCredentials(&'static str),
}

impl SecurityConfig {
    /// Settings that cannot work together.
    pub fn check(&self) -> Result<(), SecurityError> {
        if self.credentials.is_none() {
            for (on, flag) in [
                (self.authenticate_frameworks, "--authenticate-frameworks"),
                (self.authenticate_agents, "--authenticate-agents"),
                (self.authenticate_http, "--authenticate-http"),
            ] {
                if on {
                    return Err(SecurityError::NoCredentials(flag));
                }
            }
        }
        Ok(())
    }
}

/// Who made a request: the authenticated principal, or `None` (no or unchecked
/// credentials, when authentication is off for that API).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller(pub Option<String>);

impl Caller {
    pub fn principal(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The caller a tonic request carries (set by the middleware; absent in unit tests
    /// that call a service directly, which then count as unauthenticated).
    pub fn of<T>(r: &tonic::Request<T>) -> Caller {
        r.extensions().get::<Caller>().cloned().unwrap_or_default()
    }

    fn describe(&self) -> String {
        match &self.0 {
            Some(p) => format!("principal '{p}'"),
            None => "an unauthenticated caller".into(),
        }
    }
}

/// Which API a request belongs to, by path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Scheduler,
    Agent,
    /// Operator gRPC service and HTTP endpoints.
    Operator,
    /// `/health`: always open, for load balancers and liveness probes.
    Open,
}

impl Api {
    pub fn of_path(path: &str) -> Api {
        // Mesos's scheduler API is the scheduler API too (its credentials, its rate limit).
        if path.starts_with("/agora.v1.Scheduler/") || path == "/api/v1/scheduler" {
            Api::Scheduler
        } else if path.starts_with("/agora.v1.AgentApi/") {
            Api::Agent
        } else if path == "/health" {
            Api::Open
        } else {
            Api::Operator
        }
    }

    fn who(self) -> &'static str {
        match self {
            Api::Scheduler => "frameworks",
            Api::Agent => "agents",
            Api::Operator | Api::Open => "operators",
        }
    }
}

/// Which principal a framework was subscribed by, and its default task user.
#[derive(Clone, Debug)]
struct Owner {
    principal: String,
    user: String,
}

/// The master's security state, shared by the middleware and the handlers.
pub struct Gate {
    config: SecurityConfig,
    clock: Arc<dyn Clock>,
    limiter: Mutex<rate::Limiter>,
    rate_limited: Mutex<BTreeMap<String, u64>>,
    owners: Mutex<HashMap<String, Owner>>,
    /// Agent id -> the principal that registered it.
    agent_owners: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain maps; a panic elsewhere cannot leave them half-updated.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub use agora_auth::task_user;

/// The role a resource is reserved for (`*` when unreserved).
fn reservation_role(r: &v1::Resource) -> &str {
    r.reservation
        .as_ref()
        .map(|x| x.role.as_str())
        .filter(|x| !x.is_empty())
        .unwrap_or("*")
}

impl Gate {
    pub fn new(config: SecurityConfig, clock: Arc<dyn Clock>) -> Gate {
        let limiter = rate::Limiter::new(config.rate_limits.clone().unwrap_or_default());
        Gate {
            config,
            clock,
            limiter: Mutex::new(limiter),
            rate_limited: Mutex::new(BTreeMap::new()),
            owners: Mutex::new(HashMap::new()),
            agent_owners: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &SecurityConfig {
        &self.config
    }

    fn required(&self, api: Api) -> bool {
        match api {
            Api::Scheduler => self.config.authenticate_frameworks,
            Api::Agent => self.config.authenticate_agents,
            Api::Operator => self.config.authenticate_http,
            Api::Open => false,
        }
    }

    /// Check the `authorization` header of a request to `api`. `Err` is the message of the
    /// refusal. A header that is present is always checked, even where authentication is
    /// optional: a wrong secret is never silently ignored.
    pub fn authenticate(&self, api: Api, header: Option<&HeaderValue>) -> Result<Caller, String> {
        let how = "send the header 'authorization: Basic base64(principal:secret)'";
        let Some(value) = header else {
            if self.required(api) {
                return Err(format!(
                    "missing credentials: this master authenticates {}; {how}",
                    api.who()
                ));
            }
            return Ok(Caller(None));
        };
        let Some(credentials) = &self.config.credentials else {
            // Nothing to check against: the claim is not trusted.
            return Ok(Caller(None));
        };
        let text = value
            .to_str()
            .map_err(|_| "the authorization header is not ASCII text".to_string())?;
        let credential = Credential::from_header(text).map_err(|e| format!("{e}; {how}"))?;
        if credentials.verify(&credential) {
            Ok(Caller(Some(credential.principal)))
        } else {
            Err(format!(
                "authentication failed for principal '{}': unknown principal or wrong secret",
                credential.principal
            ))
        }
    }

    /// Take a token from the caller's bucket (scheduler calls). `Err` is the refusal.
    pub fn rate_limit(&self, caller: &Caller) -> Result<(), String> {
        let principal = caller.principal().unwrap_or("");
        let now = self.clock.now_ms();
        let r = lock(&self.limiter).check(principal, now);
        r.map_err(|limit| {
            *lock(&self.rate_limited)
                .entry(principal.to_string())
                .or_default() += 1;
            format!(
                "rate limit exceeded for {}: {} calls/s (burst {}); slow down and retry",
                caller.describe(),
                limit.qps,
                limit.burst
            )
        })
    }

    /// `agora_rate_limited_calls_total{principal}` in Prometheus text.
    pub fn render_metrics(&self) -> String {
        let counts = lock(&self.rate_limited);
        let mut out = String::from(
            "# HELP agora_rate_limited_calls_total Scheduler calls refused by a rate limit.\n\
             # TYPE agora_rate_limited_calls_total counter\n",
        );
        for (p, n) in counts.iter() {
            let p = p.replace('\\', "\\\\").replace('"', "\\\"");
            out.push_str(&format!(
                "agora_rate_limited_calls_total{{principal=\"{p}\"}} {n}\n"
            ));
        }
        out
    }

    pub fn acls_configured(&self) -> bool {
        self.config.acls.is_some()
    }

    /// Whether `caller` may do `action` on `object` (always, without ACLs).
    pub fn allowed(&self, caller: &Caller, action: Action, object: &str) -> bool {
        self.config
            .acls
            .as_ref()
            .is_none_or(|a| a.decide(caller.principal(), action, object).allowed())
    }

    /// The authorisation hook: `Err(PERMISSION_DENIED)` naming principal, action and
    /// object when the ACLs refuse. Call it before the actor sees the request.
    pub fn authorize(&self, caller: &Caller, action: Action, object: &str) -> Result<(), Refusal> {
        let Some(acls) = &self.config.acls else {
            return Ok(());
        };
        let d = acls.decide(caller.principal(), action, object);
        if d.allowed() {
            return Ok(());
        }
        let message = acl::denial_message(caller.principal(), action, object, &d);
        tracing::info!(%message, "refused by the ACLs");
        Err(Refusal::permission_denied(message))
    }

    /// ACL objects of resources being reserved, unreserved, or turned into or out of
    /// volumes, checked one by one. For operator RESERVE/UNRESERVE/CREATE/DESTROY calls
    /// and the matching ACCEPT operations.
    pub fn authorize_resources(
        &self,
        caller: &Caller,
        action: Action,
        resources: &[v1::Resource],
    ) -> Result<(), Refusal> {
        if self.config.acls.is_none() {
            return Ok(());
        }
        for r in resources {
            // Unreserve and destroy are judged by the principal that made the reservation
            // under the resources: the master matches it against what it recorded, so the
            // caller cannot choose it. (A volume's own `disk.principal` is not recorded, so
            // trusting it would let a caller name any principal.)
            let object = match action {
                Action::UnreserveResources | Action::DestroyVolume => r
                    .reservation
                    .as_ref()
                    .map(|x| x.principal.as_str())
                    .unwrap_or(""),
                _ => reservation_role(r),
            };
            self.authorize(caller, action, object)?;
        }
        Ok(())
    }

    // ---- frameworks -------------------------------------------------------------------

    /// Before SUBSCRIBE reaches the actor: the framework's principal is the authenticated
    /// one, the id (if any) is not another principal's framework, and the ACLs let the
    /// caller register with each role.
    pub fn check_subscribe(
        &self,
        caller: &Caller,
        info: &v1::FrameworkInfo,
    ) -> Result<(), Refusal> {
        if self.config.authenticate_frameworks {
            let p = caller.principal().unwrap_or("");
            if info.principal != p {
                return Err(Refusal::permission_denied(format!(
                    "framework principal '{}' does not match the authenticated principal '{p}'",
                    info.principal
                )));
            }
        }
        if !info.id.is_empty() {
            self.check_owner(caller, &info.id)?;
        }
        if info.roles.is_empty() {
            self.authorize(
                caller,
                Action::RegisterFramework,
                crate::validate::DEFAULT_ROLE,
            )?;
        }
        for role in &info.roles {
            self.authorize(caller, Action::RegisterFramework, role)?;
        }
        Ok(())
    }

    /// After a successful SUBSCRIBE or UPDATE_FRAMEWORK: remember who owns the framework.
    pub fn record_framework(&self, caller: &Caller, framework_id: &str, user: &str) {
        lock(&self.owners).insert(
            framework_id.to_string(),
            Owner {
                principal: caller.principal().unwrap_or("").to_string(),
                user: user.to_string(),
            },
        );
    }

    pub fn forget_framework(&self, framework_id: &str) {
        lock(&self.owners).remove(framework_id);
    }

    /// With framework authentication on, only the principal that subscribed a framework
    /// may make calls for it.
    pub fn check_owner(&self, caller: &Caller, framework_id: &str) -> Result<(), Refusal> {
        if !self.config.authenticate_frameworks {
            return Ok(());
        }
        let owners = lock(&self.owners);
        match owners.get(framework_id) {
            Some(o) if Some(o.principal.as_str()) != caller.principal() => {
                Err(Refusal::permission_denied(format!(
                    "framework '{framework_id}' belongs to principal '{}', not to {}",
                    o.principal,
                    caller.describe()
                )))
            }
            _ => Ok(()),
        }
    }

    /// ACCEPT: the caller owns the framework and the ACLs allow every operation: each
    /// task's user (run_task), each reservation's role, each unreservation's reserver,
    /// each volume's role and each destroyed volume's creator.
    pub fn check_accept(&self, caller: &Caller, r: &v1::AcceptRequest) -> Result<(), Refusal> {
        self.check_owner(caller, &r.framework_id)?;
        if self.config.acls.is_none() {
            return Ok(());
        }
        let framework_user = lock(&self.owners)
            .get(&r.framework_id)
            .map(|o| o.user.clone())
            .unwrap_or_default();
        use v1::operation::Operation as Op;
        for op in &r.operations {
            match &op.operation {
                Some(Op::Launch(l)) => {
                    for t in &l.tasks {
                        self.authorize(caller, Action::RunTask, task_user(t, &framework_user))?;
                    }
                }
                Some(Op::LaunchGroup(g)) => {
                    let executor_user = g
                        .executor
                        .as_ref()
                        .and_then(|e| e.command.as_ref())
                        .map(|c| c.user.as_str())
                        .filter(|u| !u.is_empty())
                        .unwrap_or(&framework_user);
                    let tasks = g
                        .task_group
                        .as_ref()
                        .map(|t| t.tasks.as_slice())
                        .unwrap_or(&[]);
                    self.authorize(caller, Action::RunTask, executor_user)?;
                    for t in tasks {
                        self.authorize(caller, Action::RunTask, task_user(t, executor_user))?;
                    }
                }
                Some(Op::Reserve(x)) => {
                    self.authorize_resources(caller, Action::ReserveResources, &x.resources)?
                }
                Some(Op::Unreserve(x)) => {
                    self.authorize_resources(caller, Action::UnreserveResources, &x.resources)?
                }
                Some(Op::Create(x)) => {
                    self.authorize_resources(caller, Action::CreateVolume, &x.volumes)?
                }
                Some(Op::Destroy(x)) => {
                    self.authorize_resources(caller, Action::DestroyVolume, &x.volumes)?
                }
                None => {}
            }
        }
        Ok(())
    }

    // ---- agents -----------------------------------------------------------------------

    /// After a successful registration: remember which principal the agent id belongs to.
    pub fn record_agent(&self, caller: &Caller, agent_id: &str) {
        lock(&self.agent_owners).insert(
            agent_id.to_string(),
            caller.principal().unwrap_or("").to_string(),
        );
    }

    /// With agent authentication on, only the principal that registered an agent may
    /// re-register it, heartbeat for it or report its status updates.
    pub fn check_agent_owner(&self, caller: &Caller, agent_id: &str) -> Result<(), Refusal> {
        if !self.config.authenticate_agents {
            return Ok(());
        }
        match lock(&self.agent_owners).get(agent_id) {
            Some(p) if Some(p.as_str()) != caller.principal() => {
                Err(Refusal::permission_denied(format!(
                    "agent '{agent_id}' belongs to principal '{p}', not to {}",
                    caller.describe()
                )))
            }
            _ => Ok(()),
        }
    }

    // ---- state views ------------------------------------------------------------------

    /// What `caller` may see of the state: frameworks by view_frameworks (object: the
    /// framework's user), tasks by view_tasks (object: the task's user), and offers only
    /// of visible frameworks. Without ACLs, everything.
    pub fn filter_state(&self, caller: &Caller, mut s: v1::ClusterState) -> v1::ClusterState {
        if self.config.acls.is_none() {
            return s;
        }
        let users: HashMap<String, String> = s
            .frameworks
            .iter()
            .filter_map(|f| f.info.as_ref())
            .map(|i| (i.id.clone(), i.user.clone()))
            .collect();
        s.frameworks.retain(|f| {
            let user = f.info.as_ref().map(|i| i.user.as_str()).unwrap_or("");
            self.allowed(caller, Action::ViewFrameworks, user)
        });
        let visible: std::collections::HashSet<String> = s
            .frameworks
            .iter()
            .filter_map(|f| f.info.as_ref().map(|i| i.id.clone()))
            .collect();
        s.tasks.retain(|t| {
            let fw_user = users.get(&t.framework_id).map(String::as_str).unwrap_or("");
            let user = t
                .task
                .as_ref()
                .map(|x| task_user(x, fw_user))
                .unwrap_or(fw_user);
            self.allowed(caller, Action::ViewTasks, user)
        });
        s.offers.retain(|o| {
            o.offer
                .as_ref()
                .is_some_and(|o| visible.contains(&o.framework_id))
        });
        for r in &mut s.roles {
            r.frameworks.retain(|f| visible.contains(f));
        }
        s
    }
}

impl Gate {
    /// Usage reports without the containers of tasks (view_tasks) or executors
    /// (view_frameworks) the caller may not see; `state` names their users (callers fetch
    /// it only when [`Gate::acls_configured`]; without it nothing is shown).
    pub fn filter_usage(
        &self,
        caller: &Caller,
        mut usage: v1::UsageResponse,
        state: Option<v1::ClusterState>,
    ) -> v1::UsageResponse {
        if self.config.acls.is_none() {
            return usage;
        }
        let visible = state
            .map(|s| self.filter_state(caller, s))
            .unwrap_or_default();
        let tasks: std::collections::HashSet<(&str, &str)> = visible
            .tasks
            .iter()
            .filter_map(|t| {
                t.task
                    .as_ref()
                    .map(|x| (t.framework_id.as_str(), x.task_id.as_str()))
            })
            .collect();
        let frameworks: std::collections::HashSet<&str> = visible
            .frameworks
            .iter()
            .filter_map(|f| f.info.as_ref().map(|i| i.id.as_str()))
            .collect();
        for a in &mut usage.agents {
            a.containers.retain(|c| {
                if c.task_id.is_empty() {
                    frameworks.contains(c.framework_id.as_str())
                } else {
                    tasks.contains(&(c.framework_id.as_str(), c.task_id.as_str()))
                }
            });
        }
        usage
    }
}

/// Filters an operator event stream by the view ACLs, remembering framework and task users
/// from the snapshot and later events (a task update names only the task).
pub struct EventFilter {
    gate: Arc<Gate>,
    caller: Caller,
    framework_users: HashMap<String, String>,
    task_users: HashMap<(String, String), String>,
}

impl EventFilter {
    pub fn new(gate: Arc<Gate>, caller: Caller) -> EventFilter {
        EventFilter {
            gate,
            caller,
            framework_users: HashMap::new(),
            task_users: HashMap::new(),
        }
    }

    fn learn_task(&mut self, t: &v1::TaskRecord) -> String {
        let fw_user = self
            .framework_users
            .get(&t.framework_id)
            .cloned()
            .unwrap_or_default();
        let user = t
            .task
            .as_ref()
            .map(|x| task_user(x, &fw_user).to_string())
            .unwrap_or(fw_user);
        let id = t
            .task
            .as_ref()
            .map(|x| x.task_id.clone())
            .unwrap_or_default();
        self.task_users
            .insert((t.framework_id.clone(), id), user.clone());
        user
    }

    /// The event as this caller may see it, or `None` to drop it.
    pub fn pass(&mut self, event: v1::OperatorEvent) -> Option<v1::OperatorEvent> {
        use v1::operator_event::Event as E;
        if !self.gate.acls_configured() {
            return Some(event);
        }
        let g = self.gate.clone();
        let view_fw = |user: &str| g.allowed(&self.caller, Action::ViewFrameworks, user);
        let keep = match &event.event {
            Some(E::Snapshot(s)) => {
                for f in s.frameworks.iter().filter_map(|f| f.info.as_ref()) {
                    self.framework_users.insert(f.id.clone(), f.user.clone());
                }
                for t in &s.tasks {
                    self.learn_task(t);
                }
                let filtered = self.gate.filter_state(&self.caller, s.clone());
                return Some(v1::OperatorEvent {
                    event: Some(E::Snapshot(filtered)),
                });
            }
            Some(E::FrameworkAdded(v1::operator_event::FrameworkAdded { framework: Some(f) }))
            | Some(E::FrameworkUpdated(v1::operator_event::FrameworkUpdated {
                framework: Some(f),
            })) => {
                let info = f.info.clone().unwrap_or_default();
                self.framework_users.insert(info.id, info.user.clone());
                view_fw(&info.user)
            }
            Some(E::FrameworkRemoved(r)) => self
                .framework_users
                .get(&r.framework_id)
                .is_some_and(|u| view_fw(u)),
            Some(E::TaskAdded(v1::operator_event::TaskAdded { task: Some(t) })) => {
                let user = self.learn_task(t);
                self.gate.allowed(&self.caller, Action::ViewTasks, &user)
            }
            Some(E::TaskUpdated(u)) => {
                let task_id = u
                    .status
                    .as_ref()
                    .map(|s| s.task_id.clone())
                    .unwrap_or_default();
                self.task_users
                    .get(&(u.framework_id.clone(), task_id))
                    .is_some_and(|user| self.gate.allowed(&self.caller, Action::ViewTasks, user))
            }
            Some(E::AgentAdded(_) | E::AgentRemoved(_) | E::AgentUpdated(_)) => true,
            _ => false,
        };
        keep.then_some(event)
    }
}

fn refusal(grpc: bool, code: Code, message: String) -> Response {
    if grpc {
        return Status::new(code, message).into_http();
    }
    let status = match code {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::FORBIDDEN,
    };
    let mut r = (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"agora\""),
        );
    }
    r
}

/// The layer in front of every route: authenticate, rate-limit scheduler calls, and hand
/// the `Caller` to the handler.
pub async fn middleware(
    State(gate): State<Arc<Gate>>,
    mut request: Request,
    next: Next,
) -> Response {
    let api = Api::of_path(request.uri().path());
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let caller = match gate.authenticate(api, request.headers().get(AUTHORIZATION)) {
        Ok(c) => c,
        Err(message) => {
            tracing::info!(path = %request.uri().path(), %message, "refused: not authenticated");
            return refusal(grpc, Code::Unauthenticated, message);
        }
    };
    if api == Api::Scheduler
        && let Err(message) = gate.rate_limit(&caller)
    {
        return refusal(grpc, Code::ResourceExhausted, message);
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn gate(config: SecurityConfig) -> (Gate, ManualClock) {
        let clock = ManualClock::new(0);
        (Gate::new(config, Arc::new(clock.clone())), clock)
    }

    fn creds() -> Credentials {
        Credentials::parse(
            r#"[{"principal": "fw", "secret": "pw"}, {"principal": "ops", "secret": "op"}]"#,
        )
        .expect("valid")
    }

    fn header(p: &str, s: &str) -> HeaderValue {
        let c = Credential {
            principal: p.into(),
            secret: s.into(),
        };
        HeaderValue::from_str(&c.to_header()).expect("ascii")
    }

    #[test]
    fn paths_map_to_apis() {
        assert_eq!(
            Api::of_path("/agora.v1.Scheduler/Subscribe"),
            Api::Scheduler
        );
        assert_eq!(Api::of_path("/api/v1/scheduler"), Api::Scheduler);
        assert_eq!(Api::of_path("/agora.v1.AgentApi/Register"), Api::Agent);
        assert_eq!(Api::of_path("/agora.v1.Operator/GetState"), Api::Operator);
        assert_eq!(Api::of_path("/api/v1/state"), Api::Operator);
        assert_eq!(Api::of_path("/metrics"), Api::Operator);
        assert_eq!(Api::of_path("/health"), Api::Open);
        assert_eq!(
            Api::of_path("/agora.v1.Schedulerx/Subscribe"),
            Api::Operator
        );
    }

    #[test]
    fn authentication_per_api() {
        let (g, _) = gate(SecurityConfig {
            credentials: Some(creds()),
            authenticate_frameworks: true,
            ..SecurityConfig::default()
        });
        assert_eq!(
            g.authenticate(Api::Scheduler, Some(&header("fw", "pw"))),
            Ok(Caller(Some("fw".into())))
        );
        let missing = g.authenticate(Api::Scheduler, None).expect_err("required");
        assert!(
            missing.starts_with("missing credentials: this master authenticates frameworks"),
            "{missing}"
        );
        assert_eq!(
            g.authenticate(Api::Scheduler, Some(&header("fw", "nope"))),
            Err(
                "authentication failed for principal 'fw': unknown principal or wrong secret"
                    .into()
            )
        );
        assert!(
            g.authenticate(Api::Scheduler, Some(&header("who", "pw")))
                .is_err()
        );
        let garbage = HeaderValue::from_static("Bearer x");
        assert!(
            g.authenticate(Api::Scheduler, Some(&garbage))
                .expect_err("bad")
                .contains("not of the form")
        );
        // Not required for agents here: no header is fine, a wrong one is not.
        assert_eq!(g.authenticate(Api::Agent, None), Ok(Caller(None)));
        assert!(
            g.authenticate(Api::Agent, Some(&header("fw", "bad")))
                .is_err()
        );
        assert_eq!(
            g.authenticate(Api::Agent, Some(&header("ops", "op"))),
            Ok(Caller(Some("ops".into())))
        );
        assert_eq!(g.authenticate(Api::Open, None), Ok(Caller(None)));
    }

    #[test]
    fn authentication_needs_credentials() {
        let c = SecurityConfig {
            authenticate_agents: true,
            ..SecurityConfig::default()
        };
        assert_eq!(
            c.check().expect_err("no credentials").to_string(),
            "--authenticate-agents needs --credentials (the principals and secrets to check against)"
        );
        assert!(SecurityConfig::default().check().is_ok());
    }

    #[test]
    fn rate_limit_counts_refusals_per_principal() {
        let (g, clock) = gate(SecurityConfig {
            rate_limits: Some(
                RateLimits::parse(r#"{"limits": [{"principal": "fw", "qps": 1, "burst": 2}]}"#)
                    .expect("valid"),
            ),
            ..SecurityConfig::default()
        });
        let fw = Caller(Some("fw".into()));
        assert!(g.rate_limit(&fw).is_ok());
        assert!(g.rate_limit(&fw).is_ok());
        let refused = g.rate_limit(&fw).expect_err("over");
        assert_eq!(
            refused,
            "rate limit exceeded for principal 'fw': 1 calls/s (burst 2); slow down and retry"
        );
        assert!(g.rate_limit(&Caller(None)).is_ok(), "no default limit");
        clock.advance_ms(1_000);
        assert!(g.rate_limit(&fw).is_ok());
        assert!(
            g.render_metrics()
                .contains("agora_rate_limited_calls_total{principal=\"fw\"} 1\n")
        );
    }

    #[test]
    fn subscribe_checks_principal_owner_and_roles() {
        let (g, _) = gate(SecurityConfig {
            credentials: Some(creds()),
            authenticate_frameworks: true,
            acls: Some(
                Acls::parse(
                    r#"{"register_framework": [{"principals": ["fw"], "objects": ["web"]}]}"#,
                )
                .expect("valid"),
            ),
            ..SecurityConfig::default()
        });
        let fw = Caller(Some("fw".into()));
        let info = |principal: &str, roles: &[&str]| v1::FrameworkInfo {
            name: "f".into(),
            principal: principal.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        };
        g.check_subscribe(&fw, &info("fw", &["web"]))
            .expect("allowed");
        let e = g
            .check_subscribe(&fw, &info("other", &["web"]))
            .expect_err("mismatch");
        assert_eq!(e.code(), Code::PermissionDenied);
        assert!(
            e.message()
                .contains("does not match the authenticated principal 'fw'")
        );
        let e = g
            .check_subscribe(&fw, &info("fw", &["batch"]))
            .expect_err("role");
        assert_eq!(
            e.message(),
            "principal 'fw' is not authorized to register_framework on 'batch' (no register_framework rule allows it)"
        );
        let e = g
            .check_subscribe(&fw, &info("fw", &[]))
            .expect_err("default role");
        assert!(e.message().contains("on 'default'"));
        // Ownership: another principal cannot take over or drive fw's framework.
        g.record_framework(&fw, "F1", "alice");
        let ops = Caller(Some("ops".into()));
        let e = g.check_owner(&ops, "F1").expect_err("not the owner");
        assert_eq!(
            e.message(),
            "framework 'F1' belongs to principal 'fw', not to principal 'ops'"
        );
        g.check_owner(&fw, "F1").expect("owner");
        g.check_owner(&ops, "unknown")
            .expect("the actor answers for unknown ids");
    }

    #[test]
    fn agents_belong_to_the_principal_that_registered_them() {
        let (g, _) = gate(SecurityConfig {
            credentials: Some(creds()),
            authenticate_agents: true,
            ..SecurityConfig::default()
        });
        let fw = Caller(Some("fw".into()));
        let ops = Caller(Some("ops".into()));
        g.record_agent(&fw, "A1");
        g.check_agent_owner(&fw, "A1").expect("owner");
        let e = g.check_agent_owner(&ops, "A1").expect_err("not the owner");
        assert_eq!(e.code(), Code::PermissionDenied);
        assert_eq!(
            e.message(),
            "agent 'A1' belongs to principal 'fw', not to principal 'ops'"
        );
        g.check_agent_owner(&ops, "A2")
            .expect("unknown ids are the actor's business");
        let (open, _) = gate(SecurityConfig::default());
        open.record_agent(&fw, "A1");
        open.check_agent_owner(&ops, "A1")
            .expect("without agent authentication nothing is checked");
    }

    #[test]
    fn operator_events_are_filtered_by_view_acls() {
        use v1::operator_event::{Event as E, FrameworkAdded, TaskAdded, TaskUpdated};
        let (g, _) = gate(SecurityConfig {
            acls: Some(
                Acls::parse(
                    r#"{"view_frameworks": [{"principals": ["dev"], "objects": ["dev"]}],
                        "view_tasks": [{"principals": ["dev"], "objects": ["dev"]}]}"#,
                )
                .expect("valid"),
            ),
            ..SecurityConfig::default()
        });
        let mut f = EventFilter::new(Arc::new(g), Caller(Some("dev".into())));
        let fw = |id: &str, user: &str| v1::OperatorEvent {
            event: Some(E::FrameworkAdded(FrameworkAdded {
                framework: Some(v1::FrameworkState {
                    info: Some(v1::FrameworkInfo {
                        id: id.into(),
                        user: user.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            })),
        };
        let task = |fw: &str, id: &str| v1::OperatorEvent {
            event: Some(E::TaskAdded(TaskAdded {
                task: Some(v1::TaskRecord {
                    framework_id: fw.into(),
                    task: Some(v1::TaskInfo {
                        task_id: id.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            })),
        };
        let update = |fw: &str, id: &str| v1::OperatorEvent {
            event: Some(E::TaskUpdated(TaskUpdated {
                framework_id: fw.into(),
                status: Some(v1::TaskStatus {
                    task_id: id.into(),
                    ..Default::default()
                }),
            })),
        };
        assert!(f.pass(fw("A", "dev")).is_some());
        assert!(f.pass(fw("B", "root")).is_none());
        assert!(f.pass(task("A", "a1")).is_some());
        assert!(f.pass(task("B", "b1")).is_none());
        assert!(f.pass(update("A", "a1")).is_some());
        assert!(f.pass(update("B", "b1")).is_none());
        assert!(f.pass(update("A", "unknown")).is_none());
        let agent = v1::OperatorEvent {
            event: Some(E::AgentRemoved(v1::operator_event::AgentRemoved {
                agent_id: "x".into(),
            })),
        };
        assert!(f.pass(agent).is_some());
    }

    #[test]
    fn accept_checks_task_users_and_reservations() {
        let (g, _) = gate(SecurityConfig {
            acls: Some(
                Acls::parse(
                    r#"{"run_task": [{"principals": ["fw"], "objects": ["alice"]}],
                        "reserve_resources": [{"principals": ["fw"], "objects": ["web"]}]}"#,
                )
                .expect("valid"),
            ),
            ..SecurityConfig::default()
        });
        let fw = Caller(Some("fw".into()));
        g.record_framework(&fw, "F1", "alice");
        let task = |user: &str| v1::TaskInfo {
            task_id: "t".into(),
            command: Some(v1::CommandInfo {
                user: user.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let accept = |op: v1::operation::Operation| v1::AcceptRequest {
            framework_id: "F1".into(),
            operations: vec![v1::Operation {
                operation: Some(op),
            }],
            ..Default::default()
        };
        use v1::operation::{Launch, Operation as Op, Reserve};
        g.check_accept(
            &fw,
            &accept(Op::Launch(Launch {
                tasks: vec![task("")],
            })),
        )
        .expect("framework user alice");
        g.check_accept(
            &fw,
            &accept(Op::Launch(Launch {
                tasks: vec![task("alice")],
            })),
        )
        .expect("alice");
        let e = g
            .check_accept(
                &fw,
                &accept(Op::Launch(Launch {
                    tasks: vec![task("alice"), task("root")],
                })),
            )
            .expect_err("root");
        assert!(
            e.message().contains("run_task on 'root'"),
            "{}",
            e.message()
        );
        let reserved = |role: &str| v1::Resource {
            name: "cpus".into(),
            reservation: Some(v1::Reservation {
                role: role.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        g.check_accept(
            &fw,
            &accept(Op::Reserve(Reserve {
                resources: vec![reserved("web")],
            })),
        )
        .expect("web");
        let e = g
            .check_accept(
                &fw,
                &accept(Op::Reserve(Reserve {
                    resources: vec![reserved("db")],
                })),
            )
            .expect_err("db");
        assert!(e.message().contains("reserve_resources on 'db'"));
    }

    #[test]
    fn destroy_is_judged_by_the_reservations_principal_not_the_volumes_own_field() {
        let (g, _) = gate(SecurityConfig {
            acls: Some(
                Acls::parse(r#"{"destroy_volume": [{"principals": ["ops"], "objects": ["ops"]}]}"#)
                    .expect("valid"),
            ),
            ..SecurityConfig::default()
        });
        let volume = |reserver: &str, claimed: &str| {
            let mut r = agora_resources::Resources::parse("disk:10")
                .expect("res")
                .to_proto()
                .remove(0);
            r.reservation = Some(v1::Reservation {
                r#type: v1::reservation::Type::Dynamic as i32,
                role: "db".into(),
                principal: reserver.into(),
                labels: Vec::new(),
            });
            r.disk = Some(v1::DiskInfo {
                persistence_id: "v1".into(),
                principal: claimed.into(),
                ..Default::default()
            });
            r
        };
        let ops = Caller(Some("ops".into()));
        assert!(
            g.authorize_resources(&ops, Action::DestroyVolume, &[volume("ops", "x")])
                .is_ok()
        );
        let e = g
            .authorize_resources(&ops, Action::DestroyVolume, &[volume("dev", "ops")])
            .expect_err("the volume's own principal field is not trusted");
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn state_is_filtered_by_view_acls() {
        let (g, _) = gate(SecurityConfig {
            acls: Some(
                Acls::parse(
                    r#"{"view_frameworks": [{"principals": ["ops"], "objects": "ANY"}, {"principals": ["dev"], "objects": ["dev"]}],
                        "view_tasks": [{"principals": ["ops"], "objects": "ANY"}, {"principals": ["dev"], "objects": ["dev"]}]}"#,
                )
                .expect("valid"),
            ),
            ..SecurityConfig::default()
        });
        let fw = |id: &str, user: &str| v1::FrameworkState {
            info: Some(v1::FrameworkInfo {
                id: id.into(),
                user: user.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let task = |fw: &str, id: &str| v1::TaskRecord {
            framework_id: fw.into(),
            task: Some(v1::TaskInfo {
                task_id: id.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let state = v1::ClusterState {
            frameworks: vec![fw("A", "dev"), fw("B", "root")],
            tasks: vec![task("A", "a1"), task("B", "b1")],
            ..Default::default()
        };
        let all = g.filter_state(&Caller(Some("ops".into())), state.clone());
        assert_eq!((all.frameworks.len(), all.tasks.len()), (2, 2));
        let dev = g.filter_state(&Caller(Some("dev".into())), state.clone());
        assert_eq!(dev.frameworks.len(), 1);
        assert_eq!(dev.tasks.len(), 1);
        assert_eq!(dev.tasks[0].framework_id, "A");
        let anon = g.filter_state(&Caller(None), state.clone());
        assert!(anon.frameworks.is_empty() && anon.tasks.is_empty());

        // Usage reports follow the same views: task containers by view_tasks, executor
        // containers by view_frameworks.
        let container = |fw: &str, task: &str, executor: &str| v1::ContainerUsage {
            framework_id: fw.into(),
            task_id: task.into(),
            executor_id: executor.into(),
            ..Default::default()
        };
        let usage = v1::UsageResponse {
            agents: vec![v1::AgentUsage {
                agent_id: "ag".into(),
                containers: vec![
                    container("A", "a1", ""),
                    container("B", "b1", ""),
                    container("A", "", "ex-a"),
                    container("B", "", "ex-b"),
                ],
                ..Default::default()
            }],
        };
        let seen = |caller: Caller, state: Option<v1::ClusterState>| -> Vec<String> {
            g.filter_usage(&caller, usage.clone(), state).agents[0]
                .containers
                .iter()
                .map(|c| format!("{}{}", c.task_id, c.executor_id))
                .collect()
        };
        assert_eq!(
            seen(Caller(Some("ops".into())), Some(state.clone())),
            ["a1", "b1", "ex-a", "ex-b"]
        );
        assert_eq!(
            seen(Caller(Some("dev".into())), Some(state.clone())),
            ["a1", "ex-a"]
        );
        assert!(seen(Caller(None), Some(state)).is_empty());
        assert!(
            seen(Caller(Some("ops".into())), None).is_empty(),
            "without the state nothing is shown"
        );
    }
}
