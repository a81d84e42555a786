/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "h2-client.h"
#include "log.h"
#include "registration.h"
#include "tls.h"
#include "users.h"

#define USERS_FILE_MAX (1024U * 1024U)
#define FORM_MAX (8U * 1024U)
#define RESPONSE_MAX (64U * 1024U)
#define PASSWORD_MAX 1024U

typedef struct user {
        char *name, *address, *token;
        usec_t expires_usec, login_usec; /* CLOCK_REALTIME */
} user;

typedef struct login login;

struct users {
        sd_event *event;
        char *path;
        char *domain_name;
        registration_url url;
        bool have_url;
        SSL_CTX *tls;
        H2Client *client;

        user *users;
        size_t n_users;

        login *logins;

        users_device_token_t device_token;
        void *device_token_userdata;
};

/* A login waiting for the domain. */
struct login {
        users *users;
        login *prev, *next;
        char *name;
        uid_t uid; /* who asked, for the journal */
        control_deferred *reply;
        H2ClientRequest *request;
};

bool users_name_is_valid(const char *name) {
        size_t n;

        if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
                return false;
        for (n = 0; name[n]; n++)
                if (n >= 64 || !((name[n] >= 'a' && name[n] <= 'z') || (name[n] >= '0' && name[n] <= '9') ||
                                 strchr("._-", name[n])))
                        return false;
        return true;
}

static void user_done(user *x) {
        free(x->name);
        free(x->address);
        if (x->token) {
                explicit_bzero_safe(x->token, strlen(x->token));
                free(x->token);
        }
        *x = (user) {};
}

static user *find_user(users *u, const char *name) {
        for (size_t i = 0; i < u->n_users; i++)
                if (streq(u->users[i].name, name))
                        return u->users + i;
        return NULL;
}

/* --- the file ------------------------------------------------------------------------ */

