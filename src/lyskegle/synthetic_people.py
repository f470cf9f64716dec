"""The residents of the synthetic extract: households, family links and the person table.

Persons live in parallel numpy arrays (:class:`People`), one slot per person ever created, so that
millions of persons cost a few hundred bytes each and every yearly step is vectorised.
:func:`new_households` creates households of the profile of an area kind (Vollsmose-like, social
housing, ordinary) with partners, children, origin, citizenship and planned education.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from lyskegle.countries import DENMARK, NON_WESTERN_COUNTRIES, WESTERN_COUNTRIES

DAYS_PER_YEAR = 365.25
EPOCH = np.datetime64("1970-01-01", "D")

#: Country codes the generator draws from; index 0 is Denmark.
COUNTRIES = (DENMARK, *sorted(WESTERN_COUNTRIES), *sorted(NON_WESTERN_COUNTRIES))
COUNTRY_INDEX = {code: index for index, code in enumerate(COUNTRIES)}
IS_NON_WESTERN = np.array([code in NON_WESTERN_COUNTRIES for code in COUNTRIES])
IS_WESTERN = np.array([code in WESTERN_COUNTRIES for code in COUNTRIES])

# Household profile of each area kind: shares of single adults, couples, couples with children and
# single parents, the mean number of extra children, and the shares of non-Western and Western
# households. Calibrated so the Vollsmose-like area has households of 2.5 persons with 36 % living
# alone and 72 % immigrants or descendants (67 % non-Western), and ordinary areas 2.0 and 41 %.
HOUSEHOLD_PROFILE: dict[str, tuple[float, float, float, float, float, float, float]] = {
    "vollsmose_like": (0.36, 0.13, 0.37, 0.14, 1.05, 0.68, 0.05),
    "vaerebro_like": (0.40, 0.15, 0.30, 0.15, 0.90, 0.55, 0.05),
    "social_housing": (0.40, 0.17, 0.28, 0.15, 0.80, 0.40, 0.05),
    "ordinary": (0.41, 0.30, 0.22, 0.07, 0.70, 0.05, 0.04),
}
MEAN_HOUSEHOLD = {
    kind: single + 2 * couple + (3 + extra) * with_children + (2 + extra) * single_parent
    for kind, (single, couple, with_children, single_parent, extra, _, _) in HOUSEHOLD_PROFILE.items()
}

#: Non-Western countries of origin in the Vollsmose-like area and elsewhere (weights by code).
NON_WESTERN_WEIGHTS_SOCIAL = {"5522": 0.20, "5484": 0.22, "5422": 0.18, "5454": 0.12, "5496": 0.08,
                              "5652": 0.08, "5432": 0.06, "5466": 0.06}
NON_WESTERN_WEIGHTS_ORDINARY = {"5522": 0.06, "5484": 0.08, "5422": 0.12, "5454": 0.22, "5496": 0.12,
                                "5652": 0.08, "5432": 0.14, "5466": 0.18}
WESTERN_WEIGHTS = {"5110": 0.2, "5120": 0.2, "5170": 0.15, "5180": 0.25, "5154": 0.2}

# Highest education a person will complete (DISCED main groups) and the age at which it is done.
EDUCATION_GROUPS = np.array([10, 20, 30, 40, 50, 60, 70, 80], dtype=np.int8)
COMPLETION_AGE = {10: 16, 20: 19, 30: 21, 40: 23, 50: 24, 60: 23, 70: 26, 80: 30}
#: The same as an array indexed by the group (0 elsewhere), for vectorised look-ups.
COMPLETION_AGE_BY_GROUP = np.zeros(81, dtype=np.int16)
COMPLETION_AGE_BY_GROUP[list(COMPLETION_AGE)] = list(COMPLETION_AGE.values())
EDUCATION_SHARES = {
    "danish": (0.17, 0.09, 0.33, 0.05, 0.19, 0.04, 0.12, 0.01),
    "danish_social": (0.58, 0.09, 0.22, 0.03, 0.05, 0.01, 0.02, 0.00),
    "non_western_immigrant": (0.80, 0.05, 0.06, 0.02, 0.04, 0.01, 0.02, 0.00),
    "western_immigrant": (0.20, 0.12, 0.25, 0.06, 0.17, 0.05, 0.14, 0.01),
    "grown_up_social": (0.42, 0.14, 0.22, 0.05, 0.11, 0.03, 0.03, 0.00),
}


@dataclass
class People:
    """One slot per person ever created. Indices link persons (-1: nobody).

    Dates are days since 1970-01-01 (int32); ``country``/``citizenship`` index :data:`COUNTRIES`.
    """

    birth: np.ndarray
    sex: np.ndarray            # 1 man, 2 woman
    origin_type: np.ndarray    # IE_TYPE 1/2/3
    country: np.ndarray
    citizenship: np.ndarray
    arrival_year: np.ndarray   # immigrants: year of arrival in Denmark, else 0
    mother: np.ndarray
    father: np.ndarray
    partner: np.ndarray
    married: np.ndarray
    widowed: np.ndarray
    family: np.ndarray
    dwelling: np.ndarray       # -1: not living in the extract's area
    moved_in: np.ndarray
    present_from: np.ndarray   # day the person enters the extract (birth or arrival)
    education: np.ndarray      # highest education the person will complete (DISCED group)
    education_code: np.ndarray  # the 4-digit HFAUDD of that education
    wage_factor: np.ndarray
    school_draw: np.ndarray    # uniform draw fixing class letter and school choice
    serial: np.ndarray         # CPR serial SSSS (odd for men, even for women)

    def __len__(self) -> int:
        return len(self.birth)

    @classmethod
    def empty(cls) -> "People":
        return cls(**{f.name: np.zeros(0, dtype=_DTYPES[f.name]) for f in fields(cls)})

    def append(self, other: "People") -> np.ndarray:
        """Append ``other`` in place; returns the new persons' indices."""
        first = len(self)
        for f in fields(self):
            setattr(self, f.name, np.concatenate([getattr(self, f.name), getattr(other, f.name)]))
        return np.arange(first, len(self))


