"""``cloud_init_seed``: an instance's NoCloud seed, an ISO 9660 image labelled ``cidata``.

The seed of instance ``name`` lives in ``dir/NAME/`` (default ``/var/lib/hostplane/seeds``):
the three files cloud-init reads (``meta-data``, ``user-data``, ``network-config``) and
``cidata.iso`` built from them with the first tool the host has (``cloud-localds``,
``genisoimage``, ``xorriso``, ``mkisofs``). The files are kept so that a rerun compares
what it would write with what is there: an ISO is not reproducible byte for byte (it
holds timestamps), its inputs are.

- ``state: present``: unchanged inputs are ``ok``; changed ones (new user-data, keys,
  hostname, network) are rewritten and the ISO rebuilt (``changed``). The
  ``instance-id`` (``iid-NAME-N``) stays the same across such a change, as cloud-init
  then applies only its per-boot parts; ``reseed: true`` moves it to ``N+1``, which makes
  cloud-init treat the next boot as a new instance's first.
- ``state: absent``: the folder is removed.
- ``state: reverted`` (``launch_instance``'s undo): the seed as it was before the last
  change, kept in ``NAME/.previous/`` by that change; none (a new seed): removed. So a
  relaunch that fails after changing an existing instance's seed leaves it bootable.

``user_data`` may hold secrets: no event carries its text (the messages and ``data`` name
files only), and its file is readable by root alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil

from host_executor import protocol
from host_executor.errors import StepFailed
from host_executor.step import StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List, Optional

    from host_executor.step import StepContext

DEFAULT_DIR = "/var/lib/hostplane/seeds"
ISO = "cidata.iso"
PREVIOUS = ".previous"
SEED_FILES = ("meta-data", "user-data", "network-config", ISO)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
IID_RE = re.compile(r'^instance-id: "iid-.+-([0-9]+)"$', re.M)
NETWORK_KEYS = ("dhcp", "address", "gateway", "dns", "interface")
#: ISO tools in order of preference (cloud-localds wraps genisoimage).
TOOLS = ("cloud-localds", "genisoimage", "xorriso", "mkisofs")
DEFAULT_USER_DATA = "#cloud-config\n{}\n"


def check_args(args: Dict[str, Any]) -> None:
    if not NAME_RE.match(args["name"]):
        raise protocol.ProtocolError("expected letters, digits, '_', '.', '-' (at most 63)", "name")
    if not os.path.isabs(args.get("dir") or DEFAULT_DIR):
        raise protocol.ProtocolError("expected an absolute path", "dir")
    hostname = args.get("hostname")
    if hostname is not None and not HOSTNAME_RE.match(hostname):
        raise protocol.ProtocolError("expected a host name (letters, digits, '-')", "hostname")
    keys = args.get("ssh_authorized_keys") or []
    if not all(isinstance(k, str) and k.strip() and "\n" not in k for k in keys):
        raise protocol.ProtocolError("expected a list of one-line public keys", "ssh_authorized_keys")
    _check_network(args.get("network_config"))


def _check_network(net: Optional[Dict[str, Any]]) -> None:
    if net is None:
        return
    import ipaddress

    field = "network_config"
    for key in net:
        if key not in NETWORK_KEYS:
            raise protocol.ProtocolError("unknown key %r (known: %s)" % (key, ", ".join(NETWORK_KEYS)), field)
    if "dhcp" in net and not isinstance(net["dhcp"], bool):
        raise protocol.ProtocolError("expected true or false", field + ".dhcp")
    if net.get("dhcp") and net.get("address"):
        raise protocol.ProtocolError("give dhcp or address, not both", field)
    try:
        if net.get("address") is not None:
            ipaddress.ip_interface(str(net["address"]))
            if "/" not in str(net["address"]):
                raise ValueError("needs a prefix length (192.168.122.50/24)")
        if net.get("gateway") is not None:
            ipaddress.ip_address(str(net["gateway"]))
        dns = net.get("dns") or []
        if not isinstance(dns, list):
            raise ValueError("dns: expected a list of addresses")
        for server in dns:
            ipaddress.ip_address(str(server))
    except ValueError as exc:
        raise protocol.ProtocolError(str(exc), field) from None
    iface = net.get("interface")
    if iface is not None and not (isinstance(iface, str) and re.match(r"[A-Za-z0-9*_.-]{1,15}\Z", iface)):
        raise protocol.ProtocolError("expected an interface name or glob (e*)", field + ".interface")


def run_seed(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    folder = os.path.join(args.get("dir") or DEFAULT_DIR, args["name"])
    try:
        state = args.get("state") or "present"
        if state == "absent":
            return _absent(folder, ctx)
        if state == "reverted":
            return _revert(folder, ctx)
        return _present(folder, args, ctx)
    except OSError as exc:
        raise StepFailed("cloud-init seed %s: %s" % (folder, exc)) from None


def _absent(folder: str, ctx: StepContext) -> StepResult:
    if not os.path.lexists(folder):
        return StepResult("ok", msg="no seed at %s" % folder)
    if not ctx.check:
        shutil.rmtree(folder)
    return StepResult("changed", msg="%s seed %s" % ("would remove" if ctx.check else "removed", folder))


def _revert(folder: str, ctx: StepContext) -> StepResult:
    previous = os.path.join(folder, PREVIOUS)
    if not os.path.isdir(previous):
        return _absent(folder, ctx)
    if ctx.check:
        return StepResult("changed", msg="would restore the previous seed in %s" % folder)
    for name in SEED_FILES:
        kept = os.path.join(previous, name)
        if os.path.exists(kept):
            os.replace(kept, os.path.join(folder, name))
        else:
            _unlink(os.path.join(folder, name))
    shutil.rmtree(previous)
    return StepResult("changed", msg="restored the previous seed in %s" % folder)


# --- present --------------------------------------------------------------------------


def _present(folder: str, args: Dict[str, Any], ctx: StepContext) -> StepResult:
    old = _read_files(folder)
    serial = _serial(old.get("meta-data", ""))
    reseed = bool(args.get("reseed")) and serial is not None
    serial = (serial or 0) + 1 if reseed or serial is None else serial
    iid = "iid-%s-%d" % (args["name"], serial)
    files = {
        "meta-data": meta_data(iid, args.get("hostname") or args["name"], args.get("ssh_authorized_keys") or []),
        "user-data": args.get("user_data") or DEFAULT_USER_DATA,
    }
    net = args.get("network_config")
    if net is not None:
        files["network-config"] = network_config(net)
    iso = os.path.join(folder, ISO)
    changed = sorted(n for n in set(files) | set(old) if files.get(n) != old.get(n))
    data: Dict[str, Any] = {"name": args["name"], "path": iso, "instance_id": iid,
                            "changed_files": changed}
    if net is not None and net.get("address"):
        data["address"] = str(net["address"]).split("/")[0]
    if not changed and os.path.isfile(iso):
        return StepResult("ok", msg="seed %s is up to date (%s)" % (iso, iid), data=data)
    tool = find_tool()
    if tool is None:
        raise StepFailed("no ISO tool to build the cloud-init seed: install one of %s "
                         "(Debian: genisoimage, xorriso or cloud-image-utils)" % ", ".join(TOOLS))
    what = ", ".join(changed) if changed else ISO
    if ctx.check:
        return StepResult("changed", msg="would write seed %s (%s)" % (iso, what), data=data)
    _write(folder, files, tool, ctx)
    data["tool"] = os.path.basename(tool)
    return StepResult("changed", msg="wrote seed %s (%s; %s)" % (iso, what, iid), data=data)


def _read_files(folder: str) -> Dict[str, str]:
    found = {}
    for name in ("meta-data", "user-data", "network-config"):
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                found[name] = fh.read()
        except FileNotFoundError:
            pass
    return found


def _serial(meta: str) -> Optional[int]:
    match = IID_RE.search(meta)
    return int(match.group(1)) if match else None


def _q(value: str) -> str:
    """A YAML double-quoted scalar: JSON's string syntax is YAML's (with ASCII escapes)."""
    return json.dumps(value)


def meta_data(iid: str, hostname: str, keys: List[str]) -> str:
    lines = ["instance-id: %s" % _q(iid), "local-hostname: %s" % _q(hostname)]
    if keys:  # NoCloud gives meta-data's public-keys to the default user
        lines.append("public-keys:")
        lines.extend("  - %s" % _q(k.strip()) for k in keys)
    return "\n".join(lines) + "\n"


def network_config(net: Dict[str, Any]) -> str:
    """Netplan-style v2 for the instance's one NIC (matched by name, its MAC being
    libvirt's to pick)."""
    lines = ["version: 2", "ethernets:", "  nic0:",
             "    match: {name: %s}" % _q(net.get("interface") or "e*")]
    if net.get("address"):
        lines += ["    dhcp4: false", "    addresses: [%s]" % _q(str(net["address"]))]
        if net.get("gateway"):
            lines += ["    routes:", "      - {to: default, via: %s}" % _q(str(net["gateway"]))]
    else:
        lines.append("    dhcp4: true")
    if net.get("dns"):
        lines.append("    nameservers: {addresses: [%s]}" % ", ".join(_q(str(d)) for d in net["dns"]))
    return "\n".join(lines) + "\n"


