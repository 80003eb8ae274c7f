//! The only module of the agent with `unsafe` code: starting a container's processes with
//! a raw `clone(2)` into new pid, mount, uts and ipc namespaces (or into the namespaces of
//! a running container, for command health checks), `pidfd_open(2)`, and file access under
//! another user's file-system credentials ([`with_fs_identity`]).
//!
//! [`spawn`] with [`ChildSetup::enter`] set does not create namespaces: the cloned child
//! joins the container's cgroups, `setns(2)`s into the given namespaces, and forks the
//! program (so it is inside the container's pid namespace); it exits with the program's
//! status. It is the session leader of the program, so its pid is the process group to
//! kill when the program outlives its timeout.
//!
//! [`spawn`] clones a child that becomes pid 1 ("init") of a new pid namespace (and, with
//! [`ChildSetup::new_network`], a new network namespace whose loopback it brings up). Init
//! writes itself into the container's cgroups, resets signals, starts a session, makes
//! its mounts private and mounts its own `/proc`, optionally sets the hostname, closes
//! every inherited descriptor and forks the task's main process (pid 2), which takes
//! stdin/stdout/stderr, changes directory, drops to the task's user and `execve`s the
//! program. Init then reaps until the main process ends, writes its raw wait status to
//! `status_path`, and exits with its exit code (or 128 + signal). When init exits, the
//! kernel kills everything left in the namespace.
//!
//! Between `clone` and `execve` the child of this multi-threaded process may only make
//! async-signal-safe calls: everything it touches (C strings, pointer arrays, descriptors)
//! is prepared before the clone, and it never allocates, locks or unwinds. Setup failures
//! travel to the parent as (stage, errno) over a close-on-exec pipe, so [`spawn`] returns
//! only once the program is executing or has failed to start.
//!
//! This module must never decide policy (which limits, which user, which paths): callers
//! hand it fully prepared values; and it must never signal or wait for a process other
//! than the one it just cloned.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Lowest descriptor number prepared descriptors are moved to, so that placing stdin,
/// stdout and stderr at 0..=2 in the child can never overwrite one of them.
const MIN_PREPARED_FD: RawFd = 10;

/// Where the child failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Stage {
    /// Writing itself into a `cgroup.procs` file.
    JoinCgroup = 1,
    /// Resetting signal dispositions and the mask.
    Signals = 2,
    /// `setsid`.
    Setsid = 3,
    /// Making the mount namespace private.
    MountPrivate = 4,
    /// Mounting the container's `/proc`.
    MountProc = 5,
    /// `sethostname`.
    Hostname = 6,
    /// Forking the main process.
    Fork = 7,
    /// Placing stdin, stdout and stderr.
    Stdio = 8,
    /// Changing to the sandbox.
    Chdir = 9,
    /// Dropping supplementary groups.
    Groups = 10,
    /// `setgid`.
    Gid = 11,
    /// `setuid`.
    Uid = 12,
    /// `execve`.
    Exec = 13,
    /// `setns` into a container's namespace.
    Setns = 14,
    /// Bringing up the loopback interface of a new network namespace.
    Loopback = 15,
    /// Mounting an image's root (overlay) or creating its mount points.
    MountRoot = 16,
    /// Setting up the container's `/dev`.
    Dev = 17,
    /// Mounting the container's `/tmp`.
    Tmp = 18,
    /// Bind-mounting the sandbox or a volume into the container's root.
    Bind = 19,
    /// `pivot_root` into the image's root.
    PivotRoot = 20,
}

