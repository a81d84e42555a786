/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>
#include <string.h>

#include "macro.h"
#include "senml.h"

typedef enum label_type {
        L_STRING,
        L_NUMBER,
        L_BOOL,
        L_VERSION,
        L_DATA,
} label_type;

typedef enum label_role {
        ROLE_NONE,
        ROLE_VALUE,
        ROLE_SUM,
        ROLE_BASE_VALUE,
} label_role;

typedef struct label {
        const char *name;
        label_type type;
        label_role role;
        const char *reason;
} label;

static const label labels[] = {
        { "bn", L_STRING, ROLE_NONE, "SenML: 'bn' must be a string" },
        { "bt", L_NUMBER, ROLE_NONE, "SenML: 'bt' must be a number" },
        { "bu", L_STRING, ROLE_NONE, "SenML: 'bu' must be a string" },
        { "bv", L_NUMBER, ROLE_BASE_VALUE, "SenML: 'bv' must be a number" },
        { "bs", L_NUMBER, ROLE_BASE_VALUE, "SenML: 'bs' must be a number" },
        { "bver", L_VERSION, ROLE_NONE, "SenML: 'bver' must be a positive integer" },
        { "n", L_STRING, ROLE_NONE, "SenML: 'n' must be a string" },
        { "u", L_STRING, ROLE_NONE, "SenML: 'u' must be a string" },
        { "v", L_NUMBER, ROLE_VALUE, "SenML: 'v' must be a number" },
        { "vs", L_STRING, ROLE_VALUE, "SenML: 'vs' must be a string" },
        { "vb", L_BOOL, ROLE_VALUE, "SenML: 'vb' must be true or false" },
        { "vd", L_DATA, ROLE_VALUE, "SenML: 'vd' must be base64url without padding" },
        { "s", L_NUMBER, ROLE_SUM, "SenML: 's' must be a number" },
        { "t", L_NUMBER, ROLE_NONE, "SenML: 't' must be a number" },
        { "ut", L_NUMBER, ROLE_NONE, "SenML: 'ut' must be a number" },
};

static const label *label_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(labels); i++)
                if (streq(labels[i].name, name))
                        return &labels[i];
        return NULL;
}

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_base64url(const char *s, size_t n) {
        /* One leftover character cannot encode a byte. */
        if (n % 4 == 1)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_')
                        return false;
        return true;
}

static bool name_chars_ok(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && !strchr("-:./_", s[i]))
                        return false;
        return true;
}

static int check_value(const label *l, json_t *v, const char **ret_reason) {
        switch (l->type) {
        case L_STRING:
        case L_DATA: {
                const char *s;
                size_t n;

                if (!json_is_string(v))
                        break;
                s = json_string_value(v);
                n = json_string_length(v);
                if (n > SENML_MAX_STRING || memchr(s, '\0', n)) {
                        *ret_reason = "SenML: string too long or holding a NUL byte";
                        return -EINVAL;
                }
                if (l->type == L_DATA && !is_base64url(s, n))
                        break;
                return 0;
        }
        case L_NUMBER:
                if (json_is_number(v))
                        return 0;
                break;
        case L_BOOL:
                if (json_is_boolean(v))
                        return 0;
                break;
        case L_VERSION:
                if (json_is_integer(v) && json_integer_value(v) >= 1)
                        return 0;
                break;
        }
        *ret_reason = l->reason;
        return -EINVAL;
}

int senml_check(const json_t *pack, const char **ret_reason) {
        const char *reason_dummy, *base_name = "";
        const char **reason = ret_reason ?: &reason_dummy;
        bool base_value = false;
        size_t n_records;

        if (!json_is_array(pack)) {
                *reason = "SenML: a pack must be a JSON array of records";
                return -EINVAL;
        }
        n_records = json_array_size(pack);
        if (n_records == 0) {
                *reason = "SenML: a pack needs at least one record";
                return -EINVAL;
        }
        if (n_records > SENML_MAX_RECORDS) {
                *reason = "SenML: too many records";
                return -EINVAL;
        }

        for (size_t i = 0; i < n_records; i++) {
                json_t *rec = json_array_get(pack, i), *v;
                const char *key, *name = "";
                unsigned n_values = 0;
                bool sum = false;
                size_t bl, nl;

                if (!json_is_object(rec)) {
                        *reason = "SenML: every record must be a JSON object";
                        return -EINVAL;
                }
                json_object_foreach(rec, key, v) {
                        const label *l = label_find(key);
                        int r;

                        if (!l) {
                                *reason = "SenML: unknown label (allowed: bn, bt, bu, bv, bs, bver, n, u, v, vs, "
                                          "vb, vd, s, t, ut)";
                                return -EINVAL;
                        }
                        r = check_value(l, v, reason);
                        if (r < 0)
                                return r;
                        if (l->role == ROLE_VALUE)
                                n_values++;
                        else if (l->role == ROLE_SUM)
                                sum = true;
                        else if (l->role == ROLE_BASE_VALUE)
                                base_value = true;
                }

                /* Base fields apply to this record and every later one
                 * (RFC 8428 §4.1), so the base name is updated first. */
                v = json_object_get(rec, "bn");
                if (v)
                        base_name = json_string_value(v);
                v = json_object_get(rec, "n");
                if (v)
                        name = json_string_value(v);

                if (n_values > 1) {
                        *reason = "SenML: a record carries at most one of v, vs, vb, vd";
                        return -EINVAL;
                }
                if (n_values == 0 && !sum && !base_value) {
                        *reason = "SenML: a record needs a value (v, vs, vb, vd) or a sum (s)";
                        return -EINVAL;
                }

                bl = strlen(base_name);
                nl = strlen(name);
                if (bl + nl == 0) {
                        *reason = "SenML: a record needs a name (bn + n)";
                        return -EINVAL;
                }
                if (bl + nl > SENML_MAX_NAME) {
                        *reason = "SenML: name (bn + n) too long";
                        return -EINVAL;
                }
                if (!is_alnum(bl > 0 ? base_name[0] : name[0]) || !name_chars_ok(base_name, bl) ||
                    !name_chars_ok(name, nl)) {
                        *reason = "SenML: a name (bn + n) starts with a letter or digit and holds only A-Z a-z "
                                  "0-9 - : . / _";
                        return -EINVAL;
                }
        }
        return 0;
}

int senml_parse(const void *data, size_t size, json_t **ret, const char **ret_reason) {
        const char *reason_dummy;
        const char **reason = ret_reason ?: &reason_dummy;
        json_t *j;
        int r;

        if (!data && size > 0)
                return -EINVAL;
        if (size > SENML_MAX_SIZE) {
                *reason = "SenML: pack too large";
                return -EMSGSIZE;
        }
        j = json_loadb(data ?: "", size, JSON_REJECT_DUPLICATES, NULL);
        if (!j) {
                *reason = "SenML: not valid JSON";
                return -EBADMSG;
        }
        r = senml_check(j, reason);
        if (r < 0) {
                json_decref(j);
                return r;
        }
        if (ret)
                *ret = j;
        else
                json_decref(j);
        return 0;
}
