// The path rule every JS storage applies, the same as the native host's
// (host-native/src/storage/fs.rs `check_path`): relative, `/`-separated components of
// [A-Za-z0-9._-], no empty, `.` or `..` component, at most 512 bytes (components at most 255),
// not under `tmp/` (the temp area) and not exactly one of the host's own files at the top
// (`lock`, `config.json`). FsStorage adds the native host's symlink rules on top (no symlink is
// ever followed below the root).
import { storageFailure } from './errors.js';

export const MAX_PATH_LEN = 512;
export const MAX_COMPONENT_LEN = 255;
export const TEMP_DIR = 'tmp';
export const RESERVED_TOP_LEVEL = Object.freeze([TEMP_DIR, 'lock', 'config.json']);
const COMPONENT = /^[A-Za-z0-9._-]+$/;

/** Whether `name` is a valid path component (a name the storage can address). */
export function isValidComponent(name) {
  return typeof name === 'string' && name.length > 0 && name.length <= MAX_COMPONENT_LEN
    && name !== '.' && name !== '..' && COMPONENT.test(name);
}

/** Throws an `invalid_path` storage failure unless `path` is a confined relative path. */
export function checkPath(path) {
  if (typeof path !== 'string' || path.length === 0 || path.length > MAX_PATH_LEN) {
    throw storageFailure('invalid_path', `invalid path: ${String(path).slice(0, 80)}`);
  }
  const parts = path.split('/');
  for (const p of parts) {
    if (!isValidComponent(p)) throw storageFailure('invalid_path', `invalid path: ${path.slice(0, 80)}`);
  }
  if (RESERVED_TOP_LEVEL.includes(parts[0]) && (parts[0] === TEMP_DIR || parts.length === 1)) {
    throw storageFailure('invalid_path', `reserved path: ${path.slice(0, 80)}`);
  }
  return parts;
}

/**
 * The names directly inside `dir` among a storage's object paths (what `Storage.list` answers:
 * files, and directories holding any), sorted.
 */
export function childNames(paths, dir) {
  const prefix = dir.replace(/\/+$/, '') + '/';
  const names = new Set();
  for (const p of paths) {
    if (p.startsWith(prefix)) names.add(p.slice(prefix.length).split('/')[0]);
  }
  return [...names].sort();
}
