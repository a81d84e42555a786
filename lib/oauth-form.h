/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The body of an OAuth 2.0 token request (RFC 6749 §4.4, RFC 7523 §2.2):
 * application/x-www-form-urlencoded, "name=value&name=value".
 *
 * Values are percent-decoded ('+' is a space). Each parameter may be given
 * once (RFC 6749 §3.2); a second one, a bad escape or %00 is refused.
 * Parameters the token endpoint does not know are ignored, as RFC 6749 §3.2
 * asks. */

#include <stddef.h>

#include "macro.h"

/* Larger bodies are refused unparsed: an assertion is at most
 * TOKEN_MAX_SIZE, the rest is small. */
#define OAUTH_FORM_MAX_SIZE (20 * 1024)

typedef enum oauth_form_param {
        OAUTH_GRANT_TYPE,
        OAUTH_SCOPE,
        OAUTH_CLIENT_ID,
        OAUTH_CLIENT_SECRET,
        OAUTH_CLIENT_ASSERTION_TYPE,
        OAUTH_CLIENT_ASSERTION,
        /* the resource owner password grant (RFC 6749 §4.3.2) */
        OAUTH_USERNAME,
        OAUTH_PASSWORD,
        _OAUTH_FORM_PARAM_MAX,
} oauth_form_param;

typedef struct oauth_form oauth_form;

/* -EINVAL with a static *ret_reason naming the parameter; -E2BIG over
 * OAUTH_FORM_MAX_SIZE; -ENOMEM. */
int oauth_form_parse(const char *body, size_t len, oauth_form **ret, const char **ret_reason);
oauth_form *oauth_form_free(oauth_form *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(oauth_form *, oauth_form_free);
#define _cleanup_oauth_form_ _cleanup_(oauth_form_freep)

/* The decoded value, or NULL when absent. */
const char *oauth_form_get(const oauth_form *f, oauth_form_param p);
/* HTTP Basic client authentication (RFC 6749 §2.3.1): the value of an
 * Authorization header "Basic base64(id:secret)", where id and secret are
 * form-urlencoded before encoding. -ENOENT when the header is no Basic
 * credential, -EINVAL (static *ret_reason) when it is malformed. */
int oauth_basic_parse(const char *authorization, char **ret_id, char **ret_secret, const char **ret_reason);

/* "grant_type", "scope", ... */
const char *oauth_form_param_to_string(oauth_form_param p);
