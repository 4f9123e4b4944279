//! The OCI image layout (image-spec v1.1, `image-layout.md`): what its files hold, for hosts
//! that export to and import from one. Not to be confused with [`crate::layout`], the cache's
//! own files.
//!
//! ```text
//! oci-layout                     {"imageLayoutVersion":"1.0.0"}
//! index.json                     an image index: one descriptor per image, tags in annotations
//! blobs/<algorithm>/<encoded>    manifests, configs and layers, named by digest
//! ```
//!
//! A tagged image's descriptor in `index.json` carries the tag in
//! `org.opencontainers.image.ref.name` (as skopeo and oras write it, so that `oci:DIR:TAG`
//! finds it) and the full reference in `io.containerd.image.name`. Pure: the host reads and
//! writes the files, this module says what they must hold.

mod export_plan;
mod import_plan;

pub use export_plan::{ExportContent, ExportPlan, export_root, is_missing, root_lookup_error};
pub use import_plan::{ImportContent, ImportPlan, PlannedImage};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::hashing::{BuiltinHasher, digest_of};
use crate::manifest::{MediaType, ParsedManifest, validate};
use crate::reference::{Reference, validate_tag};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The file marking a directory as an image layout.
pub const OCI_LAYOUT_FILE: &str = "oci-layout";
/// The layout's image index.
pub const INDEX_FILE: &str = "index.json";
/// The directory holding every blob, manifests included.
pub const BLOBS_DIR: &str = "blobs";
/// The layout version written in `oci-layout`.
pub const IMAGE_LAYOUT_VERSION: &str = "1.0.0";
/// The annotation naming an image in a layout: its tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd reads and writes for an image's full reference.
pub const IMAGE_NAME: &str = "io.containerd.image.name";
/// Longest `oci-layout` file read.
pub const MAX_OCI_LAYOUT_BYTES: u64 = 4 << 10;
/// Longest `index.json` read (a layout with thousands of tags stays far below it).
pub const MAX_INDEX_BYTES: u64 = 16 << 20;
/// The media type of `index.json` itself.
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// The bytes of a new `oci-layout` file.
pub fn oci_layout_bytes() -> Vec<u8> {
    format!(r#"{{"imageLayoutVersion":"{IMAGE_LAYOUT_VERSION}"}}"#).into_bytes()
}

/// Checks an existing `oci-layout` file: JSON with an `imageLayoutVersion` of major version 1.
pub fn check_oci_layout(bytes: &[u8]) -> Result<()> {
    #[derive(Deserialize)]
    struct OciLayout {
        #[serde(rename = "imageLayoutVersion")]
        version: String,
    }
    let bad = |why: String| Error::InvalidArgument(format!("{OCI_LAYOUT_FILE}: {why}"));
    let parsed: OciLayout = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if parsed.version.split('.').next() != Some("1") {
        return Err(bad(format!(
            "unsupported imageLayoutVersion {:?}",
            parsed.version
        )));
    }
    Ok(())
}

/// The index of a layout to import from, given what its files hold (`None`: absent): both
/// `oci-layout` (of a supported version) and `index.json` must be there, else
/// `InvalidArgument` naming `dir` (the layout's path, for messages).
pub fn layout_to_import(
    dir: &str,
    oci_layout: Option<&[u8]>,
    index_json: Option<&[u8]>,
) -> Result<LayoutIndex> {
    let not_a_layout =
        |what: &str| Error::InvalidArgument(format!("{dir}: no {what}: not an OCI image layout"));
    check_oci_layout(oci_layout.ok_or_else(|| not_a_layout(OCI_LAYOUT_FILE))?)?;
    LayoutIndex::parse(index_json.ok_or_else(|| not_a_layout(INDEX_FILE))?)
}

/// The index of a layout to export into, given what its files hold (`None`: absent) and
/// whether the directory holds other entries (it existed and was not empty), and whether
/// `oci-layout` must be written. A directory with an `index.json` or other files but no
/// `oci-layout` is not an image layout: `InvalidArgument` naming `dir`, so that it is left
/// unchanged.
pub fn layout_to_export_into(
    dir: &str,
    oci_layout: Option<&[u8]>,
    index_json: Option<&[u8]>,
    other_entries: bool,
) -> Result<(LayoutIndex, bool)> {
    let write_marker = match oci_layout {
        Some(b) => {
            check_oci_layout(b)?;
            false
        }
        None if index_json.is_some() || other_entries => {
            return Err(Error::InvalidArgument(format!(
                "{dir}: holds other files but no {OCI_LAYOUT_FILE}: not an OCI image layout \
                 (export writes into a new or empty directory, or an image layout)"
            )));
        }
        None => true,
    };
    let index = match index_json {
        Some(b) => LayoutIndex::parse(b)?,
        None => LayoutIndex::new(),
    };
    Ok((index, write_marker))
}

/// Where a blob lives in a layout, as its three components: `blobs`, the algorithm, the hex.
/// Every component comes from a validated digest, so none can leave the layout.
pub fn blob_path_components(digest: &Digest) -> [String; 3] {
    [
        BLOBS_DIR.to_owned(),
        digest.algorithm().name().to_owned(),
        digest.hex(),
    ]
}

/// Where a blob lives in a layout (`blobs/sha256/<hex>`).
pub fn blob_path(digest: &Digest) -> String {
    blob_path_components(digest).join("/")
}

/// A content descriptor: what `index.json`, an index and a manifest use to point at content.
/// Other descriptor fields (`platform`, `urls`, …) are not needed here and are kept as written
/// in an `index.json` that is rewritten ([`LayoutIndex`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The content's media type (empty when a document left it out).
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// The content's digest.
    pub digest: Digest,
    /// The content's length in bytes.
    pub size: u64,
    /// Annotations (`org.opencontainers.image.ref.name`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// The descriptor's `org.opencontainers.image.ref.name`, if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.get(REF_NAME).map(String::as_str)
    }

    /// The descriptor's `io.containerd.image.name`, if any.
    pub fn image_name(&self) -> Option<&str> {
        self.annotations.get(IMAGE_NAME).map(String::as_str)
    }

    /// The descriptor of a cached manifest exported as `reference`: the tag (if the reference
    /// has one) in `org.opencontainers.image.ref.name`, the full reference in
    /// `io.containerd.image.name`.
    ///
    /// ```
    /// use ocicache_core::image_layout::Descriptor;
    /// use ocicache_core::{Digest, MediaType, Reference};
    /// let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
    /// let r: Reference = "nginx:1.25".parse().unwrap();
    /// let desc = Descriptor::for_export(&r, &d, MediaType::OciManifest, 42);
    /// assert_eq!(desc.ref_name(), Some("1.25"));
    /// assert_eq!(desc.image_name(), Some("docker.io/library/nginx:1.25"));
    /// ```
    pub fn for_export(
        reference: &Reference,
        digest: &Digest,
        media_type: MediaType,
        size: u64,
    ) -> Descriptor {
        let mut annotations = BTreeMap::new();
        if let Some(tag) = reference.tag() {
            annotations.insert(REF_NAME.to_owned(), tag.to_owned());
        }
        annotations.insert(IMAGE_NAME.to_owned(), reference.to_string());
        Descriptor {
            media_type: media_type.as_str().to_owned(),
            digest: digest.clone(),
            size,
            annotations,
        }
    }

    /// The cache's tag mapping an imported `index.json` entry names, if it names one.
    ///
    /// The tag is the entry's `org.opencontainers.image.ref.name` (or, when that is a full
    /// reference such as `docker.io/library/alpine:3`, the reference's tag), else the tag of
    /// its `io.containerd.image.name`; an entry with neither names no mapping (`Ok(None)`).
    /// The registry and repository come from `repository` when given (the CLI's `--name`),
    /// else from `io.containerd.image.name`, else from a full reference in `ref.name`; a tag
    /// without any of these is refused (`InvalidArgument`) rather than guessed.
    ///
    /// ```
    /// use ocicache_core::image_layout::{Descriptor, REF_NAME, IMAGE_NAME};
    /// let mut d: Descriptor = serde_json::from_str(&format!(
    ///     r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":2}}"#,
    ///     "ab".repeat(32))).unwrap();
    /// assert_eq!(d.tag_reference(None).unwrap(), None);
    /// d.annotations.insert(REF_NAME.into(), "v1".into());
    /// assert!(d.tag_reference(None).is_err(), "a tag but no repository");
    /// assert_eq!(d.tag_reference(Some("ghcr.io/org/app")).unwrap().unwrap().to_string(), "ghcr.io/org/app:v1");
    /// d.annotations.insert(IMAGE_NAME.into(), "localhost:5000/app:other".into());
    /// assert_eq!(d.tag_reference(None).unwrap().unwrap().to_string(), "localhost:5000/app:v1");
    /// ```
    pub fn tag_reference(&self, repository: Option<&str>) -> Result<Option<Reference>> {
        let image_name = match self.image_name() {
            Some(n) => Some(Reference::parse(n).map_err(|e| {
                Error::InvalidArgument(format!("{INDEX_FILE}: {IMAGE_NAME} {n:?}: {e}"))
            })?),
            None => None,
        };
        // A ref.name is a tag, or (as older tools wrote it) a whole reference.
        let (tag, ref_name_reference) = match self.ref_name() {
            Some(r) if validate_tag(r).is_ok() => (Some(r.to_owned()), None),
            Some(r) => {
                let parsed = Reference::parse(r).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "{INDEX_FILE}: {REF_NAME} {r:?} is neither a tag nor a reference: {e}"
                    ))
                })?;
                let tag = parsed.tag().map(str::to_owned).ok_or_else(|| {
                    Error::InvalidArgument(format!("{INDEX_FILE}: {REF_NAME} {r:?} has no tag"))
                })?;
                (Some(tag), Some(parsed))
            }
            None => (
                image_name.as_ref().and_then(|n| n.tag()).map(str::to_owned),
                None,
            ),
        };
        let Some(tag) = tag else {
            return Ok(None);
        };
        let name = match repository {
            Some(r) => repository_name(r)?,
            None => match image_name.as_ref().or(ref_name_reference.as_ref()) {
                Some(n) => format!("{}/{}", n.registry(), n.repository()),
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "{INDEX_FILE} names tag {tag:?} without its repository \
                         (no {IMAGE_NAME}): give the repository (`--name`)"
                    )));
                }
            },
        };
        Reference::parse(&format!("{name}:{tag}")).map(Some)
    }
}

