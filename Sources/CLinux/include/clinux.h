// Linux calls that Swift's Glibc module does not expose (they need _GNU_SOURCE).
#ifndef CLINUX_H
#define CLINUX_H

#include <stddef.h>
#include <sys/epoll.h>

/// renameat2(2) with RENAME_NOREPLACE: renames `from` to `to` only if `to` does not exist
/// (fails with EEXIST otherwise). Returns 0, or -1 with errno set.
int clinux_rename_noreplace(const char *from, const char *to);

/// accept4(2) with SOCK_CLOEXEC | SOCK_NONBLOCK: the accepted descriptor is not inherited by
/// children, and a read finding nothing fails with EAGAIN instead of waiting.
/// Returns the descriptor, or -1 with errno set.
int clinux_accept_nonblocking(int listener);
/// accept4(2) with SOCK_CLOEXEC only: a blocking descriptor for a thread that serves it alone.
int clinux_accept_blocking(int listener);
/// pthread_setname_np(3) for the calling thread (names show in ps -L, top -H and debuggers);
/// `name` is cut to the kernel's 15 bytes.
int clinux_name_this_thread(const char *name);

/// mallopt(3) M_ARENA_MAX: caps glibc's malloc arenas at `count`. By default each thread
/// that allocates may get an arena of its own, up to 8 per core, each keeping free pages
/// resident: about 3 MiB with 16 delivery workers, for no measured speed. Call it first
/// thing, before any thread exists (both daemons do, with 2).
/// Returns 1 on success, 0 on error (mallopt's convention).
int clinux_limit_malloc_arenas(int count);

/// Bytes malloc(3) has handed out and not had back, in the main arena and in mmapped
/// chunks (mallinfo2(3): uordblks + hblkhd). For benchmarks that measure a structure's
/// footprint on the main thread.
size_t clinux_heap_in_use(void);

#endif
