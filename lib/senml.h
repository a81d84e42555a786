/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* SenML (RFC 8428) in its JSON form: the values of context resources
 * (ctxt://) that the Messaging Service stores and fans out.
 *
 * Validation is strict, so that whatever the Global M2M Resource Directory
 * keeps can be read back by any SenML consumer:
 *   - the pack is a non-empty array (at most SENML_MAX_RECORDS) of objects;
 *   - only the labels bn, bt, bu, bv, bs, bver, n, u, v, vs, vb, vd, s, t
 *     and ut are accepted, each with its JSON type (strings, numbers,
 *     true/false, bver a positive integer, vd base64url without padding);
 *     unknown labels are refused, including the "_"-suffixed
 *     must-understand ones of RFC 8428 §4.4, since we understand none;
 *   - every record carries exactly one value (v, vs, vb, vd), or none when
 *     it carries a sum (s) or a base value/sum is in effect (bv, bs);
 *   - the resolved name (bn + n) is 1-SENML_MAX_NAME bytes, starts with a
 *     letter or digit and holds only A-Z a-z 0-9 - : . / _ (§4.5.1);
 *   - strings are at most SENML_MAX_STRING bytes.
 * Reasons are static strings that name the rule or the label but never
 * quote input, so they are safe to send back. */

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define SENML_MAX_RECORDS 256u
#define SENML_MAX_NAME 256u
#define SENML_MAX_STRING 4096u
/* Input bytes for senml_parse(). */
#define SENML_MAX_SIZE (64u * 1024u)

/* Checks an already parsed pack. 0 or -EINVAL with *ret_reason (static). */
int senml_check(const json_t *pack, const char **ret_reason);

/* Parses size bytes of JSON (duplicate keys refused) and checks the pack.
 * -EMSGSIZE over SENML_MAX_SIZE, -EBADMSG not JSON, -EINVAL not valid
 * SenML; *ret gets a new reference on success. */
int senml_parse(const void *data, size_t size, json_t **ret, const char **ret_reason);
