import datetime as dt
import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyskegle.calendar import month_index, week_index
from lyskegle.network import (
    LAYERS,
    LayerMemberships,
    contact_status,
    exposure_features,
    feature_columns,
    layer_memberships,
    layer_figures,
    layer_summary,
    network_feature_families,
    network_features,
    network_features_by_date,
    network_registers,
    shown_layer_summary,
)
from lyskegle.network_reference import area_graph, reference_exposure_features

AS_OF = dt.date(2020, 1, 6)  # a Monday; the week before starts 2019-12-30, which is in January 2020's month
WEEK = week_index(AS_OF)
JANUARY_2020 = month_index(2020, 1)

# The world at AS_OF (all residents in 2020):
#   dwelling d1 (stairwell s1): ann, bob (partners) and their child cat
#   dwelling d2 (stairwell s1): dan             dwelling d3 (stairwell s2): eve, ann's mother
#   dwelling d4 (stairwell s2): fay
#   gus, another child of ann and bob, lived at d1 in 2019 but has moved out of the municipality.
POPULATION = pd.DataFrame({
    "person_id": ["ann", "bob", "cat", "dan", "eve", "fay", "ann", "bob", "cat", "gus"],
    "year": [2020] * 6 + [2019] * 4,
    "dwelling_id": ["d1", "d1", "d1", "d2", "d3", "d4", "d1", "d1", "d1", "d1"],
    "family_id": ["f1", "f1", "f1", "f2", "f3", "f4", "f1", "f1", "f1", "f1"],
    "partner_id": ["bob", "ann", None, None, None, None, "bob", "ann", None, None],
    "mother_id": ["eve", None, "ann", None, None, None, "eve", None, "ann", "ann"],
    "father_id": [None, None, "bob", None, None, None, None, None, "bob", "bob"],
})
DWELLINGS = pd.DataFrame({
    "dwelling_id": ["d1", "d2", "d3", "d4"],
    "stairwell_id": ["s1", "s1", "s2", "s2"],
    "building_id": ["b1", "b1", "b1", "b1"],
    "area": ["parken", "parken", "parken", None],
    "floor": ["1", "2", "1", "2"],
    "door": ["th", "th", "tv", "tv"],
})
# Workplace w1 in November 2019: ann, dan, fay (primary); eve only as a secondary job. bob alone at w2.
# cat's job at w1 is from 2020, after the as-of date, and must not count.
JOBS = pd.DataFrame({
    "person_id": ["ann", "dan", "fay", "eve", "bob", "cat"],
    "year": [2019, 2019, 2019, 2019, 2019, 2020],
    "workplace_id": ["w1", "w1", "w1", "w1", "w2", "w1"],
    "firm_id": ["c1"] * 6,
    "job_type": ["H", "H", "H", "B", "H", "H"],
    "job_category": ["x"] * 6,
})
# cat and fay shared class 3a in 2018; cat, fay and dan shared 4a in 2019. The 2020 class is too late.
CLASSES = pd.DataFrame({
    "person_id": ["cat", "fay", "cat", "fay", "dan", "cat", "ann"],
    "year": [2018, 2018, 2019, 2019, 2019, 2020, 2020],
    "school_id": ["k1"] * 7,
    "class_name": ["3a", "3a", "4a", "4a", "4a", "5a", "5a"],
    "class_type": ["40"] * 7,
    "grade": [3, 3, 4, 4, 4, 5, 5],
})
# In the week before AS_OF ann is on cash benefit (131) and dan on sickness benefit (891); bob is on
# SU (651), which is not public support. eve had 20 weeks of cash benefit that ended in the autumn.
# Support weeks in the last 52: ann 10, dan 4, eve 20. bob and fay worked in January 2020.
BENEFITS = pd.DataFrame({
    "person_id": ["ann", "dan", "bob", "eve"],
    "code": [131, 891, 651, 131],
    "first_week": [WEEK - 10, WEEK - 4, WEEK - 30, WEEK - 40],
    "n_weeks": [12, 4, 40, 20],
})
EMPLOYMENT = pd.DataFrame({  # dan starts work in February, after the as-of month
    "person_id": ["bob", "fay", "dan"],
    "first_month": [JANUARY_2020 - 5, JANUARY_2020, JANUARY_2020 + 1],
    "n_months": [6, 1, 3],
})


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    memberships = layer_memberships(POPULATION, DWELLINGS, JOBS, CLASSES, AS_OF)
    status = contact_status(BENEFITS, EMPLOYMENT, memberships.residents["person_id"], AS_OF, 52)
    frame = exposure_features(memberships, status)
    frame.index = memberships.residents["person_id"].to_numpy()
    return frame


