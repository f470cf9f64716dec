"""DREAM benefit codes and the groups the contract (shared/REGISTERS.md) gives them.

Each week carries at most one 3-digit code. :data:`CODE_GROUP` maps every known code to a group
name; :func:`group_of` classifies arrays of codes at once. Codes outside the table are unknown and
are quarantined at ingest.
"""

from __future__ import annotations

import numpy as np


def _span(first: int, last: int) -> range:
    return range(first, last + 1)


#: group name -> codes. Groups flagged in :data:`PUBLIC_SUPPORT_GROUPS` count as public support.
GROUPS: dict[str, tuple[int, ...]] = {
    "unemployment_benefit": (*_span(111, 114), *_span(211, 299)),
    "cash_benefit": (*_span(130, 139), *_span(730, 739)),
    "education_benefit": (*_span(140, 149), *_span(720, 729)),
    "integration_benefit": tuple(_span(700, 719)),
    "rehabilitation": (*_span(740, 748), *_span(750, 768)),
    "subsidised_work": (771, 774, 781),
    "disability_pension": (783,),
    "job_clarification": (785, *_span(810, 818)),
    "sickness_benefit": tuple(_span(890, 899)),
    "early_retirement": (621, 622),
    "holiday_benefit": tuple(_span(121, 126)),
    "student_grant": (651, 652, 661),
    "parental_leave": (881,),
    "state_pension": (998,),
    "emigrated": (997,),
    "dead": (999,),
}

PUBLIC_SUPPORT_GROUPS = frozenset({
    "unemployment_benefit", "cash_benefit", "education_benefit", "integration_benefit",
    "rehabilitation", "subsidised_work", "disability_pension", "job_clarification",
    "sickness_benefit", "early_retirement",
})
CENSORING_CODES = frozenset({997, 999})
EDUCATION_EXIT_CODES = frozenset({651, 652})  # SU: a spell that ends here ends in education
STATE_PENSION_CODE = 998

CODE_GROUP: dict[int, str] = {code: group for group, codes in GROUPS.items() for code in codes}
KNOWN_CODES = frozenset(CODE_GROUP)

_MAX_CODE = 1000
_IS_SUPPORT = np.zeros(_MAX_CODE, dtype=bool)
_IS_KNOWN = np.zeros(_MAX_CODE, dtype=bool)
for _code, _group in CODE_GROUP.items():
    _IS_KNOWN[_code] = True
    _IS_SUPPORT[_code] = _group in PUBLIC_SUPPORT_GROUPS


def is_public_support(codes: np.ndarray) -> np.ndarray:
    """Boolean array: the code is a public-support code. 0 (blank) and unknown codes are not."""
    codes = np.asarray(codes)
    valid = (codes >= 0) & (codes < _MAX_CODE)
    return np.where(valid, _IS_SUPPORT[np.clip(codes, 0, _MAX_CODE - 1)], False)


def is_known(codes: np.ndarray) -> np.ndarray:
    """Boolean array: the code appears in the contract's table."""
    codes = np.asarray(codes)
    valid = (codes >= 0) & (codes < _MAX_CODE)
    return np.where(valid, _IS_KNOWN[np.clip(codes, 0, _MAX_CODE - 1)], False)


def group_of(code: int) -> str:
    """Group name of one code; KeyError for an unknown code."""
    return CODE_GROUP[int(code)]
