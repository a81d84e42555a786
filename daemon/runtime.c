/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "descriptor.h"
#include "id.h"
#include "log.h"
#include "rd-acl.h"
#include "registration.h"
#include "runtime.h"
#include "sha256.h"
#include "strv.h"
#include "time-util.h"

#define BUS_TOKEN_CREDENTIAL "rethink-bus-token"

typedef struct rt_instance rt_instance;

struct rt_instance {
        runtime *rt;
        rt_instance *next;

        char *address;
        char *component;
        char *key;
        launch_kind kind;
        launch_instance *launched;      /* set when the runtime started it itself (loadProtoStub) */
        json_t *target;                 /* protostubs: RETHINK_STUB_TARGET */
        char **env;                     /* what the last prepare handed the launcher */
        char *token;
        launch_credential credential;   /* points at token, for the launcher */
        bool connected;

        /* Hyperties that registered resources. */
        json_t *registration;           /* the value of their registration */
        json_t *resources;              /* ctxt:// addresses */
        json_t *actuators;              /* names others may update */
        bool registry_live;             /* the Global Registry has the entry */
        bool registry_dirty;            /* the registration changed while a request was out */
        bool registry_refused;          /* refused for good (4xx): not retried until it changes */
        uint64_t registry_request;      /* id of the request in flight, 0 for none */
        rt_message_type registry_request_type;
        sd_event_source *keepalive;
};

/* A loadProtoStub answered once the protostub is on the bus: a hyperty
 * can use the address it gets at once. */
typedef struct pending_load pending_load;
struct pending_load {
        runtime *rt;
        pending_load *next;
        char *address;
        rt_message *request;
        sd_event_source *timeout;
};

#define LOAD_TIMEOUT_USEC (15ULL * USEC_PER_SEC)

struct runtime {
        sd_event *event;
        pending_load *pending;
        unsigned n_pending;
        bus *bus;
        launcher *launcher;
        swmgr *swmgr;
        local_rd *local_rd;
        reg_session *session;

        char *domain;
        char *address;
        char *runtime_uuid;
        char *domain_url;
        char *ca_file;
        char *messaging_stub;
        char *p2p_stub;
        char *messaging_address;        /* the messaging protostub of our domain, once it is connected */
        unsigned registry_lifetime_sec;
        char *connectivity;

        rt_instance *instances;
};

/* --- addresses ------------------------------------------------------------------------------ */

int runtime_instance_address(const char *runtime_address, const char *domain, launch_kind kind,
                             const char *component, const char *key, char **ret) {
        const char *uuid = runtime_address ? strrchr(runtime_address, '/') : NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        _cleanup_free_ char *input = NULL;
        char *a;
        int r;

        if (!uuid || !domain || !component || !ret)
                return -EINVAL;
        if (asprintf(&input, "rethink-instance\n%s\n%s\n%s", uuid + 1, component, key ?: "main") < 0)
                return -ENOMEM;
        r = sha256_buffer(input, strlen(input), digest);
        if (r < 0)
                return r;
        /* A name-based UUID in the RFC 9562 layout (version 8, variant 10). */
        digest[6] = (digest[6] & 0x0f) | 0x80;
        digest[8] = (digest[8] & 0x3f) | 0x80;
        if (asprintf(&a,
                     "%s://%s/%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                     kind == LAUNCH_HYPERTY ? "hyperty" : "runtime", domain, digest[0], digest[1], digest[2],
                     digest[3], digest[4], digest[5], digest[6], digest[7], digest[8], digest[9], digest[10],
                     digest[11], digest[12], digest[13], digest[14], digest[15]) < 0)
                return -ENOMEM;
        if (!rt_address_is_valid(a)) {
                free(a);
                return -EINVAL;
        }
        *ret = a;
        return 0;
}

/* "ctxt://<domain>/<uuid>/<name>" of a hyperty "hyperty://<domain>/<uuid>". */
static char *resource_address(const char *hyperty, const char *name) {
        char *s;

        if (strncmp(hyperty, "hyperty://", 10) != 0 || asprintf(&s, "ctxt://%s/%s", hyperty + 10, name) < 0)
                return NULL;
        return s;
}

/* --- instances ------------------------------------------------------------------------------- */

static rt_instance *instance_find(runtime *rt, const char *address) {
        for (rt_instance *i = rt->instances; i; i = i->next)
                if (streq(i->address, address))
                        return i;
        return NULL;
}

static rt_instance *instance_find_key(runtime *rt, const char *component, const char *key) {
        for (rt_instance *i = rt->instances; i; i = i->next)
                if (streq(i->component, component) && streq(i->key, key))
                        return i;
        return NULL;
}

static rt_instance *instance_free(rt_instance *i) {
        if (!i)
                return NULL;
        sd_event_source_disable_unref(i->keepalive);
        launch_instance_free(i->launched);
        json_decref(i->target);
        json_decref(i->registration);
        json_decref(i->resources);
        json_decref(i->actuators);
        strv_free_all(i->env);
        if (i->token)
                explicit_bzero_safe(i->token, strlen(i->token));
        free(i->token);
        free(i->address);
        free(i->component);
        free(i->key);
        free(i);
        return NULL;
}

static void instance_unlink(runtime *rt, rt_instance *i) {
        for (rt_instance **p = &rt->instances; *p; p = &(*p)->next)
                if (*p == i) {
                        *p = i->next;
                        return;
                }
}

static int instance_get(runtime *rt, const char *component, const char *key, launch_kind kind,
                        rt_instance **ret) {
        _cleanup_free_ char *address = NULL;
        rt_instance *i = instance_find_key(rt, component, key);
        int r;

        if (i && i->kind == kind) {
                *ret = i;
                return 0;
        }
        if (i) {
                /* Reinstalled as the other kind: another scheme, another
                 * address. */
                (void) bus_remove_instance(rt->bus, i->address);
                instance_unlink(rt, i);
                instance_free(i);
        }
        r = runtime_instance_address(rt->address, rt->domain, kind, component, key, &address);
        if (r < 0)
                return r;
        i = calloc(1, sizeof(*i));
        if (!i)
                return -ENOMEM;
        i->rt = rt;
        i->kind = kind;
        i->address = TAKE_PTR(address);
        i->component = strdup(component);
        i->key = strdup(key);
        if (!i->component || !i->key) {
                instance_free(i);
                return -ENOMEM;
        }
        i->next = rt->instances;
        rt->instances = i;
        *ret = i;
        return 0;
}

/* --- the Global Registry, through the messaging protostub ---------------------------------------- */

static char *registry_address(runtime *rt) {
        char *to;

        return asprintf(&to, "domain://registry.%s", rt->domain) < 0 ? NULL : to;
}

