// cache.export and cache.import in Node: OCI image layouts (`oci-layout`, `index.json`,
// `blobs/<algorithm>/<hex>`), as the native `ocicache export` / `import` write and read them.
// What is written and stored is the core's (rust/image_layout.rs: the graph, the checks,
// index.json's entries); this file moves the bytes. As in the native host, no symbolic link in
// a layout is followed: directory components are checked with lstat, files opened with
// O_NOFOLLOW | O_NONBLOCK and checked to be regular files.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { WasmImport, ociLayoutBytes } from '../dist/ocicache_js.js';
import {
  DigestMismatchError,
  InvalidArgumentError,
  NotFoundError,
  StorageError,
  TooLargeError,
} from './errors.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = fs.constants;
const OCI_LAYOUT = 'oci-layout';
const INDEX = 'index.json';
const BLOBS = 'blobs';
/** The core's MAX_OCI_LAYOUT_BYTES and MAX_INDEX_BYTES. */
const MAX_OCI_LAYOUT_BYTES = 4 << 10;
const MAX_INDEX_BYTES = 16 << 20;
const CHUNK = 1 << 20;
let tempCounter = 0;

/** The package's error for a failed file operation at `file` of a layout (as the native host's). */
function layoutError(file, e) {
  switch (e?.code) {
    case 'ELOOP':
      return new InvalidArgumentError(`invalid argument: ${file}: is a symbolic link; an image layout is used without following links`, { cause: e });
    case 'ENOTDIR':
      return new InvalidArgumentError(`invalid argument: ${file}: is not a directory`, { cause: e });
    case 'ENOSPC':
    case 'EDQUOT':
      return new StorageError(`storage: no space left (${file})`, { storageKind: 'no_space', cause: e });
    case 'ENOENT':
      return new NotFoundError(`not found: ${file}`, { details: { what: file }, cause: e });
    default:
      // Our own errors pass through; the system's are the storage's.
      return typeof e?.code === 'string' && e.code.startsWith('E')
        ? new StorageError(`storage: ${file}: ${e.message}`, { storageKind: 'io', cause: e })
        : e;
  }
}

function notRegular(file) {
  return new InvalidArgumentError(`invalid argument: ${file}: is not a regular file`);
}

/**
 * The directories of `rel` under `dir` (all but its last component), each a real directory:
 * a symbolic link is refused, a missing one gives false (the file is absent).
 */
function directoriesExist(dir, rel) {
  const parts = rel.split('/');
  let at = dir;
  for (const part of parts.slice(0, -1)) {
    at = path.join(at, part);
    const st = fs.lstatSync(at, { throwIfNoEntry: false });
    if (!st) return false;
    if (st.isSymbolicLink()) throw layoutError(at, { code: 'ELOOP' });
    if (!st.isDirectory()) throw layoutError(at, { code: 'ENOTDIR' });
  }
  return true;
}

/** Opens the regular file `rel` of a layout for reading: `{fd, size}`, or null if absent. */
function openLayoutFile(dir, rel) {
  if (!directoriesExist(dir, rel)) return null;
  const file = path.join(dir, rel);
  let fd;
  try {
    fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    if (e.code === 'ENOENT') return null;
    throw layoutError(file, e);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw notRegular(file);
  }
  return { fd, size: st.size };
}

/** Up to `max` bytes of an open file, from its start. */
function readUpTo(fd, max) {
  const buf = Buffer.alloc(max);
  let n = 0;
  while (n < max) {
    const got = fs.readSync(fd, buf, n, max - n, n);
    if (got === 0) break;
    n += got;
  }
  return buf.subarray(0, n);
}

