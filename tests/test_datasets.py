"""Where real data is found: EDGECNN_DATA, else ../shared/data (working directory, then the checkout)."""

from __future__ import annotations

from conftest import REPO

from edgecnn.datasets import KNOWN_CALIBRATION_DATA, SHARED_DATA, data_root, known_data


def test_edgecnn_data_decides_and_known_data_needs_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_DATA", str(tmp_path))
    assert data_root() == tmp_path
    (tmp_path / "fashion-mnist").mkdir()
    assert known_data("fmnist") == tmp_path / "fashion-mnist"
    assert known_data("fmnist", KNOWN_CALIBRATION_DATA) == tmp_path / "fashion-mnist"
    assert known_data("catsdogs") is None  # registered, but its folder is not there
    assert known_data("resnet") is None  # not registered


def test_without_edgecnn_data_the_working_directory_comes_first(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_DATA", "")  # set but empty counts as unset
    checkout_data = REPO.parent / SHARED_DATA
    project = tmp_path / "project" / "repo"
    project.mkdir(parents=True)
    monkeypatch.chdir(project)
    beside_cwd = tmp_path / "project" / SHARED_DATA
    assert data_root() == (checkout_data if checkout_data.is_dir() else beside_cwd)
    beside_cwd.mkdir(parents=True)
    assert data_root() == beside_cwd