_DTYPES = {
    "birth": np.int32, "sex": np.int8, "origin_type": np.int8, "country": np.int16,
    "citizenship": np.int16, "arrival_year": np.int16, "mother": np.int32, "father": np.int32,
    "partner": np.int32, "married": bool, "widowed": bool, "family": np.int32, "dwelling": np.int32,
    "moved_in": np.int32, "present_from": np.int32, "education": np.int8, "education_code": np.int16,
    "wage_factor": np.float32, "school_draw": np.float32, "serial": np.int16,
}


def day_number(year: int, month: int = 1, day: int = 1) -> int:
    return int((np.datetime64(f"{year:04d}-{month:02d}-{day:02d}", "D") - EPOCH).astype(int))


def age_at(birth: np.ndarray, day: int) -> np.ndarray:
    """Whole years of age at ``day`` (approximate: 365.25-day years)."""
    return np.floor((day - birth) / DAYS_PER_YEAR).astype(np.int16)


def draw_country(weights: dict[str, float], n: int, rng: np.random.Generator) -> np.ndarray:
    codes = list(weights)
    p = np.array([weights[c] for c in codes])
    return np.array([COUNTRY_INDEX[c] for c in codes], dtype=np.int16)[rng.choice(len(codes), n, p=p / p.sum())]


