"""Build the MarketPulse images with buildah, on a machine without Docker and without a registry.

`ensure_image()` builds `images/marketpulse/Dockerfile` as it is (the same file `docker build` uses) with
`buildah bud --isolation chroot --layers`, tags the result `localhost/marketpulse:<input hash>` (the
operator-only target: `localhost/marketpulse-operator:<input hash>`) and writes a docker-archive that a
node imports with `ctr -n k8s.io images import <archive>`. The input hash covers the build context the
Dockerfile's `.dockerignore` admits, the Dockerfile and the base image, so a second call with nothing
changed returns at once, and a change to the code rebuilds only the layers after the code is copied.

The Dockerfile's default base (the official Python image) cannot be pulled here, so the base is made from
Debian packages instead: `debootstrap --variant=minbase` from the mirror apt already uses, then Debian's
python3.11 (3.11.2 on bookworm, where the official image carries the newest 3.11 patch release), committed
once per machine as `localhost/marketpulse-python-base:<hash of suite and packages>`.

pip inside the build reaches the package index through this machine's CA bundle and a pip config file,
both bind-mounted read-only for the build only: neither lands in a layer or in the image's config.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import shutil
import ssl
import subprocess
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.paths import cache_dir
from marketpulse_dev.localenv.process import console, file_lock, run_step

SUITE = "bookworm"
BASE_PACKAGES = ("python3.11", "python3.11-venv", "python-is-python3", "ca-certificates")
BASE_NAME = "localhost/marketpulse-python-base"
# Bump when the way the base or the image is made changes, so that cached ones are rebuilt.
BASE_RECIPE = 1
IMAGE_RECIPE = 1

DOCKERFILE = "images/marketpulse/Dockerfile"
IGNOREFILE = "images/marketpulse/Dockerfile.dockerignore"
# Where the build's pip finds this machine's CA bundle and its config (bind mounts, build stages only).
BUILD_CA_PATH = "/etc/ssl/certs/ca-certificates.crt"
BUILD_PIP_CONF_PATH = "/etc/pip.conf"
BASE_DESCRIPTION = f"Debian {SUITE} minbase + {' '.join(BASE_PACKAGES)}"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Target(StrEnum):
    """What to build: every workload (the Dockerfile's default target), or the operator only."""

    workloads = "workloads"
    operator = "operator"


IMAGE_NAMES = {Target.workloads: "localhost/marketpulse", Target.operator: "localhost/marketpulse-operator"}
# The Dockerfile stage of each target; None is the last stage, which `docker build` builds by default.
DOCKERFILE_TARGETS: dict[Target, str | None] = {Target.workloads: None, Target.operator: "operator"}
# The stages of each target that run pip (and so need the CA bundle and the pip config).
PIP_STAGES = {Target.workloads: ("deps", "app"), Target.operator: ("operator-deps", "app")}


@dataclass(frozen=True)
class BuiltImage:
    """An image in buildah's local storage, and the same image as a docker-archive file.

    Import it into a node's containerd with `ctr -n k8s.io images import <archive>`; it is then known
    there as `reference` (`localhost/marketpulse:<tag>`), for pods with `imagePullPolicy: Never` or
    `IfNotPresent`.
    """

    name: str
    tag: str
    archive: Path
    input_hash: str

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"


# --- .dockerignore, with Docker's semantics (moby/patternmatcher) -------------------------------------


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exclusion: bool  # a `!pattern` line: re-admits what earlier lines excluded
    literal_prefix: str  # the pattern up to its first wildcard, to prune directories while walking


def _translate(pattern: str) -> str:
    """A dockerignore pattern as a regular expression: `*` and `?` stay inside one path element,
    `**` spans any number of them (moby/patternmatcher's compile)."""
    out = "^"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 2
                if pattern[i : i + 1] == "/":
                    i += 1
                out += ".*" if i >= len(pattern) else "(.*/)?"
                continue
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[" and (end := pattern.find("]", i + 1)) != -1:
            body = pattern[i + 1 : end]
            if body.startswith("^"):
                body = "^" + body[1:].replace("\\", "\\\\")
            else:
                body = body.replace("\\", "\\\\")
            out += f"[{body}]"
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return out + "$"


class DockerIgnore:
    """Which paths of a build context a `.dockerignore` file excludes, as Docker and buildah decide."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            line = posixpath.normpath(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
            prefix = re.split(r"[*?\[\\]", line, maxsplit=1)[0]
            self.patterns.append(_Pattern(re.compile(_translate(line)), exclusion, prefix))

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        return cls(path.read_text().splitlines())

    def excluded(self, path: str) -> bool:
        """Whether a context-relative POSIX path is left out: the last pattern that matches it or one of
        its parent directories decides (moby's MatchesOrParentMatches)."""
        parts = path.split("/")
        parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # this line could not change the outcome
            if pattern.regex.match(path) or any(pattern.regex.match(parent) for parent in parents):
                matched = not pattern.exclusion
        return matched

    def may_readmit_below(self, directory: str) -> bool:
        """Whether some `!` line could admit a path under `directory` (if not, an excluded directory
        need not be walked)."""
        inside = directory + "/"
        return any(
            p.exclusion and (p.literal_prefix.startswith(inside) or inside.startswith(p.literal_prefix))
            for p in self.patterns
        )


def context_files(root: Path, ignore: DockerIgnore) -> list[str]:
    """The files (and symlinks) of the build context at `root` that `ignore` admits, sorted."""
    admitted: list[str] = []
    for current, dirs, files in os.walk(root):
        here = Path(current).relative_to(root).as_posix()
        prefix = "" if here == "." else here + "/"
        keep: list[str] = []
        for name in sorted(dirs):
            rel = prefix + name
            if (Path(current) / name).is_symlink():
                files.append(name)  # COPY copies the link itself
            elif not ignore.excluded(rel) or ignore.may_readmit_below(rel):
                keep.append(name)
        dirs[:] = keep
        admitted += [prefix + name for name in files if not ignore.excluded(prefix + name)]
    return sorted(admitted)


def _file_digest(path: Path) -> str:
    if path.is_symlink():
        return "link:" + str(path.readlink())
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def input_hash(root: Path, base: str) -> str:
    """16 hex digits over what decides the image: every context file the ignore file admits (path,
    permission bits, content), the Dockerfile and the base image's reference."""
    digest = hashlib.sha256(f"marketpulse image recipe {IMAGE_RECIPE}\nbase {base}\n".encode())
    ignore = DockerIgnore.read(root / IGNOREFILE)
    for rel in [DOCKERFILE, *context_files(root, ignore)]:
        path = root / rel
        mode = path.lstat().st_mode & 0o777
        digest.update(f"{rel}\0{mode:o}\0{_file_digest(path)}\n".encode())
    return digest.hexdigest()[:16]


def snapshot_context(root: Path, dest: Path) -> Path:
    """Mirror the build context (the admitted files, the Dockerfile and its ignore file) into `dest`.

    The build reads the snapshot, not the checkout, so that the input hash describes exactly what was
    built and both passes of `build` see the same files while someone goes on editing. Unchanged files
    keep their timestamps, so the layer cache holds across snapshots.
    """
    ignore = DockerIgnore.read(root / IGNOREFILE)
    wanted = {DOCKERFILE, IGNOREFILE, *context_files(root, ignore)}
    for rel in sorted(wanted):
        source, target = root / rel, dest / rel
        stat = source.lstat()
        if target.is_symlink() or target.exists():
            have = target.lstat()
            same = (have.st_size, have.st_mtime_ns, have.st_mode) == (
                stat.st_size,
                stat.st_mtime_ns,
                stat.st_mode,
            )
            if same and not source.is_symlink():
                continue
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    for current, _dirs, files in os.walk(dest, topdown=False):
        for name in files:
            if (Path(current) / name).relative_to(dest).as_posix() not in wanted:
                (Path(current) / name).unlink()
        if Path(current) != dest and not any(Path(current).iterdir()):
            Path(current).rmdir()
    return dest


def base_hash(suite: str = SUITE, packages: Sequence[str] = BASE_PACKAGES) -> str:
    text = f"marketpulse base recipe {BASE_RECIPE}\nsuite {suite}\npackages {' '.join(sorted(packages))}\n"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- where Debian packages come from --------------------------------------------------------------


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    stanza: dict[str, str] = {}
    key = ""
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, ""
        elif line[0] in " \t" and key:
            stanza[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            stanza[key] = value.strip()


def debian_mirror(suite: str = SUITE, apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror URL apt already uses for `suite`, from sources.list.d/*.sources (deb822) or the
    one-line sources.list format."""
    explicit = os.environ.get("MARKETPULSE_DEBIAN_MIRROR")
    if explicit:
        return explicit
    candidates: list[tuple[str, list[str], list[str]]] = []  # (types, uris, suites)
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in _deb822_stanzas(path.read_text()):
            if stanza.get("enabled", "yes").lower() == "no":
                continue
            candidates.append(
                (stanza.get("types", ""), stanza.get("uris", "").split(), stanza.get("suites", "").split())
            )
    lists = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.is_file():
            continue
        for raw in path.read_text().splitlines():
            line = re.sub(r"\[[^\]]*\]", " ", raw.split("#", 1)[0]).split()
            if len(line) >= 3:
                candidates.append((line[0], [line[1]], [line[2]]))
    for types, uris, suites in candidates:
        if "deb" in types.split() and suite in suites and uris:
            return uris[0]
    where = f"{apt_dir}/sources.list.d/*.sources or {apt_dir}/sources.list"
    raise ComponentError(
        "find the Debian mirror",
        f"no `deb` entry for suite {suite!r} in {where}; set MARKETPULSE_DEBIAN_MIRROR to a mirror's URL",
    )


# --- prerequisites and small buildah helpers ------------------------------------------------------


def check_prerequisites(*, debootstrap: bool) -> None:
    """Fail with one line naming what is missing and how to get it."""
    step = "build the MarketPulse image"
    if os.geteuid() != 0:
        raise ComponentError(step, "buildah and debootstrap need root here; run it as root (sudo make image)")
    packages = {
        "buildah": "buildah",
        "chroot": "coreutils",
        **({"debootstrap": "debootstrap"} if debootstrap else {}),
    }
    for tool, package in packages.items():
        if shutil.which(tool) is None:
            raise ComponentError(
                step, f"`{tool}` is not on PATH; install it with `apt-get install {package}`"
            )
    filesystems = Path("/proc/filesystems")
    if filesystems.is_file() and "overlay" not in filesystems.read_text().split():
        raise ComponentError(
            step,
            "the kernel offers no overlay filesystem (not in /proc/filesystems); load it: modprobe overlay",
        )


def buildah(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["buildah", *args], capture_output=True, text=True, check=False)


def image_exists(reference: str) -> bool:
    return buildah("inspect", "--type", "image", reference).returncode == 0


def image_size(reference: str) -> str:
    """The size `buildah images` reports, e.g. '1.1 GB'."""
    return buildah("images", "--format", "{{.Size}}", reference).stdout.strip().splitlines()[0]


def logs_dir() -> Path:
    return cache_dir() / "logs"


# --- the base: Debian minbase plus Debian's Python 3.11 ------------------------------------------


def _mounts_below(path: Path) -> list[str]:
    inside = str(path.resolve()) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return sorted((m for m in mounts if m.startswith(inside)), key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """Remove a root filesystem tree, first unmounting what an interrupted debootstrap left mounted in it
    (removing a tree with /proc still mounted inside would reach into the host)."""
    if not path.exists():
        return
    for mount in _mounts_below(path):
        subprocess.run(["umount", "--lazy", mount], check=False)
    if _mounts_below(path):
        raise ComponentError(
            "clean up the base root filesystem", f"cannot unmount what is mounted below {path}"
        )
    shutil.rmtree(path)


def _host_ca_bundle() -> Path:
    """The CA bundle this machine's own tools trust (it may hold a proxy's CA that no image has)."""
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        ssl.get_default_verify_paths().cafile,
        ssl.get_default_verify_paths().openssl_cafile,
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise ComponentError(
        "find this machine's CA bundle", "no CA bundle found; install ca-certificates or set SSL_CERT_FILE"
    )


def _install_packages(rootfs: Path, mirror: str, log: Path) -> None:
    resolv = rootfs / "etc" / "resolv.conf"
    host_ca = rootfs / "tmp" / "marketpulse-host-ca.crt"
    env = {"PATH": SYSTEM_PATH, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    apt = ["chroot", str(rootfs), "apt-get", "-q", "-y"]
    if mirror.startswith("https:"):
        # The minbase root has no CA bundle yet, and the mirror may sit behind this machine's proxy.
        apt += ["-o", "Acquire::https::CAInfo=/tmp/marketpulse-host-ca.crt"]
    try:
        resolv.unlink(missing_ok=True)
        shutil.copyfile("/etc/resolv.conf", resolv)  # name resolution for apt; removed below
        shutil.copyfile(_host_ca_bundle(), host_ca)
        run_step("update the package lists of the base", [*apt, "update"], log_path=log, env=env)
        run_step(
            f"install {', '.join(BASE_PACKAGES)} into the base",
            [*apt, "install", "--no-install-recommends", *BASE_PACKAGES],
            log_path=log,
            env=env,
        )
        run_step("clean apt's caches in the base", [*apt, "clean"], log_path=log, env=env)
    finally:
        resolv.unlink(missing_ok=True)
        host_ca.unlink(missing_ok=True)
    for leftover in (rootfs / "var" / "lib" / "apt" / "lists", rootfs / "dev"):
        for entry in leftover.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def commit_from_scratch(
    reference: str, name: str, fill: Callable[[Path], None], config: Sequence[str], log: Path
) -> None:
    """`buildah from scratch`, `fill` its mounted root, `buildah config` with `config`, commit as
    `reference`; the working container is removed whatever happens."""
    step = f"commit {reference}"
    created = buildah("from", "--name", name, "scratch")
    if created.returncode != 0:
        raise ComponentError(step, f"`buildah from scratch` failed: {created.stderr.strip()}")
    container = created.stdout.strip()
    try:
        mounted = buildah("mount", container)
        if mounted.returncode != 0:
            raise ComponentError(step, f"`buildah mount` failed: {mounted.stderr.strip()}")
        fill(Path(mounted.stdout.strip()))
        buildah("umount", container)
        run_step(f"configure {reference}", ["buildah", "config", *config, container], log_path=log)
        run_step(step, ["buildah", "commit", "--rm", "--quiet", container, reference], log_path=log)
    except BaseException:
        buildah("rm", container)
        raise


def _commit_rootfs(rootfs: Path, reference: str, log: Path) -> None:
    def fill(root: Path) -> None:
        run_step("copy the base root filesystem", ["cp", "-a", f"{rootfs}/.", str(root)], log_path=log)

    config = [
        "--env", f"PATH={SYSTEM_PATH}",
        "--env", "LANG=C.UTF-8",
        "--cmd", '["python3"]',
        "--label", f"org.opencontainers.image.description={BASE_DESCRIPTION}",
    ]  # fmt: skip
    commit_from_scratch(reference, f"marketpulse-base-{os.getpid()}", fill, config, log)


def ensure_base(*, live: bool = True) -> str:
    """The local Python base image (built once per machine, about 2 minutes); returns its reference."""
    reference = f"{BASE_NAME}:{base_hash()}"
    if image_exists(reference):
        return reference
    with file_lock(cache_dir() / "locks" / "image-base.lock"):
        if image_exists(reference):
            return reference
        check_prerequisites(debootstrap=True)
        mirror = debian_mirror()
        console.print(f"[bold]building the Python base image[/] {reference} from {mirror} (once per machine)")
        work = cache_dir() / "build" / f"image-base-{base_hash()}"
        rootfs = work / "rootfs"
        bootstrapped = work / "debootstrap.done"
        log = logs_dir() / "image-base.log"
        if not bootstrapped.is_file():
            _remove_tree(rootfs)
            rootfs.mkdir(parents=True)
            run_step(
                f"debootstrap Debian {SUITE} (minbase)",
                ["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror],
                log_path=log,
                env={"PATH": SYSTEM_PATH},
                hint="about 1 min",
                live=live,
            )
            bootstrapped.touch()
        _install_packages(rootfs, mirror, log)
        _commit_rootfs(rootfs, reference, log)
        _remove_tree(work)
    return reference


# --- the image ------------------------------------------------------------------------------------


def repo_root(start: Path | None = None) -> Path:
    """The checkout that holds the Dockerfile: the nearest parent of `start` (default: the working
    directory), else the one this module was loaded from."""
    here = (start or Path.cwd()).resolve()
    for candidate in [here, *here.parents, Path(__file__).resolve().parents[4]]:
        if (candidate / DOCKERFILE).is_file() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise ComponentError(
        "find the repository", f"no {DOCKERFILE} in {here} or its parents; run from a checkout"
    )


def _pip_config(path: Path) -> Path:
    """pip's settings for the build: trust the mounted CA bundle; pass on this machine's index, if any."""
    lines = ["[global]", f"cert = {BUILD_CA_PATH}", "timeout = 180"]
    for env, key in (("PIP_INDEX_URL", "index-url"), ("PIP_EXTRA_INDEX_URL", "extra-index-url")):
        if os.environ.get(env):
            lines.append(f"{key} = {os.environ[env]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def build_argv(
    root: Path,
    base: str,
    stage: str | None,
    *,
    tag: str | None = None,
    mounts: Sequence[tuple[Path, str]] = (),
) -> list[str]:
    """`buildah bud` of the Dockerfile's `stage` (None: its default, the last one) on `base`, with
    read-only bind mounts (host path, path in the build) for its RUN steps."""
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    return [
        "buildah", "bud",
        "--isolation", "chroot",
        "--layers",
        "--pull=never",
        "--build-arg", f"PYTHON_IMAGE={base}",
        "--build-arg", f"VERSION={version}",
        *(["--target", stage] if stage else []),
        *(arg for host, inside in mounts for arg in ("--volume", f"{host}:{inside}:ro")),
        "--file", str(root / DOCKERFILE),
        "--ignorefile", str(root / IGNOREFILE),
        *(["--tag", tag] if tag else []),
        str(root),
    ]  # fmt: skip


def build(root: Path, base: str, target: Target, reference: str, *, live: bool = True) -> None:
    """Two passes over one layer cache. The first builds the stages that run pip, with this machine's CA
    bundle and a pip config mounted; the second builds the target, whose own RUN steps then run without
    those mounts, and finds the first pass's layers in the cache. (buildah leaves an empty file in the
    layer where it mounts one that the image lacks, here /etc/pip.conf: it stays in a build stage.)"""
    log = logs_dir() / f"image-{target.value}.log"
    pip_conf = _pip_config(cache_dir() / "build" / "image-mounts" / "pip.conf")
    mounts = [(_host_ca_bundle(), BUILD_CA_PATH), (pip_conf, BUILD_PIP_CONF_PATH)]
    for stage in PIP_STAGES[target]:
        run_step(
            f"build stage {stage} (pip installs {'the dependencies' if 'deps' in stage else 'the project'})",
            build_argv(root, base, stage, mounts=mounts),
            log_path=log,
            hint="minutes the first time, seconds once cached" if "deps" in stage else "",
            live=live,
        )
    run_step(
        f"build {reference}",
        build_argv(root, base, DOCKERFILE_TARGETS[target], tag=reference),
        log_path=log,
        live=live,
    )


def archive_path(name: str, tag: str) -> Path:
    return cache_dir() / "images" / f"{name.rsplit('/', 1)[-1]}-{tag}.tar"


def export_archive(reference: str, name: str, tag: str, log: Path) -> Path:
    path = archive_path(name, tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tar.partial")
    partial.unlink(missing_ok=True)
    run_step(
        f"export {reference} as a docker-archive",
        ["buildah", "push", "--quiet", reference, f"docker-archive:{partial}:{reference}"],
        log_path=log,
    )
    partial.replace(path)
    # One archive per image name: older ones are only disk use (the images stay in buildah's storage).
    stale = re.compile(rf"{re.escape(path.name.removesuffix(f'-{tag}.tar'))}-[0-9a-f]{{16}}\.tar")
    for other in path.parent.iterdir():
        if other != path and stale.fullmatch(other.name):
            with contextlib.suppress(OSError):
                other.unlink()
    return path


def ensure_image(
    target: Target = Target.workloads, *, root: Path | None = None, live: bool = True
) -> BuiltImage:
    """Build (or find already built) the image of `target` and its docker-archive; cached by input hash.

    For a node: `built = ensure_image()` (every workload) or `ensure_image(Target.operator)`, then
    `ctr -n k8s.io images import built.archive` and use `built.reference` as the pod's image. Needs root,
    buildah and, the first time on a machine, debootstrap; raises ComponentError naming what is wrong.
    """
    check_prerequisites(debootstrap=False)
    with file_lock(cache_dir() / "locks" / "image.lock"):
        base = ensure_base(live=live)
        context = snapshot_context(root or repo_root(), cache_dir() / "build" / "image-context")
        digest = input_hash(context, base)
        name = IMAGE_NAMES[target]
        reference = f"{name}:{digest}"
        if image_exists(reference):
            console.print(f"[green]✓[/] {reference} is up to date")
        else:
            build(context, base, target, reference, live=live)
        archive = archive_path(name, digest)
        if not archive.is_file():
            export_archive(reference, name, digest, logs_dir() / f"image-{target.value}.log")
    return BuiltImage(name=name, tag=digest, archive=archive, input_hash=digest)