static int registry_send(runtime *rt, rt_instance *i, rt_message_type type, json_t *body) {
        _cleanup_(rt_message_freep) rt_message *m = NULL;
        _cleanup_free_ char *to = registry_address(rt);
        uint64_t id = bus_next_id(rt->bus);
        int r;

        if (!to)
                return -ENOMEM;
        r = rt_message_new(type, id, rt->address, to, body, &m);
        if (r < 0)
                return r;
        r = bus_send(rt->bus, m);
        if (r < 0)
                return r;
        if (i) {
                i->registry_request = id;
                i->registry_request_type = type;
        }
        return 0;
}

/* What a hyperty's registration carries into its registry entry. The user
 * is not the hyperty's to say. */
static const char *const registry_fields[] = { "resources", "dataSchemes", "tags" };

static json_t *registry_record(runtime *rt, rt_instance *i) {
        json_t *record = json_object(), *v;
        _cleanup_free_ char *descriptor_url = NULL;
        const char *endpoint = rt->local_rd ? local_rd_get_endpoint(rt->local_rd) : NULL;

        if (!record)
                return NULL;
        if (asprintf(&descriptor_url, "%s/.well-known/hyperty/%s", rt->domain_url ?: "https://localhost",
                     i->component) < 0) {
                json_decref(record);
                return NULL;
        }
        if (json_object_set_new(record, "url", json_string(i->address)) < 0 ||
            json_object_set_new(record, "descriptor", json_string(descriptor_url)) < 0 ||
            json_object_set_new(record, "lifetime", json_integer(rt->registry_lifetime_sec)) < 0)
                goto fail;
        for (size_t k = 0; k < ELEMENTSOF(registry_fields); k++) {
                v = json_object_get(i->registration, registry_fields[k]);
                if (v && json_object_set(record, registry_fields[k], v) < 0)
                        goto fail;
        }
        v = endpoint ? json_pack("{s:s,s:s}", "type", "local", "endpoint", endpoint)
                     : json_pack("{s:s}", "type", "messaging");
        if (!v || json_object_set_new(record, "location", v) < 0)
                goto fail;
        return record;
fail:
        json_decref(record);
        return NULL;
}

static int on_keepalive(sd_event_source *s, uint64_t usec, void *userdata);

static void arm_keepalive(runtime *rt, rt_instance *i) {
        /* Three chances within a lifetime before the entry is marked
         * disconnected. */
        uint64_t period = (uint64_t) rt->registry_lifetime_sec * USEC_PER_SEC / 3;
        int r;

        if (i->keepalive) {
                r = sd_event_source_set_time_relative(i->keepalive, period);
                if (r >= 0)
                        r = sd_event_source_set_enabled(i->keepalive, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(rt->event, &i->keepalive, CLOCK_MONOTONIC, period, USEC_PER_SEC,
                                               on_keepalive, i);
        if (r < 0)
                log_warning_errno(r, "Failed to arm the registry keep-alive of %s: %m", i->address);
}

/* Sends the entry (again). The timer runs whatever happens, so an entry
 * that could not be sent, or whose answer never came, is tried again. */
static void registry_register(runtime *rt, rt_instance *i) {
        json_auto_t *record = NULL, *body = NULL;
        int r;

        if (!i->registration || !i->connected || i->registry_refused)
                return;
        arm_keepalive(rt, i);
        if (!rt->messaging_address)
                return;
        if (i->registry_request != 0) {
                /* Its answer would say nothing of this version. */
                i->registry_dirty = true;
                return;
        }
        record = registry_record(rt, i);
        body = record ? json_pack("{s:s,s:O}", "resource", i->address, "value", record) : NULL;
        if (!body) {
                log_oom();
                return;
        }
        i->registry_dirty = false;
        r = registry_send(rt, i, RT_MESSAGE_CREATE, body);
        if (r < 0)
                log_debug_errno(r, "Could not send the registry entry of %s yet: %m", i->address);
}

static void registry_unregister(runtime *rt, rt_instance *i) {
        json_auto_t *body = NULL;

        i->keepalive = sd_event_source_disable_unref(i->keepalive);
        /* An entry whose creation is under way may be there by now. */
        if ((i->registry_live || i->registry_request != 0) && rt->messaging_address) {
                body = json_pack("{s:s}", "resource", i->address);
                if (body && registry_send(rt, NULL, RT_MESSAGE_DELETE, body) >= 0)
                        log_info("Hyperty %s (%s) leaves the Global Registry.", i->address, i->component);
        }
        i->registry_live = i->registry_dirty = i->registry_refused = false;
        i->registry_request = 0;
}

static int on_keepalive(sd_event_source *s, uint64_t usec, void *userdata) {
        rt_instance *i = userdata;
        runtime *rt = i->rt;
        json_auto_t *body = NULL;
        int r;

        /* An answer that did not come within a third of the lifetime is
         * not coming (lost with the messaging protostub's session). */
        i->registry_request = 0;
        if (!i->registry_live || i->registry_dirty) {
                registry_register(rt, i);
                return 0;
        }
        arm_keepalive(rt, i);
        body = json_pack("{s:s,s:s}", "resource", i->address, "attribute", "keepalive");
        r = body ? registry_send(rt, i, RT_MESSAGE_UPDATE, body) : -ENOMEM;
        if (r < 0)
                log_debug_errno(r, "Keep-alive of %s not sent: %m", i->address);
        return 0;
}

/* Answers to the runtime's registry requests, from the messaging
 * protostub in the registry's name only: ids are visible to every
 * instance, answers from anyone else are not believed. */
static void registry_response(runtime *rt, const char *sender, const rt_message *m) {
        _cleanup_free_ char *registry = registry_address(rt);
        uint64_t id = rt_message_get_id(m);
        int code = rt_message_get_code(m);

        if (!registry || !streq_ptr(sender, rt->messaging_address) || !streq(rt_message_get_from(m), registry)) {
                log_debug("Ignoring a response %" PRIu64 " to the runtime from %s.", id, strna(sender));
                return;
        }
        for (rt_instance *i = rt->instances; i; i = i->next) {
                rt_message_type type = i->registry_request_type;

                if (i->registry_request != id)
                        continue;
                i->registry_request = 0;
                if (!i->registration || !i->connected)
                        return;         /* it left meanwhile; its DELETE is on the way */
                if (code >= 200 && code < 300) {
                        if (!i->registry_live)
                                log_struct(LOG_INFO,
                                           LOG_MESSAGE("Hyperty %s (%s) is registered in the Global Registry.",
                                                       i->address, i->component),
                                           LOG_FIELD("RETHINK_HYPERTY", "%s", i->address),
                                           LOG_FIELD("RETHINK_COMPONENT", "%s", i->component));
                        i->registry_live = true;
                        if (i->registry_dirty)
                                registry_register(rt, i);
                        return;
                }
                i->registry_live = false;
                if (code == 404 && type != RT_MESSAGE_CREATE) {
                        /* The domain forgot the entry: at once, not a period later. */
                        log_info("Global Registry lost %s's entry; registering it again.", i->address);
                        registry_register(rt, i);
                } else if (code >= 400 && code < 500 && code != 404 && code != 408 && code != 429) {
                        /* Not going to change by trying again: the hyperty's
                         * next registration may. */
                        i->registry_refused = true;
                        i->keepalive = sd_event_source_disable_unref(i->keepalive);
                        log_warning("Global Registry refused %s's entry for good: %d %s", i->address, code,
                                    strna(rt_message_get_description(m)));
                } else
                        log_warning("Global Registry refused %s's entry: %d %s; trying again.", i->address, code,
                                    strna(rt_message_get_description(m)));
                return;
        }
}

static void registry_sync_all(runtime *rt) {
        for (rt_instance *i = rt->instances; i; i = i->next)
                if (i->registration && i->connected && !i->registry_live)
                        registry_register(rt, i);
}

/* --- the runtime's services on the bus ----------------------------------------------------------- */

/* At most this many loadHyperty/loadProtoStub answers wait for their
 * instance at once; each holds a copy of its request. */
#define PENDING_LOADS_MAX 64U
/* Peers a device's hyperties may reach through p2p protostubs at once. */
#define PEER_STUBS_MAX 16U
/* A registration's lists, as the Global Registry takes them. */
#define REGISTRATION_VALUES_MAX 32U

/* The status of a runtime API's error (docs/bus.md). */
static int error_status(int error) {
        switch (error) {
        case -EINVAL:
        case -EBADMSG:
                return 400;
        case -EPERM:
        case -EACCES:
                return 403;
        case -ENOENT:
                return 404;
        case -EBUSY:
        case -EEXIST:
                return 409;
        case -EOPNOTSUPP:
                return 501;
        case -EAGAIN:
        case -ENOTCONN:
                return 503;
        case -ETIMEDOUT:
                return 504;
        default:
                return 500;
        }
}

static int reply(runtime *rt, const rt_message *request, int code, const char *description, json_t *value) {
        _cleanup_(rt_message_freep) rt_message *m = NULL;
        int r;

        r = rt_message_new_response(request, rt->address, code, description, value, &m);
        if (r < 0)
                return r;
        r = bus_send(rt->bus, m);
        if (r < 0)
                log_debug_errno(r, "Answer to %s not delivered: %m", rt_message_get_from(request));
        return 0;
}

static int reply_error(runtime *rt, const rt_message *request, int error, const char *description) {
        return reply(rt, request, error_status(error), description, NULL);
}

/* A value of a registration list: what the Global Registry takes (1-64 of
 * [A-Za-z0-9._:-], first a letter or digit). */
static bool registration_value_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 64 || !isalnum((unsigned char) s[0]))
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr("._:-", *p))
                        return false;
        return true;
}

