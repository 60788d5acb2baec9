// Linux calls that Swift's Glibc module does not expose (they need _GNU_SOURCE).
#ifndef CLINUX_H
#define CLINUX_H

/// renameat2(2) with RENAME_NOREPLACE: renames `from` to `to` only if `to` does not exist
/// (fails with EEXIST otherwise). Returns 0, or -1 with errno set.
int clinux_rename_noreplace(const char *from, const char *to);

#endif
