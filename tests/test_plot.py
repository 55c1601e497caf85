"""edgecnn-infer --plot: each image beside its top-k bars, Korean labels drawn as Hangul glyphs."""

from __future__ import annotations

import gzip

import cv2
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba

from edgecnn import fonts, plot
from edgecnn.cli import infer

FMNIST = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FMNIST_KO = ("티셔츠", "바지", "스웨터", "드레스", "코트", "샌들", "셔츠", "스니커즈", "가방", "앵클부츠")


@pytest.fixture(scope="module")
def samples(fmnist_dir, tmp_path_factory):
    """Twelve Fashion-MNIST test images named as edgecnn-train's samples/ (INDEX_LABEL.png)."""
    folder = tmp_path_factory.mktemp("fmnist") / "samples"
    folder.mkdir()
    with gzip.open(fmnist_dir / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(fmnist_dir / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    for i in range(12):
        name = FMNIST[labels[i]].replace("/", "-").replace(" ", "-")
        cv2.imwrite(str(folder / f"{i:05d}_{name}.png"), images[i])
    return folder


def label_crops(figure) -> list[np.ndarray]:
    """The rendered pixels (gray) of every y tick label of the chart's bar axes."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[:, :, :3].mean(axis=2)
    height = pixels.shape[0]
    crops = []
    for axes in figure.axes[1::2]:
        for label in axes.get_yticklabels():
            box = label.get_window_extent(canvas.get_renderer())
            crops.append(pixels[int(height - box.y1) : int(height - box.y0), int(box.x0) : int(box.x1)])
    return crops


def chart_images(count: int = 2) -> list[plot.ChartImage]:
    rng = np.random.default_rng(0)
    images = []
    for i in range(count):
        p = rng.random(10)
        images.append(plot.ChartImage(rng.integers(0, 255, (28, 28), np.uint8), f"{i}.png", p / p.sum(), i))
    return images


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # the tofu figure, on purpose
def test_chart_labels_are_hangul_glyphs_not_tofu():
    font = fonts.find_font("".join(FMNIST_KO))
    if font is None:
        pytest.skip("no font with Hangul installed (apt-get install fonts-nanum)")
    images = chart_images()
    good = label_crops(plot.chart_figure(images, FMNIST_KO, 3, font))
    tofu = label_crops(plot.chart_figure(images, FMNIST_KO, 3, None))  # DejaVu Sans only: no Hangul
    assert len(good) == len(tofu) >= 6
    for drawn, boxes in zip(good, tofu, strict=True):
        assert (drawn < 128).sum() > 20, "the label area holds glyph pixels"
        assert drawn.shape != boxes.shape or np.abs(drawn - boxes).mean() > 5, "and they are not tofu boxes"
    # Tofu boxes all look alike; glyphs of different names do not.
    assert len({crop.tobytes() for crop in good}) > len({crop.tobytes() for crop in tofu}) / 2


def test_bars_mark_the_winner_and_the_true_class():
    wrong = plot.ChartImage(np.zeros((8, 8, 3), np.uint8), "x.png", np.array([0.1, 0.7, 0.2]), true_index=0)
    right = plot.ChartImage(np.zeros((8, 8), np.uint8), "y.png", np.array([0.6, 0.3, 0.1]), true_index=0)
    unknown = plot.ChartImage(np.zeros((8, 8), np.uint8), "z.png", np.array([0.2, 0.3, 0.5]))
    figure = plot.chart_figure([wrong, right, unknown], ("a", "b", "c"), 1)
    bars = figure.axes[1::2]
    assert [label.get_text() for label in bars[0].get_yticklabels()] == ["b", "a ✓"], "true class added below top-k"
    assert [p.get_facecolor() for p in bars[0].patches] == [to_rgba(plot.WRONG), to_rgba(plot.TRUE)]
    assert [p.get_facecolor() for p in bars[1].patches] == [to_rgba(plot.WINNER)]
    assert [label.get_text() for label in bars[2].get_yticklabels()] == ["c"]


def test_plot_with_lang_ko_writes_a_chart_of_korean_labels(samples, tmp_path, capsys, monkeypatch):
    drawn = {}
    real = plot.chart_figure

    def recording(images, labels, k, font=None):
        drawn.update(images=images, labels=labels, k=k, font=font)
        return real(images, labels, k, font)

    monkeypatch.setattr(plot, "chart_figure", recording)
    out = tmp_path / "p.png"
    assert infer.main(["--model", "fmnist", "--lang", "ko", "--plot", str(out), str(samples)]) == 0
    err = capsys.readouterr().err
    assert "wrote" in err and "12 image(s) with their top-3 classes" in err
    chart = cv2.imread(str(out))
    assert chart is not None and chart.shape[0] > 500 and chart.shape[1] > 1500
    assert tuple(drawn["labels"]) == FMNIST_KO and drawn["k"] == 3
    assert drawn["font"] is None or not fonts.missing_characters(drawn["font"], "".join(FMNIST_KO))
    truths = [image.true_index for image in drawn["images"]]
    assert None not in truths and truths[0] == FMNIST.index("Ankle boot"), "sample names give the true class"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--camera", "0", "--plot", "{tmp}/p.png"], "--plot charts images"),
        (["--plot", "{tmp}/p.jpg", "{image}"], "--plot {tmp}/p.jpg: unsupported chart type '.jpg'"),
        (["--plot", "{tmp}/no/such/dir/p.png", "{image}"], "--plot"),
    ],
)
def test_plot_usage_errors_are_one_line(argv, message, samples, tmp_path, capsys):
    image = next(samples.iterdir())
    argv = [a.format(tmp=tmp_path, image=image) for a in argv]
    assert infer.main(["--model", "fmnist", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(tmp=tmp_path) in err
    assert not list(tmp_path.iterdir())


def test_plot_without_matplotlib_says_how_to_get_it(samples, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(plot, "matplotlib_problem", lambda: "probability charts need matplotlib: pip install x")
    assert infer.main(["--model", "fmnist", "--plot", str(tmp_path / "p.png"), str(samples)]) == 2
    err = capsys.readouterr().err
    assert err == "edgecnn-infer: error: --plot: probability charts need matplotlib: pip install x\n"


def test_without_a_hangul_font_the_chart_says_so_once_and_uses_the_canonical_names(
    samples, tmp_path, capsys, monkeypatch
):
    latin = [f for f in fonts.installed_fonts() if fonts.missing_characters(f, "가")][:1]
    monkeypatch.setattr(fonts, "installed_fonts", lambda: tuple(latin))
    monkeypatch.setattr(fonts, "_find_font", fonts._find_font.__wrapped__)  # no answers cached from other tests
    drawn = {}
    real = plot.chart_figure
    monkeypatch.setattr(
        plot,
        "chart_figure",
        lambda images, labels, k, font=None: drawn.update(labels=labels) or real(images, labels, k, font),
    )
    assert infer.main(["--model", "fmnist", "--lang", "ko", "--plot", str(tmp_path / "p.png"), str(samples)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("no font with glyphs for the translated class names") == 1
    assert tuple(drawn["labels"]) == FMNIST and "앵클부츠" in captured.out, "the terminal table keeps Korean"
