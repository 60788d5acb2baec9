// Queue: where accepted emails wait, and the `QueueStore` protocol the programs use (a new store,
// such as one on PostgreSQL, implements it beside `FileQueue`; the tests' `MemoryQueueStore` is
// a second one).
//
// - `QueueStore.swift`: the protocol (intake, lookup, cancel, census, health, claims and their
//   outcomes, arrivals, housekeeping), the opaque `QueueClaim`, `FailureDecision`.
// - `FileQueue.swift`: the file store: enqueue (one email, or a batch with one directory sync),
//   claim, outcomes, recovery, expiry, pruning; `FileQueue+Store.swift`: census, health,
//   arrivals; `QueueLookup.swift`: `EmailState`, lookup and cancel by request id.
// - `QueueLayout.swift`: the folders and file names, which are the states (a new state goes here).
// - `QueueIndex.swift`: the in-memory order of pending files; `QueueWatcher.swift`: inotify.
// - `QueueCensus.swift`: counts and listings for `/status`; `LegacyQueueFile.swift`: the Python
//   service's queue files, converted.
// - `IdempotencyKeys.swift`: `Idempotency-Key` records, reserved before an email is stored.
