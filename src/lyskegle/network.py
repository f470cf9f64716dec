"""The multilayer person network at an as-of date, and each person's exposure through it.

Five layers link residents: ``household`` (same dwelling), ``family`` (partners, parents, children,
siblings), ``stairwell`` (same access address), ``coworkers`` (same workplace, primary job) and
``classmates`` (same school class in any earlier school year). For every person and layer the
features say how many contacts they have, how many and which share of them are on public support,
which share works, how many weeks the contacts spent on support in the last year, and how large the
person's connected component is (counting the person; 1 without contacts). A person's own status
never counts in their own exposure. Family also has a two-hop exposure: the distinct persons at
distance exactly 2 in the family graph (grandparents and grandchildren, a partner's parents and
siblings, aunts and uncles, a parent's new partner, ...), never the person or a direct contact.

Groups are never expanded into cliques: a workplace of 5,000 is one column of a sparse person x group
incidence matrix ``B``, and the contacts' sums are ``B @ (B.T @ x) - x``. Only where a person can share
several groups with the same contact (classmates over several years, siblings through two parents)
is the person x person contact matrix formed, from small groups. :mod:`lyskegle.network_reference`
computes the same numbers with networkx, one explicit edge per pair; the tests prove they agree.

"As the registers stood before the as-of date" (a Monday ``A`` in week ``a``):
- household, stairwell and the resident set from ``population`` of year ``A.year`` (1 January) and
  ``dwellings``; every layer is restricted to these residents;
- family links from ``population`` rows of every year up to ``A.year``;
- coworkers from ``jobs`` of year ``A.year - 1`` (November), ``job_type == "H"``;
- classmates from ``classes`` of every school year up to ``A.year - 1``;
- a contact is on support if they carry a public-support code in week ``a - 1``, employed if they
  had work in the month of week ``a - 1``, and their support weeks are counted in
  ``[a - support_window_weeks, a)``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import sparse
from scipy.sparse import csgraph
from tqdm import tqdm

from lyskegle.calendar import month_of_week, week_index
from lyskegle.concurrency import map_in_order
from lyskegle.ids import arrow_text, as_of_runs, codes_in, codes_of, cohort_members, positions_of_codes, shared_codes
from lyskegle.privacy import suppress_small_cells
from lyskegle.status import employed_in_month, on_support_in_week, support_weeks_between

log = logging.getLogger(__name__)

LAYERS = ("household", "family", "stairwell", "coworkers", "classmates")
EXPOSURES = ("contacts", "on_support", "share_on_support", "share_employed", "mean_support_weeks", "component_size")
TWO_HOP_EXPOSURES = ("two_hop_contacts", "two_hop_share_on_support")
#: 0/1 matrices and path counts are small integers, exact in float32 (half the memory of float64).
MATRIX_DTYPE = "float32"
COUNT_EXPOSURES = frozenset({"contacts", "on_support", "component_size", "two_hop_contacts"})


#: The columns of the ingested tables the network reads (the stage reads nothing else).
REGISTER_COLUMNS = {
    "population": ["person_id", "year", "dwelling_id", "family_id", "partner_id", "mother_id", "father_id"],
    "dwellings": ["dwelling_id", "stairwell_id", "area"],
    "jobs": ["person_id", "year", "workplace_id", "job_type"],
    "classes": ["person_id", "year", "school_id", "class_name"],
    "benefits": ["person_id", "code", "first_week", "n_weeks"],
    "employment": ["person_id", "first_month", "n_months"],
}


@dataclass(frozen=True)
class LayerMemberships:
    """Who is linked to whom at one as-of date, before any graph is built.

    ``residents``: one row per resident, row position = node number; columns ``person_id``,
    ``dwelling_id``, ``stairwell_id``, ``area``.
    ``groups``: layer -> frame with ``person`` (node number) and ``group`` (int code), one row per
    distinct membership. ``family_links``: direct ties ``person``, ``relative`` (node numbers; partner
    and parent-child, each pair once with ``person < relative``). ``parents``: ``person``, ``group``
    (int code of a parent id): children of the same parent are siblings. ``person_codes``: each
    resident's code in the :class:`NetworkRegisters` it came from (None when built by hand).
    """

    residents: pd.DataFrame
    groups: dict[str, pd.DataFrame]
    family_links: pd.DataFrame
    parents: pd.DataFrame
    person_codes: np.ndarray | None = None

    @property
    def n_persons(self) -> int:
        return len(self.residents)


@dataclass(frozen=True)
class NetworkRegisters:
    """The registers the layers are built from, with every id replaced by an int code (-1: missing).

    Coded once and cut per as-of date with integer comparisons, so that eight as-of dates do not
    hash a million string ids eight times. ``person_ids`` holds the id of each person code.
    ``population`` (one row per register row, in register order): ``year``, ``person``,
    ``household`` (the dwelling, or the family for a row without dwelling), ``dwelling_row`` (first
    row of the dwelling in ``dwellings``), ``stairwell``, ``partner``, ``mother``, ``father``.
    ``coworkers``: primary jobs ``year``, ``person``, ``workplace``. ``classes``: ``year``,
    ``person``, ``class`` (one code per school x class name x school year). The text columns of
    ``residents`` are taken from ``dwelling_ids`` (population's ``dwelling_id``) and ``dwellings``.
    """

    person_ids: pa.Array
    population: dict[str, np.ndarray]
    coworkers: dict[str, np.ndarray]
    classes: dict[str, np.ndarray]
    dwelling_ids: pa.ChunkedArray
    dwellings: pd.DataFrame

    def person_codes(self, person_ids: pd.Series) -> np.ndarray:
        """The code of each of ``person_ids`` (-1 for an id the registers do not know)."""
        return codes_in(person_ids, self.person_ids)


def network_registers(
    population: pd.DataFrame, dwellings: pd.DataFrame, jobs: pd.DataFrame, classes: pd.DataFrame, threads: int = 1,
) -> NetworkRegisters:
    """Code the ingested tables of docs/DATA_MODEL.md once for :func:`memberships_at`.

    ``population`` (``person_id``, ``year``, ``dwelling_id``, ``family_id``, ``partner_id``,
    ``mother_id``, ``father_id``), ``dwellings`` (``dwelling_id``, ``stairwell_id``, ``area``),
    ``jobs`` (``person_id``, ``year``, ``workplace_id``, ``job_type``), ``classes`` (``person_id``,
    ``year``, ``school_id``, ``class_name``). The person ids are coded on up to ``threads``
    threads (:func:`lyskegle.ids.shared_codes`); the codes are the same either way.
    """
    primary = (jobs["job_type"] == "H").to_numpy(dtype=bool, na_value=False)
    (person, partner, mother, father, worker, pupil), person_ids = shared_codes([
        population["person_id"], population["partner_id"], population["mother_id"], population["father_id"],
        jobs["person_id"], classes["person_id"],
    ], threads)
    (dwelling, listed_dwelling), dwelling_values = shared_codes([population["dwelling_id"], dwellings["dwelling_id"]])
    row_of_dwelling = np.full(len(dwelling_values) + 1, -1, dtype="int32")  # the extra last slot answers code -1
    row_of_dwelling[listed_dwelling[::-1]] = np.arange(len(listed_dwelling))[::-1]  # first listed row wins
    dwelling_row = np.where(dwelling >= 0, row_of_dwelling[dwelling], -1)
    stairwell_of_row = shared_codes([dwellings["stairwell_id"]])[0][0]
    family, _ = shared_codes([population["family_id"]])
    # A resident without a dwelling is a household with their family; family codes follow dwelling codes.
    household = np.where(dwelling >= 0, dwelling, np.where(family[0] >= 0, family[0] + len(dwelling_values), -1))

    (school, class_name), _ = shared_codes([classes["school_id"], classes["class_name"]])
    class_year = _years(classes)
    class_keys = pd.DataFrame({"school": school, "class": class_name, "year": class_year})
    class_code = class_keys.groupby(["school", "class", "year"], sort=False).ngroup().to_numpy("int32")
    return NetworkRegisters(
        person_ids=person_ids,
        population={
            "year": _years(population), "person": person, "household": household, "dwelling_row": dwelling_row,
            "stairwell": _take(stairwell_of_row, dwelling_row), "partner": partner, "mother": mother, "father": father,
        },
        coworkers={"year": _years(jobs)[primary], "person": worker[primary],
                   "workplace": shared_codes([jobs["workplace_id"]])[0][0][primary]},
        classes={"year": class_year, "person": pupil,
                 "class": np.where((school >= 0) & (class_name >= 0), class_code, -1)},
        dwelling_ids=arrow_text(population["dwelling_id"]),
        dwellings=dwellings[["stairwell_id", "area"]].reset_index(drop=True),
    )


def layer_memberships(
    population: pd.DataFrame,
    dwellings: pd.DataFrame,
    jobs: pd.DataFrame,
    classes: pd.DataFrame,
    as_of: dt.date,
) -> LayerMemberships:
    """Group memberships and family ties of the residents at ``as_of`` (tables as in
    :func:`network_registers`; for many as-of dates, code once and call :func:`memberships_at`)."""
    return memberships_at(network_registers(population, dwellings, jobs, classes), as_of)


def memberships_at(registers: NetworkRegisters, as_of: dt.date) -> LayerMemberships:
    """Group memberships and family ties of the residents at ``as_of``.

    Household is the dwelling; a resident without a dwelling falls back on their family. A resident
    with several primary jobs keeps the first listed. Residents are numbered in the order of their
    first row in ``population`` of the as-of year.
    """
    year = as_of.year
    people = registers.population
    current = np.flatnonzero((people["year"] == year) & (people["person"] >= 0))
    _, first = np.unique(people["person"][current], return_index=True)
    rows = current[np.sort(first)]  # population row of each resident, in node order
    resident_code = people["person"][rows]
    node_of_code = positions_of_codes(resident_code, len(registers.person_ids))

    everyone = np.arange(len(rows))
    groups = {
        "household": _members(everyone, people["household"][rows]),
        "stairwell": _members(everyone, people["stairwell"][rows]),
    }
    jobs = registers.coworkers
    latest = jobs["year"] == year - 1
    groups["coworkers"] = _members(node_of_code[jobs["person"][latest]], jobs["workplace"][latest], keep_first_per_person=True)
    classes = registers.classes
    earlier = classes["year"] <= year - 1
    groups["classmates"] = _members(node_of_code[classes["person"][earlier]], classes["class"][earlier])

    past = people["year"] <= year
    person = node_of_code[people["person"][past]]
    mother, father = people["mother"][past], people["father"][past]
    pairs = []
    for relative in (node_of_code[people["partner"][past]], node_of_code[mother], node_of_code[father]):
        linked = (person >= 0) & (relative >= 0) & (person != relative)
        pairs.append(np.column_stack([person[linked], relative[linked]]))
    pairs = _unique_pairs(np.sort(np.concatenate(pairs), axis=1))
    family_links = pd.DataFrame(pairs, columns=["person", "relative"]).astype("int64")
    # Siblings share a parent; the parent need not be a resident to make two residents siblings.
    parents = _members(np.concatenate([person, person]), np.concatenate([mother, father]))

    place = people["dwelling_row"][rows]
    residents = pd.DataFrame({
        "person_id": _text_series(registers.person_ids.take(pa.array(resident_code))),
        "dwelling_id": _text_series(registers.dwelling_ids.take(pa.array(rows))),
        "stairwell_id": _take_strings(registers.dwellings["stairwell_id"], place),
        "area": _take_strings(registers.dwellings["area"], place),
    })
    return LayerMemberships(residents, groups, family_links, parents, person_codes=resident_code)


def _years(table: pd.DataFrame) -> np.ndarray:
    """The ``year`` column as ints; a missing year becomes one that no as-of date reaches."""
    return table["year"].astype("Int32").fillna(_NO_YEAR).to_numpy("int32")


_NO_YEAR = np.iinfo("int32").max


def _text_series(values: pa.Array | pa.ChunkedArray) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(values).cast(pa.large_string())))


def _take(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``values[positions]``, with -1 where a position is -1."""
    return np.where(positions >= 0, values[np.maximum(positions, 0)] if len(values) else -1, -1)


def _take_strings(values: pd.Series, positions: np.ndarray) -> pd.Series:
    """``values`` at ``positions`` (missing where a position is -1), as a fresh 0..n-1 series."""
    if len(values) == 0:
        return pd.Series(pd.NA, index=range(len(positions)), dtype="string[pyarrow]")
    taken = arrow_text(values).take(pa.array(np.maximum(positions, 0)))
    return _text_series(taken).where(positions >= 0, pd.NA)


def _members(persons: np.ndarray, groups: np.ndarray, keep_first_per_person: bool = False) -> pd.DataFrame:
    """Distinct (person, group) rows where both are known (not -1). Group codes keep their values
    (unused codes are empty groups, which change nothing)."""
    persons, groups = np.asarray(persons, dtype="int64"), np.asarray(groups, dtype="int64")
    known = (persons >= 0) & (groups >= 0)
    persons, groups = persons[known], groups[known]
    if keep_first_per_person:
        _, first = np.unique(persons, return_index=True)
        persons, groups = persons[first], groups[first]
    pairs = _unique_pairs(np.column_stack([persons, groups]))
    return pd.DataFrame(pairs, columns=["person", "group"]).astype("int64")


def _unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """Distinct rows of a (k, 2) array of non-negative ints, sorted."""
    if len(pairs) == 0:
        return pairs.reshape(0, 2)
    width = int(pairs[:, 1].max()) + 1
    keys = np.sort(pairs[:, 0] * width + pairs[:, 1])
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]  # np.unique's hash path is slower here
    return np.column_stack([keys // width, keys % width])


def contact_status(
    benefits: pd.DataFrame,
    employment: pd.DataFrame,
    person_ids: pd.Series,
    as_of: dt.date,
    support_window_weeks: int,
) -> pd.DataFrame:
    """Each person's status at ``as_of``, in the order of ``person_ids``.

    Columns ``on_support`` (bool: public-support code in the week before), ``employed`` (bool: work
    in that week's month) and ``support_weeks`` (int: support weeks in the window before ``as_of``).
    Expects the ingested ``benefits`` and ``employment`` runs; ``person_ids`` must be distinct.
    """
    ids = arrow_text(person_ids).combine_chunks()
    return _coded_status(
        _coded_runs(benefits, codes_in(benefits["person_id"], ids)),
        _coded_runs(employment, codes_in(employment["person_id"], ids)),
        np.arange(len(ids)), len(ids), as_of, support_window_weeks,
    )


def _coded_runs(runs: pd.DataFrame, code: np.ndarray) -> pd.DataFrame:
    """``runs`` (benefits or employment) with ``person_id`` replaced by its int ``code``; runs of
    persons without a code (-1) are dropped."""
    return runs.drop(columns="person_id").assign(person_id=code).loc[code >= 0]


def _coded_status(
    benefits: pd.DataFrame, employment: pd.DataFrame, codes: np.ndarray, n_codes: int,
    as_of: dt.date, support_window_weeks: int,
) -> pd.DataFrame:
    """:func:`contact_status` of the persons ``codes`` from runs coded by :func:`_coded_runs`."""
    week = week_index(as_of)
    last_week = week - 1
    on_support = np.zeros(n_codes, dtype=bool)
    on_support[on_support_in_week(benefits, last_week).to_numpy("int64")] = True
    employed = np.zeros(n_codes, dtype=bool)
    employed[employed_in_month(employment, int(month_of_week(last_week))).to_numpy("int64")] = True
    weeks = support_weeks_between(benefits, week - support_window_weeks, week)
    support_weeks = np.zeros(n_codes, dtype="int64")
    support_weeks[weeks.index.to_numpy("int64")] = weeks.to_numpy("int64")
    return pd.DataFrame({
        "on_support": on_support[codes], "employed": employed[codes], "support_weeks": support_weeks[codes],
    })


@dataclass(frozen=True)
class _Layer:
    """A layer as a sparse operator: exactly one of ``incidence`` (persons x groups, each person in
    at most one group) or ``adjacency`` (persons x persons, 0/1, no diagonal) is set; ``bipartite``
    is the person x group incidence used for components (None for family)."""

    incidence: sparse.csr_array | None
    adjacency: sparse.csr_array | None
    bipartite: sparse.csr_array | None

    def neighbour_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum of ``values`` (persons x k) over each person's contacts, the person left out."""
        if self.adjacency is not None:
            return self.adjacency @ values
        member = self.incidence @ np.ones(self.incidence.shape[1])
        return self.incidence @ (self.incidence.T @ values) - values * member[:, None]

    def component_size(self) -> np.ndarray:
        if self.bipartite is None:
            return _component_size(self.adjacency, self.adjacency.shape[0])
        if self.incidence is not None:
            # One group per person: the component is the group (a person in none is alone).
            group_size = self.incidence.sum(axis=0)
            return np.maximum(self.incidence @ group_size, 1).astype("int64")
        n_persons, n_groups = self.bipartite.shape
        square = sparse.block_array([[None, self.bipartite], [self.bipartite.T, None]], format="csr")
        return _component_size(square, n_persons)


def _component_size(graph: sparse.csr_array, n_persons: int) -> np.ndarray:
    """Persons in each person's connected component (groups are nodes of the graph but not counted)."""
    _, labels = csgraph.connected_components(graph, directed=False)
    persons_per_label = np.bincount(labels[:n_persons])
    return persons_per_label[labels[:n_persons]]


def _incidence(members: pd.DataFrame, n_persons: int) -> sparse.csr_array:
    n_groups = int(members["group"].max()) + 1 if len(members) else 0
    ones = np.ones(len(members), dtype=MATRIX_DTYPE)
    where = (members["person"].to_numpy(), members["group"].to_numpy())
    return sparse.csr_array((ones, where), shape=(n_persons, n_groups))


def _contact_matrix(incidence: sparse.csr_array, max_group_size: int, layer: str) -> sparse.csr_array:
    """Distinct contacts through shared groups (0/1, no diagonal), for layers where one pair can share
    several groups. Formed explicitly, so only small groups are allowed."""
    sizes = np.asarray(incidence.sum(axis=0)).ravel()
    if len(sizes) and sizes.max() > max_group_size:
        raise ValueError(
            f"network: a {layer} group has {int(sizes.max())} members, more than network.max_group_size "
            f"({max_group_size}); {layer} contacts are formed pairwise, so a group this large is likely a "
            "data error (a blank class or parent id?)"
        )
    return _binary_without_diagonal(incidence @ incidence.T)


def _binary_without_diagonal(matrix: sparse.csr_array) -> sparse.csr_array:
    """1 where ``matrix`` is positive off the diagonal, structurally 0 elsewhere."""
    binary = sparse.csr_array(matrix, copy=True)
    binary.data = (binary.data > 0).astype(MATRIX_DTYPE)
    binary = binary - sparse.diags_array(binary.diagonal(), format="csr")
    binary.eliminate_zeros()
    return binary


def _layer(memberships: LayerMemberships, name: str, max_group_size: int) -> _Layer:
    n = memberships.n_persons
    if name == "family":
        links = memberships.family_links
        ones = np.ones(2 * len(links), dtype=MATRIX_DTYPE)
        rows = np.concatenate([links["person"].to_numpy(), links["relative"].to_numpy()])
        cols = np.concatenate([links["relative"].to_numpy(), links["person"].to_numpy()])
        direct = sparse.csr_array((ones, (rows, cols)), shape=(n, n))
        siblings = _contact_matrix(_incidence(memberships.parents, n), max_group_size, "family (siblings)")
        return _Layer(None, _binary_without_diagonal(direct + siblings), None)
    members = memberships.groups[name]
    incidence = _incidence(members, n)
    if members["person"].duplicated().any():
        return _Layer(None, _contact_matrix(incidence, max_group_size, name), incidence)
    return _Layer(incidence, None, incidence)


def exposure_features(
    memberships: LayerMemberships,
    status: pd.DataFrame,
    layers: Sequence[str] = LAYERS,
    max_group_size: int = 5000,
) -> pd.DataFrame:
    """Exposure features of every resident (row position = node number), columns
    ``<layer>_<exposure>`` for each layer and, with family, ``family_two_hop_contacts`` and
    ``family_two_hop_share_on_support``.

    ``status`` holds ``on_support``, ``employed``, ``support_weeks`` per resident in node order
    (:func:`contact_status`). Shares and means are NaN for a person without contacts; component sizes
    count the person, so a person without contacts has 1.
    """
    return pd.DataFrame(exposure_columns(memberships, status, layers, max_group_size))


def exposure_columns(
    memberships: LayerMemberships,
    status: pd.DataFrame,
    layers: Sequence[str] = LAYERS,
    max_group_size: int = 5000,
) -> dict[str, np.ndarray]:
    """The columns of :func:`exposure_features` as arrays, not yet a frame: a frame copies them all
    into one block (8 s and a second copy of every resident's columns at a million persons), and
    the stage takes the cohort members' rows from the arrays anyway."""
    _check_layers(layers)
    on_support = status["on_support"].to_numpy("float64")
    employed = status["employed"].to_numpy("float64")
    support_weeks = status["support_weeks"].to_numpy("float64")
    ones = np.ones(memberships.n_persons)
    # One sparse pass over the four status vectors at once: (persons x 4) -> (persons x 4).
    values = np.column_stack([ones, on_support, employed, support_weeks])
    columns: dict[str, np.ndarray] = {}
    for name in layers:
        log.info("network: layer %s", name)
        layer = _layer(memberships, name, max_group_size)
        contacts, supported, working, weeks = layer.neighbour_sum(values).T
        columns[f"{name}_contacts"] = contacts
        columns[f"{name}_on_support"] = supported
        columns[f"{name}_share_on_support"] = _share(supported, contacts)
        columns[f"{name}_share_employed"] = _share(working, contacts)
        columns[f"{name}_mean_support_weeks"] = _share(weeks, contacts)
        columns[f"{name}_component_size"] = layer.component_size()
        if name == "family":
            two_hop_contacts, two_hop_supported = (_two_hop(layer.adjacency) @ values[:, :2]).T
            columns["family_two_hop_contacts"] = two_hop_contacts
            columns["family_two_hop_share_on_support"] = _share(two_hop_supported, two_hop_contacts)
    # counts as int32 before a frame is built, not converted column by column in a built frame
    return {column: np.rint(column_values).astype("int32") if _is_count(column) else column_values
            for column, column_values in columns.items()}


def _two_hop(adjacency: sparse.csr_array) -> sparse.csr_array:
    """Persons at distance exactly 2: reachable in two steps, not self, not a direct contact."""
    paths = adjacency @ adjacency  # number of two-step paths, at most the largest degree
    # Pushing self and direct contacts below zero in one subtraction drops them together.
    barrier = float(adjacency.sum(axis=1).max(initial=0)) + 1
    blocked = (adjacency + sparse.eye_array(adjacency.shape[0], dtype=MATRIX_DTYPE, format="csr")) * barrier
    reachable = paths - blocked
    reachable.data = (reachable.data > 0).astype(MATRIX_DTYPE)
    reachable.eliminate_zeros()
    return reachable


def _share(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def _is_count(column: str) -> bool:
    return any(column.endswith("_" + exposure) for exposure in COUNT_EXPOSURES) and "share" not in column


def _check_layers(layers: Iterable[str]) -> None:
    unknown = sorted(set(layers) - set(LAYERS))
    if unknown:
        raise ValueError(f"network.layers: unknown layer(s) {unknown}; known: {list(LAYERS)}")


def feature_columns(layers: Sequence[str] = LAYERS) -> list[str]:
    """The feature columns :func:`exposure_features` writes for ``layers``, in order."""
    columns = []
    for name in layers:
        columns += [f"{name}_{exposure}" for exposure in EXPOSURES]
        if name == "family":
            columns += [f"family_{exposure}" for exposure in TWO_HOP_EXPOSURES]
    return columns


def network_feature_families(columns: Iterable[str]) -> dict[str, str]:
    """Feature family (the layer name) of each network feature column; other columns are left out."""
    families = {}
    for column in columns:
        layer = next((name for name in LAYERS if column.startswith(name + "_")), None)
        if layer is not None:
            families[column] = layer
    return families


def network_features(
    registers: NetworkRegisters,
    benefits: pd.DataFrame,
    employment: pd.DataFrame,
    cohorts: pd.DataFrame,
    layers: Sequence[str] = LAYERS,
    max_group_size: int = 5000,
    support_window_weeks: int = 52,
) -> pd.DataFrame:
    """One row per ``as_of`` x ``person_id`` of the union of ``cohorts`` (any target), with the
    network features of :func:`exposure_features` computed over all residents at that date.

    The rows of :func:`network_features_by_date` in one table (the whole table in memory; the
    stage writes it date by date instead).
    """
    parts = list(network_features_by_date(registers, benefits, employment, cohorts, layers, max_group_size,
                                          support_window_weeks))
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def network_features_by_date(
    registers: NetworkRegisters,
    benefits: pd.DataFrame,
    employment: pd.DataFrame,
    cohorts: pd.DataFrame,
    layers: Sequence[str] = LAYERS,
    max_group_size: int = 5000,
    support_window_weeks: int = 52,
    threads: int = 1,
) -> Iterator[pd.DataFrame]:
    """:func:`network_features`, one frame per as-of date in date order (one empty frame with every
    column when ``cohorts`` has no rows), so a caller can write each and let it go.

    ``registers`` come from :func:`network_registers` (the caller can let go of the tables it coded
    them from). Rows are sorted by ``as_of`` and ``person_id``. A cohort member who is not a
    resident at ``as_of`` has no contacts: counts 0, shares NaN, component size 1. Up to
    ``threads`` dates are computed at a time, as memory allows
    (:func:`lyskegle.concurrency.map_in_order`); the rows are the same either way.
    """
    _check_layers(layers)
    columns = feature_columns(layers)
    wanted = cohort_members(cohorts)
    if wanted.empty:
        yield pd.DataFrame({"as_of": wanted["as_of"], "person_id": wanted["person_id"],
                            **{column: np.zeros(0) for column in columns}})
        return
    benefit_codes, employment_codes = codes_of([benefits["person_id"], employment["person_id"]],
                                               registers.person_ids, threads)
    coded_benefits = _coded_runs(benefits, benefit_codes.astype("int64"))
    coded_employment = _coded_runs(employment, employment_codes.astype("int64"))
    # a generator's arguments live as long as it does: the runs with text ids are let go here
    del benefits, employment
    wanted_codes = registers.person_codes(wanted["person_id"])
    runs = list(as_of_runs(wanted["as_of"]))

    def at(run: tuple[dt.date, int, int]) -> pd.DataFrame:
        as_of, start, stop = run
        memberships = memberships_at(registers, as_of)
        status = _coded_status(
            coded_benefits, coded_employment, memberships.person_codes, len(registers.person_ids), as_of,
            support_window_weeks,
        )
        features = exposure_columns(memberships, status, layers, max_group_size)
        nodes = positions_of_codes(memberships.person_codes, len(registers.person_ids))[wanted_codes[start:stop]]
        resident = nodes >= 0
        part = {"as_of": wanted["as_of"].array[start:stop], "person_id": wanted["person_id"].array[start:stop]}
        for column in columns:
            values = features[column]
            # A person who is not a resident gets the values of a person without contacts.
            taken = values[np.maximum(nodes, 0)] if len(values) else np.zeros(len(nodes), dtype=values.dtype)
            part[column] = np.where(resident, taken, _without_contacts(column)).astype(values.dtype, copy=False)
        return pd.DataFrame(part)

    by_date = map_in_order(at, runs, threads, sizes=[stop - start for _, start, stop in runs],
                           what="network's as-of dates")
    yield from tqdm(by_date, total=len(runs), desc="network as-of dates", disable=None)


def _without_contacts(column: str) -> float:
    """The value of ``column`` for a person without contacts."""
    return 1 if column.endswith("_component_size") else 0 if _is_count(column) else np.nan


def layer_summary(features: pd.DataFrame, layers: Sequence[str], min_cell: int) -> list[dict]:
    """Aggregate figures per as-of date and layer for ``reports/network.json``: persons with at least
    one contact, their mean number of contacts, mean share of contacts on support and mean component
    size. Rows over fewer than ``min_cell`` persons are suppressed."""
    return shown_layer_summary(layer_figures(features, layers), min_cell)


def layer_figures(features: pd.DataFrame, layers: Sequence[str]) -> list[dict]:
    """The rows of :func:`layer_summary` before suppression, for the as-of dates in ``features``
    (so a caller with one date at a time can collect them and suppress once)."""
    rows = []
    for as_of, frame in features.groupby("as_of", sort=True):
        for name in layers:
            linked = frame.loc[frame[f"{name}_contacts"] > 0]
            rows.append({
                "as_of": str(as_of), "layer": name, "persons_with_contacts": len(linked),
                "mean_contacts": float(linked[f"{name}_contacts"].mean()) if len(linked) else np.nan,
                "mean_share_on_support": float(linked[f"{name}_share_on_support"].mean()) if len(linked) else np.nan,
                "mean_component_size": float(linked[f"{name}_component_size"].mean()) if len(linked) else np.nan,
            })
    return rows


def shown_layer_summary(rows: list[dict], min_cell: int) -> list[dict]:
    """:func:`layer_figures` rows with the figures over fewer than ``min_cell`` persons suppressed."""
    table = pd.DataFrame(rows, columns=[
        "as_of", "layer", "persons_with_contacts", "mean_contacts", "mean_share_on_support", "mean_component_size",
    ])
    shown = suppress_small_cells(
        table, "persons_with_contacts", min_cell,
        value_columns=["mean_contacts", "mean_share_on_support", "mean_component_size"], total_groups=None,
    )
    records = shown.astype(object).to_dict(orient="records")
    for record in records:
        for key, value in record.items():
            record[key] = None if pd.isna(value) else int(value) if key == "persons_with_contacts" else value
    return records
