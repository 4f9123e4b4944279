//! Export to and import from OCI image layouts, checked with the real skopeo and umoci
//! (Debian packages, installed by `.ci/run`): what `ocicache export` writes, they read; what
//! skopeo writes, `ocicache import` reads, verified.

mod common;

use common::{outcome, run, sha256};
use ocicache::{Cache, Config, Digest, ErrorKind, ManualClock, Reference, Resolution};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Runs skopeo (no policy file needed) and returns its stdout; panics if it fails.
fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo is installed (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

/// A real image in the cache: one uncompressed tar layer holding `hello.txt` with `text`, its
/// config, its manifest.
struct Image {
    manifest: Digest,
    manifest_bytes: Vec<u8>,
    layer: Digest,
    config: Digest,
}

/// A tar made by the `tar` command, holding `hello.txt` with `text`.
fn tar_of(text: &str) -> Vec<u8> {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("hello.txt"), text).unwrap();
    let tar = src.path().join("layer.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(src.path())
        .args(["-cf"])
        .arg(&tar)
        .arg("hello.txt")
        .status()
        .expect("tar");
    assert!(status.success());
    std::fs::read(&tar).unwrap()
}

fn descriptor(media_type: &str, digest: &Digest, size: usize) -> String {
    format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#)
}

fn put_image(cache: &Cache, text: &str, arch: &str) -> Image {
    let layer_bytes = tar_of(text);
    let layer = cache.put_blob(None, &layer_bytes).unwrap();
    let config_bytes = format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer}"]}},"config":{{}}}}"#
    );
    let config = cache.put_blob(None, config_bytes.as_bytes()).unwrap();
    let manifest_bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{}]}}"#,
        descriptor(
            "application/vnd.oci.image.config.v1+json",
            &config,
            config_bytes.len()
        ),
        descriptor(
            "application/vnd.oci.image.layer.v1.tar",
            &layer,
            layer_bytes.len()
        ),
    )
    .into_bytes();
    let manifest = sha256(&manifest_bytes);
    cache
        .put_manifest(&manifest, &manifest_bytes, None)
        .unwrap();
    Image {
        manifest,
        manifest_bytes,
        layer,
        config,
    }
}

fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

fn blob_file(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs")
        .join(digest.algorithm().name())
        .join(digest.hex())
}

fn index_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()
}

