"""The Run / Stop frame: relays engine progress, keeps partial results, drops stale runs."""

import time

from napari_ptychotomo._napari._runner import EngineRunner
from napari_ptychotomo.engine import EngineError, Progress


def counting_engine(n, tag="A", delay=0.0, fail_at=None):
    """An engine of ``n`` steps whose preview is the step number and whose result is ``tag``."""
    for k in range(n):
        if delay:
            time.sleep(delay)
        if fail_at == k + 1:
            raise EngineError(f"diverged at step {k + 1}", partial=f"{tag} partial {k}")
        yield Progress(step=k + 1, total=n, loss=1.0 / (k + 1), preview=(tag, k + 1), message=f"{tag} step {k + 1}/{n}")
    return f"{tag} final"


class Recorder:
    def __init__(self):
        self.progress, self.results = [], []

    def runner(self, start, **kwargs):
        kwargs.setdefault("min_interval", 0.0)
        return EngineRunner(
            start,
            on_progress=self.progress.append,
            on_result=self.results.append,
            on_stopped=lambda p: f"from preview {p.preview}",
            **kwargs,
        )


def test_synchronous_run_relays_every_step_and_delivers_the_result(qtbot):
    rec = Recorder()
    runner = rec.runner(lambda: counting_engine(5), synchronous=True)
    runner.run_button.clicked.emit()
    assert [p.step for p in rec.progress] == [1, 2, 3, 4, 5]
    assert rec.results == ["A final"]
    assert runner.progress.value == runner.progress.max == 5
    assert runner.status.value.startswith("done") and not runner.stop_button.enabled


def test_stop_keeps_the_partial_result_built_from_the_last_preview(qtbot):
    rec = Recorder()
    runner = rec.runner(lambda: counting_engine(10), synchronous=True)

    def press_stop_at_step_3(progress):
        rec.progress.append(progress)
        if progress.step == 3:
            runner.stop()

    runner._on_progress = press_stop_at_step_3
    runner.run()
    assert rec.results == ["from preview ('A', 3)"]
    assert "stopped at step 3/10" in runner.status.value


def test_engine_error_keeps_the_last_good_state_and_says_why(qtbot):
    rec = Recorder()
    runner = rec.runner(lambda: counting_engine(10, fail_at=4), synchronous=True)
    runner.run()
    assert rec.results == ["A partial 3"]
    assert "diverged at step 4" in runner.status.value and isinstance(runner.error, EngineError)


def test_bad_input_is_reported_in_the_status_line(qtbot):
    def start():
        raise ValueError("num_slices = 0; expected a positive integer")

    runner = Recorder().runner(start, synchronous=True)
    runner.run()
    assert runner.status.value.startswith("cannot start: num_slices = 0")


def test_threaded_run_finishes_and_delivers_on_the_gui_thread(qtbot):
    rec = Recorder()
    runner = rec.runner(lambda: counting_engine(4, delay=0.01))
    runner.run()
    qtbot.waitUntil(lambda: not runner.running, timeout=10000)
    assert rec.results == ["A final"] and [p.step for p in rec.progress] == [1, 2, 3, 4]


def test_threaded_stop_keeps_partial_result(qtbot):
    rec = Recorder()
    runner = rec.runner(lambda: counting_engine(1000, delay=0.01))
    runner.run()
    qtbot.waitUntil(lambda: len(rec.progress) >= 2, timeout=10000)
    runner.stop_button.clicked.emit()
    qtbot.waitUntil(lambda: not runner.running, timeout=10000)
    assert len(rec.results) == 1 and rec.results[0].startswith("from preview ('A'")
    assert "stopped" in runner.status.value and len(rec.progress) < 1000


def test_a_new_run_cancels_the_old_one_and_drops_its_output(qtbot):
    rec = Recorder()
    runner = rec.runner(lambda: counting_engine(200, tag="A", delay=0.01))
    runner.run()
    qtbot.waitUntil(lambda: len(rec.progress) >= 1, timeout=10000)
    runner._start = lambda: counting_engine(3, tag="B", delay=0.01)
    runner.run()
    seen = len(rec.progress)
    qtbot.waitUntil(lambda: not runner.running, timeout=10000)
    qtbot.wait(100)  # let anything the cancelled run still emits arrive (and be dropped)
    assert rec.results == ["B final"]
    assert all(p.preview[0] == "B" for p in rec.progress[seen:])


