"""Public-support spells and the two prediction targets, ``exit_26w`` and ``self_sufficient``.

Input is the ingested ``benefits`` table: one row per run of identical consecutive DREAM codes
(``person_id``, ``code``, ``first_week``, ``n_weeks``; weeks are :mod:`lyskegle.calendar` indices,
blank weeks have no row, runs of one person do not overlap), and ``population`` (``person_id``,
``year``, ``birth_date``: residents at 1 January). DREAM is observed in ``[first_week, last_week]``
(both from ingest's ``extract.json``); ``data_end = last_week + 1``. Definitions, one small pure
function each:

* **Support week**: a week with a public-support code (:func:`lyskegle.codes.is_public_support`).
* **Spell** (:func:`spell_breaks`, :func:`find_spells`): a maximal run of support weeks whose internal
  gaps (weeks without a support code, whatever other code they carry) are shorter than
  ``gap_weeks``. ``first_week`` is its first support week; ``support_weeks`` counts its support
  weeks. A spell starting within ``gap_weeks`` of the data start may have begun before the data:
  ``left_censored`` (:func:`left_censored`).
* **End** (:func:`spell_ends`): the *ending gap* is the ``gap_weeks`` weeks after the last support
  week. ``end_week`` is the first week of that gap. ``end_reason`` is ``censored`` when a 997/999
  code (emigrated, dead) appears in the observed part of the gap (so also when the very next code
  after the spell is 997/999 and the data end inside the gap; a 997/999 after a complete gap does
  not censor: the exit was seen first); otherwise ``running`` (``end_week``
  null) when fewer than ``gap_weeks`` observed weeks follow the spell; otherwise ``education`` when
  the first coded week of the gap is SU (651/652); otherwise ``gap``.
* **exit_26w** at as-of date ``A`` (week ``a``; :func:`exit_26w_cohort`, :func:`exit_26w_label`):
  cohort = residents at ``A`` (population of year ``A.year``) aged ``min_age``..``max_age`` at ``A``
  with a support code in week ``a - 1`` whose spell started in ``[a - cohort_weeks, a - 1]`` and is not
  left-censored. With ``h = a + horizon_weeks``: label 1 when the spell ended (``gap``, or
  ``education`` if ``education_exit_is_success``) with ``end_week <= h``; 0 when it ended in education
  and that is not a success, or the spell still runs at ``h`` (``end_week > h``); censored (label null)
  when it ended by 997/999 with ``end_week <= h`` or the data end before the outcome is known.
* **self_sufficient** at ``A`` (:func:`self_sufficient_cohort`, :func:`self_sufficient_label`):
  cohort = residents at ``A`` aged ``self_sufficient_min_age``..``self_sufficient_max_age``, without
  a 997/998/999 code in week ``a - 1``. Label 1 when at least ``self_sufficient_weeks`` of the 52
  weeks ``[a, a + 52)`` carry no support code; censored when 997/999 appears in those weeks or the
  data end before ``a + 52``.

Cohort membership (and ``spell_first_week``) uses only what is known at ``A``: DREAM weeks before
``a`` and the population of ``A.year``. Labels look forward, by design. As-of dates whose cohort
or label window does not fit in the data are skipped and reported (:func:`as_of_fits_data`), rather
than turned into all-censored cohorts. Ages are completed years at ``A``.

Speed: the runs are sorted and checked once (:class:`BenefitRuns`), person ids become integer
indices once per table, and every step is a numpy pass over the runs; nothing loops over persons.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa

from lyskegle.calendar import week_index
from lyskegle.codes import CENSORING_CODES, EDUCATION_EXIT_CODES, STATE_PENSION_CODE, is_public_support
from lyskegle.concurrency import map_in_order
from lyskegle.config import LabelParams
from lyskegle.ids import arrow_text, codes_in, days
from lyskegle.privacy import suppress_small_cells

log = logging.getLogger(__name__)

#: The self_sufficient target looks one year ahead; ``labels.self_sufficient_weeks`` is out of this.
SELF_SUFFICIENT_WINDOW_WEEKS = 52
END_REASONS = ("gap", "education", "censored", "running")
TARGETS = ("exit_26w", "self_sufficient")
OUT_OF_SCOPE_CODES = frozenset(CENSORING_CODES | {STATE_PENSION_CODE})

_CENSORING = np.array(sorted(CENSORING_CODES))
_EDUCATION = np.array(sorted(EDUCATION_EXIT_CODES))
_OUT_OF_SCOPE = np.array(sorted(OUT_OF_SCOPE_CODES))
_RUN_COLUMNS = ("person_id", "code", "first_week", "n_weeks")


# --------------------------------------------------------------------------------------------
# Runs: the benefits table as sorted arrays, checked once
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenefitRuns:
    """The ``benefits`` runs as arrays sorted by person then week, checked once.

    ``person`` indexes ``persons`` (sorted person ids); ``end`` is the week after each run.
    """

    persons: pd.Index
    person: np.ndarray
    code: np.ndarray
    first: np.ndarray
    end: np.ndarray

    @classmethod
    def from_frame(cls, benefits: pd.DataFrame) -> "BenefitRuns":
        missing = [c for c in _RUN_COLUMNS if c not in benefits.columns]
        if missing:
            raise KeyError(f"benefits: missing column(s) {missing}; expected {list(_RUN_COLUMNS)}")
        codes, persons = pd.factorize(benefits["person_id"], sort=True)
        if (codes < 0).any():
            raise ValueError(f"benefits row {int(np.argmax(codes < 0))}: person_id is missing")
        person = codes.astype("int64")
        first = benefits["first_week"].to_numpy("int64")
        length = benefits["n_weeks"].to_numpy("int64")
        if (length < 1).any():
            raise ValueError(f"benefits row {int(np.argmax(length < 1))}: n_weeks must be at least 1")
        code = benefits["code"].to_numpy("int64")
        # one int64 key per run orders runs by person, then week; ingest writes them in that order
        offset = int(first.min()) if len(first) else 0
        stride = int((first + length).max()) - offset + 1 if len(first) else 1
        key = person * stride + (first - offset)
        if not (key[1:] > key[:-1]).all():
            order = np.argsort(key, kind="stable")
            person, first, length, code = person[order], first[order], length[order], code[order]
        end = first + length
        overlap = (person[1:] == person[:-1]) & (first[1:] < end[:-1])
        if overlap.any():
            at = int(np.argmax(overlap)) + 1
            raise ValueError(
                f"benefits: runs of person {persons[person[at]]} overlap at week {first[at]} "
                "(a DREAM week carries at most one code)"
            )
        return cls(pd.Index(persons), person, code, first, end)

    def code_in_week(self, week: int) -> tuple[np.ndarray, np.ndarray]:
        """Persons (indices into ``persons``) with a code in ``week``, and that code."""
        inside = (self.first <= week) & (week < self.end)
        return self.person[inside], self.code[inside]

    def positions(self, person_ids: pd.Series | pd.Index) -> np.ndarray:
        """Int64 index into ``persons`` of each of ``person_ids``, -1 for a person without runs.
        ``persons.get_indexer`` by one Arrow hash lookup, about four times faster on a million ids."""
        return codes_in(pd.Series(person_ids), self._person_set)

    @cached_property
    def _person_set(self) -> pa.Array:
        return arrow_text(pd.Series(self.persons)).combine_chunks()


# --------------------------------------------------------------------------------------------
# Spells
# --------------------------------------------------------------------------------------------
def spell_breaks(person: np.ndarray, first: np.ndarray, end: np.ndarray, gap_weeks: int) -> np.ndarray:
    """True where a support run starts a new spell: another person, or ``gap_weeks`` or more
    weeks without support since the previous support run. Arrays are sorted by person, week."""
    starts = np.ones(len(person), dtype=bool)
    starts[1:] = (person[1:] != person[:-1]) | (first[1:] - end[:-1] >= gap_weeks)
    return starts


def left_censored(first_week: np.ndarray, data_first_week: int, gap_weeks: int) -> np.ndarray:
    """True where a spell's first support week is too close to the data start to know that
    ``gap_weeks`` weeks without support preceded it."""
    return np.asarray(first_week) < data_first_week + gap_weeks


def spell_ends(runs: BenefitRuns, last_run: np.ndarray, gap_weeks: int, data_end: int) -> tuple[np.ndarray, np.ndarray]:
    """``end_week`` (int64, -1 where unknown) and ``end_reason`` (index into :data:`END_REASONS`)
    of spells whose last support run is ``runs[last_run]``.

    The runs that follow a spell's last support run, up to the person's next spell, carry no
    support code; those starting before ``end_week + gap_weeks`` (and the data end) are its gap.
    """
    n_runs = len(runs.person)
    person = runs.person[last_run]
    last_end = runs.end[last_run]
    gap_end = np.minimum(last_end + gap_weeks, data_end)  # the observed part of the ending gap

    def in_gap(index: np.ndarray) -> np.ndarray:
        safe = np.minimum(index, n_runs - 1)
        return (index < n_runs) & (runs.person[safe] == person) & (runs.first[safe] < gap_end)

    following = last_run + 1
    next_code = np.where(in_gap(following), runs.code[np.minimum(following, n_runs - 1)], 0)
    # the first censoring run at or after the one that follows the spell (censoring runs are few)
    censoring_runs = np.flatnonzero(np.isin(runs.code, _CENSORING))
    position = np.searchsorted(censoring_runs, following)
    next_censoring = np.append(censoring_runs, n_runs)[position]
    censored = in_gap(next_censoring)

    reason = np.full(len(last_run), END_REASONS.index("gap"), dtype="int8")
    reason[np.isin(next_code, _EDUCATION)] = END_REASONS.index("education")
    reason[last_end + gap_weeks > data_end] = END_REASONS.index("running")
    reason[censored] = END_REASONS.index("censored")
    end_week = np.where(reason == END_REASONS.index("running"), -1, last_end)
    return end_week, reason


def find_spells(
    benefits: pd.DataFrame | BenefitRuns, gap_weeks: int, first_week: int, last_week: int,
) -> pd.DataFrame:
    """Public-support spells, one row each, sorted by ``person_id`` and ``first_week``.

    Columns: ``person_id``, ``spell_id`` (int64, 0..n-1 in that order), ``first_week`` (int32),
    ``end_week`` (Int32, null while running), ``support_weeks`` (int32), ``end_reason``,
    ``left_censored`` (bool). ``first_week``/``last_week``: the DREAM span, both included.
    """
    return _find_spells(_as_runs(benefits), gap_weeks, first_week, last_week)[0]


def _find_spells(runs: BenefitRuns, gap_weeks: int, first_week: int, last_week: int) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`find_spells`, and each spell's person as an index into ``runs.persons``."""
    support_run = np.flatnonzero(is_public_support(runs.code))
    person, first, end = runs.person[support_run], runs.first[support_run], runs.end[support_run]
    starts = np.flatnonzero(spell_breaks(person, first, end, gap_weeks))
    last_run = support_run[np.append(starts[1:], len(support_run)) - 1]
    end_week, reason = spell_ends(runs, last_run, gap_weeks, last_week + 1)
    support_weeks = np.add.reduceat(end - first, starts) if len(starts) else np.zeros(0, "int64")
    spells = _spells_frame(
        runs.persons[person[starts]], first[starts], end_week, support_weeks,
        np.array(END_REASONS, dtype=object)[reason], left_censored(first[starts], first_week, gap_weeks),
    )
    return spells, person[starts]


