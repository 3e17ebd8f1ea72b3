"""Hooks of the schemathesis run (.ci/schemathesis.sh).

Tar bodies (PUT /v1/sessions/{id}/archive) go on the wire as the bytes
schemathesis generated for their binary schema: schemathesis has no
serializer of its own for application/x-tar.
"""

import schemathesis


@schemathesis.serializer("application/x-tar")
def tar_bytes(ctx, value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode()
