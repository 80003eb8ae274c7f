//! `FileRegistry`: the embedded registry in the master's data directory.
//!
//! `registry.json` holds a snapshot; `registry.log` holds the changes since, one JSON
//! line each, appended and fsync'd per batch. Recovery reads the snapshot, replays the
//! log, and compacts both into a new snapshot (written to a temporary file, fsync'd,
//! renamed). A last log line cut short by a crash is ignored; any other malformed line is
//! an error naming the file and line, and the master refuses to start on it rather than
//! forget state. This module only stores; it never interprets the state.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::{Registry, RegistryError, RegistryOp, RegistryState};

pub struct FileRegistry {
    dir: PathBuf,
    log: Option<File>,
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
            dir: dir.into(),
            log: None,
        }
    }

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
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<RegistryOp>(line) {
                Ok(op) => state.apply(&op),
                // A crash mid-append leaves at most the final line incomplete.
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
        let log = File::create(&log_path).map_err(io(&log_path))?;
        // The directory entry of the renamed snapshot must be durable before the old log
        // is gone.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.log = Some(log);
        Ok(())
    }
}

impl Registry for FileRegistry {
    fn recover(&mut self) -> Result<RegistryState, RegistryError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let mut state = self.read_snapshot()?;
        self.replay_log(&mut state)?;
        self.compact(&state)?;
        Ok(state)
    }

    fn append(&mut self, ops: &[RegistryOp]) -> Result<(), RegistryError> {
        if ops.is_empty() {
            return Ok(());
        }
        let path = self.log_path();
        if self.log.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            self.log = Some(f);
        }
        let mut buf = Vec::new();
        for op in ops {
            serde_json::to_writer(&mut buf, op).map_err(|e| RegistryError::Corrupt {
                path: path.display().to_string(),
                line: 0,
                reason: e.to_string(),
            })?;
            buf.push(b'\n');
        }
        let Some(log) = self.log.as_mut() else {
            return Ok(());
        };
        log.write_all(&buf).map_err(io(&path))?;
        log.sync_data().map_err(io(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        std::env::temp_dir().join(format!("agora-registry-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn changes_survive_reopen_and_are_compacted() {
        let dir = tmp();
        let mut r = FileRegistry::new(&dir);
        assert_eq!(r.recover().expect("empty"), RegistryState::default());
        r.append(&[
            RegistryOp::PutFramework {
                id: "f1".into(),
                info: "0a".into(),
            },
            RegistryOp::SetWeight {
                role: "spark".into(),
                weight: 2.5,
            },
        ])
        .expect("append");
        r.append(&[RegistryOp::TearDownFramework { id: "f0".into() }])
            .expect("append");
        drop(r);
        let mut r = FileRegistry::new(&dir);
        let s = r.recover().expect("recover");
        assert_eq!(s.frameworks.get("f1").map(String::as_str), Some("0a"));
        assert!(s.torn_down.contains("f0"));
        assert_eq!(s.weights["spark"], 2.5);
        // Compacted: the log is empty and the snapshot holds it all.
        assert_eq!(
            std::fs::read_to_string(dir.join("registry.log")).expect("log"),
            ""
        );
        let again = FileRegistry::new(&dir).recover().expect("recover again");
        assert_eq!(again, s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_corruption_elsewhere_is_an_error() {
        let dir = tmp();
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("registry.log"),
            "{\"op\":\"remove_agent\",\"id\":\"a1\"}\n{\"op\":\"remove_ag",
        )
        .expect("write");
        let s = FileRegistry::new(&dir)
            .recover()
            .expect("torn tail tolerated");
        assert!(s.removed_agents.contains("a1"));

        std::fs::write(
            dir.join("registry.log"),
            "{\"op\":\"nonsense\"}\n{\"op\":\"remove_agent\",\"id\":\"a2\"}\n",
        )
        .expect("write");
        let err = FileRegistry::new(&dir).recover().expect_err("corrupt");
        let msg = err.to_string();
        assert!(msg.contains("registry.log line 1"), "{msg}");
        std::fs::write(dir.join("registry.json"), "{not json").expect("write");
        let err = FileRegistry::new(&dir)
            .recover()
            .expect_err("corrupt snapshot");
        assert!(err.to_string().contains("registry.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
