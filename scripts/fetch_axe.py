"""Put a pinned copy of axe-core, the accessibility engine the site tests run in Chromium,
into the environment (<venv>/share/axe-core/axe.min.js).

axe-core 4.14.1 from the npm registry's tarball, checked against its SHA-256 before the one
file is taken out; written atomically; a second run with the file present does nothing.
`make install` runs this (a test dependency, like the packages of requirements.txt); it
needs the network once.

    python scripts/fetch_axe.py [--tarball FILE]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from fetch_mathjax import verify

VERSION = "4.14.1"
URL = f"https://registry.npmjs.org/axe-core/-/axe-core-{VERSION}.tgz"
SHA256 = "e6b0ce02b84d892e2e33e403485e7f3d6c29e2be6df65daf44d89ba564139745"
DEST = Path(sys.prefix) / "share" / "axe-core" / f"axe-{VERSION}.min.js"


def extract(data: bytes, dest: Path) -> None:
    """Write the tarball's package/axe.min.js to ``dest``, atomically."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        script = tar.extractfile("package/axe.min.js").read()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".axe-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(script)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tarball", type=Path, help="a downloaded tarball instead of the network")
    args = parser.parse_args(argv)
    if DEST.is_file() and not args.tarball:
        return 0
    if args.tarball:
        data = args.tarball.read_bytes()
    else:
        with urllib.request.urlopen(URL, timeout=60) as response:
            data = response.read()
    verify(data, SHA256)
    extract(data, DEST)
    print(f"axe-core {VERSION}: {DEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