def draw_education(kind: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Planned education per person from ``kind`` (index into :data:`EDUCATION_SHARES`'s keys)."""
    shares = np.array(list(EDUCATION_SHARES.values()))
    cumulative = np.cumsum(shares, axis=1)
    cumulative[:, -1] = 1.0
    u = rng.random(len(kind))
    level = (u[:, None] > cumulative[kind]).sum(axis=1)
    group = EDUCATION_GROUPS[level]
    # HFAUDD: the group's two digits then a programme number (opaque to the pipeline).
    code = group.astype(np.int16) * 100 + rng.choice(np.array([10, 20, 35, 50]), len(kind)).astype(np.int16)
    return group, code


EDUCATION_KIND = {name: index for index, name in enumerate(EDUCATION_SHARES)}


def new_households(
    kind: str, count: int, dwellings: np.ndarray, year: int, first_family: int,
    newly_arrived_share: float, rng: np.random.Generator,
) -> People:
    """``count`` households of an area ``kind``'s profile, one in each of ``dwellings``.

    Returns the persons, with links (``mother``, ``father``, ``partner``) as indices *within* the
    returned block (the caller shifts them); ``family`` numbered from ``first_family``. Immigrant
    households arrived in Denmark before ``year``, or during it with ``newly_arrived_share``.
    """
    single, couple, with_children, single_parent, extra, non_western, western = HOUSEHOLD_PROFILE[kind]
    social = kind != "ordinary"
    household_type = rng.choice(4, count, p=np.array([single, couple, with_children, single_parent]))
    has_children = household_type >= 2
    n_children = np.where(has_children, 1 + np.minimum(rng.poisson(extra, count), 6), 0)
    n_adults = np.where((household_type == 1) | (household_type == 2), 2, 1)
    size = n_adults + n_children
    household = np.repeat(np.arange(count), size)
    rank = np.arange(len(household)) - np.repeat(np.cumsum(size) - size, size)
    is_adult = rank < n_adults[household]
    is_second_adult = (rank == 1) & (n_adults[household] == 2)
    n = len(household)

    # Origin is a household trait: non-Western, Western or Danish.
    origin = rng.choice(3, count, p=np.array([1 - non_western - western, western, non_western]))
    weights = NON_WESTERN_WEIGHTS_SOCIAL if social else NON_WESTERN_WEIGHTS_ORDINARY
    household_country = np.zeros(count, dtype=np.int16)
    household_country[origin == 2] = draw_country(weights, int((origin == 2).sum()), rng)
    household_country[origin == 1] = draw_country(WESTERN_WEIGHTS, int((origin == 1).sum()), rng)

    # Ages: the first adult's age by household type; partners close to it; children below the mother.
    young = 0.5 if kind == "vollsmose_like" else (0.3 if social else 0.0)
    head_age = np.select(
        [household_type == 0, household_type == 1, household_type >= 2],
        [20 + (75 - 25 * young) * rng.beta(1.2 + 0.5 * young, 1.3 + 1.2 * young, count),
         23 + (62 - 15 * young) * rng.beta(2.0, 1.5 + 0.8 * young, count),
         22 + 30 * rng.beta(2.0, 2.0 + 0.6 * young, count)],
    )
    partner_gap = rng.normal(2.0, 3.0, count)
    child_age = np.minimum(rng.random(n) * np.maximum(head_age[household] - 19, 1), 24)
    age = np.where(is_adult, head_age[household] + np.where(is_second_adult, partner_gap[household], 0), child_age)
    age = np.clip(age, 0, 99)
    year_start = day_number(year)
    birth = (year_start - age * DAYS_PER_YEAR - rng.random(n) * 30).astype(np.int32)

    # The first adult of a couple is the man, of a single-parent household most often the woman.
    sex = rng.choice(np.array([1, 2], dtype=np.int8), n)
    first_adult_is_man = np.where(household_type == 3, rng.random(count) < 0.15, household_type != 0)
    sex = np.where(is_adult & ~is_second_adult, np.where(first_adult_is_man[household], 1, 2), sex)
    sex = np.where(is_second_adult, np.where(first_adult_is_man[household], 2, 1), sex).astype(np.int8)

    # Links inside the block: partners, and children to their parents.
    start = np.cumsum(size) - size
    first_adult = start[household]
    second_adult = np.where(n_adults[household] == 2, first_adult + 1, -1)
    mother_of_household = np.where(sex[start] == 2, start, np.where(n_adults == 2, start + 1, -1))
    father_of_household = np.where(sex[start] == 1, start, np.where(n_adults == 2, start + 1, -1))
    mother = np.where(is_adult, -1, mother_of_household[household]).astype(np.int32)
    father = np.where(is_adult, -1, father_of_household[household]).astype(np.int32)
    partner = np.where(is_adult & (n_adults[household] == 2),
                       np.where(is_second_adult, first_adult, second_adult), -1).astype(np.int32)
    married = (partner >= 0) & (rng.random(count) < 0.7)[household]

    # Immigrants came as adults some years ago (or this year); children born after came as descendants.
    country = household_country[household]
    foreign = origin[household] > 0
    years_here = np.where(rng.random(count) < newly_arrived_share, 0,
                          np.floor(rng.random(count) * np.minimum(np.maximum(head_age - 18, 1), 30)))
    arrival_year = np.where(foreign, year - years_here[household], 0).astype(np.int16)
    born_here = age < (year - arrival_year)
    origin_type = np.where(~foreign, 1, np.where(~is_adult & born_here, 3, 2)).astype(np.int8)
    arrival_year = np.where(origin_type == 2, arrival_year, 0).astype(np.int16)
    naturalised = np.where(origin_type == 3, rng.random(n) < 0.7, (rng.random(n) < 0.3) & (years_here[household] >= 9))
    citizenship = np.where(foreign & ~naturalised, country, 0).astype(np.int16)

    danish_kind = EDUCATION_KIND["danish_social" if social else "danish"]
    education_kind = np.where(
        ~is_adult | (origin_type == 3), EDUCATION_KIND["grown_up_social"] if social else EDUCATION_KIND["danish"],
        np.where(origin_type == 1, danish_kind,
                 np.where(IS_NON_WESTERN[country], EDUCATION_KIND["non_western_immigrant"],
                          EDUCATION_KIND["western_immigrant"])),
    )
    education, education_code = draw_education(education_kind, rng)

    moved_in = year_start - (np.minimum(age, rng.random(n) * 15) * DAYS_PER_YEAR).astype(np.int32)
    moved_in = np.maximum(moved_in, birth)
    return People(
        birth=birth, sex=sex, origin_type=origin_type, country=country.astype(np.int16),
        citizenship=citizenship, arrival_year=arrival_year, mother=mother, father=father,
        partner=partner, married=married, widowed=np.zeros(n, dtype=bool),
        family=(first_family + household).astype(np.int32),
        dwelling=dwellings[household].astype(np.int32), moved_in=moved_in.astype(np.int32),
        present_from=birth.copy(), education=education, education_code=education_code,
        wage_factor=rng.lognormal(0.0, 0.25, n).astype(np.float32),
        school_draw=rng.random(n, dtype=np.float32), serial=np.zeros(n, dtype=np.int16),
    )


def shift_links(block: People, offset: int) -> People:
    """Links of a block made by :func:`new_households` turned into indices of the whole table."""
    for name in ("mother", "father", "partner"):
        values = getattr(block, name)
        setattr(block, name, np.where(values >= 0, values + offset, -1).astype(np.int32))
    return block


class SerialCounter:
    """Hands out CPR serial numbers: unique per ``DDMMYY`` and sex, odd for men and even for women."""

    def __init__(self) -> None:
        self._used = np.zeros(31 * 12 * 100 * 2, dtype=np.int32)

    def assign(self, birth: np.ndarray, sex: np.ndarray) -> np.ndarray:
        date = EPOCH + birth.astype("timedelta64[D]")
        day = (date - date.astype("datetime64[M]")).astype(int)
        month = date.astype("datetime64[M]").astype(int) % 12
        yy = (date.astype("datetime64[Y]").astype(int) + 1970) % 100
        key = ((day * 12 + month) * 100 + yy) * 2 + (sex - 1)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        first = np.searchsorted(sorted_key, sorted_key, side="left")
        rank = np.empty(len(key), dtype=np.int64)
        rank[order] = np.arange(len(key)) - first
        number = self._used[key] + rank
        np.add.at(self._used, key, 1)
        if len(number) and number.max() >= 5000:
            raise ValueError("too many synthetic persons share a birth date: CPR serials exhausted")
        return (2 * number + (sex == 1)).astype(np.int16)


def pnr_numbers(people: People, index: np.ndarray) -> np.ndarray:
    """Synthetic CPR numbers ``DDMMYYSSSS`` as int64, with day-of-month + 60 (so 61-91)."""
    date = EPOCH + people.birth[index].astype("timedelta64[D]")
    day = (date - date.astype("datetime64[M]")).astype(np.int64) + 1 + 60
    month = date.astype("datetime64[M]").astype(np.int64) % 12 + 1
    yy = (date.astype("datetime64[Y]").astype(np.int64) + 1970) % 100
    return ((day * 100 + month) * 100 + yy) * 10_000 + people.serial[index].astype(np.int64)
