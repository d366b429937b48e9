// A memory snapshot of a freshly started Python, kept in the browser's Cache Storage so that the
// next visit restores it (about 0.3 s) instead of starting Python again (about 1.5 s).
//
// The worker takes it right after loadPyodide() and importing the standard-library modules the site's
// manifest lists (python_snapshot_imports: what loading numpy, numpy and pycnn import, see
// sitebuild/snapshot.py), before numpy or any pycnn code is loaded. So it depends on the Pyodide build and
// that list only: the cache key names the Pyodide version and a hash of the list, Pyodide itself refuses a
// snapshot of another build (BUILD_ID), and a sha256 stored next to the bytes catches a damaged copy.
// Anything unusable is deleted and Python starts the normal way. Storage problems (no Cache Storage outside
// a secure context, a full quota) only mean no snapshot, and the page deletes the snapshot when the
// browser's storage is too full to keep the trained model.
//
// _makeSnapshot / _loadSnapshot are experimental loadPyodide() options of Pyodide 0.27; the
// version is pinned in package.json and the e2e tests cover both paths.

const CACHE_NAME = "pycnn-python-snapshot";
const HASH_HEADER = "x-pycnn-sha256";

/** The snapshot's name for a Pyodide version and the modules imported into it: the version and a hash of
 * the module names, or null outside a secure context (nothing can be checked there). */
export async function snapshotName(version, imports) {
  const hash = await sha256Hex(new TextEncoder().encode(imports.join("\n")));
  return hash && `${version}-${hash.slice(0, 16)}`;
}

function cacheKey(name) {
  return new URL(`pyodide-snapshot-${name}.bin`, self.location.href).href;
}

/** Hex sha256 of bytes, or null outside a secure context (no crypto.subtle: nothing can be checked). */
export async function sha256Hex(bytes) {
  if (!self.crypto?.subtle) return null;
  const digest = await self.crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function available() {
  return typeof self.caches !== "undefined" && Boolean(self.crypto?.subtle);
}

/** The stored snapshot of this name (snapshotName), or null (none, unusable or no Cache Storage). */
export async function readSnapshot(name) {
  if (!available() || !name) return null;
  try {
    const cache = await self.caches.open(CACHE_NAME);
    const response = await cache.match(cacheKey(name));
    if (!response) return null;
    const bytes = new Uint8Array(await response.arrayBuffer());
    if ((await sha256Hex(bytes)) === response.headers.get(HASH_HEADER)) return bytes;
    console.warn("the saved Python snapshot is damaged; it is deleted and Python starts afresh");
  } catch (error) {
    console.warn(`could not read the saved Python snapshot: ${error}`);
  }
  await dropSnapshots();
  return null;
}

/** Store a snapshot under its name (snapshotName), replacing any other. Never throws. */
export async function saveSnapshot(name, bytes) {
  if (!available() || !name) return false;
  try {
    const hash = await sha256Hex(bytes);
    await dropSnapshots();
    const cache = await self.caches.open(CACHE_NAME);
    await cache.put(cacheKey(name), new Response(bytes, { headers: { [HASH_HEADER]: hash } }));
    return true;
  } catch (error) {
    console.warn(`could not save a Python snapshot (${error}); the next load starts Python afresh`);
    return false;
  }
}

/** Delete every stored snapshot; true when there was one. Never throws. */
export async function dropSnapshots() {
  if (typeof self.caches === "undefined") return false;
  try {
    return await self.caches.delete(CACHE_NAME);
  } catch (error) {
    console.warn(`could not delete the saved Python snapshot: ${error}`);
    return false;
  }
}