def test_status_of_the_contacts_at_the_as_of_date():
    status = contact_status(BENEFITS, EMPLOYMENT, pd.Series(["ann", "bob", "dan", "eve", "fay"]), AS_OF, 52)
    assert status["on_support"].tolist() == [True, False, True, False, False]
    assert status["employed"].tolist() == [False, True, False, False, True]
    assert status["support_weeks"].tolist() == [10, 0, 4, 20, 0]


def test_household_exposure_leaves_out_the_person_themselves(features):
    # cat lives with ann (on support, 10 weeks) and bob (employed)
    assert features.loc["cat", "household_contacts"] == 2
    assert features.loc["cat", "household_on_support"] == 1
    assert features.loc["cat", "household_share_on_support"] == 0.5
    assert features.loc["cat", "household_share_employed"] == 0.5
    assert features.loc["cat", "household_mean_support_weeks"] == 5.0
    # ann's own support does not count for ann: her household is bob and cat, neither on support
    assert features.loc["ann", "household_on_support"] == 0
    assert features.loc["ann", "household_component_size"] == 3


def test_a_person_living_alone_has_no_household_contacts(features):
    assert features.loc["dan", "household_contacts"] == 0
    assert math.isnan(features.loc["dan", "household_share_on_support"])
    assert math.isnan(features.loc["dan", "household_mean_support_weeks"])
    assert features.loc["dan", "household_component_size"] == 1


def test_stairwell_exposure(features):
    # stairwell s1 holds ann, bob, cat (d1) and dan (d2)
    assert features.loc["dan", "stairwell_contacts"] == 3
    assert features.loc["dan", "stairwell_on_support"] == 1  # ann
    assert features.loc["dan", "stairwell_mean_support_weeks"] == pytest.approx(10 / 3)
    assert features.loc["ann", "stairwell_share_on_support"] == pytest.approx(1 / 3)  # dan
    assert features.loc["ann", "stairwell_share_employed"] == pytest.approx(1 / 3)  # bob
    # stairwell s2: eve and fay
    assert features.loc["eve", "stairwell_share_employed"] == 1.0
    assert features.loc["fay", "stairwell_mean_support_weeks"] == 20.0
    assert features.loc["fay", "stairwell_component_size"] == 2


def test_coworkers_count_primary_jobs_of_the_year_before_only(features):
    # w1: ann, dan, fay (eve's secondary job and cat's 2020 job do not count)
    assert features.loc["fay", "coworkers_contacts"] == 2
    assert features.loc["fay", "coworkers_on_support"] == 2
    assert features.loc["fay", "coworkers_share_on_support"] == 1.0
    assert features.loc["ann", "coworkers_share_employed"] == 0.5  # fay
    assert features.loc["ann", "coworkers_mean_support_weeks"] == 2.0  # (dan 4 + fay 0) / 2
    assert features.loc["eve", "coworkers_contacts"] == 0
    assert features.loc["cat", "coworkers_contacts"] == 0
    assert features.loc["bob", "coworkers_component_size"] == 1