impl Stage {
    fn from_raw(v: i32) -> Option<Stage> {
        use Stage::*;
        [
            JoinCgroup,
            Signals,
            Setsid,
            MountPrivate,
            MountProc,
            Hostname,
            Fork,
            Stdio,
            Chdir,
            Groups,
            Gid,
            Uid,
            Exec,
            Setns,
            Loopback,
            MountRoot,
            Dev,
            Tmp,
            Bind,
            PivotRoot,
        ]
        .into_iter()
        .find(|s| *s as i32 == v)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::JoinCgroup => "cannot join the container's cgroup",
            Stage::Signals => "cannot reset signals",
            Stage::Setsid => "cannot start a session",
            Stage::MountPrivate => "cannot make mounts private",
            Stage::MountProc => "cannot mount /proc",
            Stage::Hostname => "cannot set the hostname",
            Stage::Fork => "cannot fork the main process",
            Stage::Stdio => "cannot set up stdin/stdout/stderr",
            Stage::Chdir => "cannot enter the sandbox",
            Stage::Groups => "cannot drop supplementary groups",
            Stage::Gid => "cannot set the group id",
            Stage::Uid => "cannot set the user id",
            Stage::Exec => "cannot execute the program",
            Stage::Setns => "cannot enter the container's namespaces",
            Stage::Loopback => "cannot bring up the container's loopback interface",
            Stage::MountRoot => "cannot mount the image's root file system",
            Stage::Dev => "cannot set up /dev in the container",
            Stage::Tmp => "cannot mount /tmp in the container",
            Stage::Bind => "cannot bind-mount into the container",
            Stage::PivotRoot => "cannot pivot_root into the image's root",
        })
    }
}

/// Starting the container failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// A call in the parent failed (`pipe2`, `fcntl`, `clone`, `read`).
    #[error("{call}: {error}")]
    Parent {
        /// The call.
        call: &'static str,
        /// The OS error.
        error: std::io::Error,
    },
    /// The child reported a failure.
    #[error("{stage}: {error}")]
    Child {
        /// Where.
        stage: Stage,
        /// The OS error.
        error: std::io::Error,
    },
}

/// A root file system for a new mount namespace: an image's layers under an overlay,
/// which init mounts, fills with mount points and `pivot_root`s into. Every path is an
/// absolute path in the agent's view (below `target`, except bind sources).
#[derive(Debug)]
pub struct RootSetup {
    /// Where the overlay is mounted (an empty directory).
    pub target: CString,
    /// The overlay's mount options (`lowerdir=...,upperdir=...,workdir=...`).
    pub overlay_options: CString,
    /// Directories created after the overlay is mounted, parents first (existing ones
    /// are kept).
    pub mkdirs: Vec<CString>,
    /// The container's `/proc`.
    pub proc_dir: CString,
    /// The container's `/dev` (a small tmpfs).
    pub dev_dir: CString,
    /// Character devices created in it: path, major, minor.
    pub devices: Vec<(CString, u32, u32)>,
    /// Symlinks created in it: what it points to, the link's path.
    pub symlinks: Vec<(CString, CString)>,
    /// The container's `/tmp` (a tmpfs).
    pub tmp_dir: CString,
    /// Bind mounts, in order: source (agent's view), destination below `target`.
    pub binds: Vec<(CString, CString)>,
}

/// Everything the child needs, prepared by the caller.
#[derive(Debug)]
pub struct ChildSetup {
    /// Absolute paths the program may be at, tried in order while one is missing
    /// (`ENOENT`, `ENOTDIR`): a lookup in `PATH` done inside the container's root.
    /// Never empty.
    pub programs: Vec<CString>,
    /// Arguments, `argv[0]` first.
    pub argv: Vec<CString>,
    /// `NAME=value` entries: the complete environment.
    pub envp: Vec<CString>,
    /// Working directory.
    pub cwd: CString,
    /// Hostname inside the uts namespace; `None` keeps the host's.
    pub hostname: Option<CString>,
    /// The main process' stdin.
    pub stdin: OwnedFd,
    /// The main process' stdout.
    pub stdout: OwnedFd,
    /// The main process' stderr.
    pub stderr: OwnedFd,
    /// Open (write) `cgroup.procs` files of the container's cgroups.
    pub cgroup_procs: Vec<OwnedFd>,
    /// Where init writes the main process' raw wait status (4 bytes, native endian);
    /// `None`: nowhere (init's own exit status says it).
    pub status_path: Option<CString>,
    /// `(uid, gid)` to run the main process as; `None`: the agent's.
    pub run_as: Option<(u32, u32)>,
    /// Namespaces (open `/proc/<pid>/ns/*` files) to join instead of creating new ones;
    /// empty: new pid, mount, uts and ipc namespaces.
    pub enter: Vec<OwnedFd>,
    /// With new namespaces: a new network namespace too, with only its loopback interface
    /// (brought up by init before the main process starts).
    pub new_network: bool,
    /// With new namespaces: a root file system to pivot into; `None`: the host's.
    pub root: Option<RootSetup>,
}

