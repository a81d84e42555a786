/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "domain-config.h"
#include "fileio.h"
#include "ini.h"
#include "address.h"
#include "log.h"
#include "sign.h"

#define CONFIG_FILE_MAX (1024 * 1024)
#define TOKEN_FILE_MAX 4096
#define TOKEN_MIN_LEN 16

typedef enum key_type {
        T_UINT,
        T_U64,
        T_LEVEL,
        T_PATH,
        T_ADDRESS,
        T_KEYLIST,
        T_NAME,
} key_type;

typedef struct config_key {
        const char *section;
        const char *key;
        const char *flag;
        key_type type;
        size_t offset;
        uint64_t min, max;
        const char *def;
        const char *help;
} config_key;

typedef struct override {
        const config_key *key;
        char *value;
} override;

struct domain_config {
        char *path;
        bool path_from_flag;
        override *overrides;
        size_t n_overrides;

        int log_level;
        char *state_directory;
        char *name;
        char *listen;
        unsigned port;
        char *certificate;
        char *private_key;
        unsigned max_connections;
        unsigned max_concurrent_streams;
        unsigned request_timeout_sec;
        unsigned idle_timeout_sec;
        unsigned shutdown_grace_sec;
        char *admin_token_file;
        char *admin_token;
        char **trusted_publishers;
        uint64_t max_package_size;
        unsigned default_lifetime_sec;
        unsigned min_lifetime_sec;
        unsigned max_lifetime_sec;
};

#define F(field) offsetof(struct domain_config, field)

static const config_key keys[] = {
        { "Domain", "LogLevel", "log-level", T_LEVEL, F(log_level), 0, 0, "info",
          "Log threshold: debug, info, notice, warning, err" },
        { "Domain", "StateDirectory", "state-directory", T_PATH, F(state_directory), 0, 0,
          DOMAIN_STATE_DIRECTORY_DEFAULT, "Directory of the database and the packages" },
        { "Domain", "Name", "name", T_NAME, F(name), 0, 0, "localhost",
          "The domain's DNS name: host of its addresses, issuer and audience of its tokens" },
        { "HTTP", "Listen", "listen", T_ADDRESS, F(listen), 0, 0, "::",
          "Numeric address to listen on (:: is every address)" },
        { "HTTP", "Port", "port", T_UINT, F(port), 0, 65535, "8443", "TCP port; 0 picks a free one (tests)" },
        { "HTTP", "Certificate", "certificate", T_PATH, F(certificate), 0, 0, "",
          "TLS certificate chain (PEM); empty: h2c, loopback only" },
        { "HTTP", "PrivateKey", "private-key", T_PATH, F(private_key), 0, 0, "", "TLS private key (PEM)" },
        { "HTTP", "MaxConnections", "max-connections", T_UINT, F(max_connections), 1, 65536, "256",
          "Concurrent connections" },
        { "HTTP", "MaxConcurrentStreams", "max-concurrent-streams", T_UINT, F(max_concurrent_streams), 1,
          10000, "100", "Concurrent streams per connection" },
        { "HTTP", "RequestTimeoutSec", "request-timeout-sec", T_UINT, F(request_timeout_sec), 0, 86400, "300",
          "Time to receive a whole request, uploads included; 0: none" },
        { "HTTP", "IdleTimeoutSec", "idle-timeout-sec", T_UINT, F(idle_timeout_sec), 0, 86400, "120",
          "Close connections idle this long; 0: never" },
        { "HTTP", "ShutdownGraceSec", "shutdown-grace-sec", T_UINT, F(shutdown_grace_sec), 0, 3600, "5",
          "On SIGTERM, time open streams get to finish" },
        { "Admin", "TokenFile", "admin-token-file", T_PATH, F(admin_token_file), 0, 0, "",
          "File holding the admin bearer credential; empty: admin API off" },
        { "Catalogue", "TrustedPublishers", "trusted-publishers", T_KEYLIST, F(trusted_publishers), 0, 0, "",
          "Ed25519 publisher keys (base64url) whose packages are accepted" },
        { "Catalogue", "MaxPackageSize", "max-package-size", T_U64, F(max_package_size), 1,
          UINT64_C(1) << 40, "268435456", "Largest package accepted, in bytes" },
        { "DeviceManagement", "DefaultLifetimeSec", "default-lifetime-sec", T_UINT, F(default_lifetime_sec), 1,
          UINT_MAX, "86400", "Registration lifetime when the device gives none" },
        { "DeviceManagement", "MinLifetimeSec", "min-lifetime-sec", T_UINT, F(min_lifetime_sec), 1, UINT_MAX,
          "60", "Shortest registration lifetime accepted" },
        { "DeviceManagement", "MaxLifetimeSec", "max-lifetime-sec", T_UINT, F(max_lifetime_sec), 1, UINT_MAX,
          "2592000", "Longest registration lifetime accepted" },
};

