// Form validation for the training settings, against the limits Python publishes
// (TrainingConfig.limits(), sent in the session's info): no second copy of them here.
// Pure functions: no DOM, no worker.

// The form's fields, named like TrainingConfig's, and how the messages call them.
export const FIELDS = {
  epochs: "Epochs",
  batch_size: "Batch size",
  lr: "Learning rate",
  optimizer: "Optimiser",
  train_size: "Training digits",
  seed: "Seed",
};

const INT_RE = /^[+]?\d+$/;
const FLOAT_RE = /^[+]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
const fmt = (n) => n.toLocaleString("en");

function parseInteger(text, label, { min, max }) {
  if (text.startsWith("-")) return { error: `${label} cannot be negative` };
  if (!INT_RE.test(text) && !FLOAT_RE.test(text)) return { error: `${label} must be a whole number` };
  const value = Number(text);
  if (!Number.isFinite(value) || value > max) return { error: `${label} must be at most ${fmt(max)}` };
  if (!Number.isInteger(value)) return { error: `${label} must be a whole number` };
  if (value < min) return { error: `${label} must be at least ${fmt(min)}` };
  return { value };
}

function parseNumber(text, label, { min, max }) {
  if (text.startsWith("-")) return { error: `${label} cannot be negative` };
  if (!FLOAT_RE.test(text)) return { error: `${label} must be a number such as 0.005` };
  const value = Number(text);
  if (!Number.isFinite(value)) return { error: `${label} must be a finite number` };
  if (value <= 0 && min >= 0) return { error: `${label} must be greater than 0` };
  if (value < min) return { error: `${label} must be at least ${min}` };
  if (value > max) return { error: `${label} must be at most ${max}` };
  return { value };
}

function parseField(raw, label, limit) {
  const text = String(raw ?? "").trim();
  if (limit.type === "choice") {
    return limit.choices.includes(text) ? { value: text } : { error: `${label} must be one of ${limit.choices.join(", ")}` };
  }
  if (text === "") return { error: `${label} is required` };
  return limit.type === "int" ? parseInteger(text, label, limit) : parseNumber(text, label, limit);
}

/**
 * Validate raw form values {epochs, batch_size, lr, optimizer, train_size, seed} (strings).
 * limits: TrainingConfig.limits() as Python sent it; trainCount: digits in the training part
 * (the most train_size can be); shards: how the page splits a batch ({max, shard_images}, the
 * session's info), when given. Returns {config, errors}: config (TrainingConfig's fields, shards
 * too: min(max, batch_size / shard_images), at least 1, whatever the number of workers) is null
 * when any field is invalid; errors maps field -> message.
 */
export function validateSettings(raw, limits, trainCount, shards = null) {
  const errors = {};
  const config = {};
  for (const [name, label] of Object.entries(FIELDS)) {
    let limit = limits[name];
    if (name === "train_size") limit = { ...limit, max: Math.min(limit.max, trainCount) };
    const result = parseField(raw[name], label, limit);
    if (result.error) errors[name] = result.error;
    else config[name] = result.value;
  }
  if (!errors.batch_size && !errors.train_size && config.batch_size > config.train_size) {
    errors.batch_size = `Batch size must not exceed the number of training digits (${fmt(config.train_size)})`;
  }
  if (shards && !errors.batch_size) {
    config.shards = Math.max(1, Math.min(shards.max, Math.floor(config.batch_size / shards.shard_images)));
  }
  return { config: Object.keys(errors).length ? null : config, errors };
}