static json_t *user_json(const user *x, bool with_token) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "name", x->name, "address", x->address, "expires_usec",
                              (json_int_t) x->expires_usec, "login_usec", (json_int_t) x->login_usec);

        if (!o)
                return NULL;
        if (with_token && json_object_set_new(o, "token", json_string(x->token)) < 0) {
                json_decref(o);
                return NULL;
        }
        if (!with_token && json_object_set_new(o, "valid", json_boolean(x->expires_usec > now(CLOCK_REALTIME))) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

/* Writes the users as they would be with add (replacing the one of that
 * name) and without the one named drop; the caller changes its list only
 * after this succeeded, so a failure leaves file and memory as they were. */
static int save(users *u, const user *add, const char *drop) {
        json_auto_t *list = json_array(), *doc = NULL;
        _cleanup_free_ char *text = NULL;
        json_t *o;
        int r;

        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < u->n_users; i++) {
                if ((add && streq(u->users[i].name, add->name)) || (drop && streq(u->users[i].name, drop)))
                        continue;
                o = user_json(u->users + i, true);
                if (!o || json_array_append_new(list, o) < 0)
                        return -ENOMEM;
        }
        if (add) {
                o = user_json(add, true);
                if (!o || json_array_append_new(list, o) < 0)
                        return -ENOMEM;
        }
        doc = json_pack("{s:i, s:O}", "version", 1, "users", list);
        if (!doc)
                return -ENOMEM;
        text = json_dumps(doc, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        r = write_file_atomic(u->path, text, strlen(text), 0600);
        explicit_bzero_safe(text, strlen(text));
        return r;
}

static int user_from_json(json_t *o, user *ret) {
        json_t *name = json_object_get(o, "name"), *address = json_object_get(o, "address"),
               *token = json_object_get(o, "token"), *expires = json_object_get(o, "expires_usec"),
               *login_t = json_object_get(o, "login_usec");
        user x = {};

        if (!json_is_string(name) || !users_name_is_valid(json_string_value(name)) || !json_is_string(address) ||
            !json_is_string(token) || !json_is_integer(expires) || json_integer_value(expires) < 0 ||
            !json_is_integer(login_t) || json_integer_value(login_t) < 0)
                return -EBADMSG;
        x.name = strdup(json_string_value(name));
        x.address = strdup(json_string_value(address));
        x.token = strdup(json_string_value(token));
        x.expires_usec = (usec_t) json_integer_value(expires);
        x.login_usec = (usec_t) json_integer_value(login_t);
        if (!x.name || !x.address || !x.token) {
                user_done(&x);
                return -ENOMEM;
        }
        *ret = x;
        return 0;
}

static int load(users *u) {
        _cleanup_free_ char *text = NULL;
        json_auto_t *doc = NULL;
        json_t *list, *o;
        size_t size = 0, i;
        int r;

        r = read_full_file_secure(u->path, USERS_FILE_MAX, &text, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        doc = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
        explicit_bzero_safe(text, size);
        list = json_object_get(doc, "users");
        if (!json_is_object(doc) || json_integer_value(json_object_get(doc, "version")) != 1 || !json_is_array(list) ||
            json_array_size(list) > USERS_MAX)
                return -EBADMSG;
        u->users = calloc(MAX(json_array_size(list), (size_t) 1), sizeof(user));
        if (!u->users)
                return -ENOMEM;
        json_array_foreach(list, i, o) {
                user x;

                r = user_from_json(o, &x);
                if (r < 0)
                        return r;
                if (find_user(u, x.name)) {
                        user_done(&x);
                        return -EBADMSG;
                }
                u->users[u->n_users++] = x;
        }
        return 0;
}

static void clear(users *u) {
        for (size_t i = 0; i < u->n_users; i++)
                user_done(u->users + i);
        free(u->users);
        u->users = NULL;
        u->n_users = 0;
}

/* --- set-up ---------------------------------------------------------------------------- */

int users_new(sd_event *e, const users_options *o, users **ret) {
        _cleanup_users_ users *u = NULL;
        const char *reason = NULL;
        int r;

        if (!e || !o || !o->state_dir || !ret)
                return -EINVAL;
        u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        u->event = sd_event_ref(e);
        if (asprintf(&u->path, "%s/%s", o->state_dir, USERS_FILE_NAME) < 0)
                return -ENOMEM;
        if (o->domain_name) {
                u->domain_name = strdup(o->domain_name);
                if (!u->domain_name)
                        return -ENOMEM;
        }
        if (o->url) {
                r = registration_url_parse(o->url, &u->url, &reason);
                if (r < 0)
                        return log_error_errno(r, "Domain URL %s: %s", o->url, reason);
                if (u->url.tls) {
                        if (!o->ca_file)
                                return log_error_errno(EINVAL, "Domain URL %s needs a CA file.", o->url);
                        r = tls_client_ctx_new(o->ca_file, &u->tls);
                        if (r < 0)
                                return log_error_errno(r, "Failed to load the domain CA %s: %m", o->ca_file);
                }
                u->have_url = true;
        }
        r = mkdir_p(o->state_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", o->state_dir);
        r = load(u);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_error_errno(r, "Failed to read the logged-in users from %s, starting with none: %m", u->path);
                clear(u);
        }
        *ret = TAKE_PTR(u);
        return 0;
}

static login *login_free(login *l);

users *users_free(users *u) {
        if (!u)
                return NULL;
        while (u->logins)
                login_free(u->logins);
        h2_client_unref(u->client);
        SSL_CTX_free(u->tls);
        clear(u);
        free(u->path);
        free(u->domain_name);
        sd_event_unref(u->event);
        free(u);
        return NULL;
}

void users_set_device_token_source(users *u, users_device_token_t get, void *userdata) {
        u->device_token = get;
        u->device_token_userdata = userdata;
}

size_t users_count(const users *u) {
        return u ? u->n_users : 0;
}

int users_get(users *u, const char *name, const char **ret_address, const char **ret_token, usec_t *ret_expiry) {
        user *x;

        if (!u || !name)
                return -EINVAL;
        x = find_user(u, name);
        if (!x)
                return -ENOENT;
        if (x->expires_usec <= now(CLOCK_REALTIME))
                return -ESTALE;
        if (ret_address)
                *ret_address = x->address;
        if (ret_token)
                *ret_token = x->token;
        if (ret_expiry)
                *ret_expiry = x->expires_usec;
        return 0;
}

/* --- journal ---------------------------------------------------------------------------- */

static void journal_user(const char *id, int level, const char *name, const char *address, const char *what,
                         const char *reason, uid_t uid) {
        log_struct(level,
                   LOG_MESSAGE("User %s %s%s%s.", name, what, reason ? ": " : "", reason ?: ""),
                   LOG_MESSAGE_ID(id),
                   LOG_FIELD("RETHINK_USER", "%s", name),
                   LOG_FIELD("RETHINK_USER_ADDRESS", "%s", address ?: ""),
                   LOG_FIELD("RETHINK_USER_REASON", "%s", reason ?: ""),
                   LOG_FIELD("RETHINK_PEER_UID", "%u", (unsigned) uid));
}

/* --- login ------------------------------------------------------------------------------ */

static login *login_free(login *l) {
        if (!l)
                return NULL;
        if (l->prev)
                l->prev->next = l->next;
        else if (l->users->logins == l)
                l->users->logins = l->next;
        if (l->next)
                l->next->prev = l->prev;
        if (l->request) {
                (void) h2_client_request_cancel(l->request);
                h2_client_request_unref(l->request);
        }
        control_deferred_free(l->reply);
        free(l->name);
        free(l);
        return NULL;
}

static bool login_pending(users *u, const char *name) {
        for (login *l = u->logins; l; l = l->next)
                if (streq(l->name, name))
                        return true;
        return false;
}

/* Answers the waiting client with an error and forgets the login. */
static void login_fail(login *l, int code, const char *format, ...) _printf_(3, 4);
static void login_fail(login *l, int code, const char *format, ...) {
        _cleanup_free_ char *d = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&d, format, ap) < 0)
                d = NULL;
        va_end(ap);
        journal_user(USERS_MESSAGE_ID_LOGIN_FAILED, LOG_NOTICE, l->name, NULL, "could not log in", d, l->uid);
        (void) control_deferred_fail(TAKE_PTR(l->reply), code, d ?: "Login failed");
        login_free(l);
}

