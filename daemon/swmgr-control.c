/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>

#include "acl.h"
#include "swmgr-control.h"

typedef int (*named_order_t)(swmgr *m, const char *principal, const char *name, json_t **ret_value,
                             char **ret_error);

static int finish(control_request *req, int r, json_t *value, char *error, json_t **ret_result) {
        _cleanup_free_ char *e = error;

        if (r < 0) {
                json_decref(value);
                if (e)
                        return control_request_set_error(req, swmgr_error_to_status(r), "%s", e);
                return r;
        }
        *ret_result = json_pack("{s:o}", "component", value ?: json_object());
        return *ret_result ? 0 : -ENOMEM;
}

static int principal_of(control_request *req, char **ret) {
        return acl_principal_local(control_request_get_peer_uid(req), ret);
}

static int on_components(control_request *req, json_t **ret_result, void *userdata) {
        _cleanup_free_ char *principal = NULL;
        int r;

        r = principal_of(req, &principal);
        if (r < 0)
                return r;
        return swmgr_list(userdata, principal, ret_result);
}

static int on_install(control_request *req, json_t **ret_result, void *userdata) {
        json_t *args = control_request_get_args(req), *value = NULL;
        _cleanup_free_ char *principal = NULL;
        const char *key;
        char *error = NULL;
        json_t *v;
        int r;

        json_object_foreach(args, key, v)
                if (!streq(key, "descriptor") && !streq(key, "acl"))
                        return control_request_set_error(req, 400, "install: unknown argument \"%s\"", key);
        r = principal_of(req, &principal);
        if (r < 0)
                return r;
        r = swmgr_install(userdata, principal, json_object_get(args, "descriptor"), json_object_get(args, "acl"),
                          &value, &error);
        return finish(req, r, value, error, ret_result);
}

static int named(control_request *req, json_t **ret_result, swmgr *m, named_order_t order) {
        json_t *args = control_request_get_args(req), *name = json_object_get(args, "name"), *value = NULL;
        _cleanup_free_ char *principal = NULL;
        char *error = NULL;
        int r;

        if (!json_is_string(name) || json_object_size(args) != 1)
                return control_request_set_error(req, 400, "%s: expected {\"name\": \"<component>\"}",
                                                 control_request_get_command(req));
        r = principal_of(req, &principal);
        if (r < 0)
                return r;
        r = order(m, principal, json_string_value(name), &value, &error);
        return finish(req, r, value, error, ret_result);
}

static int on_accept(control_request *req, json_t **ret_result, void *userdata) {
        return named(req, ret_result, userdata, swmgr_confirm);
}

static int on_reject(control_request *req, json_t **ret_result, void *userdata) {
        return named(req, ret_result, userdata, swmgr_cancel);
}

static int on_activate(control_request *req, json_t **ret_result, void *userdata) {
        return named(req, ret_result, userdata, swmgr_activate);
}

static int on_deactivate(control_request *req, json_t **ret_result, void *userdata) {
        return named(req, ret_result, userdata, swmgr_deactivate);
}

static int on_uninstall(control_request *req, json_t **ret_result, void *userdata) {
        return named(req, ret_result, userdata, swmgr_uninstall);
}

int swmgr_control_register(control_server *s, swmgr *m) {
        static const struct {
                const char *name;
                control_handler_t handler;
        } commands[] = {
                { "components", on_components },
                { "install", on_install },
                { "accept", on_accept },
                { "reject", on_reject },
                { "activate", on_activate },
                { "deactivate", on_deactivate },
                { "uninstall", on_uninstall },
        };
        int r;

        if (!s || !m)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                r = control_server_add_command(s, commands[i].name, commands[i].handler, m);
                if (r < 0)
                        return r;
        }
        return 0;
}
