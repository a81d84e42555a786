/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "domain-client.h"
#include "h2-client.h"
#include "tls.h"

struct domain_client {
        sd_event *event;
        SSL_CTX *tls;
        H2Client *h2;
        char *url, *host, *authority, *authorization;
        char *credential; /* the admin credential, until exchanged for a token */
        uint16_t port;
        uint64_t timeout_usec;
        char error[512];
        int close_error;
        bool closed;
};

typedef struct call {
        domain_client *client;
        domain_response *response;
        int error;
        bool done;
        /* streams */
        int (*on_line)(const char *line, void *userdata);
        void *userdata;
        char *partial;
        size_t n_partial;
        int line_result;
} call;

domain_response *domain_response_free(domain_response *r) {
        if (!r)
                return NULL;
        free(r->body);
        free(r->content_type);
        free(r);
        return NULL;
}

const char *domain_response_description(domain_response *r) {
        json_auto_t *j = NULL;
        static char buf[1024];
        json_t *d;

        if (!r || !r->body || r->size == 0)
                return NULL;
        j = json_loadb(r->body, r->size, 0, NULL);
        d = json_object_get(j, "description");
        if (!json_is_string(d))
                return NULL;
        snprintf(buf, sizeof(buf), "%s", json_string_value(d));
        for (char *q = buf; *q; q++)
                if ((unsigned char) *q < 0x20 || *q == 0x7f)
                        *q = ' ';
        return buf;
}

static int parse_url(const char *url, bool *ret_tls, char **ret_host, uint16_t *ret_port) {
        const char *p, *end, *hostend;
        unsigned char buf[sizeof(struct in6_addr)];
        _cleanup_free_ char *host = NULL;
        unsigned long port;
        bool tls;

        if (strncmp(url, "https://", 8) == 0) {
                tls = true;
                p = url + 8;
        } else if (strncmp(url, "http://", 7) == 0) {
                tls = false;
                p = url + 7;
        } else
                return strstr(url, "://") ? -EPROTONOSUPPORT : -EINVAL;

        end = p + strcspn(p, "/?#");
        if (*end && !streq(end, "/"))
                return -EINVAL;
        if (*p == '[') {
                hostend = memchr(p, ']', (size_t) (end - p));
                if (!hostend)
                        return -EINVAL;
                host = strndup(p + 1, (size_t) (hostend - p - 1));
                hostend++;
                if (!host)
                        return -ENOMEM;
                if (inet_pton(AF_INET6, host, buf) != 1)
                        return -EINVAL;
        } else {
                hostend = memchr(p, ':', (size_t) (end - p)) ?: end;
                host = strndup(p, (size_t) (hostend - p));
                if (!host)
                        return -ENOMEM;
                if (!streq(host, "localhost") && inet_pton(AF_INET, host, buf) != 1)
                        return -EINVAL;
        }
        if (hostend < end) {
                char *e;

                if (*hostend != ':' || hostend + 1 == end)
                        return -EINVAL;
                errno = 0;
                port = strtoul(hostend + 1, &e, 10);
                if (errno != 0 || e != end || port == 0 || port > 65535 || hostend[1] < '0' || hostend[1] > '9')
                        return -EINVAL;
        } else
                port = tls ? 443 : 80;

        *ret_tls = tls;
        *ret_host = TAKE_PTR(host);
        *ret_port = (uint16_t) port;
        return 0;
}

int domain_client_new(const char *url, const char *ca_file, const char *admin_token, uint64_t timeout_usec,
                      domain_client **ret) {
        domain_client *c;
        bool tls;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->timeout_usec = timeout_usec;
        r = parse_url(url, &tls, &c->host, &c->port);
        if (r < 0)
                goto fail;
        r = -ENOMEM;
        c->url = strdup(url);
        if (!c->url)
                goto fail;
        if (strchr(c->host, ':') ? asprintf(&c->authority, "[%s]:%u", c->host, c->port) < 0
                                 : asprintf(&c->authority, "%s:%u", c->host, c->port) < 0) {
                c->authority = NULL;
                goto fail;
        }
        if (admin_token) {
                c->credential = strdup(admin_token);
                if (!c->credential)
                        goto fail;
        }
        if (tls) {
                /* No CA file: the system's bundle, as for any https:// client. */
                r = tls_client_ctx_new(ca_file ?: "/etc/ssl/certs/ca-certificates.crt", &c->tls);
                if (r < 0)
                        goto fail;
        }
        r = sd_event_new(&c->event);
        if (r < 0)
                goto fail;
        *ret = c;
        return 0;
fail:
        domain_client_free(c);
        return r;
}

