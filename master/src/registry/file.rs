//! `FileRegistry`: the embedded registry in the master's data directory, the production
//! implementation of `Registry`.
//!
//! `registry.json` holds a snapshot; `registry.log` holds the changes since, one line per
//! batch (a JSON array of ops; logs written before batches were lines carry one op
//! each), appended and fsync'd per batch. A batch is atomic: a line cut short by a crash
//! is the last one and is ignored whole, and a write or fsync that fails is cut off the
//! log again (and fsync'd) before the error is returned; if even that fails, every later
//! append fails too. Recovery reads the snapshot, replays the log, and compacts both
//! into a new snapshot (written to a temporary file, fsync'd, renamed). Any other
//! malformed line is an error naming the file and line, and the master refuses to start
//! on it rather than forget state. The blocking file I/O runs on tokio's blocking pool,
//! never on the caller's thread. This module only stores; it never interprets the state.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Registry, RegistryError, RegistryFuture, RegistryOp, RegistryState};

pub struct FileRegistry {
    inner: Arc<Mutex<FileLog>>,
}

struct FileLog {
    dir: PathBuf,
    log: Option<File>,
    /// Bytes of the log known durable: a failed append is cut back to this.
    durable_len: u64,
    /// Set when a failed append could not be cut off again: the log's tail is unknown.
    broken: Option<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl FileRegistry {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(FileLog {
                dir: dir.into(),
                log: None,
                durable_len: 0,
                broken: None,
            })),
        }
    }

    /// Run `f` on the log on the blocking pool.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut FileLog) -> Result<T, RegistryError> + Send + 'static,
    ) -> RegistryFuture<'_, T> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                // A panic while holding the lock leaves a log whose tail is still checked
                // by `durable_len`; carry on with it.
                let mut log = inner.lock().unwrap_or_else(|e| e.into_inner());
                f(&mut log)
            })
            .await
            .map_err(|e| RegistryError::Unavailable(format!("registry writer: {e}")))?
        })
    }
}

impl FileLog {
    fn snapshot_path(&self) -> PathBuf {
        self.dir.join("registry.json")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("registry.log")
    }