def _spells_frame(person_id, first, end_week, support_weeks, reason, censored_left) -> pd.DataFrame:
    end_week = np.asarray(end_week, dtype="int64")
    return pd.DataFrame({
        "person_id": np.asarray(person_id, dtype=object),
        "spell_id": np.arange(len(first), dtype="int64"),
        "first_week": np.asarray(first, dtype="int32"),
        "end_week": pd.arrays.IntegerArray(end_week.astype("int32"), end_week < 0),
        "support_weeks": np.asarray(support_weeks, dtype="int32"),
        "end_reason": np.asarray(reason, dtype=object),
        "left_censored": np.asarray(censored_left, dtype=bool),
    })


# --------------------------------------------------------------------------------------------
# Cohorts and labels at an as-of date
# --------------------------------------------------------------------------------------------
def _as_runs(benefits: pd.DataFrame | BenefitRuns) -> BenefitRuns:
    return benefits if isinstance(benefits, BenefitRuns) else BenefitRuns.from_frame(benefits)


def age_at(birth_date: pd.Series | np.ndarray, as_of: dt.date) -> np.ndarray:
    """Completed years of age at ``as_of`` (float, NaN where the birth date is missing)."""
    births = days(birth_date)
    year = births.astype("datetime64[Y]").astype("int64") + 1970
    month_start = births.astype("datetime64[M]")
    month = month_start.astype("int64") % 12 + 1
    day = (births - month_start).astype("int64") + 1
    before_birthday = (month > as_of.month) | ((month == as_of.month) & (day > as_of.day))
    return np.where(np.isnat(births), np.nan, as_of.year - year - before_birthday)


