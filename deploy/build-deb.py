#!/usr/bin/env python3
"""Builds the posthorn .deb with dpkg-deb, from the same [package.metadata.deb]
table `cargo deb` reads (crates/posthorn/Cargo.toml): same files, conffiles and
maintainer scripts. For machines without cargo-deb (`cargo install cargo-deb`
took 5 min 22 s on the 2-core development machine).

    deploy/build-deb.py [--binary PATH] [--out FILE.deb] [--fast]

--binary defaults to the release build; --fast compresses with gzip -1
(tests). Needs dpkg-deb, strip and Python 3.11 (tomllib)."""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATE = ROOT / "crates" / "posthorn"


def target_dir():
    out = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return Path(json.loads(out)["target_directory"])


def depends(binary, extra):
    """`$auto` as cargo-deb computes it: the packages of the shared libraries
    the binary links, at the installed versions or later."""
    libs = []
    for line in subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split("=>")
        if len(parts) == 2 and parts[1].split() and parts[1].split()[0].startswith("/"):
            libs.append(parts[1].split()[0])
    pkgs = set()
    for lib in libs:
        r = subprocess.run(["dpkg", "-S", str(Path(lib).resolve())], capture_output=True, text=True)
        if r.returncode != 0:
            r = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
        if r.returncode == 0:
            pkgs.add(r.stdout.split(":")[0])
    deps = []
    for pkg in sorted(pkgs):
        version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                                 capture_output=True, text=True).stdout.strip()
        # The upstream part: the Debian revision would pin this very build.
        upstream = version.split(":")[-1].split("-")[0]
        deps.append(f"{pkg} (>= {upstream})" if upstream else pkg)
    return ", ".join(deps + extra)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--fast", action="store_true")
    args = ap.parse_args()

    cargo = tomllib.loads((CRATE / "Cargo.toml").read_text())
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]
    meta = cargo["package"]["metadata"]["deb"]
    version = workspace["version"]
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    binary = args.binary or target_dir() / "release" / "posthorn"
    if not binary.is_file():
        sys.exit(f"no binary at {binary}: cargo build --release --workspace first, or pass --binary")
    out = args.out or ROOT / f"{meta['name']}_{version}_{arch}.deb"

    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "root"
        for source, dest, mode in meta["assets"]:
            src = binary if source == "target/release/posthorn" else (CRATE / source).resolve()
            target = stage / dest
            if dest.endswith("/"):
                target = target / Path(source).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            target.chmod(int(mode, 8))
            if src == binary:
                # Debian ships stripped binaries (the debug build is ~600 MB).
                subprocess.run(["strip", "--strip-unneeded", str(target)], check=True)
        debian = stage / "DEBIAN"
        debian.mkdir()
        scripts = (CRATE / meta["maintainer-scripts"]).resolve()
        for name in ["preinst", "postinst", "prerm", "postrm"]:
            if (scripts / name).is_file():
                shutil.copyfile(scripts / name, debian / name)
                (debian / name).chmod(0o755)
        (debian / "conffiles").write_text("".join(f"{c}\n" for c in meta["conf-files"]))
        size_kb = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file()) // 1024
        extra = [d.strip() for d in meta["depends"].split(",") if d.strip() != "$auto"]
        description = "\n ".join(textwrap.wrap(" ".join(meta["extended-description"].split()), 78))
        (debian / "control").write_text(
            f"Package: {meta['name']}\n"
            f"Version: {version}-1\n"
            f"Architecture: {arch}\n"
            f"Maintainer: {meta['maintainer']}\n"
            f"Installed-Size: {size_kb}\n"
            f"Depends: {depends(binary, extra)}\n"
            f"Section: {meta['section']}\n"
            f"Priority: {meta['priority']}\n"
            f"Description: {cargo['package']['description']}\n"
            f" {description}\n"
        )
        compress = ["-Zgzip", "-z1"] if args.fast else []
        subprocess.run(["dpkg-deb", "--root-owner-group", *compress, "--build", str(stage), str(out)],
                       check=True, stdout=subprocess.DEVNULL)
    print(out)


if __name__ == "__main__":
    main()