/// Checks a repository given for an import (`ghcr.io/org/app`, `nginx`): a reference without
/// tag or digest. Returns its canonical `registry/repository`.
pub fn repository_name(repository: &str) -> Result<String> {
    let last = repository.rsplit('/').next().unwrap_or(repository);
    if last.contains(':') || last.contains('@') {
        return Err(Error::invalid_reference(
            repository,
            "a repository is named without tag or digest",
        ));
    }
    let r = Reference::parse(repository)?;
    Ok(format!("{}/{}", r.registry(), r.repository()))
}

/// A JSON object's members in the order written, each value as its exact text.
struct OrderedObject(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<OrderedObject, A::Error> {
                let mut members: Vec<(String, Box<RawValue>)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    if members.iter().any(|(seen, _)| *seen == k) {
                        return Err(serde::de::Error::custom(format!("duplicate member {k:?}")));
                    }
                    members.push((k, v));
                }
                Ok(OrderedObject(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// One entry of `index.json`: its exact text and what it says.
#[derive(Debug, Clone)]
struct IndexEntry {
    raw: Box<RawValue>,
    descriptor: Descriptor,
}

/// A layout's `index.json`, edited without losing anything: members other than `manifests`,
/// and every entry not replaced, are written back as their exact text, in their order.
///
/// ```
/// use ocicache_core::image_layout::{Descriptor, LayoutIndex};
/// use ocicache_core::{Digest, MediaType, Reference};
/// let mut index = LayoutIndex::new();
/// let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
/// let r: Reference = "localhost:5000/app:v1".parse().unwrap();
/// index.add(Descriptor::for_export(&r, &d, MediaType::OciManifest, 7));
/// let again = LayoutIndex::parse(&index.to_bytes()).unwrap();
/// assert_eq!(again.find("v1").len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct LayoutIndex {
    /// Top-level members in order; the `manifests` member's value is rebuilt from `entries`.
    members: Vec<(String, Box<RawValue>)>,
    entries: Vec<IndexEntry>,
}

impl Default for LayoutIndex {
    fn default() -> Self {
        LayoutIndex::new()
    }
}

fn raw(text: String) -> Box<RawValue> {
    RawValue::from_string(text).expect("valid JSON built here")
}

impl LayoutIndex {
    /// The index of a new layout: no manifests.
    pub fn new() -> LayoutIndex {
        LayoutIndex {
            members: vec![
                ("schemaVersion".to_owned(), raw("2".to_owned())),
                (
                    "mediaType".to_owned(),
                    raw(format!("\"{INDEX_MEDIA_TYPE}\"")),
                ),
                ("manifests".to_owned(), raw("[]".to_owned())),
            ],
            entries: Vec::new(),
        }
    }

    /// Parses an `index.json`: an object with `schemaVersion` 2, a `mediaType` (if present)
    /// of an OCI index, and `manifests`, each a descriptor with a valid digest and size.
    /// Anything else is `InvalidManifest`.
    pub fn parse(bytes: &[u8]) -> Result<LayoutIndex> {
        let bad = |why: String| Error::InvalidManifest(format!("{INDEX_FILE}: {why}"));
        let OrderedObject(members) =
            serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let member = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let version: Option<u64> = member("schemaVersion")
            .map(|v| serde_json::from_str(v.get()))
            .transpose()
            .map_err(|e| bad(format!("schemaVersion: {e}")))?;
        if version != Some(2) {
            return Err(bad("schemaVersion must be 2".into()));
        }
        if let Some(mt) = member("mediaType") {
            let mt: String =
                serde_json::from_str(mt.get()).map_err(|e| bad(format!("mediaType: {e}")))?;
            if mt != INDEX_MEDIA_TYPE {
                return Err(bad(format!("mediaType {mt:?} is not an image index")));
            }
        }
        let list = member("manifests").ok_or_else(|| bad("no manifests".into()))?;
        let raws: Vec<Box<RawValue>> =
            serde_json::from_str(list.get()).map_err(|e| bad(format!("manifests: {e}")))?;
        let entries = raws
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                let descriptor = serde_json::from_str(raw.get())
                    .map_err(|e| bad(format!("manifests[{i}]: {e}")))?;
                Ok(IndexEntry { raw, descriptor })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LayoutIndex { members, entries })
    }

    /// Every image descriptor, in order.
    pub fn manifests(&self) -> impl Iterator<Item = &Descriptor> {
        self.entries.iter().map(|e| &e.descriptor)
    }

    /// The descriptors whose `org.opencontainers.image.ref.name` is `ref_name`.
    pub fn find(&self, ref_name: &str) -> Vec<&Descriptor> {
        self.manifests()
            .filter(|d| d.ref_name() == Some(ref_name))
            .collect()
    }

    /// Adds an image. An entry with the same `org.opencontainers.image.ref.name` is replaced
    /// (the tag now names this image), as skopeo does; without a name, an entry for the same
    /// digest that has no name either is replaced. Returns the replaced descriptors; every
    /// other entry is kept as written.
    pub fn add(&mut self, descriptor: Descriptor) -> Vec<Descriptor> {
        let name = descriptor.ref_name().map(str::to_owned);
        let replaces = |d: &Descriptor| match &name {
            Some(n) => d.ref_name() == Some(n.as_str()),
            None => d.ref_name().is_none() && d.digest == descriptor.digest,
        };
        let (replaced, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| replaces(&e.descriptor));
        self.entries = kept;
        let text = serde_json::to_string(&descriptor).expect("a descriptor serializes");
        self.entries.push(IndexEntry {
            raw: raw(text),
            descriptor,
        });
        replaced.into_iter().map(|e| e.descriptor).collect()
    }

    /// The `index.json` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let manifests = format!(
            "[{}]",
            self.entries
                .iter()
                .map(|e| e.raw.get())
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut members: Vec<String> = Vec::new();
        let mut wrote_manifests = false;
        for (k, v) in &self.members {
            let key = serde_json::to_string(k).expect("a string serializes");
            if k == "manifests" {
                wrote_manifests = true;
                members.push(format!("{key}:{manifests}"));
            } else {
                members.push(format!("{key}:{}", v.get()));
            }
        }
        if !wrote_manifests {
            members.push(format!("\"manifests\":{manifests}"));
        }
        format!("{{{}}}", members.join(",")).into_bytes()
    }
}

