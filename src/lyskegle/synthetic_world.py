"""The simulated municipality behind the synthetic extract: people, housing, jobs and DREAM weeks.

:class:`World` holds everything as numpy arrays and moves it a year at a time: arrivals and births,
deaths and departures, the weekly benefit chain (written into a week x person block of DREAM state
indices, see :data:`CODE_OF_STATE`), the November job snapshot, and moves at the turn of the year.

The weekly hazard that a public-support spell ends has log-odds (the planted effects; coefficients
in params ``synthesize`` and the constants below)::

    EXIT_BASE + bad_stairwell_log_odds * bad stairwell + origin_log_odds * non-Western immigrant/descendant
    + EXIT_AGE_PER_DECADE_OVER_30 * max(age - 30, 0) / 10 + EXIT_BASIC_EDUCATION * basic only
    + EXIT_HIGHER_EDUCATION * short/medium/long higher education
    + EXIT_PRIOR_SUPPORT_SHARE * (support weeks in the two previous years / 104)
    + sum over layers of <layer>_log_odds * (share of employed contacts last November - 0.5)
    + subgroup_log_odds * member of the planted subgroup

Layers: household (same dwelling), family (parents, children, siblings), coworkers (same last
workplace) and classmates (same last school class); a person without contacts in a layer counts 0.5.
"""

from __future__ import annotations

import numpy as np

from lyskegle.calendar import iso_weeks_in_year
from lyskegle.config import SynthesizeParams
from lyskegle.synthetic_housing import AREA_KINDS, area_scale, build_housing, plan_areas
from lyskegle.synthetic_people import (
    COMPLETION_AGE_BY_GROUP, COUNTRY_INDEX, EDUCATION_KIND, IS_NON_WESTERN, MEAN_HOUSEHOLD, People, SerialCounter, age_at,
    day_number, draw_education, new_households, pnr_numbers, shift_links,
)

# DREAM states, as indices into CODE_OF_STATE (0 and EMPLOYED are blank weeks).
CODE_OF_STATE = np.array([0, 651, 783, 998, 999, 997, 211, 891, 131, 721, 701, 811, 0], dtype=np.int16)
BLANK, STUDENT, DISABILITY, PENSION, DEAD, EMIGRATED = 0, 1, 2, 3, 4, 5
UNEMPLOYMENT, SICKNESS, CASH, EDUCATION_BENEFIT, INTEGRATION, RESOURCE, EMPLOYED = 6, 7, 8, 9, 10, 11, 12
IS_SUPPORT_STATE = np.isin(np.arange(13), [DISABILITY, UNEMPLOYMENT, SICKNESS, CASH, EDUCATION_BENEFIT, INTEGRATION, RESOURCE])
IS_SPELL_STATE = np.isin(np.arange(13), [UNEMPLOYMENT, SICKNESS, CASH, EDUCATION_BENEFIT, INTEGRATION, RESOURCE])
PENSION_AGE = 67
NOVEMBER_WEEK = 45  # 0-based week of the ISO year: the idan (November) snapshot

#: Intercept of the weekly exit log-odds: about half of ordinary spells end within 26 weeks.
EXIT_BASE = -3.2
EXIT_AGE_PER_DECADE_OVER_30 = -0.3
EXIT_BASIC_EDUCATION = -0.5
EXIT_HIGHER_EDUCATION = 0.4
EXIT_PRIOR_SUPPORT_SHARE = -1.5
LAYERS = ("household", "family", "coworkers", "classmates")
#: Countries whose citizens make up the wider group of the self-sufficiency finding.
SUBGROUP_CITIZENSHIPS = ("5422", "5484", "5496", "5522")
#: Log-odds added to the weekly hazards of entering support (from work or from no benefit) for the
#: wider group (citizens of those countries in the Vollsmose-like area) and the planted subgroup.
WIDER_GROUP_ENTRY_LOG_ODDS = 0.8
SUBGROUP_ENTRY_LOG_ODDS = 1.5

INDUSTRIES = np.array([471100, 561010, 862100, 851000, 412000, 494100, 620100, 841100, 873000,
                       812100, 107120, 251100, 869000, 471900, 521000], dtype=np.int32)
