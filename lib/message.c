/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "log.h"
#include "json-util.h"
#include "message.h"

/* Depth of the body object inside a message. */
#define BODY_DEPTH 2u
/* Unknown keys are named in reasons only when they are this short and
 * plainly spelled, so a reason never carries arbitrary input. */
#define SAFE_KEY_MAX_LEN 32

struct rt_message {
        uint64_t id;
        rt_message_type type;
        char *from;
        char **to;
        size_t n_to;
        /* Keeps the sender's choice of "to" form, so that a parsed message
         * serialises back to an equal one. */
        bool to_is_array;
        json_t *body;
};

static const char *const type_names[_RT_MESSAGE_TYPE_MAX] = {
        [RT_MESSAGE_CREATE] = "create",
        [RT_MESSAGE_READ] = "read",
        [RT_MESSAGE_UPDATE] = "update",
        [RT_MESSAGE_DELETE] = "delete",
        [RT_MESSAGE_SUBSCRIBE] = "subscribe",
        [RT_MESSAGE_UNSUBSCRIBE] = "unsubscribe",
        [RT_MESSAGE_RESPONSE] = "response",
        [RT_MESSAGE_FORWARD] = "forward",
        [RT_MESSAGE_EXECUTE] = "execute",
};

static const char *const top_level_keys[] = { "id", "type", "from", "to", "body" };

const char *rt_message_type_to_string(rt_message_type type) {
        if (type < 0 || type >= _RT_MESSAGE_TYPE_MAX)
                return NULL;
        return type_names[type];
}

rt_message_type rt_message_type_from_string(const char *s) {
        if (!s)
                return _RT_MESSAGE_TYPE_INVALID;
        for (size_t i = 0; i < ELEMENTSOF(type_names); i++)
                if (streq(s, type_names[i]))
                        return (rt_message_type) i;
        return _RT_MESSAGE_TYPE_INVALID;
}

_printf_(3, 4) static int fail(char **ret_reason, int error, const char *format, ...) {
        _cleanup_free_ char *reason = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&reason, format, ap) < 0)
                reason = NULL;
        va_end(ap);

        log_debug_errno(error, "Invalid message: %s", strna(reason));
        if (ret_reason)
                *ret_reason = TAKE_PTR(reason);
        return -abs(error);
}

static void limits_resolve(const rt_message_limits *limits, size_t *ret_max_size, unsigned *ret_max_depth) {
        *ret_max_size = limits && limits->max_size > 0 ? limits->max_size : RT_MESSAGE_MAX_SIZE_DEFAULT;
        *ret_max_depth = limits && limits->max_depth > 0 ? limits->max_depth : RT_MESSAGE_MAX_DEPTH_DEFAULT;
}

static int check_raw_input(const char *data, size_t size, unsigned max_depth, char **ret_reason) {
        size_t at = 0;
        int r;

        r = json_scan_raw(data, size, max_depth, &at);
        if (r == -EBADMSG)
                return fail(ret_reason, EBADMSG, "invalid JSON: NUL byte at offset %zu", at);
        if (r == -E2BIG)
                return fail(ret_reason, E2BIG, "JSON nested deeper than %u levels at offset %zu", max_depth, at);
        return r;
}

static bool key_is_safe_to_quote(const char *key) {
        size_t n = strlen(key);

        if (n == 0 || n > SAFE_KEY_MAX_LEN)
                return false;
        for (const char *p = key; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
                      *p == '-'))
                        return false;
        return true;
}

static int check_address(const char *field, const char *s, char **ret_reason) {
        _cleanup_free_ char *why = NULL;
        _cleanup_rt_address_ rt_address *a = NULL;
        int r;

        r = rt_address_parse(s, &a, &why);
        if (r < 0)
                return fail(ret_reason, r == -ENOMEM ? ENOMEM : EINVAL, "field '%s': %s", field, strna(why));
        return 0;
}

static int check_address_json(const char *field, json_t *v, char **ret_reason) {
        if (!json_is_string(v))
                return fail(ret_reason, EINVAL, "field '%s': expected an address string", field);
        return check_address(field, json_string_value(v), ret_reason);
}