    fn read_snapshot(&self) -> Result<RegistryState, RegistryError> {
        let path = self.snapshot_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| RegistryError::Corrupt {
                path: path.display().to_string(),
                line: e.line(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistryState::default()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn replay_log(&self, state: &mut RegistryState) -> Result<(), RegistryError> {
        let path = self.log_path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&path)(e)),
        };
        let lines: Vec<String> = BufReader::new(file)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(io(&path))?;
        let last = lines.len();
        for (i, line) in lines.iter().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let parsed = if line.starts_with('[') {
                serde_json::from_str::<Vec<RegistryOp>>(line)
            } else {
                serde_json::from_str::<RegistryOp>(line).map(|op| vec![op])
            };
            match parsed {
                Ok(ops) => ops.iter().for_each(|op| state.apply(op)),
                // A crash mid-append leaves at most the final line (one batch) incomplete.
                Err(e) if i + 1 == last && e.is_eof() => {
                    tracing::warn!(path = %path.display(), line = i + 1, "ignoring a registry log line cut short by a crash");
                }
                Err(e) => {
                    return Err(RegistryError::Corrupt {
                        path: path.display().to_string(),
                        line: i + 1,
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Write `state` as the new snapshot and start an empty log.
    fn compact(&mut self, state: &RegistryState) -> Result<(), RegistryError> {
        let path = self.snapshot_path();
        let tmp = self.dir.join("registry.json.tmp");
        let text = serde_json::to_vec_pretty(state).map_err(|e| RegistryError::Corrupt {
            path: path.display().to_string(),
            line: 0,
            reason: e.to_string(),
        })?;
        {
            let mut f = File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&text).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        let log_path = self.log_path();
        File::create(&log_path).map_err(io(&log_path))?;
        // Appending: a failed write cut back with `set_len` leaves the next one at the end.
        let log = OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        // The directory entry of the renamed snapshot must be durable before the old log
        // is gone.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.log = Some(log);
        self.durable_len = 0;
        Ok(())
    }

    fn recover(&mut self) -> Result<RegistryState, RegistryError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let mut state = self.read_snapshot()?;
        self.replay_log(&mut state)?;
        self.compact(&state)?;
        self.broken = None;
        Ok(state)
    }

    fn append(&mut self, ops: &[RegistryOp]) -> Result<(), RegistryError> {
        if ops.is_empty() {
            return Ok(());
        }
        if let Some(why) = &self.broken {
            return Err(RegistryError::Unavailable(why.clone()));
        }
        let path = self.log_path();
        let mut buf = serde_json::to_vec(ops).map_err(|e| RegistryError::Corrupt {
            path: path.display().to_string(),
            line: 0,
            reason: e.to_string(),
        })?;
        buf.push(b'\n');
        if self.log.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            self.durable_len = f.metadata().map_err(io(&path))?.len();
            self.log = Some(f);
        }
        let Some(log) = self.log.as_mut() else {
            return Err(RegistryError::Unavailable(
                "registry log is not open".into(),
            ));
        };
        let written = log.write_all(&buf).and_then(|()| log.sync_data());
        match written {
            Ok(()) => {
                self.durable_len += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Nothing of a failed batch may come back at the next start.
                let cut = log.set_len(self.durable_len).and_then(|()| log.sync_data());
                if let Err(cut) = cut {
                    self.broken = Some(format!(
                        "{}: a failed write could not be cut off ({cut}); restart the master",
                        path.display()
                    ));
                }
                Err(io(&path)(e))
            }
        }
    }
}

impl Registry for FileRegistry {
    fn recover(&self) -> RegistryFuture<'_, RegistryState> {
        self.blocking(FileLog::recover)
    }

    fn append(&self, ops: Vec<RegistryOp>) -> RegistryFuture<'_, ()> {
        self.blocking(move |log| log.append(&ops))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        std::env::temp_dir().join(format!("agora-registry-{}", uuid::Uuid::new_v4()))
    }

    #[tokio::test]
    async fn changes_survive_reopen_and_are_compacted() {
        let dir = tmp();
        let r = FileRegistry::new(&dir);
        assert_eq!(r.recover().await.expect("empty"), RegistryState::default());
        r.append(vec![
            RegistryOp::PutFramework {
                id: "f1".into(),
                info: "0a".into(),
            },
            RegistryOp::SetWeight {
                role: "spark".into(),
                weight: 2.5,
            },
        ])
        .await
        .expect("append");
        r.append(vec![RegistryOp::TearDownFramework { id: "f0".into() }])
            .await
            .expect("append");
        drop(r);
        let r = FileRegistry::new(&dir);
        let s = r.recover().await.expect("recover");
        assert_eq!(s.frameworks.get("f1").map(String::as_str), Some("0a"));
        assert!(s.torn_down.contains("f0"));
        assert_eq!(s.weights["spark"], 2.5);
        // Compacted: the log is empty and the snapshot holds it all.
        assert_eq!(
            std::fs::read_to_string(dir.join("registry.log")).expect("log"),
            ""
        );
        let again = FileRegistry::new(&dir)
            .recover()
            .await
            .expect("recover again");
        assert_eq!(again, s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_ignored_but_corruption_elsewhere_is_an_error() {
        let dir = tmp();
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("registry.log"),
            "{\"op\":\"remove_agent\",\"id\":\"a1\"}\n{\"op\":\"remove_ag",
        )
        .expect("write");
        let s = FileRegistry::new(&dir)
            .recover()
            .await
            .expect("torn tail tolerated");
        assert!(s.removed_agents.contains("a1"));

        std::fs::write(
            dir.join("registry.log"),
            "{\"op\":\"nonsense\"}\n{\"op\":\"remove_agent\",\"id\":\"a2\"}\n",
        )
        .expect("write");
        let err = FileRegistry::new(&dir)
            .recover()
            .await
            .expect_err("corrupt");
        let msg = err.to_string();
        assert!(msg.contains("registry.log line 1"), "{msg}");
        std::fs::write(dir.join("registry.json"), "{not json").expect("write");
        let err = FileRegistry::new(&dir)
            .recover()
            .await
            .expect_err("corrupt snapshot");
        assert!(err.to_string().contains("registry.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_batch_is_one_line_and_a_torn_batch_is_dropped_whole() {
        let dir = tmp();
        let r = FileRegistry::new(&dir);
        r.recover().await.expect("empty");
        r.append(vec![RegistryOp::AdmitAgent {
            id: "a1".into(),
            hostname: "h1".into(),
        }])
        .await
        .expect("append");
        let log = std::fs::read_to_string(dir.join("registry.log")).expect("log");
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.starts_with('['), "{log}");
        // A second batch of two ops cut short by a crash after its first op: neither op
        // may come back.
        let torn = r#"[{"op":"remove_agent","id":"a1"},{"op":"set_weight","role":"r","wei"#;
        std::fs::write(dir.join("registry.log"), format!("{log}{torn}")).expect("write");
        drop(r);
        let s = FileRegistry::new(&dir).recover().await.expect("recover");
        assert_eq!(s.admitted_agents["a1"], "h1");
        assert!(s.removed_agents.is_empty() && s.weights.is_empty(), "{s:?}");
        // A log written before batches were lines (one op per line) still reads.
        std::fs::write(
            dir.join("registry.log"),
            "{\"op\":\"remove_agent\",\"id\":\"a1\"}\n",
        )
        .expect("write");
        let s = FileRegistry::new(&dir).recover().await.expect("recover");
        assert!(s.removed_agents.contains("a1") && s.admitted_agents.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A write that fails (here: the log is /dev/full, which refuses every write with
    /// ENOSPC and cannot be cut back) is an error naming the log; a log that cannot be
    /// cut back refuses every later append instead of writing after an unknown tail.
    #[tokio::test]
    async fn a_failed_write_is_an_error_and_an_uncut_log_refuses_later_writes() {
        if !Path::new("/dev/full").exists() {
            panic!("/dev/full is needed for this test");
        }
        let dir = tmp();
        std::fs::create_dir_all(&dir).expect("dir");
        std::os::unix::fs::symlink("/dev/full", dir.join("registry.log")).expect("symlink");
        let r = FileRegistry::new(&dir);
        let op = || vec![RegistryOp::RemoveAgent { id: "a".into() }];
        let err = r.append(op()).await.expect_err("disk full");
        assert!(err.to_string().contains("registry.log"), "{err}");
        let err = r.append(op()).await.expect_err("log tail unknown");
        assert!(
            matches!(err, RegistryError::Unavailable(ref m) if m.contains("could not be cut off")),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
