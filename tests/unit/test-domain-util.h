/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the domain suites: a real rethink-domain (store, router,
 * services, HTTP/2 server) in this process on 127.0.0.1 with a fresh state
 * directory, and our HTTP/2 client on the same event loop. */

#include <ftw.h>
#include <jansson.h>
#include <stdarg.h>

#include "descriptor.h"
#include "domain-config.h"
#include "domain.h"
#include "encoding.h"
#include "fileio.h"
#include "h2-test-util.h"
#include "id.h"
#include "sha256.h"
#include "sign.h"
#include "tests.h"

#define DT_ADMIN_TOKEN "test-admin-credential-0123456789"

/* "Bearer <admin access token>" of the domain last started, for
 * dt_admin(): admin routes take IdM tokens, not the credential. */
static char dt_admin_authorization[4096];

typedef struct DomainTest {
        char dir[64];
        char state[128];
        sd_event *event;
        domain *domain;
        H2Client *client;
        H2TestConn conn;
        sign_key *publisher;
        char publisher_b64[64];
        char *extra_config;
} DomainTest;

static inline int dt_rm(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

/* Asks the domain's IdM for an admin access token with the credential,
 * as rethinkctl does, into dt_admin_authorization. */
static inline int dt_fetch_admin_token(DomainTest *t) {
        static const char form[] = "grant_type=client_credentials&client_id=admin&client_secret=" DT_ADMIN_TOKEN;
        H2TestFetch f = {};
        json_t *j;
        const char *token;
        int r;

        r = h2_client_request(t->client, "POST", "/idm/token",
                              (const H2Header[]) { { "content-type", "application/x-www-form-urlencoded" } }, 1, form,
                              strlen(form), 0, h2_test_fetch_callbacks(false), &f, &f.req);
        if (r < 0)
                return r;
        if (!h2_test_run_until(t->event, &f.done, 30) || f.status != 200) {
                h2_test_fetch_done(&f);
                return -EACCES;
        }
        j = f.body ? json_loadb((const char *) f.body, f.size, 0, NULL) : NULL;
        token = json_string_value(json_object_get(j, "access_token"));
        r = token && snprintf(dt_admin_authorization, sizeof(dt_admin_authorization), "Bearer %s", token) <
                                     (int) sizeof(dt_admin_authorization)
                    ? 0
                    : -EBADMSG;
        json_decref(j);
        h2_test_fetch_done(&f);
        return r;
}

/* Starts a domain whose configuration is the test defaults plus extra
 * (INI text, may be NULL). Returns 0 or negative errno. */
static inline int dt_start_domain(DomainTest *t) {
        _cleanup_domain_config_ domain_config *args = NULL, *config = NULL;
        _cleanup_free_ char *text = NULL, *error = NULL, *token_path = NULL;
        int r;

        if (asprintf(&token_path, "%s/admin-token", t->dir) < 0)
                return -ENOMEM;
        if (asprintf(&text,
                     "[Domain]\nStateDirectory=%s\n[HTTP]\nListen=127.0.0.1\nPort=0\n"
                     "[Admin]\nTokenFile=%s\n[Catalogue]\nTrustedPublishers=%s\n%s",
                     t->state, token_path, t->publisher_b64, t->extra_config ?: "") < 0)
                return -ENOMEM;
        r = domain_config_new(&args);
        if (r < 0)
                return r;
        r = domain_config_load_string(args, "test.conf", text, &config, &error);
        if (r < 0) {
                fprintf(stderr, "config: %s\n", strna(error));
                return r;
        }
        r = domain_new(t->event, config, &t->domain);
        if (r < 0)
                return r;
        TAKE_PTR(config);
        r = domain_start(t->domain);
        if (r < 0)
                return r;
        r = h2_client_new(t->event, "127.0.0.1", (uint16_t) domain_get_port(t->domain), NULL, NULL, NULL,
                          h2_test_conn_callbacks(), &t->conn, &t->client);
        if (r < 0)
                return r;
        /* t->client speaks h2c; a TLS domain's suite gets its own token. */
        return t->extra_config && strstr(t->extra_config, "Certificate=") ? 0 : dt_fetch_admin_token(t);
}

static inline void dt_stop_domain(DomainTest *t) {
        t->client = h2_client_unref(t->client);
        t->domain = domain_free(t->domain);
        h2_test_run_for(t->event, 1000);
}

static inline int dt_setup(DomainTest *t, const char *extra_config) {
        _cleanup_free_ char *token_path = NULL, *b64 = NULL;
        int r;

        memset(t, 0, sizeof(*t));
        snprintf(t->dir, sizeof(t->dir), "/tmp/domain-test-XXXXXX");
        if (!mkdtemp(t->dir))
                return -errno;
        snprintf(t->state, sizeof(t->state), "%s/state", t->dir);
        if (asprintf(&token_path, "%s/admin-token", t->dir) < 0)
                return -ENOMEM;
        r = write_file_atomic(token_path, DT_ADMIN_TOKEN "\n", strlen(DT_ADMIN_TOKEN) + 1, 0600);
        if (r < 0)
                return r;
        r = sign_key_generate(&t->publisher);
        if (r < 0)
                return r;
        r = sign_key_get_public_base64url(t->publisher, &b64);
        if (r < 0)
                return r;
        snprintf(t->publisher_b64, sizeof(t->publisher_b64), "%s", b64);
        t->extra_config = extra_config ? strdup(extra_config) : NULL;
        r = sd_event_new(&t->event);
        if (r < 0)
                return r;
        return dt_start_domain(t);
}

static inline void dt_teardown(DomainTest *t) {
        dt_stop_domain(t);
        t->event = sd_event_unref(t->event);
        t->publisher = sign_key_free(t->publisher);
        free(t->extra_config);
        if (t->dir[0])
                (void) nftw(t->dir, dt_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* One request, run to completion. auth: add the admin credential. */
static inline void dt_request(DomainTest *t, H2TestFetch *f, const char *method, const char *path,
                              const H2Header *headers, size_t n_headers, const void *body, size_t size) {
        int r;

        memset(f, 0, sizeof(*f));
        r = h2_client_request(t->client, method, path, headers, n_headers, body, size, 0,
                              h2_test_fetch_callbacks(false), f, &f->req);
        CU_ASSERT_EQUAL_FATAL(r, 0);
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(t->event, &f->done, 30));
        CU_ASSERT_EQUAL(f->error, 0);
}

/* The authorization header of an admin: its access token. */
static inline const H2Header *dt_admin(void) {
        static H2Header h[1];

        h[0] = (H2Header) { "authorization", dt_admin_authorization };
        return h;
}

/* The credential itself, which admin routes refuse. */
static inline const H2Header *dt_admin_credential(void) {
        static const H2Header h[] = { { "authorization", "Bearer " DT_ADMIN_TOKEN } };
        return h;
}

/* The JSON body of a finished fetch (to be decref'd), NULL if not JSON. */
static inline json_t *dt_json(const H2TestFetch *f) {
        return f->body ? json_loadb((const char *) f->body, f->size, 0, NULL) : NULL;
}

/* True when the body is {"code": status, "description": "...part..."}. */
static inline bool dt_is_error(const H2TestFetch *f, int status, const char *part) {
        json_t *j = dt_json(f);
        bool ok;

        ok = f->status == status && j && json_integer_value(json_object_get(j, "code")) == status &&
             json_is_string(json_object_get(j, "description")) &&
             (!part || strstr(json_string_value(json_object_get(j, "description")), part)) &&
             streq(f->content_type, "application/json");
        if (!ok)
                fprintf(stderr, "expected %d \"%s\", got %d: %.*s\n", status, strna(part), f->status, (int) f->size,
                        f->body ? (char *) f->body : "");
        json_decref(j);
        return ok;
}

static inline const char *dt_json_str(json_t *j, const char *key) {
        return json_string_value(json_object_get(j, key));
}
