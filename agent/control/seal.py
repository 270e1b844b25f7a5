"""`seal` {text} → {"sealed": "enc:v1:…"}: the daemon encrypts a camera password with the
site's secret key (`agent.secretbox`) for a process that may not read the key itself — the
owner's page, whose user is in the owner group but never the service user who owns the key.

Encryption only: nothing on the socket ever decrypts, so a caller learns nothing it did not
already know. An owner command all the same (`agent.control.auth.OWNER_COMMANDS`): only the
owner puts camera passwords into the configuration.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.secretbox import SecretBox


async def seal(state_dir: Path, text: str) -> dict[str, str]:
    """`text` encrypted with the site's key (made now if the site has none yet)."""
    box = await asyncio.to_thread(SecretBox.load_or_create, state_dir)
    return {"sealed": box.encrypt(text)}