/// What the parent-side raw values point into; lives until the child has exec'd.
struct Prepared {
    programs: Vec<*const libc::c_char>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cwd: *const libc::c_char,
    hostname: Option<(*const libc::c_char, usize)>,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    procs: Vec<RawFd>,
    status_path: *const libc::c_char,
    run_as: Option<(u32, u32)>,
    enter: Vec<RawFd>,
    new_network: bool,
    /// Null, or the caller's `RootSetup` (alive in the child's copy of memory).
    root: *const RootSetup,
    err_pipe: RawFd,
}

fn last_os_error(call: &'static str) -> SpawnError {
    SpawnError::Parent {
        call,
        error: std::io::Error::last_os_error(),
    }
}

/// A close-on-exec duplicate of `fd` numbered at least [`MIN_PREPARED_FD`].
fn high_dup(fd: &OwnedFd) -> Result<OwnedFd, SpawnError> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new descriptor or -1; the
    // new one is owned by the returned OwnedFd and nothing else.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, MIN_PREPARED_FD) };
    if new < 0 {
        return Err(last_os_error("fcntl(F_DUPFD_CLOEXEC)"));
    }
    // SAFETY: `new` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Starts the container's init (see the module docs) and returns its pid (in the agent's
/// pid namespace) once the main process executes its program.
pub fn spawn(setup: &ChildSetup) -> Result<i32, SpawnError> {
    if setup.programs.is_empty() {
        return Err(SpawnError::Parent {
            call: "execve",
            error: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no program"),
        });
    }
    let stdin = high_dup(&setup.stdin)?;
    let stdout = high_dup(&setup.stdout)?;
    let stderr = high_dup(&setup.stderr)?;
    let procs: Vec<OwnedFd> = setup
        .cgroup_procs
        .iter()
        .map(high_dup)
        .collect::<Result<_, _>>()?;
    let enter: Vec<OwnedFd> = setup.enter.iter().map(high_dup).collect::<Result<_, _>>()?;
    let mut pipe = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass, or fails.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(last_os_error("pipe2"));
    }
    // SAFETY: both descriptors were just created and are owned only here.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
    let write_end = {
        let high = high_dup(&write_end)?;
        drop(write_end);
        high
    };

    let prepared = Prepared {
        programs: setup.programs.iter().map(|p| p.as_ptr()).collect(),
        argv: setup
            .argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect(),
        envp: setup
            .envp
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect(),
        cwd: setup.cwd.as_ptr(),
        hostname: setup
            .hostname
            .as_ref()
            .map(|h| (h.as_ptr(), h.as_bytes().len())),
        stdin: stdin.as_raw_fd(),
        stdout: stdout.as_raw_fd(),
        stderr: stderr.as_raw_fd(),
        procs: procs.iter().map(AsRawFd::as_raw_fd).collect(),
        status_path: setup
            .status_path
            .as_ref()
            .map_or(std::ptr::null(), |p| p.as_ptr()),
        run_as: setup.run_as,
        enter: enter.iter().map(AsRawFd::as_raw_fd).collect(),
        new_network: setup.new_network,
        root: setup
            .root
            .as_ref()
            .map_or(std::ptr::null(), |r| r as *const RootSetup),
        err_pipe: write_end.as_raw_fd(),
    };

    let flags = if prepared.enter.is_empty() {
        let net = if prepared.new_network {
            libc::CLONE_NEWNET
        } else {
            0
        };
        libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | net
    } else {
        0
    } | libc::SIGCHLD;
    // SAFETY: a raw clone without CLONE_VM is a fork: the child gets a copy of this
    // address space and continues on its copy of the current stack. It runs only
    // `container_init`, which makes async-signal-safe system calls on the values prepared
    // above (still alive in its copy) and never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if pid == 0 {
        // SAFETY: we are the freshly cloned child; see container_init's contract.
        unsafe { container_init(&prepared) }
    }
    if pid < 0 {
        return Err(last_os_error("clone"));
    }
    let pid = pid as i32;
    drop(write_end);
    drop((stdin, stdout, stderr, procs, enter));

    let mut report = [0u8; 8];
    let mut got = 0;
    while got < report.len() {
        // SAFETY: reading into the unfilled tail of a stack buffer we own.
        let n = unsafe {
            libc::read(
                read_end.as_raw_fd(),
                report[got..].as_mut_ptr().cast(),
                report.len() - got,
            )
        };
        if n == 0 {
            break;
        }
        if n < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            kill_and_reap(pid);
            return Err(SpawnError::Parent {
                call: "read(setup pipe)",
                error,
            });
        }
        got += n as usize;
    }
    if got == 0 {
        return Ok(pid);
    }
    kill_and_reap(pid);
    let stage_raw = i32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
    let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
    match Stage::from_raw(stage_raw) {
        Some(stage) if got == report.len() => Err(SpawnError::Child {
            stage,
            error: std::io::Error::from_raw_os_error(errno),
        }),
        _ => Err(SpawnError::Parent {
            call: "read(setup pipe)",
            error: std::io::Error::other("truncated setup report"),
        }),
    }
}

