"""Class names in other languages: locale and --lang choice, fonts that have the glyphs, Hangul on
video frames (pixels checked against the tofu a font without Hangul draws), the true class of a path."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgecnn
from edgecnn import fonts, labels
from edgecnn.cli import infer
from edgecnn.models import bundled_path
from edgecnn.session import Classifier
from edgecnn.sinks import Chart, Overlay, annotate
from edgecnn.spec import ModelSpec

KOREAN_CATS_DOGS = ("고양이", "개")


def hangul_font() -> Path:
    font = fonts.find_font("".join(KOREAN_CATS_DOGS))
    if font is None:
        pytest.skip("no font with Hangul installed (apt-get install fonts-nanum)")
    return font


def latin_only_font() -> Path:
    """An installed font that has Latin letters but no Hangul: it draws Hangul as tofu boxes."""
    for font in fonts.installed_fonts():
        if not fonts.missing_characters(font, "cat 0.97") and fonts.missing_characters(font, "고양이"):
            return font
    pytest.skip("no Latin-only font installed (apt-get install fonts-dejavu-core)")


def ink(pixels: np.ndarray) -> int:
    return int((pixels > 128).sum())


# ----- language choice -----


@pytest.mark.parametrize(
    "environ, tag",
    [
        ({"LANG": "ko_KR.UTF-8"}, "ko-KR"),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "ko_KR.UTF-8"}, "ko-KR"),
        ({"LANG": "ko_KR.UTF-8", "LC_MESSAGES": "de_DE@euro"}, "de-DE"),
        ({"LANG": "C.UTF-8"}, None),
        ({"LANG": "POSIX"}, None),
        ({}, None),
        ({"LANG": "ko"}, "ko"),
    ],
)
def test_the_locale_gives_a_language_tag_in_posix_precedence(environ, tag):
    assert labels.locale_language(environ) == tag


def test_bundled_models_carry_the_tutorials_korean_names():
    fmnist = Classifier(bundled_path("fmnist"), device="cpu").spec
    assert fmnist.labels("ko") == (
        "티셔츠",
        "바지",
        "스웨터",
        "드레스",
        "코트",
        "샌들",
        "셔츠",
        "스니커즈",
        "가방",
        "앵클부츠",
    )
    for name in ("catsdogs", "catsdogs-int8"):
        assert Classifier(bundled_path(name), device="cpu").spec.labels("ko-KR") == KOREAN_CATS_DOGS


def test_load_with_lang_gives_display_labels_and_says_which_language_serves(monkeypatch):
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")  # the library never reads the locale; edgecnn-infer does
    assert edgecnn.load("catsdogs", device="cpu").language is None
    model = edgecnn.load("catsdogs", lang="ko_KR", device="cpu")
    assert model.language == "ko" and model.display_labels == dict(zip(("cat", "dog"), KOREAN_CATS_DOGS, strict=True))
    image = np.full((64, 64, 3), 128, np.uint8)
    assert {(p.label, p.display_label) for p in model.classify(image, top=2)} == {("cat", "고양이"), ("dog", "개")}
    french = edgecnn.load("catsdogs", lang="fr", device="cpu")
    assert french.language is None and [p.display_label for p in french.classify(image, top=2)] == [
        p.label for p in french.classify(image, top=2)
    ]
    with pytest.raises(edgecnn.EdgecnnError, match=r"^lang='not a tag': must be a language tag"):
        edgecnn.load("catsdogs", lang="not a tag")


@pytest.mark.parametrize(
    "path, index",
    [
        ("test/cats/cat.1500.jpg", 0),
        ("x/Dog/a.png", 1),
        ("x/dogs/samples/a.png", None),
        ("samples/00012_Ankle-boot.png", 9),
        ("samples/00000_T-shirt-top.png", 0),
        ("samples/00000_Hat.png", None),
        ("photo.png", None),
    ],
)
def test_true_class_from_the_folder_or_an_edgecnn_train_sample_name(path, index):
    fmnist = Classifier(bundled_path("fmnist"), device="cpu").spec.class_names
    names = ("cat", "dog") if "sample" not in path else fmnist
    assert labels.true_class(path, names) == index


def test_every_sample_file_name_reads_back_as_its_class():
    names = ("T-shirt/top", "Ankle boot", "cat", "Trouser")
    for index, name in enumerate(names):
        assert labels.true_class(Path("samples") / labels.sample_file_name(123 + index, name), names) == index
    assert labels.sample_file_name(7, "T-shirt/top") == "00007_T-shirt-top.png"


def test_terminal_columns_count_hangul_twice():
    assert labels.terminal_width("개 cat") == 6
    assert labels.pad_left("고양이", 8) == "  고양이" and labels.pad_left("cat", 5) == "  cat"


# ----- fonts and glyphs -----


def test_missing_characters_tells_a_font_with_hangul_from_one_without():
    assert fonts.missing_characters(hangul_font(), "고양이 개 0.97 FPS") == ""
    assert fonts.missing_characters(latin_only_font(), "고양이 cat") == "고양이"
    assert fonts.missing_characters(__file__, "a") == "a", "not a font: nothing is covered"


def test_find_font_honours_edgecnn_font_only_when_it_has_the_glyphs(monkeypatch):
    latin = latin_only_font()
    monkeypatch.setenv("EDGECNN_FONT", str(latin))
    assert fonts.find_font("cat") == latin
    assert fonts.find_font("고양이") not in (None, latin)


def test_hangul_is_drawn_as_glyphs_not_tofu():
    """The painter's Hangul differs from the tofu boxes a font without Hangul draws, and from
    its own font's missing-glyph box; it has ink."""
    good = fonts.TextPainter(hangul_font()).patch("고양이", 40)[:, :, 0]
    tofu = fonts.TextPainter(latin_only_font()).patch("고양이", 40)[:, :, 0]
    own_tofu = fonts.TextPainter(hangul_font()).patch(fonts.MISSING_GLYPH * 3, 40)[:, :, 0]
    assert ink(good) > 100
    assert good.shape != tofu.shape or ink(np.abs(good.astype(int) - tofu) > 128) > 100
    assert good.shape != own_tofu.shape or not np.array_equal(good, own_tofu)
    # Three different syllables are three different glyph images (tofu boxes are all alike).
    thirds = np.array_split(good, 3, axis=1)
    assert not np.array_equal(thirds[0], thirds[1]) and not np.array_equal(thirds[1], thirds[2])