/* A body built in C may hold what no parsed message can: nesting over the
 * limit, or NUL bytes in strings and keys, which we would serialise as
 * \u0000 and then refuse to read back. Walks the tree with an explicit,
 * bounded stack. */
static int check_json_tree(json_t *root, unsigned root_depth, char **ret_reason) {
        struct frame {
                json_t *container;
                void *iter;
                size_t index;
        } stack[RT_MESSAGE_MAX_DEPTH_DEFAULT];
        size_t sp = 0;

        if (!json_is_object(root) && !json_is_array(root))
                return 0;
        if (root_depth > RT_MESSAGE_MAX_DEPTH_DEFAULT)
                return fail(ret_reason, E2BIG, "JSON nested deeper than %u levels", RT_MESSAGE_MAX_DEPTH_DEFAULT);

        stack[sp++] = (struct frame) { .container = root, .iter = json_object_iter(root) };

        while (sp > 0) {
                struct frame *top = &stack[sp - 1];
                json_t *child;

                if (json_is_object(top->container)) {
                        const char *key;

                        if (!top->iter) {
                                sp--;
                                continue;
                        }
                        key = json_object_iter_key(top->iter);
                        if (strlen(key) != json_object_iter_key_len(top->iter))
                                return fail(ret_reason, EINVAL, "field 'body': NUL byte in an object key");
                        child = json_object_iter_value(top->iter);
                        top->iter = json_object_iter_next(top->container, top->iter);
                } else {
                        if (top->index >= json_array_size(top->container)) {
                                sp--;
                                continue;
                        }
                        child = json_array_get(top->container, top->index++);
                }

                if (json_is_string(child) && strlen(json_string_value(child)) != json_string_length(child))
                        return fail(ret_reason, EINVAL, "field 'body': NUL byte in a string");

                if (json_is_object(child) || json_is_array(child)) {
                        /* The child sits one level below the top frame. */
                        if (root_depth + sp > RT_MESSAGE_MAX_DEPTH_DEFAULT)
                                return fail(ret_reason, E2BIG, "JSON nested deeper than %u levels",
                                            RT_MESSAGE_MAX_DEPTH_DEFAULT);
                        stack[sp++] = (struct frame) { .container = child, .iter = json_object_iter(child) };
                }
        }

        return 0;
}

static int check_optional_string(json_t *body, const char *key, char **ret_reason) {
        json_t *v = json_object_get(body, key);

        if (v && !json_is_string(v))
                return fail(ret_reason, EINVAL, "field 'body.%s': expected a string", key);
        return 0;
}

static int check_body(rt_message_type type, json_t *body, char **ret_reason) {
        json_t *v;
        int r;

        if (!json_is_object(body))
                return fail(ret_reason, EINVAL, "field 'body': expected an object");

        v = json_object_get(body, "code");
        if (type == RT_MESSAGE_RESPONSE) {
                json_int_t code;

                if (!v)
                        return fail(ret_reason, EINVAL, "field 'body.code': missing, a response needs a status code");
                if (!json_is_integer(v))
                        return fail(ret_reason, EINVAL, "field 'body.code': expected an integer");
                code = json_integer_value(v);
                if (code < RT_MESSAGE_CODE_MIN || code > RT_MESSAGE_CODE_MAX)
                        return fail(ret_reason, ERANGE, "field 'body.code': expected a status code between %d and %d",
                                    RT_MESSAGE_CODE_MIN, RT_MESSAGE_CODE_MAX);
        } else {
                /* A status in a request would be ignored by every receiver,
                 * so it is a sender's bug worth reporting. */
                if (v)
                        return fail(ret_reason, EINVAL, "field 'body.code': only allowed in a response");
                if (json_object_get(body, "description"))
                        return fail(ret_reason, EINVAL, "field 'body.description': only allowed in a response");
        }

        r = check_optional_string(body, "description", ret_reason);
        if (r < 0)
                return r;

        v = json_object_get(body, "resource");
        if (v) {
                r = check_address_json("body.resource", v, ret_reason);
                if (r < 0)
                        return r;
        }

        v = json_object_get(body, "criteria");
        if (v && !json_is_object(v))
                return fail(ret_reason, EINVAL, "field 'body.criteria': expected an object");

        r = check_optional_string(body, "attribute", ret_reason);
        if (r < 0)
                return r;

        return check_optional_string(body, "accessToken", ret_reason);
}

