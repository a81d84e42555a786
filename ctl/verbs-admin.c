/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rethinkctl verbs for a domain's admin API (docs/protocol.md): publish a
 * signed package, list and claim devices, bootstrap software onto a device
 * and order its components, follow the admin event stream. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-output.h"
#include "domain-client.h"
#include "encoding.h"
#include "fileio.h"
#include "macro.h"
#include "sha256.h"
#include "sign.h"
#include "verbs.h"

#define PACKAGE_MAX (256U * 1024U * 1024U) /* the domain's default MaxPackageSize= */
#define DESCRIPTOR_MAX (64U * 1024U)
#define TOKEN_MAX 4096U

/* Endpoints and component names go into paths: only the characters the
 * domain allows in them ([A-Za-z0-9._:-]), so nothing can change the path. */
static bool path_word_is_valid(const char *s) {
        if (!s || !*s || strlen(s) > 64)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '.' || *p == '_' || *p == ':' || *p == '-'))
                        return false;
        return true;
}

static char *mfree_str(char *p) {
        free(p);
        return NULL;
}

/* Connects to the domain of --domain=/$RETHINK_DOMAIN_URL; reports any
 * failure itself. */
int open_domain(domain_client **ret) {
        _cleanup_free_ char *token = NULL;
        size_t n = 0;
        int r;

        if (!arg_domain_url) {
                fprintf(stderr, "No domain given: use --domain=URL or set $RETHINK_DOMAIN_URL.\n");
                return -EINVAL;
        }
        if (arg_admin_token_file) {
                r = read_full_file_secure(arg_admin_token_file, TOKEN_MAX, &token, &n);
                if (r < 0) {
                        fprintf(stderr, "Failed to read the admin credential %s: %s\n", arg_admin_token_file,
                                strerror(-r));
                        return r;
                }
                while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r' || token[n - 1] == ' '))
                        token[--n] = '\0';
                /* What the domain accepts (docs/protocol.md); anything else
                 * would not even make a valid header. */
                for (size_t i = 0; i < n; i++)
                        if ((unsigned char) token[i] <= 0x20 || (unsigned char) token[i] >= 0x7f) {
                                explicit_bzero_safe(token, n);
                                fprintf(stderr, "The admin credential in %s is not one line of printable "
                                        "characters without spaces.\n", arg_admin_token_file);
                                return -EINVAL;
                        }
                if (n == 0) {
                        fprintf(stderr, "The admin credential file %s is empty.\n", arg_admin_token_file);
                        return -EINVAL;
                }
        }
        r = domain_client_new(arg_domain_url, arg_ca_file, token, arg_timeout_usec, ret);
        if (token)
                explicit_bzero_safe(token, n);
        if (r == -EINVAL || r == -EPROTONOSUPPORT)
                fprintf(stderr,
                        "Invalid domain URL \"%s\": expected http(s)://HOST[:PORT] with a numeric HOST or "
                        "localhost.\n",
                        arg_domain_url);
        else if (r < 0)
                fprintf(stderr, "Failed to use the CA file %s: %s\n", arg_ca_file ?: "(system bundle)",
                        strerror(-r));
        return r;
}

/* One request; 2xx gives the response, anything else is reported with the
 * domain's description. what: "publish the package", for messages. */
int domain_request(domain_client *c, const char *method, const char *path, const char *content_type,
                          const void *body, size_t size, const char *what, domain_response **ret) {
        _cleanup_domain_response_ domain_response *resp = NULL;
        const char *d;
        int r;

        r = domain_client_call(c, method, path, content_type, body, size, &resp);
        if (r < 0) {
                fprintf(stderr, "Failed to %s: cannot reach the domain at %s: %s\n", what, domain_client_url(c),
                        domain_client_error(c));
                return r;
        }
        if (resp->status >= 200 && resp->status <= 299) {
                *ret = TAKE_PTR(resp);
                return 0;
        }
        d = domain_response_description(resp);
        if (resp->status == 401)
                fprintf(stderr, "Failed to %s: the domain refused the admin credential (HTTP 401)%s\n", what,
                        arg_admin_token_file ? "; check --admin-token-file=." :
                                               "; give one with --admin-token-file=.");
        else
                fprintf(stderr, "Failed to %s: %s (HTTP %d)\n", what, d ?: "the domain refused", resp->status);
        return -EBADE;
}

json_t *response_json(domain_response *resp, const char *what) {
        json_t *j = json_loadb(resp->body, resp->size, 0, NULL);

        if (!j)
                fprintf(stderr, "Failed to %s: the domain's answer is not JSON.\n", what);
        return j;
}

/* --- publish ----------------------------------------------------------------------- */

