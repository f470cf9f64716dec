"""A synthetic register extract in the contract's shape (shared/REGISTERS.md), and its ground truth.

:class:`SyntheticExtract` runs the simulated municipality (:class:`lyskegle.synthetic_world.World`)
year by year and hands out the registers as ``(stem, frame)`` pieces, in this order: per year
``befYYYY`` (residents at 1 January), ``idanYYYY``, ``uddaYYYY``, ``indYYYY``, ``grundskoleYYYY``,
``krafYYYY``; then ``adresser`` and ``dream``. ``dream`` comes as several consecutive pieces (rows of
persons, same columns) that together make one file, so 6,000,000 persons never need one frame.

Frames hold the raw register columns with pyarrow-backed dtypes: ids and codes as strings, dates as
``date32``, DREAM weeks ``y_YYWW`` as nullable int16 (null = blank week) and months
``branche_YYYY_MM`` as nullable int32 industry codes (non-null = had work that month). PNRs are
synthetic CPR numbers (day-of-month + 60). Once the pieces are exhausted, :attr:`SyntheticExtract.truth`
holds the planted effects; no pipeline stage may read it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lyskegle.calendar import dream_month_column, dream_week_column, iso_week_index, iso_weeks_in_year, month_of_week
from lyskegle.config import SynthesizeParams
from lyskegle.countries import COUNTRY_NAMES, NON_WESTERN_COUNTRIES
from lyskegle.synthetic_housing import (
    AREA_KINDS, DOOR_NAMES, VAEREBRO_DWELLINGS, VOLLSMOSE_RESIDENTS, vaerebro_blocks,
)
from lyskegle.synthetic_people import COMPLETION_AGE_BY_GROUP, COUNTRIES, age_at, day_number
from lyskegle.synthetic_world import (
    CODE_OF_STATE, DEAD, EMIGRATED, EMPLOYED, EXIT_AGE_PER_DECADE_OVER_30, EXIT_BASE, EXIT_BASIC_EDUCATION,
    EXIT_HIGHER_EDUCATION, EXIT_PRIOR_SUPPORT_SHARE, INDUSTRIES, JOB_CATEGORY, LAYERS, OFFENCE_SHARES, OFFENCES,
    SUBGROUP_CITIZENSHIPS, SUBGROUP_ENTRY_LOG_ODDS, WEEKLY_TRANSFER, WIDER_GROUP_ENTRY_LOG_ODDS, WEEKLY_WAGE, World,
)

log = logging.getLogger(__name__)

#: The published profile of Vollsmose (DOMAIN.md) that the Vollsmose-like area is calibrated to.
VOLLSMOSE_TARGET = {
    "mean_age": 31.3, "municipality_mean_age": 39.2, "share_under_50": 0.80,
    "mean_household_size": 2.5, "municipality_mean_household_size": 2.0,
    "share_households_living_alone": 0.36, "municipality_share_households_living_alone": 0.41,
    "share_immigrants_or_descendants": 0.72, "share_non_western": 0.67,
    "share_adults_employed": 1 / 3, "share_adults_on_cash_benefit_or_disability_pension": 0.40,
    "share_18_64_outside_work_and_education": 0.496, "share_30_59_basic_education_only": 0.772,
    "residents": VOLLSMOSE_RESIDENTS,
}
CIVIL_STATUS = pa.array(["U", "G", "E"])  # unmarried, married, widowed
LETTERS = pa.array(list("abcdefghijklmnopqrstuvwxyz"))
GRUNDSKOLE_CLASS_SIZE = 24
SECONDARY_JOB_SHARE = 0.07
OUTSIDE_SCHOOL_SHARE = 0.35  # pupils of social-housing areas at a school outside the area


def _strings(prefix: str, numbers: np.ndarray, width: int, valid: np.ndarray | None = None) -> pa.Array:
    """``prefix`` + zero-padded numbers as an Arrow string array (null where not ``valid``)."""
    text = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string()), width, "0")
    if prefix:
        text = pc.binary_join_element_wise(pa.scalar(prefix), text, "")
    if valid is None:
        return text
    return pc.if_else(pa.array(np.asarray(valid, dtype=bool)), text, pa.nulls(len(text), pa.string()))


def _pnr(world: World, index: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    return _strings("", world.pnr(np.maximum(index, 0)), 10, valid)


def _dates(days: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.int32()).cast(pa.date32())


def _take(values: list[str] | pa.Array, index: np.ndarray) -> pa.Array:
    return pc.take(pa.array(values) if isinstance(values, list) else values, pa.array(np.asarray(index, dtype=np.int64)))


def _frame(columns: dict[str, pa.Array]) -> pd.DataFrame:
    return pa.table(columns).to_pandas(types_mapper=pd.ArrowDtype)


class SyntheticExtract:
    """The synthetic extract for ``params``: iterate :meth:`pieces`, then read :attr:`truth`."""

    def __init__(self, params: SynthesizeParams) -> None:
        self.params = params
        self.truth: dict | None = None

    def pieces(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """``(stem, frame)`` for every register file, in the order described in the module."""
        p = self.params
        log.info("synthesize: building %s persons' municipality (seed %s)", p.persons, p.seed)
        world = World(p)
        subgroup_size: dict[str, int] = {}
        for year in range(p.first_year, p.last_year + 1):
            yield f"bef{year}", bef_frame(world, year)
            block = world.simulate_year(year)
            subgroup_size[str(year)] = int(world.last_subgroup.sum())
            yield f"idan{year}", idan_frame(world, year)
            yield f"udda{year}", udda_frame(world, year)
            yield f"ind{year}", ind_frame(world, year, block)
            yield f"grundskole{year}", grundskole_frame(world, year)
            yield f"kraf{year}", kraf_frame(world, year)
            world.end_year(year)
            log.info("synthesize: %s simulated (%s persons so far)", year, len(world.people))
        yield "adresser", adresser_frame(world)
        for first in range(0, len(world.people), p.dream_chunk_persons):
            yield "dream", dream_frame(world, first, min(len(world.people), first + p.dream_chunk_persons))
        self.truth = ground_truth(world, subgroup_size)


def bef_frame(world: World, year: int) -> pd.DataFrame:
    """Residents at 1 January of ``year`` (``befYYYY``)."""
    people = world.people
    index = np.flatnonzero(people.dwelling >= 0)
    dwelling = people.dwelling[index]
    partner, mother, father = people.partner[index], people.mother[index], people.father[index]
    civil = np.where((partner >= 0) & people.married[index], 1, np.where(people.widowed[index], 2, 0))
    return _frame({
        "PNR": _pnr(world, index),
        "FOED_DAG": _dates(people.birth[index]),
        "KOEN": pa.array(people.sex[index]),
        "IE_TYPE": pa.array(people.origin_type[index]),
        "OPR_LAND": _take(list(COUNTRIES), people.country[index]),
        "STATSB": _take(list(COUNTRIES), people.citizenship[index]),
        "KOM": _take(list(world.housing.municipalities), world.dwelling_municipality[dwelling]),
        "ADRESSE_ID": _strings("A", dwelling, 9),
        "BOP_VFRA": _dates(people.moved_in[index]),
        "FAMILIE_ID": _strings("F", people.family[index], 9),
        "E_FAELLE_ID": _pnr(world, partner, partner >= 0),
        "MOR_ID": _pnr(world, mother, mother >= 0),
        "FAR_ID": _pnr(world, father, father >= 0),
        "CIVST": _take(CIVIL_STATUS, civil),
    })


def idan_frame(world: World, year: int) -> pd.DataFrame:
    """Jobs in November of ``year``: a primary job (``H``) per employed person, some secondary (``B``)."""
    rng = world.rng
    primary = np.flatnonzero(world.employed_november)
    secondary = primary[rng.random(len(primary)) < SECONDARY_JOB_SHARE]
    person = np.concatenate([primary, secondary])
    workplace = np.concatenate([world.workplace[primary], world.new_workplaces(len(secondary))])
    job_type = np.concatenate([np.zeros(len(primary), dtype=np.int8), np.ones(len(secondary), dtype=np.int8)])
    order = np.lexsort((job_type, person))
    person, workplace, job_type = person[order], workplace[order], job_type[order]
    education = world.attained_education(day_number(year, 11, 1))[person]
    return _frame({
        "PNR": _pnr(world, person),
        "ARBNR": _strings("1", workplace, 7),
        "CVRNR": _strings("3", world.workplace_firm[workplace], 7),
        "TYPE": _take(["H", "B"], job_type),
        "JOBKAT": _take([JOB_CATEGORY.get(g, "9") for g in range(81)], education),
    })


def udda_frame(world: World, year: int) -> pd.DataFrame:
    """Highest completed education at 1 October of ``year`` for persons aged 16 or more."""
    people = world.people
    day = day_number(year, 10, 1)
    attained = world.attained_education(day)
    present = (people.present_from <= day) & ~world.gone & ~np.isin(world.state, [DEAD, EMIGRATED])
    index = np.flatnonzero(present & (attained > 0))
    group = attained[index]
    final = group == people.education[index]
    code = np.where(final, people.education_code[index], group.astype(np.int16) * 100 + 10)
    finished = (people.birth[index] + COMPLETION_AGE_BY_GROUP[group] * 365.25).astype("datetime64[D]")
    since = finished.astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64) + 180  # end of June
    return _frame({
        "PNR": _pnr(world, index),
        "HFAUDD": _strings("", code, 4),
        "HF_VFRA": _dates(np.minimum(since, day)),
    })


def ind_frame(world: World, year: int, block: np.ndarray) -> pd.DataFrame:
    """Income of ``year`` for residents at 1 January aged 15 or more, from the year's DREAM weeks."""
    people, rng = world.people, world.rng
    day = day_number(year)
    index = np.flatnonzero((people.dwelling >= 0) & (people.present_from <= day) & (age_at(people.birth, day) >= 15))
    weeks = block[:, index]
    transfers = np.zeros(len(index))
    for state in np.flatnonzero(WEEKLY_TRANSFER):
        transfers += (weeks == state).sum(axis=0) * WEEKLY_TRANSFER[state]
    wage_per_week = np.zeros(81)
    for group, wage in WEEKLY_WAGE.items():
        wage_per_week[group] = wage
    attained = world.attained_education(day)[index]
    wage = (weeks == EMPLOYED).sum(axis=0) * wage_per_week[attained] * people.wage_factor[index]
    total = wage + transfers + rng.gamma(0.5, 6000.0, len(index))
    disposable = total * 0.63 - rng.gamma(1.0, 2000.0, len(index))
    return _frame({
        "PNR": _pnr(world, index),
        "PERINDKIALT_13": pa.array(np.round(total, 2)),
        "LOENMV_13": pa.array(np.round(wage, 2)),
        "DISPON_13": pa.array(np.round(disposable, 2)),
    })


