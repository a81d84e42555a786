/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Global Registry records: the JSON body of a hyperty or data object
 * registration, validated strictly, and its canonical JSON form.
 *
 *   {"url": "hyperty://<domain>/<uuid>",          optional, must match
 *    "descriptor": "<catalogue URL of the descriptor>",
 *    "user": "user://<idp>/<id>",                 optional
 *    "runtime": "runtime://<domain>/<uuid>",
 *    "reporter": "hyperty://<domain>/<uuid>",     data objects only, optional
 *    "resources": ["temperature", ...],           optional
 *    "dataSchemes": ["ctxt", ...],                optional
 *    "tags": ["kitchen", ...],                    optional
 *    "location": {"type": "messaging"} | {"type": "local", "endpoint": "https://..."},
 *    "lifetime": 300}                             optional, seconds
 *
 * A hyperty's url is hyperty://<domain>/<uuid>, a data object's
 * ctxt://<domain>/<uuid>, where <uuid> is the one in the request path.
 * Unknown fields, wrong types, duplicate members or values, and addresses
 * of another domain are refused. docs/protocol.md has the details. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* resources, dataSchemes, tags: values of [A-Za-z0-9._:-], the first a
 * letter or digit. */
#define REGISTRY_VALUE_MAX 64
#define REGISTRY_VALUES_MAX 32
#define REGISTRY_DESCRIPTOR_MAX 512
#define REGISTRY_ENDPOINT_MAX 256
#define REGISTRY_LIFETIME_MAX 31536000U

typedef enum registry_kind {
        REGISTRY_HYPERTY,
        REGISTRY_DATAOBJECT,
        _REGISTRY_KIND_MAX,
        _REGISTRY_KIND_INVALID = -EINVAL,
} registry_kind;

typedef enum registry_location {
        REGISTRY_LOCATION_MESSAGING,
        REGISTRY_LOCATION_LOCAL,
        _REGISTRY_LOCATION_MAX,
        _REGISTRY_LOCATION_INVALID = -EINVAL,
} registry_location;

typedef enum registry_list {
        REGISTRY_RESOURCES,
        REGISTRY_DATA_SCHEMES,
        REGISTRY_TAGS,
        _REGISTRY_LIST_MAX,
} registry_list;

typedef struct registry_record registry_record;

/* "hyperty", "dataobject"; "messaging", "local"; "resources",
 * "dataSchemes", "tags". NULL out of range. */
const char *registry_kind_to_string(registry_kind k);
const char *registry_location_to_string(registry_location l);
const char *registry_list_to_string(registry_list l);

/* True for a value that may appear in resources, dataSchemes or tags. */
bool registry_value_is_valid(const char *s);

/* The url of the entry with that uuid in domain, in *ret (to be freed);
 * -EINVAL for a uuid that is not canonical. */
int registry_url_make(registry_kind kind, const char *domain, const char *uuid, char **ret);

/* Parses a registration body. -EINVAL with a static *ret_reason naming
 * the field for anything refused; -ENOMEM. */
int registry_record_parse(registry_kind kind, const char *domain, const char *uuid, const char *json,
                          size_t len, registry_record **ret, const char **ret_reason);
registry_record *registry_record_free(registry_record *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(registry_record *, registry_record_free);
#define _cleanup_registry_record_ _cleanup_(registry_record_freep)

registry_kind registry_record_get_kind(const registry_record *r);
const char *registry_record_get_url(const registry_record *r);
const char *registry_record_get_descriptor(const registry_record *r);
/* NULL when not given. */
const char *registry_record_get_user(const registry_record *r);
const char *registry_record_get_runtime(const registry_record *r);
const char *registry_record_get_reporter(const registry_record *r);
registry_location registry_record_get_location(const registry_record *r);
/* NULL for messaging. */
const char *registry_record_get_endpoint(const registry_record *r);
/* 0 when not given. */
unsigned registry_record_get_lifetime(const registry_record *r);
/* NULL-terminated, in the order given; never NULL. */
char *const *registry_record_get_list(const registry_record *r, registry_list l);

/* The canonical JSON of everything but the lifetime, members in a fixed
 * order, absent optional fields left out; parsing it again gives the same
 * record. */
int registry_record_to_json(const registry_record *r, char **ret);
