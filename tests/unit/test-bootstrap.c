/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The M2M device bootstrap end to end, in one process and one sd-event
 * loop over real HTTP/2 and SQLite: the domain's store, Catalogue, device
 * management, IdM, Messaging Service and bootstrap orders behind one
 * router and server; the device's identity, registration, messaging
 * session, software manager and domain-orders module as the agent wires
 * them. A signed package is published, the device registers and is
 * claimed, an admin bootstraps it and follows the results live, and the
 * steps of the procedure are checked as far as they apply. */
#include <ftw.h>

#include <sys/socket.h>
#include <sys/un.h>

#include "auth.h"
#include "bootstrap.h"
#include "catalogue.h"
#include "control.h"
#include "dm.h"
#include "domain-orders.h"
#include "encoding.h"
#include "gate.h"
#include "h2-test-util.h"
#include "identity.h"
#include "idm.h"
#include "msg.h"
#include "registration-session.h"
#include "registration.h"
#include "router.h"
#include "sha256.h"
#include "sign.h"
#include "store.h"
#include "swmgr-control.h"
#include "swmgr.h"
#include "tests.h"

#define DOMAIN "example.org"
#define ADMIN_TOKEN "test-admin-credential-0123456789"
#define DM_PRINCIPAL "dm:" DOMAIN
#define DM_ADDRESS "domain://catalogue." DOMAIN "/dm"

typedef struct Fixture {
        char dir[48], dstate[80], astate[80];
        sd_event *event;

        /* the domain */
        db *db;
        auth *auth;
        router *router;
        catalogue *catalogue;
        dm *dm;
        idm *idm;
        msg *msg;
        bootstrap *bootstrap;
        H2Server *server;
        int port;
        H2Client *admin;
        H2TestConn conn;
        sign_key *publisher;
        char *publisher_b64;

        /* the device */
        identity *id;
        gates *gates;
        registration *reg;
        reg_session *session;
        swmgr *swmgr;
        domain_orders *orders;
        control_server *control;
        char control_path[100];
} Fixture;

static Fixture F;

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

/* The IdM asks device management whether the device is claimed. The DM
 * record holds the device's Ed25519 key only, and the IdM needs its P-256
 * token key, which registration does not send yet: that one comes from
 * the device's identity here. */
static int device_lookup(const char *endpoint, char **ret_public_key, bool *ret_claimed, void *userdata) {
        _cleanup_(json_decrefp) json_t *dev = NULL;
        int r;

        r = dm_get_device(F.dm, endpoint, &dev);
        if (r < 0)
                return r;
        if (!F.id || !streq(endpoint, identity_get_endpoint(F.id)))
                return -ENOENT;
        *ret_claimed = json_is_true(json_object_get(dev, "claimed"));
        return token_key_to_jwk(identity_get_token_key(F.id), ret_public_key);
}

static int bearer(H2Request *req, const char *scope, char **ret_subject, const char **ret_reason, void *userdata) {
        _cleanup_token_claims_ token_claims *c = NULL;
        int r;

        r = idm_check_bearer(F.idm, req, scope, &c, ret_reason);
        if (r < 0)
                return r;
        *ret_subject = strdup(token_claims_get_subject(c));
        return *ret_subject ? 0 : -ENOMEM;
}

/* Admin routes take an admin access token of the IdM, not the credential. */
static char admin_authorization[4096];
static const H2Header admin_auth[] = { { "authorization", admin_authorization } };

static int admin_token_refresh(void) {
        _cleanup_free_ char *token = NULL;
        int r;

        r = idm_issue(F.idm, IDM_ADMIN_SUBJECT, IDM_SCOPE_ADMIN, USEC_PER_HOUR, &token);
        if (r < 0)
                return r;
        snprintf(admin_authorization, sizeof(admin_authorization), "Bearer %s", token);
        return 0;
}

