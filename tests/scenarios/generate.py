#!/usr/bin/env python3
"""Generates the conformance scenarios under tests/scenarios/ from compact definitions.

    python3 tests/scenarios/generate.py          # (re)write every scenario file
    python3 tests/scenarios/generate.py --check  # fail if the files differ from the definitions

Deterministic, standard library only. The JSON files are the product: runners (Rust, wasmtime,
Node, browser) read them and never run this script. It exists so that the literal digests in the
files are computed rather than typed. The format is documented in README.md beside this file.
"""

import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
T0 = 1_700_000_000_000
HOUR = 3_600_000
DAY = 24 * HOUR

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

DEFAULT_CONFIG = {
    "max_bytes": 1 << 30,
    "high_watermark_percent": 95,
    "low_watermark_percent": 85,
    "default_ttl_ms": DAY,
    "manifest_ttl_ms": None,
    "blob_ttl_ms": None,
    "tag_ttl_ms": 300_000,
    "sliding_ttl": False,
    "max_tag_history": 10,
    "max_manifest_bytes": 4 << 20,
    "stale_if_error": True,
    "verify_reads": True,
    "eviction": {"composite": [[0, "expired"], [1, "lru"]]},
    "compaction_min_records": 1000,
    "durability": "strict",
}

# ----- digests and content -----


def _bytes(data):
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def sha256(data):
    return "sha256:" + hashlib.sha256(_bytes(data)).hexdigest()


def sha384(data):
    return "sha384:" + hashlib.sha384(_bytes(data)).hexdigest()


def sha512(data):
    return "sha512:" + hashlib.sha512(_bytes(data)).hexdigest()


def hexpart(digest):
    return digest.split(":", 1)[1]


def blob_path(digest):
    alg, hx = digest.split(":", 1)
    return f"blobs/{alg}/{hx}"


def manifest_path(digest):
    alg, hx = digest.split(":", 1)
    return f"manifests/{alg}/{hx}"


def fill(ch, n):
    """n bytes of one ASCII character: blobs of exact sizes."""
    return ch * n


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def descriptor(media_type, data):
    return {"mediaType": media_type, "digest": sha256(data), "size": len(_bytes(data))}


def oci_manifest(config="{}", layers=("layer",), media_type=True):
    """An OCI image manifest body referencing blobs with the given contents."""
    body = {"schemaVersion": 2}
    if media_type:
        body["mediaType"] = OCI_MANIFEST
    body["config"] = descriptor("application/vnd.oci.image.config.v1+json", config)
    body["layers"] = [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", l) for l in layers]
    return compact(body)


def docker_manifest(config="{}", layers=("layer",), media_type=True):
    body = {"schemaVersion": 2}
    if media_type:
        body["mediaType"] = DOCKER_MANIFEST
    body["config"] = descriptor("application/vnd.docker.container.image.v1+json", config)
    body["layers"] = [
        descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", l) for l in layers
    ]
    return compact(body)


def _platform_list(children, child_type):
    out = []
    for i, child in enumerate(children):
        d = descriptor(child_type, child)
        d["platform"] = {"architecture": ["amd64", "arm64", "riscv64"][i % 3], "os": "linux"}
        out.append(d)
    return out


def oci_index(children, media_type=True):
    body = {"schemaVersion": 2}
    if media_type:
        body["mediaType"] = OCI_INDEX
    body["manifests"] = _platform_list(children, OCI_MANIFEST)
    return compact(body)


def docker_list(children, media_type=True):
    body = {"schemaVersion": 2}
    if media_type:
        body["mediaType"] = DOCKER_LIST
    body["manifests"] = _platform_list(children, DOCKER_MANIFEST)
    return compact(body)


def blob_refs(*contents):
    """Expected `manifest.references` of blobs: sorted by digest, deduplicated."""
    ds = sorted({sha256(c) for c in contents}, key=hexpart)
    return [{"kind": "blob", "digest": d} for d in ds]


def manifest_refs(*contents):
    ds = sorted({sha256(c) for c in contents}, key=hexpart)
    return [{"kind": "manifest", "digest": d} for d in ds]


def small(cap, policy="lru", **kw):
    """A tiny cache whose watermarks are both at the cap: eviction only when a put would not fit."""
    cfg = {
        "max_bytes": cap,
        "high_watermark_percent": 100,
        "low_watermark_percent": 100,
        "eviction": policy,
    }
    cfg.update(kw)
    return cfg


def got(data):
    """The result of blob.get / storage.read for UTF-8 data."""
    b = _bytes(data)
    return {"size": len(b), "data": data, "data_hex": b.hex()}


# ----- scenario builder -----

_NO = object()
SCENARIOS = []


class Scenario:
    def __init__(self, name, description, config=None, start_ms=None):
        self.name = name
        self.description = description
        self.config = config
        self.start_ms = start_ms
        self.steps = []
        SCENARIOS.append(self)

    def __call__(self, op, ok=_NO, err=None, **args):
        step = {"op": op}
        data = args.get("data")
        if isinstance(data, str) and len(data) > 64 and "repeat" not in args and data == data[0] * len(data):
            # A run of one character: written as data + repeat to keep the files small.
            args["data"], args["repeat"] = data[0], len(data)
        if args:
            step["args"] = args
        if err is not None:
            assert ok is _NO, "a step expects ok or an error, not both"
            step["expect"] = {"error": err}
        elif ok is not _NO:
            step["expect"] = {"ok": ok}
        self.steps.append(step)
        return self

    def to_json(self):
        head = {"name": self.name, "description": self.description}
        if self.config is not None:
            head["config"] = self.config
        if self.start_ms is not None:
            head["start_ms"] = self.start_ms
        lines = ["{"]
        for k, v in head.items():
            lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},")
        lines.append('  "steps": [')
        for i, step in enumerate(self.steps):
            comma = "," if i + 1 < len(self.steps) else ""
            lines.append("    " + json.dumps(step, ensure_ascii=False) + comma)
        lines.append("  ]")
        lines.append("}")
        return "\n".join(lines) + "\n"


S = Scenario

# =====================================================================================
# manifests
# =====================================================================================


def manifests():
    m = oci_manifest("{\"os\":\"linux\"}", ["layer-1", "layer-2"])
    d = sha256(m)
    (
        S("manifests/put_get_oci_manifest", "An OCI image manifest is stored, served with its media type and exact bytes, and references its config and layers.")
        ("manifest.has", digest=d, ok=False)
        ("manifest.put", digest=d, data=m, ok=OCI_MANIFEST)
        ("manifest.has", digest=d, ok=True)
        ("manifest.get", digest=d, ok={"digest": d, "media_type": OCI_MANIFEST, "data": m})
        ("manifest.references", digest=d, ok=blob_refs("{\"os\":\"linux\"}", "layer-1", "layer-2"))
        ("storage.read", path=manifest_path(d), ok=got(m))
        ("stats", ok={"total_entries": 1, "manifests": 1, "blobs": 0, "total_size_bytes": len(m)})
    )

    children = [oci_manifest("{}", ["a"]), oci_manifest("{}", ["b"])]
    idx = oci_index(children)
    d = sha256(idx)
    (
        S("manifests/put_get_oci_index", "An OCI image index is stored and served; it references its child manifests (which need not be cached).")
        ("manifest.put", digest=d, data=idx, ok=OCI_INDEX)
        ("manifest.get", digest=d, ok={"digest": d, "media_type": OCI_INDEX, "data": idx})
        ("manifest.references", digest=d, ok=manifest_refs(*children))
        ("contents", ok=[{"kind": "manifest", "digest": d, "size": len(idx), "media_type": OCI_INDEX, "referrers": 0}])
    )

    m = docker_manifest("{\"architecture\":\"amd64\"}", ["rootfs-1", "rootfs-1", "rootfs-2"])
    d = sha256(m)
    (
        S("manifests/put_get_docker_manifest", "A Docker v2 schema 2 manifest is stored and served with its Docker media type; duplicate layer references are listed once.")
        ("manifest.put", digest=d, data=m, ok=DOCKER_MANIFEST)
        ("manifest.get", digest=d, ok={"digest": d, "media_type": DOCKER_MANIFEST, "data": m})
        ("manifest.references", digest=d, ok=blob_refs("{\"architecture\":\"amd64\"}", "rootfs-1", "rootfs-2"))
    )

    children = [docker_manifest("{}", ["x"]), docker_manifest("{}", ["y"]), docker_manifest("{}", ["z"])]
    lst = docker_list(children)
    d = sha256(lst)
    (
        S("manifests/put_get_docker_manifest_list", "A Docker manifest list is stored and served with its media type and references its platform manifests.")
        ("manifest.put", digest=d, data=lst, ok=DOCKER_LIST)
        ("manifest.get", digest=d, ok={"digest": d, "media_type": DOCKER_LIST, "data": lst})
        ("manifest.references", digest=d, ok=manifest_refs(*children))
    )

    m = oci_manifest("{}", ["l"], media_type=False)
    i = oci_index([oci_manifest("{}", ["l"])], media_type=False)
    (
        S("manifests/inferred_media_type", "A body without mediaType is an OCI manifest if it has layers, an OCI index if it has manifests.")
        ("manifest.put", digest=sha256(m), data=m, ok=OCI_MANIFEST)
        ("manifest.put", digest=sha256(i), data=i, ok=OCI_INDEX)
        ("manifest.get", digest=sha256(m), ok={"media_type": OCI_MANIFEST, "data": m})
        ("manifest.get", digest=sha256(i), ok={"media_type": OCI_INDEX, "data": i})
    )

    dm = docker_manifest("{}", ["l"], media_type=False)
    dl = docker_list([docker_manifest("{}", ["l"])], media_type=False)
    om = oci_manifest("{}", ["q"])
    (
        S("manifests/declared_media_type", "The registry's Content-Type decides the type of a body without mediaType, is kept across reads, and may carry parameters.")
        ("manifest.put", digest=sha256(dm), data=dm, media_type=DOCKER_MANIFEST, ok=DOCKER_MANIFEST)
        ("manifest.get", digest=sha256(dm), ok={"media_type": DOCKER_MANIFEST, "data": dm})
        ("manifest.put", digest=sha256(dl), data=dl, media_type=DOCKER_LIST, ok=DOCKER_LIST)
        ("manifest.get", digest=sha256(dl), ok={"media_type": DOCKER_LIST, "data": dl})
        ("manifest.put", digest=sha256(om), data=om, media_type=OCI_MANIFEST + "; charset=utf-8", ok=OCI_MANIFEST)
        ("cache.reopen")
        ("manifest.get", digest=sha256(dm), ok={"media_type": DOCKER_MANIFEST})
        ("manifest.get", digest=sha256(dl), ok={"media_type": DOCKER_LIST})
        ("contents", ok=[{"media_type": t} for _, t in sorted(
            [(sha256(dm), DOCKER_MANIFEST), (sha256(dl), DOCKER_LIST), (sha256(om), OCI_MANIFEST)],
            key=lambda p: hexpart(p[0]))])
    )

    m = oci_manifest("{}", ["l"])
    (
        S("manifests/declared_type_mismatch", "A body whose mediaType disagrees with the declared Content-Type is refused and nothing is stored.")
        ("manifest.put", digest=sha256(m), data=m, media_type=OCI_INDEX, err="invalid_manifest")
        ("manifest.put", digest=sha256(m), data=m, media_type=DOCKER_MANIFEST, err="invalid_manifest")
        ("manifest.put", digest=sha256(m), data=m, media_type="application/json", err="invalid_manifest")
        ("manifest.has", digest=sha256(m), ok=False)
        ("storage.list", dir="manifests/sha256", ok=[])
        ("stats", ok={"total_entries": 0})
        ("manifest.put", digest=sha256(m), data=m, media_type=OCI_MANIFEST, ok=OCI_MANIFEST)
    )

    fits = oci_manifest("{}", ["fits"])
    big = oci_manifest("{}", ["fits", "one-more-layer"])
    (
        S("manifests/too_large", "A manifest larger than max_manifest_bytes is refused with too_large; one of exactly the limit is accepted.", config={"max_manifest_bytes": len(fits)})
        ("manifest.put", digest=sha256(big), data=big, err="too_large")
        ("manifest.has", digest=sha256(big), ok=False)
        ("manifest.put", digest=sha256(fits), data=fits, ok=OCI_MANIFEST)
        ("stats", ok={"manifests": 1, "total_size_bytes": len(fits)})
    )

    m = oci_manifest("{}", ["real"])
    other = sha256(oci_manifest("{}", ["other"]))
    (
        S("manifests/digest_mismatch", "A manifest whose bytes do not hash to the given digest is refused; nothing is stored under either digest.")
        ("manifest.put", digest=other, data=m, err="digest_mismatch")
        ("manifest.has", digest=other, ok=False)
        ("manifest.has", digest=sha256(m), ok=False)
        ("manifest.get", digest=other, err="not_found")
        ("storage.list", dir="manifests/sha256", ok=[])
        ("storage.temps", ok=0)
        ("stats", ok={"total_entries": 0, "total_errors": 1})
    )

    s = S("manifests/not_json", "Bodies that are not JSON objects are invalid manifests, even when the digest matches.")
    for body in ["hello, world", "", "[1,2,3]", "null", "{\"schemaVersion\":2,"]:
        s("manifest.put", digest=sha256(body), data=body, err="invalid_manifest")
    s("stats", ok={"total_entries": 0})
    s("storage.list", dir="manifests/sha256", ok=[])

    cfg = descriptor("application/vnd.oci.image.config.v1+json", "{}")
    lay = descriptor("application/vnd.oci.image.layer.v1.tar", "l")
    bad_bodies = [
        compact({}),
        compact({"schemaVersion": 1, "mediaType": OCI_MANIFEST, "config": cfg, "layers": [lay]}),
        compact({"schemaVersion": "2", "mediaType": OCI_MANIFEST, "config": cfg, "layers": [lay]}),
        compact({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws", "config": cfg, "layers": [lay]}),
        compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST}),
        compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [lay]}),
        compact({"schemaVersion": 2, "config": cfg, "layers": [lay], "manifests": []}),
        compact({"schemaVersion": 2, "config": cfg}),
        compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": dict(cfg, digest="sha256:zz"), "layers": [lay]}),
        compact({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "size": 1}]}),
    ]
    s = S("manifests/invalid_manifests", "JSON that is not a schema-2 OCI/Docker manifest or index is refused with invalid_manifest and nothing is stored.")
    for body in bad_bodies:
        s("manifest.put", digest=sha256(body), data=body, err="invalid_manifest")
    s("stats", ok={"total_entries": 0, "manifests": 0})

    art = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sbom.v1+json",
                   "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256("{}"), "size": 2, "data": "e30="},
                   "layers": [], "annotations": {"org.example": "artifact"}})
    (
        S("manifests/artifact_manifest", "An OCI 1.1 artifact manifest (artifactType, empty config, no layers) is a manifest like any other.")
        ("manifest.put", digest=sha256(art), data=art, ok=OCI_MANIFEST)
        ("manifest.get", digest=sha256(art), ok={"media_type": OCI_MANIFEST, "data": art})
        ("manifest.references", digest=sha256(art), ok=blob_refs("{}"))
    )

    m = oci_manifest("{}", ["again"])
    d = sha256(m)
    (
        S("manifests/reput_idempotent", "Putting the same manifest again succeeds, keeps one entry and refreshes it.")
        ("manifest.put", digest=d, data=m, ok=OCI_MANIFEST)
        ("clock.advance", ms=1000)
        ("manifest.put", digest=d, data=m, ok=OCI_MANIFEST)
        ("manifest.put", digest=d, data=m, ok=OCI_MANIFEST)
        ("stats", ok={"total_entries": 1, "manifests": 1, "total_size_bytes": len(m)})
        ("contents", ok=[{"digest": d, "created_at": T0 + 1000, "expires_at": T0 + 1000 + DAY}])
        ("metrics", ok={"manifest_puts": 3})
        ("manifest.get", digest=d, ok={"data": m})
    )

    m = oci_manifest("{}", ["gone"])
    d = sha256(m)
    (
        S("manifests/delete_idempotent", "Deleting a manifest removes it and its bytes; deleting again (or something never stored) answers false.")
        ("manifest.put", digest=d, data=m)
        ("manifest.delete", digest=d, ok=True)
        ("manifest.delete", digest=d, ok=False)
        ("manifest.delete", digest=sha256("never stored"), ok=False)
        ("manifest.has", digest=d, ok=False)
        ("manifest.get", digest=d, err="not_found")
        ("storage.exists", path=manifest_path(d), ok=False)
        ("storage.read", path=manifest_path(d), ok=None)
        ("stats", ok={"total_entries": 0, "total_size_bytes": 0})
        ("metrics", ok={"deletes": 1})
    )

    m = oci_manifest("{}", ["l"])
    (
        S("manifests/unknown_is_not_found", "Reading a manifest that was never stored answers not_found and counts a miss.")
        ("manifest.get", digest=sha256(m), err="not_found")
        ("manifest.has", digest=sha256(m), ok=False)
        ("manifest.references", digest=sha256(m), err="not_found")
        ("metrics", ok={"misses": 1, "hits": 0, "manifest_gets": 1, "errors": 0})
    )

    m = "{\n  \"layers\": [ {\"size\": 1, \"digest\": \"" + sha256("l") + "\", \"mediaType\": \"application/vnd.oci.image.layer.v1.tar\"} ],\n  \"schemaVersion\": 2,\n  \"config\": {\"mediaType\": \"application/vnd.oci.image.config.v1+json\", \"digest\": \"" + sha256("{}") + "\", \"size\": 2},\n  \"annotations\": {\"org.opencontainers.image.title\": \"caf\u00e9 \u2615\"}\n}\n"
    d = sha256(m)
    (
        S("manifests/exact_bytes_preserved", "Manifests are never re-serialized: whitespace, key order and non-ASCII text come back byte for byte.")
        ("manifest.put", digest=d, data=m, ok=OCI_MANIFEST)
        ("manifest.get", digest=d, ok={"digest": d, "data": m})
        ("storage.read", path=manifest_path(d), ok=got(m))
    )

    m = oci_manifest("{}", ["sha512 world"])
    d = sha512(m)
    (
        S("manifests/sha512_digest", "A manifest addressed by a sha512 digest is verified with sha512 and stored under manifests/sha512/.")
        ("manifest.put", digest=d, data=m, ok=OCI_MANIFEST)
        ("manifest.get", digest=d, ok={"digest": d, "data": m})
        ("storage.exists", path=manifest_path(d), ok=True)
        ("manifest.has", digest=sha256(m), ok=False)
        ("manifest.put", digest=sha512(m + " "), data=m, err="digest_mismatch")
    )

    m = oci_manifest("{}", ["both kinds"])
    d = sha256(m)
    (
        S("manifests/kinds_are_separate", "The same bytes stored as a manifest and as a blob are two entries; removing one leaves the other.")
        ("manifest.put", digest=d, data=m)
        ("blob.put", digest=d, data=m, ok=d)
        ("stats", ok={"total_entries": 2, "manifests": 1, "blobs": 1, "total_size_bytes": 2 * len(m)})
        ("blob.delete", digest=d, ok=True)
        ("manifest.get", digest=d, ok={"data": m})
        ("blob.get", digest=d, err="not_found")
        ("entry.delete", kind="manifest", digest=d, ok=True)
        ("stats", ok={"total_entries": 0})
    )


