/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The registration state machine against the real domain in this process
 * (and, for Retry-After, a small h2 server of our own), on a real sd-event
 * loop with real keys in a temporary state directory. No timing is
 * asserted: the tests look at which requests went out in which order and at
 * the delays the machine chose. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "gate.h"
#include "identity.h"
#include "registration.h"
#include "test-domain-util.h"

#define MAX_EVENTS 64

/* The loop of the domain (or test server) of the running test. */
static sd_event *test_event;

typedef struct Recorder {
        registration_event ev[MAX_EVENTS];
        char reason[MAX_EVENTS][16];
        unsigned n;
} Recorder;

typedef struct Device {
        char state_dir[192];
        identity *id;
        gates *gates;
        registration *reg;
        Recorder rec;
        uint64_t rnd_seq[8];
        unsigned rnd_n, rnd_i;
} Device;

static void on_event(const registration_event *ev, void *userdata) {
        Recorder *r = userdata;

        if (r->n >= MAX_EVENTS)
                return;
        r->ev[r->n] = *ev;
        snprintf(r->reason[r->n], sizeof(r->reason[r->n]), "%s", strna(ev->reason));
        r->ev[r->n].reason = r->reason[r->n];
        r->n++;
}

static uint64_t seq_random(void *userdata) {
        Device *d = userdata;

        if (d->rnd_n == 0)
                return UINT64_MAX / 2;
        return d->rnd_seq[d->rnd_i++ % d->rnd_n];
}

static void open_gate(Device *d) {
        gates_update(d->gates, QOS_ONLINE, false, false);
}

static void close_gate(Device *d) {
        gates_update(d->gates, QOS_OFFLINE, false, false);
}

static int device_new(Device *d, const char *base, const char *url, const registration_options *extra) {
        registration_options o = {};
        int r;

        if (!d->id) {
                snprintf(d->state_dir, sizeof(d->state_dir), "%s/agent", base);
                r = identity_load(d->state_dir, NULL, &d->id);
                if (r < 0)
                        return r;
        }
        if (!d->gates) {
                r = gates_new(&d->gates);
                if (r < 0)
                        return r;
        }
        if (extra)
                o = *extra;
        o.url = url;
        o.storage_path = d->state_dir;
        if (!o.random) {
                o.random = seq_random;
                o.random_userdata = d;
        }
        return registration_new(test_event, d->id, d->gates, &o, &d->reg);
}

static void device_free(Device *d) {
        d->reg = registration_free(d->reg);
        d->gates = gates_free(d->gates);
        d->id = identity_free(d->id);
}

static char *url_of(DomainTest *t) {
        char *u = NULL;

        if (asprintf(&u, "http://127.0.0.1:%d", domain_get_port(t->domain)) < 0)
                return NULL;
        return u;
}

static unsigned count(const Recorder *r, registration_event_type type) {
        unsigned n = 0;

        for (unsigned i = 0; i < r->n; i++)
                n += r->ev[i].type == type;
        return n;
}

/* Runs until n events of type were recorded (a hang guard, no speed). */
static bool run_until_count(sd_event *e, const Recorder *r, registration_event_type type, unsigned n,
                            unsigned limit_sec) {
        uint64_t deadline = h2_test_now_usec() + (uint64_t) limit_sec * 1000000ULL;

        while (count(r, type) < n && h2_test_now_usec() < deadline)
                if (sd_event_run(e, 100000) < 0)
                        break;
        return count(r, type) >= n;
}

static json_t *admin_device(DomainTest *t, const char *endpoint) {
        H2TestFetch f;
        char path[160];
        json_t *j;

        snprintf(path, sizeof(path), "/admin/devices/%s", endpoint);
        dt_request(t, &f, "GET", path, dt_admin(), 1, NULL, 0);
        j = f.status == 200 ? dt_json(&f) : NULL;
        h2_test_fetch_done(&f);
        return j;
}

static const char *const DM_SHORT = "[DeviceManagement]\nMinLifetimeSec=1\n";

/* --- first registration ----------------------------------------------------------- */