def grundskole_frame(world: World, year: int) -> pd.DataFrame:
    """Pupils of the school year starting in August ``year``: school, class, grade 0-9."""
    people, housing = world.people, world.housing
    day = day_number(year, 8, 1)
    birth_year = (people.birth.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970)
    grade = year - birth_year - 6
    index = np.flatnonzero((people.dwelling >= 0) & (grade >= 0) & (grade <= 9) & (people.present_from <= day)
                           & ~np.isin(world.state, [DEAD, EMIGRATED]))
    dwelling = people.dwelling[index]
    area = world.dwelling_area[dwelling]
    draw = people.school_draw[index]
    ordinary = AREA_KINDS.index("ordinary")
    outside = (world.dwelling_kind[dwelling] != ordinary) & (draw < OUTSIDE_SCHOOL_SHARE)
    school_area = np.where(outside, world.ordinary_area_of_municipality[world.dwelling_municipality[dwelling]], area)
    school = world.area_first_school[school_area] + housing.dwelling_stairwell[dwelling] % world.area_schools[school_area]
    grade = grade[index]
    key = school * 10 + grade
    unique, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    n_classes = np.ceil(counts / GRUNDSKOLE_CLASS_SIZE).astype(np.int64)[inverse]
    letter = np.minimum((draw * 7 % 1 * n_classes).astype(np.int64), n_classes - 1)
    world.class_group[index] = school * 100_000 + birth_year[index] % 100 * 100 + letter
    return _frame({
        "PNR": _pnr(world, index),
        "INSTNR": _strings("", 280_000 + school, 6),
        "KL_BETEGNELSE": pc.binary_join_element_wise(pc.cast(pa.array(grade), pa.string()), _take(LETTERS, letter), ""),
        "KL_TYPE": pa.array(np.full(len(index), 40, dtype=np.int16)),
        "KLASSETRIN": pa.array(grade.astype(np.int8)),
    })


