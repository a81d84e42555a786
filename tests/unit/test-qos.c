/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "qos.h"
#include "tests.h"

#define SEC 1000000ULL
#define MS 1000ULL

typedef struct rec {
        qos_transition t[32];
        char names[32][16];
        char reasons[32][32];
        size_t n;
} rec;

static void record(qos_machine *m, const qos_transition *t, void *userdata) {
        rec *r = userdata;

        if (r->n >= ELEMENTSOF(r->t))
                return;
        r->t[r->n] = *t;
        snprintf(r->names[r->n], sizeof(r->names[0]), "%s", t->ifname ?: "");
        snprintf(r->reasons[r->n], sizeof(r->reasons[0]), "%s", t->reason ?: "");
        r->n++;
}

static const qos_link_info usable = {
        .name = "eth0", .up = true, .carrier = true, .has_address = true, .default_route = true,
        .watched = true,
};

/* Fast parameters so the tests read easily: 3 samples over >= 2 s to
 * degrade, 3 samples over >= 4 s to recover. */
static qos_machine *new_machine(rec *r) {
        qos_machine *m = NULL;
        qos_params p;

        qos_params_default(&p);
        p.rtt_threshold_usec = 200 * MS;
        p.retrans_threshold_per_mille = 50;
        p.rto_threshold = 3;
        p.rto_window_usec = 5 * SEC;
        p.degrade_after_samples = 3;
        p.degrade_after_usec = 2 * SEC;
        p.recover_after_samples = 3;
        p.recover_after_usec = 4 * SEC;
        CU_ASSERT_EQUAL_FATAL(qos_machine_new(&p, &m), 0);
        memset(r, 0, sizeof(*r));
        qos_machine_set_handler(m, record, r);
        return m;
}

static const qos_sample good = { .has_tcp = true, .rtt_us = 20 * MS, .retrans_per_mille = 1 };
static const qos_sample slow = { .has_tcp = true, .rtt_us = 500 * MS, .retrans_per_mille = 1 };
static const qos_sample lossy = { .has_tcp = true, .rtt_us = 500 * MS, .retrans_per_mille = 120,
                                  .rx_bps = 1000, .tx_bps = 2000 };

static void test_state_names(void) {
        CU_ASSERT_STRING_EQUAL(qos_state_to_string(QOS_OFFLINE), "offline");
        CU_ASSERT_STRING_EQUAL(qos_state_to_string(QOS_DEGRADED), "degraded");
        CU_ASSERT_STRING_EQUAL(qos_state_to_string(QOS_ONLINE), "online");
        CU_ASSERT_PTR_NULL(qos_state_to_string(_QOS_STATE_MAX));
        CU_ASSERT_EQUAL(qos_state_from_string("degraded"), QOS_DEGRADED);
        CU_ASSERT_EQUAL(qos_state_from_string("DEGRADED"), _QOS_STATE_INVALID);
}

static void test_usable_link_goes_online(void) {
        rec r;
        _cleanup_qos_machine_ qos_machine *m = new_machine(&r);

        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_OFFLINE);
        CU_ASSERT_EQUAL(qos_link_update(m, 2, &usable, 1 * SEC), 0);
        CU_ASSERT_EQUAL_FATAL(r.n, 2);
        /* Interface first, then the overall state it caused. */
        CU_ASSERT_FALSE(r.t[0].overall);
        CU_ASSERT_EQUAL(r.t[0].ifindex, 2);
        CU_ASSERT_STRING_EQUAL(r.names[0], "eth0");
        CU_ASSERT_EQUAL(r.t[0].state, QOS_ONLINE);
        CU_ASSERT_EQUAL(r.t[0].prev_state, QOS_OFFLINE);
        CU_ASSERT_STRING_EQUAL(r.reasons[0], "usable");
        CU_ASSERT_TRUE(r.t[1].overall);
        CU_ASSERT_EQUAL(r.t[1].state, QOS_ONLINE);
        CU_ASSERT_STRING_EQUAL(r.names[1], "eth0");
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_ONLINE);
        CU_ASSERT_EQUAL(qos_machine_get_overall_since(m), 1 * SEC);

        /* The same facts again: no transition. */
        CU_ASSERT_EQUAL(qos_link_update(m, 2, &usable, 2 * SEC), 0);
        CU_ASSERT_EQUAL(r.n, 2);
}