# =====================================================================================
# blobs
# =====================================================================================


def blobs():
    data = "hello, blob"
    d = sha256(data)
    (
        S("blobs/put_get_roundtrip", "A blob put under its digest is served back verified, with its size.")
        ("blob.has", digest=d, ok=False)
        ("blob.put", digest=d, data=data, ok=d)
        ("blob.has", digest=d, ok=True)
        ("blob.get", digest=d, ok=got(data))
        ("storage.read", path=blob_path(d), ok=got(data))
        ("stats", ok={"total_entries": 1, "blobs": 1, "total_size_bytes": len(data)})
    )

    data = "".join(chr(ord("a") + i % 26) for i in range(100))
    d = sha256(data)
    (
        S("blobs/streamed_chunks", "A blob written in chunks of any size (empty ones included) and read back in small chunks is verified end to end.")
        ("blob.put", digest=d, data=data, size=100, chunks=[1, 0, 9, 45, 45], ok=d)
        ("blob.get", digest=d, chunk=7, ok=got(data))
        ("blob.get", digest=d, chunk=1, ok=got(data))
        ("blob.get", digest=d, chunk=1000, ok=got(data))
    )

    d = sha256("part one, part two")
    (
        S("blobs/invisible_until_commit", "A blob being written is invisible (not listed, not stored) until it is committed.")
        ("blob.begin", handle="w", digest=d, size=18)
        ("blob.write", handle="w", data="part one, ")
        ("blob.has", digest=d, ok=False)
        ("blob.get", digest=d, err="not_found")
        ("storage.list", dir="blobs/sha256", ok=[])
        ("storage.temps", ok=1)
        ("blob.write", handle="w", data="part two")
        ("blob.commit", handle="w", ok=d)
        ("storage.temps", ok=0)
        ("storage.list", dir="blobs/sha256", ok=[hexpart(d)])
        ("blob.get", digest=d, ok=got("part one, part two"))
    )

    one, two = "first writer's bytes", "second writer's bytes"
    (
        S("blobs/concurrent_writers_do_not_mix", "Interleaved writers (and a reader in between) each commit exactly their own bytes; two writers of the same blob both succeed.")
        ("blob.begin", handle="w1", digest=sha256(one))
        ("blob.begin", handle="w2", digest=sha256(two))
        ("blob.begin", handle="w3")
        ("blob.write", handle="w1", data="first ")
        ("blob.write", handle="w2", data="second ")
        ("blob.write", handle="w3", data="sec")
        ("blob.write", handle="w2", data="writer's bytes")
        ("storage.temps", ok=3)
        ("blob.commit", handle="w2", ok=sha256(two))
        ("blob.open", handle="r", digest=sha256(two), ok={"size": len(two)})
        ("blob.write", handle="w1", data="writer's bytes")
        ("blob.read", handle="r", max=7, ok={"data": "second "})
        ("blob.write", handle="w3", data="ond writer's bytes")
        ("blob.commit", handle="w1", ok=sha256(one))
        ("blob.read", handle="r", ok={"data": "writer's bytes"})
        ("blob.close", handle="r")
        ("blob.commit", handle="w3", ok=sha256(two))
        ("blob.get", digest=sha256(one), ok=got(one))
        ("blob.get", digest=sha256(two), ok=got(two))
        ("storage.temps", ok=0)
        ("stats", ok={"total_entries": 2, "total_size_bytes": len(one) + len(two)})
    )

    data = "0123456789"
    (
        S("blobs/size_mismatch_over", "Writing more bytes than announced fails with size_mismatch; nothing is stored, no temp is left, and the writer is finished.")
        ("blob.put", digest=sha256(data), data=data, size=5, err="size_mismatch")
        ("blob.has", digest=sha256(data), ok=False)
        ("storage.temps", ok=0)
        ("blob.begin", handle="w", size=4)
        ("blob.write", handle="w", data="abc")
        ("blob.write", handle="w", data="de", err="size_mismatch")
        ("storage.temps", ok=0)
        ("blob.commit", handle="w", err="invalid_argument")
        ("storage.list", dir="blobs/sha256", ok=[])
        ("stats", ok={"total_entries": 0})
    )

    (
        S("blobs/size_mismatch_under", "Committing fewer bytes than announced fails with size_mismatch; nothing is stored.")
        ("blob.put", digest=sha256(data), data=data, size=20, err="size_mismatch")
        ("blob.put", data=data, size=11, chunks=[3, 7], err="size_mismatch")
        ("blob.has", digest=sha256(data), ok=False)
        ("storage.list", dir="blobs/sha256", ok=[])
        ("storage.temps", ok=0)
        ("blob.put", digest=sha256(data), data=data, size=10, ok=sha256(data))
    )

    claimed = sha256("what the registry promised")
    (
        S("blobs/digest_mismatch_leaves_nothing", "Bytes that do not hash to the expected digest are refused: nothing under either digest, no temp, no entry.")
        ("blob.put", digest=claimed, data="what arrived instead", chunks=[4, 16], err="digest_mismatch")
        ("blob.has", digest=claimed, ok=False)
        ("blob.has", digest=sha256("what arrived instead"), ok=False)
        ("blob.get", digest=claimed, err="not_found")
        ("storage.list", dir="blobs/sha256", ok=[])
        ("storage.temps", ok=0)
        ("stats", ok={"total_entries": 0, "total_errors": 1})
        ("metrics", ok={"blob_puts": 0, "bytes_downloaded": 0})
    )

    data = "no digest announced"
    (
        S("blobs/unknown_digest_is_computed", "A blob put without a digest is stored under its SHA-256, which the put returns.")
        ("blob.put", data=data, ok=sha256(data))
        ("blob.put", data=data, chunks=[2, 17], ok=sha256(data))
        ("blob.get", digest=sha256(data), ok=got(data))
        ("storage.exists", path=blob_path(sha256(data)), ok=True)
        ("stats", ok={"blobs": 1})
    )

    data = "a blob addressed by sha512"
    d = sha512(data)
    (
        S("blobs/sha512_digest", "sha512 digests verify with sha512 and live under blobs/sha512/; a wrong sha512 is a digest mismatch.")
        ("blob.put", digest=d, data=data, chunks=[10, 16], ok=d)
        ("blob.get", digest=d, ok=got(data))
        ("storage.exists", path=blob_path(d), ok=True)
        ("storage.list", dir="blobs/sha256", ok=[])
        ("blob.has", digest=sha256(data), ok=False)
        ("blob.put", digest=sha512("other"), data=data, err="digest_mismatch")
        ("stats", ok={"blobs": 1})
    )

    data = "a blob addressed by sha384"
    d = sha384(data)
    (
        S("blobs/sha384_digest", "sha384 digests are accepted too.")
        ("blob.put", digest=d, data=data, ok=d)
        ("blob.get", digest=d, ok=got(data))
        ("storage.exists", path=blob_path(d), ok=True)
    )

    data = "delete me"
    d = sha256(data)
    (
        S("blobs/delete_idempotent", "Deleting a blob removes its bytes; deleting again answers false.")
        ("blob.put", digest=d, data=data)
        ("blob.delete", digest=d, ok=True)
        ("blob.delete", digest=d, ok=False)
        ("blob.get", digest=d, err="not_found")
        ("blob.has", digest=d, ok=False)
        ("storage.exists", path=blob_path(d), ok=False)
        ("size", ok=0)
    )

    data = "same bytes twice"
    d = sha256(data)
    (
        S("blobs/reput_same_blob", "Re-putting a stored blob is the steady state: it succeeds, keeps one entry and one file.")
        ("blob.put", digest=d, data=data, ok=d)
        ("blob.put", digest=d, data=data, ok=d)
        ("blob.put", data=data, ok=d)
        ("stats", ok={"total_entries": 1, "total_size_bytes": len(data)})
        ("storage.list", dir="blobs/sha256", ok=[hexpart(d)])
        ("metrics", ok={"blob_puts": 3})
        ("blob.get", digest=d, ok=got(data))
    )

    data = "abandoned download"
    (
        S("blobs/abort_leaves_nothing", "An aborted write leaves no entry, no file and no temp.")
        ("blob.put", digest=sha256(data), data=data, chunks=[8, 10], abort=True, ok=None)
        ("blob.has", digest=sha256(data), ok=False)
        ("storage.temps", ok=0)
        ("blob.begin", handle="w")
        ("blob.write", handle="w", data="partial")
        ("blob.abort", handle="w")
        ("storage.temps", ok=0)
        ("storage.list", dir="blobs/sha256", ok=[])
    )

    e = sha256("")
    (
        S("blobs/empty_blob", "The empty blob is a valid blob.")
        ("blob.put", digest=e, data="", ok=e)
        ("blob.get", digest=e, ok={"size": 0, "data": "", "data_hex": ""})
        ("blob.has", digest=e, ok=True)
    )

    raw = bytes(range(256))
    d = sha256(raw)
    (
        S("blobs/binary_data", "Arbitrary bytes (not UTF-8) round-trip; results carry data_hex and a null data.")
        ("blob.put", digest=d, data_hex=raw.hex(), chunks=[100, 156], ok=d)
        ("blob.get", digest=d, chunk=64, ok={"size": 256, "data": None, "data_hex": raw.hex()})
    )

    d = sha256("never stored")
    (
        S("blobs/unknown_is_not_found", "Reading a blob that was never stored answers not_found and counts a miss.")
        ("blob.get", digest=d, err="not_found")
        ("blob.open", handle="r", digest=d, err="not_found")
        ("metrics", ok={"misses": 2, "hits": 0, "blob_gets": 2, "errors": 0})
    )

    (
        S("blobs/larger_than_cap_is_full", "A blob larger than the whole cap is full before anything is written, announced or not.", config=small(100))
        ("blob.begin", handle="w", size=101, err="full")
        ("blob.put", data=fill("x", 150), err="full")
        ("blob.put", data=fill("x", 150), chunks=[100, 50], err="full")
        ("storage.temps", ok=0)
        ("stats", ok={"total_entries": 0})
        ("blob.put", data=fill("x", 100), ok=sha256(fill("x", 100)))
    )

    data = "abcdefghij" * 3
    d = sha256(data)
    (
        S("blobs/partial_reads", "A reader serves a blob in pieces, from where it left off, and reports its size.")
        ("blob.put", digest=d, data=data)
        ("blob.open", handle="r", digest=d, ok={"size": 30})
        ("blob.read", handle="r", max=4, ok={"len": 4, "data": "abcd"})
        ("blob.read", handle="r", max=10, ok={"len": 10, "data": "efghijabcd"})
        ("blob.read", handle="r", ok={"len": 16, "data": "efghijabcdefghij"})
        ("blob.read", handle="r", ok={"len": 0, "data": ""})
        ("blob.close", handle="r")
        ("metrics", ok={"bytes_served": 30, "hits": 1, "blob_gets": 1})
    )


# =====================================================================================
# ttl
# =====================================================================================


def ttl():
    data = "short-lived"
    d = sha256(data)
    (
        S("ttl/expired_is_not_not_found", "Once its TTL passes, an entry answers expired (not not_found) until it is removed.", config={"default_ttl_ms": 1000})
        ("blob.put", digest=d, data=data)
        ("clock.advance", ms=999)
        ("blob.get", digest=d, ok=got(data))
        ("clock.advance", ms=1)
        ("blob.get", digest=d, err="expired")
        ("blob.has", digest=d, ok=False)
        ("stats", ok={"total_entries": 1, "expired_entries": 1})
        ("contents", ok=[{"digest": d, "expired": True, "expires_at": T0 + 1000}])
        ("clear_expired", ok=1)
        ("blob.get", digest=d, err="not_found")
    )

    m = oci_manifest("{}", ["expiring"])
    d = sha256(m)
    (
        S("ttl/expired_manifest", "Manifests expire the same way and answer expired.", config={"default_ttl_ms": 5000})
        ("manifest.put", digest=d, data=m)
        ("clock.advance", ms=5000)
        ("manifest.get", digest=d, err="expired")
        ("manifest.has", digest=d, ok=False)
        ("metrics", ok={"misses": 1, "errors": 0})
    )

    m = oci_manifest("{}", ["per-kind"])
    b = "per-kind blob"
    (
        S("ttl/per_kind_overrides", "manifest_ttl_ms and blob_ttl_ms override default_ttl_ms for their kind.", config={"default_ttl_ms": 10_000, "manifest_ttl_ms": 1000, "blob_ttl_ms": 5000})
        ("manifest.put", digest=sha256(m), data=m)
        ("blob.put", digest=sha256(b), data=b)
        ("contents", ok=[{"kind": "manifest", "expires_at": T0 + 1000}, {"kind": "blob", "expires_at": T0 + 5000}])
        ("clock.advance", ms=1000)
        ("manifest.get", digest=sha256(m), err="expired")
        ("blob.get", digest=sha256(b), ok=got(b))
        ("clock.advance", ms=4000)
        ("blob.get", digest=sha256(b), err="expired")
    )

    data = "forever"
    (
        S("ttl/zero_means_never", "default_ttl_ms 0 means entries never expire.", config={"default_ttl_ms": 0})
        ("blob.put", digest=sha256(data), data=data)
        ("clock.advance", ms=10 * 365 * DAY)
        ("blob.get", digest=sha256(data), ok=got(data))
        ("contents", ok=[{"expires_at": None, "expired": False}])
        ("stats", ok={"expired_entries": 0})
    )

    m = oci_manifest("{}", ["kind zero"])
    b = "blob that never expires"
    (
        S("ttl/kind_zero_overrides_default", "A per-kind TTL of 0 means never, even when the default expires.", config={"default_ttl_ms": 1000, "blob_ttl_ms": 0})
        ("manifest.put", digest=sha256(m), data=m)
        ("blob.put", digest=sha256(b), data=b)
        ("clock.advance", ms=DAY)
        ("manifest.get", digest=sha256(m), err="expired")
        ("blob.get", digest=sha256(b), ok=got(b))
    )

    data = "kept alive by use"
    d = sha256(data)
    (
        S("ttl/sliding_extends_on_hit", "With sliding_ttl, each hit extends the expiry to a full TTL from now; has() is not a hit.", config={"default_ttl_ms": 1000, "sliding_ttl": True})
        ("blob.put", digest=d, data=data)
        ("clock.advance", ms=800)
        ("blob.get", digest=d, ok=got(data))
        ("contents", ok=[{"expires_at": T0 + 1800, "accessed_at": T0 + 800, "access_count": 1}])
        ("clock.advance", ms=800)
        ("blob.get", digest=d, ok=got(data))
        ("clock.advance", ms=900)
        ("blob.has", digest=d, ok=True)
        ("clock.advance", ms=100)
        ("blob.get", digest=d, err="expired")
    )

    (
        S("ttl/fixed_does_not_extend", "Without sliding_ttl a hit refreshes the access time but not the expiry.", config={"default_ttl_ms": 1000})
        ("blob.put", digest=d, data=data)
        ("clock.advance", ms=800)
        ("blob.get", digest=d, ok=got(data))
        ("contents", ok=[{"expires_at": T0 + 1000, "accessed_at": T0 + 800}])
        ("clock.advance", ms=200)
        ("blob.get", digest=d, err="expired")
    )

    a, b, c = fill("a", 100), fill("b", 200), fill("c", 300)
    (
        S("ttl/clear_expired_frees_bytes", "clear_expired removes exactly the expired entries, counts them, and deletes their files.", config={"default_ttl_ms": 1000})
        ("blob.put", digest=sha256(a), data=a)
        ("blob.put", digest=sha256(b), data=b)
        ("clock.advance", ms=500)
        ("blob.put", digest=sha256(c), data=c)
        ("clock.advance", ms=500)
        ("stats", ok={"total_entries": 3, "expired_entries": 2, "total_size_bytes": 600})
        ("clear_expired", ok=2)
        ("stats", ok={"total_entries": 1, "expired_entries": 0, "total_size_bytes": 300})
        ("storage.list", dir="blobs/sha256", ok=[hexpart(sha256(c))])
        ("storage.bytes", dir="blobs", ok=300)
        ("blob.get", digest=sha256(a), err="not_found")
        ("metrics", ok={"evictions_expired": 2, "evictions_capacity": 0, "bytes_evicted": 300})
        ("clear_expired", ok=0)
    )

    data = "renewed"
    d = sha256(data)
    (
        S("ttl/reput_renews_expired", "Putting an expired entry again makes it servable with a new TTL.", config={"default_ttl_ms": 1000})
        ("blob.put", digest=d, data=data)
        ("clock.advance", ms=1500)
        ("blob.get", digest=d, err="expired")
        ("blob.put", digest=d, data=data, ok=d)
        ("blob.get", digest=d, ok=got(data))
        ("contents", ok=[{"created_at": T0 + 1500, "expires_at": T0 + 2500, "expired": False}])
    )

    data = "expired across restarts"
    d = sha256(data)
    (
        S("ttl/expiry_survives_reopen", "Expiry times are persisted: an entry expires on time after a reopen, and an expired one still answers expired.", config={"default_ttl_ms": 1000})
        ("blob.put", digest=d, data=data)
        ("blob.put", digest=sha256("second"), data="second")
        ("clock.advance", ms=500)
        ("cache.reopen")
        ("blob.get", digest=d, ok=got(data))
        ("clock.advance", ms=500)
        ("blob.get", digest=d, err="expired")
        ("cache.reopen")
        ("blob.get", digest=d, err="expired")
        ("blob.get", digest=sha256("second"), err="expired")
    )

    data = "pinned but stale"
    d = sha256(data)
    (
        S("ttl/pinned_expired_kept", "An expired entry that is pinned still answers expired but is not removed by clear_expired until unpinned.", config={"default_ttl_ms": 1000})
        ("blob.put", digest=d, data=data)
        ("entry.pin", kind="blob", digest=d, ok=1)
        ("clock.advance", ms=2000)
        ("blob.get", digest=d, err="expired")
        ("clear_expired", ok=0)
        ("storage.exists", path=blob_path(d), ok=True)
        ("entry.unpin", kind="blob", digest=d, ok=0)
        ("clear_expired", ok=1)
        ("storage.exists", path=blob_path(d), ok=False)
    )

    cfg, layer = "{\"c\":1}", fill("L", 50)
    m = oci_manifest(cfg, [layer])
    (
        S("ttl/clear_expired_takes_manifest_and_its_blobs", "When a manifest and the blobs it references have all expired, one clear_expired removes all of them (referenced blobs go once their manifest is gone).", config={"default_ttl_ms": 1000})
        ("blob.put", digest=sha256(cfg), data=cfg)
        ("blob.put", digest=sha256(layer), data=layer)
        ("manifest.put", digest=sha256(m), data=m)
        ("clock.advance", ms=1000)
        ("stats", ok={"expired_entries": 3})
        ("clear_expired", ok=3)
        ("stats", ok={"total_entries": 0, "expired_entries": 0, "total_size_bytes": 0})
        ("storage.list", dir="blobs/sha256", ok=[])
        ("storage.list", dir="manifests/sha256", ok=[])
    )

    (
        S("ttl/referenced_blob_kept_while_manifest_fresh", "An expired blob referenced by a fresh cached manifest answers expired but is not removed while the manifest stays.", config={"default_ttl_ms": 1000, "manifest_ttl_ms": 0})
        ("blob.put", digest=sha256(layer), data=layer)
        ("manifest.put", digest=sha256(m), data=m)
        ("clock.advance", ms=1000)
        ("blob.get", digest=sha256(layer), err="expired")
        ("clear_expired", ok=0)
        ("manifest.delete", digest=sha256(m), ok=True)
        ("clear_expired", ok=1)
        ("blob.get", digest=sha256(layer), err="not_found")
    )

    a = fill("q", 40)
    (
        S("ttl/cleanup_report", "cleanup removes expired entries, reports the bytes freed and compacts the index.", config={"default_ttl_ms": 1000})
        ("blob.put", digest=sha256(a), data=a)
        ("blob.put", digest=sha256("fresh"), data="fresh")
        ("clock.advance", ms=600)
        ("blob.put", digest=sha256("fresher"), data="fresher")
        ("clock.advance", ms=400)
        ("cleanup", ok={"expired_removed": 2, "evicted": 0, "bytes_freed": 45, "compacted": True})
        ("stats", ok={"total_entries": 1, "last_compaction": T0 + 1000})
        ("cache.reopen")
        ("blob.get", digest=sha256("fresher"), ok=got("fresher"))
        ("blob.get", digest=sha256(a), err="not_found")
    )