@dataclass(frozen=True)
class Residents:
    """The population of one year keyed to the benefit runs: ``person_id``, ``person`` (index into
    ``runs.persons``, -1 for a resident without any DREAM code) and ``birth`` (datetime64[D])."""

    year: int
    person_id: np.ndarray
    person: np.ndarray
    birth: np.ndarray

    @classmethod
    def of_year(cls, population: pd.DataFrame, year: int, runs: BenefitRuns) -> "Residents":
        """Residents in ``population`` (``person_id``, ``year``, ``birth_date``) of ``year``."""
        rows = population.loc[population["year"].to_numpy("int64") == year, ["person_id", "birth_date"]]
        rows = rows.drop_duplicates("person_id")
        person_id = rows["person_id"].to_numpy(object)
        return cls(year, person_id, runs.positions(rows["person_id"]), days(rows["birth_date"]))

    def aged(self, as_of: dt.date, min_age: int, max_age: int) -> np.ndarray:
        """Boolean mask: aged ``min_age``..``max_age`` at ``as_of``."""
        age = age_at(self.birth, as_of)
        return (age >= min_age) & (age <= max_age)


def residents_at(population: pd.DataFrame, as_of: dt.date, min_age: int, max_age: int) -> pd.Index:
    """``person_id`` of residents in the population of ``as_of.year`` (status at 1 January) aged
    ``min_age``..``max_age`` at ``as_of``, in population order. Expects ``person_id``, ``year``,
    ``birth_date``."""
    resident = population.loc[population["year"].to_numpy("int64") == as_of.year, ["person_id", "birth_date"]]
    age = age_at(resident["birth_date"], as_of)
    return pd.Index(resident.loc[(age >= min_age) & (age <= max_age), "person_id"].unique())