/** The whole regular file `rel` (TooLargeError beyond `limit`), or null if absent. */
function readLayoutFile(dir, rel, limit) {
  const f = openLayoutFile(dir, rel);
  if (!f) return null;
  try {
    if (f.size > limit) throw new TooLargeError(`too large: ${f.size} bytes, limit ${limit}`, { details: { size: f.size, limit } });
    const bytes = readUpTo(f.fd, limit + 1);
    if (bytes.length > limit) throw new TooLargeError(`too large: ${bytes.length} bytes, limit ${limit}`, { details: { size: bytes.length, limit } });
    return bytes;
  } finally {
    fs.closeSync(f.fd);
  }
}

/** The digest (`algorithm:hex`) of an open file's bytes. */
function hashFd(fd, algorithm) {
  const h = createHash(algorithm);
  const buf = Buffer.alloc(CHUNK);
  let pos = 0;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, CHUNK, pos);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    pos += n;
  }
  return `${algorithm}:${h.digest('hex')}`;
}

const algorithmOf = (digest) => digest.slice(0, digest.indexOf(':'));

/**
 * Whether the layout holds `rel` with exactly the bytes of `digest`: false if absent; a file
 * with other bytes is a DigestMismatchError naming it (and is left as it is).
 */
function holdsExactly(dir, rel, digest) {
  const f = openLayoutFile(dir, rel);
  if (!f) return false;
  try {
    const actual = hashFd(f.fd, algorithmOf(digest));
    if (actual !== digest) {
      const shown = `${actual} in ${path.join(dir, rel)} (left as it is)`;
      throw new DigestMismatchError(`digest mismatch: expected ${digest}, got ${shown}`, { details: { expected: digest, actual: shown } });
    }
    return true;
  } finally {
    fs.closeSync(f.fd);
  }
}

/** The directory `rel` of a layout, created if missing; never through a symbolic link. */
function ensureDir(dir, rel) {
  const full = path.join(dir, rel);
  try {
    fs.mkdirSync(full);
  } catch (e) {
    if (e.code !== 'EEXIST') throw layoutError(full, e);
  }
  const st = fs.lstatSync(full);
  if (st.isSymbolicLink()) throw layoutError(full, { code: 'ELOOP' });
  if (!st.isDirectory()) throw layoutError(full, { code: 'ENOTDIR' });
  return full;
}