# =====================================================================================
# tags
# =====================================================================================


def tags():
    d1, d2, d3, d4, d5 = (sha256(f"manifest {i}") for i in range(1, 6))

    (
        S("tags/normalization", "Equivalent spellings of a reference share one mapping, keyed by the canonical reference.")
        ("tag.put", reference="nginx", digest=d1, ok={"previous": None, "moved": False})
        ("tag.resolve", reference="docker.io/library/nginx:latest", ok={"state": "fresh", "digest": d1})
        ("tag.resolve", reference="library/nginx", ok={"state": "fresh", "digest": d1})
        ("tag.resolve", reference="nginx:latest", ok={"state": "fresh", "digest": d1})
        ("tag.resolve", reference="index.docker.io/library/nginx", ok={"state": "fresh", "digest": d1})
        ("tag.put", reference="docker.io/library/nginx:latest", digest=d1, ok={"previous": d1, "moved": False})
        ("tag.list", ok=[{"reference": "docker.io/library/nginx:latest", "digest": d1}])
        ("tag.get", reference="nginx", ok={"reference": "docker.io/library/nginx:latest", "digest": d1})
        ("stats", ok={"tags": 1})
    )

    refs = [
        ("a/b:c", "docker.io/a/b:c"),
        ("a_b:c", "docker.io/library/a_b:c"),
        ("a/b/c", "docker.io/a/b/c:latest"),
        ("a/b_c", "docker.io/a/b_c:latest"),
        ("a/b:c_d", "docker.io/a/b:c_d"),
        ("localhost:5000/a:b", "localhost:5000/a:b"),
        ("localhost/5000/a:b", "localhost/5000/a:b"),
        ("ghcr.io/a/b:c", "ghcr.io/a/b:c"),
    ]
    s = S("tags/distinct_references_do_not_collide", "References that differ only in where '/', ':' or '_' fall are different mappings (the seed stored them in one file).")
    for i, (r, _) in enumerate(refs):
        s("tag.put", reference=r, digest=sha256(f"digest of {r}"))
    for r, _ in refs:
        s("tag.resolve", reference=r, ok={"state": "fresh", "digest": sha256(f"digest of {r}")})
    s("tag.list", ok=[{"reference": canon, "digest": sha256(f"digest of {r}")} for r, canon in sorted(refs, key=lambda p: p[1])])
    s("stats", ok={"tags": len(refs)})

    (
        S("tags/upper_case_first_component_is_a_registry", "As in Docker's grammar, a first component with an upper-case letter is a registry: X/y:1 is registry X, repository y, another image than docker.io/x/y:1 (which x/y:1 means). They never share a mapping, and each printed reference leads back to its own, after a reopen too.")
        ("tag.put", reference="X/y:1", digest=d1, ok={"previous": None, "moved": False})
        ("tag.put", reference="docker.io/x/y:1", digest=d2, ok={"previous": None, "moved": False})
        ("tag.resolve", reference="X/y:1", ok={"state": "fresh", "digest": d1})
        ("tag.resolve", reference="x/y:1", ok={"state": "fresh", "digest": d2})
        ("tag.get", reference="X/y:1", ok={"reference": "X/y:1", "digest": d1})
        ("tag.get", reference="x/y:1", ok={"reference": "docker.io/x/y:1", "digest": d2})
        ("tag.list", ok=[{"reference": "X/y:1", "digest": d1}, {"reference": "docker.io/x/y:1", "digest": d2}])
        ("tag.put", reference="x/y:1", digest=d3, ok={"previous": d2, "moved": True})
        ("tag.resolve", reference="X/y:1", ok={"state": "fresh", "digest": d1})
        ("tag.history", reference="X/y:1", ok=[{"digest": d1}])
        ("cache.reopen")
        ("tag.resolve", reference="X/y:1", ok={"state": "fresh", "digest": d1})
        ("tag.resolve", reference="docker.io/x/y:1", ok={"state": "fresh", "digest": d3})
        ("tag.list", ok=[{"reference": "X/y:1", "digest": d1}, {"reference": "docker.io/x/y:1", "digest": d3}])
    )

    printed = [
        ("X/y:1", "X/y:1"),
        ("x/y:1", "docker.io/x/y:1"),
        ("MyRegistry/team/app", "MyRegistry/team/app:latest"),
        ("myregistry/team/app", "docker.io/myregistry/team/app:latest"),
        ("localhost/y:1", "localhost/y:1"),
        ("LocalHost/y:2", "localhost/y:2"),
        ("host:5000/y:1", "host:5000/y:1"),
        ("HOST:5000/y:2", "host:5000/y:2"),
        ("Registry.Example.COM/a:1", "registry.example.com/a:1"),
        ("[::1]/y:1", "[::1]/y:1"),
        ("Index.Docker.IO/y:1", "docker.io/library/y:1"),
        ("x/" + "a" * 253 + ":1", "docker.io/x/" + "a" * 253 + ":1"),
    ]
    s = S("tags/printed_references_lead_back", "The reference a mapping prints (its canonical form) resolves back to that same mapping: for registries by case, localhost, ports, IPv6, Docker Hub's aliases and a repository at the 255-character limit; from the journal and from a snapshot.")
    for r, _ in printed:
        s("tag.put", reference=r, digest=sha256(f"digest of {r}"), ok={"previous": None, "moved": False})

    def lead_back(s):
        for r, canon in printed:
            s("tag.resolve", reference=canon, ok={"state": "fresh", "digest": sha256(f"digest of {r}")})
            s("tag.get", reference=canon, ok={"reference": canon, "digest": sha256(f"digest of {r}")})
        s("tag.list", ok=[{"reference": canon, "digest": sha256(f"digest of {r}")} for r, canon in sorted(printed, key=lambda p: p[1])])

    lead_back(s)
    s("cache.reopen")
    lead_back(s)
    s("cleanup", ok={"compacted": True})
    s("cache.reopen")
    lead_back(s)

    (
        S("tags/registries_ports_nested_paths", "Registries with ports, nested repositories and registry-name case normalize as the OCI grammar says.")
        ("tag.put", reference="localhost:5000/team/app/api:v1.2", digest=d1)
        ("tag.get", reference="localhost:5000/team/app/api:v1.2", ok={"reference": "localhost:5000/team/app/api:v1.2"})
        ("tag.put", reference="Registry.Example.COM:443/a/b", digest=d2)
        ("tag.resolve", reference="registry.example.com:443/a/b:latest", ok={"state": "fresh", "digest": d2})
        ("tag.put", reference="[::1]:5000/app:x", digest=d3)
        ("tag.put", reference="127.0.0.1:5000/a__b/c-d--e.f:T_1.2-3", digest=d4)
        ("tag.list", ok=[
            {"reference": "127.0.0.1:5000/a__b/c-d--e.f:T_1.2-3"},
            {"reference": "[::1]:5000/app:x"},
            {"reference": "localhost:5000/team/app/api:v1.2"},
            {"reference": "registry.example.com:443/a/b:latest"},
        ])
    )

    (
        S("tags/history_oldest_first_current_last", "A tag's history lists the digests it pointed to with their change times, oldest first, the current one last.")
        ("tag.put", reference="app:1", digest=d1, ok={"previous": None, "moved": False})
        ("clock.advance", ms=1000)
        ("tag.put", reference="app:1", digest=d2, ok={"previous": d1, "moved": True})
        ("clock.advance", ms=1000)
        ("tag.put", reference="app:1", digest=d3, ok={"previous": d2, "moved": True})
        ("tag.history", reference="app:1", ok=[
            {"digest": d1, "changed_at": T0},
            {"digest": d2, "changed_at": T0 + 1000},
            {"digest": d3, "changed_at": T0 + 2000},
        ])
        ("tag.get", reference="app:1", ok={"digest": d3, "created_at": T0, "updated_at": T0 + 2000, "validated_at": T0 + 2000, "history": [{"digest": d1}, {"digest": d2}, {"digest": d3}]})
    )

    s = S("tags/history_bounded", "History keeps at most max_tag_history digests, dropping the oldest.", config={"max_tag_history": 3})
    for i, d in enumerate([d1, d2, d3, d4, d5]):
        s("tag.put", reference="app:edge", digest=d)
        s("clock.advance", ms=10)
    s("tag.history", reference="app:edge", ok=[
        {"digest": d3, "changed_at": T0 + 20},
        {"digest": d4, "changed_at": T0 + 30},
        {"digest": d5, "changed_at": T0 + 40},
    ])

    s = S("tags/history_default_cap_is_ten", "By default a tag remembers its last ten digests.")
    ds = [sha256(f"release {i}") for i in range(12)]
    for d in ds:
        s("tag.put", reference="app:rolling", digest=d)
    s("tag.history", reference="app:rolling", ok=[{"digest": d} for d in ds[2:]])

    s = S("tags/history_bound_applies_after_reopen", "Reopening with a smaller max_tag_history bounds histories restored from a snapshot and from the journal alike.")
    for d in [d1, d2, d3, d4, d5]:
        s("tag.put", reference="app:snapshot", digest=d)
    s("cleanup")
    for d in [d5, d4, d3, d2, d1]:
        s("tag.put", reference="app:journal", digest=d)
    s("tag.history", reference="app:snapshot", ok=[{"digest": d} for d in [d1, d2, d3, d4, d5]])
    s("cache.reopen", config={"max_tag_history": 2})
    s("tag.history", reference="app:snapshot", ok=[{"digest": d4}, {"digest": d5}])
    s("tag.history", reference="app:journal", ok=[{"digest": d2}, {"digest": d1}])
    s("cleanup")
    s("cache.reopen", config={"max_tag_history": 0})
    s("tag.history", reference="app:snapshot", ok=[])
    s("tag.history", reference="app:journal", ok=[])
    s("tag.resolve", reference="app:snapshot", ok={"state": "fresh", "digest": d5})

    (
        S("tags/revalidation_adds_no_history", "Re-putting the same digest confirms the mapping (validated_at) without a history entry or a change time.")
        ("tag.put", reference="app:stable", digest=d1)
        ("clock.advance", ms=5000)
        ("tag.put", reference="app:stable", digest=d1, ok={"previous": d1, "moved": False})
        ("tag.get", reference="app:stable", ok={"digest": d1, "created_at": T0, "updated_at": T0, "validated_at": T0 + 5000, "fresh_until": T0 + 5000 + 300_000, "history": [{"digest": d1, "changed_at": T0}]})
    )

    (
        S("tags/history_disabled", "max_tag_history 0 keeps no history; the current digest still works.", config={"max_tag_history": 0})
        ("tag.put", reference="app:1", digest=d1)
        ("tag.put", reference="app:1", digest=d2, ok={"previous": d1, "moved": True})
        ("tag.history", reference="app:1", ok=[])
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": d2})
        ("tag.get", reference="app:1", ok={"history": []})
    )

    (
        S("tags/history_records_returns", "Moving back to an earlier digest is a move and is recorded again.")
        ("tag.put", reference="app:1", digest=d1)
        ("clock.advance", ms=1)
        ("tag.put", reference="app:1", digest=d2)
        ("clock.advance", ms=1)
        ("tag.put", reference="app:1", digest=d1, ok={"previous": d2, "moved": True})
        ("tag.history", reference="app:1", ok=[{"digest": d1, "changed_at": T0}, {"digest": d2, "changed_at": T0 + 1}, {"digest": d1, "changed_at": T0 + 2}])
    )

    (
        S("tags/freshness_then_stale", "A mapping is fresh for tag_ttl_ms, then stale (kept, for revalidation); get_tag answers expired when stale; a re-put makes it fresh.", config={"tag_ttl_ms": 60_000})
        ("tag.put", reference="app:1", digest=d1)
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": d1})
        ("clock.advance", ms=59_999)
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": d1})
        ("tag.has", reference="app:1", ok=True)
        ("clock.advance", ms=1)
        ("tag.resolve", reference="app:1", ok={"state": "stale", "digest": d1})
        ("tag.get", reference="app:1", err="expired")
        ("tag.has", reference="app:1", ok=False)
        ("tag.put", reference="app:1", digest=d1, ok={"previous": d1, "moved": False})
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": d1})
        ("tag.get", reference="app:1", ok={"fresh_until": T0 + 120_000})
    )

    (
        S("tags/tag_ttl_zero_always_fresh", "tag_ttl_ms 0 means a mapping never goes stale.", config={"tag_ttl_ms": 0})
        ("tag.put", reference="app:1", digest=d1)
        ("clock.advance", ms=365 * DAY)
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": d1})
        ("tag.get", reference="app:1", ok={"fresh_until": None})
    )

    (
        S("tags/unknown_tag", "An unknown tag resolves as unknown (fetch it); the other tag operations answer not_found or false.")
        ("tag.resolve", reference="app:1", ok={"state": "unknown"})
        ("tag.get", reference="app:1", err="not_found")
        ("tag.has", reference="app:1", ok=False)
        ("tag.history", reference="app:1", err="not_found")
        ("tag.detect_movement", reference="app:1", digest=d1, err="not_found")
        ("tag.resolve_failed", reference="app:1", err="not_found")
        ("tag.invalidate", reference="app:1", ok=False)
        ("tag.delete", reference="app:1", ok=False)
        ("tag.list", ok=[])
    )

    (
        S("tags/invalidation_until_reput", "An invalidated mapping resolves as unknown and answers invalidated until it is put again.")
        ("tag.put", reference="app:1", digest=d1)
        ("tag.invalidate", reference="app:1", ok=True)
        ("tag.resolve", reference="app:1", ok={"state": "unknown"})
        ("tag.get", reference="app:1", err="invalidated")
        ("tag.has", reference="app:1", ok=False)
        ("tag.resolve_failed", reference="app:1", err="invalidated")
        ("tag.list", ok=[{"reference": "docker.io/library/app:1", "invalidated": True}])
        ("tag.invalidate", reference="app:1", ok=True)
        ("cache.reopen")
        ("tag.get", reference="app:1", err="invalidated")
        ("tag.put", reference="app:1", digest=d1, ok={"previous": d1, "moved": False})
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": d1})
        ("tag.get", reference="app:1", ok={"invalidated": False})
    )

    (
        S("tags/movement_detection", "detect_movement compares the host's remote digest with the cached one and changes nothing; the put that follows records the move.")
        ("tag.put", reference="app:1", digest=d1)
        ("tag.detect_movement", reference="app:1", digest=d1, ok=False)
        ("tag.detect_movement", reference="app:1", digest=d2, ok=True)
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": d1})
        ("tag.history", reference="app:1", ok=[{"digest": d1}])
        ("tag.put", reference="app:1", digest=d2, ok={"previous": d1, "moved": True})
        ("tag.detect_movement", reference="app:1", digest=d2, ok=False)
        ("tag.history", reference="app:1", ok=[{"digest": d1}, {"digest": d2}])
    )

    (
        S("tags/references_with_a_digest_name_no_mapping", "A reference that pins a digest names content, not a mapping: every mapping operation refuses it with invalid_reference (has answers false), even a put to the same digest, and changes nothing. Resolving it answers its digest.")
        ("tag.put", reference="app:1", digest=d1)
        ("tag.put", reference="app:1@" + d1, digest=d2, err="invalid_reference")
        ("tag.put", reference="app:1@" + d1, digest=d1, err="invalid_reference")
        ("tag.put", reference="app:2@" + d2, digest=d2, err="invalid_reference")
        ("tag.get", reference="app:1@" + d2, err="invalid_reference")
        ("tag.has", reference="app:1@" + d1, ok=False)
        ("tag.history", reference="app:1@" + d1, err="invalid_reference")
        ("tag.detect_movement", reference="app:1@" + d1, digest=d2, err="invalid_reference")
        ("tag.resolve_failed", reference="app:1@" + d1, err="invalid_reference")
        ("tag.invalidate", reference="app:1@" + d1, err="invalid_reference")
        ("tag.delete", reference="app:1@" + d1, err="invalid_reference")
        ("tag.resolve", reference="app:1@" + d2, ok={"state": "fresh", "digest": d2})
        ("tag.resolve", reference="app:2", ok={"state": "unknown"})
        ("tag.list", ok=[{"reference": "docker.io/library/app:1", "digest": d1, "invalidated": False, "history": [{"digest": d1}]}])
        ("cache.reopen")
        ("tag.list", ok=[{"reference": "docker.io/library/app:1", "digest": d1, "invalidated": False, "history": [{"digest": d1}]}])
    )

    (
        S("tags/stale_if_error_on", "With stale_if_error (the default) a failed revalidation may use the stale digest.", config={"tag_ttl_ms": 1000})
        ("tag.put", reference="app:1", digest=d1)
        ("tag.resolve_failed", reference="app:1", ok=d1)
        ("clock.advance", ms=5000)
        ("tag.resolve", reference="app:1", ok={"state": "stale", "digest": d1})
        ("tag.resolve_failed", reference="app:1", ok=d1)
        ("tag.resolve", reference="app:1", ok={"state": "stale", "digest": d1})
    )

    (
        S("tags/stale_if_error_off", "Without stale_if_error a failed revalidation of a stale mapping answers expired; a fresh one is still served.", config={"tag_ttl_ms": 1000, "stale_if_error": False})
        ("tag.put", reference="app:1", digest=d1)
        ("tag.resolve_failed", reference="app:1", ok=d1)
        ("clock.advance", ms=1000)
        ("tag.resolve_failed", reference="app:1", err="expired")
    )

    (
        S("tags/digest_references_resolve_fresh", "A reference pinned by digest resolves fresh to that digest without any mapping; mappings need a tag.")
        ("tag.resolve", reference=f"nginx@{d1}", ok={"state": "fresh", "digest": d1})
        ("tag.put", reference="nginx:1.25", digest=d2)
        ("tag.resolve", reference=f"nginx:1.25@{d3}", ok={"state": "fresh", "digest": d3})
        ("tag.put", reference=f"nginx@{d1}", digest=d1, err="invalid_reference")
        ("tag.get", reference=f"nginx@{d1}", err="invalid_reference")
        ("tag.list", ok=[{"reference": "docker.io/library/nginx:1.25", "digest": d2}])
        ("metrics", ok={"tag_resolutions": 2, "hits": 2, "misses": 0})
    )

    (
        S("tags/batch_resolve", "Resolving many references gives one result each, in order; a bad reference fails alone.", config={"tag_ttl_ms": 1000})
        ("tag.put", reference="old:1", digest=d1)
        ("clock.advance", ms=2000)
        ("tag.put", reference="new:1", digest=d2)
        ("tag.resolve_many", references=["new:1", "old:1", "unknown:1", "Bad:Ref", f"pinned@{d3}", "docker.io/library/new:1"], ok=[
            {"ok": {"state": "fresh", "digest": d2}},
            {"ok": {"state": "stale", "digest": d1}},
            {"ok": {"state": "unknown"}},
            {"error": "invalid_reference"},
            {"ok": {"state": "fresh", "digest": d3}},
            {"ok": {"state": "fresh", "digest": d2}},
        ])
        ("tag.resolve_many", references=[], ok=[])
    )

    (
        S("tags/delete", "Deleting a tag removes its mapping and history; deleting again answers false.")
        ("tag.put", reference="app:1", digest=d1)
        ("tag.put", reference="app:1", digest=d2)
        ("tag.put", reference="app:2", digest=d2)
        ("tag.delete", reference="app:1", ok=True)
        ("tag.delete", reference="app:1", ok=False)
        ("tag.resolve", reference="app:1", ok={"state": "unknown"})
        ("tag.history", reference="app:1", err="not_found")
        ("stats", ok={"tags": 1})
        ("cache.reopen")
        ("tag.resolve", reference="app:1", ok={"state": "unknown"})
        ("tag.resolve", reference="app:2", ok={"state": "fresh", "digest": d2})
        ("tag.put", reference="app:1", digest=d3, ok={"previous": None, "moved": False})
        ("tag.history", reference="app:1", ok=[{"digest": d3}])
    )

    (
        S("tags/persist_across_reopen", "Mappings, history with change times, freshness windows and invalidations survive a reopen.", config={"tag_ttl_ms": 10_000})
        ("tag.put", reference="app:1", digest=d1)
        ("clock.advance", ms=100)
        ("tag.put", reference="app:1", digest=d2)
        ("clock.advance", ms=100)
        ("tag.put", reference="app:1", digest=d3)
        ("tag.put", reference="app:gone", digest=d1)
        ("tag.invalidate", reference="app:gone")
        ("cache.reopen")
        ("tag.history", reference="app:1", ok=[{"digest": d1, "changed_at": T0}, {"digest": d2, "changed_at": T0 + 100}, {"digest": d3, "changed_at": T0 + 200}])
        ("tag.get", reference="app:1", ok={"digest": d3, "created_at": T0, "updated_at": T0 + 200, "fresh_until": T0 + 10_200})
        ("tag.get", reference="app:gone", err="invalidated")
        ("clock.advance", ms=10_000)
        ("tag.resolve", reference="app:1", ok={"state": "stale", "digest": d3})
        ("cleanup")
        ("cache.reopen")
        ("tag.history", reference="app:1", ok=[{"digest": d1}, {"digest": d2}, {"digest": d3}])
        ("tag.resolve", reference="app:1", ok={"state": "stale", "digest": d3})
        ("tag.get", reference="app:gone", err="invalidated")
    )

    s = S("tags/invalid_references", "Malformed references are refused with invalid_reference by every tag operation, and nothing is stored.")
    bad = ["", "Nginx", "nginx:", "nginx:-x", "a//b", "../etc/passwd", "a/./b", "/a", "a b", "a\u0000b",
           "nginx@sha256:abc", "host:99999/app", "-host.com/app", "app:" + "t" * 129, "a___b",
           "a/" * 130 + "b:x", "nginx:1.0@" + sha256("x").upper(), "app:tag with space", "[::1/app",
           "a" * 248, "x/" + "a" * 254 + ":1"]
    for r in bad:
        s("tag.put", reference=r, digest=d1, err="invalid_reference")
    for r in bad[:5]:
        s("tag.resolve", reference=r, err="invalid_reference")
    s("tag.get", reference="Nginx", err="invalid_reference")
    s("tag.history", reference="a//b", err="invalid_reference")
    s("tag.invalidate", reference="a//b", err="invalid_reference")
    s("tag.delete", reference="a//b", err="invalid_reference")
    s("tag.detect_movement", reference="a//b", digest=d1, err="invalid_reference")
    s("tag.put", reference="app:" + "t" * 128, digest=d1)
    s("stats", ok={"tags": 1})

    (
        S("tags/resolution_metrics", "Fresh resolutions are hits; stale and unknown ones are misses; puts are counted.", config={"tag_ttl_ms": 1000})
        ("tag.resolve", reference="app:1", ok={"state": "unknown"})
        ("tag.put", reference="app:1", digest=d1)
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": d1})
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": d1})
        ("clock.advance", ms=1000)
        ("tag.resolve", reference="app:1", ok={"state": "stale", "digest": d1})
        ("metrics", ok={"tag_resolutions": 4, "tag_puts": 1, "hits": 2, "misses": 2, "hit_rate": 0.5, "network_requests": 1})
        ("tag.get", reference="app:2", err="not_found")
        ("metrics", ok={"errors": 0})
    )


