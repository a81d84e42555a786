/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "tests.h"

static char tmpdir[] = "/tmp/test-fileio-XXXXXX";

static char *path_in_tmp(const char *name) {
        static char buf[4][256];
        static unsigned k;
        char *p = buf[k++ % ELEMENTSOF(buf)];

        snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
        return p;
}

/* Number of entries in dir other than . and .., to spot stray temp files. */
static int count_entries(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;

        if (!d)
                return -1;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static int init(void) {
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int cleanup(void) {
        char cmd[512];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

static void test_read_full_file(void) {
        const char *p = path_in_tmp("read");
        _cleanup_free_ char *buf = NULL;
        char *untouched = (char *) 0x1;
        size_t n = 99;

        CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, "hello\0world", 11, 0644), 0);
        CU_ASSERT_EQUAL_FATAL(read_full_file(p, 11, &buf, &n), 0);
        CU_ASSERT_EQUAL(n, 11);
        CU_ASSERT_EQUAL(memcmp(buf, "hello\0world", 12), 0);

        /* One byte over the limit. */
        n = 99;
        CU_ASSERT_EQUAL(read_full_file(p, 10, &untouched, &n), -EFBIG);
        CU_ASSERT_EQUAL(read_full_file(p, 0, &untouched, &n), -EFBIG);
        CU_ASSERT_PTR_EQUAL(untouched, (char *) 0x1);
        CU_ASSERT_EQUAL(n, 99);

        CU_ASSERT_EQUAL(read_full_file(path_in_tmp("missing"), 100, &untouched, &n), -ENOENT);
        CU_ASSERT_EQUAL(read_full_file(tmpdir, 100, &untouched, &n), -EISDIR);
        CU_ASSERT_EQUAL(read_full_fd(-1, 100, &untouched, &n), -EBADF);
        CU_ASSERT_PTR_EQUAL(untouched, (char *) 0x1);
}

static void test_read_empty_and_secure(void) {
        _cleanup_free_ char *buf = NULL, *big = NULL, *back = NULL;
        const char *p = path_in_tmp("big");
        size_t n = 99, size = 100000;

        CU_ASSERT_EQUAL_FATAL(read_full_file("/dev/null", 10, &buf, &n), 0);
        CU_ASSERT_EQUAL(n, 0);
        CU_ASSERT_EQUAL(buf[0], '\0');

        big = malloc(size);
        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        for (size_t i = 0; i < size; i++)
                big[i] = (char) ('a' + i % 26);
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, big, size, 0600), 0);
        CU_ASSERT_EQUAL_FATAL(read_full_file_secure(p, size, &back, &n), 0);
        CU_ASSERT_EQUAL(n, size);
        CU_ASSERT_EQUAL(memcmp(back, big, size), 0);
        CU_ASSERT_EQUAL(read_full_file_secure(p, size - 1, &buf, &n), -EFBIG);
}

static void test_read_pipe_limit(void) {
        _cleanup_close_ int rfd = -1, wfd = -1;
        _cleanup_free_ char *buf = NULL;
        int fds[2];
        char data[3000];
        size_t n;

        /* A pipe has no size to check up front: the limit applies while
         * reading. */
        memset(data, 'x', sizeof(data));
        CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
        rfd = fds[0];
        wfd = fds[1];
        CU_ASSERT_EQUAL_FATAL(write(wfd, data, sizeof(data)), (ssize_t) sizeof(data));
        wfd = safe_close(wfd);
        CU_ASSERT_EQUAL(read_full_fd(rfd, 2999, &buf, &n), -EFBIG);

        CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
        rfd = safe_close(rfd);
        rfd = fds[0];
        wfd = fds[1];
        CU_ASSERT_EQUAL_FATAL(write(wfd, data, sizeof(data)), (ssize_t) sizeof(data));
        wfd = safe_close(wfd);
        CU_ASSERT_EQUAL_FATAL(read_full_fd(rfd, 3000, &buf, &n), 0);
        CU_ASSERT_EQUAL(n, 3000);
}

static void test_write_atomic_mode(void) {
        const char *p = path_in_tmp("key");
        struct stat st;
        mode_t old = umask(022);
        int before = count_entries(tmpdir);

        CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, "secret", 6, 0600), 0);
        CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);

        /* Replacing gives the new file's mode, not the old one's. */
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, "public", 6, 0644), 0);
        CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0644);

        /* The umask applies as with open(2). */
        umask(077);
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, "x", 1, 0644), 0);
        CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
        umask(old);

        CU_ASSERT_EQUAL(write_file_atomic(p, "x", 1, 010000), -EINVAL);
        CU_ASSERT_EQUAL(write_file_atomic(path_in_tmp(""), "x", 1, 0600), -EINVAL);
        CU_ASSERT_EQUAL(write_file_atomic(path_in_tmp("nodir/f"), "x", 1, 0600), -ENOENT);
        CU_ASSERT_EQUAL(count_entries(tmpdir), before + 1);
        CU_ASSERT_EQUAL(unlink(p), 0);
}

/* A write that fails half way (the file size limit stops it) must leave the
 * old content under the final name and no temporary file behind. */
