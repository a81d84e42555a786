/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "h2-common.h"
#include "log.h"
#include "router.h"

typedef struct route_entry {
        const route *route;
        void *userdata;
} route_entry;

struct router {
        auth *auth;
        route_entry *entries;
        size_t n_entries;
};

struct route_request {
        router *router;
        H2Request *req;
        const route_entry *entry;
        char *params[ROUTE_PARAMS_MAX];
        uint8_t *body;
        size_t body_size, body_alloc, max_body;
        bool answered;
        void *state;
        void (*free_state)(void *);
};

int router_new(auth *a, router **ret) {
        router *r;

        if (!a || !ret)
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->auth = a;
        *ret = r;
        return 0;
}

router *router_free(router *r) {
        if (!r)
                return NULL;
        free(r->entries);
        free(r);
        return NULL;
}

int router_add(router *r, const route *routes, size_t n_routes, void *userdata) {
        route_entry *e;

        if (!r || (!routes && n_routes > 0))
                return -EINVAL;
        for (size_t i = 0; i < n_routes; i++)
                if (!routes[i].method || !routes[i].pattern || routes[i].pattern[0] != '/' || !routes[i].handler ||
                    !routes[i].begin != !routes[i].chunk)
                        return -EINVAL;
        e = reallocarray(r->entries, r->n_entries + n_routes, sizeof(*e));
        if (!e)
                return -ENOMEM;
        r->entries = e;
        for (size_t i = 0; i < n_routes; i++)
                r->entries[r->n_entries++] = (route_entry) { .route = &routes[i], .userdata = userdata };
        return 0;
}

/* Segment by segment; "*" takes one non-empty segment. Captures go to
 * params (may be NULL to test only). */
static bool pattern_match(const char *pattern, const char *path, char **params) {
        size_t n_params = 0;
        const char *p = pattern, *q = path;

        for (;;) {
                const char *pe = strchrnul(p, '/'), *qe = strchrnul(q, '/');
                size_t pl = (size_t) (pe - p), ql = (size_t) (qe - q);

                if (pl == 1 && p[0] == '*') {
                        if (ql == 0 || n_params >= ROUTE_PARAMS_MAX)
                                return false;
                        if (params) {
                                params[n_params] = strndup(q, ql);
                                if (!params[n_params])
                                        return false;
                        }
                        n_params++;
                } else if (pl != ql || memcmp(p, q, pl) != 0)
                        return false;

                if (!*pe || !*qe)
                        return !*pe && !*qe;
                p = pe + 1;
                q = qe + 1;
        }
}

static void params_clear(route_request *rr) {
        for (size_t i = 0; i < ROUTE_PARAMS_MAX; i++) {
                free(rr->params[i]);
                rr->params[i] = NULL;
        }
}

static route_request *route_request_free(route_request *rr) {
        if (!rr)
                return NULL;
        if (rr->free_state)
                rr->free_state(rr->state);
        params_clear(rr);
        free(rr->body);
        h2_request_unref(rr->req);
        free(rr);
        return NULL;
}

static void on_close(H2Request *req, int error, void *userdata) {
        route_request_free(userdata);
}

H2Request *route_request_get_request(route_request *rr) {
        return rr->req;
}

const char *route_request_get_param(route_request *rr, size_t i) {
        return i < ROUTE_PARAMS_MAX ? rr->params[i] : NULL;
}

const uint8_t *route_request_get_body(route_request *rr, size_t *ret_size) {
        if (ret_size)
                *ret_size = rr->body_size;
        return rr->body ?: (const uint8_t *) "";
}

void route_request_set_state(route_request *rr, void *state, void (*free_state)(void *)) {
        if (rr->free_state && rr->state != state)
                rr->free_state(rr->state);
        rr->state = state;
        rr->free_state = free_state;
}

void *route_request_get_state(route_request *rr) {
        return rr->state;
}

bool route_request_is_answered(route_request *rr) {
        return rr->answered;
}

void route_request_mark_answered(route_request *rr) {
        rr->answered = true;
}