/// Moves the calling thread into the network namespace `netns` (an open
/// `/proc/<pid>/ns/net`). Network namespaces are per thread: only this thread moves, and
/// sockets it creates from now on belong to that namespace. Meant for a thread made for
/// it, which never returns to the pool ([`super::publish`]).
pub fn enter_network_namespace(netns: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: setns on a descriptor we borrow; it changes only this thread's namespace.
    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Kills and reaps the init we just cloned (its setup failed).
fn kill_and_reap(pid: i32) {
    // SAFETY: `pid` is our own unreaped child, so the pid cannot have been reused.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0 && *libc::__errno_location() == libc::EINTR {}
    }
}

/// Reports a failed stage to the parent and exits. Async-signal-safe.
unsafe fn fail(err_pipe: RawFd, stage: Stage) -> ! {
    // SAFETY: errno access, write of a stack buffer and _exit are async-signal-safe.
    unsafe {
        let errno = *libc::__errno_location();
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&(stage as i32).to_ne_bytes());
        buf[4..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(err_pipe, buf.as_ptr().cast(), buf.len());
        libc::_exit(126)
    }
}

/// Closes every descriptor from `from` on, except `keep`.
unsafe fn close_from(from: RawFd, keep: Option<RawFd>) {
    // SAFETY: close_range/close only affect this process' descriptor table.
    unsafe {
        let ranges: [(RawFd, RawFd); 2] = match keep {
            Some(k) if k >= from => [(from, k - 1), (k + 1, RawFd::MAX)],
            _ => [(from, RawFd::MAX), (1, 0)],
        };
        for (lo, hi) in ranges {
            if lo > hi {
                continue;
            }
            if libc::syscall(libc::SYS_close_range, lo as u32, hi as u32, 0u32) != 0 {
                // Kernels before 5.9: close one by one up to a generous limit.
                let mut fd = lo;
                while fd <= hi && fd < 65_536 {
                    libc::close(fd);
                    fd += 1;
                }
            }
        }
    }
}

