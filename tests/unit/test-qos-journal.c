/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "qos-journal.h"
#include "tests.h"

typedef struct entry {
        int level;
        char fields[40][128];
        size_t n;
} entry;

static entry entries[16];
static size_t n_entries;

static void sink(int level, char **fields, void *userdata) {
        entry *e;

        if (n_entries >= ELEMENTSOF(entries))
                return;
        e = &entries[n_entries++];
        e->level = level;
        e->n = 0;
        for (char **f = fields; *f && e->n < ELEMENTSOF(e->fields); f++)
                snprintf(e->fields[e->n++], sizeof(e->fields[0]), "%s", *f);
}

static const char *field(const entry *e, const char *key) {
        size_t n = strlen(key);

        for (size_t i = 0; i < e->n; i++)
                if (strncmp(e->fields[i], key, n) == 0 && e->fields[i][n] == '=')
                        return e->fields[i] + n + 1;
        return NULL;
}

static int setup(void) {
        log_set_sink(sink, NULL);
        log_set_max_level(LOG_INFO);
        return 0;
}

static int teardown(void) {
        log_set_sink(NULL, NULL);
        return 0;
}

#define CHECK_FIELD(e, key, value)                                      \
        do {                                                            \
                const char *_v = field((e), (key));                     \
                CU_ASSERT_PTR_NOT_NULL(_v);                             \
                if (_v)                                                 \
                        CU_ASSERT_STRING_EQUAL(_v, (value));            \
        } while (0)

/* Every field the brief promises on a transition, with its value. */
static void check_transition_fields(const entry *e, const char *ifname, const char *state, const char *prev,
                                    const char *reason) {
        CHECK_FIELD(e, "INTERFACE", ifname);
        CHECK_FIELD(e, "QOS_STATE", state);
        CHECK_FIELD(e, "QOS_PREV_STATE", prev);
        CHECK_FIELD(e, "QOS_REASON", reason);
        CHECK_FIELD(e, "QOS_RTT_US", "412000");
        CHECK_FIELD(e, "QOS_RETRANS_PER_MILLE", "87");
        CHECK_FIELD(e, "QOS_RX_BPS", "12345");
        CHECK_FIELD(e, "QOS_TX_BPS", "678");
        CHECK_FIELD(e, "QOS_RTO_EVENTS", "2");
        CU_ASSERT_PTR_NOT_NULL(field(e, "MESSAGE"));
        CU_ASSERT_PTR_NOT_NULL(field(e, "QOS_MONOTONIC_USEC"));
}

static const qos_metrics metrics = {
        .rtt_us = 412000, .retrans_per_mille = 87, .rto_events = 2, .rx_bps = 12345, .tx_bps = 678,
};

static void test_interface_transitions(void) {
        n_entries = 0;
        qos_journal_transition(&(qos_transition) {
                .ifindex = 3, .ifname = "veth0", .state = QOS_DEGRADED, .prev_state = QOS_ONLINE,
                .reason = "rtt,retransmits", .metered = true, .metrics = metrics });
        qos_journal_transition(&(qos_transition) {
                .ifindex = 3, .ifname = "veth0", .state = QOS_OFFLINE, .prev_state = QOS_DEGRADED,
                .reason = "no-carrier", .metrics = metrics });
        qos_journal_transition(&(qos_transition) {
                .ifindex = 3, .ifname = "veth0", .state = QOS_ONLINE, .prev_state = QOS_OFFLINE,
                .reason = "usable", .metrics = metrics });
        CU_ASSERT_EQUAL_FATAL(n_entries, 3);

        CU_ASSERT_EQUAL(entries[0].level, LOG_WARNING);
        CHECK_FIELD(&entries[0], "MESSAGE_ID", QOS_MESSAGE_ID_LINK_STATE);
        CHECK_FIELD(&entries[0], "QOS_SCOPE", "interface");
        CHECK_FIELD(&entries[0], "QOS_METERED", "yes");
        CHECK_FIELD(&entries[0], "MESSAGE", "Interface veth0 is now degraded (was online): rtt,retransmits.");
        check_transition_fields(&entries[0], "veth0", "degraded", "online", "rtt,retransmits");

        CU_ASSERT_EQUAL(entries[1].level, LOG_WARNING);
        CHECK_FIELD(&entries[1], "QOS_METERED", "no");
        check_transition_fields(&entries[1], "veth0", "offline", "degraded", "no-carrier");

        CU_ASSERT_EQUAL(entries[2].level, LOG_INFO);
        check_transition_fields(&entries[2], "veth0", "online", "offline", "usable");
}

