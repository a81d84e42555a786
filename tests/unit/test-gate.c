/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "gate.h"
#include "tests.h"

typedef struct seen {
        char log[32][64];
        size_t n;
        gate_subscription *self;        /* unsubscribes itself on first call */
} seen;

static void on_gate(gate_kind kind, bool open, const char *reason, void *userdata) {
        seen *s = userdata;

        if (s->n < ELEMENTSOF(s->log))
                snprintf(s->log[s->n++], sizeof(s->log[0]), "%s %s %s", gate_kind_to_string(kind),
                         open ? "open" : "closed", reason);
        if (s->self)
                s->self = gate_subscription_free(s->self);
}

static void on_mobility(const gate_mobility *ev, void *userdata) {
        seen *s = userdata;

        if (s->n < ELEMENTSOF(s->log))
                snprintf(s->log[s->n++], sizeof(s->log[0]), "%s/%s -> %s/%s", ev->old_ifname ?: "-",
                         ev->old_address ?: "-", ev->new_ifname ?: "-", ev->new_address ?: "-");
}

static void test_starts_closed(void) {
        _cleanup_gates_ gates *g = NULL;
        const char *reason = NULL;

        CU_ASSERT_EQUAL_FATAL(gates_new(&g), 0);
        CU_ASSERT_FALSE(gates_is_open(g, GATE_DOWNLOADS, &reason));
        CU_ASSERT_STRING_EQUAL(reason, "starting");
        CU_ASSERT_FALSE(gates_is_open(g, GATE_REGISTRATION, NULL));
        CU_ASSERT_FALSE(gates_is_open(g, _GATE_KIND_MAX, NULL));
        CU_ASSERT_STRING_EQUAL(gate_kind_to_string(GATE_DOWNLOADS), "downloads");
        CU_ASSERT_STRING_EQUAL(gate_kind_to_string(GATE_REGISTRATION), "registration");
}

static void test_open_close_with_reasons(void) {
        _cleanup_gates_ gates *g = NULL;
        seen s = {};

        CU_ASSERT_EQUAL_FATAL(gates_new(&g), 0);
        CU_ASSERT_EQUAL(gates_subscribe(g, _GATE_KIND_INVALID, on_gate, &s, NULL), 0);
        /* Not called on subscribe. */
        CU_ASSERT_EQUAL(s.n, 0);

        gates_update(g, QOS_ONLINE, false, false);
        CU_ASSERT_EQUAL_FATAL(s.n, 2);
        CU_ASSERT_STRING_EQUAL(s.log[0], "downloads open online");
        CU_ASSERT_STRING_EQUAL(s.log[1], "registration open online");

        /* Unchanged: no callbacks. */
        gates_update(g, QOS_ONLINE, false, false);
        CU_ASSERT_EQUAL(s.n, 2);

        /* Degraded: downloads close, registration stays open. */
        gates_update(g, QOS_DEGRADED, false, false);
        CU_ASSERT_EQUAL_FATAL(s.n, 3);
        CU_ASSERT_STRING_EQUAL(s.log[2], "downloads closed degraded");
        CU_ASSERT_TRUE(gates_is_open(g, GATE_REGISTRATION, NULL));

        gates_update(g, QOS_OFFLINE, false, false);
        CU_ASSERT_EQUAL_FATAL(s.n, 4);
        CU_ASSERT_STRING_EQUAL(s.log[3], "registration closed offline");

        gates_update(g, QOS_DEGRADED, false, false);
        CU_ASSERT_EQUAL_FATAL(s.n, 5);
        CU_ASSERT_STRING_EQUAL(s.log[4], "registration open degraded");
        CU_ASSERT_FALSE(gates_is_open(g, GATE_DOWNLOADS, NULL));
}