/// Body of the cloned child: pid 1 of the new pid namespace. Never returns.
///
/// # Safety
///
/// Must only be called in the child right after the clone in [`spawn`], with `p` pointing
/// into memory prepared before the clone. Only async-signal-safe calls are made.
unsafe fn container_init(p: &Prepared) -> ! {
    // SAFETY (whole body): every call below is a plain system call on descriptors and
    // NUL-terminated strings prepared before the clone; nothing allocates or locks.
    unsafe {
        for &fd in &p.procs {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(p.err_pipe, Stage::JoinCgroup);
            }
        }
        // Default dispositions first (the agent's handlers must not run here), then an
        // empty mask.
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            fail(p.err_pipe, Stage::Signals);
        }
        if libc::setsid() < 0 {
            fail(p.err_pipe, Stage::Setsid);
        }
        for &fd in &p.enter {
            if libc::setns(fd, 0) != 0 {
                fail(p.err_pipe, Stage::Setns);
            }
        }
        if p.enter.is_empty() {
            new_namespaces_setup(p);
        }
        let main = libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
        if main == 0 {
            exec_main(p);
        }
        if main < 0 {
            fail(p.err_pipe, Stage::Fork);
        }
        let main = main as libc::pid_t;
        // Init keeps no descriptor of the agent (sockets, files, the setup pipe).
        close_from(0, None);
        let mut main_status: libc::c_int = 0;
        loop {
            let mut status: libc::c_int = 0;
            let r = libc::waitpid(-1, &mut status, 0);
            if r == main {
                main_status = status;
                break;
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                break;
            }
        }
        let fd = if p.status_path.is_null() {
            -1
        } else {
            libc::open(
                p.status_path,
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                0o600,
            )
        };
        if fd >= 0 {
            let bytes = main_status.to_ne_bytes();
            libc::write(fd, bytes.as_ptr().cast(), bytes.len());
            libc::close(fd);
        }
        let code = if libc::WIFEXITED(main_status) {
            libc::WEXITSTATUS(main_status)
        } else if libc::WIFSIGNALED(main_status) {
            128 + libc::WTERMSIG(main_status)
        } else {
            255
        };
        libc::_exit(code)
    }
}

/// Init's set-up of the namespaces it was cloned into: private mounts, its own `/proc`,
/// the hostname. Async-signal-safe.
///
/// # Safety
///
/// Same contract as [`container_init`].
unsafe fn new_namespaces_setup(p: &Prepared) {
    // SAFETY: plain system calls on strings prepared before the clone.
    unsafe {
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            fail(p.err_pipe, Stage::MountPrivate);
        }
        if p.root.is_null() {
            mount_proc(p.err_pipe, c"/proc".as_ptr());
        } else {
            enter_root(p.err_pipe, &*p.root);
        }
        if let Some((name, len)) = p.hostname
            && libc::sethostname(name, len) != 0
        {
            fail(p.err_pipe, Stage::Hostname);
        }
        if p.new_network {
            loopback_up(p.err_pipe);
        }
    }
}

/// Mounts a new `/proc` (of init's pid namespace) at `dir`. Async-signal-safe.
///
/// # Safety
///
/// Same contract as [`container_init`].
unsafe fn mount_proc(err_pipe: RawFd, dir: *const libc::c_char) {
    // SAFETY: a plain system call on strings prepared before the clone.
    unsafe {
        if libc::mount(
            c"proc".as_ptr(),
            dir,
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        ) != 0
        {
            fail(err_pipe, Stage::MountProc);
        }
    }
}

