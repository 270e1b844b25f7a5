"""`upload.ca_file` and `upload.temp_dir`: parsed, checked, and the CA really trusted."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import config_file_problems, load_config
from agent.delivery import TlsSetupError, outbound_tls_context

BASE = 'state_dir = "{state}"\n[site]\nid = "site-1"\nname = "Corner Grocery"\n'


def test_upload_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    ca = tmp_path / "rtcc-ca.pem"
    path.write_text(
        BASE.format(state=tmp_path)
        + f'[upload]\nca_file = "{ca}"\ntemp_dir = "{tmp_path / "tmp"}"\nbandwidth_mbps = 2.5\n'
    )
    config = load_config(path)
    assert config.upload.ca_file == ca and config.upload.temp_dir == tmp_path / "tmp"
    problems = config_file_problems(config)
    assert [(p.field, "no such file" in p.message) for p in problems] == [("upload.ca_file", True)]


def test_upload_defaults(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(BASE.format(state=tmp_path))
    upload = load_config(path).upload
    assert upload.ca_file is None and upload.temp_dir is None and upload.concurrency == 2


def test_a_bad_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TlsSetupError, match="no such file"):
        outbound_tls_context(tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(TlsSetupError, match="not PEM CA certificates"):
        outbound_tls_context(junk)


def test_the_daemon_refuses_to_start_with_an_unusable_ca_file(tmp_path: Path) -> None:
    from agent.daemon import Daemon, DaemonError
    from agent.daemon.components import default_components

    path = tmp_path / "agent.toml"
    path.write_text(
        BASE.format(state=tmp_path) + f'[upload]\nca_file = "{tmp_path / "missing.pem"}"\n'
    )
    with pytest.raises(DaemonError, match=r"upload\.ca_file .*no such file"):
        Daemon(load_config(path), extra_components=default_components())
