/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Access control lists for software components, after LWM2M Object 2
 * (Access Control): each component has an owner and a list of principals
 * with the rights they hold on it.
 *
 *   read     see the component (state, result, descriptor)
 *   write    change it: confirm an install (consent), replace a failed one
 *   execute  activate and deactivate it
 *   delete   cancel its installation, uninstall it
 *
 * Principals are strings:
 *   "dm:<domain>"        the device management server of a domain
 *   "local:uid=<n>"      a local caller, identified by SO_PEERCRED
 *   "<scheme>://<rest>"  anything else with an address (user://, hyperty://)
 *   "*"                  everyone (the LWM2M "default" ACL entry)
 * The owner holds every right implicitly (LWM2M's Access Control Owner).
 *
 * In JSON an ACL is {"owner": P, "entries": {P: "rwxd", ...}} where the
 * rights string holds a subset of r, w, x, d in that order ("-" for none). */

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "macro.h"

typedef enum acl_right {
        ACL_READ = 1 << 0,
        ACL_WRITE = 1 << 1,
        ACL_EXECUTE = 1 << 2,
        ACL_DELETE = 1 << 3,
        ACL_ALL = ACL_READ | ACL_WRITE | ACL_EXECUTE | ACL_DELETE,
} acl_right;

#define ACL_PRINCIPAL_MAX 255
#define ACL_ENTRIES_MAX 64
#define ACL_RIGHTS_STRING_MAX 5

typedef struct acl acl;

bool acl_principal_is_valid(const char *p);
/* "local:uid=<uid>" into a new string. */
int acl_principal_local(uid_t uid, char **ret);

/* "rwxd" subset in that order, or "-" for none; -EINVAL otherwise. */
int acl_rights_from_string(const char *s, unsigned *ret);
char *acl_rights_to_string(unsigned rights, char buf[static ACL_RIGHTS_STRING_MAX]);

int acl_new(const char *owner, acl **ret);
acl *acl_free(acl *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(acl *, acl_free);
#define _cleanup_acl_ _cleanup_(acl_freep)

const char *acl_get_owner(const acl *a);
/* Sets the rights of principal; 0 removes its entry. -E2BIG past
 * ACL_ENTRIES_MAX entries. */
int acl_set(acl *a, const char *principal, unsigned rights);
/* The rights principal holds through its own entry, "*" and ownership. */
unsigned acl_get_rights(const acl *a, const char *principal);
/* True when principal holds every right in rights. */
bool acl_check(const acl *a, const char *principal, unsigned rights);
size_t acl_get_n_entries(const acl *a);

int acl_to_json(const acl *a, json_t **ret);
/* Strict: an object with exactly "owner" and "entries"; -EINVAL with
 * *ret_reason (static string) for anything else. */
int acl_from_json(json_t *j, acl **ret, const char **ret_reason);
/* Applies {"P": "rwx", ...} (an order's extra entries) to a; all or
 * nothing. */
int acl_apply_entries(acl *a, json_t *entries, const char **ret_reason);
