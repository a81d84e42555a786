/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* context-consumer: an example hyperty. It discovers a producer of a
 * context resource in the Global Registry, subscribes to its values and
 * logs each one; optionally it switches the producer's actuator every
 * switchAfter values.
 *
 * Path: when the producer's entry offers a local endpoint (location type
 * "local") and the mode allows it, the consumer asks the runtime for a p2p
 * protostub to that peer and subscribes through it; when that fails (error
 * answer, timeout) or the producer is reached through the Messaging
 * Service only, it subscribes through the domain. It follows the
 * producer's registry status and discovers again when the producer goes
 * away or has been silent for staleSec.
 *
 * Configuration ($RETHINK_COMPONENT_CONFIGURATION, all optional):
 *   {"resource": "temperature", "mode": "auto|p2p|pubsub",
 *    "switchAfter": N, "staleSec": 30, "retrySec": 5} */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "hyperty.h"
#include "log.h"
#include "macro.h"
#include "senml.h"
#include "time-util.h"

#define RESOURCE_DEFAULT "temperature"
#define STALE_SEC_DEFAULT 30
#define RETRY_SEC_DEFAULT 5
#define SECONDS_MAX 86400

typedef enum path_mode {
        MODE_AUTO,
        MODE_P2P,
        MODE_PUBSUB,
} path_mode;

typedef enum phase {
        PHASE_IDLE,        /* not connected */
        PHASE_DISCOVER,    /* waiting for the registry */
        PHASE_STUB,        /* waiting for the p2p protostub */
        PHASE_SUBSCRIBE,   /* waiting for the subscription's answer */
        PHASE_RECEIVING,
} phase;

typedef struct consumer {
        sd_event *event;
        hyperty *hyperty;
        sd_event_source *retry_timer;
        sd_event_source *stale_timer;

        char *resource_name;
        path_mode mode;
        unsigned switch_after;
        unsigned stale_sec;
        unsigned retry_sec;

        phase phase;
        /* Bumped whenever the consumer starts over, so that answers to an
         * abandoned attempt are recognised and ignored. */
        uint64_t attempt;
        char *producer;      /* hyperty://D/U */
        char *domain;        /* D */
        char *resource;      /* ctxt://D/U/<resource> */
        char *actuator;      /* ctxt://D/U/switch */
        char *endpoint;      /* the producer's local endpoint, if any */
        char *via;           /* p2p protostub address; NULL: the domain */
        char *status_resource; /* ctxt://D/registry/hyperty/U */

        uint64_t n_values;
        bool switch_state;
} consumer;

static const char *path_name(const consumer *c) {
        return c->via ? "p2p" : "pubsub";
}

static consumer *consumer_free(consumer *c) {
        if (!c)
                return NULL;
        sd_event_source_disable_unref(c->retry_timer);
        sd_event_source_disable_unref(c->stale_timer);
        hyperty_free(c->hyperty);
        sd_event_unref(c->event);
        free(c->resource_name);
        free(c->producer);
        free(c->domain);
        free(c->resource);
        free(c->actuator);
        free(c->endpoint);
        free(c->via);
        free(c->status_resource);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(consumer *, consumer_free);

static char *mfree_str(char *s) {
        free(s);
        return NULL;
}

static int set_string(char **p, const char *s) {
        char *d = NULL;

        if (s) {
                d = strdup(s);
                if (!d)
                        return -ENOMEM;
        }
        free(*p);
        *p = d;
        return 0;
}

/* --- configuration ------------------------------------------------------------------------ */

static int parse_seconds(const char *key, json_t *v, unsigned min, unsigned *ret) {
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > SECONDS_MAX)
                return log_error_errno(EINVAL, "Configuration key '%s': expected an integer from %u to %d.", key, min,
                                       SECONDS_MAX);
        *ret = (unsigned) json_integer_value(v);
        return 0;
}

static bool resource_name_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 64)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      (p > s && (*p == '.' || *p == '_' || *p == ':' || *p == '-'))))
                        return false;
        return true;
}

