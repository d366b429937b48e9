// The site's service worker: keeps one complete copy of the site in Cache Storage and serves the
// page from it, so that after the first visit the page works without a network. What it caches
// is every file build.py wrote, listed with its sha256 in precache.js (written by build.py, which
// also names the build's version). See PROTOCOL.md, "Offline".
//
// One cache per version, "pycnn-site <scope> <version>". A new build is installed into a new
// cache while the page goes on being served from the old one: a file whose sha256 is unchanged is
// copied from the old cache, any other is downloaded, and every file is checked against its
// sha256, so a cache never holds a mix of builds and an install that cannot get every file
// intact fails (the old version stays). The new version takes over only when the page asks (its
// Reload button, with no other tab of the site open); then the older caches of this scope are
// deleted. Nothing else in the origin's storage is touched: the Python snapshot
// ("pycnn-python-snapshot") and the saved models in IndexedDB are the page's.
importScripts("precache.js"); // self.PRECACHE = {version, files: {path: {sha256, bytes}}}

const { version: VERSION, files: FILES } = self.PRECACHE;
const SCOPE = self.registration.scope; // the site's folder, e.g. https://example.org/pycnn/
const PREFIX = `pycnn-site ${SCOPE} `; // several sites of one origin keep apart (GitHub Pages)
const CACHE = PREFIX + VERSION;
const HASH_HEADER = "x-pycnn-sha256"; // stored with each response: the sha256 of its body
const PATHS = Object.keys(FILES);

const urlOf = (path) => new URL(path, SCOPE).href;

async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The response to keep: the body checked against `sha256`, the host's headers, the hash. */
function stamped(response, bytes, sha256) {
  const headers = new Headers(response.headers);
  // the body is stored decoded: a host's transfer encoding must not be applied to it again
  headers.delete("content-encoding");
  headers.set("content-length", String(bytes.byteLength));
  headers.set(HASH_HEADER, sha256);
  return new Response(bytes, { status: 200, statusText: "OK", headers });
}

/** A copy of path with this sha256 from one of the caches (this version's first), or null. */
async function fromCaches(names, path, sha256) {
  for (const name of names) {
    const hit = await (await caches.open(name)).match(urlOf(path));
    if (!hit || hit.headers.get(HASH_HEADER) !== sha256) continue;
    const bytes = await hit.arrayBuffer();
    if ((await sha256Hex(bytes)) === sha256) return { response: stamped(hit, bytes, sha256), from: name };
  }
  return null;
}

/**
 * path from the host, checked against its sha256. First with a conditional request (an unchanged
 * file the browser already has costs a 304), then, if that gave other bytes (a stale HTTP cache
 * or a host in the middle of a deploy), once more from the host itself.
 */
async function download(path, sha256) {
  let got = "";
  for (const cache of ["no-cache", "reload"]) {
    const response = await fetch(urlOf(path), { cache });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    const bytes = await response.arrayBuffer();
    got = await sha256Hex(bytes);
    if (got === sha256) return stamped(response, bytes, sha256);
  }
  throw new Error(`${path} is not the file of this version (sha256 ${got.slice(0, 12)}…, expected ${sha256.slice(0, 12)}…)`);
}

/** Fill this version's cache with every file, or fail (the files already in it are kept for the next try). */
async function install() {
  const names = [CACHE, ...(await caches.keys()).filter((name) => name.startsWith(PREFIX) && name !== CACHE)];
  const cache = await caches.open(CACHE);
  const counts = { copied: 0, downloaded: 0, kept: 0 };
  await Promise.all(
    PATHS.map(async (path) => {
      const { sha256 } = FILES[path];
      const found = await fromCaches(names, path, sha256);
      if (found?.from === CACHE) {
        counts.kept += 1; // an earlier attempt at this version got it
        return;
      }
      await cache.put(urlOf(path), found ? found.response : await download(path, sha256));
      counts[found ? "copied" : "downloaded"] += 1;
    }),
  );
  console.info(`pycnn ${VERSION}: ${PATHS.length} files cached (${counts.downloaded} downloaded, ${counts.copied} copied from the previous version)`);
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    install().catch(async (error) => {
      const message = `could not keep this version for offline use: ${error.message ?? error}`;
      for (const client of await self.clients.matchAll({ type: "window", includeUncontrolled: true })) {
        client.postMessage({ type: "install-failed", version: VERSION, message });
      }
      throw error;
    }),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
      }
    })(),
  );
});

/** The site path a request asks for ("" is index.html), or null when it is not one of the files. */
function pathOf(request) {
  if (request.method !== "GET" || !request.url.startsWith(SCOPE)) return null;
  const path = decodeURIComponent(new URL(request.url).pathname.slice(new URL(SCOPE).pathname.length)) || "index.html";
  return Object.hasOwn(FILES, path) ? path : null;
}

self.addEventListener("fetch", (event) => {
  const path = pathOf(event.request);
  if (path === null) return; // not a file of the site: the network, as without a service worker
  event.respondWith(
    (async () => {
      const hit = await (await caches.open(CACHE)).match(urlOf(path));
      return hit ?? fetch(event.request); // not cached (the browser evicted it): the network, as usual
    })(),
  );
});

/** What the page asks for its notice and probe: the version and how much of it is cached. */
async function status() {
  const cache = await caches.open(CACHE);
  const cached = new Set((await cache.keys()).map((request) => request.url));
  const missing = PATHS.filter((path) => !cached.has(urlOf(path)));
  const bytes = PATHS.reduce((sum, path) => sum + FILES[path].bytes, 0);
  return { version: VERSION, files: PATHS.length, missing: missing.length, bytes };
}

/** The page's Reload: this (waiting) version takes over unless another tab of the site is open. */
async function takeOver(source) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const others = windows.filter((client) => client.id !== source.id && client.url.startsWith(SCOPE)).length;
  if (others > 0) {
    // switching versions under an open page could give it files of two builds
    source.postMessage({ type: "close-other-tabs", others });
    return;
  }
  await self.skipWaiting();
}

self.addEventListener("message", (event) => {
  const type = event.data?.type;
  if (type === "status") event.waitUntil(status().then((reply) => event.ports[0].postMessage(reply)));
  else if (type === "take-over") event.waitUntil(takeOver(event.source));
});
