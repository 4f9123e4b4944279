//! Tag mappings and the sans-I/O resolver steps.

use super::Cache;
use crate::config::expiry;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::journal::Record;
use crate::metrics::OpClass;
use crate::reference::Reference;
use crate::tags::{Resolution, TagHistoryEntry, TagMapping, TagUpdate};

impl Cache {
    /// Records that `reference` points to `digest` now — after a fetch or a revalidation by
    /// the host. Renews freshness, clears invalidation, and appends to the history when the
    /// digest changed. Like every mapping operation it needs a reference with a tag and without
    /// a digest (`nginx:1`, not `nginx:1@sha256:…`); anything else is `InvalidReference`.
    pub fn put_tag(&mut self, reference: &Reference, digest: &Digest) -> Result<TagUpdate> {
        self.timed(OpClass::Put, |c| {
            let key = reference.tag_mapping_key()?;
            let at = c.now();
            let fresh_until = expiry(at, c.config.tag_ttl_ms);
            c.journal.append(
                c.storage.as_mut(),
                &[Record::TagSet {
                    reference: key.clone(),
                    digest: digest.clone(),
                    at,
                    fresh_until,
                }],
            )?;
            let update = c.tags.set(
                &key,
                digest,
                at,
                fresh_until,
                c.config.max_tag_history as usize,
            );
            c.metrics.tag_put();
            if update.moved {
                c.log.log(
                    crate::Level::Info,
                    "tag moved",
                    &[("reference", &key), ("to", &digest.to_string())],
                );
            }
            c.maybe_compact();
            Ok(update)
        })
    }

    /// The mapping of a tag: `NotFound`, `Invalidated`, or `Expired` once its freshness window
    /// has passed (use [`Cache::resolve_tag`] to get stale digests for revalidation).
    pub fn get_tag(&mut self, reference: &Reference) -> Result<TagMapping> {
        self.timed(OpClass::Get, |c| {
            let key = reference.tag_mapping_key()?;
            let now = c.now();
            let state = c
                .tags
                .get_mut(&key)
                .ok_or_else(|| Error::NotFound(key.clone()))?;
            if state.invalidated {
                return Err(Error::Invalidated(key));
            }
            if state.is_stale(now) {
                return Err(Error::Expired(key));
            }
            state.access_count += 1;
            Ok(state.mapping(&key))
        })
    }

    /// Whether a fresh, valid mapping exists.
    pub fn has_tag(&self, reference: &Reference) -> bool {
        let now = self.now();
        reference
            .tag_mapping_key()
            .ok()
            .and_then(|k| self.tags.get(&k))
            .is_some_and(|t| !t.invalidated && !t.is_stale(now))
    }

    /// The resolver's decision for one reference. A reference pinned by digest is always
    /// `Fresh` with that digest.
    pub fn resolve_tag(&mut self, reference: &Reference) -> Result<Resolution> {
        self.timed(OpClass::Get, |c| {
            c.metrics.tag_resolution();
            let now = c.now();
            if let Some(d) = reference.digest() {
                c.metrics.hit(now);
                return Ok(Resolution::Fresh(d.clone()));
            }
            let key = reference.tag_mapping_key()?;
            let resolution = match c.tags.get_mut(&key) {
                None => Resolution::Unknown,
                Some(t) if t.invalidated => Resolution::Unknown,
                Some(t) => {
                    t.access_count += 1;
                    if t.is_stale(now) {
                        Resolution::Stale(t.digest.clone())
                    } else {
                        Resolution::Fresh(t.digest.clone())
                    }
                }
            };
            if matches!(resolution, Resolution::Fresh(_)) {
                c.metrics.hit(now);
            } else {
                c.metrics.miss(now);
            }
            Ok(resolution)
        })
    }

    /// [`Cache::resolve_tag`] for many references; one result each, in order.
    pub fn resolve_tags(&mut self, references: &[Reference]) -> Vec<Result<Resolution>> {
        references.iter().map(|r| self.resolve_tag(r)).collect()
    }

    /// The host could not reach the registry: returns the stale digest when `stale_if_error`
    /// allows and the mapping is not invalidated; otherwise the mapping's error.
    pub fn resolve_failed(&mut self, reference: &Reference) -> Result<Digest> {
        let key = reference.tag_mapping_key()?;
        let state = self
            .tags
            .get(&key)
            .ok_or_else(|| Error::NotFound(key.clone()))?;
        if state.invalidated {
            return Err(Error::Invalidated(key));
        }
        if !self.config.stale_if_error && state.is_stale(self.now()) {
            return Err(Error::Expired(key));
        }
        Ok(state.digest.clone())
    }

    /// Whether the host's remote digest differs from the cached one (changes nothing).
    pub fn detect_movement(&self, reference: &Reference, remote: &Digest) -> Result<bool> {
        let key = reference.tag_mapping_key()?;
        let state = self.tags.get(&key).ok_or(Error::NotFound(key))?;
        Ok(state.digest != *remote)
    }

    /// Marks a mapping invalid until it is put again; `false` if there was none.
    pub fn invalidate_tag(&mut self, reference: &Reference) -> Result<bool> {
        self.timed(OpClass::Put, |c| {
            let key = reference.tag_mapping_key()?;
            if c.tags.get(&key).is_none() {
                return Ok(false);
            }
            c.journal.append(
                c.storage.as_mut(),
                &[Record::TagInvalidate {
                    reference: key.clone(),
                }],
            )?;
            Ok(c.tags.invalidate(&key))
        })
    }

    /// Removes a mapping and its history; `false` if there was none.
    pub fn delete_tag(&mut self, reference: &Reference) -> Result<bool> {
        self.timed(OpClass::Delete, |c| {
            let key = reference.tag_mapping_key()?;
            if c.tags.get(&key).is_none() {
                return Ok(false);
            }
            c.journal.append(
                c.storage.as_mut(),
                &[Record::TagRemove {
                    reference: key.clone(),
                }],
            )?;
            c.metrics.deleted();
            Ok(c.tags.remove(&key))
        })
    }

    /// The digests a tag pointed to, oldest first, the current one last.
    pub fn tag_history(&self, reference: &Reference) -> Result<Vec<TagHistoryEntry>> {
        let key = reference.tag_mapping_key()?;
        let state = self.tags.get(&key).ok_or(Error::NotFound(key))?;
        Ok(state.history.iter().cloned().collect())
    }

    /// Every tag mapping, sorted by reference.
    pub fn tags(&self) -> Vec<TagMapping> {
        self.tags
            .sorted_references()
            .into_iter()
            .map(|r| self.tags.get(r).expect("listed").mapping(r))
            .collect()
    }
}