/* NULL when list (may be absent) is a list of distinct valid values; else
 * why not. Resource names also make one path segment, so no ':' there. */
static const char *registration_list_check(json_t *list, bool segment) {
        json_t *v, *w;
        size_t k, j;

        if (!list)
                return NULL;
        if (!json_is_array(list) || json_array_size(list) > REGISTRATION_VALUES_MAX)
                return "expected a list of at most 32 values";
        json_array_foreach(list, k, v) {
                if (!json_is_string(v) || !registration_value_is_valid(json_string_value(v)) ||
                    (segment && strchr(json_string_value(v), ':')))
                        return segment ? "expected names of 1-64 characters of [A-Za-z0-9._-]"
                                       : "expected values of 1-64 characters of [A-Za-z0-9._:-]";
                for (j = 0; j < k; j++) {
                        w = json_array_get(list, j);
                        if (streq(json_string_value(v), json_string_value(w)))
                                return "a value is listed twice";
                }
        }
        return NULL;
}

static bool list_has(json_t *list, const char *s) {
        json_t *v;
        size_t k;

        json_array_foreach(list, k, v)
                if (streq_ptr(json_string_value(v), s))
                        return true;
        return false;
}

static int handle_registration(runtime *rt, rt_instance *i, const rt_message *m) {
        static const char *const known[] = { "resources", "actuators", "dataSchemes", "tags", "acl" };
        json_t *value = rt_message_get_value(m), *names, *actuators, *acl, *n, *field;
        json_auto_t *resources = json_array(), *answer = NULL;
        const char *why = NULL, *key;
        char what[160];
        size_t k;
        int r;

        if (!i || i->kind != LAUNCH_HYPERTY)
                return reply(rt, m, 403, "only hyperties register resources", NULL);
        if (!resources)
                return -ENOMEM;
        if (!json_is_object(value))
                return reply(rt, m, 400, "body.value: expected {\"resources\": [names], \"actuators\": [names], "
                                         "\"dataSchemes\": [...], \"tags\": [...], \"acl\": {...}}", NULL);
        json_object_foreach(value, key, field) {
                bool ok = false;

                for (k = 0; k < ELEMENTSOF(known); k++)
                        ok = ok || streq(key, known[k]);
                if (!ok)
                        return reply(rt, m, 400, "body.value: unknown field (expected resources, actuators, "
                                                 "dataSchemes, tags, acl)", NULL);
        }
        names = json_object_get(value, "resources");
        actuators = json_object_get(value, "actuators");
        acl = json_object_get(value, "acl");
        for (k = 0; k < 4 && !why; k++) {
                static const char *const lists[] = { "resources", "actuators", "dataSchemes", "tags" };

                why = registration_list_check(json_object_get(value, lists[k]), k < 2);
                if (why) {
                        snprintf(what, sizeof(what), "body.value.%s: %s", lists[k], why);
                        return reply(rt, m, 400, what, NULL);
                }
        }
        json_array_foreach(actuators, k, n)
                if (!list_has(names, json_string_value(n)))
                        return reply(rt, m, 400, "body.value.actuators: an actuator is not among the resources", NULL);
        if (acl && rd_acl_check(acl, &why) < 0) {
                snprintf(what, sizeof(what), "body.value.acl: %s", strna(why));
                return reply(rt, m, 400, what, NULL);
        }
        json_array_foreach(names, k, n) {
                char *address = resource_address(i->address, json_string_value(n));

                if (!address || json_array_append_new(resources, json_string(address)) < 0) {
                        free(address);
                        return -ENOMEM;
                }
                free(address);
        }

        answer = json_pack("{s:O,s:s?}", "resources", resources, "localEndpoint",
                           rt->local_rd ? local_rd_get_endpoint(rt->local_rd) : NULL);
        if (!answer)
                return -ENOMEM;
        /* Said again: nothing to do (a hyperty that reconnects does). */
        if (i->registration && json_equal(i->registration, value))
                return reply(rt, m, 200, "registered", answer);

        /* Everything was checked: the new set replaces the old one. */
        if (rt->local_rd) {
                (void) local_rd_remove_resources_of(rt->local_rd, i->address);
                json_array_foreach(resources, k, n) {
                        r = local_rd_add_resource(rt->local_rd, json_string_value(n), i->address,
                                                  list_has(actuators, json_string_value(json_array_get(names, k))),
                                                  acl);
                        if (r < 0) {
                                (void) local_rd_remove_resources_of(rt->local_rd, i->address);
                                json_decref(i->resources);
                                i->resources = NULL;
                                return reply(rt, m, r == -E2BIG ? 507 : 400,
                                             r == -E2BIG ? "too many resources on this device" : "not accepted by "
                                                                                                "the Local RD",
                                             NULL);
                        }
                }
        }
        json_decref(i->registration);
        i->registration = json_deep_copy(value);
        json_decref(i->resources);
        i->resources = json_incref(resources);
        json_decref(i->actuators);
        i->actuators = actuators ? json_deep_copy(actuators) : json_array();
        if (!i->registration || !i->actuators)
                return -ENOMEM;
        i->registry_refused = false;
        i->registry_dirty = true;
        registry_register(rt, i);
        log_info("Hyperty %s (%s) offers %zu resource(s).", i->address, i->component, json_array_size(resources));
        return reply(rt, m, 200, "registered", answer);
}

