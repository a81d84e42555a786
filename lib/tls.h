/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* TLS contexts for HTTP/2: TLS 1.2 minimum, ALPN "h2" only.
 *
 * The server context refuses clients that do not offer "h2" (fatal
 * no_application_protocol alert). The client context verifies the server
 * against a CA file; the host name is checked per connection by
 * tls_client_setup(). */

#include <openssl/ssl.h>
#include <stdbool.h>

#include "macro.h"

/* Returns 0, -ENOENT/-EACCES when a file cannot be read, -EBADMSG when it is
 * not valid PEM or the key does not match the certificate. */
int tls_server_ctx_new(const char *cert_file, const char *key_file, SSL_CTX **ret);
int tls_client_ctx_new(const char *ca_file, SSL_CTX **ret);

/* Prepares a client SSL: SNI (unless the name is an IP literal) and host
 * name (or IP address) verification against server_name. */
int tls_client_setup(SSL *ssl, const char *server_name);

/* After a completed handshake: 0 if "h2" was negotiated, -EPROTO if not. */
int tls_check_alpn_h2(SSL *ssl);

/* Maps the error state of a failed handshake to negative errno: -EPERM for
 * a certificate that failed verification, -EPROTO for a failed ALPN
 * negotiation, -ECONNRESET otherwise. *ret_reason (may be NULL) gets a
 * static or SSL-owned string valid until the SSL is freed. */
int tls_handshake_error(SSL *ssl, const char **ret_reason);

static inline void SSL_CTX_freep(SSL_CTX **p) {
        if (*p)
                SSL_CTX_free(*p);
}
#define _cleanup_ssl_ctx_ _cleanup_(SSL_CTX_freep)
