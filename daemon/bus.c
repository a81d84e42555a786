/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "address.h"
#include "bus-reader.h"
#include "bus.h"
#include "encoding.h"
#include "log.h"
#include "macro.h"
#include "unix-socket.h"
#include "message.h"

/* Lines from a client are taken only while less than this is queued for it:
 * one that sends requests but does not read the answers stalls instead of
 * being dropped at once. What others send to it still counts against
 * output_max. */
#define BUS_OUTPUT_HIGH (64U * 1024U)

typedef struct bus_client bus_client;
typedef struct bus_instance bus_instance;

struct bus_instance {
        bus_instance *next;
        char *address;
        /* ctxt://<domain>/<uuid>: the resources of a hyperty. */
        char *ctxt_prefix;
        bus_instance_kind kind;
        char *component;
        char *token;
        bus_client *client;
};

typedef struct bus_route {
        char *domain;
        char *stub;
} bus_route;

typedef struct bus_event {
        char *address;
        bool connected;
} bus_event;

struct bus_client {
        bus *bus;
        bus_client *next;
        unsigned number;
        int fd;
        sd_event_source *io_source;
        sd_event_source *hello_source;
        struct ucred cred;
        bus_reader *reader;

        char *out;
        size_t out_size, out_alloc, out_done;

        /* Set by the hello. */
        bus_instance *instance;
        bool dead;
};

struct bus {
        sd_event *event;
        char *path;
        int fd;
        dev_t dev;
        ino_t ino;
        sd_event_source *listen_source;
        /* Frees what was closed and tells the instance handler, outside of
         * whatever routing closed it. */
        sd_event_source *gc_source;

        char *runtime;
        char *domain;
        char connectivity[16];
        uint64_t next_id;
        unsigned next_number;

        bus_instance *instances;
        bus_instance *dead_instances;
        bus_client *clients;
        bus_client *dead_clients;
        unsigned n_clients;
        bus_route *routes;
        size_t n_routes;
        bus_event *events;
        size_t n_events;

        unsigned clients_max;
        size_t output_max;
        uint64_t hello_usec;
        bool freeing;

        bus_runtime_handler_t runtime_handler;
        void *runtime_userdata;
        bus_local_resource_handler_t local_handler;
        void *local_userdata;
        bus_instance_handler_t instance_handler;
        void *instance_userdata;
};

static const char *const kind_table[_BUS_INSTANCE_KIND_MAX] = {
        [BUS_INSTANCE_HYPERTY] = "hyperty",
        [BUS_INSTANCE_PROTOSTUB] = "protostub",
};

const char *bus_instance_kind_to_string(bus_instance_kind k) {
        return k >= 0 && k < _BUS_INSTANCE_KIND_MAX ? kind_table[k] : NULL;
}

/* --- small helpers ------------------------------------------------------------ */

/* The authority of a valid address: a pointer into s and its length. */
static const char *address_authority(const char *s, size_t *ret_len) {
        const char *p = strstr(s, "://"), *end;

        if (!p)
                return NULL;
        p += 3;
        end = strchrnul(p, '/');
        *ret_len = (size_t) (end - p);
        return p;
}

static bool has_scheme(const char *s, const char *scheme) {
        size_t n = strlen(scheme);
        return strncmp(s, scheme, n) == 0 && strncmp(s + n, "://", 3) == 0;
}

static const char *client_name(const bus_client *c) {
        return c->instance ? c->instance->address : "(before hello)";
}

/* The status code and description an error on the way to a destination
 * is answered with. */
static int error_to_code(int error, const char **ret_description) {
        switch (abs(error)) {
        case EHOSTUNREACH:
                *ret_description = "no route to destination";
                return 404;
        case ENOTCONN:
                *ret_description = "destination not connected";
                return 503;
        case EMSGSIZE:
                *ret_description = "message too large for the bus";
                return 413;
        case EALREADY:
                *ret_description = "hello was already said on this connection";
                return 409;
        case EINVAL:
        case EBADMSG:
                *ret_description = strerror(abs(error));
                return 400;
        case EPERM:
        case EACCES:
                *ret_description = strerror(abs(error));
                return 403;
        case ENOENT:
                *ret_description = strerror(abs(error));
                return 404;
        case EOPNOTSUPP:
                *ret_description = strerror(abs(error));
                return 501;
        default:
                *ret_description = strerror(abs(error));
                return 500;
        }
}

/* --- lifetime of clients and instances ----------------------------------------- */

static void gc_schedule(bus *b) {
        if (b->gc_source)
                (void) sd_event_source_set_enabled(b->gc_source, SD_EVENT_ONESHOT);
}

static void notify(bus *b, const char *address, bool connected) {
        bus_event *p;
        char *a;

        if (b->freeing || !b->instance_handler)
                return;
        a = strdup(address);
        if (!a) {
                log_oom();
                return;
        }
        p = reallocarray(b->events, b->n_events + 1, sizeof(*p));
        if (!p) {
                free(a);
                log_oom();
                return;
        }
        b->events = p;
        b->events[b->n_events++] = (bus_event) { .address = a, .connected = connected };
        gc_schedule(b);
}

