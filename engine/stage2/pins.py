"""The artist's pins over stage 2's matches: one rule, with one set of checks and messages, for the method's
runs (`apply_pins` on a MatchTable) and the instant draft (`pin_matches` on its own or its quick matches).

No torch here, so the draft can use the rule without loading it.
"""
from __future__ import annotations

import dataclasses
from typing import Collection, Iterable, Mapping, Sequence

from ..errors import InvalidRequest
from ..types import MatchTable, Pin, RegionMatch

PairKey = tuple[int, int, "int | None"]  # (content region, reference index, reference region)


def pin_matches(matches: Mapping[int, RegionMatch], pins: Iterable[Pin],
                reference_regions: Sequence[Collection[int] | None],
                scores: Mapping[PairKey, float] | None = None) -> dict[int, RegionMatch]:
    """`matches` (ascending content region) with each pinned content region taking its pinned (reference, region);
    later pins win. `reference_regions` has one entry per reference: its region ids, or None where they are not
    known (a draft on whole references: any region is taken, the whole reference is used). `style_region` None
    pins the whole reference. A pinned pair keeps its score from `scores`. Unknown ids raise InvalidRequest."""
    matches = dict(matches)
    count = len(reference_regions)
    for pin in pins:
        if pin.content_region not in matches:
            raise InvalidRequest(f"Pin for content region {pin.content_region}, which does not exist "
                                 f"(content regions: {sorted(matches)})")
        if not 0 <= pin.style_index < count:
            raise InvalidRequest(f"Pin for content region {pin.content_region} names reference {pin.style_index}, "
                                 f"but there are {count} references (0..{count - 1})")
        regions = reference_regions[pin.style_index]
        if pin.style_region is not None and regions is not None and pin.style_region not in regions:
            raise InvalidRequest(f"Pin for content region {pin.content_region} names region {pin.style_region} of "
                                 f"reference {pin.style_index}, which has regions {sorted(regions)}")
        score = (scores or {}).get((pin.content_region, pin.style_index, pin.style_region))
        matches[pin.content_region] = RegionMatch(pin.content_region, pin.style_index, pin.style_region, score,
                                                  pinned=True)
    return dict(sorted(matches.items()))


def apply_pins(table: MatchTable, pins: Iterable[Pin]) -> MatchTable:
    """A new table where each pinned content region takes its pinned (reference, region), scored as in the table."""
    regions_of: dict[int, set[int]] = {}
    scores = {}
    for pair in table.pairs:
        regions_of.setdefault(pair.style_index, set()).add(pair.style_region)
        scores[pair.content_region, pair.style_index, pair.style_region] = pair.score
    reference_regions = [regions_of.get(index, set()) for index in range(max(regions_of, default=-1) + 1)]
    return dataclasses.replace(table, matches=pin_matches(table.matches, pins, reference_regions, scores))
