/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "domain-init.h"
#include "encoding.h"
#include "fileio.h"
#include "macro.h"
#include "sign.h"

#define ADMIN_TOKEN_BYTES 32

const char *const domain_init_files[] = {
        "domain.conf", "ca.pem", "ca.key", "server.pem", "server.key", "admin-token", "publisher.key",
        "publisher.pub", NULL,
};

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);

bool domain_init_name_is_valid(const char *s) {
        size_t label = 0, n = 0;

        if (!s || !*s || *s == '.' || *s == '-')
                return false;
        for (const char *p = s; *p; p++, n++) {
                if (*p == '.') {
                        if (label == 0 || p[-1] == '-')
                                return false;
                        label = 0;
                        continue;
                }
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '-'))
                        return false;
                if (++label > 63)
                        return false;
        }
        return n <= 253 && label > 0;
}

static int write_pem(const char *dir, const char *name, X509 *cert, EVP_PKEY *key, mode_t mode) {
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
        _cleanup_free_ char *path = NULL;
        char *data;
        long n;
        int r;

        if (!b)
                return -ENOMEM;
        if (cert && PEM_write_bio_X509(b, cert) != 1)
                return -EIO;
        /* PKCS#8, unencrypted: what tls_server_ctx_new() and the rest of
         * the project read. */
        if (key && PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) != 1)
                return -EIO;
        n = BIO_get_mem_data(b, &data);
        if (n <= 0)
                return -EIO;
        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        r = write_file_atomic(path, data, (size_t) n, mode);
        explicit_bzero_safe(data, (size_t) n);
        return r;
}

static int add_ext(X509 *issuer, X509 *cert, int nid, const char *value) {
        X509V3_CTX ctx;
        X509_EXTENSION *ext;
        int ok;

        X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext)
                return -EINVAL;
        ok = X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
        return ok == 1 ? 0 : -ENOMEM;
}

/* An unsigned certificate for key, issued by issuer (NULL: self-issued).
 * Serials are 64 random bits, as RFC 5280 asks for unpredictable ones. */
static int make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, long days, X509 **ret) {
        _cleanup_(X509_freep) X509 *x = X509_new();
        _cleanup_(BN_freep) BIGNUM *serial = BN_new();
        X509_NAME *name;

        if (!x || !serial)
                return -ENOMEM;
        if (X509_set_version(x, X509_VERSION_3) != 1 || BN_rand(serial, 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
            !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) ||
            !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
            !X509_time_adj_ex(X509_getm_notAfter(x), (int) days, 0, NULL) || X509_set_pubkey(x, key) != 1)
                return -EIO;
        name = X509_get_subject_name(x);
        if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0) != 1 ||
            X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *) "rethink", -1, -1, 0) != 1)
                return -EINVAL;
        if (X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) != 1)
                return -EIO;
        *ret = TAKE_PTR(x);
        return 0;
}

static int make_ca(EVP_PKEY **ret_key, X509 **ret_cert) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256");
        _cleanup_(X509_freep) X509 *x = NULL;
        int r;

        if (!key)
                return -EIO;
        r = make_cert("rethink domain CA", key, NULL, DOMAIN_INIT_CA_DAYS, &x);
        if (r < 0)
                return r;
        r = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
        r = r ?: add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
        r = r ?: add_ext(x, x, NID_subject_key_identifier, "hash");
        if (r < 0)
                return r;
        if (X509_sign(x, key, EVP_sha256()) <= 0)
                return -EIO;
        *ret_key = TAKE_PTR(key);
        *ret_cert = TAKE_PTR(x);
        return 0;
}

static int make_server(const domain_init_options *o, X509 *ca, EVP_PKEY *ca_key, EVP_PKEY **ret_key,
                       X509 **ret_cert) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256");
        _cleanup_(X509_freep) X509 *x = NULL;
        _cleanup_free_ char *san = NULL;
        int r;

        if (!key)
                return -EIO;
        if (asprintf(&san, "DNS:%s%s", o->name, streq(o->name, "localhost") ? "" : ",DNS:localhost") < 0)
                return -ENOMEM;
        for (char **a = o->addresses; a && *a; a++) {
                unsigned char buf[sizeof(struct in6_addr)];
                char *n;

                if (inet_pton(AF_INET, *a, buf) != 1 && inet_pton(AF_INET6, *a, buf) != 1)
                        return -EINVAL;
                if (asprintf(&n, "%s,IP:%s", san, *a) < 0)
                        return -ENOMEM;
                free(san);
                san = n;
        }

        r = make_cert(o->name, key, ca, DOMAIN_INIT_SERVER_DAYS, &x);
        if (r < 0)
                return r;
        r = add_ext(ca, x, NID_basic_constraints, "critical,CA:FALSE");
        r = r ?: add_ext(ca, x, NID_key_usage, "critical,digitalSignature");
        r = r ?: add_ext(ca, x, NID_ext_key_usage, "serverAuth");
        r = r ?: add_ext(ca, x, NID_subject_key_identifier, "hash");
        r = r ?: add_ext(ca, x, NID_authority_key_identifier, "keyid:always");
        r = r ?: add_ext(ca, x, NID_subject_alt_name, san);
        if (r < 0)
                return r;
        if (X509_sign(x, ca_key, EVP_sha256()) <= 0)
                return -EIO;
        *ret_key = TAKE_PTR(key);
        *ret_cert = TAKE_PTR(x);
        return 0;
}