static int parse_configuration(consumer *c) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        const char *key;
        json_t *v;
        int r;

        r = hyperty_get_configuration(&j);
        if (r < 0)
                return log_error_errno(r, "RETHINK_COMPONENT_CONFIGURATION is not a JSON object.");

        json_object_foreach(j, key, v) {
                if (streq(key, "resource")) {
                        const char *s = json_string_value(v);

                        if (!s || !resource_name_is_valid(s))
                                return log_error_errno(EINVAL,
                                                       "Configuration key 'resource': expected a resource name (1-64 of A-Z a-z 0-9 . _ : -).");
                        if (set_string(&c->resource_name, s) < 0)
                                return log_oom();
                } else if (streq(key, "mode")) {
                        const char *s = json_string_value(v);

                        if (streq_ptr(s, "auto"))
                                c->mode = MODE_AUTO;
                        else if (streq_ptr(s, "p2p"))
                                c->mode = MODE_P2P;
                        else if (streq_ptr(s, "pubsub"))
                                c->mode = MODE_PUBSUB;
                        else
                                return log_error_errno(EINVAL,
                                                       "Configuration key 'mode': expected \"auto\", \"p2p\" or \"pubsub\".");
                } else if (streq(key, "switchAfter")) {
                        r = parse_seconds(key, v, 0, &c->switch_after);
                        if (r < 0)
                                return r;
                } else if (streq(key, "staleSec")) {
                        r = parse_seconds(key, v, 1, &c->stale_sec);
                        if (r < 0)
                                return r;
                } else if (streq(key, "retrySec")) {
                        r = parse_seconds(key, v, 1, &c->retry_sec);
                        if (r < 0)
                                return r;
                } else
                        return log_error_errno(EINVAL, "Configuration key '%s' is not known.", key);
        }
        return 0;
}

/* --- starting over ------------------------------------------------------------------------------ */

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata);
static void discover(consumer *c);

static void schedule_retry(consumer *c, unsigned sec) {
        int r = event_reset_time_relative(c->event, &c->retry_timer, sec * USEC_PER_SEC, on_retry, c,
                                          "consumer-retry");
        if (r >= 0)
                r = sd_event_source_set_enabled(c->retry_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "Failed to arm the retry timer: %m");
}

/* Forgets the producer (unsubscribing, best effort) and discovers again
 * after retrySec. */
static void start_over(consumer *c, const char *why) {
        if (c->producer)
                log_struct(LOG_NOTICE, LOG_MESSAGE("Leaving producer %s: %s.", c->producer, why),
                           LOG_FIELD("CONTEXT_PRODUCER", "%s", c->producer));
        if (c->resource && c->phase == PHASE_RECEIVING && hyperty_is_connected(c->hyperty)) {
                (void) hyperty_unsubscribe(c->hyperty, c->via, c->resource, NULL, NULL);
                if (c->status_resource)
                        (void) hyperty_unsubscribe(c->hyperty, NULL, c->status_resource, NULL, NULL);
        }
        c->attempt++;
        c->phase = hyperty_is_connected(c->hyperty) ? PHASE_DISCOVER : PHASE_IDLE;
        (void) set_string(&c->producer, NULL);
        (void) set_string(&c->domain, NULL);
        (void) set_string(&c->resource, NULL);
        (void) set_string(&c->actuator, NULL);
        (void) set_string(&c->endpoint, NULL);
        (void) set_string(&c->via, NULL);
        (void) set_string(&c->status_resource, NULL);
        (void) sd_event_source_set_enabled(c->stale_timer, SD_EVENT_OFF);
        if (c->phase == PHASE_DISCOVER)
                schedule_retry(c, c->retry_sec);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        consumer *c = userdata;

        if (hyperty_is_connected(c->hyperty))
                discover(c);
        return 0;
}

static int on_stale(sd_event_source *s, uint64_t usec, void *userdata) {
        consumer *c = userdata;

        start_over(c, "no value for a while");
        return 0;
}