static void test_first_registration(void) {
        DomainTest t;
        Device d = {};
        _cleanup_free_ char *url = NULL;
        json_t *dev;
        const Recorder *r = &d.rec;

        CU_ASSERT_EQUAL_FATAL(dt_setup(&t, NULL), 0);
        test_event = t.event;
        url = url_of(&t);
        CU_ASSERT_EQUAL_FATAL(device_new(&d, t.dir, url, &(registration_options) { .lifetime_sec = 600 }), 0);
        registration_set_event_handler(d.reg, on_event, &d.rec);
        open_gate(&d);
        CU_ASSERT_EQUAL_FATAL(registration_start(d.reg), 0);
        CU_ASSERT_TRUE_FATAL(run_until_count(t.event, r, REGISTRATION_EVENT_REGISTERED, 1, 30));

        CU_ASSERT_EQUAL(r->ev[0].type, REGISTRATION_EVENT_ATTEMPT);
        CU_ASSERT_FALSE(r->ev[0].update);
        CU_ASSERT_STRING_EQUAL(r->ev[0].reason, "start");
        CU_ASSERT_EQUAL(r->ev[1].type, REGISTRATION_EVENT_REGISTERED);
        CU_ASSERT_EQUAL(r->ev[1].status, 201);
        /* Keep-alive between 1/2 and 2/3 of the lifetime. */
        CU_ASSERT_TRUE(r->ev[1].delay >= 300 * USEC_PER_SEC && r->ev[1].delay <= 400 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(registration_get_state(d.reg), REGISTRATION_REGISTERED);
        CU_ASSERT_PTR_NOT_NULL_FATAL(registration_get_location(d.reg));
        CU_ASSERT_EQUAL(strncmp(registration_get_location(d.reg), "/dm/rd/", 7), 0);
        CU_ASSERT_TRUE(id_uuid_is_valid(registration_get_location(d.reg) + 7));

        dev = admin_device(&t, identity_get_endpoint(d.id));
        CU_ASSERT_PTR_NOT_NULL_FATAL(dev);
        CU_ASSERT_STRING_EQUAL(dt_json_str(dev, "state"), "registered");
        CU_ASSERT_STRING_EQUAL(dt_json_str(dev, "publicKey"), identity_get_public_key(d.id));
        CU_ASSERT_STRING_EQUAL(dt_json_str(dev, "id"), registration_get_location(d.reg) + 7);
        CU_ASSERT_STRING_EQUAL(dt_json_str(dev, "runtimeVersion"), RETHINK_VERSION);
        CU_ASSERT_TRUE(json_is_string(json_object_get(dev, "arch")));
        CU_ASSERT_TRUE(json_integer_value(json_object_get(dev, "freeBytes")) > 0);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(dev, "lifetime")), 600);
        json_decref(dev);

        {
                json_t *s = registration_status_json(d.reg);
                CU_ASSERT_PTR_NOT_NULL_FATAL(s);
                CU_ASSERT_STRING_EQUAL(dt_json_str(s, "state"), "registered");
                CU_ASSERT_STRING_EQUAL(dt_json_str(s, "location"), registration_get_location(d.reg));
                CU_ASSERT_STRING_EQUAL(dt_json_str(s, "endpoint"), identity_get_endpoint(d.id));
                json_decref(s);
        }

        device_free(&d);
        dt_teardown(&t);
}

/* --- restart with the same identity ---------------------------------------------------- */