def test_classmates_over_several_years_are_counted_once(features):
    # cat met fay in 2018 and again in 2019, and dan in 2019: two distinct classmates
    assert features.loc["cat", "classmates_contacts"] == 2
    assert features.loc["cat", "classmates_on_support"] == 1  # dan
    assert features.loc["fay", "classmates_contacts"] == 2
    assert features.loc["dan", "classmates_component_size"] == 3
    assert features.loc["ann", "classmates_contacts"] == 0  # her class is in 2020, not before


def test_family_direct_and_two_hop(features):
    # family ties: ann-bob partners, cat child of both, eve mother of ann; gus has moved away
    assert features.loc["ann", "family_contacts"] == 3  # bob, cat, eve
    assert features.loc["ann", "family_on_support"] == 0
    assert features.loc["eve", "family_on_support"] == 1  # ann
    assert features.loc["cat", "family_share_on_support"] == 0.5
    assert features.loc["cat", "family_component_size"] == 4
    # two hops: cat's grandmother eve; eve's son-in-law bob and grandchild cat; ann has none
    assert features.loc["cat", "family_two_hop_contacts"] == 1
    assert features.loc["cat", "family_two_hop_share_on_support"] == 0.0
    assert features.loc["eve", "family_two_hop_contacts"] == 2
    assert features.loc["ann", "family_two_hop_contacts"] == 0
    assert math.isnan(features.loc["ann", "family_two_hop_share_on_support"])
    assert features.loc["dan", "family_component_size"] == 1


def test_siblings_through_a_parent_who_is_not_a_resident():
    population = pd.DataFrame({
        "person_id": ["kim", "lea", "max"], "year": [2020] * 3, "dwelling_id": ["d1", "d2", "d3"],
        "family_id": ["f1", "f2", "f3"], "partner_id": [None] * 3,
        "mother_id": ["mia", "mia", None], "father_id": ["ole", "ole", None],
    })
    memberships = layer_memberships(population, DWELLINGS, JOBS.iloc[:0], CLASSES.iloc[:0], AS_OF)
    status = pd.DataFrame({"on_support": [False, True, True], "employed": [False] * 3, "support_weeks": [0, 3, 9]})
    frame = exposure_features(memberships, status, ["family"])
    # kim and lea share both parents but are one sibling to each other, not two
    assert frame["family_contacts"].tolist() == [1, 1, 0]
    assert frame["family_on_support"].tolist() == [1, 0, 0]


def test_cohort_rows_include_persons_who_are_not_residents():
    cohorts = pd.DataFrame({
        "target": ["exit_26w", "self_sufficient", "self_sufficient"],
        "as_of": [AS_OF] * 3, "person_id": ["cat", "cat", "zed"],
    })
    out = network_features(network_registers(POPULATION, DWELLINGS, JOBS, CLASSES), BENEFITS, EMPLOYMENT, cohorts)
    assert out["person_id"].tolist() == ["cat", "zed"]
    assert list(out.columns) == ["as_of", "person_id", *feature_columns()]
    zed = out.iloc[1]
    assert zed["household_contacts"] == 0 and zed["stairwell_component_size"] == 1
    assert math.isnan(zed["family_share_employed"])
    assert out.iloc[0]["classmates_contacts"] == 2


def test_no_cohort_rows_give_an_empty_table_with_every_column():
    cohorts = pd.DataFrame({"target": [], "as_of": [], "person_id": []}, dtype=object)
    out = network_features(network_registers(POPULATION, DWELLINGS, JOBS, CLASSES), BENEFITS, EMPLOYMENT, cohorts)
    assert out.empty and list(out.columns) == ["as_of", "person_id", *feature_columns()]


