/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Non-blocking byte transport under an HTTP/2 session, plain TCP or TLS, on
 * sd-event. Shared by h2-server and h2-client; it knows nothing of HTTP/2:
 * the owner feeds received bytes to nghttp2 in on_data() and produces output
 * in fill(). Output is batched into one buffer per write, and EPOLLOUT is
 * watched only while a write is pending.
 *
 * Reentrancy: the owner may call h2_transport_close() and drop its reference
 * from any callback; the transport keeps itself alive until the callback
 * returns. on_close() is called at most once, and never from
 * h2_transport_close(). */

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "macro.h"

typedef struct H2Transport H2Transport;

/* Output below this is topped up by fill() before writing. */
#define H2_TRANSPORT_FILL_BYTES (64U * 1024U)

typedef struct H2TransportOps {
        /* TCP connected and, with TLS, handshake done with ALPN "h2". */
        int (*on_ready)(H2Transport *t, void *userdata);
        /* Received bytes; a negative return closes the transport with it. */
        int (*on_data)(H2Transport *t, const uint8_t *data, size_t size, void *userdata);
        /* Produce output with h2_transport_queue() until
         * h2_transport_queued() reaches H2_TRANSPORT_FILL_BYTES or nothing
         * is left; negative closes the transport. */
        int (*fill)(H2Transport *t, void *userdata);
        /* The transport is closed: error 0 for an orderly close (requested
         * by h2_transport_close_after_flush(), or EOF from the peer),
         * negative errno otherwise; reason is for humans, may be NULL. */
        void (*on_close)(H2Transport *t, int error, const char *reason, void *userdata);
} H2TransportOps;

/* Takes ownership of fd (also on failure). tls NULL means cleartext. */
int h2_transport_new_accepted(sd_event *e, int fd, SSL_CTX *tls, const H2TransportOps *ops,
                              void *userdata, H2Transport **ret);

/* Starts a non-blocking connect. server_name is required with tls.
 * timeout_usec 0 means no connect timeout (-ETIMEDOUT otherwise). */
int h2_transport_connect(sd_event *e, const struct sockaddr *sa, socklen_t salen, SSL_CTX *tls,
                         const char *server_name, uint64_t timeout_usec, const H2TransportOps *ops,
                         void *userdata, H2Transport **ret);

H2Transport *h2_transport_ref(H2Transport *t);
H2Transport *h2_transport_unref(H2Transport *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(H2Transport *, h2_transport_unref);
#define _cleanup_h2_transport_ _cleanup_(h2_transport_unrefp)

int h2_transport_queue(H2Transport *t, const void *data, size_t size);
size_t h2_transport_queued(H2Transport *t);

/* Schedules a flush (fill + write) from the event loop; cheap to call
 * often, e.g. after submitting frames outside of a transport callback. */
void h2_transport_kick(H2Transport *t);

/* Close once all output is written; on_close(0) follows. */
void h2_transport_close_after_flush(H2Transport *t);
/* Close now, without callbacks. Idempotent. */
void h2_transport_close(H2Transport *t);

bool h2_transport_is_ready(H2Transport *t);
bool h2_transport_is_closed(H2Transport *t);
/* Human-readable reason of the last failure (static or SSL-owned). */
const char *h2_transport_get_reason(H2Transport *t);
