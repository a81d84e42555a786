/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "descriptor.h"
#include "encoding.h"
#include "json-util.h"
#include "log.h"

#define DESCRIPTION_MAX 4096
#define LIST_MAX 64
#define TOKEN_MAX 64
#define URL_MAX 2048

struct descriptor {
        json_t *json;
        descriptor_kind kind;
        const char *name, *version, *sha256, *publisher, *source_url;
        uint8_t digest[SHA256_DIGEST_SIZE];
        uint8_t signature[SIGN_SIGNATURE_SIZE];
};

static const char *const kind_table[_DESCRIPTOR_KIND_MAX] = {
        [DESCRIPTOR_HYPERTY] = "hyperty",
        [DESCRIPTOR_PROTOCOLSTUB] = "protocolstub",
        [DESCRIPTOR_RUNTIME] = "runtime",
};

const char *descriptor_kind_to_string(descriptor_kind kind) {
        if (kind < 0 || kind >= _DESCRIPTOR_KIND_MAX)
                return NULL;
        return kind_table[kind];
}

descriptor_kind descriptor_kind_from_string(const char *s) {
        if (!s)
                return _DESCRIPTOR_KIND_INVALID;
        for (size_t i = 0; i < _DESCRIPTOR_KIND_MAX; i++)
                if (streq(kind_table[i], s))
                        return (descriptor_kind) i;
        return _DESCRIPTOR_KIND_INVALID;
}

_printf_(3, 4) static int fail(char **ret_reason, int error, const char *format, ...) {
        _cleanup_free_ char *reason = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&reason, format, ap) < 0)
                reason = NULL;
        va_end(ap);

        log_debug_errno(error, "Invalid descriptor: %s", strna(reason));
        if (ret_reason)
                *ret_reason = TAKE_PTR(reason);
        return -abs(error);
}

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* 1..max bytes of [A-Za-z0-9] plus the extra characters, first alnum. */
static bool token_is_valid(const char *s, size_t max, const char *extra) {
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n > max || !is_alnum(s[0]))
                return false;
        for (const char *p = s; *p; p++)
                if (!is_alnum(*p) && !strchr(extra, *p))
                        return false;
        return true;
}

bool descriptor_name_is_valid(const char *s) {
        return token_is_valid(s, DESCRIPTOR_NAME_MAX, "._-");
}

/* Printable ASCII and any UTF-8 beyond it (jansson checked the encoding);
 * no control characters, which have no business in a URL or a label. */
static bool text_is_clean(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
                        return false;
        return true;
}

static int check_raw_input(const char *data, size_t size, char **ret_reason) {
        size_t at = 0;
        int r;

        r = json_scan_raw(data, size, DESCRIPTOR_MAX_DEPTH, &at);
        if (r == -EBADMSG)
                return fail(ret_reason, EBADMSG, "invalid JSON: NUL byte at offset %zu", at);
        if (r == -E2BIG)
                return fail(ret_reason, E2BIG, "JSON nested deeper than %u levels at offset %zu",
                            DESCRIPTOR_MAX_DEPTH, at);
        return r;
}

static int check_string(json_t *v, const char *field, size_t max, const char **ret, char **ret_reason) {
        if (!json_is_string(v))
                return fail(ret_reason, EINVAL, "field '%s': expected a string", field);
        if (json_string_length(v) == 0 || json_string_length(v) > max)
                return fail(ret_reason, EINVAL, "field '%s': expected 1 to %zu bytes", field, max);
        if (!text_is_clean(json_string_value(v), json_string_length(v)))
                return fail(ret_reason, EINVAL, "field '%s': control character", field);
        if (ret)
                *ret = json_string_value(v);
        return 0;
}

static int check_token_list(json_t *v, const char *field, size_t max_len, const char *extra, char **ret_reason) {
        size_t i;
        json_t *e;

        if (!json_is_array(v))
                return fail(ret_reason, EINVAL, "field '%s': expected an array of strings", field);
        if (json_array_size(v) == 0 || json_array_size(v) > LIST_MAX)
                return fail(ret_reason, EINVAL, "field '%s': expected 1 to %d entries", field, LIST_MAX);
        json_array_foreach(v, i, e) {
                if (!json_is_string(e))
                        return fail(ret_reason, EINVAL, "field '%s[%zu]': expected a string", field, i);
                if (extra) {
                        if (!token_is_valid(json_string_value(e), max_len, extra))
                                return fail(ret_reason, EINVAL,
                                            "field '%s[%zu]': expected 1 to %zu characters of [A-Za-z0-9%s]",
                                            field, i, max_len, extra);
                } else if (json_string_length(e) == 0 || json_string_length(e) > max_len ||
                           !text_is_clean(json_string_value(e), json_string_length(e)))
                        return fail(ret_reason, EINVAL,
                                    "field '%s[%zu]': expected 1 to %zu bytes without control characters",
                                    field, i, max_len);
        }
        return 0;
}