static void client_free(bus_client *c) {
        sd_event_source_disable_unref(c->io_source);
        sd_event_source_disable_unref(c->hello_source);
        safe_close(c->fd);
        bus_reader_free(c->reader);
        free(c->out);
        free(c);
}

/* Closes the connection now; the memory goes later, so whoever up the
 * stack still holds c may look at c->dead. */
static void client_kill(bus_client *c, const char *why) {
        bus *b = c->bus;

        if (c->dead)
                return;
        c->dead = true;

        log_debug("Bus connection %u (%s, pid %d) closed: %s", c->number, client_name(c), (int) c->cred.pid, why);

        c->io_source = sd_event_source_disable_unref(c->io_source);
        c->hello_source = sd_event_source_disable_unref(c->hello_source);
        c->fd = safe_close(c->fd);

        for (bus_client **p = &b->clients; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        b->n_clients--;
        c->next = b->dead_clients;
        b->dead_clients = c;

        if (c->instance && c->instance->client == c) {
                c->instance->client = NULL;
                notify(b, c->instance->address, false);
        }
        c->instance = NULL;
        gc_schedule(b);
}

static void instance_free(bus_instance *i) {
        if (!i)
                return;
        free(i->address);
        free(i->ctxt_prefix);
        free(i->component);
        if (i->token)
                explicit_bzero_safe(i->token, strlen(i->token));
        free(i->token);
        free(i);
}

static int bus_on_gc(sd_event_source *s, void *userdata) {
        bus *b = userdata;

        /* Handlers may close or remove more; those are told in this round
         * too. */
        for (size_t i = 0; i < b->n_events; i++) {
                bus_event ev = b->events[i];

                if (b->instance_handler)
                        b->instance_handler(b, ev.address, ev.connected, b->instance_userdata);
                free(ev.address);
        }
        free(b->events);
        b->events = NULL;
        b->n_events = 0;

        while (b->dead_clients) {
                bus_client *c = b->dead_clients;
                b->dead_clients = c->next;
                client_free(c);
        }
        while (b->dead_instances) {
                bus_instance *i = b->dead_instances;
                b->dead_instances = i->next;
                instance_free(i);
        }
        return 0;
}

static bus_instance *find_instance(const bus *b, const char *address) {
        for (bus_instance *i = b->instances; i; i = i->next)
                if (streq(i->address, address))
                        return i;
        return NULL;
}

/* The hyperty whose resources `to` names: ctxt://<domain>/<uuid>[/...]. */
static bus_instance *find_resource_owner(const bus *b, const char *to) {
        if (!has_scheme(to, "ctxt"))
                return NULL;
        for (bus_instance *i = b->instances; i; i = i->next) {
                size_t n;

                if (!i->ctxt_prefix)
                        continue;
                n = strlen(i->ctxt_prefix);
                if (strncmp(to, i->ctxt_prefix, n) == 0 && (to[n] == '\0' || to[n] == '/'))
                        return i;
        }
        return NULL;
}

/* Whether address belongs to this device: the runtime, an instance, or a
 * local hyperty's resources. Protostubs may not speak for these. */
static bool address_is_local(const bus *b, const char *address) {
        return streq(address, b->runtime) || find_instance(b, address) || find_resource_owner(b, address);
}

static const bus_route *find_route(const bus *b, const char *to) {
        const bus_route *best = NULL;
        const char *auth;
        size_t n;
        bool is_domain;

        if (!has_scheme(to, "hyperty") && !has_scheme(to, "runtime") && !has_scheme(to, "ctxt") &&
            !has_scheme(to, "domain"))
                return NULL;
        is_domain = has_scheme(to, "domain");
        auth = address_authority(to, &n);
        if (!auth)
                return NULL;

        for (size_t i = 0; i < b->n_routes; i++) {
                const char *d = b->routes[i].domain;
                size_t dn = strlen(d);
                bool match;

                /* domain://msg-node.D/sm is D's; hyperty://x.D/... is not. */
                match = (n == dn && strncmp(auth, d, n) == 0) ||
                        (is_domain && n > dn + 1 && auth[n - dn - 1] == '.' && strncmp(auth + n - dn, d, dn) == 0);
                if (match && (!best || dn > strlen(best->domain)))
                        best = b->routes + i;
        }
        return best;
}

/* --- output ----------------------------------------------------------------- */

static size_t client_pending(const bus_client *c) {
        return c->out_size - c->out_done;
}

static int client_update_events(bus_client *c) {
        uint32_t events = 0;

        if (c->dead)
                return 0;
        if (client_pending(c) < BUS_OUTPUT_HIGH)
                events |= EPOLLIN;
        if (client_pending(c) > 0)
                events |= EPOLLOUT;
        return sd_event_source_set_io_events(c->io_source, events);
}

/* Returns 0, or -ENOTCONN when the client went away. */
static int client_flush(bus_client *c) {
        while (!c->dead && client_pending(c) > 0) {
                ssize_t n = send(c->fd, c->out + c->out_done, client_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        log_debug_errno(errno, "Failed to write to bus connection %u: %m", c->number);
                        client_kill(c, "write failed");
                        return -ENOTCONN;
                }
                c->out_done += (size_t) n;
        }
        if (c->dead)
                return -ENOTCONN;
        if (client_pending(c) == 0) {
                c->out_done = c->out_size = 0;
                /* A burst for one reader should not pin up to output_max
                 * for the life of its connection. */
                if (c->out_alloc > BUS_OUTPUT_HIGH) {
                        free(c->out);
                        c->out = NULL;
                        c->out_alloc = 0;
                }
        }
        return 0;
}

/* Queues one line for c and starts sending it. A client whose queue would
 * grow past the limit does not read: it is dropped (-ENOTCONN), so that it
 * cannot hold up anybody else. */
static int client_queue(bus_client *c, const char *data, size_t n) {
        int r;

        if (c->dead)
                return -ENOTCONN;
        if (client_pending(c) + n > c->bus->output_max) {
                log_debug("Bus connection %u (%s) does not read: %zu bytes queued, dropping it.", c->number,
                          client_name(c), client_pending(c));
                client_kill(c, "output queue full");
                return -ENOTCONN;
        }

        if (c->out_size + n > c->out_alloc) {
                size_t pending = client_pending(c), want;
                char *p;

                if (c->out_done > 0) {
                        memmove(c->out, c->out + c->out_done, pending);
                        c->out_size = pending;
                        c->out_done = 0;
                }
                if (c->out_size + n > c->out_alloc) {
                        want = MAX(c->out_alloc * 2, c->out_size + n);
                        p = realloc(c->out, want);
                        if (!p)
                                return -ENOMEM;
                        c->out = p;
                        c->out_alloc = want;
                }
        }
        memcpy(c->out + c->out_size, data, n);
        c->out_size += n;

        r = client_flush(c);
        if (r < 0)
                return r;
        r = client_update_events(c);
        if (r < 0) {
                log_debug_errno(r, "Failed to update bus connection %u: %m", c->number);
                client_kill(c, "event source failed");
                return -ENOTCONN;
        }
        return 0;
}

/* A message serialised once, however many recipients it has. */
typedef struct wire_line {
        char *data;
        size_t size;
} wire_line;

static int client_queue_message(bus_client *c, const rt_message *m, wire_line *cache) {
        wire_line local = {};
        int r;

        if (!cache)
                cache = &local;
        if (!cache->data) {
                r = bus_message_to_line(m, &cache->data, &cache->size);
                if (r < 0)
                        return r;
        }
        r = client_queue(c, cache->data, cache->size);
        free(local.data);
        return r;
}

/* An answer that goes straight back on the connection it is about. */
static void client_answer(bus_client *c, const rt_message *answer) {
        int r = client_queue_message(c, answer, NULL);
        if (r < 0 && r != -ENOTCONN)
                log_debug_errno(r, "Failed to answer bus connection %u (%s): %m", c->number, client_name(c));
}

static void client_answer_error(bus_client *c, const rt_message *m, const char *responder, int code,
                                const char *description) {
        _cleanup_rt_message_ rt_message *e = NULL;
        int r;

        if (rt_message_get_type(m) == RT_MESSAGE_RESPONSE)
                return;
        r = rt_message_new_error(m, responder, code, description, &e);
        if (r < 0) {
                log_debug_errno(r, "Failed to build an error response for bus connection %u: %m", c->number);
                return;
        }
        client_answer(c, e);
}

/* --- routing ------------------------------------------------------------------ */

static int deliver_to_instance(bus *b, bus_instance *i, const rt_message *m, wire_line *cache) {
        if (!i->client)
                return -ENOTCONN;
        return client_queue_message(i->client, m, cache);
}

static int deliver_on_route(bus *b, bus_client *sender, const rt_message *m, const char *to, wire_line *cache) {
        const bus_route *route = find_route(b, to);
        bus_instance *stub;

        if (!route)
                return -EHOSTUNREACH;
        stub = find_instance(b, route->stub);
        if (!stub)
                return -ENOTCONN;
        /* What came from the domain does not go back to it. */
        if (sender && sender->instance == stub)
                return -EHOSTUNREACH;
        return deliver_to_instance(b, stub, m, cache);
}

/* Routes m to one of its recipients. sender is NULL for the runtime's own
 * messages. Returns 0 or a negative errno for error_to_code(). */
static int deliver(bus *b, bus_client *sender, const rt_message *m, const char *to, wire_line *cache) {
        const char *from = sender ? sender->instance->address : NULL;
        bus_instance_kind kind = sender ? sender->instance->kind : _BUS_INSTANCE_KIND_INVALID;
        bus_instance *i;
        int r;

        if (streq(to, b->runtime)) {
                if (!sender)
                        return -EHOSTUNREACH;
                if (rt_message_get_type(m) == RT_MESSAGE_EXECUTE &&
                    streq_ptr(rt_message_get_attribute(m), "hello"))
                        return -EALREADY;
                if (!b->runtime_handler)
                        return -ENOTCONN;
                return b->runtime_handler(b, from, kind, m, b->runtime_userdata);
        }

        i = find_instance(b, to);
        if (i)
                return deliver_to_instance(b, i, m, cache);

        if (sender && b->local_handler && find_resource_owner(b, to)) {
                r = b->local_handler(b, from, kind, m, to, b->local_userdata);
                if (r < 0)
                        return r;
                if (r & BUS_LOCAL_TAKEN) {
                        if (r & BUS_LOCAL_FORWARD) {
                                int k = deliver_on_route(b, sender, m, to, cache);
                                if (k < 0)
                                        log_debug_errno(k, "Bus: could not forward %s's message %" PRIu64 " for %s to the domain: %m",
                                                        from, rt_message_get_id(m), to);
                        }
                        return 0;
                }
        }

        return deliver_on_route(b, sender, m, to, cache);
}

/* The rules for `from` after the hello: a hyperty speaks only for itself; a
 * protostub relays, but never in the name of this device. */
static const char *check_from(const bus *b, const bus_client *c, const rt_message *m) {
        const char *from = rt_message_get_from(m);

        if (streq(from, c->instance->address))
                return NULL;
        if (c->instance->kind == BUS_INSTANCE_HYPERTY)
                return "'from' is not the sender's own address";
        /* The domain's resource directory answers what was sent to a
         * resource (a publication) in the resource's name; an answer
         * orders nothing, so a protostub may relay it. */
        if (rt_message_get_type(m) == RT_MESSAGE_RESPONSE && has_scheme(from, "ctxt") &&
            !find_instance(b, from) && !streq(from, b->runtime)) {
                const bus_route *route = find_route(b, from);

                /* Only the protostub of that domain speaks for its
                 * directory; a p2p protostub's peer may not. */
                if (route && streq(route->stub, c->instance->address))
                        return NULL;
        }
        if (address_is_local(b, from))
                return "'from' names an address of this device";
        return NULL;
}

static void route_from_client(bus_client *c, const rt_message *m) {
        bus *b = c->bus;
        _cleanup_free_ char *line_data = NULL;
        wire_line cache = {};
        const char *why;

        why = check_from(b, c, m);
        if (why) {
                log_debug("Bus: refused message %" PRIu64 " from %s (%s): %s", rt_message_get_id(m),
                          c->instance->address, c->instance->component, why);
                client_answer_error(c, m, NULL, 403, why);
                return;
        }

        /* One line may not multiply into many copies for one reader (and
         * push it over its output bound). */
        if (rt_message_get_n_to(m) > BUS_RECIPIENTS_MAX) {
                client_answer_error(c, m, NULL, 400, "more than 16 recipients in 'to'");
                return;
        }
        for (size_t k = 0; k < rt_message_get_n_to(m) && !c->dead; k++) {
                const char *to = rt_message_get_to(m, k), *description;
                bool repeated = false;
                int r, code;

                for (size_t j = 0; j < k && !repeated; j++)
                        repeated = streq(to, rt_message_get_to(m, j));
                if (repeated)
                        continue;
                r = deliver(b, c, m, to, &cache);
                if (r >= 0 || c->dead)
                        continue;

                code = error_to_code(r, &description);
                if (rt_message_get_type(m) == RT_MESSAGE_RESPONSE) {
                        log_debug("Bus: dropped response %" PRIu64 " from %s to %s: %s", rt_message_get_id(m),
                                  c->instance->address, to, description);
                        continue;
                }
                log_debug("Bus: refused message %" PRIu64 " from %s (%s) to %s: %d %s", rt_message_get_id(m),
                          c->instance->address, c->instance->component, to, code, description);
                client_answer_error(c, m, to, code, description);
        }
        line_data = cache.data;
}

/* --- hello ---------------------------------------------------------------------- */

static bool token_equal(const char *a, const char *b) {
        size_t n = strlen(b);

        /* The length of a token is no secret. */
        return strlen(a) == n && CRYPTO_memcmp(a, b, n) == 0;
}

static void hello_refuse(bus_client *c, const rt_message *m, const char *why) {
        log_debug("Bus: refused hello on connection %u (pid %d, from %s): %s", c->number, (int) c->cred.pid,
                  m ? rt_message_get_from(m) : "?", why);
        if (m)
                client_answer_error(c, m, c->bus->runtime, 401, why);
        client_kill(c, why);
}

static void handle_hello(bus_client *c, const rt_message *m) {
        bus *b = c->bus;
        _cleanup_rt_message_ rt_message *answer = NULL;
        json_t *value;
        const char *token;
        bus_instance *i;
        int r;

        if (rt_message_get_type(m) != RT_MESSAGE_EXECUTE || rt_message_get_n_to(m) != 1 ||
            !streq(rt_message_get_to(m, 0), b->runtime) || !streq_ptr(rt_message_get_attribute(m), "hello"))
                return hello_refuse(c, m, "hello expected as the first message");

        token = rt_message_get_access_token(m);
        i = find_instance(b, rt_message_get_from(m));
        /* One answer for an unknown address and a wrong token: the bus does
         * not tell which addresses exist. */
        if (!token || !i || !token_equal(token, i->token))
                return hello_refuse(c, m, "hello refused: invalid token for this address");

        if (i->client) {
                log_debug("Bus: %s said hello again on connection %u, closing connection %u.", i->address, c->number,
                          i->client->number);
                client_kill(i->client, "replaced by a new connection");
        }
        i->client = c;
        c->instance = i;
        c->hello_source = sd_event_source_disable_unref(c->hello_source);

        value = json_pack("{s:s,s:s,s:s,s:s,s:s}", "runtime", b->runtime, "address", i->address, "domain",
                          b->domain, "kind", bus_instance_kind_to_string(i->kind), "connectivity", b->connectivity);
        if (!value) {
                log_oom();
                client_kill(c, "out of memory");
                return;
        }
        r = rt_message_new_response(m, b->runtime, 200, "hello", value, &answer);
        json_decref(value);
        if (r < 0) {
                log_debug_errno(r, "Failed to build the hello answer: %m");
                client_kill(c, "could not answer the hello");
                return;
        }
        log_debug("Bus: %s (%s %s, pid %d) connected on connection %u.", i->address,
                  bus_instance_kind_to_string(i->kind), i->component, (int) c->cred.pid, c->number);
        client_answer(c, answer);
        notify(b, i->address, true);
}

/* --- input ------------------------------------------------------------------------ */

static void handle_invalid(bus_client *c, const bus_reader_error *e) {
        bus *b = c->bus;
        _cleanup_rt_message_ rt_message *answer = NULL;
        int r;

        if (!c->instance) {
                /* Not a message at all, so not a hello either: say why when
                 * the line lets us, then close. */
                log_debug("Bus: refused hello on connection %u (pid %d): %s", c->number, (int) c->cred.pid,
                          strna(e->reason));
                if (bus_reader_answer_invalid(c->reader, b->runtime, &answer) >= 0)
                        client_answer(c, answer);
                client_kill(c, "invalid hello");
                return;
        }

        if (e->is_response) {
                log_debug("Bus: dropped an invalid response from %s: %s", c->instance->address, strna(e->reason));
                return;
        }

        log_debug("Bus: refused an invalid message from %s (%s): %s", c->instance->address, c->instance->component,
                  strna(e->reason));
        r = bus_reader_answer_invalid(c->reader, b->runtime, &answer);
        if (r == -EBADMSG) {
                json_t *body;

                /* Not even an id to answer to: id 0, which components do
                 * not use for their requests, from the runtime. */
                body = json_pack("{s:i,s:s}", "code", e->code, "description", e->reason ?: "invalid message");
                if (!body) {
                        log_oom();
                        return;
                }
                r = rt_message_new(RT_MESSAGE_RESPONSE, 0, b->runtime, c->instance->address, body, &answer);
                json_decref(body);
        }
        if (r < 0) {
                log_debug_errno(r, "Failed to answer an invalid message from %s: %m", c->instance->address);
                return;
        }
        client_answer(c, answer);
}

static void client_process(bus_client *c) {
        bus *b = c->bus;

        while (!c->dead && client_pending(c) < BUS_OUTPUT_HIGH) {
                _cleanup_rt_message_ rt_message *m = NULL;
                bus_reader_error e;
                int r;

                r = bus_reader_next(c->reader, &m, &e);
                if (r == 0)
                        break;
                if (r == -EMSGSIZE) {
                        log_debug("Bus: %s sent a line longer than %u bytes.", client_name(c), BUS_LINE_MAX);
                        if (c->instance) {
                                _cleanup_rt_message_ rt_message *answer = NULL;
                                json_t *body = json_pack("{s:i,s:s}", "code", 413, "description",
                                                         "line longer than 65536 bytes, closing the connection");

                                if (body &&
                                    rt_message_new(RT_MESSAGE_RESPONSE, 0, b->runtime, c->instance->address, body,
                                                   &answer) >= 0)
                                        client_answer(c, answer);
                                json_decref(body);
                        }
                        client_kill(c, "line too long");
                        break;
                }
                if (r == -ENOMEM) {
                        log_oom();
                        client_kill(c, "out of memory");
                        break;
                }
                if (r < 0) {
                        handle_invalid(c, &e);
                        continue;
                }

                if (!c->instance)
                        handle_hello(c, m);
                else
                        route_from_client(c, m);
        }
}

static int client_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        bus_client *c = userdata;
        bool eof = false;
        int r;

        if (revents & EPOLLIN) {
                r = bus_reader_recv(c->reader, c->fd);
                if (r == 0)
                        eof = true;
                else if (r < 0 && r != -EAGAIN && r != -EINTR && r != -ENOBUFS) {
                        client_kill(c, "read failed");
                        return 0;
                }
        } else if (revents & (EPOLLHUP | EPOLLERR)) {
                client_kill(c, "hung up");
                return 0;
        }

        client_process(c);
        if (c->dead)
                return 0;
        if (eof) {
                if (bus_reader_pending(c->reader) > 0)
                        log_debug("Bus: %s hung up in the middle of a line.", client_name(c));
                /* Best effort for the answers to its last messages. */
                if (client_flush(c) < 0)
                        return 0;
                client_kill(c, "end of stream");
                return 0;
        }
        if (client_flush(c) < 0)
                return 0;
        /* Lines already read that waited for room in the output. */
        if (bus_reader_pending(c->reader) > 0 && client_pending(c) < BUS_OUTPUT_HIGH) {
                client_process(c);
                if (c->dead || client_flush(c) < 0)
                        return 0;
        }
        r = client_update_events(c);
        if (r < 0)
                client_kill(c, "event source failed");
        return 0;
}