# =====================================================================================
# eviction
# =====================================================================================


def eviction():
    a, b, c, d, e = (fill(ch, 100) for ch in "abcde")
    A, B, C, D, E = (sha256(x) for x in (a, b, c, d, e))

    (
        S("eviction/lru_least_recently_used", "LRU evicts the entry used longest ago, and deletes its file.", config=small(300))
        ("blob.put", digest=A, data=a)
        ("blob.put", digest=B, data=b)
        ("blob.put", digest=C, data=c)
        ("blob.get", digest=A, ok=got(a))
        ("blob.put", digest=D, data=d)
        ("blob.has", digest=B, ok=False)
        ("blob.get", digest=B, err="not_found")
        ("storage.exists", path=blob_path(B), ok=False)
        ("blob.has", digest=A, ok=True)
        ("blob.has", digest=C, ok=True)
        ("blob.has", digest=D, ok=True)
        ("stats", ok={"total_entries": 3, "total_size_bytes": 300, "total_evictions": 1})
        ("metrics", ok={"evictions_capacity": 1, "bytes_evicted": 100})
        ("storage.bytes", dir="blobs", ok=300)
    )

    (
        S("eviction/lru_reput_counts_as_use", "Putting a stored entry again counts as a use for LRU.", config=small(300))
        ("blob.put", digest=A, data=a)
        ("blob.put", digest=B, data=b)
        ("blob.put", digest=C, data=c)
        ("blob.put", digest=A, data=a)
        ("blob.put", digest=D, data=d)
        ("blob.has", digest=A, ok=True)
        ("blob.has", digest=B, ok=False)
    )

    big, mid, sml = fill("B", 500), fill("M", 300), fill("s", 100)
    new = fill("n", 200)
    (
        S("eviction/size_largest_first", "The size policy evicts the largest entry first.", config=small(1000, "size"))
        ("blob.put", digest=sha256(sml), data=sml)
        ("blob.put", digest=sha256(big), data=big)
        ("blob.put", digest=sha256(mid), data=mid)
        ("blob.put", digest=sha256(new), data=new)
        ("blob.has", digest=sha256(big), ok=False)
        ("blob.has", digest=sha256(sml), ok=True)
        ("blob.has", digest=sha256(mid), ok=True)
        ("stats", ok={"total_size_bytes": 600, "total_entries": 3})
    )

    (
        S("eviction/size_expired_first", "The size policy evicts expired entries before large live ones.", config=small(1000, "size", default_ttl_ms=1000))
        ("blob.put", digest=sha256(sml), data=sml)
        ("clock.advance", ms=600)
        ("blob.put", digest=sha256(big), data=big)
        ("blob.put", digest=sha256(mid), data=mid)
        ("clock.advance", ms=500)
        ("blob.put", digest=sha256(new), data=new)
        ("blob.get", digest=sha256(sml), err="not_found")
        ("blob.has", digest=sha256(big), ok=True)
        ("blob.has", digest=sha256(mid), ok=True)
        ("stats", ok={"total_size_bytes": 1000})
    )

    (
        S("eviction/ttl_soonest_expiry_first", "The ttl policy evicts the entry closest to expiry, regardless of use.", config=small(300, "ttl", default_ttl_ms=10_000))
        ("blob.put", digest=A, data=a)
        ("clock.advance", ms=100)
        ("blob.put", digest=B, data=b)
        ("clock.advance", ms=100)
        ("blob.put", digest=C, data=c)
        ("blob.get", digest=A)
        ("blob.put", digest=D, data=d)
        ("blob.has", digest=A, ok=False)
        ("blob.has", digest=B, ok=True)
        ("blob.has", digest=C, ok=True)
    )

    (
        S("eviction/ttl_never_expiring_last", "Under the ttl policy entries that never expire go after every expiring one.", config=small(300, "ttl", default_ttl_ms=10_000, manifest_ttl_ms=None, blob_ttl_ms=None))
        ("cache.reopen", config=small(300, "ttl", default_ttl_ms=0))
        ("blob.put", digest=A, data=a)
        ("cache.reopen", config=small(300, "ttl", default_ttl_ms=10_000))
        ("blob.put", digest=B, data=b)
        ("blob.put", digest=C, data=c)
        ("blob.put", digest=D, data=d)
        ("blob.has", digest=A, ok=True)
        ("blob.has", digest=B, ok=False)
        ("contents", ok=[{"digest": x} for x in sorted([A, C, D], key=hexpart)])
    )

    (
        S("eviction/expired_policy_only_evicts_expired", "The expired policy never evicts live entries: with nothing expired a put that does not fit is full.", config=small(300, "expired", default_ttl_ms=1000))
        ("blob.put", digest=A, data=a)
        ("blob.put", digest=B, data=b)
        ("blob.put", digest=C, data=c)
        ("blob.put", digest=D, data=d, err="full")
        ("stats", ok={"total_entries": 3, "total_evictions": 0})
        ("clock.advance", ms=1000)
        ("blob.put", digest=D, data=d, ok=D)
        ("stats", ok={"total_entries": 3, "total_size_bytes": 300, "total_evictions": 1})
        ("blob.has", digest=D, ok=True)
    )

    comp = {"composite": [[1, "lru"], [0, "expired"]]}
    (
        S("eviction/composite_priorities", "A composite asks its members by priority (lowest number first): here expired entries go before the least recently used.", config=small(300, comp, default_ttl_ms=1000))
        ("blob.put", digest=A, data=a)
        ("clock.advance", ms=500)
        ("blob.put", digest=B, data=b)
        ("blob.put", digest=C, data=c)
        ("clock.advance", ms=100)
        ("blob.get", digest=A)
        ("clock.advance", ms=400)
        ("blob.put", digest=D, data=d)
        ("blob.get", digest=A, err="not_found")
        ("blob.has", digest=B, ok=True)
        ("blob.has", digest=C, ok=True)
        ("blob.put", digest=E, data=e)
        ("blob.has", digest=B, ok=False)
        ("blob.has", digest=C, ok=True)
        ("debug_info", ok={"policy": "composite(0:expired,1:lru)"})
    )

    (
        S("eviction/default_policy_expired_then_lru", "The default policy is expired first, then least recently used.", config={"max_bytes": 300, "high_watermark_percent": 100, "low_watermark_percent": 100, "default_ttl_ms": 1000})
        ("debug_info", ok={"policy": "composite(0:expired,1:lru)"})
        ("blob.put", digest=A, data=a)
        ("clock.advance", ms=500)
        ("blob.put", digest=B, data=b)
        ("blob.put", digest=C, data=c)
        ("blob.get", digest=A)
        ("clock.advance", ms=500)
        ("blob.put", digest=D, data=d)
        ("blob.has", digest=A, ok=False)
        ("blob.put", digest=E, data=e)
        ("blob.has", digest=B, ok=False)
        ("blob.has", digest=C, ok=True)
    )

    ten = [fill(str(i), 100) for i in range(10)]
    s = S("eviction/watermarks", "Nothing is evicted up to the high watermark; past it, eviction goes down to the low watermark (counting the entry being put).", config={"max_bytes": 1000, "high_watermark_percent": 90, "low_watermark_percent": 50, "eviction": "lru"})
    for x in ten[:9]:
        s("blob.put", digest=sha256(x), data=x)
    s("stats", ok={"total_size_bytes": 900, "total_evictions": 0})
    s("blob.put", digest=sha256(ten[9]), data=ten[9])
    s("stats", ok={"total_size_bytes": 500, "total_entries": 5, "total_evictions": 5})
    for x in ten[:5]:
        s("blob.has", digest=sha256(x), ok=False)
    for x in ten[5:]:
        s("blob.has", digest=sha256(x), ok=True)
    s("storage.bytes", dir="blobs", ok=500)

    s = S("eviction/large_entry_evicts_only_what_it_needs", "An entry above the low watermark evicts only enough to fit under the cap, not everything.", config={"max_bytes": 1000, "high_watermark_percent": 90, "low_watermark_percent": 20, "eviction": "lru"})
    for x in ten[:8]:
        s("blob.put", digest=sha256(x), data=x)
    big5 = fill("X", 500)
    s("blob.put", digest=sha256(big5), data=big5)
    s("stats", ok={"total_size_bytes": 1000, "total_entries": 6, "total_evictions": 3})

    s = S("eviction/cap_never_exceeded", "Whatever is put, stored bytes never exceed the cap, in the index or on storage.", config=small(250))
    for i in range(10):
        x = fill(chr(ord("A") + i), 60)
        s("blob.put", digest=sha256(x), data=x)
        want = min(60 * (i + 1), 240)
        s("stats", ok={"total_size_bytes": want})
        s("storage.bytes", dir="blobs", ok=want)
    s("metrics", ok={"peak_bytes_stored": 240, "evictions_capacity": 6})

    m = oci_manifest("{}", [fill("m", 300)])
    (
        S("eviction/never_fits_is_full_and_evicts_nothing", "An entry that can never fit under the cap is full, and nothing is evicted for it.", config=small(100))
        ("blob.put", digest=sha256(fill("a", 60)), data=fill("a", 60))
        ("blob.put", data=fill("z", 101), size=101, err="full")
        ("blob.put", data=fill("z", 101), err="full")
        ("manifest.put", digest=sha256(m), data=m, err="full")
        ("blob.has", digest=sha256(fill("a", 60)), ok=True)
        ("stats", ok={"total_evictions": 0, "total_entries": 1})
        ("storage.temps", ok=0)
        ("blob.put", data=fill("y", 90), ok=sha256(fill("y", 90)))
        ("blob.has", digest=sha256(fill("a", 60)), ok=False)
    )

    (
        S("eviction/pins_protect", "Pinned entries are skipped by eviction; the next candidate goes instead.", config=small(300))
        ("blob.put", digest=A, data=a)
        ("blob.put", digest=B, data=b)
        ("blob.put", digest=C, data=c)
        ("entry.pin", kind="blob", digest=A, ok=1)
        ("blob.put", digest=D, data=d)
        ("blob.has", digest=A, ok=True)
        ("blob.has", digest=B, ok=False)
        ("contents", ok=[{"digest": x, "pins": 1 if x == A else 0} for x in sorted([A, C, D], key=hexpart)])
        ("entry.unpin", kind="blob", digest=A, ok=0)
        ("blob.put", digest=E, data=e)
        ("blob.has", digest=A, ok=False)
    )

    (
        S("eviction/pinned_everything_is_full", "When everything is pinned a put that needs room is full and evicts nothing; unpinning makes room again.", config=small(200))
        ("blob.put", digest=A, data=a)
        ("blob.put", digest=B, data=b)
        ("entry.pin", kind="blob", digest=A)
        ("entry.pin", kind="blob", digest=B)
        ("stats", ok={"pinned_entries": 2})
        ("blob.put", data=fill("c", 50), err="full")
        ("blob.has", digest=A, ok=True)
        ("blob.has", digest=B, ok=True)
        ("entry.unpin", kind="blob", digest=A, ok=0)
        ("blob.put", data=fill("c", 50), ok=sha256(fill("c", 50)))
        ("blob.has", digest=A, ok=False)
        ("blob.has", digest=B, ok=True)
    )

    (
        S("eviction/full_when_only_part_evictable", "A put that would fit only by evicting pinned content is full, and the evictable entries stay.", config=small(300))
        ("blob.put", digest=sha256(fill("p", 200)), data=fill("p", 200))
        ("entry.pin", kind="blob", digest=sha256(fill("p", 200)))
        ("blob.put", digest=sha256(fill("f", 50)), data=fill("f", 50))
        ("blob.put", data=fill("n", 150), err="full")
        ("blob.has", digest=sha256(fill("f", 50)), ok=True)
        ("stats", ok={"total_evictions": 0, "total_size_bytes": 250})
    )

    (
        S("eviction/pin_counts_nest", "Pins are counted: each pin needs its unpin; unpinning an unpinned entry answers 0; pinning something absent is not_found.", config=small(200))
        ("blob.put", digest=A, data=a)
        ("entry.pin", kind="blob", digest=A, ok=1)
        ("entry.pin", kind="blob", digest=A, ok=2)
        ("entry.unpin", kind="blob", digest=A, ok=1)
        ("blob.put", digest=B, data=b)
        ("blob.put", digest=C, data=c)
        ("blob.has", digest=A, ok=True)
        ("blob.has", digest=B, ok=False)
        ("entry.unpin", kind="blob", digest=A, ok=0)
        ("entry.unpin", kind="blob", digest=A, ok=0)
        ("entry.pin", kind="blob", digest=E, err="not_found")
        ("entry.unpin", kind="manifest", digest=A, err="not_found")
    )

    cfg, layer = "{}", fill("L", 3000)
    m = oci_manifest(cfg, [layer])
    cap = 10_000
    bigx = fill("X", 7000)
    (
        S("eviction/referenced_blob_outlives_manifest", "A blob referenced by a cached manifest is not evicted before that manifest, even when it is the least recently used.", config=small(cap))
        ("blob.put", digest=sha256(cfg), data=cfg)
        ("blob.put", digest=sha256(layer), data=layer)
        ("manifest.put", digest=sha256(m), data=m)
        ("contents", ok=[{"kind": "manifest", "referrers": 0}] + [{"kind": "blob", "referrers": 1}] * 2)
        ("blob.put", digest=sha256(bigx), data=bigx)
        ("manifest.has", digest=sha256(m), ok=False)
        ("blob.has", digest=sha256(layer), ok=True)
        ("stats", ok={"total_size_bytes": 10_000})
    )

    cfg2, layer2 = fill("c", 100), fill("l", 500)
    m2 = oci_manifest(cfg2, [layer2])
    x2 = fill("x", 1800)  # the manifest is 401 bytes: 1001 stored, 1800 more need all three gone
    (
        S("eviction/referenced_blobs_evictable_after_manifest", "Content referenced by an evictable manifest can be evicted (manifest first) when a put needs the room: it is not full.", config=small(2000))
        ("blob.put", digest=sha256(cfg2), data=cfg2)
        ("blob.put", digest=sha256(layer2), data=layer2)
        ("manifest.put", digest=sha256(m2), data=m2)
        ("blob.put", digest=sha256(x2), data=x2, ok=sha256(x2))
        ("manifest.has", digest=sha256(m2), ok=False)
        ("blob.has", digest=sha256(cfg2), ok=False)
        ("blob.has", digest=sha256(layer2), ok=False)
        ("stats", ok={"total_entries": 1, "total_size_bytes": 1800, "total_evictions": 3})
    )

    (
        S("eviction/pinned_manifest_protects_its_blobs", "A pinned manifest keeps the content it references from eviction too.", config=small(2000))
        ("blob.put", digest=sha256(cfg2), data=cfg2)
        ("blob.put", digest=sha256(layer2), data=layer2)
        ("manifest.put", digest=sha256(m2), data=m2)
        ("entry.pin", kind="manifest", digest=sha256(m2), ok=1)
        ("blob.put", digest=sha256(x2), data=x2, err="full")
        ("manifest.has", digest=sha256(m2), ok=True)
        ("blob.has", digest=sha256(layer2), ok=True)
        ("stats", ok={"total_evictions": 0})
    )

    (
        S("eviction/reference_outlives_blob_delete", "Deleting a referenced blob and putting it back keeps the manifest's protection over it.", config=small(len(m2) + 700))
        ("blob.put", digest=sha256(cfg2), data=cfg2)
        ("blob.put", digest=sha256(layer2), data=layer2)
        ("manifest.put", digest=sha256(m2), data=m2)
        ("entry.pin", kind="manifest", digest=sha256(m2))
        ("blob.delete", digest=sha256(layer2), ok=True)
        ("contents", ok=[{"kind": "manifest"}, {"kind": "blob", "digest": sha256(cfg2), "referrers": 1}])
        ("blob.put", digest=sha256(layer2), data=layer2)
        ("contents", ok=[{"kind": "manifest"}] + [{"kind": "blob", "referrers": 1}] * 2)
        ("blob.put", data=fill("q", 100), ok=sha256(fill("q", 100)))
        ("blob.put", data=fill("r", 200), err="full")
        ("blob.has", digest=sha256(layer2), ok=True)
        ("blob.has", digest=sha256(fill("q", 100)), ok=True)
    )

    s = S("eviction/cleanup_enforces_lowered_watermarks", "Reopening with lower watermarks evicts nothing until a put or a cleanup, which evicts down to the low watermark.", config={"max_bytes": 1000, "eviction": "lru"})
    for x in ten[:9]:
        s("blob.put", digest=sha256(x), data=x)
    s("cache.reopen", config={"max_bytes": 1000, "high_watermark_percent": 50, "low_watermark_percent": 20, "eviction": "lru"}, ok={"evicted": 0})
    s("stats", ok={"total_size_bytes": 900})
    s("cleanup", ok={"expired_removed": 0, "evicted": 7, "bytes_freed": 700})
    s("stats", ok={"total_size_bytes": 200, "total_entries": 2})
    s("blob.has", digest=sha256(ten[8]), ok=True)
    s("blob.has", digest=sha256(ten[0]), ok=False)

    (
        S("eviction/open_reader_protects", "A blob being read is not evicted until its reader is closed.", config=small(300))
        ("blob.put", digest=A, data=a)
        ("blob.put", digest=B, data=b)
        ("blob.put", digest=C, data=c)
        ("blob.open", handle="r", digest=A, ok={"size": 100})
        ("blob.get", digest=B)
        ("blob.get", digest=C)
        ("blob.put", digest=D, data=d)
        ("blob.has", digest=A, ok=True)
        ("blob.has", digest=B, ok=False)
        ("blob.read", handle="r", ok={"len": 100, "data": a})
        ("blob.close", handle="r")
        ("blob.put", digest=E, data=e)
        ("blob.has", digest=A, ok=False)
    )

    s = S("eviction/cap_shrunk_on_reopen", "Reopening with a smaller cap evicts nothing (a command that only reads never deletes); the next cleanup or write evicts down to it, least recently used first.", config=small(1000))
    for x in (a, b, c, d, e):
        s("blob.put", digest=sha256(x), data=x)
    s("cache.reopen", config=small(300), ok={"evicted": 0})
    s("stats", ok={"total_size_bytes": 500, "total_entries": 5})
    s("blob.has", digest=A, ok=True)
    s("storage.bytes", dir="blobs", ok=500)
    s("cleanup", ok={"expired_removed": 0, "evicted": 2, "bytes_freed": 200})
    s("stats", ok={"total_size_bytes": 300, "total_entries": 3})
    s("blob.has", digest=A, ok=False)
    s("blob.has", digest=B, ok=False)
    s("blob.has", digest=E, ok=True)
    s("storage.bytes", dir="blobs", ok=300)