static int domain_start(void) {
        _cleanup_free_ char *reason = NULL;
        char *keys[2] = { F.publisher_b64, NULL };
        int r;

        r = store_open(F.dstate, &F.db, &reason);
        if (r < 0)
                return r;
        r = auth_new(&F.auth);
        if (r >= 0)
                r = auth_set_admin_token(F.auth, ADMIN_TOKEN);
        if (r >= 0)
                r = router_new(F.auth, &F.router);
        if (r >= 0)
                r = catalogue_new(F.event, F.db, F.dstate, &F.catalogue);
        if (r >= 0)
                r = catalogue_set_trusted_publishers(F.catalogue, keys);
        if (r >= 0)
                r = dm_new(F.event, F.db, &F.dm);
        if (r >= 0)
                r = dm_start(F.dm);
        if (r >= 0)
                r = idm_new(F.dstate, DOMAIN, &F.idm);
        if (r < 0)
                return r;
        idm_set_device_lookup(F.idm, device_lookup, NULL);
        auth_set_idm(F.auth, F.idm);
        r = admin_token_refresh();
        if (r < 0)
                return r;
        r = msg_new(F.event, DOMAIN, F.dstate, &F.msg);
        if (r < 0)
                return r;
        msg_set_auth(F.msg, bearer, NULL);
        r = bootstrap_new(F.event, DOMAIN, F.dstate, F.catalogue, F.dm, F.msg, &F.bootstrap);
        if (r >= 0)
                r = catalogue_add_routes(F.catalogue, F.router);
        if (r >= 0)
                r = dm_add_routes(F.dm, F.router);
        if (r >= 0)
                r = idm_add_routes(F.idm, F.router);
        if (r >= 0)
                r = msg_add_routes(F.msg, F.router);
        if (r >= 0)
                r = bootstrap_add_routes(F.bootstrap, F.router);
        if (r >= 0)
                r = h2_server_new(F.event, NULL, NULL, &F.server);
        if (r < 0)
                return r;
        router_attach(F.router, F.server);
        r = h2_server_listen(F.server, "127.0.0.1", 0);
        if (r < 0)
                return r;
        F.port = h2_server_get_port(F.server);
        return h2_client_new(F.event, "127.0.0.1", (uint16_t) F.port, NULL, NULL, NULL, h2_test_conn_callbacks(),
                             &F.conn, &F.admin);
}

static uint64_t fixed_random(void *userdata) {
        return UINT64_MAX / 2;
}

static void on_domain_message(const rt_message *m, void *userdata) {
        domain_orders_handle_message(F.orders, m);
}

/* The agent's pieces, as daemon/agent.c wires them. */
static int device_start(void) {
        char url[64];
        int r;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d", F.port);
        r = identity_load(F.astate, "bootstrap-test-device", &F.id);
        if (r >= 0)
                r = gates_new(&F.gates);
        if (r < 0)
                return r;
        gates_update(F.gates, QOS_ONLINE, false, false);
        r = swmgr_new(F.event, F.gates,
                      &(swmgr_options) {
                              .state_dir = F.astate,
                              .catalogue_url = url,
                              .retry_initial = 20 * USEC_PER_MSEC,
                              .retry_max = 50 * USEC_PER_MSEC,
                              .retry_attempts = 2,
                      },
                      &F.swmgr);
        if (r >= 0)
                r = swmgr_add_trusted_publisher(F.swmgr, "test", F.publisher_b64);
        if (r >= 0)
                r = swmgr_start(F.swmgr);
        /* rethinkctl's way in: the control socket with the software
         * commands. */
        snprintf(F.control_path, sizeof(F.control_path), "%s/control.sock", F.astate);
        if (r >= 0)
                r = control_server_new(F.event, F.control_path, &F.control);
        if (r >= 0)
                r = swmgr_control_register(F.control, F.swmgr);
        if (r >= 0)
                r = registration_new(F.event, F.id, F.gates,
                                     &(registration_options) {
                                             .url = url,
                                             .storage_path = F.astate,
                                             .retry_initial_usec = 50 * USEC_PER_MSEC,
                                             .retry_max_usec = 200 * USEC_PER_MSEC,
                                             .random = fixed_random,
                                     },
                                     &F.reg);
        if (r >= 0)
                r = reg_session_new(F.event, F.id, F.gates,
                                    &(reg_session_options) {
                                            .url = url,
                                            .domain_name = DOMAIN,
                                            .state_dir = F.astate,
                                            .retry_initial_usec = 50 * USEC_PER_MSEC,
                                            .retry_max_usec = 200 * USEC_PER_MSEC,
                                            .random = fixed_random,
                                    },
                                    &F.session);
        if (r >= 0)
                r = domain_orders_new(F.swmgr, F.session, DOMAIN, &F.orders);
        if (r < 0)
                return r;
        reg_session_set_message_handler(F.session, on_domain_message, NULL);
        return registration_start(F.reg);
}

static bool run_until(bool (*cond)(void), unsigned limit_sec) {
        uint64_t deadline = h2_test_now_usec() + (uint64_t) limit_sec * 1000000ULL;

        while (!cond() && h2_test_now_usec() < deadline)
                if (sd_event_run(F.event, 100000) < 0)
                        break;
        return cond();
}

static bool registered(void) {
        return registration_get_state(F.reg) == REGISTRATION_REGISTERED;
}

static bool streaming(void) {
        return reg_session_get_state(F.session) == REG_SESSION_STREAMING && msg_get_n_sessions(F.msg) > 0;
}