def _flags(n_persons: int, person: np.ndarray) -> np.ndarray:
    """Boolean array over ``runs.persons``: True at each index in ``person`` (which may hold -1)."""
    flags = np.zeros(n_persons + 1, dtype=bool)
    flags[person] = True  # -1 lands on the spare last slot
    return flags[:-1]


def exit_26w_cohort(
    spells: pd.DataFrame, benefits: pd.DataFrame | BenefitRuns, population: pd.DataFrame,
    as_of: dt.date, params: LabelParams,
) -> pd.DataFrame:
    """Members of the exit_26w cohort at ``as_of``, from what is known then: ``person_id``,
    ``spell_id`` and ``spell_first_week`` of the spell they are on in the week before ``as_of``;
    sorted by ``person_id``. ``spells`` as from :func:`find_spells` on the same ``benefits``.
    """
    runs = _as_runs(benefits)
    spell_person = runs.positions(spells["person_id"])
    return _exit_26w_members(spells, spell_person, runs, Residents.of_year(population, as_of.year, runs), as_of, params)


def _exit_26w_members(
    spells: pd.DataFrame, spell_person: np.ndarray, runs: BenefitRuns, residents: Residents,
    as_of: dt.date, params: LabelParams,
) -> pd.DataFrame:
    week = week_index(as_of)
    person, code = runs.code_in_week(week - 1)
    on_support = _flags(len(runs.persons), person[is_public_support(code)])
    eligible = _flags(len(runs.persons), residents.person[residents.aged(as_of, params.min_age, params.max_age)])
    started = spells["first_week"].to_numpy("int64")
    recent = np.flatnonzero((started >= week - params.cohort_weeks) & (started < week))
    # the spell holding week a-1 is the person's latest one that started before a (spells are sorted)
    latest = recent[np.append(spell_person[recent][1:] != spell_person[recent][:-1], True)] if len(recent) else recent
    who = spell_person[latest]
    keep = latest[~spells["left_censored"].to_numpy(bool)[latest] & on_support[who] & eligible[who]]
    return pd.DataFrame({
        "person_id": runs.persons[spell_person[keep]].to_numpy(object),
        "spell_id": spells["spell_id"].to_numpy("int64")[keep],
        "spell_first_week": started[keep].astype("int32"),
    })