#[test]
fn an_export_is_read_by_skopeo_and_unpacked_by_umoci_with_blobs_hard_linked() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    let image = put_image(&cache, "hello from the layer\n", "amd64");
    let r = reference("localhost:5000/demo/app:v1");
    cache.put_tag(&r, &image.manifest).unwrap();
    let layout = tmp.path().join("layout");

    let report = cache.export(&r, &layout).unwrap();
    assert_eq!(report.digest, image.manifest);
    assert_eq!(report.tag.as_deref(), Some("v1"));
    assert_eq!((report.manifests, report.blobs), (1, 2));
    assert_eq!(
        (report.linked, report.copied, report.already_present),
        (2, 0, 0)
    );
    assert!(!report.tag_stale);

    // skopeo finds the image by its tag and gives back the exact manifest bytes.
    let raw = skopeo(&["inspect", "--raw", &oci(&layout, "v1")]);
    assert_eq!(raw, image.manifest_bytes);
    // index.json: the tag as ref.name, the full reference as containerd's name.
    let index = index_json(&layout);
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], image.manifest.to_string());
    assert_eq!(entry["mediaType"], OCI_MANIFEST);
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        "localhost:5000/demo/app:v1"
    );
    assert_eq!(
        std::fs::read(layout.join("oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );

    // skopeo copies it whole; umoci unpacks the tar layer.
    let copied = tmp.path().join("copied");
    skopeo(&[
        "copy",
        &oci(&layout, "v1"),
        &format!("dir:{}", copied.display()),
    ]);
    assert_eq!(
        std::fs::read(copied.join("manifest.json")).unwrap(),
        image.manifest_bytes
    );
    let bundle = tmp.path().join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v1", layout.display()))
        .arg(&bundle)
        .output()
        .expect("umoci is installed (apt-get install umoci)");
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
        "hello from the layer\n"
    );

    // Same filesystem: the layout's blobs are the cache's files (same inode).
    for d in [&image.layer, &image.config] {
        let exported = std::fs::metadata(blob_file(&layout, d)).unwrap();
        let cached = std::fs::metadata(blob_file(cache.dir(), d)).unwrap();
        assert_eq!(
            (exported.dev(), exported.ino()),
            (cached.dev(), cached.ino())
        );
    }
    // A linked blob is the cache's own file: changed in the layout, the cache finds it
    // corrupted and never serves it.
    let linked = blob_file(&layout, &image.layer);
    let mut bytes = std::fs::read(&linked).unwrap();
    bytes[100] ^= 1;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&linked)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
        .unwrap();
    assert_eq!(
        cache.get_blob(&image.layer).unwrap_err().kind(),
        ErrorKind::Corrupted
    );
    // No temp is left in the layout.
    let names: Vec<String> = std::fs::read_dir(blob_file(&layout, &image.layer).parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn exporting_into_an_existing_layout_adds_to_it_and_a_moved_tag_replaces_its_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    let one = put_image(&cache, "one\n", "amd64");
    let two = put_image(&cache, "two\n", "amd64");
    let three = put_image(&cache, "three\n", "amd64");
    let (a, b) = (
        reference("localhost:5000/app:a"),
        reference("ghcr.io/org/b:b"),
    );
    cache.put_tag(&a, &one.manifest).unwrap();
    cache.put_tag(&b, &two.manifest).unwrap();
    let layout = tmp.path().join("layout");
    cache.export(&a, &layout).unwrap();
    cache.export(&b, &layout).unwrap();
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(&layout, "a")]),
        one.manifest_bytes
    );
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(&layout, "b")]),
        two.manifest_bytes
    );

    // Exporting again finds every blob there already, with the right bytes.
    let again = cache.export(&b, &layout).unwrap();
    assert_eq!(
        (again.already_present, again.linked, again.copied),
        (2, 0, 0)
    );
    assert!(again.replaced.is_empty());
    assert_eq!(
        index_json(&layout)["manifests"].as_array().unwrap().len(),
        2
    );

    // The tag moves: its entry names the new image; the old files stay.
    cache.put_tag(&a, &three.manifest).unwrap();
    let moved = cache.export(&a, &layout).unwrap();
    assert_eq!(moved.replaced, vec![one.manifest.clone()]);
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(&layout, "a")]),
        three.manifest_bytes
    );
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(&layout, "b")]),
        two.manifest_bytes
    );
    assert_eq!(
        index_json(&layout)["manifests"].as_array().unwrap().len(),
        2
    );
    for d in [&one.manifest, &one.layer] {
        assert!(blob_file(&layout, d).is_file(), "{d} stays");
    }

    // A digest reference is exported without a tag name, next to the tagged ones.
    let pinned = reference(&format!("localhost:5000/app@{}", two.manifest));
    let r = cache.export(&pinned, &layout).unwrap();
    assert_eq!(r.tag, None);
    let index = index_json(&layout);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(entries[2]["annotations"]["org.opencontainers.image.ref.name"].is_null());
}

#[test]
fn a_blob_already_in_the_layout_with_other_bytes_is_an_error_naming_it_and_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    let image = put_image(&cache, "bytes\n", "amd64");
    let r = reference("localhost:5000/app:v1");
    cache.put_tag(&r, &image.manifest).unwrap();
    let layout = tmp.path().join("layout");
    std::fs::create_dir_all(blob_file(&layout, &image.layer).parent().unwrap()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(blob_file(&layout, &image.layer), b"not the layer").unwrap();

    let err = cache.export(&r, &layout).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestMismatch);
    let message = err.to_string();
    assert!(message.contains(&image.layer.to_string()), "{message}");
    assert!(
        message.contains(&image.layer.hex()),
        "names the file: {message}"
    );
    assert_eq!(
        std::fs::read(blob_file(&layout, &image.layer)).unwrap(),
        b"not the layer"
    );
    assert!(!layout.join("index.json").exists(), "no index points at it");
}

