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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph
from tqdm import tqdm

from lyskegle.calendar import month_of_week, week_index
from lyskegle.privacy import suppress_small_cells
from lyskegle.status import employed_in_month, on_support_in_week, support_weeks_between

log = logging.getLogger(__name__)

LAYERS = ("household", "family", "stairwell", "coworkers", "classmates")
EXPOSURES = ("contacts", "on_support", "share_on_support", "share_employed", "mean_support_weeks", "component_size")
TWO_HOP_EXPOSURES = ("two_hop_contacts", "two_hop_share_on_support")
#: 0/1 matrices and path counts are small integers, exact in float32 (half the memory of float64).
MATRIX_DTYPE = "float32"
COUNT_EXPOSURES = frozenset({"contacts", "on_support", "component_size", "two_hop_contacts"})


@dataclass(frozen=True)
class LayerMemberships:
    """Who is linked to whom at one as-of date, before any graph is built.

    ``residents``: one row per resident, row position = node number; columns ``person_id``,
    ``dwelling_id``, ``stairwell_id``, ``area``.
    ``groups``: layer -> frame with ``person`` (node number) and ``group`` (int code), one row per
    distinct membership. ``family_links``: direct ties ``person``, ``relative`` (node numbers; partner
    and parent-child, each pair once with ``person < relative``). ``parents``: ``person``, ``group``
    (int code of a parent id): children of the same parent are siblings.
    """

    residents: pd.DataFrame
    groups: dict[str, pd.DataFrame]
    family_links: pd.DataFrame
    parents: pd.DataFrame

    @property
    def n_persons(self) -> int:
        return len(self.residents)


def layer_memberships(
    population: pd.DataFrame,
    dwellings: pd.DataFrame,
    jobs: pd.DataFrame,
    classes: pd.DataFrame,
    as_of: dt.date,
) -> LayerMemberships:
    """Group memberships and family ties of the residents at ``as_of``.

    Expects the ingested tables of docs/DATA_MODEL.md: ``population`` (``person_id``, ``year``,
    ``dwelling_id``, ``family_id``, ``partner_id``, ``mother_id``, ``father_id``), ``dwellings``
    (``dwelling_id``, ``stairwell_id``, ``area``), ``jobs`` (``person_id``, ``year``,
    ``workplace_id``, ``job_type``), ``classes`` (``person_id``, ``year``, ``school_id``,
    ``class_name``). Household is the dwelling; a resident without a dwelling falls back on their
    ``family_id``. A resident with several primary jobs keeps the first listed. Residents are
    numbered in the order of their first row in ``population``.
    """
    year = as_of.year
    current = _rows(population, population["year"] == year, ["person_id", "dwelling_id", "family_id"])
    past = _rows(population, population["year"] <= year, ["person_id", "partner_id", "mother_id", "father_id"])
    primary = _rows(jobs, (jobs["year"] == year - 1) & (jobs["job_type"] == "H"), ["person_id", "workplace_id"])
    pupils = _rows(classes, classes["year"] <= year - 1, ["person_id", "year", "school_id", "class_name"])

    # Every person reference is hashed once, into one id space; links and groups then work on ints.
    (resident_code, past_person, partner, mother, father, worker, pupil), n_codes = _shared_codes([
        current["person_id"], past["person_id"], past["partner_id"], past["mother_id"], past["father_id"],
        primary["person_id"], pupils["person_id"],
    ])
    _, first_rows = np.unique(resident_code, return_index=True)
    first_rows = np.sort(first_rows[resident_code[first_rows] >= 0])
    node_of_code = np.full(n_codes + 1, -1, dtype="int64")  # the extra last slot answers code -1
    node_of_code[resident_code[first_rows]] = np.arange(len(first_rows))

    def node(codes: np.ndarray) -> np.ndarray:
        return node_of_code[codes]

    residents = current.iloc[first_rows]
    (dwelling, listed_dwelling), _ = _shared_codes([residents["dwelling_id"], dwellings["dwelling_id"]])
    row_of_dwelling = np.full(len(listed_dwelling) + len(dwelling) + 1, -1, dtype="int64")
    row_of_dwelling[listed_dwelling[::-1]] = np.arange(len(listed_dwelling))[::-1]  # first listed row wins
    place = row_of_dwelling[dwelling]
    stairwell = _take(_shared_codes([dwellings["stairwell_id"]])[0][0], place)
    area = _take_strings(dwellings["area"], place)

    everyone = np.arange(len(residents))
    family_unit = _shared_codes([residents["family_id"]])[0][0]
    # A resident without a dwelling is a household with their family; family codes follow dwelling codes.
    family_unit = np.where(family_unit >= 0, family_unit + len(dwelling) + len(listed_dwelling), -1)
    household = np.where(dwelling >= 0, dwelling, family_unit)
    groups = {
        "household": _members(everyone, household),
        "stairwell": _members(everyone, stairwell),
    }
    workplace = _shared_codes([primary["workplace_id"]])[0][0]
    first_job = _members(node(worker), workplace, keep_first_per_person=True)
    groups["coworkers"] = first_job

    (school, class_name), _ = _shared_codes([pupils["school_id"], pupils["class_name"]])
    class_keys = pd.DataFrame({"school": school, "class": class_name, "year": pupils["year"].to_numpy("int64")})
    class_code = class_keys.groupby(["school", "class", "year"], sort=False).ngroup().to_numpy()
    class_code = np.where((school >= 0) & (class_name >= 0), class_code, -1)
    groups["classmates"] = _members(node(pupil), class_code)

    person = node(past_person)
    pairs = []
    for relative in (node(partner), node(mother), node(father)):
        linked = (person >= 0) & (relative >= 0) & (person != relative)
        pairs.append(np.column_stack([person[linked], relative[linked]]))
    pairs = _unique_pairs(np.sort(np.concatenate(pairs), axis=1))
    family_links = pd.DataFrame(pairs, columns=["person", "relative"]).astype("int64")
    # Siblings share a parent; the parent need not be a resident to make two residents siblings.
    parents = _members(np.concatenate([person, person]), np.concatenate([mother, father]))

    resident_frame = pd.DataFrame({
        "person_id": _strings(residents["person_id"]).reset_index(drop=True),
        "dwelling_id": _strings(residents["dwelling_id"]).reset_index(drop=True),
        "stairwell_id": _take_strings(dwellings["stairwell_id"], place),
        "area": area,
    })
    return LayerMemberships(resident_frame, groups, family_links, parents)


