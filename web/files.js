// Files the learner takes away (the model, the network, the digits file, the script) and brings back.
import { fmtSize } from "./format.js";

/** Offer `data` (bytes or text) as a download named fileName. */
export function download(fileName, data, type = "application/octet-stream") {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = fileName;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * The file chosen in `input` (cleared, so that choosing the same file again fires change) and its bytes ->
 * {file, bytes}; or null when nothing was chosen, or when the file is empty or over `limit` bytes: then
 * refuse(file name, why) is called before the file is read. kind: what such a file is ("a digits file").
 */
export async function readChosenFile(input, limit = Infinity, kind, refuse) {
  const file = input.files?.[0];
  input.value = "";
  if (!file) return null;
  if (file.size === 0) refuse(file.name, "the file is empty");
  else if (file.size > limit) refuse(file.name, `the file is ${fmtSize(file.size)}; ${kind} is at most ${fmtSize(limit)}`);
  else return { file, bytes: new Uint8Array(await file.arrayBuffer()) };
  return null;
}
