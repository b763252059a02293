"""The artist's personal style gallery: copies of reference images, names, families, which take part.

Lives in `<data folder>/gallery/`: `images/` holds a copy of each reference (so moving or deleting the
original loses nothing) and `index.json` the rest, saved atomically (`engine.persistence`) on every change.
Stage-1 analyses are derived state, kept in memory only (the engine caches them on disk).
"""
from __future__ import annotations

import shutil
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.errors import ImageUnreadable, StyleGalleryError
from engine.images import load_image, pixel_sha256
from engine.persistence import load_json, save_json_atomic
from engine.types import Analysis, ImageRef

from .errors import ErrorInfo

INDEX_VERSION = 1
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Reference:
    """One gallery entry. `file` is the copy's name inside `images/`; `sha256` the pixels' hash."""

    id: str
    name: str
    file: str
    sha256: str
    family: str = ""
    enabled: bool = True


class Gallery(QObject):
    """Ordered references with families; every mutation saves the index and emits `changed`."""

    changed = Signal()  # the list, a name, a family or a checkbox changed
    analysis_changed = Signal(str)  # reference id whose analysis (or its state) changed
    background_progress_changed = Signal(object)  # (done, total) of the background analyses, or None

    def __init__(self, folder: Path, parent: QObject | None = None):
        super().__init__(parent)
        self.folder = Path(folder)
        self.images = self.folder / "images"
        self._refs: list[Reference] = []
        self._analyses: dict[str, Analysis] = {}
        self._background_progress: tuple[int, int] | None = None
        self.load_error: ErrorInfo | None = None  # set when index.json cannot be read: then it is never overwritten
        self._load()

    # ----- reading
    @property
    def references(self) -> list[Reference]:
        return list(self._refs)

    def get(self, ref_id: str) -> Reference | None:
        return next((r for r in self._refs if r.id == ref_id), None)

    def path(self, ref_id: str) -> Path:
        ref = self.get(ref_id)
        if ref is None:
            raise KeyError(ref_id)
        return self.images / ref.file

    def image_ref(self, ref_id: str) -> ImageRef:
        return ImageRef(self.path(ref_id))

    def enabled(self) -> list[Reference]:
        return [r for r in self._refs if r.enabled]

    def families(self) -> list[str]:
        """Family names in first-use order ("" = no family)."""
        return list(dict.fromkeys(r.family for r in self._refs))

    def analysis(self, ref_id: str) -> Analysis | None:
        return self._analyses.get(ref_id)

    @property
    def background_progress(self) -> tuple[int, int] | None:
        """(done, total) of the references being analysed in the background; None when none are."""
        return self._background_progress

    def set_background_progress(self, progress: tuple[int, int] | None) -> None:
        if progress != self._background_progress:
            self._background_progress = progress
            self.background_progress_changed.emit(progress)

    # ----- adding
    def add_paths(self, paths: list[Path], family: str = "") -> tuple[list[str], list[ErrorInfo]]:
        """Add image files, and every image inside folders (a folder's name becomes the family).

        Returns the new ids and one problem per file that was skipped (not an image, unreadable, already in).
        """
        added: list[str] = []
        problems: list[ErrorInfo] = []
        for path in map(Path, paths):
            if path.is_dir():
                files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
                if not files:
                    problems.append(ErrorInfo("not_an_image", f"The folder {path.name} holds no images",
                                              ImageUnreadable.hint))
                sub_added, sub_problems = self.add_paths(files, family or path.name)
                added += sub_added
                problems += sub_problems
                continue
            try:
                image = load_image(path)
            except ImageUnreadable as exc:
                problems.append(ErrorInfo("not_an_image" if path.suffix.lower() not in IMAGE_SUFFIXES else exc.kind,
                                          exc.message, exc.hint))
                continue
            ref_id = self._store(image, family, name=path.stem, source=path)
            if ref_id is None:
                problems.append(ErrorInfo("duplicate", f"{path.name} is already in the gallery"))
            else:
                added.append(ref_id)
        if added:
            self._save()
        return added, problems

    def add_image(self, image, name: str = "Pasted image", family: str = "") -> str | None:
        """Add a PIL image (e.g. pasted from the clipboard); None if the same pixels are already in."""
        ref_id = self._store(image.convert("RGB"), family, name=name, source=None)
        if ref_id is not None:
            self._save()
        return ref_id

    def _store(self, image, family: str, name: str, source: Path | None) -> str | None:
        sha = pixel_sha256(image)
        if any(r.sha256 == sha for r in self._refs):
            return None
        ref_id = uuid.uuid4().hex[:12]
        self.images.mkdir(parents=True, exist_ok=True)
        if source is not None and source.suffix.lower() in IMAGE_SUFFIXES:
            file = ref_id + source.suffix.lower()
            shutil.copyfile(source, self.images / file)
        else:
            file = ref_id + ".png"
            image.save(self.images / file)
        self._refs.append(Reference(ref_id, name, file, sha, family))
        return ref_id

    # ----- editing
    def remove(self, ref_id: str) -> None:
        ref = self.get(ref_id)
        if ref is None:
            return
        self._refs.remove(ref)
        self._analyses.pop(ref_id, None)
        self._save()
        (self.images / ref.file).unlink(missing_ok=True)

    def rename(self, ref_id: str, name: str) -> None:
        self._update(ref_id, name=name.strip() or self.get(ref_id).name)

    def set_family(self, ref_id: str, family: str) -> None:
        self._update(ref_id, family=family.strip())

    def set_enabled(self, ref_id: str, enabled: bool) -> None:
        self._update(ref_id, enabled=bool(enabled))

    def rename_family(self, old: str, new: str) -> None:
        self._refs = [replace(r, family=new.strip()) if r.family == old else r for r in self._refs]
        self._save()

    def set_family_enabled(self, family: str, enabled: bool) -> None:
        self._refs = [replace(r, enabled=bool(enabled)) if r.family == family else r for r in self._refs]
        self._save()

    def set_analysis(self, ref_id: str, analysis: Analysis | None) -> None:
        if self.get(ref_id) is None:
            return  # removed while its analysis ran
        if analysis is None:
            self._analyses.pop(ref_id, None)
        else:
            self._analyses[ref_id] = analysis
        self.analysis_changed.emit(ref_id)

    def _update(self, ref_id: str, **changes) -> None:
        ref = self.get(ref_id)
        if ref is None:
            return
        new = replace(ref, **changes)
        if new == ref:
            return
        self._refs[self._refs.index(ref)] = new
        self._save()

    # ----- persistence
    def _save(self) -> None:
        if self.load_error is None:
            save_json_atomic(self.folder / "index.json", {"references": [asdict(r) for r in self._refs]}, INDEX_VERSION)
        self.changed.emit()

    def _load(self) -> None:
        try:
            data = load_json(self.folder / "index.json")
        except StyleGalleryError as exc:
            self.load_error = ErrorInfo.from_exception(exc)
            return
        if data is None:
            return
        fields = set(Reference.__dataclass_fields__)
        refs = [Reference(**{k: v for k, v in row.items() if k in fields}) for row in data.get("references", [])]
        self._refs = [r for r in refs if (self.images / r.file).is_file()]  # a copy deleted by hand drops out
