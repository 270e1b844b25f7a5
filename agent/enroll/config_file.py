"""Writing what enrollment learned into the owner's configuration file.

Only `[site] id` and `name` (the RTCC assigns the id and names the site) and the `[rtcc]` table
change; every other line, comment included, stays as the owner wrote it. `keepalive` and
`clock_leeway` an owner set in an old `[rtcc]` table are kept. The edit is checked by parsing
the result: if anything but those keys differs (a hand-written file the editor cannot change
safely), nothing is written and the owner is told what to add by hand.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from agent.enroll.client import EnrollError

KEPT_RTCC_KEYS = ("keepalive", "clock_leeway")


def _manual(rtcc: Mapping[str, object], reason: str) -> EnrollError:
    table = "\n".join(f"{k} = {tomlkit.item(v).as_string()}" for k, v in rtcc.items())
    return EnrollError(
        f"cannot update the configuration by itself ({reason}); add this by hand:\n[rtcc]\n{table}",
        code="config_not_editable",
    )


def enrolled_text(
    text: str,
    *,
    site_id: str,
    site_name: str,
    rtcc: Mapping[str, object],
    evidence_hosts: Sequence[str] = (),
    evidence_ca: str | None = None,
) -> str:
    """`text` with `[site] id/name` set and `[rtcc]` replaced by `rtcc` (plus kept keys); the
    RTCC's `evidence_hosts` become `[policy] allowed_upload_hosts` and `allowed_relay_hosts`
    where the owner has not set them (an owner's list, even an empty one, is left alone), and
    `evidence_ca` becomes `[upload] ca_file` unless the owner set one."""
    try:
        before = tomllib.loads(text)
        document = tomlkit.parse(text)
    except (tomllib.TOMLDecodeError, TOMLKitError) as exc:
        raise EnrollError(f"the configuration is not valid TOML: {exc}", code="config") from exc
    old_rtcc = before.get("rtcc", {})
    if not isinstance(old_rtcc, dict) or not isinstance(before.get("site", {}), dict):
        raise _manual(rtcc, "[site] or rtcc is not a table")
    table = tomlkit.table()
    for key, value in rtcc.items():
        table.add(key, value)
    for key in KEPT_RTCC_KEYS:
        if key in old_rtcc:
            table.add(key, old_rtcc[key])
    try:
        site = document.get("site")
        if site is None:
            site = tomlkit.table()
            document.add("site", site)
        site["id"] = site_id
        site["name"] = site_name
        if "rtcc" in document:
            document["rtcc"] = table
        else:
            document.add("rtcc", table)
        added_policy = _allow_evidence_hosts(document, before, evidence_hosts)
        added_upload = _trust_evidence_ca(document, before, evidence_ca)
        result = tomlkit.dumps(document)
        after = tomllib.loads(result)
    except (TOMLKitError, tomllib.TOMLDecodeError, TypeError, ValueError) as exc:
        raise _manual(rtcc, str(exc)) from exc
    expected: dict[str, Any] = {**before, "rtcc": dict(table.unwrap())}
    expected["site"] = {**before.get("site", {}), "id": site_id, "name": site_name}
    if added_policy:
        expected["policy"] = {**before.get("policy", {}), **added_policy}
    if added_upload:
        expected["upload"] = {**before.get("upload", {}), **added_upload}
    if after != expected:
        raise _manual(rtcc, "the file's layout does not allow a safe edit")
    return result


def _allow_evidence_hosts(
    document: Any, before: Mapping[str, Any], hosts: Sequence[str]
) -> dict[str, list[str]]:
    """Add the RTCC's evidence hosts to `[policy]` lists the owner has not written."""
    if not hosts:
        return {}
    policy_before = before.get("policy", {})
    if not isinstance(policy_before, dict):
        return {}
    added = {
        key: list(hosts)
        for key in ("allowed_upload_hosts", "allowed_relay_hosts")
        if key not in policy_before
    }
    if not added:
        return {}
    policy = document.get("policy")
    if policy is None:
        policy = tomlkit.table()
        document.add("policy", policy)
    for key, value in added.items():
        policy[key] = value
    return added


def _trust_evidence_ca(
    document: Any, before: Mapping[str, Any], ca_file: str | None
) -> dict[str, str]:
    """Point `[upload] ca_file` at the RTCC's CA unless the owner chose one."""
    upload_before = before.get("upload", {})
    if ca_file is None or not isinstance(upload_before, dict) or "ca_file" in upload_before:
        return {}
    upload = document.get("upload")
    if upload is None:
        upload = tomlkit.table()
        document.add("upload", upload)
    upload["ca_file"] = ca_file
    return {"ca_file": ca_file}