static pending_load *pending_load_free(pending_load *p) {
        if (!p)
                return NULL;
        for (pending_load **q = &p->rt->pending; *q; q = &(*q)->next)
                if (*q == p) {
                        *q = p->next;
                        p->rt->n_pending--;
                        break;
                }
        sd_event_source_disable_unref(p->timeout);
        rt_message_free(p->request);
        free(p->address);
        free(p);
        return NULL;
}

static int on_load_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        pending_load *p = userdata;

        (void) reply(p->rt, p->request, 504, "the instance did not connect to the bus in time", NULL);
        pending_load_free(p);
        return 0;
}

/* Answers every load waiting for address. */
static void pending_loads_done(runtime *rt, const char *address) {
        for (pending_load *p = rt->pending, *next; p; p = next) {
                json_auto_t *answer = NULL;

                next = p->next;
                if (!streq(p->address, address))
                        continue;
                answer = json_pack("{s:s}", "address", address);
                if (answer)
                        (void) reply(rt, p->request, 200, "loaded", answer);
                pending_load_free(p);
        }
}

static int pending_load_add(runtime *rt, const char *address, const rt_message *request) {
        _cleanup_free_ char *json = NULL;
        pending_load *p;
        int r;

        if (rt->n_pending >= PENDING_LOADS_MAX)
                return reply(rt, request, 503, "too many loads waiting for their instances", NULL);
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->rt = rt;
        p->next = rt->pending;
        rt->pending = p;
        rt->n_pending++;
        p->address = strdup(address);
        r = p->address ? rt_message_to_json(request, &json) : -ENOMEM;
        if (r >= 0)
                r = rt_message_parse(json, strlen(json), NULL, &p->request, NULL);
        if (r >= 0)
                r = sd_event_add_time_relative(rt->event, &p->timeout, CLOCK_MONOTONIC, LOAD_TIMEOUT_USEC, 0,
                                               on_load_timeout, p);
        if (r < 0)
                pending_load_free(p);
        return r;
}

/* The hyperty a loadHyperty names: {"name": N}, or {"descriptor": URL}
 * with the Catalogue's .../.well-known/hyperty/<N> (reTHINK's form). NULL
 * when neither is there or the URL is not a hyperty descriptor's. */
static const char *hyperty_name_of(json_t *value) {
        const char *name = json_string_value(json_object_get(value, "name"));
        const char *url = json_string_value(json_object_get(value, "descriptor")), *p;

        if (name || !url)
                return name;
        p = strstr(url, "/.well-known/hyperty/");
        if (!p)
                return NULL;
        p += strlen("/.well-known/hyperty/");
        return descriptor_name_is_valid(p) ? p : NULL;
}

static int handle_execute(runtime *rt, const rt_message *m) {
        const char *attribute = rt_message_get_attribute(m);
        _cleanup_free_ char *address = NULL, *error = NULL;
        json_t *value = rt_message_get_value(m);
        json_auto_t *answer = NULL;
        int r;

        if (streq_ptr(attribute, "loadHyperty")) {
                const char *name = hyperty_name_of(value);

                if (!name)
                        return reply(rt, m, 400, "body.value: expected {\"name\": N} or {\"descriptor\": "
                                                 "\"<catalogue>/.well-known/hyperty/<N>\"}", NULL);
                r = runtime_load_hyperty(rt, name, &address, &error);
        } else if (streq_ptr(attribute, "loadProtoStub"))
                r = runtime_load_protostub(rt, value, &address, &error);
        else
                return reply(rt, m, 404, "unknown runtime API (expected loadHyperty or loadProtoStub)", NULL);
        if (r < 0)
                return reply_error(rt, m, r, error ?: strerror(-r));
        if (!bus_instance_is_connected(rt->bus, address))
                return pending_load_add(rt, address, m);
        answer = json_pack("{s:s}", "address", address);
        return answer ? reply(rt, m, 200, "loaded", answer) : -ENOMEM;
}

/* body.resource must be an address (lib/message), so the runtime's own
 * services are named by body.attribute, as the hello is. */
static const char *service_name(const rt_message *m) {
        return rt_message_get_attribute(m);
}

static int handle_read(runtime *rt, rt_instance *i, const rt_message *m) {
        const char *resource = service_name(m), *token;
        json_auto_t *answer = NULL;
        usec_t expiry, n;

        if (streq_ptr(resource, "connectivity"))
                answer = json_pack("{s:s}", "state", rt->connectivity);
        else if (streq_ptr(resource, "token")) {
                /* Hyperties reach the domain through protostubs only; the
                 * device's credential is not theirs. */
                if (!i || i->kind != LAUNCH_PROTOSTUB)
                        return reply(rt, m, 403, "only protostubs get the device's token", NULL);
                token = rt->session ? reg_session_get_token(rt->session) : NULL;
                if (!token)
                        return reply(rt, m, 503, "the device has no token yet (not registered or not claimed)", NULL);
                expiry = reg_session_get_token_expiry(rt->session);
                n = now(CLOCK_MONOTONIC);
                answer = json_pack("{s:s,s:I,s:s}", "accessToken", token, "expiresIn",
                                   (json_int_t) (expiry > n ? (expiry - n) / USEC_PER_SEC : 0), "domain", rt->domain);
        } else if (streq_ptr(resource, "instances"))
                answer = runtime_instances_json(rt);
        else
                return reply(rt, m, 404, "unknown runtime resource (expected token, connectivity or instances)",
                             NULL);
        return answer ? reply(rt, m, 200, NULL, answer) : -ENOMEM;
}