static int check_constraints(json_t *v, char **ret_reason) {
        const char *key;
        json_t *e;
        int r;

        if (!json_is_object(v))
                return fail(ret_reason, EINVAL, "field 'constraints': expected an object");
        json_object_foreach(v, key, e) {
                if (streq(key, "runtimeVersion")) {
                        if (!json_is_string(e) || !token_is_valid(json_string_value(e), DESCRIPTOR_VERSION_MAX, ".+-"))
                                return fail(ret_reason, EINVAL,
                                            "field 'constraints.runtimeVersion': expected a version string");
                } else if (streq(key, "arch")) {
                        r = check_token_list(e, "constraints.arch", TOKEN_MAX, "_-", ret_reason);
                        if (r < 0)
                                return r;
                } else if (streq(key, "diskBytes")) {
                        if (!json_is_integer(e) || json_integer_value(e) < 0 ||
                            json_integer_value(e) > (json_int_t) 9007199254740991LL)
                                return fail(ret_reason, EINVAL,
                                            "field 'constraints.diskBytes': expected an integer between 0 and 9007199254740991");
                } else
                        return fail(ret_reason, EINVAL,
                                    "field 'constraints': unknown constraint (allowed: runtimeVersion, arch, diskBytes)");
        }
        return 0;
}

static int check_source_url(json_t *v, const char *sha256, const char **ret, char **ret_reason) {
        const char *s = NULL, *tail;
        size_t n;
        int r;

        r = check_string(v, "sourcePackageURL", URL_MAX, &s, ret_reason);
        if (r < 0)
                return r;
        n = strlen(s);
        if (s[0] != '/' && strncmp(s, "https://", 8) != 0)
                return fail(ret_reason, EINVAL,
                            "field 'sourcePackageURL': expected an absolute path or an https:// URL");
        if (strchr(s, ' ') || strchr(s, '?') || strchr(s, '#'))
                return fail(ret_reason, EINVAL, "field 'sourcePackageURL': space, query or fragment");
        /* The package is named by its digest, wherever it is served. */
        tail = n > SHA256_HEX_SIZE ? s + n - (SHA256_HEX_SIZE - 1) : NULL;
        if (!tail || tail[-1] != '/' || !streq(tail, sha256))
                return fail(ret_reason, EINVAL, "field 'sourcePackageURL': must end in /<sha256>");
        *ret = s;
        return 0;
}