def test_features_come_one_as_of_date_at_a_time_and_their_figures_make_the_whole_summary():
    later = dt.date(2021, 1, 4)
    cohorts = pd.DataFrame({
        "target": ["self_sufficient"] * 5,
        "as_of": [later, AS_OF, AS_OF, later, AS_OF], "person_id": ["ann", "bob", "ann", "zed", "gus"],
    })
    registers = network_registers(POPULATION, DWELLINGS, JOBS, CLASSES)
    parts = list(network_features_by_date(registers, BENEFITS, EMPLOYMENT, cohorts))
    assert [part["as_of"].unique().tolist() for part in parts] == [[AS_OF], [later]]
    assert [part["person_id"].tolist() for part in parts] == [["ann", "bob", "gus"], ["ann", "zed"]]
    whole = network_features(registers, BENEFITS, EMPLOYMENT, cohorts)
    # counts stay integers where a non-resident's "no contacts" value is filled in
    assert all(whole[c].dtype.kind == "i" for c in whole.columns if c.endswith("_contacts"))
    assert whole.loc[whole["person_id"] == "zed", "household_contacts"].tolist() == [0]
    figures = [row for part in parts for row in layer_figures(part, LAYERS)]
    assert shown_layer_summary(figures, min_cell=1) == layer_summary(whole, LAYERS, min_cell=1)


def test_dates_computed_two_at_a_time_give_the_same_rows():
    dates = [AS_OF + dt.timedelta(weeks=52 * k) for k in range(4)]
    cohorts = pd.DataFrame({"target": "self_sufficient", "as_of": [d for d in dates for _ in range(3)],
                            "person_id": ["ann", "bob", "zed"] * 4})
    registers = network_registers(POPULATION, DWELLINGS, JOBS, CLASSES)
    one_by_one = list(network_features_by_date(registers, BENEFITS, EMPLOYMENT, cohorts, threads=1))
    two_at_a_time = list(network_features_by_date(registers, BENEFITS, EMPLOYMENT, cohorts, threads=2))
    assert len(one_by_one) == len(two_at_a_time) == 4
    for alone, beside in zip(one_by_one, two_at_a_time):
        pd.testing.assert_frame_equal(beside, alone, check_exact=True)


def test_a_too_large_class_is_refused_with_the_params_key():
    members = pd.DataFrame({"person": [0, 1, 2, 0], "group": [0, 0, 0, 1]})
    memberships = _memberships(3, {"classmates": members})
    with pytest.raises(ValueError, match="network.max_group_size"):
        exposure_features(memberships, _status(3), ["classmates"], max_group_size=2)


def test_a_large_workplace_is_fine_because_it_is_never_expanded():
    members = pd.DataFrame({"person": [0, 1, 2], "group": [0, 0, 0]})
    frame = exposure_features(_memberships(3, {"coworkers": members}), _status(3), ["coworkers"], max_group_size=2)
    assert frame["coworkers_contacts"].tolist() == [2, 2, 2]


def test_feature_families_are_the_layer_names():
    families = network_feature_families(["as_of", "household_contacts", "family_two_hop_contacts", "age"])
    assert families == {"household_contacts": "household", "family_two_hop_contacts": "family"}


def test_layer_summary_suppresses_small_layers(features):
    frame = features.reset_index(drop=True).assign(as_of=AS_OF)
    summary = {row["layer"]: row for row in layer_summary(frame, LAYERS, min_cell=4)}
    assert summary["stairwell"]["persons_with_contacts"] == 6
    assert summary["stairwell"]["mean_contacts"] == pytest.approx((3 * 4 + 1 * 2) / 6)
    assert summary["family"]["persons_with_contacts"] == 4  # ann, bob, cat, eve
    # only ann, dan and fay have coworkers: fewer than 4 persons, so nothing about them is shown
    assert summary["coworkers"]["suppressed"] is True
    assert summary["coworkers"]["persons_with_contacts"] is None
    assert summary["coworkers"]["mean_share_on_support"] is None


