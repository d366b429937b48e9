// Keeps the current model (bytes + training history), your digits (the digits file's bytes) and your projects
// (each project file, and which one is open) in IndexedDB so a reload restores them. A full storage first gives
// up the Python snapshot.
// When IndexedDB is unavailable (private mode, disabled, quota) every call degrades to a no-op.

import { dropSnapshots } from "./snapshot.js";

const DB_NAME = "pycnn";
const DB_VERSION = 1;
const STORE = "models";
const KEY = "current";
const DIGITS_KEY = "my-digits"; // alongside the model, in the same store (one database version)
const PROJECT_PREFIX = "project-"; // each project of your own classes: "project-<id>"
const OPEN_PROJECT_KEY = "open-project";
// a transaction not done by then is given up, with a message: the page never waits on storage for ever
const STORE_WAIT_MS = 15_000;

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
    // relaxed: a write is done once the operating system has it, not after a flush to disk, which on a busy disk
    // can take many seconds (an operating system crash could lose the last save; a browser crash cannot)
    const tx = this.db.transaction(STORE, mode, { durability: "relaxed" });
    const done = new Promise((resolve, reject) => {
      tx.addEventListener("complete", resolve);
      tx.addEventListener("abort", () => reject(tx.error ?? new Error("IndexedDB transaction aborted")));
      tx.addEventListener("error", () => reject(tx.error ?? new Error("IndexedDB transaction failed")));
    });
    const finished = promisify(work(tx.objectStore(STORE))).then(async (result) => {
      await done;
      return result;
    });
    let timer;
    const late = new Promise((resolve, reject) => {
      const why = `the browser's storage did not answer within ${STORE_WAIT_MS / 1000} s`;
      timer = setTimeout(() => reject(new Error(why)), STORE_WAIT_MS);
    });
    try {
      return await Promise.race([finished, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Keep record under key; when the browser's storage is full, the Python snapshot (a faster next
   * load) is deleted to make room: the learner's model and digits matter more. */
  async #put(key, record) {
    try {
      return await this.#run("readwrite", (store) => store.put(record, key));
    } catch (error) {
      if (error?.name !== "QuotaExceededError" || !(await dropSnapshots())) throw error;
      return this.#run("readwrite", (store) => store.put(record, key));
    }
  }

  /** record: {bytes: Uint8Array, history, evaluation, savedAt, source}. */
  save(record) {
    return this.#put(KEY, record);
  }

  async load() {
    return (await this.#run("readonly", (store) => store.get(KEY))) ?? null;
  }

  clear() {
    return this.#run("readwrite", (store) => store.delete(KEY));
  }

  /** record: {format: 1, bytes: Uint8Array (the digits file), count, savedAt}. The model's clear() leaves it. */
  saveDigits(record) {
    return this.#put(DIGITS_KEY, record);
  }

  async loadDigits() {
    return (await this.#run("readonly", (store) => store.get(DIGITS_KEY))) ?? null;
  }

  /** record: {format: 1, bytes: Uint8Array (the project file), results (its scores), savedAt}, of project `id`. */
  saveProject(id, record) {
    return this.#put(`${PROJECT_PREFIX}${id}`, { ...record, id });
  }

  /** Every project kept, in the order of their ids. */
  async loadProjects() {
    const range = IDBKeyRange.bound(PROJECT_PREFIX, `${PROJECT_PREFIX}\uffff`);
    const records = (await this.#run("readonly", (store) => store.getAll(range))) ?? [];
    return records.filter((r) => Number.isInteger(r?.id)).sort((a, b) => a.id - b.id);
  }

  deleteProject(id) {
    return this.#run("readwrite", (store) => store.delete(`${PROJECT_PREFIX}${id}`));
  }

  /** Which project is open (its id), or null: the digits. */
  saveOpenProject(id) {
    return this.#put(OPEN_PROJECT_KEY, { id });
  }

  async loadOpenProject() {
    return (await this.#run("readonly", (store) => store.get(OPEN_PROJECT_KEY)))?.id ?? null;
  }
}