static int on_bus_runtime(bus *b, const char *from, bus_instance_kind kind, const rt_message *m, void *userdata) {
        runtime *rt = userdata;
        rt_instance *i = from ? instance_find(rt, from) : NULL;

        switch (rt_message_get_type(m)) {
        case RT_MESSAGE_RESPONSE:
                registry_response(rt, from, m);
                return 0;
        case RT_MESSAGE_EXECUTE:
                return handle_execute(rt, m);
        case RT_MESSAGE_CREATE:
                if (streq_ptr(service_name(m), "registration"))
                        return handle_registration(rt, i, m);
                break;
        case RT_MESSAGE_READ:
                return handle_read(rt, i, m);
        default:
                break;
        }
        return reply(rt, m, 501, "the runtime does not serve this message type and resource", NULL);
}

/* hyperty://<domain>/<uuid> of ctxt://<domain>/<uuid>/...; the name after
 * the UUID in *ret_name (may be NULL for the root). */
static char *reporter_of(const char *resource, const char **ret_name) {
        const char *rest = strncmp(resource, "ctxt://", 7) == 0 ? resource + 7 : NULL;
        const char *slash = rest ? strchr(rest, '/') : NULL;
        const char *end = slash ? strchr(slash + 1, '/') : NULL;
        char *r;

        if (!slash)
                return NULL;
        if (asprintf(&r, "hyperty://%.*s", (int) ((end ?: rest + strlen(rest)) - rest), rest) < 0)
                return NULL;
        *ret_name = end ? end + 1 : NULL;
        return r;
}

/* ctxt://<domain>/<uuid>/... of a local hyperty (to names that hyperty's
 * ctxt root). */
static int on_bus_local_resource(bus *b, const char *from, bus_instance_kind kind, const rt_message *m,
                                 const char *to, void *userdata) {
        runtime *rt = userdata;
        _cleanup_free_ char *reporter = NULL;
        _cleanup_(rt_message_freep) rt_message *copy = NULL;
        rt_message_type type = rt_message_get_type(m);
        const char *name = NULL, *reason = NULL;
        rt_instance *owner;
        int r;

        reporter = reporter_of(to, &name);
        if (!reporter)
                return -EINVAL;
        if (streq_ptr(from, reporter) && (type == RT_MESSAGE_UPDATE || type == RT_MESSAGE_CREATE)) {
                r = rt->local_rd ? local_rd_publish(rt->local_rd, to, rt_message_get_value(m), &reason) : 0;
                if (r == -EINVAL) {
                        _cleanup_free_ char *d = NULL;

                        if (asprintf(&d, "body.value: %s", strna(reason)) < 0)
                                return -ENOMEM;
                        (void) reply(rt, m, 400, d, NULL);
                        return BUS_LOCAL_TAKEN;
                }
                if (r < 0 && r != -ENOENT)
                        log_debug_errno(r, "Local RD did not take %s: %m", to);
                /* Publications also go to the domain, for its subscribers. */
                return 0;
        }
        if (type != RT_MESSAGE_UPDATE)
                /* Reads and subscriptions: the domain's directory has the
                 * values and subscriptions; peers use the Local RD. */
                return 0;

        /* Actuation of a resource its reporter offers as an actuator: from
         * a neighbour hyperty on this device, or routed by the domain's
         * Messaging Service (whose sessions authenticate the sender); peers
         * go through the Local RD and its ACL, not through a p2p stub. The
         * reporter answers the sender itself. */
        owner = instance_find(rt, reporter);
        if (kind != BUS_INSTANCE_HYPERTY && !streq_ptr(from, rt->messaging_address)) {
                (void) reply(rt, m, 403, "actuation from outside this device goes through its Local RD", NULL);
                return BUS_LOCAL_TAKEN;
        }
        if (!owner || !name || !owner->actuators || !list_has(owner->actuators, name)) {
                (void) reply(rt, m, 405, "the resource is not an actuator", NULL);
                return BUS_LOCAL_TAKEN;
        }
        r = rt_message_new(RT_MESSAGE_UPDATE, rt_message_get_id(m), rt_message_get_from(m), reporter,
                           rt_message_get_body(m), &copy);
        if (r < 0)
                return r;
        r = bus_send(rt->bus, copy);
        if (r < 0)
                (void) reply(rt, m, 503, "the resource's reporter is not connected", NULL);
        return BUS_LOCAL_TAKEN;
}

static int on_local_actuation(local_rd *rd, const char *resource, const char *reporter, const char *from,
                              json_t *senml, void *userdata) {
        runtime *rt = userdata;
        _cleanup_(rt_message_freep) rt_message *m = NULL;
        _cleanup_free_ char *from_reporter = NULL;
        json_auto_t *body = NULL;
        const char *name;
        int r;

        /* A peer speaks for itself, never for this device. */
        from_reporter = strncmp(from, "ctxt://", 7) == 0 ? reporter_of(from, &name) : NULL;
        if (streq(from, rt->address) || instance_find(rt, from) || (from_reporter && instance_find(rt, from_reporter)))
                return log_notice_errno(-EPERM, "Refused actuation of %s by a peer claiming the local address %s.",
                                        resource, from);
        body = json_pack("{s:s,s:O}", "resource", resource, "value", senml);
        if (!body)
                return -ENOMEM;
        r = rt_message_new(RT_MESSAGE_UPDATE, bus_next_id(rt->bus), from, reporter, body, &m);
        if (r < 0)
                return r;
        r = bus_send(rt->bus, m);
        if (r < 0)
                return log_debug_errno(r, "Actuation of %s by %s not delivered to %s: %m", resource, from, reporter);
        log_info("Actuation of %s by %s handed to %s.", resource, from, reporter);
        return 0;
}

