//! Builds container images at test time: OCI image layouts (directory or tarball) and
//! docker archives, from layers described as entries. The busybox image is made of
//! Debian's `busybox-static` (`/bin/busybox`; scripts/test.sh installs it).

#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One entry of a layer tar.
pub enum Entry {
    /// A regular file with its mode.
    File(&'static str, Vec<u8>, u32),
    /// A directory.
    Dir(&'static str),
    /// A symlink: path, target.
    Symlink(&'static str, &'static str),
    /// An entry with a raw name (e.g. `../escape`), written without the tar crate's checks.
    RawFile(&'static str, Vec<u8>),
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An uncompressed tar of `entries`.
pub fn layer(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        match e {
            Entry::File(path, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.set_mode(*mode);
                b.append_data(&mut h, path, data.as_slice())
                    .unwrap_or_else(|e| panic!("tar {path}: {e}"));
            }
            Entry::Dir(path) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                b.append_data(&mut h, path, std::io::empty())
                    .unwrap_or_else(|e| panic!("tar {path}: {e}"));
            }
            Entry::Symlink(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                b.append_link(&mut h, path, target)
                    .unwrap_or_else(|e| panic!("tar {path}: {e}"));
            }
            Entry::RawFile(path, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                let name = &mut h.as_old_mut().name;
                name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_cksum();
                b.append(&h, data.as_slice())
                    .unwrap_or_else(|e| panic!("tar {path}: {e}"));
            }
        }
    }
    b.into_inner().unwrap_or_else(|e| panic!("tar: {e}"))
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap_or_else(|e| panic!("gzip: {e}"));
    enc.finish().unwrap_or_else(|e| panic!("gzip: {e}"))
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn blob(dir: &Path, bytes: &[u8]) -> String {
    let hex = sha256_hex(bytes);
    write(&dir.join("blobs/sha256").join(&hex), bytes);
    format!("sha256:{hex}")
}

/// Writes an OCI image layout into `dir`: `layers` (bottom first, each gzipped when
/// `gzipped`), a config with `env`. Returns the layer digests.
pub fn oci_layout(dir: &Path, layers: &[Vec<u8>], gzipped: bool, env: &[&str]) -> Vec<String> {
    write(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    );
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": env},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config_bytes = serde_json::to_vec(&config).unwrap_or_default();
    let config_digest = blob(dir, &config_bytes);
    let mut descriptors = Vec::new();
    let mut digests = Vec::new();
    for l in layers {
        let stored = if gzipped { gzip(l) } else { l.clone() };
        let digest = blob(dir, &stored);
        descriptors.push(serde_json::json!({
            "mediaType": if gzipped {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            } else {
                "application/vnd.oci.image.layer.v1.tar"
            },
            "digest": digest, "size": stored.len(),
        }));
        digests.push(digest);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_bytes.len()},
        "layers": descriptors,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    let manifest_digest = blob(dir, &manifest_bytes);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest_bytes.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    });
    write(
        &dir.join("index.json"),
        &serde_json::to_vec(&index).unwrap_or_default(),
    );
    digests
}

/// A tarball of the directory `dir` (its contents at the tarball's root).
pub fn tarball_of(dir: &Path, out: &Path) {
    let file = std::fs::File::create(out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    let mut b = tar::Builder::new(file);
    b.append_dir_all(".", dir)
        .unwrap_or_else(|e| panic!("tar {}: {e}", dir.display()));
    b.finish().unwrap_or_else(|e| panic!("tar: {e}"));
}

/// A docker archive (`docker save` format) at `out` with plain-tar `layers`.
pub fn docker_archive(out: &Path, layers: &[Vec<u8>], env: &[&str]) {
    let staging = out.with_extension("staging");
    let _ = std::fs::remove_dir_all(&staging);
    let mut names = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let hex = sha256_hex(l);
        write(&staging.join(&hex).join("layer.tar"), l);
        names.push(format!("{hex}/layer.tar"));
        diff_ids.push(format!("sha256:{hex}"));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": env},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config_bytes = serde_json::to_vec(&config).unwrap_or_default();
    let config_name = format!("{}.json", sha256_hex(&config_bytes));
    write(&staging.join(&config_name), &config_bytes);
    let manifest =
        serde_json::json!([{"Config": config_name, "RepoTags": ["t:latest"], "Layers": names}]);
    write(
        &staging.join("manifest.json"),
        &serde_json::to_vec(&manifest).unwrap_or_default(),
    );
    tarball_of(&staging, out);
    let _ = std::fs::remove_dir_all(&staging);
}

/// Applets linked to busybox in the test image.
pub const APPLETS: [&str; 22] = [
    "sh", "ls", "cat", "echo", "test", "id", "stat", "mkdir", "touch", "ps", "wc", "grep",
    "hostname", "sleep", "true", "false", "env", "readlink", "head", "rm", "mount", "pwd",
];

/// Entries of a busybox layer: `/bin/busybox` from the host and symlinks for [`APPLETS`].
pub fn busybox_entries() -> Vec<Entry> {
    let busybox = std::fs::read("/bin/busybox").unwrap_or_else(|e| {
        panic!("/bin/busybox (Debian's busybox-static; scripts/test.sh installs it): {e}")
    });
    let mut entries = vec![
        Entry::Dir("bin"),
        Entry::Dir("etc"),
        Entry::File("bin/busybox", busybox, 0o755),
    ];
    for applet in APPLETS {
        let path: &'static str = Box::leak(format!("bin/{applet}").into_boxed_str());
        entries.push(Entry::Symlink(path, "busybox"));
    }
    entries
}

/// A busybox OCI layout in `dir` with a second layer: `/etc/motd` added, `/etc/removed`
/// (in the first layer) whited out.
pub fn busybox_image(dir: &Path) -> PathBuf {
    let mut base = busybox_entries();
    base.push(Entry::File("etc/removed", b"lower\n".to_vec(), 0o644));
    let top = layer(&[
        Entry::Dir("etc"),
        Entry::File("etc/motd", b"from the image\n".to_vec(), 0o644),
        Entry::File("etc/.wh.removed", Vec::new(), 0o644),
    ]);
    oci_layout(
        dir,
        &[layer(&base), top],
        false,
        &["PATH=/bin", "IMAGE_VAR=from-config"],
    );
    dir.to_path_buf()
}
