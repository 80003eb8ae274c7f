//! Command-line syntax of `agora`: the clap definitions and the checks clap cannot express
//! (turning raw `run` flags into a validated [`RunSpec`]).
//!
//! Owns parsing and validation only. It must never do I/O or start anything; `main`
//! dispatches to the command modules.

use std::path::PathBuf;
use std::time::Duration;

use agora_resources::Resources;
use clap::{Args, Parser, Subcommand};

/// Default master address of every command.
pub const DEFAULT_MASTER: &str = "127.0.0.1:5050";

/// Agora operator command line.
#[derive(Debug, Parser)]
#[command(
    name = "agora",
    version,
    about = "Agora cluster scheduler: operator command line",
    after_help = "Names: agents by id, hostname or unique id prefix; frameworks by id, name or \
unique id prefix; tasks by id or unique id prefix.\n\
Exit codes: 0 done; 1 the command failed (refused by the master, a task did not finish); \
2 usage error (bad flag or value, a name matching nothing or several things); \
3 no master could be reached."
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command as N tasks on the cluster and wait for them to finish.
    ///
    /// Exits 0 only if every task FINISHED. Example: agora run --instances 3 -- echo hello
    Run(RunArgs),
    /// Start a master and N agents on this machine; Ctrl-C stops them.
    Local(LocalArgs),
    /// Show the whole cluster state: summary, roles, agents, frameworks, tasks.
    State(ReadArgs),
    /// List agents.
    Agents(ReadArgs),
    /// List frameworks.
    Frameworks(ReadArgs),
    /// List tasks, optionally only those in one state, of one framework or on one agent.
    Tasks(TasksArgs),
    /// Show each running container's cpu, memory and pids usage, as agents last reported it.
    Usage(ReadArgs),
    /// List, set or remove roles' quota (guarantee and limit).
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// List roles' weights, or set them: agora weights eng=2 ml=0.5
    Weights(WeightsArgs),
    /// Reserve resources on an agent for a role (dynamic reservation).
    Reserve(ResourceOpArgs),
    /// Unreserve dynamically reserved resources on an agent.
    Unreserve(ResourceOpArgs),
    /// List, create or destroy persistent volumes.
    #[command(subcommand)]
    Volumes(VolumesCommand),
    /// Agent maintenance: deactivate, drain, reactivate, mark gone.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Act on one task: kill.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Act on one framework: teardown.
    #[command(subcommand)]
    Framework(FrameworkCommand),
    /// Explain, in words, why a framework or a role gets (or does not get) offers.
    Explain(ExplainArgs),
    /// Print a task's stdout (or stderr), optionally following it as it grows.
    Logs(LogsArgs),
    /// Follow the master's event stream (agents, frameworks, tasks), one line per event.
    Events(EventsArgs),
    /// Print a shell completion script: agora completions bash > /etc/bash_completion.d/agora
    Completions(CompletionsArgs),
}

/// Master address, credentials and `--json`: the flags every read command takes.
#[derive(Debug, Clone, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub master: MasterArg,
    /// Print the master's JSON view (the same document as its HTTP API) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `agora tasks`.
#[derive(Debug, Clone, Args)]
pub struct TasksArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Only tasks in this state (e.g. running, finished, failed).
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    /// Only tasks of this framework (id, unique id prefix or name).
    #[arg(long, value_name = "FRAMEWORK")]
    pub framework: Option<String>,
    /// Only tasks on this agent (id, unique id prefix or hostname).
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
}

/// `agora quota ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum QuotaCommand {
    /// List every role's quota and what it consumes.
    List(ReadArgs),
    /// Set a role's quota: agora quota set eng --guarantee 'cpus:4;mem:4096' --limit 'cpus:8'
    Set(QuotaSetArgs),
    /// Remove a role's quota.
    Remove(RoleArgs),
}

#[derive(Debug, Clone, Args)]
pub struct QuotaSetArgs {
    #[command(flatten)]
    pub master: MasterArg,
    /// The role.
    pub role: String,
    /// Resources guaranteed to the role, in the resource flag syntax.
    #[arg(long, value_name = "RESOURCES")]
    pub guarantee: String,
    /// Most the role may consume, in the resource flag syntax (default: no limit).
    #[arg(long, value_name = "RESOURCES")]
    pub limit: Option<String>,
    /// Set it even if the cluster cannot satisfy the guarantee now.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RoleArgs {
    #[command(flatten)]
    pub master: MasterArg,
    /// The role.
    pub role: String,
}