static void on_bus_instance(bus *b, const char *address, bool connected, void *userdata) {
        runtime *rt = userdata;
        rt_instance *i = instance_find(rt, address);
        int r;

        if (!i)
                return;
        i->connected = connected;
        if (connected)
                pending_loads_done(rt, address);
        log_struct(LOG_INFO,
                   LOG_MESSAGE("%s %s (%s) %s the bus.", i->kind == LAUNCH_HYPERTY ? "Hyperty" : "Protostub",
                               i->address, i->component, connected ? "joined" : "left"),
                   LOG_FIELD("RETHINK_INSTANCE", "%s", i->address), LOG_FIELD("RETHINK_COMPONENT", "%s", i->component));
        if (i->kind == LAUNCH_PROTOSTUB && streq(i->component, rt->messaging_stub) && streq(i->key, "main")) {
                if (connected) {
                        char *copy = strdup(i->address);

                        if (!copy) {
                                log_oom();
                                return;
                        }
                        free(rt->messaging_address);
                        rt->messaging_address = copy;
                        r = bus_set_domain_route(rt->bus, rt->domain, i->address);
                        if (r < 0)
                                log_warning_errno(r, "Failed to route domain %s through %s: %m", rt->domain,
                                                  i->address);
                        registry_sync_all(rt);
                } else {
                        /* The domain forgets entries that are not kept
                         * alive; they are registered again on return. */
                        free(rt->messaging_address);
                        rt->messaging_address = NULL;
                        for (rt_instance *h = rt->instances; h; h = h->next) {
                                h->registry_live = false;
                                h->registry_request = 0;
                        }
                }
                return;
        }
        if (i->kind == LAUNCH_HYPERTY && !connected) {
                registry_unregister(rt, i);
                if (rt->local_rd)
                        (void) local_rd_remove_resources_of(rt->local_rd, i->address);
                json_decref(i->registration);
                i->registration = NULL;
                json_decref(i->resources);
                i->resources = NULL;
                json_decref(i->actuators);
                i->actuators = NULL;
        }
}

/* --- starting instances ------------------------------------------------------------------------- */

static bool env_is_ours(const char *e) {
        static const char *const ours[] = {
                "RETHINK_ADDRESS=", "RETHINK_RUNTIME=", "RETHINK_DOMAIN=", "RETHINK_COMPONENT_KIND=",
                "RETHINK_STUB_TARGET=",
        };

        for (size_t k = 0; k < ELEMENTSOF(ours); k++)
                if (strncmp(e, ours[k], strlen(ours[k])) == 0)
                        return true;
        return false;
}

static json_t *stub_target(runtime *rt, rt_instance *i) {
        json_t *t = i->target ? json_deep_copy(i->target) : json_pack("{s:s}", "domain", rt->domain);

        if (!t)
                return NULL;
        /* Where the domain is and which CA vouches for it and its devices:
         * the agent's own settings. */
        if ((rt->domain_url && json_object_set_new(t, "domainUrl", json_string(rt->domain_url)) < 0) ||
            (rt->ca_file && json_object_set_new(t, "caFile", json_string(rt->ca_file)) < 0)) {
                json_decref(t);
                return NULL;
        }
        return t;
}

/* Before every (re)start: a fresh token, the instance's address and
 * environment (docs/bus.md). */
static int on_prepare(launch_instance *li, launch_spec *spec, void *userdata) {
        runtime *rt = userdata;
        launch_kind kind = launch_instance_get_kind(li);
        _cleanup_free_ char *token = NULL;
        char **env = NULL;
        size_t n = 0;
        rt_instance *i;
        int r;

        r = instance_get(rt, launch_instance_get_name(li), launch_instance_get_key(li), kind, &i);
        if (r < 0)
                return log_error_errno(r, "Failed to name instance %s of %s: %m", launch_instance_get_key(li),
                                       launch_instance_get_name(li));
        (void) bus_remove_instance(rt->bus, i->address);
        r = bus_add_instance(rt->bus, i->address, kind == LAUNCH_HYPERTY ? BUS_INSTANCE_HYPERTY : BUS_INSTANCE_PROTOSTUB,
                             i->component, &token);
        if (r < 0)
                return log_error_errno(r, "Failed to admit %s to the bus: %m", i->address);

        r = 0;
        for (char **e = spec->environment; e && *e && r >= 0; e++)
                if (!env_is_ours(*e))
                        r = strv_push_printf(&env, &n, "%s", *e);
        r = r ?: strv_push_printf(&env, &n, "RETHINK_ADDRESS=%s", i->address);
        r = r ?: strv_push_printf(&env, &n, "RETHINK_RUNTIME=%s", rt->address);
        r = r ?: strv_push_printf(&env, &n, "RETHINK_DOMAIN=%s", rt->domain);
        r = r ?: strv_push_printf(&env, &n, "RETHINK_COMPONENT_KIND=%s", launch_kind_to_string(kind));
        if (r >= 0 && kind == LAUNCH_PROTOSTUB) {
                json_auto_t *target = stub_target(rt, i);
                _cleanup_free_ char *text = target ? json_dumps(target, JSON_COMPACT) : NULL;

                r = text ? strv_push_printf(&env, &n, "RETHINK_STUB_TARGET=%s", text) : -ENOMEM;
        }
        if (r < 0) {
                strv_free_all(env);
                (void) bus_remove_instance(rt->bus, i->address);
                return log_error_errno(r, "Failed to prepare the environment of %s: %m", i->address);
        }
        strv_free_all(i->env);
        i->env = env;
        free(i->token);
        i->token = TAKE_PTR(token);
        spec->environment = i->env;
        spec->bus_socket = bus_get_path(rt->bus);
        /* The token goes as a credential (fork/exec: RETHINK_BUS_TOKEN). */
        i->credential = (launch_credential) { BUS_TOKEN_CREDENTIAL, i->token };
        spec->credentials = &i->credential;
        spec->n_credentials = 1;
        return 0;
}

