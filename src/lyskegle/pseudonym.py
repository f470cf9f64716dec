"""Keyed pseudonyms for person numbers (``PNR``) and CPR-shape checks.

A raw CPR number never passes ingest: every person key and person link is replaced by
``HMAC-SHA256(key, normalised PNR)``, written as ``p`` + 16 base32 characters. The base32 alphabet
has no 0, 1, 8 or 9, so a pseudonym can never look like a CPR number to a scanner.

The key comes from the environment (``LYSKEGLE_PSEUDONYM_KEY``, or a file named by
``LYSKEGLE_PSEUDONYM_KEY_FILE`` outside the repository). :data:`DEVELOPMENT_KEY` is accepted only
for a synthetic extract, whose CPR numbers use day-of-month 61-91 and so are never a real person's.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

DEVELOPMENT_KEY = b"lyskegle-development-key-for-synthetic-data-only"
KEY_ENV = "LYSKEGLE_PSEUDONYM_KEY"
KEY_FILE_ENV = "LYSKEGLE_PSEUDONYM_KEY_FILE"
MIN_KEY_BYTES = 16

#: A raw CPR number, with or without the dash. Day 01-31 (real) or 61-91 (synthetic).
CPR_PATTERN = re.compile(r"(?<!\d)(?:[0-2]\d|3[01]|[6-8]\d|9[01])(?:0[1-9]|1[0-2])\d{2}-?\d{4}(?!\d)")
_PNR_SHAPE = re.compile(r"^\d{6}-?\d{4}$")


class PseudonymKeyError(RuntimeError):
    """No usable pseudonymisation key for this extract."""


def normalise_pnr(values: pd.Series) -> pd.Series:
    """Strip white space and the dash of ``DDMMYY-SSSS``; other values are left as they are."""
    text = values.astype("string").str.strip()
    dashed = text.str.fullmatch(r"\d{6}-\d{4}").fillna(False)
    return text.where(~dashed, text.str.replace("-", "", regex=False))


def is_cpr_shaped(values: pd.Series) -> pd.Series:
    """True where a (normalised) value has the 10-digit CPR shape."""
    return values.astype("string").str.fullmatch(r"\d{10}").fillna(False).astype(bool)


def is_synthetic_cpr(values: pd.Series) -> pd.Series:
    """True where a 10-digit value has a synthetic day-of-month (61-91)."""
    day = pd.to_numeric(values.astype("string").str.slice(0, 2), errors="coerce")
    return (is_cpr_shaped(values) & day.between(61, 91)).fillna(False).astype(bool)


def load_key(env: Mapping[str, str] | None = None) -> bytes | None:
    """The key from the environment, or None when none is given."""
    env = os.environ if env is None else env
    if env.get(KEY_ENV):
        key = env[KEY_ENV].encode("utf-8")
    elif env.get(KEY_FILE_ENV):
        key = Path(env[KEY_FILE_ENV]).read_bytes().strip()
    else:
        return None
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(f"the pseudonymisation key must have at least {MIN_KEY_BYTES} bytes")
    return key


def choose_key(given: bytes | None, extract_is_synthetic: bool, allow_development_key: bool) -> bytes:
    """The key to use: a given key always; the development key only for a synthetic extract."""
    if given is not None:
        return given
    if extract_is_synthetic and allow_development_key:
        return DEVELOPMENT_KEY
    raise PseudonymKeyError(
        "this extract is not synthetic, so it needs a real pseudonymisation key: set "
        f"{KEY_ENV} or point {KEY_FILE_ENV} at a key file kept outside the repository"
    )


def pseudonymise(values: pd.Series, key: bytes) -> pd.Series:
    """Keyed pseudonyms of normalised PNR values; missing stays missing.

    Each distinct value is hashed once, so a register with a row per person-year costs one HMAC
    per person.
    """
    normalised = normalise_pnr(values)
    codes, uniques = pd.factorize(normalised, use_na_sentinel=True)
    hashed = np.array(pseudonyms_of_normalised([str(value) for value in uniques], key).to_pylist(), dtype=object)
    out = np.full(len(values), None, dtype=object)
    present = codes >= 0
    out[present] = hashed[codes[present]]
    return pd.Series(out, index=values.index, dtype="string", name=values.name)


_BASE32 = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)


def pseudonyms_of_normalised(values: list[str], key: bytes) -> pa.Array:
    """Pseudonyms of already normalised keys, as an Arrow string array, in bulk.

    HMAC-SHA256 (RFC 2104), written as ``p`` + 16 lower-case base32 characters (the first 80 bits
    of the digest). The keyed hash states are computed once and base32 is vectorised: about eight
    times faster than ``hmac.new`` per value, which matters at a million persons.
    tests/test_pseudonym.py checks it against the standard library's ``hmac``.
    """
    first_80_bits = _first_80_bits(key)
    digests = b"".join(first_80_bits(value) for value in values)
    bits = np.unpackbits(np.frombuffer(digests, dtype=np.uint8).reshape(-1, 10), axis=1)
    groups = bits.reshape(-1, 16, 5) @ np.array([16, 8, 4, 2, 1], dtype=np.uint8)
    text = np.empty((len(values), 17), dtype=np.uint8)
    text[:, 0] = ord("p")
    text[:, 1:] = _BASE32[groups]
    offsets = np.arange(0, 17 * (len(values) + 1), 17, dtype=np.int32)
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def pseudonym_of_normalised(value: str, key: bytes) -> str:
    """:func:`pseudonyms_of_normalised` of one value (base32 as RFC 4648 spells it, lower case)."""
    return "p" + base64.b32encode(_first_80_bits(key)(value)).decode("ascii").lower()


@functools.lru_cache(maxsize=4)
def _first_80_bits(key: bytes) -> Callable[[str], bytes]:
    """The first 80 bits of HMAC-SHA256(key, value), with the keyed hash states computed once."""
    block = key if len(key) <= 64 else hashlib.sha256(key).digest()
    block = block.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def first_80_bits(value: str) -> bytes:
        inside = inner.copy()
        inside.update(value.encode("utf-8"))
        outside = outer.copy()
        outside.update(inside.digest())
        return outside.digest()[:10]

    return first_80_bits


def find_cpr_numbers(text: str) -> list[str]:
    """CPR-shaped numbers in a text (used by the privacy scan)."""
    return CPR_PATTERN.findall(text)