static void arm_stale(consumer *c) {
        int r = event_reset_time_relative(c->event, &c->stale_timer, c->stale_sec * USEC_PER_SEC, on_stale, c,
                                          "consumer-stale");
        if (r >= 0)
                r = sd_event_source_set_enabled(c->stale_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "Failed to arm the staleness timer: %m");
}

/* Each request carries the attempt it belongs to, so that its answer can
 * tell whether it still matters. */
static void *attempt_tag(consumer *c) {
        return (void *) (uintptr_t) c->attempt;
}

static bool answer_is_current(consumer *c, void *tag) {
        return (uintptr_t) tag == c->attempt;
}

static consumer *the_consumer;

/* --- values ---------------------------------------------------------------------------------------- */

static void switch_actuator(consumer *c);

/* Logs the value of our resource in pack, if any. */
static void log_values(consumer *c, json_t *pack, const char *how) {
        const char *base = "", *source = NULL, *unit = NULL;
        json_t *record, *value = NULL;
        size_t i, n = strlen(c->resource_name);

        if (senml_check(pack, NULL) < 0) {
                log_notice("Ignoring a value from %s that is not SenML.", c->resource);
                return;
        }
        json_array_foreach(pack, i, record) {
                const char *bn = json_string_value(json_object_get(record, "bn"));
                const char *name = json_string_value(json_object_get(record, "n"));
                _cleanup_free_ char *full = NULL;
                size_t l;

                if (bn)
                        base = bn;
                if (asprintf(&full, "%s%s", base, strempty(name)) < 0)
                        return (void) log_oom();
                l = strlen(full);
                /* The resolved name is the resource address, or ends in
                 * the resource name for packs with a relative name. */
                if (streq(full, c->resource) || (l >= n && streq(full + l - n, c->resource_name) &&
                                                 (l == n || full[l - n - 1] == '/'))) {
                        if (json_object_get(record, "v")) {
                                value = json_object_get(record, "v");
                                unit = json_string_value(json_object_get(record, "u"));
                        }
                } else if (l >= 6 && streq(full + l - 6, "source") && (l == 6 || full[l - 7] == '/'))
                        source = json_string_value(json_object_get(record, "vs"));
        }
        if (!value) {
                log_debug("A value from %s without a number for %s.", c->resource, c->resource_name);
                return;
        }

        c->n_values++;
        log_struct(LOG_INFO,
                   LOG_MESSAGE("%s %g %s from %s via %s%s%s%s", c->resource_name, json_number_value(value),
                               strempty(unit), c->resource, how, source ? " (" : "", strempty(source),
                               source ? ")" : ""),
                   LOG_FIELD("CONTEXT_RESOURCE", "%s", c->resource), LOG_FIELD("CONTEXT_VALUE", "%g", json_number_value(value)),
                   LOG_FIELD("CONTEXT_UNIT", "%s", strempty(unit)), LOG_FIELD("CONTEXT_PATH", "%s", how),
                   LOG_FIELD("CONTEXT_SOURCE", "%s", source ?: "unknown"));
        arm_stale(c);

        if (c->switch_after > 0 && c->n_values % c->switch_after == 0)
                switch_actuator(c);
}

static void on_switched(hyperty *h, const rt_message *m, void *userdata) {
        consumer *c = the_consumer;
        int code = rt_message_get_code(m);

        if (code >= 200 && code < 300)
                log_struct(LOG_INFO, LOG_MESSAGE("switched %s: %d %s", c->actuator ? c->actuator : "the actuator", code,
                                                 strna(rt_message_get_description(m))),
                           LOG_FIELD("CONTEXT_ACTUATOR", "%s", strna(c->actuator)),
                           LOG_FIELD("CONTEXT_CODE", "%d", code));
        else
                log_struct(LOG_WARNING, LOG_MESSAGE("switching %s failed: %d %s", strna(c->actuator), code,
                                                    strna(rt_message_get_description(m))),
                           LOG_FIELD("CONTEXT_ACTUATOR", "%s", strna(c->actuator)),
                           LOG_FIELD("CONTEXT_CODE", "%d", code));
}

