//! [`Volume`]: the persistent-volume identity a `disk` resource may carry.
//!
//! Owns: the volume's rules (a persistence id that is a safe directory name, a relative
//! container path without `.`/`..` segments) and its qualifier text
//! (`volume=db1,path=data/db`). The rules that tie a volume to its resource (only on a
//! reserved, non-revocable scalar `disk`) live in `resource.rs`.
//! Must never: accept an id or path that could escape the directory it names on an agent
//! (the agent joins both onto its own directories).

use std::fmt;

use crate::names::check_name;

/// A persistent volume made from reserved disk (operation CREATE).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Volume {
    /// Unique per agent and role; the volume's directory name on the agent.
    pub persistence_id: String,
    /// Where a task using the volume sees it, relative to its sandbox.
    pub container_path: String,
}

impl Volume {
    /// A volume with `persistence_id` seen by tasks at `container_path`.
    pub fn new(persistence_id: impl Into<String>, container_path: impl Into<String>) -> Volume {
        Volume {
            persistence_id: persistence_id.into(),
            container_path: container_path.into(),
        }
    }

    /// Checks the id and path; the reason names the offending part.
    pub(crate) fn check(&self) -> Result<(), String> {
        check_name(&self.persistence_id).map_err(|e| format!("volume persistence id: {e}"))?;
        if matches!(self.persistence_id.as_str(), "." | "..") {
            return Err(format!(
                "volume persistence id '{}' is not a usable directory name",
                self.persistence_id
            ));
        }
        let p = &self.container_path;
        if p.is_empty() {
            return Err("volume container path is empty".to_string());
        }
        if p.starts_with('/') {
            return Err(format!(
                "volume container path '{p}' must be relative (to the task's sandbox)"
            ));
        }
        for seg in p.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                return Err(format!(
                    "volume container path '{p}' has an empty, '.' or '..' segment"
                ));
            }
            check_name(seg).map_err(|e| format!("volume container path '{p}': {e}"))?;
        }
        Ok(())
    }
}

impl fmt::Display for Volume {
    /// The qualifiers of the flag syntax: `volume=db1,path=data/db`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "volume={},path={}",
            self.persistence_id, self.container_path
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_paths_cannot_escape() {
        assert!(Volume::new("db1", "data/db").check().is_ok());
        for (id, path, want) in [
            ("", "d", "empty name"),
            ("..", "d", "not a usable directory name"),
            ("a/b", "d", "invalid name"),
            ("v", "", "container path is empty"),
            ("v", "/abs", "must be relative"),
            ("v", "a/../b", "'..' segment"),
            ("v", "a//b", "empty, '.' or '..' segment"),
            ("v", "a b", "invalid name"),
        ] {
            let e = Volume::new(id, path).check().unwrap_err();
            assert!(e.contains(want), "{id} {path}: {e}");
        }
    }

    #[test]
    fn displays_qualifiers() {
        assert_eq!(
            Volume::new("db1", "data/db").to_string(),
            "volume=db1,path=data/db"
        );
    }
}

#[cfg(test)]
mod forms {
    use crate::{Resources, Volume};

    #[test]
    fn text_json_and_proto_round_trip() {
        let text = "disk(db,dynamic,principal=ops,volume=v1,path=data):100;disk(db,dynamic,principal=ops):50";
        let r = Resources::parse(text).unwrap();
        assert_eq!(r.len(), 2, "a volume never merges with plain disk");
        let v = r.iter().find_map(|x| x.volume.clone()).unwrap();
        assert_eq!(v, Volume::new("v1", "data"));
        assert_eq!(Resources::parse(&r.to_string()).unwrap(), r);
        assert_eq!(Resources::from_json(&r.to_json().to_string()).unwrap(), r);
        assert_eq!(Resources::from_proto(&r.to_proto()).unwrap(), r);
        let json = r.to_json().to_string();
        assert!(
            json.contains(r#""volume":{"container_path":"data","persistence_id":"v1"}"#),
            "{json}"
        );
    }

    #[test]
    fn refused_where_a_volume_cannot_be() {
        for (text, want) in [
            ("cpus(db,volume=v,path=p):1", "only disk"),
            ("disk(*,volume=v,path=p):1", "needs reserved disk"),
            ("disk(db,volume=v):1", "given together"),
            ("disk(db,volume=v,path=/etc):1", "must be relative"),
            (
                "disk(db,volume=v,path=a,volume=w):1",
                "duplicate qualifier 'volume'",
            ),
        ] {
            let e = Resources::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let mut p = Resources::parse("disk(db):1").unwrap().to_proto();
        p[0].disk = Some(agora_proto::v1::DiskInfo {
            persistence_id: "v".into(),
            container_path: "p".into(),
            read_only: true,
            ..Default::default()
        });
        let e = Resources::from_proto(&p).unwrap_err().to_string();
        assert!(e.contains("read-only"), "{e}");
    }
}
