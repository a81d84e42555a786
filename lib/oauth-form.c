/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#include "oauth-form.h"

struct oauth_form {
        char *values[_OAUTH_FORM_PARAM_MAX];
};

static const char *const param_names[_OAUTH_FORM_PARAM_MAX] = {
        [OAUTH_GRANT_TYPE] = "grant_type",
        [OAUTH_SCOPE] = "scope",
        [OAUTH_CLIENT_ID] = "client_id",
        [OAUTH_CLIENT_SECRET] = "client_secret",
        [OAUTH_CLIENT_ASSERTION_TYPE] = "client_assertion_type",
        [OAUTH_CLIENT_ASSERTION] = "client_assertion",
        [OAUTH_USERNAME] = "username",
        [OAUTH_PASSWORD] = "password",
};

static const char *const duplicate_reasons[_OAUTH_FORM_PARAM_MAX] = {
        [OAUTH_GRANT_TYPE] = "parameter 'grant_type' given more than once",
        [OAUTH_SCOPE] = "parameter 'scope' given more than once",
        [OAUTH_CLIENT_ID] = "parameter 'client_id' given more than once",
        [OAUTH_CLIENT_SECRET] = "parameter 'client_secret' given more than once",
        [OAUTH_CLIENT_ASSERTION_TYPE] = "parameter 'client_assertion_type' given more than once",
        [OAUTH_CLIENT_ASSERTION] = "parameter 'client_assertion' given more than once",
        [OAUTH_USERNAME] = "parameter 'username' given more than once",
        [OAUTH_PASSWORD] = "parameter 'password' given more than once",
};

const char *oauth_form_param_to_string(oauth_form_param p) {
        return p < _OAUTH_FORM_PARAM_MAX ? param_names[p] : NULL;
}

oauth_form *oauth_form_free(oauth_form *f) {
        if (!f)
                return NULL;
        for (size_t i = 0; i < _OAUTH_FORM_PARAM_MAX; i++)
                if (f->values[i]) {
                        /* Secrets and assertions: do not leave them in freed memory. */
                        explicit_bzero_safe(f->values[i], strlen(f->values[i]));
                        free(f->values[i]);
                }
        free(f);
        return NULL;
}

const char *oauth_form_get(const oauth_form *f, oauth_form_param p) {
        return f && p < _OAUTH_FORM_PARAM_MAX ? f->values[p] : NULL;
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static int decode(const char *s, size_t n, char **ret) {
        char *d = malloc(n + 1);
        size_t j = 0;

        if (!d)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%') {
                        int hi = i + 2 < n ? unhex(s[i + 1]) : -1, lo = i + 2 < n ? unhex(s[i + 2]) : -1;

                        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                                free(d);
                                return -EINVAL;
                        }
                        d[j++] = (char) (hi * 16 + lo);
                        i += 2;
                } else if (s[i] == '\0') {
                        free(d);
                        return -EINVAL;
                } else
                        d[j++] = s[i] == '+' ? ' ' : s[i];
        }
        d[j] = '\0';
        *ret = d;
        return 0;
}

static int fail(const char **ret_reason, int error, const char *reason) {
        if (ret_reason)
                *ret_reason = reason;
        return error;
}

int oauth_form_parse(const char *body, size_t len, oauth_form **ret, const char **ret_reason) {
        _cleanup_(oauth_form_freep) oauth_form *f = NULL;
        const char *p = body, *end = body + len;

        if (!ret || (!body && len > 0))
                return fail(ret_reason, -EINVAL, "missing argument");
        if (len > OAUTH_FORM_MAX_SIZE)
                return fail(ret_reason, -E2BIG, "body too large");
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;

        while (p < end) {
                const char *amp = memchr(p, '&', (size_t) (end - p)) ?: end;
                const char *eq = memchr(p, '=', (size_t) (amp - p));
                _cleanup_free_ char *name = NULL;
                size_t i;
                int r;

                if (amp == p) {
                        p++;
                        continue;
                }
                r = decode(p, (size_t) ((eq ?: amp) - p), &name);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return fail(ret_reason, -EINVAL, "body: bad percent-encoding in a parameter name");
                for (i = 0; i < _OAUTH_FORM_PARAM_MAX; i++)
                        if (streq(name, param_names[i]))
                                break;
                if (i < _OAUTH_FORM_PARAM_MAX) {
                        char *value = NULL;

                        if (f->values[i])
                                return fail(ret_reason, -EINVAL, duplicate_reasons[i]);
                        r = eq ? decode(eq + 1, (size_t) (amp - eq - 1), &value) : decode("", 0, &value);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0)
                                return fail(ret_reason, -EINVAL, "body: bad percent-encoding in a value");
                        f->values[i] = value;
                }
                p = amp < end ? amp + 1 : end;
        }
        *ret = TAKE_PTR(f);
        return 0;
}

int oauth_basic_parse(const char *authorization, char **ret_id, char **ret_secret, const char **ret_reason) {
        _cleanup_free_ unsigned char *raw = NULL;
        _cleanup_free_ char *id = NULL, *secret = NULL;
        const char *b64, *colon;
        size_t n, pad = 0;
        int len, r;

        if (!authorization || !ret_id || !ret_secret)
                return fail(ret_reason, -EINVAL, "missing argument");
        if (strncasecmp(authorization, "Basic ", 6) != 0)
                return -ENOENT;
        b64 = authorization + 6;
        while (*b64 == ' ')
                b64++;
        n = strlen(b64);
        /* EVP_DecodeBlock() takes whole quads and skips nothing we care
         * about; anything but the alphabet and final padding is refused. */
        if (n == 0 || n % 4 != 0 || n > OAUTH_FORM_MAX_SIZE || strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n)
                return fail(ret_reason, -EINVAL, "malformed Basic credential");
        while (pad < 2 && b64[n - 1 - pad] == '=')
                pad++;
        if (memchr(b64, '=', n - pad))
                return fail(ret_reason, -EINVAL, "malformed Basic credential");
        raw = malloc(n / 4 * 3 + 1);
        if (!raw)
                return -ENOMEM;
        len = EVP_DecodeBlock(raw, (const unsigned char *) b64, (int) n);
        if (len < 0 || (size_t) len < pad)
                return fail(ret_reason, -EINVAL, "malformed Basic credential");
        len -= (int) pad;
        raw[len] = 0;
        colon = memchr(raw, ':', (size_t) len);
        if (!colon || memchr(raw, 0, (size_t) len))
                return fail(ret_reason, -EINVAL, "malformed Basic credential");
        r = decode((const char *) raw, (size_t) (colon - (const char *) raw), &id);
        if (r >= 0)
                r = decode(colon + 1, (size_t) len - (size_t) (colon - (const char *) raw) - 1, &secret);
        explicit_bzero_safe(raw, (size_t) len);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(ret_reason, -EINVAL, "malformed Basic credential");
        *ret_id = TAKE_PTR(id);
        *ret_secret = TAKE_PTR(secret);
        return 0;
}