static void switch_actuator(consumer *c) {
        _cleanup_(json_decrefp) json_t *pack = NULL;
        int r;

        if (!c->actuator)
                return;
        c->switch_state = !c->switch_state;
        pack = json_pack("[{s:s,s:b}]", "n", "switch", "vb", c->switch_state);
        if (!pack)
                return (void) log_oom();
        log_info("Switching %s %s via %s.", c->actuator, c->switch_state ? "on" : "off", path_name(c));
        r = hyperty_update(c->hyperty, c->via, c->actuator, pack, on_switched, c);
        if (r < 0)
                log_warning_errno(r, "Failed to send the switch update: %m");
}

static void on_message(hyperty *h, const rt_message *m, void *userdata) {
        consumer *c = userdata;
        const char *from = rt_message_get_from(m);

        if (rt_message_get_type(m) != RT_MESSAGE_UPDATE) {
                (void) hyperty_reply(h, m, 405, "a consumer takes only publications", NULL);
                return;
        }
        if (c->status_resource && streq(from, c->status_resource)) {
                json_t *rec = json_array_get(rt_message_get_value(m), 0);
                const char *status = json_string_value(json_object_get(rec, "vs"));

                log_info("Producer %s is %s.", strna(c->producer), strna(status));
                if (!streq_ptr(status, "live"))
                        start_over(c, status ? status : "its status is unknown");
                return;
        }
        if (c->phase == PHASE_RECEIVING && c->resource && streq(from, c->resource)) {
                log_values(c, rt_message_get_value(m), path_name(c));
                return;
        }
        log_debug("Ignoring an update from %s.", from);
}

/* --- discovery, protostub, subscription ---------------------------------------------------------- */

static void subscribe(consumer *c);

static void on_status_subscribed(hyperty *h, const rt_message *m, void *userdata) {
        if (rt_message_get_code(m) != 200)
                /* Without it the staleness timer still notices a producer
                 * that went away. */
                log_debug("Following the producer's registry status failed: %d.", rt_message_get_code(m));
}

static void on_subscribed(hyperty *h, const rt_message *m, void *userdata) {
        consumer *c = the_consumer;
        int code = rt_message_get_code(m);
        json_t *last;

        if (!answer_is_current(c, userdata))
                return;
        if (code != 200) {
                if (c->via && c->mode == MODE_AUTO) {
                        log_notice("Subscribing to %s via p2p failed (%d %s); falling back to pubsub.", c->resource,
                                   code, strna(rt_message_get_description(m)));
                        (void) set_string(&c->via, NULL);
                        subscribe(c);
                        return;
                }
                log_warning("Subscribing to %s via %s failed: %d %s.", c->resource, path_name(c), code,
                            strna(rt_message_get_description(m)));
                start_over(c, "the subscription failed");
                return;
        }

        c->phase = PHASE_RECEIVING;
        log_struct(LOG_INFO, LOG_MESSAGE("Subscribed to %s via %s.", c->resource, path_name(c)),
                   LOG_FIELD("CONTEXT_RESOURCE", "%s", c->resource), LOG_FIELD("CONTEXT_PATH", "%s", path_name(c)));
        arm_stale(c);
        if (c->status_resource)
                (void) hyperty_subscribe(h, NULL, c->status_resource, on_status_subscribed, NULL);

        last = rt_message_get_value(m);
        if (json_is_array(last))
                log_values(c, last, path_name(c));
}

static void subscribe(consumer *c) {
        int r;

        c->phase = PHASE_SUBSCRIBE;
        r = hyperty_subscribe(c->hyperty, c->via, c->resource, on_subscribed, attempt_tag(c));
        if (r < 0) {
                log_warning_errno(r, "Failed to subscribe to %s: %m", c->resource);
                start_over(c, "the subscription could not be sent");
        }
}

