"""Country codes (CPR's 4-digit codes, as in ``OPR_LAND`` and ``STATSB``) and DST's origin groups.

DST counts as *Western* the EU countries, Andorra, Iceland, Liechtenstein, Monaco, Norway, San
Marino, Switzerland, the Vatican, Canada, the USA, Australia and New Zealand; every other country is
*non-Western*. The synthetic extract uses only the codes below, so :data:`NON_WESTERN_COUNTRIES`
is complete for it; a real extract needs DST's full table in its place.
"""

from __future__ import annotations

DENMARK = "5100"

#: code -> Danish name, for the codes the synthetic extract uses.
COUNTRY_NAMES: dict[str, str] = {
    DENMARK: "Danmark",
    "5110": "Norge",
    "5120": "Sverige",
    "5170": "Storbritannien",
    "5180": "Tyskland",
    "5154": "Polen",
    "5422": "Irak",
    "5432": "Iran",
    "5454": "Tyrkiet",
    "5466": "Pakistan",
    "5484": "Libanon",
    "5496": "Syrien",
    "5522": "Somalia",
    "5652": "Afghanistan",
}

WESTERN_COUNTRIES: frozenset[str] = frozenset({"5110", "5120", "5170", "5180", "5154"})
NON_WESTERN_COUNTRIES: frozenset[str] = frozenset(
    code for code in COUNTRY_NAMES if code != DENMARK and code not in WESTERN_COUNTRIES
)


def origin_group(country: str) -> str:
    """``danish``, ``western`` or ``non_western`` for a 4-digit country code (unknown: non-Western)."""
    if country == DENMARK:
        return "danish"
    return "western" if country in WESTERN_COUNTRIES else "non_western"
