/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "address.h"
#include "backoff.h"
#include "bus-reader.h"
#include "fileio.h"
#include "json-util.h"
#include "hyperty.h"
#include "log.h"
#include "senml.h"
#include "time-util.h"

#define DEFAULT_BUS_PATH "/run/rethink/bus.sock"
#define TOKEN_CREDENTIAL "rethink-bus-token"
#define TOKEN_MAX 1024

#define RECONNECT_INITIAL_USEC_DEFAULT (250 * USEC_PER_MSEC)
#define RECONNECT_MAX_USEC_DEFAULT (30 * USEC_PER_SEC)

typedef enum link_state {
        LINK_IDLE,        /* hyperty_connect() not called yet */
        LINK_WAITING,     /* between attempts: the reconnect timer runs */
        LINK_CONNECTING,  /* connect() in progress */
        LINK_HELLO,       /* connected, hello sent, no answer yet */
        LINK_READY,       /* hello answered 200 */
} link_state;

typedef struct pending {
        struct pending *prev, *next;
        hyperty *owner;
        uint64_t id;
        char *to;  /* the responder of a locally made answer */
        hyperty_response_handler_t handler;
        void *userdata;
        sd_event_source *timer;
} pending;

struct hyperty {
        unsigned n_ref;
        bool dead;  /* hyperty_free() was called: no more callbacks */

        sd_event *event;
        char *bus_path;
        char *address;
        char *runtime;
        char *token;
        char *address_domain;  /* authority of address */
        char *address_id;      /* path of address: the instance's UUID */
        usec_t request_timeout;

        /* From the hello answer. */
        char *domain;
        char *connectivity;

        link_state state;
        int fd;
        sd_event_source *io;
        sd_event_source *reconnect_timer;
        backoff *backoff;
        /* Bumped on every disconnect, so a dispatch loop notices that the
         * connection it reads from is gone. */
        uint64_t generation;

        uint64_t next_id;
        uint64_t hello_id;

        bus_reader *reader;

        char *out;
        size_t out_size;   /* bytes queued, from out_start */
        size_t out_start;
        size_t out_alloc;

        pending *pending_head;
        size_t n_pending;

        hyperty_message_handler_t message_handler;
        void *message_userdata;
        hyperty_connectivity_handler_t connectivity_handler;
        void *connectivity_userdata;
        hyperty_state_handler_t state_handler;
        void *state_userdata;
};

static void link_disconnect(hyperty *h, int error, bool notify);
static int link_try_connect(hyperty *h);
static int queue_message(hyperty *h, const rt_message *m);

/* --- lifetime: callbacks hold a reference, so a handler may free the object ------- */

static void pending_free(pending *p) {
        if (!p)
                return;
        sd_event_source_disable_unref(p->timer);
        free(p->to);
        free(p);
}

static void pending_list_free(pending *list) {
        while (list) {
                pending *next = list->next;
                pending_free(list);
                list = next;
        }
}

static void hyperty_destroy(hyperty *h) {
        pending_list_free(h->pending_head);
        sd_event_source_disable_unref(h->io);
        sd_event_source_disable_unref(h->reconnect_timer);
        safe_close(h->fd);
        backoff_free(h->backoff);
        bus_reader_free(h->reader);
        free(h->out);
        free(h->bus_path);
        free(h->address);
        free(h->runtime);
        if (h->token)
                explicit_bzero_safe(h->token, strlen(h->token));
        free(h->token);
        free(h->address_domain);
        free(h->address_id);
        free(h->domain);
        free(h->connectivity);
        sd_event_unref(h->event);
        free(h);
}

static hyperty *hyperty_ref(hyperty *h) {
        h->n_ref++;
        return h;
}

/* Returns true when h is still alive and wanted after a callback. */
static bool hyperty_unref_alive(hyperty *h) {
        bool dead = h->dead;

        if (--h->n_ref == 0) {
                hyperty_destroy(h);
                return false;
        }
        return !dead;
}

hyperty *hyperty_free(hyperty *h) {
        if (!h)
                return NULL;
        if (!h->dead) {
                /* Stops everything now: nothing may call back into a
                 * component that let go of its object, even when this runs
                 * inside one of its callbacks (then the memory goes when
                 * that callback returns). */
                h->dead = true;
                link_disconnect(h, 0, false);
                h->state = LINK_IDLE;
                h->reconnect_timer = sd_event_source_disable_unref(h->reconnect_timer);
        }
        (void) hyperty_unref_alive(h);
        return NULL;
}

/* --- environment ----------------------------------------------------------------- */

