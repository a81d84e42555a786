/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the fan-out load generators (msg-load for rethink-domain,
 * msg-mqtt-load for an MQTT broker): options, the 100-byte SenML payload
 * with its send timestamp, pacing and the latency histogram, so that both
 * sides measure the same thing the same way.
 *
 * Every publisher publishes to its own resource below one prefix and
 * every subscriber subscribes to the prefix, so each publication is
 * delivered S times. Publishers send at --rate messages per second each
 * (0: as fast as --window messages in flight allow). Latency is
 * CLOCK_MONOTONIC at delivery minus the stamp in the payload (one host). */

#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MB_PAYLOAD_SIZE 100
/* 1 µs buckets up to 2 s; slower deliveries land in the last bucket. */
#define MB_HIST_BUCKETS 2000000u

typedef struct mb_options {
        const char *host;
        unsigned port;
        unsigned publishers, subscribers, seconds, rate, window, qos;
        const char *domain, *key;
} mb_options;

typedef struct mb_stats {
        uint64_t published, publish_errors, delivered, bad;
        uint32_t *hist;
        uint64_t start_usec, stop_usec, last_usec;
} mb_stats;

static inline uint64_t mb_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static inline int mb_parse_options(int argc, char **argv, mb_options *o) {
        static const struct option opts[] = {
                { "host", required_argument, NULL, 'H' },       { "port", required_argument, NULL, 'p' },
                { "publishers", required_argument, NULL, 'P' }, { "subscribers", required_argument, NULL, 'S' },
                { "seconds", required_argument, NULL, 't' },    { "rate", required_argument, NULL, 'r' },
                { "window", required_argument, NULL, 'w' },     { "qos", required_argument, NULL, 'q' },
                { "domain", required_argument, NULL, 'd' },     { "key", required_argument, NULL, 'k' },
                {},
        };
        int c;

        *o = (mb_options) { .host = "127.0.0.1", .publishers = 4, .subscribers = 16, .seconds = 10, .rate = 0,
                            .window = 16, .qos = 0, .domain = "localhost" };
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'H': o->host = optarg; break;
                case 'p': o->port = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'P': o->publishers = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'S': o->subscribers = (unsigned) strtoul(optarg, NULL, 10); break;
                case 't': o->seconds = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'r': o->rate = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'w': o->window = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'q': o->qos = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'd': o->domain = optarg; break;
                case 'k': o->key = optarg; break;
                default: return -1;
                }
        if (o->port == 0 || o->port > 65535 || o->publishers == 0 || o->subscribers == 0 || o->seconds == 0 ||
            o->seconds > 120 || o->window == 0 || o->qos > 1)
                return -1;
        return 0;
}

/* The SenML pack, exactly MB_PAYLOAD_SIZE bytes: the stamp, then padding. */
static inline int mb_payload(char buf[static MB_PAYLOAD_SIZE + 1], unsigned publisher, uint64_t stamp) {
        int n = snprintf(buf, MB_PAYLOAD_SIZE + 1, "[{\"bn\":\"p%u/\",\"n\":\"t\",\"v\":%" PRIu64 "},{\"n\":\"pad\",\"vs\":\"",
                         publisher, stamp);
        if (n < 0 || n > MB_PAYLOAD_SIZE - 4)
                return -1;
        memset(buf + n, 'x', (size_t) (MB_PAYLOAD_SIZE - 3 - n));
        memcpy(buf + MB_PAYLOAD_SIZE - 3, "\"}]", 4);
        return MB_PAYLOAD_SIZE;
}

/* Finds the stamp in a delivered payload (anywhere in data). */
static inline bool mb_find_stamp(const char *data, size_t size, uint64_t *ret) {
        static const char key[] = "\"n\":\"t\",\"v\":";
        const char *p = memmem(data, size, key, sizeof(key) - 1);
        uint64_t v = 0;

        if (!p)
                return false;
        p += sizeof(key) - 1;
        for (; p < data + size && *p >= '0' && *p <= '9'; p++)
                v = v * 10 + (uint64_t) (*p - '0');
        *ret = v;
        return true;
}

static inline void mb_record(mb_stats *s, uint64_t stamp) {
        uint64_t now = mb_now(), d = now > stamp ? now - stamp : 0;

        s->delivered++;
        s->last_usec = now;
        s->hist[d < MB_HIST_BUCKETS ? d : MB_HIST_BUCKETS - 1]++;
}

/* How many a publisher may send now: behind its rate and under the
 * window. */
static inline unsigned mb_due(const mb_options *o, uint64_t sent, unsigned in_flight, uint64_t now, uint64_t start) {
        uint64_t target = o->rate ? (now - start) * o->rate / 1000000u + 1 : UINT64_MAX;
        uint64_t behind = target > sent ? target - sent : 0;
        unsigned room = o->window > in_flight ? o->window - in_flight : 0;

        return (unsigned) (behind < room ? behind : room);
}

static inline uint64_t mb_percentile(const mb_stats *s, double q) {
        uint64_t want = (uint64_t) ((double) s->delivered * q), seen = 0;

        for (uint32_t i = 0; i < MB_HIST_BUCKETS; i++) {
                seen += s->hist[i];
                if (seen > want)
                        return i;
        }
        return MB_HIST_BUCKETS;
}

/* One line, key=value, for bench/msg-fanout to put in its table. */
static inline void mb_report(const char *name, const mb_options *o, const mb_stats *s) {
        double secs = (double) (s->stop_usec - s->start_usec) / 1e6;

        printf("system=%s publishers=%u subscribers=%u seconds=%.2f published=%" PRIu64 " publish_errors=%" PRIu64
               " delivered=%" PRIu64 " expected=%" PRIu64 " bad=%" PRIu64
               " delivered_per_sec=%.0f p50_us=%" PRIu64 " p99_us=%" PRIu64 "\n",
               name, o->publishers, o->subscribers, secs, s->published, s->publish_errors, s->delivered,
               s->published * o->subscribers, s->bad, (double) s->delivered / secs, mb_percentile(s, 0.50),
               mb_percentile(s, 0.99));
        fflush(stdout);
}