static void check_offline_reason(qos_link_info info, const char *want) {
        rec r;
        _cleanup_qos_machine_ qos_machine *m = new_machine(&r);
        const char *reason = NULL;
        qos_state st;

        CU_ASSERT_EQUAL(qos_link_update(m, 2, &usable, 0), 0);
        CU_ASSERT_EQUAL(qos_link_update(m, 2, &info, 1 * SEC), 0);
        CU_ASSERT_EQUAL_FATAL(r.n, 4);
        CU_ASSERT_EQUAL(r.t[2].state, QOS_OFFLINE);
        CU_ASSERT_EQUAL(r.t[2].prev_state, QOS_ONLINE);
        CU_ASSERT_STRING_EQUAL(r.reasons[2], want);
        CU_ASSERT_TRUE(r.t[3].overall);
        CU_ASSERT_EQUAL(r.t[3].state, QOS_OFFLINE);
        CU_ASSERT_STRING_EQUAL(r.reasons[3], want);
        CU_ASSERT_EQUAL(qos_link_get(m, 2, NULL, &st, NULL, &reason, NULL, NULL, NULL), 0);
        CU_ASSERT_EQUAL(st, QOS_OFFLINE);
        CU_ASSERT_STRING_EQUAL(reason, want);
}

static void test_offline_reasons(void) {
        qos_link_info i;

        i = usable, i.up = false;
        check_offline_reason(i, "link-down");
        i = usable, i.carrier = false;
        check_offline_reason(i, "no-carrier");
        i = usable, i.has_address = false;
        check_offline_reason(i, "no-address");
        i = usable, i.default_route = false;
        check_offline_reason(i, "no-default-route");
        /* The first missing thing is the reason. */
        i = usable, i.carrier = false, i.default_route = false;
        check_offline_reason(i, "no-carrier");
}

static void test_offline_reason_change_is_not_a_transition(void) {
        rec r;
        _cleanup_qos_machine_ qos_machine *m = new_machine(&r);
        qos_link_info i = usable;
        const char *reason;

        i.carrier = false;
        CU_ASSERT_EQUAL(qos_link_update(m, 2, &i, 0), 0);
        /* A new link that starts OFFLINE: nothing changed. */
        CU_ASSERT_EQUAL(r.n, 0);
        i.carrier = true, i.has_address = false;
        CU_ASSERT_EQUAL(qos_link_update(m, 2, &i, 1 * SEC), 0);
        CU_ASSERT_EQUAL(r.n, 0);
        CU_ASSERT_EQUAL(qos_link_get(m, 2, NULL, NULL, NULL, &reason, NULL, NULL, NULL), 0);
        CU_ASSERT_STRING_EQUAL(reason, "no-address");
}

static void test_single_bad_sample_does_not_degrade(void) {
        rec r;
        _cleanup_qos_machine_ qos_machine *m = new_machine(&r);

        CU_ASSERT_EQUAL(qos_link_update(m, 2, &usable, 0), 0);
        r.n = 0;
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &lossy, 1 * SEC), 0);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &good, 2 * SEC), 0);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &lossy, 3 * SEC), 0);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &lossy, 4 * SEC), 0);
        /* Interrupted by a good sample: the count restarted. */
        CU_ASSERT_EQUAL(r.n, 0);
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_ONLINE);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &lossy, 5 * SEC), 0);
        CU_ASSERT_EQUAL_FATAL(r.n, 2);
        CU_ASSERT_EQUAL(r.t[0].state, QOS_DEGRADED);
        CU_ASSERT_EQUAL(r.t[0].prev_state, QOS_ONLINE);
        CU_ASSERT_STRING_EQUAL(r.reasons[0], "rtt,retransmits");
        CU_ASSERT_EQUAL(r.t[0].metrics.rtt_us, 500 * MS);
        CU_ASSERT_EQUAL(r.t[0].metrics.retrans_per_mille, 120);
        CU_ASSERT_EQUAL(r.t[0].metrics.rx_bps, 1000);
        CU_ASSERT_EQUAL(r.t[0].metrics.tx_bps, 2000);
        CU_ASSERT_EQUAL(r.t[0].now_usec, 5 * SEC);
        CU_ASSERT_TRUE(r.t[1].overall);
        CU_ASSERT_EQUAL(r.t[1].state, QOS_DEGRADED);
}

