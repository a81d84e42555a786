/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tls.h"

/* ALPN wire format: length-prefixed protocol names. */
static const unsigned char alpn_h2[] = { 2, 'h', '2' };

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
        unsigned char *sel;

        if (SSL_select_next_proto(&sel, outlen, alpn_h2, sizeof(alpn_h2), in, inlen) !=
            OPENSSL_NPN_NEGOTIATED) {
                log_debug("TLS client offered no \"h2\" in ALPN, refusing.");
                return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
}

static int file_errno(const char *path) {
        return access(path, R_OK) < 0 ? negative_errno() : -EBADMSG;
}

static SSL_CTX *ctx_new_common(const SSL_METHOD *method) {
        SSL_CTX *ctx = SSL_CTX_new(method);
        if (!ctx)
                return NULL;
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
                SSL_CTX_free(ctx);
                return NULL;
        }
        /* Partial writes keep the output buffer logic simple; the buffer may
         * move between retries because it is compacted. */
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                      SSL_MODE_RELEASE_BUFFERS);
        /* RFC 9113 9.2.1: no renegotiation, no compression. */
        SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
        return ctx;
}

int tls_server_ctx_new(const char *cert_file, const char *key_file, SSL_CTX **ret) {
        _cleanup_ssl_ctx_ SSL_CTX *ctx = NULL;

        if (!cert_file || !key_file || !ret)
                return -EINVAL;

        ctx = ctx_new_common(TLS_server_method());
        if (!ctx)
                return -ENOMEM;

        if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
                ERR_clear_error();
                return log_debug_errno(file_errno(cert_file), "Failed to load certificate %s.", cert_file);
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
                ERR_clear_error();
                return log_debug_errno(file_errno(key_file), "Failed to load key %s.", key_file);
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
                ERR_clear_error();
                return log_debug_errno(EBADMSG, "Key %s does not match certificate %s.", key_file, cert_file);
        }

        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
        *ret = TAKE_PTR(ctx);
        return 0;
}

int tls_client_ctx_new(const char *ca_file, SSL_CTX **ret) {
        _cleanup_ssl_ctx_ SSL_CTX *ctx = NULL;

        if (!ca_file || !ret)
                return -EINVAL;

        ctx = ctx_new_common(TLS_client_method());
        if (!ctx)
                return -ENOMEM;

        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
                ERR_clear_error();
                return log_debug_errno(file_errno(ca_file), "Failed to load CA file %s.", ca_file);
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        /* Note: returns 0 on success, unlike most of OpenSSL. */
        if (SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)) != 0)
                return -ENOMEM;

        *ret = TAKE_PTR(ctx);
        return 0;
}

static bool is_ip_literal(const char *s) {
        unsigned char buf[sizeof(struct in6_addr)];
        return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int tls_client_setup(SSL *ssl, const char *server_name) {
        X509_VERIFY_PARAM *param;

        if (!ssl || !server_name || !*server_name)
                return -EINVAL;

        param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (is_ip_literal(server_name)) {
                /* RFC 6066: SNI carries host names only. */
                if (X509_VERIFY_PARAM_set1_ip_asc(param, server_name) != 1)
                        return -EINVAL;
        } else {
                if (SSL_set_tlsext_host_name(ssl, server_name) != 1)
                        return -EINVAL;
                if (SSL_set1_host(ssl, server_name) != 1)
                        return -ENOMEM;
        }
        return 0;
}

int tls_check_alpn_h2(SSL *ssl) {
        const unsigned char *p = NULL;
        unsigned len = 0;

        SSL_get0_alpn_selected(ssl, &p, &len);
        if (len != 2 || memcmp(p, "h2", 2) != 0)
                return -EPROTO;
        return 0;
}

int tls_handshake_error(SSL *ssl, const char **ret_reason) {
        unsigned long e = ERR_peek_last_error();
        long v = SSL_get_verify_result(ssl);
        const char *reason;
        int r;

        if (v != X509_V_OK ||
            (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)) {
                reason = X509_verify_cert_error_string(v);
                r = -EPERM;
        } else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
                   ERR_GET_REASON(e) == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL) {
                reason = "server refused ALPN h2";
                r = -EPROTO;
        } else if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_NO_APPLICATION_PROTOCOL) {
                reason = "client did not offer ALPN h2";
                r = -EPROTO;
        } else {
                reason = e ? ERR_reason_error_string(e) : NULL;
                reason = reason ?: "TLS handshake failed";
                r = -ECONNRESET;
        }
        ERR_clear_error();
        if (ret_reason)
                *ret_reason = reason;
        return r;
}
