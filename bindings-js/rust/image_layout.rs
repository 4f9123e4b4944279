//! OCI image layouts for the Node entry (`src/image-layout.js`): what an export writes and an
//! import stores is the core's ([`ocicache_core::image_layout`], as for the native host); the
//! Node side reads and writes the files.

use crate::{JsResult, WasmCache, count, to_js};
use ocicache_core::image_layout::{
    Descriptor, ExportContent, ExportPlan, ImportContent, ImportPlan, LayoutIndex, blob_path,
    export_root, is_missing, layout_to_export_into, layout_to_import, oci_layout_bytes,
    root_lookup_error,
};
use ocicache_core::layout::entry_path;
use ocicache_core::{Error, Key, Kind, Resolution};
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;

/// The bytes of a new `oci-layout` file.
#[wasm_bindgen(js_name = ociLayoutBytes)]
pub fn oci_layout() -> Vec<u8> {
    oci_layout_bytes()
}

fn invalid(what: &str) -> JsValue {
    to_js(Error::InvalidArgument(what.to_owned()))
}

/// An export of one cached image, planned: every manifest and blob of its graph is cached.
/// Internal to the npm package: use `cache.export`.
#[wasm_bindgen]
pub struct WasmExport {
    content: ExportContent,
    tag_stale: bool,
    index: Option<LayoutIndex>,
    replaced: Vec<String>,
}

#[wasm_bindgen]
impl WasmCache {
    /// Plans an export of `reference` from the cache alone (a tag through its cached mapping,
    /// fresh or stale): `NotFound` naming every manifest and blob missing.
    #[wasm_bindgen(js_name = exportPlan)]
    pub fn export_plan(&mut self, reference: &str) -> JsResult<WasmExport> {
        let reference = crate::reference(reference)?;
        let cache = self.cache()?;
        let resolution = match reference.digest() {
            Some(_) => Resolution::Unknown,
            None => cache.resolve_tag(&reference).map_err(to_js)?,
        };
        let (digest, tag_stale) = export_root(&reference, resolution).map_err(to_js)?;
        let root = cache
            .get_manifest(&digest)
            .map_err(|e| to_js(root_lookup_error(&reference, &digest, e)))?;
        let mut plan =
            ExportPlan::new(&reference, &digest, root.media_type, root.bytes).map_err(to_js)?;
        while let Some(next) = plan.next_manifest() {
            match cache.get_manifest(&next.digest) {
                Ok(m) => plan.manifest_found(&next, m.bytes).map_err(to_js)?,
                Err(e) if is_missing(&e) => plan.manifest_missing(&next, &e),
                Err(e) => return Err(to_js(e)),
            }
        }
        for blob in plan.blobs() {
            match cache.open_blob(&blob.digest) {
                Ok(r) => {
                    let size = r.size();
                    cache.close_blob(r);
                    plan.blob_found(&blob, size).map_err(to_js)?;
                }
                Err(e) if is_missing(&e) => plan.blob_missing(&blob, &e),
                Err(e) => return Err(to_js(e)),
            }
        }
        Ok(WasmExport {
            content: plan.finish().map_err(to_js)?,
            tag_stale,
            index: None,
            replaced: Vec::new(),
        })
    }
}

#[wasm_bindgen]
impl WasmExport {
    /// What to write, as JSON: `reference`, `digest`, `media_type`, `tag`, `tag_stale`,
    /// `bytes` (of the blobs), `manifests` and `blobs` (each `{digest, size, layout_path}`,
    /// blobs also `cache_path`: their file in a cache directory).
    pub fn json(&self) -> String {
        let c = &self.content;
        let manifests: Vec<Value> = c
            .manifests
            .iter()
            .map(|(d, media_type, _)| {
                json!({ "digest": d.digest, "size": d.size, "media_type": media_type.as_str(),
                        "layout_path": blob_path(&d.digest) })
            })
            .collect();
        let blobs: Vec<Value> = c
            .blobs
            .iter()
            .map(|d| {
                let key = Key {
                    kind: Kind::Blob,
                    digest: d.digest.clone(),
                };
                json!({ "digest": d.digest, "size": d.size, "layout_path": blob_path(&d.digest),
                        "cache_path": entry_path(&key) })
            })
            .collect();
        json!({
            "reference": c.reference.to_string(),
            "digest": c.digest,
            "media_type": c.media_type.as_str(),
            "tag": c.reference.tag(),
            "tag_stale": self.tag_stale,
            "bytes": c.blob_bytes(),
            "manifests": manifests,
            "blobs": blobs,
        })
        .to_string()
    }

    /// The bytes of manifest `i` of [`json`](Self::json)'s list.
    #[wasm_bindgen(js_name = manifestBytes)]
    pub fn manifest_bytes(&self, i: u32) -> JsResult<Vec<u8>> {
        self.content
            .manifests
            .get(i as usize)
            .map(|(_, _, bytes)| bytes.clone())
            .ok_or_else(|| invalid("no such manifest"))
    }