/// The content reachable from one image: its manifests (children before parents) and blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// Every manifest with its media type, children before the index that lists them, the
    /// root last.
    pub manifests: Vec<(Descriptor, MediaType)>,
    /// Every config and layer blob, each once, in the order first met.
    pub blobs: Vec<Descriptor>,
}

/// Walks the graph under a root manifest: index or Docker manifest list → manifests → config
/// and layers (any layer media type, as artifacts have). The host supplies each manifest's
/// bytes as asked ([`GraphWalk::next_manifest`], [`GraphWalk::add_manifest`]); they are
/// checked against their descriptor's size and digest before being parsed.
///
/// ```
/// use ocicache_core::image_layout::{Descriptor, GraphWalk};
/// use ocicache_core::hashing::digest_of;
/// use ocicache_core::{Algorithm, BuiltinHasher};
/// let config = br#"{}"#;
/// let manifest = format!(
///     r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},"layers":[]}}"#,
///     digest_of(&BuiltinHasher, Algorithm::Sha256, config).unwrap());
/// let root = Descriptor {
///     media_type: String::new(),
///     digest: digest_of(&BuiltinHasher, Algorithm::Sha256, manifest.as_bytes()).unwrap(),
///     size: manifest.len() as u64,
///     annotations: Default::default(),
/// };
/// let mut walk = GraphWalk::new(root);
/// while let Some(next) = walk.next_manifest() {
///     walk.add_manifest(&next, manifest.as_bytes())?;
/// }
/// let graph = walk.finish();
/// assert_eq!((graph.manifests.len(), graph.blobs.len()), (1, 1));
/// # Ok::<(), ocicache_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GraphWalk {
    root: Digest,
    pending: Vec<Descriptor>,
    seen_manifests: BTreeSet<Digest>,
    seen_blobs: BTreeSet<Digest>,
    /// Each manifest added: its descriptor, media type and child manifests.
    added: BTreeMap<Digest, (Descriptor, MediaType, Vec<Digest>)>,
    blobs: Vec<Descriptor>,
}

