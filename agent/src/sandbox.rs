//! Task sandbox paths: `<work-dir>/sandboxes/<framework_id>/<task_id>/`.
//!
//! Owns the rule for which ids may become path components. It must never touch the file
//! system: creating the directory is the containerizer's job. Every id that reaches a path
//! goes through [`validate_id`] first, so a hostile id can never escape the work dir.

use std::path::{Path, PathBuf};

/// Longest id accepted, in bytes (a Linux file name is at most 255 bytes).
pub const MAX_ID_BYTES: usize = 255;

/// Which id was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// A framework id.
    Framework,
    /// A task id.
    Task,
    /// An executor id.
    Executor,
}

impl std::fmt::Display for IdKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IdKind::Framework => "framework",
            IdKind::Task => "task",
            IdKind::Executor => "executor",
        })
    }
}

/// An id that cannot be used as a directory name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {id:?}: {reason}")]
pub struct InvalidId {
    /// Which id.
    pub kind: IdKind,
    /// The id as received (truncated to 64 characters for long ids).
    pub id: String,
    /// Why it was refused.
    pub reason: &'static str,
}

/// Accepts an id that is safe as a single path component: not empty, not "." or "..",
/// no '/' or NUL, at most [`MAX_ID_BYTES`] bytes.
pub fn validate_id(kind: IdKind, id: &str) -> Result<(), InvalidId> {
    let reason = if id.is_empty() {
        "must not be empty"
    } else if id == "." || id == ".." {
        "must not be \".\" or \"..\""
    } else if id.contains('/') {
        "must not contain '/'"
    } else if id.contains('\0') {
        "must not contain NUL"
    } else if id.len() > MAX_ID_BYTES {
        "is longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(InvalidId {
        kind,
        id: id.chars().take(64).collect(),
        reason,
    })
}

/// The sandbox directory of a task under `work_dir`, after validating both ids.
pub fn sandbox_dir(
    work_dir: &Path,
    framework_id: &str,
    task_id: &str,
) -> Result<PathBuf, InvalidId> {
    validate_id(IdKind::Framework, framework_id)?;
    validate_id(IdKind::Task, task_id)?;
    Ok(work_dir.join("sandboxes").join(framework_id).join(task_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for id in [
            "t1",
            "web.1",
            "a-b_c",
            "..x",
            "x..",
            "ünïcode",
            &"a".repeat(255),
        ] {
            assert_eq!(validate_id(IdKind::Task, id), Ok(()), "{id}");
        }
    }

    #[test]
    fn refuses_unsafe_ids() {
        let long = "a".repeat(256);
        for (id, reason) in [
            ("", "must not be empty"),
            (".", "must not be \".\" or \"..\""),
            ("..", "must not be \".\" or \"..\""),
            ("a/b", "must not contain '/'"),
            ("/", "must not contain '/'"),
            ("../etc", "must not contain '/'"),
            ("a\0b", "must not contain NUL"),
            (long.as_str(), "is longer than 255 bytes"),
        ] {
            let err = validate_id(IdKind::Task, id).expect_err(id);
            assert_eq!(err.reason, reason, "{id:?}");
            assert_eq!(err.kind, IdKind::Task);
        }
    }

    #[test]
    fn multibyte_length_counts_bytes() {
        // 128 two-byte characters = 256 bytes.
        let id = "é".repeat(128);
        assert!(validate_id(IdKind::Framework, &id).is_err());
    }

    #[test]
    fn sandbox_path_layout() {
        let p = sandbox_dir(Path::new("/w"), "fw", "t").expect("valid ids");
        assert_eq!(p, Path::new("/w/sandboxes/fw/t"));
        let err = sandbox_dir(Path::new("/w"), "..", "t").expect_err("bad framework id");
        assert_eq!(err.kind, IdKind::Framework);
        assert_eq!(
            err.to_string(),
            "invalid framework id \"..\": must not be \".\" or \"..\""
        );
    }
}