def kraf_frame(world: World, year: int) -> pd.DataFrame:
    """Convictions decided in ``year`` (PNR written ``DDMMYY-SSSS``, as some extracts do)."""
    people, rng = world.people, world.rng
    day = day_number(year)
    age = age_at(people.birth, day)
    resident = (people.dwelling >= 0) & (age >= 15)
    young, man = age < 30, people.sex == 1
    rate = np.where(man, np.where(young, 0.05, 0.02), np.where(young, 0.012, 0.006))
    kind = world.dwelling_kind[np.maximum(people.dwelling, 0)]
    rate = rate * np.where(kind == 0, 2.0, np.where(kind < AREA_KINDS.index("ordinary"), 1.6, 1.0))
    count = np.where(resident, rng.poisson(rate), 0)
    person = np.repeat(np.arange(len(people)), count)
    date = day + rng.integers(0, 365, len(person))
    order = np.lexsort((date, person))
    person, date = person[order], date[order]
    pnr = _pnr(world, person)
    dashed = pc.binary_join_element_wise(pc.utf8_slice_codeunits(pnr, 0, 6), pc.utf8_slice_codeunits(pnr, 6, 10), "-")
    offence = rng.choice(len(OFFENCES), len(person), p=OFFENCE_SHARES)
    return _frame({
        "PNR": dashed,
        "AFG_DATO": _dates(date),
        "AFG_ART": _take(list(OFFENCES), offence),
    })


