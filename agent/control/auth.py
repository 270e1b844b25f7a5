"""Who is on the other end of the control socket, and whether they may act as the owner.

The kernel tells the daemon the peer's uid and gid (SO_PEERCRED); group membership is the
peer user's supplementary groups as the system lists them now. Owner commands (anything that
changes what the site shares or does) need root or a member of the owner group
(`control.owner_group`, `rtcc-edge-owner` by default) — and never the service user itself, even
if someone made it a member: the service runs the recorders, the code most exposed to hostile
input. Reading the site's state (status, requests, sharing) stays open to whoever can reach
the socket; the footage and the record (`picture`, `activity`, `preview`: `OWNER_READS`) are
the owner's.

A command may say it came `via` the owner's page; that only adds words to who the ledger names
(`by_label`): who acted is always the peer's uid, as the kernel gives it.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass
from typing import Literal

OWNER_COMMANDS = frozenset(
    {"approve", "deny", "sharing_set", "pause", "resume", "live_stop", "seal", "reload"}
)
# Reads that show footage or the owner's record: the owner's too, although they change nothing.
OWNER_READS = frozenset({"picture", "activity", "preview"})
DEFAULT_OWNER_GROUP = "rtcc-edge-owner"


@dataclass(frozen=True)
class Peer:
    uid: int
    gid: int

    @property
    def label(self) -> str:
        return describe_uid(self.uid)


def describe_uid(uid: int) -> str:
    """`uid 1001 (alice)`: how the ledger and the owner's file name who did something."""
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


Via = Literal["page"]
VIA_WORDS: dict[str, str] = {"page": "through the owner's page"}


def by_label(label: str, via: Via | None) -> str:
    """Who did it, as the ledger says it: `uid 998 (rtcc-edge-page) through the owner's page`."""
    return label if via is None else f"{label} {VIA_WORDS[via]}"


def peer_of(sock: socket.socket) -> Peer | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, gid = struct.unpack("3i", creds)
    return Peer(uid, gid)


def _groups_of(peer: Peer) -> set[int]:
    try:
        user = pwd.getpwuid(peer.uid)
    except KeyError:
        return {peer.gid}
    return {peer.gid, *os.getgrouplist(user.pw_name, user.pw_gid)}


def owner_refusal(
    peer: Peer | None, *, owner_group: str | None, service_uid: int | None = None
) -> str | None:
    """None if `peer` may act as the owner; otherwise the sentence that says why not."""
    service_uid = os.geteuid() if service_uid is None else service_uid
    group_hint = f" or as a member of the {owner_group} group" if owner_group else ""
    advice = f"Run it with sudo{group_hint}."
    if peer is None:
        return f"Only the owner can do that, and the caller could not be identified. {advice}"
    if peer.uid == 0:
        return None
    if peer.uid == service_uid:
        return (
            "Only the owner can do that; the rtcc-edge service's own user may only read. " + advice
        )
    if owner_group:
        try:
            gid = grp.getgrnam(owner_group).gr_gid
        except KeyError:
            gid = None
        if gid is not None and gid in _groups_of(peer):
            return None
    return f"Only the owner can do that ({peer.label} is not the owner). {advice}"