int verb_publish(int argc, char **argv) {
        _cleanup_domain_client_ domain_client *c = NULL;
        _cleanup_domain_response_ domain_response *resp = NULL;
        _cleanup_sign_key_ sign_key *key = NULL;
        _cleanup_free_ char *pkg = NULL, *text = NULL, *sig64 = NULL, *pub64 = NULL, *path = NULL,
                            *body = NULL;
        json_auto_t *desc = NULL, *stored = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE], sig[SIGN_SIGNATURE_SIZE];
        char hex[SHA256_HEX_SIZE];
        json_error_t error;
        size_t pkg_size, text_size;
        int r;

        if (!arg_descriptor || !arg_publisher_key) {
                fprintf(stderr, "publish needs --descriptor=FILE and --publisher-key=KEY.\n");
                return EXIT_USAGE;
        }
        r = read_full_file(argv[1], PACKAGE_MAX, &pkg, &pkg_size);
        if (r < 0) {
                fprintf(stderr, "Failed to read the package %s: %s\n", argv[1], strerror(-r));
                return EXIT_FAILED;
        }
        r = read_full_file(arg_descriptor, DESCRIPTOR_MAX, &text, &text_size);
        if (r < 0) {
                fprintf(stderr, "Failed to read the descriptor %s: %s\n", arg_descriptor, strerror(-r));
                return EXIT_FAILED;
        }
        desc = json_loadb(text, text_size, JSON_REJECT_DUPLICATES, &error);
        if (!desc || !json_is_object(desc)) {
                fprintf(stderr, "%s is not a JSON object: %s (line %d)\n", arg_descriptor,
                        desc ? "another JSON value" : error.text, error.line);
                return EXIT_FAILED;
        }
        r = sign_key_load_private_pem(arg_publisher_key, &key);
        if (r < 0) {
                fprintf(stderr, "Failed to load the publisher key %s: %s\n", arg_publisher_key,
                        r == -EBADMSG || r == -EKEYREJECTED ? "not an Ed25519 private key (PEM)" : strerror(-r));
                return EXIT_FAILED;
        }

        /* docs/crypto.md: Ed25519 over the 32-byte SHA-256 digest. */
        r = sha256_buffer(pkg, pkg_size, digest);
        r = r ?: sign_digest(key, digest, sig);
        r = r ?: base64url_encode(sig, sizeof(sig), &sig64);
        r = r ?: sign_key_get_public_base64url(key, &pub64);
        if (r < 0) {
                fprintf(stderr, "Failed to sign the package: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        sha256_to_hex(digest, hex);
        if (json_object_set_new(desc, "sha256", json_string(hex)) < 0 ||
            json_object_set_new(desc, "signature", json_string(sig64)) < 0 ||
            json_object_set_new(desc, "publisher", json_string(pub64)) < 0)
                return EXIT_FAILED;
        body = json_dumps(desc, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!body || asprintf(&path, "/admin/catalogue/packages/%s", hex) < 0)
                return EXIT_FAILED;

        if (open_domain(&c) < 0)
                return EXIT_FAILED;
        if (domain_request(c, "PUT", path, "application/octet-stream", pkg, pkg_size, "upload the package",
                           &resp) < 0)
                return EXIT_FAILED;
        resp = domain_response_free(resp);
        if (domain_request(c, "POST", "/admin/catalogue/descriptors", "application/json", body, strlen(body),
                           "publish the descriptor", &resp) < 0)
                return EXIT_FAILED;

        stored = response_json(resp, "publish the descriptor");
        if (!stored)
                return EXIT_FAILED;
        if (arg_json != JSON_OFF)
                return print_json(stored);
        {
                _cleanup_free_ char *name = sanitized(jstr(stored, "objectName")),
                                    *version = sanitized(jstr(stored, "version")),
                                    *type = sanitized(jstr(stored, "type"));

                if (!name || !version || !type)
                        return EXIT_FAILED;
                printf("%s %s %s %s (%zu bytes, signed by %s)\n", resp->status == 201 ? "Published" : "Already published:",
                       type, name, version, pkg_size, pub64);
                printf("   sha256: %s\n", hex);
        }
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* --- devices ----------------------------------------------------------------------- */

static const char *device_state_color(const char *state) {
        if (!state)
                return NULL;
        return state_color(streq(state, "registered") ? "online" : streq(state, "expired") ? "degraded" : "offline");
}

static int print_device(json_t *d) {
        char lifetime[FORMAT_TIMESPAN_MAX], n[32];
        const char *labels[][2] = {
                { "Endpoint", "endpoint" }, { "Registration", "id" }, { "Public key", "publicKey" },
                { "Runtime", "runtimeVersion" }, { "Arch", "arch" }, { "Address", "address" },
                { "Address since", "addressUpdated" }, { "Registered", "registeredAt" },
                { "Updated", "updatedAt" }, { "Expires", "expiresAt" }, { "Claimed at", "claimedAt" },
        };

        for (size_t i = 0; i < ELEMENTSOF(labels); i++) {
                _cleanup_free_ char *v = sanitized(jstr(d, labels[i][1]));

                if (!v)
                        return EXIT_FAILED;
                printf("%14s: %s\n", labels[i][0], v);
                if (streq(labels[i][1], "endpoint")) {
                        _cleanup_free_ char *s = sanitized(jstr(d, "state"));

                        if (!s)
                                return EXIT_FAILED;
                        printf("%14s: %s%s%s\n", "State", device_state_color(s) ?: "", s,
                               device_state_color(s) && *device_state_color(s) ? color_reset() : "");
                        printf("%14s: %s\n", "Claimed", jbool(d, "claimed") == 1 ? "yes" : "no");
                }
        }
        printf("%14s: %s\n", "Lifetime", format_timespan(lifetime, sizeof(lifetime), juint(d, "lifetime") * 1000000ULL));
        snprintf(n, sizeof(n), "%" PRIu64, juint(d, "freeBytes"));
        printf("%14s: %s\n", "Free bytes", json_is_integer(json_object_get(d, "freeBytes")) ? n : "-");
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* "install accepted (201)" for a component's last order; "-" without one. */
static char *last_order_text(json_t *o) {
        char *s = NULL;

        if (!json_is_object(o))
                return strdup("-");
        if (json_is_integer(json_object_get(o, "code")))
                return asprintf(&s, "%s %s (%" PRIu64 ")", jstr(o, "order") ?: "?", jstr(o, "status") ?: "?",
                                juint(o, "code")) < 0 ? NULL : s;
        return asprintf(&s, "%s %s", jstr(o, "order") ?: "?", jstr(o, "status") ?: "?") < 0 ? NULL : s;
}

static int print_components(json_t *list) {
        static const char *const headers[] = { "COMPONENT", "TYPE", "VERSION", "STATE", "RESULT", "ACTIVE", "LAST ORDER" };
        _cleanup_table_ table *t = NULL;
        json_t *c;
        size_t i;
        int r = 0;

        if (json_array_size(list) == 0) {
                printf("\nNo components.\n");
                return EXIT_OK;
        }
        t = table_new_with_header(headers, ELEMENTSOF(headers));
        if (!t)
                return EXIT_FAILED;
        json_array_foreach(list, i, c) {
                _cleanup_free_ char *name = sanitized(jstr(c, "name")), *type = sanitized(jstr(c, "type")),
                                    *version = sanitized(jstr(c, "version")), *state = sanitized(jstr(c, "state")),
                                    *result = sanitized(jstr(c, "resultText")),
                                    *last = last_order_text(json_object_get(c, "lastOrder")), *last_s = NULL;

                if (!name || !type || !version || !state || !result || !last)
                        return EXIT_FAILED;
                last_s = sanitized(last);
                if (!last_s)
                        return EXIT_FAILED;
                r = r ?: table_add_cell(t, name, NULL);
                r = r ?: table_add_cell(t, type, NULL);
                r = r ?: table_add_cell(t, version, NULL);
                r = r ?: table_add_cell(t, state, NULL);
                r = r ?: table_add_cell(t, result, NULL);
                r = r ?: table_add_cell(t, jbool(c, "removed") == 1 ? "removed" : jbool(c, "active") == 1 ? "yes" : "no",
                                        NULL);
                r = r ?: table_add_cell(t, last_s, NULL);
        }
        printf("\n");
        return r < 0 || table_print(t, stdout) < 0 ? EXIT_FAILED : EXIT_OK;
}

#define SHOW_ORDERS_MAX 10

static int print_recent_orders(json_t *list) {
        static const char *const headers[] = { "ORDER", "COMPONENT", "ACTION", "STATUS", "CODE", "UPDATED", "DESCRIPTION" };
        _cleanup_table_ table *t = NULL;
        json_t *o;
        size_t i;
        int r = 0;

        if (json_array_size(list) == 0) {
                printf("\nNo orders.\n");
                return EXIT_OK;
        }
        t = table_new_with_header(headers, ELEMENTSOF(headers));
        if (!t)
                return EXIT_FAILED;
        json_array_foreach(list, i, o) {
                _cleanup_free_ char *comp = sanitized(jstr(o, "component")), *act = sanitized(jstr(o, "order")),
                                    *st = sanitized(jstr(o, "status")), *upd = sanitized(jstr(o, "updatedAt")),
                                    *desc = sanitized(jstr(o, "description"));
                char id[32], code[32] = "-";

                if (i >= SHOW_ORDERS_MAX)
                        break;
                if (!comp || !act || !st || !upd || !desc)
                        return EXIT_FAILED;
                snprintf(id, sizeof(id), "%" PRIu64, juint(o, "id"));
                if (json_is_integer(json_object_get(o, "code")))
                        snprintf(code, sizeof(code), "%" PRIu64, juint(o, "code"));
                r = r ?: table_add_cell(t, id, NULL);
                r = r ?: table_add_cell(t, comp, NULL);
                r = r ?: table_add_cell(t, act, NULL);
                r = r ?: table_add_cell(t, st, NULL);
                r = r ?: table_add_cell(t, code, NULL);
                r = r ?: table_add_cell(t, upd, NULL);
                r = r ?: table_add_cell(t, desc, NULL);
        }
        printf("\n");
        if (r < 0 || table_print(t, stdout) < 0)
                return EXIT_FAILED;
        if (json_array_size(list) > SHOW_ORDERS_MAX)
                printf("(the %d newest of %zu orders)\n", SHOW_ORDERS_MAX, json_array_size(list));
        return EXIT_OK;
}

/* devices show EP: the device, its components with their last report and
 * last order, and its newest orders. --json: the device object with
 * "components" and "orders" added. */
static int show_device(domain_client *c, const char *endpoint) {
        _cleanup_domain_response_ domain_response *resp = NULL;
        _cleanup_free_ char *path = NULL;
        json_auto_t *dev = NULL, *comps = NULL, *orders = NULL;
        int r;

        if (asprintf(&path, "/admin/devices/%s", endpoint) < 0)
                return EXIT_FAILED;
        if (domain_request(c, "GET", path, NULL, NULL, 0, "show the device", &resp) < 0)
                return EXIT_FAILED;
        dev = response_json(resp, "show the device");
        if (!dev)
                return EXIT_FAILED;
        resp = domain_response_free(resp);
        path = mfree_str(path);
        if (asprintf(&path, "/admin/devices/%s/components", endpoint) < 0)
                return EXIT_FAILED;
        if (domain_request(c, "GET", path, NULL, NULL, 0, "list the device's components", &resp) < 0)
                return EXIT_FAILED;
        comps = response_json(resp, "list the device's components");
        if (!comps)
                return EXIT_FAILED;
        resp = domain_response_free(resp);
        path = mfree_str(path);
        if (asprintf(&path, "/admin/devices/%s/orders", endpoint) < 0)
                return EXIT_FAILED;
        if (domain_request(c, "GET", path, NULL, NULL, 0, "list the device's orders", &resp) < 0)
                return EXIT_FAILED;
        orders = response_json(resp, "list the device's orders");
        if (!orders)
                return EXIT_FAILED;

        if (arg_json != JSON_OFF) {
                if (json_object_set(dev, "components", json_object_get(comps, "components") ?: json_null()) < 0 ||
                    json_object_set(dev, "orders", json_object_get(orders, "orders") ?: json_null()) < 0)
                        return EXIT_FAILED;
                return print_json(dev);
        }
        r = print_device(dev);
        if (r != EXIT_OK)
                return r;
        r = print_components(json_object_get(comps, "components"));
        if (r != EXIT_OK)
                return r;
        r = print_recent_orders(json_object_get(orders, "orders"));
        if (r != EXIT_OK)
                return r;
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

static int list_devices(domain_client *c) {
        static const char *const headers[] = { "ENDPOINT", "STATE", "CLAIMED", "LIFETIME", "EXPIRES", "ARCH", "RUNTIME" };
        _cleanup_domain_response_ domain_response *resp = NULL;
        _cleanup_table_ table *t = NULL;
        json_auto_t *j = NULL;
        json_t *list, *d;
        size_t i;
        int r = 0;

        if (domain_request(c, "GET", "/admin/devices", NULL, NULL, 0, "list the devices", &resp) < 0)
                return EXIT_FAILED;
        j = response_json(resp, "list the devices");
        if (!j)
                return EXIT_FAILED;
        if (arg_json != JSON_OFF)
                return print_json(j);
        list = json_object_get(j, "devices");
        if (json_array_size(list) == 0) {
                printf("No devices.\n");
                return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
        }
        t = table_new_with_header(headers, ELEMENTSOF(headers));
        if (!t)
                return EXIT_FAILED;
        json_array_foreach(list, i, d) {
                _cleanup_free_ char *ep = sanitized(jstr(d, "endpoint")), *st = sanitized(jstr(d, "state")),
                                    *ex = sanitized(jstr(d, "expiresAt")), *arch = sanitized(jstr(d, "arch")),
                                    *rt = sanitized(jstr(d, "runtimeVersion"));
                char lt[FORMAT_TIMESPAN_MAX];

                if (!ep || !st || !ex || !arch || !rt)
                        return EXIT_FAILED;
                r = r ?: table_add_cell(t, ep, NULL);
                r = r ?: table_add_cell(t, st, device_state_color(st));
                r = r ?: table_add_cell(t, jbool(d, "claimed") == 1 ? "yes" : "no", NULL);
                r = r ?: table_add_cell(t, format_timespan(lt, sizeof(lt), juint(d, "lifetime") * 1000000ULL), NULL);
                r = r ?: table_add_cell(t, ex, NULL);
                r = r ?: table_add_cell(t, arch, NULL);
                r = r ?: table_add_cell(t, rt, NULL);
        }
        if (r < 0 || table_print(t, stdout) < 0)
                return EXIT_FAILED;
        printf("\n%zu device%s listed.\n", json_array_size(list), json_array_size(list) == 1 ? "" : "s");
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

int verb_devices(int argc, char **argv) {
        _cleanup_domain_client_ domain_client *c = NULL;
        _cleanup_domain_response_ domain_response *resp = NULL;
        _cleanup_free_ char *path = NULL;
        json_auto_t *j = NULL;

        if (argc == 2 || (argc == 3 && !streq(argv[1], "show") && !streq(argv[1], "claim"))) {
                fprintf(stderr, "Use: devices, devices show ENDPOINT or devices claim ENDPOINT.\n");
                return EXIT_USAGE;
        }
        if (argc == 3 && !path_word_is_valid(argv[2])) {
                fprintf(stderr, "Invalid endpoint \"%s\": 1-64 of A-Z a-z 0-9 . _ : -\n", argv[2]);
                return EXIT_USAGE;
        }
        if (open_domain(&c) < 0)
                return EXIT_FAILED;
        if (argc == 1)
                return list_devices(c);
        if (streq(argv[1], "show"))
                return show_device(c, argv[2]);

        if (asprintf(&path, "/admin/devices/%s/claim", argv[2]) < 0)
                return EXIT_FAILED;
        if (domain_request(c, "POST", path, "application/json", "{}", 2, "claim the device", &resp) < 0)
                return EXIT_FAILED;
        j = response_json(resp, "claim the device");
        if (!j)
                return EXIT_FAILED;
        if (arg_json != JSON_OFF)
                return print_json(j);
        printf("Claimed %s.\n", argv[2]);
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* --- bootstrap and orders ------------------------------------------------------------ */

static int print_orders(json_t *orders) {
        static const char *const headers[] = { "ORDER", "COMPONENT", "ACTION", "STATUS" };
        _cleanup_table_ table *t = table_new_with_header(headers, ELEMENTSOF(headers));
        json_t *o;
        size_t i;
        int r = 0;

        if (!t)
                return EXIT_FAILED;
        json_array_foreach(orders, i, o) {
                _cleanup_free_ char *comp = sanitized(jstr(o, "component")), *act = sanitized(jstr(o, "order")),
                                    *st = sanitized(jstr(o, "status"));
                char id[32];

                if (!comp || !act || !st)
                        return EXIT_FAILED;
                snprintf(id, sizeof(id), "%" PRIu64, juint(o, "id"));
                r = r ?: table_add_cell(t, id, NULL);
                r = r ?: table_add_cell(t, comp, NULL);
                r = r ?: table_add_cell(t, act, NULL);
                r = r ?: table_add_cell(t, st, NULL);
        }
        if (r < 0 || table_print(t, stdout) < 0)
                return EXIT_FAILED;
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

int verb_bootstrap(int argc, char **argv) {
        _cleanup_domain_client_ domain_client *c = NULL;
        _cleanup_domain_response_ domain_response *resp = NULL;
        _cleanup_free_ char *path = NULL, *body = NULL;
        json_auto_t *req = NULL, *j = NULL;
        json_t *h = NULL, *p = NULL;

        if (!path_word_is_valid(argv[1])) {
                fprintf(stderr, "Invalid endpoint \"%s\": 1-64 of A-Z a-z 0-9 . _ : -\n", argv[1]);
                return EXIT_USAGE;
        }
        if (!arg_application && !arg_hyperties && !arg_protostubs) {
                fprintf(stderr, "bootstrap needs --application=, --hyperty= or --protostub=.\n");
                return EXIT_USAGE;
        }
        req = json_object();
        if (!req)
                return EXIT_FAILED;
        if (arg_application && json_object_set_new(req, "application", json_string(arg_application)) < 0)
                return EXIT_FAILED;
        if (arg_hyperties) {
                h = json_array();
                for (char **s = arg_hyperties; *s; s++)
                        json_array_append_new(h, json_string(*s));
                json_object_set_new(req, "hyperties", h);
        }
        if (arg_protostubs) {
                p = json_array();
                for (char **s = arg_protostubs; *s; s++)
                        json_array_append_new(p, json_string(*s));
                json_object_set_new(req, "protostubs", p);
        }
        body = json_dumps(req, JSON_COMPACT);
        if (!body || asprintf(&path, "/admin/devices/%s/bootstrap", argv[1]) < 0)
                return EXIT_FAILED;
        if (open_domain(&c) < 0)
                return EXIT_FAILED;
        if (domain_request(c, "POST", path, "application/json", body, strlen(body), "bootstrap the device",
                           &resp) < 0)
                return EXIT_FAILED;
        j = response_json(resp, "bootstrap the device");
        if (!j)
                return EXIT_FAILED;
        if (arg_json != JSON_OFF)
                return print_json(j);
        printf("Bootstrap %" PRIu64 " of %s ordered:\n\n", juint(j, "bootstrap"), argv[1]);
        return print_orders(json_object_get(j, "orders"));
}

/* confirm, cancel, activate, deactivate, uninstall ENDPOINT NAME. */
int verb_device_order(int argc, char **argv) {
        _cleanup_domain_client_ domain_client *c = NULL;
        _cleanup_domain_response_ domain_response *resp = NULL;
        _cleanup_free_ char *path = NULL, *what = NULL;
        json_auto_t *j = NULL, *list = NULL;

        if (!path_word_is_valid(argv[1]) || !path_word_is_valid(argv[2])) {
                fprintf(stderr, "Invalid endpoint or component name: 1-64 of A-Z a-z 0-9 . _ : -\n");
                return EXIT_USAGE;
        }
        if (asprintf(&path, "/admin/devices/%s/components/%s/%s", argv[1], argv[2], argv[0]) < 0 ||
            asprintf(&what, "order %s of %s on %s", argv[0], argv[2], argv[1]) < 0)
                return EXIT_FAILED;
        if (open_domain(&c) < 0)
                return EXIT_FAILED;
        if (domain_request(c, "POST", path, "application/json", "{}", 2, what, &resp) < 0)
                return EXIT_FAILED;
        j = response_json(resp, what);
        if (!j)
                return EXIT_FAILED;
        if (arg_json != JSON_OFF)
                return print_json(j);
        list = json_pack("[O]", j);
        return list ? print_orders(list) : EXIT_FAILED;
}

/* --- events ---------------------------------------------------------------------------- */

static int on_event_line(const char *line, void *userdata) {
        json_auto_t *j = NULL;
        _cleanup_free_ char *s = NULL;

        if (!*line)
                return 0;
        if (arg_json == JSON_PRETTY) {
                j = json_loads(line, 0, NULL);
                s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        }
        if (!s)
                s = sanitized(line);
        if (!s)
                return -ENOMEM;
        puts(s);
        /* Someone may be reading this through a pipe as it happens. */
        return fflush(stdout) == 0 ? 0 : -EIO;
}

int verb_events(int argc, char **argv) {
        _cleanup_domain_client_ domain_client *c = NULL;
        _cleanup_domain_response_ domain_response *err = NULL;
        sigset_t mask;
        int r;

        /* SIGINT and SIGTERM end the stream in order: the loop takes them. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return EXIT_FAILED;
        if (open_domain(&c) < 0)
                return EXIT_FAILED;
        r = domain_client_follow(c, "/admin/events", on_event_line, NULL, &err);
        if (r == -EBADE && err) {
                const char *d = domain_response_description(err);

                if (err->status == 401)
                        fprintf(stderr, "Failed to follow the events: the domain refused the admin credential (HTTP 401).\n");
                else
                        fprintf(stderr, "Failed to follow the events: %s (HTTP %d)\n", d ?: "the domain refused",
                                err->status);
                return EXIT_FAILED;
        }
        if (r < 0) {
                fprintf(stderr, "Failed to follow the events at %s: %s\n", domain_client_url(c),
                        domain_client_error(c));
                return EXIT_FAILED;
        }
        return EXIT_OK;
}

/* --- discover and resources: paged lists ------------------------------------------------ */

const char *arg_resource, *arg_scheme, *arg_user, *arg_tag, *arg_status, *arg_cursor, *arg_prefix;
unsigned arg_limit;
bool arg_all;

/* Follows "next" for --all; a bound so that a misbehaving domain cannot
 * keep us going for ever. */
#define PAGES_MAX 10000

/* Appends name=value (percent-encoded) to the query in *q. */
static int query_add(char **q, const char *name, const char *value) {
        static const char hex[] = "0123456789ABCDEF";
        size_t n = *q ? strlen(*q) : 0, m = strlen(name), v = strlen(value);
        char *p, *w;

        p = realloc(*q, n + 1 + m + 1 + 3 * v + 1);
        if (!p)
                return -ENOMEM;
        w = p + n;
        *w++ = n == 0 ? '?' : '&';
        memcpy(w, name, m);
        w += m;
        *w++ = '=';
        for (const char *s = value; *s; s++) {
                unsigned char c = (unsigned char) *s;

                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c))
                        *w++ = (char) c;
                else {
                        *w++ = '%';
                        *w++ = hex[c >> 4];
                        *w++ = hex[c & 15];
                }
        }
        *w = '\0';
        *q = p;
        return 0;
}

/* GETs base+query, then (with --all) every next page, collecting the
 * arrays under key into one; *ret_next is the cursor of a page beyond the
 * last one read, NULL when there is none. */
static int get_pages(domain_client *c, const char *base, const char *query, const char *key, const char *what,
                     json_t **ret_list, char **ret_next) {
        _cleanup_free_ char *cursor = arg_cursor ? strdup(arg_cursor) : NULL;
        json_auto_t *all = json_array();

        if (!all || (arg_cursor && !cursor))
                return -ENOMEM;
        for (unsigned page = 0;; page++) {
                _cleanup_domain_response_ domain_response *resp = NULL;
                _cleanup_free_ char *q = query ? strdup(query) : NULL, *path = NULL;
                json_auto_t *j = NULL;
                json_t *list, *next;

                if ((query && !q) || (cursor && query_add(&q, "cursor", cursor) < 0) ||
                    asprintf(&path, "%s%s", base, q ?: "") < 0)
                        return -ENOMEM;
                if (domain_request(c, "GET", path, NULL, NULL, 0, what, &resp) < 0)
                        return -EBADE;
                j = response_json(resp, what);
                if (!j)
                        return -EBADMSG;
                list = json_object_get(j, key);
                if (!json_is_array(list)) {
                        fprintf(stderr, "Failed to %s: the domain's answer has no \"%s\" list.\n", what, key);
                        return -EBADMSG;
                }
                if (json_array_extend(all, list) < 0)
                        return -ENOMEM;
                next = json_object_get(j, "next");
                free(cursor);
                cursor = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
                if (json_is_string(next) && !cursor)
                        return -ENOMEM;
                if (!cursor || !arg_all || page + 1 >= PAGES_MAX)
                        break;
        }
        *ret_list = TAKE_PTR(all);
        *ret_next = TAKE_PTR(cursor);
        return 0;
}

/* The answer for --json: {"<key>": [...], "next": cursor?}. */
static int print_list_json(const char *key, json_t *list, const char *next) {
        json_auto_t *o = json_pack("{s:O}", key, list);

        if (!o || (next && json_object_set_new(o, "next", json_string(next)) < 0))
                return EXIT_FAILED;
        return print_json(o);
}

static char *join_strings(json_t *a) {
        char *s = NULL;
        json_t *v;
        size_t i, n = 0;

        json_array_foreach(a, i, v) {
                const char *t = json_string_value(v);
                char *p;

                if (!t)
                        continue;
                p = realloc(s, n + strlen(t) + 2);
                if (!p) {
                        free(s);
                        return NULL;
                }
                s = p;
                if (n > 0)
                        s[n++] = ',';
                strcpy(s + n, t);
                n += strlen(t);
        }
        return s ?: strdup("-");
}

static void print_next(const char *next) {
        if (next)
                printf("More: add --cursor='%s', or --all for every page.\n", next);
}

static bool status_is_valid(const char *s) {
        return streq(s, "live") || streq(s, "disconnected");
}

/* discover [hyperties|dataobjects]: the Global Registry's discovery. */
int verb_discover(int argc, char **argv) {
        static const char *const headers[] = { "URL", "STATUS", "USER", "RESOURCES", "SCHEMES", "TAGS", "LOCATION",
                                               "EXPIRES" };
        _cleanup_domain_client_ domain_client *c = NULL;
        _cleanup_free_ char *query = NULL, *next = NULL;
        _cleanup_table_ table *t = NULL;
        json_auto_t *list = NULL;
        const char *kind = argc > 1 ? argv[1] : "hyperties", *key, *base;
        char limit[16];
        json_t *e;
        size_t i;
        int r = 0;

        if (streq(kind, "hyperties")) {
                key = "hyperties";
                base = "/registry/hyperties";
        } else if (streq(kind, "dataobjects")) {
                key = "dataObjects";
                base = "/registry/dataobjects";
        } else {
                fprintf(stderr, "Use: discover [hyperties|dataobjects] (not \"%s\").\n", kind);
                return EXIT_USAGE;
        }
        if (arg_status && !status_is_valid(arg_status)) {
                fprintf(stderr, "Invalid --status= \"%s\": live or disconnected.\n", arg_status);
                return EXIT_USAGE;
        }
        if (arg_prefix) {
                fprintf(stderr, "--prefix= is for resources; discover takes --resource=, --scheme=, --user=, --tag=, --status=.\n");
                return EXIT_USAGE;
        }
        if (arg_limit > 100) {
                fprintf(stderr, "Invalid --limit=%u: the registry answers 1 to 100 entries a page.\n", arg_limit);
                return EXIT_USAGE;
        }
        snprintf(limit, sizeof(limit), "%u", arg_limit);
        if ((arg_resource && query_add(&query, "resource", arg_resource) < 0) ||
            (arg_scheme && query_add(&query, "scheme", arg_scheme) < 0) ||
            (arg_user && query_add(&query, "user", arg_user) < 0) || (arg_tag && query_add(&query, "tag", arg_tag) < 0) ||
            (arg_status && query_add(&query, "status", arg_status) < 0) ||
            (arg_limit > 0 && query_add(&query, "limit", limit) < 0))
                return EXIT_FAILED;

        if (open_domain(&c) < 0)
                return EXIT_FAILED;
        if (get_pages(c, base, query, key, "discover", &list, &next) < 0)
                return EXIT_FAILED;
        if (arg_json != JSON_OFF)
                return print_list_json(key, list, next);
        if (json_array_size(list) == 0) {
                printf("No %s found.\n", streq(key, "hyperties") ? "hyperties" : "data objects");
                print_next(next);
                return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
        }
        t = table_new_with_header(headers, ELEMENTSOF(headers));
        if (!t)
                return EXIT_FAILED;
        json_array_foreach(list, i, e) {
                json_t *loc = json_object_get(e, "location");
                _cleanup_free_ char *url = sanitized(jstr(e, "url")), *st = sanitized(jstr(e, "status")),
                                    *user = sanitized(jstr(e, "user")), *exp = sanitized(jstr(e, "expires")),
                                    *res = join_strings(json_object_get(e, "resources")),
                                    *sch = join_strings(json_object_get(e, "dataSchemes")),
                                    *tags = join_strings(json_object_get(e, "tags")),
                                    *where = sanitized(jstr(loc, "endpoint") ?: jstr(loc, "type")), *res_s = NULL,
                                    *sch_s = NULL, *tags_s = NULL;

                if (!url || !st || !user || !exp || !res || !sch || !tags || !where)
                        return EXIT_FAILED;
                res_s = sanitized(res);
                sch_s = sanitized(sch);
                tags_s = sanitized(tags);
                if (!res_s || !sch_s || !tags_s)
                        return EXIT_FAILED;
                r = r ?: table_add_cell(t, url, NULL);
                r = r ?: table_add_cell(t, st, state_color(streq(st, "live") ? "online" : "offline"));
                r = r ?: table_add_cell(t, user, NULL);
                r = r ?: table_add_cell(t, res_s, NULL);
                r = r ?: table_add_cell(t, sch_s, NULL);
                r = r ?: table_add_cell(t, tags_s, NULL);
                r = r ?: table_add_cell(t, where, NULL);
                r = r ?: table_add_cell(t, exp, NULL);
        }
        if (r < 0 || table_print(t, stdout) < 0)
                return EXIT_FAILED;
        printf("\n%zu %s listed.\n", json_array_size(list),
               streq(key, "hyperties") ? (json_array_size(list) == 1 ? "hyperty" : "hyperties")
                                       : (json_array_size(list) == 1 ? "data object" : "data objects"));
        print_next(next);
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* A SenML pack in a table cell: name=value[unit] of each record, as far
 * as it goes; the whole pack is in --json. */
static char *senml_text(json_t *pack) {
        _cleanup_free_ char *out = NULL;
        const char *bn = "";
        json_t *rec;
        size_t i;

        if (!json_is_array(pack))
                return strdup("-");
        json_array_foreach(pack, i, rec) {
                _cleanup_free_ char *v = NULL, *item = NULL;
                const char *n = jstr(rec, "n") ?: "", *u = jstr(rec, "u");
                json_t *x;
                char *p;

                if (jstr(rec, "bn"))
                        bn = jstr(rec, "bn");
                if ((x = json_object_get(rec, "v")) && json_is_number(x))
                        v = asprintf(&v, "%g", json_number_value(x)) < 0 ? NULL : v;
                else if ((x = json_object_get(rec, "vs")) && json_is_string(x))
                        v = strdup(json_string_value(x));
                else if ((x = json_object_get(rec, "vb")) && json_is_boolean(x))
                        v = strdup(json_is_true(x) ? "true" : "false");
                else
                        v = strdup("…");
                if (!v || asprintf(&item, "%s%s%s=%s%s", out ? ", " : "", bn, n, v, u ?: "") < 0)
                        return NULL;
                p = realloc(out, (out ? strlen(out) : 0) + strlen(item) + 1);
                if (!p)
                        return NULL;
                if (!out)
                        p[0] = '\0';
                out = p;
                strcat(out, item);
        }
        return out ? TAKE_PTR(out) : strdup("-");
}

/* resources: the Global M2M Resource Directory. */
int verb_resources(int argc, char **argv) {
        static const char *const headers[] = { "RESOURCE", "REPORTER", "SUBSCRIBERS", "LAST VALUE" };
        _cleanup_domain_client_ domain_client *c = NULL;
        _cleanup_free_ char *query = NULL, *next = NULL;
        _cleanup_table_ table *t = NULL;
        json_auto_t *list = NULL;
        char limit[16];
        json_t *e;
        size_t i;
        int r = 0;

        if (arg_resource || arg_scheme || arg_user || arg_tag || arg_status) {
                fprintf(stderr, "resources takes --prefix=, --limit=, --cursor= and --all; the others are for discover.\n");
                return EXIT_USAGE;
        }
        if (arg_prefix && strncmp(arg_prefix, "ctxt://", 7) != 0) {
                fprintf(stderr, "Invalid --prefix= \"%s\": expected a ctxt:// address.\n", arg_prefix);
                return EXIT_USAGE;
        }
        snprintf(limit, sizeof(limit), "%u", arg_limit);
        if ((arg_prefix && query_add(&query, "prefix", arg_prefix) < 0) ||
            (arg_limit > 0 && query_add(&query, "limit", limit) < 0))
                return EXIT_FAILED;
        if (open_domain(&c) < 0)
                return EXIT_FAILED;
        if (get_pages(c, "/admin/resources", query, "resources", "list the resources", &list, &next) < 0)
                return EXIT_FAILED;
        if (arg_json != JSON_OFF)
                return print_list_json("resources", list, next);
        if (json_array_size(list) == 0) {
                printf("No resources.\n");
                print_next(next);
                return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
        }
        t = table_new_with_header(headers, ELEMENTSOF(headers));
        if (!t)
                return EXIT_FAILED;
        json_array_foreach(list, i, e) {
                _cleanup_free_ char *res = sanitized(jstr(e, "resource")), *rep = sanitized(jstr(e, "reporter")),
                                    *value = senml_text(json_object_get(e, "value")), *value_s = NULL;
                char subs[32];

                if (!res || !rep || !value)
                        return EXIT_FAILED;
                value_s = sanitized(value);
                if (!value_s)
                        return EXIT_FAILED;
                snprintf(subs, sizeof(subs), "%" PRIu64, juint(e, "subscribers"));
                r = r ?: table_add_cell(t, res, NULL);
                r = r ?: table_add_cell(t, rep, NULL);
                r = r ?: table_add_cell(t, subs, NULL);
                r = r ?: table_add_cell(t, value_s, NULL);
        }
        if (r < 0 || table_print(t, stdout) < 0)
                return EXIT_FAILED;
        printf("\n%zu resource%s listed.\n", json_array_size(list), json_array_size(list) == 1 ? "" : "s");
        print_next(next);
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}