def adresser_frame(world: World) -> pd.DataFrame:
    """Every dwelling with its stairwell, building, housing area (blank: ordinary), floor and door."""
    h = world.housing
    dwelling = np.arange(len(h.dwelling_stairwell))
    building = h.dwelling_building
    codes = [a.code for a in h.areas]
    floor = h.dwelling_floor.astype(np.int64)
    return _frame({
        "ADRESSE_ID": _strings("A", dwelling, 9),
        "ADGANGSADRESSE_ID": stairwell_ids(h.dwelling_stairwell),
        "BYGNING_ID": _strings("B", building, 8),
        "OMRAADE": _take(codes, h.building_area[building]),
        "ETAGE": pc.if_else(pa.array(floor == 0), pa.scalar("st"), pc.cast(pa.array(floor), pa.string())),
        "DOER": _take(list(DOOR_NAMES), h.dwelling_door),
    })


def stairwell_ids(stairwell: np.ndarray) -> pa.Array:
    """``ADGANGSADRESSE_ID`` of stairwells, as written in ``adresser``."""
    return _strings("S", stairwell, 8)


def dream_weeks(first_year: int, last_year: int) -> list[int]:
    """Week indices of every ISO week of ``first_year``..``last_year``."""
    first = iso_week_index(first_year, 1)
    last = iso_week_index(last_year, iso_weeks_in_year(last_year))
    return list(range(first, last + 1))


def dream_frame(world: World, first: int, stop: int) -> pd.DataFrame:
    """DREAM rows of persons ``first``..``stop - 1``: weekly codes then monthly industry codes."""
    p = world.params
    columns: dict[str, pa.Array] = {"PNR": _pnr(world, np.arange(first, stop))}
    months: dict[str, pa.Array] = {}
    weeks = dream_weeks(p.first_year, p.last_year)
    position = 0
    for year_index, block in enumerate(world.blocks):
        n_weeks = block.shape[0]
        part = np.zeros((n_weeks, stop - first), dtype=np.uint8)
        known = max(0, min(stop, block.shape[1]) - first)
        part[:, :known] = block[:, first:first + known]
        codes = CODE_OF_STATE[part]
        year_weeks = np.array(weeks[position:position + n_weeks])
        for row, week in enumerate(year_weeks):
            columns[dream_week_column(int(week))] = pa.array(codes[row], mask=codes[row] == 0)
        industry = np.zeros(stop - first, dtype=np.int32)
        industry[:known] = INDUSTRIES[world.industry_by_year[year_index][first:first + known]]
        week_month = month_of_week(year_weeks)
        for month in np.unique(week_month):
            worked = (part[week_month == month] == EMPLOYED).any(axis=0)
            months[dream_month_column(int(month))] = pa.array(industry, mask=~worked)
        position += n_weeks
    columns.update(months)
    return _frame(columns)


