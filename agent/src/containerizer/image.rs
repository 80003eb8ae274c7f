//! Container images stored on the agent: reading them and caching their layers.
//!
//! An image is named by an absolute path on the agent (below one of the operator's
//! `--image-dir` directories): an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/...`), or a tarball of one, or a docker-archive tarball (`docker save`:
//! `manifest.json`, a config and layer tars). [`ImageStore::provision`] reads the image's
//! manifest and config, and unpacks each layer it has not unpacked before into the
//! content-addressed cache `<work-dir>/images/layers/sha256/<hex>/`, verifying every blob
//! against its digest (OCI: the digest of the blob as stored; docker-archive: the config's
//! `diff_ids`, digests of the uncompressed layer tars). Whiteouts become overlayfs
//! whiteouts (a 0/0 character device for `.wh.<name>`, the `trusted.overlay.opaque`
//! attribute for `.wh..wh..opq`), so the layers stack as an overlay's lower directories.
//!
//! Owns `<work-dir>/images/`. Must never read an image outside the allowed directories,
//! never write outside its own directory (layer entries that would, through `..` or a
//! symlink, are refused), never keep a layer whose digest did not match, and never unpack
//! device nodes or set-user-id bits that could give a task more than it was given (device
//! entries are skipped; the container's root is mounted `nosuid`, `nodev`).
//!
//! The cache only grows: a layer stays until the operator removes `<work-dir>/images`
//! while no container runs. Registries are not consulted (a pull can come later behind
//! the same [`ImageStore::provision`]).

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Most bytes of a manifest, index or config read into memory.
pub const MAX_METADATA_BYTES: u64 = 4 * 1024 * 1024;
/// Most layers of one image (an overlay's lower directories share one page of mount
/// options).
pub const MAX_LAYERS: usize = 32;
/// Most levels of nested OCI indexes followed to a manifest.
const MAX_INDEX_DEPTH: usize = 4;

/// Why an image cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The path is not absolute or not below an allowed directory.
    #[error("image {path}: {why}")]
    NotAllowed {
        /// The image path as named by the task.
        path: PathBuf,
        /// Why not.
        why: String,
    },
    /// The image is not a format this agent reads, or is malformed.
    #[error("image {path}: {why}")]
    Invalid {
        /// The image.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A blob does not have the digest it is named by.
    #[error("image {path}: {what} has digest sha256:{actual}, expected {expected}")]
    DigestMismatch {
        /// The image.
        path: PathBuf,
        /// Which blob.
        what: String,
        /// The digest named by the manifest or config.
        expected: String,
        /// The digest of its content.
        actual: String,
    },
    /// Reading the image or writing the cache failed.
    #[error("image {path}: {context}: {error}")]
    Io {
        /// The image.
        path: PathBuf,
        /// What was being done.
        context: String,
        /// The OS error.
        error: io::Error,
    },
}

/// An image ready to be the lower layers of a container's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provisioned {
    /// Unpacked layer directories, bottom layer first.
    pub layers: Vec<PathBuf>,
    /// The image config's `Env` (`NAME=value`), the base of the task's environment.
    pub env: Vec<(String, String)>,
}

/// The agent's images and layer cache.
#[derive(Clone, Debug)]
pub struct ImageStore {
    root: PathBuf,
    allowed_dirs: Vec<PathBuf>,
}

/// A layer to unpack: where its blob is, how it is compressed, what it must hash to.
struct LayerBlob {
    file: PathBuf,
    /// `sha256:<hex>`, the cache key and what `verify` must match.
    digest: String,
    /// Digest of the compressed stream (OCI) or of the uncompressed tar (docker-archive).
    verify: Verify,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verify {
    Stored,
    Uncompressed,
}

impl ImageStore {
    /// The store of an agent with this work directory; images are read only below
    /// `allowed_dirs` (canonical paths; empty: no image can be used).
    pub fn new(work_dir: &Path, allowed_dirs: Vec<PathBuf>) -> ImageStore {
        ImageStore {
            root: work_dir.join("images"),
            allowed_dirs,
        }
    }

    /// The cache directory of a layer digest (`sha256:<hex>`).
    pub fn layer_dir(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.root.join("layers").join("sha256").join(hex))
    }

