use super::*;
use crate::ErrorKind;
use crate::hashing::digest_of;
use crate::tags::Resolution;
use crate::{Algorithm, BuiltinHasher};

fn sha(bytes: &[u8]) -> Digest {
    digest_of(&BuiltinHasher, Algorithm::Sha256, bytes).unwrap()
}

fn desc(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: sha(bytes),
        size: bytes.len() as u64,
        annotations: BTreeMap::new(),
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

fn descriptor_json(d: &Descriptor) -> String {
    format!(
        r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
        d.media_type, d.digest, d.size
    )
}

fn image(media_type: &str, config: &Descriptor, layers: &[&Descriptor]) -> Vec<u8> {
    let layers: Vec<String> = layers.iter().map(|l| descriptor_json(l)).collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{},"layers":[{}]}}"#,
        descriptor_json(config),
        layers.join(",")
    )
    .into_bytes()
}

fn index(media_type: &str, children: &[&Descriptor]) -> Vec<u8> {
    let children: Vec<String> = children.iter().map(|c| descriptor_json(c)).collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}","manifests":[{}]}}"#,
        children.join(",")
    )
    .into_bytes()
}

/// Runs a walk, answering from `store` (digest → bytes).
fn walk(root: Descriptor, store: &[&[u8]]) -> Result<Graph> {
    let mut w = GraphWalk::new(root);
    while let Some(next) = w.next_manifest() {
        let bytes = store
            .iter()
            .find(|b| sha(b) == next.digest)
            .expect("the test supplies every manifest");
        w.add_manifest(&next, bytes)?;
    }
    Ok(w.finish())
}

