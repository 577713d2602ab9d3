"""The frame every step widget shares: Run / Stop, a progress bar, a status line.

An engine is a generator yielding :class:`~napari_ptychotomo.engine.Progress` and returning
its result (docs/conventions.md, "Engines"). :class:`EngineRunner` runs one in
``napari.qt.threading.thread_worker`` (as stardist-napari relays its progress generator)
and hands every step to the widget's callbacks on the GUI thread. Runs are tagged with an
id, as in napari-cryoet-data-portal's task worker: a new Run cancels the old one and
anything the old one still sends is dropped. Stop keeps the partial result: the last
``Progress.result`` when there is one, else the widget builds it from the last
``Progress.preview``, also when Run is pressed again before the stopped engine has
finished its step. ``synchronous=True`` runs the generator in the calling thread (tests).

Previews are throttled: a threaded run hands at most one Progress per ``min_interval``
seconds to ``on_progress`` (the progress bar and status line follow every step), so a
fast engine cannot flood the GUI thread with layer updates; a Progress that
``must_show`` accepts (by default one carrying a ``result``) always goes through, and the
last one held back is handed over before the run finishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

from ..engine import Progress

__all__ = ["EngineRunner", "format_progress", "one_step"]

StartFn = Callable[[], Generator]


def format_progress(progress: Any) -> str:
    """One status line: ``message`` or ``step k/n``, and the loss when it is finite."""
    text = progress.message or f"step {progress.step}/{progress.total}"
    loss = float(progress.loss)
    if loss == loss and "error" not in text and "loss" not in text:  # not NaN
        text += f", loss {loss:.4g}"
    return text


def _reason(exc: BaseException) -> str:
    """What went wrong, in words: the message, "out of memory" for a MemoryError that
    does not say so, else the exception's name (a bare ``MemoryError()`` has no message)."""
    text = str(exc).strip()
    if isinstance(exc, MemoryError) and "memory" not in text.lower():
        text = f"out of memory: {text}" if text else "out of memory"
    return text or type(exc).__name__


def _relay(generator: Generator) -> Generator:
    """Yield every Progress of ``generator`` and return its return value."""
    return (yield from generator)