static const char *response_description(json_t *j) {
        return json_string_value(json_object_get(j, "error_description")) ?:
               json_string_value(json_object_get(j, "description"));
}

static void on_login_complete(H2ClientRequest *req, int error, void *userdata) {
        login *l = userdata;
        users *u = l->users;
        json_auto_t *j = NULL;
        const uint8_t *body;
        const char *token, *address;
        _cleanup_free_ char *expected = NULL;
        json_t *expires_in, *o;
        size_t size = 0;
        user x = {}, *old;
        int status, r;

        if (error < 0) {
                login_fail(l, 502, "cannot reach the domain: %s", strerror(-error));
                return;
        }
        status = h2_client_request_get_status(req);
        body = h2_client_request_get_body(req, &size);
        j = body && size > 0 ? json_loadb((const char *) body, size, JSON_REJECT_DUPLICATES, NULL) : NULL;

        if (status == 400 && streq_ptr(json_string_value(json_object_get(j, "error")), "invalid_grant")) {
                login_fail(l, 403, "the domain refused the login: wrong user name or password");
                return;
        }
        if (status == 429) {
                const char *retry = h2_client_request_get_header(req, "retry-after");

                login_fail(l, 429, "the domain refused the login: too many failed attempts for this user, try again in %s s",
                           retry ?: "a few");
                return;
        }
        if (status == 401) {
                login_fail(l, 503, "the domain refused the device's token (%s); is the device claimed?",
                           response_description(j) ?: "no reason given");
                return;
        }
        if (status != 200) {
                login_fail(l, 502, "the domain answered HTTP %d: %s", status, response_description(j) ?: "no reason given");
                return;
        }

        token = json_string_value(json_object_get(j, "access_token"));
        address = json_string_value(json_object_get(j, "user"));
        expires_in = json_object_get(j, "expires_in");
        if (asprintf(&expected, "user://%s/%s", u->domain_name, l->name) < 0) {
                login_fail(l, 500, "out of memory");
                return;
        }
        if (!token || !*token || strlen(token) > 16 * 1024 || !json_is_integer(expires_in) ||
            json_integer_value(expires_in) <= 0 || json_integer_value(expires_in) > 366 * 24 * 3600 ||
            (address && !streq(address, expected))) {
                login_fail(l, 502, "the domain's token answer is malformed");
                return;
        }

        x = (user) {
                .name = l->name,
                .address = expected,
                .token = (char *) token,
                .login_usec = now(CLOCK_REALTIME),
        };
        x.expires_usec = x.login_usec + (usec_t) json_integer_value(expires_in) * USEC_PER_SEC;

        old = find_user(u, l->name);
        if (!old && u->n_users >= USERS_MAX) {
                login_fail(l, 507, "too many users logged in (at most %u)", (unsigned) USERS_MAX);
                return;
        }
        r = save(u, &x, NULL);
        if (r < 0) {
                log_error_errno(r, "Failed to save the login of %s to %s: %m", l->name, u->path);
                login_fail(l, 500, "failed to save the login: %s", strerror(-r));
                return;
        }

        /* Saved: now the same in memory. */
        x.name = strdup(l->name);
        x.address = TAKE_PTR(expected);
        x.token = strdup(token);
        if (!x.name || !x.token) {
                user_done(&x);
                login_fail(l, 500, "out of memory");
                return;
        }
        if (old) {
                user_done(old);
                *old = x;
        } else {
                user *n = reallocarray(u->users, u->n_users + 1, sizeof(user));

                if (!n) {
                        user_done(&x);
                        login_fail(l, 500, "out of memory");
                        return;
                }
                u->users = n;
                u->users[u->n_users++] = x;
                old = u->users + u->n_users - 1;
        }
        journal_user(USERS_MESSAGE_ID_LOGIN, LOG_INFO, old->name, old->address, "logged in", NULL, l->uid);

        o = user_json(old, false);
        if (o) {
                json_t *result = json_pack("{s:o}", "user", o);

                (void) control_deferred_reply(TAKE_PTR(l->reply), result);
        } else
                (void) control_deferred_fail(TAKE_PTR(l->reply), 500, "out of memory");
        login_free(l);
}