/* Validates the C-level parts and assembles the message. body is a new
 * reference the message takes over on success; on failure the caller keeps
 * it. */
static int message_create(rt_message_type type, uint64_t id, const char *from, const char *const *to,
                          size_t n_to, bool to_is_array, json_t *body, rt_message **ret, char **ret_reason) {
        rt_message *m;
        int r;

        if (type < 0 || type >= _RT_MESSAGE_TYPE_MAX)
                return fail(ret_reason, EINVAL, "field 'type': unknown message type");
        if (id > RT_MESSAGE_ID_MAX)
                return fail(ret_reason, ERANGE, "field 'id': expected an integer between 0 and %" PRIu64,
                            RT_MESSAGE_ID_MAX);

        r = check_address("from", from, ret_reason);
        if (r < 0)
                return r;

        if (!to || n_to == 0)
                return fail(ret_reason, EINVAL, "field 'to': expected at least one address");
        for (size_t i = 0; i < n_to; i++) {
                char field[32];

                if (to_is_array)
                        snprintf(field, sizeof(field), "to[%zu]", i);
                else
                        snprintf(field, sizeof(field), "to");
                r = check_address(field, to[i], ret_reason);
                if (r < 0)
                        return r;
        }

        r = check_body(type, body, ret_reason);
        if (r < 0)
                return r;

        m = calloc(1, sizeof(rt_message));
        if (!m)
                return fail(ret_reason, ENOMEM, "out of memory");
        m->id = id;
        m->type = type;
        m->to_is_array = to_is_array;
        m->from = strdup(from);
        m->to = calloc(n_to, sizeof(char *));
        if (!m->from || !m->to) {
                rt_message_free(m);
                return fail(ret_reason, ENOMEM, "out of memory");
        }
        for (; m->n_to < n_to; m->n_to++) {
                m->to[m->n_to] = strdup(to[m->n_to]);
                if (!m->to[m->n_to]) {
                        rt_message_free(m);
                        return fail(ret_reason, ENOMEM, "out of memory");
                }
        }
        m->body = body;

        *ret = m;
        return 0;
}

/* Takes the parts of a parsed JSON object apart by type; message_create()
 * then judges their values. */