#[test]
fn oci_layout_is_written_and_checked() {
    let bytes = oci_layout_bytes();
    assert_eq!(bytes, br#"{"imageLayoutVersion":"1.0.0"}"#);
    check_oci_layout(&bytes).unwrap();
    check_oci_layout(br#"{"imageLayoutVersion": "1.1.0", "x": 1}"#).unwrap();
    for bad in [
        &br#"{"imageLayoutVersion":"2.0.0"}"#[..],
        br#"{}"#,
        b"not json",
        br#"{"imageLayoutVersion":1}"#,
    ] {
        assert_eq!(
            check_oci_layout(bad).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn blob_paths_come_from_the_digest() {
    let d = sha(b"x");
    assert_eq!(blob_path(&d), format!("blobs/sha256/{}", d.hex()));
    let d512 = digest_of(&BuiltinHasher, Algorithm::Sha512, b"x").unwrap();
    assert_eq!(blob_path_components(&d512)[1], "sha512");
}

/// An index.json as skopeo writes it, with a member and entry fields we do not know.
fn existing_index(a: &Digest, b: &Digest) -> String {
    format!(
        r#"{{
  "schemaVersion": 2,
  "manifests": [
    {{ "mediaType": "{OCI_MANIFEST}", "digest": "{a}", "size": 10,
       "platform": {{"architecture": "arm64", "os": "linux"}},
       "annotations": {{"org.opencontainers.image.ref.name": "old"}} }},
    {{"mediaType":"{OCI_MANIFEST}","digest":"{b}","size":11,"annotations":{{"org.opencontainers.image.ref.name":"keep"}}}}
  ],
  "annotations": {{"com.example.note": "kept"}}
}}"#
    )
}

#[test]
fn adding_to_an_index_replaces_the_same_name_and_keeps_everything_else_as_written() {
    let (a, b, c) = (sha(b"a"), sha(b"b"), sha(b"c"));
    let text = existing_index(&a, &b);
    let mut idx = LayoutIndex::parse(text.as_bytes()).unwrap();
    assert_eq!(idx.manifests().count(), 2);
    assert_eq!(idx.find("old")[0].digest, a);

    let r: Reference = "localhost:5000/app:old".parse().unwrap();
    let replaced = idx.add(Descriptor::for_export(&r, &c, MediaType::OciManifest, 12));
    assert_eq!(replaced.len(), 1);
    assert_eq!(replaced[0].digest, a);
    let out = String::from_utf8(idx.to_bytes()).unwrap();
    // The untouched entry and the unknown member are there byte for byte.
    let keep = format!(
        r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{b}","size":11,"annotations":{{"org.opencontainers.image.ref.name":"keep"}}}}"#
    );
    assert!(out.contains(&keep), "{out}");
    assert!(
        out.contains(r#""annotations":{"com.example.note": "kept"}"#),
        "{out}"
    );
    assert!(
        !out.contains(&a.to_string()),
        "the old entry for the tag is gone"
    );
    // Member order is kept: schemaVersion, manifests, annotations.
    let (sv, m, an) = (
        out.find("schemaVersion").unwrap(),
        out.find("\"manifests\"").unwrap(),
        out.find("com.example.note").unwrap(),
    );
    assert!(sv < m && m < an, "{out}");

    let again = LayoutIndex::parse(out.as_bytes()).unwrap();
    let names: Vec<_> = again.manifests().map(|d| d.ref_name().unwrap()).collect();
    assert_eq!(names, ["keep", "old"]);
    let new = again.find("old")[0];
    assert_eq!(new.digest, c);
    assert_eq!(new.image_name(), Some("localhost:5000/app:old"));
    assert_eq!(new.media_type, OCI_MANIFEST);
    // The result is JSON that other tools parse.
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
}

#[test]
fn unnamed_images_are_added_once_and_never_replace_named_ones() {
    let d = sha(b"d");
    let mut idx = LayoutIndex::new();
    let tagged: Reference = "app:t".parse().unwrap();
    idx.add(Descriptor::for_export(
        &tagged,
        &d,
        MediaType::OciManifest,
        1,
    ));
    let pinned: Reference = format!("app@{d}").parse().unwrap();
    let unnamed = Descriptor::for_export(&pinned, &d, MediaType::OciManifest, 1);
    assert_eq!(unnamed.ref_name(), None);
    assert!(idx.add(unnamed.clone()).is_empty());
    assert_eq!(
        idx.add(unnamed).len(),
        1,
        "the same unnamed image replaces itself"
    );
    let again = LayoutIndex::parse(&idx.to_bytes()).unwrap();
    assert_eq!(again.manifests().count(), 2);
    assert_eq!(again.find("t").len(), 1);
}

#[test]
fn a_new_index_is_an_oci_index() {
    let bytes = LayoutIndex::new().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], OCI_INDEX);
    assert_eq!(v["manifests"], serde_json::json!([]));
}

#[test]
fn malformed_index_json_is_refused() {
    let d = sha(b"x");
    let cases = [
        "not json".to_owned(),
        "[]".to_owned(),
        r#"{"manifests":[]}"#.to_owned(),
        r#"{"schemaVersion":1,"manifests":[]}"#.to_owned(),
        r#"{"schemaVersion":2}"#.to_owned(),
        r#"{"schemaVersion":2,"schemaVersion":2,"manifests":[]}"#.to_owned(),
        format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","manifests":[]}}"#),
        r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:abc","size":1}]}"#.to_owned(),
        format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{d}","size":-1}}]}}"#),
        format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{d}"}}]}}"#),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{d}","size":1,"annotations":{{"a":1}}}}]}}"#
        ),
    ];
    for text in cases {
        assert_eq!(
            LayoutIndex::parse(text.as_bytes()).unwrap_err().kind(),
            ErrorKind::InvalidManifest,
            "{text}"
        );
    }
}

fn with(annotations: &[(&str, &str)]) -> Descriptor {
    let mut d = desc(OCI_MANIFEST, b"m");
    for (k, v) in annotations {
        d.annotations.insert((*k).to_owned(), (*v).to_owned());
    }
    d
}

#[test]
fn the_tag_mapping_of_an_imported_entry() {
    let key = |d: &Descriptor, name: Option<&str>| {
        d.tag_reference(name).map(|r| r.map(|r| r.to_string()))
    };
    // ref.name and containerd's name: the repository of one, the tag of the other.
    let d = with(&[(REF_NAME, "v2"), (IMAGE_NAME, "ghcr.io/org/app:v1")]);
    assert_eq!(
        key(&d, None).unwrap().as_deref(),
        Some("ghcr.io/org/app:v2")
    );
    // An explicit repository wins.
    assert_eq!(
        key(&d, Some("localhost:5000/mine")).unwrap().as_deref(),
        Some("localhost:5000/mine:v2")
    );
    assert_eq!(
        key(&d, Some("nginx")).unwrap().as_deref(),
        Some("docker.io/library/nginx:v2")
    );
    // Only containerd's name: its tag.
    let d = with(&[(IMAGE_NAME, "docker.io/library/alpine:3.20")]);
    assert_eq!(
        key(&d, None).unwrap().as_deref(),
        Some("docker.io/library/alpine:3.20")
    );
    // A whole reference as ref.name (older tools).
    let d = with(&[(REF_NAME, "quay.io/team/tool:1.0")]);
    assert_eq!(
        key(&d, None).unwrap().as_deref(),
        Some("quay.io/team/tool:1.0")
    );
    // No name at all: content only.
    assert_eq!(key(&with(&[]), None).unwrap(), None);
    assert_eq!(key(&with(&[]), Some("app")).unwrap(), None);
    // A tag without a repository is refused, not guessed.
    let e = key(&with(&[(REF_NAME, "v1")]), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("--name"), "{e}");
    // Bad names.
    for (annotations, name) in [
        (vec![(REF_NAME, "has space")], None),
        (vec![(REF_NAME, "app@sha256:00")], None),
        (vec![(REF_NAME, "v1"), (IMAGE_NAME, "Bad Name")], None),
    ] {
        let e = key(&with(&annotations), name).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{annotations:?}");
    }
    for repo in ["ghcr.io/org/app:1", "app@sha256:00", "UPPER", ""] {
        let e = key(&with(&[(REF_NAME, "v1")]), Some(repo)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidReference, "{repo:?}");
    }
}

#[test]
fn a_multi_arch_index_walks_children_first_with_shared_blobs_once() {
    let config = desc("application/vnd.oci.image.config.v1+json", b"{}");
    let shared = desc("application/vnd.oci.image.layer.v1.tar+gzip", b"shared");
    let arm = desc("application/vnd.oci.image.layer.v1.tar", b"arm");
    let m1 = image(OCI_MANIFEST, &config, &[&shared]);
    let m2 = image(OCI_MANIFEST, &config, &[&shared, &arm]);
    let (d1, d2) = (desc(OCI_MANIFEST, &m1), desc(OCI_MANIFEST, &m2));
    let idx = index(OCI_INDEX, &[&d1, &d2]);
    let root = desc(OCI_INDEX, &idx);
    let g = walk(root.clone(), &[&idx, &m1, &m2]).unwrap();
    let order: Vec<_> = g.manifests.iter().map(|(d, _)| d.digest.clone()).collect();
    assert_eq!(order.len(), 3);
    assert_eq!(order[2], root.digest, "the root is last");
    assert!(order.contains(&d1.digest) && order.contains(&d2.digest));
    assert_eq!(g.manifests[2].1, MediaType::OciIndex);
    let blobs: Vec<_> = g.blobs.iter().map(|d| d.digest.clone()).collect();
    assert_eq!(blobs.len(), 3, "config and shared layer once: {blobs:?}");
    for b in [&config, &shared, &arm] {
        let found = g.blobs.iter().find(|d| d.digest == b.digest).unwrap();
        assert_eq!((found.size, &found.media_type), (b.size, &b.media_type));
    }
}

#[test]
fn nested_indexes_put_every_child_before_each_of_its_parents() {
    let config = desc("application/vnd.oci.image.config.v1+json", b"{}");
    let m = image(OCI_MANIFEST, &config, &[]);
    let dm = desc(OCI_MANIFEST, &m);
    let inner = index(OCI_INDEX, &[&dm]);
    let di = desc(OCI_INDEX, &inner);
    // The root lists the manifest before the index that lists it too.
    let outer = index(OCI_INDEX, &[&dm, &di]);
    let g = walk(desc(OCI_INDEX, &outer), &[&outer, &inner, &m]).unwrap();
    let pos = |d: &Digest| {
        g.manifests
            .iter()
            .position(|(x, _)| x.digest == *d)
            .unwrap()
    };
    assert!(pos(&dm.digest) < pos(&di.digest));
    assert_eq!(pos(&sha(&outer)), 2);
}

#[test]
fn docker_lists_and_artifacts_are_walked() {
    let config = desc(
        "application/vnd.docker.container.image.v1+json",
        b"{\"a\":1}",
    );
    let layer = desc("application/vnd.docker.image.rootfs.diff.tar.gzip", b"l");
    let m = image(DOCKER_MANIFEST, &config, &[&layer]);
    let dm = desc(DOCKER_MANIFEST, &m);
    let list = index(DOCKER_LIST, &[&dm]);
    let g = walk(desc(DOCKER_LIST, &list), &[&list, &m]).unwrap();
    assert_eq!(g.manifests[0].1, MediaType::DockerManifest);
    assert_eq!(g.manifests[1].1, MediaType::DockerManifestList);
    assert_eq!(g.blobs.len(), 2);

    // An artifact: empty config, a layer of any media type, artifactType.
    let empty = desc("application/vnd.oci.empty.v1+json", b"{}");
    let sbom = desc("application/spdx+json", b"{\"spdx\":true}");
    let art = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.example.sbom","config":{},"layers":[{}]}}"#,
        descriptor_json(&empty),
        descriptor_json(&sbom)
    );
    let g = walk(desc(OCI_MANIFEST, art.as_bytes()), &[art.as_bytes()]).unwrap();
    assert_eq!(g.blobs[1].media_type, "application/spdx+json");
}

