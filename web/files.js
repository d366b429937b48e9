// Files the learner takes away: the model, the network, the digits file, the script.

/** Offer `data` (bytes or text) as a download named fileName. */
export function download(fileName, data, type = "application/octet-stream") {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = fileName;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