def exit_26w_label(
    end_week: pd.Series, end_reason: pd.Series, as_of_week: int, params: LabelParams, last_week: int,
) -> tuple[pd.Series, np.ndarray]:
    """``label`` (Int8, null when censored) and ``censored`` (bool) of spells followed from ``as_of_week``.

    1: ended by a gap (or in SU, if ``education_exit_is_success``) with ``end_week <= a + horizon``;
    0: ended in SU when that is not a success, or still running at ``a + horizon``;
    censored: ended by 997/999 by then, or the data end before the outcome is known.
    """
    horizon = as_of_week + params.horizon_weeks
    reason = np.asarray(end_reason, dtype=object)
    end = pd.array(end_week, dtype="Int64").to_numpy(dtype="float64", na_value=np.nan)
    ended_in_time = end <= horizon  # NaN (running) compares False
    success = (reason == "gap") | ((reason == "education") & params.education_exit_is_success)
    # a running spell is still going at the horizon when the horizon's ending gap lies inside the data
    outcome_unknown = (reason == "running") & (horizon + params.gap_weeks > last_week + 1)
    censored = (ended_in_time & (reason == "censored")) | outcome_unknown
    label = np.where(ended_in_time & success, 1, 0)
    return pd.Series(pd.arrays.IntegerArray(label.astype("int8"), censored), name="label"), censored


def self_sufficient_cohort(
    benefits: pd.DataFrame | BenefitRuns, population: pd.DataFrame, as_of: dt.date, params: LabelParams,
) -> pd.Index:
    """``person_id`` of the self_sufficient cohort at ``as_of`` (in population order): residents in
    the age range, without an emigrated/state pension/dead code (997/998/999) in the week before."""
    runs = _as_runs(benefits)
    residents = Residents.of_year(population, as_of.year, runs)
    return pd.Index(residents.person_id[_self_sufficient_members(runs, residents, as_of, params)])