static int client_on_hello_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        bus_client *c = userdata;

        log_debug("Bus: connection %u (pid %d) said no hello in time.", c->number, (int) c->cred.pid);
        client_kill(c, "no hello in time");
        return 0;
}

static int client_new(bus *b, int fd) {
        _cleanup_close_ int fd_owned = fd;
        bus_client *c;
        socklen_t len;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->bus = b;
        c->number = ++b->next_number;
        c->fd = TAKE_FD(fd_owned);

        len = sizeof(c->cred);
        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0) {
                r = negative_errno();
                goto fail;
        }
        r = bus_reader_new(0, &c->reader);
        if (r < 0)
                goto fail;
        r = sd_event_add_io(b->event, &c->io_source, c->fd, EPOLLIN, client_on_io, c);
        if (r < 0)
                goto fail;
        r = sd_event_add_time_relative(b->event, &c->hello_source, CLOCK_MONOTONIC, b->hello_usec, 0,
                                       client_on_hello_timeout, c);
        if (r < 0)
                goto fail;

        c->next = b->clients;
        b->clients = c;
        b->n_clients++;
        log_debug("Bus connection %u: pid %d uid %u.", c->number, (int) c->cred.pid, (unsigned) c->cred.uid);
        return 0;

fail:
        client_free(c);
        return r;
}