static int message_from_json(json_t *root, rt_message **ret, char **ret_reason) {
        _cleanup_free_ const char **to = NULL;
        json_t *id, *type, *from, *to_json, *body;
        rt_message_type t;
        size_t n_to;
        const char *key;
        json_t *v;
        int r;

        if (!json_is_object(root))
                return fail(ret_reason, EINVAL, "message: expected a JSON object");

        id = json_object_get(root, "id");
        if (!id)
                return fail(ret_reason, EINVAL, "field 'id': missing");
        if (!json_is_integer(id))
                return fail(ret_reason, EINVAL, "field 'id': expected an integer");
        if (json_integer_value(id) < 0)
                return fail(ret_reason, ERANGE, "field 'id': expected an integer between 0 and %" PRIu64,
                            RT_MESSAGE_ID_MAX);

        type = json_object_get(root, "type");
        if (!type)
                return fail(ret_reason, EINVAL, "field 'type': missing");
        if (!json_is_string(type))
                return fail(ret_reason, EINVAL, "field 'type': expected a string");
        t = rt_message_type_from_string(json_string_value(type));
        if (t < 0)
                return fail(ret_reason, EINVAL,
                            "field 'type': unknown message type (expected create, read, update, delete, subscribe, "
                            "unsubscribe, response, forward or execute)");

        from = json_object_get(root, "from");
        if (!from)
                return fail(ret_reason, EINVAL, "field 'from': missing");
        if (!json_is_string(from))
                return fail(ret_reason, EINVAL, "field 'from': expected an address string");

        to_json = json_object_get(root, "to");
        if (!to_json)
                return fail(ret_reason, EINVAL, "field 'to': missing");
        if (json_is_string(to_json)) {
                n_to = 1;
                to = calloc(1, sizeof(char *));
                if (!to)
                        return fail(ret_reason, ENOMEM, "out of memory");
                to[0] = json_string_value(to_json);
        } else if (json_is_array(to_json)) {
                n_to = json_array_size(to_json);
                if (n_to == 0)
                        return fail(ret_reason, EINVAL, "field 'to': expected at least one address, got an empty array");
                to = calloc(n_to, sizeof(char *));
                if (!to)
                        return fail(ret_reason, ENOMEM, "out of memory");
                for (size_t i = 0; i < n_to; i++) {
                        v = json_array_get(to_json, i);
                        if (!json_is_string(v))
                                return fail(ret_reason, EINVAL, "field 'to[%zu]': expected an address string", i);
                        to[i] = json_string_value(v);
                }
        } else
                return fail(ret_reason, EINVAL, "field 'to': expected an address string or an array of addresses");

        body = json_object_get(root, "body");
        if (!body)
                return fail(ret_reason, EINVAL, "field 'body': missing");

        json_object_foreach(root, key, v) {
                bool known = false;

                for (size_t i = 0; i < ELEMENTSOF(top_level_keys) && !known; i++)
                        known = streq(key, top_level_keys[i]);
                if (known)
                        continue;
                if (key_is_safe_to_quote(key))
                        return fail(ret_reason, EINVAL,
                                    "field '%s': unknown top-level field (allowed: id, type, from, to, body)", key);
                return fail(ret_reason, EINVAL, "unknown top-level field (allowed: id, type, from, to, body)");
        }

        r = message_create(t, (uint64_t) json_integer_value(id), json_string_value(from), to, n_to,
                           json_is_array(to_json), body, ret, ret_reason);
        if (r < 0)
                return r;
        json_incref(body);
        return 0;
}