static void setup(void) {
        memset(&F, 0, sizeof(F));
        snprintf(F.dir, sizeof(F.dir), "/tmp/test-bootstrap-XXXXXX");
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(F.dir));
        snprintf(F.dstate, sizeof(F.dstate), "%s/domain", F.dir);
        snprintf(F.astate, sizeof(F.astate), "%s/agent", F.dir);
        CU_ASSERT_EQUAL_FATAL(mkdir(F.dstate, 0700), 0);
        CU_ASSERT_EQUAL_FATAL(mkdir(F.astate, 0700), 0);
        CU_ASSERT_EQUAL_FATAL(sd_event_new(&F.event), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&F.publisher), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_get_public_base64url(F.publisher, &F.publisher_b64), 0);
        CU_ASSERT_EQUAL_FATAL(domain_start(), 0);
        /* Steps 1-2: the agent starts and registers with the Catalogue. */
        CU_ASSERT_EQUAL_FATAL(device_start(), 0);
        CU_ASSERT_TRUE_FATAL(run_until(registered, 30));
}

static void teardown(void) {
        F.control = control_server_free(F.control);
        F.orders = domain_orders_free(F.orders);
        F.session = reg_session_free(F.session);
        F.reg = registration_free(F.reg);
        F.swmgr = swmgr_free(F.swmgr);
        F.gates = gates_free(F.gates);
        F.id = identity_free(F.id);
        F.admin = h2_client_unref(F.admin);
        F.server = h2_server_free(F.server);
        F.bootstrap = bootstrap_free(F.bootstrap);
        F.msg = msg_free(F.msg);
        F.idm = idm_free(F.idm);
        F.dm = dm_free(F.dm);
        F.catalogue = catalogue_free(F.catalogue);
        F.router = router_free(F.router);
        F.auth = auth_free(F.auth);
        F.db = db_close(F.db);
        h2_test_run_for(F.event, 100000);
        F.event = sd_event_unref(F.event);
        F.publisher = sign_key_free(F.publisher);
        free(F.publisher_b64);
        (void) nftw(F.dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- admin helpers ------------------------------------------------------------------ */


static void request(H2TestFetch *f, const char *method, const char *path, const void *body, size_t size) {
        memset(f, 0, sizeof(*f));
        CU_ASSERT_EQUAL_FATAL(h2_client_request(F.admin, method, path, admin_auth, 1, body, size, 0,
                                                h2_test_fetch_callbacks(false), f, &f->req),
                              0);
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(F.event, &f->done, 30));
        CU_ASSERT_EQUAL(f->error, 0);
}

/* status, and the JSON answer in *ret (may be NULL). */
static int call(const char *method, const char *path, const char *body, json_t **ret) {
        H2TestFetch f;
        int status;

        request(&f, method, path, body, body ? strlen(body) : 0);
        status = f.status;
        if (ret)
                *ret = f.body ? json_loadb((const char *) f.body, f.size, 0, NULL) : NULL;
        if (status >= 400)
                fprintf(stderr, "%s %s -> %d %s\n", method, path, status, f.body ? (char *) f.body : "");
        h2_test_fetch_done(&f);
        return status;
}

static bool error_names(json_t *j, const char *part) {
        const char *d = json_string_value(json_object_get(j, "description"));

        return d && strstr(d, part);
}

/* Uploads a signed script package and publishes its descriptor; extra is
 * JSON text merged into the descriptor (may be NULL). */
static void publish(const char *kind, const char *name, const char *script, const char *extra) {
        uint8_t d[SHA256_DIGEST_SIZE], sig[SIGN_SIGNATURE_SIZE];
        _cleanup_free_ char *sig64 = NULL, *desc = NULL, *pkg = NULL;
        char hex[SHA256_HEX_SIZE], path[128];
        H2TestFetch f;

        CU_ASSERT_FATAL(asprintf(&pkg, "#!/bin/sh\n%s\n", script) > 0);
        CU_ASSERT_EQUAL_FATAL(sha256_buffer(pkg, strlen(pkg), d), 0);
        sha256_to_hex(d, hex);
        CU_ASSERT_EQUAL_FATAL(sign_digest(F.publisher, d, sig), 0);
        CU_ASSERT_EQUAL_FATAL(base64url_encode(sig, sizeof(sig), &sig64), 0);
        snprintf(path, sizeof(path), "/admin/catalogue/packages/%s", hex);
        request(&f, "PUT", path, pkg, strlen(pkg));
        CU_ASSERT_TRUE_FATAL(f.status == 201 || f.status == 200);
        h2_test_fetch_done(&f);
        CU_ASSERT_FATAL(asprintf(&desc,
                                 "{\"type\":\"%s\",\"objectName\":\"%s\",\"version\":\"1.0.0\",%s"
                                 "\"sha256\":\"%s\",\"signature\":\"%s\",\"publisher\":\"%s\"%s%s}",
                                 kind, name, streq(kind, "hyperty") ? "\"hypertyType\":[\"context\"]," : "", hex, sig64,
                                 F.publisher_b64, extra ? "," : "", extra ?: "") > 0);
        CU_ASSERT_EQUAL_FATAL(call("POST", "/admin/catalogue/descriptors", desc, NULL), 201);
}

static const char *endpoint(void) {
        return identity_get_endpoint(F.id);
}

static int device_call(const char *method, const char *what, const char *body, json_t **ret) {
        char path[256];

        snprintf(path, sizeof(path), "/admin/devices/%s%s", endpoint(), what);
        return call(method, path, body, ret);
}

static void claim_and_connect(void) {
        CU_ASSERT_EQUAL_FATAL(device_call("POST", "/claim", NULL, NULL), 200);
        CU_ASSERT_EQUAL_FATAL(reg_session_start(F.session), 0);
        CU_ASSERT_TRUE_FATAL(run_until(streaming, 30));
}

/* The domain's record of component name on the device (to be decref'd). */
static json_t *domain_component(const char *name) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        json_t *c;
        size_t i;

        if (device_call("GET", "/components", NULL, &j) != 200)
                return NULL;
        json_array_foreach(json_object_get(j, "components"), i, c)
                if (streq_ptr(json_string_value(json_object_get(c, "name")), name))
                        return json_incref(c);
        return NULL;
}

