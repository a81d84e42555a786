/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* context-producer: an example hyperty. It registers two context
 * resources, "temperature" (sensing) and "switch" (actuating), publishes
 * the temperature as SenML every intervalSec seconds and keeps the switch
 * that others update.
 *
 * The temperature comes from the first readable
 * <thermalDir>/thermal_zone<N>/temp (millidegrees Celsius, as the kernel
 * reports it); where there is none the source is simulated, and every
 * value says so in a "source" record, so that nobody mistakes it for a
 * measurement.
 *
 * Configuration ($RETHINK_COMPONENT_CONFIGURATION, all optional):
 *   {"intervalSec": 2, "source": "auto|thermal|simulated",
 *    "thermalDir": "/sys/class/thermal", "acl": {"*": "rw"}} */
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "hyperty.h"
#include "log.h"
#include "macro.h"
#include "rd-acl.h"
#include "senml.h"
#include "time-util.h"

#define INTERVAL_SEC_DEFAULT 2
#define INTERVAL_SEC_MAX 86400
#define THERMAL_DIR_DEFAULT "/sys/class/thermal"
#define REGISTER_RETRY_USEC (5 * USEC_PER_SEC)

typedef enum source_kind {
        SOURCE_AUTO,
        SOURCE_THERMAL,
        SOURCE_SIMULATED,
} source_kind;

typedef struct producer {
        sd_event *event;
        hyperty *hyperty;
        sd_event_source *timer;

        unsigned interval_sec;
        source_kind source;
        char *thermal_dir;
        char *thermal_path;  /* the zone in use; NULL: simulated */
        json_t *acl;

        bool registered;
        bool switch_on;
        uint64_t n_published;
} producer;

static producer *producer_free(producer *p) {
        if (!p)
                return NULL;
        sd_event_source_disable_unref(p->timer);
        hyperty_free(p->hyperty);
        sd_event_unref(p->event);
        free(p->thermal_dir);
        free(p->thermal_path);
        json_decref(p->acl);
        free(p);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(producer *, producer_free);

/* --- configuration ------------------------------------------------------------------------ */

static int parse_configuration(producer *p) {
        _cleanup_(json_decrefp) json_t *c = NULL;
        const char *key, *reason = NULL;
        json_t *v;
        int r;

        r = hyperty_get_configuration(&c);
        if (r < 0)
                return log_error_errno(r, "RETHINK_COMPONENT_CONFIGURATION is not a JSON object.");

        json_object_foreach(c, key, v) {
                if (streq(key, "intervalSec")) {
                        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                            json_integer_value(v) > INTERVAL_SEC_MAX)
                                return log_error_errno(EINVAL,
                                                       "Configuration key 'intervalSec': expected an integer from 1 to %d.",
                                                       INTERVAL_SEC_MAX);
                        p->interval_sec = (unsigned) json_integer_value(v);
                } else if (streq(key, "source")) {
                        const char *s = json_string_value(v);

                        if (streq_ptr(s, "auto"))
                                p->source = SOURCE_AUTO;
                        else if (streq_ptr(s, "thermal"))
                                p->source = SOURCE_THERMAL;
                        else if (streq_ptr(s, "simulated"))
                                p->source = SOURCE_SIMULATED;
                        else
                                return log_error_errno(EINVAL,
                                                       "Configuration key 'source': expected \"auto\", \"thermal\" or \"simulated\".");
                } else if (streq(key, "thermalDir")) {
                        const char *s = json_string_value(v);

                        if (!s || s[0] != '/')
                                return log_error_errno(EINVAL, "Configuration key 'thermalDir': expected an absolute path.");
                        free(p->thermal_dir);
                        p->thermal_dir = strdup(s);
                        if (!p->thermal_dir)
                                return log_oom();
                } else if (streq(key, "acl")) {
                        if (rd_acl_check(v, &reason) < 0)
                                return log_error_errno(EINVAL, "Configuration key 'acl': %s.", reason);
                        json_decref(p->acl);
                        p->acl = json_incref(v);
                } else
                        return log_error_errno(EINVAL, "Configuration key '%s' is not known.", key);
        }
        return 0;
}

/* --- the temperature -------------------------------------------------------------------------- */