#define FIELD(c, k, type) ((type *) ((char *) (c) + (k)->offset))

static void strv_free(char **l) {
        freestrvp(&l);
}

bool domain_address_is_loopback(const char *address) {
        struct in6_addr a6;
        struct in_addr a4;

        if (!address)
                return false;
        if (inet_pton(AF_INET, address, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        if (inet_pton(AF_INET6, address, &a6) == 1)
                return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
        return false;
}

static int split_keys(const char *v, char ***ret, char **ret_reason) {
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *copy = strdup(v);
        size_t n = 0;
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
                _cleanup_sign_key_ sign_key *k = NULL;
                char **a;
                int r;

                r = sign_key_from_public_base64url(w, &k);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        if (asprintf(ret_reason, "entry %zu is not a base64url Ed25519 public key", n + 1) < 0)
                                *ret_reason = NULL;
                        return -EINVAL;
                }
                a = reallocarray(l, n + 2, sizeof(char *));
                if (!a)
                        return -ENOMEM;
                l = a;
                l[n] = strdup(w);
                if (!l[n])
                        return -ENOMEM;
                l[++n] = NULL;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int set_string(domain_config *c, const config_key *k, const char *v) {
        char *s = *v ? strdup(v) : NULL;

        if (*v && !s)
                return -ENOMEM;
        free(*FIELD(c, k, char *));
        *FIELD(c, k, char *) = s;
        return 0;
}

static int set_key(domain_config *c, const config_key *k, const char *value, char **ret_reason) {
        const char *v = *value ? value : k->def;
        char *reason = NULL;
        int r;

        switch (k->type) {
        case T_UINT:
        case T_U64: {
                unsigned long long n;
                char *end;

                if (!*v || v[0] < '0' || v[0] > '9') {
                        reason = strdup("not a number");
                        break;
                }
                errno = 0;
                n = strtoull(v, &end, 10);
                if (*end) {
                        reason = strdup("not a number");
                        break;
                }
                if (errno == ERANGE || n < k->min || n > k->max) {
                        if (asprintf(&reason, "out of range (%" PRIu64 "-%" PRIu64 ")", k->min, k->max) < 0)
                                reason = NULL;
                        break;
                }
                if (k->type == T_UINT)
                        *FIELD(c, k, unsigned) = (unsigned) n;
                else
                        *FIELD(c, k, uint64_t) = n;
                return 0;
        }
        case T_LEVEL:
                r = log_level_from_string(v);
                if (r < 0) {
                        reason = strdup("not a log level (debug, info, notice, warning, err)");
                        break;
                }
                *FIELD(c, k, int) = r;
                return 0;
        case T_PATH:
                if (*v && v[0] != '/') {
                        reason = strdup("not an absolute path");
                        break;
                }
                if (strlen(v) >= PATH_MAX) {
                        reason = strdup("path too long");
                        break;
                }
                return set_string(c, k, v);
        case T_ADDRESS: {
                unsigned char buf[sizeof(struct in6_addr)];

                if (inet_pton(AF_INET, v, buf) != 1 && inet_pton(AF_INET6, v, buf) != 1) {
                        reason = strdup("not a numeric IPv4 or IPv6 address");
                        break;
                }
                return set_string(c, k, v);
        }
        case T_NAME: {
                _cleanup_free_ char *a = NULL;

                /* The host of runtime://<name>/..., so every address of the
                 * domain has one spelling (lib/address). */
                if (asprintf(&a, "domain://%s", v) < 0)
                        return -ENOMEM;
                if (!*v || !rt_address_is_valid(a)) {
                        reason = strdup("not a lowercase DNS name or IP literal");
                        break;
                }
                return set_string(c, k, v);
        }
        case T_KEYLIST: {
                char **l = NULL;

                r = split_keys(v, &l, &reason);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        break;
                strv_free(*FIELD(c, k, char **));
                *FIELD(c, k, char **) = l;
                return 0;
        }
        }

        if (!reason)
                return -ENOMEM;
        *ret_reason = reason;
        return -EINVAL;
}

static const config_key *find_key(const char *section, const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (streq(keys[i].section, section) && streq(keys[i].key, key))
                        return &keys[i];
        return NULL;
}

static const config_key *find_key_by_field(size_t offset) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (keys[i].offset == offset)
                        return &keys[i];
        return NULL;
}

static int apply_defaults(domain_config *c) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                _cleanup_free_ char *reason = NULL;
                int r = set_key(c, &keys[i], "", &reason);
                if (r < 0)
                        return r == -EINVAL ? -EIO : r; /* a broken default is a bug */
        }
        return 0;
}