    /// Reads the image at `path` and makes sure all its layers are unpacked in the cache.
    /// Blocking (file I/O); run it off the async runtime.
    pub fn provision(&self, path: &Path) -> Result<Provisioned, ImageError> {
        let real = self.allowed(path)?;
        let io_err = |context: &str| {
            let path = path.to_path_buf();
            let context = context.to_string();
            move |error| ImageError::Io {
                path,
                context,
                error,
            }
        };
        let meta = std::fs::metadata(&real).map_err(io_err("cannot read it"))?;
        if meta.is_dir() {
            return self.provision_dir(path, &real);
        }
        // A tarball: staged (extracted) once per provision, then read as a directory.
        let staging = self
            .root
            .join("staging")
            .join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&staging).map_err(io_err("cannot create a staging directory"))?;
        let result = (|| {
            let file = std::fs::File::open(&real).map_err(io_err("cannot open it"))?;
            let mut archive = tar::Archive::new(decompressed(io::BufReader::new(file))?);
            for entry in archive
                .entries()
                .map_err(io_err("cannot read the tarball"))?
            {
                let mut entry = entry.map_err(io_err("cannot read the tarball"))?;
                let kind = entry.header().entry_type();
                if kind.is_file() || kind.is_dir() {
                    entry
                        .unpack_in(&staging)
                        .map_err(io_err("cannot extract the tarball"))?;
                }
            }
            self.provision_dir(path, &staging)
        })();
        let _ = std::fs::remove_dir_all(&staging);
        result
    }

    /// `path`, canonical, if it lies below an allowed directory.
    fn allowed(&self, path: &Path) -> Result<PathBuf, ImageError> {
        let refuse = |why: String| ImageError::NotAllowed {
            path: path.to_path_buf(),
            why,
        };
        if !path.is_absolute() {
            return Err(refuse("must be an absolute path on the agent".into()));
        }
        if self.allowed_dirs.is_empty() {
            return Err(refuse(
                "this agent runs no images (it has no --image-dir)".into(),
            ));
        }
        let real = std::fs::canonicalize(path).map_err(|e| refuse(e.to_string()))?;
        if self.allowed_dirs.iter().any(|d| real.starts_with(d)) {
            Ok(real)
        } else {
            Err(refuse(format!(
                "not below an --image-dir of this agent ({})",
                self.allowed_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    fn provision_dir(&self, image: &Path, dir: &Path) -> Result<Provisioned, ImageError> {
        let (config, blobs) = if dir.join("index.json").is_file() {
            oci_layout(image, dir)?
        } else if dir.join("manifest.json").is_file() {
            docker_archive(image, dir)?
        } else {
            return Err(invalid(
                image,
                "neither an OCI image layout (index.json) nor a docker archive (manifest.json)",
            ));
        };
        if blobs.len() > MAX_LAYERS {
            return Err(invalid(
                image,
                format!("{} layers; at most {MAX_LAYERS} are supported", blobs.len()),
            ));
        }
        let mut layers = Vec::with_capacity(blobs.len());
        for blob in &blobs {
            layers.push(self.unpacked(image, blob)?);
        }
        let env = config
            .pointer("/config/Env")
            .and_then(|e| e.as_array())
            .map(|vars| {
                vars.iter()
                    .filter_map(|v| v.as_str()?.split_once('='))
                    .filter(|(k, v)| !k.is_empty() && !k.contains('\0') && !v.contains('\0'))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Provisioned { layers, env })
    }

    /// The cache directory of `blob`, unpacked now unless it already was.
    fn unpacked(&self, image: &Path, blob: &LayerBlob) -> Result<PathBuf, ImageError> {
        let dir = self
            .layer_dir(&blob.digest)
            .ok_or_else(|| invalid(image, format!("bad layer digest {:?}", blob.digest)))?;
        if dir.is_dir() {
            return Ok(dir);
        }
        let io_err = |context: String| {
            move |error| ImageError::Io {
                path: image.to_path_buf(),
                context,
                error,
            }
        };
        let tmp = self
            .root
            .join("layers")
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&tmp).map_err(io_err("cannot create the layer cache".into()))?;
        let result = unpack_layer(image, blob, &tmp);
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io_err("cannot create the layer cache".into()))?;
        }
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(dir),
            // Another launch unpacked the same layer meanwhile: same content, keep theirs.
            Err(_) if dir.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(dir)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(io_err(format!("cannot store layer {}", blob.digest))(e))
            }
        }
    }
}

