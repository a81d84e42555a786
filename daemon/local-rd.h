/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The Local M2M Resource Directory: an HTTP/2 server on the device that
 * serves the context resources (ctxt://<domain>/<path>) of its local
 * hyperties to peers: read the last value, subscribe (a long-lived NDJSON
 * stream of notifications) and, for actuators, update.
 *
 * Every request carries a peer's access token (Authorization: Bearer),
 * checked against the domain's key set (daemon/jwks-cache.h) with scope
 * "peer", and its reTHINK address (rethink-from); each resource's ACL
 * (lib/rd-acl.h) decides what the token's subject may do. Routes, bodies,
 * codes and limits are in docs/local-rd.md. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "jwks-cache.h"
#include "macro.h"

#define LOCAL_RD_PORT_DEFAULT 8444
#define LOCAL_RD_SCOPE "peer"
/* Per subscription stream: notifications waiting for a slow reader beyond
 * what the HTTP/2 layer holds; past it the oldest is dropped (and a notice
 * says how many). */
#define LOCAL_RD_STREAM_MAX_QUEUED 256u
#define LOCAL_RD_MAX_RESOURCES 4096u
/* Subscription streams at once, in all and per token subject (503 past). */
#define LOCAL_RD_MAX_STREAMS 512u
#define LOCAL_RD_MAX_STREAMS_PER_SUBJECT 32u
/* Peers' connections at once, and streams on one (subscriptions plus a
 * few reads and updates). */
#define LOCAL_RD_MAX_CONNECTIONS 64u
#define LOCAL_RD_MAX_STREAMS_PER_CONNECTION 48u

typedef struct local_rd local_rd;

typedef struct local_rd_options {
        const char *address;     /* numeric IPv4/IPv6 to listen on; required */
        uint16_t port;           /* 0: pick a free one (tests) */
        const char *certificate; /* PEM; required unless cleartext */
        const char *key;
        bool cleartext;          /* h2c with prior knowledge: loopback tests only */
        const char *domain;      /* the device's domain: ctxt://<domain>/...; required */
        jwks_cache *jwks;        /* required; not owned, must outlive the directory */
} local_rd_options;

int local_rd_new(sd_event *e, const local_rd_options *o, local_rd **ret);
/* Closes every connection and stream at once. */
local_rd *local_rd_free(local_rd *rd);
DEFINE_TRIVIAL_CLEANUP_FUNC(local_rd *, local_rd_free);
#define _cleanup_local_rd_ _cleanup_(local_rd_freep)

/* "https://<address>:<port>" ("http://" with cleartext; IPv6 in brackets),
 * for the Global Registry's location of the hyperties. */
const char *local_rd_get_endpoint(const local_rd *rd);
int local_rd_get_port(const local_rd *rd);

/* Offers resource (a ctxt://<domain>/... address) reported by reporter.
 * acl is checked (lib/rd-acl) and referenced; NULL grants nobody. Adding
 * an offered resource again replaces reporter, kind and ACL (the last
 * value stays when the reporter is the same). -EINVAL for a bad address,
 * another domain or a bad ACL, -E2BIG past LOCAL_RD_MAX_RESOURCES. */
int local_rd_add_resource(local_rd *rd, const char *resource, const char *reporter, bool actuator, json_t *acl);
/* Withdraws every resource of reporter; their streams end. Returns how
 * many. */
int local_rd_remove_resources_of(local_rd *rd, const char *reporter);
size_t local_rd_get_n_resources(const local_rd *rd);

/* A new value: checked as SenML, kept as the last value, sent to the
 * resource's streams. senml is referenced. -ENOENT for a resource not
 * offered, -EINVAL for a value that is not SenML (*ret_reason, may be
 * NULL, says why). */
int local_rd_publish(local_rd *rd, const char *resource, json_t *senml, const char **ret_reason);

/* An update (actuation) a peer sent for an actuator, already authorized
 * and checked as SenML: hand it to reporter. from is the peer's
 * rethink-from. A negative return answers 503 (reporter not reachable). */
typedef int (*local_rd_actuation_handler_t)(local_rd *rd, const char *resource, const char *reporter,
                                            const char *from, json_t *senml, void *userdata);
void local_rd_set_actuation_handler(local_rd *rd, local_rd_actuation_handler_t handler, void *userdata);
