/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>

#include "config.h"
#include "h2-client.h"
#include "id.h"
#include "log.h"
#include "registration.h"
#include "token.h"
#include "tls.h"

#define REQUEST_TIMEOUT_DEFAULT_USEC (30 * USEC_PER_SEC)

struct registration {
        sd_event *event;
        identity *id;
        gates *gates;
        gate_subscription *gate_sub, *mobility_sub;
        registration_event_handler_t handler;
        void *handler_userdata;

        char *url_string;
        registration_url url;
        SSL_CTX *tls;
        H2Client *client;
        bool drop_client;
        char *conn_error;       /* why the last connection closed */
        sd_event_source *defer; /* a lost connection's failure, after on_close */
        H2ClientRequest *req;
        backoff *backoff;
        backoff_random_t random;
        void *random_userdata;
        sd_event_source *timer;

        unsigned lifetime;
        char *runtime_version, *arch, *storage_path;
        usec_t request_timeout;

        registration_state state;
        bool started, gate_open;
        /* What the timer does next, and what is in flight. */
        bool next_update, req_update;
        bool next_now;          /* the timer is armed to fire at once */
        const char *next_reason, *req_reason;

        char *location;
        unsigned attempts;
        char *last_error;
        usec_t registered_realtime, next_realtime;
};

static const char *const state_names[_REGISTRATION_STATE_MAX] = {
        [REGISTRATION_SUSPENDED] = "suspended",
        [REGISTRATION_REGISTERING] = "registering",
        [REGISTRATION_REGISTERED] = "registered",
        [REGISTRATION_UPDATING] = "updating",
        [REGISTRATION_RETRY_WAIT] = "retry-wait",
};

const char *registration_state_to_string(registration_state s) {
        return s >= 0 && s < _REGISTRATION_STATE_MAX ? state_names[s] : NULL;
}

/* --- URL --------------------------------------------------------------------------- */