/// Flags of `agora weights`.
#[derive(Debug, Clone, Args)]
pub struct WeightsArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Weights to set, as ROLE=WEIGHT; none: list the weights.
    #[arg(value_name = "ROLE=WEIGHT")]
    pub set: Vec<String>,
}

/// Flags of `agora reserve` and `agora unreserve`.
#[derive(Debug, Clone, Args)]
pub struct ResourceOpArgs {
    #[command(flatten)]
    pub master: MasterArg,
    /// The agent (id, unique id prefix or hostname).
    pub agent: String,
    /// The resources, in the flag syntax: 'cpus(db,dynamic,principal=ops):2;mem(db,dynamic,principal=ops):512'
    pub resources: String,
}

/// `agora volumes ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum VolumesCommand {
    /// List every agent's persistent volumes.
    List(ReadArgs),
    /// Create persistent volumes from reserved disk:
    /// agora volumes create AGENT 'disk(db,dynamic,principal=ops,volume=pg,path=data):1024'
    Create(ResourceOpArgs),
    /// Destroy persistent volumes (refused while a task uses them).
    Destroy(ResourceOpArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AgentArg {
    #[command(flatten)]
    pub master: MasterArg,
    /// The agent (id, unique id prefix or hostname).
    pub agent: String,
}

/// `agora agent ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum AgentCommand {
    /// Stop offers from the agent; its tasks keep running.
    Deactivate(AgentArg),
    /// Deactivate the agent and stop its tasks (with a grace period).
    Drain(DrainArgs),
    /// Offer the agent's resources again.
    Reactivate(AgentArg),
    /// Retire the agent for good: its tasks are reported GONE_BY_OPERATOR. Irreversible.
    Gone(AgentArg),
}

#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub agent: AgentArg,
    /// Seconds the tasks get between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    pub grace: f64,
    /// Mark the agent gone once it is empty.
    #[arg(long)]
    pub mark_gone: bool,
}

/// `agora task ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum TaskCommand {
    /// Kill a task (as its framework would; the framework hears KILLED).
    Kill(TaskArg),
}

#[derive(Debug, Clone, Args)]
pub struct TaskArg {
    #[command(flatten)]
    pub master: MasterArg,
    /// The task (id or unique id prefix).
    pub task: String,
    /// The task's framework (id, unique id prefix or name), when ids repeat across frameworks.
    #[arg(long, value_name = "FRAMEWORK")]
    pub framework: Option<String>,
}

/// `agora framework ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum FrameworkCommand {
    /// Remove a framework: its tasks are killed and its offers rescinded. Irreversible.
    Teardown(FrameworkArg),
}

#[derive(Debug, Clone, Args)]
pub struct FrameworkArg {
    #[command(flatten)]
    pub master: MasterArg,
    /// The framework (id, unique id prefix or name).
    pub framework: String,
}

/// Flags of `agora explain`.
#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// The framework to explain (id, unique id prefix or name).
    #[arg(required_unless_present = "role", conflicts_with = "role")]
    pub framework: Option<String>,
    /// Explain a role instead of a framework.
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
}

/// Flags of `agora logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub master: MasterArg,
    /// The task (id or unique id prefix).
    pub task: String,
    /// The task's framework, when task ids repeat across frameworks.
    #[arg(long, value_name = "FRAMEWORK")]
    pub framework: Option<String>,
    /// Print stderr instead of stdout.
    #[arg(long)]
    pub stderr: bool,
    /// Keep printing what the task writes until it ends (or Ctrl-C).
    #[arg(short, long)]
    pub follow: bool,
}

/// Flags of `agora events`.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub master: MasterArg,
    /// Print each event as one JSON line, `{"event": KIND, "data": PAYLOAD}` (the payload
    /// as the master's stream sends it), instead of a summary line.
    #[arg(long)]
    pub json: bool,
    /// Start with the whole state (a `snapshot` event).
    #[arg(long)]
    pub snapshot: bool,
    /// Only these kinds, comma separated (e.g. task_updated,agent_updated).
    #[arg(long, value_name = "KINDS")]
    pub types: Option<String>,
    /// Only events about this framework (id, unique id prefix or name).
    #[arg(long, value_name = "FRAMEWORK")]
    pub framework: Option<String>,
    /// Only events about this agent (id, unique id prefix or hostname).
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
}