int domain_config_new(domain_config **ret) {
        _cleanup_domain_config_ domain_config *c = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->path = strdup(DOMAIN_CONFIG_FILE_DEFAULT);
        if (!c->path)
                return -ENOMEM;
        r = apply_defaults(c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

domain_config *domain_config_free(domain_config *c) {
        if (!c)
                return NULL;
        free(c->path);
        for (size_t i = 0; i < c->n_overrides; i++)
                free(c->overrides[i].value);
        free(c->overrides);
        free(c->state_directory);
        free(c->name);
        free(c->listen);
        free(c->certificate);
        free(c->private_key);
        free(c->admin_token_file);
        if (c->admin_token) {
                explicit_bzero_safe(c->admin_token, strlen(c->admin_token));
                free(c->admin_token);
        }
        strv_free(c->trusted_publishers);
        free(c);
        return NULL;
}

static int add_override(domain_config *c, const config_key *k, const char *value) {
        override *a;
        char *v = strdup(value);

        if (!v)
                return -ENOMEM;
        a = reallocarray(c->overrides, c->n_overrides + 1, sizeof(*a));
        if (!a) {
                free(v);
                return -ENOMEM;
        }
        c->overrides = a;
        c->overrides[c->n_overrides++] = (override) { .key = k, .value = v };
        return 0;
}

static int flag_error(const config_key *k, const char *value, const char *reason, char **ret_error) {
        if (asprintf(ret_error, "--%s=%s: %s ([%s] %s)", k->flag, value, reason, k->section, k->key) < 0)
                return -ENOMEM;
        return -EINVAL;
}

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "rethink domain services over HTTP/2: Catalogue (descriptors, signed packages)\n"
               "and device management.\n\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "  -c --config=PATH          Configuration file (default %s)\n",
               program_invocation_short_name, DOMAIN_CONFIG_FILE_DEFAULT);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                char opt[64];

                snprintf(opt, sizeof(opt), "--%s=", keys[i].flag);
                printf("     %-34s %s\n     %-34s [%s] %s, default \"%s\"\n", opt, keys[i].help, "",
                       keys[i].section, keys[i].key, keys[i].def);
        }
        printf("\nFlags override the file. See domain.conf for details.\n");
}

int domain_config_parse_argv(domain_config *c, int argc, char *argv[], char **ret_error) {
        enum { ARG_VERSION = 0x100, ARG_KEY0 = 0x200 };
        struct option options[ELEMENTSOF(keys) + 4];
        size_t n = 0;
        int opt;

        if (!c || !ret_error)
                return -EINVAL;

        options[n++] = (struct option) { "help", no_argument, NULL, 'h' };
        options[n++] = (struct option) { "version", no_argument, NULL, ARG_VERSION };
        options[n++] = (struct option) { "config", required_argument, NULL, 'c' };
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                options[n++] = (struct option) { keys[i].flag, required_argument, NULL, ARG_KEY0 + (int) i };
        options[n] = (struct option) {};

        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, ":hc:", options, NULL)) >= 0) {
                switch (opt) {
                case 'h':
                        help();
                        return DOMAIN_CONFIG_ARGV_EXIT;
                case ARG_VERSION:
                        printf("rethink-domain %s\n", RETHINK_VERSION);
                        return DOMAIN_CONFIG_ARGV_EXIT;
                case 'c': {
                        char *p;

                        if (!*optarg) {
                                if (asprintf(ret_error, "--config=: empty path") < 0)
                                        return -ENOMEM;
                                return -EINVAL;
                        }
                        p = strdup(optarg);
                        if (!p)
                                return -ENOMEM;
                        free(c->path);
                        c->path = p;
                        c->path_from_flag = true;
                        break;
                }
                case ':':
                        if (asprintf(ret_error, "%s: option needs a value", argv[optind - 1]) < 0)
                                return -ENOMEM;
                        return -EINVAL;
                case '?':
                        if (asprintf(ret_error, "%s: unknown option", argv[optind - 1]) < 0)
                                return -ENOMEM;
                        return -EINVAL;
                default: {
                        const config_key *k = &keys[opt - ARG_KEY0];
                        _cleanup_free_ char *reason = NULL;
                        int r;

                        r = set_key(c, k, optarg, &reason);
                        if (r == -EINVAL)
                                return flag_error(k, optarg, reason, ret_error);
                        if (r < 0)
                                return r;
                        r = add_override(c, k, optarg);
                        if (r < 0)
                                return r;
                }
                }
        }

        if (optind < argc) {
                if (asprintf(ret_error, "%s: unexpected argument", argv[optind]) < 0)
                        return -ENOMEM;
                return -EINVAL;
        }
        return 0;
}