domain_client *domain_client_free(domain_client *c) {
        if (!c)
                return NULL;
        h2_client_unref(c->h2);
        if (c->tls)
                SSL_CTX_free(c->tls);
        sd_event_unref(c->event);
        if (c->authorization)
                explicit_bzero_safe(c->authorization, strlen(c->authorization));
        free(c->authorization);
        if (c->credential)
                explicit_bzero_safe(c->credential, strlen(c->credential));
        free(c->credential);
        free(c->authority);
        free(c->host);
        free(c->url);
        free(c);
        return NULL;
}

const char *domain_client_error(domain_client *c) {
        return c->error;
}

const char *domain_client_url(domain_client *c) {
        return c->url;
}

static void on_close(H2Client *h, int error, const char *reason, void *userdata) {
        domain_client *c = userdata;

        c->closed = true;
        if (error < 0 && c->close_error == 0) {
                c->close_error = error;
                if (error == -EPERM)
                        snprintf(c->error, sizeof(c->error), "the server's certificate was rejected (%s)",
                                 strna(reason));
                else if (error == -EPROTO)
                        snprintf(c->error, sizeof(c->error), "the server does not speak HTTP/2 over TLS (%s)",
                                 strna(reason));
                else if (error == -ETIMEDOUT)
                        snprintf(c->error, sizeof(c->error), "no connection within the timeout");
                else
                        snprintf(c->error, sizeof(c->error), "%s%s%s%s", strerror(-error), reason ? " (" : "",
                                 reason ?: "", reason ? ")" : "");
        }
}

static int ensure_connected(domain_client *c) {
        static const H2ClientCallbacks callbacks = { .on_close = on_close };
        H2ClientConfig config;

        if (c->h2 && h2_client_is_usable(c->h2))
                return 0;
        c->h2 = h2_client_unref(c->h2);
        c->closed = false;
        c->close_error = 0;
        c->error[0] = '\0';
        h2_client_config_init(&config);
        config.connect_timeout_usec = c->timeout_usec;
        config.request_timeout_usec = 0; /* our own timer covers each call */
        return h2_client_new(c->event, c->host, c->port, c->tls, NULL, &config, &callbacks, c, &c->h2);
}

static int on_response(H2ClientRequest *req, int status, void *userdata) {
        call *k = userdata;
        const char *ct = h2_client_request_get_header(req, "content-type");

        k->response = calloc(1, sizeof(domain_response));
        if (!k->response)
                return -ENOMEM;
        k->response->status = status;
        if (ct) {
                k->response->content_type = strdup(ct);
                if (!k->response->content_type)
                        return -ENOMEM;
        }
        return 0;
}

static int append(char **buf, size_t *n, const uint8_t *data, size_t size) {
        char *p = realloc(*buf, *n + size + 1);

        if (!p)
                return -ENOMEM;
        memcpy(p + *n, data, size);
        *n += size;
        p[*n] = '\0';
        *buf = p;
        return 0;
}

/* Streams: a 2xx answer is cut into lines for on_line(); any other answer
 * is kept whole, as an error body. */
static int on_data(H2ClientRequest *req, const uint8_t *data, size_t size, void *userdata) {
        call *k = userdata;
        char *nl;
        int r;

        if (!k->response || k->response->status < 200 || k->response->status > 299 || !k->on_line)
                return append(&k->response->body, &k->response->size, data, size);

        r = append(&k->partial, &k->n_partial, data, size);
        if (r < 0)
                return r;
        while ((nl = memchr(k->partial, '\n', k->n_partial))) {
                *nl = '\0';
                r = k->on_line(k->partial, k->userdata);
                k->n_partial -= (size_t) (nl + 1 - k->partial);
                memmove(k->partial, nl + 1, k->n_partial + 1);
                if (r != 0) {
                        k->line_result = r;
                        k->done = true;
                        return 0;
                }
        }
        return 0;
}