# =====================================================================================
# persistence
# =====================================================================================


def persistence():
    m = oci_manifest("{}", ["persisted layer"])
    b = "persisted blob"
    d1 = sha256("tagged manifest")
    (
        S("persistence/reopen_keeps_everything", "Manifests, blobs, tags and access counts survive closing and reopening over the same storage.")
        ("manifest.put", digest=sha256(m), data=m, media_type=OCI_MANIFEST)
        ("blob.put", digest=sha256(b), data=b)
        ("tag.put", reference="app:1", digest=sha256(m))
        ("blob.get", digest=sha256(b))
        ("cache.reopen", ok={"torn_tail": False, "orphans_adopted": 0, "orphans_removed": 0, "missing_dropped": 0, "evicted": 0})
        ("manifest.get", digest=sha256(m), ok={"media_type": OCI_MANIFEST, "data": m})
        ("blob.get", digest=sha256(b), ok=got(b))
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": sha256(m)})
        ("stats", ok={"total_entries": 2, "manifests": 1, "blobs": 1, "tags": 1, "total_size_bytes": len(m) + len(b)})
        ("contents", ok=[{"kind": "manifest", "access_count": 1}, {"kind": "blob", "access_count": 2}])
    )

    a, bb, c, d = (fill(ch, 100) for ch in "abcd")
    (
        S("persistence/lru_order_after_flush", "After a flush, a reopened cache evicts in the same least-recently-used order.", config=small(300))
        ("blob.put", digest=sha256(a), data=a)
        ("blob.put", digest=sha256(bb), data=bb)
        ("blob.put", digest=sha256(c), data=c)
        ("blob.get", digest=sha256(a))
        ("cache.flush")
        ("cache.reopen")
        ("blob.put", digest=sha256(d), data=d)
        ("blob.has", digest=sha256(bb), ok=False)
        ("blob.has", digest=sha256(a), ok=True)
        ("blob.has", digest=sha256(c), ok=True)
    )

    (
        S("persistence/reopen_keeps_pins", "Pin counts survive a reopen and keep protecting their entries.", config=small(200))
        ("blob.put", digest=sha256(a), data=a)
        ("entry.pin", kind="blob", digest=sha256(a))
        ("entry.pin", kind="blob", digest=sha256(a))
        ("blob.put", digest=sha256(bb), data=bb)
        ("cache.reopen")
        ("contents", ok=[{"digest": x, "pins": 2 if x == sha256(a) else 0} for x in sorted([sha256(a), sha256(bb)], key=hexpart)])
        ("blob.put", digest=sha256(c), data=c)
        ("blob.has", digest=sha256(a), ok=True)
        ("blob.has", digest=sha256(bb), ok=False)
        ("entry.unpin", kind="blob", digest=sha256(a), ok=1)
    )

    (
        S("persistence/committed_entries_survive_a_crash", "Content and tags committed before a crash (no flush, no close) are there after reopening.")
        ("blob.put", digest=sha256(a), data=a)
        ("tag.put", reference="app:1", digest=d1)
        ("blob.delete", digest=sha256(a))
        ("blob.put", digest=sha256(bb), data=bb)
        ("cache.crash")
        ("cache.reopen")
        ("blob.get", digest=sha256(bb), ok=got(bb))
        ("blob.get", digest=sha256(a), err="not_found")
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": d1})
    )

    (
        S("persistence/deletes_and_clears_persist", "Deletions and clear are durable: nothing removed comes back after a reopen.")
        ("blob.put", digest=sha256(a), data=a)
        ("blob.put", digest=sha256(bb), data=bb)
        ("tag.put", reference="app:1", digest=d1)
        ("blob.delete", digest=sha256(a))
        ("cache.reopen")
        ("blob.get", digest=sha256(a), err="not_found")
        ("blob.get", digest=sha256(bb), ok=got(bb))
        ("clear")
        ("stats", ok={"total_entries": 0, "tags": 0, "total_size_bytes": 0})
        ("storage.list", dir="blobs/sha256", ok=[])
        ("cache.reopen")
        ("stats", ok={"total_entries": 0, "tags": 0})
        ("tag.resolve", reference="app:1", ok={"state": "unknown"})
    )

    s = S("persistence/snapshot_plus_journal", "State written before a compaction (snapshot) and after it (journal) is all there after a reopen.", config={"compaction_min_records": 5})
    blobs_ = [f"blob number {i}" for i in range(12)]
    for x in blobs_[:6]:
        s("blob.put", digest=sha256(x), data=x)
    s("cleanup")
    for x in blobs_[6:]:
        s("blob.put", digest=sha256(x), data=x)
    s("blob.delete", digest=sha256(blobs_[0]))
    s("cache.reopen")
    s("stats", ok={"total_entries": 11})
    s("blob.get", digest=sha256(blobs_[0]), err="not_found")
    for x in blobs_[1:]:
        s("blob.get", digest=sha256(x), ok=got(x))

    (
        S("persistence/quarantine_survives_reopen", "An entry found corrupted stays refused after a reopen until it is put again.")
        ("blob.put", digest=sha256(a), data=a)
        ("storage.corrupt", kind="blob", digest=sha256(a), offset=10, ok=True)
        ("blob.get", digest=sha256(a), err="corrupted")
        ("cache.reopen")
        ("blob.get", digest=sha256(a), err="corrupted")
        ("stats", ok={"quarantined_entries": 1})
        ("blob.put", digest=sha256(a), data=a)
        ("cache.reopen")
        ("blob.get", digest=sha256(a), ok=got(a))
        ("stats", ok={"quarantined_entries": 0})
    )

    cfgr, layr = fill("c", 100), fill("l", 100)
    mr = oci_manifest(cfgr, [layr])
    other = fill("o", 100)
    s = S("persistence/references_survive_reopen", "Which blobs a cached manifest references (and so protects from eviction) survives reopening, from the journal and from a snapshot.", config=small(len(mr) + 300))
    s("blob.put", digest=sha256(cfgr), data=cfgr)
    s("blob.put", digest=sha256(layr), data=layr)
    s("manifest.put", digest=sha256(mr), data=mr)
    s("entry.pin", kind="manifest", digest=sha256(mr))
    s("cache.reopen")
    s("contents", ok=[{"kind": "manifest", "referrers": 0, "pins": 1}] + [{"kind": "blob", "referrers": 1}] * 2)
    s("cleanup")
    s("cache.reopen")
    s("contents", ok=[{"kind": "manifest", "referrers": 0, "pins": 1}] + [{"kind": "blob", "referrers": 1}] * 2)
    s("blob.put", digest=sha256(other), data=other)
    s("blob.put", data=fill("n", 200), err="full")
    s("entry.unpin", kind="manifest", digest=sha256(mr), ok=0)
    s("blob.put", data=fill("n", 200), ok=sha256(fill("n", 200)))
    s("manifest.has", digest=sha256(mr), ok=False)
    s("blob.has", digest=sha256(other), ok=True)

    a4 = [fill(ch, 100) for ch in "wxyz"]
    s = S("persistence/lru_order_after_compaction", "LRU order survives a compaction (snapshot) and a reopen.", config=small(300))
    for x in a4[:3]:
        s("blob.put", digest=sha256(x), data=x)
    s("blob.get", digest=sha256(a4[0]))
    s("cleanup")
    s("cache.reopen")
    s("blob.put", digest=sha256(a4[3]), data=a4[3])
    s("blob.has", digest=sha256(a4[1]), ok=False)
    s("blob.has", digest=sha256(a4[0]), ok=True)
    s("blob.has", digest=sha256(a4[2]), ok=True)

    (
        S("persistence/sliding_expiry_survives_reopen", "An expiry extended by a hit (sliding TTL) is persisted.", config={"default_ttl_ms": 1000, "sliding_ttl": True})
        ("blob.put", digest=sha256(a), data=a)
        ("clock.advance", ms=900)
        ("blob.get", digest=sha256(a))
        ("cache.reopen")
        ("contents", ok=[{"expires_at": T0 + 1900, "accessed_at": T0 + 900, "access_count": 1}])
        ("clock.advance", ms=900)
        ("blob.get", digest=sha256(a), ok=got(a))
    )

    (
        S("persistence/torn_journal_tail_dropped", "A journal whose last record was torn by a crash opens without it; everything before it stays, and later writes persist.")
        ("blob.put", digest=sha256(a), data=a)
        ("tag.put", reference="app:1", digest=sha256(a))
        ("cache.crash")
        ("storage.truncate", path="index/journal-0", drop=3)
        ("cache.reopen", ok={"torn_tail": True, "compacted": True})
        ("blob.get", digest=sha256(a), ok=got(a))
        ("tag.resolve", reference="app:1", ok={"state": "unknown"})
        ("tag.put", reference="app:1", digest=sha256(a))
        ("cache.crash")
        ("cache.reopen", ok={"torn_tail": False})
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": sha256(a)})
    )

    (
        S("persistence/damaged_snapshot_rebuilt_from_files", "A damaged index snapshot is ignored and the index rebuilt from the stored files (verified by re-hashing).")
        ("blob.put", digest=sha256(a), data=a)
        ("blob.put", digest=sha256(bb), data=bb)
        ("cleanup")
        ("cache.close")
        ("storage.corrupt", path="index/snapshot", offset=20, ok=True)
        ("cache.reopen", ok={"snapshot_damaged": True, "orphans_adopted": 2, "compacted": True})
        ("blob.get", digest=sha256(a), ok=got(a))
        ("blob.get", digest=sha256(bb), ok=got(bb))
        ("integrity.check", ok={"healthy": True, "checked": 2})
        ("cache.reopen", ok={"snapshot_damaged": False, "orphans_adopted": 0})
    )

    (
        S("persistence/abandoned_writes_cleared_on_open", "Temp data of writes abandoned by a crash is removed when the cache opens; nothing of it becomes visible.")
        ("blob.begin", handle="w", digest=sha256(a), size=100)
        ("blob.write", handle="w", data=fill("a", 60))
        ("cache.crash")
        ("storage.temps", ok=1)
        ("cache.reopen", ok={"temps_removed": 1})
        ("storage.temps", ok=0)
        ("blob.get", digest=sha256(a), err="not_found")
        ("cache.recovery", ok={"temps_removed": 1})
    )

    (
        S("persistence/close_then_open", "A closed cache reopens over the same storage with everything in it.")
        ("blob.put", digest=sha256(a), data=a)
        ("cache.close")
        ("storage.exists", kind="blob", digest=sha256(a), ok=True)
        ("cache.reopen")
        ("blob.get", digest=sha256(a), ok=got(a))
    )

    (
        S("persistence/clock_going_backwards", "A wall clock that jumps backwards neither expires entries early nor breaks anything.", config={"default_ttl_ms": 1000, "tag_ttl_ms": 1000})
        ("blob.put", digest=sha256(a), data=a)
        ("tag.put", reference="app:1", digest=sha256(a))
        ("clock.set", ms=T0 - 60_000)
        ("blob.get", digest=sha256(a), ok=got(a))
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": sha256(a)})
        ("metrics", ok={"uptime_ms": 0})
        ("tag.put", reference="app:1", digest=sha256(bb), ok={"previous": sha256(a), "moved": True})
        ("tag.history", reference="app:1", ok=[{"digest": sha256(a), "changed_at": T0}, {"digest": sha256(bb), "changed_at": T0 - 60_000}])
        ("clock.set", ms=T0 + 1000)
        ("blob.get", digest=sha256(a), err="expired")
    )

    (
        S("persistence/metrics_start_over_on_open", "Metrics count since the cache was opened; stored content does not change.")
        ("blob.put", digest=sha256(a), data=a)
        ("blob.get", digest=sha256(a))
        ("clock.advance", ms=5000)
        ("metrics", ok={"hits": 1, "uptime_ms": 5000, "blob_puts": 1})
        ("cache.reopen")
        ("metrics", ok={"hits": 0, "misses": 0, "uptime_ms": 0, "blob_puts": 0, "bytes_stored": 100, "entries_stored": 1})
    )


# =====================================================================================
# integrity
# =====================================================================================


