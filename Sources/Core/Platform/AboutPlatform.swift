// Platform: the system underneath both daemons; every system call goes through `Syscall`.
//
// - `Syscall.swift`, `SystemError.swift`: the wrapper and its error (call, path, errno).
// - `AtomicFile.swift`: write, fsync, rename, directory fsync; `CrashPoint.swift`: the named
//   gaps a debug build can be killed in (`MAIL_CRASH_AT`); `DirectorySync.swift`: group commit
//   of a directory's fsync among the threads that renamed into it at the same time.
// - `BackgroundThread.swift`: the one way to run a blocking loop; `JobQueue.swift`: a blocking
//   queue between such threads.
// - `UnixSocket.swift`: listening, connecting, reading and writing unix sockets.
// - `DaemonLifecycle.swift`: running and stopping a daemon with swift-service-lifecycle.
