/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's side of the bus for protostub tests: serves daemon/bus.c on
 * a socket and plays one or more hyperties over real libhyperty clients
 * in the same event loop.
 *
 *   stub-host --socket=PATH --runtime=runtime://D/UUID
 *             [--protostub=ADDRESS=TOKENFILE]...  registers a protostub
 *                   instance and writes its bus token to TOKENFILE
 *             [--route=D=ADDRESS]...              domain route to a protostub
 *             [--hyperty=ADDRESS]...              a test hyperty, connected
 *             [--device-token=FILE] [--expires-in=SECONDS]
 *   stub-host --lrd-domain-url=URL --lrd-domain=D --lrd-port=PORT
 *             [--lrd-certificate=PEM --lrd-key=PEM]
 *             [--lrd-resource=RESOURCE REPORTER sensor|actuator ACL]...
 *                   serves daemon/local-rd.c on 127.0.0.1:PORT (h2c
 *                   without a certificate), the domain's key set from URL;
 *                   both roles may be combined
 *
 * The runtime answers `read` of the token (attribute "token") with the
 * contents of --device-token (read again for every request, so a test can
 * change it) and `read` of "connectivity".
 *
 * stdin, one JSON object per line:
 *   {"send": MESSAGE}              sent by the hyperty named in its from (to
 *                                  its first `to`; the answer is printed
 *                                  with MESSAGE's id)
 *   {"connectivity": "offline"}    set and broadcast, as the agent does
 *   {"publish": {"resource": R, "value": SENML}}   to the Local RD
 * stdout, one JSON object per line:
 *   {"event": "ready"}                         every test hyperty said hello
 *   {"event": "received", "message": M}        a test hyperty got M
 *   {"event": "token-read", "count": N}
 *   {"event": "instance", "address": A, "connected": B}
 *   {"event": "actuation", "resource": R, "from": F, "value": SENML}
 *   {"event": "published", "resource": R, "error": ERRNO} */

#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "bus.h"
#include "fileio.h"
#include "hyperty.h"
#include "jwks-cache.h"
#include "local-rd.h"
#include "log.h"

#define MAX_HYPERTIES 8

typedef struct host {
        sd_event *event;
        bus *bus;
        const char *device_token_file;
        long expires_in;
        unsigned token_reads;
        hyperty *hyperties[MAX_HYPERTIES];
        unsigned n_hyperties, n_ready;
        char *in;
        size_t in_len;
        sd_event_source *stdin_source;
        local_rd *lrd;
        jwks_cache *jwks;
} host;

static void emit(json_t *j) {
        char *s = json_dumps(j, JSON_COMPACT);

        if (s) {
                printf("%s\n", s);
                fflush(stdout);
        }
        free(s);
        json_decref(j);
}

static int on_runtime(bus *b, const char *from, bus_instance_kind kind, const rt_message *m, void *userdata) {
        host *h = userdata;
        _cleanup_rt_message_ rt_message *resp = NULL;
        _cleanup_(json_decrefp) json_t *value = NULL;
        _cleanup_free_ char *text = NULL;
        const char *what = rt_message_get_attribute(m);
        int r;

        if (rt_message_get_type(m) == RT_MESSAGE_RESPONSE)
                return 0;
        if (rt_message_get_type(m) != RT_MESSAGE_READ)
                return -EOPNOTSUPP;
        if (streq_ptr(what, "token")) {
                if (kind != BUS_INSTANCE_PROTOSTUB)
                        return -EPERM;
                h->token_reads++;
                emit(json_pack("{s:s,s:i}", "event", "token-read", "count", (int) h->token_reads));
                if (!h->device_token_file)
                        return -ENOENT;
                r = read_full_file(h->device_token_file, 64 * 1024, &text, NULL);
                if (r < 0)
                        return -ENOENT;
                text[strcspn(text, "\r\n")] = '\0';
                value = json_pack("{s:s,s:I}", "accessToken", text, "expiresIn", (json_int_t) h->expires_in);
        } else if (streq_ptr(what, "connectivity"))
                value = json_pack("{s:s}", "state", "online");
        else
                return -ENOENT;
        if (!value)
                return -ENOMEM;
        r = rt_message_new_response(m, NULL, 200, NULL, value, &resp);
        if (r < 0)
                return r;
        return bus_send(b, resp);
}

static void on_instance(bus *b, const char *address, bool connected, void *userdata) {
        emit(json_pack("{s:s,s:s,s:b}", "event", "instance", "address", address, "connected", connected));
}

static void on_hyperty_message(hyperty *hy, const rt_message *m, void *userdata) {
        _cleanup_free_ char *text = NULL;
        json_t *j;

        if (rt_message_to_json(m, &text) < 0)
                return;
        j = json_loads(text, 0, NULL);
        emit(json_pack("{s:s,s:o}", "event", "received", "message", j));
}

static void on_hyperty_response(hyperty *hy, const rt_message *m, void *userdata) {
        _cleanup_free_ char *text = NULL;
        json_t *j;

        if (rt_message_to_json(m, &text) < 0)
                return;
        j = json_loads(text, 0, NULL);
        if (j)
                json_object_set_new(j, "id", json_integer((json_int_t) (uintptr_t) userdata));
        emit(json_pack("{s:s,s:o}", "event", "received", "message", j));
}

static void on_hyperty_state(hyperty *hy, bool connected, void *userdata) {
        host *h = userdata;

        if (connected && ++h->n_ready == h->n_hyperties)
                emit(json_pack("{s:s}", "event", "ready"));
        if (!connected && h->n_ready > 0)
                h->n_ready--;
}

static hyperty *find_hyperty(host *h, const char *address) {
        for (unsigned i = 0; i < h->n_hyperties; i++)
                if (streq(hyperty_get_address(h->hyperties[i]), address))
                        return h->hyperties[i];
        return NULL;
}

static void command(host *h, const char *line, size_t len) {
        _cleanup_(json_decrefp) json_t *j = json_loadb(line, len, 0, NULL);
        json_t *msg = json_object_get(j, "send");
        const char *c = json_string_value(json_object_get(j, "connectivity"));

        if (msg) {
                _cleanup_free_ char *text = json_dumps(msg, JSON_COMPACT);
                _cleanup_rt_message_ rt_message *m = NULL;
                _cleanup_free_ char *reason = NULL;
                hyperty *hy;
                int r;

                if (!text || rt_message_parse(text, strlen(text), NULL, &m, &reason) < 0) {
                        log_error("stub-host: bad message: %s", strna(reason));
                        return;
                }
                hy = find_hyperty(h, rt_message_get_from(m));
                if (!hy) {
                        log_error("stub-host: no test hyperty %s", rt_message_get_from(m));
                        return;
                }
                /* Requests are tracked so the answer comes back; it is
                 * printed with the test's id. */
                if (rt_message_get_type(m) == RT_MESSAGE_RESPONSE)
                        r = hyperty_send_message(hy, m);
                else
                        r = hyperty_send(hy, rt_message_get_type(m), NULL, rt_message_get_to(m, 0),
                                         rt_message_get_body(m), on_hyperty_response,
                                         (void *) (uintptr_t) rt_message_get_id(m), NULL);
                if (r < 0)
                        log_error_errno(r, "stub-host: cannot send: %m");
                return;
        }
        if (c) {
                _cleanup_(json_decrefp) json_t *body = json_pack("{s:s,s:{s:s}}", "attribute", "connectivity",
                                                                  "value", "state", c);

                if (bus_set_connectivity(h->bus, c) < 0 || !body || bus_broadcast(h->bus, RT_MESSAGE_EXECUTE, body) < 0)
                        log_error("stub-host: cannot set connectivity %s", c);
                return;
        }
        msg = json_object_get(j, "publish");
        if (msg && h->lrd) {
                const char *res = json_string_value(json_object_get(msg, "resource")), *reason = NULL;
                int r = res ? local_rd_publish(h->lrd, res, json_object_get(msg, "value"), &reason) : -EINVAL;

                emit(json_pack("{s:s,s:s?,s:i,s:s?}", "event", "published", "resource", res, "error", r,
                               "reason", reason));
                return;
        }
        log_error("stub-host: unknown command");
}

static int on_actuation(local_rd *rd, const char *resource, const char *reporter, const char *from, json_t *senml,
                        void *userdata) {
        emit(json_pack("{s:s,s:s,s:s,s:O}", "event", "actuation", "resource", resource, "from", from, "value",
                       senml));
        return 0;
}

static int setup_lrd(host *h, const char *url, const char *domain, const char *port, const char *cert,
                     const char *key, char **resources, unsigned n_resources) {
        int r;

        r = jwks_cache_new(h->event, &(jwks_cache_options) { .url = url, .domain = domain }, &h->jwks);
        if (r >= 0)
                r = jwks_cache_start(h->jwks);
        if (r >= 0)
                r = local_rd_new(h->event,
                                 &(local_rd_options) { .address = "127.0.0.1", .port = (uint16_t) atoi(port),
                                                       .certificate = cert, .key = key, .cleartext = !cert,
                                                       .domain = domain, .jwks = h->jwks },
                                 &h->lrd);
        if (r < 0)
                return log_error_errno(r, "stub-host: cannot serve the Local RD: %m");
        local_rd_set_actuation_handler(h->lrd, on_actuation, h);
        for (unsigned i = 0; i < n_resources; i++) {
                _cleanup_(json_decrefp) json_t *acl = NULL;
                char res[1024], rep[1024], kind[16], aclt[1024];

                if (sscanf(resources[i], "%1023s %1023s %15s %1023s", res, rep, kind, aclt) != 4)
                        return log_error_errno(EINVAL, "stub-host: bad --lrd-resource");
                acl = json_loads(aclt, 0, NULL);
                r = local_rd_add_resource(h->lrd, res, rep, streq(kind, "actuator"), acl);
                if (r < 0)
                        return log_error_errno(r, "stub-host: cannot offer %s: %m", res);
        }
        emit(json_pack("{s:s,s:s}", "event", "lrd", "endpoint", local_rd_get_endpoint(h->lrd)));
        return 0;
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        host *h = userdata;
        char buf[65536];
        ssize_t n;

        n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
                /* The test closed its end: done. */
                if (n == 0 || (errno != EAGAIN && errno != EINTR))
                        return sd_event_exit(h->event, 0);
                return 0;
        }
        for (ssize_t i = 0; i < n; i++) {
                if (buf[i] == '\n') {
                        command(h, h->in, h->in_len);
                        h->in_len = 0;
                        continue;
                }
                if (h->in_len >= 256 * 1024)
                        continue;
                h->in[h->in_len++] = buf[i];
        }
        return 0;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "runtime", required_argument, NULL, 'r' },
                { "protostub", required_argument, NULL, 'p' },
                { "route", required_argument, NULL, 'o' },
                { "hyperty", required_argument, NULL, 'y' },
                { "device-token", required_argument, NULL, 't' },
                { "expires-in", required_argument, NULL, 'e' },
                { "lrd-domain-url", required_argument, NULL, 'U' },
                { "lrd-domain", required_argument, NULL, 'D' },
                { "lrd-port", required_argument, NULL, 'P' },
                { "lrd-certificate", required_argument, NULL, 'C' },
                { "lrd-key", required_argument, NULL, 'K' },
                { "lrd-resource", required_argument, NULL, 'R' },
                {}
        };
        const char *sock = NULL, *runtime = NULL, *lrd_url = NULL, *lrd_domain = NULL, *lrd_port = "0",
                   *lrd_cert = NULL, *lrd_key = NULL;
        char *stubs[16], *routes[16], *hyps[MAX_HYPERTIES], *lrd_res[16];
        unsigned n_stubs = 0, n_routes = 0, n_hyps = 0, n_lrd_res = 0;
        host h = { .expires_in = 3600 };
        int opt, r;

        log_open();
        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (opt) {
                case 's': sock = optarg; break;
                case 'r': runtime = optarg; break;
                case 'p': if (n_stubs < 16) stubs[n_stubs++] = optarg; break;
                case 'o': if (n_routes < 16) routes[n_routes++] = optarg; break;
                case 'y': if (n_hyps < MAX_HYPERTIES) hyps[n_hyps++] = optarg; break;
                case 't': h.device_token_file = optarg; break;
                case 'e': h.expires_in = atol(optarg); break;
                case 'U': lrd_url = optarg; break;
                case 'D': lrd_domain = optarg; break;
                case 'P': lrd_port = optarg; break;
                case 'C': lrd_cert = optarg; break;
                case 'K': lrd_key = optarg; break;
                case 'R': if (n_lrd_res < 16) lrd_res[n_lrd_res++] = optarg; break;
                default: return 2;
                }
        if ((!sock || !runtime) && !lrd_url) {
                fprintf(stderr, "usage: stub-host --socket=PATH --runtime=ADDRESS [...] | --lrd-domain-url=URL [...]\n");
                return 2;
        }
        h.in = malloc(256 * 1024);
        if (!h.in)
                return 1;

        r = sd_event_default(&h.event);
        if (r < 0)
                return 1;
        if (lrd_url && setup_lrd(&h, lrd_url, lrd_domain, lrd_port, lrd_cert, lrd_key, lrd_res, n_lrd_res) < 0)
                return 1;
        if (sock) {
                r = bus_new(h.event, sock, runtime, &h.bus);
                if (r < 0) {
                        log_error_errno(r, "stub-host: cannot serve the bus on %s: %m", sock);
                        return 1;
                }
                bus_set_runtime_handler(h.bus, on_runtime, &h);
                bus_set_instance_handler(h.bus, on_instance, &h);
        }

        for (unsigned i = 0; i < n_stubs; i++) {
                _cleanup_free_ char *token = NULL, *line = NULL;
                char *eq = strchr(stubs[i], '=');

                if (!eq)
                        return 2;
                *eq = '\0';
                r = bus_add_instance(h.bus, stubs[i], BUS_INSTANCE_PROTOSTUB, "stub", &token);
                if (r < 0 || asprintf(&line, "%s\n", token) < 0 ||
                    write_file_atomic(eq + 1, line, strlen(line), 0600) < 0) {
                        log_error("stub-host: cannot register protostub %s", stubs[i]);
                        return 1;
                }
        }
        for (unsigned i = 0; i < n_routes; i++) {
                char *eq = strchr(routes[i], '=');

                if (!eq)
                        return 2;
                *eq = '\0';
                if (bus_set_domain_route(h.bus, routes[i], eq + 1) < 0) {
                        log_error("stub-host: bad route %s", routes[i]);
                        return 1;
                }
        }
        for (unsigned i = 0; i < n_hyps; i++) {
                _cleanup_free_ char *token = NULL;
                hyperty *hy = NULL;

                r = bus_add_instance(h.bus, hyps[i], BUS_INSTANCE_HYPERTY, "test", &token);
                if (r >= 0)
                        r = hyperty_new(h.event,
                                        &(hyperty_options) { .bus_path = sock, .address = hyps[i],
                                                             .runtime = runtime, .token = token },
                                        &hy);
                if (r < 0) {
                        log_error_errno(r, "stub-host: cannot set up hyperty %s: %m", hyps[i]);
                        return 1;
                }
                hyperty_set_message_handler(hy, on_hyperty_message, &h);
                hyperty_set_state_handler(hy, on_hyperty_state, &h);
                h.hyperties[h.n_hyperties++] = hy;
                r = hyperty_connect(hy);
                if (r < 0)
                        return 1;
        }
        r = sd_event_add_io(h.event, &h.stdin_source, STDIN_FILENO, EPOLLIN, on_stdin, &h);
        if (r < 0) {
                log_error_errno(r, "stub-host: cannot watch stdin: %m");
                return 1;
        }
        if (h.n_hyperties == 0)
                emit(json_pack("{s:s}", "event", "ready"));
        r = sd_event_loop(h.event);

        for (unsigned i = 0; i < h.n_hyperties; i++)
                hyperty_free(h.hyperties[i]);
        sd_event_source_disable_unref(h.stdin_source);
        bus_free(h.bus);
        local_rd_free(h.lrd);
        jwks_cache_free(h.jwks);
        sd_event_unref(h.event);
        free(h.in);
        return r < 0 ? 1 : 0;
}