/// Mounts the image's overlay, its `/proc`, a minimal `/dev`, `/tmp` and the bind mounts,
/// then makes it the root (`pivot_root`, the old root detached). The overlay is `nosuid`
/// and `nodev`: nothing in an image raises a task's privileges or opens a host device.
/// Async-signal-safe.
///
/// # Safety
///
/// Same contract as [`container_init`]; `r` points into memory prepared before the clone.
unsafe fn enter_root(err_pipe: RawFd, r: &RootSetup) {
    // SAFETY: plain system calls on strings prepared before the clone; the vectors are
    // only indexed, never grown.
    unsafe {
        if libc::mount(
            c"overlay".as_ptr(),
            r.target.as_ptr(),
            c"overlay".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            r.overlay_options.as_ptr().cast(),
        ) != 0
        {
            fail(err_pipe, Stage::MountRoot);
        }
        for dir in &r.mkdirs {
            if libc::mkdir(dir.as_ptr(), 0o755) != 0 && *libc::__errno_location() != libc::EEXIST {
                fail(err_pipe, Stage::MountRoot);
            }
        }
        mount_proc(err_pipe, r.proc_dir.as_ptr());
        if libc::mount(
            c"tmpfs".as_ptr(),
            r.dev_dir.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            c"mode=755,size=1024k".as_ptr().cast(),
        ) != 0
        {
            fail(err_pipe, Stage::Dev);
        }
        for (path, major, minor) in &r.devices {
            if libc::mknod(
                path.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(*major, *minor),
            ) != 0
                || libc::chmod(path.as_ptr(), 0o666) != 0
            {
                fail(err_pipe, Stage::Dev);
            }
        }
        for (target, link) in &r.symlinks {
            if libc::symlink(target.as_ptr(), link.as_ptr()) != 0 {
                fail(err_pipe, Stage::Dev);
            }
        }
        if libc::mount(
            c"tmpfs".as_ptr(),
            r.tmp_dir.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=1777".as_ptr().cast(),
        ) != 0
        {
            fail(err_pipe, Stage::Tmp);
        }
        for (source, destination) in &r.binds {
            if libc::mount(
                source.as_ptr(),
                destination.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ) != 0
            {
                fail(err_pipe, Stage::Bind);
            }
        }
        // pivot_root(".", "."): the old root is stacked under the new one and detached
        // right away, so nothing of the host's file system stays reachable.
        if libc::chdir(r.target.as_ptr()) != 0
            || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
            || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
            || libc::chdir(c"/".as_ptr()) != 0
        {
            fail(err_pipe, Stage::PivotRoot);
        }
    }
}

/// Brings up `lo` of the (new) network namespace init is in: SIOCGIFFLAGS / SIOCSIFFLAGS
/// on a datagram socket. Async-signal-safe (system calls on a stack `ifreq`).
///
/// # Safety
///
/// Same contract as [`container_init`].
unsafe fn loopback_up(err_pipe: RawFd) {
    // SAFETY: socket/ioctl/close on a zeroed stack struct whose name we fill in.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            fail(err_pipe, Stage::Loopback);
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) != 0 {
            fail(err_pipe, Stage::Loopback);
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) != 0 {
            fail(err_pipe, Stage::Loopback);
        }
        libc::close(sock);
    }
}

/// Body of the main process (pid 2): stdio, sandbox, user, exec. Never returns.
///
/// # Safety
///
/// Same contract as [`container_init`].
unsafe fn exec_main(p: &Prepared) -> ! {
    // SAFETY (whole body): async-signal-safe system calls on prepared values only.
    unsafe {
        if libc::dup2(p.stdin, 0) < 0 || libc::dup2(p.stdout, 1) < 0 || libc::dup2(p.stderr, 2) < 0
        {
            fail(p.err_pipe, Stage::Stdio);
        }
        close_from(3, Some(p.err_pipe));
        if libc::chdir(p.cwd) != 0 {
            fail(p.err_pipe, Stage::Chdir);
        }
        if let Some((uid, gid)) = p.run_as {
            // Raw system calls: glibc's wrappers broadcast the change to every thread it
            // believes exists, and after a raw clone it still believes the agent's threads
            // exist, so it would wait for them forever.
            if libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0 {
                fail(p.err_pipe, Stage::Groups);
            }
            if libc::syscall(libc::SYS_setgid, gid) != 0 {
                fail(p.err_pipe, Stage::Gid);
            }
            if libc::syscall(libc::SYS_setuid, uid) != 0 {
                fail(p.err_pipe, Stage::Uid);
            }
        }
        for &program in &p.programs {
            libc::execve(program, p.argv.as_ptr(), p.envp.as_ptr());
            let errno = *libc::__errno_location();
            if errno != libc::ENOENT && errno != libc::ENOTDIR {
                break;
            }
        }
        fail(p.err_pipe, Stage::Exec)
    }
}

