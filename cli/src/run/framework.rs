//! The `agora run` framework: the [`Scheduler`] implementation and the orchestration around
//! the driver (timeout, Ctrl-C, final report).
//!
//! Owns the side effects of a run: scheduler calls, printing state changes (stdout, one
//! line each) and the summary (stderr). Every decision comes from [`super::plan`]; this
//! module must never hold bookkeeping of its own, and never holds the tracker lock across
//! an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use agora_proto::v1::{FrameworkInfo, Offer, TaskStatus};
use agora_sdk::{Driver, DriverConfig, Scheduler, SdkError, StopReason, Subscribed, TaskBuilder};
use anyhow::Context;

use super::plan::{Change, OfferAction, OutputLines, Refusal, Tracker, classify_refusal};
use crate::args::RunSpec;

/// Consecutive failed connection rounds before `agora run` gives up (a few seconds with
/// the SDK's 0.5 s doubling backoff).
pub const CONNECT_ATTEMPTS: u32 = 5;
/// How long the master keeps the run's tasks if this process disappears.
pub const FAILOVER_TIMEOUT_SECONDS: f64 = 60.0;
/// How long, after a timeout or Ctrl-C, to wait for killed tasks to report a terminal state
/// before removing the framework anyway.
pub const KILL_WAIT: Duration = Duration::from_secs(10);

/// Most bytes of one task's stdout (and of its stderr) `agora run` prints (`agora logs`
/// shows the rest).
pub const OUTPUT_MAX_BYTES: usize = 8 * 1024 * 1024;

type Shared = Arc<Mutex<Tracker>>;

fn lock(tracker: &Shared) -> MutexGuard<'_, Tracker> {
    tracker.lock().unwrap_or_else(|p| p.into_inner())
}

fn print_change(change: &Change) {
    crate::output::line(&change.to_string());
}

/// Where a task's output goes: its sandbox's stdout to ours, its stderr to ours, each
/// line prefixed with the task id when the run has more than one task. Output streams
/// while a task runs (one follower per task reads new bytes every `FOLLOW_POLL`, like
/// `agora logs -f`); when the task ends its follower reads what is left and stops.
struct Output {
    master: Option<crate::client::Master>,
    prefix: bool,
    /// Set once the master's sandbox proxy could not be used, so it is said once.
    unavailable: Arc<AtomicBool>,
    /// The follower of each task that runs: the signal to finish and its task.
    followers: HashMap<String, Follower>,
}

struct Follower {
    finish: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl Output {
    /// Start streaming a task's output (once; a task already followed is left alone).
    fn follow(&mut self, framework_id: &str, task_id: &str) {
        let Some(master) = self.master.clone() else {
            return;
        };
        if self.followers.contains_key(task_id) {
            return;
        }
        let (finish, finished) = tokio::sync::oneshot::channel();
        let prefix = self.prefix.then(|| format!("[{task_id}] "));
        let done = tokio::spawn(follow_task(
            master,
            framework_id.to_string(),
            task_id.to_string(),
            prefix,
            finished,
            self.unavailable.clone(),
        ));
        self.followers
            .insert(task_id.to_string(), Follower { finish, done });
    }

    /// A task ended: print the rest of its output before returning.
    async fn finish(&mut self, framework_id: &str, task_id: &str) {
        self.follow(framework_id, task_id);
        if let Some(f) = self.followers.remove(task_id) {
            let _ = f.finish.send(());
            let _ = f.done.await;
        }
    }
}

/// One sandbox file as it is followed: the offset read up to and its lines.
struct FileTail {
    file: &'static str,
    offset: u64,
    lines: OutputLines,
}

impl FileTail {
    fn print(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        if self.file == "stdout" {
            crate::output::out(text);
        } else {
            eprint!("{text}");
        }
    }