static const char *want_name, *want_state;
static bool want_active;
static bool domain_has_state(void) {
        _cleanup_(json_decrefp) json_t *c = domain_component(want_name);

        return c && streq_ptr(json_string_value(json_object_get(c, "state")), want_state) &&
               (!want_active || json_is_true(json_object_get(c, "active")));
}

static bool wait_domain_state(const char *name, const char *state, bool active) {
        want_name = name;
        want_state = state;
        want_active = active;
        /* Each check is an HTTP request on the loop: it also lets the
         * device and the domain make progress. */
        for (unsigned i = 0; i < 300; i++) {
                if (domain_has_state())
                        return true;
                h2_test_run_for(F.event, 100000);
        }
        fprintf(stderr, "component %s never reached %s on the domain\n", name, state);
        return false;
}

static void start_events(H2TestFetch *f) {
        memset(f, 0, sizeof(*f));
        f->stream = true;
        CU_ASSERT_EQUAL_FATAL(h2_client_request(F.admin, "GET", "/admin/events", admin_auth, 1, NULL, 0, 0,
                                                h2_test_fetch_callbacks(true), f, &f->req),
                              0);
}

static bool events_have(const H2TestFetch *f, const char *part) {
        return f->body && strstr((const char *) f->body, part);
}

/* --- tests ------------------------------------------------------------------------- */