def test_threaded_previews_are_throttled_but_the_last_one_arrives(qtbot):
    rec = Recorder()
    runner = rec.runner(lambda: counting_engine(60, delay=0.005), min_interval=0.1)
    runner.run()
    qtbot.waitUntil(lambda: not runner.running, timeout=10000)
    steps = [p.step for p in rec.progress]
    # ~0.3 s of steps at most one per 0.1 s (+ the held-back last one); the bar saw all 60
    assert 2 <= len(steps) <= 10 and steps[0] == 1 and steps[-1] == 60, steps
    assert steps == sorted(steps) and runner.progress.value == 60
    assert rec.results == ["A final"]


def test_progress_that_must_show_is_never_held_back(qtbot):
    rec = Recorder()
    runner = rec.runner(
        lambda: counting_engine(30, delay=0.002), min_interval=10.0, must_show=lambda p: p.step % 10 == 0
    )
    runner.run()
    qtbot.waitUntil(lambda: not runner.running, timeout=10000)
    assert [p.step for p in rec.progress] == [1, 10, 20, 30]


def test_run_pressed_while_a_stop_is_pending_keeps_the_stopped_partial_result(qtbot):
    rec = Recorder()
    runner = rec.runner(lambda: counting_engine(1000, delay=0.05))
    runner.run()
    qtbot.waitUntil(lambda: len(rec.progress) >= 1, timeout=10000)
    runner.stop()  # the engine is still in its step when Run is pressed again
    runner._start = lambda: counting_engine(2, tag="B")
    runner.run()
    qtbot.waitUntil(lambda: not runner.running, timeout=10000)
    qtbot.wait(200)  # the stopped worker's own "aborted" arrives late and is dropped
    assert len(rec.results) == 2 and rec.results[0].startswith("from preview ('A'"), rec.results
    assert rec.results[1] == "B final"


def test_run_with_refused_inputs_leaves_the_run_in_progress_going(qtbot):
    rec = Recorder()
    runner = rec.runner(lambda: counting_engine(20, delay=0.02))
    runner.run()
    qtbot.waitUntil(lambda: len(rec.progress) >= 1, timeout=10000)

    def refused():
        raise ValueError("iterations = 0; expected at least 1")

    runner._start = refused
    runner.run()
    assert runner.status.value == "cannot start: iterations = 0; expected at least 1; the run in progress goes on"
    qtbot.waitUntil(lambda: not runner.running, timeout=10000)
    assert rec.results == ["A final"] and runner.status.value.startswith("done")


def test_memory_error_without_a_message_is_said_in_words(qtbot):
    def start():
        raise MemoryError()

    runner = Recorder().runner(start, synchronous=True)
    runner.run()
    assert runner.status.value == "cannot start: out of memory"


def test_an_error_without_a_partial_keeps_the_state_of_the_last_step(qtbot):
    def out_of_memory_at_step_4():
        yield from counting_engine(3)
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    rec = Recorder()
    runner = rec.runner(out_of_memory_at_step_4, synchronous=True)
    runner.run()
    assert rec.results == ["from preview ('A', 3)"]
    assert runner.status.value == "failed: CUDA out of memory. Tried to allocate 2.00 GiB; last good state kept"


def test_a_result_that_cannot_be_shown_still_ends_the_run_and_says_why(qtbot):
    def cannot_show(result):
        raise ValueError("zero-size array to reduction operation minimum which has no identity")

    runner = EngineRunner(lambda: counting_engine(3, delay=0.01), on_result=cannot_show)
    runner.run()
    qtbot.waitUntil(lambda: not runner.running, timeout=10000)
    assert runner.result == "A final" and runner.run_button.enabled and not runner.stop_button.enabled
    assert runner.status.value == (
        "done: A step 3/3, loss 0.3333; the result could not be shown: "
        "zero-size array to reduction operation minimum which has no identity"
    )


def test_a_preview_that_cannot_be_shown_does_not_stop_the_run(qtbot):
    def cannot_show(progress):
        raise KeyError("MSP phase [tilt 0]")

    rec = Recorder()
    runner = EngineRunner(lambda: counting_engine(3), on_progress=cannot_show, on_result=rec.results.append)
    runner.synchronous = True
    runner.run()
    assert rec.results == ["A final"] and runner.status.value.startswith("done")
    assert isinstance(runner.display_error, KeyError)
