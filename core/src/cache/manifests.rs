//! Manifests by digest.

use super::Cache;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::hashing::digest_of;
use crate::key::Key;
use crate::layout;
use crate::manifest::{self, MediaType, ParsedManifest};
use crate::metrics::OpClass;
use crate::storage;

/// A manifest as stored: exact bytes, media type and parsed form.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: MediaType,
    /// The exact bytes it was stored with.
    pub bytes: Vec<u8>,
    /// The parsed form.
    pub parsed: ParsedManifest,
}

impl Cache {
    /// Stores a manifest after checking its size, that it hashes to `digest` and that it parses
    /// as an OCI image manifest or index, or a Docker v2 manifest or manifest list.
    /// `declared_media_type` (the registry's `Content-Type`) must agree with the body if given.
    ///
    /// Re-putting a stored manifest is allowed and replaces its bytes with the verified ones.
    pub fn put_manifest(
        &mut self,
        digest: &Digest,
        bytes: &[u8],
        declared_media_type: Option<&str>,
    ) -> Result<MediaType> {
        self.timed(OpClass::Put, |c| {
            let limit = c.config.max_manifest_bytes;
            if bytes.len() as u64 > limit {
                return Err(Error::TooLarge {
                    size: bytes.len() as u64,
                    limit,
                });
            }
            let actual = digest_of(c.hasher.as_ref(), digest.algorithm(), bytes)?;
            if actual != *digest {
                return Err(Error::DigestMismatch {
                    expected: digest.to_string(),
                    actual: actual.to_string(),
                });
            }
            let valid = manifest::validate(bytes, declared_media_type)?;
            let key = Key::manifest(digest.clone());
            c.content_changing()?;
            let existing = c.prepare_put(&key, bytes.len() as u64)?;
            storage::write_atomically(c.storage.as_mut(), &layout::entry_path(&key), bytes)?;
            let mut entry = c.new_entry(key, bytes.len() as u64);
            entry.media_type = Some(valid.media_type);
            c.index_committed(entry, valid.references, existing)?;
            Ok(valid.media_type)
        })
    }

    /// Returns a manifest, re-hashing its bytes first (a mismatch quarantines it: `Corrupted`).
    pub fn get_manifest(&mut self, digest: &Digest) -> Result<Manifest> {
        let (media_type, bytes, parsed) = self.read_manifest(digest, true)?;
        Ok(Manifest {
            digest: digest.clone(),
            media_type,
            bytes,
            parsed: parsed.expect("parsed when asked to"),
        })
    }

    /// A manifest's media type and exact bytes, checked as [`Cache::get_manifest`] checks them,
    /// but not parsed when the bytes were verified against `digest` (`verify_reads`) and the
    /// index knows their media type: they are then the bytes that validated when stored. For a
    /// host that parses the body itself (the component's); if its parse fails, it calls
    /// [`Cache::get_manifest`], which quarantines the manifest.
    pub fn get_manifest_bytes(&mut self, digest: &Digest) -> Result<(MediaType, Vec<u8>)> {
        let (media_type, bytes, _) = self.read_manifest(digest, false)?;
        Ok((media_type, bytes))
    }

    /// Reads and verifies a manifest; parses it if `parse`, or if it was not verified, or if the
    /// index does not know its media type.
    fn read_manifest(
        &mut self,
        digest: &Digest,
        parse: bool,
    ) -> Result<(MediaType, Vec<u8>, Option<ParsedManifest>)> {
        self.timed(OpClass::Get, |c| {
            let key = Key::manifest(digest.clone());
            let id = c.lookup_for_read(&key)?;
            let path = layout::entry_path(&key);
            // Sizes are compared, and bounded by the configured limit, before anything is read:
            // neither the file's size nor the index's is trusted with memory.
            let expected_size = c.index.get(id).size();
            let stored_size = match c.storage.size(&path)? {
                Some(s) => s,
                None => return Err(c.quarantine(id, "file missing".into())),
            };
            if stored_size != expected_size {
                return Err(c.quarantine(
                    id,
                    format!("{stored_size} bytes stored, {expected_size} expected"),
                ));
            }
            let limit = c.config.max_manifest_bytes;
            if expected_size > limit {
                // Stored under a larger limit, or a damaged index: refused, not removed.
                return Err(Error::TooLarge {
                    size: expected_size,
                    limit,
                });
            }
            let bytes = match storage::read_exact(c.storage.as_mut(), &path, expected_size) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return Err(c.quarantine(id, "fewer bytes stored than expected".into()));
                }
                Err(crate::StorageError::NotFound(_)) => {
                    return Err(c.quarantine(id, "file missing".into()));
                }
                Err(e) => return Err(e.into()),
            };
            c.metrics.retrieved(bytes.len() as u64);
            if c.config.verify_reads {
                let actual = digest_of(c.hasher.as_ref(), digest.algorithm(), &bytes)?;
                if actual != *digest {
                    return Err(c.quarantine(id, format!("bytes hash to {actual}")));
                }
            }
            // The media type it was stored with decides for a body that names none.
            let stored = c.index.get(id).media_type();
            let (media_type, parsed) = match stored {
                Some(m) if !parse && c.config.verify_reads => (m, None),
                _ => match manifest::validate(&bytes, stored.map(MediaType::as_str)) {
                    Ok(v) => (v.media_type, Some(v.parsed)),
                    Err(e) => return Err(c.quarantine(id, e.to_string())),
                },
            };
            c.record_access(id, false);
            c.metrics.served(bytes.len() as u64);
            Ok((media_type, bytes, parsed))
        })
    }

    /// Whether a servable manifest is stored.
    pub fn has_manifest(&self, digest: &Digest) -> bool {
        self.has(&Key::manifest(digest.clone()))
    }

    /// Deletes a manifest; `false` if absent.
    pub fn delete_manifest(&mut self, digest: &Digest) -> Result<bool> {
        self.delete(&Key::manifest(digest.clone()))
    }

    /// The content a stored manifest references (config and layers, or child manifests).
    pub fn manifest_references(&self, digest: &Digest) -> Result<Vec<Key>> {
        let key = Key::manifest(digest.clone());
        let id = self
            .index
            .find(&key)
            .ok_or_else(|| Error::NotFound(key.to_string()))?;
        Ok(self.index.references(id).to_vec())
    }
}