/// Flags of `agora completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// Where the master is.
#[derive(Debug, Clone, Args)]
pub struct MasterArg {
    /// Master address(es), comma separated, tried in order.
    #[arg(
        long,
        env = "AGORA_MASTER",
        default_value = DEFAULT_MASTER,
        value_delimiter = ',',
        value_name = "ADDR[,ADDR..]"
    )]
    pub master: Vec<String>,
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// Credentials and TLS for talking to a secured master (paths only; read when used).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct SecurityArgs {
    /// Principal to authenticate as (masters started with --authenticate-*).
    #[arg(
        long,
        env = "AGORA_PRINCIPAL",
        requires = "secret_file",
        value_name = "NAME"
    )]
    pub principal: Option<String>,
    /// File holding the principal's secret (one trailing newline is ignored).
    #[arg(
        long,
        env = "AGORA_SECRET_FILE",
        requires = "principal",
        value_name = "FILE"
    )]
    pub secret_file: Option<PathBuf>,
    /// PEM CA certificate(s) to verify an https:// master with.
    #[arg(long, env = "AGORA_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate, for masters that require client certificates.
    #[arg(long, requires = "tls_key", requires = "tls_ca", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

impl SecurityArgs {
    /// The credential and TLS settings these flags name (reads the files).
    pub fn load(
        &self,
    ) -> Result<(Option<agora_sdk::Credential>, Option<agora_sdk::TlsOptions>), agora_sdk::SdkError>
    {
        let credential = match (&self.principal, &self.secret_file) {
            (Some(p), Some(f)) => Some(agora_sdk::connect::credential_from_file(p, f)?),
            _ => None,
        };
        let tls = match &self.tls_ca {
            Some(ca) => Some(agora_sdk::TlsOptions::from_files(
                ca,
                self.tls_cert.as_deref(),
                self.tls_key.as_deref(),
            )?),
            None => None,
        };
        Ok((credential, tls))
    }
}

/// Flags of `agora run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub master: MasterArg,
    /// Number of tasks to run.
    #[arg(long, default_value_t = 1)]
    pub instances: u32,
    /// CPUs per task.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub cpus: f64,
    /// Memory per task, in MB.
    #[arg(long, default_value_t = 32.0, allow_negative_numbers = true)]
    pub mem: f64,
    /// Framework name; task ids are NAME-0, NAME-1, ...
    #[arg(long, default_value = "agora-run")]
    pub name: String,
    /// Role to register the framework under (default: the master's default role).
    #[arg(long)]
    pub role: Option<String>,
    /// Unix user the tasks run as (default: the agent decides).
    #[arg(long)]
    pub user: Option<String>,
    /// Give up after this many seconds: kill what still runs, remove the framework, exit 1.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub timeout: Option<f64>,
    /// Print only the tasks' output and failures: no state changes, no summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// The command and its arguments (argv form, no shell), best after `--`. Flags before
    /// the command are `agora run`'s own: an unknown one is refused, never run.
    #[arg(trailing_var_arg = true, value_name = "CMD ARGS")]
    pub command: Vec<String>,
}

/// A validated `agora run` request.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    pub masters: Vec<String>,
    pub security: SecurityArgs,
    pub instances: usize,
    pub shape: Resources,
    pub name: String,
    pub role: Option<String>,
    pub user: Option<String>,
    pub timeout: Option<Duration>,
    pub quiet: bool,
    pub argv: Vec<String>,
}

impl RunArgs {
    /// Check the flags; the error is a sentence for the user.
    pub fn validate(&self) -> Result<RunSpec, String> {
        let masters = validate_masters(&self.master.master)?;
        if self.command.is_empty() {
            return Err("no command given; usage: agora run [OPTIONS] -- CMD [ARGS...]".into());
        }
        if self.command[0].is_empty() {
            return Err("the command (first word after --) is empty".into());
        }
        if self.instances == 0 {
            return Err("--instances must be at least 1".into());
        }
        for (flag, v) in [("--cpus", self.cpus), ("--mem", self.mem)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{flag} must be a number greater than 0, got {v}"));
            }
        }
        let shape = agora_sdk::cpus_mem(self.cpus, self.mem).map_err(|e| e.to_string())?;
        if shape.scalar("cpus").is_zero() {
            return Err(format!(
                "--cpus {} rounds to 0 (the smallest amount is 0.001)",
                self.cpus
            ));
        }
        if shape.scalar("mem").is_zero() {
            return Err(format!(
                "--mem {} rounds to 0 (the smallest amount is 0.001)",
                self.mem
            ));
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "--name {:?}: use letters, digits, '-', '_' and '.' only",
                self.name
            ));
        }
        if let Some(role) = &self.role {
            agora_resources::validate_role(role).map_err(|e| format!("--role: {e}"))?;
        }
        let timeout = match self.timeout {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 => Duration::try_from_secs_f64(t).ok(),
            Some(t) => {
                return Err(format!(
                    "--timeout must be a positive number of seconds, got {t}"
                ));
            }
        };
        Ok(RunSpec {
            masters,
            security: self.master.security.clone(),
            instances: self.instances as usize,
            shape,
            name: self.name.clone(),
            role: self.role.clone(),
            user: self.user.clone().filter(|u| !u.is_empty()),
            timeout,
            quiet: self.quiet,
            argv: self.command.clone(),
        })
    }
}

