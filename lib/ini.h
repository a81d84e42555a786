/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A small INI parser in the systemd unit-file dialect, for configuration.
 *
 *   # comment            ; comment
 *   [Section]
 *   Key = value          (whitespace around key and value is dropped)
 *
 * No continuation lines, no quoting, no includes. Comments start a line (after
 * optional whitespace); a '#' inside a value is part of the value. Every
 * assignment is handed to the callback in file order, duplicates included,
 * so a consumer that stores values gets "last assignment wins", as in
 * systemd. An empty value ("Key=") is passed through: consumers use it to
 * reset a key to its default.
 *
 * Rejected (parse stops, -EBADMSG, the line number and a reason are
 * returned): a line that is neither a comment, a section header nor
 * Key=Value; an assignment before the first section; an empty key or
 * section name; characters outside [A-Za-z0-9_.-] in a key or section name;
 * a NUL byte; a line longer than INI_LINE_MAX. */

#include <stddef.h>

#define INI_LINE_MAX 4096

/* Called for every assignment. A negative return stops the parse and is
 * returned by ini_parse() unchanged, with *ret_line set to this line and
 * *ret_reason set to NULL (the handler reports its own error). */
typedef int (*ini_handler_t)(const char *section, const char *key, const char *value,
                             unsigned line, void *userdata);

/* Parses size bytes of data (need not be NUL-terminated). On failure returns
 * negative errno and, when the pointers are not NULL, stores the 1-based line
 * number and a static reason string (NULL when the handler failed). */
int ini_parse(const char *data, size_t size, ini_handler_t handler, void *userdata,
              unsigned *ret_line, const char **ret_reason);