OFFENCES = np.array(["straffelov", "faerdsel", "euforiserende", "vaabenlov", "andet"])
OFFENCE_SHARES = np.array([0.45, 0.30, 0.12, 0.05, 0.08])
WEEKLY_WAGE = {10: 6500, 20: 7000, 30: 8000, 40: 8500, 50: 9500, 60: 9000, 70: 12500, 80: 13000}
WEEKLY_TRANSFER = np.array([0, 1400, 4300, 3600, 0, 0, 3900, 3900, 3300, 2600, 2900, 3300, 0], dtype=np.float64)
JOB_CATEGORY = {10: "9", 20: "5", 30: "7", 40: "3", 50: "2", 60: "3", 70: "2", 80: "2"}
OCCUPANCY = 0.96


def _logistic(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


class World:
    """The simulated municipality: housing, people, jobs, schools and their yearly state."""

    def __init__(self, params: SynthesizeParams) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed)
        rng = self.rng
        self.scale = area_scale(params.persons)
        self.housing = build_housing(plan_areas(params.persons, MEAN_HOUSEHOLD, OCCUPANCY, rng), rng)
        h = self.housing
        self.dwelling_area = h.dwelling_area
        self.dwelling_kind = h.area_kind()[self.dwelling_area]
        self.dwelling_municipality = h.building_municipality[h.dwelling_building]
        self.people = People.empty()
        self.serials = SerialCounter()
        self.next_family = 0
        self.year = params.first_year
        for area in range(len(h.areas)):
            dwellings = np.flatnonzero(self.dwelling_area == area)
            chosen = rng.permutation(dwellings)[: round(len(dwellings) * OCCUPANCY)]
            self._add_households(np.sort(chosen), newly_arrived_share=0.0, year=params.first_year)
        self._plant_stairwells()
        self._plan_workplaces_and_schools()
        n = len(self.people)
        self.state = np.zeros(n, dtype=np.uint8)
        self.workplace = np.full(n, -1, dtype=np.int32)
        self.last_workplace = np.full(n, -1, dtype=np.int32)
        self.class_group = np.full(n, -1, dtype=np.int64)
        self.employed_november = np.zeros(n, dtype=bool)
        self.counted_november = np.zeros(n, dtype=bool)
        self.support_weeks = np.zeros((2, n), dtype=np.uint8)  # the last two years
        self.gone = np.zeros(n, dtype=bool)
        self.leave_week = np.full(n, -1, dtype=np.int16)
        self.blocks: list[np.ndarray] = []
        self._exposure_key: tuple[int, int] | None = None
        self._pnr = np.zeros(0, dtype=np.int64)
        self.industry_by_year: list[np.ndarray] = []
        self._initial_states()

    # ---------------------------------------------------------------- people and housing
    def _add_households(self, dwellings: np.ndarray, newly_arrived_share: float, year: int) -> np.ndarray:
        """New households in ``dwellings`` (by the dwelling's area kind); returns their indices."""
        added: list[np.ndarray] = []
        for kind_index, kind in enumerate(AREA_KINDS):
            these = dwellings[self.dwelling_kind[dwellings] == kind_index]
            if not len(these):
                continue
            block = new_households(kind, len(these), these, year, self.next_family, newly_arrived_share, self.rng)
            self.next_family += len(these)
            block = shift_links(block, len(self.people))
            block.serial = self.serials.assign(block.birth, block.sex)
            added.append(self.people.append(block))
        return np.concatenate(added) if added else np.zeros(0, dtype=np.int64)

    def _grow(self, count: int) -> None:
        """Extend the per-person state arrays for ``count`` persons just appended to ``people``."""
        for name, fill in (("state", 0), ("workplace", -1), ("last_workplace", -1), ("class_group", -1),
                           ("employed_november", False), ("counted_november", False), ("gone", False),
                           ("leave_week", -1)):
            values = getattr(self, name)
            setattr(self, name, np.concatenate([values, np.full(count, fill, dtype=values.dtype)]))
        self.support_weeks = np.concatenate([self.support_weeks, np.zeros((2, count), dtype=np.uint8)], axis=1)

    def _plant_stairwells(self) -> None:
        """Choose the bad stairwells and the subgroup's named stairwells."""
        h, p = self.housing, self.params
        stair_area = h.building_area[h.stairwell_building]
        self.bad_stairwell = np.zeros(len(h.stairwell_building), dtype=bool)
        for area in (0, 1):
            candidates = self.rng.permutation(np.flatnonzero(stair_area == area))
            self.bad_stairwell[candidates[: p.bad_stairwells_per_area]] = True
        # Named stairwells: enough Vollsmose-like stairwells, not bad ones, to hold the subgroup.
        target = max(p.min_subgroup_persons, round(p.subgroup_persons * self.scale))
        qualifies = self._subgroup_qualifies(day_number(self.year))
        stair_of_person = np.where(self.people.dwelling >= 0, h.dwelling_stairwell[np.maximum(self.people.dwelling, 0)], -1)
        counts = np.bincount(stair_of_person[qualifies & (stair_of_person >= 0)], minlength=len(stair_area))
        order = self.rng.permutation(np.flatnonzero((stair_area == 0) & ~self.bad_stairwell & (counts > 0)))
        taken = np.cumsum(counts[order]) - counts[order] < target
        self.subgroup_stairwell = np.zeros(len(stair_area), dtype=bool)
        self.subgroup_stairwell[order[taken]] = True

    def _subgroup_qualifies(self, day: int) -> np.ndarray:
        """Age 20+, citizenship in the named set, basic education only (the wider group needs no stairwell)."""
        people = self.people
        citizens = np.isin(people.citizenship, [COUNTRY_INDEX[c] for c in SUBGROUP_CITIZENSHIPS])
        return (age_at(people.birth, day) >= 20) & citizens & (self.attained_education(day) == 10)

    def attained_education(self, day: int) -> np.ndarray:
        """Highest completed education (DISCED group) at ``day``; 0 before basic school is done."""
        people = self.people
        age = age_at(people.birth, day)
        done = age >= COMPLETION_AGE_BY_GROUP[people.education]
        upper_secondary = (people.education >= 40) & (age >= 19)
        return np.where(done, people.education, np.where(upper_secondary, 20, np.where(age >= 16, 10, 0))).astype(np.int8)

    def _plan_workplaces_and_schools(self) -> None:
        rng = self.rng
        n_workplaces = max(50, len(self.people) // 12)
        weights = rng.pareto(1.1, n_workplaces) + 1
        self.workplace_cumulative = np.cumsum(weights) / weights.sum()
        self.workplace_firm = np.cumsum(rng.random(n_workplaces) < 0.75).astype(np.int64)
        self.workplace_industry = rng.integers(0, len(INDUSTRIES), n_workplaces).astype(np.uint8)
        h = self.housing
        area_residents = np.bincount(self.dwelling_area[self.people.dwelling], minlength=len(h.areas))
        kinds = h.area_kind()
        municipality_of_area = [h.municipalities.index(a.municipality) for a in h.areas]
        self.ordinary_area_of_municipality = np.zeros(len(h.municipalities), dtype=np.int64)
        for area, plan in enumerate(h.areas):
            if plan.kind == "ordinary":
                self.ordinary_area_of_municipality[municipality_of_area[area]] = area
        first = 0
        self.area_first_school = np.zeros(len(h.areas), dtype=np.int64)
        self.area_schools = np.ones(len(h.areas), dtype=np.int64)
        for area in range(len(h.areas)):
            per_school = 3_000 if kinds[area] != AREA_KINDS.index("ordinary") else 4_000
            self.area_first_school[area] = first
            self.area_schools[area] = max(1, area_residents[area] // per_school)
            first += self.area_schools[area]

    def pnr(self, index: np.ndarray) -> np.ndarray:
        """Synthetic CPR numbers (int64 ``DDMMYYSSSS``) of persons ``index``, computed once per person."""
        known = len(self._pnr)
        if known < len(self.people):
            self._pnr = np.concatenate([self._pnr, pnr_numbers(self.people, np.arange(known, len(self.people)))])
        return self._pnr[index]

    def new_workplaces(self, count: int) -> np.ndarray:
        return np.searchsorted(self.workplace_cumulative, self.rng.random(count)).astype(np.int32)

    # ---------------------------------------------------------------- weekly benefit process
    def _hazards(self, day: int, index: np.ndarray) -> dict[str, np.ndarray]:
        """Weekly transition hazards of persons ``index`` for the year starting at ``day``."""
        p, people = self.params, self.people
        age = age_at(people.birth[index], day).astype(np.float32)
        attained = self.attained_education(day)[index]
        basic, higher = attained <= 10, attained >= 40
        non_western = IS_NON_WESTERN[people.country[index]] & (people.origin_type[index] > 1)
        dwelling = people.dwelling[index]
        resident = dwelling >= 0
        stairwell = np.where(resident, self.housing.dwelling_stairwell[np.maximum(dwelling, 0)], -1)
        kind = np.where(resident, self.dwelling_kind[np.maximum(dwelling, 0)], AREA_KINDS.index("ordinary"))
        vollsmose = kind == 0
        social = kind < AREA_KINDS.index("ordinary")
        bad = resident & self.bad_stairwell[np.maximum(stairwell, 0)]
        subgroup = self._subgroup_qualifies(day)[index] & resident & self.subgroup_stairwell[np.maximum(stairwell, 0)]
        prior = self.support_weeks[:, index].sum(axis=0) / 104.0
        if self._exposure_key != (day, len(people)):
            self._exposure, self._exposure_key = self._exposures(day), (day, len(people))
        exposure = self._exposure
        network = sum(getattr(p, f"{layer}_log_odds") * (exposure[layer][index] - 0.5) for layer in LAYERS)
        exit_logit = (EXIT_BASE + p.bad_stairwell_log_odds * bad + p.origin_log_odds * non_western
                      + EXIT_AGE_PER_DECADE_OVER_30 * np.maximum(age - 30, 0) / 10
                      + EXIT_BASIC_EDUCATION * basic + EXIT_HIGHER_EDUCATION * higher
                      + EXIT_PRIOR_SUPPORT_SHARE * prior + network + p.subgroup_log_odds * subgroup)
        wider_group = vollsmose & np.isin(people.citizenship[index], [COUNTRY_INDEX[c] for c in SUBGROUP_CITIZENSHIPS])
        risk = (0.8 * basic - 0.5 * higher + 0.4 * non_western + 0.5 * social + 0.1 * vollsmose
                + WIDER_GROUP_ENTRY_LOG_ODDS * wider_group + SUBGROUP_ENTRY_LOG_ODDS * subgroup)
        rng = self.rng
        insured = rng.random(len(index)) < np.where(attained >= 30, 0.8, 0.55)
        from_work = np.where(rng.random(len(index)) < 0.3, SICKNESS,
                             np.where(insured, UNEMPLOYMENT, np.where(age < 30, EDUCATION_BENEFIT, CASH)))
        newly_arrived = (people.origin_type[index] == 2) & (self.year - people.arrival_year[index] < 5)
        from_outside = np.where(newly_arrived, INTEGRATION, np.where(age < 30, EDUCATION_BENEFIT,
                                np.where((prior > 0.5) & (rng.random(len(index)) < 0.2), RESOURCE, CASH)))
        self.last_exposure = exposure
        self.last_subgroup = subgroup
        return {
            "exit": _logistic(exit_logit),
            "disability": np.where(age >= 30, _logistic(-8.3 + 0.6 * np.maximum(age - 35, 0) / 10 + 1.5 * prior
                                                        + 0.5 * basic + 1.0 * subgroup + 0.2 * vollsmose), 0).astype(np.float32),
            "to_work": np.where((age < 30) & ~higher, 0.6, 0.72).astype(np.float32),
            "lose": _logistic(-6.4 + risk),
            "quit": np.full(len(index), 0.0008, dtype=np.float32),
            "find": _logistic(-4.1 - 0.5 * basic + 0.3 * higher - 0.4 * non_western - 0.7 * vollsmose),
            "fall": _logistic(-4.6 + risk),
            "code_from_work": from_work.astype(np.uint8),
            "code_from_outside": from_outside.astype(np.uint8),
        }

    def _exposures(self, day: int) -> dict[str, np.ndarray]:
        """Share of employed contacts (aged 18-66 last November) per layer; 0.5 where a person has none."""
        people = self.people
        n = len(people)
        employed = self.employed_november.astype(np.float64)
        counted = self.counted_november.astype(np.float64)
        out: dict[str, np.ndarray] = {}

        def share_in_groups(group: np.ndarray) -> np.ndarray:
            valid = group >= 0
            g = np.where(valid, group, 0)
            size = int(g.max()) + 1 if n else 1
            total = np.bincount(g[valid], weights=employed[valid], minlength=size)
            count = np.bincount(g[valid], weights=counted[valid], minlength=size)
            others_total = np.where(valid, total[g] - employed, 0)
            others = np.where(valid, count[g] - counted, 0)
            return np.where(others > 0, others_total / np.maximum(others, 1), 0.5)

        household = np.where(people.dwelling >= 0, people.dwelling, len(self.housing.dwelling_stairwell) + people.family)
        out["household"] = share_in_groups(household)
        # Family: parents, children and siblings (same mother), wherever they live.
        total, count = np.zeros(n), np.zeros(n)
        for parent in (people.mother, people.father):
            has = parent >= 0
            total[has] += employed[parent[has]]
            count[has] += counted[parent[has]]
            total += np.bincount(parent[has], weights=employed[has], minlength=n)
            count += np.bincount(parent[has], weights=counted[has], minlength=n)
        has_mother = people.mother >= 0
        sib_total = np.bincount(people.mother[has_mother], weights=employed[has_mother], minlength=n)
        sib_count = np.bincount(people.mother[has_mother], weights=counted[has_mother], minlength=n)
        total[has_mother] += sib_total[people.mother[has_mother]] - employed[has_mother]
        count[has_mother] += sib_count[people.mother[has_mother]] - counted[has_mother]
        out["family"] = np.where(count > 0, total / np.maximum(count, 1), 0.5)
        out["coworkers"] = share_in_groups(self.last_workplace)
        _, classes = np.unique(self.class_group, return_inverse=True)
        out["classmates"] = share_in_groups(np.where(self.class_group >= 0, classes, -1))
        return out

    def _simulate(self, state: np.ndarray, index: np.ndarray, hazards: dict[str, np.ndarray], n_weeks: int,
                  block: np.ndarray | None) -> np.ndarray:
        """Run the weekly chain for persons ``index`` over ``n_weeks`` weeks; returns their final state.

        Time to the next transition is geometric with the state's total hazard (hazards are constant
        within a year, so this equals week-by-week draws). Each transition overwrites ``block`` (week x
        person codes) from its week on, in time order, so the block ends up with every run.
        """
        rng = self.rng
        current = state.copy()
        t = np.zeros(len(index), dtype=np.int64)
        transitions: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        active = np.flatnonzero(IS_SPELL_STATE[current] | (current == EMPLOYED) | (current == BLANK))
        while active.size:
            s = current[active]
            spell, working = IS_SPELL_STATE[s], s == EMPLOYED
            first = np.where(spell, hazards["exit"][active], np.where(working, hazards["lose"][active], hazards["find"][active]))
            second = np.where(spell, hazards["disability"][active], np.where(working, hazards["quit"][active], hazards["fall"][active]))
            total = np.clip(first + second, 1e-6, 1.0)
            t[active] += rng.geometric(total)
            within = t[active] < n_weeks
            active, s, spell, working, first, total = (a[within] for a in (active, s, spell, working, first, total))
            u = rng.random(len(active)) * total
            takes_first = u < first
            after_exit = np.where(u / np.maximum(first, 1e-9) < hazards["to_work"][active], EMPLOYED, BLANK)
            new = np.where(spell, np.where(takes_first, after_exit, DISABILITY),
                           np.where(working, np.where(takes_first, hazards["code_from_work"][active], BLANK),
                                    np.where(takes_first, EMPLOYED, hazards["code_from_outside"][active]))).astype(np.uint8)
            current[active] = new
            if block is not None:
                transitions.append((t[active], index[active], new))
            active = active[new != DISABILITY]
        if block is not None and transitions:
            _apply_transitions(block, *(np.concatenate(parts) for parts in zip(*transitions)))
        return current

    def _initial_states(self) -> None:
        """Persons' states at the start: by age and education, then three years of the chain."""
        day = day_number(self.year)
        state = self._age_states(day, np.arange(len(self.people)), np.zeros(len(self.people), dtype=np.uint8))
        everyone = np.arange(len(self.people))
        # Some long-term disability already; the rest settles by running the chain for three years.
        hazards = self._hazards(day, everyone)
        # About six years' worth of the weekly disability hazard, so older residents start with a pension.
        disabled = (state == BLANK) & (age_at(self.people.birth, day) >= 18) & (self.rng.random(len(everyone)) < hazards["disability"] * 300)
        state[disabled] = DISABILITY
        self.state = self._simulate(state, everyone, hazards, 156, None)
        self.state = self._age_states(day, everyone, self.state)

    def _age_states(self, day: int, index: np.ndarray, state: np.ndarray) -> np.ndarray:
        """States forced by age and education at ``day``: child, student (SU), state pension."""
        people = self.people
        age = age_at(people.birth[index], day)
        education = people.education[index]
        completion = COMPLETION_AGE_BY_GROUP[education]
        studying = (education >= 20) & (education != 30) & (age >= 18) & (age < completion)
        final = np.isin(state, [DEAD, EMIGRATED])
        out = state.copy()
        out = np.where(~final & (age < 18), BLANK, out)
        out = np.where(~final & (out != DISABILITY) & studying, STUDENT, out)
        finished = ~final & (state == STUDENT) & ~studying & (age < PENSION_AGE)
        out = np.where(finished, np.where(self.rng.random(len(index)) < 0.8, EMPLOYED, BLANK), out)
        out = np.where(~final & (age >= PENSION_AGE), PENSION, out)
        return out.astype(np.uint8)

    # ---------------------------------------------------------------- one year
    def simulate_year(self, year: int) -> np.ndarray:
        """Births, deaths, departures and arrivals of ``year`` and its weeks of DREAM; returns the block."""
        self.year = year
        rng, people = self.rng, self.people
        day = day_number(year)
        n_weeks = iso_weeks_in_year(year)
        self._arrivals_and_births(year)
        n = len(people)
        everyone = np.arange(n)
        alive = ~np.isin(self.state, [DEAD, EMIGRATED])
        age = age_at(people.birth, day)
        # Deaths during the year, by age.
        dies = alive & (rng.random(n) < np.minimum(0.5, np.exp(-10.5 + 0.095 * age)))
        death_week = rng.integers(0, n_weeks, n)
        # Whole households leave the area during the year; families with small children more often.
        resident = alive & (people.dwelling >= 0)
        self._plan_departures(year, resident, n_weeks)
        state = self._age_states(day, everyone, self.state)
        hazards = self._hazards(day, everyone)
        self.hazards_of_year = hazards
        block = np.repeat(state[None, :], n_weeks, axis=0)
        state = self._simulate(state, everyone, hazards, n_weeks, block)
        emigrates = (self.leave_week >= 0) & (self.emigrating)
        for mask, weeks, code in ((emigrates, self.leave_week, EMIGRATED), (dies, death_week, DEAD)):
            who = np.flatnonzero(mask)
            _fill_from(block, weeks[who].astype(np.int64), who, np.full(len(who), code, dtype=np.uint8))
            state[who] = code
        # Before a person arrives (birth or move from abroad) the weeks are blank.
        arrival_week = np.clip((people.present_from - day) // 7, 0, n_weeks)
        late = np.flatnonzero(arrival_week > 0)
        _fill_until(block, arrival_week[late], late)
        self.state = state
        november = block[min(NOVEMBER_WEEK, n_weeks - 1)]
        self.counted_november = (age >= 18) & (age < PENSION_AGE) & ~np.isin(november, [DEAD, EMIGRATED]) & (arrival_week <= NOVEMBER_WEEK)
        self.employed_november = november == EMPLOYED
        self.support_weeks = np.stack([self.support_weeks[1], IS_SUPPORT_STATE[block].sum(axis=0).astype(np.uint8)])
        self._jobs_in_november()
        self.blocks.append(block)
        return block

    def _plan_departures(self, year: int, resident: np.ndarray, n_weeks: int) -> None:
        people, rng = self.people, self.rng
        day = day_number(year)
        young_child = resident & (age_at(people.birth, day) < 4)
        household = np.where(resident, people.dwelling, -1)
        has_young = np.zeros(len(self.housing.dwelling_stairwell), dtype=bool)
        has_young[household[young_child]] = True
        # Families with young children move out of the social-housing areas more: the 2015 report found
        # 30 % of new parents gone before the child turns 4 (1 - (1 - 0.09) ** 4 = 0.31).
        social = self.dwelling_kind != AREA_KINDS.index("ordinary")
        dwelling_rate = np.where(social, 0.05, 0.035) + np.where(has_young & social, 0.04, 0.0)
        leaving_dwelling = rng.random(len(has_young)) < dwelling_rate
        leaving_week = rng.integers(0, n_weeks, len(has_young))
        abroad = rng.random(len(has_young)) < 0.15
        leaves = resident & leaving_dwelling[np.maximum(household, 0)]
        self.leave_week = np.where(leaves, leaving_week[np.maximum(household, 0)], -1).astype(np.int16)
        emigrate_share = np.where(people.origin_type > 1, 2.0, 0.5)
        self.emigrating = leaves & (abroad[np.maximum(household, 0)] * emigrate_share > 0.5)

    def _jobs_in_november(self) -> None:
        rng = self.rng
        employed = self.employed_november
        changes = employed & ((self.workplace < 0) | (rng.random(len(employed)) < 0.12))
        self.workplace[changes] = self.new_workplaces(int(changes.sum()))
        self.workplace[~employed] = -1
        self.last_workplace = np.where(employed, self.workplace, self.last_workplace)
        # Industry of the year's work months: this November's workplace, else the last one, else any.
        source = np.where(self.last_workplace >= 0, self.last_workplace, self.new_workplaces(len(employed)))
        self.industry_by_year.append(self.workplace_industry[source])

    def end_year(self, year: int) -> None:
        """Moves at the turn of the year: departures leave, dead are gone, young adults leave home."""
        people, rng = self.people, self.rng
        day_next = day_number(year + 1)
        left = (self.leave_week >= 0) | np.isin(self.state, [DEAD, EMIGRATED])
        widowed = (people.partner >= 0) & (self.state[np.maximum(people.partner, 0)] == DEAD) & ~left
        people.widowed |= widowed
        people.partner = np.where(widowed | left, -1, people.partner).astype(np.int32)
        people.dwelling = np.where(left, -1, people.dwelling).astype(np.int32)
        self.gone |= left & np.isin(self.state, [DEAD, EMIGRATED])
        # Young adults living with a parent set up on their own (mostly inside the area's ordinary dwellings).
        age = age_at(people.birth, day_next)
        home = people.dwelling >= 0
        with_parent = np.zeros(len(people), dtype=bool)
        for parent in (people.mother, people.father):
            has = (parent >= 0) & home
            with_parent[has] |= people.dwelling[parent[has]] == people.dwelling[has]
        movers = np.flatnonzero(with_parent & (age >= 19) & (age <= 27) & (people.partner < 0) & (rng.random(len(people)) < 0.22))
        stays = movers[rng.random(len(movers)) < 0.6]
        gone = np.setdiff1d(movers, stays)
        people.dwelling[gone] = -1
        vacant = self._vacant(ordinary_only=True)
        stays = stays[: len(vacant)]
        target = rng.permutation(vacant)[: len(stays)]
        people.dwelling[stays] = target
        people.moved_in[stays] = day_next - rng.integers(1, 120, len(stays))
        people.family[stays] = self.next_family + np.arange(len(stays))
        self.next_family += len(stays)

    def _vacant(self, ordinary_only: bool = False) -> np.ndarray:
        occupied = np.zeros(len(self.housing.dwelling_stairwell), dtype=bool)
        occupied[self.people.dwelling[self.people.dwelling >= 0]] = True
        vacant = ~occupied
        if ordinary_only:
            vacant &= self.dwelling_kind == AREA_KINDS.index("ordinary")
        return np.flatnonzero(vacant)

    def _arrivals_and_births(self, year: int) -> None:
        """New households into vacant dwellings (arriving during the year) and this year's babies."""
        people, rng = self.people, self.rng
        n_before = len(people)
        day = day_number(year)
        if year > self.params.first_year:
            vacant = self._vacant()
            keep_empty = round(len(self.housing.dwelling_stairwell) * (1 - OCCUPANCY))
            fill = np.sort(rng.permutation(vacant)[: max(0, len(vacant) - keep_empty)])
            added = self._add_households(fill, newly_arrived_share=0.35, year=year)
            arrival = day + rng.integers(0, 365, len(fill))
            household = np.searchsorted(fill, people.dwelling[added])
            people.present_from[added] = np.maximum(arrival[household], people.birth[added])
            people.moved_in[added] = people.present_from[added]
            # Arrivals from abroad start blank; movers from elsewhere in Denmark are simulated from January.
            from_abroad = people.arrival_year[added] == year
            people.present_from[added[~from_abroad]] = people.birth[added[~from_abroad]]
        # Births to resident women aged 20-44.
        age = age_at(people.birth, day)
        mothers = np.flatnonzero((people.sex == 2) & (age >= 20) & (age <= 44) & (people.dwelling >= 0)
                                 & (people.present_from <= day))
        rate = np.where(people.partner[mothers] >= 0, 0.11, 0.02) * np.where(IS_NON_WESTERN[people.country[mothers]], 1.4, 1.0)
        mothers = mothers[rng.random(len(mothers)) < rate]
        if len(mothers):
            self._add_babies(mothers, day)
        self._grow(len(people) - len(self.state))
        new = np.arange(n_before, len(people))
        self.state[new] = self._age_states(day, new, np.zeros(len(new), dtype=np.uint8))
        # New adults settle into work, support or neither as if they had been here a while.
        adults = new[(self.state[new] == BLANK) & (age_at(people.birth[new], day) >= 18)]
        if len(adults):
            hazards = self._hazards(day, adults)
            self.state[adults] = self._simulate(self.state[adults], adults, hazards, 104, None)

    def _add_babies(self, mothers: np.ndarray, day: int) -> None:
        people, rng = self.people, self.rng
        n = len(mothers)
        father = np.where(people.partner[mothers] >= 0, people.partner[mothers], -1)
        birth = (day + rng.integers(0, 365, n)).astype(np.int32)
        danish_parent = (people.origin_type[mothers] == 1) | ((father >= 0) & (people.origin_type[np.maximum(father, 0)] == 1))
        origin_type = np.where(danish_parent, 1, 3).astype(np.int8)
        country = np.where(danish_parent, 0, people.country[mothers]).astype(np.int16)
        social = self.dwelling_kind[people.dwelling[mothers]] < AREA_KINDS.index("ordinary")
        kind = np.where(social, EDUCATION_KIND["grown_up_social"], EDUCATION_KIND["danish"])
        education, code = draw_education(kind, rng)
        sex = rng.choice(np.array([1, 2], dtype=np.int8), n)
        block = People(
            birth=birth, sex=sex, origin_type=origin_type, country=country,
            citizenship=np.where(rng.random(n) < 0.75, 0, country).astype(np.int16) * (origin_type == 3),
            arrival_year=np.zeros(n, dtype=np.int16), mother=mothers.astype(np.int32), father=father.astype(np.int32),
            partner=np.full(n, -1, dtype=np.int32), married=np.zeros(n, dtype=bool), widowed=np.zeros(n, dtype=bool),
            family=people.family[mothers], dwelling=people.dwelling[mothers], moved_in=birth, present_from=birth,
            education=education, education_code=code, wage_factor=rng.lognormal(0.0, 0.25, n).astype(np.float32),
            school_draw=rng.random(n, dtype=np.float32), serial=np.zeros(n, dtype=np.int16),
        )
        block.serial = self.serials.assign(block.birth, block.sex)
        people.append(block)


def _fill_from(block: np.ndarray, weeks: np.ndarray, persons: np.ndarray, codes: np.ndarray) -> None:
    """``block[w:, p] = code`` for each (w, p, code), vectorised."""
    n_weeks = block.shape[0]
    weeks = np.asarray(weeks, dtype=np.int64)
    lengths = np.clip(n_weeks - weeks, 0, None)
    if not lengths.sum():
        return
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    block[np.repeat(weeks, lengths) + offsets, np.repeat(persons, lengths)] = np.repeat(codes, lengths)


def _apply_transitions(block: np.ndarray, weeks: np.ndarray, persons: np.ndarray, codes: np.ndarray) -> None:
    """:func:`_fill_from` of transitions given in time order, where a person has at most one per
    week: each week of the block then holds the person's latest code from that week or before, and
    where there is none it keeps its value. One pass over the weeks, instead of writing every
    transition's remaining weeks (a year's transitions of a million persons write tens of millions
    of cells that a later transition overwrites again)."""
    order = np.argsort(weeks, kind="stable")
    weeks, persons, codes = weeks[order], persons[order], codes[order]
    bounds = np.searchsorted(weeks, np.arange(block.shape[0] + 1))
    latest = np.zeros(block.shape[1], dtype=block.dtype)
    seen = np.zeros(block.shape[1], dtype=bool)  # persons with a transition in this week or before
    for week in range(block.shape[0]):
        who = persons[bounds[week]:bounds[week + 1]]
        latest[who] = codes[bounds[week]:bounds[week + 1]]
        seen[who] = True
        block[week] = np.where(seen, latest, block[week])


def _fill_until(block: np.ndarray, weeks: np.ndarray, persons: np.ndarray) -> None:
    """``block[:w, p] = BLANK`` for each (w, p)."""
    lengths = np.asarray(weeks, dtype=np.int64)
    if not lengths.sum():
        return
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    block[offsets, np.repeat(persons, lengths)] = BLANK