static void test_overall_transition(void) {
        n_entries = 0;
        qos_journal_transition(&(qos_transition) {
                .overall = true, .ifindex = 3, .ifname = "wwan0", .state = QOS_DEGRADED,
                .prev_state = QOS_ONLINE, .reason = "rto", .metrics = metrics });
        qos_journal_transition(&(qos_transition) {
                .overall = true, .state = QOS_OFFLINE, .prev_state = QOS_DEGRADED,
                .reason = "no-interface", .metrics = metrics });
        CU_ASSERT_EQUAL_FATAL(n_entries, 2);
        CU_ASSERT_EQUAL(entries[0].level, LOG_WARNING);
        CHECK_FIELD(&entries[0], "MESSAGE_ID", QOS_MESSAGE_ID_OVERALL_STATE);
        CHECK_FIELD(&entries[0], "QOS_SCOPE", "overall");
        check_transition_fields(&entries[0], "wwan0", "degraded", "online", "rto");
        /* No interface carries the overall state: the field is there, empty. */
        check_transition_fields(&entries[1], "", "offline", "degraded", "no-interface");
}

static void test_gate_and_mobility(void) {
        n_entries = 0;
        qos_journal_gate(GATE_DOWNLOADS, false, "metered", QOS_ONLINE, "wwan0", &metrics);
        qos_journal_gate(GATE_REGISTRATION, true, "degraded", QOS_DEGRADED, "eth0", NULL);
        qos_journal_mobility(&(gate_mobility) { .old_ifname = "eth0", .old_address = "10.0.0.2/24",
                                                .new_ifname = "wwan0", .new_address = "100.64.0.9/32" });
        CU_ASSERT_EQUAL_FATAL(n_entries, 3);

        CU_ASSERT_EQUAL(entries[0].level, LOG_NOTICE);
        CHECK_FIELD(&entries[0], "MESSAGE_ID", QOS_MESSAGE_ID_GATE);
        CHECK_FIELD(&entries[0], "QOS_GATE", "downloads");
        CHECK_FIELD(&entries[0], "QOS_GATE_OPEN", "no");
        check_transition_fields(&entries[0], "wwan0", "online", "online", "metered");

        CU_ASSERT_EQUAL(entries[1].level, LOG_INFO);
        CHECK_FIELD(&entries[1], "QOS_GATE", "registration");
        CHECK_FIELD(&entries[1], "QOS_GATE_OPEN", "yes");
        CHECK_FIELD(&entries[1], "QOS_STATE", "degraded");
        CHECK_FIELD(&entries[1], "QOS_RTT_US", "0");

        CHECK_FIELD(&entries[2], "MESSAGE_ID", QOS_MESSAGE_ID_MOBILITY);
        CHECK_FIELD(&entries[2], "INTERFACE", "wwan0");
        CHECK_FIELD(&entries[2], "QOS_OLD_INTERFACE", "eth0");
        CHECK_FIELD(&entries[2], "QOS_OLD_ADDRESS", "10.0.0.2/24");
        CHECK_FIELD(&entries[2], "QOS_NEW_ADDRESS", "100.64.0.9/32");
}

static void test_sample_and_rate_limit(void) {
        uint64_t last = 0;

        n_entries = 0;
        qos_journal_sample("eth0", QOS_ONLINE, "usable", false, &metrics);
        CU_ASSERT_EQUAL_FATAL(n_entries, 1);
        CU_ASSERT_EQUAL(entries[0].level, LOG_INFO);
        CHECK_FIELD(&entries[0], "MESSAGE_ID", QOS_MESSAGE_ID_SAMPLE);
        check_transition_fields(&entries[0], "eth0", "online", "online", "usable");

        /* Once per interval: the first at once, then not before 60 s. */
        CU_ASSERT_TRUE(qos_journal_sample_due(&last, 60000000, 5000000));
        CU_ASSERT_FALSE(qos_journal_sample_due(&last, 60000000, 6000000));
        CU_ASSERT_FALSE(qos_journal_sample_due(&last, 60000000, 64999999));
        CU_ASSERT_TRUE(qos_journal_sample_due(&last, 60000000, 65000000));
        CU_ASSERT_FALSE(qos_journal_sample_due(&last, 0, 999000000));
}

