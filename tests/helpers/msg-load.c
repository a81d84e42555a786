/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fan-out load through the Messaging Service of rethink-domain, for
 * bench/msg-fanout:
 *
 *   msg-load --port N [--host A] [--publishers P] [--subscribers S]
 *            [--seconds T] [--rate R] [--window W] --domain NAME
 *            [--key IDM-KEY.pem]
 *
 * Each of P publishers and S subscribers is a runtime with its own HTTP/2
 * connection (h2c), session and stream. Subscribers subscribe to
 * ctxt://NAME/bench, publishers create ctxt://NAME/bench/p<i> and then
 * POST one update per message with a 100-byte SenML value. With --key
 * (the domain's IdM signing key) the tokens are real ES256 access tokens
 * for scope "runtime"; without, "Bearer test:<subject>" (test servers).
 * Prints one key=value line (see msg-bench-common.h). */

#include <jansson.h>

#include "h2-client.h"
#include "id.h"
#include "log.h"
#include "msg-bench-common.h"
#include "token.h"

typedef struct Node Node;

typedef struct Load {
        sd_event *event;
        mb_options o;
        mb_stats stats;
        token_key *key;
        Node *nodes;
        unsigned n_nodes, sessions, ready, failed;
        bool running, stopped;
        sd_event_source *tick;
} Load;

struct Node {
        Load *load;
        unsigned index;
        bool publisher;
        char runtime[128], subject[32], resource[160];
        char *auth;
        char session[64];
        H2Client *client;
        H2ClientRequest *stream;
        char *buf;
        size_t buf_len, buf_alloc;
        uint64_t sent, next_id;
        unsigned in_flight;
};

static const char *path_of(Node *n, const char *what, char *buf, size_t size) {
        snprintf(buf, size, "/msg/sessions/%s%s", n->session, what);
        return buf;
}

static void node_fail(Node *n, const char *what, int error) {
        fprintf(stderr, "msg-load: %s %u: %s: %s\n", n->publisher ? "publisher" : "subscriber", n->index, what,
                strerror(error < 0 ? -error : error));
        n->load->failed++;
}

static void on_post_complete(H2ClientRequest *req, int error, void *userdata);

static int post_message(Node *n, const char *body) {
        H2Header h[] = { { "authorization", n->auth }, { "content-type", "application/json" } };
        char path[128];

        return h2_client_request(n->client, "POST", path_of(n, "/messages", path, sizeof(path)), h, 2, body,
                                 strlen(body), 0,
                                 &(const H2ClientRequestCallbacks) { .on_complete = on_post_complete }, n, NULL);
}

static void publish_due(Node *n) {
        Load *l = n->load;
        unsigned due;

        if (!n->publisher || !l->running || l->stopped)
                return;
        due = mb_due(&l->o, n->sent, n->in_flight, mb_now(), l->stats.start_usec);
        while (due-- > 0) {
                char payload[MB_PAYLOAD_SIZE + 1], body[512];

                if (mb_payload(payload, n->index, mb_now()) < 0)
                        return;
                snprintf(body, sizeof(body),
                         "{\"id\":%" PRIu64 ",\"type\":\"update\",\"from\":\"%s\",\"to\":\"%s\",\"body\":{\"value\":%s}}",
                         ++n->next_id, n->runtime, n->resource, payload);
                if (post_message(n, body) < 0) {
                        l->stats.publish_errors++;
                        return;
                }
                n->sent++;
                n->in_flight++;
                l->stats.published++;
        }
}

static void on_post_complete(H2ClientRequest *req, int error, void *userdata) {
        Node *n = userdata;

        if (error < 0 || h2_client_request_get_status(req) != 202)
                n->load->stats.publish_errors++;
        if (n->in_flight > 0)
                n->in_flight--;
        publish_due(n);
}

static void handle_line(Node *n, const char *line, size_t len) {
        Load *l = n->load;
        uint64_t stamp;

        if (memmem(line, len, "\"type\":\"update\"", 15)) {
                if (mb_find_stamp(line, len, &stamp)) {
                        /* Stamp 0: a publisher's create from the set-up. */
                        if (stamp > 0)
                                mb_record(&l->stats, stamp);
                } else
                        l->stats.bad++;
                return;
        }
        if (memmem(line, len, "\"type\":\"response\"", 17) && memmem(line, len, "\"code\":200", 10)) {
                l->ready++;
                return;
        }
        l->stats.bad++;
        fprintf(stderr, "msg-load: unexpected: %.*s\n", (int) MIN(len, (size_t) 300), line);
}

static int on_stream_data(H2ClientRequest *req, const uint8_t *data, size_t size, void *userdata) {
        Node *n = userdata;
        size_t start = 0;

        if (n->buf_len + size > n->buf_alloc) {
                size_t a = MAX(n->buf_alloc * 2, n->buf_len + size);
                char *p = realloc(n->buf, a);
                if (!p)
                        return -ENOMEM;
                n->buf = p;
                n->buf_alloc = a;
        }
        memcpy(n->buf + n->buf_len, data, size);
        n->buf_len += size;
        for (size_t i = 0; i < n->buf_len; i++)
                if (n->buf[i] == '\n') {
                        handle_line(n, n->buf + start, i - start);
                        start = i + 1;
                }
        memmove(n->buf, n->buf + start, n->buf_len - start);
        n->buf_len -= start;
        return 0;
}

static void on_stream_complete(H2ClientRequest *req, int error, void *userdata) {
        Node *n = userdata;

        if (!n->load->stopped)
                node_fail(n, "stream ended", error ?: ECONNRESET);
}

static void on_session_complete(H2ClientRequest *req, int error, void *userdata) {
        Node *n = userdata;
        const uint8_t *body;
        size_t size;
        json_t *j;
        char path[128], msgbuf[512];
        H2Header h[] = { { "authorization", n->auth } };
        int r;

        if (error < 0 || (h2_client_request_get_status(req) != 201 && h2_client_request_get_status(req) != 200))
                return node_fail(n, "open session", error ?: EACCES);
        body = h2_client_request_get_body(req, &size);
        j = json_loadb((const char *) body, size, 0, NULL);
        snprintf(n->session, sizeof(n->session), "%s", strna(json_string_value(json_object_get(j, "session"))));
        json_decref(j);
        n->load->sessions++;

        r = h2_client_request(n->client, "GET", path_of(n, "/stream", path, sizeof(path)), h, 1, NULL, 0, 0,
                              &(const H2ClientRequestCallbacks) { .on_data = on_stream_data,
                                                                  .on_complete = on_stream_complete },
                              n, &n->stream);
        if (r < 0)
                return node_fail(n, "open stream", r);

        if (n->publisher) {
                char payload[MB_PAYLOAD_SIZE + 1];

                (void) mb_payload(payload, n->index, 0);
                snprintf(msgbuf, sizeof(msgbuf),
                         "{\"id\":1,\"type\":\"create\",\"from\":\"%s\",\"to\":\"%s\",\"body\":{\"value\":%s}}",
                         n->runtime, n->resource, payload);
        } else
                snprintf(msgbuf, sizeof(msgbuf),
                         "{\"id\":1,\"type\":\"subscribe\",\"from\":\"%s\",\"to\":\"domain://msg-node.%s/sm\","
                         "\"body\":{\"resource\":\"ctxt://%s/bench\"}}",
                         n->runtime, n->load->o.domain, n->load->o.domain);
        n->next_id = 1;
        r = post_message(n, msgbuf);
        if (r < 0)
                return node_fail(n, "set up", r);
        n->in_flight++;
}

static int node_start(Load *l, Node *n) {
        char uuid[ID_UUID_STRING_MAX], body[256];
        H2Header h[1];
        int r;

        r = id_uuid_new(uuid);
        if (r < 0)
                return r;
        snprintf(n->runtime, sizeof(n->runtime), "runtime://%s/%s", l->o.domain, uuid);
        snprintf(n->subject, sizeof(n->subject), "bench-%c%u", n->publisher ? 'p' : 's', n->index);
        /* A fresh resource per run: the reporter of an old one is another
         * runtime. */
        snprintf(n->resource, sizeof(n->resource), "ctxt://%s/bench/p%u-%.8s", l->o.domain, n->index, uuid);
        if (l->key) {
                _cleanup_free_ char *token = NULL;

                r = token_issue(l->key,
                                &(token_issue_params) { .issuer = l->o.domain, .subject = n->subject,
                                                        .audience = l->o.domain, .scope = "runtime",
                                                        .lifetime = USEC_PER_HOUR },
                                &token);
                if (r < 0)
                        return r;
                if (asprintf(&n->auth, "Bearer %s", token) < 0)
                        return -ENOMEM;
        } else if (asprintf(&n->auth, "Bearer test:%s", n->subject) < 0)
                return -ENOMEM;

        r = h2_client_new(l->event, l->o.host, (uint16_t) l->o.port, NULL, NULL, NULL, NULL, NULL, &n->client);
        if (r < 0)
                return r;
        h[0] = (H2Header) { "authorization", n->auth };
        snprintf(body, sizeof(body), "{\"runtime\":\"%s\"}", n->runtime);
        return h2_client_request(n->client, "POST", "/msg/sessions", h, 1, body, strlen(body), 0,
                                 &(const H2ClientRequestCallbacks) { .on_complete = on_session_complete }, n, NULL);
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Load *l = userdata;

        for (unsigned i = 0; i < l->n_nodes; i++)
                if (l->nodes[i].publisher)
                        publish_due(&l->nodes[i]);
        (void) sd_event_source_set_time_relative(s, USEC_PER_MSEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static bool run_until(Load *l, bool (*cond)(Load *l), uint64_t limit_usec) {
        uint64_t deadline = mb_now() + limit_usec;

        while (!cond(l) && !l->failed && mb_now() < deadline)
                if (sd_event_run(l->event, 100000) < 0)
                        return false;
        return cond(l);
}

static bool all_ready(Load *l) {
        return l->ready >= l->n_nodes;
}

static bool all_delivered(Load *l) {
        return l->stats.delivered >= l->stats.published * l->o.subscribers;
}

static bool never(Load *l) {
        return false;
}

int main(int argc, char **argv) {
        Load l = {};
        int r;

        log_open();
        if (mb_parse_options(argc, argv, &l.o) < 0) {
                fprintf(stderr, "usage: msg-load --port N [--host A] [--publishers P] [--subscribers S] [--seconds T] "
                                "[--rate R] [--window W] --domain NAME [--key PEM]\n");
                return 2;
        }
        if (l.o.key && (r = token_key_load_private_pem(l.o.key, &l.key)) < 0) {
                fprintf(stderr, "msg-load: %s: %s\n", l.o.key, strerror(-r));
                return 1;
        }
        l.stats.hist = calloc(MB_HIST_BUCKETS, sizeof(uint32_t));
        l.n_nodes = l.o.publishers + l.o.subscribers;
        l.nodes = calloc(l.n_nodes, sizeof(Node));
        if (!l.stats.hist || !l.nodes || sd_event_new(&l.event) < 0)
                return 1;

        for (unsigned i = 0; i < l.n_nodes; i++) {
                Node *n = &l.nodes[i];

                n->load = &l;
                n->publisher = i < l.o.publishers;
                n->index = n->publisher ? i : i - l.o.publishers;
                r = node_start(&l, n);
                if (r < 0) {
                        fprintf(stderr, "msg-load: setting up: %s\n", strerror(-r));
                        return 1;
                }
        }
        if (!run_until(&l, all_ready, 30 * USEC_PER_SEC)) {
                fprintf(stderr, "msg-load: set-up failed (%u of %u ready, %u failed)\n", l.ready, l.n_nodes, l.failed);
                return 1;
        }
        for (unsigned i = 0; i < l.n_nodes; i++)
                l.nodes[i].in_flight = 0;
        /* The set-up's updates (publishers' creates) are not counted. */
        memset(l.stats.hist, 0, MB_HIST_BUCKETS * sizeof(uint32_t));
        l.stats.delivered = l.stats.bad = 0;

        l.running = true;
        l.stats.start_usec = mb_now();
        r = sd_event_add_time_relative(l.event, &l.tick, CLOCK_MONOTONIC, USEC_PER_MSEC, 0, on_tick, &l);
        if (r < 0)
                return 1;
        (void) run_until(&l, never, (uint64_t) l.o.seconds * USEC_PER_SEC);
        l.running = false;
        l.tick = sd_event_source_disable_unref(l.tick);
        l.stats.stop_usec = mb_now();
        /* Drain: what was published is still on its way. */
        (void) run_until(&l, all_delivered, 5 * USEC_PER_SEC);
        l.stats.stop_usec = MAX(l.stats.stop_usec, l.stats.last_usec);
        l.stopped = true;
        mb_report("rethink", &l.o, &l.stats);

        for (unsigned i = 0; i < l.n_nodes; i++) {
                h2_client_request_unref(l.nodes[i].stream);
                h2_client_unref(l.nodes[i].client);
                free(l.nodes[i].auth);
                free(l.nodes[i].buf);
        }
        free(l.nodes);
        free(l.stats.hist);
        token_key_free(l.key);
        sd_event_unref(l.event);
        return l.failed ? 1 : 0;
}
