/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>
#include <string.h>

#include "macro.h"
#include "rd-acl.h"

/* Subjects are token subjects: endpoint names, "admin". Printable ASCII
 * without spaces keeps them loggable as they are. */
static bool subject_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > RD_ACL_MAX_SUBJECT)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] <= ' ' || s[i] >= 0x7f)
                        return false;
        return true;
}

static int access_from_string(const char *s) {
        if (streq(s, ""))
                return RD_ACCESS_NONE;
        if (streq(s, "r"))
                return RD_ACCESS_READ;
        if (streq(s, "rw"))
                return RD_ACCESS_READ | RD_ACCESS_WRITE;
        return -EINVAL;
}

int rd_acl_check(const json_t *acl, const char **ret_reason) {
        const char *key;
        json_t *v;

        if (!json_is_object(acl)) {
                *ret_reason = "acl: expected an object";
                return -EINVAL;
        }
        if (json_object_size(acl) > RD_ACL_MAX_ENTRIES) {
                *ret_reason = "acl: too many entries";
                return -EINVAL;
        }
        json_object_foreach((json_t *) acl, key, v) {
                if (!subject_is_valid(key)) {
                        *ret_reason = "acl: a subject must be 1-256 printable characters without spaces";
                        return -EINVAL;
                }
                if (!json_is_string(v) || access_from_string(json_string_value(v)) < 0) {
                        *ret_reason = "acl: access must be \"r\", \"rw\" or \"\"";
                        return -EINVAL;
                }
        }
        return 0;
}

int rd_acl_parse(const void *data, size_t size, json_t **ret, const char **ret_reason) {
        json_error_t error;
        json_t *acl;
        int r;

        if (size > RD_ACL_MAX_SIZE) {
                *ret_reason = "acl: too large";
                return -EMSGSIZE;
        }
        acl = json_loadb(data, size, JSON_REJECT_DUPLICATES, &error);
        if (!acl) {
                *ret_reason = "acl: not JSON";
                return -EBADMSG;
        }
        r = rd_acl_check(acl, ret_reason);
        if (r < 0) {
                json_decref(acl);
                return r;
        }
        *ret = acl;
        return 0;
}

unsigned rd_acl_lookup(const json_t *acl, const char *subject) {
        json_t *v = NULL;
        int a;

        if (subject)
                v = json_object_get(acl, subject);
        if (!v)
                v = json_object_get(acl, "*");
        if (!json_is_string(v))
                return RD_ACCESS_NONE;
        a = access_from_string(json_string_value(v));
        return a < 0 ? RD_ACCESS_NONE : (unsigned) a;
}
