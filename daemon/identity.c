/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-id128.h>

#include "fileio.h"
#include "id.h"
#include "identity.h"
#include "log.h"

/* Application id for sd_id128_get_machine_app_specific(): the endpoint is
 * an HMAC of the machine id under it, so it says nothing about the
 * machine id itself and differs from what other programs derive. */
#define IDENTITY_APP_ID SD_ID128_MAKE(4c, 0d, 2b, 7e, 91, 5a, 43, 66, a8, 3f, 0e, 5b, 92, c1, 7d, 14)

struct identity {
        char *endpoint;
        const char *endpoint_source;
        sign_key *sign_key;
        token_key *token_key;
        char *public_key;
        bool created;
};

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool identity_endpoint_is_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > IDENTITY_ENDPOINT_MAX || !is_alnum(s[0]))
                return false;
        for (; *s; s++)
                if (!is_alnum(*s) && !strchr("._:-", *s))
                        return false;
        return true;
}

static void journal_created(const char *what, const char *path, const char *detail) {
        log_struct(LOG_NOTICE,
                   LOG_MESSAGE("Created the device's %s in %s (%s).", what, path, detail),
                   LOG_MESSAGE_ID(IDENTITY_MESSAGE_ID_CREATED),
                   LOG_FIELD("IDENTITY_ITEM", "%s", what),
                   LOG_FIELD("IDENTITY_PATH", "%s", path),
                   LOG_FIELD("IDENTITY_DETAIL", "%s", detail));
}

/* A private key file that others can read is no longer private; tighten
 * it rather than refuse to start, and say so. */
static int ensure_private_mode(const char *path) {
        struct stat st;

        if (stat(path, &st) < 0)
                return negative_errno();
        if ((st.st_mode & 077) == 0)
                return 0;
        if (chmod(path, 0600) < 0)
                return log_error_errno(errno, "Key file %s is accessible to others and cannot be fixed: %m", path);
        log_warning("Key file %s was accessible to others (mode %04o); set to 0600.", path,
                    (unsigned) (st.st_mode & 07777));
        return 0;
}

static int load_sign_key(identity *id, const char *dir) {
        _cleanup_free_ char *path = NULL;
        _cleanup_sign_key_ sign_key *k = NULL;
        int r;

        if (asprintf(&path, "%s/%s", dir, IDENTITY_SIGN_KEY_FILE) < 0)
                return -ENOMEM;
        r = sign_key_load_private_pem(path, &k);
        if (r == -ENOENT) {
                r = sign_key_generate(&k);
                if (r < 0)
                        return log_error_errno(r, "Failed to generate the device key: %m");
                r = sign_key_save_private_pem(k, path);
                if (r < 0)
                        return log_error_errno(r, "Failed to save the device key to %s: %m", path);
                id->created = true;
                journal_created("Ed25519 device key", path, "device management identity");
        } else if (r < 0)
                return log_error_errno(r, "Failed to load the device key %s (not replacing it): %m", path);
        else {
                r = ensure_private_mode(path);
                if (r < 0)
                        return r;
        }
        r = sign_key_get_public_base64url(k, &id->public_key);
        if (r < 0)
                return r;
        id->sign_key = TAKE_PTR(k);
        return 0;
}

static int load_token_key(identity *id, const char *dir) {
        _cleanup_free_ char *path = NULL;
        _cleanup_token_key_ token_key *k = NULL;
        int r;

        if (asprintf(&path, "%s/%s", dir, IDENTITY_TOKEN_KEY_FILE) < 0)
                return -ENOMEM;
        r = token_key_load_private_pem(path, &k);
        if (r == -ENOENT) {
                r = token_key_generate(&k);
                if (r < 0)
                        return log_error_errno(r, "Failed to generate the IdM key: %m");
                r = token_key_save_private_pem(k, path);
                if (r < 0)
                        return log_error_errno(r, "Failed to save the IdM key to %s: %m", path);
                id->created = true;
                journal_created("P-256 IdM key", path, token_key_get_kid(k));
        } else if (r < 0)
                return log_error_errno(r, "Failed to load the IdM key %s (not replacing it): %m", path);
        else {
                r = ensure_private_mode(path);
                if (r < 0)
                        return r;
        }
        id->token_key = TAKE_PTR(k);
        return 0;
}

