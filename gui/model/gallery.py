"""The artist's personal style gallery: copies of reference images, names, families, which take part.

Lives in `<data folder>/gallery/`: `images/` holds a copy of each reference (so moving or deleting the
original loses nothing) and `index.json` the rest, saved atomically (`engine.persistence`) on every change.
Stage-1 analyses are derived state, kept in memory only (the engine caches them on disk).

The index is untrusted input when read back: `parse_index` checks its shape (a damaged index falls back to its
backup, with a message) and that every stored file name stays inside `images/`. A reference whose image is
missing (a copy deleted by hand, the folder on a drive that is not mounted) is kept and marked missing, never
dropped from the index: missing is not deleted. A newer or unreadable index opens read-only.
"""
from __future__ import annotations

import shutil
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.errors import ImageUnreadable, StyleGalleryError
from engine.images import IMAGE_SUFFIXES, load_image, pixel_sha256
from engine.persistence import load_document, save_json_atomic
from engine.schema import SchemaError, file_name, items, member
from engine.types import Analysis, ImageRef

from .disk_errors import disk_error_info
from .errors import ErrorInfo, document_problem

INDEX_VERSION = 1


@dataclass(frozen=True)
class Reference:
    """One gallery entry. `file` is the copy's name inside `images/`; `sha256` the pixels' hash."""

    id: str
    name: str
    file: str
    sha256: str
    family: str = ""
    enabled: bool = True


def parse_index(data) -> list[Reference]:
    """The references of an index document, checked field by field (SchemaError at the first thing wrong)."""
    refs = []
    for row, where in items(member(data, "references", list, "index"), "references"):
        ref_id = member(row, "id", str, where)
        if not ref_id:
            raise SchemaError(f"{where}.id: empty")
        refs.append(Reference(ref_id, member(row, "name", str, where), file_name(member(row, "file", str, where),
                              f"{where}.file"), member(row, "sha256", str, where), member(row, "family", str, where, ""),
                              member(row, "enabled", bool, where, True)))
    ids = [r.id for r in refs]
    if len(set(ids)) != len(ids):
        raise SchemaError("references: the same id twice")
    return refs