def _self_sufficient_members(runs: BenefitRuns, residents: Residents, as_of: dt.date, params: LabelParams) -> np.ndarray:
    """Boolean mask over ``residents``: in the self_sufficient cohort at ``as_of``."""
    person, code = runs.code_in_week(week_index(as_of) - 1)
    gone = np.append(_flags(len(runs.persons), person[np.isin(code, _OUT_OF_SCOPE)]), False)  # -1: no codes
    aged = residents.aged(as_of, params.self_sufficient_min_age, params.self_sufficient_max_age)
    return aged & ~gone[residents.person]


def self_sufficient_label(
    benefits: pd.DataFrame | BenefitRuns, person_ids: pd.Index, as_of_week: int, params: LabelParams,
    last_week: int,
) -> tuple[pd.Series, np.ndarray]:
    """``label`` (Int8, null when censored) and ``censored`` (bool) for ``person_ids``: 1 when at least
    ``self_sufficient_weeks`` of the 52 weeks from ``as_of_week`` carry no public-support code;
    censored when 997/999 appears in them or the data end first."""
    runs = _as_runs(benefits)
    person = runs.positions(person_ids)
    return _self_sufficient_labels(runs, person, as_of_week, params, last_week)


def _self_sufficient_labels(
    runs: BenefitRuns, person: np.ndarray, as_of_week: int, params: LabelParams, last_week: int,
) -> tuple[pd.Series, np.ndarray]:
    start, stop = as_of_week, as_of_week + SELF_SUFFICIENT_WINDOW_WEEKS
    inside = (runs.first < stop) & (runs.end > start)
    who, code = runs.person[inside], runs.code[inside]
    weeks = np.minimum(runs.end[inside], stop) - np.maximum(runs.first[inside], start)
    n_persons = len(runs.persons)
    # one spare slot at the end for persons without any DREAM code (index -1): 0 weeks, never censored
    support = np.bincount(who, weights=weeks * is_public_support(code), minlength=n_persons + 1)
    leaving = np.bincount(who, weights=np.isin(code, _CENSORING), minlength=n_persons + 1)
    censored = (leaving[person] > 0) | (stop > last_week + 1)
    free_weeks = SELF_SUFFICIENT_WINDOW_WEEKS - support[person]
    label = (free_weeks >= params.self_sufficient_weeks).astype("int8")
    return pd.Series(pd.arrays.IntegerArray(label, censored), name="label"), censored


def as_of_fits_data(target: str, as_of: dt.date, params: LabelParams, first_week: int, last_week: int) -> str | None:
    """Why ``target`` cannot be labelled at ``as_of`` with DREAM weeks ``[first_week, last_week]``,
    or None when it can."""
    week, data_end = week_index(as_of), last_week + 1
    if target == "exit_26w":
        if week - params.cohort_weeks < first_week + params.gap_weeks:
            return "cohort window starts before spell starts can be known"
        if week + params.horizon_weeks + params.gap_weeks > data_end:
            return "label window runs past the data"
    elif target == "self_sufficient":
        if week - 1 < first_week:
            return "as-of date is not after the first DREAM week"
        if week + SELF_SUFFICIENT_WINDOW_WEEKS > data_end:
            return "label window runs past the data"
    else:
        raise ValueError(f"unknown target '{target}'; expected one of {TARGETS}")
    return None


@dataclass(frozen=True)
class Labels:
    """What the labels stage produces: ``spells``, ``cohorts`` and the skipped (target, as-of) pairs."""

    spells: pd.DataFrame
    cohorts: pd.DataFrame
    skipped: pd.DataFrame


