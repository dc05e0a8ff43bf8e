"""Build Go binaries from the Go module proxy in a throw-away wrapper module, or in a copy of the module.

A wrapper module (rather than `go install pkg@version`) lets us add `replace` lines: Kubernetes
requires its staging modules at v0.0.0 and replaces them with local paths that do not exist in the
published module (kubernetes/kubernetes#79384), so we point each at its real v0.x release.

Some modules only build with their own go.mod: its `replace` lines (forks, e.g. Traefik's) and
`exclude` lines are ignored when the module is a dependency. Those are built inside a copy of the
module the proxy serves, checked against its own go.sum; nested modules it replaces with local paths
(left out of the published module) are pointed at their release of the same version.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.paths import cache_dir
from marketpulse_dev.localenv.process import console, file_lock, run_step
from marketpulse_dev.localenv.versions import GO_MIN_VERSION


@dataclass(frozen=True)
class GoBuild:
    """What to build: modules to require (and replace), main packages and their binary names."""

    name: str
    requires: Mapping[str, str]
    packages: Mapping[str, str]  # main package -> binary name
    replaces: Mapping[str, str] = field(default_factory=dict)
    ldflags: str = ""
    tags: tuple[str, ...] = ()
    hint: str = ""
    # Build inside this module (one of `requires`) with its own go.mod, not in a wrapper module.
    own_module: str = ""
    # Nested modules the own module replaces with a local directory: use their release instead.
    nested: tuple[str, ...] = ()
    # Static binaries, for images with no C library (most builds here run on the host and keep cgo).
    static: bool = False

    @property
    def bin_dir(self) -> Path:
        return cache_dir() / "bin" / self.name

    def binary(self, name: str) -> Path:
        return self.bin_dir / name

    def is_built(self) -> bool:
        return all(self.binary(b).is_file() for b in self.packages.values())


def go_version() -> tuple[int, int]:
    step = "check Go toolchain"
    if shutil.which("go") is None:
        raise ComponentError(
            step, f"`go` is not on PATH; install Go {'.'.join(map(str, GO_MIN_VERSION))} or newer"
        )
    out = subprocess.run(
        ["go", "env", "GOVERSION"], capture_output=True, text=True, check=False
    ).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)", out)
    if not match:
        raise ComponentError(step, f"cannot read the Go version from `go env GOVERSION` (got {out!r})")
    found = (int(match[1]), int(match[2]))
    if found < GO_MIN_VERSION:
        wanted = ".".join(map(str, GO_MIN_VERSION))
        raise ComponentError(
            step, f"Go {found[0]}.{found[1]} is too old; these modules need Go {wanted} or newer"
        )
    return found


def render_go_mod(build: GoBuild) -> str:
    major, minor = GO_MIN_VERSION
    lines = [f"module marketpulse.local/{build.name}", "", f"go {major}.{minor}.0", ""]
    lines += [f"require {module} {version}" for module, version in sorted(build.requires.items())]
    if build.replaces:
        lines.append("")
        lines += [
            f"replace {module} => {module} {version}" for module, version in sorted(build.replaces.items())
        ]
    return "\n".join(lines) + "\n"


def render_tools_go(build: GoBuild) -> str:
    imports = "\n".join(f'\t_ "{package}"' for package in sorted(build.packages))
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def _default_binary_name(package: str) -> str:
    """The name `go build -o <dir>/` gives a main package: its last element, minus a /vN suffix."""
    parts = package.rstrip("/").split("/")
    if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]):
        parts.pop()
    return parts[-1]


def ensure_built(build: GoBuild, *, live: bool = True) -> Path:
    """Build once per machine; later calls return the cached binaries at once.

    `live=False` prints progress lines instead of a spinner, for builds run side by side in threads.
    """
    if build.is_built():
        return build.bin_dir
    with file_lock(cache_dir() / "locks" / f"{build.name}.lock"):
        if build.is_built():
            return build.bin_dir
        go_version()
        root = cache_dir() / "build" / build.name
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        work = root
        log = cache_dir() / "logs" / f"build-{build.name}.log"
        env = {"GOFLAGS": "-mod=mod", **({"CGO_ENABLED": "0"} if build.static else {})}
        if build.own_module:  # its go.work, if any, names directories the published module leaves out
            env["GOWORK"] = "off"
        console.print(f"[bold]obtaining {build.name}[/] {build.hint}".rstrip())
        if build.own_module:
            work = _copy_own_module(build, root, log, env, live)
        else:
            (work / "go.mod").write_text(render_go_mod(build))
            (work / "tools.go").write_text(render_tools_go(build))
            run_step(
                f"resolve Go modules for {build.name}",
                ["go", "mod", "tidy"],
                log_path=log,
                cwd=work,
                env=env,
                live=live,
            )
        staging = root / "out"
        staging.mkdir()
        # One `go build` for every binary: its packages compile once and in parallel, and
        # `-o <dir>/` names each binary after its package's last path element.
        argv = ["go", "build", "-trimpath", "-o", f"{staging}/"]
        if build.ldflags:
            argv += ["-ldflags", build.ldflags]
        if build.tags:
            argv += ["-tags", ",".join(build.tags)]
        binaries = ", ".join(sorted(build.packages.values()))
        run_step(
            f"build {binaries}",
            [*argv, *sorted(build.packages)],
            log_path=log,
            cwd=work,
            env=env,
            hint=build.hint,
            live=live,
        )
        for package, binary in build.packages.items():
            built = staging / _default_binary_name(package)
            if built.name != binary:
                built.rename(staging / binary)
        build.bin_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(build.bin_dir, ignore_errors=True)
        staging.rename(build.bin_dir)
        shutil.rmtree(root, ignore_errors=True)
    return build.bin_dir


def _copy_own_module(build: GoBuild, root: Path, log: Path, env: Mapping[str, str], live: bool) -> Path:
    """A writable copy of the module as the proxy serves it, its nested modules pinned to releases."""
    module, version = build.own_module, build.requires[build.own_module]
    listing = root / "download.json"
    run_step(
        f"download {module}@{version}",
        ["sh", "-c", f'go mod download -json "$0" > {listing}', f"{module}@{version}"],
        log_path=log,
        cwd=root,
        env=env,
        live=live,
    )
    source = Path(json.loads(listing.read_text())["Dir"])
    copy = root / "src"
    shutil.copytree(source, copy)
    for path in copy.rglob("*"):  # the module cache is read-only
        path.chmod(path.stat().st_mode | 0o200)
    (copy / "go.mod").chmod(0o644)
    for nested in build.nested:
        pinned = f"{module}/{nested}"
        run_step(
            f"pin {pinned} at {version}",
            ["go", "mod", "edit", f"-dropreplace={pinned}", f"-replace={pinned}={pinned}@{version}"],
            log_path=log,
            cwd=copy,
            env=env,
            live=live,
        )
    return copy


def module_source(module: str, version: str) -> Path:
    """The module as the Go module proxy serves it (read-only, in the module cache), downloaded once."""
    step = f"download {module}@{version}"
    done = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    if done.returncode != 0:
        raise ComponentError(step, (done.stdout + done.stderr).strip()[-2000:])
    return Path(json.loads(done.stdout)["Dir"])