def test_overlay_draws_the_label_in_its_box_and_caches_the_pieces():
    painter = fonts.TextPainter(hangul_font())
    frame = np.full((480, 640, 3), 100, np.uint8)
    annotate(frame, "고양이", 0.97, 30.0, painter)
    box = frame[:60, :200]
    assert (box == 0).any() and (box > 200).any(), "white text on a black box"
    assert (frame[200:, 300:] == 100).all(), "nothing drawn outside the corner"
    pieces = set(painter._patches)
    annotate(frame, "고양이", 0.97, 30.0, painter)
    assert set(painter._patches) == pieces, "a repeated label renders nothing new"
    gray = np.full((120, 160), 100, np.uint8)
    annotate(gray, "개", 0.5, 3.0, painter)  # gray frames and frames smaller than the text
    assert (gray[:20, :40] == 0).any()


def test_cached_pieces_draw_exactly_what_rendering_every_frame_draws():
    cached = fonts.TextPainter(hangul_font())
    rng = np.random.default_rng(0)
    for size in ((480, 640), (720, 1280), (90, 120)):
        for _ in range(20):
            label, probability, fps = str(rng.choice(KOREAN_CATS_DOGS)), rng.random(), 20 + 10 * rng.random()
            fresh = fonts.TextPainter(hangul_font())  # renders every piece anew
            frame = np.full((*size, 3), 77, np.uint8)
            expected = annotate(frame.copy(), label, probability, fps, fresh)
            assert np.array_equal(annotate(frame, label, probability, fps, cached), expected)


def test_hershey_overlay_is_the_ascii_fallback():
    frame = np.zeros((480, 640, 3), np.uint8)
    annotate(frame, "cat", 0.97, 30.0)
    assert ink(frame) > 100 and fonts.TextPainter(None).backend == "hershey"


def test_without_a_hangul_font_the_canonical_names_are_drawn_and_the_user_told(monkeypatch):
    latin = latin_only_font()
    monkeypatch.setattr(fonts, "installed_fonts", lambda: (latin,))
    fonts._find_font.cache_clear()
    try:
        drawn, font, note = fonts.drawable_labels(dict(zip(("cat", "dog"), KOREAN_CATS_DOGS, strict=True)))
    finally:
        fonts._find_font.cache_clear()
    assert drawn == {"cat": "cat", "dog": "dog"} and font == latin and "fonts-nanum" in note
    assert fonts.drawable_labels({"cat": "cat", "dog": "dog"})[2] is None


