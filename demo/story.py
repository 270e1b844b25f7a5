"""The whole story on one machine: an RTCC hub, a business with three cameras, an analyst.

Everything runs as the product's own commands would on real machines — `rtcc-hub`, the
installer, `rtcc-edge`, `camsim` standing in for the cameras — connected over loopback by a real
mosquitto with TLS. Each step prints the command and what it answered.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from rich.table import Table

from demo.console import console_tour
from demo.owner_page import OwnerPage
from demo.shell import BIN, DemoError, Shell, console

REPO = Path(__file__).resolve().parents[1]
LAT, LON = 35.0844, -106.6504  # Central Ave NW, Albuquerque
CAMERA_PASSWORD = "Demo-Cam-2026"  # noqa: S105 - the simulated cameras' own password
ISSUER = "https://rtcc.demo.city"
CASE = "2026-114523"
INCIDENT_CASE = "2026-114530"

CAMERAS = [
    # id, persona, address, what the owner shares
    ("front-door", "hikvision", "127.0.0.21", ["--sharing", "integrated", "--live"]),
    ("parking-lot", "dahua", "127.0.0.22", ["--sharing", "registry"]),
    ("back-alley", "hikvision-vulnerable", "127.0.0.23", []),
]
LOCATIONS = {"front-door": (35.08441, -106.65043), "parking-lot": (35.08463, -106.65088)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Story:
    def __init__(self, sh: Shell) -> None:
        self.sh = sh
        self.work = sh.work
        self.hub_home = self.work / "hub"
        self.root = self.work / "site"  # the staged install: /etc, /opt, /var/lib under it
        self.config = self.root / "etc/rtcc-edge/agent.toml"
        self.state = self.root / "var/lib/rtcc-edge"
        self.edge = self.root / "opt/rtcc-edge/bin/rtcc-edge"
        # mosquitto drops to its own user: its files go where that user can read them.
        self.broker_dir = Path(tempfile.mkdtemp(prefix="rtcc-demo-broker-"))
        self.broker_dir.chmod(0o755)
        self.cams: dict[str, dict[str, Any]] = {}
        self.site = ""
        self.hub_url = ""
        self.owner = OwnerPage(self)
        self.owner_shots: list[Path] = []

    def hub(self, *args: str) -> list[str]:
        return [str(BIN / "rtcc-hub"), "--home", str(self.hub_home), *args]

    def agent(self, *args: str) -> list[str]:
        return [str(self.edge), "--config", str(self.config), *args]

    # -- the RTCC --------------------------------------------------------------------------

    def rtcc_hub(self) -> None:
        sh = self.sh
        sh.step("The RTCC sets up its hub: signing keys, a CA, a TLS broker, the HTTPS server")
        sh.run(self.hub("keys", "new", "--issuer", ISSUER))
        site_port, hub_port = free_port(), free_port()
        sh.run(
            self.hub(
                "broker-config", "--out", str(self.broker_dir / "broker"),
                "--host", "127.0.0.1", "--port", str(site_port), "--bind", "127.0.0.1",
                "--hub-port", str(hub_port), "--hub-bind", "127.0.0.1",
            ),
            limit=8,
        )  # fmt: skip
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = next((self.broker_dir / "broker").glob("*.conf"))
        sh.start("mosquitto", [mosquitto, "-c", str(conf)])
        for port in (site_port, hub_port):
            sh.wait_for(f"mosquitto on port {port}", partial(_listening, port), timeout=15)
        ready = self.work / "hub-ready.json"
        sh.start("hub", self.hub("serve", "--host", "127.0.0.1", "--port", "0", "--ready-file",
                                 str(ready)))  # fmt: skip
        sh.wait_for("rtcc-hub serve", ready.exists, timeout=30)
        self.hub_url = json.loads(ready.read_text())["url"]
        sh.say(f"  hub listening at {self.hub_url}")

    # -- the cameras -----------------------------------------------------------------------

    def cameras(self) -> None:
        sh = self.sh
        sh.step("Three cameras at the business (camsim; one runs firmware with a known CVE)")
        lines = ["[discovery]", "port = 3702", "multicast = false", ""]
        for camera_id, persona, host, _ in CAMERAS:
            lines += [
                "[[cameras]]",
                f'id = "{camera_id}"',
                f'persona = "{persona}"',
                f'host = "{host}"',
                f'password = "{CAMERA_PASSWORD}"',
                "",
            ]
        config = self.work / "camsim.toml"
        config.write_text("\n".join(lines))
        ready = self.work / "camsim-ready.json"
        sh.start("camsim", [str(BIN / "camsim"), "run", "--config", str(config), "--ready-file",
                            str(ready), "--no-control"])  # fmt: skip
        sh.wait_for("the cameras", ready.exists, timeout=120)
        for cam in json.loads(ready.read_text())["cameras"]:
            self.cams[cam["id"]] = cam
            sh.say(
                f"  {cam['id']:<12} {cam['vendor']} {cam['model']} firmware {cam['firmware']}"
                f"  ONVIF {cam['onvif_url']}"
            )

    # -- the business ----------------------------------------------------------------------

    def enroll(self) -> None:
        sh = self.sh
        sh.step("The RTCC invites the business: a one-time enrollment token")
        out = sh.run(
            self.hub("tokens", "new", "--site-name", "Corner Grocery", "--location",
                     f"{LAT},{LON}", "--json"),
            show=False,
        ).stdout  # fmt: skip
        token = json.loads(out)
        self.site = token["site"]
        sh.say(f"  site {self.site} ({token['site_name']}); the owner gets this line:")
        sh.say(f"    {token['install']}", style="dim")

        sh.step("The owner runs the installer (staged under demo-run/site instead of /)")
        ca = self.hub_home / "ca" / "ca.pem"  # the CA of the sites and of the hub's servers
        if ca is None:
            raise DemoError("the hub has no site CA after `broker-config`")
        sh.run(
            ["sh", str(REPO / "installer/install.sh"), "--root", str(self.root),
             "--hub", self.hub_url, "--hub-ca", str(ca), "--token", token["token"],
             "--no-start", "--scan", "127.0.0.16/28", "--yes"],
            limit=60,
            timeout=300,
        )  # fmt: skip

    def add_cameras(self) -> None:
        sh = self.sh
        sh.step("The owner adds the cameras and decides what each one shares")
        for camera_id, _persona, _host, sharing in CAMERAS:
            cam = self.cams[camera_id]
            address = cam["onvif_url"].split("//", 1)[1].split("/", 1)[0]
            extra = list(sharing)
            if camera_id in LOCATIONS:
                lat, lon = LOCATIONS[camera_id]
                extra += ["--location", f"{lat},{lon}"]
            sh.run(
                self.agent("cameras", "add", address, "--id", camera_id, "--username",
                           cam["username"], "--password-stdin", *extra),
                stdin=CAMERA_PASSWORD,
                limit=4,
            )  # fmt: skip

    def compatibility(self) -> None:
        sh = self.sh
        sh.step("The compatibility table: every camera interrogated, streamed and judged")
        proc = sh.run(self.agent("doctor", "--json"), ok=(0, 1), timeout=120, show=False)
        sh.say(f"$ {self.edge.name} doctor   (shown from its --json output)", style="bold")
        report = json.loads(proc.stdout)
        table = Table(show_lines=False, pad_edge=False)
        for column in ("camera", "device (ONVIF)", "profiles", "stream", "frames", "verdict"):
            table.add_column(column)
        for camera in report["cameras"]:
            ident = camera.get("identity") or {}
            stream = camera.get("stream") or {}
            onvif = camera.get("onvif") or {}
            failed = [c["title"] for c in camera["checks"] if c["status"] == "fail"]
            verdict = camera["status"] + (f": {'; '.join(failed)}" if failed else "")
            table.add_row(
                camera.get("camera_id") or camera["target"],
                f"{ident.get('manufacturer')} {ident.get('model')} {ident.get('firmware')}",
                str(len(onvif.get("profiles", []))),
                f"{stream.get('codec')} {stream.get('width')}x{stream.get('height')} "
                f"{stream.get('fps') or 0:.0f} fps\n{sh.shown(stream.get('url') or '')}",
                str(stream.get("frames")),
                verdict,
            )
        console.print(table)
        for camera in report["cameras"]:
            for finding in camera.get("firmware", []):
                if finding.get("status") == "affected":
                    sh.say(f"  {camera.get('camera_id')}: {finding.get('reason', '')}", style="red")
        site_fails = [c["title"] for c in report["checks"] if c["status"] == "fail"]
        if site_fails:
            sh.say(f"  site checks that failed here: {', '.join(site_fails)}", style="yellow")

    def record(self) -> None:
        sh = self.sh
        sh.step("The agent runs: records every camera, connects out to the RTCC")
        self.agent_proc = sh.start("agent", self.agent("run"))
        state_file = self.state / "recorders.json"

        def recording() -> bool:
            try:
                data = json.loads(state_file.read_text())
            except (OSError, ValueError):
                return False
            cams = data.get("cameras", {})
            return len(cams) == len(CAMERAS) and all(
                c.get("status") == "recording" for c in cams.values()
            )

        sh.wait_for("all three cameras recording", recording, timeout=60)
        self.recording_since = datetime.now(UTC)
        sh.say("  recording all three cameras")

    # -- the analyst -----------------------------------------------------------------------

    def find(self) -> None:
        sh = self.sh
        sh.step("An analyst looks for cameras near an incident")
        sh.wait_for(
            "the site's registry at the RTCC", lambda: self._listed_online() >= 2, timeout=60
        )
        sh.run(self.hub("sites", "--near", f"{LAT},{LON}", "--radius", "300m"), limit=12)

    def _listed_online(self) -> int:
        proc = self.sh.run(self.hub("sites", "--json", "--timeout", "2s"), show=False, ok=(0, 1, 2))
        try:
            rows = json.loads(proc.stdout)
        except ValueError:
            return 0
        return sum(1 for row in rows if isinstance(row, dict) and row.get("online"))

    def clip(self) -> None:
        sh = self.sh
        sh.step("The analyst asks for the last 20 s of the integrated camera")
        footage = 22 - (datetime.now(UTC) - self.recording_since).total_seconds()
        if footage > 0:
            sh.say(f"  (waiting {footage:.0f} s for 20 s of footage)", style="dim")
            time.sleep(footage)
        end = datetime.now(UTC) - timedelta(seconds=1)
        start = end - timedelta(seconds=20)
        proc = sh.run(
            self.hub("request", "clip", "--site", self.site, "--camera", "front-door",
                     "--case", CASE, "--requester", "analyst-17",
                     "--reason", "shoplifting reported at the corner",
                     "--from", rfc3339(start), "--to", rfc3339(end), "--timeout", "90s"),
            timeout=120,
        )  # fmt: skip
        match = re.search(r"received (\S+)", proc.stdout)
        manifest = re.search(r"rtcc-hub verify \S+ (\S+)", proc.stdout)
        if not match or not manifest:
            raise DemoError("the hub did not say where the clip landed")
        sh.step("The analyst proves the clip's integrity and window, offline")
        sh.run(
            self.hub("verify", match.group(1), manifest.group(1), "--from", rfc3339(start),
                     "--to", rfc3339(end)),
            limit=20,
        )  # fmt: skip

    def approval(self) -> None:
        sh = self.sh
        sh.step("A request to the registry camera waits for the owner, who answers on their page")
        end = datetime.now(UTC) - timedelta(seconds=1)
        start = end - timedelta(seconds=15)
        waiting = sh.start(
            "hub-request-parking",
            self.hub("request", "clip", "--site", self.site, "--camera", "parking-lot",
                     "--case", CASE, "--requester", "analyst-17",
                     "--reason", "vehicle of interest", "--from", rfc3339(start),
                     "--to", rfc3339(end), "--timeout", "120s"),
        )  # fmt: skip
        sh.wait_for("the request at the site", self._pending, timeout=30)
        sh.run(self.agent("requests"), limit=10)
        pending = self._pending()
        self.owner_shots = self.owner.approve(pending, CASE)
        sh.wait_for("the delivery", lambda: waiting.poll() is not None, timeout=90)
        for line in sh.log_tail("hub-request-parking", 12).splitlines():
            sh.say("  " + line)
        if waiting.returncode != 0:
            raise DemoError(f"the approved request ended with exit {waiting.returncode}")

    def _pending(self) -> str:
        proc = self.sh.run(self.agent("requests", "--json"), show=False, ok=(0, 1, 2))
        try:
            records = json.loads(proc.stdout)
        except ValueError:
            return ""
        items = records.get("requests", records) if isinstance(records, dict) else records
        for record in items if isinstance(items, list) else []:
            if isinstance(record, dict) and record.get("state") == "pending_approval":
                return str(record.get("id") or record.get("jti"))
        return ""

    def live(self) -> None:
        sh = self.sh
        sh.step("A 10 s live view of the integrated camera through the relay")
        proc = sh.run(
            self.hub("request", "stream", "--site", self.site, "--camera", "front-door",
                     "--case", CASE, "--requester", "analyst-17", "--max-seconds", "10",
                     "--until", "streaming", "--timeout", "30s"),
            timeout=60,
        )  # fmt: skip
        viewer = re.search(r"\(video: (\S+)", proc.stdout)
        if viewer is None:
            raise DemoError("the hub printed no viewer URL")
        frames, width, height, latency = _watch(viewer.group(1), self.hub_home, seconds=12)
        sh.say(
            f"  watched through the relay: {frames} frames decoded, {width}x{height}"
            + (f", glass-to-viewer {latency:.2f} s (SEI capture times)" if latency else "")
        )
        if frames == 0:
            raise DemoError("no frame came through the relay")

    # -- the owner's record ------------------------------------------------------------------

    def audit(self) -> None:
        sh = self.sh
        sh.step("The owner checks the tamper-evident ledger and reads the transparency report")
        sh.run(self.agent("audit", "verify"))
        sh.run(self.agent("audit", "report", "--since", "1h"), limit=40)

    def shutdown(self) -> None:
        sh = self.sh
        sh.step("Clean shutdown")
        code = sh.stop(self.agent_proc, timeout=60)
        sh.say(f"  rtcc-edge run stopped with exit status {code}")
        if code != 0:
            raise DemoError("the agent did not stop cleanly:\n" + sh.log_tail("agent"))
        sh.stop_all()
        shutil.rmtree(self.broker_dir, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _watch(url: str, hub_home: Path, *, seconds: float) -> tuple[int, int, int, float | None]:
    """Decode the relay's progressive fMP4 like a viewer would; frames, size, median latency."""
    import av

    from camsim.sei import Codec, read_stamps

    ca = hub_home / "ca" / "ca.pem"
    options = {"ca_file": str(ca), "tls_verify": "1"}
    frames, width, height = 0, 0, 0
    delays: list[float] = []
    deadline = time.monotonic() + seconds
    try:
        with av.open(url, options=options, timeout=10) as container:
            stream = container.streams.video[0]
            codec: Codec = "hevc" if stream.codec_context.name == "hevc" else "h264"
            for packet in container.demux(stream):
                arrived = time.time()
                for stamp in read_stamps(bytes(packet), codec, length_prefixed=True):
                    delays.append(arrived - stamp.capture_time)
                for frame in packet.decode():
                    frames += 1
                    width, height = frame.width, frame.height
                if time.monotonic() > deadline:
                    break
    except (av.FFmpegError, OSError) as exc:
        if frames == 0:
            raise DemoError(f"cannot read the live view: {exc}") from exc
    delays.sort()
    return frames, width, height, delays[len(delays) // 2] if delays else None


def main() -> int:
    work = REPO / "demo-run"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    os.chdir(REPO)
    sh = Shell(work)
    console.print(
        "[bold]rtcc-edge demo[/]: an RTCC hub, a business with three cameras, an analyst — "
        "all on this machine, over loopback."
    )
    story = Story(sh)
    try:
        story.rtcc_hub()
        story.cameras()
        story.enroll()
        story.add_cameras()
        story.compatibility()
        story.record()
        story.owner.start()
        story.find()
        story.clip()
        story.approval()
        story.live()
        story.audit()
        shots = console_tour(story, lat=LAT, lon=LON, case=INCIDENT_CASE)
        story.shutdown()
    except DemoError as exc:
        console.print(f"\n[bold red]demo failed:[/] {sh.shown(str(exc))}")
        return 1
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted[/]")
        return 130
    finally:
        sh.stop_all()
        shutil.rmtree(story.broker_dir, ignore_errors=True)
    elapsed = time.monotonic() - sh.started
    console.print(
        f"\n[bold green]demo complete in {elapsed:.0f} s[/]; everything it made is in demo-run/"
    )
    console.print(
        f"The RTCC console was at {story.hub_url}/ (run `rtcc-hub --home demo-run/hub serve` to "
        "open it again); screenshots: " + ", ".join(sh.shown(str(s)) for s in shots)
    )
    console.print(
        f"The owner's page was at {story.owner.url}/ (`rtcc-edge owner serve`); screenshots: "
        + ", ".join(sh.shown(str(s)) for s in story.owner_shots)
    )
    return 0
