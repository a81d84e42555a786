/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "address.h"
#include "id.h"
#include "registry-record.h"

struct registry_record {
        registry_kind kind;
        char *url;
        char *descriptor;
        char *user;
        char *runtime;
        char *reporter;
        registry_location location;
        char *endpoint;
        unsigned lifetime;
        char **lists[_REGISTRY_LIST_MAX];
};

static const char *const kind_names[_REGISTRY_KIND_MAX] = {
        [REGISTRY_HYPERTY] = "hyperty",
        [REGISTRY_DATAOBJECT] = "dataobject",
};

static const char *const location_names[_REGISTRY_LOCATION_MAX] = {
        [REGISTRY_LOCATION_MESSAGING] = "messaging",
        [REGISTRY_LOCATION_LOCAL] = "local",
};

static const char *const list_names[_REGISTRY_LIST_MAX] = {
        [REGISTRY_RESOURCES] = "resources",
        [REGISTRY_DATA_SCHEMES] = "dataSchemes",
        [REGISTRY_TAGS] = "tags",
};

const char *registry_kind_to_string(registry_kind k) {
        return k >= 0 && k < _REGISTRY_KIND_MAX ? kind_names[k] : NULL;
}

const char *registry_location_to_string(registry_location l) {
        return l >= 0 && l < _REGISTRY_LOCATION_MAX ? location_names[l] : NULL;
}

const char *registry_list_to_string(registry_list l) {
        return l < _REGISTRY_LIST_MAX ? list_names[l] : NULL;
}

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool registry_value_is_valid(const char *s) {
        size_t n;

        if (!s || !is_alnum(s[0]))
                return false;
        for (n = 0; s[n]; n++)
                if (n >= REGISTRY_VALUE_MAX || (!is_alnum(s[n]) && !strchr("._:-", s[n])))
                        return false;
        return true;
}

int registry_url_make(registry_kind kind, const char *domain, const char *uuid, char **ret) {
        if (!domain || !ret || !id_uuid_is_valid(uuid))
                return -EINVAL;
        if (kind != REGISTRY_HYPERTY && kind != REGISTRY_DATAOBJECT)
                return -EINVAL;
        if (asprintf(ret, "%s://%s/%s", kind == REGISTRY_HYPERTY ? "hyperty" : "ctxt", domain, uuid) < 0)
                return -ENOMEM;
        return 0;
}

static void strv_free(char **l) {
        freestrvp(&l);
}

registry_record *registry_record_free(registry_record *r) {
        if (!r)
                return NULL;
        free(r->url);
        free(r->descriptor);
        free(r->user);
        free(r->runtime);
        free(r->reporter);
        free(r->endpoint);
        for (size_t i = 0; i < _REGISTRY_LIST_MAX; i++)
                strv_free(r->lists[i]);
        free(r);
        return NULL;
}

/* Printable ASCII without spaces, so that a URL has one spelling and can
 * be logged and echoed as it is. */
static bool is_printable_token(const char *s, size_t max) {
        size_t n;

        for (n = 0; s[n]; n++)
                if (n >= max || s[n] <= 0x20 || s[n] >= 0x7f)
                        return false;
        return n > 0;
}

/* scheme://rest, the scheme lower case. */
static bool is_url(const char *s, size_t max) {
        const char *p = s;

        if (!is_printable_token(s, max) || !(*p >= 'a' && *p <= 'z'))
                return false;
        while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.')
                p++;
        return strncmp(p, "://", 3) == 0 && p[3] != '\0';
}

/* An address of that scheme; authority, if given, must be equal. */
static bool is_address(const char *s, rt_address_scheme scheme, const char *authority) {
        _cleanup_rt_address_ rt_address *a = NULL;

        if (rt_address_parse(s, &a, NULL) < 0)
                return false;
        if (rt_address_get_scheme(a) != scheme)
                return false;
        if (authority && !streq(rt_address_get_authority(a), authority))
                return false;
        if ((scheme == RT_ADDRESS_RUNTIME || scheme == RT_ADDRESS_HYPERTY) &&
            !id_uuid_is_valid(rt_address_get_path(a)))
                return false;
        return *rt_address_get_path(a) != '\0';
}

static int fail(const char **ret_reason, const char *reason) {
        if (ret_reason)
                *ret_reason = reason;
        return -EINVAL;
}

static int take_string(json_t *v, char **dest) {
        char *s = strdup(json_string_value(v));

        if (!s)
                return -ENOMEM;
        free(*dest);
        *dest = s;
        return 0;
}

