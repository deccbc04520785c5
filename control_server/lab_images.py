"""The lab's Docker engine and images: the engine client, and building the images lab hosts run.

Building is the slow part of a first ``lab up`` (debootstrap, apt, the guest): each phase
reports to a ``Progress`` so a user sees what is happening and for how long.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from control_server.errors import LabError

ASSETS = Path(__file__).with_name("lab_assets")
BASE_IMAGE = "hostplane-lab-base:bookworm"
HOST_IMAGE = "hostplane-lab:bookworm"
LIBVIRT_IMAGE = "hostplane-lab-libvirt:bookworm"
DIGEST_LABEL = "org.hostplane.lab.assets"
HOST_FILES = ("Dockerfile", "entrypoint.sh", "sshd_config")
LIBVIRT_FILES = (*HOST_FILES, "Dockerfile.libvirt", "libvirt-entrypoint.sh", "build-guest.sh",
                 "qemu.conf")
# The build step of Dockerfile.libvirt that makes the guest: its own phase in the progress.
GUEST_STEP = "build-guest.sh"


class Progress:
    """One line per phase of ``lab up``, with the seconds since it began (silent without echo)."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self.echo = echo
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        if self.echo is not None:
            self.echo(f"lab up [{time.monotonic() - self.started:6.1f}s] {message}")


def stderr_progress() -> Progress:
    return Progress(lambda line: print(line, file=sys.stderr, flush=True))


@contextmanager
def docker_errors(what: str) -> Iterator[None]:
    """Turn Docker's exceptions into a LabError that says what we were doing."""
    try:
        yield
    except DockerException as exc:
        raise LabError(f"{what}: {exc}") from exc


def _run_script(script: str, *args: str, what: str) -> None:
    proc = subprocess.run(["bash", str(ASSETS / script), *args], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise LabError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _ping() -> docker.DockerClient:
    client = docker.from_env(max_pool_size=32, timeout=300)
    client.ping()
    return client


def engine(start_engine: bool = True) -> docker.DockerClient:
    """A client for a Docker engine that answers, starting the engine if needed and allowed."""
    try:
        return _ping()
    except DockerException as exc:
        if not start_engine:
            raise LabError(f"the Docker engine does not answer: {exc}") from exc
    _run_script("docker-engine.sh", what="starting the Docker engine")
    with docker_errors("the Docker engine still does not answer"):
        return _ping()


def _assets_digest(*names: str) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + (ASSETS / name).read_bytes())
    return digest.hexdigest()[:16]


def _stream_build(client: docker.DockerClient, tag: str, dockerfile: str, digest: str,
                  buildargs: dict[str, str], progress: Progress) -> None:
    """Build through the low-level API, whose log streams: phases show as they start."""
    log: list[str] = []
    # Host networking: a build that has to apt-get reaches the mirror exactly as the
    # host's own apt does, whatever the FORWARD rules of the bridge say.
    chunks = client.api.build(path=str(ASSETS), dockerfile=dockerfile, tag=tag, rm=True,
                              forcerm=True, buildargs=buildargs, network_mode="host",
                              labels={DIGEST_LABEL: digest}, decode=True)
    for chunk in chunks:
        if "error" in chunk:
            tail = "\n".join([*log[-15:], str(chunk["error"]).strip()])
            raise LabError(f"building {tag} failed:\n{tail}")
        text = str(chunk.get("stream") or "").strip()
        if not text:
            continue
        log.append(text)
        if text.startswith("Step ") and " : RUN " in text and GUEST_STEP in text:
            progress("guest build: stock Debian kernel + busybox initramfs")


def _build(client: docker.DockerClient, tag: str, dockerfile: str, digest: str,
           buildargs: dict[str, str], progress: Progress, what: str) -> None:
    """Build ``tag`` unless an image built from the same assets exists already."""
    old = None
    try:
        old = client.images.get(tag)
        if old.labels.get(DIGEST_LABEL) == digest:
            progress(f"{what} {tag}: up to date")
            return
    except ImageNotFound:
        pass
    progress(f"{what} {tag}: building")
    started = time.monotonic()
    with docker_errors(f"building {tag}"):
        _stream_build(client, tag, dockerfile, digest, buildargs, progress)
        new = client.images.get(tag)
    progress(f"{what} {tag}: built in {time.monotonic() - started:.0f}s")
    if old is not None and old.id != new.id:
        with suppress(APIError):  # still used by a container: it goes with that one
            client.images.remove(old.id)


def ensure_images(client: docker.DockerClient, libvirt: bool = False,
                  progress: Progress | None = None) -> str:
    """Build the lab images that are missing or stale; return the image to run."""
    progress = progress or Progress()
    try:
        client.images.get(BASE_IMAGE)
        progress(f"base image {BASE_IMAGE}: present")
    except ImageNotFound:
        progress(f"base image {BASE_IMAGE}: debootstrap + docker import (a few minutes)")
        _run_script("base-image.sh", BASE_IMAGE, what=f"building {BASE_IMAGE}")
        progress(f"base image {BASE_IMAGE}: built")
    _build(client, HOST_IMAGE, "Dockerfile", _assets_digest(*HOST_FILES),
           {"BASE": BASE_IMAGE}, progress, "host image")
    if not libvirt:
        return HOST_IMAGE
    _build(client, LIBVIRT_IMAGE, "Dockerfile.libvirt", _assets_digest(*LIBVIRT_FILES),
           {"BASE": HOST_IMAGE}, progress, "libvirt image")
    return LIBVIRT_IMAGE