static void on_stub(hyperty *h, const rt_message *m, void *userdata) {
        consumer *c = the_consumer;
        int code = rt_message_get_code(m);
        const char *address = json_string_value(json_object_get(rt_message_get_value(m), "address"));

        if (!answer_is_current(c, userdata))
                return;
        if (code != 200 || !address || !rt_address_is_valid(address)) {
                if (c->mode == MODE_P2P) {
                        log_warning("No p2p protostub for %s (%d %s); mode is p2p, trying again later.", c->endpoint,
                                    code, strna(rt_message_get_description(m)));
                        start_over(c, "no p2p protostub");
                        return;
                }
                log_notice("No p2p protostub for %s (%d %s); using pubsub.", c->endpoint, code,
                           strna(rt_message_get_description(m)));
                subscribe(c);
                return;
        }
        if (set_string(&c->via, address) < 0)
                return (void) log_oom();
        log_info("Reaching %s peer to peer through %s.", c->endpoint, address);
        subscribe(c);
}

/* The first usable entry of a registry answer. */
static json_t *pick_entry(consumer *c, json_t *value) {
        json_t *list = json_object_get(value, "hyperties"), *e;
        size_t i;

        json_array_foreach(list, i, e) {
                const char *url = json_string_value(json_object_get(e, "url"));
                _cleanup_rt_address_ rt_address *a = NULL;

                if (!url || rt_address_parse(url, &a, NULL) < 0 || rt_address_get_scheme(a) != RT_ADDRESS_HYPERTY)
                        continue;
                if (streq(url, hyperty_get_address(c->hyperty)))
                        continue;
                return e;
        }
        return NULL;
}

static int take_entry(consumer *c, json_t *entry) {
        _cleanup_rt_address_ rt_address *a = NULL;
        json_t *location = json_object_get(entry, "location");
        const char *url = json_string_value(json_object_get(entry, "url"));
        const char *type = json_string_value(json_object_get(location, "type"));
        const char *endpoint = json_string_value(json_object_get(location, "endpoint"));
        int r;

        r = rt_address_parse(url, &a, NULL);
        if (r < 0)
                return r;
        if (set_string(&c->producer, url) < 0 || set_string(&c->domain, rt_address_get_authority(a)) < 0)
                return -ENOMEM;
        c->resource = mfree_str(c->resource);
        c->actuator = mfree_str(c->actuator);
        c->status_resource = mfree_str(c->status_resource);
        if (asprintf(&c->resource, "ctxt://%s/%s/%s", rt_address_get_authority(a), rt_address_get_path(a),
                     c->resource_name) < 0 ||
            asprintf(&c->actuator, "ctxt://%s/%s/switch", rt_address_get_authority(a), rt_address_get_path(a)) < 0 ||
            asprintf(&c->status_resource, "ctxt://%s/registry/hyperty/%s", rt_address_get_authority(a),
                     rt_address_get_path(a)) < 0)
                return -ENOMEM;
        if (streq_ptr(type, "local") && endpoint && set_string(&c->endpoint, endpoint) < 0)
                return -ENOMEM;
        return 0;
}