fn invalid(image: &Path, why: impl Into<String>) -> ImageError {
    ImageError::Invalid {
        path: image.to_path_buf(),
        why: why.into(),
    }
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

fn hex(hash: Sha256) -> String {
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A gzip stream decompressed, anything else as is (peeked by its magic bytes).
fn decompressed<R: io::BufRead + 'static>(mut reader: R) -> Result<Box<dyn Read>, ImageError> {
    let gzip = reader
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    Ok(if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
}

/// An I/O error while unpacking `blob`, saying what was being done.
fn layer_io(
    image: &Path,
    blob: &LayerBlob,
    context: &str,
) -> impl FnOnce(io::Error) -> ImageError + use<> {
    let path = image.to_path_buf();
    let context = format!("layer {}: {context}", blob.digest);
    move |error| ImageError::Io {
        path,
        context,
        error,
    }
}

/// Unpacks one layer blob into `dst` (a fresh directory), checking its digest.
fn unpack_layer(image: &Path, blob: &LayerBlob, dst: &Path) -> Result<(), ImageError> {
    let io_err = |context: &str| layer_io(image, blob, context);
    let file = std::fs::File::open(&blob.file).map_err(io_err("cannot open its blob"))?;
    let stored = Hashing {
        inner: file,
        hash: Sha256::new(),
    };
    let mut stored = io::BufReader::new(stored);
    let is_gzip = io::BufRead::fill_buf(&mut stored)
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .map_err(io_err("cannot read its blob"))?;
    let uncompressed_hex = if is_gzip {
        let mut gz = flate2::bufread::MultiGzDecoder::new(&mut stored);
        unpack_entries(image, blob, dst, &mut gz)?
    } else {
        unpack_entries(image, blob, dst, &mut stored)?
    };
    io::copy(&mut stored, &mut io::sink()).map_err(io_err("cannot read its blob"))?;
    let stored_hex = hex(stored.into_inner().hash);
    let actual = match blob.verify {
        Verify::Stored => stored_hex,
        Verify::Uncompressed => uncompressed_hex,
    };
    if blob.digest != format!("sha256:{actual}") {
        return Err(ImageError::DigestMismatch {
            path: image.to_path_buf(),
            what: format!("layer {}", blob.file.display()),
            expected: blob.digest.clone(),
            actual,
        });
    }
    Ok(())
}

/// Unpacks the tar read from `plain` into `dst` (whiteouts as overlayfs ones, device
/// entries skipped); the sha256 of everything read, to its end.
fn unpack_entries(
    image: &Path,
    blob: &LayerBlob,
    dst: &Path,
    plain: &mut dyn Read,
) -> Result<String, ImageError> {
    let io_err = |context: &str| layer_io(image, blob, context);
    let mut uncompressed = Hashing {
        inner: plain,
        hash: Sha256::new(),
    };
    {
        let mut archive = tar::Archive::new(&mut uncompressed);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(nix::unistd::Uid::effective().is_root());
        archive.set_preserve_mtime(true);
        archive.set_unpack_xattrs(false);
        archive.set_overwrite(true);
        for entry in archive.entries().map_err(io_err("not a tar"))? {
            let mut entry = entry.map_err(io_err("cannot read an entry"))?;
            let kind = entry.header().entry_type();
            if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
                continue;
            }
            let path = entry.path().map_err(io_err("bad entry name"))?.into_owned();
            let name = path.file_name().map(OsStr::as_bytes).unwrap_or_default();
            if let Some(hidden) = name.strip_prefix(b".wh.") {
                let parent = safe_parent(image, dst, &path)?;
                if hidden == b".wh..opq" {
                    super::spawn::set_xattr(&parent, c"trusted.overlay.opaque", b"y")
                        .map_err(io_err("cannot mark an opaque directory"))?;
                } else {
                    let target = parent.join(OsStr::from_bytes(hidden));
                    let _ = std::fs::remove_file(&target);
                    nix::sys::stat::mknod(
                        &target,
                        nix::sys::stat::SFlag::S_IFCHR,
                        nix::sys::stat::Mode::empty(),
                        0,
                    )
                    .map_err(|e| io_err("cannot create a whiteout")(io::Error::from(e)))?;
                }
                continue;
            }
            if !entry.unpack_in(dst).map_err(io_err("cannot unpack"))? {
                return Err(invalid(
                    image,
                    format!(
                        "layer {} has an entry outside its root: {}",
                        blob.digest,
                        path.display()
                    ),
                ));
            }
        }
    }
    // The tar may end before the stream does (padding): hash it all.
    io::copy(&mut uncompressed, &mut io::sink()).map_err(io_err("cannot read its blob"))?;
    Ok(hex(uncompressed.hash))
}

/// The directory holding a whiteout entry `path`, created inside `dst` with no symlink on
/// the way (a symlink a previous entry made could point out of the layer).
fn safe_parent(image: &Path, dst: &Path, path: &Path) -> Result<PathBuf, ImageError> {
    let mut dir = dst.to_path_buf();
    let parent = path.parent().unwrap_or(Path::new(""));
    for c in parent.components() {
        match c {
            Component::Normal(name) => dir.push(name),
            Component::CurDir => continue,
            _ => {
                return Err(invalid(
                    image,
                    format!("whiteout outside the layer: {}", path.display()),
                ));
            }
        }
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(invalid(
                    image,
                    format!("whiteout below a non-directory: {}", path.display()),
                ));
            }
            Err(_) => std::fs::create_dir(&dir).map_err(|error| ImageError::Io {
                path: image.to_path_buf(),
                context: format!("cannot create {}", dir.display()),
                error,
            })?,
        }
    }
    Ok(dir)
}