def make_labels(
    benefits: pd.DataFrame, population: pd.DataFrame, params: LabelParams, first_week: int, last_week: int,
    threads: int = 1,
) -> Labels:
    """Spells and both targets' cohorts at every ``params.as_of_dates``.

    ``cohorts`` columns: ``target``, ``as_of`` (date), ``person_id``, ``label`` (Int8, null when
    censored), ``censored`` (bool), ``spell_first_week`` (Int32, exit_26w only); in order of target
    and as-of, then person (exit_26w) or population order (self_sufficient). ``skipped``:
    ``target``, ``as_of``, ``reason``. Up to ``threads`` as-of dates are labelled at a time, as
    memory allows (:func:`lyskegle.concurrency.map_in_order`); the result is the same either way.
    """
    runs = BenefitRuns.from_frame(benefits)
    spells, spell_person = _find_spells(runs, params.gap_weeks, first_week, last_week)
    log.info("%d spells from %d benefit runs of %d persons", len(spells), len(runs.person), len(runs.persons))
    years = set(population["year"].astype("int64").unique())

    def at_date(numbered: tuple[int, dt.date]) -> tuple[dict, dict]:
        # the date's residents, keyed to the runs once for both targets
        date_number, as_of = numbered
        week = week_index(as_of)
        parts, skipped = {}, {}
        residents = None
        for target_number, target in enumerate(TARGETS):
            at = (target_number, date_number)
            reason = as_of_fits_data(target, as_of, params, first_week, last_week)
            if reason is None and as_of.year not in years:
                reason = f"no population for {as_of.year}"
            if reason is not None:
                skipped[at] = {"target": target, "as_of": as_of, "reason": reason}
                log.info("%s at %s skipped: %s", target, as_of, reason)
                continue
            if residents is None:
                residents = Residents.of_year(population, as_of.year, runs)
            if target == "exit_26w":
                members = _exit_26w_members(spells, spell_person, runs, residents, as_of, params)
                spell = spells.iloc[members["spell_id"].to_numpy()]  # spell_id is the row position
                label, censored = exit_26w_label(spell["end_week"], spell["end_reason"], week, params, last_week)
                person_id, first = members["person_id"], pd.array(members["spell_first_week"], dtype="Int32")
            else:
                inside = _self_sufficient_members(runs, residents, as_of, params)
                label, censored = _self_sufficient_labels(runs, residents.person[inside], week, params, last_week)
                person_id, first = residents.person_id[inside], pd.array([None] * int(inside.sum()), dtype="Int32")
            parts[at] = _cohort_frame(target, as_of, person_id, label, censored, first)
            log.info("%s at %s: %d persons", target, as_of, len(person_id))
        return parts, skipped

    # As-of date by as-of date, up to ``threads`` at a time as memory allows; the results are put
    # back in target order below, so they do not depend on ``threads``.
    parts, skipped = {}, {}
    dates = list(enumerate(params.as_of_dates))
    for found, passed in map_in_order(at_date, dates, threads, what="labels' as-of dates"):
        parts.update(found)
        skipped.update(passed)
    in_order = [parts[at] for at in sorted(parts)]
    cohorts = pd.concat(in_order, ignore_index=True) if in_order else _cohort_frame("", None, [], [], [], [])
    skipped_frame = pd.DataFrame([skipped[at] for at in sorted(skipped)], columns=["target", "as_of", "reason"])
    return Labels(spells, cohorts, skipped_frame)


def _cohort_frame(target, as_of, person_id, label, censored, spell_first_week) -> pd.DataFrame:
    n = len(person_id)
    return pd.DataFrame({
        "target": np.full(n, target, dtype=object),
        "as_of": np.full(n, as_of, dtype=object),
        "person_id": np.asarray(person_id, dtype=object),
        "label": pd.array(label, dtype="Int8"),
        "censored": np.asarray(censored, dtype=bool),
        "spell_first_week": pd.array(spell_first_week, dtype="Int32"),
    })


# --------------------------------------------------------------------------------------------
# Summary for reports/labels.json (human-visible, so small cells are suppressed)
# --------------------------------------------------------------------------------------------
OUTCOMES = ("positive", "negative", "censored")


