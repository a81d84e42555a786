/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The Catalogue: descriptors of hyperties, protocol stubs and runtimes,
 * and the signed packages they describe.
 *
 *   GET  /.well-known/{hyperty,protocolstub,runtime}/          names
 *   GET  /.well-known/{hyperty,protocolstub,runtime}/<name>    descriptor
 *   GET  /catalogue/packages/<sha256>         bytes (Range, ETag)
 *   PUT  /admin/catalogue/packages/<sha256>   upload (admin)
 *   POST /admin/catalogue/descriptors         publish (admin)
 *
 * Publishing is two requests: the package bytes, streamed to a temporary
 * file and hashed as they arrive (kept only when they hash to the digest in
 * the path), then the descriptor, accepted only when its publisher is
 * trusted, its package is stored and its signature verifies. Only
 * packages with a published descriptor are served, so the catalogue never
 * hands out bytes nobody trusted has signed. docs/protocol.md has the
 * details. */

#include <jansson.h>
#include <systemd/sd-event.h>

#include "db.h"
#include "macro.h"
#include "router.h"

typedef struct catalogue catalogue;

/* Packages live in state_dir/packages; leftovers of interrupted uploads
 * are removed here. */
int catalogue_new(sd_event *e, db *d, const char *state_dir, catalogue **ret);
catalogue *catalogue_free(catalogue *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(catalogue *, catalogue_free);
#define _cleanup_catalogue_ _cleanup_(catalogue_freep)

/* NULL-terminated list of base64url Ed25519 keys; replaces the list. */
int catalogue_set_trusted_publishers(catalogue *c, char *const *keys);
void catalogue_set_max_package_size(catalogue *c, uint64_t max);

int catalogue_add_routes(catalogue *c, router *r);

/* The latest published descriptor of kind ("hyperty", "protocolstub",
 * "runtime") and name, as GET /.well-known/<kind>/<name> serves it, in
 * *ret (to be decref'd). -ENOENT when none is published, -EINVAL for an
 * unknown kind or invalid name. For other domain services. */
int catalogue_get_descriptor(catalogue *c, const char *kind, const char *name, json_t **ret);