static int write_text(const char *dir, const char *name, const char *text, mode_t mode) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text), mode);
}

static int write_admin_token(const char *dir) {
        uint8_t raw[ADMIN_TOKEN_BYTES];
        _cleanup_free_ char *token = NULL, *line = NULL;
        int r;

        if (RAND_bytes(raw, sizeof(raw)) != 1)
                return -EIO;
        r = base64url_encode(raw, sizeof(raw), &token);
        explicit_bzero_safe(raw, sizeof(raw));
        if (r < 0)
                return r;
        if (asprintf(&line, "%s\n", token) < 0)
                r = -ENOMEM;
        else
                r = write_text(dir, "admin-token", line, 0600);
        explicit_bzero_safe(token, strlen(token));
        if (line)
                explicit_bzero_safe(line, strlen(line));
        return r;
}

static int write_publisher(const char *dir, char **ret_public) {
        _cleanup_sign_key_ sign_key *k = NULL;
        _cleanup_free_ char *path = NULL, *pub = NULL, *line = NULL;
        int r;

        r = sign_key_generate(&k);
        if (r < 0)
                return r;
        if (asprintf(&path, "%s/publisher.key", dir) < 0)
                return -ENOMEM;
        r = sign_key_save_private_pem(k, path);
        if (r < 0)
                return r;
        r = sign_key_get_public_base64url(k, &pub);
        if (r < 0)
                return r;
        if (asprintf(&line, "%s\n", pub) < 0)
                return -ENOMEM;
        r = write_text(dir, "publisher.pub", line, 0644);
        if (r < 0)
                return r;
        *ret_public = TAKE_PTR(pub);
        return 0;
}

static int write_config(const domain_init_options *o, const char *dir, const char *publisher) {
        _cleanup_free_ char *text = NULL;

        if (asprintf(&text,
                     "# rethink-domain configuration for a first try, made by rethinkctl domain init.\n"
                     "# Every key is explained in the packaged domain.conf. Start the domain with\n"
                     "#   rethink-domain --config=%s/domain.conf\n"
                     "\n"
                     "[Domain]\n"
                     "StateDirectory=%s/state\n"
                     "\n"
                     "[HTTP]\n"
                     "Listen=%s\n"
                     "Port=%u\n"
                     "Certificate=%s/server.pem\n"
                     "PrivateKey=%s/server.key\n"
                     "\n"
                     "[Admin]\n"
                     "TokenFile=%s/admin-token\n"
                     "\n"
                     "[Catalogue]\n"
                     "# The public half of %s/publisher.key.\n"
                     "TrustedPublishers=%s\n",
                     dir, dir, o->listen, o->port, dir, dir, dir, dir, publisher) < 0)
                return -ENOMEM;
        return write_text(dir, "domain.conf", text, 0644);
}

int domain_init(const domain_init_options *o, char **ret_publisher) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ca_key = NULL, *server_key = NULL;
        _cleanup_(X509_freep) X509 *ca = NULL, *server = NULL;
        _cleanup_free_ char *dir = NULL, *state = NULL, *publisher = NULL;
        int r;

        if (!o || !o->dir || !domain_init_name_is_valid(o->name) || !o->listen)
                return -EINVAL;
        for (char **a = o->addresses; a && *a; a++) {
                unsigned char buf[sizeof(struct in6_addr)];

                if (inet_pton(AF_INET, *a, buf) != 1 && inet_pton(AF_INET6, *a, buf) != 1)
                        return -EINVAL;
        }

        r = mkdir_p(o->dir, 0755);
        if (r < 0)
                return r;
        /* The config names files by absolute path: the domain's working
         * directory is not DIR. */
        dir = realpath(o->dir, NULL);
        if (!dir)
                return -errno;
        if (!o->force)
                for (size_t i = 0; domain_init_files[i]; i++) {
                        _cleanup_free_ char *p = NULL;

                        if (asprintf(&p, "%s/%s", dir, domain_init_files[i]) < 0)
                                return -ENOMEM;
                        if (access(p, F_OK) == 0)
                                return -EEXIST;
                }

        if (asprintf(&state, "%s/state", dir) < 0)
                return -ENOMEM;
        r = mkdir_p(state, 0750);
        if (r < 0)
                return r;

        r = make_ca(&ca_key, &ca);
        if (r < 0)
                return r;
        r = make_server(o, ca, ca_key, &server_key, &server);
        if (r < 0)
                return r;

        r = write_pem(dir, "ca.key", NULL, ca_key, 0600);
        if (r < 0)
                return r;
        r = write_pem(dir, "ca.pem", ca, NULL, 0644);
        if (r < 0)
                return r;
        r = write_pem(dir, "server.key", NULL, server_key, 0600);
        if (r < 0)
                return r;
        /* The chain without the root: clients have the CA. */
        r = write_pem(dir, "server.pem", server, NULL, 0644);
        if (r < 0)
                return r;
        r = write_admin_token(dir);
        if (r < 0)
                return r;
        r = write_publisher(dir, &publisher);
        if (r < 0)
                return r;
        /* Last, so a set-up that stopped half-way has no config to start. */
        r = write_config(o, dir, publisher);
        if (r < 0)
                return r;

        if (ret_publisher)
                *ret_publisher = TAKE_PTR(publisher);
        return 0;
}