class Gallery(QObject):
    """Ordered references with families; every mutation saves the index and emits `changed`."""

    changed = Signal()  # the list, a name, a family or a checkbox changed
    save_failed = Signal(object)  # ErrorInfo: the index could not be written (the change stays in memory)
    analysis_changed = Signal(str)  # reference id whose analysis (or its state) changed
    background_progress_changed = Signal(object)  # (done, total) of the background analyses, or None
    problem = Signal(object)  # ErrorInfo for the banner, e.g. a save refused because the index is read-only

    def __init__(self, folder: Path, parent: QObject | None = None):
        super().__init__(parent)
        self.folder = Path(folder)
        self.images = self.folder / "images"
        self.index = self.folder / "index.json"
        self._refs: list[Reference] = []
        self._analyses: dict[str, Analysis] = {}
        self._background_progress: tuple[int, int] | None = None
        self.load_error: ErrorInfo | None = None  # what was wrong with index.json and what was done about it
        self.read_only = False  # a newer or unreadable index: shown, never saved over, no image added or deleted
        self.unsaved = False  # the last index write failed: what is in memory is newer than the file
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

    def is_missing(self, ref_id: str) -> bool:
        """The reference is in the gallery but its image is not (deleted by hand, or on a drive not mounted)."""
        return not self.path(ref_id).is_file()

    def enabled(self) -> list[Reference]:
        """The references that take part: checked, with their image present."""
        return [r for r in self._refs if r.enabled and not self.is_missing(r.id)]

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
        An image that a missing reference lacked brings that reference back (its id is among the new ones).
        """
        added: list[str] = []
        problems: list[ErrorInfo] = []
        if self.read_only:
            return [], [self._read_only_problem()]
        for path in map(Path, paths):
            try:
                if path.is_dir():
                    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
                    if not files:
                        problems.append(ErrorInfo("not_an_image", f"The folder {path.name} holds no images",
                                                  ImageUnreadable.hint))
                    sub_added, sub_problems = self.add_paths(files, family or path.name)
                    added += sub_added
                    problems += sub_problems
                    continue
                image = load_image(path)
            except ImageUnreadable as exc:
                problems.append(ErrorInfo("not_an_image" if path.suffix.lower() not in IMAGE_SUFFIXES else exc.kind,
                                          exc.message, exc.hint))
                continue
            except OSError as exc:  # a name too long, a folder that vanished or may not be listed
                problems.append(disk_error_info(f"read {path.name[:80]}", exc, "image_unreadable"))
                continue
            try:
                ref_id = self._store(image, family, name=path.stem, source=path)
            except OSError as exc:  # the copy failed (disk full): nothing of it is left in images/
                problems.append(disk_error_info(f"copy {path.name[:80]} into the gallery", exc))
                continue
            if ref_id is None:
                problems.append(ErrorInfo("duplicate", f"{path.name} is already in the gallery"))
            else:
                added.append(ref_id)
        if added:
            self._save()
        return added, problems

    def add_image(self, image, name: str = "Pasted image", family: str = "") -> str | None:
        """Add a PIL image (e.g. pasted from the clipboard); None if the same pixels are already in."""
        if self.read_only:
            self.problem.emit(self._read_only_problem())
            return None
        ref_id = self._store(image.convert("RGB"), family, name=name, source=None)
        if ref_id is not None:
            self._save()
        return ref_id

    def _store(self, image, family: str, name: str, source: Path | None) -> str | None:
        """Copy the image into `images/` and add it; None if it is in already. The same pixels as a missing
        reference restore that reference's image instead."""
        sha = pixel_sha256(image)
        existing = next((r for r in self._refs if r.sha256 == sha), None)
        if existing is not None and not self.is_missing(existing.id):
            return None
        ref_id = existing.id if existing is not None else uuid.uuid4().hex[:12]
        self.images.mkdir(parents=True, exist_ok=True)
        copied = source is not None and source.suffix.lower() in IMAGE_SUFFIXES
        file = ref_id + (source.suffix.lower() if copied else ".png")
        try:
            if copied:
                shutil.copyfile(source, self.images / file)
            else:
                image.save(self.images / file)
        except OSError:
            (self.images / file).unlink(missing_ok=True)  # never leave a truncated copy behind
            raise
        if existing is not None:
            self._refs[self._refs.index(existing)] = replace(existing, file=file)
        else:
            self._refs.append(Reference(ref_id, name, file, sha, family))
        return ref_id

    # ----- editing
    def remove(self, ref_id: str) -> None:
        ref = self.get(ref_id)
        if ref is None:
            return
        path = self.path(ref_id)
        self._refs.remove(ref)
        self._analyses.pop(ref_id, None)
        if self._save():  # while the index still names it (read-only, or a failed write), the copy stays
            path.unlink(missing_ok=True)

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
    def _save(self) -> bool:
        """Write the index and emit `changed`; False when it was not written (see `save`)."""
        saved = self.save()
        self.changed.emit()
        return saved

    def save(self) -> bool:
        """Write the index (every reference, missing ones too). False when it was not written: read-only (a newer
        app's index: `problem` says so), or the disk refused (`save_failed` says why; the change stays in memory,
        `unsaved`, for the next write to carry)."""
        if self.read_only:
            return False
        try:
            save_json_atomic(self.index, {"references": [asdict(r) for r in self._refs]}, INDEX_VERSION,
                             validate=parse_index)
        except StyleGalleryError as exc:  # a newer StyleGallery wrote the index meanwhile: leave it to that one
            self.read_only = True
            self.problem.emit(ErrorInfo.from_exception(exc))
            return False
        except OSError as exc:
            self.unsaved = True
            self.save_failed.emit(disk_error_info("save the gallery index", exc))
            return False
        self.unsaved = False
        return True

    def _load(self) -> None:
        loaded = load_document(self.index, INDEX_VERSION, validate=parse_index)
        if loaded is None:
            return
        self._refs = loaded.data or []
        self.read_only = loaded.read_only
        self.load_error = document_problem(loaded)

    def _read_only_problem(self) -> ErrorInfo:
        return ErrorInfo("document_read_only", "The gallery is read-only: nothing can be added to it now",
                         self.load_error.message if self.load_error is not None else "")