static void test_bootstrap_confirm_activate(void) {
        _cleanup_(json_decrefp) json_t *j = NULL, *c = NULL, *comp = NULL;
        H2TestFetch ev;
        json_t *acl;
        swm_state st;
        int result;

        setup();
        publish("hyperty", "thermometer", "exec sleep 1000", NULL);

        /* Steps 3-4: Alice sees the new device. */
        CU_ASSERT_EQUAL(call("GET", "/admin/devices", NULL, &j), 200);
        {
                _cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

                CU_ASSERT_PTR_NOT_NULL(strstr(strempty(text), endpoint()));
        }
        json_decref(TAKE_PTR(j));
        claim_and_connect();

        /* Alice follows the results live. */
        start_events(&ev);
        h2_test_run_for(F.event, 100000);
        CU_ASSERT_TRUE(ev.got_response && ev.status == 200);
        CU_ASSERT_STRING_EQUAL(ev.content_type, "application/x-ndjson");
        CU_ASSERT_EQUAL(bootstrap_get_n_watchers(F.bootstrap), 1u);

        /* Step 5: the bootstrap order. */
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"application\":\"thermometer\",\"hyperties\":[\"thermometer\"]}",
                                    &j),
                        202);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "orders")), 1u);
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(json_array_get(json_object_get(j, "orders"), 0), "status"))),
                               "sent");
        json_decref(TAKE_PTR(j));

        /* Steps 6-9 and 12: the device downloads and verifies; the domain
         * records DOWNLOADED and DELIVERED with their result codes. */
        CU_ASSERT_TRUE_FATAL(wait_domain_state("thermometer", "DELIVERED", false));
        CU_ASSERT_EQUAL(swmgr_get_state(F.swmgr, "thermometer", &st, &result), 0);
        CU_ASSERT_EQUAL(st, SWM_DELIVERED);
        comp = domain_component("thermometer");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(comp, "result")), SWM_RESULT_DOWNLOADED);
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(comp, "resultText"))), "downloaded");
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(comp, "type"))), "hyperty");
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(comp, "version"))), "1.0.0");
        /* The device accepted the install order (201, a create). */
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(json_object_get(comp, "lastOrder"), "status"))),
                               "accepted");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(comp, "lastOrder"), "code")), 201);
        json_decref(TAKE_PTR(comp));

        /* Steps 10-11: the ACL names the DM principal. */
        CU_ASSERT_EQUAL(swmgr_get(F.swmgr, DM_PRINCIPAL, "thermometer", &c, NULL), 0);
        acl = json_object_get(c, "acl");
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(acl, "owner"))), DM_PRINCIPAL);
        CU_ASSERT_PTR_NOT_NULL(json_object_get(json_object_get(acl, "entries"), DM_PRINCIPAL));
        json_decref(TAKE_PTR(c));

        /* The live stream saw the transitions, and the domain still answers
         * other requests while it is open. */
        h2_test_run_for(F.event, 200000);
        CU_ASSERT_TRUE(events_have(&ev, "\"state\":\"DOWNLOADED\""));
        CU_ASSERT_TRUE(events_have(&ev, "\"state\":\"DELIVERED\""));
        CU_ASSERT_TRUE(events_have(&ev, "\"event\":\"order\""));
        CU_ASSERT_FALSE(ev.done);
        CU_ASSERT_EQUAL(device_call("GET", "/orders", NULL, &j), 200);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "orders")), 1u);
        json_decref(TAKE_PTR(j));

        /* Step 13: consent; steps 14-15: run it; step 16: Alice hears. */
        CU_ASSERT_EQUAL(device_call("POST", "/components/thermometer/confirm", NULL, &j), 202);
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(j, "order"))), "confirm");
        json_decref(TAKE_PTR(j));
        CU_ASSERT_TRUE_FATAL(wait_domain_state("thermometer", "INSTALLED", false));
        CU_ASSERT_EQUAL(swmgr_get_state(F.swmgr, "thermometer", &st, &result), 0);
        CU_ASSERT_EQUAL(st, SWM_INSTALLED);
        CU_ASSERT_EQUAL(result, SWM_RESULT_INSTALLED);
        CU_ASSERT_EQUAL(device_call("POST", "/components/thermometer/activate", NULL, NULL), 202);
        CU_ASSERT_TRUE_FATAL(wait_domain_state("thermometer", "INSTALLED", true));
        CU_ASSERT_TRUE(swmgr_get_pid(F.swmgr, "thermometer") > 0);
        h2_test_run_for(F.event, 100000);
        CU_ASSERT_TRUE(events_have(&ev, "\"active\":true"));
        CU_ASSERT_TRUE(events_have(&ev, "\"principal\":\"" DM_PRINCIPAL "\""));

        /* A second bootstrap of what is installed is refused, nothing
         * recorded. */
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":[\"thermometer\"]}", &j), 409);
        CU_ASSERT_TRUE(error_names(j, "thermometer"));
        json_decref(TAKE_PTR(j));

        /* Uninstall on demand. */
        CU_ASSERT_EQUAL(device_call("POST", "/components/thermometer/uninstall", NULL, NULL), 202);
        for (unsigned i = 0; i < 300; i++) {
                comp = domain_component("thermometer");
                if (comp && json_is_true(json_object_get(comp, "removed")))
                        break;
                json_decref(TAKE_PTR(comp));
                h2_test_run_for(F.event, 100000);
        }
        CU_ASSERT_TRUE(comp && json_is_true(json_object_get(comp, "removed")));
        CU_ASSERT_EQUAL(swmgr_get_state(F.swmgr, "thermometer", &st, &result), -ENOENT);
        json_decref(TAKE_PTR(comp));

        /* What was uninstalled may be bootstrapped again, from scratch. */
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":[\"thermometer\"]}", NULL), 202);
        CU_ASSERT_TRUE(wait_domain_state("thermometer", "DELIVERED", false));
        comp = domain_component("thermometer");
        CU_ASSERT_TRUE(comp && !json_is_true(json_object_get(comp, "active")) &&
                       !json_is_true(json_object_get(comp, "removed")));

        h2_test_fetch_done(&ev);
        teardown();
}