#[test]
fn export_of_what_the_cache_does_not_hold_is_not_found_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = tmp.path().join("cache");
    let cache = Cache::open(&cache_dir).unwrap();
    let layout = tmp.path().join("layout");

    let err = cache
        .export(&reference("localhost:5000/app:never"), &layout)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(!layout.exists());

    // Tagged, but a layer is gone: the error names it, and still nothing is created.
    let image = put_image(&cache, "partial\n", "amd64");
    let r = reference("localhost:5000/app:partial");
    cache.put_tag(&r, &image.manifest).unwrap();
    cache.delete_blob(&image.layer).unwrap();
    let err = cache.export(&r, &layout).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains(&image.layer.to_string()), "{err}");
    assert!(!layout.exists());
    drop(cache);

    // The CLI: exit 1, the code on stderr, nothing created.
    let o = run(
        &cache_dir,
        &[
            "export",
            "localhost:5000/app:never",
            layout.to_str().unwrap(),
        ],
    );
    let (code, _, stderr) = outcome(&o);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.starts_with("ocicache: not_found: "), "{stderr}");
    assert!(!layout.exists());
}

#[test]
fn a_directory_that_is_not_an_image_layout_is_refused_and_left_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    let image = put_image(&cache, "x\n", "amd64");
    let r = reference("localhost:5000/app:v1");
    cache.put_tag(&r, &image.manifest).unwrap();
    let project = tmp.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(project.join("notes.txt"), b"mine").unwrap();
    let before = common::tree(&project);
    let err = cache.export(&r, &project).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(common::tree(&project), before);
    // An empty directory is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    cache.export(&r, &empty).unwrap();
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(&empty, "v1")]),
        image.manifest_bytes
    );
}

#[test]
fn on_another_filesystem_blobs_are_copied_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    // /dev/shm is a tmpfs: another filesystem than the cache's.
    let other = tempfile::tempdir_in("/dev/shm").expect("/dev/shm (a tmpfs) is needed");
    assert_ne!(
        std::fs::metadata(other.path()).unwrap().dev(),
        std::fs::metadata(cache.dir()).unwrap().dev(),
        "the test needs /dev/shm on another filesystem than the temp dir"
    );
    let image = put_image(&cache, "copied\n", "amd64");
    let r = reference("localhost:5000/app:v1");
    cache.put_tag(&r, &image.manifest).unwrap();
    let layout = other.path().join("layout");
    let report = cache.export(&r, &layout).unwrap();
    assert_eq!((report.linked, report.copied), (0, 2));
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(&layout, "v1")]),
        image.manifest_bytes
    );
    assert_eq!(
        std::fs::read(blob_file(&layout, &image.layer)).unwrap(),
        cache.get_blob(&image.layer).unwrap()
    );
}

#[test]
fn a_cached_blob_gone_bad_is_never_exported() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    let image = put_image(&cache, "will rot\n", "amd64");
    let r = reference("localhost:5000/app:v1");
    cache.put_tag(&r, &image.manifest).unwrap();
    // The cache's file changes under it (same length).
    let path = blob_file(cache.dir(), &image.layer);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, &bytes).unwrap();

    let layout = tmp.path().join("layout");
    let err = cache.export(&r, &layout).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted, "{err}");
    assert!(!blob_file(&layout, &image.layer).exists());
    assert!(!layout.join("index.json").exists());
    // Neither the link nor the copy left a temp behind.
    let dir = blob_file(&layout, &image.layer)
        .parent()
        .unwrap()
        .to_path_buf();
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A layout written by skopeo: `ocicache export`, then `skopeo copy oci:A:v1 oci:B:t`.
fn skopeo_layout(tmp: &Path, text: &str) -> (PathBuf, Digest, Vec<u8>) {
    let cache = Cache::open(tmp.join("source-cache")).unwrap();
    let image = put_image(&cache, text, "amd64");
    let r = reference("localhost:5000/demo/app:v1");
    cache.put_tag(&r, &image.manifest).unwrap();
    let exported = tmp.join("exported");
    cache.export(&r, &exported).unwrap();
    let written = tmp.join("skopeo");
    skopeo(&["copy", &oci(&exported, "v1"), &oci(&written, "t")]);
    let index = index_json(&written);
    let digest: Digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = std::fs::read(blob_file(&written, &digest)).unwrap();
    (written, digest, bytes)
}

fn layer_of(manifest: &[u8]) -> Digest {
    let v: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    v["layers"][0]["digest"].as_str().unwrap().parse().unwrap()
}

