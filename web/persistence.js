// Keeping the model: in IndexedDB after every epoch and on Stop (restored on the next visit; a run
// stopped before its end is in the model file, so Continue is offered again after a reload),
// and as a file (Download model / Load model…), or exported for ONNX runtimes and TensorFlow.js
// (Python writes the files: pycnn.export). When the browser's storage is full, the
// Python snapshot (a speed-up of later visits) is deleted first to make room for the model.
import { fmtPct } from "./format.js";
import { download, readChosenFile } from "./files.js";
import { whileBusy } from "./state.js";

const MODEL_FILE_NAME = "pycnn-model.npz";

export class Persistence {
  /** store: the ModelStore; el: {download, load, loadLabel, exportOnnx, exportTfjs, storageNote}; the rest as for
   * TrainingPanel. */
  constructor({ client, state, store, probe, messages, status, el }) {
    Object.assign(this, { client, state, store, probe, messages, status, el });
    this.storageOk = false;
    this.hasSavedModel = false; // a model is in IndexedDB (so a restart brings it back)
    this.opened = this.#open();
    this.restoredUndo = false; // the kept record had the model from before a fine-tune, and Undo can bring it back
    client.on("checkpoint", ({ bytes, undo, evaluation, reason, partial_epoch: partialEpoch }) => {
      if (reason === "stopped") state.describeModel({ partial: partialEpoch !== false });
      this.#save(bytes, evaluation, undo);
    });
    el.download.addEventListener("click", () => this.#download());
    el.exportOnnx.addEventListener("click", () => this.#export("onnx"));
    el.exportTfjs.addEventListener("click", () => this.#export("tfjs"));
    el.load.addEventListener("change", () => this.#loadFile());
    const render = () => {
      const idle = state.idle;
      el.download.disabled = !idle;
      el.exportOnnx.disabled = !idle;
      el.exportTfjs.disabled = !idle;
      el.load.disabled = !idle;
      el.loadLabel.dataset.disabled = String(!idle);
    };
    state.on("phase", render);
    state.on("busy", render);
    render();
  }

  async #open() {
    this.storageOk = await this.store.open();
    this.hasSavedModel = this.storageOk && Boolean(await this.store.load().catch(() => null));
    this.el.storageNote.dataset.available = String(this.storageOk);
    this.el.storageNote.textContent = this.storageOk
      ? "Your model is saved in this browser after every epoch and when you stop."
      : `Models won't be kept across reloads here (${this.store.reason || "browser storage is unavailable"}). Use Download model to keep one.`;
    return this.storageOk;
  }

  /** Load the model kept in IndexedDB into the worker, if there is one (at ready). */
  async restore() {
    if (!(await this.opened)) return;
    let record;
    try {
      record = await this.store.load();
    } catch (error) {
      return;
    }
    if (!record?.bytes) return;
    try {
      const bytes = new Uint8Array(record.bytes);
      const reply = await this.client.call("load", { data: bytes });
      const history = record.history ?? { losses: [], epochs: [] };
      // records kept before the page spoke Python's names called it valAccuracy
      history.epochs = (history.epochs ?? []).map((e) => ({ ...e, val_accuracy: e.val_accuracy ?? e.valAccuracy }));
      this.state.replaceModel(
        {
          kind: "restored",
          epochs: record.model?.epochs ?? history.epochs?.length ?? 0,
          digits: record.model?.digits ?? 0,
          savedAt: record.savedAt,
          partial: Boolean(record.model?.partial),
          stepsKept: record.model?.stepsKept ?? 0,
          fineTuned: record.model?.fineTuned ?? 0,
        },
        reply.evaluation,
        history,
      );
      // the model from before a fine-tune: Undo fine-tune works after a reload too (if it won't load, no Undo)
      const undo = record.undoBytes ? new Uint8Array(record.undoBytes) : null;
      if (undo) this.restoredUndo = await this.client.call("keep_undo", { data: undo }).then(() => true, () => false);
    } catch (error) {
      this.messages.show(`The model saved in this browser could not be restored (${error.message}); starting from an untrained model.`, "warning");
      await this.store.clear().catch(() => {});
    }
  }

  /** Forget the kept model (Reset, a new network). */
  async forget() {
    if (this.storageOk) await this.store.clear().catch(() => {});
    this.hasSavedModel = false;
  }

  /** Keep the model in IndexedDB; undoBytes: the model Undo fine-tune brings back, if any (kept with it). */
  async #save(bytes, evaluation, undoBytes = null) {
    if (!this.storageOk) return;
    const model = { ...this.state.model };
    const history = { losses: this.state.history.losses.slice(), epochs: this.state.history.epochs.map((e) => ({ ...e })) };
    const record = { format: 1, bytes, history, evaluation, model, savedAt: Date.now() };
    if (undoBytes) record.undoBytes = undoBytes;
    try {
      await this.store.save(record);
      this.hasSavedModel = true;
      this.probe.count("saves");
      this.probe.set("saved_epochs", model.epochs ?? 0);
    } catch (error) {
      this.storageOk = false;
      const why = error?.name === "QuotaExceededError" ? "the browser's storage for this page is full"
        : error?.message || error?.name || String(error);
      this.el.storageNote.dataset.available = "false";
      this.el.storageNote.textContent = `Could not save the model in this browser (${why}); it won't be kept across reloads. Use Download model.`;
    }
  }

  #download() {
    return whileBusy(this.state, this.messages, async () => {
      const { bytes } = await this.client.call("save");
      download(MODEL_FILE_NAME, bytes);
    });
  }

  /** Download the model for another runtime: format "onnx" (one .onnx file) or "tfjs" (one zip of model.json and its weights). */
  #export(format) {
    return whileBusy(this.state, this.messages, async () => {
      const { bytes, file_name: fileName } = await this.client.call("export_model", { format });
      download(fileName, bytes, format === "tfjs" ? "application/zip" : "application/octet-stream");
    });
  }

  async #loadFile() {
    const refuse = (name, why) => this.messages.show(`Could not load ${name}: ${why}. Your current model is unchanged.`, "error");
    // refused before it is read when over pycnn's limit (the page's models are well under 1 MB)
    const chosen = await readChosenFile(this.el.load, this.state.info?.max_model_bytes, "a pycnn model file", refuse);
    if (!chosen) return;
    const { file, bytes } = chosen;
    return whileBusy(this.state, this.messages, async () => {
      let reply;
      try {
        reply = await this.client.call("load", { data: bytes });
      } catch (error) {
        refuse(file.name, error.message);
        return;
      }
      this.messages.clear();
      this.state.replaceModel({ kind: "loaded", fileName: file.name }, reply.evaluation);
      // a model file saved from a stopped run carries it (Continue); one of other held-out digits cannot go on here
      const run = { continues: ". It holds a stopped run: Continue finishes it",
        "other digits": ". It holds a stopped run on other held-out digits than the page's, so it cannot be continued here" }[reply.run] ?? "";
      this.status.say(`Loaded ${file.name}: held-out accuracy ${fmtPct(reply.evaluation.accuracy)}${run}`);
      const saved = await this.client.call("save").catch(() => null);
      if (saved) await this.#save(saved.bytes, reply.evaluation);
    });
  }
}