def test_area_graph_keeps_only_the_area_and_labels_edges_by_layer():
    memberships = layer_memberships(POPULATION, DWELLINGS, JOBS, CLASSES, AS_OF)
    status = contact_status(BENEFITS, EMPLOYMENT, memberships.residents["person_id"], AS_OF, 52)
    graph = area_graph(memberships, status, "parken")
    assert sorted(graph.nodes) == ["ann", "bob", "cat", "dan", "eve"]  # fay's dwelling is not in the area
    assert graph.nodes["ann"] == {"on_support": True, "employed": False, "stairwell": "s1"}
    # dan: stairwell with ann, bob, cat; coworker of ann (fay is outside); classmate of cat
    assert sorted(key for _, _, key in graph.edges("dan", keys=True)) == [
        "classmates", "coworkers", "stairwell", "stairwell", "stairwell",
    ]
    assert [data["layer"] for _, _, data in graph.edges("eve", data=True)] == ["family"]  # her daughter ann
    with pytest.raises(ValueError, match="nowhere"):
        area_graph(memberships, status, "nowhere")


# --- the fast path equals the networkx reference on random networks ---------------------------------

def _memberships(n: int, groups: dict[str, pd.DataFrame], links=None, parents=None) -> LayerMemberships:
    empty = pd.DataFrame({"person": pd.Series(dtype="int64"), "group": pd.Series(dtype="int64")})
    residents = pd.DataFrame({
        "person_id": [f"q{i:03d}" for i in range(n)], "dwelling_id": None, "stairwell_id": None, "area": None,
    }).astype("string")
    return LayerMemberships(
        residents,
        {name: groups.get(name, empty) for name in ("household", "stairwell", "coworkers", "classmates")},
        links if links is not None else pd.DataFrame({"person": pd.Series(dtype="int64"), "relative": pd.Series(dtype="int64")}),
        parents if parents is not None else empty,
    )


def _status(n: int) -> pd.DataFrame:
    return pd.DataFrame({"on_support": [False] * n, "employed": [False] * n, "support_weeks": [0] * n})


@st.composite
def random_networks(draw):
    n = draw(st.integers(1, 14))
    person = st.integers(0, n - 1)

    def single_groups():  # each person in at most one group (dwelling, stairwell, workplace)
        labels = draw(st.lists(st.one_of(st.none(), st.integers(0, 4)), min_size=n, max_size=n))
        rows = [(p, g) for p, g in enumerate(labels) if g is not None]
        return pd.DataFrame(rows, columns=["person", "group"], dtype="int64")

    def several_groups():  # classes over several years, children of several parents
        rows = draw(st.lists(st.tuples(person, st.integers(0, 5)), max_size=3 * n, unique=True))
        return pd.DataFrame(rows, columns=["person", "group"], dtype="int64")

    pairs = draw(st.lists(st.tuples(person, person).filter(lambda p: p[0] < p[1]), max_size=2 * n, unique=True))
    links = pd.DataFrame(pairs, columns=["person", "relative"], dtype="int64")
    groups = {"household": single_groups(), "stairwell": single_groups(), "coworkers": single_groups(),
              "classmates": several_groups()}
    memberships = _memberships(n, groups, links, several_groups())
    status = pd.DataFrame({
        "on_support": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        "employed": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        "support_weeks": draw(st.lists(st.integers(0, 52), min_size=n, max_size=n)),
    })
    return memberships, status


@settings(max_examples=100, deadline=None)
@given(random_networks())
def test_fast_path_equals_the_networkx_reference(network):
    memberships, status = network
    fast = exposure_features(memberships, status)
    reference = reference_exposure_features(memberships, status)
    assert list(fast.columns) == list(reference.columns) == feature_columns()
    for column in fast.columns:
        assert fast[column].dtype == reference[column].dtype, column
        np.testing.assert_allclose(fast[column].to_numpy("float64"), reference[column].to_numpy("float64"),
                                   rtol=1e-12, equal_nan=True, err_msg=column)


def test_reference_graph_of_a_layer_is_one_edge_per_pair():
    members = pd.DataFrame({"person": [0, 1, 2, 0, 1], "group": [0, 0, 0, 1, 1]})
    memberships = _memberships(4, {"classmates": members})
    from lyskegle.network_reference import layer_graph
    graph = layer_graph(memberships, "classmates")
    assert sorted(graph.edges) == [(0, 1), (0, 2), (1, 2)] and graph.number_of_nodes() == 4
    assert nx.number_connected_components(graph) == 2