def test_sinks_draw_the_display_labels_with_a_font_that_has_them(catsdogs_dir, tmp_path):
    hangul_font()  # skips without one
    model = edgecnn.load("catsdogs", lang="ko", device="cpu")
    overlay = Overlay(labels=model.display_labels)
    assert overlay.note is None and overlay.painter.backend == "freetype"
    assert overlay.labels == model.display_labels and not fonts.missing_characters(overlay.painter.font, "고양이개")
    assert Overlay().painter.backend == "hershey" and Overlay().labels is None, "without labels: as before"
    chart = Chart(tmp_path / "c.png", model.display_labels, top=2, limit=1)
    assert chart.labels == list(KOREAN_CATS_DOGS) and chart.note is None
    run = model.classify_files([catsdogs_dir / "test" / "cats"], top=2, batch_size=4)
    for result in itertools.islice(run, 3):
        chart.image(result)
        assert result.image is not None and result.probabilities.shape == (2,)
        assert result.predictions[0].probability == pytest.approx(result.probabilities.max())
    assert len(chart.images) == 1 and chart.images[0].true_index == 0, "the folder names the true class"


# ----- edgecnn-infer --lang -----


def test_lang_ko_table_and_json_keep_the_canonical_label(capsys, catsdogs_dir):
    image = sorted((catsdogs_dir / "test" / "cats").iterdir())[0]
    assert infer.main(["--lang", "ko", str(image)]) == 0
    out = capsys.readouterr().out
    assert "고양이" in out and " cat " not in out
    assert infer.main(["--lang", "ko", "--json", str(image)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert {(p["label"], p["display_label"]) for p in record["predictions"]} == {("cat", "고양이"), ("dog", "개")}
    assert infer.main(["--json", str(image)]) == 0
    assert "display_label" not in capsys.readouterr().out, "no language: the JSON is as before"


def test_lang_follows_the_locale_and_an_unknown_language_is_noted(capsys, monkeypatch, catsdogs_dir):
    image = sorted((catsdogs_dir / "test" / "dogs").iterdir())[0]
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")
    assert infer.main([str(image)]) == 0
    assert "개" in capsys.readouterr().out
    assert infer.main(["--lang", "fr", str(image)]) == 0
    captured = capsys.readouterr()
    assert " dog " in captured.out and "no class names in 'fr' (it has: ko)" in captured.err
    assert infer.main(["--lang", "not a tag", str(image)]) == 2
    assert "--lang not a tag: must be a language tag" in capsys.readouterr().err


def test_saved_video_with_lang_ko_shows_the_korean_label(tmp_path, capsys):
    """The recorded frames are closer to the frame with the Korean overlay than to the English one."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    cv2.circle(frame, (320, 260), 120, (40, 160, 220), -1)
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for _ in range(5):
        writer.write(frame)
    writer.release()
    out = tmp_path / "out.avi"
    assert infer.main(["--camera", str(clip), "--lang", "ko", "--save", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[-2])
    label, probability = record["predictions"][0]["display_label"], record["predictions"][0]["probability"]
    assert label in KOREAN_CATS_DOGS
    cap = cv2.VideoCapture(str(out))
    for _ in range(5):
        ok, saved = cap.read()
    assert ok
    painter = fonts.TextPainter(hangul_font())
    korean = annotate(frame.copy(), label, probability, 0.0, painter)
    latin = fonts.TextPainter(fonts.find_font("catdog" + fonts.OVERLAY_CHARACTERS))  # what --lang en would draw with
    english = annotate(frame.copy(), record["predictions"][0]["label"], probability, 0.0, latin)
    label_line = np.s_[: painter.patch(label, fonts.FONT_PIXELS_AT_480).shape[0] + 3 * fonts.MARGIN_AT_480, :260]
    distance = {
        name: np.abs(saved[label_line].astype(int) - drawn[label_line]).mean()
        for name, drawn in (("korean", korean), ("english", english))
    }
    assert distance["korean"] < distance["english"] / 2, distance


def test_spec_without_translations_is_unchanged_by_a_locale(monkeypatch):
    spec = ModelSpec(
        name="m", height=2, width=2, channels=1, color="gray", class_names=("a", "b"), output_activation="softmax"
    )
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")
    assert spec.labels(labels.locale_language()) == ("a", "b")