/// Trim the master list and refuse an empty one.
pub fn validate_masters(masters: &[String]) -> Result<Vec<String>, String> {
    let list: Vec<String> = masters
        .iter()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    if list.is_empty() {
        return Err("--master: no address given".into());
    }
    Ok(list)
}

/// Flags of `agora local`.
#[derive(Debug, Clone, Args)]
pub struct LocalArgs {
    /// Number of agents to start.
    #[arg(long, default_value_t = 2)]
    pub agents: u32,
    /// Directory for the master's data, the agents' work dirs and all logs.
    #[arg(long, default_value = "./.agora-local", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Address the master listens on (gRPC and HTTP).
    #[arg(long, default_value = DEFAULT_MASTER, value_name = "ADDR")]
    pub listen: String,
    /// Resources every agent offers, in the agent flag syntax (default: an equal share of
    /// this host's cpus, memory, disk and ports for each agent).
    #[arg(long, value_name = "RESOURCES")]
    pub agent_resources: Option<String>,
    /// Number of masters. More than one runs them over a local one-member etcd (needs
    /// `etcd` on PATH), one elected leader, on --listen's port and the next ones.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=7))]
    pub masters: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("agora").chain(args.iter().copied()))
    }

    fn run_spec(args: &[&str]) -> Result<RunSpec, String> {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        match parse(&all).map_err(|e| e.to_string())?.command {
            Command::Run(r) => r.validate(),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn run_defaults() {
        let s = run_spec(&["--", "echo", "hi"]).unwrap();
        assert_eq!(s.masters, vec![DEFAULT_MASTER.to_string()]);
        assert_eq!(s.instances, 1);
        assert_eq!(s.shape, Resources::parse("cpus:0.1;mem:32").unwrap());
        assert_eq!(s.name, "agora-run");
        assert_eq!(s.role, None);
        assert_eq!(s.timeout, None);
        assert_eq!(s.argv, vec!["echo", "hi"]);
    }

    #[test]
    fn run_flags() {
        let s = run_spec(&[
            "--master",
            "10.0.0.1:5050, 10.0.0.2:5050",
            "--instances",
            "3",
            "--cpus",
            "0.5",
            "--mem",
            "128",
            "--name",
            "job",
            "--role",
            "eng/ml",
            "--timeout",
            "2.5",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .unwrap();
        assert_eq!(s.masters, vec!["10.0.0.1:5050", "10.0.0.2:5050"]);
        assert_eq!(s.instances, 3);
        assert_eq!(s.shape, Resources::parse("cpus:0.5;mem:128").unwrap());
        assert_eq!(s.role.as_deref(), Some("eng/ml"));
        assert_eq!(s.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(s.argv, vec!["sh", "-c", "exit 3"]);
    }

    #[test]
    fn command_after_double_dash_keeps_its_own_flags() {
        let s = run_spec(&["--", "ls", "--instances", "-l"]).unwrap();
        assert_eq!(s.argv, vec!["ls", "--instances", "-l"]);
        assert_eq!(s.instances, 1);
    }

    #[test]
    fn bad_run_flags_are_refused_clearly() {
        let e = run_spec(&["--instances", "0", "--", "true"]).unwrap_err();
        assert!(e.contains("--instances must be at least 1"), "{e}");
        let e = run_spec(&["--cpus", "-1", "--", "true"]).unwrap_err();
        assert!(e.contains("--cpus must be a number greater than 0"), "{e}");
        let e = run_spec(&["--mem", "0", "--", "true"]).unwrap_err();
        assert!(e.contains("--mem"), "{e}");
        let e = run_spec(&["--cpus", "0.0001", "--", "true"]).unwrap_err();
        assert!(e.contains("rounds to 0"), "{e}");
        let e = run_spec(&[]).unwrap_err();
        assert!(e.contains("no command given"), "{e}");
        let e = run_spec(&["--"]).unwrap_err();
        assert!(e.contains("no command given"), "{e}");
        let e = run_spec(&["--role", "*", "--", "true"]).unwrap_err();
        assert!(e.starts_with("--role"), "{e}");
        let e = run_spec(&["--name", "a b", "--", "true"]).unwrap_err();
        assert!(e.contains("--name"), "{e}");
        let e = run_spec(&["--timeout", "-3", "--", "true"]).unwrap_err();
        assert!(e.contains("--timeout"), "{e}");
        let e = run_spec(&["--master", ",", "--", "true"]).unwrap_err();
        assert!(e.contains("--master"), "{e}");
        assert!(run_spec(&["--instances", "-1", "--", "true"]).is_err());
    }

    #[test]
    fn unknown_flags_before_the_command_are_refused_not_run() {
        let e = run_spec(&["--bogus", "--", "true"]).unwrap_err();
        assert!(e.contains("--bogus"), "{e}");
        let e = run_spec(&["--bogus", "true"]).unwrap_err();
        assert!(e.contains("--bogus"), "{e}");
        // After the command's first word everything is the command's.
        let s = run_spec(&["--quiet", "ls", "-l", "--bogus"]).unwrap();
        assert_eq!(s.argv, vec!["ls", "-l", "--bogus"]);
        assert!(s.quiet);
        let s = run_spec(&["--", "-weird-program", "x"]).unwrap();
        assert_eq!(s.argv, vec!["-weird-program", "x"]);
    }

    #[test]
    fn operator_commands_parse() {
        let c = parse(&[
            "quota",
            "set",
            "eng",
            "--guarantee",
            "cpus:1",
            "--master",
            "m:1",
        ])
        .unwrap();
        let Command::Quota(QuotaCommand::Set(q)) = c.command else {
            panic!("not quota set");
        };
        assert_eq!((q.role.as_str(), q.guarantee.as_str()), ("eng", "cpus:1"));
        assert_eq!(q.master.master, vec!["m:1"]);
        assert!(
            parse(&["quota", "set", "eng"]).is_err(),
            "--guarantee is required"
        );
        let c = parse(&["agent", "drain", "web-1", "--grace", "5", "--mark-gone"]).unwrap();
        let Command::Agent(AgentCommand::Drain(d)) = c.command else {
            panic!("not drain");
        };
        assert_eq!(d.agent.agent, "web-1");
        assert!(d.mark_gone && d.grace == 5.0);
        assert!(
            parse(&["explain"]).is_err(),
            "a framework or --role is needed"
        );
        assert!(parse(&["explain", "f1", "--role", "eng"]).is_err());
        let c = parse(&["tasks", "--state", "running", "--agent", "web-1", "--json"]).unwrap();
        let Command::Tasks(t) = c.command else {
            panic!("not tasks");
        };
        assert_eq!(t.state.as_deref(), Some("running"));
        assert!(t.read.json);
        let c = parse(&["logs", "web-0", "--stderr", "-f"]).unwrap();
        let Command::Logs(l) = c.command else {
            panic!("not logs");
        };
        assert!(l.stderr && l.follow);
        assert!(parse(&["completions", "bash"]).is_ok());
        assert!(parse(&["completions", "cmd.exe"]).is_err());
    }

    #[test]
    fn local_defaults() {
        let Command::Local(l) = parse(&["local"]).unwrap().command else {
            panic!("not local");
        };
        assert_eq!(l.agents, 2);
        assert_eq!(l.data_dir, PathBuf::from("./.agora-local"));
        assert_eq!(l.listen, DEFAULT_MASTER);
        assert_eq!(l.agent_resources, None);
    }

    #[test]
    fn state_commands_take_master_and_json() {
        for cmd in ["state", "agents", "frameworks"] {
            let c = parse(&[cmd, "--master", "m:1", "--json"]).unwrap();
            let a = match c.command {
                Command::State(a) | Command::Agents(a) | Command::Frameworks(a) => a,
                other => panic!("{other:?}"),
            };
            assert_eq!(a.master.master, vec!["m:1"]);
            assert!(a.json);
        }
    }
}