static int parse_list(json_t *v, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = json_array_size(v);

        if (!json_is_array(v) || n > REGISTRY_VALUES_MAX)
                return -EINVAL;
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(v, i);

                if (!json_is_string(e) || !registry_value_is_valid(json_string_value(e)))
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (streq(l[j], json_string_value(e)))
                                return -EINVAL;
                l[i] = strdup(json_string_value(e));
                if (!l[i])
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int parse_location(registry_record *r, json_t *v, const char **ret_reason) {
        const char *key, *type = NULL, *endpoint = NULL;
        json_t *m;

        if (!json_is_object(v))
                return fail(ret_reason, "field 'location': expected an object");
        json_object_foreach(v, key, m) {
                if (streq(key, "type")) {
                        if (!json_is_string(m))
                                return fail(ret_reason, "field 'location.type': expected \"messaging\" or \"local\"");
                        type = json_string_value(m);
                } else if (streq(key, "endpoint")) {
                        if (!json_is_string(m))
                                return fail(ret_reason, "field 'location.endpoint': expected an https URL");
                        endpoint = json_string_value(m);
                } else
                        return fail(ret_reason, "field 'location': unknown member (allowed: type, endpoint)");
        }
        if (!type)
                return fail(ret_reason, "field 'location.type': missing");
        if (streq(type, "messaging")) {
                if (endpoint)
                        return fail(ret_reason, "field 'location.endpoint': only for type \"local\"");
                r->location = REGISTRY_LOCATION_MESSAGING;
                return 0;
        }
        if (!streq(type, "local"))
                return fail(ret_reason, "field 'location.type': expected \"messaging\" or \"local\"");
        if (!endpoint)
                return fail(ret_reason, "field 'location.endpoint': missing for type \"local\"");
        if (strncmp(endpoint, "https://", 8) != 0 || !is_url(endpoint, REGISTRY_ENDPOINT_MAX))
                return fail(ret_reason, "field 'location.endpoint': expected an https URL of at most 256 bytes");
        r->location = REGISTRY_LOCATION_LOCAL;
        r->endpoint = strdup(endpoint);
        return r->endpoint ? 0 : -ENOMEM;
}

int registry_record_parse(registry_kind kind, const char *domain, const char *uuid, const char *json,
                          size_t len, registry_record **ret, const char **ret_reason) {
        _cleanup_registry_record_ registry_record *r = NULL;
        json_t *root = NULL, *v;
        json_error_t error;
        const char *key;
        bool have_location = false;
        int k = 0;

        if (!domain || !ret || (!json && len > 0) || (kind != REGISTRY_HYPERTY && kind != REGISTRY_DATAOBJECT))
                return fail(ret_reason, "missing argument");
        if (!id_uuid_is_valid(uuid))
                return fail(ret_reason, "path: expected a lowercase UUID");

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->kind = kind;
        k = registry_url_make(kind, domain, uuid, &r->url);
        if (k < 0)
                return k;
        for (size_t i = 0; i < _REGISTRY_LIST_MAX; i++) {
                r->lists[i] = calloc(1, sizeof(char *));
                if (!r->lists[i])
                        return -ENOMEM;
        }

        if (len == 0)
                return fail(ret_reason, "body: expected a JSON object");
        root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &error);
        if (!root)
                return fail(ret_reason, "body: invalid JSON");
        if (!json_is_object(root)) {
                json_decref(root);
                return fail(ret_reason, "body: expected a JSON object");
        }

        json_object_foreach(root, key, v) {
                if (streq(key, "url")) {
                        if (!json_is_string(v) || !streq(json_string_value(v), r->url))
                                k = fail(ret_reason, kind == REGISTRY_HYPERTY
                                                             ? "field 'url': must be hyperty://<domain>/<uuid> of the path"
                                                             : "field 'url': must be ctxt://<domain>/<uuid> of the path");
                } else if (streq(key, "descriptor")) {
                        if (!json_is_string(v) || !is_url(json_string_value(v), REGISTRY_DESCRIPTOR_MAX))
                                k = fail(ret_reason, "field 'descriptor': expected a URL of at most 512 bytes");
                        else
                                k = take_string(v, &r->descriptor);
                } else if (streq(key, "user")) {
                        if (!json_is_string(v) || !is_address(json_string_value(v), RT_ADDRESS_USER, NULL))
                                k = fail(ret_reason, "field 'user': expected user://<idp>/<id>");
                        else
                                k = take_string(v, &r->user);
                } else if (streq(key, "runtime")) {
                        if (!json_is_string(v) || !is_address(json_string_value(v), RT_ADDRESS_RUNTIME, domain))
                                k = fail(ret_reason, "field 'runtime': expected runtime://<domain>/<uuid> of this domain");
                        else
                                k = take_string(v, &r->runtime);
                } else if (streq(key, "reporter") && kind == REGISTRY_DATAOBJECT) {
                        if (!json_is_string(v) || !is_address(json_string_value(v), RT_ADDRESS_HYPERTY, domain))
                                k = fail(ret_reason, "field 'reporter': expected hyperty://<domain>/<uuid> of this domain");
                        else
                                k = take_string(v, &r->reporter);
                } else if (streq(key, "location")) {
                        k = parse_location(r, v, ret_reason);
                        have_location = true;
                } else if (streq(key, "lifetime")) {
                        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                            json_integer_value(v) > REGISTRY_LIFETIME_MAX)
                                k = fail(ret_reason, "field 'lifetime': expected an integer number of seconds");
                        else
                                r->lifetime = (unsigned) json_integer_value(v);
                } else {
                        registry_list l;

                        for (l = 0; l < _REGISTRY_LIST_MAX; l++)
                                if (streq(key, list_names[l]))
                                        break;
                        if (l == _REGISTRY_LIST_MAX)
                                k = fail(ret_reason, kind == REGISTRY_HYPERTY
                                                             ? "body: unknown field (allowed: url, descriptor, user, runtime, "
                                                               "resources, dataSchemes, tags, location, lifetime)"
                                                             : "body: unknown field (allowed: url, descriptor, user, runtime, "
                                                               "reporter, resources, dataSchemes, tags, location, lifetime)");
                        else {
                                char **n = NULL;

                                k = parse_list(v, &n);
                                if (k == -EINVAL)
                                        k = fail(ret_reason,
                                                 l == REGISTRY_RESOURCES ? "field 'resources': expected at most 32 distinct values of [A-Za-z0-9._:-]{1,64}"
                                                 : l == REGISTRY_DATA_SCHEMES
                                                         ? "field 'dataSchemes': expected at most 32 distinct values of [A-Za-z0-9._:-]{1,64}"
                                                         : "field 'tags': expected at most 32 distinct values of [A-Za-z0-9._:-]{1,64}");
                                else if (k >= 0) {
                                        strv_free(r->lists[l]);
                                        r->lists[l] = n;
                                }
                        }
                }
                if (k < 0)
                        break;
        }
        json_decref(root);
        if (k < 0)
                return k;

        if (!r->descriptor)
                return fail(ret_reason, "field 'descriptor': missing");
        if (!r->runtime)
                return fail(ret_reason, "field 'runtime': missing");
        if (!have_location)
                return fail(ret_reason, "field 'location': missing");
        *ret = TAKE_PTR(r);
        return 0;
}