def integrity():
    data = fill("k", 64)
    d = sha256(data)
    (
        S("integrity/corrupted_blob_never_served", "A blob whose stored bytes changed fails with corrupted, is quarantined (bytes removed) and is never served again.")
        ("blob.put", digest=d, data=data)
        ("storage.corrupt", kind="blob", digest=d, offset=3, ok=True)
        ("blob.get", digest=d, err="corrupted")
        ("blob.get", digest=d, err="corrupted")
        ("blob.has", digest=d, ok=False)
        ("storage.exists", path=blob_path(d), ok=False)
        ("stats", ok={"quarantined_entries": 1, "total_size_bytes": 0, "total_entries": 1})
        ("contents", ok=[{"digest": d, "quarantined": True, "size": 0}])
        ("metrics", ok={"corruptions": 1})
        ("entry.pin", kind="blob", digest=d, err="corrupted")
    )

    big = "".join(chr(ord("a") + (i * 7) % 26) for i in range(300))
    d = sha256(big)
    (
        S("integrity/streamed_read_fails_at_the_end", "A streamed read of a corrupted blob serves the leading chunks but fails the final one with corrupted.")
        ("blob.put", digest=d, data=big)
        ("storage.corrupt", kind="blob", digest=d, offset=10, ok=True)
        ("blob.open", handle="r", digest=d, ok={"size": 300})
        ("blob.read", handle="r", max=100, ok={"len": 100})
        ("blob.read", handle="r", err="corrupted")
        ("blob.close", handle="r")
        ("blob.get", digest=d, err="corrupted")
    )

    m = oci_manifest("{}", ["will rot"])
    dm = sha256(m)
    (
        S("integrity/corrupted_manifest", "A corrupted manifest answers corrupted and is never served again.")
        ("manifest.put", digest=dm, data=m)
        ("storage.corrupt", kind="manifest", digest=dm, offset=5, ok=True)
        ("manifest.get", digest=dm, err="corrupted")
        ("manifest.get", digest=dm, err="corrupted")
        ("manifest.has", digest=dm, ok=False)
        ("storage.exists", path=manifest_path(dm), ok=False)
    )

    hm = oci_manifest("{\"healthy\":true}", ["healthy layer"])
    (
        S("integrity/healthy_cache_checks_clean", "On an undamaged cache the check finds every entry valid and repair changes nothing (the seed's check flagged every entry).")
        ("blob.put", digest=sha256("{\"healthy\":true}"), data="{\"healthy\":true}")
        ("blob.put", digest=sha256("healthy layer"), data="healthy layer")
        ("manifest.put", digest=sha256(hm), data=hm)
        ("blob.put", digest=sha512("sha512 content"), data="sha512 content")
        ("tag.put", reference="app:1", digest=sha256(hm))
        ("integrity.check", ok={"checked": 4, "valid": 4, "corrupted": [], "missing": [], "quarantined": [], "unindexed": [], "healthy": True})
        ("integrity.validate_digests", ok={"valid": 4, "invalid": []})
        ("integrity.repair", ok={"removed_corrupted": 0, "removed_missing": 0, "adopted": 0, "removed_unindexed": 0, "temps_removed": 0, "before": {"healthy": True}})
        ("stats", ok={"total_entries": 4, "tags": 1})
        ("manifest.get", digest=sha256(hm), ok={"data": hm})
        ("cache.reopen", ok={"orphans_adopted": 0, "orphans_removed": 0, "missing_dropped": 0})
        ("integrity.check", ok={"healthy": True, "valid": 4})
    )

    good, bad = "good bytes", "bad bytes!"
    (
        S("integrity/check_then_repair", "The integrity check re-hashes every entry without serving it; repair removes what is corrupted and leaves the rest.")
        ("blob.put", digest=sha256(good), data=good)
        ("blob.put", digest=sha256(bad), data=bad)
        ("storage.corrupt", kind="blob", digest=sha256(bad), offset=0, ok=True)
        ("integrity.check", ok={"checked": 2, "valid": 1, "corrupted": [{"what": "blob " + sha256(bad)}], "missing": [], "quarantined": [], "unindexed": [], "healthy": False})
        ("integrity.validate_digests", ok={"valid": 1, "invalid": ["blob " + sha256(bad)]})
        ("integrity.repair", ok={"removed_corrupted": 1, "removed_missing": 0, "adopted": 0, "removed_unindexed": 0, "before": {"healthy": False}})
        ("integrity.check", ok={"checked": 1, "valid": 1, "healthy": True})
        ("blob.get", digest=sha256(bad), err="not_found")
        ("blob.get", digest=sha256(good), ok=got(good))
        ("storage.exists", path=blob_path(sha256(bad)), ok=False)
        ("cache.reopen")
        ("blob.get", digest=sha256(bad), err="not_found")
    )

    (
        S("integrity/repair_quarantined", "Entries quarantined by a failed read are reported by the check and removed by repair, so they can be fetched again.")
        ("blob.put", digest=sha256(bad), data=bad)
        ("storage.corrupt", kind="blob", digest=sha256(bad), offset=4, ok=True)
        ("blob.get", digest=sha256(bad), err="corrupted")
        ("integrity.check", ok={"checked": 0, "quarantined": [{"what": "blob " + sha256(bad)}], "healthy": False})
        ("integrity.repair", ok={"removed_corrupted": 1})
        ("blob.get", digest=sha256(bad), err="not_found")
        ("stats", ok={"total_entries": 0, "quarantined_entries": 0})
        ("blob.put", digest=sha256(bad), data=bad)
        ("blob.get", digest=sha256(bad), ok=got(bad))
    )

    (
        S("integrity/reput_heals_quarantined", "Putting the right bytes again heals a quarantined entry.")
        ("blob.put", digest=sha256(good), data=good)
        ("storage.corrupt", kind="blob", digest=sha256(good), offset=9, ok=True)
        ("blob.get", digest=sha256(good), err="corrupted")
        ("blob.put", digest=sha256(good), data=good, ok=sha256(good))
        ("blob.get", digest=sha256(good), ok=got(good))
        ("stats", ok={"quarantined_entries": 0, "total_size_bytes": len(good)})
        ("integrity.check", ok={"healthy": True})
    )

    orphan = "an orphan that matches its name"
    (
        S("integrity/valid_orphan_adopted_on_reopen", "A stored file the index does not know, whose bytes match its name, is adopted when the cache opens after an unclean shutdown.")
        ("storage.plant", kind="blob", digest=sha256(orphan), data=orphan)
        ("blob.has", digest=sha256(orphan), ok=False)
        ("cache.crash")
        ("cache.reopen", ok={"clean_shutdown": False, "orphans_adopted": 1, "orphans_removed": 0, "compacted": True})
        ("blob.get", digest=sha256(orphan), ok=got(orphan))
        ("integrity.check", ok={"healthy": True})
        ("cache.reopen", ok={"orphans_adopted": 0})
        ("blob.has", digest=sha256(orphan), ok=True)
    )

    (
        S("integrity/clean_close_trusts_the_index", "After a clean close the next open trusts the index instead of walking the files; a file planted meanwhile is found by the check and adopted by repair, and an unclean shutdown walks the files again.")
        ("blob.put", digest=sha256("kept"), data="kept")
        ("cache.close")
        ("storage.plant", kind="blob", digest=sha256(orphan), data=orphan)
        ("cache.reopen", ok={"clean_shutdown": True, "orphans_adopted": 0})
        ("blob.has", digest=sha256(orphan), ok=False)
        ("integrity.check", ok={"healthy": False, "unindexed": [{"what": blob_path(sha256(orphan))}]})
        ("integrity.repair", ok={"adopted": 1})
        ("blob.get", digest=sha256(orphan), ok=got(orphan))
        ("cache.crash")
        ("cache.reopen", ok={"clean_shutdown": False})
        ("integrity.check", ok={"healthy": True})
    )

    liar = sha256("what the name promises")
    (
        S("integrity/invalid_orphan_removed_on_reopen", "A stored file whose bytes do not match its name is removed when the cache opens, never adopted.")
        ("storage.plant", path=blob_path(liar), data="something else entirely")
        ("cache.crash")
        ("cache.reopen", ok={"orphans_adopted": 0, "orphans_removed": 1})
        ("storage.exists", path=blob_path(liar), ok=False)
        ("blob.get", digest=liar, err="not_found")
    )

    (
        S("integrity/stray_files_left_on_reopen", "Files in the content directories whose names the cache never writes are reported and left in place when the cache opens (it removes only what it could have written); the integrity check lists them, and a repair, asked for, removes them.")
        ("storage.plant", path="blobs/sha256/not-a-digest", data="x")
        ("storage.plant", path="manifests/sha256/" + "A" * 64, data="{}")
        ("blob.put", digest=sha256("kept"), data="kept")
        ("cache.crash")
        ("cache.reopen", ok={"orphans_removed": 0, "foreign_files": 2})
        ("storage.exists", path="blobs/sha256/not-a-digest", ok=True)
        ("storage.exists", path="manifests/sha256/" + "A" * 64, ok=True)
        ("integrity.check", ok={"healthy": False, "unindexed": [{"what": "manifests/sha256/" + "A" * 64}, {"what": "blobs/sha256/not-a-digest"}]})
        ("integrity.repair", ok={"removed_unindexed": 2})
        ("storage.exists", path="blobs/sha256/not-a-digest", ok=False)
        ("storage.list", dir="blobs/sha256", ok=[hexpart(sha256("kept"))])
    )

    om = oci_manifest("{}", ["orphaned manifest layer"])
    (
        S("integrity/orphan_manifest_adopted", "An orphaned manifest file is adopted (re-hashed and parsed) with its media type and references.")
        ("storage.plant", kind="manifest", digest=sha256(om), data=om)
        ("cache.crash")
        ("cache.reopen", ok={"orphans_adopted": 1})
        ("manifest.get", digest=sha256(om), ok={"media_type": OCI_MANIFEST, "data": om})
        ("manifest.references", digest=sha256(om), ok=blob_refs("{}", "orphaned manifest layer"))
    )

    notm = "this is not a manifest"
    (
        S("integrity/orphan_non_manifest_removed", "A file under manifests/ that hashes to its name but is not a manifest is removed, not adopted.")
        ("storage.plant", kind="manifest", digest=sha256(notm), data=notm)
        ("cache.crash")
        ("cache.reopen", ok={"orphans_adopted": 0, "orphans_removed": 1})
        ("manifest.get", digest=sha256(notm), err="not_found")
        ("storage.exists", kind="manifest", digest=sha256(notm), ok=False)
    )

    kept = "still here"
    lost = "lost its file"
    (
        S("integrity/missing_file_dropped_on_reopen", "An index entry whose file disappeared is dropped when the cache opens.")
        ("blob.put", digest=sha256(kept), data=kept)
        ("blob.put", digest=sha256(lost), data=lost)
        ("storage.remove", kind="blob", digest=sha256(lost))
        ("cache.crash")
        ("cache.reopen", ok={"missing_dropped": 1})
        ("blob.get", digest=sha256(lost), err="not_found")
        ("blob.get", digest=sha256(kept), ok=got(kept))
        ("stats", ok={"total_entries": 1, "total_size_bytes": len(kept)})
    )

    (
        S("integrity/missing_file_found_and_repaired", "While open, a missing file is reported by the check and its entry removed by repair.")
        ("blob.put", digest=sha256(kept), data=kept)
        ("blob.put", digest=sha256(lost), data=lost)
        ("storage.remove", kind="blob", digest=sha256(lost))
        ("integrity.check", ok={"checked": 2, "valid": 1, "missing": [{"what": "blob " + sha256(lost)}], "healthy": False})
        ("integrity.repair", ok={"removed_missing": 1, "removed_corrupted": 0})
        ("blob.get", digest=sha256(lost), err="not_found")
        ("integrity.check", ok={"healthy": True, "checked": 1})
    )

    (
        S("integrity/missing_file_read_is_corrupted", "Reading an entry whose file vanished fails with corrupted (the index promised bytes that are gone) and quarantines it.")
        ("blob.put", digest=sha256(lost), data=lost)
        ("storage.remove", kind="blob", digest=sha256(lost))
        ("blob.get", digest=sha256(lost), err="corrupted")
        ("stats", ok={"quarantined_entries": 1})
    )

    found = "planted while open"
    fake = sha256("promised while open")
    (
        S("integrity/unindexed_files_repaired", "The check lists files the index does not know; repair adopts those whose bytes match their name and removes the others.")
        ("storage.plant", kind="blob", digest=sha256(found), data=found)
        ("storage.plant", path=blob_path(fake), data="not what was promised")
        ("integrity.check", ok={"checked": 0, "healthy": False, "unindexed": sorted(
            [{"what": blob_path(sha256(found))}, {"what": blob_path(fake)}], key=lambda x: x["what"])})
        ("integrity.repair", ok={"adopted": 1, "removed_unindexed": 1})
        ("blob.get", digest=sha256(found), ok=got(found))
        ("storage.exists", path=blob_path(fake), ok=False)
        ("integrity.check", ok={"healthy": True, "checked": 1, "valid": 1})
        ("cache.reopen", ok={"orphans_adopted": 0, "orphans_removed": 0})
        ("blob.get", digest=sha256(found), ok=got(found))
    )

    (
        S("integrity/adoption_respects_the_cap", "Adopting unindexed files by repair never leaves more bytes than the cap; adopting them at open evicts nothing, and the next cleanup restores the cap.", config=small(100))
        ("blob.put", digest=sha256(fill("a", 60)), data=fill("a", 60))
        ("storage.plant", kind="blob", digest=sha256(fill("o", 80)), data=fill("o", 80))
        ("integrity.repair", ok={"adopted": 1})
        ("stats", ok={"total_entries": 1, "total_size_bytes": 80})
        ("storage.bytes", dir="blobs", ok=80)
        ("storage.plant", kind="blob", digest=sha256(fill("p", 90)), data=fill("p", 90))
        ("cache.crash")
        ("cache.reopen", ok={"orphans_adopted": 1, "evicted": 0})
        ("stats", ok={"total_entries": 2, "total_size_bytes": 170})
        ("cleanup", ok={"evicted": 1, "bytes_freed": 80})
        ("stats", ok={"total_entries": 1, "total_size_bytes": 90})
        ("storage.bytes", dir="blobs", ok=90)
    )

    inflight = "a download still in progress"
    (
        S("integrity/repair_spares_writes_in_progress", "Repair does not pull the temp data out from under a blob still being written; the write completes.")
        ("blob.put", digest=sha256(good), data=good)
        ("blob.begin", handle="w", digest=sha256(inflight), size=len(inflight))
        ("blob.write", handle="w", data=inflight[:10])
        ("integrity.repair", ok={"temps_removed": 0, "before": {"healthy": True}})
        ("blob.write", handle="w", data=inflight[10:])
        ("blob.commit", handle="w", ok=sha256(inflight))
        ("blob.get", digest=sha256(inflight), ok=got(inflight))
        ("storage.temps", ok=0)
    )

    data = "truncated by a torn write"
    (
        S("integrity/truncated_blob", "A blob whose file got shorter is corrupted.")
        ("blob.put", digest=sha256(data), data=data)
        ("storage.truncate", kind="blob", digest=sha256(data), len=5)
        ("integrity.check", ok={"corrupted": [{"what": "blob " + sha256(data)}]})
        ("blob.get", digest=sha256(data), err="corrupted")
    )

    s = S("integrity/validate_digests", "validate_digests re-hashes everything and names the invalid entries.")
    xs = [f"entry {i}" for i in range(4)]
    for x in xs:
        s("blob.put", digest=sha256(x), data=x)
    s("storage.corrupt", kind="blob", digest=sha256(xs[2]), offset=0, ok=True)
    s("integrity.validate_digests", ok={"valid": 3, "invalid": ["blob " + sha256(xs[2])]})
    s("storage.corrupt", kind="blob", digest=sha256(xs[2]), offset=0, ok=True)
    s("integrity.validate_digests", ok={"valid": 4, "invalid": []})

    data = "served unverified"
    (
        S("integrity/verify_reads_off", "With verify_reads off, reads skip re-hashing (the caller verifies); the integrity check still finds the damage.", config={"verify_reads": False})
        ("blob.put", digest=sha256(data), data=data)
        ("storage.corrupt", kind="blob", digest=sha256(data), offset=0, ok=True)
        ("blob.get", digest=sha256(data), ok={"size": len(data), "data_hex": bytes([0xFF - ord(data[0])]).hex() + data[1:].encode().hex()})
        ("integrity.check", ok={"corrupted": [{"what": "blob " + sha256(data)}], "healthy": False})
    )

    (
        S("integrity/storage_corrupt_reports_missing_bytes", "storage.corrupt answers false when the offset is past the end (nothing changed).")
        ("blob.put", digest=sha256("tiny"), data="tiny")
        ("storage.corrupt", kind="blob", digest=sha256("tiny"), offset=4, ok=False)
        ("blob.get", digest=sha256("tiny"), ok=got("tiny"))
    )


# =====================================================================================
# metrics and stats
# =====================================================================================