/* --- server ------------------------------------------------------------------------ */

static int bus_on_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        bus *b = userdata;
        _cleanup_close_ int cfd = -1;
        int r;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(errno, "Failed to accept a bus connection: %m");
                return 0;
        }
        if (b->n_clients >= b->clients_max) {
                log_notice("Refusing a bus connection: %u connections already.", b->n_clients);
                return 0;
        }
        {
                /* Connections that have not said hello yet have a share of
                 * their own: one component reconnecting in a loop cannot
                 * take the slots of the others. */
                unsigned waiting = 0;

                for (bus_client *c = b->clients; c; c = c->next)
                        waiting += !c->instance;
                if (waiting >= BUS_HELLO_PENDING_MAX) {
                        log_debug("Refusing a bus connection: %u wait for their hello already.", waiting);
                        return 0;
                }
        }
        r = client_new(b, TAKE_FD(cfd));
        if (r < 0)
                log_warning_errno(r, "Failed to set up a bus connection: %m");
        return 0;
}


int bus_new(sd_event *e, const char *socket_path, const char *runtime_address, bus **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_rt_address_ rt_address *ra = NULL;
        _cleanup_bus_ bus *b = NULL;
        struct stat st;
        mode_t old_umask;
        int r;

        if (!e || !socket_path || !runtime_address || !ret || socket_path[0] != '/')
                return -EINVAL;
        if (strlen(socket_path) >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "Bus socket path %s is too long.", socket_path);
        r = rt_address_parse(runtime_address, &ra, NULL);
        if (r < 0 || rt_address_get_scheme(ra) != RT_ADDRESS_RUNTIME)
                return log_error_errno(EINVAL, "Runtime address %s is not a runtime:// address.", runtime_address);
        strcpy(sa.sun_path, socket_path);

        b = calloc(1, sizeof(*b));
        if (!b)
                return log_oom();
        b->fd = -1;
        b->event = sd_event_ref(e);
        b->clients_max = BUS_CLIENTS_MAX;
        b->output_max = BUS_OUTPUT_MAX;
        b->hello_usec = BUS_HELLO_TIMEOUT_USEC;
        strcpy(b->connectivity, "online");
        b->path = strdup(socket_path);
        b->runtime = strdup(runtime_address);
        b->domain = strdup(rt_address_get_authority(ra));
        if (!b->path || !b->runtime || !b->domain)
                return log_oom();

        r = sd_event_add_defer(e, &b->gc_source, bus_on_gc, b);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the bus: %m");
        (void) sd_event_source_set_enabled(b->gc_source, SD_EVENT_OFF);

        r = unix_socket_make_parent_dir(socket_path);
        if (r < 0)
                return log_error_errno(r, "Failed to create the directory for %s: %m", socket_path);
        r = unix_socket_remove_stale(socket_path);
        if (r == -EADDRINUSE)
                return log_error_errno(r, "Bus socket %s is in use: is another rethink-agent running?", socket_path);
        if (r == -EEXIST)
                return log_error_errno(r, "%s exists and is not a socket; not replacing it.", socket_path);
        if (r < 0)
                return log_error_errno(r, "Failed to check for a stale bus socket %s: %m", socket_path);

        b->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (b->fd < 0)
                return log_error_errno(errno, "Failed to create the bus socket: %m");

        /* Sandboxed components run as dynamic users: anybody may connect,
         * the token decides who may speak. */
        old_umask = umask(0777 & ~BUS_SOCKET_MODE);
        r = bind(b->fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old_umask);
        if (r < 0)
                return log_error_errno(errno, "Failed to bind the bus socket to %s: %m", socket_path);
        if (stat(socket_path, &st) < 0)
                return log_error_errno(errno, "Failed to stat %s: %m", socket_path);
        b->dev = st.st_dev;
        b->ino = st.st_ino;

        if (listen(b->fd, SOMAXCONN) < 0)
                return log_error_errno(errno, "Failed to listen on %s: %m", socket_path);
        r = sd_event_add_io(e, &b->listen_source, b->fd, EPOLLIN, bus_on_listen, b);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the bus socket: %m");

        log_debug("Bus listening on %s for runtime %s.", socket_path, runtime_address);
        *ret = TAKE_PTR(b);
        return 0;
}