    /// Print what is new in the file; `Err` when the proxy could not be read.
    async fn pump(
        &mut self,
        master: &crate::client::Master,
        framework_id: &str,
        task_id: &str,
    ) -> Result<(), crate::client::ApiError> {
        let mut chunks = Vec::new();
        let mut sink = |text: &str| {
            chunks.push(text.to_string());
            chunks.len() < 64
        };
        let read = crate::logs::copy_from(
            master,
            framework_id,
            task_id,
            self.file,
            self.offset,
            &mut sink,
        )
        .await;
        for chunk in chunks {
            let text = self.lines.push(&chunk);
            self.print(&text);
        }
        self.offset = read?;
        Ok(())
    }
}

/// Follow one task's stdout and stderr until `finished` fires, then read them to their
/// end. Errors while the task runs are retried at the next poll (the agent may be slow to
/// answer); an error in the final read is said once for the whole run.
async fn follow_task(
    master: crate::client::Master,
    framework_id: String,
    task_id: String,
    prefix: Option<String>,
    mut finished: tokio::sync::oneshot::Receiver<()>,
    unavailable: Arc<AtomicBool>,
) {
    let mut files = ["stdout", "stderr"].map(|file| FileTail {
        file,
        offset: 0,
        lines: OutputLines::new(prefix.clone(), OUTPUT_MAX_BYTES),
    });
    let mut last = false;
    loop {
        for f in &mut files {
            let r = f.pump(&master, &framework_id, &task_id).await;
            if let Err(e) = r
                && last
                && !unavailable.swap(true, Ordering::SeqCst)
            {
                eprintln!("cannot show the output of {task_id}: {e}");
            }
        }
        if last {
            for f in &mut files {
                let rest = f.lines.finish();
                f.print(&rest);
            }
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(crate::logs::FOLLOW_POLL) => {}
            _ = &mut finished => last = true,
        }
    }
}

struct RunScheduler {
    tracker: Shared,
    shape: agora_resources::Resources,
    task: TaskBuilder,
    /// Set once the run is over and teardown was requested, so it is requested once.
    finishing: bool,
    /// Set by [`abort`]: the framework is being removed on purpose, so the master's
    /// "torn down" error is expected and not worth a line.
    aborting: Arc<AtomicBool>,
    quiet: bool,
    output: Output,
}

impl RunScheduler {
    async fn finish_if_done(&mut self, driver: &Driver) {
        if self.finishing || !lock(&self.tracker).all_done() {
            return;
        }
        self.finishing = true;
        if let Err(e) = driver.teardown().await {
            tracing::warn!(error = %e, "could not remove the framework from the master");
            driver.stop();
        }
    }

    async fn handle_offer(&mut self, driver: &Driver, offer: Offer) {
        let available = match agora_sdk::offer_resources(&offer) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(offer = %offer.id, error = %e, "offer with invalid resources");
                decline(driver, offer.id, None).await;
                return;
            }
        };
        let action = lock(&self.tracker).plan_offer(&available, &self.shape);
        match action {
            OfferAction::Decline { refuse_seconds } => {
                decline(driver, offer.id, refuse_seconds).await;
            }
            OfferAction::Launch {
                tasks,
                refuse_seconds,
            } => {
                let ids: Vec<String> = tasks.iter().map(|(id, _)| id.clone()).collect();
                let infos = tasks
                    .into_iter()
                    .map(|(id, resources)| {
                        self.task
                            .clone()
                            .resources(resources)
                            .build(id, offer.agent_id.clone())
                    })
                    .collect();
                match driver.launch(offer.id.clone(), infos, refuse_seconds).await {
                    Ok(_) => {
                        let all_launched = {
                            let mut t = lock(&self.tracker);
                            t.launched(&ids, &offer.agent_id);
                            t.pending() == 0
                        };
                        if all_launched && let Err(e) = driver.suppress(Vec::new()).await {
                            tracing::debug!(error = %e, "suppress failed");
                        }
                    }
                    Err(e) => {
                        eprintln!(
                            "launch of {} on agent {} refused: {e}",
                            ids.join(", "),
                            offer.agent_id
                        );
                        match classify_refusal(e.code()) {
                            Refusal::AlreadyLaunched => {
                                lock(&self.tracker).launched(&ids, &offer.agent_id);
                                let tasks = ids
                                    .iter()
                                    .map(|id| (id.clone(), offer.agent_id.clone()))
                                    .collect();
                                if let Err(e) = driver.reconcile(tasks).await {
                                    tracing::warn!(error = %e, "reconciliation request failed");
                                }
                            }
                            refusal => {
                                let permanent = refusal == Refusal::Permanent;
                                let changes = lock(&self.tracker).launch_refused(
                                    &ids,
                                    permanent,
                                    &error_message(&e),
                                );
                                changes.iter().for_each(print_change);
                            }
                        }
                        // A refused accept leaves the offer outstanding: hand it back.
                        decline(driver, offer.id, None).await;
                        self.finish_if_done(driver).await;
                    }
                }
            }
        }
    }
}