static void test_restart_same_identity(void) {
        DomainTest t;
        Device d = {};
        _cleanup_free_ char *url = NULL, *loc = NULL, *ep = NULL, *key = NULL;
        char p[256];
        struct stat st;

        CU_ASSERT_EQUAL_FATAL(dt_setup(&t, NULL), 0);
        test_event = t.event;
        url = url_of(&t);
        CU_ASSERT_EQUAL_FATAL(device_new(&d, t.dir, url, NULL), 0);
        registration_set_event_handler(d.reg, on_event, &d.rec);
        open_gate(&d);
        CU_ASSERT_EQUAL_FATAL(registration_start(d.reg), 0);
        CU_ASSERT_TRUE_FATAL(run_until_count(t.event, &d.rec, REGISTRATION_EVENT_REGISTERED, 1, 30));
        loc = strdup(registration_get_location(d.reg));
        ep = strdup(identity_get_endpoint(d.id));
        key = strdup(identity_get_public_key(d.id));
        device_free(&d);

        /* The agent restarts: identity from the same state directory. */
        d = (Device) {};
        CU_ASSERT_EQUAL_FATAL(device_new(&d, t.dir, url, NULL), 0);
        CU_ASSERT_FALSE(identity_is_new(d.id));
        CU_ASSERT_STRING_EQUAL(identity_get_endpoint(d.id), ep);
        CU_ASSERT_STRING_EQUAL(identity_get_public_key(d.id), key);
        snprintf(p, sizeof(p), "%s/%s", d.state_dir, IDENTITY_SIGN_KEY_FILE);
        CU_ASSERT_EQUAL(stat(p, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
        snprintf(p, sizeof(p), "%s/%s", d.state_dir, IDENTITY_TOKEN_KEY_FILE);
        CU_ASSERT_EQUAL(stat(p, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);

        registration_set_event_handler(d.reg, on_event, &d.rec);
        open_gate(&d);
        CU_ASSERT_EQUAL_FATAL(registration_start(d.reg), 0);
        CU_ASSERT_TRUE_FATAL(run_until_count(t.event, &d.rec, REGISTRATION_EVENT_REGISTERED, 1, 30));
        /* Known endpoint, same key: 200 and the same registration. */
        CU_ASSERT_EQUAL(d.rec.ev[1].status, 200);
        CU_ASSERT_STRING_EQUAL(registration_get_location(d.reg), loc);

        device_free(&d);
        dt_teardown(&t);
}

/* --- another device with our endpoint name: 409, retried with backoff --------------------- */

static void test_conflict(void) {
        DomainTest t;
        Device a = {}, b = {};
        _cleanup_free_ char *url = NULL;
        char other[192];
        const Recorder *r = &b.rec;

        CU_ASSERT_EQUAL_FATAL(dt_setup(&t, NULL), 0);
        test_event = t.event;
        url = url_of(&t);
        CU_ASSERT_EQUAL_FATAL(device_new(&a, t.dir, url, NULL), 0);
        registration_set_event_handler(a.reg, on_event, &a.rec);
        open_gate(&a);
        CU_ASSERT_EQUAL_FATAL(registration_start(a.reg), 0);
        CU_ASSERT_TRUE_FATAL(run_until_count(t.event, &a.rec, REGISTRATION_EVENT_REGISTERED, 1, 30));

        /* Same name (configured), other keys. */
        snprintf(other, sizeof(other), "%s/other", t.dir);
        CU_ASSERT_EQUAL_FATAL(identity_load(other, identity_get_endpoint(a.id), &b.id), 0);
        snprintf(b.state_dir, sizeof(b.state_dir), "%s", other);
        CU_ASSERT_EQUAL_FATAL(device_new(&b, t.dir, url,
                                         &(registration_options) { .retry_initial_usec = 20 * USEC_PER_MSEC,
                                                                   .retry_max_usec = 40 * USEC_PER_MSEC }),
                              0);
        registration_set_event_handler(b.reg, on_event, &b.rec);
        open_gate(&b);
        CU_ASSERT_EQUAL_FATAL(registration_start(b.reg), 0);
        CU_ASSERT_TRUE_FATAL(run_until_count(t.event, r, REGISTRATION_EVENT_FAILED, 2, 30));
        CU_ASSERT_EQUAL(r->ev[1].type, REGISTRATION_EVENT_FAILED);
        CU_ASSERT_EQUAL(r->ev[1].status, 409);
        CU_ASSERT_EQUAL(registration_get_state(b.reg), REGISTRATION_RETRY_WAIT);
        CU_ASSERT_PTR_NULL(registration_get_location(b.reg));
        {
                json_t *s = registration_status_json(b.reg);
                CU_ASSERT_PTR_NOT_NULL(strstr(strna(dt_json_str(s, "last_error")), "409"));
                CU_ASSERT_PTR_NOT_NULL(strstr(strna(dt_json_str(s, "last_error")), "another public key"));
                json_decref(s);
        }

        device_free(&b);
        device_free(&a);
        dt_teardown(&t);
}

/* --- keep-alive ----------------------------------------------------------------------------- */

static void test_keepalive(void) {
        DomainTest t;
        Device d = {};
        _cleanup_free_ char *url = NULL, *updated = NULL;
        const Recorder *r = &d.rec;
        json_t *dev;

        CU_ASSERT_EQUAL_FATAL(dt_setup(&t, DM_SHORT), 0);
        test_event = t.event;
        url = url_of(&t);
        CU_ASSERT_EQUAL_FATAL(device_new(&d, t.dir, url, &(registration_options) { .lifetime_sec = 2 }), 0);
        registration_set_event_handler(d.reg, on_event, &d.rec);
        open_gate(&d);
        CU_ASSERT_EQUAL_FATAL(registration_start(d.reg), 0);
        CU_ASSERT_TRUE_FATAL(run_until_count(t.event, r, REGISTRATION_EVENT_UPDATED, 2, 30));

        /* register, registered, (keep-alive, updated) twice; nothing else. */
        CU_ASSERT_EQUAL_FATAL(r->n, 6u);
        CU_ASSERT_EQUAL(r->ev[0].type, REGISTRATION_EVENT_ATTEMPT);
        CU_ASSERT_EQUAL(r->ev[1].type, REGISTRATION_EVENT_REGISTERED);
        for (unsigned i = 2; i < 6; i += 2) {
                CU_ASSERT_EQUAL(r->ev[i].type, REGISTRATION_EVENT_ATTEMPT);
                CU_ASSERT_TRUE(r->ev[i].update);
                CU_ASSERT_STRING_EQUAL(r->ev[i].reason, "keep-alive");
                CU_ASSERT_EQUAL(r->ev[i + 1].type, REGISTRATION_EVENT_UPDATED);
                CU_ASSERT_EQUAL(r->ev[i + 1].status, 204);
        }
        /* Each keep-alive is planned before the 2 s lifetime runs out. */
        for (unsigned i = 1; i < 6; i += 2)
                CU_ASSERT_TRUE(r->ev[i].delay >= USEC_PER_SEC && r->ev[i].delay < 2 * USEC_PER_SEC);

        /* The domain never saw it expire. */
        dev = admin_device(&t, identity_get_endpoint(d.id));
        CU_ASSERT_PTR_NOT_NULL_FATAL(dev);
        CU_ASSERT_STRING_EQUAL(dt_json_str(dev, "state"), "registered");
        CU_ASSERT_STRING_NOT_EQUAL(dt_json_str(dev, "registeredAt"), "");
        json_decref(dev);

        device_free(&d);
        dt_teardown(&t);
}

/* --- 404: the domain forgot the registration -------------------------------------------------- */

static void test_not_found_reregisters(void) {
        DomainTest t;
        Device d = {};
        _cleanup_free_ char *url = NULL, *loc = NULL;
        const Recorder *r = &d.rec;
        H2TestFetch f;
        json_t *dev;
        unsigned n;

        CU_ASSERT_EQUAL_FATAL(dt_setup(&t, DM_SHORT), 0);
        test_event = t.event;
        url = url_of(&t);
        CU_ASSERT_EQUAL_FATAL(device_new(&d, t.dir, url, &(registration_options) { .lifetime_sec = 2 }), 0);
        registration_set_event_handler(d.reg, on_event, &d.rec);
        open_gate(&d);
        CU_ASSERT_EQUAL_FATAL(registration_start(d.reg), 0);
        CU_ASSERT_TRUE_FATAL(run_until_count(t.event, r, REGISTRATION_EVENT_REGISTERED, 1, 30));
        loc = strdup(registration_get_location(d.reg));

        /* De-registered behind the device's back. */
        dt_request(&t, &f, "DELETE", loc, NULL, 0, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 204);
        h2_test_fetch_done(&f);
        dev = admin_device(&t, identity_get_endpoint(d.id));
        CU_ASSERT_STRING_EQUAL(dt_json_str(dev, "state"), "deregistered");
        json_decref(dev);

        /* The next keep-alive meets 404 and registers again at once. */
        n = r->n;
        CU_ASSERT_TRUE_FATAL(run_until_count(t.event, r, REGISTRATION_EVENT_REGISTERED, 2, 30));
        CU_ASSERT_EQUAL_FATAL(r->n, n + 4);
        CU_ASSERT_EQUAL(r->ev[n].type, REGISTRATION_EVENT_ATTEMPT);
        CU_ASSERT_TRUE(r->ev[n].update);
        CU_ASSERT_EQUAL(r->ev[n + 1].type, REGISTRATION_EVENT_LOST);
        CU_ASSERT_EQUAL(r->ev[n + 1].status, 404);
        CU_ASSERT_EQUAL(r->ev[n + 2].type, REGISTRATION_EVENT_ATTEMPT);
        CU_ASSERT_FALSE(r->ev[n + 2].update);
        CU_ASSERT_STRING_EQUAL(r->ev[n + 2].reason, "not-found");
        CU_ASSERT_EQUAL(r->ev[n + 3].type, REGISTRATION_EVENT_REGISTERED);
        CU_ASSERT_EQUAL(r->ev[n + 3].status, 200);
        CU_ASSERT_EQUAL(count(r, REGISTRATION_EVENT_FAILED), 0u);

        dev = admin_device(&t, identity_get_endpoint(d.id));
        CU_ASSERT_STRING_EQUAL(dt_json_str(dev, "state"), "registered");
        json_decref(dev);

        device_free(&d);
        dt_teardown(&t);
}

/* --- mobility --------------------------------------------------------------------------------- */

static void test_mobility_updates_at_once(void) {
        DomainTest t;
        Device d = {};
        _cleanup_free_ char *url = NULL, *before = NULL;
        const Recorder *r = &d.rec;
        json_t *dev;
        unsigned n;

        CU_ASSERT_EQUAL_FATAL(dt_setup(&t, NULL), 0);
        test_event = t.event;
        url = url_of(&t);
        /* An hour's lifetime: a keep-alive would not come within the test. */
        CU_ASSERT_EQUAL_FATAL(device_new(&d, t.dir, url, &(registration_options) { .lifetime_sec = 3600 }), 0);
        registration_set_event_handler(d.reg, on_event, &d.rec);
        open_gate(&d);
        CU_ASSERT_EQUAL_FATAL(registration_start(d.reg), 0);
        CU_ASSERT_TRUE_FATAL(run_until_count(t.event, r, REGISTRATION_EVENT_REGISTERED, 1, 30));
        dev = admin_device(&t, identity_get_endpoint(d.id));
        before = strdup(dt_json_str(dev, "expiresAt"));
        json_decref(dev);
        /* expiresAt has a resolution of seconds. */
        h2_test_run_for(t.event, 1100000);

        n = r->n;
        gates_mobility(d.gates, &(gate_mobility) { .old_ifname = "eth0", .old_address = "10.0.0.2",
                                                    .new_ifname = "wwan0", .new_address = "10.1.0.2" });
        CU_ASSERT_TRUE_FATAL(run_until_count(t.event, r, REGISTRATION_EVENT_UPDATED, 1, 30));
        CU_ASSERT_EQUAL_FATAL(r->n, n + 2);
        CU_ASSERT_EQUAL(r->ev[n].type, REGISTRATION_EVENT_ATTEMPT);
        CU_ASSERT_TRUE(r->ev[n].update);
        CU_ASSERT_STRING_EQUAL(r->ev[n].reason, "mobility");
        CU_ASSERT_EQUAL(r->ev[n + 1].status, 204);

        /* The domain saw the update (it records no source address: only
         * the refreshed expiry shows). */
        dev = admin_device(&t, identity_get_endpoint(d.id));
        CU_ASSERT_STRING_NOT_EQUAL(dt_json_str(dev, "expiresAt"), before);
        json_decref(dev);

        /* Mobility while the gate is closed does nothing. */
        close_gate(&d);
        n = r->n;
        gates_mobility(d.gates, &(gate_mobility) { .old_ifname = "wwan0", .new_ifname = "eth0" });
        h2_test_run_for(t.event, 200000);
        CU_ASSERT_EQUAL(r->n, n);

        device_free(&d);
        dt_teardown(&t);
}

/* --- domain down: backoff, and the gate --------------------------------------------------------- */

static uint16_t closed_port(void) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        uint16_t port = 0;

        if (fd < 0)
                return 0;
        if (bind(fd, (struct sockaddr *) &a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *) &a, &l) == 0)
                port = ntohs(a.sin_port);
        close(fd);
        return port;
}

/* What lib/backoff draws for exp E and random value x: E/2 + x*(E-E/2+1)/2^64. */
static usec_t expected_delay(usec_t e, uint64_t x) {
        usec_t half = e / 2;
        return half + (usec_t) (((unsigned __int128) x * ((unsigned __int128) (e - half) + 1)) >> 64);
}

static void test_domain_down_backoff_and_gate(void) {
        DomainTest t;
        Device d = {};
        char url[64];
        const Recorder *r = &d.rec;
        const usec_t initial = 20 * USEC_PER_MSEC, max = 160 * USEC_PER_MSEC;
        usec_t e = initial, prev_e = 0;
        unsigned attempts, nf = 0, i;

        /* The domain's event loop is only the test's loop here. */
        CU_ASSERT_EQUAL_FATAL(dt_setup(&t, NULL), 0);
        test_event = t.event;
        snprintf(url, sizeof(url), "http://127.0.0.1:%u", closed_port());
        d.rnd_seq[0] = 0;
        d.rnd_seq[1] = UINT64_MAX;
        d.rnd_seq[2] = UINT64_MAX / 3;
        d.rnd_n = 3;
        CU_ASSERT_EQUAL_FATAL(device_new(&d, t.dir, url,
                                         &(registration_options) { .retry_initial_usec = initial,
                                                                   .retry_max_usec = max }),
                              0);
        registration_set_event_handler(d.reg, on_event, &d.rec);
        open_gate(&d);
        CU_ASSERT_EQUAL_FATAL(registration_start(d.reg), 0);
        CU_ASSERT_TRUE_FATAL(run_until_count(t.event, r, REGISTRATION_EVENT_FAILED, 8, 60));

        /* attempt, failed, attempt, failed, ...; the delays follow the
         * exponential with equal jitter, drawn from our sequence, and stop
         * growing at the cap. */
        for (i = 0; i < r->n && nf < 8; i++) {
                if (r->ev[i].type != REGISTRATION_EVENT_FAILED) {
                        CU_ASSERT_EQUAL(r->ev[i].type, REGISTRATION_EVENT_ATTEMPT);
                        CU_ASSERT_STRING_EQUAL(r->ev[i].reason, nf == 0 ? "start" : "retry");
                        continue;
                }
                CU_ASSERT_TRUE(r->ev[i].error < 0);
                CU_ASSERT_EQUAL(r->ev[i].status, 0);
                CU_ASSERT_EQUAL(r->ev[i].delay, expected_delay(e, d.rnd_seq[nf % 3]));
                CU_ASSERT_TRUE(r->ev[i].delay >= e / 2 && r->ev[i].delay <= e);
                CU_ASSERT_TRUE(r->ev[i].delay <= max);
                CU_ASSERT_TRUE(e >= prev_e);
                prev_e = e;
                e = MIN(e * 2, max);
                nf++;
        }
        CU_ASSERT_EQUAL(nf, 8u);
        CU_ASSERT_EQUAL(e, max);

        /* Gate closes: suspended, and no attempt however long we wait
         * (many times the largest delay). */
        close_gate(&d);
        CU_ASSERT_EQUAL(r->ev[r->n - 1].type, REGISTRATION_EVENT_SUSPENDED);
        CU_ASSERT_EQUAL(registration_get_state(d.reg), REGISTRATION_SUSPENDED);
        attempts = registration_get_attempts(d.reg);
        h2_test_run_for(t.event, 6 * max);
        CU_ASSERT_EQUAL(registration_get_attempts(d.reg), attempts);
        CU_ASSERT_EQUAL(r->ev[r->n - 1].type, REGISTRATION_EVENT_SUSPENDED);

        /* Gate opens: an attempt at once, and the backoff starts over. */
        nf = count(r, REGISTRATION_EVENT_FAILED);
        i = r->n;
        open_gate(&d);
        CU_ASSERT_TRUE_FATAL(run_until_count(t.event, r, REGISTRATION_EVENT_FAILED, nf + 1, 30));
        CU_ASSERT_EQUAL(r->ev[i].type, REGISTRATION_EVENT_ATTEMPT);
        CU_ASSERT_STRING_EQUAL(r->ev[i].reason, "gate-open");
        CU_ASSERT_EQUAL(r->ev[i + 1].type, REGISTRATION_EVENT_FAILED);
        CU_ASSERT_TRUE(r->ev[i + 1].delay >= initial / 2 && r->ev[i + 1].delay <= initial);

        device_free(&d);
        dt_teardown(&t);
}

/* Gate closed from the start: nothing until it opens. */
static void test_gate_closed_at_start(void) {
        DomainTest t;
        Device d = {};
        _cleanup_free_ char *url = NULL;

        CU_ASSERT_EQUAL_FATAL(dt_setup(&t, NULL), 0);
        test_event = t.event;
        url = url_of(&t);
        CU_ASSERT_EQUAL_FATAL(device_new(&d, t.dir, url, NULL), 0);
        registration_set_event_handler(d.reg, on_event, &d.rec);
        CU_ASSERT_EQUAL_FATAL(registration_start(d.reg), 0);
        h2_test_run_for(t.event, 300000);
        CU_ASSERT_EQUAL(d.rec.n, 0u);
        CU_ASSERT_EQUAL(registration_get_attempts(d.reg), 0u);
        CU_ASSERT_PTR_NULL(admin_device(&t, identity_get_endpoint(d.id)));

        open_gate(&d);
        CU_ASSERT_TRUE_FATAL(run_until_count(t.event, &d.rec, REGISTRATION_EVENT_REGISTERED, 1, 30));
        CU_ASSERT_STRING_EQUAL(d.rec.ev[0].reason, "gate-open");
        CU_ASSERT_EQUAL(d.rec.ev[1].status, 201);

        device_free(&d);
        dt_teardown(&t);
}

/* --- Retry-After, from a server that can say it ------------------------------------------------- */

typedef struct Busy {
        unsigned requests, busy;
        const char *retry_after;
        char last_path[128], last_query[160];
} Busy;

static int busy_handler(H2Request *req, void *userdata) {
        Busy *b = userdata;

        b->requests++;
        snprintf(b->last_path, sizeof(b->last_path), "%s", h2_request_get_path(req));
        snprintf(b->last_query, sizeof(b->last_query), "%s", strna(h2_request_get_query(req)));
        if (b->requests <= b->busy)
                return h2_request_respond(req, 503, (const H2Header[]) { { "retry-after", b->retry_after } }, 1, NULL,
                                          0);
        return h2_request_respond(req, 201,
                                  (const H2Header[]) { { "location", "/dm/rd/0b8f2f2c-3c6e-4c1e-9a55-9d1b1f0a6a11" } },
                                  1, "{}", 2);
}

static void run_retry_after(const char *value, usec_t expect_min, usec_t expect_max) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_h2_server_ H2Server *s = NULL;
        char dir[64], url[64];
        Device d = {};
        Busy b = { .busy = 1, .retry_after = value };
        const Recorder *r = &d.rec;

        snprintf(dir, sizeof(dir), "/tmp/registration-test-XXXXXX");
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        CU_ASSERT_EQUAL_FATAL(sd_event_new(&e), 0);
        test_event = e;
        CU_ASSERT_EQUAL_FATAL(h2_server_new(e, NULL, NULL, &s), 0);
        h2_server_set_request_handler(s, busy_handler, &b);
        CU_ASSERT_EQUAL_FATAL(h2_server_listen(s, "127.0.0.1", 0), 0);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", h2_server_get_port(s));

        /* The backoff alone would retry within 20 ms. */
        CU_ASSERT_EQUAL_FATAL(device_new(&d, dir, url,
                                         &(registration_options) { .retry_initial_usec = 10 * USEC_PER_MSEC,
                                                                   .retry_max_usec = 20 * USEC_PER_MSEC }),
                              0);
        registration_set_event_handler(d.reg, on_event, &d.rec);
        open_gate(&d);
        CU_ASSERT_EQUAL_FATAL(registration_start(d.reg), 0);
        CU_ASSERT_TRUE_FATAL(run_until_count(e, r, REGISTRATION_EVENT_REGISTERED, 1, 30));

        CU_ASSERT_EQUAL_FATAL(r->n, 4u);
        CU_ASSERT_EQUAL(r->ev[1].type, REGISTRATION_EVENT_FAILED);
        CU_ASSERT_EQUAL(r->ev[1].status, 503);
        CU_ASSERT_TRUE(r->ev[1].retry_after >= expect_min && r->ev[1].retry_after <= expect_max);
        /* At least what the server asked for, plus at most 1/8 of jitter. */
        CU_ASSERT_TRUE(r->ev[1].delay >= r->ev[1].retry_after);
        CU_ASSERT_TRUE(r->ev[1].delay <= r->ev[1].retry_after + r->ev[1].retry_after / 8 + 1);
        CU_ASSERT_EQUAL(r->ev[2].type, REGISTRATION_EVENT_ATTEMPT);
        CU_ASSERT_STRING_EQUAL(r->ev[2].reason, "retry");
        CU_ASSERT_EQUAL(r->ev[3].status, 201);
        CU_ASSERT_EQUAL(b.requests, 2u);
        CU_ASSERT_STRING_EQUAL(b.last_path, "/dm/rd");
        CU_ASSERT_EQUAL(strncmp(b.last_query, "ep=rt-", 6), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(b.last_query, "&lt=3600"));
        CU_ASSERT_STRING_EQUAL(registration_get_location(d.reg), "/dm/rd/0b8f2f2c-3c6e-4c1e-9a55-9d1b1f0a6a11");

        device_free(&d);
        s = h2_server_free(s);
        (void) nftw(dir, dt_rm, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_retry_after_seconds(void) {
        run_retry_after("1", USEC_PER_SEC, USEC_PER_SEC);
}

static void test_retry_after_date(void) {
        char date[FORMAT_HTTP_DATE_MAX];

        CU_ASSERT_PTR_NOT_NULL_FATAL(format_http_date(date, sizeof(date), now(CLOCK_REALTIME) + 2 * USEC_PER_SEC));
        /* Whole seconds: between 1 and 2 s from now. */
        run_retry_after(date, 500 * USEC_PER_MSEC, 2 * USEC_PER_SEC);
}

/* --- URLs ----------------------------------------------------------------------------------------- */

static void test_url_parse(void) {
        registration_url u;
        const char *reason = NULL;

        CU_ASSERT_EQUAL(registration_url_parse("https://192.0.2.1", &u, &reason), 0);
        CU_ASSERT_STRING_EQUAL(u.host, "192.0.2.1");
        CU_ASSERT_EQUAL(u.port, 443);
        CU_ASSERT_TRUE(u.tls);
        CU_ASSERT_EQUAL(registration_url_parse("https://[2001:db8::1]:8443/", &u, &reason), 0);
        CU_ASSERT_STRING_EQUAL(u.host, "2001:db8::1");
        CU_ASSERT_EQUAL(u.port, 8443);
        CU_ASSERT_EQUAL(registration_url_parse("http://127.0.0.1:8080", &u, &reason), 0);
        CU_ASSERT_FALSE(u.tls);
        CU_ASSERT_EQUAL(u.port, 8080);
        CU_ASSERT_EQUAL(registration_url_parse("http://localhost", &u, &reason), 0);
        CU_ASSERT_EQUAL(u.port, 80);
        CU_ASSERT_EQUAL(registration_url_parse("http://[::1]:1", &u, &reason), 0);

        CU_ASSERT_EQUAL(registration_url_parse("http://192.0.2.1:80", &u, &reason), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(reason, "loopback"));
        CU_ASSERT_EQUAL(registration_url_parse("https://domain.example", &u, &reason), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(reason, "numeric"));
        CU_ASSERT_EQUAL(registration_url_parse("ftp://127.0.0.1", &u, &reason), -EINVAL);
        CU_ASSERT_EQUAL(registration_url_parse("https://127.0.0.1:0", &u, &reason), -EINVAL);
        CU_ASSERT_EQUAL(registration_url_parse("https://127.0.0.1:65536", &u, &reason), -EINVAL);
        CU_ASSERT_EQUAL(registration_url_parse("https://127.0.0.1:x", &u, &reason), -EINVAL);
        CU_ASSERT_EQUAL(registration_url_parse("https://127.0.0.1/dm", &u, &reason), -EINVAL);
        CU_ASSERT_EQUAL(registration_url_parse("https://127.0.0.1?a=b", &u, &reason), -EINVAL);
        CU_ASSERT_EQUAL(registration_url_parse("https://user@127.0.0.1", &u, &reason), -EINVAL);
        CU_ASSERT_EQUAL(registration_url_parse("https://[::1", &u, &reason), -EINVAL);
        CU_ASSERT_EQUAL(registration_url_parse("https://", &u, &reason), -EINVAL);
}

static void test_https_needs_ca(void) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Device d = {};
        char dir[64];

        snprintf(dir, sizeof(dir), "/tmp/registration-test-XXXXXX");
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        CU_ASSERT_EQUAL_FATAL(sd_event_new(&e), 0);
        test_event = e;
        CU_ASSERT_EQUAL(device_new(&d, dir, "https://127.0.0.1:8443", NULL), -EINVAL);
        CU_ASSERT_PTR_NULL(d.reg);
        CU_ASSERT_EQUAL(device_new(&d, dir, "https://127.0.0.1:8443",
                                   &(registration_options) { .ca_file = "/nonexistent/ca.pem" }),
                        -ENOENT);
        CU_ASSERT_EQUAL(device_new(&d, dir, "http://10.0.0.1:80", NULL), -EINVAL);
        device_free(&d);
        (void) nftw(dir, dt_rm, 8, FTW_DEPTH | FTW_PHYS);
}

static CU_TestInfo tests[] = {
        { "first registration: 201 and Location", test_first_registration },
        { "restart with the same identity: 200, same registration", test_restart_same_identity },
        { "endpoint taken by another key: 409, retried", test_conflict },
        { "keep-alive before the lifetime runs out", test_keepalive },
        { "404 on keep-alive: register again", test_not_found_reregisters },
        { "mobility: update at once", test_mobility_updates_at_once },
        { "domain down: growing jittered backoff; gate closed: no attempt", test_domain_down_backoff_and_gate },
        { "gate closed at start: nothing until it opens", test_gate_closed_at_start },
        { "503 with Retry-After in seconds", test_retry_after_seconds },
        { "503 with Retry-After as an HTTP date", test_retry_after_date },
        { "domain URLs", test_url_parse },
        { "https needs a readable CA; http only on loopback", test_https_needs_ca },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("registration", tests)