typedef struct parse_ctx {
        domain_config *config;
        const char *path;
        char *error;
} parse_ctx;

static int on_assignment(const char *section, const char *key, const char *value, unsigned line,
                         void *userdata) {
        parse_ctx *ctx = userdata;
        const config_key *k = find_key(section, key);
        _cleanup_free_ char *reason = NULL;
        int r;

        if (!k)
                r = -EINVAL;
        else
                r = set_key(ctx->config, k, value, &reason);
        if (r == -EINVAL) {
                if (asprintf(&ctx->error, "%s:%u: [%s] %s=%s: %s", ctx->path, line, section, key, value,
                             reason ?: "unknown key") < 0)
                        ctx->error = NULL;
        }
        return r;
}

_printf_(4, 5) static int key_error(const domain_config *c, size_t offset, char **ret_error, const char *format,
                                    ...) {
        const config_key *k = find_key_by_field(offset);
        _cleanup_free_ char *reason = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&reason, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (asprintf(ret_error, "%s: [%s] %s: %s", c->path, k->section, k->key, reason) < 0)
                return -ENOMEM;
        return -EINVAL;
}

/* The rules that tie keys together, once every assignment is in. */
static int check_combined(domain_config *c, char **ret_error) {
        if (!c->certificate != !c->private_key)
                return key_error(c, c->certificate ? F(private_key) : F(certificate), ret_error,
                                 "Certificate= and PrivateKey= go together");
        if (!c->certificate && !domain_address_is_loopback(c->listen))
                return key_error(c, F(listen), ret_error,
                                 "%s: cleartext h2c is only allowed on a loopback address; "
                                 "set [HTTP] Certificate= and PrivateKey=", c->listen);
        if (c->min_lifetime_sec > c->max_lifetime_sec)
                return key_error(c, F(min_lifetime_sec), ret_error, "%u is above MaxLifetimeSec=%u",
                                 c->min_lifetime_sec, c->max_lifetime_sec);
        if (c->default_lifetime_sec < c->min_lifetime_sec || c->default_lifetime_sec > c->max_lifetime_sec)
                return key_error(c, F(default_lifetime_sec), ret_error, "%u is outside MinLifetimeSec..MaxLifetimeSec (%u-%u)",
                                 c->default_lifetime_sec, c->min_lifetime_sec, c->max_lifetime_sec);
        return 0;
}

/* The credential is read now, so a missing or weak file is a start (or
 * reload) error naming the key rather than a surprise at the first admin
 * request. */
static int read_admin_token(domain_config *c, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        if (!c->admin_token_file)
                return 0;
        r = read_full_file_secure(c->admin_token_file, TOKEN_FILE_MAX, &text, &size);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return key_error(c, F(admin_token_file), ret_error, "%s: %s", c->admin_token_file, strerror(-r));
        while (size > 0 && (text[size - 1] == '\n' || text[size - 1] == '\r' || text[size - 1] == ' '))
                text[--size] = '\0';
        for (size_t i = 0; i < size; i++)
                if ((unsigned char) text[i] <= 0x20 || (unsigned char) text[i] >= 0x7f) {
                        explicit_bzero_safe(text, size);
                        return key_error(c, F(admin_token_file), ret_error,
                                         "%s: the credential must be one line of printable ASCII without spaces",
                                         c->admin_token_file);
                }
        if (size < TOKEN_MIN_LEN) {
                explicit_bzero_safe(text, size);
                return key_error(c, F(admin_token_file), ret_error, "%s: the credential is shorter than %d characters",
                                 c->admin_token_file, TOKEN_MIN_LEN);
        }
        c->admin_token = TAKE_PTR(text);
        return 0;
}