static int dup_or_env(const char *given, const char *variable, const char *fallback, char **ret) {
        const char *v = given ?: getenv(variable);
        char *s;

        if (!v || !*v)
                v = fallback;
        if (!v) {
                log_debug("libhyperty: $%s is not set.", variable);
                return -EINVAL;
        }
        s = strdup(v);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int read_token(const char *given, char **ret) {
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        const char *env;
        char *t;
        int r;

        if (given) {
                t = strdup(given);
                if (!t)
                        return -ENOMEM;
                *ret = t;
                return 0;
        }

        if (dir && *dir) {
                _cleanup_free_ char *path = NULL;
                size_t n = 0;

                if (asprintf(&path, "%s/%s", dir, TOKEN_CREDENTIAL) < 0)
                        return -ENOMEM;
                r = read_full_file(path, TOKEN_MAX, &t, &n);
                if (r >= 0) {
                        /* A credential written with echo ends in a newline;
                         * the token itself never contains whitespace. */
                        while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' '))
                                t[--n] = '\0';
                        if (n == 0 || strlen(t) != n) {
                                explicit_bzero_safe(t, n);
                                free(t);
                                log_debug("libhyperty: credential %s is empty or not text.", TOKEN_CREDENTIAL);
                                return -EINVAL;
                        }
                        *ret = t;
                        return 0;
                }
                if (r != -ENOENT)
                        return log_debug_errno(r, "libhyperty: Failed to read credential %s: %m",
                                               TOKEN_CREDENTIAL);
        }

        env = getenv("RETHINK_BUS_TOKEN");
        if (!env || !*env) {
                log_debug("libhyperty: no bus token: neither credential %s nor $RETHINK_BUS_TOKEN.",
                          TOKEN_CREDENTIAL);
                return -EINVAL;
        }
        t = strdup(env);
        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

static bool token_is_valid(const char *t) {
        if (!*t)
                return false;
        for (const char *p = t; *p; p++)
                if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\')
                        return false;
        return true;
}

int hyperty_new(sd_event *e, const hyperty_options *options, hyperty **ret) {
        const hyperty_options empty = {};
        _cleanup_rt_address_ rt_address *a = NULL, *rt = NULL;
        backoff_config bc = {};
        hyperty *h;
        int r;

        if (!e || !ret)
                return -EINVAL;
        if (!options)
                options = &empty;

        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->n_ref = 1;
        h->fd = -1;
        h->next_id = 1;
        h->event = sd_event_ref(e);
        h->request_timeout = options->request_timeout_usec ?: HYPERTY_REQUEST_TIMEOUT_USEC;

        r = dup_or_env(options->bus_path, "RETHINK_BUS", DEFAULT_BUS_PATH, &h->bus_path);
        if (r < 0)
                goto fail;
        if (h->bus_path[0] != '/' || strlen(h->bus_path) >= sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
                log_debug("libhyperty: $RETHINK_BUS must be an absolute socket path shorter than %zu bytes.",
                          sizeof(((struct sockaddr_un *) NULL)->sun_path));
                r = -EINVAL;
                goto fail;
        }

        r = dup_or_env(options->address, "RETHINK_ADDRESS", NULL, &h->address);
        if (r < 0)
                goto fail;
        r = rt_address_parse(h->address, &a, NULL);
        if (r < 0 || (rt_address_get_scheme(a) != RT_ADDRESS_HYPERTY && rt_address_get_scheme(a) != RT_ADDRESS_RUNTIME)) {
                log_debug("libhyperty: $RETHINK_ADDRESS is not a hyperty:// or runtime:// address.");
                r = r == -ENOMEM ? -ENOMEM : -EINVAL;
                goto fail;
        }
        h->address_domain = strdup(rt_address_get_authority(a));
        h->address_id = strdup(rt_address_get_path(a));
        if (!h->address_domain || !h->address_id) {
                r = -ENOMEM;
                goto fail;
        }

        r = dup_or_env(options->runtime, "RETHINK_RUNTIME", NULL, &h->runtime);
        if (r < 0)
                goto fail;
        r = rt_address_parse(h->runtime, &rt, NULL);
        if (r < 0 || rt_address_get_scheme(rt) != RT_ADDRESS_RUNTIME) {
                log_debug("libhyperty: $RETHINK_RUNTIME is not a runtime:// address.");
                r = r == -ENOMEM ? -ENOMEM : -EINVAL;
                goto fail;
        }

        r = read_token(options->token, &h->token);
        if (r < 0)
                goto fail;
        if (!token_is_valid(h->token)) {
                log_debug("libhyperty: the bus token holds characters a token never has.");
                r = -EINVAL;
                goto fail;
        }

        bc.initial = options->reconnect_initial_usec ?: RECONNECT_INITIAL_USEC_DEFAULT;
        bc.max = MAX(options->reconnect_max_usec ?: RECONNECT_MAX_USEC_DEFAULT, bc.initial);
        r = backoff_new(&bc, &h->backoff);
        if (r < 0)
                goto fail;

        *ret = h;
        return 0;

fail:
        hyperty_destroy(h);
        return r;
}

