// The benchmark workers' message loop, the other end of bench.js's Rpc: {id, cmd, args} in,
// {id, ok, result} or {id, ok: false, error} out. A plain script, so the classic TF.js worker
// (importScripts) and the pycnn module worker (import) load the same file.
self.serveCommands = (commands) => {
  self.onmessage = async (event) => {
    const { id, cmd, args } = event.data;
    try {
      const result = await commands[cmd](args);
      self.postMessage({ id, ok: true, result });
    } catch (error) {
      self.postMessage({ id, ok: false, error: String(error?.stack ?? error?.message ?? error) });
    }
  };
};