fn error_message(e: &SdkError) -> String {
    match e {
        SdkError::Rpc { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

async fn decline(driver: &Driver, offer_id: String, refuse_seconds: Option<f64>) {
    if let Err(e) = driver.decline(vec![offer_id.clone()], refuse_seconds).await {
        // NOT_FOUND: the offer was rescinded meanwhile; nothing to hand back.
        tracing::debug!(offer = %offer_id, error = %e, "decline failed");
    }
}

impl Scheduler for RunScheduler {
    async fn subscribed(&mut self, driver: &Driver, info: Subscribed) {
        if info.resubscribed {
            eprintln!(
                "re-subscribed to {} as framework {}",
                info.master_address, info.framework_id
            );
            let outstanding = lock(&self.tracker).outstanding();
            if !outstanding.is_empty()
                && let Err(e) = driver.reconcile(outstanding).await
            {
                tracing::warn!(error = %e, "reconciliation request failed");
            }
        } else {
            eprintln!(
                "subscribed to {} as framework {}",
                info.master_address, info.framework_id
            );
        }
    }

    async fn offers(&mut self, driver: &Driver, offers: Vec<Offer>) {
        for offer in offers {
            self.handle_offer(driver, offer).await;
        }
    }

    async fn status_update(&mut self, driver: &Driver, status: TaskStatus) {
        let change = lock(&self.tracker).update(&status);
        if let Some(change) = change {
            let ended = change.state.is_terminal();
            let failed = ended && change.state != agora_proto::v1::TaskState::Finished;
            if !self.quiet || failed {
                print_change(&change);
            }
            if let Some(id) = driver.framework_id() {
                if ended {
                    self.output.finish(&id, &change.task_id).await;
                } else if change.state == agora_proto::v1::TaskState::Running {
                    self.output.follow(&id, &change.task_id);
                }
            }
        }
        self.finish_if_done(driver).await;
    }

    async fn error(&mut self, _driver: &Driver, message: String) {
        if !self.aborting.load(Ordering::SeqCst) {
            eprintln!("the master ended the framework: {message}");
        }
    }

    async fn disconnected(&mut self, _driver: &Driver) {
        eprintln!("lost the connection to the master; reconnecting");
    }
}

/// The run's view of the master's HTTP API (task output, agents), if it answers; and,
/// when the task can never fit on any agent, why.
async fn inspect(spec: &RunSpec) -> (Option<crate::client::Master>, Option<String>) {
    let Ok(master) = crate::client::Master::connect(&spec.masters, &spec.security, false).await
    else {
        return (None, None);
    };
    let agents = match master.get("/api/v1/agents").await {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list the agents");
            return (Some(master), None);
        }
    };
    let totals: Vec<agora_resources::Resources> = agents
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| {
            !matches!(
                a.get("status").and_then(serde_json::Value::as_str),
                Some("removed" | "gone")
            )
        })
        .filter_map(|a| {
            let r = agora_resources::Resources::from_json(&a.get("resources")?.to_string()).ok()?;
            Some(match &spec.role {
                Some(role) => r.allocatable_to(role),
                None => r,
            })
        })
        .collect();
    let why = super::plan::never_fits(&spec.shape, &totals);
    (Some(master), why)
}

/// Run `spec` to completion. `Ok(true)`: every task FINISHED.
pub async fn execute(spec: RunSpec) -> anyhow::Result<bool> {
    let tracker: Shared = Arc::new(Mutex::new(Tracker::new(&spec.name, spec.instances)));
    let task = TaskBuilder::argv(spec.argv.clone())?.name(spec.name.clone());
    let aborting = Arc::new(AtomicBool::new(false));
    let (http, never) = inspect(&spec).await;
    if let Some(why) = never {
        anyhow::bail!(
            "the task can never fit on any agent: {why}; nothing was launched (lower --cpus/--mem or add bigger agents)"
        );
    }
    let scheduler = RunScheduler {
        tracker: tracker.clone(),
        shape: spec.shape.clone(),
        task,
        finishing: false,
        aborting: aborting.clone(),
        quiet: spec.quiet,
        output: Output {
            master: http,
            prefix: spec.instances > 1,
            unavailable: Arc::new(AtomicBool::new(false)),
            followers: HashMap::new(),
        },
    };
    let framework = FrameworkInfo {
        name: spec.name.clone(),
        roles: spec.role.iter().cloned().collect(),
        user: spec.user.clone().unwrap_or_default(),
        failover_timeout_seconds: FAILOVER_TIMEOUT_SECONDS,
        ..Default::default()
    };
    let (credential, tls) = spec.security.load()?;
    let mut config =
        DriverConfig::new(spec.masters.clone()).with_max_connect_attempts(Some(CONNECT_ATTEMPTS));
    config.credential = credential;
    config.tls = tls;
    let driver = Driver::new(config);
    let mut run = tokio::spawn(driver.clone().run(framework, scheduler));

    let deadline = async {
        match spec.timeout {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let mut interrupted = None;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let joined = tokio::select! {
        r = &mut run => r,
        _ = deadline => {
            let secs = spec.timeout.map(|d| d.as_secs_f64()).unwrap_or_default();
            interrupted = Some(format!("timed out after {secs} s"));
            aborting.store(true, Ordering::SeqCst);
            abort(&driver, &tracker, &format!("timed out after {secs} s")).await;
            run.await
        }
        _ = tokio::signal::ctrl_c() => {
            interrupted = Some("interrupted".to_string());
            aborting.store(true, Ordering::SeqCst);
            abort(&driver, &tracker, "interrupted").await;
            run.await
        }
        // SIGTERM (kill, a supervisor, a CI timeout) is an interruption too: the framework
        // is torn down instead of lingering until its failover timeout.
        _ = sigterm.recv() => {
            interrupted = Some("terminated".to_string());
            aborting.store(true, Ordering::SeqCst);
            abort(&driver, &tracker, "terminated (SIGTERM)").await;
            run.await
        }
    };
    let finished = joined.context("the framework driver task failed")?;
    let masters = spec.masters.join(",");
    let finished = match finished {
        Ok(f) => f,
        Err(e) => {
            let ever_subscribed = driver.framework_id().is_some();
            if ever_subscribed {
                report(&lock(&tracker), interrupted.as_deref());
            }
            let context = match (&e, ever_subscribed) {
                (SdkError::GaveUp { .. }, false) => format!("cannot reach the master at {masters}"),
                (SdkError::GaveUp { .. }, true) => format!("lost the master at {masters}"),
                _ => format!("master at {masters}"),
            };
            return Err(anyhow::Error::new(e).context(context));
        }
    };
    if let StopReason::MasterError(m) = &finished.reason {
        tracing::debug!(message = %m, "driver ended by a master error");
    }
    let t = lock(&tracker);
    if !(spec.quiet && interrupted.is_none() && t.failures().is_empty()) {
        report(&t, interrupted.as_deref());
    }
    Ok(interrupted.is_none() && t.failures().is_empty())
}

/// Kill what is still running, wait (bounded) for the kills to be confirmed, then remove
/// the framework. The master kills whatever is left when it tears the framework down.
async fn abort(driver: &Driver, tracker: &Shared, why: &str) {
    let outstanding = lock(tracker).outstanding();
    eprintln!(
        "{why}: killing {} task(s) and removing the framework",
        outstanding.len()
    );
    for (task_id, agent_id) in &outstanding {
        if let Err(e) = driver.kill(task_id.clone(), agent_id.clone(), None).await {
            tracing::warn!(task = %task_id, error = %e, "kill failed");
        }
    }
    let start = Instant::now();
    while start.elapsed() < KILL_WAIT
        && !driver.is_stopped()
        && !lock(tracker).outstanding().is_empty()
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !driver.is_stopped()
        && let Err(e) = driver.teardown().await
    {
        tracing::warn!(error = %e, "could not remove the framework from the master");
        driver.stop();
    }
}

/// The summary on stderr: how many finished, and each task that did not, with why.
fn report(tracker: &Tracker, interrupted: Option<&str>) {
    let failures = tracker.failures();
    let total = tracker.len();
    let finished = total - failures.len();
    if failures.is_empty() && interrupted.is_none() {
        eprintln!("all {total} task(s) finished");
        return;
    }
    match interrupted {
        Some(why) => eprintln!("{why}: {finished} of {total} task(s) finished"),
        None => eprintln!("{finished} of {total} task(s) finished"),
    }
    for f in failures {
        eprintln!("  {f}");
    }
}