#[test]
fn import_of_a_skopeo_written_layout_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, digest, manifest_bytes) = skopeo_layout(tmp.path(), "round trip\n");
    let cache = Cache::open(tmp.path().join("cache")).unwrap();

    // skopeo writes no io.containerd.image.name: without a repository the tag is refused,
    // before anything is stored.
    let err = cache.import(&layout, Some("t")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(cache.contents().unwrap().is_empty());

    let options = ocicache::ImportOptions::default()
        .tag("t")
        .repository("localhost:5000/demo/imported");
    let report = cache.import_with(&layout, &options).unwrap();
    assert_eq!(report.images.len(), 1);
    assert_eq!(report.images[0].digest, digest);
    assert_eq!(
        report.images[0].tag.as_deref(),
        Some("localhost:5000/demo/imported:t")
    );
    assert_eq!((report.manifests_stored, report.blobs_stored), (1, 2));

    // The cache serves the exact bytes skopeo wrote, and the tag resolves.
    assert_eq!(cache.get_manifest(&digest).unwrap().bytes, manifest_bytes);
    for key in cache.manifest_references(&digest).unwrap() {
        assert_eq!(
            cache.get_blob(&key.digest).unwrap(),
            std::fs::read(blob_file(&layout, &key.digest)).unwrap()
        );
    }
    assert_eq!(
        cache
            .resolve_tag(&reference("localhost:5000/demo/imported:t"))
            .unwrap(),
        Resolution::Fresh(digest.clone())
    );

    // Importing again reads no blob: they are all cached (a layer gone bad in the layout
    // since is not even looked at).
    let layer = layer_of(&manifest_bytes);
    let mut bytes = std::fs::read(blob_file(&layout, &layer)).unwrap();
    bytes[10] ^= 1;
    std::fs::write(blob_file(&layout, &layer), &bytes).unwrap();
    let again = cache.import_with(&layout, &options).unwrap();
    assert_eq!((again.blobs_stored, again.blobs_present), (0, 2));
    assert_eq!(again.manifests_present, 1);

    // And back out: skopeo reads the re-export.
    let out = tmp.path().join("re-exported");
    cache
        .export(&reference("localhost:5000/demo/imported:t"), &out)
        .unwrap();
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(&out, "t")]),
        manifest_bytes
    );
}

#[test]
fn an_imported_export_records_the_tag_under_its_containerd_name() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Cache::open(tmp.path().join("source")).unwrap();
    let image = put_image(&source, "named\n", "amd64");
    let r = reference("ghcr.io/org/tool:1.4");
    source.put_tag(&r, &image.manifest).unwrap();
    let layout = tmp.path().join("layout");
    source.export(&r, &layout).unwrap();

    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    let report = cache.import(&layout, None).unwrap();
    assert_eq!(
        report.images[0].tag.as_deref(),
        Some("ghcr.io/org/tool:1.4")
    );
    assert_eq!(
        cache.resolve_tag(&r).unwrap(),
        Resolution::Fresh(image.manifest.clone())
    );
    assert_eq!(
        cache.get_blob(&image.layer).unwrap(),
        source.get_blob(&image.layer).unwrap()
    );
    // A tag the layout does not have.
    let err = cache.import(&layout, Some("nope")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn a_corrupted_blob_in_the_layout_is_digest_mismatch_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _, manifest_bytes) = skopeo_layout(tmp.path(), "to be corrupted\n");
    let layer = layer_of(&manifest_bytes);
    let path = blob_file(&layout, &layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last / 2] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    let options = ocicache::ImportOptions::default().repository("localhost:5000/x");
    let err = cache.import_with(&layout, &options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestMismatch);
    assert!(err.to_string().contains(&layer.to_string()), "{err}");
    // The config, stored before the layer failed, was taken out again.
    assert!(cache.contents().unwrap().is_empty());
    assert!(cache.tags().unwrap().is_empty());
}

