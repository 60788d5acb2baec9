// FastCGI: the FastCGI 1.0 responder (the protocol, its records and the server), with the
// `Request` and `Response` it hands the application. It knows nothing of JSON or routes: the
// application answers requests, and formats the ones this layer refuses (`refusal`).
//
// - `FastCGIServer.swift`: the listening socket, one epoll event thread, `FCGI_THREADS` workers,
//   the graceful stop.
// - `FastCGIConnection.swift`: one connection's records to requests and answers back, with limits.
// - `FastCGIRecord.swift`: record and name-value pair encoding (the specification's §3, §5).
// - `EventLoop.swift`: epoll(7) for the event thread.