impl GraphWalk {
    /// Starts at a root manifest.
    pub fn new(root: Descriptor) -> GraphWalk {
        GraphWalk {
            root: root.digest.clone(),
            seen_manifests: BTreeSet::from([root.digest.clone()]),
            pending: vec![root],
            seen_blobs: BTreeSet::new(),
            added: BTreeMap::new(),
            blobs: Vec::new(),
        }
    }

    /// The next manifest whose bytes the walk needs, if any.
    pub fn next_manifest(&mut self) -> Option<Descriptor> {
        self.pending.pop()
    }

    /// Supplies a manifest's bytes: their length must be the descriptor's size
    /// (`SizeMismatch`), they must hash to its digest (`DigestMismatch`) and be a manifest the
    /// cache accepts, of the media type the descriptor announces, if it announces one
    /// (`InvalidManifest`). Returns its media type; its children join the walk.
    pub fn add_manifest(&mut self, descriptor: &Descriptor, bytes: &[u8]) -> Result<MediaType> {
        if bytes.len() as u64 != descriptor.size {
            return Err(Error::SizeMismatch {
                expected: descriptor.size,
                actual: bytes.len() as u64,
            });
        }
        let actual = digest_of(&BuiltinHasher, descriptor.digest.algorithm(), bytes)
            .expect("the built-in hasher does not fail");
        if actual != descriptor.digest {
            return Err(Error::DigestMismatch {
                expected: descriptor.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        let declared =
            (!descriptor.media_type.is_empty()).then_some(descriptor.media_type.as_str());
        let validated = validate(bytes, declared).map_err(|e| match e {
            Error::InvalidManifest(m) => {
                Error::InvalidManifest(format!("manifest {}: {m}", descriptor.digest))
            }
            other => other,
        })?;
        let children = child_descriptors(bytes, &validated.parsed)?;
        let mut child_manifests = Vec::new();
        for child in children {
            match child {
                Child::Manifest(d) => {
                    child_manifests.push(d.digest.clone());
                    if self.seen_manifests.insert(d.digest.clone()) {
                        self.pending.push(d);
                    }
                }
                Child::Blob(d) => {
                    if self.seen_blobs.insert(d.digest.clone()) {
                        self.blobs.push(d);
                    }
                }
            }
        }
        self.added.insert(
            descriptor.digest.clone(),
            (descriptor.clone(), validated.media_type, child_manifests),
        );
        Ok(validated.media_type)
    }

    /// The graph: manifests in post-order (every child before its parents, the root last).
    /// Manifests whose bytes were never supplied are left out.
    pub fn finish(mut self) -> Graph {
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        // Iterative post-order: (digest, children visited?).
        let mut stack = vec![(self.root.clone(), false)];
        while let Some((d, expanded)) = stack.pop() {
            if expanded {
                if let Some(entry) = self.added.remove(&d) {
                    order.push((entry.0, entry.1));
                }
                continue;
            }
            if !done.insert(d.clone()) {
                continue;
            }
            stack.push((d.clone(), true));
            if let Some((_, _, children)) = self.added.get(&d) {
                for c in children.iter().rev() {
                    if !done.contains(c) {
                        stack.push((c.clone(), false));
                    }
                }
            }
        }
        Graph {
            manifests: order,
            blobs: self.blobs,
        }
    }
}

enum Child {
    Manifest(Descriptor),
    Blob(Descriptor),
}

/// The descriptors a validated manifest points at: an index's manifests, or an image's config
/// and layers.
fn child_descriptors(bytes: &[u8], parsed: &ParsedManifest) -> Result<Vec<Child>> {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        manifests: Vec<Descriptor>,
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    let body: Body = serde_json::from_slice(bytes)
        .map_err(|e| Error::InvalidManifest(format!("descriptors: {e}")))?;
    Ok(match parsed {
        ParsedManifest::Index(_) => body.manifests.into_iter().map(Child::Manifest).collect(),
        ParsedManifest::Image(_) => body
            .config
            .into_iter()
            .chain(body.layers)
            .map(Child::Blob)
            .collect(),
    })
}

#[cfg(test)]
mod tests;