static void test_degrade_needs_time_as_well_as_samples(void) {
        rec r;
        _cleanup_qos_machine_ qos_machine *m = new_machine(&r);

        CU_ASSERT_EQUAL(qos_link_update(m, 2, &usable, 0), 0);
        r.n = 0;
        /* Three bad samples within 1 s: enough samples, not long enough. */
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &slow, 10 * SEC), 0);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &slow, 10 * SEC + 500 * MS), 0);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &slow, 11 * SEC), 0);
        CU_ASSERT_EQUAL(r.n, 0);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &slow, 12 * SEC), 0);
        CU_ASSERT_EQUAL_FATAL(r.n, 2);
        CU_ASSERT_STRING_EQUAL(r.reasons[0], "rtt");
}

static qos_machine *degraded_machine(rec *r) {
        qos_machine *m = new_machine(r);

        CU_ASSERT_EQUAL(qos_link_update(m, 2, &usable, 0), 0);
        for (int i = 1; i <= 3; i++)
                CU_ASSERT_EQUAL(qos_link_sample(m, 2, &slow, i * SEC), 0);
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_DEGRADED);
        r->n = 0;
        return m;
}

static void test_recovery_needs_the_hysteresis_period(void) {
        rec r;
        _cleanup_qos_machine_ qos_machine *m = degraded_machine(&r);

        /* Good at 10, 11, 12 s: three samples but only 2 s. */
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &good, 10 * SEC), 0);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &good, 11 * SEC), 0);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &good, 12 * SEC), 0);
        CU_ASSERT_EQUAL(r.n, 0);
        /* One bad sample restarts the clearing period. */
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &slow, 13 * SEC), 0);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &good, 14 * SEC), 0);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &good, 16 * SEC), 0);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &good, 17 * SEC), 0);
        CU_ASSERT_EQUAL(r.n, 0);
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_DEGRADED);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &good, 18 * SEC), 0);
        CU_ASSERT_EQUAL_FATAL(r.n, 2);
        CU_ASSERT_EQUAL(r.t[0].state, QOS_ONLINE);
        CU_ASSERT_EQUAL(r.t[0].prev_state, QOS_DEGRADED);
        CU_ASSERT_STRING_EQUAL(r.reasons[0], "recovered");
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_ONLINE);
}

static void test_no_traffic_counts_as_good(void) {
        rec r;
        _cleanup_qos_machine_ qos_machine *m = degraded_machine(&r);
        const qos_sample idle = { .has_tcp = false, .rtt_us = 900 * MS, .retrans_per_mille = 900 };

        for (int i = 0; i <= 4; i++)
                CU_ASSERT_EQUAL(qos_link_sample(m, 2, &idle, (10 + i) * SEC), 0);
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_ONLINE);
}

