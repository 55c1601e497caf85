"""The Python API: load a model, classify frames or image files, run a video source.

    model = edgecnn.load("catsdogs")                  # a bundled model, or "path/model.onnx"
    model.classify(frame_or_path, top=2)              # [Prediction(label, probability, index, display_label)]
    for result in model.video("clip.mp4"): ...        # or model.run_video(source, on_result)

Built over the pipeline's stages: `edgecnn.sources` (read and decode), `edgecnn.session`
(preprocess and onnxruntime), `edgecnn.postprocess` (probabilities, top-k) and
`edgecnn.live` (capture thread, inference workers). Every failure the caller can cause
is an `edgecnn.EdgecnnError`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.labels import true_class
from edgecnn.live import FrameReader, FrameResult, LiveRun, VideoSummary, plan_video
from edgecnn.models import DEFAULT_MODEL, resolve_model, video_setups
from edgecnn.postprocess import Prediction, top_k
from edgecnn.session import MAX_THREADS, Classifier
from edgecnn.sources import expand_image_paths, iter_images, open_video, read_image
from edgecnn.spec import LANGUAGE_TAG, ModelSpec

# A frame as OpenCV gives it (uint8 HxWx3 BGR, HxW gray or HxWx4 BGRA) or an image file to read.
Image = np.ndarray | str | os.PathLike
DEFAULT_BATCH_SIZE = 32  # images per inference call


def load(
    model: str | os.PathLike = DEFAULT_MODEL,
    *,
    lang: str | None = None,
    device: str = "auto",
    threads: int = 0,
    graph_opt: str = "all",
) -> Model:
    """A bundled model by name (`edgecnn.BUNDLED`) or an .onnx file from edgecnn-export.

    lang: a language tag ("ko", "ko-KR") for the predictions' display_label, used when the
    model carries class names in it (`Model.language` says whether it does). device: "auto"
    (CUDA when it really starts, else the CPU), "cpu" or "cuda" (an error without a working
    CUDA). threads: onnxruntime intra-op threads, 0 for its default. graph_opt: onnxruntime's
    graph optimisation level (disable, basic, extended, all).
    """
    return Model(resolve_model(model), lang=lang, device=device, threads=threads, graph_opt=graph_opt)


@dataclass(frozen=True)
class ImageResult:
    """One image file: its top-k predictions, or (`error`, predictions empty) why it could not be read.

    `image` is the decoded frame (uint8, as OpenCV gives it) and `probabilities` the (K,) float32
    probabilities of every class, in class order; both None for an unreadable file.
    """

    path: Path
    predictions: list[Prediction]
    error: str | None = None
    image: np.ndarray | None = None
    probabilities: np.ndarray | None = None


@dataclass(frozen=True)
class ImagesSummary:
    """Image files classified: how many, how many could not be read, how long it took, on which
    provider; and of the classified ones whose path names their class (`edgecnn.labels.true_class`:
    a `cats/` folder, an edgecnn-train sample name), how many there were and how many the top-1 got right."""

    classified: int
    failed: int
    seconds: float
    provider: str
    labelled: int = 0
    correct: int = 0

    @property
    def rate(self) -> float:
        """Images per second."""
        return self.classified / self.seconds if self.seconds > 0 else 0.0

    @property
    def accuracy(self) -> float | None:
        """Top-1 accuracy on the labelled images; None when no path named a class."""
        return self.correct / self.labelled if self.labelled else None


class ImageRun:
    """Image files and directories (searched recursively) classified in batches.

    Iterate it for one ImageResult per file, in order; a file that cannot be read gives a
    result with `error` set instead of stopping the run. `paths` lists the files (missing
    inputs and directories without images are refused when the run is made); `summary`
    is set once an iteration has ended.
    """

    def __init__(
        self,
        classifier: Classifier,
        inputs: Iterable[str | os.PathLike],
        *,
        top: int,
        batch_size: int,
        display_labels: Sequence[str] | None = None,
    ) -> None:
        self.classifier, self.top, self.batch_size = classifier, top, batch_size
        self.display_labels = display_labels
        self.paths = expand_image_paths(inputs)
        self.summary: ImagesSummary | None = None

    def __iter__(self) -> Iterator[ImageResult]:
        started = time.perf_counter()
        classified = failed = readable = labelled = correct = 0
        names = self.classifier.spec.class_names
        batch: list[tuple[Path, np.ndarray | None, str | None]] = []
        for i, item in enumerate(iter_images(self.paths)):
            batch.append(item)
            readable += item[1] is not None
            if readable == self.batch_size or i == len(self.paths) - 1:
                results = self._classify(batch)
                classified += readable
                failed += len(results) - readable
                batch, readable = [], 0
                for result in results:
                    truth = true_class(result.path, names)
                    if result.probabilities is not None and truth is not None:
                        labelled += 1
                        correct += int(np.argmax(result.probabilities)) == truth
                yield from results
        self.summary = ImagesSummary(
            classified, failed, time.perf_counter() - started, self.classifier.provider, labelled, correct
        )

    def _classify(self, batch: list[tuple[Path, np.ndarray | None, str | None]]) -> list[ImageResult]:
        frames = [frame for _, frame, _ in batch if frame is not None]
        if not frames:
            return [ImageResult(path, [], error) for path, _, error in batch]
        probabilities = self.classifier.classify(frames)
        names = self.classifier.spec.class_names
        predictions = iter(top_k(probabilities, names, self.top, self.display_labels))
        rows = iter(probabilities)
        return [
            ImageResult(path, next(predictions), image=frame, probabilities=next(rows))
            if frame is not None
            else ImageResult(path, [], error)
            for path, frame, error in batch
        ]


class Model:
    """An edgecnn ONNX model, ready to classify; made by `edgecnn.load`.

    Images are uint8 frames as OpenCV gives them (HxWx3 BGR, HxW gray, HxWx4 BGRA; any
    size) or image files (JPEG decoded as TensorFlow decodes it, PNG, BMP, ...). Resizing,
    colour and scaling follow `spec`, the ModelSpec stored in the file. `provider` names
    the onnxruntime execution provider that really runs. `language` is the key of the spec's
    display_names serving `lang` (None: no lang given, or the model has no class names in it);
    `display_labels` maps each class name to the name people read in it. A Model reuses its
    batch buffers: use one per thread.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        lang: str | None = None,
        device: str = "auto",
        threads: int = 0,
        graph_opt: str = "all",
    ) -> None:
        if lang is not None:
            if not isinstance(lang, str) or not LANGUAGE_TAG.fullmatch(lang.replace("_", "-")):
                raise EdgecnnError("must be a language tag such as 'ko' or 'pt-BR'", parameter="lang", value=lang)
            lang = lang.replace("_", "-")  # ko_KR, as locales write it
        self.path = Path(path)
        self.device, self.graph_opt = device, graph_opt
        self.classifier = Classifier(self.path, device=device, threads=threads, graph_opt=graph_opt)
        self.video_setups = video_setups(self.path)  # measured for a bundled model: edgecnn.live.plan_video
        self.language = self.spec.display_language(lang)
        self.display_labels = dict(zip(self.class_names, self.spec.labels(self.language), strict=True))

    def __repr__(self) -> str:
        return f"<edgecnn.Model {self.spec.name!r} from {str(self.path)!r} on {self.provider}>"

    @property
    def spec(self) -> ModelSpec:
        """The preprocessing and label contract stored in the model file."""
        return self.classifier.spec

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.classifier.spec.class_names

    @property
    def provider(self) -> str:
        """The onnxruntime execution provider that runs the model (CPUExecutionProvider, CUDAExecutionProvider)."""
        return self.classifier.provider

    def probabilities(self, images: Sequence[Image]) -> np.ndarray:
        """(N, K) float32 class probabilities of N images, columns in `class_names` order, in one batch."""
        if len(images) == 0:
            raise EdgecnnError("no images given", parameter="images")
        return self.classifier.classify([_as_frame(image) for image in images])

    def classify(self, image: Image, top: int = 3) -> list[Prediction]:
        """The `top` most likely classes of one image, most likely first."""
        return self.classify_many([image], top=top)[0]

    def classify_many(
        self, images: Iterable[Image], top: int = 3, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> list[list[Prediction]]:
        """The `top` most likely classes of each image, in `batch_size` batches; a file that cannot be read raises."""
        _check_positive(top=top, batch_size=batch_size)
        shown = tuple(self.display_labels.values())
        results: list[list[Prediction]] = []
        batch: list[np.ndarray] = []
        for image in [*images, None]:
            if image is not None:
                batch.append(_as_frame(image))
            if batch and (len(batch) == batch_size or image is None):
                results += top_k(self.classifier.classify(batch), self.class_names, top, shown)
                batch = []
        return results

    def classify_files(
        self, inputs: Iterable[str | os.PathLike], top: int = 3, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> ImageRun:
        """Image files and directories as an ImageRun: iterate it for a result per file, bad files included."""
        _check_positive(top=top, batch_size=batch_size)
        return ImageRun(
            self.classifier, inputs, top=top, batch_size=batch_size, display_labels=tuple(self.display_labels.values())
        )

    def video(
        self,
        source: str | int | os.PathLike,
        *,
        top: int = 3,
        realtime: bool = False,
        max_frames: int | None = None,
        duration: float | None = None,
        timeout: float = 5.0,
        workers: int | None = None,
        threads: int | None = None,
        batch_size: int | None = None,
    ) -> LiveRun:
        """A video source as a LiveRun: iterate it (best in a `with` block) for one FrameResult per frame.

        source: a camera index (0) or device (/dev/video0), a video file, or a stream URL
        (rtsp://, http://, ...). A camera or stream, or a file with realtime=True (played at
        its frame rate), keeps only the newest frame: stale frames are dropped and counted
        instead of queueing. A file is otherwise read in order, every frame. The run stops
        after `max_frames` results or `duration` seconds when given; `timeout` seconds
        without a frame ends a camera or stream as failed. workers, threads (per session)
        and batch_size default to what suits the source and provider, for a bundled model what
        measured fastest for it (`edgecnn.live.plan_video`).
        The sessions are made and warmed up before this returns.
        """
        _check_positive(top=top, max_frames=max_frames, workers=workers, batch_size=batch_size)
        if workers is not None and workers > MAX_THREADS:
            raise EdgecnnError(
                f"must be at most {MAX_THREADS} (4 x {os.cpu_count()} CPUs)", parameter="workers", value=workers
            )
        for name, value in (("duration", duration), ("timeout", timeout)):
            if value is not None and not value > 0:
                raise EdgecnnError("must be positive", parameter=name, value=value)
        cap, info = open_video(source, timeout_s=timeout)
        try:
            if realtime and info.fps <= 0:
                raise EdgecnnError(
                    f"{info.name}: real-time playback needs the video's frame rate, which it does not state"
                )
            live = info.live or realtime
            plan = plan_video(
                live, self.provider, workers=workers, threads=threads, batch_size=batch_size, measured=self.video_setups
            )
            classifiers = [
                Classifier(self.path, device=self.device, threads=plan.threads, graph_opt=self.graph_opt)
                for _ in range(plan.workers)
            ]
            warm = np.zeros((info.height or 480, info.width or 640, 3), np.uint8)
            for classifier in classifiers:
                classifier.classify([warm] * plan.batch_size)  # first-run allocations stay out of the timings
            reader = FrameReader(
                cap, info, latest_only=live, realtime=realtime, max_frames=max_frames, stall_timeout=timeout
            )
        except BaseException:
            cap.release()
            raise
        return LiveRun(
            classifiers,
            reader,
            batch_size=plan.batch_size,
            k=top,
            threads=plan.threads,
            max_frames=max_frames,
            duration=duration,
            display_labels=tuple(self.display_labels.values()),
        )

    def run_video(
        self, source: str | int | os.PathLike, on_result: Callable[[FrameResult], bool | None], **options: Any
    ) -> VideoSummary:
        """Run a video source, handing each FrameResult to `on_result` in frame order until the source
        ends, a limit is reached, `on_result` returns False or Ctrl-C; return the summary.
        `options` are those of `video`."""
        return self.video(source, **options).run(on_result)


def _as_frame(image: Image) -> np.ndarray:
    """A frame as given, or the decoded file."""
    if isinstance(image, np.ndarray):
        return image
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    raise EdgecnnError(
        f"must be a uint8 array (HxWx3 BGR, HxW gray, HxWx4 BGRA) or an image file path, got {type(image).__name__}",
        parameter="image",
    )


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise EdgecnnError("must be positive", parameter=name, value=value)
