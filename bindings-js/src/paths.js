// The path rule every JS storage applies (the same as the native host's): relative,
// `/`-separated components of [A-Za-z0-9._-], no empty, `.` or `..` component, bounded length,
// and not one of the host's own names at the top (`tmp`, `lock`, `config.json`).
import { storageFailure } from './errors.js';

export const MAX_PATH_LEN = 512;
export const MAX_COMPONENT_LEN = 255;
export const RESERVED_TOP_LEVEL = Object.freeze(['tmp', 'lock', 'config.json']);
const COMPONENT = /^[A-Za-z0-9._-]+$/;

/** Throws an `invalid_path` storage failure unless `path` is a confined relative path. */
export function checkPath(path) {
  if (typeof path !== 'string' || path.length === 0 || path.length > MAX_PATH_LEN) {
    throw storageFailure('invalid_path', `invalid path: ${String(path).slice(0, 80)}`);
  }
  const parts = path.split('/');
  for (const p of parts) {
    if (p === '.' || p === '..' || p.length > MAX_COMPONENT_LEN || !COMPONENT.test(p)) {
      throw storageFailure('invalid_path', `invalid path: ${path.slice(0, 80)}`);
    }
  }
  if (RESERVED_TOP_LEVEL.includes(parts[0])) {
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
