#include "cpostgres.h"

static void ignore_notice(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

void cpostgres_silence_notices(PGconn *connection) {
    PQsetNoticeProcessor(connection, ignore_notice, NULL);
}
