"""Put a pinned copy of MathJax into _vendor/mathjax/, so that the site typesets its formulas
offline (the book's Sphinx configuration serves it from the site's own _static folder).

MathJax 3.2.2, the version Sphinx's default CDN address resolves to, from the npm registry's
tarball, checked against its SHA-256 before anything is unpacked. Only the parts the site
loads are kept (about 8 MB): the tex-mml-chtml component, its input and CommonHTML output
(fonts included), the menu and the accessibility extensions with the speech-rule engine they
load on request. The folder is replaced atomically (unpacked beside it, then renamed), and a
VERSION file records what it holds, so a second run with the same pin does nothing.
`make install` runs this; it needs the network once.

    python scripts/fetch_mathjax.py [--dest DIR] [--tarball FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION = "3.2.2"
URL = f"https://registry.npmjs.org/mathjax/-/mathjax-{VERSION}.tgz"
SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
DEST = ROOT / "_vendor" / "mathjax"
# Paths inside the tarball's package/es5/ that the site needs.
KEEP = (
    "tex-mml-chtml.js",
    "input/",
    "output/chtml.js",
    "output/chtml/",
    "ui/",
    "a11y/",
    "sre/",
    "adaptors/",
)
PREFIX = "package/es5/"


def verify(data: bytes, sha256: str) -> None:
    """Refuse data whose SHA-256 is not ``sha256``."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValueError(f"tarball: SHA-256 {digest}, expected {sha256}; not unpacked")


def unpack(data: bytes, dest: Path, version: str = VERSION) -> int:
    """Unpack the kept files of a MathJax npm tarball into ``dest``, atomically.

    Returns the number of files written. ``dest`` is replaced only once everything is
    unpacked; on any error it is left as it was.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mathjax-", dir=dest.parent))
    try:
        count = 0
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                if not member.isfile() or not member.name.startswith(PREFIX):
                    continue
                rel = member.name[len(PREFIX) :]
                if not rel.startswith(KEEP) or ".." in Path(rel).parts:
                    continue
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
                count += 1
        if not (staging / "tex-mml-chtml.js").is_file():
            raise ValueError("MathJax tarball: no es5/tex-mml-chtml.js inside; not unpacked")
        (staging / "VERSION").write_text(version + "\n")
        old = dest.with_name(dest.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        if dest.exists():
            dest.rename(old)
        staging.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
        return count
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def is_current(dest: Path, version: str = VERSION) -> bool:
    marker = dest / "VERSION"
    return marker.is_file() and marker.read_text().strip() == version


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEST)
    parser.add_argument("--tarball", type=Path, help="a downloaded tarball instead of the network")
    args = parser.parse_args(argv)
    if is_current(args.dest) and not args.tarball:
        return 0
    if args.tarball:
        data = args.tarball.read_bytes()
    else:
        with urllib.request.urlopen(URL, timeout=60) as response:
            data = response.read()
    verify(data, SHA256)
    count = unpack(data, args.dest)
    print(f"MathJax {VERSION}: {count} files in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