#[test]
fn manifest_bytes_are_checked_before_they_are_parsed() {
    let config = desc("application/vnd.oci.image.config.v1+json", b"{}");
    let m = image(OCI_MANIFEST, &config, &[]);
    let d = desc(OCI_MANIFEST, &m);

    let mut w = GraphWalk::new(d.clone());
    let next = w.next_manifest().unwrap();
    let mut flipped = m.clone();
    flipped[5] ^= 1;
    assert_eq!(
        w.add_manifest(&next, &flipped).unwrap_err().kind(),
        ErrorKind::DigestMismatch
    );
    assert_eq!(
        w.add_manifest(&next, &m[..m.len() - 1]).unwrap_err().kind(),
        ErrorKind::SizeMismatch
    );
    // The descriptor says index, the body says manifest.
    let lying = Descriptor {
        media_type: OCI_INDEX.into(),
        ..d.clone()
    };
    assert_eq!(
        GraphWalk::new(lying.clone())
            .add_manifest(&lying, &m)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidManifest
    );
    // Not a manifest at all, though its digest is right.
    let junk = b"{\"schemaVersion\":2}";
    let dj = desc("", junk);
    assert_eq!(
        GraphWalk::new(dj.clone())
            .add_manifest(&dj, junk)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidManifest
    );
    // A walk given nothing yields nothing.
    assert_eq!(GraphWalk::new(d).finish(), Graph::default());
}