/// Reads a small JSON file, checking its sha256 when `digest` is given.
fn read_json(
    image: &Path,
    file: &Path,
    digest: Option<&str>,
) -> Result<serde_json::Value, ImageError> {
    let what = file
        .strip_prefix(file.ancestors().nth(3).unwrap_or(Path::new("")))
        .unwrap_or(file)
        .display()
        .to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_METADATA_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|error| ImageError::Io {
            path: image.to_path_buf(),
            context: format!("cannot read {what}"),
            error,
        })?;
    if bytes.len() as u64 > MAX_METADATA_BYTES {
        return Err(invalid(
            image,
            format!("{what} is larger than {MAX_METADATA_BYTES} bytes"),
        ));
    }
    if let Some(expected) = digest {
        let mut h = Sha256::new();
        h.update(&bytes);
        let actual = hex(h);
        if expected != format!("sha256:{actual}") {
            return Err(ImageError::DigestMismatch {
                path: image.to_path_buf(),
                what,
                expected: expected.to_string(),
                actual,
            });
        }
    }
    serde_json::from_slice(&bytes).map_err(|e| invalid(image, format!("{what}: {e}")))
}

/// `blobs/sha256/<hex>` of an OCI layout, for a well-formed digest.
fn blob_path(image: &Path, dir: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(dir.join("blobs").join("sha256").join(hex))
        }
        _ => Err(invalid(
            image,
            format!("unsupported digest {digest:?} (sha256 only)"),
        )),
    }
}

fn str_field<'a>(
    image: &Path,
    v: &'a serde_json::Value,
    field: &str,
) -> Result<&'a str, ImageError> {
    v.get(field)
        .and_then(|f| f.as_str())
        .ok_or_else(|| invalid(image, format!("missing {field:?}")))
}

/// The config and layers of an OCI image layout: `index.json` -> (nested indexes) -> the
/// manifest for linux/amd64 (or the only one) -> config and layers.
fn oci_layout(image: &Path, dir: &Path) -> Result<(serde_json::Value, Vec<LayerBlob>), ImageError> {
    let mut index = read_json(image, &dir.join("index.json"), None)?;
    let mut depth = 0;
    let manifest = loop {
        let manifests = index
            .get("manifests")
            .and_then(|m| m.as_array())
            .filter(|m| !m.is_empty())
            .ok_or_else(|| invalid(image, "index without manifests"))?;
        let chosen = manifests
            .iter()
            .find(|m| {
                m.pointer("/platform/os").and_then(|v| v.as_str()) == Some("linux")
                    && m.pointer("/platform/architecture").and_then(|v| v.as_str())
                        == Some(std::env::consts::ARCH.replace("x86_64", "amd64").as_str())
            })
            .unwrap_or(&manifests[0]);
        let digest = str_field(image, chosen, "digest")?;
        let media = chosen
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or("");
        let doc = read_json(image, &blob_path(image, dir, digest)?, Some(digest))?;
        let nested = media.ends_with("image.index.v1+json")
            || media.ends_with("manifest.list.v2+json")
            || doc.get("manifests").is_some();
        if !nested {
            break doc;
        }
        depth += 1;
        if depth > MAX_INDEX_DEPTH {
            return Err(invalid(
                image,
                format!("indexes nested deeper than {MAX_INDEX_DEPTH}"),
            ));
        }
        index = doc;
    };
    let config_desc = manifest
        .get("config")
        .ok_or_else(|| invalid(image, "manifest without config"))?;
    let config_digest = str_field(image, config_desc, "digest")?;
    let config = read_json(
        image,
        &blob_path(image, dir, config_digest)?,
        Some(config_digest),
    )?;
    let layers = manifest
        .get("layers")
        .and_then(|l| l.as_array())
        .ok_or_else(|| invalid(image, "manifest without layers"))?;
    let mut blobs = Vec::with_capacity(layers.len());
    for layer in layers {
        let digest = str_field(image, layer, "digest")?;
        let media = layer
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or("");
        if media.contains("zstd") {
            return Err(invalid(
                image,
                format!("layer {digest}: zstd layers are not supported (gzip or plain tar)"),
            ));
        }
        blobs.push(LayerBlob {
            file: blob_path(image, dir, digest)?,
            digest: digest.to_string(),
            verify: Verify::Stored,
        });
    }
    Ok((config, blobs))
}

