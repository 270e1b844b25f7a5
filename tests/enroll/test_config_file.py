"""Editing the owner's configuration: only `[site] id/name` and `[rtcc]` change, comments and
everything else stay; a layout that cannot be edited safely is refused, never mangled."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomlkit
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli.config_cmd import example_text
from agent.config import load_config
from agent.enroll import EnrollError
from agent.enroll.config_file import enrolled_text

RTCC = {
    "broker_url": "mqtts://broker.rtcc.test:8883",
    "issuer": "https://rtcc.test",
    "ca_file": "/etc/rtcc-edge/ca.pem",
    "cert_file": "/etc/rtcc-edge/client.pem",
    "key_file": "/etc/rtcc-edge/client.key",
    "jwks_file": "/etc/rtcc-edge/rtcc-jwks.json",
}


def test_example_config_keeps_every_comment(tmp_path: Path) -> None:
    before = example_text()
    after = enrolled_text(before, site_id="corner-3f9a", site_name="Corner Grocery", rtcc=RTCC)
    kept = [line for line in before.splitlines() if not line.startswith(("id =", "name ="))]
    after_lines = after.splitlines()
    for line in kept:
        assert line in after_lines, line
    path = tmp_path / "agent.toml"
    path.write_text(after)
    config = load_config(path)
    assert config.site.id == "corner-3f9a"
    assert config.rtcc.broker_url == RTCC["broker_url"]
    assert [c.id for c in config.cameras] == ["front-door", "parking-lot", "stockroom", "nvr-ch3"]


def test_replaces_rtcc_and_keeps_owner_tuning() -> None:
    before = (
        '[site]\nid = "old"\nname = "Old"\n\n'
        '[rtcc]\n# old enrollment\nbroker_url = "mqtts://old:8883"\nusername = "u"\n'
        'password = "p"\nkeepalive = "45s"\nclock_leeway = "10s"\n\n'
        '[log]\nlevel = "debug"  # mine\n'
    )
    after = enrolled_text(before, site_id="new-1", site_name="New", rtcc=RTCC)
    parsed = tomllib.loads(after)
    assert parsed["rtcc"] == {**RTCC, "keepalive": "45s", "clock_leeway": "10s"}
    assert parsed["site"] == {"id": "new-1", "name": "New"}
    assert 'level = "debug"  # mine' in after
    assert after.count("[rtcc]") == 1


def test_the_rtcc_evidence_host_is_allowed_unless_the_owner_chose() -> None:
    fresh = enrolled_text(
        '[site]\nid = "x"\nname = "X"\n',
        site_id="s-1",
        site_name="S",
        rtcc=RTCC,
        evidence_hosts=["rtcc.test"],
    )
    policy = tomllib.loads(fresh)["policy"]
    assert policy == {"allowed_upload_hosts": ["rtcc.test"], "allowed_relay_hosts": ["rtcc.test"]}
    # An owner's own list, even an empty one (no uploads at all), is never widened.
    owner = '[site]\nid = "x"\nname = "X"\n[policy]\nallowed_upload_hosts = []  # none\n'
    after = enrolled_text(
        owner, site_id="s-1", site_name="S", rtcc=RTCC, evidence_hosts=["rtcc.test"]
    )
    policy = tomllib.loads(after)["policy"]
    assert policy == {"allowed_upload_hosts": [], "allowed_relay_hosts": ["rtcc.test"]}
    assert "# none" in after


def test_the_rtcc_ca_is_trusted_for_uploads_unless_the_owner_chose() -> None:
    after = enrolled_text(
        '[site]\nid = "x"\nname = "X"\n',
        site_id="s-1",
        site_name="S",
        rtcc=RTCC,
        evidence_hosts=["rtcc.test"],
        evidence_ca="/etc/rtcc-edge/ca.pem",
    )
    assert tomllib.loads(after)["upload"] == {"ca_file": "/etc/rtcc-edge/ca.pem"}
    mine = '[site]\nid = "x"\nname = "X"\n[upload]\nca_file = "/etc/ssl/my-ca.pem"\n'
    after = enrolled_text(
        mine,
        site_id="s-1",
        site_name="S",
        rtcc=RTCC,
        evidence_hosts=["rtcc.test"],
        evidence_ca="/etc/rtcc-edge/ca.pem",
    )
    assert tomllib.loads(after)["upload"] == {"ca_file": "/etc/ssl/my-ca.pem"}


def test_adds_a_missing_site_table() -> None:
    after = enrolled_text('state_dir = "/x"\n', site_id="s-1", site_name="S", rtcc=RTCC)
    parsed = tomllib.loads(after)
    assert parsed["site"] == {"id": "s-1", "name": "S"}
    assert parsed["state_dir"] == "/x"


@pytest.mark.parametrize(
    "layout",
    [
        'rtcc = "a string"\n[site]\nid = "x"\nname = "y"\n',
        "site = 5\n",
        "[[rtcc]]\nx = 1\n",
    ],
)
def test_unusual_layouts_are_refused_with_what_to_write(layout: str) -> None:
    with pytest.raises(EnrollError) as caught:
        enrolled_text(layout, site_id="s-1", site_name="S", rtcc=RTCC)
    assert caught.value.code in ("config_not_editable", "config")
    if caught.value.code == "config_not_editable":
        assert "[rtcc]" in str(caught.value) and RTCC["broker_url"] in str(caught.value)


def test_dotted_keys_are_edited_or_refused_never_mangled() -> None:
    layout = '[site]\nid = "x"\nname = "y"\nrtcc.broker_url = "nope"\n'
    try:
        after = enrolled_text(layout, site_id="s-1", site_name="S", rtcc=RTCC)
    except EnrollError as exc:
        assert exc.code == "config_not_editable"
    else:
        assert tomllib.loads(after)["rtcc"] == RTCC


def test_not_toml_is_a_config_error() -> None:
    with pytest.raises(EnrollError) as caught:
        enrolled_text("[site\nid=", site_id="s-1", site_name="S", rtcc=RTCC)
    assert caught.value.code == "config"


keys = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True).filter(
    lambda k: k not in ("site", "rtcc")
)
scalars = st.one_of(
    st.integers(-(2**40), 2**40), st.booleans(), st.text(max_size=20), st.floats(-1e9, 1e9)
)
tables = st.dictionaries(keys, scalars, max_size=4)


@settings(max_examples=150, deadline=None)
@given(
    top=st.dictionaries(keys, st.one_of(scalars, tables), max_size=5),
    site=st.dictionaries(keys, scalars, max_size=3),
    old_rtcc=st.one_of(st.none(), st.dictionaries(keys, scalars, max_size=3)),
    comment=st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30),
)
def test_any_document_keeps_its_other_content(
    top: dict[str, object],
    site: dict[str, object],
    old_rtcc: dict[str, object] | None,
    comment: str,
) -> None:
    document = tomlkit.document()
    document.add(tomlkit.comment(comment))
    for key, value in top.items():
        document.add(key, value)
    document.add("site", site)
    if old_rtcc is not None:
        document.add("rtcc", old_rtcc)
    text = tomlkit.dumps(document)
    before = tomllib.loads(text)
    try:
        after_text = enrolled_text(text, site_id="s-1", site_name="Site", rtcc=RTCC)
    except EnrollError as exc:
        assert exc.code == "config_not_editable"
        return
    after = tomllib.loads(after_text)
    assert after["site"] == {**site, "id": "s-1", "name": "Site"}
    kept = {k: v for k, v in (old_rtcc or {}).items() if k in ("keepalive", "clock_leeway")}
    assert after["rtcc"] == {**RTCC, **kept}
    assert {k: v for k, v in after.items() if k not in ("site", "rtcc")} == {
        k: v for k, v in before.items() if k not in ("site", "rtcc")
    }
    assert f"#{comment}" in after_text or f"# {comment}" in after_text