/// A two-platform index sharing a config, and its manifests, as a layout would hold them.
struct TwoPlatforms {
    root: Descriptor,
    store: Vec<Vec<u8>>,
    config: Descriptor,
    layers: [Descriptor; 2],
}

fn two_platforms() -> TwoPlatforms {
    let config = desc("application/vnd.oci.image.config.v1+json", b"{}");
    let l1 = desc("application/vnd.oci.image.layer.v1.tar", b"layer one");
    let l2 = desc("application/vnd.oci.image.layer.v1.tar", b"layer two");
    let m1 = image(OCI_MANIFEST, &config, &[&l1]);
    let m2 = image(OCI_MANIFEST, &config, &[&l2]);
    let (d1, d2) = (desc(OCI_MANIFEST, &m1), desc(OCI_MANIFEST, &m2));
    let idx = index(OCI_INDEX, &[&d1, &d2]);
    TwoPlatforms {
        root: desc(OCI_INDEX, &idx),
        store: vec![idx, m1, m2],
        config,
        layers: [l1, l2],
    }
}

fn bytes_for<'a>(store: &'a [Vec<u8>], d: &Descriptor) -> &'a [u8] {
    store.iter().find(|b| sha(b) == d.digest).unwrap()
}

fn layout_index(entries: &[(&Descriptor, &[(&str, &str)])]) -> LayoutIndex {
    let mut idx = LayoutIndex::new();
    for (d, annotations) in entries {
        let mut d = (*d).clone();
        d.annotations = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        idx.add(d);
    }
    idx
}

