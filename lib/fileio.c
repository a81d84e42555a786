/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-id128.h>

#include "fileio.h"
#include "macro.h"

#define READ_CHUNK 4096

static void *realloc_secure(void *old, size_t old_size, size_t new_size, bool secure) {
        void *p;

        if (!secure)
                return realloc(old, new_size);

        /* realloc() may move the data and leave a copy behind: move it by
         * hand so the old copy can be wiped. */
        p = malloc(new_size);
        if (!p)
                return NULL;
        if (old) {
                memcpy(p, old, MIN(old_size, new_size));
                explicit_bzero_safe(old, old_size);
                free(old);
        }
        return p;
}

static int read_full_fd_internal(int fd, size_t max, bool secure, char **ret, size_t *ret_size) {
        char *buf = NULL;
        size_t size = 0, allocated = 0;
        struct stat st;
        int r = 0;

        if (fd < 0)
                return -EBADF;
        if (max >= SIZE_MAX - 1)
                max = SIZE_MAX - 2;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (S_ISREG(st.st_mode)) {
                if ((uint64_t) st.st_size > max)
                        return -EFBIG;
                /* One byte more than expected, to see EOF (or growth) in
                 * the first round without another allocation. */
                allocated = (size_t) st.st_size + 1;
        }
        if (allocated < READ_CHUNK)
                allocated = MIN((size_t) READ_CHUNK, max + 1);

        buf = malloc(allocated + 1);
        if (!buf)
                return -ENOMEM;

        for (;;) {
                ssize_t k;

                if (size == allocated) {
                        size_t n = allocated > max / 2 ? max + 1 : allocated * 2;
                        char *p;

                        if (allocated > max) {
                                r = -EFBIG;
                                break;
                        }
                        p = realloc_secure(buf, allocated + 1, n + 1, secure);
                        if (!p) {
                                r = -ENOMEM;
                                break;
                        }
                        buf = p;
                        allocated = n;
                }

                k = read(fd, buf + size, allocated - size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        break;
                }
                if (k == 0)
                        break;
                size += (size_t) k;
                if (size > max) {
                        r = -EFBIG;
                        break;
                }
        }

        if (r < 0) {
                if (secure)
                        explicit_bzero_safe(buf, allocated + 1);
                free(buf);
                return r;
        }

        buf[size] = '\0';
        if (ret_size)
                *ret_size = size;
        *ret = buf;
        return 0;
}

int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size) {
        if (!ret)
                return -EINVAL;
        return read_full_fd_internal(fd, max, false, ret, ret_size);
}

static int read_full_file_internal(const char *path, size_t max, bool secure, char **ret,
                                   size_t *ret_size) {
        _cleanup_close_ int fd = -1;

        if (!path || !ret)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        return read_full_fd_internal(fd, max, secure, ret, ret_size);
}

int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size) {
        return read_full_file_internal(path, max, false, ret, ret_size);
}

int read_full_file_secure(const char *path, size_t max, char **ret, size_t *ret_size) {
        return read_full_file_internal(path, max, true, ret, ret_size);
}

static int loop_write(int fd, const void *data, size_t size) {
        const uint8_t *p = data;

        while (size > 0) {
                ssize_t k = write(fd, p, size);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -EIO;
                p += k;
                size -= (size_t) k;
        }
        return 0;
}

/* Splits path into a directory (to open and fsync) and the temporary name
 * next to the final one. */
static int make_temp_path(const char *path, char **ret_dir, char **ret_temp) {
        _cleanup_free_ char *dir = NULL, *temp = NULL;
        const char *slash, *base;
        sd_id128_t rnd;
        int r;

        slash = strrchr(path, '/');
        base = slash ? slash + 1 : path;
        if (!*base || streq(base, ".") || streq(base, ".."))
                return -EINVAL;

        if (!slash)
                dir = strdup(".");
        else if (slash == path)
                dir = strdup("/");
        else
                dir = strndup(path, (size_t) (slash - path));
        if (!dir)
                return -ENOMEM;

        r = sd_id128_randomize(&rnd);
        if (r < 0)
                return r;
        /* The basename is shortened so that long names still leave room
         * for the random part within NAME_MAX. */
        if (asprintf(&temp, "%s/.#%.100s.%s.tmp", dir, base, SD_ID128_TO_STRING(rnd)) < 0)
                return -ENOMEM;

        *ret_dir = TAKE_PTR(dir);
        *ret_temp = TAKE_PTR(temp);
        return 0;
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode) {
        _cleanup_free_ char *dir = NULL, *temp = NULL;
        _cleanup_close_ int fd = -1, dfd = -1;
        int r;

        if (!path || (!data && size > 0) || (mode & ~(mode_t) 07777))
                return -EINVAL;

        r = make_temp_path(path, &dir, &temp);
        if (r < 0)
                return r;

        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();

        /* Created with its final mode: there is no moment in which a key
         * file is readable by more than its owner. */
        fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, mode);
        if (fd < 0)
                return negative_errno();

        r = loop_write(fd, data, size);
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && close(TAKE_FD(fd)) < 0)
                r = negative_errno();
        if (r >= 0 && rename(temp, path) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlink(temp);
                return r;
        }

        /* The rename is durable only once the directory is. */
        if (fsync(dfd) < 0)
                return negative_errno();
        return 0;
}

static int mkdir_one(const char *path, mode_t mode) {
        struct stat st;

        if (mkdir(path, mode) >= 0)
                return 0;
        if (errno != EEXIST)
                return negative_errno();
        if (stat(path, &st) < 0)
                return negative_errno();
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = NULL;
        int r;

        if (!path || !*path)
                return -EINVAL;
        p = strdup(path);
        if (!p)
                return -ENOMEM;

        /* Each prefix ending before a '/', then the whole path. */
        for (char *s = p + 1; *s; s++) {
                if (*s != '/' || s[-1] == '/')
                        continue;
                *s = '\0';
                r = mkdir_one(p, mode);
                *s = '/';
                if (r < 0)
                        return r;
        }
        return mkdir_one(p, mode);
}

int mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *p = NULL;
        char *slash;

        if (!path || !*path)
                return -EINVAL;
        p = strdup(path);
        if (!p)
                return -ENOMEM;
        slash = strrchr(p, '/');
        if (!slash || slash == p)
                return 0;
        /* Trailing slashes of the parent name are harmless to mkdir. */
        *slash = '\0';
        return mkdir_p(p, mode);
}