/* Checks limits, then lets jansson build the tree. */
static int load_json(const void *data, size_t size, const rt_message_limits *limits, json_t **ret,
                     char **ret_reason) {
        unsigned max_depth;
        size_t max_size;
        json_error_t error;
        json_t *root;
        int r;

        limits_resolve(limits, &max_size, &max_depth);

        if (!data || size == 0)
                return fail(ret_reason, EBADMSG, "invalid JSON: empty input");
        if (size > max_size)
                return fail(ret_reason, EMSGSIZE, "message of %zu bytes exceeds the limit of %zu bytes", size, max_size);

        r = check_raw_input(data, size, max_depth, ret_reason);
        if (r < 0)
                return r;

        root = json_loadb(data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
        if (!root) {
                if (json_error_code(&error) == json_error_out_of_memory)
                        return fail(ret_reason, ENOMEM, "out of memory");
                return fail(ret_reason, EBADMSG, "invalid JSON: %s at offset %d", json_error_reason(&error),
                            error.position);
        }

        *ret = root;
        return 0;
}

int rt_message_parse(const void *data, size_t size, const rt_message_limits *limits, rt_message **ret,
                     char **ret_reason) {
        json_t *root = NULL;
        int r;

        if (!ret)
                return -EINVAL;

        r = load_json(data, size, limits, &root, ret_reason);
        if (r < 0)
                return r;

        r = message_from_json(root, ret, ret_reason);
        json_decref(root);
        return r;
}

static int message_new_copy(rt_message_type type, uint64_t id, const char *from, const char *const *to, size_t n_to,
                            bool to_is_array, json_t *body, rt_message **ret, char **ret_reason) {
        json_t *copy;
        int r;

        if (body) {
                r = check_json_tree(body, BODY_DEPTH, ret_reason);
                if (r < 0)
                        return r;
                copy = json_deep_copy(body);
        } else
                copy = json_object();
        if (!copy)
                return fail(ret_reason, ENOMEM, "out of memory");

        r = message_create(type, id, from, to, n_to, to_is_array, copy, ret, ret_reason);
        if (r < 0)
                json_decref(copy);
        return r;
}

int rt_message_new(rt_message_type type, uint64_t id, const char *from, const char *to, json_t *body,
                   rt_message **ret) {
        if (!ret)
                return -EINVAL;
        return message_new_copy(type, id, from, &to, 1, false, body, ret, NULL);
}

int rt_message_new_multi(rt_message_type type, uint64_t id, const char *from, const char *const *to, size_t n_to,
                         json_t *body, rt_message **ret) {
        if (!ret)
                return -EINVAL;
        return message_new_copy(type, id, from, to, n_to, true, body, ret, NULL);
}

static bool utf8_is_valid(const char *s) {
        json_t *probe = json_string(s);

        json_decref(probe);
        return probe != NULL;
}

static int response_new(uint64_t id, const char *responder, const char *requester, int code,
                        const char *description, json_t *value, rt_message **ret) {
        json_t *body;
        int r;

        if (code < RT_MESSAGE_CODE_MIN || code > RT_MESSAGE_CODE_MAX)
                return fail(NULL, ERANGE, "field 'body.code': expected a status code between %d and %d",
                            RT_MESSAGE_CODE_MIN, RT_MESSAGE_CODE_MAX);

        /* jansson refuses a string that is not UTF-8; say so rather than
         * report it as out of memory below. */
        if (description && !utf8_is_valid(description))
                return fail(NULL, EINVAL, "field 'body.description': not valid UTF-8");

        body = json_object();
        if (!body)
                return -ENOMEM;
        r = json_object_set_new(body, "code", json_integer(code));
        if (r >= 0 && description)
                r = json_object_set_new(body, "description", json_string(description));
        if (r >= 0 && value)
                r = json_object_set(body, "value", value);
        if (r < 0) {
                json_decref(body);
                return -ENOMEM;
        }

        r = message_new_copy(RT_MESSAGE_RESPONSE, id, responder, &requester, 1, false, body, ret, NULL);
        json_decref(body);
        return r;
}

int rt_message_new_response(const rt_message *request, const char *responder, int code, const char *description,
                            json_t *value, rt_message **ret) {
        if (!request || !ret)
                return -EINVAL;
        if (request->type == RT_MESSAGE_RESPONSE)
                return fail(NULL, EINVAL, "a response is never answered");

        return response_new(request->id, responder ?: request->to[0], request->from, code, description, value, ret);
}

int rt_message_new_error(const rt_message *request, const char *responder, int code, const char *description,
                         rt_message **ret) {
        if (code < 400 || code > RT_MESSAGE_CODE_MAX)
                return fail(NULL, ERANGE, "field 'body.code': an error needs a status code between 400 and %d",
                            RT_MESSAGE_CODE_MAX);
        return rt_message_new_response(request, responder, code, description, NULL, ret);
}

int rt_message_new_error_for_invalid(const void *data, size_t size, const rt_message_limits *limits,
                                     const char *responder, int code, const char *description, rt_message **ret) {
        json_t *root = NULL, *id, *type, *from, *to;
        int r;

        if (!ret)
                return -EINVAL;
        if (code < 400 || code > RT_MESSAGE_CODE_MAX)
                return -ERANGE;

        if (load_json(data, size, limits, &root, NULL) < 0)
                return -EBADMSG;

        type = json_object_get(root, "type");
        if (json_is_string(type) && streq(json_string_value(type), "response")) {
                json_decref(root);
                return -EINVAL;
        }

        id = json_object_get(root, "id");
        from = json_object_get(root, "from");
        to = json_object_get(root, "to");
        if (json_is_array(to))
                to = json_array_get(to, 0);
        if (!responder && json_is_string(to))
                responder = json_string_value(to);

        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            (uint64_t) json_integer_value(id) > RT_MESSAGE_ID_MAX || !json_is_string(from) ||
            !rt_address_is_valid(json_string_value(from)) || !rt_address_is_valid(responder)) {
                json_decref(root);
                return -EBADMSG;
        }

        r = response_new((uint64_t) json_integer_value(id), responder, json_string_value(from), code, description,
                         NULL, ret);
        json_decref(root);
        return r;
}

