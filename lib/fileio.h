/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small file helpers for daemons: bounded reads, atomic replacement, mkdir -p.
 *
 * Modes follow open(2) and mkdir(2): the process umask applies. A daemon
 * that wants files readable by others must run with a umask that allows it;
 * a key written with 0600 is never more open than that, at any moment. */

#include <stddef.h>
#include <sys/types.h>

/* Reads the whole file into a NUL-terminated buffer (the NUL is not
 * counted in ret_size). More than max bytes give -EFBIG, found from the
 * size for regular files and while reading for pipes and /proc files. */
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size);
int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size);
/* The same, for secrets: intermediate buffers are wiped before they are
 * freed, and the caller should wipe the result (explicit_bzero_safe). */
int read_full_file_secure(const char *path, size_t max, char **ret, size_t *ret_size);

/* Replaces path with the given content so that readers see either the old
 * file or the complete new one, also across power loss: the data goes to a
 * new temporary file in the same directory (O_EXCL, created with mode), is
 * fsync()ed and renamed over path, then the directory is fsync()ed. On
 * failure the temporary file is removed and path is unchanged. */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);

/* Creates path and its missing parents with mode (before umask); existing
 * directories are fine, an existing non-directory gives -ENOTDIR. */
int mkdir_p(const char *path, mode_t mode);
/* Creates the parent directories of path, not path itself. */
int mkdir_parents(const char *path, mode_t mode);