static void test_rto_burst_degrades_at_once(void) {
        rec r;
        _cleanup_qos_machine_ qos_machine *m = new_machine(&r);
        qos_metrics mt;

        CU_ASSERT_EQUAL(qos_link_update(m, 2, &usable, 0), 0);
        r.n = 0;
        /* Two events, then the window (5 s) passes: no burst. */
        CU_ASSERT_EQUAL(qos_link_rto_event(m, 2, 1 * SEC), 0);
        CU_ASSERT_EQUAL(qos_link_rto_event(m, 2, 2 * SEC), 0);
        CU_ASSERT_EQUAL(qos_link_rto_event(m, 2, 7 * SEC), 0);
        CU_ASSERT_EQUAL(r.n, 0);
        CU_ASSERT_EQUAL(qos_link_get(m, 2, NULL, NULL, NULL, NULL, NULL, NULL, &mt), 0);
        CU_ASSERT_EQUAL(mt.rto_events, 1);
        CU_ASSERT_EQUAL(qos_link_rto_event(m, 2, 8 * SEC), 0);
        CU_ASSERT_EQUAL(r.n, 0);
        CU_ASSERT_EQUAL(qos_link_rto_event(m, 2, 8 * SEC + 1), 0);
        CU_ASSERT_EQUAL_FATAL(r.n, 2);
        CU_ASSERT_EQUAL(r.t[0].state, QOS_DEGRADED);
        CU_ASSERT_STRING_EQUAL(r.reasons[0], "rto");
        CU_ASSERT_EQUAL(r.t[0].metrics.rto_events, 3);
        CU_ASSERT_EQUAL(qos_link_rto_event(m, 99, 8 * SEC), -ENOENT);

        /* Good samples while the burst is still in the window do not count. */
        r.n = 0;
        for (int i = 0; i < 5; i++)
                CU_ASSERT_EQUAL(qos_link_sample(m, 2, &good, 9 * SEC + i * 500 * MS), 0);
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_DEGRADED);
        for (int i = 0; i <= 4; i++)
                CU_ASSERT_EQUAL(qos_link_sample(m, 2, &good, (14 + i) * SEC), 0);
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_ONLINE);
}

static void test_offline_and_back_resets(void) {
        rec r;
        _cleanup_qos_machine_ qos_machine *m = degraded_machine(&r);
        qos_link_info down = usable;

        down.carrier = false;
        CU_ASSERT_EQUAL(qos_link_update(m, 2, &down, 10 * SEC), 0);
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_OFFLINE);
        CU_ASSERT_EQUAL(r.t[0].prev_state, QOS_DEGRADED);
        /* Samples while offline change nothing. */
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &slow, 11 * SEC), 0);
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_OFFLINE);
        r.n = 0;
        CU_ASSERT_EQUAL(qos_link_update(m, 2, &usable, 12 * SEC), 0);
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_ONLINE);
        CU_ASSERT_EQUAL_FATAL(r.n, 2);
        CU_ASSERT_EQUAL(r.t[0].prev_state, QOS_OFFLINE);
        CU_ASSERT_STRING_EQUAL(r.reasons[0], "usable");
}

static void test_overall_best_and_primary(void) {
        rec r;
        _cleanup_qos_machine_ qos_machine *m = new_machine(&r);
        qos_link_info wifi = usable, lte = usable, lo = usable;

        wifi.name = "wlan0";
        lte.name = "wwan0", lte.metered = true;
        lo.name = "lo", lo.watched = false;

        CU_ASSERT_EQUAL(qos_link_update(m, 1, &lo, 0), 0);
        /* An unwatched link never makes the overall state. */
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_OFFLINE);
        CU_ASSERT_STRING_EQUAL(qos_machine_get_overall_reason(m), "no-interface");

        CU_ASSERT_EQUAL(qos_link_update(m, 3, &wifi, 0), 0);
        CU_ASSERT_EQUAL(qos_link_update(m, 4, &lte, 0), 0);
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_ONLINE);
        /* Tie without a primary: the lowest ifindex. */
        CU_ASSERT_EQUAL(qos_machine_get_overall_ifindex(m), 3);
        CU_ASSERT_FALSE(qos_machine_get_overall_metered(m));

        r.n = 0;
        qos_machine_set_primary(m, 4, 1 * SEC);
        CU_ASSERT_EQUAL(qos_machine_get_overall_ifindex(m), 4);
        CU_ASSERT_TRUE(qos_machine_get_overall_metered(m));
        /* Same state through another interface: not an overall transition. */
        CU_ASSERT_EQUAL(r.n, 0);

        /* The primary degrades: the better wifi represents the overall state. */
        for (int i = 2; i <= 4; i++)
                CU_ASSERT_EQUAL(qos_link_sample(m, 4, &slow, i * SEC), 0);
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_ONLINE);
        CU_ASSERT_EQUAL(qos_machine_get_overall_ifindex(m), 3);
        CU_ASSERT_EQUAL(r.n, 1); /* only wwan0's own transition */

        /* wifi drops: the overall state is now the degraded LTE. */
        wifi.carrier = false;
        r.n = 0;
        CU_ASSERT_EQUAL(qos_link_update(m, 3, &wifi, 5 * SEC), 0);
        CU_ASSERT_EQUAL_FATAL(r.n, 2);
        CU_ASSERT_TRUE(r.t[1].overall);
        CU_ASSERT_EQUAL(r.t[1].state, QOS_DEGRADED);
        CU_ASSERT_EQUAL(r.t[1].prev_state, QOS_ONLINE);
        CU_ASSERT_EQUAL(r.t[1].ifindex, 4);
        CU_ASSERT_STRING_EQUAL(r.names[1], "wwan0");
        CU_ASSERT_TRUE(r.t[1].metered);

        /* LTE removed: nothing left. */
        r.n = 0;
        qos_link_remove(m, 4, 6 * SEC);
        CU_ASSERT_EQUAL_FATAL(r.n, 2);
        CU_ASSERT_STRING_EQUAL(r.reasons[0], "removed");
        CU_ASSERT_EQUAL(r.t[1].state, QOS_OFFLINE);
        CU_ASSERT_EQUAL(qos_link_get(m, 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL), -ENOENT);
        CU_ASSERT_EQUAL(qos_machine_next_link(m, 0), 1);
        CU_ASSERT_EQUAL(qos_machine_next_link(m, 1), 3);
        CU_ASSERT_EQUAL(qos_machine_next_link(m, 3), 0);
}

