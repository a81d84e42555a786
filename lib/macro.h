/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The small set of helpers every module uses: cleanup attributes and
 * ownership transfer, after systemd's macro.h. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _sentinel_ __attribute__((sentinel))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))
#define _pure_ __attribute__((pure))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define CLAMP(x, lo, hi) ((x) < (lo) ? (lo) : (x) > (hi) ? (hi) : (x))

/* Hands ownership of *ptr to the caller and leaves NULL (or -1) behind, so
 * the cleanup handler of the source variable becomes a no-op. */
#define TAKE_PTR(ptr)                          \
        ({                                     \
                typeof(ptr) *_pptr_ = &(ptr);  \
                typeof(ptr) _ptr_ = *_pptr_;   \
                *_pptr_ = NULL;                \
                _ptr_;                         \
        })

#define TAKE_FD(fd)                            \
        ({                                     \
                int *_pfd_ = &(fd);            \
                int _fd_ = *_pfd_;             \
                *_pfd_ = -1;                   \
                _fd_;                          \
        })

/* Defines void name(type *p) that calls func(*p) when *p is not NULL, for
 * use with _cleanup_. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)        \
        static inline void func##p(type *p) {          \
                if (*p)                                \
                        func(*p);                      \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -1;
}

static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void freestrvp(char ***p) {
        if (!*p)
                return;
        for (char **s = *p; *s; s++)
                free(*s);
        free(*p);
}
#define _cleanup_strv_free_ _cleanup_(freestrvp)

/* Turns a result of a libc call (-1 + errno) into negative errno. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

static inline const char *strempty(const char *s) {
        return s ?: "";
}

static inline const char *strna(const char *s) {
        return s ?: "n/a";
}

static inline int streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)

/* Zeroes memory in a way the compiler may not elide; for keys and tokens. */
static inline void explicit_bzero_safe(void *p, size_t n) {
        if (p && n > 0)
                explicit_bzero(p, n);
}