def find_tool() -> Optional[str]:
    for name in TOOLS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _argv(tool: str, iso: str, folder: str, names: List[str]) -> List[str]:
    paths = [os.path.join(folder, n) for n in names]
    base = os.path.basename(tool)
    if base == "cloud-localds":
        meta = os.path.join(folder, "meta-data")
        argv = [tool]
        if "network-config" in names:
            argv += ["--network-config", os.path.join(folder, "network-config")]
        return [*argv, iso, os.path.join(folder, "user-data"), meta]
    mkisofs = ["-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock", *paths]
    return [tool, "-as", "mkisofs", *mkisofs] if base == "xorriso" else [tool, *mkisofs]


def _write(folder: str, files: Dict[str, str], tool: str, ctx: StepContext) -> None:
    from host_executor.proc import run_process

    os.makedirs(folder, mode=0o711, exist_ok=True)
    _keep_previous(folder)
    for name, text in files.items():
        _atomic(os.path.join(folder, name), text)
    if "network-config" not in files:
        try:
            os.unlink(os.path.join(folder, "network-config"))
        except FileNotFoundError:
            pass
    iso = os.path.join(folder, ISO)
    tmp = iso + ".new"
    argv = _argv(tool, tmp, folder, sorted(files))
    result = run_process(argv, ctx.output_limit, ctx.cancel, timeout=ctx.timeout or 60)
    if result.rc != 0:
        _unlink(tmp)
        err = result.stderr.decode("utf-8", "replace").strip()[-500:]
        raise StepFailed("%s failed (exit %s) building %s: %s" % (os.path.basename(tool), result.rc, iso, err))
    # QEMU reads the ISO; the user-data inside it is no more readable than the file beside it.
    os.chmod(tmp, 0o600)
    os.replace(tmp, iso)


def _keep_previous(folder: str) -> None:
    """The seed as it is now, in ``.previous/`` for a ``reverted`` (a new seed: none)."""
    previous = os.path.join(folder, PREVIOUS)
    if os.path.isdir(previous):
        shutil.rmtree(previous)
    present = [n for n in SEED_FILES if os.path.exists(os.path.join(folder, n))]
    if not present:
        return
    os.mkdir(previous, 0o700)
    for name in present:
        shutil.copy2(os.path.join(folder, name), os.path.join(previous, name))


def _atomic(path: str, text: str) -> None:
    tmp = path + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