    /// Checks the directory exported into (`dir` for messages) from what its `oci-layout`
    /// and `index.json` hold (absent: `undefined`) and whether it has other entries; returns
    /// whether `oci-layout` must be written. Refuses a directory that is not an image layout.
    #[wasm_bindgen(js_name = prepareLayout)]
    pub fn prepare_layout(
        &mut self,
        dir: &str,
        oci_layout: Option<Vec<u8>>,
        index_json: Option<Vec<u8>>,
        other_entries: bool,
    ) -> JsResult<bool> {
        let (index, write_marker) = layout_to_export_into(
            dir,
            oci_layout.as_deref(),
            index_json.as_deref(),
            other_entries,
        )
        .map_err(to_js)?;
        self.index = Some(index);
        Ok(write_marker)
    }

    /// The new `index.json`: the image added to the layout's (an entry of the same tag
    /// replaced). After [`prepare_layout`](Self::prepare_layout).
    #[wasm_bindgen(js_name = indexBytes)]
    pub fn index_bytes(&mut self) -> JsResult<Vec<u8>> {
        let index = self
            .index
            .as_mut()
            .ok_or_else(|| invalid("prepareLayout first"))?;
        self.replaced = self
            .content
            .add_to_index(index)
            .iter()
            .map(ToString::to_string)
            .collect();
        Ok(index.to_bytes())
    }

    /// The digests the tag named in `index.json` before, now replaced.
    pub fn replaced(&self) -> Vec<String> {
        self.replaced.clone()
    }
}

/// An import of an image layout, planned: the host reads each manifest it asks for, then
/// stores what [`finish`](Self::finish) lists. Internal to the npm package: use
/// `cache.import`.
#[wasm_bindgen]
pub struct WasmImport {
    plan: Option<ImportPlan>,
    asked: Option<Descriptor>,
    content: Option<ImportContent>,
}

fn descriptor_json(d: &Descriptor) -> Value {
    json!({ "digest": d.digest, "size": d.size, "layout_path": blob_path(&d.digest) })
}

#[wasm_bindgen]
impl WasmImport {
    /// Starts an import of the layout at `dir` (for messages) from what its `oci-layout` and
    /// `index.json` hold (absent: `undefined`): with `tag`, only the image of that
    /// `org.opencontainers.image.ref.name`; `repository` names the repository of its tags.
    /// Every tag mapping is named here, before anything is read.
    #[wasm_bindgen(constructor)]
    pub fn new(
        dir: &str,
        oci_layout: Option<Vec<u8>>,
        index_json: Option<Vec<u8>>,
        tag: Option<String>,
        repository: Option<String>,
        max_manifest_bytes: f64,
    ) -> JsResult<WasmImport> {
        let limit = count("max_manifest_bytes", max_manifest_bytes)?;
        let index =
            layout_to_import(dir, oci_layout.as_deref(), index_json.as_deref()).map_err(to_js)?;
        let plan = ImportPlan::new(dir, &index, tag.as_deref(), repository.as_deref(), limit)
            .map_err(to_js)?;
        Ok(WasmImport {
            plan: Some(plan),
            asked: None,
            content: None,
        })
    }

    /// The next manifest to read (`{digest, size, layout_path}` as JSON: read at most
    /// `size + 1` bytes), or `undefined` when all are read.
    #[wasm_bindgen(js_name = nextManifest)]
    pub fn next_manifest(&mut self) -> JsResult<Option<String>> {
        let plan = self.plan.as_mut().ok_or_else(|| invalid("finished"))?;
        let next = plan.next_manifest().map_err(to_js)?;
        let out = next.as_ref().map(|d| descriptor_json(d).to_string());
        self.asked = next;
        Ok(out)
    }

    /// The bytes of the manifest last asked for: checked against its descriptor.
    #[wasm_bindgen(js_name = addManifest)]
    pub fn add_manifest(&mut self, bytes: Vec<u8>) -> JsResult<()> {
        let plan = self.plan.as_mut().ok_or_else(|| invalid("finished"))?;
        let asked = self
            .asked
            .take()
            .ok_or_else(|| invalid("no manifest asked for"))?;
        plan.add_manifest(&asked, bytes).map_err(to_js)
    }

    /// What to store, as JSON: `images` (`{digest, media_type, tag}`), `manifests`
    /// (`{digest, media_type}`, children first; bytes by [`manifest_bytes`](Self::manifest_bytes)),
    /// `blobs` (`{digest, size, layout_path}`).
    pub fn finish(&mut self) -> JsResult<String> {
        let plan = self.plan.take().ok_or_else(|| invalid("finished"))?;
        let content = plan.finish();
        let images: Vec<Value> = content
            .images
            .iter()
            .map(|i| {
                json!({ "digest": i.descriptor.digest, "media_type": i.media_type.as_str(),
                        "tag": i.tag.as_ref().map(ToString::to_string) })
            })
            .collect();
        let manifests: Vec<Value> = content
            .manifests
            .iter()
            .map(|(d, m, _)| json!({ "digest": d.digest, "media_type": m.as_str() }))
            .collect();
        let blobs: Vec<Value> = content.blobs.iter().map(descriptor_json).collect();
        self.content = Some(content);
        Ok(json!({ "images": images, "manifests": manifests, "blobs": blobs }).to_string())
    }

    /// The bytes of manifest `i` of [`finish`](Self::finish)'s list.
    #[wasm_bindgen(js_name = manifestBytes)]
    pub fn manifest_bytes(&self, i: u32) -> JsResult<Vec<u8>> {
        self.content
            .as_ref()
            .and_then(|c| c.manifests.get(i as usize))
            .map(|(_, _, bytes)| bytes.clone())
            .ok_or_else(|| invalid("no such manifest"))
    }
}
