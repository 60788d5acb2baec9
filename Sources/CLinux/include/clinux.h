// Linux calls that Swift's Glibc module does not expose (they need _GNU_SOURCE).
#ifndef CLINUX_H
#define CLINUX_H

#include <sys/epoll.h>

/// renameat2(2) with RENAME_NOREPLACE: renames `from` to `to` only if `to` does not exist
/// (fails with EEXIST otherwise). Returns 0, or -1 with errno set.
int clinux_rename_noreplace(const char *from, const char *to);

/// accept4(2) with SOCK_CLOEXEC | SOCK_NONBLOCK: the accepted descriptor is not inherited by
/// children, and a read finding nothing fails with EAGAIN instead of waiting.
/// Returns the descriptor, or -1 with errno set.
int clinux_accept_nonblocking(int listener);

// Every program linking this library starts with glibc's malloc arenas capped at 2
// (mallopt(3) M_ARENA_MAX, set by a constructor in clinux.c before any thread exists). By
// default each thread that allocates may get an arena of its own, up to 8 per core, each
// keeping free pages resident: about 3 MiB with 16 delivery workers, for no measured speed.

#endif
