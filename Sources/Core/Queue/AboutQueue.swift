// Queue: where accepted emails wait, and the `QueueStore` protocol the programs use (a new store,
// such as one on PostgreSQL, implements it beside `FileQueue`).
//
// - `FileQueue.swift`: the file store: enqueue, claim, outcomes, recovery, expiry, pruning.
// - `QueueLayout.swift`: the folders and file names, which are the states (a new state goes here).
// - `QueueIndex.swift`: the in-memory order of pending files; `QueueWatcher.swift`: inotify.
// - `QueueCensus.swift`: counts and listings for `/status`; `LegacyQueueFile.swift`: the Python
//   service's queue files, converted.