int hyperty_get_configuration(json_t **ret) {
        const char *c = getenv("RETHINK_COMPONENT_CONFIGURATION");
        json_error_t error;
        json_t *j;

        if (!ret)
                return -EINVAL;
        if (!c || !*c) {
                j = json_object();
                if (!j)
                        return -ENOMEM;
                *ret = j;
                return 0;
        }
        j = json_loads(c, JSON_REJECT_DUPLICATES, &error);
        if (!j || !json_is_object(j)) {
                log_debug("libhyperty: $RETHINK_COMPONENT_CONFIGURATION is not a JSON object: %s",
                          j ? "not an object" : json_error_reason(&error));
                json_decref(j);
                return -EINVAL;
        }
        *ret = j;
        return 0;
}

/* --- handlers and getters ------------------------------------------------------------ */

void hyperty_set_message_handler(hyperty *h, hyperty_message_handler_t handler, void *userdata) {
        if (!h)
                return;
        h->message_handler = handler;
        h->message_userdata = userdata;
}

void hyperty_set_connectivity_handler(hyperty *h, hyperty_connectivity_handler_t handler, void *userdata) {
        if (!h)
                return;
        h->connectivity_handler = handler;
        h->connectivity_userdata = userdata;
}

void hyperty_set_state_handler(hyperty *h, hyperty_state_handler_t handler, void *userdata) {
        if (!h)
                return;
        h->state_handler = handler;
        h->state_userdata = userdata;
}

bool hyperty_is_connected(const hyperty *h) {
        return h && h->state == LINK_READY;
}

const char *hyperty_get_address(const hyperty *h) {
        return h ? h->address : NULL;
}

const char *hyperty_get_runtime(const hyperty *h) {
        return h ? h->runtime : NULL;
}

const char *hyperty_get_domain(const hyperty *h) {
        return h ? h->domain : NULL;
}

const char *hyperty_get_connectivity(const hyperty *h) {
        return h ? h->connectivity : NULL;
}

size_t hyperty_get_n_pending(const hyperty *h) {
        return h ? h->n_pending : 0;
}

/* --- pending requests ------------------------------------------------------------------ */

static pending *pending_find(hyperty *h, uint64_t id) {
        for (pending *p = h->pending_head; p; p = p->next)
                if (p->id == id)
                        return p;
        return NULL;
}

static void pending_unlink(hyperty *h, pending *p) {
        if (p->prev)
                p->prev->next = p->next;
        else
                h->pending_head = p->next;
        if (p->next)
                p->next->prev = p->prev;
        p->prev = p->next = NULL;
        h->n_pending--;
}

/* Answers p locally (408, 503) as if its destination had. */
static int pending_answer_locally(hyperty *h, pending *p, int code, const char *description) {
        _cleanup_rt_message_ rt_message *m = NULL;
        _cleanup_(json_decrefp) json_t *body = NULL;
        int r;

        body = json_pack("{s:i,s:s}", "code", code, "description", description);
        if (!body)
                return -ENOMEM;
        r = rt_message_new(RT_MESSAGE_RESPONSE, p->id, p->to, h->address, body, &m);
        if (r < 0)
                return r;
        p->handler(h, m, p->userdata);
        return 0;
}

static int on_request_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        pending *p = userdata;
        hyperty *h = p->owner;
        bool is_hello = p->id == h->hello_id && h->state == LINK_HELLO;
        int r;

        pending_unlink(h, p);
        log_debug("libhyperty: request %" PRIu64 " to %s timed out.", p->id, p->to);

        hyperty_ref(h);
        if (p->handler) {
                r = pending_answer_locally(h, p, 408, "request timed out");
                if (r < 0)
                        log_debug_errno(r, "libhyperty: Failed to answer request %" PRIu64 " locally: %m",
                                        p->id);
        }
        pending_free(p);
        if (is_hello && !h->dead)
                /* A runtime that does not answer the hello is not one to
                 * wait for: start over. */
                link_disconnect(h, ETIMEDOUT, true);
        (void) hyperty_unref_alive(h);
        return 0;
}

