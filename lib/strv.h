/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* NULL-terminated string vectors (environments, argument lists), with
 * _cleanup_strv_free_ from macro.h. */

#include <stddef.h>

#include "macro.h"

/* Appends a formatted string to *l, which holds *n strings (the vector
 * grows; *l may start NULL with *n 0). -ENOMEM leaves *l as it was. */
int strv_push_printf(char ***l, size_t *n, const char *fmt, ...) _printf_(3, 4);

/* Frees every string and the vector; accepts NULL. */
void strv_free_all(char **l);