static void on_complete(H2ClientRequest *req, int error, void *userdata) {
        call *k = userdata;
        size_t n;
        const uint8_t *body;

        k->error = error;
        k->done = true;
        if (error == 0 && k->response && !k->on_line) {
                body = h2_client_request_get_body(req, &n);
                k->response->body = malloc(n + 1);
                if (!k->response->body)
                        k->error = -ENOMEM;
                else {
                        if (n > 0)
                                memcpy(k->response->body, body, n);
                        k->response->body[n] = '\0';
                        k->response->size = n;
                }
        }
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        call *k = userdata;

        k->error = -ETIMEDOUT;
        k->done = true;
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        call *k = userdata;

        k->done = true;
        return 0;
}

static int run(domain_client *c, const char *method, const char *path, const char *content_type, const void *body,
               size_t size, call *k, bool timeout) {
        static const H2ClientRequestCallbacks buffered = { .on_response = on_response, .on_complete = on_complete };
        static const H2ClientRequestCallbacks streamed = {
                .on_response = on_response, .on_data = on_data, .on_complete = on_complete,
        };
        _cleanup_(sd_event_source_unrefp) sd_event_source *timer = NULL, *sigint = NULL, *sigterm = NULL;
        _cleanup_h2_client_request_ H2ClientRequest *req = NULL;
        H2Header headers[3];
        size_t n = 0;
        int r;

        r = ensure_connected(c);
        if (r < 0) {
                snprintf(c->error, sizeof(c->error), "%s", strerror(-r));
                return r;
        }
        if (c->authorization)
                headers[n++] = (H2Header) { "authorization", c->authorization };
        if (content_type)
                headers[n++] = (H2Header) { "content-type", content_type };
        if (k->on_line)
                headers[n++] = (H2Header) { "accept", "application/x-ndjson" };

        if (timeout && c->timeout_usec > 0) {
                r = sd_event_add_time_relative(c->event, &timer, CLOCK_MONOTONIC, c->timeout_usec, 0, on_timer, k);
                if (r < 0)
                        return r;
        }
        if (k->on_line) {
                sigset_t blocked;

                /* sd-event takes only blocked signals; a caller that did
                 * not block them keeps their default action. */
                if (sigprocmask(SIG_SETMASK, NULL, &blocked) < 0)
                        return -errno;
                r = sigismember(&blocked, SIGINT) ? sd_event_add_signal(c->event, &sigint, SIGINT, on_signal, k) : 0;
                if (r >= 0 && sigismember(&blocked, SIGTERM))
                        r = sd_event_add_signal(c->event, &sigterm, SIGTERM, on_signal, k);
                if (r < 0)
                        return r;
        }

        r = h2_client_request(c->h2, method, path, headers, n, body, size, 0, k->on_line ? &streamed : &buffered,
                              k, &req);
        if (r < 0) {
                snprintf(c->error, sizeof(c->error), "%s", strerror(-r));
                return r;
        }
        /* The loop runs only here, until this request is over; the
         * connection stays for the next call. */
        while (!k->done) {
                r = sd_event_run(c->event, UINT64_MAX);
                if (r < 0)
                        return r;
        }
        if (!h2_client_request_is_done(req))
                (void) h2_client_request_cancel(req);

        if (k->error == -ETIMEDOUT && !c->error[0])
                snprintf(c->error, sizeof(c->error), "no answer within the timeout");
        if (k->error < 0 && c->close_error < 0)
                return c->close_error;
        if (k->error < 0 && !c->error[0])
                snprintf(c->error, sizeof(c->error), "%s", strerror(-k->error));
        return k->error;
}

/* RFC 3986 unreserved characters stay, everything else is %XX: what an
 * application/x-www-form-urlencoded value may hold. */
