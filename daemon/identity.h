/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The device's identity: its endpoint name and its two key pairs, created
 * on first start in the state directory and reused ever after.
 *
 *   device-key.pem    Ed25519 (lib/sign.h): the key the domain's device
 *                     management binds the endpoint to (the "publicKey" of
 *                     POST /dm/rd), and the device's signing identity
 *   idm-key.pem       P-256 (lib/token.h): signs the RFC 7523 client
 *                     assertions for POST /idm/token; libjwt has no EdDSA,
 *                     so tokens cannot use the Ed25519 key (docs/idm.md)
 *   endpoint          the endpoint name, one line
 *
 * Key files are PEM PKCS#8 with mode 0600. The endpoint name is, in order:
 * the configured one; the one stored in the state directory; a new one,
 * "rt-" and 32 hex digits of sd_id128_get_machine_app_specific(), which
 * is stable for the machine yet does not disclose /etc/machine-id; a
 * random UUID where there is no machine id (some containers). A generated
 * name is stored, so it survives a new machine-id (cloned images) and
 * upgrades; a configured one is not, so removing the override goes back
 * to the stored name. */

#include <stdbool.h>

#include "macro.h"
#include "sign.h"
#include "token.h"

#define IDENTITY_SIGN_KEY_FILE "device-key.pem"
#define IDENTITY_TOKEN_KEY_FILE "idm-key.pem"
#define IDENTITY_ENDPOINT_FILE "endpoint"
/* What the domain accepts as an endpoint (services/dm.h). */
#define IDENTITY_ENDPOINT_MAX 64

/* Journal: a key or the endpoint name was created (first start, or a
 * state directory that was wiped). */
#define IDENTITY_MESSAGE_ID_CREATED "e911733fdfe2497093f3c713b585969a"

typedef struct identity identity;

/* 1-64 bytes of [A-Za-z0-9._:-], starting with a letter or digit. */
bool identity_endpoint_is_valid(const char *s);

/* Loads or creates everything in state_dir (created 0750 if missing).
 * endpoint: the configured override, or NULL. Each creation is a journal
 * entry. -EKEYREJECTED/-EBADMSG for a key file that holds something else
 * (never overwritten: the device would lose its registration). */
int identity_load(const char *state_dir, const char *endpoint, identity **ret);
identity *identity_free(identity *id);
DEFINE_TRIVIAL_CLEANUP_FUNC(identity *, identity_free);
#define _cleanup_identity_ _cleanup_(identity_freep)

const char *identity_get_endpoint(const identity *id);
/* Where the endpoint came from: "configured", "stored", "machine-id" or
 * "random". */
const char *identity_get_endpoint_source(const identity *id);
const sign_key *identity_get_sign_key(const identity *id);
const token_key *identity_get_token_key(const identity *id);
/* base64url of the raw Ed25519 public key, as POST /dm/rd wants it. */
const char *identity_get_public_key(const identity *id);
/* True when this identity_load() created a key (first start). */
bool identity_is_new(const identity *id);
