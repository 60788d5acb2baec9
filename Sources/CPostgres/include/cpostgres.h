// libpq (Debian libpq-dev), PostgreSQL's C client library. Its calls are not variadic, so
// Swift calls them directly; this header only makes them visible as the CPostgres module.
#ifndef CPOSTGRES_H
#define CPOSTGRES_H

#include <postgresql/libpq-fe.h>

/// Installs a notice processor that drops the server's NOTICE messages (libpq prints them
/// on stderr by default, which would interleave with the daemons' log lines).
void cpostgres_silence_notices(PGconn *connection);

#endif
