//! Manifest validation: which bodies are manifests, what they are and what they reference.
//!
//! Manifests are stored as their exact bytes; they are parsed (with `oci-spec`) only to validate
//! them and to learn which content they reference, never re-serialized (that would change the
//! digest).

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::key::Key;
use oci_spec::image::{ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

/// The manifest media types the cache accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaType {
    /// `application/vnd.oci.image.manifest.v1+json`
    #[serde(rename = "application/vnd.oci.image.manifest.v1+json")]
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json`
    #[serde(rename = "application/vnd.oci.image.index.v1+json")]
    OciIndex,
    /// `application/vnd.docker.distribution.manifest.v2+json`
    #[serde(rename = "application/vnd.docker.distribution.manifest.v2+json")]
    DockerManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    #[serde(rename = "application/vnd.docker.distribution.manifest.list.v2+json")]
    DockerManifestList,
}

impl MediaType {
    /// Every accepted media type.
    pub const ALL: [MediaType; 4] = [
        MediaType::OciManifest,
        MediaType::OciIndex,
        MediaType::DockerManifest,
        MediaType::DockerManifestList,
    ];

    /// The media type string.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::OciManifest => "application/vnd.oci.image.manifest.v1+json",
            MediaType::OciIndex => "application/vnd.oci.image.index.v1+json",
            MediaType::DockerManifest => "application/vnd.docker.distribution.manifest.v2+json",
            MediaType::DockerManifestList => {
                "application/vnd.docker.distribution.manifest.list.v2+json"
            }
        }
    }

    /// Parses a media type string (parameters after `;` are ignored).
    pub fn from_str_opt(s: &str) -> Option<MediaType> {
        let base = s.split(';').next().unwrap_or("").trim();
        MediaType::ALL.into_iter().find(|m| m.as_str() == base)
    }

    /// Whether this is an index (list of manifests) rather than a single manifest.
    pub fn is_index(self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerManifestList)
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            MediaType::OciManifest => 1,
            MediaType::OciIndex => 2,
            MediaType::DockerManifest => 3,
            MediaType::DockerManifestList => 4,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<MediaType> {
        MediaType::ALL.into_iter().find(|m| m.code() == c)
    }
}

/// A manifest's parsed form.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedManifest {
    /// An image (or artifact) manifest.
    Image(Box<ImageManifest>),
    /// An index / manifest list.
    Index(Box<ImageIndex>),
}

/// The result of validating a manifest body.
#[derive(Debug, Clone)]
pub struct ValidatedManifest {
    /// Its media type.
    pub media_type: MediaType,
    /// Its parsed form.
    pub parsed: ParsedManifest,
    /// The content it references: config and layers (blobs) or child manifests.
    pub references: Vec<Key>,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(rename = "schemaVersion")]
    schema_version: Option<serde_json::Value>,
    manifests: Option<serde::de::IgnoredAny>,
    layers: Option<serde::de::IgnoredAny>,
}

/// Validates a manifest body; `declared` is a media type announced by the registry, if any.
pub fn validate(bytes: &[u8], declared: Option<&str>) -> Result<ValidatedManifest> {
    let bad = |m: String| Error::InvalidManifest(m);
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a JSON manifest: {e}")))?;
    if probe.schema_version != Some(serde_json::Value::from(2)) {
        return Err(bad("schemaVersion must be 2".into()));
    }
    let body_type = match probe.media_type.as_deref() {
        Some(s) => Some(
            MediaType::from_str_opt(s)
                .ok_or_else(|| bad(format!("unsupported mediaType {s:?}")))?,
        ),
        None => None,
    };
    let declared_type = match declared {
        Some(s) => Some(
            MediaType::from_str_opt(s)
                .ok_or_else(|| bad(format!("unsupported media type {s:?}")))?,
        ),
        None => None,
    };
    let media_type = match (body_type, declared_type) {
        (Some(b), Some(d)) if b != d => {
            return Err(bad(format!(
                "body says {} but was declared {}",
                b.as_str(),
                d.as_str()
            )));
        }
        (Some(b), _) => b,
        (None, Some(d)) => d,
        (None, None) => match (probe.manifests.is_some(), probe.layers.is_some()) {
            (true, false) => MediaType::OciIndex,
            (false, true) => MediaType::OciManifest,
            _ => {
                return Err(bad(
                    "cannot tell a manifest from an index: no mediaType".into()
                ));
            }
        },
    };
    let descriptor_key = |digest: &str, make: fn(Digest) -> Key| -> Result<Key> {
        Digest::parse(digest)
            .map(make)
            .map_err(|e| bad(format!("bad descriptor digest: {e}")))
    };
    let (parsed, references) = if media_type.is_index() {
        let index: ImageIndex =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("invalid index: {e}")))?;
        let refs = index
            .manifests()
            .iter()
            .map(|d| descriptor_key(d.digest().as_ref(), Key::manifest))
            .collect::<Result<Vec<_>>>()?;
        (ParsedManifest::Index(Box::new(index)), refs)
    } else {
        let manifest: ImageManifest =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("invalid manifest: {e}")))?;
        let mut refs = vec![descriptor_key(
            manifest.config().digest().as_ref(),
            Key::blob,
        )?];
        for layer in manifest.layers() {
            refs.push(descriptor_key(layer.digest().as_ref(), Key::blob)?);
        }
        (ParsedManifest::Image(Box::new(manifest)), refs)
    };
    let mut references = references;
    references.sort();
    references.dedup();
    Ok(ValidatedManifest {
        media_type,
        parsed,
        references,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn image(media: Option<&str>) -> String {
        let mt = media
            .map(|m| format!(r#""mediaType":"{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}}]}}"#,
            d('a'),
            d('b'),
            d('b')
        )
    }

    #[test]
    fn accepts_every_supported_type_and_lists_references() {
        let v = validate(
            image(Some(MediaType::OciManifest.as_str())).as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(v.media_type, MediaType::OciManifest);
        assert_eq!(v.references.len(), 2, "deduplicated config + layer");
        let v = validate(
            image(Some(MediaType::DockerManifest.as_str())).as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(v.media_type, MediaType::DockerManifest);
        let v = validate(image(None).as_bytes(), None).unwrap();
        assert_eq!(v.media_type, MediaType::OciManifest, "inferred from layers");
        for mt in [MediaType::OciIndex, MediaType::DockerManifestList] {
            let body = format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":7}}]}}"#,
                mt.as_str(),
                d('c')
            );
            let v = validate(body.as_bytes(), None).unwrap();
            assert_eq!(v.media_type, mt);
            assert_eq!(
                v.references,
                vec![Key::manifest(Digest::parse(&d('c')).unwrap())]
            );
        }
    }

    #[test]
    fn rejects_non_manifests() {
        let cases = [
            "not json".to_string(),
            "{}".to_string(),
            r#"{"schemaVersion":1,"layers":[]}"#.to_string(),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#.to_string(),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_string(),
            image(None).replace(&d('b'), "sha256:zz"),
        ];
        for body in cases {
            let err = validate(body.as_bytes(), None).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidManifest, "{body}");
        }
        let err = validate(image(None).as_bytes(), Some(MediaType::OciIndex.as_str())).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidManifest,
            "declared type must agree"
        );
    }
}