static int pending_add(hyperty *h, uint64_t id, const char *to, hyperty_response_handler_t handler,
                       void *userdata) {
        pending *p;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->owner = h;
        p->id = id;
        p->handler = handler;
        p->userdata = userdata;
        p->to = strdup(to);
        if (!p->to) {
                free(p);
                return -ENOMEM;
        }
        r = event_add_timer_relative(h->event, &p->timer, h->request_timeout, on_request_timeout, p);
        if (r < 0) {
                pending_free(p);
                return r;
        }
        (void) sd_event_source_set_description(p->timer, "hyperty-request-timeout");

        p->next = h->pending_head;
        if (p->next)
                p->next->prev = p;
        h->pending_head = p;
        h->n_pending++;
        return 0;
}

static void pending_drop(hyperty *h, uint64_t id) {
        pending *p = pending_find(h, id);

        if (p) {
                pending_unlink(h, p);
                pending_free(p);
        }
}

/* --- output ------------------------------------------------------------------------------ */

static int update_io_events(hyperty *h) {
        uint32_t events = EPOLLIN;

        if (!h->io)
                return 0;
        if (h->out_size > 0 || h->state == LINK_CONNECTING)
                events |= EPOLLOUT;
        return sd_event_source_set_io_events(h->io, events);
}

static int queue_line(hyperty *h, const char *json, size_t n) {
        size_t need = n + 1;

        if (need > RT_MESSAGE_MAX_SIZE_DEFAULT)
                return log_debug_errno(EMSGSIZE, "libhyperty: message of %zu bytes is over the bus limit.", n);
        if (h->out_size + need > HYPERTY_OUTPUT_MAX)
                return log_debug_errno(ENOBUFS, "libhyperty: output buffer full (%zu bytes queued).",
                                       h->out_size);

        if (h->out_start > 0 && h->out_start + h->out_size + need > h->out_alloc) {
                memmove(h->out, h->out + h->out_start, h->out_size);
                h->out_start = 0;
        }
        if (h->out_start + h->out_size + need > h->out_alloc) {
                size_t a = MAX(h->out_alloc * 2, h->out_size + need);
                char *p;

                a = MAX(a, (size_t) 4096);
                a = MIN(a, (size_t) HYPERTY_OUTPUT_MAX);
                p = realloc(h->out, a);
                if (!p)
                        return -ENOMEM;
                h->out = p;
                h->out_alloc = a;
        }
        memcpy(h->out + h->out_start + h->out_size, json, n);
        h->out[h->out_start + h->out_size + n] = '\n';
        h->out_size += need;
        return update_io_events(h);
}

static int queue_message(hyperty *h, const rt_message *m) {
        _cleanup_free_ char *json = NULL;
        int r;

        r = rt_message_to_json(m, &json);
        if (r < 0)
                return r;
        return queue_line(h, json, strlen(json));
}

static int flush_output(hyperty *h) {
        while (h->out_size > 0) {
                ssize_t n = send(h->fd, h->out + h->out_start, h->out_size, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        return -errno;
                }
                h->out_start += (size_t) n;
                h->out_size -= (size_t) n;
        }
        if (h->out_size == 0)
                h->out_start = 0;
        return update_io_events(h);
}

/* --- input ------------------------------------------------------------------------------- */

static bool is_connectivity_execute(const hyperty *h, const rt_message *m) {
        json_t *value;

        if (rt_message_get_type(m) != RT_MESSAGE_EXECUTE || !streq(rt_message_get_from(m), h->runtime) ||
            !streq_ptr(rt_message_get_attribute(m), "connectivity"))
                return false;
        value = rt_message_get_value(m);
        return json_is_string(json_object_get(value, "state"));
}

static int set_connectivity(hyperty *h, const char *state) {
        char *s;

        if (!streq(state, "online") && !streq(state, "degraded") && !streq(state, "offline")) {
                log_debug("libhyperty: ignoring unknown connectivity state.");
                return 0;
        }
        if (streq_ptr(h->connectivity, state))
                return 0;
        s = strdup(state);
        if (!s)
                return -ENOMEM;
        free(h->connectivity);
        h->connectivity = s;
        return 1;
}