def outcome_counts(cohorts: pd.DataFrame) -> pd.DataFrame:
    """Persons per ``target``, ``as_of`` and ``outcome`` (positive/negative/censored), zeros included."""
    censored = cohorts["censored"].to_numpy(bool)
    positive = ~censored & (cohorts["label"].fillna(0).to_numpy("int64") == 1)
    flags = pd.DataFrame({
        "target": cohorts["target"], "as_of": cohorts["as_of"],
        "positive": positive, "negative": ~censored & ~positive, "censored": censored,
    })
    wide = flags.groupby(["target", "as_of"], sort=True)[list(OUTCOMES)].sum()
    long = wide.stack().rename("persons").reset_index().rename(columns={"level_2": "outcome"})
    return long.astype({"persons": "int64"})


def summarise(labels: Labels, min_cell: int) -> dict:
    """``reports/labels.json``: per target and as-of date the cohort ``persons``, the ``labelled``
    (uncensored) persons, ``positives``, ``censored`` and ``positive_rate`` (positives / labelled);
    per target the totals over dates; spell counts by end reason; the skipped as-of dates.

    Privacy, through :func:`lyskegle.privacy.suppress_small_cells`: positives and negatives are the
    cells of the shown total ``labelled`` (so a small one hides the other too); ``censored`` is its
    own cell, and ``persons`` (labelled + censored) is shown only when both of its parts are. A rate
    needs both of its counts; a total over dates (or end reasons) needs every count it adds up, so
    no hidden count can be recovered by subtraction.
    """
    cells = outcome_counts(labels.cohorts)
    labelled = cells.loc[cells["outcome"] != "censored"].assign(labelled=lambda t: t["persons"])
    censored = cells.loc[cells["outcome"] == "censored"]
    if len(cells):
        labelled = suppress_small_cells(labelled, "persons", min_cell, total_groups=["target", "as_of"])
        censored = suppress_small_cells(censored, "persons", min_cell, total_groups=None)
    shown = pd.concat([labelled, censored], ignore_index=True)
    summary: dict = {}
    for target, of_target in shown.groupby("target", sort=True):
        by_date = {
            str(as_of): _figures(rows, min_cell) for as_of, rows in of_target.groupby("as_of", sort=True)
        }
        dates = list(by_date.values())
        summary[str(target)] = {
            "as_of": by_date,
            "total": {
                key: _sum_if_all_shown([figures[key] for figures in dates])
                for key in ("persons", "labelled", "positives", "censored")
            },
        }

    reasons = labels.spells["end_reason"].value_counts().reindex(list(END_REASONS), fill_value=0)
    spell_table = pd.DataFrame({"end_reason": reasons.index, "spells": reasons.to_numpy("int64")})
    spell_table = suppress_small_cells(spell_table, "spells", min_cell, total_groups=None)
    by_reason = {r: _number(n) for r, n in zip(spell_table["end_reason"], spell_table["spells"])}
    summary["spells"] = {"by_end_reason": by_reason, "total": _sum_if_all_shown(list(by_reason.values()))}
    summary["skipped"] = [
        {"target": row.target, "as_of": str(row.as_of), "reason": row.reason}
        for row in labels.skipped.itertuples(index=False)
    ]
    summary["min_cell"] = min_cell
    return summary


def _figures(rows: pd.DataFrame, min_cell: int) -> dict:
    """Shown figures of one cohort from its suppressed outcome rows (``persons`` null when hidden)."""
    by_outcome = rows.set_index("outcome")
    positive, negative, censored = (_number(by_outcome.at[o, "persons"]) for o in OUTCOMES)
    labelled_persons = int(by_outcome["labelled"].sum())  # before suppression: the shown total
    labelled = labelled_persons if labelled_persons >= min_cell else None
    return {
        "persons": None if None in (labelled, censored) else labelled + censored,
        "labelled": labelled,
        "positives": positive,
        "censored": censored,
        "positive_rate": None if None in (positive, negative) else round(positive / (positive + negative), 4),
    }


def _sum_if_all_shown(values: list[int | None]) -> int | None:
    return None if not values or None in values else int(sum(values))


def _number(value) -> int | None:
    return None if value is None or pd.isna(value) else int(value)
