/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A package server for the software manager's integration tests:
 *
 *   swm-pkg-server --file=PKG --name=NAME --out=DIR [--chunk=N --interval-ms=M]
 *
 * Generates a publisher key, signs PKG (docs/crypto.md), writes
 * DIR/descriptor.json (sourcePackageURL /pkg/<sha256>) and
 * DIR/publishers/test.pub, then serves PKG at /pkg/<sha256> on 127.0.0.1
 * with ETag, Range and If-Range, N bytes every M ms when asked to be slow.
 * One line per request goes to DIR/requests.log. Prints "PORT=<n>" once
 * listening; SIGTERM ends it. */

#include <getopt.h>
#include <signal.h>

#include "../unit/test-swm-util.h"
#include "fileio.h"
#include "log.h"

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int main(int argc, char *argv[]) {
        _cleanup_free_ char *data = NULL, *pub = NULL, *desc_text = NULL, *path = NULL;
        const char *file = NULL, *name = NULL, *out = NULL;
        _cleanup_sign_key_ sign_key *key = NULL;
        size_t size = 0, chunk = 0;
        unsigned interval_ms = 0;
        swm_pkg_server srv;
        sd_event *e = NULL;
        sigset_t mask;
        json_t *desc;
        int opt, r;
        static const struct option options[] = {
                { "file", required_argument, NULL, 'f' },
                { "name", required_argument, NULL, 'n' },
                { "out", required_argument, NULL, 'o' },
                { "chunk", required_argument, NULL, 'c' },
                { "interval-ms", required_argument, NULL, 'i' },
                {},
        };

        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (opt) {
                case 'f': file = optarg; break;
                case 'n': name = optarg; break;
                case 'o': out = optarg; break;
                case 'c': chunk = strtoul(optarg, NULL, 10); break;
                case 'i': interval_ms = (unsigned) strtoul(optarg, NULL, 10); break;
                default: return 2;
                }
        }
        if (!file || !name || !out) {
                fprintf(stderr, "usage: %s --file=PKG --name=NAME --out=DIR [--chunk=N --interval-ms=M]\n",
                        argv[0]);
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        r = read_full_file(file, 256 * 1024 * 1024, &data, &size);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", file, strerror(-r));
                return 1;
        }
        if (sign_key_generate(&key) < 0 || sign_key_get_public_base64url(key, &pub) < 0)
                return 1;
        if (sd_event_default(&e) < 0 || swm_pkg_server_start(&srv, e, data, size) < 0)
                return 1;
        srv.chunk = chunk;
        srv.interval = interval_ms * USEC_PER_MSEC;

        desc = swm_make_descriptor(name, data, size, key, srv.path, NULL);
        desc_text = desc ? json_dumps(desc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(desc);
        if (!desc_text || asprintf(&path, "%s/descriptor.json", out) < 0 ||
            write_file_atomic(path, desc_text, strlen(desc_text), 0644) < 0)
                return 1;
        free(path);
        if (asprintf(&path, "%s/publishers/test.pub", out) < 0 || mkdir_parents(path, 0755) < 0 ||
            write_file_atomic(path, pub, strlen(pub), 0644) < 0)
                return 1;
        free(path);
        if (asprintf(&path, "%s/requests.log", out) < 0)
                return 1;
        srv.log = fopen(path, "ae");
        if (!srv.log)
                return 1;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        (void) sd_event_add_signal(e, NULL, SIGTERM, on_signal, NULL);
        (void) sd_event_add_signal(e, NULL, SIGINT, on_signal, NULL);

        printf("PORT=%u\n", srv.port);
        fflush(stdout);
        r = sd_event_loop(e);
        fclose(srv.log);
        srv.log = NULL;
        swm_pkg_server_done(&srv);
        sd_event_unref(e);
        return r < 0 ? 1 : 0;
}