bus *bus_free(bus *b) {
        struct stat st;

        if (!b)
                return NULL;

        b->freeing = true;
        while (b->clients)
                client_kill(b->clients, "bus shut down");
        while (b->dead_clients) {
                bus_client *c = b->dead_clients;
                b->dead_clients = c->next;
                client_free(c);
        }
        while (b->instances) {
                bus_instance *i = b->instances;
                b->instances = i->next;
                instance_free(i);
        }
        while (b->dead_instances) {
                bus_instance *i = b->dead_instances;
                b->dead_instances = i->next;
                instance_free(i);
        }
        for (size_t i = 0; i < b->n_events; i++)
                free(b->events[i].address);
        free(b->events);
        for (size_t i = 0; i < b->n_routes; i++) {
                free(b->routes[i].domain);
                free(b->routes[i].stub);
        }
        free(b->routes);

        sd_event_source_disable_unref(b->listen_source);
        sd_event_source_disable_unref(b->gc_source);
        /* Only our own file: a successor may already have replaced it. */
        if (b->fd >= 0 && b->ino != 0 && lstat(b->path, &st) == 0 && st.st_dev == b->dev && st.st_ino == b->ino)
                (void) unlink(b->path);
        safe_close(b->fd);
        free(b->path);
        free(b->runtime);
        free(b->domain);
        sd_event_unref(b->event);
        free(b);
        return NULL;
}