static void test_bpf_unavailable_and_lifecycle(void) {
        n_entries = 0;
        qos_journal_bpf_unavailable(-EPERM, "load failed: not permitted");
        agent_journal_started("0.1.0", false);
        agent_journal_reload_failed("agent.conf:3: [QoS] RttThresholdMs=x: not a number");
        agent_journal_reloaded("/etc/rethink/agent.conf");
        agent_journal_stopping();
        CU_ASSERT_EQUAL_FATAL(n_entries, 5);
        CU_ASSERT_EQUAL(entries[0].level, LOG_WARNING);
        CHECK_FIELD(&entries[0], "MESSAGE_ID", QOS_MESSAGE_ID_BPF_UNAVAILABLE);
        CHECK_FIELD(&entries[0], "QOS_REASON", "load failed: not permitted");
        CHECK_FIELD(&entries[0], "ERRNO", "1");
        CHECK_FIELD(&entries[1], "MESSAGE_ID", AGENT_MESSAGE_ID_STARTED);
        CU_ASSERT_EQUAL(entries[2].level, LOG_ERR);
        CHECK_FIELD(&entries[2], "MESSAGE_ID", AGENT_MESSAGE_ID_RELOAD_FAILED);
        CU_ASSERT_PTR_NOT_NULL(strstr(field(&entries[2], "MESSAGE"), "RttThresholdMs=x"));
        CHECK_FIELD(&entries[3], "MESSAGE_ID", AGENT_MESSAGE_ID_RELOADED);
        CHECK_FIELD(&entries[4], "MESSAGE_ID", AGENT_MESSAGE_ID_STOPPING);
}

static void test_ids_are_distinct_and_in_catalog(void) {
        const char *ids[] = {
                QOS_MESSAGE_ID_LINK_STATE, QOS_MESSAGE_ID_OVERALL_STATE, QOS_MESSAGE_ID_GATE,
                QOS_MESSAGE_ID_MOBILITY, QOS_MESSAGE_ID_SAMPLE, QOS_MESSAGE_ID_BPF_UNAVAILABLE,
                AGENT_MESSAGE_ID_STARTED, AGENT_MESSAGE_ID_STOPPING, AGENT_MESSAGE_ID_RELOAD_FAILED,
                AGENT_MESSAGE_ID_RELOADED,
        };
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *catalog = NULL;
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                CU_ASSERT_EQUAL(strlen(ids[i]), 32);
                for (size_t k = i + 1; k < ELEMENTSOF(ids); k++)
                        CU_ASSERT_STRING_NOT_EQUAL(ids[i], ids[k]);
        }

        /* The unit tests run from the source tree (tests/run-all cds there). */
        f = fopen("units/rethink.catalog", "re");
        if (!f)
                f = fopen("../../../units/rethink.catalog", "re");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT(getdelim(&catalog, &n, '\0', f) > 0);
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                char header[64];

                snprintf(header, sizeof(header), "-- %s\n", ids[i]);
                CU_ASSERT_PTR_NOT_NULL(strstr(catalog, header));
        }
}

static CU_TestInfo tests[] = {
        { "interface transitions carry every field", test_interface_transitions },
        { "overall transitions", test_overall_transition },
        { "gate and mobility entries", test_gate_and_mobility },
        { "samples and their rate limit", test_sample_and_rate_limit },
        { "eBPF unavailable and lifecycle entries", test_bpf_unavailable_and_lifecycle },
        { "MESSAGE_IDs distinct and in the catalog", test_ids_are_distinct_and_in_catalog },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("qos-journal", tests, setup, teardown)
