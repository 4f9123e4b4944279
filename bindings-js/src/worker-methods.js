// The Cache methods the browser entry forwards to its Worker: browser.js defines one async
// method per name, and worker.js refuses any other name.
export const WORKER_METHODS = Object.freeze([
  'putManifest', 'getManifest', 'hasManifest', 'deleteManifest', 'manifestReferences',
  'putBlob', 'getBlob', 'hasBlob', 'deleteBlob', 'pin', 'unpin', 'deleteEntry', 'hasEntry',
  'putTag', 'getTag', 'hasTag', 'resolveTag', 'resolveFailed', 'detectMovement',
  'invalidateTag', 'deleteTag', 'tagHistory', 'tags', 'stats', 'metrics', 'prometheus', 'size',
  'contents', 'debugInfo', 'exportDebugJson', 'checkIntegrity', 'validateDigests', 'repair',
  'clearExpired', 'cleanup', 'clear', 'flush', 'recovery',
]);
