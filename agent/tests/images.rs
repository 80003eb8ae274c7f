//! The agent's image store: OCI layouts, OCI and docker-archive tarballs built at test
//! time, layers unpacked once into the content-addressed cache and verified against their
//! digests; images outside the operator's directories and layers escaping their root are
//! refused. Whiteouts need root (a 0/0 device node), so that test is named `needs_root`.

#[path = "support/oci.rs"]
mod oci;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use agora_agent::containerizer::image::{ImageError, ImageStore};
use oci::Entry;

/// A scratch directory removed on drop, with `images/` (the allowed image directory) and
/// `work/` (the agent's work directory).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("agora-images-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["images", "work", "elsewhere"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap_or_else(|e| panic!("mkdir: {e}"));
        }
        Scratch(dir)
    }

    fn images(&self) -> PathBuf {
        self.0.join("images")
    }

    fn store(&self) -> ImageStore {
        let allowed = std::fs::canonicalize(self.images()).unwrap_or_else(|e| panic!("{e}"));
        ImageStore::new(&self.0.join("work"), vec![allowed])
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn two_layers() -> Vec<Vec<u8>> {
    vec![
        oci::layer(&[
            Entry::Dir("etc"),
            Entry::File("etc/base", b"base\n".to_vec(), 0o644),
            Entry::File("etc/shadowed", b"lower\n".to_vec(), 0o644),
        ]),
        oci::layer(&[
            Entry::Dir("etc"),
            Entry::File("etc/shadowed", b"upper\n".to_vec(), 0o600),
            Entry::Symlink("etc/link", "base"),
        ]),
    ]
}

#[test]
fn oci_layout_layers_are_unpacked_once_into_the_cache() {
    let s = Scratch::new("oci");
    let image = s.images().join("app");
    let digests = oci::oci_layout(&image, &two_layers(), true, &["PATH=/bin", "A=b=c"]);
    let store = s.store();
    let got = store
        .provision(&image)
        .unwrap_or_else(|e| panic!("provision: {e}"));
    let expected: Vec<PathBuf> = digests
        .iter()
        .map(|d| store.layer_dir(d).unwrap_or_else(|| panic!("digest {d}")))
        .collect();
    assert_eq!(got.layers, expected);
    assert_eq!(read(&got.layers[0].join("etc/base")), "base\n");
    assert_eq!(read(&got.layers[1].join("etc/shadowed")), "upper\n");
    let link = std::fs::read_link(got.layers[1].join("etc/link")).unwrap_or_default();
    assert_eq!(link, PathBuf::from("base"));
    assert_eq!(
        got.env,
        vec![
            ("PATH".to_string(), "/bin".to_string()),
            ("A".to_string(), "b=c".to_string())
        ]
    );
    // Cached: the layer blobs are no longer needed.
    for d in &digests {
        let hex = d.trim_start_matches("sha256:");
        std::fs::remove_file(image.join("blobs/sha256").join(hex))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let again = store
        .provision(&image)
        .unwrap_or_else(|e| panic!("provision from the cache: {e}"));
    assert_eq!(again.layers, expected);
}

#[test]
fn a_layer_not_matching_its_digest_is_refused_and_not_cached() {
    let s = Scratch::new("digest");
    let image = s.images().join("app");
    let digests = oci::oci_layout(&image, &two_layers(), true, &[]);
    let hex = digests[1].trim_start_matches("sha256:");
    // Same size class, other content: a tampered blob.
    let tampered = oci::gzip(&oci::layer(&[Entry::File(
        "etc/shadowed",
        b"evil\n".to_vec(),
        0o644,
    )]));
    std::fs::write(image.join("blobs/sha256").join(hex), &tampered)
        .unwrap_or_else(|e| panic!("{e}"));
    let store = s.store();
    let err = store.provision(&image).expect_err("a tampered layer");
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("expected {}", digests[1]))
            && text.contains(&oci::sha256_hex(&tampered)),
        "{text}"
    );
    assert!(
        !store.layer_dir(&digests[1]).is_some_and(|d| d.exists()),
        "a layer that failed verification must not be cached"
    );
    let tmp = s.0.join("work/images/layers/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "partial unpacks left behind: {left:?}");
}

#[test]
fn docker_archives_and_oci_tarballs_are_read() {
    let s = Scratch::new("tarballs");
    let layers = two_layers();
    let archive = s.images().join("app.docker.tar");
    oci::docker_archive(&archive, &layers, &["FROM=docker"]);
    let store = s.store();
    let got = store
        .provision(&archive)
        .unwrap_or_else(|e| panic!("docker archive: {e}"));
    // The docker archive's cache key is the uncompressed layer's digest (its diff_id).
    let diff_id = format!("sha256:{}", oci::sha256_hex(&layers[0]));
    assert_eq!(Some(got.layers[0].clone()), store.layer_dir(&diff_id));
    assert_eq!(read(&got.layers[1].join("etc/shadowed")), "upper\n");
    assert_eq!(got.env, vec![("FROM".to_string(), "docker".to_string())]);

    let layout = s.0.join("elsewhere/layout");
    oci::oci_layout(&layout, &layers, true, &[]);
    let tarball = s.images().join("app.oci.tar");
    oci::tarball_of(&layout, &tarball);
    let got = store
        .provision(&tarball)
        .unwrap_or_else(|e| panic!("OCI tarball: {e}"));
    assert_eq!(read(&got.layers[0].join("etc/base")), "base\n");
    let staging: Vec<_> = std::fs::read_dir(s.0.join("work/images/staging"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(staging.is_empty(), "staging left behind: {staging:?}");

    // A docker layer whose content does not match its diff_id.
    let bad = s.images().join("bad.docker.tar");
    let staging = s.0.join("elsewhere/bad");
    oci::docker_archive(&bad, &layers, &[]);
    std::fs::create_dir_all(&staging).unwrap_or_else(|e| panic!("{e}"));
    let status = std::process::Command::new("tar")
        .args(["-xf"])
        .arg(&bad)
        .arg("-C")
        .arg(&staging)
        .status()
        .unwrap_or_else(|e| panic!("tar: {e}"));
    assert!(status.success());
    let hex = oci::sha256_hex(&layers[0]);
    std::fs::write(
        staging.join(&hex).join("layer.tar"),
        oci::layer(&[Entry::File("etc/base", b"other\n".to_vec(), 0o644)]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    oci::tarball_of(&staging, &bad);
    let fresh = Scratch::new("tarballs-bad");
    let err = ImageStore::new(
        &fresh.0.join("work"),
        vec![std::fs::canonicalize(s.images()).unwrap_or_else(|e| panic!("{e}"))],
    )
    .provision(&bad)
    .expect_err("a layer not matching its diff_id");
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
}

#[test]
fn images_outside_the_image_dirs_are_refused() {
    let s = Scratch::new("allowed");
    let outside = s.0.join("elsewhere/app");
    oci::oci_layout(&outside, &two_layers(), false, &[]);
    let store = s.store();
    let err = store.provision(&outside).expect_err("outside");
    assert!(matches!(err, ImageError::NotAllowed { .. }), "{err}");
    assert!(
        err.to_string().contains("not below an --image-dir"),
        "{err}"
    );
    // A symlink inside the allowed directory does not open the rest of the disk.
    let link = s.images().join("sneaky");
    std::os::unix::fs::symlink(&outside, &link).unwrap_or_else(|e| panic!("{e}"));
    let err = store.provision(&link).expect_err("through a symlink");
    assert!(matches!(err, ImageError::NotAllowed { .. }), "{err}");
    // `..` in the path is resolved before the check too.
    let dotdot = s.images().join("../elsewhere/app");
    assert!(matches!(
        store.provision(&dotdot),
        Err(ImageError::NotAllowed { .. })
    ));
    assert!(
        !s.0.join("work/images/layers/sha256").exists(),
        "nothing may be unpacked from a refused image"
    );
}

#[test]
fn a_layer_entry_outside_its_root_is_refused() {
    let s = Scratch::new("escape");
    let image = s.images().join("app");
    let evil = oci::layer(&[
        Entry::Dir("etc"),
        Entry::RawFile("../../escaped", b"out\n".to_vec()),
    ]);
    oci::oci_layout(&image, &[evil], false, &[]);
    let err = s.store().provision(&image).expect_err("an escaping entry");
    assert!(err.to_string().contains("outside its root"), "{err}");
    assert!(!s.0.join("work/images/escaped").exists());
    assert!(!s.0.join("work/escaped").exists());
}

#[test]
fn needs_root_whiteouts_become_overlay_whiteouts() {
    use std::os::unix::fs::FileTypeExt;
    let s = Scratch::new("whiteouts");
    let image = s.images().join("app");
    let top = oci::layer(&[
        Entry::Dir("etc"),
        Entry::Dir("var"),
        Entry::File("etc/.wh.shadowed", Vec::new(), 0o644),
        Entry::File("var/.wh..wh..opq", Vec::new(), 0o644),
    ]);
    oci::oci_layout(&image, &[two_layers().remove(0), top], false, &[]);
    let got = s
        .store()
        .provision(&image)
        .unwrap_or_else(|e| panic!("provision: {e}"));
    let whiteout = std::fs::symlink_metadata(got.layers[1].join("etc/shadowed"))
        .unwrap_or_else(|e| panic!("whiteout: {e}"));
    assert!(whiteout.file_type().is_char_device());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(whiteout.rdev(), 0);
    assert!(!got.layers[1].join("etc/.wh.shadowed").exists());
    let opaque = xattr(&got.layers[1].join("var"), "trusted.overlay.opaque");
    assert_eq!(opaque.as_deref(), Some("y"));
}

fn xattr(path: &Path, name: &str) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = std::ffi::CString::new(name).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: NUL-terminated strings and a stack buffer of the length passed.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}