#[test]
fn a_symbolic_link_in_the_layout_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _, manifest_bytes) = skopeo_layout(tmp.path(), "linked\n");
    let layer = layer_of(&manifest_bytes);
    let path = blob_file(&layout, &layer);
    // The link points outside the layout, at the very bytes the blob should have.
    let outside = tmp.path().join("outside");
    std::fs::rename(&path, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &path).unwrap();

    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    let options = ocicache::ImportOptions::default().repository("localhost:5000/x");
    let err = cache.import_with(&layout, &options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(err.to_string().contains(&layer.hex()), "{err}");
    assert!(cache.contents().unwrap().is_empty());

    // A linked blobs/sha256 directory is refused too.
    std::fs::remove_file(&path).unwrap();
    std::fs::rename(&outside, &path).unwrap();
    let algorithm_dir = path.parent().unwrap().to_path_buf();
    let moved = tmp.path().join("moved-sha256");
    std::fs::rename(&algorithm_dir, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &algorithm_dir).unwrap();
    let err = cache.import_with(&layout, &options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(cache.contents().unwrap().is_empty());
}

#[test]
fn a_multi_arch_index_exports_and_imports_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    let amd = put_image(&cache, "amd64\n", "amd64");
    let arm = put_image(&cache, "arm64\n", "arm64");
    let entry = |image: &Image, arch: &str| {
        format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
            image.manifest,
            image.manifest_bytes.len()
        )
    };
    let index_bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{}]}}"#,
        entry(&amd, "amd64"),
        entry(&arm, "arm64")
    )
    .into_bytes();
    let index = sha256(&index_bytes);
    cache.put_manifest(&index, &index_bytes, None).unwrap();
    let r = reference("localhost:5000/multi:all");
    cache.put_tag(&r, &index).unwrap();

    let layout = tmp.path().join("layout");
    let report = cache.export(&r, &layout).unwrap();
    assert_eq!((report.manifests, report.blobs), (3, 4));
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(&layout, "all")]),
        index_bytes
    );
    // skopeo copies every platform of it (compressing the layers on the way, so the copy's
    // digests are its own).
    let copied = tmp.path().join("copied");
    skopeo(&["copy", "--all", &oci(&layout, "all"), &oci(&copied, "all")]);
    let copy: serde_json::Value =
        serde_json::from_slice(&skopeo(&["inspect", "--raw", &oci(&copied, "all")])).unwrap();
    let platforms: Vec<&str> = copy["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);

    let other = Cache::open(tmp.path().join("other")).unwrap();
    let imported = other.import(&layout, Some("all")).unwrap();
    assert_eq!(imported.images[0].media_type.as_str(), OCI_INDEX);
    assert_eq!((imported.manifests_stored, imported.blobs_stored), (3, 4));
    assert_eq!(
        other.resolve_tag(&r).unwrap(),
        Resolution::Fresh(index.clone())
    );
    for image in [&amd, &arm] {
        assert_eq!(
            other.get_manifest(&image.manifest).unwrap().bytes,
            image.manifest_bytes
        );
        for d in [&image.layer, &image.config] {
            assert_eq!(other.get_blob(d).unwrap(), cache.get_blob(d).unwrap());
        }
    }
}

#[test]
fn the_cli_exports_and_imports_with_reports_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    let image = {
        let cache = Cache::open(&source).unwrap();
        let image = put_image(&cache, "cli\n", "amd64");
        cache
            .put_tag(&reference("localhost:5000/cli/app:v1"), &image.manifest)
            .unwrap();
        image
    };
    let layout = tmp.path().join("layout");
    let layout_arg = layout.to_str().unwrap();
    let o = run(
        &source,
        &["--json", "export", "localhost:5000/cli/app:v1", layout_arg],
    );
    let (code, stdout, stderr) = outcome(&o);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["digest"], image.manifest.to_string());
    assert_eq!(report["tag"], "v1");
    assert_eq!(report["blobs"], 2);
    assert_eq!(report["linked"], 2);

    let target = tmp.path().join("target");
    let o = run(&target, &["import", &format!("{layout_arg}:v1")]);
    let (code, stdout, stderr) = outcome(&o);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(&format!("{} ", image.manifest)),
        "{stdout}"
    );
    assert!(stdout.contains("localhost:5000/cli/app:v1"), "{stdout}");
    let o = run(&target, &["tag", "get", "localhost:5000/cli/app:v1"]);
    assert_eq!(outcome(&o).1.trim(), image.manifest.to_string());

    // A tag the layout lacks: not_found, exit 1.
    let o = run(&target, &["import", &format!("{layout_arg}:nope")]);
    let (code, _, stderr) = outcome(&o);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.starts_with("ocicache: not_found: "), "{stderr}");

    // skopeo's layout without --name: invalid_argument, exit 3; with it, stored.
    let written = tmp.path().join("skopeo");
    skopeo(&["copy", &oci(&layout, "v1"), &oci(&written, "t")]);
    let fresh = tmp.path().join("fresh");
    let written_arg = written.to_str().unwrap();
    let o = run(&fresh, &["import", written_arg]);
    let (code, _, stderr) = outcome(&o);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("--name"), "{stderr}");
    let o = run(
        &fresh,
        &[
            "--json",
            "import",
            written_arg,
            "--name",
            "localhost:5000/x/y",
        ],
    );
    let (code, stdout, stderr) = outcome(&o);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["images"][0]["tag"], "localhost:5000/x/y:t");
    assert_eq!(report["blobs_stored"], 2);
    // A directory whose name has a colon is DIR as a whole when it exists.
    let colon = tmp.path().join("with:colon");
    std::fs::rename(&written, &colon).unwrap();
    let o = run(
        &tmp.path().join("colon-cache"),
        &[
            "import",
            colon.to_str().unwrap(),
            "--name",
            "localhost:5000/c",
        ],
    );
    let (code, stdout, stderr) = outcome(&o);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("localhost:5000/c:t"), "{stdout}");
    let o = run(
        &tmp.path().join("colon-cache"),
        &[
            "import",
            &format!("{}:t", colon.display()),
            "--name",
            "localhost:5000/d",
        ],
    );
    let (code, stdout, stderr) = outcome(&o);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("localhost:5000/d:t"), "{stdout}");
    let written = colon;
    let written_arg = written.to_str().unwrap();
    // A repository with a tag is refused before the cache is opened.
    let untouched = tmp.path().join("untouched");
    let o = run(&untouched, &["import", written_arg, "--name", "x/y:1"]);
    assert_eq!(outcome(&o).0, 3);
    assert!(!untouched.exists());
}