static int generate_endpoint(char **ret, const char **ret_source) {
        char uuid[ID_UUID_STRING_MAX];
        sd_id128_t m;
        char *s;
        int r;

        r = sd_id128_get_machine_app_specific(IDENTITY_APP_ID, &m);
        if (r >= 0) {
                char hex[SD_ID128_STRING_MAX];

                if (asprintf(&s, "rt-%s", sd_id128_to_string(m, hex)) < 0)
                        return -ENOMEM;
                *ret_source = "machine-id";
        } else {
                log_debug_errno(r, "No machine id (%m), using a random endpoint name.");
                r = id_uuid_new(uuid);
                if (r < 0)
                        return r;
                if (asprintf(&s, "rt-%s", uuid) < 0)
                        return -ENOMEM;
                *ret_source = "random";
        }
        *ret = s;
        return 0;
}

static int load_endpoint(identity *id, const char *dir, const char *configured) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        int r;

        if (configured) {
                if (!identity_endpoint_is_valid(configured))
                        return log_error_errno(EINVAL, "Configured endpoint name \"%s\" is not valid.", configured);
                id->endpoint = strdup(configured);
                id->endpoint_source = "configured";
                return id->endpoint ? 0 : -ENOMEM;
        }

        if (asprintf(&path, "%s/%s", dir, IDENTITY_ENDPOINT_FILE) < 0)
                return -ENOMEM;
        r = read_full_file(path, 4096, &text, NULL);
        if (r >= 0) {
                text[strcspn(text, "\n")] = '\0';
                if (!identity_endpoint_is_valid(text))
                        return log_error_errno(EBADMSG, "%s does not hold a valid endpoint name (not replacing it).",
                                               path);
                id->endpoint = TAKE_PTR(text);
                id->endpoint_source = "stored";
                return 0;
        }
        if (r != -ENOENT)
                return log_error_errno(r, "Failed to read %s: %m", path);

        _cleanup_free_ char *name = NULL, *line = NULL;
        r = generate_endpoint(&name, &id->endpoint_source);
        if (r < 0)
                return log_error_errno(r, "Failed to make an endpoint name: %m");
        if (asprintf(&line, "%s\n", name) < 0)
                return -ENOMEM;
        r = write_file_atomic(path, line, strlen(line), 0644);
        if (r < 0)
                return log_error_errno(r, "Failed to store the endpoint name in %s: %m", path);
        journal_created("endpoint name", path, name);
        id->endpoint = TAKE_PTR(name);
        return 0;
}

int identity_load(const char *state_dir, const char *endpoint, identity **ret) {
        _cleanup_identity_ identity *id = NULL;
        int r;

        if (!state_dir || !ret)
                return -EINVAL;
        id = calloc(1, sizeof(*id));
        if (!id)
                return -ENOMEM;
        r = mkdir_p(state_dir, 0750);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", state_dir);
        r = load_sign_key(id, state_dir);
        if (r < 0)
                return r;
        r = load_token_key(id, state_dir);
        if (r < 0)
                return r;
        r = load_endpoint(id, state_dir, endpoint);
        if (r < 0)
                return r;
        log_debug("Device identity: endpoint %s (%s), IdM key %s.", id->endpoint, id->endpoint_source,
                  token_key_get_kid(id->token_key));
        *ret = TAKE_PTR(id);
        return 0;
}

identity *identity_free(identity *id) {
        if (!id)
                return NULL;
        free(id->endpoint);
        free(id->public_key);
        sign_key_free(id->sign_key);
        token_key_free(id->token_key);
        free(id);
        return NULL;
}

const char *identity_get_endpoint(const identity *id) {
        return id->endpoint;
}

const char *identity_get_endpoint_source(const identity *id) {
        return id->endpoint_source;
}

const sign_key *identity_get_sign_key(const identity *id) {
        return id->sign_key;
}

const token_key *identity_get_token_key(const identity *id) {
        return id->token_key;
}

const char *identity_get_public_key(const identity *id) {
        return id->public_key;
}

bool identity_is_new(const identity *id) {
        return id->created;
}
