import base64
import hashlib
import hmac

import pandas as pd
import pytest

from lyskegle.pseudonym import (
    DEVELOPMENT_KEY,
    PseudonymKeyError,
    choose_key,
    find_cpr_numbers,
    is_synthetic_cpr,
    load_key,
    normalise_pnr,
    pseudonymise,
    pseudonyms_of_normalised,
)


def reference(value: str, key: bytes) -> str:
    """The pseudonym written out with the standard library, as the module docstring defines it."""
    digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).digest()
    return "p" + base64.b32encode(digest[:10]).decode("ascii").lower()


@pytest.mark.parametrize("key", [DEVELOPMENT_KEY, b"another key of enough bytes", b"k" * 100])
def test_bulk_pseudonyms_are_hmac_sha256_in_base32(key):
    values = ["6101701234", "6203851235", "A17", "0123", "\u00e6\u00f8\u00e5"]
    assert pseudonyms_of_normalised(values, key).to_pylist() == [reference(v, key) for v in values]


def test_pseudonymise_normalises_the_dash_and_keeps_missing_values_missing():
    out = pseudonymise(pd.Series(["610170-1234", "6101701234", None]), DEVELOPMENT_KEY)
    assert out[0] == out[1] == reference("6101701234", DEVELOPMENT_KEY)
    assert pd.isna(out[2])


def test_a_pseudonym_never_looks_like_a_cpr_number():
    values = [f"61{m:02d}70{s:04d}" for m in range(1, 13) for s in range(0, 400, 7)]
    text = " ".join(pseudonyms_of_normalised(values, DEVELOPMENT_KEY).to_pylist())
    assert find_cpr_numbers(text) == []
    assert find_cpr_numbers("x 610170-1234 y 0101701234") == ["610170-1234", "0101701234"]


def test_normalise_and_synthetic_day():
    assert normalise_pnr(pd.Series([" 610170-1234 "])).tolist() == ["6101701234"]
    assert is_synthetic_cpr(pd.Series(["6101701234", "0101701234", "x"])).tolist() == [True, False, False]


def test_the_development_key_is_only_for_a_synthetic_extract():
    assert choose_key(None, extract_is_synthetic=True, allow_development_key=True) == DEVELOPMENT_KEY
    with pytest.raises(PseudonymKeyError, match="LYSKEGLE_PSEUDONYM_KEY"):
        choose_key(None, extract_is_synthetic=False, allow_development_key=True)
    assert choose_key(b"given key of 16 bytes", extract_is_synthetic=False, allow_development_key=True) == b"given key of 16 bytes"


def test_a_short_key_is_refused(tmp_path):
    with pytest.raises(PseudonymKeyError, match="16 bytes"):
        load_key({"LYSKEGLE_PSEUDONYM_KEY": "short"})
    key_file = tmp_path / "key"
    key_file.write_text("a key read from a file outside the repo\n")
    assert load_key({"LYSKEGLE_PSEUDONYM_KEY_FILE": str(key_file)}) == b"a key read from a file outside the repo"