static int load(const domain_config *template, const char *text, size_t size, domain_config **ret,
                char **ret_error) {
        _cleanup_domain_config_ domain_config *c = NULL;
        parse_ctx ctx = {};
        const char *reason = NULL;
        unsigned line = 0;
        int r;

        r = domain_config_new(&c);
        if (r < 0)
                return r;
        free(c->path);
        c->path = strdup(template->path);
        if (!c->path)
                return -ENOMEM;
        c->path_from_flag = template->path_from_flag;

        ctx = (parse_ctx) { .config = c, .path = template->path };
        if (text) {
                r = ini_parse(text, size, on_assignment, &ctx, &line, &reason);
                if (r < 0) {
                        if (ctx.error)
                                *ret_error = ctx.error;
                        else if (reason) {
                                if (asprintf(ret_error, "%s:%u: %s", template->path, line, reason) < 0)
                                        return -ENOMEM;
                        } else
                                return r == -EINVAL ? -ENOMEM : r;
                        return -EINVAL;
                }
        }

        for (size_t i = 0; i < template->n_overrides; i++) {
                const override *o = &template->overrides[i];
                _cleanup_free_ char *why = NULL;

                r = set_key(c, o->key, o->value, &why);
                if (r == -EINVAL)
                        return flag_error(o->key, o->value, why, ret_error);
                if (r < 0)
                        return r;
                r = add_override(c, o->key, o->value);
                if (r < 0)
                        return r;
        }

        r = check_combined(c, ret_error);
        if (r < 0)
                return r;
        r = read_admin_token(c, ret_error);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

int domain_config_load_string(const domain_config *template, const char *path, const char *text,
                              domain_config **ret, char **ret_error) {
        _cleanup_domain_config_ domain_config *t = NULL;
        int r;

        if (!template || !path || !ret || !ret_error)
                return -EINVAL;
        r = domain_config_new(&t);
        if (r < 0)
                return r;
        free(t->path);
        t->path = strdup(path);
        if (!t->path)
                return -ENOMEM;
        t->path_from_flag = template->path_from_flag;
        for (size_t i = 0; i < template->n_overrides; i++) {
                r = add_override(t, template->overrides[i].key, template->overrides[i].value);
                if (r < 0)
                        return r;
        }
        return load(t, text, text ? strlen(text) : 0, ret, ret_error);
}

int domain_config_load(const domain_config *template, domain_config **ret, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        if (!template || !ret || !ret_error)
                return -EINVAL;

        r = read_full_file(template->path, CONFIG_FILE_MAX, &text, &size);
        if (r == -ENOENT && !template->path_from_flag)
                text = NULL;
        else if (r < 0) {
                if (asprintf(ret_error, "%s: %s", template->path, strerror(-r)) < 0)
                        return -ENOMEM;
                return r;
        }
        return load(template, text, size, ret, ret_error);
}

const char *domain_config_get_path(const domain_config *c) {
        return c->path;
}
int domain_config_get_log_level(const domain_config *c) {
        return c->log_level;
}
const char *domain_config_get_state_directory(const domain_config *c) {
        return c->state_directory;
}
const char *domain_config_get_name(const domain_config *c) {
        return c->name;
}
const char *domain_config_get_listen(const domain_config *c) {
        return c->listen;
}
uint16_t domain_config_get_port(const domain_config *c) {
        return (uint16_t) c->port;
}
const char *domain_config_get_certificate(const domain_config *c) {
        return c->certificate;
}
const char *domain_config_get_private_key(const domain_config *c) {
        return c->private_key;
}
unsigned domain_config_get_max_connections(const domain_config *c) {
        return c->max_connections;
}
unsigned domain_config_get_max_concurrent_streams(const domain_config *c) {
        return c->max_concurrent_streams;
}
uint64_t domain_config_get_request_timeout_usec(const domain_config *c) {
        return c->request_timeout_sec * 1000000ULL;
}
uint64_t domain_config_get_idle_timeout_usec(const domain_config *c) {
        return c->idle_timeout_sec * 1000000ULL;
}
uint64_t domain_config_get_shutdown_grace_usec(const domain_config *c) {
        return c->shutdown_grace_sec * 1000000ULL;
}
const char *domain_config_get_admin_token(const domain_config *c) {
        return c->admin_token;
}
char *const *domain_config_get_trusted_publishers(const domain_config *c) {
        return c->trusted_publishers;
}
uint64_t domain_config_get_max_package_size(const domain_config *c) {
        return c->max_package_size;
}
unsigned domain_config_get_default_lifetime_sec(const domain_config *c) {
        return c->default_lifetime_sec;
}
unsigned domain_config_get_min_lifetime_sec(const domain_config *c) {
        return c->min_lifetime_sec;
}
unsigned domain_config_get_max_lifetime_sec(const domain_config *c) {
        return c->max_lifetime_sec;
}
