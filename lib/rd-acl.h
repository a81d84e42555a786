/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Access control lists of the Local M2M Resource Directory's resources
 * (docs/local-rd.md): a JSON object mapping a subject (an access token's
 * `sub`, e.g. a device endpoint) or "*" (any authenticated peer) to "r"
 * (read and subscribe) or "rw" (also update, i.e. actuate).
 *
 *   {"sensor-2": "rw", "*": "r"}
 *
 * The entry for the subject itself wins over "*", so a subject can be
 * given less than everybody else ("": nothing) as well as more. An empty
 * object grants nothing. Reasons are static and never quote input. */

#include <errno.h>
#include <jansson.h>
#include <stddef.h>

#define RD_ACL_MAX_ENTRIES 64u
#define RD_ACL_MAX_SUBJECT 256u
/* Input bytes for rd_acl_parse(). */
#define RD_ACL_MAX_SIZE (16u * 1024u)

typedef enum rd_access {
        RD_ACCESS_NONE = 0,
        RD_ACCESS_READ = 1 << 0,
        RD_ACCESS_WRITE = 1 << 1,
} rd_access;

/* Checks an already parsed ACL. 0 or -EINVAL with *ret_reason (static). */
int rd_acl_check(const json_t *acl, const char **ret_reason);

/* Parses size bytes of JSON (duplicate keys refused) and checks it.
 * -EMSGSIZE over RD_ACL_MAX_SIZE, -EBADMSG not JSON, -EINVAL not a valid
 * ACL; *ret gets a new reference on success. */
int rd_acl_parse(const void *data, size_t size, json_t **ret, const char **ret_reason);

/* What a checked ACL grants subject (NULL: only "*" applies). */
unsigned rd_acl_lookup(const json_t *acl, const char *subject);