#[test]
fn an_import_plan_names_every_tag_first_and_lists_each_manifest_and_blob_once() {
    let t = two_platforms();
    let single = desc(OCI_MANIFEST, &t.store[1]);
    let idx = layout_index(&[
        (
            &t.root,
            &[(REF_NAME, "v1"), (IMAGE_NAME, "ghcr.io/org/app:v1")],
        ),
        (&single, &[(REF_NAME, "amd64")]),
    ]);
    // A tag without repository is refused before anything is read.
    let err = ImportPlan::new("/l", &idx, None, None, 1 << 20).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("--name"), "{err}");

    let mut plan = ImportPlan::new("/l", &idx, None, Some("ghcr.io/org/app"), 1 << 20).unwrap();
    let mut asked = 0;
    while let Some(next) = plan.next_manifest().unwrap() {
        asked += 1;
        let bytes = bytes_for(&t.store, &next).to_vec();
        plan.add_manifest(&next, bytes).unwrap();
    }
    // The shared manifest is read once per image that has it, stored once.
    assert_eq!(asked, 4);
    let content = plan.finish();
    let tags: Vec<String> = content
        .images
        .iter()
        .map(|i| i.tag.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(tags, ["ghcr.io/org/app:v1", "ghcr.io/org/app:amd64"]);
    assert_eq!(content.images[0].media_type, MediaType::OciIndex);
    assert_eq!(content.manifests.len(), 3);
    assert_eq!(content.manifests[2].0.digest, t.root.digest, "root last");
    let blobs: Vec<&Digest> = content.blobs.iter().map(|b| &b.digest).collect();
    assert_eq!(blobs.len(), 3);
    for d in [&t.config.digest, &t.layers[0].digest, &t.layers[1].digest] {
        assert!(blobs.contains(&d));
    }

    // One tag only; unknown and doubled tags.
    let mut plan = ImportPlan::new("/l", &idx, Some("amd64"), Some("app"), 1 << 20).unwrap();
    let next = plan.next_manifest().unwrap().unwrap();
    assert_eq!(next.digest, single.digest);
    let err = ImportPlan::new("/l", &idx, Some("nope"), Some("app"), 1 << 20).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("/l: no image tagged"), "{err}");
    let twice = layout_index(&[
        (&t.root, &[(IMAGE_NAME, "ghcr.io/org/app:v1")]),
        (&single, &[(IMAGE_NAME, "ghcr.io/org/app:v1")]),
    ]);
    let err = ImportPlan::new("/l", &twice, None, None, 1 << 20).unwrap_err();
    assert!(
        err.to_string().contains("names ghcr.io/org/app:v1 twice"),
        "{err}"
    );
    // A bad repository, and a manifest over the limit.
    assert!(ImportPlan::new("/l", &idx, None, Some("app:tag"), 1 << 20).is_err());
    let mut plan = ImportPlan::new("/l", &idx, None, Some("app"), 10).unwrap();
    assert_eq!(
        plan.next_manifest().unwrap_err().kind(),
        ErrorKind::TooLarge
    );
}

#[test]
fn an_import_plan_refuses_a_manifest_that_is_not_its_digest() {
    let t = two_platforms();
    let idx = layout_index(&[(&t.root, &[])]);
    let mut plan = ImportPlan::new("/l", &idx, None, None, 1 << 20).unwrap();
    let next = plan.next_manifest().unwrap().unwrap();
    let mut bytes = bytes_for(&t.store, &next).to_vec();
    bytes[0] = b' ';
    assert_eq!(
        plan.add_manifest(&next, bytes).unwrap_err().kind(),
        ErrorKind::DigestMismatch
    );
}