static void handle_hello_answer(hyperty *h, const rt_message *m) {
        int code = rt_message_get_code(m);
        json_t *value = rt_message_get_value(m);
        const char *domain = json_string_value(json_object_get(value, "domain"));
        const char *connectivity = json_string_value(json_object_get(value, "connectivity"));
        char *d;

        pending_drop(h, h->hello_id);

        if (code != 200) {
                log_debug("libhyperty: hello refused with %d (%s).", code, strna(rt_message_get_description(m)));
                link_disconnect(h, EACCES, true);
                return;
        }
        if (!domain) {
                /* Resource addresses need it; an answer without it is not
                 * one of docs/bus.md. */
                log_debug("libhyperty: hello answer without value.domain.");
                link_disconnect(h, EBADMSG, true);
                return;
        }
        d = strdup(domain);
        if (!d) {
                link_disconnect(h, ENOMEM, true);
                return;
        }
        free(h->domain);
        h->domain = d;
        if (connectivity && set_connectivity(h, connectivity) < 0) {
                link_disconnect(h, ENOMEM, true);
                return;
        }

        h->state = LINK_READY;
        backoff_reset(h->backoff);
        log_debug("libhyperty: connected to %s as %s (domain %s, %s).", h->runtime, h->address, h->domain,
                  strna(h->connectivity));

        hyperty_ref(h);
        if (h->state_handler)
                h->state_handler(h, true, h->state_userdata);
        if (!h->dead && h->state == LINK_READY && h->connectivity && h->connectivity_handler)
                h->connectivity_handler(h, h->connectivity, h->connectivity_userdata);
        (void) hyperty_unref_alive(h);
}

static void dispatch_message(hyperty *h, const rt_message *m) {
        if (rt_message_get_type(m) == RT_MESSAGE_RESPONSE) {
                pending *p;

                if (h->state == LINK_HELLO && rt_message_get_id(m) == h->hello_id) {
                        handle_hello_answer(h, m);
                        return;
                }
                p = pending_find(h, rt_message_get_id(m));
                /* An answer to someone a protostub relays for (the domain,
                 * a peer) is the protostub's to carry on: it is not one of
                 * its own requests unless id and responder both match (ids
                 * are only unique per sender). */
                if ((!p || !streq(p->to, rt_message_get_from(m))) && !streq(rt_message_get_to(m, 0), h->address) &&
                    h->state == LINK_READY) {
                        if (h->message_handler)
                                h->message_handler(h, m, h->message_userdata);
                        return;
                }
                if (!p) {
                        /* Late (after its 408) or not ours: nobody waits. */
                        log_debug("libhyperty: dropping response %" PRIu64 " nobody waits for.",
                                  rt_message_get_id(m));
                        return;
                }
                pending_unlink(h, p);
                p->handler(h, m, p->userdata);
                pending_free(p);
                return;
        }

        if (h->state != LINK_READY) {
                log_debug("libhyperty: dropping a %s before the hello was answered.",
                          rt_message_type_to_string(rt_message_get_type(m)));
                return;
        }

        if (is_connectivity_execute(h, m)) {
                const char *state = json_string_value(json_object_get(rt_message_get_value(m), "state"));
                int r = set_connectivity(h, state);

                if (r < 0)
                        log_debug_errno(r, "libhyperty: Failed to keep the connectivity state: %m");
                if (r > 0 && h->connectivity_handler)
                        h->connectivity_handler(h, h->connectivity, h->connectivity_userdata);
                return;
        }

        if (!h->message_handler) {
                log_debug("libhyperty: no message handler: dropping a %s from %s.",
                          rt_message_type_to_string(rt_message_get_type(m)), rt_message_get_from(m));
                return;
        }
        h->message_handler(h, m, h->message_userdata);
}

static int read_input(hyperty *h) {
        uint64_t generation = h->generation;
        int r;

        r = bus_reader_recv(h->reader, h->fd);
        if (r == -EAGAIN || r == -EINTR)
                return 0;
        if (r == 0)
                return -ECONNRESET;
        /* -ENOBUFS: whole lines are waiting; they make room. */
        if (r < 0 && r != -ENOBUFS)
                return r;

        hyperty_ref(h);
        for (;;) {
                _cleanup_rt_message_ rt_message *m = NULL;
                bus_reader_error e = {};

                r = bus_reader_next(h->reader, &m, &e);
                if (r == 0)
                        break;
                if (r == -EMSGSIZE || r == -ENOMEM) {
                        /* Past a line over the limit the stream is out of
                         * step: nothing after it starts at a line boundary. */
                        log_debug_errno(r, "libhyperty: Failed to read the bus: %m");
                        break;
                }
                if (r < 0) {
                        log_debug_errno(r, "libhyperty: dropping a line from the bus: %s", strna(e.reason));
                        continue;
                }
                dispatch_message(h, m);
                if (h->dead || h->generation != generation)
                        break;
        }
        if (!hyperty_unref_alive(h) || h->generation != generation)
                return 0;
        return r < 0 ? r : 0;
}

/* --- connection -------------------------------------------------------------------------- */