registry_kind registry_record_get_kind(const registry_record *r) {
        return r->kind;
}
const char *registry_record_get_url(const registry_record *r) {
        return r->url;
}
const char *registry_record_get_descriptor(const registry_record *r) {
        return r->descriptor;
}
const char *registry_record_get_user(const registry_record *r) {
        return r->user;
}
const char *registry_record_get_runtime(const registry_record *r) {
        return r->runtime;
}
const char *registry_record_get_reporter(const registry_record *r) {
        return r->reporter;
}
registry_location registry_record_get_location(const registry_record *r) {
        return r->location;
}
const char *registry_record_get_endpoint(const registry_record *r) {
        return r->endpoint;
}
unsigned registry_record_get_lifetime(const registry_record *r) {
        return r->lifetime;
}
char *const *registry_record_get_list(const registry_record *r, registry_list l) {
        return l < _REGISTRY_LIST_MAX ? r->lists[l] : NULL;
}

static int set_string(json_t *o, const char *key, const char *value) {
        if (!value)
                return 0;
        return json_object_set_new(o, key, json_string(value)) < 0 ? -ENOMEM : 0;
}

int registry_record_to_json(const registry_record *r, char **ret) {
        json_t *o, *loc;
        char *s = NULL;
        int k;

        if (!r || !ret)
                return -EINVAL;
        o = json_object();
        loc = json_object();
        if (!o || !loc) {
                json_decref(o);
                json_decref(loc);
                return -ENOMEM;
        }
        k = set_string(o, "url", r->url);
        if (k >= 0)
                k = set_string(o, "descriptor", r->descriptor);
        if (k >= 0)
                k = set_string(o, "user", r->user);
        if (k >= 0)
                k = set_string(o, "runtime", r->runtime);
        if (k >= 0)
                k = set_string(o, "reporter", r->reporter);
        for (size_t l = 0; k >= 0 && l < _REGISTRY_LIST_MAX; l++) {
                json_t *a = json_array();

                if (!a || json_object_set_new(o, list_names[l], a) < 0) {
                        k = -ENOMEM;
                        break;
                }
                for (char **p = r->lists[l]; *p; p++)
                        if (json_array_append_new(a, json_string(*p)) < 0) {
                                k = -ENOMEM;
                                break;
                        }
        }
        if (k >= 0)
                k = set_string(loc, "type", location_names[r->location]);
        if (k >= 0)
                k = set_string(loc, "endpoint", r->endpoint);
        if (k >= 0 && json_object_set(o, "location", loc) < 0)
                k = -ENOMEM;
        if (k >= 0) {
                s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
                if (!s)
                        k = -ENOMEM;
        }
        json_decref(loc);
        json_decref(o);
        if (k < 0)
                return k;
        *ret = s;
        return 0;
}
