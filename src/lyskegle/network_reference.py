"""The person network as networkx graphs: the model of the graph, the reference implementation of
the exposure features, and the one housing area's graph that analysts export to GraphML.

Every pair of persons who share a group becomes an explicit edge, and the features come from a plain
loop over each person's neighbours, so this is the version a reader checks by eye. It grows with the
square of group sizes: use it on small inputs only (tests, one housing area, the benchmark's
side-by-side run). :func:`lyskegle.network.exposure_features` is the fast path that must give the
same numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import networkx as nx
import numpy as np
import pandas as pd

from lyskegle.network import LAYERS, LayerMemberships, _check_layers, _is_count


def layer_graph(memberships: LayerMemberships, layer: str) -> nx.Graph:
    """Graph of one layer: a node per resident (node number), an edge per linked pair."""
    graph = nx.Graph()
    graph.add_nodes_from(range(memberships.n_persons))
    _add_layer_edges(graph, memberships, layer)
    return graph


def _add_layer_edges(graph: nx.Graph, memberships: LayerMemberships, layer: str) -> None:
    if layer == "family":
        graph.add_edges_from(memberships.family_links[["person", "relative"]].itertuples(index=False, name=None))
        _add_group_cliques(graph, memberships.parents)
    else:
        _add_group_cliques(graph, memberships.groups[layer])


def _add_group_cliques(graph: nx.Graph, members: pd.DataFrame) -> None:
    for _, persons in members.groupby("group")["person"]:
        graph.add_edges_from(itertools.combinations(sorted(set(persons)), 2))


def reference_exposure_features(
    memberships: LayerMemberships, status: pd.DataFrame, layers: Sequence[str] = LAYERS,
) -> pd.DataFrame:
    """Same columns and meaning as :func:`lyskegle.network.exposure_features`, by a neighbour loop."""
    _check_layers(layers)
    on_support = status["on_support"].to_numpy(bool)
    employed = status["employed"].to_numpy(bool)
    support_weeks = status["support_weeks"].to_numpy("int64")
    columns: dict[str, list] = {}
    for name in layers:
        graph = layer_graph(memberships, name)
        component_size = {}
        for component in nx.connected_components(graph):
            for person in component:
                component_size[person] = len(component)
        rows = []
        for person in range(memberships.n_persons):
            contacts = list(graph.neighbors(person))
            n = len(contacts)
            row = {
                "contacts": n,
                "on_support": sum(int(on_support[c]) for c in contacts),
                "share_on_support": sum(int(on_support[c]) for c in contacts) / n if n else np.nan,
                "share_employed": sum(int(employed[c]) for c in contacts) / n if n else np.nan,
                "mean_support_weeks": sum(int(support_weeks[c]) for c in contacts) / n if n else np.nan,
                "component_size": component_size[person],
            }
            if name == "family":
                distance = nx.single_source_shortest_path_length(graph, person, cutoff=2)
                two_hop = [other for other, steps in distance.items() if steps == 2]
                row["two_hop_contacts"] = len(two_hop)
                row["two_hop_share_on_support"] = (
                    sum(int(on_support[c]) for c in two_hop) / len(two_hop) if two_hop else np.nan
                )
            rows.append(row)
        for exposure in rows[0] if rows else ():
            columns[f"{name}_{exposure}"] = [row[exposure] for row in rows]
    frame = pd.DataFrame(columns)
    for column in frame.columns:
        if _is_count(column):
            frame[column] = frame[column].astype("int32")
    return frame


def area_graph(
    memberships: LayerMemberships, status: pd.DataFrame, area: str, layers: Sequence[str] = LAYERS,
) -> nx.MultiGraph:
    """The network among the residents of one housing area, for analysts to look at.

    Nodes are pseudonymous ``person_id`` values with three attributes only: ``on_support``,
    ``employed`` and ``stairwell``. Each edge is one tie in one layer (key and attribute ``layer``);
    ties to persons outside the area are left out. Raises ValueError if nobody lives in ``area``.
    """
    _check_layers(layers)
    inside = np.flatnonzero(memberships.residents["area"].eq(area).fillna(False).to_numpy(bool))
    if len(inside) == 0:
        raise ValueError(f"no resident lives in housing area '{area}' (dwellings.area)")
    person_ids = memberships.residents["person_id"].to_numpy(object)
    stairwells = memberships.residents["stairwell_id"].fillna("").to_numpy(object)
    graph = nx.MultiGraph(area=area)
    for node in inside:
        graph.add_node(
            str(person_ids[node]), on_support=bool(status["on_support"].iat[node]),
            employed=bool(status["employed"].iat[node]), stairwell=str(stairwells[node]),
        )
    # Only the area's own memberships are expanded, so a large workplace never becomes a clique here.
    local = _restricted(memberships, inside)
    for name in layers:
        layer = nx.Graph()
        _add_layer_edges(layer, local, name)
        for first, second in layer.edges():
            graph.add_edge(str(person_ids[first]), str(person_ids[second]), key=name, layer=name)
    return graph


def _restricted(memberships: LayerMemberships, nodes: np.ndarray) -> LayerMemberships:
    """The same memberships with every tie outside ``nodes`` dropped (node numbers unchanged)."""
    def keep(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
        inside = np.logical_and.reduce([frame[column].isin(nodes).to_numpy() for column in columns])
        return frame.loc[inside]
    return LayerMemberships(
        memberships.residents,
        {name: keep(frame, ["person"]) for name, frame in memberships.groups.items()},
        keep(memberships.family_links, ["person", "relative"]),
        keep(memberships.parents, ["person"]),
    )