static const H2ClientRequestCallbacks login_callbacks = { .on_complete = on_login_complete };

static int form_append(char **buf, size_t *n, const char *name, const char *value) {
        static const char hex[] = "0123456789ABCDEF";
        size_t need = strlen(name) + 2 + 3 * strlen(value);
        char *p;

        if (*n + need + 1 > FORM_MAX)
                return -E2BIG;
        p = *buf + *n;
        if (*n > 0)
                *p++ = '&';
        p = stpcpy(p, name);
        *p++ = '=';
        for (const unsigned char *v = (const unsigned char *) value; *v; v++)
                if ((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') || (*v >= '0' && *v <= '9') ||
                    strchr("-._~", *v))
                        *p++ = (char) *v;
                else {
                        *p++ = '%';
                        *p++ = hex[*v >> 4];
                        *p++ = hex[*v & 15];
                }
        *p = '\0';
        *n = (size_t) (p - *buf);
        return 0;
}

static void on_client_close(H2Client *c, int error, const char *reason, void *userdata) {
        if (error < 0)
                log_debug("Connection to the domain for user logins closed: %s%s%s", strerror(-error),
                          reason ? ", " : "", reason ?: "");
}

static const H2ClientCallbacks client_callbacks = { .on_close = on_client_close };

static int ensure_client(users *u) {
        H2ClientConfig config;

        if (u->client && !h2_client_is_usable(u->client))
                u->client = h2_client_unref(u->client);
        if (u->client)
                return 0;
        h2_client_config_init(&config);
        config.connect_timeout_usec = USERS_LOGIN_TIMEOUT_USEC;
        config.request_timeout_usec = USERS_LOGIN_TIMEOUT_USEC;
        config.max_response_body = RESPONSE_MAX;
        return h2_client_new(u->event, u->url.host, u->url.port, u->tls, NULL, &config, &client_callbacks, u,
                             &u->client);
}

/* Root, the agent's own user, and group "rethink" (primary or
 * supplementary) act as the local admin, as the control socket's mode
 * lets exactly them in. */
static bool peer_is_admin(control_request *req) {
        uid_t uid = control_request_get_peer_uid(req);
        struct group *g;
        struct passwd *pw;

        if (uid == 0 || uid == geteuid())
                return true;
        g = getgrnam(CONTROL_SOCKET_GROUP);
        if (!g)
                return false;
        if (control_request_get_peer_gid(req) == g->gr_gid)
                return true;
        pw = getpwuid(uid);
        if (!pw)
                return false;
        for (char **m = g->gr_mem; m && *m; m++)
                if (streq(*m, pw->pw_name))
                        return true;
        return false;
}

static int check_args(control_request *req, const char *command, bool want_password) {
        json_t *args = control_request_get_args(req), *v;
        const char *key;

        json_object_foreach(args, key, v)
                if (!streq(key, "user") && !(want_password && streq(key, "password")))
                        return control_request_set_error(req, 400, "%s: unknown argument \"%s\"", command, key);
        v = json_object_get(args, "user");
        if (!json_is_string(v))
                return control_request_set_error(req, 400, "%s: argument \"user\" (a string) is required", command);
        if (!users_name_is_valid(json_string_value(v)))
                return control_request_set_error(req, 400,
                                                 "%s: invalid user name: 1-64 of a-z 0-9 . _ -, starting with a letter or digit",
                                                 command);
        if (!want_password)
                return 0;
        v = json_object_get(args, "password");
        if (!json_is_string(v) || json_string_length(v) == 0)
                return control_request_set_error(req, 400, "%s: argument \"password\" (a non-empty string) is required",
                                                 command);
        if (json_string_length(v) != strlen(json_string_value(v)) || json_string_length(v) > PASSWORD_MAX)
                return control_request_set_error(req, 400, "%s: the password must be at most %u bytes, without NUL",
                                                 command, PASSWORD_MAX);
        return 0;
}

static int on_login(control_request *req, json_t **ret_result, void *userdata) {
        users *u = userdata;
        json_t *args = control_request_get_args(req);
        const char *name, *device_token;
        _cleanup_free_ char *form = NULL, *auth = NULL;
        size_t n = 0;
        login *l;
        int r;

        if (!peer_is_admin(req))
                return control_request_set_error(req, 403, "user-login: only root and group \"%s\" may log users in",
                                                 CONTROL_SOCKET_GROUP);
        r = check_args(req, "user-login", true);
        if (r < 0)
                return r;
        name = json_string_value(json_object_get(args, "user"));
        if (!u->have_url || !u->domain_name)
                return control_request_set_error(req, 503,
                                                 "user-login: no domain configured ([Domain] URL= and Name=)");
        device_token = u->device_token ? u->device_token(u->device_token_userdata) : NULL;
        if (!device_token)
                return control_request_set_error(req, 503,
                                                 "user-login: the device has no token from the domain yet "
                                                 "(not registered or not claimed)");
        if (login_pending(u, name))
                return control_request_set_error(req, 409, "user-login: a login of %s is already under way", name);
        if (!find_user(u, name) && u->n_users >= USERS_MAX)
                return control_request_set_error(req, 507, "user-login: too many users logged in (at most %u)",
                                                 (unsigned) USERS_MAX);

        form = malloc(FORM_MAX);
        if (!form)
                return -ENOMEM;
        r = form_append(&form, &n, "grant_type", "password");
        if (r >= 0)
                r = form_append(&form, &n, "username", name);
        if (r >= 0)
                r = form_append(&form, &n, "password", json_string_value(json_object_get(args, "password")));
        if (r >= 0)
                r = form_append(&form, &n, "scope", "user");
        if (r < 0) {
                explicit_bzero_safe(form, FORM_MAX);
                return r;
        }
        if (asprintf(&auth, "Bearer %s", device_token) < 0) {
                explicit_bzero_safe(form, FORM_MAX);
                return -ENOMEM;
        }

        l = calloc(1, sizeof(*l));
        if (!l || !(l->name = strdup(name))) {
                free(l);
                explicit_bzero_safe(form, FORM_MAX);
                return -ENOMEM;
        }
        l->users = u;
        l->uid = control_request_get_peer_uid(req);
        l->next = u->logins;
        if (u->logins)
                u->logins->prev = l;
        u->logins = l;

        r = ensure_client(u);
        if (r >= 0)
                r = h2_client_request(u->client, "POST", "/idm/token",
                                      (const H2Header[]) { { "content-type", "application/x-www-form-urlencoded" },
                                                           { "authorization", auth } },
                                      2, form, n, 0, &login_callbacks, l, &l->request);
        explicit_bzero_safe(form, FORM_MAX);
        explicit_bzero_safe(auth, strlen(auth));
        if (r < 0) {
                login_free(l);
                return control_request_set_error(req, 502, "user-login: cannot reach the domain: %s", strerror(-r));
        }
        r = control_request_defer(req, &l->reply);
        if (r < 0) {
                login_free(l);
                return r;
        }
        log_debug("Login of %s sent to the domain.", name);
        return 0;
}

static int on_list(control_request *req, json_t **ret_result, void *userdata) {
        users *u = userdata;
        json_auto_t *list = json_array();
        json_t *o;

        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < u->n_users; i++) {
                o = user_json(u->users + i, false);
                if (!o || json_array_append_new(list, o) < 0)
                        return -ENOMEM;
        }
        *ret_result = json_pack("{s:O}", "users", list);
        return *ret_result ? 0 : -ENOMEM;
}