static bool host_is_loopback(const char *host) {
        struct in_addr a4;
        struct in6_addr a6;

        if (streq(host, "localhost"))
                return true;
        if (inet_pton(AF_INET, host, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        if (inet_pton(AF_INET6, host, &a6) == 1)
                return IN6_IS_ADDR_LOOPBACK(&a6);
        return false;
}

int registration_url_parse(const char *url, registration_url *ret, const char **ret_reason) {
        registration_url u = {};
        const char *p, *end, *reason;
        struct in_addr a4;
        struct in6_addr a6;
        size_t n;

        if (!url || !ret)
                return -EINVAL;
        if (strncmp(url, "https://", 8) == 0) {
                u.tls = true;
                p = url + 8;
                u.port = 443;
        } else if (strncmp(url, "http://", 7) == 0) {
                p = url + 7;
                u.port = 80;
        } else {
                reason = "expected https://host[:port] (or http:// on loopback)";
                goto fail;
        }

        if (*p == '[') {
                end = strchr(p, ']');
                if (!end) {
                        reason = "unterminated IPv6 address";
                        goto fail;
                }
                n = (size_t) (end - p - 1);
                if (n == 0 || n >= sizeof(u.host)) {
                        reason = "invalid IPv6 address";
                        goto fail;
                }
                memcpy(u.host, p + 1, n);
                if (inet_pton(AF_INET6, u.host, &a6) != 1) {
                        reason = "invalid IPv6 address";
                        goto fail;
                }
                p = end + 1;
        } else {
                n = strcspn(p, ":/?#@");
                if (n == 0 || n >= sizeof(u.host)) {
                        reason = "missing or invalid host";
                        goto fail;
                }
                memcpy(u.host, p, n);
                p += n;
                if (!streq(u.host, "localhost") && inet_pton(AF_INET, u.host, &a4) != 1) {
                        reason = "host must be a numeric IP address or localhost (names are not resolved)";
                        goto fail;
                }
        }

        if (*p == ':') {
                unsigned long v;
                char *e;

                p++;
                if (*p < '0' || *p > '9') {
                        reason = "invalid port";
                        goto fail;
                }
                errno = 0;
                v = strtoul(p, &e, 10);
                if (errno != 0 || v == 0 || v > 65535) {
                        reason = "invalid port";
                        goto fail;
                }
                u.port = (uint16_t) v;
                p = e;
        }
        if (streq(p, "/"))
                p++;
        if (*p) {
                reason = "no user, path, query or fragment allowed";
                goto fail;
        }
        if (!u.tls && !host_is_loopback(u.host)) {
                reason = "cleartext http:// only to a loopback address; use https://";
                goto fail;
        }
        *ret = u;
        return 0;

fail:
        if (ret_reason)
                *ret_reason = reason;
        return -EINVAL;
}

/* --- journal -------------------------------------------------------------------------- */

static const char *step_name(bool update) {
        return update ? "update" : "register";
}

static void emit(registration *reg, const registration_event *ev) {
        const char *ep = identity_get_endpoint(reg->id);
        char delay[FORMAT_TIMESPAN_MAX];

        switch (ev->type) {
        case REGISTRATION_EVENT_ATTEMPT:
                log_struct(LOG_INFO,
                           LOG_MESSAGE("Sending %s of %s to %s (%s, attempt %u).", step_name(ev->update), ep,
                                       reg->url_string, ev->reason, reg->attempts),
                           LOG_MESSAGE_ID(REGISTRATION_MESSAGE_ID_ATTEMPT),
                           LOG_FIELD("REG_ENDPOINT", "%s", ep),
                           LOG_FIELD("REG_DOMAIN", "%s", reg->url_string),
                           LOG_FIELD("REG_STEP", "%s", step_name(ev->update)),
                           LOG_FIELD("REG_REASON", "%s", ev->reason),
                           LOG_FIELD("REG_ATTEMPT", "%u", reg->attempts));
                break;
        case REGISTRATION_EVENT_REGISTERED:
                log_struct(LOG_INFO,
                           LOG_MESSAGE("Registered %s with %s as %s (%d, lifetime %us).", ep, reg->url_string,
                                       reg->location, ev->status, reg->lifetime),
                           LOG_MESSAGE_ID(REGISTRATION_MESSAGE_ID_REGISTERED),
                           LOG_FIELD("REG_ENDPOINT", "%s", ep),
                           LOG_FIELD("REG_DOMAIN", "%s", reg->url_string),
                           LOG_FIELD("REG_LOCATION", "%s", reg->location),
                           LOG_FIELD("REG_STATUS", "%d", ev->status),
                           LOG_FIELD("REG_LIFETIME_SEC", "%u", reg->lifetime),
                           LOG_FIELD("REG_REASON", "%s", ev->reason),
                           LOG_FIELD("REG_NEXT_USEC", "%" PRIu64, ev->delay));
                break;
        case REGISTRATION_EVENT_UPDATED:
                log_struct(LOG_INFO,
                           LOG_MESSAGE("Registration %s of %s refreshed (%s); next in %s.", reg->location, ep,
                                       ev->reason, format_timespan_exact(delay, sizeof(delay), ev->delay)),
                           LOG_MESSAGE_ID(REGISTRATION_MESSAGE_ID_UPDATED),
                           LOG_FIELD("REG_ENDPOINT", "%s", ep),
                           LOG_FIELD("REG_DOMAIN", "%s", reg->url_string),
                           LOG_FIELD("REG_LOCATION", "%s", reg->location),
                           LOG_FIELD("REG_REASON", "%s", ev->reason),
                           LOG_FIELD("REG_NEXT_USEC", "%" PRIu64, ev->delay));
                break;
        case REGISTRATION_EVENT_FAILED:
                log_struct_errno(ev->status >= 400 && ev->status < 500 && ev->status != 429 ? LOG_ERR : LOG_WARNING,
                                 ev->error,
                                 LOG_MESSAGE("%s of %s with %s failed (%s); retrying in %s.",
                                             ev->update ? "Update" : "Registration", ep, reg->url_string,
                                             strna(reg->last_error), format_timespan_exact(delay, sizeof(delay), ev->delay)),
                                 LOG_MESSAGE_ID(REGISTRATION_MESSAGE_ID_FAILED),
                                 LOG_FIELD("REG_ENDPOINT", "%s", ep),
                                 LOG_FIELD("REG_DOMAIN", "%s", reg->url_string),
                                 LOG_FIELD("REG_STEP", "%s", step_name(ev->update)),
                                 LOG_FIELD("REG_REASON", "%s", ev->reason),
                                 LOG_FIELD("REG_STATUS", "%d", ev->status),
                                 LOG_FIELD("REG_ERROR", "%s", strna(reg->last_error)),
                                 LOG_FIELD("REG_RETRY_USEC", "%" PRIu64, ev->delay),
                                 LOG_FIELD("REG_RETRY_AFTER_USEC", "%" PRIu64, ev->retry_after),
                                 LOG_FIELD("REG_ATTEMPT", "%u", reg->attempts));
                break;
        case REGISTRATION_EVENT_LOST:
                log_struct(LOG_NOTICE,
                           LOG_MESSAGE("The domain %s no longer knows registration %s of %s; registering again.",
                                       reg->url_string, strna(reg->location), ep),
                           LOG_MESSAGE_ID(REGISTRATION_MESSAGE_ID_LOST),
                           LOG_FIELD("REG_ENDPOINT", "%s", ep),
                           LOG_FIELD("REG_DOMAIN", "%s", reg->url_string),
                           LOG_FIELD("REG_LOCATION", "%s", strna(reg->location)),
                           LOG_FIELD("REG_STATUS", "%d", ev->status));
                break;
        case REGISTRATION_EVENT_SUSPENDED:
                log_struct(LOG_NOTICE,
                           LOG_MESSAGE("Registration of %s suspended: the registration gate is closed (%s).", ep,
                                       ev->reason),
                           LOG_MESSAGE_ID(REGISTRATION_MESSAGE_ID_SUSPENDED),
                           LOG_FIELD("REG_ENDPOINT", "%s", ep),
                           LOG_FIELD("REG_DOMAIN", "%s", reg->url_string),
                           LOG_FIELD("REG_REASON", "%s", ev->reason));
                break;
        default:
                break;
        }
        if (reg->handler)
                reg->handler(ev, reg->handler_userdata);
}

/* --- the state machine ------------------------------------------------------------------- */

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void set_last_error(registration *reg, const char *fmt, ...) _printf_(2, 3);
static void set_last_error(registration *reg, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        free(reg->last_error);
        reg->last_error = s;
}

/* Every request starts from this timer, also the "at once" ones: it keeps
 * the client from being replaced inside one of its own callbacks, and
 * keeps one place where attempts are paced. */
static int schedule(registration *reg, bool update, const char *reason, usec_t delay) {
        int r;

        reg->next_update = update && reg->location;
        reg->next_reason = reason;
        reg->next_now = delay == 0;
        r = event_reset_time_relative(reg->event, &reg->timer, delay, on_timer, reg, "registration");
        if (r < 0)
                return log_error_errno(r, "Failed to arm the registration timer: %m");
        reg->next_realtime = now(CLOCK_REALTIME) + delay;
        return 0;
}

static void stop_timer(registration *reg) {
        if (reg->timer)
                (void) sd_event_source_set_enabled(reg->timer, SD_EVENT_OFF);
        reg->next_realtime = 0;
        reg->next_now = false;
}

static void cancel_request(registration *reg) {
        reg->defer = sd_event_source_disable_unref(reg->defer);
        if (!reg->req)
                return;
        (void) h2_client_request_cancel(reg->req);
        reg->req = h2_client_request_unref(reg->req);
}

static void fail(registration *reg, int error, int status, usec_t retry_after) {
        registration_event ev = {
                .type = REGISTRATION_EVENT_FAILED,
                .update = reg->req_update,
                .reason = reg->req_reason,
                .status = status,
                .error = error,
                .retry_after = retry_after,
        };
        usec_t delay = REGISTRATION_RETRY_MAX_USEC;
        int r;

        if (retry_after > 0)
                backoff_set_retry_after(reg->backoff, retry_after);
        r = backoff_next_delay(reg->backoff, &delay);
        if (r < 0)
                log_debug_errno(r, "Backoff gave no delay (%m), using the cap.");
        ev.delay = delay;
        if (error < 0)
                /* A connection that failed a request may be half-dead (a link
                 * cut without a reset): the next attempt gets a new one. */
                reg->drop_client = true;
        reg->state = REGISTRATION_RETRY_WAIT;
        if (schedule(reg, reg->req_update, "retry", delay) < 0)
                return;
        emit(reg, &ev);
}

static usec_t keepalive_delay(registration *reg) {
        usec_t lifetime = (usec_t) reg->lifetime * USEC_PER_SEC, base = lifetime * 2 / 3, span = lifetime / 6;
        uint64_t x = 0;

        /* Uniform in [1/2, 2/3] of the lifetime: well before it runs out
         * even after a retry or two, and spread over the fleet. */
        if (span == 0)
                return base;
        if (reg->random)
                x = reg->random(reg->random_userdata);
        else if (id_random_u64(&x) < 0)
                return base;
        return base - x % (span + 1);
        return base;
}

static int parse_retry_after(const char *v, usec_t *ret) {
        usec_t t, n;

        if (!v)
                return -ENOENT;
        if (*v >= '0' && *v <= '9') {
                unsigned long long s;
                char *e;

                errno = 0;
                s = strtoull(v, &e, 10);
                if (errno != 0 || *e || s > UINT64_MAX / USEC_PER_SEC)
                        return -EINVAL;
                *ret = s * USEC_PER_SEC;
                return 0;
        }
        if (parse_http_date(v, &t) < 0)
                return -EINVAL;
        n = now(CLOCK_REALTIME);
        *ret = t > n ? t - n : 0;
        return 0;
}

static void succeed(registration *reg, registration_event_type type, int status) {
        registration_event ev = {
                .type = type,
                .update = reg->req_update,
                .reason = reg->req_reason,
                .status = status,
                .delay = keepalive_delay(reg),
        };

        backoff_reset(reg->backoff);
        free(reg->last_error);
        reg->last_error = NULL;
        reg->registered_realtime = now(CLOCK_REALTIME);
        reg->state = REGISTRATION_REGISTERED;
        if (schedule(reg, true, "keep-alive", ev.delay) < 0)
                return;
        emit(reg, &ev);
}

static int on_connection_lost(sd_event_source *s, void *userdata) {
        registration *reg = userdata;

        reg->defer = sd_event_source_disable_unref(reg->defer);
        set_last_error(reg, "connection lost: %s", reg->conn_error ?: strerror(ECONNABORTED));
        fail(reg, -ECONNABORTED, 0, 0);
        return 0;
}

static void on_request_complete(H2ClientRequest *req, int error, void *userdata) {
        registration *reg = userdata;
        const char *loc;
        usec_t retry_after = 0;
        int status;

        if (req != reg->req)
                return;
        reg->req = h2_client_request_unref(reg->req);

        if (error == -ECONNABORTED) {
                /* The client completes requests before it says why the
                 * connection closed: decide once that is known. */
                reg->defer = sd_event_source_disable_unref(reg->defer);
                if (sd_event_add_defer(reg->event, &reg->defer, on_connection_lost, reg) >= 0)
                        return;
        }
        if (error < 0) {
                set_last_error(reg, "%s", strerror(-error));
                fail(reg, error, 0, 0);
                return;
        }
        status = h2_client_request_get_status(req);

        if (!reg->req_update && (status == 201 || status == 200)) {
                loc = h2_client_request_get_header(req, "location");
                if (!loc || strncmp(loc, "/dm/rd/", 7) != 0 || !loc[7] || strpbrk(loc, "?#\r\n ")) {
                        set_last_error(reg, "answer %d without a valid Location", status);
                        fail(reg, 0, status, 0);
                        return;
                }
                if (!streq_ptr(loc, reg->location)) {
                        char *l = strdup(loc);
                        if (!l) {
                                set_last_error(reg, "out of memory");
                                fail(reg, -ENOMEM, status, 0);
                                return;
                        }
                        free(reg->location);
                        reg->location = l;
                }
                succeed(reg, REGISTRATION_EVENT_REGISTERED, status);
                return;
        }
        if (reg->req_update && (status == 204 || status == 200)) {
                succeed(reg, REGISTRATION_EVENT_UPDATED, status);
                return;
        }
        if (reg->req_update && status == 404) {
                emit(reg, &(registration_event) {
                                .type = REGISTRATION_EVENT_LOST,
                                .update = true,
                                .reason = reg->req_reason,
                                .status = status,
                        });
                free(reg->location);
        reg->location = NULL;
                reg->state = REGISTRATION_REGISTERING;
                (void) schedule(reg, false, "not-found", 0);
                return;
        }

        if (status == 503 || status == 429)
                (void) parse_retry_after(h2_client_request_get_header(req, "retry-after"), &retry_after);
        {
                size_t size = 0;
                const uint8_t *body = h2_client_request_get_body(req, &size);
                _cleanup_(json_decrefp) json_t *j = body && size > 0 ? json_loadb((const char *) body, size, 0, NULL)
                                                                   : NULL;
                const char *d = json_string_value(json_object_get(j, "description"));

                set_last_error(reg, "HTTP %d%s%s", status, d ? ": " : "", d ?: "");
        }
        fail(reg, 0, status, retry_after);
}

static const H2ClientRequestCallbacks request_callbacks = {
        .on_complete = on_request_complete,
};

static void on_client_close(H2Client *c, int error, const char *reason, void *userdata) {
        registration *reg = userdata;
        char *s = NULL;

        if (c != reg->client)
                return;
        /* Requests learn only -ECONNABORTED; keep the real cause for them. */
        if (asprintf(&s, "%s%s%s", error < 0 ? strerror(-error) : "closed", reason ? ", " : "", reason ?: "") < 0)
                s = NULL;
        free(reg->conn_error);
        reg->conn_error = s;
}

static const H2ClientCallbacks client_callbacks = {
        .on_close = on_client_close,
};

static int ensure_client(registration *reg) {
        H2ClientConfig config;

        if (reg->client && (reg->drop_client || !h2_client_is_usable(reg->client)))
                reg->client = h2_client_unref(reg->client);
        reg->drop_client = false;
        if (reg->client)
                return 0;
        h2_client_config_init(&config);
        config.request_timeout_usec = reg->request_timeout;
        config.connect_timeout_usec = reg->request_timeout;
        config.max_response_body = 64 * 1024;
        free(reg->conn_error);
        reg->conn_error = NULL;
        return h2_client_new(reg->event, reg->url.host, reg->url.port, reg->tls, NULL, &config, &client_callbacks, reg,
                             &reg->client);
}

static int build_body(registration *reg, bool update, char **ret) {
        _cleanup_(json_decrefp) json_t *o = json_object();
        struct statvfs sv;
        char *s;

        if (!o)
                return -ENOMEM;
        if (!update) {
                _cleanup_free_ char *pem = NULL;

                if (json_object_set_new(o, "publicKey", json_string(identity_get_public_key(reg->id))) < 0)
                        return -ENOMEM;
                /* The IdM verifies our client assertions (ES256) with it. */
                if (token_key_get_public_pem(identity_get_token_key(reg->id), &pem) < 0 ||
                    json_object_set_new(o, "tokenKey", json_string(pem)) < 0)
                        return -ENOMEM;
        }
        if (json_object_set_new(o, "runtimeVersion", json_string(reg->runtime_version)) < 0 ||
            json_object_set_new(o, "arch", json_string(reg->arch)) < 0)
                return -ENOMEM;
        if (reg->storage_path && statvfs(reg->storage_path, &sv) >= 0) {
                uint64_t free_bytes = (uint64_t) sv.f_bavail * (uint64_t) sv.f_frsize;

                /* JSON peers read integers exactly up to 2^53. */
                if (json_object_set_new(o, "freeBytes", json_integer((json_int_t) MIN(free_bytes, (uint64_t) 1 << 53))) < 0)
                        return -ENOMEM;
        }
        s = json_dumps(o, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static void send_request(registration *reg) {
        _cleanup_free_ char *path = NULL, *body = NULL;
        bool update = reg->next_update && reg->location;
        int r;

        reg->req_update = update;
        reg->req_reason = reg->next_reason ?: "retry";
        reg->next_realtime = 0;
        reg->next_now = false;
        reg->state = update ? REGISTRATION_UPDATING : REGISTRATION_REGISTERING;
        reg->attempts++;
        emit(reg, &(registration_event) { .type = REGISTRATION_EVENT_ATTEMPT, .update = update, .reason = reg->req_reason });

        if (update)
                path = strdup(reg->location);
        else if (asprintf(&path, "/dm/rd?ep=%s&lt=%u", identity_get_endpoint(reg->id), reg->lifetime) < 0)
                path = NULL;
        if (!path) {
                set_last_error(reg, "out of memory");
                fail(reg, -ENOMEM, 0, 0);
                return;
        }
        r = build_body(reg, update, &body);
        if (r < 0) {
                set_last_error(reg, "out of memory");
                fail(reg, r, 0, 0);
                return;
        }
        r = ensure_client(reg);
        if (r >= 0)
                r = h2_client_request(reg->client, "POST", path,
                                      (const H2Header[]) { { "content-type", "application/json" } }, 1, body,
                                      strlen(body), 0, &request_callbacks, reg, &reg->req);
        if (r < 0) {
                set_last_error(reg, "cannot connect: %s", strerror(-r));
                fail(reg, r, 0, 0);
        }
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        registration *reg = userdata;

        if (!reg->gate_open || !reg->started)
                return 0;
        cancel_request(reg);
        send_request(reg);
        return 0;
}

static void suspend(registration *reg, const char *reason) {
        cancel_request(reg);
        stop_timer(reg);
        /* Nothing may touch the network while the gate is closed, not even
         * an idle connection's pings; a new one is made when it opens. */
        reg->client = h2_client_unref(reg->client);
        reg->state = REGISTRATION_SUSPENDED;
        emit(reg, &(registration_event) { .type = REGISTRATION_EVENT_SUSPENDED, .reason = reason });
}

static void on_gate(gate_kind kind, bool open, const char *reason, void *userdata) {
        registration *reg = userdata;

        if (kind != GATE_REGISTRATION || open == reg->gate_open)
                return;
        reg->gate_open = open;
        if (!reg->started)
                return;
        if (open) {
                /* Connectivity is back: whatever failed before says nothing
                 * about now. */
                backoff_reset(reg->backoff);
                (void) schedule(reg, false, "gate-open", 0);
        } else
                suspend(reg, reason ?: "closed");
}

static void on_mobility(const gate_mobility *ev, void *userdata) {
        registration *reg = userdata;
        bool update = true;

        if (!reg->started || !reg->gate_open)
                return;
        /* The old connection is bound to the old address. */
        reg->drop_client = true;
        if (reg->req) {
                /* Redo what was in flight, from the new address. */
                update = reg->req_update;
                cancel_request(reg);
        } else if (reg->next_now && !reg->next_update)
                /* A registration is about to go out (the gate just opened,
                 * which often comes with a new primary): it tells the
                 * domain the new address as well as an update would. */
                return;
        else if (reg->state == REGISTRATION_RETRY_WAIT)
                update = reg->next_update;
        (void) schedule(reg, update, "mobility", 0);
}

/* --- object ---------------------------------------------------------------------------------- */

int registration_new(sd_event *e, identity *id, gates *g, const registration_options *o, registration **ret) {
        _cleanup_registration_ registration *reg = NULL;
        const char *reason = NULL;
        struct utsname u;
        int r;

        if (!e || !id || !g || !o || !o->url || !ret)
                return -EINVAL;
        reg = calloc(1, sizeof(*reg));
        if (!reg)
                return -ENOMEM;
        reg->event = sd_event_ref(e);
        reg->id = id;
        reg->gates = g;

        r = registration_url_parse(o->url, &reg->url, &reason);
        if (r < 0)
                return log_error_errno(r, "Domain URL %s: %s", o->url, reason);
        reg->url_string = strdup(o->url);
        if (!reg->url_string)
                return -ENOMEM;
        if (reg->url.tls) {
                if (!o->ca_file)
                        return log_error_errno(EINVAL, "Domain URL %s needs a CA file to verify the domain.", o->url);
                r = tls_client_ctx_new(o->ca_file, &reg->tls);
                if (r < 0)
                        return log_error_errno(r, "Failed to load the domain CA %s: %m", o->ca_file);
        }

        reg->lifetime = o->lifetime_sec ?: REGISTRATION_LIFETIME_DEFAULT_SEC;
        reg->request_timeout = o->request_timeout_usec ?: REQUEST_TIMEOUT_DEFAULT_USEC;
        reg->runtime_version = strdup(o->runtime_version ?: RETHINK_VERSION);
        if (o->arch)
                reg->arch = strdup(o->arch);
        else if (uname(&u) >= 0)
                reg->arch = strdup(u.machine);
        else
                reg->arch = strdup("unknown");
        if (!reg->runtime_version || !reg->arch)
                return -ENOMEM;
        if (o->storage_path) {
                reg->storage_path = strdup(o->storage_path);
                if (!reg->storage_path)
                        return -ENOMEM;
        }

        r = backoff_new(&(backoff_config) {
                                .initial = o->retry_initial_usec ?: REGISTRATION_RETRY_INITIAL_USEC,
                                .max = MAX(o->retry_max_usec ?: REGISTRATION_RETRY_MAX_USEC,
                                           o->retry_initial_usec ?: REGISTRATION_RETRY_INITIAL_USEC),
                                .retry_after_max = REGISTRATION_RETRY_AFTER_MAX_USEC,
                        },
                        &reg->backoff);
        if (r < 0)
                return r;
        if (o->random) {
                backoff_set_random(reg->backoff, o->random, o->random_userdata);
                reg->random = o->random;
                reg->random_userdata = o->random_userdata;
        }

        r = gates_subscribe(g, GATE_REGISTRATION, on_gate, reg, &reg->gate_sub);
        if (r < 0)
                return r;
        r = gates_subscribe_mobility(g, on_mobility, reg, &reg->mobility_sub);
        if (r < 0)
                return r;
        reg->gate_open = gates_is_open(g, GATE_REGISTRATION, NULL);
        reg->state = REGISTRATION_SUSPENDED;
        *ret = TAKE_PTR(reg);
        return 0;
}

registration *registration_free(registration *reg) {
        if (!reg)
                return NULL;
        gate_subscription_free(reg->gate_sub);
        gate_subscription_free(reg->mobility_sub);
        cancel_request(reg);
        sd_event_source_disable_unref(reg->timer);
        h2_client_unref(reg->client);
        if (reg->tls)
                SSL_CTX_free(reg->tls);
        backoff_free(reg->backoff);
        sd_event_unref(reg->event);
        free(reg->url_string);
        free(reg->runtime_version);
        free(reg->arch);
        free(reg->storage_path);
        free(reg->location);
        free(reg->last_error);
        free(reg->conn_error);
        free(reg);
        return NULL;
}

void registration_set_event_handler(registration *reg, registration_event_handler_t handler, void *userdata) {
        reg->handler = handler;
        reg->handler_userdata = userdata;
}

int registration_start(registration *reg) {
        if (!reg)
                return -EINVAL;
        if (reg->started)
                return -EALREADY;
        reg->started = true;
        if (!reg->gate_open) {
                log_info("Registration of %s with %s waits for the registration gate.", identity_get_endpoint(reg->id),
                         reg->url_string);
                return 0;
        }
        return schedule(reg, false, "start", 0);
}

registration_state registration_get_state(const registration *reg) {
        return reg->state;
}

const char *registration_get_location(const registration *reg) {
        return reg->location;
}

unsigned registration_get_lifetime(const registration *reg) {
        return reg->lifetime;
}

unsigned registration_get_attempts(const registration *reg) {
        return reg->attempts;
}

json_t *registration_status_json(const registration *reg) {
        return json_pack("{s:s, s:s, s:s, s:s?, s:I, s:I, s:s?, s:I, s:I}",
                         "state", registration_state_to_string(reg->state),
                         "domain", reg->url_string,
                         "endpoint", identity_get_endpoint(reg->id),
                         "location", reg->location,
                         "lifetime", (json_int_t) reg->lifetime,
                         "attempts", (json_int_t) reg->attempts,
                         "last_error", reg->last_error,
                         "registered_usec", (json_int_t) reg->registered_realtime,
                         "next_usec", (json_int_t) reg->next_realtime);
}
