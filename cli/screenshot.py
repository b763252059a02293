"""`python main.py screenshot OUT.png`: the main window on real photos (../shared/benchmark), rendered offscreen.

It adds a few references from one family, opens a photo, waits for its region map and matches, pins one
region, runs a short transfer and grabs the window. Models: the random-weight tiny models (built in a temp
folder, or `--models DIR`) unless `--configured` uses the model set in the app's Settings. Everything made with
random weights is labelled so in the picture (status bar, region maps, preview and result).

`--draft` shows a first start without the Stable Diffusion model instead (an empty Hugging Face cache, offline):
the instant draft on quick regions (the Magenta networks have real weights), a pin on one quick region, and the
one banner that explains how to get the full model. Nothing in it is made with random weights.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from engine.wording import count

DEFAULT_BENCHMARK = Path(__file__).resolve().parents[2] / "shared" / "benchmark"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("screenshot", help="render the main window on benchmark photos to a PNG")
    parser.add_argument("out", type=Path, help="output PNG")
    parser.add_argument("--benchmark", type=Path, default=DEFAULT_BENCHMARK, help="folder with content/ and style/")
    parser.add_argument("--content", default="0001.png", help="photo in BENCHMARK/content")
    parser.add_argument("--family", default="VanGogh", help="style family in BENCHMARK/style")
    parser.add_argument("--references", type=int, default=3, help="how many references of the family to add")
    parser.add_argument("--steps", type=int, default=12, help="steps of the short run shown")
    parser.add_argument("--models", type=Path, default=None,
                        help="a tiny-model folder (sd15/, dinov2/, depth/) instead of building one")
    parser.add_argument("--configured", action="store_true", help="use the model set in the app's Settings")
    parser.add_argument("--size", default="1500x940", help="window size WxH")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the analyses and the run")
    parser.add_argument("--draft", action="store_true",
                        help="show a first start without the SD model: the instant draft on quick regions")
    parser.add_argument("--regions", action="store_true",
                        help="show the region tools in use on the photo and a reference, the draft after")


def run(args: argparse.Namespace) -> int:
    import tempfile

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="stylegallery-shot-") as tmp:
        if args.draft:  # a fresh machine: no model in the Hugging Face cache, no download
            os.environ["HF_HUB_CACHE"] = str(Path(tmp) / "empty-hub-cache")
        return _shoot(args, Path(tmp))


def _shoot(args: argparse.Namespace, tmp: Path) -> int:
    from PySide6.QtCore import QSettings

    from gui.app import create_app, open_window
    from gui.model.session import PinTarget
    from gui.settings import AppSettings, Preferences

    app = create_app()
    style_dir = args.benchmark / "style" / args.family
    content = args.benchmark / "content" / args.content
    references = sorted(p for p in style_dir.iterdir() if p.is_file())[: args.references] if style_dir.is_dir() else []
    if not content.is_file() or not references:
        print(f"stylegallery: error: need {content} and images in {style_dir} (see --benchmark)")
        return 2
    settings = AppSettings(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    settings.cpu_warning_shown = True  # the notice is a separate window: not part of the picture
    if args.draft:
        settings.set_preferences(Preferences(offline=True, device="auto"))
    elif args.configured:
        settings.set_preferences(AppSettings().preferences())
    else:
        models = args.models or _build_tiny_models(tmp / "models")
        settings.set_preferences(Preferences(sd=str(models / "sd15"), dinov2=str(models / "dinov2"),
                                             depth=str(models / "depth"), offline=True, device="auto"))
    width, height = (int(v) for v in args.size.lower().split("x"))
    window = open_window(settings, tmp / "data")
    window.resize(width, height)
    window.show()
    controller, session = window.controller, window.session
    deadline = time.monotonic() + args.timeout

    session.status_changed.connect(lambda text: print(f"  {text}", file=sys.stderr, flush=True))

    def wait(condition, what: str) -> bool:
        while not condition():
            app.processEvents()
            if session.error is not None and not session.error.is_warning and not args.draft:  # --draft: expected
                print(f"stylegallery: error while {what}: {session.error.message} ({session.error.hint})")
                return False
            if time.monotonic() > deadline:
                print(f"stylegallery: error: timed out while {what}")
                return False
            time.sleep(0.02)
        return True

    def wait_draft(what: str) -> bool:
        return wait(lambda: session.draft is not None and not session.drafting and not controller.queue.is_busy()
                    or bool(session.draft_message), what) and not session.draft_message

    try:
        ids = controller.add_references(references, family=args.family)
        controller.gallery.set_enabled(ids[-1], False)  # one unchecked, to show the checkboxes
        controller.open_content(content)
        if args.draft:
            return _draft_shot(args, window, ids, wait_draft)
        if not wait(lambda: session.match_table is not None, "analysing and matching"):
            return 2
        if args.regions:
            return _regions_shot(args, window, ids, wait)
        session.reference_maps = True
        regions = session.analysis.region_ids
        window.matches_panel.show_reference(ids[0])
        if len(regions) > 1 and len(ids) > 1:  # show a pin: the last region takes the second reference
            session.selected_region = regions[-1]
            session.pin(regions[-1], PinTarget(ids[1]))
        session.steps = args.steps
        controller.run()
        if not wait(lambda: not session.running, "running"):
            return 2
        session.hovered_region = regions[0]
        wait(lambda: not controller.queue.is_busy(), "finishing")
        if not _grab(window, args.out):
            return 2
        print(f"{args.out}: {width}x{height}, model {controller.model_label}, {count(len(regions), 'region')}, "
              f"{count(session.result.steps_done, 'step')}")
        return 0
    finally:
        window.close()


def _draft_shot(args: argparse.Namespace, window, ids: list[str], wait_draft) -> int:
    """The draft on quick regions with one region pinned to the second reference, shown in the Draft tab."""
    from gui.model.session import PinTarget

    session = window.session
    if not wait_draft("drafting"):
        print(f"stylegallery: error: no draft: {session.draft_message}")
        return 2
    regions = sorted(session.region_shares())
    if len(regions) > 1 and len(ids) > 1:  # pin the largest region to a checked reference no other region uses
        region = max(regions, key=session.region_shares().get)
        used = {session.shown_match(r).ref_id for r in regions if r != region}
        other = next((i for i in ids[:-1] if i not in used), ids[1])
        session.selected_region = region
        session.pin(region, PinTarget(other))
        if not wait_draft("drafting with a pin"):
            return 2
    window.matches_panel.show_reference(ids[0])
    window.outputs.setCurrentWidget(window.draft_panel)
    if not _grab(window, args.out):
        return 2
    draft = session.draft
    print(f"{args.out}: draft on {count(len(regions), draft.region_source + ' region')} in {draft.seconds:.2f} s")
    return 0


def _regions_shot(args: argparse.Namespace, window, ids: list[str], wait) -> int:
    """The region tools at work on both maps: on the photo the first two regions merged through the Merge action and
    a new region brushed; on the first reference, shown large, a region cut out with the lasso; an open lasso on the
    photo (its outline and rubber band to the pointer); the draft made on the edited maps."""
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtTest import QTest

    from engine.stage1.edits import brush_cells, polygon_cells

    session, tools, view = window.session, window.content_panel.tools, window.content_panel.view
    regions = session.analysis.region_ids
    if len(regions) > 2:  # merging the only two would leave no map to show
        session.selected_region = regions[0]
        view.marked.emit(regions[1])  # as a Ctrl+click does
        tools.merge_action.trigger()
    session.selected_region = None
    tools.tool_actions["brush"].trigger()
    tools.size_box.setValue(6)
    rows, cols = session.analysis.labels.shape
    cells = brush_cells((rows, cols), (rows * 0.3, cols * 0.7), 6) | brush_cells((rows, cols), (rows * 0.3, cols * 0.6),
                                                                       6)
    view.stroked.emit(cells, None)
    window.matches_panel.show_reference(ids[0])
    ref_view = window.matches_panel.ref_view
    tools.tool_actions["lasso"].trigger()
    if ref_view.labels is not None:  # a concave outline round part of the reference
        shape = ref_view.labels.shape
        corners = [(0.15, 0.2), (0.1, 0.65), (0.5, 0.75), (0.3, 0.45), (0.55, 0.2)]
        ref_view.stroked.emit(polygon_cells(shape, [(r * shape[0], c * shape[1]) for r, c in corners]), None)
    rect = view.image_rect()
    at = [QPoint(int(rect.left() + rect.width() * x), int(rect.top() + rect.height() * y))
          for x, y in ((0.15, 0.6), (0.4, 0.55), (0.45, 0.85))]
    for point in at:  # an outline being drawn corner by corner
        QTest.mouseClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
    view.show_pointer(QPointF(rect.left() + rect.width() * 0.2, rect.top() + rect.height() * 0.9))

    def drafted_on_the_edit() -> bool:
        draft = session.draft
        return (session.match_table is not None and draft is not None and not session.drafting
                and draft.region_source == "method" and draft.labels.max() == session.region_labels().max())

    if not wait(drafted_on_the_edit, "matching and drafting on the edited regions"):
        return 2
    window.outputs.setCurrentWidget(window.draft_panel)
    if not _grab(window, args.out):
        return 2
    print(f"{args.out}: {count(len(session.region_shares()), 'region')} after the edits "
          f"({session.undo_stack.count()} undoable steps)")
    return 0


def _grab(window, out: Path) -> bool:
    from PySide6.QtWidgets import QApplication

    for _ in range(20):
        QApplication.processEvents()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(out)):
        print(f"stylegallery: error: could not write {out}")
        return False
    return True


def _build_tiny_models(folder: Path) -> Path:
    """The test suite's random-weight tiny models (tests/tiny_models.py), built in a temp folder."""
    from tests.tiny_models import build_tiny_models

    return build_tiny_models(folder)
