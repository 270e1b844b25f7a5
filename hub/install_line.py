"""The one line a site owner pastes to install rtcc-edge, as `rtcc-hub tokens new` prints it.

It downloads, then runs (`curl … -o file && sudo sh file …`), never `curl | sh`: a failed
download stops the line with curl's error and a non-zero status, where a pipe would run an
empty script and exit 0. When the hub's HTTPS certificate is its own (issued by its site CA,
not publicly trusted), the line first fetches that CA from `<hub>/ca.pem` and checks it against
the SHA-256 printed in the line itself, then uses it for every later download and gives it to
the installer (`--hub-ca`), which needs it to enroll.
"""

from __future__ import annotations

import hashlib
import shlex

SCRIPT = "rtcc-edge-install.sh"
CA_FILE = "rtcc-hub-ca.pem"


# The owner's page, for owners who will answer requests from a phone: on the shop's network
# (HTTPS, the installer asks for its password and prints the certificate's fingerprint), on the
# machine only, or not at all.
OWNER_PAGE_FLAGS = {"lan": " --owner-page-lan", "local": " --owner-page", "off": ""}


def install_line(
    public_url: str, token: str, *, ca_pem: bytes | None, owner_page: str = "lan"
) -> str:
    """The line for `public_url`; `ca_pem` is the CA the hub's HTTPS is under (None: publicly
    trusted); `owner_page` one of OWNER_PAGE_FLAGS."""
    hub = public_url.rstrip("/")
    q = shlex.quote
    page = OWNER_PAGE_FLAGS[owner_page]
    if ca_pem is None:
        return (
            f"curl -fsSL -o {SCRIPT} {q(hub + '/install.sh')}"
            f" && sudo sh {SCRIPT} --hub {q(hub)} --token {q(token)}{page}"
        )
    digest = hashlib.sha256(ca_pem).hexdigest()
    return (
        # -k only for the CA itself: it is trusted because its hash matches, not by TLS.
        f"curl -fsSLk -o {CA_FILE} {q(hub + '/ca.pem')}"
        f" && echo '{digest}  {CA_FILE}' | sha256sum -c --quiet"
        f" && curl -fsSL --cacert {CA_FILE} -o {SCRIPT} {q(hub + '/install.sh')}"
        f" && sudo sh {SCRIPT} --hub {q(hub)} --hub-ca {CA_FILE} --token {q(token)}{page}"
    )
