/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rethinkctl verbs for end users (docs/users.md): `user login|list|logout`
 * on the device, through the agent's control socket, and `users
 * [add|remove NAME]` at the domain, through its admin API. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "ctl-output.h"
#include "domain-client.h"
#include "fileio.h"
#include "macro.h"
#include "verbs.h"

#define PASSWORD_MAX 1024U

/* What both sides accept (services/users.h, daemon/users.h); checked here
 * too, as the name goes into a URL path. */
static bool user_name_is_valid(const char *s) {
        size_t n;

        if (!s || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
                return false;
        for (n = 0; s[n]; n++)
                if (n >= 64 || !((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || strchr("._-", s[n])))
                        return false;
        return true;
}

static void strip_newline(char *s) {
        size_t n = strlen(s);

        if (n > 0 && s[n - 1] == '\n')
                s[--n] = '\0';
        if (n > 0 && s[n - 1] == '\r')
                s[--n] = '\0';
}

/* One line from stdin; without echo when it is a terminal. */
static int read_password_line(const char *prompt, char **ret) {
        _cleanup_free_ char *buf = NULL;
        struct termios old, quiet;
        bool tty = isatty(STDIN_FILENO);
        bool restore = false;
        int r = 0;

        buf = malloc(PASSWORD_MAX + 2);
        if (!buf)
                return -ENOMEM;
        if (tty) {
                fprintf(stderr, "%s", prompt);
                fflush(stderr);
                if (tcgetattr(STDIN_FILENO, &old) == 0) {
                        quiet = old;
                        quiet.c_lflag &= ~(tcflag_t) ECHO;
                        quiet.c_lflag |= ECHONL;
                        restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
                }
        }
        if (!fgets(buf, PASSWORD_MAX + 2, stdin))
                r = -ENODATA;
        if (restore)
                (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        if (r < 0) {
                explicit_bzero_safe(buf, PASSWORD_MAX + 2);
                return r;
        }
        if (strlen(buf) > PASSWORD_MAX && buf[strlen(buf) - 1] != '\n') {
                explicit_bzero_safe(buf, PASSWORD_MAX + 2);
                return -E2BIG;
        }
        strip_newline(buf);
        *ret = TAKE_PTR(buf);
        return 0;
}

/* --password-file=, else the terminal or stdin; reports failures. confirm:
 * ask twice on a terminal (a new password). */
static int get_password(const char *name, bool confirm, char **ret) {
        _cleanup_free_ char *p = NULL, *again = NULL, *prompt = NULL;
        size_t n = 0;
        int r;

        if (arg_password_file) {
                r = read_full_file_secure(arg_password_file, PASSWORD_MAX + 2, &p, &n);
                if (r < 0) {
                        fprintf(stderr, "Failed to read the password from %s: %s\n", arg_password_file,
                                r == -E2BIG || r == -EFBIG ? "longer than 1024 bytes" : strerror(-r));
                        return r;
                }
                if (strlen(p) != n) {
                        explicit_bzero_safe(p, n);
                        fprintf(stderr, "The password file %s contains a NUL byte.\n", arg_password_file);
                        return -EINVAL;
                }
                strip_newline(p);
        } else {
                if (asprintf(&prompt, "Password for %s: ", name) < 0)
                        return -ENOMEM;
                r = read_password_line(prompt, &p);
                if (r >= 0 && confirm && isatty(STDIN_FILENO)) {
                        r = read_password_line("Again: ", &again);
                        if (r >= 0 && !streq(p, again)) {
                                fprintf(stderr, "The passwords differ.\n");
                                r = -EINVAL;
                        }
                        if (again)
                                explicit_bzero_safe(again, strlen(again));
                }
                if (r == -ENODATA)
                        fprintf(stderr, "No password given on stdin.\n");
                else if (r == -E2BIG)
                        fprintf(stderr, "The password is longer than 1024 bytes.\n");
                if (r < 0) {
                        if (p)
                                explicit_bzero_safe(p, strlen(p));
                        return r;
                }
        }
        if (strlen(p) > PASSWORD_MAX) {
                explicit_bzero_safe(p, strlen(p));
                fprintf(stderr, "The password is longer than 1024 bytes.\n");
                return -E2BIG;
        }
        if (!*p) {
                fprintf(stderr, "The password is empty.\n");
                return -EINVAL;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

static void drop_password(json_t *args) {
        json_t *v = json_object_get(args, "password");

        /* jansson keeps its own copy: clear it before it is freed. */
        if (json_is_string(v))
                explicit_bzero_safe((char *) json_string_value(v), json_string_length(v));
}

/* --- on the device ------------------------------------------------------------------- */

static int print_users(json_t *users) {
        static const char *const headers[] = { "USER", "ADDRESS", "LOGGED IN", "EXPIRES", "TOKEN" };
        _cleanup_table_ table *t = table_new_with_header(headers, ELEMENTSOF(headers));
        json_t *x;
        size_t i;
        int r = 0;

        if (!t)
                return EXIT_FAILED;
        json_array_foreach(users, i, x) {
                _cleanup_free_ char *name = sanitized(jstr(x, "name")), *address = sanitized(jstr(x, "address"));
                char login[64], expires[64];
                bool valid = jbool(x, "valid") > 0;

                if (!name || !address)
                        return EXIT_FAILED;
                r = r ?: table_add_cell(t, name, NULL);
                r = r ?: table_add_cell(t, address, NULL);
                r = r ?: table_add_cell(t, format_timestamp(login, sizeof(login), juint(x, "login_usec")), NULL);
                r = r ?: table_add_cell(t, format_timestamp(expires, sizeof(expires), juint(x, "expires_usec")), NULL);
                r = r ?: table_add_cell(t, valid ? "valid" : "expired", good_color(valid));
        }
        if (r < 0) {
                fprintf(stderr, "Out of memory.\n");
                return EXIT_FAILED;
        }
        if (json_array_size(users) == 0) {
                printf("No users logged in.\n");
                return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
        }
        return table_print(t, stdout) < 0 || fflush(stdout) != 0 ? EXIT_FAILED : EXIT_OK;
}

int verb_user(int argc, char **argv) {
        json_auto_t *args = NULL, *result = NULL;
        _cleanup_free_ char *password = NULL;
        const char *action = argv[1], *name = argc > 2 ? argv[2] : NULL;
        json_t *u;
        int r;

        if (streq(action, "list")) {
                if (argc != 2) {
                        fprintf(stderr, "Use: user list\n");
                        return EXIT_USAGE;
                }
                if (call_agent("user-list", NULL, &result) != 0)
                        return EXIT_FAILED;
                if (arg_json != JSON_OFF)
                        return print_json(result);
                return print_users(json_object_get(result, "users"));
        }
        if (!(streq(action, "login") || streq(action, "logout")) || argc != 3) {
                fprintf(stderr, "Use: user login NAME, user logout NAME or user list.\n");
                return EXIT_USAGE;
        }
        if (!user_name_is_valid(name)) {
                fprintf(stderr, "Invalid user name \"%s\": 1-64 of a-z 0-9 . _ -, starting with a letter or digit.\n",
                        name);
                return EXIT_USAGE;
        }

        if (streq(action, "logout")) {
                args = json_pack("{s:s}", "user", name);
                if (!args || call_agent("user-logout", args, &result) != 0)
                        return EXIT_FAILED;
                if (arg_json != JSON_OFF)
                        return print_json(result);
                printf("Logged out %s.\n", name);
                return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
        }

        if (get_password(name, false, &password) < 0)
                return EXIT_FAILED;
        args = json_pack("{s:s, s:s}", "user", name, "password", password);
        explicit_bzero_safe(password, strlen(password));
        if (!args)
                return EXIT_FAILED;
        r = call_agent("user-login", args, &result);
        drop_password(args);
        if (r != 0)
                return EXIT_FAILED;
        if (arg_json != JSON_OFF)
                return print_json(result);
        u = json_object_get(result, "user");
        {
                _cleanup_free_ char *address = sanitized(jstr(u, "address"));
                char expires[64];

                if (!address)
                        return EXIT_FAILED;
                printf("Logged in %s as %s until %s.\n", name, address,
                       format_timestamp(expires, sizeof(expires), juint(u, "expires_usec")));
        }
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* --- at the domain ----------------------------------------------------------------------- */

static int print_domain_users(json_t *users) {
        static const char *const headers[] = { "USER", "ADDRESS", "CREATED", "LAST LOGIN" };
        _cleanup_table_ table *t = table_new_with_header(headers, ELEMENTSOF(headers));
        json_t *x;
        size_t i;
        int r = 0;

        if (!t)
                return EXIT_FAILED;
        json_array_foreach(users, i, x) {
                _cleanup_free_ char *name = sanitized(jstr(x, "name")), *address = sanitized(jstr(x, "address"));
                char created[64], last[64];

                if (!name || !address)
                        return EXIT_FAILED;
                r = r ?: table_add_cell(t, name, NULL);
                r = r ?: table_add_cell(t, address, NULL);
                r = r ?: table_add_cell(t, format_timestamp(created, sizeof(created), juint(x, "created_usec")), NULL);
                r = r ?: table_add_cell(t,
                                        json_is_integer(json_object_get(x, "last_login_usec")) ?
                                                format_timestamp(last, sizeof(last), juint(x, "last_login_usec")) :
                                                "never",
                                        NULL);
        }
        if (r < 0) {
                fprintf(stderr, "Out of memory.\n");
                return EXIT_FAILED;
        }
        if (json_array_size(users) == 0) {
                printf("No users.\n");
                return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
        }
        return table_print(t, stdout) < 0 || fflush(stdout) != 0 ? EXIT_FAILED : EXIT_OK;
}

int verb_users(int argc, char **argv) {
        _cleanup_domain_client_ domain_client *c = NULL;
        _cleanup_domain_response_ domain_response *resp = NULL;
        _cleanup_free_ char *path = NULL, *password = NULL, *body = NULL;
        json_auto_t *j = NULL, *req = NULL;
        const char *name = argc > 2 ? argv[2] : NULL;
        int r;

        if (argc == 2 || (argc == 3 && !streq(argv[1], "add") && !streq(argv[1], "remove"))) {
                fprintf(stderr, "Use: users, users add NAME or users remove NAME.\n");
                return EXIT_USAGE;
        }
        if (name && !user_name_is_valid(name)) {
                fprintf(stderr, "Invalid user name \"%s\": 1-64 of a-z 0-9 . _ -, starting with a letter or digit.\n",
                        name);
                return EXIT_USAGE;
        }
        if (argc == 3 && streq(argv[1], "add") && get_password(name, true, &password) < 0)
                return EXIT_FAILED;
        if (open_domain(&c) < 0)
                return EXIT_FAILED;

        if (argc == 1) {
                if (domain_request(c, "GET", "/admin/users", NULL, NULL, 0, "list the users", &resp) < 0)
                        return EXIT_FAILED;
                j = response_json(resp, "list the users");
                if (!j)
                        return EXIT_FAILED;
                if (arg_json != JSON_OFF)
                        return print_json(j);
                return print_domain_users(json_object_get(j, "users"));
        }

        if (streq(argv[1], "remove")) {
                if (asprintf(&path, "/admin/users/%s", name) < 0)
                        return EXIT_FAILED;
                if (domain_request(c, "DELETE", path, NULL, NULL, 0, "remove the user", &resp) < 0)
                        return EXIT_FAILED;
                if (arg_json != JSON_OFF) {
                        json_auto_t *o = json_pack("{s:s}", "removed", name);

                        return o ? print_json(o) : EXIT_FAILED;
                }
                printf("Removed user %s.\n", name);
                return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
        }

        req = json_pack("{s:s, s:s}", "name", name, "password", password);
        explicit_bzero_safe(password, strlen(password));
        if (!req)
                return EXIT_FAILED;
        body = json_dumps(req, JSON_COMPACT);
        drop_password(req);
        if (!body)
                return EXIT_FAILED;
        r = domain_request(c, "POST", "/admin/users", "application/json", body, strlen(body), "add the user", &resp);
        explicit_bzero_safe(body, strlen(body));
        if (r < 0)
                return EXIT_FAILED;
        j = response_json(resp, "add the user");
        if (!j)
                return EXIT_FAILED;
        if (arg_json != JSON_OFF)
                return print_json(j);
        {
                _cleanup_free_ char *address = sanitized(jstr(j, "address"));

                if (!address)
                        return EXIT_FAILED;
                printf("Added user %s (%s).\n", name, address);
        }
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}