static void test_write_atomic_failure_keeps_old(void) {
        const char *p = path_in_tmp("config");
        _cleanup_free_ char *buf = NULL, *big = NULL;
        struct rlimit old_rl, rl;
        struct sigaction sa = { .sa_handler = SIG_IGN }, old_sa;
        size_t n;
        int r, before = count_entries(tmpdir);

        CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, "old content", 11, 0644), 0);

        big = calloc(1, 65536);
        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_FSIZE, &old_rl), 0);
        CU_ASSERT_EQUAL_FATAL(sigaction(SIGXFSZ, &sa, &old_sa), 0);
        rl = (struct rlimit) { .rlim_cur = 4096, .rlim_max = old_rl.rlim_max };
        CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &rl), 0);
        r = write_file_atomic(p, big, 65536, 0644);
        CU_ASSERT_EQUAL(setrlimit(RLIMIT_FSIZE, &old_rl), 0);
        CU_ASSERT_EQUAL(sigaction(SIGXFSZ, &old_sa, NULL), 0);

        CU_ASSERT_EQUAL(r, -EFBIG);
        CU_ASSERT_EQUAL_FATAL(read_full_file(p, 100, &buf, &n), 0);
        CU_ASSERT_STRING_EQUAL(buf, "old content");
        CU_ASSERT_EQUAL(count_entries(tmpdir), before + 1);

        /* A failing rename (onto a non-empty directory) cleans up as well. */
        CU_ASSERT_EQUAL_FATAL(mkdir_p(path_in_tmp("occupied/sub"), 0755), 0);
        CU_ASSERT(write_file_atomic(path_in_tmp("occupied"), "x", 1, 0644) < 0);
        CU_ASSERT_EQUAL(count_entries(tmpdir), before + 2);
        CU_ASSERT_EQUAL(count_entries(path_in_tmp("occupied")), 1);

        CU_ASSERT_EQUAL(unlink(p), 0);
        CU_ASSERT_EQUAL(rmdir(path_in_tmp("occupied/sub")), 0);
        CU_ASSERT_EQUAL(rmdir(path_in_tmp("occupied")), 0);
}

static void test_write_atomic_replace(void) {
        const char *p = path_in_tmp("state");
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int fd = -1;
        char old[16] = {};
        size_t n;
        int before = count_entries(tmpdir);

        CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, "version 1", 9, 0644), 0);
        /* A reader holding the old file keeps seeing it whole: the new
         * content is a new inode, not an overwrite. */
        fd = open(p, O_RDONLY | O_CLOEXEC);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, "version 2, longer", 17, 0644), 0);
        CU_ASSERT_EQUAL(read(fd, old, sizeof(old) - 1), 9);
        CU_ASSERT_STRING_EQUAL(old, "version 1");
        CU_ASSERT_EQUAL_FATAL(read_full_file(p, 100, &buf, &n), 0);
        CU_ASSERT_STRING_EQUAL(buf, "version 2, longer");
        free(buf);
        buf = NULL;

        /* Empty content is a valid file. */
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, NULL, 0, 0644), 0);
        CU_ASSERT_EQUAL_FATAL(read_full_file(p, 100, &buf, &n), 0);
        CU_ASSERT_EQUAL(n, 0);
        CU_ASSERT_EQUAL(count_entries(tmpdir), before + 1);
        CU_ASSERT_EQUAL(unlink(p), 0);
}

static void test_mkdir_p(void) {
        struct stat st;
        mode_t old = umask(022);

        CU_ASSERT_EQUAL(mkdir_p(path_in_tmp("a/b/c"), 0750), 0);
        CU_ASSERT_EQUAL_FATAL(stat(path_in_tmp("a/b/c"), &st), 0);
        CU_ASSERT(S_ISDIR(st.st_mode));
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0750);
        CU_ASSERT_EQUAL_FATAL(stat(path_in_tmp("a"), &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0750);

        /* Existing directories are fine, also with doubled and trailing
         * slashes. */
        CU_ASSERT_EQUAL(mkdir_p(path_in_tmp("a//b/c/"), 0700), 0);
        CU_ASSERT_EQUAL(mkdir_parents(path_in_tmp("a/b2/file"), 0700), 0);
        CU_ASSERT_EQUAL_FATAL(stat(path_in_tmp("a/b2"), &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0700);
        CU_ASSERT_EQUAL(stat(path_in_tmp("a/b2/file"), &st), -1);

        CU_ASSERT_EQUAL_FATAL(write_file_atomic(path_in_tmp("a/f"), "x", 1, 0644), 0);
        CU_ASSERT_EQUAL(mkdir_p(path_in_tmp("a/f"), 0755), -ENOTDIR);
        CU_ASSERT_EQUAL(mkdir_p(path_in_tmp("a/f/g"), 0755), -ENOTDIR);
        CU_ASSERT_EQUAL(mkdir_p("", 0755), -EINVAL);
        umask(old);
}

static CU_TestInfo tests[] = {
        { "read_full_file and its limit", test_read_full_file },
        { "read empty, large and secure", test_read_empty_and_secure },
        { "read limit on a pipe", test_read_pipe_limit },
        { "atomic write honours mode", test_write_atomic_mode },
        { "failed atomic write keeps old content", test_write_atomic_failure_keeps_old },
        { "atomic write replaces by rename", test_write_atomic_replace },
        { "mkdir -p", test_mkdir_p },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("fileio", tests, init, cleanup)
