/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A hyperty for bench/m2m: with {"role":"producer","rate":N} it publishes
 * its resource "bench" N times a second, each value carrying the wall
 * clock time it was sent; with {"role":"consumer","path":"p2p|pubsub",
 * "count":N,"out":FILE} it discovers the producer, subscribes peer to peer
 * (through a p2p protostub) or through the domain, measures each
 * notification's latency (both devices share this machine's clock) and
 * writes {"path","received","p50_us","p99_us","max_us","rate_per_sec"} to
 * FILE after N values. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "hyperty.h"
#include "log.h"
#include "macro.h"

static struct {
        hyperty *h;
        sd_event *event;
        json_t *config;
        bool producer;
        const char *path;
        unsigned rate, count, received;
        uint64_t seq;
        double *latencies;
        double first, last;
        char *resource;
        sd_event_source *timer;
        bool subscribed, done;
} B;

static double wall_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static void write_result(void) {
        const char *out = json_string_value(json_object_get(B.config, "out"));
        json_t *j;
        size_t n = B.received;

        if (B.done || !out || n == 0)
                return;
        B.done = true;
        qsort(B.latencies, n, sizeof(double), cmp_double);
        j = json_pack("{s:s,s:I,s:f,s:f,s:f,s:f}", "path", B.path, "received", (json_int_t) n, "p50_us",
                      B.latencies[n / 2] * 1e6, "p99_us", B.latencies[(n * 99) / 100] * 1e6, "max_us",
                      B.latencies[n - 1] * 1e6, "rate_per_sec", n > 1 ? (double) (n - 1) / (B.last - B.first) : 0.0);
        if (!j || json_dump_file(j, out, JSON_COMPACT) < 0)
                log_error("Failed to write %s.", out);
        else
                log_info("Wrote %s: %u values.", out, B.received);
        json_decref(j);
}

/* --- producer ------------------------------------------------------------------------------ */

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        json_t *v = json_pack("[{s:s,s:I,s:f}]", "n", "bench", "v", (json_int_t) B.seq++, "t", wall_now());

        if (v && hyperty_is_connected(B.h))
                (void) hyperty_publish(B.h, "bench", v);
        json_decref(v);
        (void) sd_event_source_set_time(s, usec + 1000000ULL / B.rate);
        return 0;
}

static void on_registered(hyperty *h, const rt_message *m, void *userdata) {
        uint64_t t;

        if (rt_message_get_code(m) != 200) {
                log_warning("Registration refused: %d.", rt_message_get_code(m));
                return;
        }
        if (B.timer)
                return;
        (void) sd_event_now(B.event, CLOCK_MONOTONIC, &t);
        if (sd_event_add_time(B.event, &B.timer, CLOCK_MONOTONIC, t, 0, on_tick, NULL) >= 0)
                (void) sd_event_source_set_enabled(B.timer, SD_EVENT_ON);
}

/* --- consumer ------------------------------------------------------------------------------ */

static void discover(void);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        sd_event_source_unref(s);
        discover();
        return 0;
}

static void retry_later(void) {
        (void) sd_event_add_time_relative(B.event, NULL, CLOCK_MONOTONIC, 1000000ULL, 0, on_retry, NULL);
}

static void on_subscribed(hyperty *h, const rt_message *m, void *userdata) {
        if (rt_message_get_code(m) != 200) {
                log_warning("Subscribing via %s failed: %d %s.", B.path, rt_message_get_code(m),
                            strna(rt_message_get_description(m)));
                retry_later();
                return;
        }
        B.subscribed = true;
        log_info("Subscribed to %s via %s.", B.resource, B.path);
}

static void on_stub(hyperty *h, const rt_message *m, void *userdata) {
        const char *stub = json_string_value(json_object_get(rt_message_get_value(m), "address"));

        if (rt_message_get_code(m) != 200 || !stub) {
                log_warning("No p2p protostub: %d.", rt_message_get_code(m));
                retry_later();
                return;
        }
        (void) hyperty_subscribe(h, stub, B.resource, on_subscribed, NULL);
}

static void on_found(hyperty *h, const rt_message *m, void *userdata) {
        json_t *e = json_array_get(json_object_get(rt_message_get_value(m), "hyperties"), 0);
        const char *url = json_string_value(json_object_get(e, "url"));
        const char *endpoint = json_string_value(json_object_get(json_object_get(e, "location"), "endpoint"));

        if (rt_message_get_code(m) != 200 || !url || strncmp(url, "hyperty://", 10) != 0) {
                retry_later();
                return;
        }
        free(B.resource);
        if (asprintf(&B.resource, "ctxt://%s/bench", url + 10) < 0) {
                B.resource = NULL;
                return;
        }
        if (streq(B.path, "p2p")) {
                json_t *target = endpoint ? json_pack("{s:s}", "peer", endpoint) : NULL;

                if (!target) {
                        retry_later();
                        return;
                }
                (void) hyperty_load_protostub(h, target, on_stub, NULL);
                json_decref(target);
        } else
                (void) hyperty_subscribe(h, NULL, B.resource, on_subscribed, NULL);
}

static void discover(void) {
        json_t *c = json_pack("{s:s,s:s}", "resource", "bench", "status", "live");

        if (c)
                (void) hyperty_discover(B.h, c, on_found, NULL);
        json_decref(c);
}

static void on_message(hyperty *h, const rt_message *m, void *userdata) {
        json_t *rec = json_array_get(json_object_get(rt_message_get_body(m), "value"), 0);
        json_t *t = json_object_get(rec, "t");
        double now = wall_now();

        if (B.producer || rt_message_get_type(m) != RT_MESSAGE_UPDATE || !json_is_number(t) ||
            B.received >= B.count)
                return;
        if (B.received == 0)
                B.first = now;
        B.last = now;
        B.latencies[B.received++] = now - json_number_value(t);
        if (B.received == B.count)
                write_result();
}

static void on_state(hyperty *h, bool connected, void *userdata) {
        json_t *reg;

        if (!connected)
                return;
        if (!B.producer) {
                if (!B.subscribed)
                        discover();
                return;
        }
        reg = json_pack("{s:[s],s:[s],s:{s:s}}", "resources", "bench", "dataSchemes", "ctxt", "acl", "*", "r");
        if (reg)
                (void) hyperty_register(h, reg, on_registered, NULL);
        json_decref(reg);
}

int main(int argc, char *argv[]) {
        int r;

        log_open();
        r = hyperty_get_configuration(&B.config);
        if (r < 0)
                return log_error_errno(r, "Bad RETHINK_COMPONENT_CONFIGURATION: %m"), EXIT_FAILURE;
        B.producer = streq_ptr(json_string_value(json_object_get(B.config, "role")), "producer");
        B.rate = (unsigned) json_integer_value(json_object_get(B.config, "rate"));
        B.count = (unsigned) json_integer_value(json_object_get(B.config, "count"));
        B.path = json_string_value(json_object_get(B.config, "path")) ?: "pubsub";
        if (B.rate == 0)
                B.rate = 100;
        if (B.count == 0)
                B.count = 1000;
        B.latencies = calloc(B.count, sizeof(double));
        if (!B.latencies || hyperty_event_new(&B.event) < 0 || hyperty_new(B.event, NULL, &B.h) < 0)
                return EXIT_FAILURE;
        hyperty_set_state_handler(B.h, on_state, NULL);
        hyperty_set_message_handler(B.h, on_message, NULL);
        if (hyperty_connect(B.h) < 0)
                return EXIT_FAILURE;
        r = sd_event_loop(B.event);
        hyperty_free(B.h);
        sd_event_unref(B.event);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