static int thermal_read(const char *path, double *ret) {
        _cleanup_free_ char *s = NULL;
        char *end = NULL;
        long long milli;
        int r;

        r = read_full_file(path, 64, &s, NULL);
        if (r < 0)
                return r;
        errno = 0;
        milli = strtoll(s, &end, 10);
        if (errno != 0 || end == s || (*end != '\0' && *end != '\n'))
                return -EBADMSG;
        /* Plausible for any sensor on earth; outside it a driver reports an
         * error code or nonsense. */
        if (milli < -100000 || milli > 200000)
                return -ERANGE;
        *ret = (double) milli / 1000.0;
        return 0;
}

/* The first zone whose temp reads, in glob's (name) order. */
static int thermal_find(const char *dir, char **ret) {
        _cleanup_free_ char *pattern = NULL;
        glob_t g = {};
        int r = -ENOENT;

        if (asprintf(&pattern, "%s/thermal_zone*/temp", dir) < 0)
                return -ENOMEM;
        if (glob(pattern, 0, NULL, &g) != 0) {
                globfree(&g);
                return -ENOENT;
        }
        for (size_t i = 0; i < g.gl_pathc; i++) {
                double t;

                if (thermal_read(g.gl_pathv[i], &t) < 0)
                        continue;
                *ret = strdup(g.gl_pathv[i]);
                r = *ret ? 0 : -ENOMEM;
                break;
        }
        globfree(&g);
        return r;
}

static int choose_source(producer *p) {
        int r;

        if (p->source == SOURCE_SIMULATED) {
                log_struct(LOG_NOTICE,
                           LOG_MESSAGE("Temperature source: simulated (configured); values are not measurements."),
                           LOG_FIELD("CONTEXT_SOURCE", "simulated"));
                return 0;
        }
        r = thermal_find(p->thermal_dir, &p->thermal_path);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                if (p->source == SOURCE_THERMAL)
                        return log_error_errno(r, "Configuration key 'source' is \"thermal\", but no %s/thermal_zone*/temp is readable.",
                                               p->thermal_dir);
                log_struct(LOG_NOTICE,
                           LOG_MESSAGE("Temperature source: simulated, since no %s/thermal_zone*/temp is readable; values are not measurements.",
                                       p->thermal_dir),
                           LOG_FIELD("CONTEXT_SOURCE", "simulated"));
                return 0;
        }
        log_struct(LOG_INFO, LOG_MESSAGE("Temperature source: %s.", p->thermal_path),
                   LOG_FIELD("CONTEXT_SOURCE", "thermal"), LOG_FIELD("CONTEXT_SOURCE_PATH", "%s", p->thermal_path));
        return 0;
}

/* A slow wave around 21.5 °C with some wobble: looks alive in a demo,
 * stays plausible, and is plainly labelled anyway. */
static double simulated_temperature(void) {
        double t = (double) now(CLOCK_REALTIME) / USEC_PER_SEC;

        return round((21.5 + 2.0 * sin(t / 60.0) + 0.3 * sin(t / 7.0)) * 10.0) / 10.0;
}

/* --- publishing --------------------------------------------------------------------------------- */

static int publish_pack(producer *p, const char *name, json_t *records) {
        _cleanup_free_ char *base = NULL, *prefix = NULL;
        json_t *first;
        int r;

        base = hyperty_resource_address(p->hyperty, name);
        if (!base)
                return log_oom();
        /* bn is the resource's directory, so bn + n names the resource
         * itself, and the source record names a sibling. */
        prefix = strndup(base, strlen(base) - strlen(name));
        if (!prefix)
                return log_oom();
        first = json_array_get(records, 0);
        if (json_object_set_new(first, "bn", json_string(prefix)) < 0)
                return log_oom();
        r = hyperty_publish(p->hyperty, name, records);
        if (r < 0)
                return log_warning_errno(r, "Failed to publish %s: %m", base);
        return 0;
}

