/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "strv.h"

int strv_push_printf(char ***l, size_t *n, const char *fmt, ...) {
        va_list ap;
        char **a, *s;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        a = reallocarray(*l, *n + 2, sizeof(char *));
        if (!a) {
                free(s);
                return -ENOMEM;
        }
        *l = a;
        a[(*n)++] = s;
        a[*n] = NULL;
        return 0;
}

void strv_free_all(char **l) {
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
}