def _rows(table: pd.DataFrame, mask: pd.Series, columns: list[str]) -> pd.DataFrame:
    """The ``columns`` of the rows where ``mask`` holds (a missing comparison, say a missing year,
    does not); the table itself when every row is kept, so large string columns are not copied."""
    keep = mask.to_numpy(dtype=bool, na_value=False)
    return table[columns] if keep.all() else table.loc[keep, columns]


def _strings(values: pd.Series) -> pd.Series:
    return values.astype("string[pyarrow]")


def _shared_codes(columns: Sequence[pd.Series]) -> tuple[list[np.ndarray], int]:
    """Int codes of the values of several columns in one shared code space (-1 for missing), and
    the number of distinct values."""
    joined = pd.concat([column.astype("string[pyarrow]") for column in columns], ignore_index=True)
    codes, uniques = pd.factorize(joined, use_na_sentinel=True)
    codes = codes.astype("int64")
    bounds = np.cumsum([0, *(len(column) for column in columns)])
    return [codes[a:b] for a, b in zip(bounds[:-1], bounds[1:])], len(uniques)


def _take(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``values[positions]``, with -1 where a position is -1."""
    return np.where(positions >= 0, values[np.maximum(positions, 0)] if len(values) else -1, -1)


def _take_strings(values: pd.Series, positions: np.ndarray) -> pd.Series:
    """``values`` at ``positions`` (missing where a position is -1), as a fresh 0..n-1 series."""
    if len(values) == 0:
        return pd.Series(pd.NA, index=range(len(positions)), dtype="string[pyarrow]")
    taken = _strings(values).iloc[np.maximum(positions, 0)].reset_index(drop=True)
    return taken.where(positions >= 0, pd.NA)


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
    week = week_index(as_of)
    last_week = week - 1
    # One hash table of the (many) persons, looked up with the (few) persons who have a status.
    ids = pd.Index(person_ids.astype("string"))
    weeks = support_weeks_between(benefits, week - support_window_weeks, week)
    return pd.DataFrame({
        "on_support": _flags(ids, on_support_in_week(benefits, last_week)),
        "employed": _flags(ids, employed_in_month(employment, int(month_of_week(last_week)))),
        "support_weeks": _values(ids, weeks),
    })


def _flags(ids: pd.Index, present: pd.Index) -> np.ndarray:
    flags = np.zeros(len(ids), dtype=bool)
    positions = ids.get_indexer(pd.Index(present).astype("string"))
    flags[positions[positions >= 0]] = True
    return flags


def _values(ids: pd.Index, counts: pd.Series) -> np.ndarray:
    values = np.zeros(len(ids), dtype="int64")
    positions = ids.get_indexer(pd.Index(counts.index).astype("string"))
    values[positions[positions >= 0]] = counts.to_numpy("int64")[positions >= 0]
    return values


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
    frame = pd.DataFrame(columns)
    for column in frame.columns:
        if _is_count(column):
            frame[column] = np.rint(frame[column].to_numpy()).astype("int32")
    return frame


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
    population: pd.DataFrame,
    dwellings: pd.DataFrame,
    jobs: pd.DataFrame,
    classes: pd.DataFrame,
    benefits: pd.DataFrame,
    employment: pd.DataFrame,
    cohorts: pd.DataFrame,
    layers: Sequence[str] = LAYERS,
    max_group_size: int = 5000,
    support_window_weeks: int = 52,
) -> pd.DataFrame:
    """One row per ``as_of`` x ``person_id`` of the union of ``cohorts`` (any target), with the
    network features of :func:`exposure_features` computed over all residents at that date.

    A cohort member who is not a resident at ``as_of`` has no contacts: counts 0, shares NaN,
    component size 1.
    """
    _check_layers(layers)
    wanted = cohorts[["as_of", "person_id"]].drop_duplicates()
    frames = []
    for as_of, members in tqdm(wanted.groupby("as_of", sort=True), desc="network as-of dates", disable=None):
        as_of = pd.Timestamp(as_of).date()
        memberships = layer_memberships(population, dwellings, jobs, classes, as_of)
        status = contact_status(benefits, employment, memberships.residents["person_id"], as_of, support_window_weeks)
        features = exposure_features(memberships, status, layers, max_group_size)
        residents = pd.Index(memberships.residents["person_id"])
        frames.append(_for_persons(features, residents, members["person_id"], as_of))
    columns = ["as_of", "person_id", *feature_columns(layers)]
    if not frames:
        return pd.DataFrame({column: pd.Series(dtype="float64") for column in columns})
    out = pd.concat(frames, ignore_index=True)
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date.astype("date32[pyarrow]")
    out["person_id"] = out["person_id"].astype("string[pyarrow]")
    return out[columns]


def _for_persons(
    features: pd.DataFrame, residents: pd.Index, person_ids: pd.Series, as_of: dt.date,
) -> pd.DataFrame:
    """Rows of ``features`` (in the order of ``residents``) for ``person_ids``, sorted by id; a
    person who is not a resident gets the row of a person without contacts."""
    ids = pd.Index(person_ids.astype("string").sort_values().unique())
    positions = residents.get_indexer(ids)
    nobody = {
        column: 1 if column.endswith("_component_size") else 0 if _is_count(column) else np.nan
        for column in features.columns
    }
    padded = pd.concat([features, pd.DataFrame([nobody]).astype(features.dtypes)], ignore_index=True)
    rows = padded.iloc[np.where(positions >= 0, positions, len(features))].reset_index(drop=True)
    rows.insert(0, "person_id", ids)
    rows.insert(0, "as_of", as_of)
    return rows.reset_index(drop=True)


def layer_summary(features: pd.DataFrame, layers: Sequence[str], min_cell: int) -> list[dict]:
    """Aggregate figures per as-of date and layer for ``reports/network.json``: persons with at least
    one contact, their mean number of contacts, mean share of contacts on support and mean component
    size. Rows over fewer than ``min_cell`` persons are suppressed."""
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