static int publish_temperature(producer *p) {
        _cleanup_(json_decrefp) json_t *pack = NULL;
        const char *source = "thermal";
        double value;
        int r;

        if (p->thermal_path) {
                r = thermal_read(p->thermal_path, &value);
                if (r < 0) {
                        /* A zone can vanish (module unloaded): say so once and
                         * go on simulated, labelled, rather than go silent. */
                        log_struct_errno(LOG_WARNING, r,
                                         LOG_MESSAGE("Failed to read %s, switching to a simulated source: %m",
                                                     p->thermal_path),
                                         LOG_FIELD("CONTEXT_SOURCE", "simulated"));
                        free(p->thermal_path);
                        p->thermal_path = NULL;
                }
        }
        if (!p->thermal_path) {
                value = simulated_temperature();
                source = "simulated";
        }

        pack = json_pack("[{s:s,s:s,s:f,s:f},{s:s,s:s}]", "n", "temperature", "u", "Cel", "v", value, "t",
                         (double) (now(CLOCK_REALTIME) / USEC_PER_MSEC) / 1000.0, "n", "source", "vs", source);
        if (!pack)
                return log_oom();
        r = publish_pack(p, "temperature", pack);
        if (r < 0)
                return r;
        p->n_published++;
        log_struct(LOG_INFO, LOG_MESSAGE("temperature %.1f Cel (%s)", value, source),
                   LOG_FIELD("CONTEXT_RESOURCE", "temperature"), LOG_FIELD("CONTEXT_VALUE", "%.1f", value),
                   LOG_FIELD("CONTEXT_SOURCE", "%s", source));
        return 0;
}

static int publish_switch(producer *p) {
        _cleanup_(json_decrefp) json_t *pack = NULL;

        pack = json_pack("[{s:s,s:b}]", "n", "switch", "vb", p->switch_on);
        if (!pack)
                return log_oom();
        return publish_pack(p, "switch", pack);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);
static void do_register(producer *p);

static int arm_timer(producer *p, usec_t delay) {
        int r = event_reset_time_relative(p->event, &p->timer, delay, on_timer, p, "producer-timer");
        if (r < 0)
                return log_error_errno(r, "Failed to arm the timer: %m");
        return sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        producer *p = userdata;

        if (!hyperty_is_connected(p->hyperty))
                return 0;
        if (!p->registered) {
                do_register(p);
                return 0;
        }
        (void) publish_temperature(p);
        (void) arm_timer(p, p->interval_sec * USEC_PER_SEC);
        return 0;
}

static void on_registered(hyperty *h, const rt_message *m, void *userdata) {
        producer *p = userdata;
        int code = rt_message_get_code(m);

        if (code != 200) {
                log_warning("Registration refused with %d (%s), trying again in %" PRIu64 " s.", code,
                            strna(rt_message_get_description(m)), REGISTER_RETRY_USEC / USEC_PER_SEC);
                (void) arm_timer(p, REGISTER_RETRY_USEC);
                return;
        }
        p->registered = true;
        log_struct(LOG_INFO, LOG_MESSAGE("Registered temperature and switch as %s.", hyperty_get_address(h)),
                   LOG_FIELD("HYPERTY_ADDRESS", "%s", hyperty_get_address(h)));
        (void) publish_switch(p);
        (void) publish_temperature(p);
        (void) arm_timer(p, p->interval_sec * USEC_PER_SEC);
}

static void do_register(producer *p) {
        _cleanup_(json_decrefp) json_t *reg = NULL;
        int r;

        /* "actuators" tells the Local RD that peers may update the switch
         * (as far as the ACL lets them), never the temperature. */
        reg = json_pack("{s:[s,s],s:[s],s:[s],s:O}", "resources", "temperature", "switch", "actuators", "switch",
                        "dataSchemes", "ctxt", "acl", p->acl);
        if (!reg) {
                log_oom();
                return;
        }
        r = hyperty_register(p->hyperty, reg, on_registered, p);
        if (r < 0) {
                log_warning_errno(r, "Failed to send the registration: %m");
                (void) arm_timer(p, REGISTER_RETRY_USEC);
        }
}

/* --- the actuator --------------------------------------------------------------------------------- */

/* The switch's new state: the one boolean of the pack. */
static int switch_value(json_t *value, bool *ret, const char **ret_reason) {
        json_t *record, *vb = NULL;
        size_t i;

        if (senml_check(value, ret_reason) < 0)
                return -EINVAL;
        json_array_foreach(value, i, record) {
                json_t *b = json_object_get(record, "vb");

                if (!b)
                        continue;
                if (vb) {
                        *ret_reason = "SenML: more than one boolean value for the switch";
                        return -EINVAL;
                }
                vb = b;
        }
        if (!vb) {
                *ret_reason = "SenML: no boolean value (vb) for the switch";
                return -EINVAL;
        }
        *ret = json_is_true(vb);
        return 0;
}

