"""The executor bundle is built once per source version (issue 9: serve plans every job)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import host_executor
from control_server import executor_bundle


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the executor's sources, the one the bundle is built from."""
    root = Path(host_executor.__file__).resolve().parent
    copy = tmp_path / "src" / "host_executor"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(host_executor, "__file__", str(copy / "__init__.py"))
    return copy


def test_the_same_sources_give_the_cached_bundle(sources: Path, tmp_path: Path) -> None:
    first = executor_bundle.build_bundle(tmp_path / "cache")
    assert executor_bundle.build_bundle(tmp_path / "cache") is first
    assert first.digest == executor_bundle.compute_digest(executor_bundle.package_files())


def test_a_changed_source_rebuilds(sources: Path, tmp_path: Path) -> None:
    first = executor_bundle.build_bundle(tmp_path / "cache")
    with (sources / "protocol.py").open("a") as out:
        out.write("\n# changed\n")
    second = executor_bundle.build_bundle(tmp_path / "cache")
    assert second.digest != first.digest and second.data != first.data
    assert second.digest == executor_bundle.compute_digest(executor_bundle.package_files())
    (sources / "extra_module.py").write_text("X = 1\n")
    third = executor_bundle.build_bundle(tmp_path / "cache")
    assert third.digest not in (first.digest, second.digest)


def test_a_removed_bundle_file_is_written_again(sources: Path, tmp_path: Path) -> None:
    first = executor_bundle.build_bundle(tmp_path / "cache")
    first.path.unlink()
    again = executor_bundle.build_bundle(tmp_path / "cache")
    assert again.path.is_file() and again.digest == first.digest
    other = executor_bundle.build_bundle(tmp_path / "elsewhere")
    assert other.path.parent == tmp_path / "elsewhere" and other.path.is_file()
