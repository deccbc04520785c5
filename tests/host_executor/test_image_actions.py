"""``image`` / ``image_list``: verify-then-rename, resume, refusal while an overlay uses it
(overlays made by the real qemu-img when the machine has it)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from executor_harness import Executor, request, step

QEMU_IMG = shutil.which("qemu-img")


def _stage(base: Path, data: bytes, fmt: str = "raw") -> str:
    digest = hashlib.sha256(data).hexdigest()
    (base / ".partial").mkdir(parents=True, exist_ok=True)
    (base / ".partial" / f"sha256-{digest}.{fmt}").write_bytes(data)
    return digest


def _wire(action: str, **args: Any) -> dict[str, Any]:
    """A step whose args include ``name`` (the harness's ``step`` takes name itself)."""
    return dict(step(action, action), args=args)


def _end(executor: Executor, action: str, **args: Any) -> dict[str, Any]:
    return executor.run(request([_wire(action, **args)])).one("step_end")


def test_a_corrupted_upload_is_removed_never_stored(executor: Executor, tmp_path: Path) -> None:
    base = tmp_path / "base"
    digest = _stage(base, b"good bytes")
    (base / ".partial" / f"sha256-{digest}.raw").write_bytes(b"evil bytes")
    end = _end(executor, "image", dir=str(base), name="img", digest=digest, format="raw",
               size=10, state="present")
    assert end["status"] == "failed"
    assert "does not match" in end["msg"] and "push again" in end["msg"]
    assert list(base.rglob("sha256-*")) == []  # neither a partial nor a final file


def test_a_short_upload_stays_for_a_resume(executor: Executor, tmp_path: Path) -> None:
    base = tmp_path / "base"
    digest = _stage(base, b"hal")
    end = _end(executor, "image", dir=str(base), name="img", digest=digest, format="raw",
               size=6, state="present")
    assert end["status"] == "failed" and "3 of 6 bytes" in end["msg"]
    prepared = _end(executor, "image", dir=str(base), name="img", digest=digest, format="raw",
                    state="prepare")
    assert prepared["data"]["offset"] == 3 and prepared["data"]["present"] is False
    assert not (base / f"sha256-{digest}.raw").exists()


def test_a_name_pushed_again_points_at_the_new_content(executor: Executor,
                                                       tmp_path: Path) -> None:
    base = tmp_path / "base"
    for content in (b"v1", b"v2"):
        digest = _stage(base, content)
        end = _end(executor, "image", dir=str(base), name="img", digest=digest,
                   format="raw", state="present")
        assert end["status"] == "changed"
    assert (base / "names" / "img").resolve().read_bytes() == b"v2"
    listed = _end(executor, "image_list", dir=str(base), overlay_dirs=[str(tmp_path / "none")])
    assert {(i["name"], i["size"]) for i in listed["data"]["images"]} == {("img", 2), (None, 2)}
    v1, v2 = (hashlib.sha256(c).hexdigest() for c in (b"v1", b"v2"))
    named = _end(executor, "image", dir=str(base), name=f"sha256:{v2}", state="absent",
                 overlay_dirs=[str(tmp_path / "none")])
    assert named["status"] == "failed" and "still image img" in named["msg"]
    gone = _end(executor, "image", dir=str(base), name=f"sha256:{v1}", state="absent",
                overlay_dirs=[str(tmp_path / "none")])
    assert gone["status"] == "changed" and not (base / f"sha256-{v1}.raw").exists()
    assert (base / f"sha256-{v2}.raw").exists()


@pytest.mark.skipif(QEMU_IMG is None, reason="needs qemu-img (scripts/bootstrap.sh installs qemu-utils)")
def test_remove_is_refused_while_an_overlay_uses_it(executor: Executor, tmp_path: Path) -> None:
    base, instances = tmp_path / "base", tmp_path / "instances"
    instances.mkdir()
    src = tmp_path / "src.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(src), "16M"], check=True)
    digest = _stage(base, src.read_bytes(), "qcow2")
    stored = _end(executor, "image", dir=str(base), name="deb", digest=digest, format="qcow2",
                  state="present")
    assert stored["status"] == "changed"
    # As launch_instance makes it: an overlay on the name's link, recorded as the file itself.
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    str((base / "names" / "deb").resolve()), str(instances / "vm7.qcow2"),
                    "1G"], check=True)
    end = _end(executor, "image", dir=str(base), name="deb", state="absent",
               overlay_dirs=[str(instances)])
    assert end["status"] == "failed" and "in use by instance vm7" in end["msg"]
    assert (base / f"sha256-{digest}.qcow2").exists()
    listed = _end(executor, "image_list", dir=str(base), overlay_dirs=[str(instances)])
    assert listed["data"]["images"][0]["used_by"] == ["vm7"]
    (instances / "vm7.qcow2").unlink()  # terminated
    end = _end(executor, "image", dir=str(base), name="deb", state="absent",
               overlay_dirs=[str(instances)])
    assert end["status"] == "changed" and not (base / f"sha256-{digest}.qcow2").exists()


def test_bad_args_are_refused_before_anything_runs(executor: Executor, tmp_path: Path) -> None:
    out = executor.run(request([_wire("image", name="../etc", dir=str(tmp_path))]))
    assert out.rc == 2 and out.one("error")["field"].endswith("name")
    out = executor.run(request([_wire("image", name="a", digest="abc", format="raw",
                                      dir=str(tmp_path))]))
    assert out.rc == 2 and out.one("error")["field"].endswith("digest")