static void on_message(hyperty *h, const rt_message *m, void *userdata) {
        producer *p = userdata;
        _cleanup_free_ char *sw = hyperty_resource_address(h, "switch");
        _cleanup_free_ char *description = NULL;
        const char *reason = NULL, *resource = rt_message_get_resource(m);
        rt_message_type type = rt_message_get_type(m);
        bool on;
        int r;

        if (!sw) {
                log_oom();
                return;
        }
        if (type == RT_MESSAGE_UPDATE && (streq(rt_message_get_to(m, 0), sw) || streq_ptr(resource, sw))) {
                r = switch_value(rt_message_get_value(m), &on, &reason);
                if (r < 0) {
                        log_notice("Refused a switch update from %s: %s", rt_message_get_from(m), reason);
                        (void) hyperty_reply(h, m, 400, reason, NULL);
                        return;
                }
                log_struct(LOG_INFO, LOG_MESSAGE("switch %s by %s", on ? "on" : "off", rt_message_get_from(m)),
                           LOG_FIELD("CONTEXT_RESOURCE", "switch"), LOG_FIELD("CONTEXT_VALUE", "%s", on ? "on" : "off"),
                           LOG_FIELD("CONTEXT_ACTUATOR", "%s", rt_message_get_from(m)));
                p->switch_on = on;
                (void) publish_switch(p);
                {
                        _cleanup_(json_decrefp) json_t *v = json_pack("[{s:s,s:b}]", "n", "switch", "vb", on);

                        r = hyperty_reply(h, m, 200, on ? "switched on" : "switched off", v);
                }
                if (r < 0)
                        log_warning_errno(r, "Failed to answer %s: %m", rt_message_get_from(m));
                return;
        }

        if (type == RT_MESSAGE_RESPONSE || type == RT_MESSAGE_UPDATE)
                /* Publications and stray answers: nothing to say back. */
                return;
        if (asprintf(&description, "%s is not supported here", rt_message_type_to_string(type)) < 0)
                description = NULL;
        (void) hyperty_reply(h, m, 405, description ?: "not supported", NULL);
}

/* --- main ------------------------------------------------------------------------------------------- */

static void on_state(hyperty *h, bool connected, void *userdata) {
        producer *p = userdata;

        if (!connected) {
                log_notice("Lost the runtime's bus; reconnecting.");
                p->registered = false;
                (void) sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
                return;
        }
        log_info("Connected to %s in %s.", hyperty_get_runtime(h), strna(hyperty_get_domain(h)));
        do_register(p);
}

static void on_connectivity(hyperty *h, const char *state, void *userdata) {
        log_info("Connectivity: %s.", state);
}

int main(int argc, char *argv[]) {
        _cleanup_(producer_freep) producer *p = NULL;
        int r;

        log_open();

        p = calloc(1, sizeof(*p));
        if (!p)
                return log_oom(), EXIT_FAILURE;
        p->interval_sec = INTERVAL_SEC_DEFAULT;
        p->thermal_dir = strdup(THERMAL_DIR_DEFAULT);
        p->acl = json_pack("{s:s}", "*", "rw");
        if (!p->thermal_dir || !p->acl)
                return log_oom(), EXIT_FAILURE;

        r = parse_configuration(p);
        if (r < 0)
                return EXIT_FAILURE;
        r = choose_source(p);
        if (r < 0)
                return EXIT_FAILURE;

        r = hyperty_event_new(&p->event);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the event loop: %m"), EXIT_FAILURE;

        r = hyperty_new(p->event, NULL, &p->hyperty);
        if (r < 0)
                return log_error_errno(r, "Failed to set up libhyperty (RETHINK_BUS, RETHINK_ADDRESS, RETHINK_RUNTIME, bus token): %m"),
                       EXIT_FAILURE;
        hyperty_set_state_handler(p->hyperty, on_state, p);
        hyperty_set_message_handler(p->hyperty, on_message, p);
        hyperty_set_connectivity_handler(p->hyperty, on_connectivity, p);
        r = hyperty_connect(p->hyperty);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the bus: %m"), EXIT_FAILURE;

        r = sd_event_loop(p->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m"), EXIT_FAILURE;
        log_info("Stopping after %" PRIu64 " values.", p->n_published);
        return EXIT_SUCCESS;
}
