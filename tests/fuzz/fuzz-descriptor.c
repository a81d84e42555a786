/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "descriptor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_descriptor_ descriptor *d = NULL;
        _cleanup_free_ char *reason = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE], sig[SIGN_SIGNATURE_SIZE];

        if (descriptor_parse(data, size, &d, &reason) < 0)
                return 0;
        /* Touch everything an accepted descriptor hands out. */
        (void) descriptor_kind_to_string(descriptor_get_kind(d));
        (void) strlen(descriptor_get_name(d));
        (void) strlen(descriptor_get_version(d));
        (void) strlen(descriptor_get_sha256(d));
        (void) strlen(descriptor_get_publisher(d));
        if (descriptor_get_source_package_url(d))
                (void) strlen(descriptor_get_source_package_url(d));
        descriptor_get_digest(d, digest);
        descriptor_get_signature(d, sig);
        return 0;
}