def metrics():
    data = fill("h", 100)
    d = sha256(data)
    (
        S("metrics/hits_misses_hit_rate", "Hits and misses count reads answered and not answered; the hit rate is hits / (hits + misses).")
        ("blob.put", digest=d, data=data)
        ("blob.get", digest=d)
        ("blob.get", digest=d)
        ("blob.get", digest=d)
        ("blob.get", digest=sha256("absent"), err="not_found")
        ("metrics", ok={"hits": 3, "misses": 1, "hit_rate": 0.75, "blob_gets": 4, "blob_puts": 1})
        ("stats", ok={"hit_rate": 0.75, "average_access_count": 3.0})
        ("blob.put", digest=sha256("second"), data="second")
        ("stats", ok={"average_access_count": 1.5})
        ("blob.has", digest=d, ok=True)
        ("metrics", ok={"hits": 3, "blob_gets": 4})
    )

    m = oci_manifest("{}", ["bandwidth"])
    (
        S("metrics/bytes_served_and_bandwidth_saved", "Bytes served and bandwidth saved are the real bytes handed out from the cache; bytes downloaded are the bytes put.")
        ("blob.put", digest=d, data=data)
        ("manifest.put", digest=sha256(m), data=m)
        ("blob.get", digest=d)
        ("blob.get", digest=d, chunk=7)
        ("manifest.get", digest=sha256(m))
        ("metrics", ok={"bytes_served": 200 + len(m), "bandwidth_saved": 200 + len(m), "bytes_downloaded": 100 + len(m), "network_requests": 2, "bytes_stored": 100 + len(m), "entries_stored": 2})
    )

    (
        S("metrics/per_kind_operations", "Gets and puts are counted per kind; tag puts, resolutions and deletes separately.")
        ("manifest.put", digest=sha256(m), data=m)
        ("manifest.put", digest=sha256(m), data=m)
        ("manifest.get", digest=sha256(m))
        ("blob.put", digest=d, data=data)
        ("blob.get", digest=d)
        ("blob.get", digest=d)
        ("blob.get", digest=d)
        ("tag.put", reference="app:1", digest=sha256(m))
        ("tag.resolve", reference="app:1")
        ("blob.delete", digest=d)
        ("tag.delete", reference="app:1")
        ("metrics", ok={"manifest_puts": 2, "manifest_gets": 1, "blob_puts": 1, "blob_gets": 3, "tag_puts": 1, "tag_resolutions": 1, "deletes": 2, "network_requests": 4})
    )

    a, b, c, dd = (fill(ch, 100) for ch in "abcd")
    (
        S("metrics/evictions_by_reason", "Evictions are counted by reason (capacity, expired) with the bytes they freed and the time since the last one.", config=small(300, default_ttl_ms=10_000))
        ("blob.put", digest=sha256(a), data=a)
        ("blob.put", digest=sha256(b), data=b)
        ("blob.put", digest=sha256(c), data=c)
        ("blob.put", digest=sha256(dd), data=dd)
        ("metrics", ok={"evictions": 1, "evictions_capacity": 1, "evictions_expired": 0, "bytes_evicted": 100, "time_since_last_eviction_ms": 0})
        ("clock.advance", ms=10_000)
        ("clear_expired", ok=3)
        ("clock.advance", ms=250)
        ("metrics", ok={"evictions": 4, "evictions_capacity": 1, "evictions_expired": 3, "bytes_evicted": 400, "time_since_last_eviction_ms": 250})
        ("stats", ok={"total_evictions": 4})
    )

    mm = oci_manifest("{}", ["err"])
    (
        S("metrics/errors_counted", "Failed operations count as errors; absent, expired and invalidated answers do not.", config={"default_ttl_ms": 1000})
        ("blob.put", digest=sha256("x"), data="y", err="digest_mismatch")
        ("manifest.put", digest=sha256("not json"), data="not json", err="invalid_manifest")
        ("blob.get", digest=sha256("absent"), err="not_found")
        ("blob.put", digest=sha256("x"), data="x")
        ("tag.put", reference="app:1", digest=sha256("x"))
        ("tag.invalidate", reference="app:1")
        ("tag.get", reference="app:1", err="invalidated")
        ("clock.advance", ms=1000)
        ("blob.get", digest=sha256("x"), err="expired")
        ("metrics", ok={"errors": 2, "time_since_last_error_ms": 1000})
        ("stats", ok={"total_errors": 2})
        ("manifest.put", digest=sha256(mm), data=mm, media_type=OCI_INDEX, err="invalid_manifest")
        ("metrics", ok={"errors": 3, "time_since_last_error_ms": 0})
    )

    (
        S("metrics/expired_and_corrupted_reads_are_misses", "A read of an expired entry, of a corrupted one (including the read that discovers the corruption), or of one already quarantined, is a miss.", config={"default_ttl_ms": 1000})
        ("blob.put", digest=sha256(a), data=a)
        ("blob.put", digest=sha256(b), data=b, ok=sha256(b))
        ("storage.corrupt", kind="blob", digest=sha256(b), offset=0, ok=True)
        ("blob.get", digest=sha256(b), err="corrupted")
        ("metrics", ok={"corruptions": 1, "hits": 0, "misses": 1})
        ("blob.get", digest=sha256(b), err="corrupted")
        ("clock.advance", ms=1000)
        ("blob.get", digest=sha256(a), err="expired")
        ("metrics", ok={"hits": 0, "misses": 3})
    )

    mc = oci_manifest("{}", ["rots too"])
    (
        S("metrics/corrupted_reads_are_errors", "Every read that fails with corrupted counts as an error, whether a blob or a manifest, first detection or later.")
        ("blob.put", digest=sha256(a), data=a)
        ("manifest.put", digest=sha256(mc), data=mc)
        ("storage.corrupt", kind="blob", digest=sha256(a), offset=50, ok=True)
        ("storage.corrupt", kind="manifest", digest=sha256(mc), offset=50, ok=True)
        ("blob.get", digest=sha256(a), err="corrupted")
        ("metrics", ok={"errors": 1, "corruptions": 1})
        ("manifest.get", digest=sha256(mc), err="corrupted")
        ("metrics", ok={"errors": 2, "corruptions": 2})
        ("blob.get", digest=sha256(a), err="corrupted")
        ("manifest.get", digest=sha256(mc), err="corrupted")
        ("metrics", ok={"errors": 4, "corruptions": 2})
        ("stats", ok={"total_errors": 4})
    )

    (
        S("metrics/uptime_and_time_since", "Uptime and the times since the last hit and miss follow the host clock; they are null until the event happens.")
        ("metrics", ok={"uptime_ms": 0, "time_since_last_hit_ms": None, "time_since_last_miss_ms": None, "time_since_last_eviction_ms": None, "time_since_last_error_ms": None})
        ("blob.put", digest=sha256(a), data=a)
        ("clock.advance", ms=1000)
        ("blob.get", digest=sha256(a))
        ("clock.advance", ms=2000)
        ("blob.get", digest=sha256("absent"), err="not_found")
        ("clock.advance", ms=500)
        ("metrics", ok={"uptime_ms": 3500, "time_since_last_hit_ms": 2500, "time_since_last_miss_ms": 500})
    )

    (
        S("metrics/peaks", "Peak bytes and entries remember the most stored at once since open.")
        ("blob.put", digest=sha256(a), data=a)
        ("blob.put", digest=sha256(b), data=b)
        ("blob.put", digest=sha256(c), data=c)
        ("blob.delete", digest=sha256(a))
        ("blob.delete", digest=sha256(b))
        ("metrics", ok={"bytes_stored": 100, "entries_stored": 1, "peak_bytes_stored": 300, "peak_entries_stored": 3})
        ("blob.get", digest=sha256(c))
        ("blob.get", digest=sha256(a), err="not_found")
        ("metrics", ok={"peak_hit_rate": 1.0, "hit_rate": 0.5})
    )

    m2 = oci_manifest(a, [b])
    (
        S("metrics/stats_counts", "stats counts entries by kind, tags, expired, pinned and quarantined entries, bytes and the cap.", config={"max_bytes": 100_000, "default_ttl_ms": 1000, "manifest_ttl_ms": 0})
        ("stats", ok={"total_entries": 0, "manifests": 0, "blobs": 0, "tags": 0, "total_size_bytes": 0, "max_size_bytes": 100_000, "hit_rate": 0.0, "average_access_count": 0.0, "last_compaction": None})
        ("blob.put", digest=sha256(a), data=a)
        ("blob.put", digest=sha256(b), data=b)
        ("blob.put", digest=sha256(c), data=c)
        ("manifest.put", digest=sha256(m2), data=m2)
        ("tag.put", reference="app:1", digest=sha256(m2))
        ("tag.put", reference="app:2", digest=sha256(m2))
        ("entry.pin", kind="blob", digest=sha256(c))
        ("storage.corrupt", kind="blob", digest=sha256(b), offset=1)
        ("blob.get", digest=sha256(b), err="corrupted")
        ("blob.get", digest=sha256(a))
        ("blob.get", digest=sha256(a))
        ("clock.advance", ms=1000)
        ("stats", ok={"total_entries": 4, "manifests": 1, "blobs": 3, "tags": 2, "expired_entries": 3, "pinned_entries": 1, "quarantined_entries": 1, "total_size_bytes": 200 + len(m2), "max_size_bytes": 100_000})
    )

    cfgb, layb = "{\"config\":true}", fill("z", 30)
    m3 = oci_manifest(cfgb, [layb])
    entries = sorted([(sha256(cfgb), len(cfgb)), (sha256(layb), 30)], key=lambda p: hexpart(p[0]))
    (
        S("metrics/contents_listing", "contents lists every entry (manifests first, then blobs, each by digest) with its metadata.", config={"default_ttl_ms": 60_000, "manifest_ttl_ms": 0})
        ("blob.put", digest=sha256(cfgb), data=cfgb)
        ("blob.put", digest=sha256(layb), data=layb)
        ("clock.advance", ms=10)
        ("manifest.put", digest=sha256(m3), data=m3)
        ("entry.pin", kind="blob", digest=sha256(layb))
        ("clock.advance", ms=10)
        ("blob.get", digest=sha256(layb))
        ("contents", ok=[
            {"kind": "manifest", "digest": sha256(m3), "size": len(m3), "created_at": T0 + 10, "accessed_at": T0 + 10, "expires_at": None, "expired": False, "access_count": 0, "pins": 0, "referrers": 0, "media_type": OCI_MANIFEST, "quarantined": False},
        ] + [
            {"kind": "blob", "digest": dg, "size": sz, "created_at": T0, "accessed_at": T0 + 20 if dg == sha256(layb) else T0, "expires_at": T0 + 60_000, "expired": False, "access_count": 1 if dg == sha256(layb) else 0, "pins": 1 if dg == sha256(layb) else 0, "referrers": 1, "media_type": None, "quarantined": False}
            for dg, sz in entries
        ])
    )

    (
        S("metrics/debug_info", "debug_info carries the configuration in force, the policy, stats and metrics.", config={"max_bytes": 4096, "eviction": "size"})
        ("blob.put", digest=sha256(a), data=a)
        ("debug_info", ok={"config": {"max_bytes": 4096, "eviction": "size", "max_tag_history": 10}, "policy": "size", "stats": {"total_entries": 1, "max_size_bytes": 4096}, "metrics": {"blob_puts": 1}})
    )

    (
        S("metrics/clear_removes_everything", "clear removes every entry, tag and file.")
        ("blob.put", digest=sha256(a), data=a)
        ("manifest.put", digest=sha256(m), data=m)
        ("tag.put", reference="app:1", digest=sha256(m))
        ("clear")
        ("stats", ok={"total_entries": 0, "manifests": 0, "blobs": 0, "tags": 0, "total_size_bytes": 0})
        ("storage.list", dir="blobs/sha256", ok=[])
        ("storage.list", dir="manifests/sha256", ok=[])
        ("tag.list", ok=[])
        ("contents", ok=[])
        ("size", ok=0)
        ("blob.get", digest=sha256(a), err="not_found")
    )

    (
        S("metrics/defaults", "Every configuration field has the documented default.")
        ("debug_info", ok={"config": DEFAULT_CONFIG, "policy": "composite(0:expired,1:lru)"})
        ("stats", ok={"max_size_bytes": 1 << 30})
    )


# =====================================================================================
# hostile input
# =====================================================================================

GOOD_HEX = hashlib.sha256(b"hostile").hexdigest()
BAD_DIGESTS = [
    "",
    "sha256",
    "sha256:",
    "sha256:" + GOOD_HEX.upper(),
    "SHA256:" + GOOD_HEX,
    "sha256:" + GOOD_HEX[:-1],
    "sha256:" + GOOD_HEX + "0",
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "sha1:" + hashlib.sha1(b"hostile").hexdigest(),
    "sha256:../../../../etc/passwd",
    "sha256:" + GOOD_HEX[:-2] + "/x",
    "sha256:" + GOOD_HEX[:-1] + "\u0000",
    " sha256:" + GOOD_HEX,
    "sha256:" + GOOD_HEX + "\n",
    "sha512:" + GOOD_HEX,
    "sha256:" + "g" * 64,
    "sha256::" + GOOD_HEX[1:],
]


def hostile():
    s = S("hostile/invalid_digests_rejected", "Malformed digests (upper-case hex, wrong length, unknown algorithm, path tricks, NUL, whitespace) are refused by every operation, and nothing is written.")
    for bad in BAD_DIGESTS:
        s("blob.put", digest=bad, data="hostile", err="invalid_digest")
    for bad in BAD_DIGESTS[:6]:
        s("blob.get", digest=bad, err="invalid_digest")
        s("manifest.get", digest=bad, err="invalid_digest")
    s("blob.has", digest=BAD_DIGESTS[9], err="invalid_digest")
    s("blob.delete", digest=BAD_DIGESTS[9], err="invalid_digest")
    s("manifest.put", digest=BAD_DIGESTS[9], data=oci_manifest(), err="invalid_digest")
    s("manifest.delete", digest=BAD_DIGESTS[9], err="invalid_digest")
    s("tag.put", reference="app:1", digest=BAD_DIGESTS[3], err="invalid_digest")
    s("tag.detect_movement", reference="app:1", digest=BAD_DIGESTS[3], err="invalid_digest")
    s("entry.pin", kind="blob", digest=BAD_DIGESTS[9], err="invalid_digest")
    s("stats", ok={"total_entries": 0, "tags": 0})
    s("storage.list", dir="blobs", ok=[])
    s("storage.list", dir="manifests", ok=[])
    s("storage.temps", ok=0)
    s("blob.put", digest="sha256:" + GOOD_HEX, data="hostile", ok="sha256:" + GOOD_HEX)

    s = S("hostile/path_traversal_writes_nothing", "Digests and references that look like paths never reach storage: the only files are the cache's own.")
    s("blob.put", digest="sha256:../../outside", data="x", err="invalid_digest")
    s("blob.put", digest="../../../tmp/evil", data="x", err="invalid_digest")
    s("manifest.put", digest="sha256:/etc/passwd", data="{}", err="invalid_digest")
    s("tag.put", reference="../../etc/passwd", digest=sha256("x"), err="invalid_reference")
    s("tag.put", reference="a/../../b:c", digest=sha256("x"), err="invalid_reference")
    s("stats", ok={"total_entries": 0, "tags": 0})
    s("storage.list", dir="blobs", ok=[])
    s("storage.list", dir="manifests", ok=[])
    s("storage.exists", path="outside", ok=False)
    s("storage.exists", path="tmp/evil", ok=False)

    m = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                 "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256("{}"), "size": 2},
                 "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:../../../etc/passwd", "size": 1}]})
    m_upper = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + GOOD_HEX.upper(), "size": 2},
                       "layers": []})
    m_md5 = compact({"schemaVersion": 2, "mediaType": OCI_INDEX,
                     "manifests": [{"mediaType": OCI_MANIFEST, "digest": "md5:d41d8cd98f00b204e9800998ecf8427e", "size": 2}]})
    (
        S("hostile/manifest_with_hostile_descriptors", "A manifest whose descriptors carry malformed digests is an invalid manifest.")
        ("manifest.put", digest=sha256(m), data=m, err="invalid_manifest")
        ("manifest.put", digest=sha256(m_upper), data=m_upper, err="invalid_manifest")
        ("manifest.put", digest=sha256(m_md5), data=m_md5, err="invalid_manifest")
        ("stats", ok={"total_entries": 0})
    )

    a = "bystander"
    (
        S("hostile/bad_input_changes_nothing", "A mix of bad requests leaves stored content, tags and sizes exactly as they were.")
        ("blob.put", digest=sha256(a), data=a)
        ("tag.put", reference="app:1", digest=sha256(a))
        ("blob.put", digest=sha256(a), data="tampered", err="digest_mismatch")
        ("blob.put", digest=sha256(a), data=a, size=3, err="size_mismatch")
        ("blob.put", digest=sha256(a), data=a + "!", err="digest_mismatch")
        ("manifest.put", digest=sha256(a), data=a, err="invalid_manifest")
        ("tag.put", reference="App:1", digest=sha256("other"), err="invalid_reference")
        ("blob.get", digest=sha256(a), ok=got(a))
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": sha256(a)})
        ("tag.history", reference="app:1", ok=[{"digest": sha256(a)}])
        ("stats", ok={"total_entries": 1, "blobs": 1, "manifests": 0, "tags": 1, "total_size_bytes": len(a)})
        ("storage.list", dir="blobs/sha256", ok=[hexpart(sha256(a))])
        ("storage.temps", ok=0)
    )

    (
        S("hostile/huge_and_odd_data", "Large and unusual content (a megabyte of NUL bytes, odd chunk sizes) is stored and verified exactly.")
        ("blob.put", digest=sha256(fill("\u0000", 1 << 20)), data="\u0000", repeat=1 << 20, chunks=[1, (1 << 20) - 2, 1], ok=sha256(fill("\u0000", 1 << 20)))
        ("blob.get", digest=sha256(fill("\u0000", 1 << 20)), chunk=65536, ok={"size": 1 << 20})
        ("blob.put", data="0123456789abcdef", repeat=40_000, chunks=[7] * 10 + [640_000 - 70], ok=sha256("0123456789abcdef" * 40_000))
        ("stats", ok={"total_size_bytes": (1 << 20) + 640_000})
    )


# =====================================================================================
# config
# =====================================================================================


def config():
    s = S("config/rejects_bad_watermarks", "Watermarks must be percentages with low <= high; a bad configuration fails to open with invalid_config.")
    for cfg in [
        {"high_watermark_percent": 0},
        {"high_watermark_percent": 101},
        {"high_watermark_percent": 80, "low_watermark_percent": 81},
        {"low_watermark_percent": 96},
        {"high_watermark_percent": 300},
        {"low_watermark_percent": -1},
    ]:
        s("cache.reopen", config=cfg, err="invalid_config")
    s("cache.reopen", config={"high_watermark_percent": 100, "low_watermark_percent": 0}, ok={"evicted": 0})
    s("cache.reopen", config={"high_watermark_percent": 1, "low_watermark_percent": 1})

    s = S("config/rejects_bad_limits", "The byte cap must be positive; manifest limits must be within 1 byte..64 MiB; history at most 10000.")
    for cfg in [
        {"max_bytes": 0},
        {"max_manifest_bytes": 0},
        {"max_manifest_bytes": (64 << 20) + 1},
        {"max_tag_history": 10_001},
        {"max_bytes": -5},
        {"default_ttl_ms": -1},
    ]:
        s("cache.reopen", config=cfg, err="invalid_config")
    s("cache.reopen", config={"max_bytes": 1, "max_manifest_bytes": 64 << 20, "max_tag_history": 10_000, "default_ttl_ms": 0, "tag_ttl_ms": 0})

    s = S("config/rejects_bad_policies", "Eviction policies are lru, size, ttl, expired or a non-empty composite of them.")
    for pol in [
        {"composite": []},
        {"composite": [[0, {"composite": []}]]},
        "random",
        "LRU",
        {"composite": [[0, "lru", 1]]},
        {"composite": [["first", "lru"]]},
    ]:
        s("cache.reopen", config={"eviction": pol}, err="invalid_config")
    for pol in ["lru", "size", "ttl", "expired", {"composite": [[5, "size"], [2, {"composite": [[0, "expired"], [1, "ttl"]]}]]}]:
        s("cache.reopen", config={"eviction": pol})
    s("debug_info", ok={"policy": "composite(2:composite(0:expired,1:ttl),5:size)"})

    s = S("config/rejects_unknown_fields_and_types", "Unknown fields and values of the wrong type are refused (typos must not silently become defaults).")
    for cfg in [
        {"max_byte": 1024},
        {"maxBytes": 1024},
        {"max_bytes": "1GiB"},
        {"sliding_ttl": "yes"},
        {"manifest_ttl_ms": "1h"},
        {"verify_reads": 1},
    ]:
        s("cache.reopen", config=cfg, err="invalid_config")
    s("cache.reopen", config={"manifest_ttl_ms": None, "blob_ttl_ms": 5})

    a = "survives a failed open"
    (
        S("config/failed_open_changes_nothing", "A failed open with a bad configuration touches nothing stored; a good one opens the same content.")
        ("blob.put", digest=sha256(a), data=a)
        ("tag.put", reference="app:1", digest=sha256(a))
        ("cache.reopen", config={"max_bytes": 0}, err="invalid_config")
        ("storage.exists", kind="blob", digest=sha256(a), ok=True)
        ("cache.reopen", config={}, ok={"orphans_adopted": 0, "missing_dropped": 0})
        ("blob.get", digest=sha256(a), ok=got(a))
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": sha256(a)})
    )

    (
        S("config/subset_over_defaults", "A configuration gives any subset of fields; the rest keep their defaults.", config={"max_bytes": 2048, "tag_ttl_ms": 1})
        ("debug_info", ok={"config": dict(DEFAULT_CONFIG, max_bytes=2048, tag_ttl_ms=1)})
        ("cache.reopen", config={"sliding_ttl": True})
        ("debug_info", ok={"config": dict(DEFAULT_CONFIG, sliding_ttl=True)})
    )

    d = "relaxed but verified"
    (
        S("config/durability_levels", "durability is strict by default or relaxed; relaxed needs verify_reads; either level keeps what a crash of the process interrupts.", config={"durability": "relaxed"})
        ("debug_info", ok={"config": dict(DEFAULT_CONFIG, durability="relaxed")})
        ("blob.put", digest=sha256(d), data=d)
        ("tag.put", reference="app:1", digest=sha256(d))
        ("cache.crash")
        ("cache.reopen", config={"durability": "relaxed"})
        ("blob.get", digest=sha256(d), ok=got(d))
        ("tag.resolve", reference="app:1", ok={"state": "fresh", "digest": sha256(d)})
        ("cache.reopen", config={"durability": "relaxed", "verify_reads": False}, err="invalid_config")
        ("cache.reopen", config={"durability": "none"}, err="invalid_config")
        ("cache.reopen", config={"durability": True}, err="invalid_config")
        ("cache.reopen", config={"durability": "strict", "verify_reads": False})
        ("debug_info", ok={"config": dict(DEFAULT_CONFIG, verify_reads=False)})
        ("blob.get", digest=sha256(d), ok=got(d))
    )


