/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* HTTP/2 client on sd-event (nghttp2): one connection, many concurrent
 * requests. TLS verifies the server against a CA file and a host name and
 * requires ALPN h2; without a TLS context it speaks h2c with prior
 * knowledge (loopback and tests).
 *
 * Host names are not resolved (no blocking DNS in an event loop): host is
 * a numeric IPv4/IPv6 address, or "localhost", which maps to 127.0.0.1.
 *
 * Requests may be submitted right after h2_client_new(); they go out once
 * the connection is up. Each request ends with exactly one on_complete(),
 * unless the caller cancels it or frees the client first. */

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "h2-common.h"
#include "macro.h"

typedef struct H2Client H2Client;
typedef struct H2ClientRequest H2ClientRequest;

typedef struct H2ClientConfig {
        uint64_t connect_timeout_usec; /* TCP + TLS handshake; 0 disables */
        uint64_t request_timeout_usec; /* per request, whole exchange; 0 disables */
        size_t max_response_body;      /* buffered responses only: -EFBIG past it */
} H2ClientConfig;

#define H2_CLIENT_DEFAULT_CONNECT_TIMEOUT_USEC (10ULL * 1000000ULL)
#define H2_CLIENT_DEFAULT_MAX_RESPONSE_BODY (64U * 1024U * 1024U)

void h2_client_config_init(H2ClientConfig *c);

typedef struct H2ClientCallbacks {
        /* GOAWAY received: no new requests on this connection; streams
         * above last_stream_id complete with -ECONNREFUSED (retry them). */
        void (*on_goaway)(H2Client *c, uint32_t error_code, const char *debug, void *userdata);
        /* The connection is closed: 0 after an orderly end (GOAWAY
         * NO_ERROR, our own shutdown), negative errno otherwise (-ETIMEDOUT
         * connect timeout, -EPERM certificate rejected, -EPROTO no ALPN h2,
         * -ECONNRESET/-ECONNREFUSED ...). reason is for humans. Requests
         * still open have been completed with -ECONNABORTED before. */
        void (*on_close)(H2Client *c, int error, const char *reason, void *userdata);
} H2ClientCallbacks;

typedef struct H2ClientRequestCallbacks {
        /* Final response headers; see h2_client_request_get_header(). */
        int (*on_response)(H2ClientRequest *req, int status, void *userdata);
        /* Response body chunks as they arrive. If NULL, the body is
         * buffered: h2_client_request_get_body(). */
        int (*on_data)(H2ClientRequest *req, const uint8_t *data, size_t size, void *userdata);
        /* Exactly once: 0 when the response is complete, else negative
         * errno: -ECONNREFUSED refused/not processed (safe to retry),
         * -ECONNRESET stream reset, -ECONNABORTED connection lost,
         * -ETIMEDOUT request timeout, -EFBIG body too large. A negative
         * return of on_response/on_data cancels with that error. */
        void (*on_complete)(H2ClientRequest *req, int error, void *userdata);
} H2ClientRequestCallbacks;

/* tls NULL: h2c. server_name is what TLS verifies (default: host). */
int h2_client_new(sd_event *e, const char *host, uint16_t port, SSL_CTX *tls, const char *server_name,
                  const H2ClientConfig *config, const H2ClientCallbacks *callbacks, void *userdata,
                  H2Client **ret);
H2Client *h2_client_ref(H2Client *c);
/* The last reference closes the connection at once; open requests are
 * detached without callbacks. */
H2Client *h2_client_unref(H2Client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(H2Client *, h2_client_unref);
#define _cleanup_h2_client_ _cleanup_(h2_client_unrefp)

/* Sends GOAWAY, lets open requests finish, then closes (on_close(0)). */
int h2_client_shutdown(H2Client *c);
bool h2_client_is_connected(H2Client *c);
/* False after GOAWAY, shutdown or close: open a new client. */
bool h2_client_is_usable(H2Client *c);

enum {
        /* The request body continues with h2_client_request_write() and
         * ends with h2_client_request_end(). */
        H2_CLIENT_REQUEST_STREAM_BODY = 1 << 0,
};

/* Copies what it needs; ret (may be NULL) gets a reference. */
int h2_client_request(H2Client *c, const char *method, const char *path, const H2Header *headers,
                      size_t n_headers, const void *body, size_t size, unsigned flags,
                      const H2ClientRequestCallbacks *callbacks, void *userdata, H2ClientRequest **ret);

H2ClientRequest *h2_client_request_ref(H2ClientRequest *req);
H2ClientRequest *h2_client_request_unref(H2ClientRequest *req);
DEFINE_TRIVIAL_CLEANUP_FUNC(H2ClientRequest *, h2_client_request_unref);
#define _cleanup_h2_client_request_ _cleanup_(h2_client_request_unrefp)

int h2_client_request_write(H2ClientRequest *req, const void *data, size_t size);
int h2_client_request_end(H2ClientRequest *req);
/* Request body bytes queued and not yet handed to nghttp2 (the server's
 * flow-control window decides the pace): writers keep this bounded. */
size_t h2_client_request_get_queued(H2ClientRequest *req);
/* Flow control for a response taken with on_data: while paused no window
 * is given back, so the server stops once the stream window (64 KiB) is
 * used up; chunks already in flight are still delivered. -EBADFD for
 * buffered responses. */
int h2_client_request_pause(H2ClientRequest *req, bool pause);
/* RST_STREAM CANCEL; no callback follows. -EALREADY when complete. */
int h2_client_request_cancel(H2ClientRequest *req);
/* Overrides the configured request timeout; 0 disables. */
int h2_client_request_set_timeout(H2ClientRequest *req, uint64_t usec);

int h2_client_request_get_status(H2ClientRequest *req);
const char *h2_client_request_get_header(H2ClientRequest *req, const char *name);
size_t h2_client_request_get_n_headers(H2ClientRequest *req);
int h2_client_request_get_header_at(H2ClientRequest *req, size_t i, const char **ret_name,
                                    const char **ret_value);
const uint8_t *h2_client_request_get_body(H2ClientRequest *req, size_t *ret_size);
/* The RST_STREAM code of a reset stream, else 0. */
uint32_t h2_client_request_get_h2_error(H2ClientRequest *req);
int32_t h2_client_request_get_stream_id(H2ClientRequest *req);
bool h2_client_request_is_done(H2ClientRequest *req);
void *h2_client_request_get_userdata(H2ClientRequest *req);