static int form_escape(const char *s, char **ret) {
        static const char hex[] = "0123456789ABCDEF";
        char *t, *q;

        t = malloc(strlen(s) * 3 + 1);
        if (!t)
                return -ENOMEM;
        for (q = t; *s; s++) {
                unsigned char ch = (unsigned char) *s;

                if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                    strchr("-._~", ch))
                        *q++ = (char) ch;
                else {
                        *q++ = '%';
                        *q++ = hex[ch >> 4];
                        *q++ = hex[ch & 15];
                }
        }
        *q = '\0';
        *ret = t;
        return 0;
}

/* Exchanges the admin credential for an access token with scope "admin"
 * at POST /idm/token (docs/protocol.md, IdM). The first admin request does
 * this, once per client. A refusal comes back in *ret_refusal. */
static int get_admin_token(domain_client *c, domain_response **ret_refusal) {
        _cleanup_free_ char *secret = NULL, *form = NULL;
        call k = { .client = c };
        json_t *j;
        const char *token;
        int r;

        r = form_escape(c->credential, &secret);
        if (r < 0)
                return r;
        if (asprintf(&form, "grant_type=client_credentials&client_id=admin&scope=admin&client_secret=%s", secret) < 0) {
                explicit_bzero_safe(secret, strlen(secret));
                return -ENOMEM;
        }
        explicit_bzero_safe(secret, strlen(secret));
        r = run(c, "POST", "/idm/token", "application/x-www-form-urlencoded", form, strlen(form), &k, true);
        explicit_bzero_safe(form, strlen(form));
        if (r >= 0 && !k.response)
                r = -EBADMSG;
        if (r < 0) {
                domain_response_free(k.response);
                return r;
        }
        if (k.response->status != 200) {
                *ret_refusal = k.response;
                return 0;
        }
        j = json_loadb(k.response->body, k.response->size, 0, NULL);
        token = json_string_value(json_object_get(j, "access_token"));
        r = token ? 0 : -EBADMSG;
        if (r == 0 && asprintf(&c->authorization, "Bearer %s", token) < 0) {
                c->authorization = NULL;
                r = -ENOMEM;
        }
        if (r == -EBADMSG)
                snprintf(c->error, sizeof(c->error), "the token endpoint answered without an access token");
        json_decref(j);
        domain_response_free(k.response);
        if (r == 0) {
                explicit_bzero_safe(c->credential, strlen(c->credential));
                free(c->credential);
                c->credential = NULL;
        }
        return r;
}

/* Before the first request that is not for the IdM itself. */
static int ensure_token(domain_client *c, const char *path, domain_response **ret_refusal) {
        if (!c->credential || c->authorization || strncmp(path, "/idm/", 5) == 0)
                return 0;
        return get_admin_token(c, ret_refusal);
}

int domain_client_call(domain_client *c, const char *method, const char *path, const char *content_type,
                       const void *body, size_t size, domain_response **ret) {
        domain_response *refusal = NULL;
        call k = { .client = c };
        int r;

        r = ensure_token(c, path, &refusal);
        if (r < 0)
                return r;
        if (refusal) {
                *ret = refusal;
                return 0;
        }
        r = run(c, method, path, content_type, body, size, &k, true);
        if (r >= 0 && !k.response)
                r = -EBADMSG;
        if (r < 0) {
                domain_response_free(k.response);
                return r;
        }
        *ret = k.response;
        return 0;
}

int domain_client_follow(domain_client *c, const char *path, int (*on_line)(const char *line, void *userdata),
                         void *userdata, domain_response **ret_error) {
        call k = { .client = c, .on_line = on_line, .userdata = userdata };
        domain_response *refusal = NULL;
        int r;

        r = ensure_token(c, path, &refusal);
        if (r < 0)
                return r;
        if (refusal) {
                if (ret_error)
                        *ret_error = refusal;
                else
                        domain_response_free(refusal);
                return -EBADE;
        }
        r = run(c, "GET", path, NULL, NULL, 0, &k, false);
        free(k.partial);
        if (r >= 0 && k.response && (k.response->status < 200 || k.response->status > 299)) {
                if (ret_error)
                        *ret_error = TAKE_PTR(k.response);
                domain_response_free(k.response);
                return -EBADE;
        }
        domain_response_free(k.response);
        if (r < 0)
                return r;
        return k.line_result;
}
