"""edgecnn-train --resume RUN_DIR: a run stopped by a signal continues after its last finished
epoch, here or from a copy elsewhere, with the history an unstopped run has."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from edgecnn.cli import train

EPOCHS = 4
STOP_AFTER = 2  # SIGTERM once the backup of this epoch is written: the run stops in the next one
RUN_SECONDS = 300


def command(*args):
    return [sys.executable, "-m", "edgecnn.cli.train", *map(str, args)]


def run_cli(*args):
    """edgecnn-train ARGS in a child process: (exit code, stdout + stderr)."""
    done = subprocess.run(command(*args), capture_output=True, text=True, timeout=RUN_SECONDS)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def photos(tmp_path_factory, fmnist_dir):
    from test_folders import write_classes

    from edgecnn.datasets import IDX_FILES
    from edgecnn.sources import read_idx

    arrays = [read_idx(fmnist_dir / name) for name in IDX_FILES["test"]]
    return write_classes(tmp_path_factory.mktemp("resume") / "photos", arrays, per_class=60)


def history_without_times(run_dir):
    history = json.loads((run_dir / "history.json").read_text())
    history.pop("seconds")
    return history


def stop_after(settings, run_dir, epoch):
    """Start edgecnn-train SETTINGS --out RUN_DIR and SIGTERM it once epoch `epoch` is backed up; its run.json."""
    log = run_dir.with_suffix(".log")
    with log.open("w") as sink:
        child = subprocess.Popen(command(*settings, "--out", run_dir), stdout=sink, stderr=subprocess.STDOUT)
    state = run_dir / "backup" / "state.json"
    deadline = time.monotonic() + RUN_SECONDS
    while not (state.is_file() and json.loads(state.read_text())["epoch"] >= epoch):
        assert child.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.02)
    child.send_signal(signal.SIGTERM)
    assert child.wait(RUN_SECONDS) == 0, log.read_text()[-3000:]  # the best checkpoint so far is evaluated
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "interrupted" and "(interrupted)" in log.read_text()
    assert json.loads(state.read_text())["epoch"] == epoch  # the epoch it was in is not backed up
    return run


def test_a_signal_in_code_that_ignores_exceptions_still_stops_training_after_the_batch(monkeypatch):
    """A signal raised straight from its handler inside a destructor (as TensorFlow's iterators
    run between two fits) is printed as ignored and lost; deferred, it stops at the next batch."""
    from edgecnn.cli import Interrupted, stop_signals_interrupt
    from edgecnn.training.distribute import DeferredStop

    class SignalledInDestructor:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)

    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: ignored.append(unraisable.exc_type))
    with stop_signals_interrupt():
        SignalledInDestructor()  # undeferred: the Interrupted it raises is ignored
        assert ignored == [Interrupted]
        stop = DeferredStop("this machine")
        with stop.deferring_signals():
            SignalledInDestructor()
            assert stop.requested == signal.SIGTERM
            with pytest.raises(Interrupted):
                stop.on_train_batch_end(0)
            with pytest.raises(Interrupted):  # a second signal stops at once
                os.kill(os.getpid(), signal.SIGTERM)
        stop = DeferredStop("this machine")
        with stop.deferring_signals():
            stop.on_test_batch_end(0)
            stop.raise_if_requested()  # nothing asked: nothing raised
            os.kill(os.getpid(), signal.SIGINT)
            with pytest.raises(KeyboardInterrupt):
                stop.raise_if_requested()


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_and_resumed_elsewhere_has_the_history_of_an_unstopped_run(photos, tmp_path):
    # the tutorial's augmentation and Dropout: the random layers' generators are part of what resumes
    settings = ("convnet", "--data", photos, "--imgsz", 28, "--augment", "tutorial", "--epochs", EPOCHS)
    code, output = run_cli(*settings, "--out", tmp_path / "unstopped")
    assert code == 0, output[-3000:]

    stopped = tmp_path / "stopped"
    run = stop_after(settings, stopped, STOP_AFTER)

    # another machine: the run directory and the data copied somewhere else
    moved, moved_photos = tmp_path / "elsewhere" / "run", tmp_path / "elsewhere" / "photos"
    shutil.copytree(stopped, moved)
    shutil.copytree(photos, moved_photos)
    code, output = run_cli(*settings[:-2], "--epochs", EPOCHS + 1, "--resume", moved)
    assert code == 2 and "other settings" in output.strip().splitlines()[-1], output[-3000:]
    code, output = run_cli("--resume", moved, "--data", moved_photos)
    assert code == 0, output[-3000:]
    assert f"resuming {moved} after epoch {STOP_AFTER}" in output and "Traceback" not in output

    unstopped = tmp_path / "unstopped"
    assert history_without_times(moved) == history_without_times(unstopped)  # float for float
    assert len(history_without_times(moved)["val_loss"]) == EPOCHS
    metrics = [json.loads((run_dir / "metrics.json").read_text()) for run_dir in (moved, unstopped)]
    assert metrics[0]["test"] == metrics[1]["test"] and metrics[0]["best_epoch"] == metrics[1]["best_epoch"]
    resumed = json.loads((moved / "run.json").read_text())
    assert resumed["status"] == "finished" and resumed["resumed_after_epochs"] == [STOP_AFTER]
    assert resumed["command"] == run["command"]  # the stopped run's own command, recorded again
    assert not (moved / "backup").exists()  # a finished run keeps no backup

    code, output = run_cli("--resume", moved)
    assert code == 2 and "no backup to resume from (its run finished" in output, output


@pytest.mark.slow
def test_a_pretrained_run_resumes_in_its_second_phase_and_at_the_boundary(photos, tmp_path):
    import keras

    weights = tmp_path / "mobilenetv2-base.weights.h5"  # phase 1: epochs 1-2 on the frozen base; phase 2: 3-4
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    base.save_weights(weights)
    settings = ("mobilenetv2", "--data", photos, "--imgsz", 32, "--color", "rgb", "--weights", weights)
    settings += ("--epochs", EPOCHS)
    code, output = run_cli(*settings, "--out", tmp_path / "unstopped")
    assert code == 0, output[-3000:]
    expected = history_without_times(tmp_path / "unstopped")
    assert expected["phase"] == [1, 1, 2, 2]
    for stop in (2, 3):  # at the end of phase 1 (a new optimizer follows), and inside phase 2
        run_dir = tmp_path / f"stopped-{stop}"
        stop_after(settings, run_dir, stop)
        code, output = run_cli("--resume", run_dir)
        assert code == 0, output[-3000:]
        assert history_without_times(run_dir) == expected, stop


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda run: None, (), "not a run directory (no run.json)"),
        (lambda run: (run.mkdir(), (run / "run.json").write_text("{}")), (), "no backup to resume from"),
        (lambda run: None, ("--overwrite",), "--resume and --overwrite contradict each other"),
        (lambda run: None, ("--out", "elsewhere"), "continues that run directory; leave out --out"),
    ],
)
def test_resume_refuses_what_it_cannot_continue_in_one_line(tmp_path, capsys, make, extra, message):
    run_dir = tmp_path / "run"
    make(run_dir)
    code = train.main(["--resume", str(run_dir), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
