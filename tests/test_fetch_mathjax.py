"""scripts/fetch_mathjax.py on small tarballs the tests make: the checksum guards the
unpacking, only the parts the site loads are kept, and the folder is replaced atomically."""

import hashlib
import io
import sys
import tarfile

import pytest

from hygiene import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import fetch_mathjax


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


GOOD = {
    "package/es5/tex-mml-chtml.js": b"// mathjax",
    "package/es5/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff": b"font",
    "package/es5/input/tex/extensions/ams.js": b"// ams",
    "package/es5/output/svg.js": b"// not loaded by the site",
    "package/README.md": b"readme",
    "package/es5/input/../../../escape.js": b"// a path that climbs out",
}


def test_a_tarball_that_does_not_match_the_checksum_is_refused():
    data = _tarball(GOOD)
    with pytest.raises(ValueError, match="SHA-256"):
        fetch_mathjax.verify(data, "0" * 64)
    fetch_mathjax.verify(data, hashlib.sha256(data).hexdigest())  # the right one passes


def test_only_the_parts_the_site_loads_are_unpacked(tmp_path):
    dest = tmp_path / "vendor" / "mathjax"
    count = fetch_mathjax.unpack(_tarball(GOOD), dest, version="9.9.9")
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == [
        "VERSION",
        "input/tex/extensions/ams.js",
        "output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
        "tex-mml-chtml.js",
    ]
    assert count == 3
    assert fetch_mathjax.is_current(dest, "9.9.9") and not fetch_mathjax.is_current(dest, "1")
    assert not (tmp_path / "escape.js").exists()


def test_a_failed_unpack_leaves_the_old_copy_in_place(tmp_path):
    dest = tmp_path / "mathjax"
    fetch_mathjax.unpack(_tarball(GOOD), dest, version="1.0")
    broken = _tarball({"package/es5/input/tex.js": b"// no tex-mml-chtml.js"})
    with pytest.raises(ValueError, match="tex-mml-chtml"):
        fetch_mathjax.unpack(broken, dest, version="2.0")
    assert fetch_mathjax.is_current(dest, "1.0")
    assert (dest / "tex-mml-chtml.js").read_bytes() == b"// mathjax"
    assert [p.name for p in tmp_path.iterdir()] == ["mathjax"]  # no staging folder left


def test_the_pin_is_what_the_site_configuration_serves():
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert config["mathjax_path"] == "mathjax/tex-mml-chtml.js"
    assert fetch_mathjax.DEST.parent.name in config["html_static_path"]
    assert fetch_mathjax.KEEP[0] == "tex-mml-chtml.js"
