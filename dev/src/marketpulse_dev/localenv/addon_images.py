"""Images for the cluster add-ons (Prometheus, the Prometheus Operator): each a static binary
built from the Go module proxy on an empty root, the way their upstream images package them, as
`buildah from scratch` + copy + `buildah commit`. No registry serves their images here."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from marketpulse_dev.localenv.gobuild import GoBuild, ensure_built
from marketpulse_dev.localenv.image import (
    BuiltImage,
    archive_path,
    check_prerequisites,
    commit_from_scratch,
    export_archive,
    image_exists,
    logs_dir,
)
from marketpulse_dev.localenv.monitoring_binaries import PROMETHEUS, PROMETHEUS_OPERATOR
from marketpulse_dev.localenv.paths import cache_dir
from marketpulse_dev.localenv.process import file_lock

NOBODY = "65534:65534"  # the user of the upstream images


@dataclass(frozen=True)
class AddonImage:
    name: str
    build: GoBuild
    binary: str
    # A directory the process writes to (Prometheus's default storage path), owned by NOBODY.
    workdir: str = ""

    def tag(self) -> str:
        """The version and the binary's digest: a rebuilt binary is a new image."""
        digest = hashlib.sha256(self.build.binary(self.binary).read_bytes()).hexdigest()[:12]
        return f"{self.build.name.rsplit('-', 1)[-1]}-{digest}"


PROMETHEUS_IMAGE = AddonImage("localhost/prometheus", PROMETHEUS, "prometheus", workdir="/prometheus")
OPERATOR_IMAGE = AddonImage("localhost/prometheus-operator", PROMETHEUS_OPERATOR, "operator")
RELOADER_IMAGE = AddonImage(
    "localhost/prometheus-config-reloader", PROMETHEUS_OPERATOR, "prometheus-config-reloader"
)


def ensure_addon_image(image: AddonImage, *, live: bool = True) -> BuiltImage:
    check_prerequisites(debootstrap=False)
    ensure_built(image.build, live=live)
    tag = image.tag()
    reference = f"{image.name}:{tag}"
    log = logs_dir() / f"image-{image.name.rsplit('/', 1)[-1]}.log"
    with file_lock(cache_dir() / "locks" / f"image-{image.binary}.lock"):
        if not image_exists(reference):
            _commit(image, reference, log)
        archive = archive_path(image.name, tag)
        if not archive.is_file():
            export_archive(reference, image.name, tag, log)
    return BuiltImage(name=image.name, tag=tag, archive=archive, input_hash=tag)


def _commit(image: AddonImage, reference: str, log: Path) -> None:
    def fill(root: Path) -> None:
        (root / "bin").mkdir()
        shutil.copy2(image.build.binary(image.binary), root / "bin" / image.binary)
        (root / "tmp").mkdir(mode=0o1777)
        if image.workdir:
            work = root / image.workdir.lstrip("/")
            work.mkdir(parents=True)
            uid, gid = (int(n) for n in NOBODY.split(":"))
            shutil.chown(work, uid, gid)

    config = [
        "--entrypoint", f'["/bin/{image.binary}"]',
        "--cmd", "",
        "--user", NOBODY,
        *(["--workingdir", image.workdir] if image.workdir else []),
        "--label", f"org.opencontainers.image.description={image.build.name}, Go module proxy",
    ]  # fmt: skip
    commit_from_scratch(reference, f"marketpulse-addon-{image.binary}", fill, config, log)
