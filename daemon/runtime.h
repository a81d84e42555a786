/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The runtime: what turns started component processes into reachable
 * hyperties and protostubs (docs/bus.md).
 *
 *   - gives every instance the launcher starts its address, a fresh bus
 *     token and its environment (the launcher's prepare handler);
 *   - serves the runtime's own address on the bus: loadHyperty,
 *     loadProtoStub, registration, token, connectivity;
 *   - routes through the messaging protostub of the device's domain once it
 *     is connected (a domain route on the bus);
 *   - offers the resources hyperties register in the Local M2M Resource
 *     Directory, feeds it their publications, hands peers' actuations to
 *     the reporting hyperty;
 *   - registers every hyperty that registered resources in the Global
 *     Registry (through the messaging protostub), keeps the entries alive
 *     and removes them when the instance stops;
 *   - tells every instance when the overall connectivity changes. */

#include <jansson.h>
#include <systemd/sd-event.h>

#include "bus.h"
#include "control.h"
#include "launcher.h"
#include "local-rd.h"
#include "macro.h"
#include "registration-session.h"
#include "swmgr.h"

#define RUNTIME_REGISTRY_LIFETIME_SEC_DEFAULT 60U

typedef struct runtime runtime;

typedef struct runtime_options {
        const char *domain;             /* the device's domain name; required */
        const char *runtime_address;    /* runtime://<domain>/<uuid>; required */
        const char *bus_socket;         /* required */
        const char *domain_url;         /* the domain's base URL, for protostubs and descriptor URLs */
        const char *ca_file;            /* for protostubs: the CA of the domain and its devices */
        const char *messaging_stub;     /* component name; NULL: "messaging" */
        const char *p2p_stub;           /* component name; NULL: "p2p" */
        unsigned registry_lifetime_sec; /* 0: RUNTIME_REGISTRY_LIFETIME_SEC_DEFAULT */
} runtime_options;

/* Opens the bus. The parts (all optional but the launcher) are borrowed
 * and must outlive the runtime. */
int runtime_new(sd_event *e, const runtime_options *options, launcher *l, swmgr *m, runtime **ret);
runtime *runtime_free(runtime *rt);
DEFINE_TRIVIAL_CLEANUP_FUNC(runtime *, runtime_free);
#define _cleanup_runtime_ _cleanup_(runtime_freep)

void runtime_set_session(runtime *rt, reg_session *s);
/* NULL when software management went away (it failed to start). */
void runtime_set_swmgr(runtime *rt, swmgr *m);
void runtime_set_local_rd(runtime *rt, local_rd *rd);

/* "online", "degraded" or "offline": told to every instance on change. */
void runtime_set_connectivity(runtime *rt, const char *state);

/* The runtime APIs, as the bus and the control socket offer them. Each
 * returns 0 and the instance's address (to be freed), or a negative errno
 * with *ret_error (to be freed) for the requester. */
int runtime_load_hyperty(runtime *rt, const char *name, char **ret_address, char **ret_error);
int runtime_load_protostub(runtime *rt, json_t *target, char **ret_address, char **ret_error);

/* load-hyperty, load-protostub and instances on the control socket. */
int runtime_control_register(runtime *rt, control_server *s);

/* {"runtime": R, "messaging": the messaging protostub's address or absent,
 *  "instances": [{"address","component","kind","key","connected","resources","registry"}]} */
json_t *runtime_instances_json(runtime *rt);

/* The address of the instance key of a component: hyperty://<domain>/<uuid>
 * or runtime://<domain>/<uuid> (protostubs), the UUID derived from the
 * runtime's UUID, the component name and the key, so it survives
 * restarts. To be freed. */
int runtime_instance_address(const char *runtime_address, const char *domain, launch_kind kind,
                             const char *component, const char *key, char **ret);