static int strdup_to(char **ret, const char *s) {
        char *d = strdup(s);

        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

/* A process of an instance is gone: its token goes with it (a restart
 * gets a new one from on_prepare()). */
static void on_launch_exit(launch_instance *li, const launch_exit *e, void *userdata) {
        runtime *rt = userdata;
        rt_instance *i = instance_find_key(rt, launch_instance_get_name(li), launch_instance_get_key(li));

        if (i)
                (void) bus_remove_instance(rt->bus, i->address);
}

/* --- the runtime APIs ---------------------------------------------------------------------------- */

/* Local orders act for the device's owner. */
#define RUNTIME_PRINCIPAL "local:uid=0"

static int set_error(char **ret_error, int error, const char *fmt, ...) _printf_(3, 4);
static int set_error(char **ret_error, int error, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return error;
}

/* Starts (activates) an installed component's main instance unless it runs. */
static int activate(runtime *rt, const char *name, bool want_protostub, char **ret_error) {
        _cleanup_free_ char *exe = NULL, *error = NULL;
        json_auto_t *value = NULL;
        bool protostub;
        int r;

        if (!rt->swmgr)
                return set_error(ret_error, -EOPNOTSUPP, "software management is off on this device");
        r = swmgr_get_executable(rt->swmgr, name, &exe, &protostub);
        if (r == -ENOENT)
                return set_error(ret_error, r, "%s %s is not installed on this device (bootstrap it first)",
                                 want_protostub ? "protostub" : "hyperty", name);
        if (r < 0)
                return set_error(ret_error, r, "%s", strerror(-r));
        if (protostub != want_protostub)
                return set_error(ret_error, -EINVAL, "%s is a %s, not a %s", name, protostub ? "protostub" : "hyperty",
                                 want_protostub ? "protostub" : "hyperty");
        if (swmgr_get_pid(rt->swmgr, name) > 0)
                return 0;
        r = swmgr_activate(rt->swmgr, RUNTIME_PRINCIPAL, name, &value, &error);
        /* Active already, between two restarts: it comes back by itself. */
        if (r == -EBUSY)
                return 0;
        if (r < 0)
                return set_error(ret_error, r, "%s", error ?: strerror(-r));
        return 0;
}

int runtime_load_hyperty(runtime *rt, const char *name, char **ret_address, char **ret_error) {
        int r;

        if (!rt || !name || !ret_address)
                return -EINVAL;
        r = activate(rt, name, false, ret_error);
        if (r < 0)
                return r;
        return runtime_instance_address(rt->address, rt->domain, LAUNCH_HYPERTY, name, "main", ret_address);
}

/* A p2p protostub the runtime started ended for good (gave up, stopped):
 * forget it, so the next loadProtoStub for that peer starts a new one. */
static void on_peer_stub_exit(launch_instance *li, const launch_exit *e, void *userdata) {
        rt_instance *i = userdata;
        runtime *rt = i->rt;

        if (!e->gave_up && !e->stopped)
                return;
        log_info("Protostub %s for %s ended%s; forgetting it.", i->address, i->key, e->gave_up ? " (gave up)" : "");
        (void) bus_remove_instance(rt->bus, i->address);
        instance_unlink(rt, i);
        instance_free(i);
}

static unsigned count_peer_stubs(runtime *rt) {
        unsigned n = 0;

        for (rt_instance *i = rt->instances; i; i = i->next)
                n += i->launched != NULL;
        return n;
}

static int load_peer_stub(runtime *rt, const char *peer, const char *domain, char **ret_address, char **ret_error) {
        _cleanup_free_ char *exe = NULL, *key = NULL, *component_env = NULL;
        const char *why = NULL, *host;
        registration_url u;
        bool protostub;
        rt_instance *i;
        int r;

        if (!rt->swmgr)
                return set_error(ret_error, -EOPNOTSUPP, "software management is off on this device");
        /* What the p2p protostub will accept: https, or http to loopback. */
        host = strstr(peer, "://");
        if (strlen(peer) > 256 || !host || strchr(host + 3, '/') || registration_url_parse(peer, &u, &why) < 0)
                return set_error(ret_error, -EINVAL, "value.peer: expected the peer's https://HOST:PORT endpoint (%s)",
                                 why ?: "a path is not allowed");
        if (domain && !reg_session_domain_name_is_valid(domain))
                return set_error(ret_error, -EINVAL, "value.domain: expected a lowercase DNS name");
        if (asprintf(&key, "peer:%s", peer) < 0)
                return -ENOMEM;
        i = instance_find_key(rt, rt->p2p_stub, key);
        if (i && i->launched)
                return strdup_to(ret_address, i->address);
        if (count_peer_stubs(rt) >= PEER_STUBS_MAX)
                return set_error(ret_error, -EAGAIN, "already %u p2p protostubs on this device", PEER_STUBS_MAX);
        r = swmgr_get_executable(rt->swmgr, rt->p2p_stub, &exe, &protostub);
        if (r == -ENOENT || (r >= 0 && !protostub))
                return set_error(ret_error, -ENOENT, "the p2p protostub %s is not installed on this device",
                                 rt->p2p_stub);
        if (r < 0)
                return r;
        r = instance_get(rt, rt->p2p_stub, key, LAUNCH_PROTOSTUB, &i);
        if (r < 0)
                return r;
        json_decref(i->target);
        i->target = json_pack("{s:s,s:s}", "peer", peer, "domain", domain ?: rt->domain);
        if (!i->target)
                return -ENOMEM;
        if (asprintf(&component_env, "RETHINK_COMPONENT=%s", rt->p2p_stub) < 0)
                return -ENOMEM;
        r = launcher_start(rt->launcher,
                           &(launch_spec) {
                                   .name = rt->p2p_stub,
                                   .key = key,
                                   .kind = LAUNCH_PROTOSTUB,
                                   .executable = exe,
                                   .environment = (char *[]) { component_env, NULL },
                                   .bus_socket = bus_get_path(rt->bus),
                           },
                           &i->launched);
        if (r < 0)
                return set_error(ret_error, r, "failed to start the p2p protostub: %s", strerror(-r));
        launch_instance_set_exit_handler(i->launched, on_peer_stub_exit, i);
        log_info("Protostub %s started for peer %s as %s.", rt->p2p_stub, peer, i->address);
        return strdup_to(ret_address, i->address);
}

int runtime_load_protostub(runtime *rt, json_t *target, char **ret_address, char **ret_error) {
        const char *domain = json_string_value(json_object_get(target, "domain"));
        const char *peer = json_string_value(json_object_get(target, "peer"));
        int r;

        if (!rt || !ret_address)
                return -EINVAL;
        if (!json_is_object(target) || (!domain && !peer))
                return set_error(ret_error, -EINVAL, "value: expected {\"domain\": D} or {\"peer\": URL, \"domain\": D}");
        if (peer)
                return load_peer_stub(rt, peer, domain, ret_address, ret_error);
        if (!streq(domain, rt->domain))
                return set_error(ret_error, -EOPNOTSUPP,
                                 "only the device's own domain (%s) can be reached through a messaging protostub",
                                 rt->domain);
        r = activate(rt, rt->messaging_stub, true, ret_error);
        if (r < 0)
                return r;
        return runtime_instance_address(rt->address, rt->domain, LAUNCH_PROTOSTUB, rt->messaging_stub, "main",
                                        ret_address);
}

/* --- connectivity, status ---------------------------------------------------------------------- */

void runtime_set_connectivity(runtime *rt, const char *state) {
        json_auto_t *body = NULL;
        int n;

        char *copy;

        if (!rt || !state || streq_ptr(rt->connectivity, state))
                return;
        copy = strdup(state);
        if (!copy || bus_set_connectivity(rt->bus, state) < 0) {
                free(copy);
                return;
        }
        free(rt->connectivity);
        rt->connectivity = copy;
        body = json_pack("{s:s,s:{s:s}}", "attribute", "connectivity", "value", "state", state);
        n = body ? bus_broadcast(rt->bus, RT_MESSAGE_EXECUTE, body) : -ENOMEM;
        if (n < 0)
                log_warning_errno(n, "Failed to tell the components that connectivity is %s: %m", state);
        else
                log_debug("Told %d component instance(s) that connectivity is %s.", n, state);
}

json_t *runtime_instances_json(runtime *rt) {
        json_auto_t *list = json_array();

        if (!list)
                return NULL;
        for (rt_instance *i = rt->instances; i; i = i->next) {
                json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:b,s:O?,s:b}", "address", i->address, "component",
                                      i->component, "kind", launch_kind_to_string(i->kind), "key", i->key,
                                      "connected", i->connected, "resources", i->resources, "registry",
                                      i->registry_live);

                if (!o || json_array_append_new(list, o) < 0)
                        return NULL;
        }
        return json_pack("{s:O,s:s,s:s?}", "instances", list, "runtime", rt->address, "messaging",
                         rt->messaging_address);
}

