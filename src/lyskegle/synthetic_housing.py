"""The built environment of the synthetic extract: housing areas, blocks, stairwells and dwellings.

A *stairwell* (opgang) is one entrance of a block, written as ``ADGANGSADRESSE_ID``; a *dwelling* is
one door behind it (``ADRESSE_ID``). Social-housing areas (``OMRAADE``) are blocks of flats; ordinary
neighbourhoods are detached houses (one dwelling per building) and small blocks, with ``OMRAADE``
blank. Sizes scale with the number of persons (see :func:`plan_areas`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Size of the full-scale Vollsmose-like area (residents) and Vaerebro-Park-like area (dwellings).
VOLLSMOSE_RESIDENTS = 9_100
VAEREBRO_DWELLINGS = 1_345
FULL_SCALE_PERSONS = 50_000
#: Vaerebro Park: 8 blocks, 3 of 8 storeys and 5 of 4 storeys.
VAEREBRO_STOREYS = (8, 8, 8, 4, 4, 4, 4, 4)
VAEREBRO_DOORS_PER_FLOOR = {8: 4, 4: 3}
# Smallest sizes kept when a small run scales the areas down, so their profiles stay measurable.
MIN_VOLLSMOSE_RESIDENTS = 400
MIN_VAEREBRO_DWELLINGS = 150

#: Municipalities in the order they are added as the extract grows (Odense and Gladsaxe first).
MUNICIPALITIES = (
    "461", "159", "101", "751", "851", "147", "157", "151", "153", "165", "167", "169", "173",
    "175", "183", "185", "187", "190", "621", "630", "657", "661", "665", "671", "706", "707",
    "710", "727", "730", "740", "741", "746", "756", "760", "766", "773", "779", "787", "791",
)
PERSONS_PER_MUNICIPALITY = 250_000

DOOR_NAMES = ("tv", "th", "mf", "1", "2", "3")
#: Share of the dwellings of ordinary neighbourhoods that are detached houses.
HOUSE_SHARE = 0.4

AREA_KINDS = ("vollsmose_like", "vaerebro_like", "social_housing", "ordinary")


@dataclass(frozen=True)
class AreaPlan:
    code: str | None  # OMRAADE; None for an ordinary neighbourhood
    name: str
    kind: str
    municipality: str
    dwellings: int


@dataclass(frozen=True)
class Housing:
    """Every dwelling, stairwell and building, as parallel arrays.

    Per dwelling: ``stairwell``, ``floor`` (0 = ground floor), ``door`` (index into
    :data:`DOOR_NAMES`). Per stairwell: ``building``. Per building: ``area`` (index into ``areas``),
    ``storeys``, ``municipality`` (index into ``municipalities``).
    """

    areas: tuple[AreaPlan, ...]
    municipalities: tuple[str, ...]
    dwelling_stairwell: np.ndarray
    dwelling_floor: np.ndarray
    dwelling_door: np.ndarray
    stairwell_building: np.ndarray
    building_area: np.ndarray
    building_storeys: np.ndarray
    building_municipality: np.ndarray

    @property
    def dwelling_building(self) -> np.ndarray:
        return self.stairwell_building[self.dwelling_stairwell]

    @property
    def dwelling_area(self) -> np.ndarray:
        return self.building_area[self.dwelling_building]

    def area_kind(self) -> np.ndarray:
        """Per area: index into :data:`AREA_KINDS`."""
        return np.array([AREA_KINDS.index(a.kind) for a in self.areas], dtype=np.int8)


def area_scale(persons: int) -> float:
    """Share of full size for the two named areas: 1 from 50,000 persons on."""
    return min(1.0, persons / FULL_SCALE_PERSONS)


def plan_areas(
    persons: int, mean_household: dict[str, float], occupancy: float, rng: np.random.Generator
) -> list[AreaPlan]:
    """The areas to build and their dwelling counts.

    The Vollsmose-like area has about 9,100 residents and the Vaerebro-Park-like area 1,345
    dwellings at 50,000 persons or more, proportionally fewer below (never under a few hundred
    persons). One more social-housing area per 40,000 persons, and ordinary neighbourhoods hold
    everyone else.
    """
    scale = area_scale(persons)
    n_municipalities = int(np.clip(persons // PERSONS_PER_MUNICIPALITY, 2, len(MUNICIPALITIES)))
    municipalities = MUNICIPALITIES[:n_municipalities]
    vollsmose_residents = max(MIN_VOLLSMOSE_RESIDENTS, round(VOLLSMOSE_RESIDENTS * scale))
    vaerebro_dwellings = max(MIN_VAEREBRO_DWELLINGS, round(VAEREBRO_DWELLINGS * scale))
    plans = [
        AreaPlan("BO01", "Vollsmose-lignende boligomraade", "vollsmose_like", "461",
                 round(vollsmose_residents / mean_household["vollsmose_like"] / occupancy)),
        AreaPlan("BO02", "Vaerebro-Park-lignende boligomraade", "vaerebro_like", "159", vaerebro_dwellings),
    ]
    used = vollsmose_residents + vaerebro_dwellings * occupancy * mean_household["vaerebro_like"]
    for number in range(persons // 40_000):
        residents = int(rng.integers(1_000, 4_500))
        plans.append(AreaPlan(
            f"BO{number + 3:02d}", f"Boligafdeling {number + 3}", "social_housing",
            municipalities[number % len(municipalities)],
            round(residents / mean_household["social_housing"] / occupancy),
        ))
        used += residents
    ordinary_residents = max(persons - used, persons * 0.3)
    ordinary_dwellings = ordinary_residents / mean_household["ordinary"] / occupancy
    for index, municipality in enumerate(municipalities):
        # Odense and Gladsaxe keep the lion's share at small sizes; larger runs spread evenly.
        share = (0.7 if index == 0 else 0.3) if n_municipalities == 2 else 1 / n_municipalities
        plans.append(AreaPlan(None, f"Almindelige kvarterer {municipality}", "ordinary", municipality,
                              max(1, round(ordinary_dwellings * share))))
    return plans


def vaerebro_blocks(dwellings: int) -> list[tuple[int, int, int]]:
    """(storeys, entrances, dwellings) for each of the 8 blocks, adding up to ``dwellings``.

    Each 8-storey entrance has 4 doors a floor, each 4-storey entrance 3; the blocks share the
    dwellings in proportion to their full-size capacity.
    """
    capacity = [s * VAEREBRO_DOORS_PER_FLOOR[s] for s in VAEREBRO_STOREYS]
    full = [6 * capacity[0]] * 3 + [13 * capacity[3]] * 5  # 3 x 192 + 5 x 156 slots
    weights = np.array(full, dtype=float) / sum(full)
    quotas = np.floor(weights * dwellings).astype(int)
    quotas[np.argsort(-(weights * dwellings - quotas), kind="stable")[: dwellings - quotas.sum()]] += 1
    return [(s, max(1, math.ceil(q / c)), int(q)) for s, c, q in zip(VAEREBRO_STOREYS, capacity, quotas)]


def build_housing(plans: list[AreaPlan], rng: np.random.Generator) -> Housing:
    """Lay out blocks, stairwells and dwellings for every planned area."""
    municipalities = tuple(dict.fromkeys(plan.municipality for plan in plans))
    stair_building: list[np.ndarray] = []
    dwell_stair: list[np.ndarray] = []
    dwell_floor: list[np.ndarray] = []
    dwell_door: list[np.ndarray] = []
    building_area: list[int] = []
    building_storeys: list[int] = []
    building_municipality: list[int] = []
    n_stairwells = 0

    def add_building(area: int, municipality: int, storeys: int, entrances: int, doors: int, keep: int) -> None:
        nonlocal n_stairwells
        building = len(building_area)
        building_area.append(area)
        building_storeys.append(storeys)
        building_municipality.append(municipality)
        # Slots ordered door-major so a trimmed block still reaches its top floor.
        door, entrance, floor = np.meshgrid(
            np.arange(doors), np.arange(entrances), np.arange(storeys), indexing="ij"
        )
        door, entrance, floor = door.ravel()[:keep], entrance.ravel()[:keep], floor.ravel()[:keep]
        used = np.unique(entrance)
        stair_building.append(np.full(len(used), building, dtype=np.int32))
        renumber = np.zeros(entrances, dtype=np.int32)
        renumber[used] = np.arange(len(used), dtype=np.int32)
        order = np.lexsort((door, floor, entrance))
        dwell_stair.append(n_stairwells + renumber[entrance[order]])
        dwell_floor.append(floor[order].astype(np.int8))
        dwell_door.append(door[order].astype(np.int8))
        n_stairwells += len(used)

    def add_houses(area: int, municipality: int, count: int) -> None:
        nonlocal n_stairwells
        first = len(building_area)
        building_area.extend([area] * count)
        building_storeys.extend([1] * count)
        building_municipality.extend([municipality] * count)
        stair_building.append(np.arange(first, first + count, dtype=np.int32))
        dwell_stair.append(np.arange(n_stairwells, n_stairwells + count, dtype=np.int32))
        dwell_floor.append(np.zeros(count, dtype=np.int8))
        dwell_door.append(np.zeros(count, dtype=np.int8))
        n_stairwells += count

    for area, plan in enumerate(plans):
        municipality = municipalities.index(plan.municipality)
        if plan.kind == "vaerebro_like":
            for storeys, entrances, keep in vaerebro_blocks(plan.dwellings):
                add_building(area, municipality, storeys, entrances, VAEREBRO_DOORS_PER_FLOOR[storeys], keep)
            continue
        remaining = plan.dwellings
        if plan.kind == "ordinary":
            add_houses(area, municipality, round(remaining * HOUSE_SHARE))
            remaining -= round(remaining * HOUSE_SHARE)
        while remaining > 0:
            if plan.kind == "ordinary":
                storeys, entrances, doors = int(rng.integers(2, 5)), int(rng.integers(1, 4)), 2
            else:
                storeys, entrances, doors = int(rng.integers(3, 5)), int(rng.integers(4, 9)), int(rng.integers(2, 4))
            keep = min(remaining, storeys * entrances * doors)
            add_building(area, municipality, storeys, entrances, doors, keep)
            remaining -= keep
    return Housing(
        areas=tuple(plans),
        municipalities=municipalities,
        dwelling_stairwell=np.concatenate(dwell_stair).astype(np.int32),
        dwelling_floor=np.concatenate(dwell_floor),
        dwelling_door=np.concatenate(dwell_door),
        stairwell_building=np.concatenate(stair_building),
        building_area=np.array(building_area, dtype=np.int32),
        building_storeys=np.array(building_storeys, dtype=np.int8),
        building_municipality=np.array(building_municipality, dtype=np.int16),
    )
