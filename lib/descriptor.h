/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Catalogue descriptors: the JSON documents that describe a hyperty, a
 * protocol stub or a runtime and the signed package that carries it.
 *
 *   {"type": "hyperty", "objectName": "temperature-producer",
 *    "version": "1.2.0", "description": "...", "hypertyType": ["context"],
 *    "dataObjects": ["ctxt://example.com/room-1"],
 *    "constraints": {"runtimeVersion": "0.1", "arch": ["x86_64"], "diskBytes": 65536},
 *    "configuration": {...}, "sourcePackageURL": "/catalogue/packages/<sha256>",
 *    "sha256": "<64 hex>", "signature": "<base64url, 64 bytes>",
 *    "publisher": "<base64url, 32 bytes>"}
 *
 * Validation is strict, as for messages: a descriptor is complete and
 * valid, or rejected with a reason naming the field (docs/protocol.md has
 * every rule). Reasons never quote values from the input. Whether the
 * signature verifies and the publisher is trusted is the catalogue's
 * business, not the parser's. */

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "sha256.h"
#include "sign.h"

#define DESCRIPTOR_MAX_SIZE (64u * 1024u)
#define DESCRIPTOR_MAX_DEPTH 16u
#define DESCRIPTOR_NAME_MAX 64
#define DESCRIPTOR_VERSION_MAX 64

typedef enum descriptor_kind {
        DESCRIPTOR_HYPERTY,
        DESCRIPTOR_PROTOCOLSTUB,
        DESCRIPTOR_RUNTIME,
        _DESCRIPTOR_KIND_MAX,
        _DESCRIPTOR_KIND_INVALID = -EINVAL,
} descriptor_kind;

typedef struct descriptor descriptor;

/* "hyperty", "protocolstub", "runtime"; the names in /.well-known/ paths. */
const char *descriptor_kind_to_string(descriptor_kind kind);
descriptor_kind descriptor_kind_from_string(const char *s);

/* objectName: 1-64 bytes of [A-Za-z0-9._-], starting with a letter or digit
 * (it is a path segment, so "." and ".." can never be one). */
bool descriptor_name_is_valid(const char *s);

/* Parses and validates size bytes of JSON. Errors: -EMSGSIZE over
 * DESCRIPTOR_MAX_SIZE, -E2BIG nested deeper than DESCRIPTOR_MAX_DEPTH,
 * -EBADMSG not JSON (syntax, NUL byte, invalid UTF-8, duplicate key),
 * -EINVAL not a valid descriptor, -ENOMEM. *ret_reason (may be NULL) gets
 * the reason on failure (to be freed; NULL if that allocation failed). */
int descriptor_parse(const void *data, size_t size, descriptor **ret, char **ret_reason);

descriptor *descriptor_free(descriptor *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(descriptor *, descriptor_free);
#define _cleanup_descriptor_ _cleanup_(descriptor_freep)

descriptor_kind descriptor_get_kind(const descriptor *d);
const char *descriptor_get_name(const descriptor *d);
const char *descriptor_get_version(const descriptor *d);
/* Lowercase hex as in the document. */
const char *descriptor_get_sha256(const descriptor *d);
void descriptor_get_digest(const descriptor *d, uint8_t ret[static SHA256_DIGEST_SIZE]);
void descriptor_get_signature(const descriptor *d, uint8_t ret[static SIGN_SIGNATURE_SIZE]);
/* base64url as in the document. */
const char *descriptor_get_publisher(const descriptor *d);
/* NULL when absent. */
const char *descriptor_get_source_package_url(const descriptor *d);
/* The whole document; borrowed, do not modify. */
json_t *descriptor_get_json(const descriptor *d);