# =====================================================================================
# pull: the core's sans-I/O Pull against scripted HTTP exchanges
# =====================================================================================

REG = "127.0.0.1:5000"
API = "https://127.0.0.1:5000/v2/app"
ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def pull_image(tag_seed):
    """An image: config, two layers (ASCII text), its manifest."""
    cfg = compact({"architecture": "amd64", "os": "linux", "seed": tag_seed})
    layers = [fill("ab"[i], 1500 + 700 * i) + tag_seed for i in range(2)]
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", cfg),
        "layers": [descriptor(LAYER_TAR, l) for l in layers],
    }
    return {"manifest": compact(body), "config": cfg, "layers": layers}


def req(method, url, **headers):
    out = {"method": method, "url": url}
    if headers:
        out["headers"] = {k.replace("_", "-"): v for k, v in headers.items()}
    return out


def resp(status, body="", headers=(), cut_after=None):
    r = {"status": status, "headers": [list(h) for h in headers], "body": body}
    if cut_after is not None:
        r["cut_after"] = cut_after
    return r


def manifest_answer(body, media=OCI_MANIFEST, digest=None, head=False):
    return resp(
        200,
        "" if head else body,
        [("Content-Type", media), ("Docker-Content-Digest", digest or sha256(body)), ("Content-Length", str(len(body)))],
    )


def get_manifest(ref, body, media=OCI_MANIFEST, **auth):
    return {"request": req("GET", f"{API}/manifests/{ref}", Accept=ACCEPT, **auth), "response": manifest_answer(body, media)}


def get_blob(data, url=None, **headers):
    url = url or f"{API}/blobs/{sha256(data)}"
    return {"request": req("GET", url, **headers), "response": resp(200, data, [("Content-Length", str(len(data)))])}


def cold(img, tag="1.0", **auth):
    """The exchanges of a cold pull of `img` by tag."""
    return [get_manifest(tag, img["manifest"], **auth)] + [get_blob(b, **auth) for b in [img["config"]] + img["layers"]]


def refused(method, url):
    return {"request": req(method, url), "error": "connection refused"}


def pull():
    img = pull_image("1")
    ref = f"{REG}/app:1.0"
    d = sha256(img["manifest"])
    cold_ok = {"tag": {"state": "fetched"}, "digest": d, "media_type": OCI_MANIFEST, "requests": 4}

    s = S("pull/cold_pull_stores_the_graph_then_the_tag", "An unknown tag is fetched with GET; every blob is verified into the cache, then the manifest, then the tag.")
    s("pull", reference=ref, http=cold(img), ok=dict(cold_ok, bytes_fetched=len(img["manifest"]) + sum(len(b) for b in [img["config"]] + img["layers"])))
    s("manifest.get", digest=d, ok={"digest": d, "media_type": OCI_MANIFEST, "data": img["manifest"]})
    for b in [img["config"]] + img["layers"]:
        s("blob.get", digest=sha256(b), ok=got(b))
    s("tag.resolve", reference=ref, ok={"state": "fresh", "digest": d})

    s = S("pull/a_fresh_tag_makes_no_request", "Within tag_ttl_ms a pull asks nothing: the graph comes from the cache.")
    s("pull", reference=ref, http=cold(img), ok=cold_ok)
    s("pull", reference=ref, http=[], ok={"tag": {"state": "fresh"}, "digest": d, "requests": 0, "bytes_fetched": 0})

    s = S("pull/a_stale_tag_costs_one_head_and_is_renewed", "Past tag_ttl_ms one HEAD revalidates the tag: the same digest renews it, and no blob is asked for.")
    s("pull", reference=ref, http=cold(img), ok=cold_ok)
    s("clock.advance", ms=300_001)
    s("pull", reference=ref, http=[{"request": req("HEAD", f"{API}/manifests/1.0", Accept=ACCEPT), "response": manifest_answer(img["manifest"], head=True)}], ok={"tag": {"state": "revalidated"}, "requests": 1})
    s("pull", reference=ref, http=[], ok={"tag": {"state": "fresh"}, "requests": 0})

    nxt = pull_image("2")
    dn = sha256(nxt["manifest"])
    s = S("pull/a_moved_tag_is_fetched_and_kept_in_history", "A stale tag whose HEAD gives another digest is fetched by digest; what the cache holds is not fetched again; the history keeps both.")
    s("pull", reference=ref, http=cold(img), ok=cold_ok)
    s("clock.advance", ms=300_001)
    moved = [
        {"request": req("HEAD", f"{API}/manifests/1.0"), "response": manifest_answer(nxt["manifest"], head=True)},
        get_manifest(dn, nxt["manifest"]),
    ] + [get_blob(b) for b in [nxt["config"]] + nxt["layers"]]
    s("pull", reference=ref, http=moved, ok={"tag": {"state": "moved", "previous": d}, "digest": dn, "requests": 5})
    s("tag.history", reference=ref, ok=[{"digest": d}, {"digest": dn}])

    s = S("pull/an_unreachable_registry_serves_a_cached_tag_stale", "Connection errors after bounded retries: a cached tag is served stale (the report says so), an uncached one fails with network. A TLS failure to a loopback registry falls back to plain HTTP first.")
    s("pull", reference=ref, http=cold(img), ok=cold_ok)
    s("clock.advance", ms=300_001)
    http_api = "http://127.0.0.1:5000/v2/app"
    down = [refused("HEAD", f"{API}/manifests/1.0")] + [refused("HEAD", f"{http_api}/manifests/1.0") for _ in range(4)]
    s("pull", reference=ref, http=down, ok={"tag": {"state": "stale"}, "digest": d, "requests": 5})
    down = [refused("GET", f"{API}/manifests/2.0")] + [refused("GET", f"{http_api}/manifests/2.0") for _ in range(4)]
    s("pull", reference=f"{REG}/app:2.0", http=down, err="network")
    s("pull", reference=ref, options={"allow_stale": False}, http=[refused("HEAD", f"{API}/manifests/1.0")] + [refused("HEAD", f"{http_api}/manifests/1.0") for _ in range(4)], err="network")

    s = S("pull/offline_uses_only_the_cache", "Offline, a pull never asks: an uncached tag is network, a stale one is served stale.")
    s("pull", reference=ref, options={"offline": True}, http=[], err="network")
    s("pull", reference=ref, http=cold(img), ok=cold_ok)
    s("clock.advance", ms=300_001)
    s("pull", reference=ref, options={"offline": True}, http=[], ok={"tag": {"state": "stale", "reason": "offline"}, "requests": 0})

    challenge = ("WWW-Authenticate", 'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:app:pull"')
    token_url = "https://auth.example/token?service=registry.example&scope=repository%3Aapp%3Apull"
    s = S("pull/a_bearer_token_is_fetched_once_and_reused", "A 401 with a Bearer challenge: one anonymous token request, then every request carries the token.")
    http = [
        {"request": req("GET", f"{API}/manifests/1.0", Authorization=None), "response": resp(401, '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', [challenge])},
        {"request": req("GET", token_url, Authorization=None), "response": resp(200, '{"token":"t1","expires_in":300}')},
    ] + cold(img, Authorization="Bearer t1")
    s("pull", reference=ref, http=http, ok=dict(cold_ok, requests=6))

    basic = ("WWW-Authenticate", 'Basic realm="registry"')
    s = S("pull/basic_auth_answers_the_challenge_with_the_credentials_for_the_registry", "A Basic challenge without credentials is unauthorized; with credentials for the registry the request is repeated with them.")
    s("pull", reference=ref, http=[{"request": req("GET", f"{API}/manifests/1.0"), "response": resp(401, "", [basic])}], err="unauthorized")
    creds = {REG: {"username": "bob", "password": "pw"}}
    auth = "Basic Ym9iOnB3"
    http = [{"request": req("GET", f"{API}/manifests/1.0", Authorization=None), "response": resp(401, "", [basic])}] + cold(img, Authorization=auth)
    s("pull", reference=ref, options={"credentials": creds}, http=http, ok=dict(cold_ok, requests=5))
    s("clock.advance", ms=300_001)
    s("pull", reference=ref, options={"credentials": {REG: {"username": "bob", "password": "wrong"}}}, http=[
        {"request": req("HEAD", f"{API}/manifests/1.0"), "response": resp(401, "", [basic])},
        {"request": req("HEAD", f"{API}/manifests/1.0", Authorization="Basic Ym9iOndyb25n"), "response": resp(401, "", [basic])},
    ], err="unauthorized")

    s = S("pull/a_redirect_to_another_origin_carries_no_credentials", "Blob requests that redirect to another host (a CDN) are followed by the pull, without the registry's token.")
    layer = img["layers"][1]
    blob_url = f"{API}/blobs/{sha256(layer)}"
    cdn = "https://cdn.example/storage/" + hexpart(sha256(layer))
    http = [
        {"request": req("GET", f"{API}/manifests/1.0"), "response": resp(401, "", [challenge])},
        {"request": req("GET", token_url), "response": resp(200, '{"access_token":"t1"}')},
        get_manifest("1.0", img["manifest"], Authorization="Bearer t1"),
        get_blob(img["config"], Authorization="Bearer t1"),
        get_blob(img["layers"][0], Authorization="Bearer t1"),
        {"request": req("GET", blob_url, Authorization="Bearer t1"), "response": resp(307, "", [("Location", cdn)])},
        get_blob(layer, url=cdn, Authorization=None),
    ]
    s("pull", reference=ref, http=http, ok=dict(cold_ok, requests=7))
    s("blob.get", digest=sha256(layer), ok=got(layer))

    s = S("pull/too_many_requests_is_retried", "A 429 (or 5xx) is retried after Retry-After (or a backoff); the registry's JSON error is its message when retries run out.")
    http = [{"request": req("GET", f"{API}/manifests/1.0"), "response": resp(429, "", [("Retry-After", "7")])}] + cold(img)
    s("pull", reference=ref, http=http, ok=dict(cold_ok, requests=5))
    unavailable = resp(503, '{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}')
    s("pull", reference=f"{REG}/app:2.0", http=[{"request": req("GET", f"{API}/manifests/2.0"), "response": unavailable}] * 4, err="network")

    s = S("pull/a_broken_download_resumes_with_range", "A blob download cut by the network resumes with a Range request from the byte it reached; a registry that ignores Range is read from the start.")
    big = img["layers"][1]
    big_url = f"{API}/blobs/{sha256(big)}"
    http = cold(img)[:3] + [
        {"request": req("GET", big_url, Range=None), "response": resp(200, big, [("Content-Length", str(len(big)))], cut_after=1000)},
        {"request": req("GET", big_url, Range="bytes=1000-"), "response": resp(206, big[1000:], [("Content-Range", f"bytes 1000-{len(big) - 1}/{len(big)}")])},
    ]
    s("pull", reference=ref, http=http, ok=dict(cold_ok, requests=5, blobs=[{}, {}, {"digest": sha256(big), "resumed_from": 1000, "fetched": len(big)}]))
    s("blob.get", digest=sha256(big), ok=got(big))
    s = S("pull/a_download_broken_in_one_pull_resumes_in_the_next", "A pull that fails while a blob downloads keeps what arrived (a partial, outside the index); the next pull asks only for the rest, with Range, and the bytes verify.")
    range_unavailable = {"request": req("GET", big_url, Range="bytes=1000-"), "response": unavailable}
    http = cold(img)[:3] + [
        {"request": req("GET", big_url, Range=None), "response": resp(200, big, [("Content-Length", str(len(big)))], cut_after=1000)},
    ] + [range_unavailable] * 3
    s("pull", reference=ref, http=http, err="network")
    s("blob.has", digest=sha256(big), ok=False)
    s("tag.resolve", reference=ref, ok={"state": "unknown"})
    http = [
        get_manifest("1.0", img["manifest"]),
        {"request": req("GET", big_url, Range="bytes=1000-"), "response": resp(206, big[1000:], [("Content-Range", f"bytes 1000-{len(big) - 1}/{len(big)}")])},
    ]
    s("pull", reference=ref, http=http, ok=dict(cold_ok, requests=2, blobs=[{"fetched": 0}, {"fetched": 0}, {"digest": sha256(big), "resumed_from": 1000, "fetched": len(big) - 1000}]))
    s("blob.get", digest=sha256(big), ok=got(big))
    s("integrity.check", ok={"healthy": True})
    s = S("pull/a_registry_that_ignores_range_is_read_again_from_the_start", "A 200 answer to a Range request restarts the blob; the bytes still verify.")
    http = cold(img)[:3] + [
        {"request": req("GET", big_url), "response": resp(200, big, [], cut_after=1000)},
        {"request": req("GET", big_url, Range="bytes=1000-"), "response": resp(200, big)},
    ]
    s("pull", reference=ref, http=http, ok=dict(cold_ok, requests=5, blobs=[{}, {}, {"resumed_from": None, "fetched": len(big) + 1000}]))
    s("blob.get", digest=sha256(big), ok=got(big))

    s = S("pull/a_flipped_byte_is_a_digest_mismatch_and_nothing_half_pulled_is_visible", "A blob whose bytes do not match its descriptor fails the pull with digest_mismatch: it is not stored, nor the manifest above it, nor the tag.")
    flipped = big[:100] + ("b" if big[100] != "b" else "c") + big[101:]
    http = cold(img)[:3] + [{"request": req("GET", big_url), "response": resp(200, flipped)}]
    s("pull", reference=ref, http=http, err="digest_mismatch")
    s("blob.has", digest=sha256(big), ok=False)
    s("manifest.has", digest=d, ok=False)
    s("tag.resolve", reference=ref, ok={"state": "unknown"})
    s("contents", ok=[{"digest": sha256(img["config"]), "pins": 0}, {"digest": sha256(img["layers"][0]), "pins": 0}] if hexpart(sha256(img["config"])) < hexpart(sha256(img["layers"][0])) else [{"digest": sha256(img["layers"][0]), "pins": 0}, {"digest": sha256(img["config"]), "pins": 0}])

    s = S("pull/manifests_are_checked_against_the_header_and_the_digest_asked_for", "A wrong Docker-Content-Digest, or a manifest whose digest differs from the reference's, is digest_mismatch; nothing is stored.")
    other = sha256("something else")
    s("pull", reference=ref, http=[{"request": req("GET", f"{API}/manifests/1.0"), "response": manifest_answer(img["manifest"], digest=other)}], err="digest_mismatch")
    s("pull", reference=f"{REG}/app@{d}", http=[{"request": req("GET", f"{API}/manifests/{d}"), "response": resp(200, nxt["manifest"], [("Content-Type", OCI_MANIFEST)])}], err="digest_mismatch")
    s("stats", ok={"total_entries": 0})

    s = S("pull/an_oversize_manifest_is_too_large", "A manifest over the limit is refused from its Content-Length, or while it is read when none is given.")
    s("pull", reference=ref, options={"max_manifest_bytes": 100}, http=[get_manifest("1.0", img["manifest"])], err="too_large")
    s("pull", reference=ref, options={"max_manifest_bytes": 100}, http=[{"request": req("GET", f"{API}/manifests/1.0"), "response": resp(200, " " * 5000)}], err="too_large")

    arm = pull_image("arm")
    idx = compact({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            dict(descriptor(OCI_MANIFEST, img["manifest"]), platform={"architecture": "amd64", "os": "linux"}),
            dict(descriptor(OCI_MANIFEST, arm["manifest"]), platform={"architecture": "arm64", "os": "linux", "variant": "v8"}),
        ],
    })
    s = S("pull/an_index_gives_the_manifest_for_the_platform", "From an index the pull takes the manifest for the requested platform (linux/arm64 matches variant v8), and only its blobs; a platform the index lacks is not_found.")
    http = [get_manifest("multi", idx, media=OCI_INDEX), get_manifest(sha256(arm["manifest"]), arm["manifest"])] + [get_blob(b) for b in [arm["config"]] + arm["layers"]]
    s("pull", reference=f"{REG}/app:multi", options={"platform": "linux/arm64"}, http=http, ok={"tag": {"state": "fetched"}, "digest": sha256(idx), "media_type": OCI_INDEX, "manifests": [{"digest": sha256(idx)}, {"digest": sha256(arm["manifest"]), "platform": "linux/arm64/v8"}]})
    s("manifest.has", digest=sha256(img["manifest"]), ok=False)
    s("pull", reference=f"{REG}/app:other", options={"platform": "linux/s390x"}, http=[get_manifest("other", idx, media=OCI_INDEX)], err="not_found")

    s = S("pull/a_graph_that_cannot_fit_fails_full_and_changes_nothing", "Before any blob is asked for, the pull checks that the whole graph fits under the cap: one that cannot fails with full, evicting nothing.", config=small(3000))
    keep = "kept " * 100
    s("blob.put", digest=sha256(keep), data=keep)
    s("entry.pin", kind="blob", digest=sha256(keep), ok=1)
    s("pull", reference=ref, http=[get_manifest("1.0", img["manifest"])], err="full")
    s("contents", ok=[{"digest": sha256(keep), "pins": 1}])

    s = S("pull/mirrors_come_first_and_a_failing_one_is_asked_once", "Mirrors are asked before the registry; one that fails is not asked again in that pull.")
    mirror = "http://127.0.0.1:6000/v2/app"
    http = [refused("GET", f"{mirror}/manifests/1.0")] + cold(img)
    s("pull", reference=ref, options={"mirrors": ["http://127.0.0.1:6000"]}, http=http, ok=dict(cold_ok, requests=5))
    s("clock.advance", ms=300_001)
    s("pull", reference=ref, options={"mirrors": ["http://127.0.0.1:6000"]}, http=[{"request": req("HEAD", f"{mirror}/manifests/1.0"), "response": manifest_answer(img["manifest"], head=True)}], ok={"tag": {"state": "revalidated"}, "requests": 1})



# =====================================================================================


def main():
    manifests()
    blobs()
    ttl()
    tags()
    eviction()
    persistence()
    integrity()
    metrics()
    hostile()
    config()
    pull()

    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names)), "duplicate scenario names"
    wanted = {}
    for s in SCENARIOS:
        wanted[os.path.join(ROOT, *s.name.split("/")) + ".json"] = s.to_json()

    existing = set()
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".json"):
                existing.add(os.path.join(dirpath, f))

    check = "--check" in sys.argv[1:]
    stale = sorted(existing - set(wanted))
    differing = []
    for path, text in sorted(wanted.items()):
        try:
            with open(path, encoding="utf-8") as f:
                same = f.read() == text
        except FileNotFoundError:
            same = False
        if same:
            continue
        differing.append(path)
        if not check:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
    if check:
        if stale or differing:
            for p in stale:
                print(f"stale: {os.path.relpath(p, ROOT)}")
            for p in differing:
                print(f"out of date: {os.path.relpath(p, ROOT)}")
            sys.exit(1)
        print(f"{len(wanted)} scenarios up to date")
        return
    for p in stale:
        os.remove(p)
    by_area = {}
    for s in SCENARIOS:
        area = s.name.split("/")[0]
        by_area[area] = by_area.get(area, 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in by_area.items())
    print(f"{len(wanted)} scenarios ({summary}); {len(differing)} written, {len(stale)} removed")


if __name__ == "__main__":
    main()