static int send_hello(hyperty *h) {
        _cleanup_rt_message_ rt_message *m = NULL;
        _cleanup_(json_decrefp) json_t *body = NULL;
        uint64_t id = h->next_id++;
        int r;

        body = json_pack("{s:s,s:s}", "attribute", "hello", "accessToken", h->token);
        if (!body)
                return -ENOMEM;
        r = rt_message_new(RT_MESSAGE_EXECUTE, id, h->address, h->runtime, body, &m);
        if (r < 0)
                return r;
        /* The hello has no handler of its own (dispatch_message() knows it
         * by id), but it gets the same timeout as any request. */
        r = pending_add(h, id, h->runtime, NULL, NULL);
        if (r < 0)
                return r;
        h->hello_id = id;
        r = queue_message(h, m);
        if (r < 0) {
                pending_drop(h, id);
                return r;
        }
        h->state = LINK_HELLO;
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        hyperty *h = userdata;
        int r = 0;

        if (h->state == LINK_CONNECTING) {
                int error = 0;
                socklen_t len = sizeof(error);

                if (!(revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                        return 0;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                        error = errno;
                if (error != 0) {
                        link_disconnect(h, error, false);
                        return 0;
                }
                r = send_hello(h);
                if (r < 0) {
                        link_disconnect(h, -r, false);
                        return 0;
                }
                revents |= EPOLLOUT;
        }

        if (revents & EPOLLIN) {
                uint64_t generation = h->generation;

                hyperty_ref(h);
                r = read_input(h);
                if (!hyperty_unref_alive(h))
                        return 0;
                if (h->generation != generation)
                        return 0;
                if (r < 0) {
                        link_disconnect(h, -r, true);
                        return 0;
                }
        } else if (revents & (EPOLLHUP | EPOLLERR)) {
                link_disconnect(h, ECONNRESET, true);
                return 0;
        }

        if (h->out_size > 0) {
                r = flush_output(h);
                if (r < 0)
                        link_disconnect(h, -r, true);
        }
        return 0;
}

static int on_reconnect(sd_event_source *s, uint64_t usec, void *userdata) {
        hyperty *h = userdata;
        int r;

        r = link_try_connect(h);
        if (r < 0)
                log_debug_errno(r, "libhyperty: Failed to reconnect: %m");
        return 0;
}

static int schedule_reconnect(hyperty *h) {
        usec_t delay;
        int r;

        r = backoff_next_delay(h->backoff, &delay);
        if (r < 0)
                return r;
        h->state = LINK_WAITING;
        r = event_reset_time_relative(h->event, &h->reconnect_timer, delay, on_reconnect, h,
                                      "hyperty-reconnect");
        if (r < 0)
                return r;
        log_debug("libhyperty: next connection attempt in %" PRIu64 " ms.", delay / USEC_PER_MSEC);
        return 0;
}

/* Drops the connection, answers what waits with 503 and, unless h is
 * being freed, schedules the next attempt. notify: tell the state handler
 * when a ready connection was lost. */
static void link_disconnect(hyperty *h, int error, bool notify) {
        bool was_ready = h->state == LINK_READY;
        pending *list;
        int r;

        if (h->fd >= 0)
                log_debug_errno(error, "libhyperty: bus connection closed: %m");

        h->generation++;
        h->io = sd_event_source_disable_unref(h->io);
        h->fd = safe_close(h->fd);
        h->out_size = h->out_start = 0;
        h->reader = bus_reader_free(h->reader);
        h->hello_id = 0;
        h->state = LINK_IDLE;

        list = TAKE_PTR(h->pending_head);
        h->n_pending = 0;

        if (h->dead) {
                pending_list_free(list);
                return;
        }

        r = schedule_reconnect(h);
        if (r < 0)
                log_debug_errno(r, "libhyperty: Failed to schedule a reconnection: %m");

        hyperty_ref(h);
        while (list) {
                pending *p = list;

                list = p->next;
                if (list)
                        list->prev = NULL;
                p->next = NULL;
                if (p->handler && !h->dead) {
                        r = pending_answer_locally(h, p, 503, "bus connection lost");
                        if (r < 0)
                                log_debug_errno(r, "libhyperty: Failed to answer a request locally: %m");
                }
                pending_free(p);
        }
        if (!h->dead && notify && was_ready && h->state_handler)
                h->state_handler(h, false, h->state_userdata);
        (void) hyperty_unref_alive(h);
}

static int link_try_connect(hyperty *h) {
        union {
                struct sockaddr sa;
                struct sockaddr_un un;
        } sa = { .un.sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        int r;

        if (h->dead)
                return -ESTALE;
        if (!h->reader) {
                r = bus_reader_new(0, &h->reader);
                if (r < 0)
                        return r;
        }

        strncpy(sa.un.sun_path, h->bus_path, sizeof(sa.un.sun_path) - 1);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                r = negative_errno();
                log_debug_errno(r, "libhyperty: Failed to create a socket: %m");
                return schedule_reconnect(h);
        }

        h->state = LINK_CONNECTING;
        if (connect(fd, &sa.sa, sizeof(sa.un)) < 0) {
                if (errno != EINPROGRESS) {
                        log_debug_errno(errno, "libhyperty: Failed to connect to %s: %m", h->bus_path);
                        return schedule_reconnect(h);
                }
        }

        r = sd_event_add_io(h->event, &h->io, fd, EPOLLIN | EPOLLOUT, on_io, h);
        if (r < 0) {
                h->state = LINK_IDLE;
                return r;
        }
        (void) sd_event_source_set_description(h->io, "hyperty-bus");
        h->fd = TAKE_FD(fd);
        /* Connected or not yet: on_io() sees EPOLLOUT once it is, checks
         * SO_ERROR and says hello. */
        return 0;
}

int hyperty_connect(hyperty *h) {
        if (!h || h->dead)
                return -EINVAL;
        if (h->state != LINK_IDLE)
                return 0;
        return link_try_connect(h);
}

/* --- sending ------------------------------------------------------------------------------ */

int hyperty_send(hyperty *h, rt_message_type type, const char *from, const char *to, json_t *body,
                 hyperty_response_handler_t handler, void *userdata, uint64_t *ret_id) {
        _cleanup_rt_message_ rt_message *m = NULL;
        uint64_t id;
        int r;

        if (!h || !to || (handler && type == RT_MESSAGE_RESPONSE))
                return -EINVAL;
        if (h->state != LINK_READY)
                return -ENOTCONN;

        id = h->next_id;
        r = rt_message_new(type, id, from ?: h->address, to, body, &m);
        if (r < 0)
                return r;
        if (handler) {
                r = pending_add(h, id, to, handler, userdata);
                if (r < 0)
                        return r;
        }
        r = queue_message(h, m);
        if (r < 0) {
                if (handler)
                        pending_drop(h, id);
                return r;
        }
        h->next_id++;
        if (ret_id)
                *ret_id = id;
        return 0;
}

int hyperty_send_message(hyperty *h, const rt_message *m) {
        if (!h || !m)
                return -EINVAL;
        if (h->state != LINK_READY)
                return -ENOTCONN;
        return queue_message(h, m);
}

int hyperty_reply(hyperty *h, const rt_message *request, int code, const char *description, json_t *value) {
        _cleanup_rt_message_ rt_message *m = NULL;
        int r;

        if (!h || !request)
                return -EINVAL;
        if (h->state != LINK_READY)
                return -ENOTCONN;
        /* The bus takes only our own address as from (docs/bus.md), even
         * for a request that went to one of our ctxt:// resources; the
         * requester correlates by id. */
        r = rt_message_new_response(request, h->address, code, description, value, &m);
        if (r < 0)
                return r;
        return queue_message(h, m);
}

char *hyperty_resource_address(const hyperty *h, const char *name) {
        char *s;

        if (!h || !name)
                return NULL;
        if (asprintf(&s, "ctxt://%s/%s/%s", h->address_domain, h->address_id, name) < 0)
                return NULL;
        if (!rt_address_is_valid(s)) {
                free(s);
                return NULL;
        }
        return s;
}

static int on_stop_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int hyperty_event_new(sd_event **ret) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        sigset_t mask;
        int r;

        if (!ret)
                return -EINVAL;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();
        r = sd_event_default(&e);
        if (r < 0)
                return r;
        r = sd_event_add_signal(e, NULL, SIGTERM, on_stop_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGINT, on_stop_signal, NULL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(e);
        return 0;
}

int hyperty_register(hyperty *h, json_t *registration, hyperty_response_handler_t handler, void *userdata) {
        _cleanup_(json_decrefp) json_t *body = NULL;

        if (!h || !json_is_object(registration))
                return -EINVAL;
        /* body.resource must be an address (lib/message), so the runtime's
         * own services are named by attribute, as "hello" is. */
        body = json_pack("{s:s,s:O}", "attribute", "registration", "value", registration);
        if (!body)
                return -ENOMEM;
        return hyperty_send(h, RT_MESSAGE_CREATE, NULL, h->runtime, body, handler, userdata, NULL);
}

static int check_senml(json_t *senml) {
        const char *reason = NULL;
        int r;

        r = senml_check(senml, &reason);
        if (r < 0)
                return log_debug_errno(r, "libhyperty: not SenML: %s", strna(reason));
        return 0;
}

int hyperty_publish(hyperty *h, const char *name, json_t *senml) {
        _cleanup_(json_decrefp) json_t *body = NULL;
        _cleanup_free_ char *resource = NULL;
        int r;

        if (!h || !name)
                return -EINVAL;
        resource = hyperty_resource_address(h, name);
        if (!resource)
                return -EINVAL;
        r = check_senml(senml);
        if (r < 0)
                return r;
        body = json_pack("{s:s,s:O}", "resource", resource, "value", senml);
        if (!body)
                return -ENOMEM;
        /* Publications are fire and forget (docs/protocol.md): errors come
         * back as responses to an id nobody waits for. */
        return hyperty_send(h, RT_MESSAGE_UPDATE, NULL, resource, body, NULL, NULL, NULL);
}

static int ctxt_domain(const char *resource, char **ret) {
        _cleanup_rt_address_ rt_address *a = NULL;
        char *d;
        int r;

        r = rt_address_parse(resource, &a, NULL);
        if (r < 0)
                return r == -ENOMEM ? r : -EINVAL;
        if (rt_address_get_scheme(a) != RT_ADDRESS_CTXT)
                return -EINVAL;
        d = strdup(rt_address_get_authority(a));
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

static int send_on_resource(hyperty *h, rt_message_type type, const char *via, const char *resource, json_t *value,
                            bool via_sm, hyperty_response_handler_t handler, void *userdata) {
        _cleanup_(json_decrefp) json_t *body = NULL;
        _cleanup_free_ char *domain = NULL, *sm = NULL;
        const char *to;
        int r;

        if (!h || !resource)
                return -EINVAL;
        r = ctxt_domain(resource, &domain);
        if (r < 0)
                return r;
        if (via && !rt_address_is_valid(via))
                return -EINVAL;

        if (via)
                to = via;
        else if (via_sm) {
                if (asprintf(&sm, "domain://msg-node.%s/sm", domain) < 0)
                        return -ENOMEM;
                to = sm;
        } else
                to = resource;

        body = value ? json_pack("{s:s,s:O}", "resource", resource, "value", value)
                     : json_pack("{s:s}", "resource", resource);
        if (!body)
                return -ENOMEM;
        return hyperty_send(h, type, NULL, to, body, handler, userdata, NULL);
}

int hyperty_subscribe(hyperty *h, const char *via, const char *resource, hyperty_response_handler_t handler,
                      void *userdata) {
        return send_on_resource(h, RT_MESSAGE_SUBSCRIBE, via, resource, NULL, true, handler, userdata);
}

int hyperty_unsubscribe(hyperty *h, const char *via, const char *resource, hyperty_response_handler_t handler,
                        void *userdata) {
        return send_on_resource(h, RT_MESSAGE_UNSUBSCRIBE, via, resource, NULL, true, handler, userdata);
}

int hyperty_read(hyperty *h, const char *via, const char *resource, hyperty_response_handler_t handler,
                 void *userdata) {
        return send_on_resource(h, RT_MESSAGE_READ, via, resource, NULL, false, handler, userdata);
}

int hyperty_update(hyperty *h, const char *via, const char *resource, json_t *senml,
                   hyperty_response_handler_t handler, void *userdata) {
        int r;

        if (!senml)
                return -EINVAL;
        r = check_senml(senml);
        if (r < 0)
                return r;
        return send_on_resource(h, RT_MESSAGE_UPDATE, via, resource, senml, false, handler, userdata);
}

int hyperty_discover(hyperty *h, json_t *criteria, hyperty_response_handler_t handler, void *userdata) {
        _cleanup_(json_decrefp) json_t *body = NULL;
        _cleanup_free_ char *registry = NULL;

        if (!h || !json_is_object(criteria))
                return -EINVAL;
        if (asprintf(&registry, "domain://registry.%s", h->domain ?: h->address_domain) < 0)
                return -ENOMEM;
        body = json_pack("{s:O}", "criteria", criteria);
        if (!body)
                return -ENOMEM;
        return hyperty_send(h, RT_MESSAGE_READ, NULL, registry, body, handler, userdata, NULL);
}

int hyperty_load_protostub(hyperty *h, json_t *target, hyperty_response_handler_t handler, void *userdata) {
        _cleanup_(json_decrefp) json_t *body = NULL;

        if (!h || !json_is_object(target))
                return -EINVAL;
        body = json_pack("{s:s,s:O}", "attribute", "loadProtoStub", "value", target);
        if (!body)
                return -ENOMEM;
        return hyperty_send(h, RT_MESSAGE_EXECUTE, NULL, h->runtime, body, handler, userdata, NULL);
}