static void test_bootstrap_cancel(void) {
        _cleanup_(json_decrefp) json_t *j = NULL, *comp = NULL;
        swm_state st;
        int result;

        setup();
        publish("protocolstub", "h2stub", "exec sleep 1000", NULL);
        publish("hyperty", "lamp", "exec sleep 1000", NULL);
        claim_and_connect();
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":[\"lamp\"],\"protostubs\":[\"h2stub\"]}", &j),
                        202);
        /* Protocol stubs go first. */
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(json_array_get(json_object_get(j, "orders"), 0),
                                                                       "component"))),
                               "h2stub");
        json_decref(TAKE_PTR(j));
        CU_ASSERT_TRUE_FATAL(wait_domain_state("lamp", "DELIVERED", false));
        CU_ASSERT_TRUE_FATAL(wait_domain_state("h2stub", "DELIVERED", false));
        comp = domain_component("h2stub");
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(comp, "type"))), "protocolstub");
        json_decref(TAKE_PTR(comp));

        /* Alice changes her mind: nothing gets installed. */
        CU_ASSERT_EQUAL(device_call("POST", "/components/lamp/cancel", NULL, NULL), 202);
        for (unsigned i = 0; i < 300; i++) {
                comp = domain_component("lamp");
                if (comp && (json_is_true(json_object_get(comp, "removed")) ||
                             streq_ptr(json_string_value(json_object_get(comp, "state")), "INITIAL")))
                        break;
                json_decref(TAKE_PTR(comp));
                h2_test_run_for(F.event, 100000);
        }
        CU_ASSERT_PTR_NOT_NULL_FATAL(comp);
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(json_object_get(comp, "lastOrder"), "order"))),
                               "cancel");
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(json_object_get(comp, "lastOrder"), "status"))),
                               "accepted");
        CU_ASSERT_TRUE(swmgr_get_state(F.swmgr, "lamp", &st, &result) == -ENOENT || st == SWM_INITIAL);
        CU_ASSERT_EQUAL(swmgr_get_pid(F.swmgr, "lamp"), 0);
        /* A cancelled order cannot be confirmed any more: the device refuses
         * and the domain records why. */
        CU_ASSERT_EQUAL(device_call("POST", "/components/lamp/confirm", NULL, NULL), 202);
        json_decref(TAKE_PTR(comp));
        for (unsigned i = 0; i < 300; i++) {
                comp = domain_component("lamp");
                if (comp && streq_ptr(json_string_value(json_object_get(json_object_get(comp, "lastOrder"), "status")),
                                      "refused"))
                        break;
                json_decref(TAKE_PTR(comp));
                h2_test_run_for(F.event, 100000);
        }
        CU_ASSERT_TRUE(comp && json_integer_value(json_object_get(json_object_get(comp, "lastOrder"), "code")) >= 400);
        CU_ASSERT_TRUE(comp && json_is_string(json_object_get(json_object_get(comp, "lastOrder"), "description")));
        teardown();
}

static void test_incompatible_runtime(void) {
        _cleanup_(json_decrefp) json_t *comp = NULL;

        setup();
        publish("hyperty", "future", "exec sleep 1000", "\"constraints\":{\"runtimeVersion\":\"99.0.0\"}");
        claim_and_connect();
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":[\"future\"]}", NULL), 202);
        for (unsigned i = 0; i < 300; i++) {
                comp = domain_component("future");
                if (comp && json_integer_value(json_object_get(comp, "result")) == SWM_RESULT_UPDATE_ERROR)
                        break;
                json_decref(TAKE_PTR(comp));
                h2_test_run_for(F.event, 100000);
        }
        CU_ASSERT_PTR_NOT_NULL_FATAL(comp);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(comp, "result")), 57);
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(comp, "resultText"))), "update error");
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(comp, "state"))), "INITIAL");
        CU_ASSERT_PTR_NOT_NULL(strstr(strna(json_string_value(json_object_get(comp, "reason"))),
                                      "incompatible runtime version"));
        json_decref(TAKE_PTR(comp));
        /* A failed component may be bootstrapped again. */
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":[\"future\"]}", NULL), 202);
        teardown();
}

static bool one_refused(void) {
        return domain_orders_get_n_refused(F.orders) >= 1;
}