void bus_set_limits(bus *b, unsigned clients_max, size_t output_max, uint64_t hello_timeout_usec) {
        if (clients_max > 0)
                b->clients_max = clients_max;
        if (output_max > 0)
                b->output_max = output_max;
        if (hello_timeout_usec > 0)
                b->hello_usec = hello_timeout_usec;
}

/* --- instances and routes ------------------------------------------------------------ */

int bus_add_instance(bus *b, const char *address, bus_instance_kind kind, const char *component,
                     char **ret_token) {
        _cleanup_rt_address_ rt_address *a = NULL;
        uint8_t raw[BUS_TOKEN_BYTES];
        _cleanup_free_ char *token = NULL;
        bus_instance *i;
        ssize_t n;
        int r;

        if (!b || !address || !component || !ret_token)
                return -EINVAL;
        if (kind != BUS_INSTANCE_HYPERTY && kind != BUS_INSTANCE_PROTOSTUB)
                return -EINVAL;
        r = rt_address_parse(address, &a, NULL);
        if (r < 0)
                return -EINVAL;
        if (rt_address_get_scheme(a) !=
            (kind == BUS_INSTANCE_HYPERTY ? RT_ADDRESS_HYPERTY : RT_ADDRESS_RUNTIME))
                return -EINVAL;
        if (streq(address, b->runtime))
                return -EINVAL;
        if (find_instance(b, address))
                return -EEXIST;

        n = getrandom(raw, sizeof(raw), 0);
        if (n != (ssize_t) sizeof(raw))
                return n < 0 ? negative_errno() : -EIO;
        r = base64url_encode(raw, sizeof(raw), &token);
        explicit_bzero_safe(raw, sizeof(raw));
        if (r < 0)
                return r;

        i = calloc(1, sizeof(*i));
        if (!i)
                return -ENOMEM;
        i->kind = kind;
        i->address = strdup(address);
        i->component = strdup(component);
        i->token = strdup(token);
        if (kind == BUS_INSTANCE_HYPERTY &&
            asprintf(&i->ctxt_prefix, "ctxt://%s/%s", rt_address_get_authority(a), rt_address_get_path(a)) < 0)
                i->ctxt_prefix = NULL;
        if (!i->address || !i->component || !i->token || (kind == BUS_INSTANCE_HYPERTY && !i->ctxt_prefix)) {
                instance_free(i);
                return -ENOMEM;
        }

        i->next = b->instances;
        b->instances = i;
        log_debug("Bus: %s %s may connect as %s.", bus_instance_kind_to_string(kind), component, address);
        *ret_token = TAKE_PTR(token);
        return 0;
}

