"""Export one housing area's person network at an as-of date as GraphML, for analysts to look at
(Gephi, Cytoscape, networkx).

Nodes are pseudonymous person ids with three attributes: ``on_support``, ``employed`` (in the week /
month before the as-of date) and ``stairwell``. Each edge is one tie in one layer, with the layer's
name as its key and ``layer`` attribute. Only ties between residents of the area are kept.

    python pipelines/export_network.py --params params.yaml --ingested data/ingested \
        --area <OMRAADE> --as-of 2020-01-06 --out reports/network_<area>.graphml

The file holds person-level rows (pseudonymised): keep it on the machine where the data lives.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path

from lyskegle import io
from lyskegle.config import load_section
from lyskegle.network import contact_status, layer_memberships
from lyskegle.network_reference import area_graph

log = logging.getLogger("export_network")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--ingested", required=True, type=Path, help="folder of the ingest stage's tables")
    parser.add_argument("--area", required=True, help="housing area (dwellings.area, OMRAADE)")
    parser.add_argument("--as-of", required=True, type=dt.date.fromisoformat, help="a Monday, YYYY-MM-DD")
    parser.add_argument("--out", required=True, type=Path, help="GraphML file to write")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.as_of.weekday() != 0:
        parser.error(f"--as-of {args.as_of} is not a Monday (DREAM weeks start on Mondays)")

    params = load_section(args.params, "network")
    read = lambda name: io.read_parquet(args.ingested / f"{name}.parquet")  # noqa: E731
    memberships = layer_memberships(read("population"), read("dwellings"), read("jobs"), read("classes"), args.as_of)
    status = contact_status(
        read("benefits"), read("employment"), memberships.residents["person_id"], args.as_of,
        params.support_window_weeks,
    )
    graph = area_graph(memberships, status, args.area, params.layers)
    io.write_graphml(graph, args.out)
    log.info("wrote %s: %d persons, %d ties", args.out, graph.number_of_nodes(), graph.number_of_edges())


if __name__ == "__main__":
    main()