static void test_non_dm_sender_refused(void) {
        _cleanup_(json_decrefp) json_t *body = NULL;
        _cleanup_rt_message_ rt_message *m = NULL;
        _cleanup_free_ char *desc = NULL;
        swm_state st;
        int result;

        setup();
        publish("hyperty", "intruder", "exec sleep 1000", NULL);
        claim_and_connect();
        CU_ASSERT_EQUAL_FATAL(catalogue_get_descriptor(F.catalogue, "hyperty", "intruder", &body), 0);
        desc = json_dumps(body, JSON_COMPACT);
        json_decref(TAKE_PTR(body));
        body = json_pack("{s:{s:s, s:o}}", "value", "order", "install", "descriptor", json_loads(desc, 0, NULL));
        /* Another domain service, not the DM server, sends an install. */
        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_CREATE, 4242, "domain://registry." DOMAIN,
                                             reg_session_get_runtime(F.session), body, &m),
                              0);
        CU_ASSERT_EQUAL(msg_send(F.msg, m), 0);
        CU_ASSERT_TRUE(run_until(one_refused, 30));
        h2_test_run_for(F.event, 300000);
        CU_ASSERT_EQUAL(swmgr_get_state(F.swmgr, "intruder", &st, &result), -ENOENT);
        teardown();
}

/* The journal entries of refusals and error reports are explained in the
 * catalog. */
static void test_message_id_in_catalog(void) {
        _cleanup_free_ char *catalog = NULL;
        size_t n = 0;
        FILE *f;

        f = fopen("units/rethink.catalog", "re");
        if (!f)
                f = fopen("../../../units/rethink.catalog", "re");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT(getdelim(&catalog, &n, '\0', f) > 0);
        fclose(f);
        CU_ASSERT_PTR_NOT_NULL(strstr(strempty(catalog), "-- " DOMAIN_ORDERS_MESSAGE_ID_REFUSED "\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(strempty(catalog), "-- " BOOTSTRAP_MESSAGE_ID_REPORT_ERROR "\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(strempty(catalog), "-- " BOOTSTRAP_MESSAGE_ID_ORDER_REFUSED "\n"));
        CU_ASSERT_STRING_NOT_EQUAL(BOOTSTRAP_MESSAGE_ID_REPORT_ERROR, BOOTSTRAP_MESSAGE_ID_ORDER_REFUSED);
}

static void test_admin_errors_and_queue(void) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        H2TestFetch f;

        setup();
        publish("hyperty", "meter", "exec sleep 1000", NULL);

        /* Not claimed yet: 409, nothing recorded. */
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":[\"meter\"]}", &j), 409);
        CU_ASSERT_TRUE(error_names(j, "not claimed"));
        json_decref(TAKE_PTR(j));
        CU_ASSERT_EQUAL(device_call("POST", "/claim", NULL, NULL), 200);

        CU_ASSERT_EQUAL(call("POST", "/admin/devices/nosuchdevice/bootstrap", "{\"hyperties\":[\"meter\"]}", NULL), 404);
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":[\"meter\",\"nosuch\"]}", &j), 404);
        CU_ASSERT_TRUE(error_names(j, "nosuch"));
        json_decref(TAKE_PTR(j));
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"protostubs\":[\"meter\"]}", &j), 404);
        CU_ASSERT_TRUE(error_names(j, "protocolstub"));
        json_decref(TAKE_PTR(j));
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":\"meter\"}", NULL), 400);
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":[\"meter\",\"meter\"]}", NULL), 400);
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":[]}", NULL), 400);
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":[\"meter\"],\"x\":1}", NULL), 400);
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":[\"../x\"]}", NULL), 400);
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "not json", NULL), 400);
        CU_ASSERT_EQUAL(device_call("POST", "/components/meter/confirm", NULL, NULL), 404);
        CU_ASSERT_EQUAL(device_call("POST", "/components/meter/explode", NULL, NULL), 404);
        /* Nothing half-applied. */
        CU_ASSERT_EQUAL(device_call("GET", "/orders", NULL, &j), 200);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "orders")), 0u);
        json_decref(TAKE_PTR(j));
        CU_ASSERT_EQUAL(device_call("GET", "/components", NULL, &j), 200);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "components")), 0u);
        json_decref(TAKE_PTR(j));

        /* Without the admin credential: 401. */
        memset(&f, 0, sizeof(f));
        CU_ASSERT_EQUAL_FATAL(h2_client_request(F.admin, "GET", "/admin/events", NULL, 0, NULL, 0, 0,
                                                h2_test_fetch_callbacks(false), &f, &f.req),
                              0);
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(F.event, &f.done, 30));
        CU_ASSERT_EQUAL(f.status, 401);
        h2_test_fetch_done(&f);

        /* No session yet: the order waits, then goes out with the stream. */
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":[\"meter\"]}", &j), 202);
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(json_array_get(json_object_get(j, "orders"), 0), "status"))),
                               "queued");
        json_decref(TAKE_PTR(j));
        CU_ASSERT_EQUAL(reg_session_start(F.session), 0);
        CU_ASSERT_TRUE_FATAL(run_until(streaming, 30));
        CU_ASSERT_TRUE(wait_domain_state("meter", "DELIVERED", false));
        teardown();
}