int bus_remove_instance(bus *b, const char *address) {
        bus_instance *i = NULL;

        if (!b || !address)
                return -EINVAL;
        for (bus_instance **p = &b->instances; *p; p = &(*p)->next)
                if (streq((*p)->address, address)) {
                        i = *p;
                        *p = i->next;
                        break;
                }
        if (!i)
                return -ENOENT;

        if (i->client)
                client_kill(i->client, "instance removed");
        /* Freed later: a handler that removes the instance it is serving
         * still has its address. */
        i->next = b->dead_instances;
        b->dead_instances = i;
        gc_schedule(b);
        log_debug("Bus: %s removed.", address);
        return 0;
}

bool bus_instance_is_connected(const bus *b, const char *address) {
        bus_instance *i;

        if (!b || !address)
                return false;
        i = find_instance(b, address);
        return i && i->client;
}

unsigned bus_get_n_clients(const bus *b) {
        return b ? b->n_clients : 0;
}

const char *bus_get_path(const bus *b) {
        return b ? b->path : NULL;
}

const char *bus_get_runtime_address(const bus *b) {
        return b ? b->runtime : NULL;
}

void bus_set_runtime_handler(bus *b, bus_runtime_handler_t handler, void *userdata) {
        b->runtime_handler = handler;
        b->runtime_userdata = userdata;
}

