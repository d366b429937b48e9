// Keeps the current model (bytes + training history) and your digits (the digits file's bytes) in
// IndexedDB so a reload restores them.
// When IndexedDB is unavailable (private mode, disabled, quota) every call degrades to a no-op.

const DB_NAME = "pycnn";
const DB_VERSION = 1;
const STORE = "models";
const KEY = "current";
const DIGITS_KEY = "my-digits"; // alongside the model, in the same store (one database version)

function promisify(request) {
  return new Promise((resolve, reject) => {
    request.addEventListener("success", () => resolve(request.result));
    request.addEventListener("error", () => reject(request.error ?? new Error("IndexedDB request failed")));
  });
}

function openDatabase() {
  return new Promise((resolve, reject) => {
    let request;
    try {
      request = globalThis.indexedDB.open(DB_NAME, DB_VERSION);
    } catch (error) {
      reject(error);
      return;
    }
    request.addEventListener("upgradeneeded", () => request.result.createObjectStore(STORE));
    request.addEventListener("success", () => resolve(request.result));
    request.addEventListener("error", () => reject(request.error ?? new Error("IndexedDB could not be opened")));
    request.addEventListener("blocked", () => reject(new Error("IndexedDB is blocked by another tab")));
  });
}

export class ModelStore {
  constructor() {
    this.db = null;
    this.reason = "";
  }

  /** Open the database; resolves to true when models will be kept across reloads. */
  async open() {
    if (!globalThis.indexedDB) {
      this.reason = "this browser offers no IndexedDB";
      return false;
    }
    try {
      this.db = await openDatabase();
      return true;
    } catch (error) {
      this.reason = error?.message || String(error);
      this.db = null;
      return false;
    }
  }

  async #run(mode, work) {
    if (!this.db) return undefined;
    const tx = this.db.transaction(STORE, mode);
    const done = new Promise((resolve, reject) => {
      tx.addEventListener("complete", resolve);
      tx.addEventListener("abort", () => reject(tx.error ?? new Error("IndexedDB transaction aborted")));
      tx.addEventListener("error", () => reject(tx.error ?? new Error("IndexedDB transaction failed")));
    });
    const result = await promisify(work(tx.objectStore(STORE)));
    await done;
    return result;
  }

  /** record: {bytes: Uint8Array, history, evaluation, savedAt, source}. */
  save(record) {
    return this.#run("readwrite", (store) => store.put(record, KEY));
  }

  async load() {
    return (await this.#run("readonly", (store) => store.get(KEY))) ?? null;
  }

  clear() {
    return this.#run("readwrite", (store) => store.delete(KEY));
  }

  /** record: {format: 1, bytes: Uint8Array (the digits file), count, savedAt}. The model's clear() leaves it. */
  saveDigits(record) {
    return this.#run("readwrite", (store) => store.put(record, DIGITS_KEY));
  }

  async loadDigits() {
    return (await this.#run("readonly", (store) => store.get(DIGITS_KEY))) ?? null;
  }
}