#[test]
fn a_stale_tag_is_exported_as_cached_without_asking_anyone() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let config = Config::default();
    let cache = Cache::builder(tmp.path().join("cache"))
        .config(config.clone())
        .clock(clock.clone())
        .open()
        .unwrap();
    let image = put_image(&cache, "stale\n", "amd64");
    let r = reference("registry.invalid/app:v1");
    cache.put_tag(&r, &image.manifest).unwrap();
    clock.advance(config.tag_ttl_ms + 1);
    assert_eq!(
        cache.resolve_tag(&r).unwrap(),
        Resolution::Stale(image.manifest.clone())
    );
    let layout = tmp.path().join("layout");
    let report = cache.export(&r, &layout).unwrap();
    assert!(report.tag_stale);
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(&layout, "v1")]),
        image.manifest_bytes
    );
}

#[test]
fn a_linked_index_json_or_oci_layout_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _, _) = skopeo_layout(tmp.path(), "index link\n");
    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    let options = ocicache::ImportOptions::default().repository("localhost:5000/x");
    for name in ["index.json", "oci-layout"] {
        let file = layout.join(name);
        let outside = tmp.path().join(format!("outside-{name}"));
        std::fs::rename(&file, &outside).unwrap();
        std::os::unix::fs::symlink(&outside, &file).unwrap();
        let err = cache.import_with(&layout, &options).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
        std::fs::remove_file(&file).unwrap();
        std::fs::rename(&outside, &file).unwrap();
    }
    assert!(cache.contents().unwrap().is_empty());
    // Put back, the layout imports.
    cache.import_with(&layout, &options).unwrap();
}

/// Puts a manifest of `media_type` whose config and layers are new blobs with these media
/// types and bytes; returns its digest and bytes.
fn put_manifest_of(
    cache: &Cache,
    media_type: &str,
    extra: &str,
    config: (&str, &[u8]),
    layers: &[(&str, &[u8])],
) -> (Digest, Vec<u8>) {
    let config_digest = cache.put_blob(None, config.1).unwrap();
    let layers: Vec<String> = layers
        .iter()
        .map(|(mt, bytes)| descriptor(mt, &cache.put_blob(None, bytes).unwrap(), bytes.len()))
        .collect();
    let bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}",{extra}"config":{},"layers":[{}]}}"#,
        descriptor(config.0, &config_digest, config.1.len()),
        layers.join(",")
    )
    .into_bytes();
    let digest = sha256(&bytes);
    cache.put_manifest(&digest, &bytes, None).unwrap();
    (digest, bytes)
}

