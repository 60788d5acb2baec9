// Status: what mailworkerd tells mailfcgi through files: `WorkerStatus` (the heartbeat, pool
// state, per-worker figures, the sender's health, in `data/status/workers.json`) and
// `ProcessBatchAnswer`, the answer it gives over its control socket.