static int on_ctl_instances(control_request *req, json_t **ret_result, void *userdata) {
        json_t *j = runtime_instances_json(userdata);

        if (!j)
                return -ENOMEM;
        *ret_result = j;
        return 0;
}

static int ctl_loaded(control_request *req, int r, char *address, const char *error, json_t **ret_result) {
        if (r < 0)
                return control_request_set_error(req, rt_message_status_for_error(r) ?: 500, "%s",
                                                 error ?: strerror(-r));
        *ret_result = json_pack("{s:s}", "address", address);
        return *ret_result ? 0 : -ENOMEM;
}

static int on_ctl_load_hyperty(control_request *req, json_t **ret_result, void *userdata) {
        const char *name = hyperty_name_of(control_request_get_args(req));
        _cleanup_free_ char *address = NULL, *error = NULL;
        int r;

        if (control_request_get_peer_uid(req) != 0)
                return control_request_set_error(req, 403, "only root may load components");
        if (!name)
                return control_request_set_error(req, 400, "args: expected {\"name\": N} or {\"descriptor\": "
                                                           "\"<catalogue>/.well-known/hyperty/<N>\"}");
        r = runtime_load_hyperty(userdata, name, &address, &error);
        return ctl_loaded(req, r, address, error, ret_result);
}

static int on_ctl_load_protostub(control_request *req, json_t **ret_result, void *userdata) {
        _cleanup_free_ char *address = NULL, *error = NULL;
        int r;

        if (control_request_get_peer_uid(req) != 0)
                return control_request_set_error(req, 403, "only root may load components");
        r = runtime_load_protostub(userdata, control_request_get_args(req), &address, &error);
        return ctl_loaded(req, r, address, error, ret_result);
}

int runtime_control_register(runtime *rt, control_server *s) {
        int r;

        r = control_server_add_command(s, "load-hyperty", on_ctl_load_hyperty, rt);
        if (r >= 0)
                r = control_server_add_command(s, "load-protostub", on_ctl_load_protostub, rt);
        if (r >= 0)
                r = control_server_add_command(s, "instances", on_ctl_instances, rt);
        return r;
}

/* --- lifecycle --------------------------------------------------------------------------------- */

void runtime_set_session(runtime *rt, reg_session *s) {
        rt->session = s;
}

void runtime_set_swmgr(runtime *rt, swmgr *m) {
        if (rt)
                rt->swmgr = m;
}

void runtime_set_local_rd(runtime *rt, local_rd *rd) {
        rt->local_rd = rd;
        if (rd)
                local_rd_set_actuation_handler(rd, on_local_actuation, rt);
}

int runtime_new(sd_event *e, const runtime_options *o, launcher *l, swmgr *m, runtime **ret) {
        runtime *rt;
        int r;

        if (!e || !o || !o->domain || !o->runtime_address || !o->bus_socket || !l || !ret)
                return -EINVAL;
        rt = calloc(1, sizeof(*rt));
        if (!rt)
                return -ENOMEM;
        rt->event = sd_event_ref(e);
        rt->launcher = l;
        rt->swmgr = m;
        rt->registry_lifetime_sec = o->registry_lifetime_sec ?: RUNTIME_REGISTRY_LIFETIME_SEC_DEFAULT;
        rt->domain = strdup(o->domain);
        rt->address = strdup(o->runtime_address);
        rt->messaging_stub = strdup(o->messaging_stub ?: "messaging");
        rt->p2p_stub = strdup(o->p2p_stub ?: "p2p");
        rt->connectivity = strdup("online");
        rt->domain_url = o->domain_url ? strdup(o->domain_url) : NULL;
        rt->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
        if (!rt->domain || !rt->address || !rt->messaging_stub || !rt->p2p_stub || !rt->connectivity ||
            (o->domain_url && !rt->domain_url) || (o->ca_file && !rt->ca_file)) {
                runtime_free(rt);
                return -ENOMEM;
        }
        r = bus_new(e, o->bus_socket, o->runtime_address, &rt->bus);
        if (r < 0) {
                runtime_free(rt);
                return r;
        }
        bus_set_runtime_handler(rt->bus, on_bus_runtime, rt);
        bus_set_local_resource_handler(rt->bus, on_bus_local_resource, rt);
        bus_set_instance_handler(rt->bus, on_bus_instance, rt);
        launcher_set_prepare_handler(l, on_prepare, rt);
        launcher_set_exit_handler(l, on_launch_exit, rt);
        *ret = rt;
        return 0;
}

runtime *runtime_free(runtime *rt) {
        if (!rt)
                return NULL;
        if (rt->launcher) {
                launcher_set_prepare_handler(rt->launcher, NULL, NULL);
                launcher_set_exit_handler(rt->launcher, NULL, NULL);
        }
        while (rt->pending)
                pending_load_free(rt->pending);
        while (rt->instances) {
                rt_instance *i = rt->instances;

                instance_unlink(rt, i);
                instance_free(i);
        }
        if (rt->local_rd)
                local_rd_set_actuation_handler(rt->local_rd, NULL, NULL);
        bus_free(rt->bus);
        sd_event_unref(rt->event);
        free(rt->domain);
        free(rt->address);
        free(rt->domain_url);
        free(rt->ca_file);
        free(rt->messaging_stub);
        free(rt->p2p_stub);
        free(rt->messaging_address);
        free(rt->connectivity);
        free(rt);
        return NULL;
}
