// Form validation for the training settings. Pure functions: no DOM, no worker.

export const LIMITS = {
  epochs: { min: 1, max: 50 },
  batchSize: { min: 1, max: 1024 },
  lr: { min: 1e-7, max: 10 }, // 10 is allowed so a learner can see a diverging run
  seed: { min: 0, max: 2 ** 32 - 1 },
  trainSize: { min: 1, max: 8500 }, // max replaced by the real training-part size once known
};

const INT_RE = /^[+]?\d+$/;
const FLOAT_RE = /^[+]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function parseInteger(raw, label, { min, max }) {
  const text = String(raw ?? "").trim();
  if (text === "") return { error: `${label} is required` };
  if (text.startsWith("-")) return { error: `${label} cannot be negative` };
  if (!INT_RE.test(text) && !FLOAT_RE.test(text)) return { error: `${label} must be a whole number` };
  const value = Number(text);
  if (!Number.isFinite(value) || value > max) return { error: `${label} must be at most ${max.toLocaleString("en")}` };
  if (!Number.isInteger(value)) return { error: `${label} must be a whole number` };
  if (value < min) return { error: `${label} must be at least ${min}` };
  return { value };
}

function parseRate(raw, label, { min, max }) {
  const text = String(raw ?? "").trim();
  if (text === "") return { error: `${label} is required` };
  if (text.startsWith("-")) return { error: `${label} cannot be negative` };
  if (!FLOAT_RE.test(text)) return { error: `${label} must be a number such as 0.005` };
  const value = Number(text);
  if (!Number.isFinite(value)) return { error: `${label} must be a finite number` };
  if (value <= 0) return { error: `${label} must be greater than 0` };
  if (value < min) return { error: `${label} must be at least ${min}` };
  if (value > max) return { error: `${label} must be at most ${max}` };
  return { value };
}

/**
 * Validate raw form values.
 * raw: {epochs, batchSize, lr, optimizer, trainSize, seed} as strings.
 * limits: LIMITS with trainSize.max set to the training-part size.
 * Returns {config, errors}: config is null when any field is invalid; errors maps field -> message.
 */
export function validateSettings(raw, limits = LIMITS) {
  const errors = {};
  const out = {};
  const checks = {
    epochs: () => parseInteger(raw.epochs, "Epochs", limits.epochs),
    batchSize: () => parseInteger(raw.batchSize, "Batch size", limits.batchSize),
    lr: () => parseRate(raw.lr, "Learning rate", limits.lr),
    trainSize: () => parseInteger(raw.trainSize, "Training digits", limits.trainSize),
    seed: () => parseInteger(raw.seed, "Seed", limits.seed),
  };
  for (const [name, check] of Object.entries(checks)) {
    const result = check();
    if (result.error) errors[name] = result.error;
    else out[name] = result.value;
  }
  if (raw.optimizer !== "adam" && raw.optimizer !== "sgd") errors.optimizer = "Choose Adam or SGD";
  else out.optimizer = raw.optimizer;
  if (!errors.batchSize && !errors.trainSize && out.batchSize > out.trainSize) {
    errors.batchSize = `Batch size must not exceed the number of training digits (${out.trainSize.toLocaleString("en")})`;
  }
  const ok = Object.keys(errors).length === 0;
  return { config: ok ? out : null, errors };
}