static int on_logout(control_request *req, json_t **ret_result, void *userdata) {
        users *u = userdata;
        const char *name;
        user *x;
        json_t *o;
        int r;

        if (!peer_is_admin(req))
                return control_request_set_error(req, 403, "user-logout: only root and group \"%s\" may log users out",
                                                 CONTROL_SOCKET_GROUP);
        r = check_args(req, "user-logout", false);
        if (r < 0)
                return r;
        name = json_string_value(json_object_get(control_request_get_args(req), "user"));
        x = find_user(u, name);
        if (!x)
                return control_request_set_error(req, 404, "user-logout: %s is not logged in", name);
        o = user_json(x, false);
        if (!o)
                return -ENOMEM;
        r = save(u, NULL, name);
        if (r < 0) {
                json_decref(o);
                log_error_errno(r, "Failed to save the logout of %s to %s: %m", name, u->path);
                return control_request_set_error(req, 500, "user-logout: failed to save: %s", strerror(-r));
        }
        journal_user(USERS_MESSAGE_ID_LOGOUT, LOG_INFO, x->name, x->address, "logged out", NULL,
                     control_request_get_peer_uid(req));
        user_done(x);
        *x = u->users[--u->n_users];
        *ret_result = json_pack("{s:o}", "user", o);
        return *ret_result ? 0 : -ENOMEM;
}

int users_register_commands(users *u, control_server *s) {
        int r;

        r = control_server_add_command(s, "user-login", on_login, u);
        if (r >= 0)
                r = control_server_add_command(s, "user-list", on_list, u);
        if (r >= 0)
                r = control_server_add_command(s, "user-logout", on_logout, u);
        return r;
}