/// A relative path inside the archive directory (no `..`, not absolute).
fn inside(image: &Path, dir: &Path, name: &str) -> Result<PathBuf, ImageError> {
    let rel = Path::new(name);
    if rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        Ok(dir.join(rel))
    } else {
        Err(invalid(image, format!("path {name:?} leaves the archive")))
    }
}

/// The config and layers of a docker archive: `manifest.json`'s first image; layers are
/// verified against the config's `rootfs.diff_ids`.
fn docker_archive(
    image: &Path,
    dir: &Path,
) -> Result<(serde_json::Value, Vec<LayerBlob>), ImageError> {
    let manifest = read_json(image, &dir.join("manifest.json"), None)?;
    let first = manifest
        .as_array()
        .and_then(|m| m.first())
        .ok_or_else(|| invalid(image, "manifest.json lists no image"))?;
    let config_name = str_field(image, first, "Config")?;
    let config = read_json(image, &inside(image, dir, config_name)?, None)?;
    let diff_ids = config
        .pointer("/rootfs/diff_ids")
        .and_then(|d| d.as_array())
        .ok_or_else(|| invalid(image, "config without rootfs.diff_ids"))?;
    let layers = first
        .get("Layers")
        .and_then(|l| l.as_array())
        .ok_or_else(|| invalid(image, "manifest.json without Layers"))?;
    if layers.len() != diff_ids.len() {
        return Err(invalid(
            image,
            format!(
                "{} layers but {} diff_ids in the config",
                layers.len(),
                diff_ids.len()
            ),
        ));
    }
    let mut blobs = Vec::with_capacity(layers.len());
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        let name = layer
            .as_str()
            .ok_or_else(|| invalid(image, "a layer that is not a path"))?;
        let digest = diff_id
            .as_str()
            .ok_or_else(|| invalid(image, "a diff_id that is not a string"))?;
        blobs.push(LayerBlob {
            file: inside(image, dir, name)?,
            digest: digest.to_string(),
            verify: Verify::Uncompressed,
        });
    }
    Ok((config, blobs))
}

/// The path in the merged view of `layers` (bottom first) where `rel` resolves to a
/// symlink, if any component of it does: the topmost layer holding an entry decides.
/// Mount points in an image's root are refused when one is a symlink, since mounting on
/// it would follow it on the host before `pivot_root`.
pub fn symlink_on_path(layers: &[PathBuf], rel: &Path) -> Option<PathBuf> {
    let mut prefix = PathBuf::new();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            continue;
        };
        prefix.push(name);
        let top = layers
            .iter()
            .rev()
            .find_map(|l| std::fs::symlink_metadata(l.join(&prefix)).ok());
        if top.is_some_and(|m| m.file_type().is_symlink()) {
            return Some(prefix);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_dirs_only_for_sha256_digests() {
        let store = ImageStore::new(Path::new("/w"), vec![]);
        let hex = "a".repeat(64);
        assert_eq!(
            store.layer_dir(&format!("sha256:{hex}")),
            Some(PathBuf::from(format!("/w/images/layers/sha256/{hex}")))
        );
        assert_eq!(store.layer_dir("sha256:../../etc"), None);
        assert_eq!(store.layer_dir(&format!("sha512:{hex}")), None);
    }

    #[test]
    fn no_image_dir_means_no_images() {
        let store = ImageStore::new(Path::new("/w"), vec![]);
        let err = store.provision(Path::new("/tmp")).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "image /tmp: this agent runs no images (it has no --image-dir)"
        );
        let err = store.provision(Path::new("rel/img")).expect_err("refused");
        assert!(
            err.to_string().contains("must be an absolute path"),
            "{err}"
        );
    }
}