/* A component the device's own administrator installs while the session
 * is down is reported once the stream is up. */
static void test_reports_wait_for_session(void) {
        _cleanup_(json_decrefp) json_t *desc = NULL, *comp = NULL;
        swm_state st = SWM_INITIAL;
        int result;

        setup();
        publish("hyperty", "local", "exec sleep 1000", NULL);
        CU_ASSERT_EQUAL(device_call("POST", "/claim", NULL, NULL), 200);
        CU_ASSERT_EQUAL_FATAL(catalogue_get_descriptor(F.catalogue, "hyperty", "local", &desc), 0);
        CU_ASSERT_EQUAL_FATAL(swmgr_install(F.swmgr, "local:uid=0", desc, NULL, NULL, NULL), 0);
        for (unsigned i = 0; i < 300 && st != SWM_DELIVERED; i++) {
                h2_test_run_for(F.event, 100000);
                (void) swmgr_get_state(F.swmgr, "local", &st, &result);
        }
        CU_ASSERT_EQUAL_FATAL(st, SWM_DELIVERED);
        CU_ASSERT_TRUE(domain_orders_get_n_pending(F.orders) >= 2);
        CU_ASSERT_PTR_NULL(domain_component("local"));

        CU_ASSERT_EQUAL(reg_session_start(F.session), 0);
        CU_ASSERT_TRUE_FATAL(run_until(streaming, 30));
        CU_ASSERT_TRUE(wait_domain_state("local", "DELIVERED", false));
        CU_ASSERT_EQUAL(domain_orders_get_n_pending(F.orders), 0u);
        comp = domain_component("local");
        /* Not ordered by the domain: no kind, no order, the local principal. */
        CU_ASSERT_TRUE(json_is_null(json_object_get(comp, "type")));
        CU_ASSERT_TRUE(json_is_null(json_object_get(comp, "lastOrder")));
        teardown();
}

/* One command on the agent's control socket, as rethinkctl sends it;
 * true when the reply says ok. */
static bool ctl(const char *line) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char buf[8192];
        size_t size = 0, n = strlen(line), done = 0;
        int fd;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", F.control_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                if (fd >= 0)
                        close(fd);
                return false;
        }
        /* The server only reads while the loop runs. */
        for (unsigned i = 0; i < 3000 && done < n; i++) {
                ssize_t k = send(fd, line + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);

                if (k > 0)
                        done += (size_t) k;
                else if (k < 0 && errno != EAGAIN)
                        break;
                (void) sd_event_run(F.event, 10000);
        }
        for (unsigned i = 0; i < 3000 && !memchr(buf, '\n', size) && size < sizeof(buf) - 1; i++) {
                ssize_t k;

                (void) sd_event_run(F.event, 10000);
                k = recv(fd, buf + size, sizeof(buf) - 1 - size, MSG_DONTWAIT);
                if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
                        break;
                if (k > 0)
                        size += (size_t) k;
        }
        close(fd);
        buf[size] = '\0';
        return strstr(buf, "\"ok\":true") != NULL;
}

/* The consent given on the device (rethinkctl accept) is reported to
 * the domain like any other transition. */
static void test_local_accept_reported(void) {
        _cleanup_(json_decrefp) json_t *comp = NULL;

        setup();
        publish("hyperty", "camera", "exec sleep 1000", NULL);
        claim_and_connect();
        CU_ASSERT_EQUAL(device_call("POST", "/bootstrap", "{\"hyperties\":[\"camera\"]}", NULL), 202);
        CU_ASSERT_TRUE_FATAL(wait_domain_state("camera", "DELIVERED", false));
        CU_ASSERT_TRUE(ctl("{\"id\":1,\"command\":\"accept\",\"args\":{\"name\":\"camera\"}}\n"));
        CU_ASSERT_TRUE_FATAL(wait_domain_state("camera", "INSTALLED", false));
        comp = domain_component("camera");
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(comp, "principal"))), "local:uid=0");
        teardown();
}

static CU_TestInfo tests[] = {
        { "bootstrap, DELIVERED, confirm, activate, uninstall", test_bootstrap_confirm_activate },
        { "bootstrap with a protostub, cancel", test_bootstrap_cancel },
        { "incompatible runtime version reported as 57", test_incompatible_runtime },
        { "an order from another sender is refused", test_non_dm_sender_refused },
        { "the MESSAGE_IDs are in the catalog", test_message_id_in_catalog },
        { "reports made without a session reach the domain later", test_reports_wait_for_session },
        { "consent on the device is reported", test_local_accept_reported },
        { "admin errors change nothing; orders wait for the session", test_admin_errors_and_queue },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("bootstrap", tests)
