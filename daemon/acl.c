/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"

typedef struct acl_entry {
        char *principal;
        unsigned rights;
} acl_entry;

struct acl {
        char *owner;
        acl_entry *entries;
        size_t n_entries;
};

static bool valid_scheme_principal(const char *p) {
        const char *sep = strstr(p, "://");

        if (!sep || sep == p || !sep[3])
                return false;
        if (!isalpha((unsigned char) p[0]))
                return false;
        for (const char *c = p; c < sep; c++)
                if (!isalnum((unsigned char) *c) && *c != '+' && *c != '-' && *c != '.')
                        return false;
        return true;
}

bool acl_principal_is_valid(const char *p) {
        size_t n;

        if (!p)
                return false;
        n = strlen(p);
        if (n == 0 || n > ACL_PRINCIPAL_MAX)
                return false;
        /* Principals end up in journal fields and JSON replies: printable
         * ASCII without blanks keeps them unambiguous there. */
        for (const char *c = p; *c; c++)
                if (*c <= ' ' || *c >= 0x7f)
                        return false;
        if (streq(p, "*"))
                return true;
        if (strncmp(p, "dm:", 3) == 0)
                return p[3] != '\0' && !strchr(p + 3, '/');
        if (strncmp(p, "local:uid=", 10) == 0) {
                const char *d = p + 10;

                if (!*d || (d[0] == '0' && d[1]) || strlen(d) > 10)
                        return false;
                for (; *d; d++)
                        if (!isdigit((unsigned char) *d))
                                return false;
                return strtoull(p + 10, NULL, 10) <= UINT32_MAX - 1;
        }
        return valid_scheme_principal(p);
}

