"""Run ids: opaque, URL-safe and time-ordered, so "newest first" is "highest id first"."""

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_run_id() -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, as 26 characters."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))