/// A descriptor that becomes readable when process `pid` exits (`pidfd_open(2)`).
pub fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open returns a new descriptor or -1; it is owned by the OwnedFd only.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::PIDFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Resolves once the process behind `pidfd` has exited (the descriptor turns readable).
pub async fn pidfd_exited(pidfd: std::sync::Arc<OwnedFd>) -> std::io::Result<()> {
    struct Shared(std::sync::Arc<OwnedFd>);
    impl AsRawFd for Shared {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_raw_fd()
        }
    }
    // SAFETY: the AsyncFd owns a clone of the Arc, so the descriptor stays open (its
    // number cannot be reused) for as long as it is registered; dropping the AsyncFd
    // deregisters it before that clone is released.
    let fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(
            Shared(pidfd),
            tokio::io::Interest::READABLE,
        )
    }?;
    let _ready = fd.readable().await?;
    Ok(())
}

/// Sends `signal` to the process behind `pidfd` (no pid-reuse race).
pub fn pidfd_send_signal(pidfd: &OwnedFd, signal: i32) -> std::io::Result<()> {
    // SAFETY: the kernel validates the descriptor; no memory is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `work` on a thread of its own whose file-system credentials are `uid`/`gid` with
/// no supplementary groups, so every open, create and permission check it makes is the
/// kernel's check for that user (a root agent's file capabilities are dropped with the
/// change of fsuid). The credentials are per thread and die with it: no other thread of
/// the agent ever runs with them. `None`: the agent's own credentials (on a thread too).
pub fn with_fs_identity<T: Send + 'static>(
    identity: Option<(u32, u32)>,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let thread = std::thread::Builder::new()
        .name("agora-fs-as-user".into())
        .spawn(move || {
            if let Some((uid, gid)) = identity {
                // SAFETY: raw system calls on this thread's own credentials (glibc's
                // wrappers of setgroups would change every thread of the agent); no
                // memory is passed but the null group list of length 0.
                unsafe {
                    if libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>())
                        != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::syscall(libc::SYS_setfsgid, gid);
                    libc::syscall(libc::SYS_setfsuid, uid);
                    // setfsuid/setfsgid return the previous value, never an error: ask
                    // again (an invalid id returns the current one) to check.
                    let now_uid = libc::syscall(libc::SYS_setfsuid, u32::MAX) as u32;
                    let now_gid = libc::syscall(libc::SYS_setfsgid, u32::MAX) as u32;
                    if now_uid != uid || now_gid != gid {
                        return Err(std::io::Error::other(format!(
                            "cannot take the file-system identity {uid}:{gid}"
                        )));
                    }
                }
            }
            work()
        })?;
    thread
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("file access thread panicked")))
}

/// Sets the extended attribute `name` of `path` (not following a symlink), e.g. an
/// overlayfs `trusted.overlay.opaque` mark on a directory of an unpacked layer.
pub fn set_xattr(
    path: &std::path::Path,
    name: &std::ffi::CStr,
    value: &[u8],
) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: NUL-terminated strings and a byte slice we borrow for the call's duration.
    let r = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_round_trip() {
        for raw in 1..=20 {
            let stage = Stage::from_raw(raw).expect("known stage");
            assert_eq!(stage as i32, raw);
            assert!(!stage.to_string().is_empty());
        }
        assert_eq!(Stage::from_raw(0), None);
        assert_eq!(Stage::from_raw(21), None);
    }
}