int acl_principal_local(uid_t uid, char **ret) {
        char *s;

        if (!ret)
                return -EINVAL;
        if (asprintf(&s, "local:uid=%u", (unsigned) uid) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int acl_rights_from_string(const char *s, unsigned *ret) {
        static const char order[] = "rwxd";
        unsigned rights = 0;
        size_t pos = 0;

        if (!s || !ret || !*s)
                return -EINVAL;
        if (streq(s, "-")) {
                *ret = 0;
                return 0;
        }
        for (; *s; s++) {
                const char *f = strchr(order + pos, *s);

                if (!f || *s == '\0')
                        return -EINVAL;
                pos = (size_t) (f - order) + 1;
                rights |= 1u << (f - order);
        }
        *ret = rights;
        return 0;
}

char *acl_rights_to_string(unsigned rights, char buf[static ACL_RIGHTS_STRING_MAX]) {
        char *p = buf;

        if (rights & ACL_READ)
                *p++ = 'r';
        if (rights & ACL_WRITE)
                *p++ = 'w';
        if (rights & ACL_EXECUTE)
                *p++ = 'x';
        if (rights & ACL_DELETE)
                *p++ = 'd';
        if (p == buf)
                *p++ = '-';
        *p = '\0';
        return buf;
}

int acl_new(const char *owner, acl **ret) {
        acl *a;

        if (!acl_principal_is_valid(owner) || streq(owner, "*") || !ret)
                return -EINVAL;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->owner = strdup(owner);
        if (!a->owner) {
                free(a);
                return -ENOMEM;
        }
        *ret = a;
        return 0;
}

acl *acl_free(acl *a) {
        if (!a)
                return NULL;
        for (size_t i = 0; i < a->n_entries; i++)
                free(a->entries[i].principal);
        free(a->entries);
        free(a->owner);
        free(a);
        return NULL;
}

const char *acl_get_owner(const acl *a) {
        return a ? a->owner : NULL;
}

static acl_entry *acl_find(const acl *a, const char *principal) {
        for (size_t i = 0; i < a->n_entries; i++)
                if (streq(a->entries[i].principal, principal))
                        return &a->entries[i];
        return NULL;
}

int acl_set(acl *a, const char *principal, unsigned rights) {
        acl_entry *e, *n;
        char *p;

        if (!a || !acl_principal_is_valid(principal) || (rights & ~(unsigned) ACL_ALL))
                return -EINVAL;
        e = acl_find(a, principal);
        if (e) {
                if (rights == 0) {
                        free(e->principal);
                        *e = a->entries[--a->n_entries];
                } else
                        e->rights = rights;
                return 0;
        }
        if (rights == 0)
                return 0;
        if (a->n_entries >= ACL_ENTRIES_MAX)
                return -E2BIG;
        p = strdup(principal);
        if (!p)
                return -ENOMEM;
        n = reallocarray(a->entries, a->n_entries + 1, sizeof(*n));
        if (!n) {
                free(p);
                return -ENOMEM;
        }
        a->entries = n;
        a->entries[a->n_entries++] = (acl_entry) { .principal = p, .rights = rights };
        return 0;
}

unsigned acl_get_rights(const acl *a, const char *principal) {
        const acl_entry *e;
        unsigned rights = 0;

        if (!a || !principal)
                return 0;
        if (streq(principal, a->owner))
                return ACL_ALL;
        e = acl_find(a, principal);
        if (e)
                rights |= e->rights;
        e = acl_find(a, "*");
        if (e)
                rights |= e->rights;
        return rights;
}

bool acl_check(const acl *a, const char *principal, unsigned rights) {
        return rights != 0 && (acl_get_rights(a, principal) & rights) == rights;
}

size_t acl_get_n_entries(const acl *a) {
        return a ? a->n_entries : 0;
}

int acl_to_json(const acl *a, json_t **ret) {
        json_t *o, *entries;

        if (!a || !ret)
                return -EINVAL;
        entries = json_object();
        if (!entries)
                return -ENOMEM;
        for (size_t i = 0; i < a->n_entries; i++) {
                char buf[ACL_RIGHTS_STRING_MAX];

                if (json_object_set_new(entries, a->entries[i].principal,
                                        json_string(acl_rights_to_string(a->entries[i].rights, buf))) < 0) {
                        json_decref(entries);
                        return -ENOMEM;
                }
        }
        o = json_pack("{s:s, s:o}", "owner", a->owner, "entries", entries);
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

/* Validates everything first, so a bad entry changes nothing. */
int acl_apply_entries(acl *a, json_t *entries, const char **ret_reason) {
        const char *key, *reason = NULL;
        json_t *v;
        int r;

        if (!a)
                return -EINVAL;
        if (!json_is_object(entries)) {
                reason = "acl entries: expected an object";
                goto fail;
        }
        if (json_object_size(entries) > ACL_ENTRIES_MAX) {
                reason = "acl entries: too many";
                goto fail;
        }
        json_object_foreach(entries, key, v) {
                unsigned rights;

                if (!acl_principal_is_valid(key)) {
                        reason = "acl entries: invalid principal";
                        goto fail;
                }
                if (!json_is_string(v) || acl_rights_from_string(json_string_value(v), &rights) < 0) {
                        reason = "acl entries: rights must be a subset of \"rwxd\" in that order, or \"-\"";
                        goto fail;
                }
        }
        json_object_foreach(entries, key, v) {
                unsigned rights = 0;

                (void) acl_rights_from_string(json_string_value(v), &rights);
                r = acl_set(a, key, rights);
                if (r == -E2BIG) {
                        reason = "acl entries: too many";
                        goto fail;
                }
                if (r < 0)
                        return r;
        }
        return 0;
fail:
        if (ret_reason)
                *ret_reason = reason;
        return -EINVAL;
}

int acl_from_json(json_t *j, acl **ret, const char **ret_reason) {
        _cleanup_acl_ acl *a = NULL;
        json_t *owner, *entries;
        const char *reason;
        int r;

        if (!ret)
                return -EINVAL;
        owner = json_object_get(j, "owner");
        entries = json_object_get(j, "entries");
        if (!json_is_object(j) || json_object_size(j) != 2 || !json_is_string(owner) || !entries) {
                reason = "acl: expected {\"owner\": ..., \"entries\": {...}}";
                goto fail;
        }
        r = acl_new(json_string_value(owner), &a);
        if (r == -EINVAL) {
                reason = "acl: invalid owner";
                goto fail;
        }
        if (r < 0)
                return r;
        r = acl_apply_entries(a, entries, ret_reason);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
fail:
        if (ret_reason)
                *ret_reason = reason;
        return -EINVAL;
}
