"""Glue between the document model and the engine: turns user actions into GPU jobs and results into state.

All engine calls run on the `JobQueue`'s thread; every handler here runs in the GUI thread (queued slots). Each
job carries its own handlers (`Job.on_done`, `on_failed`, `on_cancelled`); `_on_failed` adds what every failure
shows. Runs go through the `RunQueue` (gui/model/run_queue.py): Run queues the request made now, and the next
waiting run is handed to the job queue when the one before it ends; each result lands in its own photo's history.
The engine is called through closures made at submit time, so a settings change (a new Engine) applies to
the next job while a running one finishes with the engine it started with.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from engine.draft import draft_available
from engine.errors import ImageUnreadable
from engine.images import load_image, pixel_sha256
from engine.memory import cpu_speed_warning
from engine.params import MatchParams, OutputParams, Stage1Params, settings_key
from engine.results import rescue_result, save_result
from engine.types import ImageRef, StepEvent, TransferRequest, TransferResult
from engine.wording import count

from .drafts import DraftController
from .gallery_analysis import GalleryAnalysis
from .model.disk_errors import disk_error_info
from .model.errors import ErrorInfo
from .model.gallery import Gallery
from .model.run_queue import CANCELLED, DONE, FAILED, RUNNING, QueuedRun, RunQueue
from .model.session import RunRecord, Session
from .worker import Job, JobHandler, JobQueue

MATCH_DELAY_MS = 250  # gather quick successive gallery edits into one matching job
STAGE_NAMES = {"analyze": "Analysing regions", "match": "Matching regions", "decode": "Decoding the result",
               "download": "Downloading models", "transfer": "Style transfer"}
DRAFT_ONLY = "Drafts only for now: the full method needs models that are not on this computer"
NO_MODELS = "The full method needs models that are not on this computer"
GET_MODELS = ("To get them, connect to the internet and press Run: Stable Diffusion 1.5, DINOv2 and a depth model "
              "download once (about 5.6 GB, progress in the status bar). Or point File > Settings… at models "
              "already on disk.{meanwhile} Details: {details}")

JOB_TOPICS = {"analyze_content": "content", "transfer": "run"}  # banner topic of a failed job (see Session.show_error)
SKIPPED_KINDS = {"duplicate": "already in the gallery", "not_an_image": "not an image",
                 "image_unreadable": "unreadable or damaged", "image_too_large": "too large"}
DETAILS_PER_KIND = 3  # file messages listed per kind of problem; the rest are counted


def skipped_files_info(problems: list[ErrorInfo]) -> ErrorInfo:
    """Several skipped files as one message that names every kind of problem (a duplicate at the top of a folder
    must not hide damaged files further down): counts in the message, the files in the hint."""
    groups: dict[str, list[ErrorInfo]] = {}
    for problem in problems:
        groups.setdefault(problem.kind, []).append(problem)
    counts = ", ".join(f"{len(group)} {SKIPPED_KINDS.get(kind, kind.replace('_', ' '))}"
                       for kind, group in groups.items())
    details = []
    for group in groups.values():
        listed = "; ".join(p.message for p in group[:DETAILS_PER_KIND])
        more = f"; and {len(group) - DETAILS_PER_KIND} more" if len(group) > DETAILS_PER_KIND else ""
        details.append(listed + more + ".")
    hints = list(dict.fromkeys(p.hint for p in problems if p.hint))
    serious = next((p.kind for p in problems if p.kind != "duplicate"), "duplicate")
    return ErrorInfo(serious, f"{count(len(problems), 'file was', 'files were')} not added: {counts}",
                     " ".join(details + hints))


def draft_only_info(info: ErrorInfo, drafts_work: bool) -> ErrorInfo:
    """The one explanation of a missing model: what works without it and how to get it."""
    meanwhile = " The Instant draft tab works meanwhile." if drafts_work else ""
    return ErrorInfo("draft_only" if drafts_work else info.kind, DRAFT_ONLY if drafts_work else NO_MODELS,
                     GET_MODELS.format(meanwhile=meanwhile, details=info.message))


class Controller(QObject):
    """Owns the job queue and the engine in use; the window calls its methods and binds to the models."""

    device_changed = Signal(str)  # "NVIDIA ..., 21.3 GiB free" or "CPU: slow"
    speed_warning = Signal(str)  # the engine runs on the CPU: what to expect
    _engine_event = Signal(object, object)  # (None, StepEvent) from the worker thread
    model_changed = Signal(str)  # the model in use, for the status bar

    def __init__(self, session: Session, gallery: Gallery, engine: Any, model_label: str,
                 random_weights: bool, engine_error: ErrorInfo | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.session, self.gallery = session, gallery
        self.queue = JobQueue(self)
        self.runs = RunQueue(self)
        self._run_job: Job | None = None  # the transfer of the running queued run
        self.engine, self.engine_error = engine, engine_error
        self.model_label = model_label
        self.stage1 = Stage1Params()  # SPEC defaults; one value for analyses, matching and runs (their cache key)
        self.output = OutputParams()  # the result's size (Settings)
        self.match = MatchParams()  # SPEC defaults; a restored result's own (gui/restore.py)
        self._match_timer = QTimer(self, singleShot=True, interval=MATCH_DELAY_MS)
        self._match_timer.timeout.connect(self.match_now)
        self.queue.step.connect(self._on_step)
        self._engine_event.connect(self._on_step)
        self.queue.busy_changed.connect(self._busy_changed)
        self.queue.failed.connect(self._on_failed)
        self.gallery.changed.connect(self.schedule_match)
        self.session.region_override_changed.connect(self._regions_edited)
        self.session.reference_regions_changed.connect(self._regions_edited)
        self.gallery.analysis_changed.connect(self._fit_reference_edit)
        self.runs.added.connect(self._start_next_run)
        self.runs.cancel_requested.connect(self._cancel_queued_run)
        self.gallery.problem.connect(lambda info: self.session.show_error(info, "gallery"))
        self.gallery.changed.connect(self._gallery_saved)
        self.gallery.save_failed.connect(self._gallery_save_failed)
        self.drafts = DraftController(self, self)
        self.gallery_analysis = GalleryAnalysis(self, self)
        self.session.random_weights = random_weights
        if gallery.load_error is not None:
            session.show_error(gallery.load_error, "gallery")

    # ----- engine
    def use_engine(self, engine: Any, model_label: str, random_weights: bool,
                   engine_error: ErrorInfo | None = None) -> None:
        """Switch models (settings changed): analyses are redone with the new engine."""
        self.queue.cancel()
        self.engine, self.engine_error, self.model_label = engine, engine_error, model_label
        self.session.random_weights = random_weights
        self.session.models_missing = False
        self.session.analysis = None
        self.session.match_table = None
        for ref in self.gallery.references:
            self.gallery.set_analysis(ref.id, None)
        self.start()
        self.drafts.engine_changed()

    def start(self) -> None:
        """Ask for the device summary, analyse the open content and the references its runs use now, and the rest
        of the gallery in the background (`GalleryAnalysis`; everything is cached by the engine)."""
        self.model_changed.emit(self.model_label)
        if self.engine is None:
            self.session.show_error(self.engine_error, "models")
            return
        self._submit("device", lambda engine, on_event, cancel: engine.device_summary(), self._device_known)
        if self.session.content is not None:
            self._analyze_content()
        self.analyze_references()

    def analyze_references(self) -> None:
        """Analyse the references the runs use now, and the rest of the gallery in the background."""
        present = [r.id for r in self.gallery.references if not self.gallery.is_missing(r.id)]
        used = set(self.participants())
        for ref_id in present:
            if ref_id in used:
                self._analyze_reference(ref_id)
        self.gallery_analysis.start([ref_id for ref_id in present if ref_id not in used])

    def stop_gallery_analysis(self) -> None:
        """Stop analysing the unused references (the next start resumes where this stopped)."""
        self.gallery_analysis.stop()

    def save_all(self) -> list[str]:
        """Write the session and any gallery change not yet written; what could not be saved, in words."""
        unsaved = [] if self.session.save() else ["the pins and run history of the open photo"]
        if self.gallery.unsaved and not self.gallery.save():
            unsaved.append("the gallery's latest changes (new, renamed or removed references)")
        return unsaved

    def shutdown(self) -> None:
        """Cancel the waiting runs, stop both threads (they stop at their next cancel check) and save."""
        self.runs.cancel_waiting()
        self._match_timer.stop()
        self.gallery_analysis.stop()
        self.drafts.shutdown()
        self.queue.shutdown()
        self.session.save()

    # ----- content
    def open_content(self, path: Path) -> bool:
        """Open a photo (errors go to the banner); its pins and history come back if it was open before."""
        try:
            image = load_image(path)
        except ImageUnreadable as exc:
            self.session.show_error(ErrorInfo.from_exception(exc), "content")
            return False
        except OSError as exc:  # a name too long to even look at
            self.session.show_error(disk_error_info(f"open {Path(path).name[:80]}", exc, "image_unreadable"), "content")
            return False
        self.queue.cancel("analyze_content")
        self.queue.cancel("match")
        self.session.show_error(None, "content")  # an earlier photo's problem is no longer news
        self.session.open(Path(path), pixel_sha256(image))
        self._analyze_content()
        return True

    def _analyze_content(self) -> None:
        ref = ImageRef(self.session.content)
        self.session.status = "Analysing the photo…"
        stage1 = self.stage1
        self._submit("analyze_content", lambda engine, on_event, cancel: engine.analyze(
            ref, stage1, on_event=on_event, cancel=cancel), self._content_analysed, key=self.session.content_sha)

    # ----- gallery
    def add_references(self, paths: list[Path], family: str = "") -> list[str]:
        added, problems = self.gallery.add_paths(paths, family)
        self._report(problems)
        for ref_id in added:
            self._analyze_reference(ref_id)
        return added

    def add_reference_image(self, image, name: str = "Pasted image") -> str | None:
        try:
            ref_id = self.gallery.add_image(image, name)
        except OSError as exc:
            self._report([disk_error_info(f"add the {name.lower()} to the gallery", exc)])
            return None
        if ref_id is None and not self.gallery.read_only:  # a read-only gallery reported itself
            self._report([ErrorInfo("duplicate", "The pasted image is already in the gallery")])
        else:
            self._analyze_reference(ref_id)
        return ref_id

    def remove_reference(self, ref_id: str) -> None:
        self.queue.cancel(key=ref_id)  # its foreground or background analysis
        self.gallery.remove(ref_id)

    @Slot(object)
    def _gallery_save_failed(self, info: ErrorInfo) -> None:
        self.session.show_error(info, "gallery_save")

    @Slot()
    def _gallery_saved(self) -> None:
        if not self.gallery.unsaved:
            self.session.show_error(None, "gallery_save")  # a later write carried the change

    def _analyze_reference(self, ref_id: str) -> None:
        ref = self.gallery.image_ref(ref_id)
        stage1 = self.stage1
        self._submit("analyze_reference", lambda engine, on_event, cancel: engine.analyze(
            ref, stage1, on_event=on_event, cancel=cancel), self._reference_analysed, key=ref_id)

    def _report(self, problems: list[ErrorInfo]) -> None:
        """One banner message for everything an add skipped, every kind of problem named in it."""
        if problems:
            self.session.show_error(problems[0] if len(problems) == 1 else skipped_files_info(problems), "gallery")

    # ----- matching
    def participants(self) -> list[str]:
        """References of a run: the checked ones, plus any a pin names (a pin is an explicit choice)."""
        ids = [r.id for r in self.gallery.enabled()]
        pinned = [t.ref_id for t in self.session.pins.values()
                  if self.gallery.get(t.ref_id) is not None and not self.gallery.is_missing(t.ref_id)]
        return ids + [i for i in dict.fromkeys(pinned) if i not in ids]

    def reference_image(self, ref_id: str) -> ImageRef:
        """A reference for a match, run or method draft: with the artist's edit of its regions, once it fits them."""
        analysis = self.gallery.analysis(ref_id)
        return ImageRef(self.gallery.path(ref_id), region_edit=self.session.reference_edit(
            ref_id, None if analysis is None else analysis.labels))

    @Slot(str)
    def _fit_reference_edit(self, ref_id: str) -> None:
        """A reference analysed (by a job here or in the background): its edit must fit the new map."""
        analysis = self.gallery.analysis(ref_id)
        if analysis is not None:
            self.session.fit_reference_edit(ref_id, analysis.labels)

    @Slot()
    def _regions_edited(self) -> None:
        """The matches were made on the map before the edit: match again on the edited one (the references stay, so
        the draft keeps the method's regions meanwhile)."""
        self.session.match_table = None
        self.schedule_match()

    @Slot()
    def schedule_match(self) -> None:
        self._match_timer.start()

    @Slot()
    def match_now(self) -> None:
        """Match once the content and every participating reference are analysed (else wait for them)."""
        ids = [r.id for r in self.gallery.enabled()]
        if self.session.analysis is None:
            return
        if not ids:
            self.session.match_table, self.session.match_refs = None, ()
            self.session.status = "Add or check references in the gallery to match regions"
            return
        if tuple(ids) == self.session.match_refs and self.session.match_table is not None:
            return
        if any(self.gallery.analysis(i) is None for i in ids):
            return  # the last reference analysis to finish schedules the match again
        self.queue.cancel("match")
        content = ImageRef(self.session.content, region_edit=self.session.region_edit())
        refs = [self.reference_image(i) for i in ids]
        self.session.status = "Matching regions…"
        stage1, params = self.stage1, self.match
        self._submit("match", lambda engine, on_event, cancel: engine.match(
            content, refs, stage1=stage1, params=params, on_event=on_event, cancel=cancel), self._matched,
            key=self.session.content_sha, context=tuple(ids))

    # ----- generation
    def transfer_request(self) -> tuple[list[str], TransferRequest] | None:
        """The participating gallery ids and the TransferRequest a run would submit now; None (and the reason in
        the banner) without a photo or a reference."""
        session = self.session
        if session.content is None:
            session.show_error(ErrorInfo("invalid_request", "Open a photo first", "File > Open photo…"), "run")
            return None
        ids = self.participants()
        if not ids:
            session.show_error(ErrorInfo("invalid_request", "No reference takes part in the run",
                                         "Check at least one reference in the gallery."), "run")
            return None
        return ids, TransferRequest(ImageRef(session.content, region_edit=session.region_edit()),
                                    [self.reference_image(i) for i in ids], session.engine_pins(ids),
                                    stage1=self.stage1, match=self.match, stage3=session.stage3(),
                                    output=self.output)

    def run(self) -> QueuedRun | None:
        """Queue a transfer with the session's parameters as they are now (it starts when the runs before it have
        ended); problems go to the banner."""
        session = self.session
        planned = self.transfer_request()
        if planned is None:
            return None
        ids, request = planned
        session.show_error(None, "run")  # the last run's failure; other messages stay
        queued = QueuedRun(request, session.content_sha, ids)
        self.runs.add(queued)
        return queued

    @Slot()
    def _start_next_run(self) -> None:
        """Hand the next waiting run to the job queue, unless one is running (one run at a time, in order)."""
        while self._run_job is None:  # each turn starts a waiting run or fails it: at most one turn per run
            queued = self.runs.next_waiting()
            if queued is None:
                return
            self._run_job = self._submit_run(queued)
            if self._run_job is None:
                self.runs.update(queued, FAILED, message="no model is loaded")
        steps = self._run_job.context["request"].stage3.steps
        self.runs.update(self._run_job.context["run"], RUNNING, progress=(0, steps))
        session = self.session
        session.running = True
        session.progress = (0, steps)
        session.loss = None
        session.preview = None
        session.status = f"Running {self._run_job.context['run'].photo.name}…"

    def _submit_run(self, queued: QueuedRun) -> Job | None:
        request = queued.request
        context = {"ids": queued.ref_ids, "request": request, "started": time.monotonic(), "run": queued}
        return self._submit("transfer", lambda engine, on_event, cancel: engine.transfer(
            request, on_event=on_event, cancel=cancel), self._finish_run, key=queued.content_sha, context=context,
            on_failed=self._run_failed, on_cancelled=self._run_cancelled)

    @Slot(object)
    def _cancel_queued_run(self, queued: QueuedRun) -> None:
        if self._run_job is not None and self._run_job.context["run"] is queued:
            self._run_job.cancel.set()

    def _submit(self, kind: str, call: Callable[[Any, Any, Any], Any], on_done: JobHandler, key: str = "",
                context: Any = None, on_failed: JobHandler | None = None,
                on_cancelled: JobHandler | None = None) -> Job | None:
        """Queue `call(engine, on_event, cancel)` with the engine in use now, and the handlers of its outcome;
        None (and the reason shown) without an engine."""
        engine = self.engine
        if engine is None:
            self.session.show_error(self.engine_error or ErrorInfo(
                "model_missing", "No model is loaded", "Check the model source in Settings."), "models")
            return None
        return self.queue.submit(Job(kind, lambda on_event, cancel: call(engine, on_event, cancel), key, context,
                                     on_done, on_failed, on_cancelled))

    def cancel_run(self) -> None:
        """Cancel the running run (the waiting ones stay queued)."""
        self.queue.cancel("transfer")

    def _record_run(self, job: Job, result: TransferResult) -> RunRecord:
        """Save the result PNG (with its job in the metadata) into its photo's session folder and history (the photo
        open now or not)."""
        session = self.session
        request: TransferRequest = job.context["request"]
        names = [self.gallery.get(i).name if self.gallery.get(i) else i for i in job.context["ids"]]
        record = RunRecord(
            file=f"run-{datetime.now():%Y%m%d-%H%M%S}-{job.id}.png",
            created=datetime.now().isoformat(timespec="seconds"),
            params=settings_key(request.stage3),
            references=names,
            pins=[asdict(p) for p in request.pins],
            steps_done=result.steps_done,
            steps_total=result.steps_total,
            cancelled=result.cancelled,
            seconds=round(result.seconds or time.monotonic() - job.context["started"], 2),
            random_weights=session.random_weights,
            final_loss=result.losses[-1].total if result.losses else None,
        )
        save_result(session.folder / job.key / record.file, request, result, model=self.model_label,
                    random_weights=session.random_weights, reference_names=names)
        session.record_run(job.key, Path(request.content.path), record)
        return record

    # ----- job results (GUI thread)
    def engine_event(self, event: StepEvent) -> None:
        """The Engine's own callback (model downloads), called on the worker thread: hop to the GUI thread."""
        self._engine_event.emit(None, event)

    @Slot(object, object)
    def _on_step(self, job: Job | None, event: StepEvent) -> None:
        session = self.session
        if job is not None and job.kind == "analyze_gallery":
            return  # background work: its progress is the gallery's, not the status bar's
        if job is not None and job.kind == "transfer" and event.stage == "transfer":
            session.progress = (event.step, event.total)
            self.runs.update(job.context["run"], progress=(event.step, event.total))
            if job.key == session.content_sha:  # another photo's run shows its progress in the queue only
                if event.loss is not None:
                    session.loss = event.loss
                if event.preview is not None:
                    session.preview = event.preview
            session.activity = None
            return
        message = event.message or STAGE_NAMES.get(event.stage, event.stage)
        if event.stage == "download" and event.total:
            message = f"{message}: {event.step / 2**20:,.0f} of {event.total / 2**20:,.0f} MB"
        session.activity = (message, event.step, event.total)
        session.status = message

    @Slot(bool)
    def _busy_changed(self, busy: bool) -> None:
        if not busy:
            self.session.activity = None

    def _device_known(self, job: Job, summary: str) -> None:
        self.device_changed.emit(str(summary))
        warning = cpu_speed_warning(str(getattr(self.engine, "device", "")))
        if warning:
            self.speed_warning.emit(warning)

    def _content_analysed(self, job: Job, analysis) -> None:
        session = self.session
        if job.key != session.content_sha:
            return  # another photo was opened meanwhile
        session.models_missing = False
        session.show_error(None, "models")  # the models work: "drafts only" is no longer true
        session.analysis = analysis
        session.status = f"{count(len(analysis.region_ids), 'region')} found"
        self.schedule_match()

    def _reference_analysed(self, job: Job, analysis) -> None:
        self.gallery.set_analysis(job.key, analysis)
        self.schedule_match()

    def _matched(self, job: Job, table) -> None:
        session = self.session
        if job.key != session.content_sha:
            return
        session.match_refs = job.context
        session.match_table = table
        session.status = "Regions matched"

    @Slot(object, object)
    def _on_failed(self, job: Job, info: ErrorInfo) -> None:
        """What every failure shows (after the job's own `on_failed`): a missing model explains the drafts-only state."""
        topic = JOB_TOPICS.get(job.kind, "")
        if info.kind == "model_missing":
            info = draft_only_info(info, self.drafts.unavailable is None and draft_available()[0])
            self.session.models_missing = True
            topic = "models"
        self.session.status = info.message
        self.session.show_error(info, topic)

    def _run_failed(self, job: Job, info: ErrorInfo) -> None:
        self._run_stopped(job, FAILED, info.message)

    def _run_cancelled(self, job: Job, partial: TransferResult | None) -> None:
        if partial is not None:
            self._finish_run(job, partial)
        else:
            self._run_stopped(job, CANCELLED)
            self.session.status = "Run cancelled"

    def _rescue_result(self, job: Job, result: TransferResult, exc: OSError) -> ErrorInfo:
        """A finished result that the session folder did not take goes to the fallback folder
        (`engine.results.rescue_result`), so the work is not lost; the message says where, or why not."""
        info = disk_error_info("save the result", exc)
        try:
            path = rescue_result(Path(f"run-{job.id}.png"), job.context["request"], result, self.model_label,
                                 self.session.random_weights)
        except OSError:
            return info
        return ErrorInfo(info.kind, f"{info.message}. It was saved to {path} instead.", info.hint)

    def _run_stopped(self, job: Job, state: str, message: str = "") -> None:
        """A run ended with no result (failed, or cancelled before its first step): the progress bar goes idle
        instead of showing the dead run's "0/150" (KAD#814), and the next queued run starts."""
        self.session.progress = (0, 0)
        self._run_ended(job, state, message)

    def _run_ended(self, job: Job, state: str, message: str = "") -> None:
        """The running run is over: its row says how, and the next waiting run starts."""
        self.runs.update(job.context["run"], state, message=message)
        self._run_job = None
        self.session.running = False  # reset whatever happened, or Cancel stays enabled (KAD#814)
        self._start_next_run()

    def _finish_run(self, job: Job, result: TransferResult) -> None:
        session = self.session
        try:
            try:
                self._record_run(job, result)
            except OSError as exc:
                session.show_error(self._rescue_result(job, result, exc), "run")
            verb = "cancelled at step" if result.cancelled else "finished:"
            name = job.context["run"].photo.name
            session.status = f"Run of {name} {verb} {result.steps_done}/{count(result.steps_total, 'step')}"
        finally:
            self._run_ended(job, CANCELLED if result.cancelled else DONE)  # even when saving failed (KAD#814)