static void test_metered_policy(void) {
        _cleanup_gates_ gates *g = NULL;
        seen dl = {};
        const char *reason;

        CU_ASSERT_EQUAL_FATAL(gates_new(&g), 0);
        CU_ASSERT_EQUAL(gates_subscribe(g, GATE_DOWNLOADS, on_gate, &dl, NULL), 0);

        gates_update(g, QOS_ONLINE, true, false);
        CU_ASSERT_FALSE(gates_is_open(g, GATE_DOWNLOADS, &reason));
        CU_ASSERT_STRING_EQUAL(reason, "metered");
        /* Registration does not care about metering; this subscriber only
         * hears downloads, and downloads did not change (still closed). */
        CU_ASSERT_TRUE(gates_is_open(g, GATE_REGISTRATION, NULL));
        CU_ASSERT_EQUAL(dl.n, 0);

        /* The policy allows downloads on metered links. */
        gates_update(g, QOS_ONLINE, true, true);
        CU_ASSERT_EQUAL_FATAL(dl.n, 1);
        CU_ASSERT_STRING_EQUAL(dl.log[0], "downloads open online");

        /* Back to the default policy. */
        gates_update(g, QOS_ONLINE, true, false);
        CU_ASSERT_EQUAL_FATAL(dl.n, 2);
        CU_ASSERT_STRING_EQUAL(dl.log[1], "downloads closed metered");

        /* An unmetered primary again. */
        gates_update(g, QOS_ONLINE, false, false);
        CU_ASSERT_EQUAL_FATAL(dl.n, 3);
        CU_ASSERT_STRING_EQUAL(dl.log[2], "downloads open online");
}

static void test_unsubscribe(void) {
        _cleanup_gates_ gates *g = NULL;
        gate_subscription *a = NULL;
        seen sa = {}, sb = {}, sc = {};

        CU_ASSERT_EQUAL_FATAL(gates_new(&g), 0);
        CU_ASSERT_EQUAL(gates_subscribe(g, _GATE_KIND_INVALID, on_gate, &sa, &a), 0);
        CU_ASSERT_EQUAL(gates_subscribe(g, GATE_REGISTRATION, on_gate, &sb, &sb.self), 0);
        CU_ASSERT_EQUAL(gates_subscribe(g, GATE_REGISTRATION, on_gate, &sc, NULL), 0);
        CU_ASSERT_EQUAL(gates_subscribe(g, _GATE_KIND_MAX, on_gate, &sc, NULL), -EINVAL);
        CU_ASSERT_EQUAL(gates_subscribe(g, GATE_DOWNLOADS, NULL, &sc, NULL), -EINVAL);

        a = gate_subscription_free(a);
        CU_ASSERT_PTR_NULL(a);
        gates_update(g, QOS_ONLINE, false, false);
        CU_ASSERT_EQUAL(sa.n, 0);
        /* sb unsubscribed itself from inside its callback; sc after it
         * was still called. */
        CU_ASSERT_EQUAL(sb.n, 1);
        CU_ASSERT_PTR_NULL(sb.self);
        CU_ASSERT_EQUAL(sc.n, 1);
        gates_update(g, QOS_OFFLINE, false, false);
        CU_ASSERT_EQUAL(sb.n, 1);
        CU_ASSERT_EQUAL(sc.n, 2);
        CU_ASSERT_PTR_NULL(gate_subscription_free(NULL));
}

static void test_mobility(void) {
        _cleanup_gates_ gates *g = NULL;
        _cleanup_gate_subscription_ gate_subscription *sub = NULL;
        seen m = {}, other = {};

        CU_ASSERT_EQUAL_FATAL(gates_new(&g), 0);
        CU_ASSERT_EQUAL(gates_subscribe_mobility(g, on_mobility, &m, &sub), 0);
        CU_ASSERT_EQUAL(gates_subscribe(g, _GATE_KIND_INVALID, on_gate, &other, NULL), 0);

        gates_mobility(g, &(gate_mobility) { .new_ifname = "eth0", .new_address = "10.0.0.2/24" });
        gates_mobility(g, &(gate_mobility) { .old_ifname = "eth0", .old_address = "10.0.0.2/24",
                                             .new_ifname = "wwan0", .new_address = "100.64.0.7/32" });
        CU_ASSERT_EQUAL_FATAL(m.n, 2);
        CU_ASSERT_STRING_EQUAL(m.log[0], "-/- -> eth0/10.0.0.2/24");
        CU_ASSERT_STRING_EQUAL(m.log[1], "eth0/10.0.0.2/24 -> wwan0/100.64.0.7/32");
        /* Gate subscribers do not hear mobility, mobility subscribers do
         * not hear gates. */
        CU_ASSERT_EQUAL(other.n, 0);
        gates_update(g, QOS_ONLINE, false, false);
        CU_ASSERT_EQUAL(m.n, 2);
        CU_ASSERT_EQUAL(other.n, 2);
}

static CU_TestInfo tests[] = {
        { "gates start closed", test_starts_closed },
        { "open and close with reasons", test_open_close_with_reasons },
        { "downloads closed on metered by policy", test_metered_policy },
        { "unsubscribe, also from a callback", test_unsubscribe },
        { "mobility event delivered", test_mobility },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("gate", tests)
