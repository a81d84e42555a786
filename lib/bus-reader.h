/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The runtime message bus's wire form (docs/bus.md), shared by the agent's
 * server and libhyperty: NDJSON, one reTHINK message (lib/message.h) per
 * line of at most BUS_LINE_MAX bytes without its '\n'.
 *
 * The reader is incremental: bytes go in as they arrive (bus_reader_feed()
 * or bus_reader_recv()), complete lines come out as messages or as per-line
 * errors (bus_reader_next()). A bad line never stops the stream; only a line
 * over the limit does, because where it ends cannot be told any more. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "message.h"

/* Longest line, without its '\n'. */
#define BUS_LINE_MAX RT_MESSAGE_MAX_SIZE_DEFAULT

typedef struct bus_reader bus_reader;

/* max_line 0 means BUS_LINE_MAX. The reader never holds more than
 * max_line + 1 bytes. */
int bus_reader_new(size_t max_line, bus_reader **ret);
bus_reader *bus_reader_free(bus_reader *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(bus_reader *, bus_reader_free);
#define _cleanup_bus_reader_ _cleanup_(bus_reader_freep)

/* Appends bytes. Takes as many as fit (at most max_line + 1 minus what is
 * pending) and returns that number; the caller takes lines out with
 * bus_reader_next() and feeds the rest. 0 with size > 0 means the buffer is
 * full, which only happens when next() has lines to give or reports
 * -EMSGSIZE. */
size_t bus_reader_feed(bus_reader *r, const void *data, size_t size);

/* One recv(2) from fd, MSG_DONTWAIT, into the free space. Returns the number
 * of bytes read (> 0), 0 at end of stream, -ENOBUFS when there is no space
 * (take lines out first), -EAGAIN when nothing is there, or another negative
 * errno from recv(2). */
int bus_reader_recv(bus_reader *r, int fd);

/* What was wrong with the last line next() rejected. Valid until the next
 * call of next(), feed() or recv() on the reader. */
typedef struct bus_reader_error {
        /* The errno of rt_message_parse(): -EBADMSG, -EINVAL, -ERANGE, -E2BIG. */
        int error;
        /* The status to answer with: 400 (rt_message_status_for_error()). */
        int code;
        /* rt_message_parse()'s reason, safe to log and to send back; NULL
         * when even that allocation failed. Owned by the reader. */
        const char *reason;
        /* Whether the line had a readable id (0 to RT_MESSAGE_ID_MAX), and
         * which, so that an answer can correlate. */
        bool has_id;
        uint64_t id;
        /* The line claimed to be a response: never answer it. */
        bool is_response;
} bus_reader_error;

/* Takes the next complete line out. Returns
 *   1  with *ret_message set (to be freed);
 *   0  when no complete line is pending (more bytes are needed);
 *   -EMSGSIZE  when the pending line is longer than max_line: the stream
 *      cannot be followed any more (every further call says the same);
 *   -EBADMSG, -EINVAL, -ERANGE, -E2BIG  for a line rt_message_parse()
 *      rejected, with *ret_error filled in when not NULL; the line is
 *      consumed, the next call goes on with the next line;
 *   -ENOMEM.
 * Empty lines (and lines of only whitespace) are skipped, so a peer may
 * send "\n" as a keep-alive. */
int bus_reader_next(bus_reader *r, rt_message **ret_message, bus_reader_error *ret_error);

/* Builds the error response for the line next() rejected last, as
 * rt_message_new_error_for_invalid() does: same id, to the line's "from",
 * from the line's first "to" when that is a valid address, else from
 * fallback_responder. Returns -EINVAL when the line was a response (never
 * answered), -EBADMSG when it gives no valid id or "from", -ENODATA when
 * next() rejected no line since the last feed. */
int bus_reader_answer_invalid(bus_reader *r, const char *fallback_responder, rt_message **ret);

/* Bytes pending (received, not yet taken out as lines). */
size_t bus_reader_pending(const bus_reader *r);

/* The wire form of m: compact JSON and '\n'. *ret is NUL-terminated, its
 * length without the NUL in *ret_size. -EMSGSIZE when the line would be
 * longer than BUS_LINE_MAX (the peer would have to close the connection). */
int bus_message_to_line(const rt_message *m, char **ret, size_t *ret_size);