static void test_metered_and_rename(void) {
        rec r;
        _cleanup_qos_machine_ qos_machine *m = new_machine(&r);
        qos_link_info i = usable;
        const char *name;
        bool metered;

        CU_ASSERT_EQUAL(qos_link_update(m, 2, &i, 0), 0);
        i.metered = true;
        i.name = "renamed0";
        CU_ASSERT_EQUAL(qos_link_update(m, 2, &i, 1), 0);
        CU_ASSERT_EQUAL(qos_link_get(m, 2, &name, NULL, NULL, NULL, NULL, &metered, NULL), 0);
        CU_ASSERT_STRING_EQUAL(name, "renamed0");
        CU_ASSERT_TRUE(metered);
        CU_ASSERT_TRUE(qos_machine_get_overall_metered(m));
        CU_ASSERT_EQUAL(qos_link_update(m, 0, &i, 1), -EINVAL);
        CU_ASSERT_EQUAL(qos_link_sample(m, 7, &good, 1), -ENOENT);
}

static void test_params_reload_restarts_counters(void) {
        rec r;
        _cleanup_qos_machine_ qos_machine *m = new_machine(&r);
        qos_params p;

        CU_ASSERT_EQUAL(qos_link_update(m, 2, &usable, 0), 0);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &slow, 1 * SEC), 0);
        CU_ASSERT_EQUAL(qos_link_sample(m, 2, &slow, 2 * SEC), 0);
        /* 500 ms is fine under the new threshold. */
        qos_params_default(&p);
        p.rtt_threshold_usec = 1 * SEC;
        p.degrade_after_usec = 0;
        qos_machine_set_params(m, &p);
        for (int i = 3; i < 10; i++)
                CU_ASSERT_EQUAL(qos_link_sample(m, 2, &slow, i * SEC), 0);
        CU_ASSERT_EQUAL(qos_machine_get_state(m), QOS_ONLINE);
}

static CU_TestInfo tests[] = {
        { "state names", test_state_names },
        { "usable link goes online", test_usable_link_goes_online },
        { "offline reasons", test_offline_reasons },
        { "offline reason change is not a transition", test_offline_reason_change_is_not_a_transition },
        { "a single bad sample does not degrade", test_single_bad_sample_does_not_degrade },
        { "degrading needs time as well as samples", test_degrade_needs_time_as_well_as_samples },
        { "recovery needs the hysteresis period", test_recovery_needs_the_hysteresis_period },
        { "no traffic counts as good", test_no_traffic_counts_as_good },
        { "RTO burst degrades at once", test_rto_burst_degrades_at_once },
        { "offline and back resets", test_offline_and_back_resets },
        { "overall: best state, primary on ties", test_overall_best_and_primary },
        { "metered flag and rename", test_metered_and_rename },
        { "new parameters restart the counters", test_params_reload_restarts_counters },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("qos", tests)