void bus_set_local_resource_handler(bus *b, bus_local_resource_handler_t handler, void *userdata) {
        b->local_handler = handler;
        b->local_userdata = userdata;
}

void bus_set_instance_handler(bus *b, bus_instance_handler_t handler, void *userdata) {
        b->instance_handler = handler;
        b->instance_userdata = userdata;
}

static bool domain_is_valid(const char *domain) {
        _cleanup_free_ char *s = NULL;

        if (!domain || !*domain || strchr(domain, '/') || strchr(domain, '[') || strchr(domain, '@'))
                return false;
        if (asprintf(&s, "domain://%s", domain) < 0)
                return false;
        return rt_address_is_valid(s);
}

int bus_set_domain_route(bus *b, const char *domain, const char *stub_address) {
        _cleanup_free_ char *d = NULL, *s = NULL;
        bus_route *p;

        if (!b || !domain_is_valid(domain) || !stub_address || !has_scheme(stub_address, "runtime") ||
            !rt_address_is_valid(stub_address) || streq(stub_address, b->runtime))
                return -EINVAL;

        s = strdup(stub_address);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < b->n_routes; i++)
                if (streq(b->routes[i].domain, domain)) {
                        free(b->routes[i].stub);
                        b->routes[i].stub = TAKE_PTR(s);
                        return 0;
                }

        d = strdup(domain);
        if (!d)
                return -ENOMEM;
        p = reallocarray(b->routes, b->n_routes + 1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        b->routes = p;
        b->routes[b->n_routes++] = (bus_route) { .domain = TAKE_PTR(d), .stub = TAKE_PTR(s) };
        log_debug("Bus: messages for %s go to %s.", domain, stub_address);
        return 0;
}

int bus_remove_domain_route(bus *b, const char *domain) {
        if (!b || !domain)
                return -EINVAL;
        for (size_t i = 0; i < b->n_routes; i++)
                if (streq(b->routes[i].domain, domain)) {
                        free(b->routes[i].domain);
                        free(b->routes[i].stub);
                        b->routes[i] = b->routes[--b->n_routes];
                        return 0;
                }
        return -ENOENT;
}

int bus_set_connectivity(bus *b, const char *state) {
        if (!b || !state || (!streq(state, "online") && !streq(state, "degraded") && !streq(state, "offline")))
                return -EINVAL;
        strcpy(b->connectivity, state);
        return 0;
}

uint64_t bus_next_id(bus *b) {
        if (b->next_id >= RT_MESSAGE_ID_MAX)
                b->next_id = 0;
        return ++b->next_id;
}

/* --- the runtime's own messages --------------------------------------------------------- */

int bus_send(bus *b, const rt_message *m) {
        _cleanup_free_ char *line_data = NULL;
        wire_line cache = {};
        int first = 0;

        if (!b || !m)
                return -EINVAL;

        for (size_t k = 0; k < rt_message_get_n_to(m); k++) {
                const char *to = rt_message_get_to(m, k);
                int r = deliver(b, NULL, m, to, &cache);

                if (r < 0) {
                        log_debug_errno(r, "Bus: could not deliver the runtime's message %" PRIu64 " to %s: %m",
                                        rt_message_get_id(m), to);
                        if (first == 0)
                                first = r;
                }
        }
        line_data = cache.data;
        return first;
}

int bus_broadcast(bus *b, rt_message_type type, json_t *body) {
        int n = 0;

        if (!b)
                return -EINVAL;

        for (bus_instance *i = b->instances; i; i = i->next) {
                _cleanup_rt_message_ rt_message *m = NULL;
                int r;

                if (!i->client)
                        continue;
                r = rt_message_new(type, bus_next_id(b), b->runtime, i->address, body, &m);
                if (r < 0)
                        return r;
                if (client_queue_message(i->client, m, NULL) >= 0)
                        n++;
        }
        return n;
}