static void on_discovered(hyperty *h, const rt_message *m, void *userdata) {
        consumer *c = the_consumer;
        int code = rt_message_get_code(m);
        _cleanup_(json_decrefp) json_t *target = NULL;
        json_t *entry;
        int r;

        if (!answer_is_current(c, userdata))
                return;
        if (code != 200) {
                log_warning("Discovery failed: %d %s; trying again in %u s.", code,
                            strna(rt_message_get_description(m)), c->retry_sec);
                start_over(c, "discovery failed");
                return;
        }
        entry = pick_entry(c, rt_message_get_value(m));
        if (!entry) {
                log_info("No live producer of %s yet; looking again in %u s.", c->resource_name, c->retry_sec);
                start_over(c, "no producer");
                return;
        }
        r = take_entry(c, entry);
        if (r < 0) {
                log_warning_errno(r, "Failed to use the registry entry: %m");
                start_over(c, "unusable registry entry");
                return;
        }
        log_struct(LOG_INFO,
                   LOG_MESSAGE("Found producer %s (%s%s%s).", c->producer, c->endpoint ? "local endpoint " : "messaging",
                               strempty(c->endpoint), ""),
                   LOG_FIELD("CONTEXT_PRODUCER", "%s", c->producer));

        if (c->endpoint && c->mode != MODE_PUBSUB) {
                target = json_pack("{s:s,s:s}", "peer", c->endpoint, "domain", c->domain);
                if (!target)
                        return (void) log_oom();
                c->phase = PHASE_STUB;
                r = hyperty_load_protostub(h, target, on_stub, attempt_tag(c));
                if (r >= 0)
                        return;
                log_warning_errno(r, "Failed to ask for a p2p protostub: %m");
        }
        if (c->mode == MODE_P2P) {
                log_warning("Producer %s offers no local endpoint, and mode is p2p; looking again in %u s.",
                            c->producer, c->retry_sec);
                start_over(c, "no local endpoint");
                return;
        }
        subscribe(c);
}

static void discover(consumer *c) {
        _cleanup_(json_decrefp) json_t *criteria = NULL;
        int r;

        c->attempt++;
        c->phase = PHASE_DISCOVER;
        criteria = json_pack("{s:s,s:s}", "resource", c->resource_name, "status", "live");
        if (!criteria)
                return (void) log_oom();
        r = hyperty_discover(c->hyperty, criteria, on_discovered, attempt_tag(c));
        if (r < 0) {
                log_warning_errno(r, "Failed to send the discovery: %m");
                schedule_retry(c, c->retry_sec);
        }
}

/* --- main ---------------------------------------------------------------------------------------- */

static void on_state(hyperty *h, bool connected, void *userdata) {
        consumer *c = userdata;

        if (!connected) {
                log_notice("Lost the runtime's bus; reconnecting.");
                c->phase = PHASE_IDLE;
                start_over(c, "the bus was lost");
                return;
        }
        log_info("Connected to %s in %s; looking for %s producers (mode %s).", hyperty_get_runtime(h),
                 strna(hyperty_get_domain(h)), c->resource_name,
                 c->mode == MODE_AUTO ? "auto" : c->mode == MODE_P2P ? "p2p" : "pubsub");
        discover(c);
}

int main(int argc, char *argv[]) {
        _cleanup_(consumer_freep) consumer *c = NULL;
        int r;

        log_open();

        c = calloc(1, sizeof(*c));
        if (!c)
                return log_oom(), EXIT_FAILURE;
        the_consumer = c;
        c->stale_sec = STALE_SEC_DEFAULT;
        c->retry_sec = RETRY_SEC_DEFAULT;
        c->resource_name = strdup(RESOURCE_DEFAULT);
        if (!c->resource_name)
                return log_oom(), EXIT_FAILURE;
        r = parse_configuration(c);
        if (r < 0)
                return EXIT_FAILURE;

        r = hyperty_event_new(&c->event);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the event loop: %m"), EXIT_FAILURE;

        r = hyperty_new(c->event, NULL, &c->hyperty);
        if (r < 0)
                return log_error_errno(r, "Failed to set up libhyperty (RETHINK_BUS, RETHINK_ADDRESS, RETHINK_RUNTIME, bus token): %m"),
                       EXIT_FAILURE;
        hyperty_set_state_handler(c->hyperty, on_state, c);
        hyperty_set_message_handler(c->hyperty, on_message, c);
        r = hyperty_connect(c->hyperty);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the bus: %m"), EXIT_FAILURE;

        r = sd_event_loop(c->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m"), EXIT_FAILURE;
        log_info("Stopping after %" PRIu64 " values.", c->n_values);
        return EXIT_SUCCESS;
}