int route_respond_json(route_request *rr, int status, json_t *body, const H2Header *headers, size_t n_headers) {
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ H2Header *all = NULL;

        text = json_dumps(body, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        all = calloc(n_headers + 1, sizeof(H2Header));
        if (!all)
                return -ENOMEM;
        all[0] = (H2Header) { "content-type", "application/json" };
        if (n_headers > 0)
                memcpy(all + 1, headers, n_headers * sizeof(H2Header));
        rr->answered = true;
        return h2_request_respond(rr->req, status, all, n_headers + 1, text, strlen(text));
}

int route_respond_empty(route_request *rr, int status, const H2Header *headers, size_t n_headers) {
        rr->answered = true;
        return h2_request_respond(rr->req, status, headers, n_headers, NULL, 0);
}

static int respond_error_headers(route_request *rr, int status, const H2Header *headers, size_t n_headers,
                                 const char *description) {
        _cleanup_free_ char *body = NULL;
        H2Header all[4];
        int r;

        r = h2_json_error_body(status, description, &body);
        if (r < 0)
                return r;
        all[0] = (H2Header) { "content-type", "application/json" };
        for (size_t i = 0; i < n_headers && i + 1 < ELEMENTSOF(all); i++)
                all[i + 1] = headers[i];
        rr->answered = true;
        return h2_request_respond(rr->req, status, all, MIN(n_headers + 1, ELEMENTSOF(all)), body, (size_t) r);
}

int route_respond_error(route_request *rr, int status, const char *format, ...) {
        _cleanup_free_ char *description = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&description, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return respond_error_headers(rr, status, NULL, 0, description);
}

/* --- query strings ---------------------------------------------------------- */

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decodes n bytes of s; a %00 or a bad escape is -EINVAL. */
static int percent_decode(const char *s, size_t n, char **ret) {
        _cleanup_free_ char *d = malloc(n + 1);
        size_t j = 0;

        if (!d)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%') {
                        int hi, lo;

                        if (i + 2 >= n)
                                return -EINVAL;
                        hi = unhex(s[i + 1]);
                        lo = unhex(s[i + 2]);
                        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                                return -EINVAL;
                        d[j++] = (char) (hi * 16 + lo);
                        i += 2;
                } else
                        d[j++] = s[i] == '+' ? ' ' : s[i];
        }
        d[j] = '\0';
        *ret = TAKE_PTR(d);
        return 0;
}

/* Calls fn for each name=value pair (raw, not decoded). */
static int query_foreach(const char *q, int (*fn)(const char *name, size_t nl, const char *value, size_t vl,
                                                  void *userdata),
                         void *userdata) {
        while (q && *q) {
                const char *end = strchrnul(q, '&'), *eq = memchr(q, '=', (size_t) (end - q));
                int r;

                if (end > q) {
                        if (eq)
                                r = fn(q, (size_t) (eq - q), eq + 1, (size_t) (end - eq - 1), userdata);
                        else
                                r = fn(q, (size_t) (end - q), end, 0, userdata);
                        if (r != 0)
                                return r;
                }
                q = *end ? end + 1 : end;
        }
        return 0;
}

typedef struct query_get {
        const char *name;
        const char *value;
        size_t len;
        unsigned count;
} query_get;

static int query_get_one(const char *name, size_t nl, const char *value, size_t vl, void *userdata) {
        query_get *g = userdata;

        if (strlen(g->name) == nl && memcmp(name, g->name, nl) == 0) {
                g->value = value;
                g->len = vl;
                g->count++;
        }
        return 0;
}

int route_query_get(route_request *rr, const char *name, char **ret) {
        query_get g = { .name = name };

        if (!rr || !name || !ret)
                return -EINVAL;
        (void) query_foreach(h2_request_get_query(rr->req), query_get_one, &g);
        if (g.count == 0)
                return -ENOENT;
        if (g.count > 1)
                return -EINVAL;
        return percent_decode(g.value, g.len, ret);
}

static int query_check_one(const char *name, size_t nl, const char *value, size_t vl, void *userdata) {
        const char *const *allowed = userdata;

        for (; *allowed; allowed++)
                if (strlen(*allowed) == nl && memcmp(name, *allowed, nl) == 0)
                        return 0;
        return -EINVAL;
}

int route_query_check_allowed(route_request *rr, const char *const *allowed) {
        if (!rr || !allowed)
                return -EINVAL;
        return query_foreach(h2_request_get_query(rr->req), query_check_one, (void *) allowed);
}

/* --- dispatch ------------------------------------------------------------------ */

static void dispatch_result(route_request *rr, int r) {
        if (r < 0 && !rr->answered && !h2_request_is_closed(rr->req)) {
                log_debug_errno(r, "%s %s: handler failed: %m", h2_request_get_method(rr->req),
                                h2_request_get_path(rr->req));
                (void) respond_error_headers(rr, 500, NULL, 0, "internal error");
        }
}

