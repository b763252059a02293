"""The Draft tab: the instant draft (kept current by `gui.drafts`), its strength and colour options, Refine and Save.

It shows what the session holds; the one message it may show instead of a draft (the draft extra is missing, no
reference is checked) is the session's `draft_message`.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider, QVBoxLayout,
                               QWidget)

from ..model.region_names import QUICK_REGIONS, regions_text
from ..model.properties import bind
from ..model.session import Session
from .images import qimage_from_array
from .region_view import RegionView

REFINE_TIP = "Run the full method (Stable Diffusion) with the same references and pins (Ctrl+Return)"
REFINE_WAIT_TIP = "Refine needs the method's regions: it is possible once the photo is analysed"
PLACEHOLDER = "The draft appears here a moment after you open a photo and check a reference"


class DraftPanel(QWidget):
    save_requested = Signal()

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        session: Session = controller.session
        self.session = session
        self.view = RegionView(PLACEHOLDER)
        self.view.setObjectName("draftView")
        self.message = QLabel("")
        self.message.setObjectName("draftMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()
        self.caption = QLabel("")
        self.caption.setObjectName("draftCaption")
        self.caption.setWordWrap(True)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.strength = QSlider(Qt.Orientation.Horizontal)
        self.strength.setRange(0, 100)
        self.strength.setMaximumWidth(160)
        self.strength.setToolTip("How much of the references' style: 0 keeps the photo's own look")
        self.strength_value = QLabel("")
        self.preserve = QCheckBox("Keep photo colours")
        self.preserve.setToolTip("Take the style's brushwork and light, keep the photo's colours")
        self.refine_button = QPushButton("Refine")
        self.refine_button.setObjectName("refineButton")
        self.refine_button.clicked.connect(controller.run)
        self.save_button = QPushButton("Save draft…")
        self.save_button.setToolTip("Save the draft as PNG; its metadata says it is a draft and how it was made")
        self.save_button.clicked.connect(self.save_requested)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Strength"))
        bar.addWidget(self.strength)
        bar.addWidget(self.strength_value)
        bar.addWidget(self.preserve)
        bar.addStretch(1)
        bar.addWidget(self.save_button)
        bar.addWidget(self.refine_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.message)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.caption)
        layout.addLayout(bar)

        bind(session, "draft_strength", self.strength, "value")
        bind(session, "draft_preserve_colour", self.preserve, "checked")
        for signal in (session.draft_changed, session.drafting_changed, session.random_weights_changed,
                       session.analysis_changed, session.draft_strength_changed):
            signal.connect(self._refresh)
        session.draft_message_changed.connect(self._message_changed)
        self._refresh()

    @Slot()
    def _message_changed(self) -> None:
        """The reason there is no draft replaces the placeholder (one message, not two)."""
        text = self.session.draft_message
        self.message.setText(f"<b>No instant draft.</b> {text}" if text else "")
        self.message.setVisible(bool(text))
        self.view.placeholder = "" if text else PLACEHOLDER
        self._refresh()

    @Slot()
    def _refresh(self) -> None:
        session, draft = self.session, self.session.draft
        self.strength_value.setText(f"{session.draft_strength} %")
        self.view.set_image(None if draft is None else qimage_from_array(draft.image))
        self.view.set_note(draft_note(draft, session.random_weights))
        if draft is None:
            self.caption.setText("Drafting…" if session.drafting else "")
        else:
            busy = " · updating…" if session.drafting else ""
            self.caption.setText(f"Draft (Magenta arbitrary stylisation, not the StyleGallery method) on "
                                 f"{regions_text(draft, session.random_weights)} · {draft.seconds:.1f} s{busy}")
        self.save_button.setEnabled(draft is not None)
        ready = session.analysis is not None
        self.refine_button.setEnabled(ready)  # during a run, Refine queues the next
        self.refine_button.setToolTip(REFINE_TIP if ready else REFINE_WAIT_TIP)


def draft_note(draft, random_weights: bool) -> str:
    """The strip painted over the draft: its regions named, random-weight regions flagged."""
    if draft is None:
        return ""
    if draft.region_source == "quick":
        return f"DRAFT · {QUICK_REGIONS}"
    return "DRAFT · regions from RANDOM-WEIGHT test models" if random_weights else ""
