"""Fixtures for the media tests. The fMP4 parser is checked against real muxer output, the
segments the clip store writes, so the store tests' fixtures are shared here."""

from __future__ import annotations

from tests.store.conftest import (  # noqa: F401
    base_us,
    media_dir,
    record,
    spec_at,
    store,
    store_config,
)