# --- the stage and the export, run as commands on the hand-made world -------------------------------

def _write_world(folder) -> None:
    from lyskegle import io
    tables = {"population": POPULATION, "dwellings": DWELLINGS, "jobs": JOBS, "classes": CLASSES,
              "benefits": BENEFITS, "employment": EMPLOYMENT}
    for name, frame in tables.items():
        io.write_parquet(frame, folder / f"{name}.parquet")
    cohorts = pd.DataFrame({"target": ["exit_26w", "exit_26w"], "as_of": [AS_OF, AS_OF], "person_id": ["ann", "dan"]})
    io.write_parquet(cohorts, folder / "cohorts.parquet")
    (folder / "params.yaml").write_text(
        "network:\n  layers: [household, family, stairwell, coworkers, classmates]\n  max_group_size: 50\n"
        "  support_window_weeks: 52\nprivacy:\n  min_cell: 5\n"
    )


def _run(script: str, *args, monkeypatch) -> None:
    """Run a stage script as its command would, in this process (no second interpreter start-up)."""
    import runpy
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "pipelines" / script
    monkeypatch.setattr("sys.argv", [str(path), *map(str, args)])
    runpy.run_path(str(path), run_name="__main__")


def test_the_network_stage_writes_features_families_and_a_suppressed_summary(tmp_path, monkeypatch):
    from lyskegle import io
    _write_world(tmp_path)
    _run("network.py", "--params", tmp_path / "params.yaml", "--ingested", tmp_path,
         "--cohorts", tmp_path / "cohorts.parquet", "--out", tmp_path / "network", "--summary", tmp_path / "network.json",
         monkeypatch=monkeypatch)
    features = io.read_parquet(tmp_path / "network" / "network_features.parquet")
    assert features["person_id"].tolist() == ["ann", "dan"]
    assert features["stairwell_contacts"].tolist() == [3, 3]
    assert str(features["as_of"].dtype) == "date32[day][pyarrow]"
    families = io.read_json(tmp_path / "network" / "feature_families.json")
    assert families["coworkers_share_employed"] == "coworkers" and "person_id" not in families
    # two cohort members only: every layer row is below privacy.min_cell and suppressed
    summary = io.read_json(tmp_path / "network.json")["layers"]
    assert [row["persons_with_contacts"] for row in summary] == [None] * 5


def test_export_network_writes_the_area_graphml(tmp_path, monkeypatch):
    _write_world(tmp_path)
    out = tmp_path / "parken.graphml"
    _run("export_network.py", "--params", tmp_path / "params.yaml", "--ingested", tmp_path,
         "--area", "parken", "--as-of", AS_OF.isoformat(), "--out", out, monkeypatch=monkeypatch)
    graph = nx.read_graphml(out, force_multigraph=True)
    assert sorted(graph.nodes) == ["ann", "bob", "cat", "dan", "eve"]
    assert graph.nodes["dan"]["stairwell"] == "s1" and graph.nodes["dan"]["on_support"] is True
    assert sorted(data["layer"] for _, _, data in graph.edges("ann", data=True)) == [
        "coworkers", "family", "family", "family", "household", "household",
        "stairwell", "stairwell", "stairwell",
    ]


def test_network_params_reject_an_unknown_or_repeated_layer():
    from lyskegle.config import ParamsError, parse_section
    with pytest.raises(ParamsError, match=r"network\.layers"):
        parse_section("network", {"layers": ["household", "neighbours"]})
    with pytest.raises(ParamsError, match=r"network\.layers"):
        parse_section("network", {"layers": ["household", "household"]})
    assert parse_section("network", {"layers": ["stairwell"]}).layers == ["stairwell"]
