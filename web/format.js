// How the page writes numbers, and the one estimate of an epoch's time. Pure functions: no DOM.

/** 12,345 */
export const fmtInt = (n) => Math.round(n).toLocaleString("en");

/** 0.9876 -> "98.8%" */
export const fmtPct = (v) => `${(v * 100).toFixed(1)}%`;

/** 0.4 s, 42 s, 2 min 5 s */
export const fmtSeconds = (s) =>
  s < 1 ? `${s.toFixed(1)} s` : s < 90 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;

/** A file's size: in bytes under a megabyte, else in MB (22020096 -> "22 MB"). */
export const fmtSize = (bytes) => (bytes < 1e6 ? `${fmtInt(bytes)} bytes` : `${fmtInt(bytes / 1e6)} MB`);

/**
 * Seconds one epoch takes: training on trainCount digits at trainPerSecond images/s, then the
 * held-out evaluation of heldoutCount at evalPerSecond (about 3x training when not measured).
 */
export function epochSeconds(trainCount, heldoutCount, trainPerSecond, evalPerSecond) {
  return trainCount / trainPerSecond + heldoutCount / (evalPerSecond || trainPerSecond * 3);
}
