"""Evidence delivery (DESIGN §4.5): clips and snapshots prepared from the store, described by a
manifest signed with the device key, and uploaded outbound by HTTPS PUT.

    delivery = DeliveryService(config, store=daemon.store, live=daemon.live, ledger=ledger)
    handlers = DeliveryHandlers(clip=delivery.clip, snapshot=delivery.snapshot)  # agent.link
    await service.start()     # the request service; deliveries it resumes wait for ...
    await delivery.start()    # ... this (device key, job queue, uploader)
    ...
    await delivery.stop()     # unfinished jobs stay persisted for the restart
    await service.close()

See `runner` for a job's life, `upload` for the transfer (retries, caps, redirects), `manifest`
for what is signed, `jobs` for what is persisted.
"""

from agent.camera_info import CAMERA_INFO_FILE, CameraFacts, read_camera_facts
from agent.delivery.bandwidth import TokenBucket
from agent.delivery.clip import ClipDelivery
from agent.delivery.errors import DeliveryFailed
from agent.delivery.jobs import JOBS_FILE, JobQueue, JobRow
from agent.delivery.manifest import sign_manifest
from agent.delivery.runner import (
    DeliveryService,
    LiveSource,
    Prepared,
    StoreAccess,
)
from agent.delivery.snapshot import SnapshotDelivery
from agent.delivery.tls import TlsSetupError, outbound_tls_context
from agent.delivery.upload import (
    Attempt,
    Uploader,
    UploadFailed,
    UploadResult,
    retry_after_seconds,
)

__all__ = [
    "CAMERA_INFO_FILE",
    "JOBS_FILE",
    "Attempt",
    "CameraFacts",
    "ClipDelivery",
    "DeliveryFailed",
    "DeliveryService",
    "JobQueue",
    "JobRow",
    "LiveSource",
    "Prepared",
    "SnapshotDelivery",
    "StoreAccess",
    "TlsSetupError",
    "TokenBucket",
    "UploadFailed",
    "UploadResult",
    "Uploader",
    "outbound_tls_context",
    "read_camera_facts",
    "retry_after_seconds",
    "sign_manifest",
]