class EngineRunner:
    """Run / Stop controls for one engine, as a magicgui ``Container`` (``.widget``).

    Parameters
    ----------
    start : called on Run (GUI thread); checks the widget's inputs and returns the engine
        generator. A ``ValueError`` it raises is shown in the status line.
    on_progress : called with every :class:`Progress` (GUI thread), e.g. to update preview
        layers.
    on_result : called with the final result, or with the partial one after Stop or an
        error (an :class:`~napari_ptychotomo.engine.EngineError`'s ``partial``, else as
        after Stop).
    on_stopped : called with the last Progress after Stop (or an error without a
        ``partial``) when it has no ``result``; returns the partial result to hand to
        ``on_result`` (or ``None``).
    synchronous : run in the calling thread instead of a worker thread.
    min_interval : seconds between two ``on_progress`` calls of a threaded run (0: every
        step); synchronous runs relay every step.
    must_show : Progress that is never held back (default: one with a ``result``).
    """

    def __init__(
        self,
        start: StartFn,
        on_progress: Callable[[Any], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_stopped: Callable[[Any], Any] | None = None,
        synchronous: bool = False,
        run_text: str = "Run",
        min_interval: float = 0.5,
        must_show: Callable[[Any], bool] | None = None,
    ):
        from magicgui.widgets import Container, Label, ProgressBar, PushButton

        self._start, self._on_progress = start, on_progress
        self._on_result, self._on_stopped = on_result, on_stopped
        self.synchronous = synchronous
        self.min_interval = float(min_interval)
        self._must_show = must_show or (lambda progress: progress.result is not None)
        self._shown_at = -float("inf")
        self._held: Any = None
        self.clock = time.monotonic
        self.run_button = PushButton(text=run_text, name="run")
        self.stop_button = PushButton(text="Stop", name="stop", enabled=False)
        self.progress = ProgressBar(name="progress", min=0, max=1, value=0)
        self.status = Label(name="status", value="ready")
        self.widget = Container(
            widgets=[
                Container(widgets=[self.run_button, self.stop_button], layout="horizontal", labels=False),
                self.progress,
                self.status,
            ],
            labels=False,
            name="runner",
            label="",  # its Run / Stop buttons say what it is
        )
        self.run_button.changed.connect(self.run)
        self.stop_button.changed.connect(self.stop)
        self.worker: Any = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.display_error: Exception | None = None  # the last failure of on_progress / on_result
        self.last: Any = None
        self._run_id = 0
        self._stop_requested = False

    # ------------------------------------------------------------------ control
    @property
    def running(self) -> bool:
        return self.worker is not None

    def run(self, *_args: Any) -> None:
        """Start a run (cancelling the one in progress, whose output is then dropped)."""
        if self.worker is not None and self._stop_requested:
            # Stop was pressed and the engine is still in its step: keep what it had
            # reached now, as its own "aborted" would, before this run drops it
            self._aborted(self._run_id)
        from .._triton import load_triton_safely

        load_triton_safely()  # here on the GUI thread, before an engine's optimiser needs it
        try:
            generator = self._start()
        except (ValueError, TypeError, MemoryError) as exc:
            if self.worker is not None:  # inputs the engine refuses do not end the run in progress
                self.error = exc
                self.status.value = f"cannot start: {_reason(exc)}; the run in progress goes on"
                return
            self._run_id += 1
            self.result, self.last, self._stop_requested = None, None, False
            self._finish(f"cannot start: {_reason(exc)}", error=exc)
            return
        self._cancel_worker()
        self._run_id += 1
        self.result, self.error, self.last, self._stop_requested = None, None, None, False
        self.display_error = None
        self._held, self._shown_at = None, -float("inf")
        self.progress.max, self.progress.value = 1, 0
        self.status.value = "starting…"
        self.run_button.enabled, self.stop_button.enabled = True, True
        if self.synchronous:
            self._run_here(generator, self._run_id)
            return
        from napari.qt.threading import thread_worker

        run_id = self._run_id
        worker = thread_worker(_relay, start_thread=False)(generator)
        worker.yielded.connect(lambda p: self._progress(p, run_id))
        worker.returned.connect(lambda r: self._returned(r, run_id))
        worker.errored.connect(lambda e: self._errored(e, run_id))
        worker.aborted.connect(lambda: self._aborted(run_id))
        self.worker = worker
        worker.start()

    def stop(self, *_args: Any) -> None:
        """Stop after the current step and keep the partial result."""
        self._stop_requested = True
        if self.worker is not None:
            self.status.value = "stopping after this step…"
            self.worker.quit()

    def _cancel_worker(self) -> None:
        if self.worker is not None:
            self.worker.quit()
            self.worker = None

    def _run_here(self, generator: Generator, run_id: int) -> None:
        while True:
            try:
                progress = next(generator)
            except StopIteration as stop:
                self._returned(stop.value, run_id)
                return
            except Exception as exc:  # noqa: BLE001 (shown to the user, as a worker would)
                self._errored(exc, run_id)
                return
            self._progress(progress, run_id)
            if self._stop_requested:
                generator.close()
                self._aborted(run_id)
                return

    # ------------------------------------------------------------------ events
    def _progress(self, progress: Any, run_id: int) -> None:
        if run_id != self._run_id:
            return
        self.last = progress
        self.progress.max = max(int(progress.total), 1)
        self.progress.value = min(int(progress.step), self.progress.max)
        self.status.value = format_progress(progress)
        if self._on_progress is None:
            return
        now = self.clock()
        if self.synchronous or now - self._shown_at >= self.min_interval or self._must_show(progress):
            self._held, self._shown_at = None, now
            self._show(progress)
        else:
            self._held = progress

    def _show(self, progress: Any) -> None:
        """``on_progress``; a preview that cannot be shown is said in the status line and
        the run goes on."""
        try:
            self._on_progress(progress)
        except Exception as exc:  # noqa: BLE001 (said in the status line, not left as a traceback)
            self.display_error = exc
            self.status.value = f"{format_progress(progress)}; the preview could not be shown: {_reason(exc)}"

    def _flush(self) -> None:
        """Hand the Progress held back by the throttle to ``on_progress``."""
        held, self._held = self._held, None
        if held is not None and self._on_progress is not None:
            self._show(held)

    def _returned(self, value: Any, run_id: int) -> None:
        if run_id != self._run_id:
            return
        self._flush()
        if value is None and self.last is not None:
            value = self.last.result
        self.progress.value = self.progress.max
        not_shown = self._deliver(value)
        self._finish(("done" if self.last is None else f"done: {format_progress(self.last)}") + not_shown)

    def _aborted(self, run_id: int) -> None:
        if run_id != self._run_id:
            return
        self._flush()
        partial = None
        if self.last is not None:
            partial = self.last.result
            if partial is None and self._on_stopped is not None:
                partial = self._on_stopped(self.last)
        not_shown = self._deliver(partial)
        where = "" if self.last is None else f" at step {self.last.step}/{self.last.total}"
        self._finish((f"stopped{where}; partial result kept" if partial is not None else "stopped") + not_shown)

    def _errored(self, exc: BaseException, run_id: int) -> None:
        if run_id != self._run_id:
            return
        self._flush()
        partial = getattr(exc, "partial", None)
        if partial is None and self.last is not None:
            # an error that carries no state (out of memory, a torch error) keeps, as Stop
            # does, what the last step reached
            partial = self.last.result
            if partial is None and self._on_stopped is not None:
                partial = self._on_stopped(self.last)
        not_shown = self._deliver(partial) if partial is not None else ""
        kept = "; last good state kept" if partial is not None else ""
        self._finish(f"failed: {_reason(exc)}{kept}{not_shown}", error=exc)

    def _deliver(self, value: Any) -> str:
        """Hand ``value`` to ``on_result``; returns what to add to the status line when
        showing it failed (the run still finishes: its buttons come back, ``result`` holds it)."""
        self.result = value
        if value is None or self._on_result is None:
            return ""
        try:
            self._on_result(value)
        except Exception as exc:  # noqa: BLE001 (said in the status line, not left as a traceback)
            self.display_error = exc
            return f"; the result could not be shown: {_reason(exc)}"
        return ""

    def _finish(self, text: str, error: BaseException | None = None) -> None:
        self.error = error
        self.worker = None
        self.status.value = text
        self.run_button.enabled, self.stop_button.enabled = True, False


def one_step(function, *args: Any, message: str = "working…", **kwargs: Any) -> Generator:
    """A one-step engine around a plain function (for the Run / Stop frame)."""
    yield Progress(step=0, total=1, message=message)
    result = function(*args, **kwargs)
    yield Progress(step=1, total=1, result=result, message="done")
    return result
