// The page's one probe for tests and benchmarks: named measurements (times, counts, memory)
// that the page itself does not show. main.js exposes it as `window.pycnnProbe`; read it with
// `pycnnProbe.read()` (a plain copy). What it holds:
//   load_ms               navigation to ready (the last worker start)
//   worker_heap_bytes     Python's WebAssembly memory in the worker (at ready and after each run)
//   workers               {count, wanted, helpers}: the workers that work on the next batch (the Python worker
//                         included), how many the Workers setting asks for, and each helper worker's
//                         {state, boot_ms, heap_bytes (its WebAssembly memory), tasks, timings} (cores.js)
//   stop_latency_ms       Stop clicked to the run's `done` message
//   saves, saved_epochs   models kept in IndexedDB, and the epochs of the last one kept
//   predictions           {requested, sent, answered, stale, worker_ms}: drawings asked to be read,
//                         requests sent to the worker, replies, replies dropped because the drawing
//                         had changed meanwhile, and the worker's time for them
//   prediction_latency_ms request to rendered bars, for the last answer shown
//   drawing_latency_ms    last change of the drawing to rendered bars, for the last answer shown
//   offline               {version, files, missing, bytes} of the active service worker (offline.js)
//   analyses              held-out analyses shown (analysis.js: after every change of the weights)
//   arithmetic_latency_ms pointing at a feature-map cell to its arithmetic shown, for the last one (inside.js);
//   arithmetic_worker_ms  the worker's time for it
//   saliency_latency_ms   prediction request to the saliency map drawn (with the bars), for the last reading
//   why_not_latency_ms    "why not a …?" chosen to its saliency map drawn
//   step_latency_ms       Step clicked to the step's loss and filter gradients shown
//   step_worker_ms        the worker's time for that step
//   my_digits_added       drawings added to your digits with "It's a ..."
//   my_digits_kept        how many of your digits were kept in IndexedDB last
//   fine_tune_ms          Fine-tune clicked to its `done` message, for the last fine-tune
//   requests_in_flight    the requests sent to the worker and not answered yet, oldest first: {method, sent_at
//                         (performance.now() when sent)}

export class Probe {
  constructor() {
    this.values = { predictions: { requested: 0, sent: 0, answered: 0, stale: 0, worker_ms: 0 } };
  }

  set(name, value) {
    this.values[name] = value;
  }

  /** Add `by` to a counter: "saves" or "predictions.sent". */
  count(name, by = 1) {
    const [group, key] = name.includes(".") ? name.split(".") : [null, name];
    const target = group ? this.values[group] : this.values;
    target[key] = (target[key] ?? 0) + by;
  }

  read() {
    return structuredClone(this.values);
  }
}