static int on_body_chunk(H2Request *req, const uint8_t *data, size_t size, void *userdata) {
        route_request *rr = userdata;
        const route *rt = rr->entry->route;

        if (rr->answered || size == 0)
                return 0;
        if (rt->chunk) {
                dispatch_result(rr, rt->chunk(rr, data, size, rr->entry->userdata));
                return 0;
        }
        if (size > rr->max_body - rr->body_size) {
                (void) route_respond_error(rr, 413, "request body too large (limit %zu bytes)", rr->max_body);
                free(rr->body);
                rr->body = NULL;
                rr->body_size = rr->body_alloc = 0;
                return 0;
        }
        if (rr->body_size + size + 1 > rr->body_alloc) {
                size_t a = MAX(rr->body_alloc * 2, rr->body_size + size + 1);
                uint8_t *p = realloc(rr->body, a);

                if (!p)
                        return -ENOMEM;
                rr->body = p;
                rr->body_alloc = a;
        }
        memcpy(rr->body + rr->body_size, data, size);
        rr->body_size += size;
        rr->body[rr->body_size] = 0; /* handlers may treat a JSON body as a string */
        return 0;
}

static int on_body_end(H2Request *req, void *userdata) {
        route_request *rr = userdata;

        if (rr->answered)
                return 0;
        dispatch_result(rr, rr->entry->route->handler(rr, rr->entry->userdata));
        return 0;
}

static int append_allow(char **allow, const char *method) {
        char *n;

        if (*allow && (strstr(*allow, method) != NULL))
                return 0;
        if (asprintf(&n, "%s%s%s", *allow ?: "", *allow ? ", " : "", method) < 0)
                return -ENOMEM;
        free(*allow);
        *allow = n;
        return 0;
}

static int on_headers(H2Request *req, void *userdata) {
        router *r = userdata;
        const char *method = h2_request_get_method(req), *path = h2_request_get_path(req), *cl;
        _cleanup_free_ char *allow = NULL;
        const route_entry *found = NULL;
        route_request *rr;
        int k;

        if (!method || !path || path[0] != '/')
                return h2_request_respond_error(req, 400, "bad request path");

        for (size_t i = 0; i < r->n_entries; i++) {
                const route_entry *e = &r->entries[i];

                if (!pattern_match(e->route->pattern, path, NULL))
                        continue;
                if (streq(e->route->method, method)) {
                        found = e;
                        break;
                }
                if (append_allow(&allow, e->route->method) < 0)
                        return -ENOMEM;
        }

        rr = calloc(1, sizeof(*rr));
        if (!rr)
                return -ENOMEM;
        rr->router = r;
        rr->req = h2_request_ref(req);
        rr->entry = found;
        k = h2_request_set_close_handler(req, on_close, rr);
        if (k < 0) {
                route_request_free(rr);
                return k;
        }

        if (!found) {
                if (allow)
                        return respond_error_headers(rr, 405, (const H2Header[]) { { "allow", allow } }, 1,
                                                     "method not allowed");
                return respond_error_headers(rr, 404, NULL, 0, "not found");
        }
        if (!pattern_match(found->route->pattern, path, rr->params)) {
                params_clear(rr);
                return -ENOMEM;
        }

        if (found->route->flags & ROUTE_ADMIN) {
                const char *why = NULL;

                k = auth_check(r->auth, req, AUTH_SCOPE_ADMIN, &why);
                if (k == -EPERM)
                        return respond_error_headers(
                                rr, 403,
                                (const H2Header[]) { { "www-authenticate",
                                                       "Bearer realm=\"rethink-domain\", error=\"insufficient_scope\", scope=\"admin\"" } },
                                1, why ?: "forbidden");
                if (k == -ENOMEM)
                        return k;
                if (k < 0)
                        return respond_error_headers(
                                rr, 401, (const H2Header[]) { { "www-authenticate", "Bearer realm=\"rethink-domain\"" } },
                                1, why ?: "unauthorized");
        }

        rr->max_body = found->route->max_body ?: ROUTE_BODY_DEFAULT_MAX;
        cl = h2_request_get_header(req, "content-length");
        if (!found->route->chunk && cl) {
                char *end;
                unsigned long long v;

                errno = 0;
                v = strtoull(cl, &end, 10);
                if (errno == 0 && end != cl && *end == '\0' && v > rr->max_body)
                        return route_respond_error(rr, 413, "request body too large (limit %zu bytes)", rr->max_body);
        }

        k = h2_request_stream_body(req, on_body_chunk, on_body_end, rr);
        if (k < 0)
                return k;
        if (found->route->begin)
                dispatch_result(rr, found->route->begin(rr, found->userdata));
        return 0;
}

void router_attach(router *r, H2Server *s) {
        h2_server_set_headers_handler(s, on_headers, r);
}
