"""The hand edit of the regions in the session: undoable with the pins, saved beside them (checked on load), restored
when the photo opens again; pins on regions an edit removes are dropped with a notice and come back on undo."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.persistence import load_document
from engine.schema import SchemaError
from engine.stage1 import edits
from gui.model.session import SESSION_VERSION, PinTarget, Session, parse_session
from tests.test_gui_support import FakeEngine, write_image


def opened(tmp_path) -> Session:
    session = Session(tmp_path)
    photo = write_image(tmp_path / "photo.png")
    session.open(photo, "abc")
    session.analysis = FakeEngine().analyze(type("Ref", (), {"path": photo})())
    return session


def test_a_merge_drops_the_merged_away_pin_with_a_notice_and_undo_restores_both(qtbot, tmp_path):
    session = opened(tmp_path)
    automatic = session.analysis.labels
    first, second = session.analysis.region_ids[:2]
    session.pin(first, PinTarget("ref-a"))
    session.pin(second, PinTarget("ref-b", 3))
    session.edit_regions(edits.merge(automatic, edits.empty_override(automatic), [first, second]), "Merge")
    merged = session.region_labels()
    assert second not in np.unique(merged) and np.array_equal(merged == first, np.isin(automatic, [first, second]))
    assert session.pins == {first: PinTarget("ref-a")}  # kept where the region survives
    assert session.error.kind == "pins_dropped" and f"region {second}" in session.error.message
    assert session.region_edit() is not None
    session.undo_stack.undo()
    assert np.array_equal(session.region_labels(), automatic) and session.region_override is None
    assert session.pins == {first: PinTarget("ref-a"), second: PinTarget("ref-b", 3)}
    session.undo_stack.redo()
    assert np.array_equal(session.region_labels(), merged) and second not in session.pins


def test_the_edit_is_saved_with_the_pins_and_restored_on_reopening(qtbot, tmp_path):
    session = opened(tmp_path)
    automatic = session.analysis.labels
    override = edits.paint(automatic, edits.empty_override(automatic), edits.brush_cells(automatic.shape, (5, 5), 4),
                           None)
    session.edit_regions(override, "Brush")
    session.pin(1, PinTarget("ref-a"))
    assert session.save()
    saved = load_document(tmp_path / "abc" / "session.json", SESSION_VERSION, validate=parse_session).data
    assert np.array_equal(saved.region_override, override)
    again = opened(tmp_path)
    assert np.array_equal(again.region_override, override) and again.pins == {1: PinTarget("ref-a")}
    assert np.array_equal(again.region_labels(), edits.edited_labels(automatic, override))


def test_an_edit_made_at_another_working_size_is_set_aside_with_a_notice(qtbot, tmp_path):
    session = opened(tmp_path)
    session.region_override = np.ones((8, 8), dtype=np.int64)
    analysis = session.analysis
    session.analysis = None
    session.analysis = analysis
    assert session.region_override is None and session.error.kind == "region_edit_dropped"


@pytest.mark.parametrize("edit", [{"rows": 2, "cols": 2, "cells": [0, 1, 2]},
                                  {"rows": 1, "cols": 2, "cells": [0, 256]},
                                  {"rows": 1, "cols": 2, "cells": [0, "1"]},
                                  {"rows": 0, "cols": 2, "cells": []}])
def test_a_damaged_saved_edit_is_refused_by_the_check(edit):
    with pytest.raises(SchemaError, match="region_edit"):
        parse_session(json.loads(json.dumps({"region_edit": edit})))


def test_a_reference_edit_is_saved_with_the_pins_restored_and_checked(qtbot, tmp_path):
    session = opened(tmp_path)
    automatic = np.ones((8, 8), dtype=np.int64)
    automatic[:, 4:] = 2
    override = edits.paint(automatic, edits.empty_override(automatic), edits.brush_cells((8, 8), (2, 2), 2), None)
    session.pin(1, PinTarget("ref-a", 2))
    session.edit_regions(override, "Brush", "ref-a", automatic)
    assert session.region_override is None and np.array_equal(session.reference_overrides["ref-a"], override)
    assert session.reference_edit("ref-a", automatic).override is override
    assert session.reference_edit("ref-a", np.ones((4, 4), np.int64)) is None  # it fits another size only
    assert session.save()
    saved = load_document(tmp_path / "abc" / "session.json", SESSION_VERSION, validate=parse_session).data
    assert np.array_equal(saved.reference_overrides["ref-a"], override)
    again = opened(tmp_path)
    assert np.array_equal(again.reference_labels("ref-a", automatic), edits.edited_labels(automatic, override))
    assert again.pins == {1: PinTarget("ref-a", 2)}
    again.fit_reference_edit("ref-a", np.ones((4, 4), np.int64))  # analysed at another working size
    assert "ref-a" not in again.reference_overrides and again.error.kind == "region_edit_dropped"


@pytest.mark.parametrize("rows", [[{"ref_id": "", "rows": 1, "cols": 1, "cells": [0]}],
                                  [{"ref_id": "a", "rows": 1, "cols": 1, "cells": [0]}] * 2,
                                  [{"ref_id": "a", "rows": 1, "cols": 2, "cells": [0, 300]}],
                                  [{"rows": 1, "cols": 1, "cells": [0]}]])
def test_a_damaged_saved_reference_edit_is_refused_by_the_check(rows):
    with pytest.raises(SchemaError, match="reference_edits"):
        parse_session(json.loads(json.dumps({"reference_edits": rows})))