#[test]
fn an_export_plan_lists_what_is_missing_and_adds_one_entry_to_the_index() {
    let t = two_platforms();
    let reference: Reference = "ghcr.io/org/app:v1".parse().unwrap();
    assert_eq!(
        export_root(&reference, Resolution::Stale(t.root.digest.clone())).unwrap(),
        (t.root.digest.clone(), true)
    );
    assert_eq!(
        export_root(&reference, Resolution::Unknown)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    let pinned: Reference = format!("ghcr.io/org/app@{}", t.root.digest)
        .parse()
        .unwrap();
    assert_eq!(
        export_root(&pinned, Resolution::Unknown).unwrap(),
        (t.root.digest.clone(), false)
    );

    // The second platform's manifest and one layer are not cached.
    let new_plan = || {
        ExportPlan::new(
            &reference,
            &t.root.digest,
            MediaType::OciIndex,
            t.store[0].clone(),
        )
        .unwrap()
    };
    let mut plan = new_plan();
    while let Some(next) = plan.next_manifest() {
        if sha(&t.store[2]) == next.digest {
            plan.manifest_missing(&next, &Error::NotFound("x".into()));
        } else {
            plan.manifest_found(&next, bytes_for(&t.store, &next).to_vec())
                .unwrap();
        }
    }
    for blob in plan.blobs() {
        if blob.digest == t.layers[0].digest {
            plan.blob_missing(&blob, &Error::Expired("x".into()));
        } else {
            plan.blob_found(&blob, blob.size).unwrap();
        }
    }
    let err = plan.finish().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let message = err.to_string();
    assert!(
        message.contains(&format!("manifest {} (not_found)", sha(&t.store[2]))),
        "{message}"
    );
    assert!(
        message.contains(&format!("blob {} (expired)", t.layers[0].digest)),
        "{message}"
    );

    // All there: a blob of another size is refused; the index gets one entry.
    let mut plan = new_plan();
    while let Some(next) = plan.next_manifest() {
        plan.manifest_found(&next, bytes_for(&t.store, &next).to_vec())
            .unwrap();
    }
    let blobs = plan.blobs();
    assert_eq!(blobs.len(), 3);
    assert_eq!(
        plan.blob_found(&blobs[0], blobs[0].size + 1)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidManifest
    );
    let content = plan.finish().unwrap();
    assert_eq!(content.manifests.len(), 3);
    assert_eq!(content.manifests[2].2, t.store[0], "the root's bytes, last");
    assert_eq!(content.blob_bytes(), 2 + 9 + 9);
    let old = sha(b"old");
    let mut idx = layout_index(&[(&desc(OCI_MANIFEST, b"old"), &[(REF_NAME, "v1")])]);
    assert_eq!(content.add_to_index(&mut idx), [old]);
    let entry = idx.find("v1")[0].clone();
    assert_eq!(entry.digest, t.root.digest);
    assert_eq!(entry.size, t.store[0].len() as u64);
    assert_eq!(entry.image_name(), Some("ghcr.io/org/app:v1"));
}

#[test]
fn layouts_to_import_from_and_export_into_are_checked() {
    let marker = oci_layout_bytes();
    let idx = LayoutIndex::new().to_bytes();
    assert!(layout_to_import("/l", Some(&marker), Some(&idx)).is_ok());
    for (m, i, what) in [
        (None, Some(&idx[..]), "no oci-layout"),
        (Some(&marker[..]), None, "no index.json"),
    ] {
        let err = layout_to_import("/l", m, i).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains(&format!("/l: {what}")), "{err}");
    }
    assert!(layout_to_export_into("/l", None, None, false).unwrap().1);
    assert!(
        !layout_to_export_into("/l", Some(&marker), Some(&idx), true)
            .unwrap()
            .1
    );
    for (i, other) in [(Some(&idx[..]), false), (None, true)] {
        let err = layout_to_export_into("/l", None, i, other).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("not an OCI image layout"), "{err}");
    }
}
