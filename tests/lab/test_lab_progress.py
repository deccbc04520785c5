"""``lab up``'s progress while it builds images: the build log streams, each phase is a line.

No Docker here: a stand-in for the engine's low-level build API feeds the chunks that a
legacy-builder build of Dockerfile.libvirt sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from docker.errors import ImageNotFound

from control_server.errors import LabError
from control_server.lab_images import LIBVIRT_IMAGE, Progress, _build


class _Image:
    id = "sha256:new"
    labels: ClassVar[dict[str, str]] = {}


class _Images:
    def __init__(self) -> None:
        self.built = False

    def get(self, tag: str) -> _Image:
        if not self.built:
            raise ImageNotFound(tag)
        return _Image()


class _Api:
    def __init__(self, images: _Images, chunks: list[dict[str, Any]]) -> None:
        self.images, self.chunks = images, chunks

    def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        assert kwargs["decode"] and kwargs["network_mode"] == "host"
        yield from self.chunks
        self.images.built = not any("error" in c for c in self.chunks)


class _Client:
    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.images = _Images()
        self.api = _Api(self.images, chunks)


STEPS = [{"stream": "Step 1/9 : ARG BASE=hostplane-lab:bookworm\n"},
         {"stream": "Step 4/9 : COPY build-guest.sh /usr/local/lib/hostplane/build-guest.sh\n"},
         {"stream": "Step 5/9 : RUN bash /usr/local/lib/hostplane/build-guest.sh /var/lib/x\n"},
         {"stream": " ---> Running in 0123456789ab\n"}]


def _phases(lines: list[str]) -> list[str]:
    assert all(re.match(r"lab up \[ *\d+\.\ds\] ", line) for line in lines), lines
    return [line.split("] ", 1)[1] for line in lines]


def test_a_build_reports_start_guest_build_and_end() -> None:
    lines: list[str] = []
    _build(_Client(STEPS), LIBVIRT_IMAGE, "Dockerfile.libvirt", "d1", {}, Progress(lines.append),
           "libvirt image")
    phases = _phases(lines)
    assert phases[:2] == [f"libvirt image {LIBVIRT_IMAGE}: building",
                          "guest build: stock Debian kernel + busybox initramfs"]
    assert re.fullmatch(rf"libvirt image {LIBVIRT_IMAGE}: built in \d+s", phases[2])
    assert len(phases) == 3


def test_a_failed_build_is_a_lab_error_with_the_log_tail() -> None:
    chunks = [*STEPS, {"stream": "E: Unable to locate package qemu-system-x86\n"},
              {"error": "The command '/bin/sh -c apt-get install' returned a non-zero code: 100"}]
    with pytest.raises(LabError, match=r"(?s)building .* failed:.*Unable to locate.*code: 100"):
        _build(_Client(chunks), LIBVIRT_IMAGE, "Dockerfile.libvirt", "d1", {}, Progress(),
               "libvirt image")


def test_no_echo_is_silent() -> None:
    Progress()("nothing to see")  # the library default: tests and programs stay quiet
