"""How the window names a region map and its matches, in one place: quick regions are always called so, wherever
they are shown (the draft's strip and caption, the region map's note, the matches hint, saved drafts)."""
from __future__ import annotations

QUICK_REGION = "quick region"
QUICK_REGIONS = "quick regions"
QUICK_REGIONS_LONG = f"{QUICK_REGIONS} (a fast classical segmentation, not the method's regions)"


def region_noun(source: str) -> str:
    """What one region of a `source` ("quick" or "method") map is called, for counts ("3 quick regions")."""
    return QUICK_REGION if source == "quick" else "region"


def regions_text(draft, random_weights: bool) -> str:
    """How the draft's regions and matches were found, in words."""
    if draft.region_source == "quick":
        regions = QUICK_REGIONS_LONG
    else:
        regions = "the method's regions" + (" (from RANDOM-WEIGHT test models)" if random_weights else "")
    matches = "quick matching" if draft.match_source == "quick" else "the method's matches"
    return f"{regions}, references by {matches}"
