/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "sha256.h"
#include "tests.h"

/* FIPS 180-2, appendix B. */
#define V_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define V_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define M_448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define V_448 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define V_MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

static const char *hex(const uint8_t d[SHA256_DIGEST_SIZE]) {
        static char buf[SHA256_HEX_SIZE];
        return sha256_to_hex(d, buf);
}

static void test_vectors_one_shot(void) {
        uint8_t d[SHA256_DIGEST_SIZE];

        CU_ASSERT_EQUAL_FATAL(sha256_buffer("", 0, d), 0);
        CU_ASSERT_STRING_EQUAL(hex(d), V_EMPTY);
        CU_ASSERT_EQUAL_FATAL(sha256_buffer(NULL, 0, d), 0);
        CU_ASSERT_STRING_EQUAL(hex(d), V_EMPTY);
        CU_ASSERT_EQUAL_FATAL(sha256_buffer("abc", 3, d), 0);
        CU_ASSERT_STRING_EQUAL(hex(d), V_ABC);
        CU_ASSERT_EQUAL_FATAL(sha256_buffer(M_448, strlen(M_448), d), 0);
        CU_ASSERT_STRING_EQUAL(hex(d), V_448);
        CU_ASSERT_EQUAL(sha256_buffer(NULL, 1, d), -EINVAL);
}

static void test_million_a_streamed(void) {
        _cleanup_sha256_ctx_ sha256_ctx *c = NULL;
        uint8_t d[SHA256_DIGEST_SIZE];
        char chunk[1000];
        size_t left = 1000000, step = 1;

        memset(chunk, 'a', sizeof(chunk));
        CU_ASSERT_EQUAL_FATAL(sha256_ctx_new(&c), 0);
        /* Odd, varying chunk sizes, so block boundaries fall everywhere. */
        while (left > 0) {
                size_t n = MIN(left, step);
                CU_ASSERT_EQUAL_FATAL(sha256_ctx_update(c, chunk, n), 0);
                left -= n;
                step = step * 7 % 997 + 1;
        }
        CU_ASSERT_EQUAL_FATAL(sha256_ctx_final(c, d), 0);
        CU_ASSERT_STRING_EQUAL(hex(d), V_MILLION_A);

        /* The context starts over after final. */
        CU_ASSERT_EQUAL(sha256_ctx_update(c, "ab", 2), 0);
        CU_ASSERT_EQUAL(sha256_ctx_update(c, "", 0), 0);
        CU_ASSERT_EQUAL(sha256_ctx_update(c, "c", 1), 0);
        CU_ASSERT_EQUAL_FATAL(sha256_ctx_final(c, d), 0);
        CU_ASSERT_STRING_EQUAL(hex(d), V_ABC);
        CU_ASSERT_EQUAL_FATAL(sha256_ctx_final(c, d), 0);
        CU_ASSERT_STRING_EQUAL(hex(d), V_EMPTY);

        CU_ASSERT_EQUAL(sha256_ctx_update(c, NULL, 1), -EINVAL);
        CU_ASSERT_EQUAL(sha256_ctx_update(NULL, "a", 1), -EINVAL);
        CU_ASSERT_PTR_NULL(sha256_ctx_free(NULL));
}

static void test_fd(void) {
        char path[] = "/tmp/test-sha256-XXXXXX";
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint8_t *data = NULL;
        uint8_t a[SHA256_DIGEST_SIZE], b[SHA256_DIGEST_SIZE], untouched[SHA256_DIGEST_SIZE];
        /* Crosses the internal chunk size and is not a multiple of it. */
        size_t n = 3 * 65536 + 12345;

        data = malloc(n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(data);
        for (size_t i = 0; i < n; i++)
                data[i] = (uint8_t) (i * 2654435761u >> 24);

        fd = mkstemp(path);
        CU_ASSERT_FATAL(fd >= 0);
        (void) unlink(path);
        CU_ASSERT_EQUAL_FATAL(write(fd, data, n), (ssize_t) n);
        CU_ASSERT_EQUAL_FATAL(lseek(fd, 0, SEEK_SET), 0);

        CU_ASSERT_EQUAL(sha256_fd(fd, a), (int64_t) n);
        CU_ASSERT_EQUAL_FATAL(sha256_buffer(data, n, b), 0);
        CU_ASSERT_EQUAL(memcmp(a, b, sizeof(a)), 0);

        /* At end of file nothing is left: the digest of nothing. */
        CU_ASSERT_EQUAL(sha256_fd(fd, a), 0);
        CU_ASSERT_STRING_EQUAL(hex(a), V_EMPTY);

        /* From the current offset. */
        CU_ASSERT_EQUAL_FATAL(lseek(fd, 1000, SEEK_SET), 1000);
        CU_ASSERT_EQUAL(sha256_fd(fd, a), (int64_t) (n - 1000));
        CU_ASSERT_EQUAL_FATAL(sha256_buffer(data + 1000, n - 1000, b), 0);
        CU_ASSERT_EQUAL(memcmp(a, b, sizeof(a)), 0);

        memset(untouched, 0x5a, sizeof(untouched));
        memcpy(a, untouched, sizeof(a));
        CU_ASSERT_EQUAL(sha256_fd(-1, a), -EBADF);
        CU_ASSERT_EQUAL(sha256_fd(1000000, a), -EBADF);
        CU_ASSERT_EQUAL(memcmp(a, untouched, sizeof(a)), 0);
}

static void test_file(void) {
        uint8_t d[SHA256_DIGEST_SIZE];
        char dir[] = "/tmp/test-sha256-dir-XXXXXX";

        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        CU_ASSERT_EQUAL(sha256_file(dir, d), -EISDIR);
        CU_ASSERT_EQUAL(rmdir(dir), 0);
        CU_ASSERT_EQUAL(sha256_file(dir, d), -ENOENT);
        CU_ASSERT_EQUAL(sha256_file("/dev/null", d), 0);
        CU_ASSERT_STRING_EQUAL(hex(d), V_EMPTY);
}

static void test_hex(void) {
        uint8_t d[SHA256_DIGEST_SIZE], e[SHA256_DIGEST_SIZE];
        char upper[] = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";

        CU_ASSERT_EQUAL_FATAL(sha256_buffer("abc", 3, d), 0);
        CU_ASSERT_EQUAL(sha256_from_hex(V_ABC, e), 0);
        CU_ASSERT_EQUAL(memcmp(d, e, sizeof(d)), 0);
        CU_ASSERT_EQUAL(sha256_from_hex(upper, e), 0);
        CU_ASSERT_EQUAL(memcmp(d, e, sizeof(d)), 0);
        CU_ASSERT_EQUAL(sha256_from_hex(V_ABC "00", e), -EINVAL);
        CU_ASSERT_EQUAL(sha256_from_hex("ba7816", e), -EINVAL);
        upper[5] = 'g';
        CU_ASSERT_EQUAL(sha256_from_hex(upper, e), -EINVAL);
        CU_ASSERT_EQUAL(sha256_from_hex(NULL, e), -EINVAL);
}

static CU_TestInfo tests[] = {
        { "FIPS 180-2 vectors, one-shot", test_vectors_one_shot },
        { "one million 'a' streamed in odd chunks", test_million_a_streamed },
        { "file descriptor", test_fd },
        { "file by path", test_file },
        { "hex conversion", test_hex },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("sha256", tests)