static bool is_lower_hex(const char *s, size_t n) {
        if (strlen(s) != n)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static int validate(descriptor *d, char **ret_reason) {
        static const char *const known[] = {
                "type", "objectName", "version", "description", "hypertyType", "dataObjects",
                "constraints", "configuration", "sourcePackageURL", "sha256", "signature", "publisher",
        };
        json_t *root = d->json, *v;
        const char *key;
        int r;

        if (!json_is_object(root))
                return fail(ret_reason, EINVAL, "descriptor: expected a JSON object");

        json_object_foreach(root, key, v) {
                bool ok = false;

                for (size_t i = 0; i < ELEMENTSOF(known) && !ok; i++)
                        ok = streq(key, known[i]);
                if (!ok)
                        return fail(ret_reason, EINVAL,
                                    "descriptor: unknown field (allowed: type, objectName, version, description, "
                                    "hypertyType, dataObjects, constraints, configuration, sourcePackageURL, "
                                    "sha256, signature, publisher)");
        }

        v = json_object_get(root, "type");
        if (!v)
                return fail(ret_reason, EINVAL, "field 'type': missing");
        d->kind = json_is_string(v) ? descriptor_kind_from_string(json_string_value(v)) : _DESCRIPTOR_KIND_INVALID;
        if (d->kind < 0)
                return fail(ret_reason, EINVAL, "field 'type': expected hyperty, protocolstub or runtime");

        v = json_object_get(root, "objectName");
        if (!v)
                return fail(ret_reason, EINVAL, "field 'objectName': missing");
        if (!json_is_string(v) || !descriptor_name_is_valid(json_string_value(v)))
                return fail(ret_reason, EINVAL,
                            "field 'objectName': expected 1 to %d characters of [A-Za-z0-9._-], starting with a letter or digit",
                            DESCRIPTOR_NAME_MAX);
        d->name = json_string_value(v);

        v = json_object_get(root, "version");
        if (!v)
                return fail(ret_reason, EINVAL, "field 'version': missing");
        if (!json_is_string(v) || !token_is_valid(json_string_value(v), DESCRIPTOR_VERSION_MAX, ".+-"))
                return fail(ret_reason, EINVAL,
                            "field 'version': expected 1 to %d characters of [A-Za-z0-9.+-], starting with a letter or digit",
                            DESCRIPTOR_VERSION_MAX);
        d->version = json_string_value(v);

        v = json_object_get(root, "description");
        if (v && !json_is_string(v))
                return fail(ret_reason, EINVAL, "field 'description': expected a string");
        if (v && json_string_length(v) > DESCRIPTION_MAX)
                return fail(ret_reason, EINVAL, "field 'description': longer than %d bytes", DESCRIPTION_MAX);

        v = json_object_get(root, "hypertyType");
        if (d->kind == DESCRIPTOR_HYPERTY) {
                if (!v)
                        return fail(ret_reason, EINVAL, "field 'hypertyType': missing, a hyperty needs one");
                r = check_token_list(v, "hypertyType", TOKEN_MAX, "._-", ret_reason);
                if (r < 0)
                        return r;
        } else if (v)
                return fail(ret_reason, EINVAL, "field 'hypertyType': only allowed for a hyperty");

        v = json_object_get(root, "dataObjects");
        if (v) {
                r = check_token_list(v, "dataObjects", URL_MAX, NULL, ret_reason);
                if (r < 0)
                        return r;
        }

        v = json_object_get(root, "constraints");
        if (v) {
                r = check_constraints(v, ret_reason);
                if (r < 0)
                        return r;
        }

        v = json_object_get(root, "configuration");
        if (v && !json_is_object(v))
                return fail(ret_reason, EINVAL, "field 'configuration': expected an object");

        v = json_object_get(root, "sha256");
        if (!v)
                return fail(ret_reason, EINVAL, "field 'sha256': missing");
        if (!json_is_string(v) || !is_lower_hex(json_string_value(v), SHA256_HEX_SIZE - 1))
                return fail(ret_reason, EINVAL, "field 'sha256': expected 64 lowercase hex digits");
        d->sha256 = json_string_value(v);
        if (sha256_from_hex(d->sha256, d->digest) < 0)
                return fail(ret_reason, EINVAL, "field 'sha256': expected 64 lowercase hex digits");

        v = json_object_get(root, "signature");
        if (!v)
                return fail(ret_reason, EINVAL, "field 'signature': missing");
        if (!json_is_string(v) ||
            base64url_decode_exact(json_string_value(v), json_string_length(v), d->signature,
                                   sizeof(d->signature)) < 0)
                return fail(ret_reason, EINVAL, "field 'signature': expected base64url of 64 bytes, without padding");

        v = json_object_get(root, "publisher");
        if (!v)
                return fail(ret_reason, EINVAL, "field 'publisher': missing");
        {
                uint8_t key_raw[SIGN_PUBLIC_KEY_SIZE];

                if (!json_is_string(v) ||
                    base64url_decode_exact(json_string_value(v), json_string_length(v), key_raw,
                                           sizeof(key_raw)) < 0)
                        return fail(ret_reason, EINVAL,
                                    "field 'publisher': expected base64url of a 32-byte Ed25519 key, without padding");
        }
        d->publisher = json_string_value(v);

        v = json_object_get(root, "sourcePackageURL");
        if (v) {
                r = check_source_url(v, d->sha256, &d->source_url, ret_reason);
                if (r < 0)
                        return r;
        }
        return 0;
}

int descriptor_parse(const void *data, size_t size, descriptor **ret, char **ret_reason) {
        _cleanup_descriptor_ descriptor *d = NULL;
        json_error_t error;
        int r;

        if (!data && size > 0)
                return -EINVAL;
        if (!ret)
                return -EINVAL;
        if (size > DESCRIPTOR_MAX_SIZE)
                return fail(ret_reason, EMSGSIZE, "descriptor of %zu bytes exceeds the limit of %u bytes", size,
                            DESCRIPTOR_MAX_SIZE);
        r = check_raw_input(data, size, ret_reason);
        if (r < 0)
                return r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->json = json_loadb(data ?: "", size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
        if (!d->json) {
                if (json_error_code(&error) == json_error_out_of_memory)
                        return -ENOMEM;
                return fail(ret_reason, EBADMSG, "invalid JSON: %s at offset %d", json_error_reason(&error),
                            error.position);
        }
        r = validate(d, ret_reason);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(d);
        return 0;
}

descriptor *descriptor_free(descriptor *d) {
        if (!d)
                return NULL;
        json_decref(d->json);
        free(d);
        return NULL;
}

descriptor_kind descriptor_get_kind(const descriptor *d) {
        return d->kind;
}

const char *descriptor_get_name(const descriptor *d) {
        return d->name;
}

const char *descriptor_get_version(const descriptor *d) {
        return d->version;
}

const char *descriptor_get_sha256(const descriptor *d) {
        return d->sha256;
}

void descriptor_get_digest(const descriptor *d, uint8_t ret[static SHA256_DIGEST_SIZE]) {
        memcpy(ret, d->digest, SHA256_DIGEST_SIZE);
}

void descriptor_get_signature(const descriptor *d, uint8_t ret[static SIGN_SIGNATURE_SIZE]) {
        memcpy(ret, d->signature, SIGN_SIGNATURE_SIZE);
}

const char *descriptor_get_publisher(const descriptor *d) {
        return d->publisher;
}

const char *descriptor_get_source_package_url(const descriptor *d) {
        return d->source_url;
}

json_t *descriptor_get_json(const descriptor *d) {
        return d->json;
}
