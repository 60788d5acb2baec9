#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <sys/socket.h>
#include "clinux.h"

int clinux_rename_noreplace(const char *from, const char *to) {
    return renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
}

int clinux_accept_nonblocking(int listener) {
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

int clinux_accept_blocking(int listener) {
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC);
}

int clinux_limit_malloc_arenas(int count) {
    return mallopt(M_ARENA_MAX, count);
}