def ground_truth(world: World, subgroup_size: dict[str, int]) -> dict:
    """The planted effects and the calibration targets, for tests only."""
    p, h = world.params, world.housing
    stair_area = h.building_area[h.stairwell_building]
    bad = np.flatnonzero(world.bad_stairwell)
    named = np.flatnonzero(world.subgroup_stairwell)
    bad_ids = stairwell_ids(bad).to_pylist()
    areas = [{"code": a.code, "name": a.name, "kind": a.kind, "municipality": a.municipality, "dwellings": a.dwellings}
             for a in h.areas]
    return {
        "synthetic": True,
        "seed": p.seed,
        "persons": p.persons,
        "persons_ever": len(world.people),
        "first_year": p.first_year,
        "last_year": p.last_year,
        "areas": areas,
        "vollsmose_like_area": h.areas[0].code,
        "vaerebro_like_area": h.areas[1].code,
        "vaerebro_like_layout": {
            "blocks": [{"storeys": s, "entrances": e, "dwellings": d} for s, e, d in vaerebro_blocks(h.areas[1].dwellings)],
            "dwellings": h.areas[1].dwellings, "full_scale_dwellings": VAEREBRO_DWELLINGS,
        },
        "bad_stairwells": [
            {"stairwell_id": sid, "area": h.areas[int(stair_area[s])].code, "log_odds": p.bad_stairwell_log_odds}
            for sid, s in zip(bad_ids, bad)
        ],
        "exit_hazard": {
            "description": "weekly log-odds that a public-support spell ends (to work or to no benefit)",
            "intercept": EXIT_BASE,
            "bad_stairwell": p.bad_stairwell_log_odds,
            "non_western_origin": p.origin_log_odds,
            "age_per_decade_over_30": EXIT_AGE_PER_DECADE_OVER_30,
            "basic_education_only": EXIT_BASIC_EDUCATION,
            "higher_education": EXIT_HIGHER_EDUCATION,
            "prior_support_share_two_years": EXIT_PRIOR_SUPPORT_SHARE,
            "network_share_employed_minus_half": {layer: getattr(p, f"{layer}_log_odds") for layer in LAYERS},
            "subgroup": p.subgroup_log_odds,
        },
        "support_entry_hazard": {
            "description": "log-odds added to the weekly hazards of starting a spell (from work or from no benefit)",
            "wider_group": WIDER_GROUP_ENTRY_LOG_ODDS,
            "subgroup": SUBGROUP_ENTRY_LOG_ODDS,
        },
        "network_layers": {
            "household": "same dwelling (or same family when not resident)",
            "family": "parents, children and siblings (same mother)",
            "coworkers": "same last primary workplace (ARBNR)",
            "classmates": "same last school class (INSTNR + KL_BETEGNELSE + birth year)",
            "status": "employed in the November (week 46) of the previous year, among contacts aged 18-66",
        },
        "subgroup": {
            "definition": {
                "min_age": 20,
                "citizenships": list(SUBGROUP_CITIZENSHIPS),
                "education_group": 10,
                "area": h.areas[0].code,
                "stairwell_ids": stairwell_ids(named).to_pylist(),
            },
            "target_size_full_scale": p.subgroup_persons,
            "size_by_year": subgroup_size,
            "target_self_sufficient_rate": 0.03,
            "wider_group": "residents of the area aged 20+ with citizenship in the named countries",
            "wider_group_target_self_sufficient_rate": 0.15,
        },
        "vollsmose_like_target_profile": VOLLSMOSE_TARGET,
        "non_western_countries": sorted(NON_WESTERN_COUNTRIES),
        "country_names": COUNTRY_NAMES,
    }
