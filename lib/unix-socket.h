/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What a daemon needs before it binds a listening AF_UNIX socket at a
 * path (the agent's control socket and message bus). */

/* A socket file nobody accepts on is left over from a previous run and is
 * removed; one that answers belongs to a running daemon: -EADDRINUSE. A
 * file that is not a socket: -EEXIST. No file: 0. */
int unix_socket_remove_stale(const char *path);

/* Creates the directory path is in (0755) when it is missing. */
int unix_socket_make_parent_dir(const char *path);