#[test]
fn docker_manifests_lists_and_artifacts_export_and_import_as_they_are() {
    const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    let (docker, docker_bytes) = put_manifest_of(
        &cache,
        DOCKER_MANIFEST,
        "",
        (
            "application/vnd.docker.container.image.v1+json",
            br#"{"architecture":"amd64","os":"linux"}"#,
        ),
        &[(
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            b"docker layer",
        )],
    );
    let list_bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{docker}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        docker_bytes.len()
    )
    .into_bytes();
    let list = sha256(&list_bytes);
    cache.put_manifest(&list, &list_bytes, None).unwrap();
    let (artifact, artifact_bytes) = put_manifest_of(
        &cache,
        OCI_MANIFEST,
        r#""artifactType":"application/vnd.example.sbom.v1","#,
        ("application/vnd.oci.empty.v1+json", b"{}"),
        &[("application/spdx+json", br#"{"spdxVersion":"SPDX-2.3"}"#)],
    );
    let names = [
        ("localhost:5000/d/app:manifest", &docker, &docker_bytes),
        ("localhost:5000/d/app:list", &list, &list_bytes),
        ("localhost:5000/d/app:sbom", &artifact, &artifact_bytes),
    ];
    let layout = tmp.path().join("layout");
    for (name, digest, _) in names {
        cache.put_tag(&reference(name), digest).unwrap();
        cache.export(&reference(name), &layout).unwrap();
    }
    // Each is written as it is, under its own media type.
    let index = index_json(&layout);
    for ((_, digest, bytes), entry) in names.iter().zip(index["manifests"].as_array().unwrap()) {
        assert_eq!(entry["digest"], digest.to_string());
        let media_type = ocicache::MediaType::from_str_opt(entry["mediaType"].as_str().unwrap());
        assert_eq!(
            media_type,
            Some(cache.get_manifest(digest).unwrap().media_type)
        );
        assert_eq!(&std::fs::read(blob_file(&layout, digest)).unwrap(), *bytes);
    }
    // skopeo (1.9) looks only for OCI media types in index.json: it reads the artifact, and
    // does not find the Docker manifest.
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(&layout, "sbom")]),
        artifact_bytes
    );
    let out = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "inspect",
            "--raw",
            &oci(&layout, "manifest"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());

    let other = Cache::open(tmp.path().join("other")).unwrap();
    let report = other.import(&layout, None).unwrap();
    let media: Vec<&str> = report
        .images
        .iter()
        .map(|i| i.media_type.as_str())
        .collect();
    assert_eq!(media, [DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST]);
    // The list's manifest and its blobs are shared with the first image: stored once.
    assert_eq!((report.manifests_stored, report.blobs_stored), (3, 4));
    for (name, digest, bytes) in names {
        assert_eq!(
            other.resolve_tag(&reference(name)).unwrap(),
            Resolution::Fresh(digest.clone())
        );
        assert_eq!(&other.get_manifest(digest).unwrap().bytes, bytes);
        for key in other.manifest_references(digest).unwrap() {
            if key.kind == ocicache::Kind::Blob {
                assert_eq!(
                    other.get_blob(&key.digest).unwrap(),
                    cache.get_blob(&key.digest).unwrap()
                );
            }
        }
    }
}

#[test]
fn concurrent_exports_into_one_layout_keep_every_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = std::sync::Arc::new(Cache::open(tmp.path().join("cache")).unwrap());
    let layout = tmp.path().join("layout");
    let tags: Vec<(Reference, Vec<u8>)> = (0..4)
        .map(|i| {
            let image = put_image(&cache, &format!("image {i}\n"), "amd64");
            let r = reference(&format!("localhost:5000/many:t{i}"));
            cache.put_tag(&r, &image.manifest).unwrap();
            (r, image.manifest_bytes)
        })
        .collect();
    std::thread::scope(|s| {
        for (r, _) in &tags {
            let (cache, layout) = (cache.clone(), layout.clone());
            s.spawn(move || {
                for _ in 0..5 {
                    cache.export(r, &layout).unwrap();
                }
            });
        }
    });
    assert_eq!(
        index_json(&layout)["manifests"].as_array().unwrap().len(),
        4
    );
    for (r, bytes) in &tags {
        let tag = r.tag().unwrap();
        assert_eq!(&skopeo(&["inspect", "--raw", &oci(&layout, tag)]), bytes);
    }
}