function fsyncDir(dir) {
  const fd = fs.openSync(dir, O_RDONLY | O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function tempName(dir) {
  return path.join(dir, `.ocicache-${process.pid}-${tempCounter++}.tmp`);
}

/**
 * Writes `name` in `dir` through a temp file: `fill(fd)` writes it, it is fsynced, then
 * renamed onto `name`, so a crash never leaves part of a file under that name.
 */
function writeAtomic(dir, name, fill) {
  const temp = tempName(dir);
  let fd;
  try {
    fd = fs.openSync(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
  } catch (e) {
    throw layoutError(temp, e);
  }
  try {
    try {
      fill(fd);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, path.join(dir, name));
  } catch (e) {
    fs.rmSync(temp, { force: true });
    throw layoutError(path.join(dir, name), e);
  }
}

function writeAll(fd, bytes) {
  let off = 0;
  while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
}

/**
 * Hard-links the cache's file `from` into `dir` as `name` if both are on one filesystem and
 * the linked file holds exactly the bytes of `digest` (read back and hashed: the cache's file
 * is never trusted blindly). Whether it did; false leaves nothing behind.
 */
function linkVerified(from, dir, name, digest) {
  const temp = tempName(dir);
  try {
    fs.linkSync(from, temp);
  } catch {
    return false;
  }
  let ok = false;
  try {
    const fd = fs.openSync(temp, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    try {
      ok = fs.fstatSync(fd).isFile() && hashFd(fd, algorithmOf(digest)) === digest;
    } finally {
      fs.closeSync(fd);
    }
    if (ok) fs.renameSync(temp, path.join(dir, name));
  } catch {
    ok = false;
  }
  if (!ok) fs.rmSync(temp, { force: true });
  return ok;
}

/**
 * Writes the image `reference` names, from the cache alone, into `dir` as an OCI image
 * layout; resolves to the native ExportReport's fields. `cacheRoot`: the cache directory when
 * the cache is over one (blobs are then hard-linked where possible).
 */
export function exportLayout(cache, reference, dir, cacheRoot) {
  if (typeof dir !== 'string' || dir === '') throw new InvalidArgumentError('dir must be a non-empty path string');
  // Everything is checked to be cached before the directory is touched.
  const plan = cache.exportPlan(reference);
  try {
    const info = JSON.parse(plan.json());
    // Open readers are leases: eviction cannot take these blobs until they are written.
    const readers = [];
    try {
      for (const b of info.blobs) readers.push(cache.openBlob(b.digest));
      const existed = fs.existsSync(dir);
      try {
        fs.mkdirSync(dir, { recursive: true });
      } catch (e) {
        throw layoutError(dir, e);
      }
      if (!fs.statSync(dir).isDirectory()) throw layoutError(dir, { code: 'ENOTDIR' });
      const marker = readLayoutFile(dir, OCI_LAYOUT, MAX_OCI_LAYOUT_BYTES);
      const index = readLayoutFile(dir, INDEX, MAX_INDEX_BYTES);
      const others = existed && fs.readdirSync(dir).length > 0;
      if (plan.prepareLayout(dir, marker ?? undefined, index ?? undefined, others)) {
        writeAtomic(dir, OCI_LAYOUT, (fd) => writeAll(fd, ociLayoutBytes()));
      }
      ensureDir(dir, BLOBS);
      const dirs = new Set();
      const report = {
        reference: info.reference,
        digest: info.digest,
        media_type: info.media_type,
        tag: info.tag ?? null,
        tag_stale: info.tag_stale,
        dir,
        manifests: info.manifests.length,
        blobs: info.blobs.length,
        bytes: info.bytes,
        linked: 0,
        copied: 0,
        already_present: 0,
        replaced: [],
      };
      const place = (rel) => {
        const parent = ensureDir(dir, path.dirname(rel));
        dirs.add(parent);
        return [parent, path.basename(rel)];
      };
      info.blobs.forEach((blob, i) => {
        const [parent, name] = place(blob.layout_path);
        if (holdsExactly(dir, blob.layout_path, blob.digest)) {
          report.already_present++;
        } else if (cacheRoot && linkVerified(path.join(cacheRoot, blob.cache_path), parent, name, blob.digest)) {
          report.linked++;
        } else {
          // The cache's reader verifies as it goes: its last chunk comes only once the whole
          // blob hashed to its digest, so a bad cached blob never gets published.
          writeAtomic(parent, name, (fd) => {
            for (;;) {
              const chunk = readers[i].read(CHUNK);
              if (chunk.length === 0) break;
              writeAll(fd, chunk);
            }
          });
          report.copied++;
        }
      });
      info.manifests.forEach((m, i) => {
        const [parent, name] = place(m.layout_path);
        if (!holdsExactly(dir, m.layout_path, m.digest)) {
          const bytes = plan.manifestBytes(i);
          writeAtomic(parent, name, (fd) => writeAll(fd, bytes));
        }
      });
      // Every blob is durable under its name before index.json points at any of them.
      for (const d of dirs) fsyncDir(d);
      fsyncDir(path.join(dir, BLOBS));
      fsyncDir(dir);
      const indexBytes = plan.indexBytes();
      writeAtomic(dir, INDEX, (fd) => writeAll(fd, indexBytes));
      fsyncDir(dir);
      report.replaced = plan.replaced();
      return report;
    } finally {
      for (const r of readers) r.close();
    }
  } finally {
    plan.free();
  }
}

/**
 * Reads the OCI image layout in `dir` into the cache (with `tag`, only the image whose
 * `org.opencontainers.image.ref.name` is `tag`; `repository` names the repository of its
 * tags); resolves to the native ImportReport's fields. Every blob streams through the cache's
 * verified writer; on any failure, what this import stored is removed again.
 */
export function importLayout(cache, dir, { tag, repository, maxManifestBytes }) {
  if (typeof dir !== 'string' || dir === '') throw new InvalidArgumentError('dir must be a non-empty path string');
  let st;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    throw layoutError(dir, e);
  }
  if (!st.isDirectory()) throw layoutError(dir, { code: 'ENOTDIR' });
  const marker = readLayoutFile(dir, OCI_LAYOUT, MAX_OCI_LAYOUT_BYTES);
  const index = readLayoutFile(dir, INDEX, MAX_INDEX_BYTES);
  const plan = new WasmImport(dir, marker ?? undefined, index ?? undefined, tag, repository, maxManifestBytes);
  try {
    const absent = (d) => new NotFoundError(`not found: ${path.join(dir, d.layout_path)}: ${d.digest} is not in the layout`, { details: { what: d.digest } });
    for (;;) {
      const next = plan.nextManifest();
      if (next === undefined) break;
      const d = JSON.parse(next);
      const f = openLayoutFile(dir, d.layout_path);
      if (!f) throw absent(d);
      let bytes;
      try {
        // One byte more than announced shows a longer file; the core reports the mismatch.
        bytes = readUpTo(f.fd, d.size + 1);
      } finally {
        fs.closeSync(f.fd);
      }
      plan.addManifest(bytes);
    }
    const content = JSON.parse(plan.finish());
    const report = {
      dir,
      images: content.images.map((i) => ({ digest: i.digest, media_type: i.media_type, tag: i.tag ?? null })),
      manifests_stored: 0,
      manifests_present: 0,
      blobs_stored: 0,
      blobs_present: 0,
      bytes_stored: 0,
    };
    const stored = { blobs: [], manifests: [] };
    const leases = [];
    try {
      for (const blob of content.blobs) {
        if (cache.hasBlob(blob.digest)) {
          report.blobs_present++;
          leases.push(cache.openBlob(blob.digest));
          continue;
        }
        const f = openLayoutFile(dir, blob.layout_path);
        if (!f) throw absent(blob);
        const writer = cache.beginBlob({ digest: blob.digest, size: blob.size });
        try {
          const buf = Buffer.alloc(Math.min(CHUNK, Math.max(blob.size, 1)));
          let pos = 0;
          for (;;) {
            const n = fs.readSync(f.fd, buf, 0, buf.length, pos);
            if (n === 0) break;
            writer.write(buf.subarray(0, n));
            pos += n;
          }
          writer.commit();
        } catch (e) {
          writer.abort();
          throw e;
        } finally {
          fs.closeSync(f.fd);
        }
        stored.blobs.push(blob.digest);
        leases.push(cache.openBlob(blob.digest));
        report.blobs_stored++;
        report.bytes_stored += blob.size;
      }
      // Children before the indexes that list them.
      content.manifests.forEach((m, i) => {
        if (cache.hasManifest(m.digest)) {
          report.manifests_present++;
          return;
        }
        cache.putManifest(m.digest, plan.manifestBytes(i), { mediaType: m.media_type });
        stored.manifests.push(m.digest);
        report.manifests_stored++;
      });
      for (const image of content.images) {
        if (image.tag) cache.putTag(image.tag, image.digest);
      }
    } catch (e) {
      // Nothing of the layout stays: manifests first, then their blobs.
      for (const r of leases.splice(0)) r.close();
      for (const d of stored.manifests.reverse()) {
        try {
          cache.deleteManifest(d);
        } catch {
          // Best effort, as the native host's.
        }
      }
      for (const d of stored.blobs.reverse()) {
        try {
          cache.deleteBlob(d);
        } catch {
          // Best effort.
        }
      }
      throw e;
    } finally {
      for (const r of leases) r.close();
    }
    return report;
  } finally {
    plan.free();
  }
}
