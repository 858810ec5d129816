"""Write the configuration of the student edition: the book's _config.yml without solutions.

The student edition (`make book-student`) is the same book with every solution removed
(``student_edition``, see _ext/student_edition.py), without its notebooks' sources copied
into the site and without launch buttons (both would hand out the solutions). It is built
into another folder (``--path-output``) but takes the chapters' outputs from the book's
execution cache, so nothing is executed again; paths in it are absolute for that reason.

    python scripts/student_config.py [OUTPUT]   (default: _build/_config_student.yml)
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "_build" / "_config_student.yml"


def student_config(config: dict, root: Path = ROOT) -> dict:
    """The student edition's configuration, from the book's (which is left unchanged)."""
    config = copy.deepcopy(config)
    config["title"] = f"{config['title']} (student edition)"
    sphinx = config.setdefault("sphinx", {})
    sphinx.setdefault("config", {}).update(student_edition=True, html_copy_source=False)
    config["launch_buttons"] = {}
    # The book's cache (where benchmarks/chapters.py and `make book` put the executed
    # chapters), not one under the student edition's output folder.
    config.setdefault("execute", {})["cache"] = str(root / "_build" / ".jupyter_cache")
    extensions = sphinx.get("local_extensions") or {}
    sphinx["local_extensions"] = {name: str(root / path) for name, path in extensions.items()}
    return config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", nargs="?", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(yaml.safe_dump(student_config(config), sort_keys=False))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