int rt_message_status_for_error(int error) {
        switch (abs(error)) {
        case EMSGSIZE:
                return 413;
        case EBADMSG:
        case EINVAL:
        case ERANGE:
        case E2BIG:
                return 400;
        default:
                return 500;
        }
}

rt_message *rt_message_free(rt_message *m) {
        if (!m)
                return NULL;
        free(m->from);
        for (size_t i = 0; i < m->n_to; i++)
                free(m->to[i]);
        free(m->to);
        json_decref(m->body);
        free(m);
        return NULL;
}

int rt_message_to_json(const rt_message *m, char **ret) {
        json_t *o, *to;
        char *s;
        int r = 0;

        if (!m || !ret)
                return -EINVAL;

        o = json_object();
        if (!o)
                return -ENOMEM;

        if (m->to_is_array) {
                to = json_array();
                for (size_t i = 0; to && i < m->n_to && r >= 0; i++)
                        r = json_array_append_new(to, json_string(m->to[i]));
        } else
                to = json_string(m->to[0]);

        if (!to || r < 0 ||
            json_object_set_new(o, "id", json_integer((json_int_t) m->id)) < 0 ||
            json_object_set_new(o, "type", json_string(type_names[m->type])) < 0 ||
            json_object_set_new(o, "from", json_string(m->from)) < 0 ||
            json_object_set(o, "to", to) < 0 ||
            json_object_set(o, "body", m->body) < 0) {
                json_decref(to);
                json_decref(o);
                return -ENOMEM;
        }
        json_decref(to);

        /* Compact output escapes every control character inside strings, so
         * the result is one line: fit for NDJSON. */
        s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!s)
                return -ENOMEM;

        *ret = s;
        return 0;
}

bool rt_message_equal(const rt_message *a, const rt_message *b) {
        if (!a || !b)
                return a == b;
        if (a->id != b->id || a->type != b->type || a->n_to != b->n_to || a->to_is_array != b->to_is_array ||
            !streq(a->from, b->from))
                return false;
        for (size_t i = 0; i < a->n_to; i++)
                if (!streq(a->to[i], b->to[i]))
                        return false;
        return json_equal(a->body, b->body);
}

uint64_t rt_message_get_id(const rt_message *m) {
        return m ? m->id : 0;
}

rt_message_type rt_message_get_type(const rt_message *m) {
        return m ? m->type : _RT_MESSAGE_TYPE_INVALID;
}

const char *rt_message_get_from(const rt_message *m) {
        return m ? m->from : NULL;
}

size_t rt_message_get_n_to(const rt_message *m) {
        return m ? m->n_to : 0;
}

const char *rt_message_get_to(const rt_message *m, size_t i) {
        if (!m || i >= m->n_to)
                return NULL;
        return m->to[i];
}

json_t *rt_message_get_body(const rt_message *m) {
        return m ? m->body : NULL;
}

static json_t *body_field(const rt_message *m, const char *key) {
        return m ? json_object_get(m->body, key) : NULL;
}

int rt_message_get_code(const rt_message *m) {
        json_t *v = body_field(m, "code");

        return json_is_integer(v) ? (int) json_integer_value(v) : -ENODATA;
}

const char *rt_message_get_description(const rt_message *m) {
        return json_string_value(body_field(m, "description"));
}

json_t *rt_message_get_value(const rt_message *m) {
        return body_field(m, "value");
}

const char *rt_message_get_resource(const rt_message *m) {
        return json_string_value(body_field(m, "resource"));
}

json_t *rt_message_get_criteria(const rt_message *m) {
        return body_field(m, "criteria");
}

const char *rt_message_get_attribute(const rt_message *m) {
        return json_string_value(body_field(m, "attribute"));
}

const char *rt_message_get_access_token(const rt_message *m) {
        return json_string_value(body_field(m, "accessToken"));
}
