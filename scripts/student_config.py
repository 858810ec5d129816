"""Write the configuration of the student edition: the book's _config.yml without solutions.

The student edition (`make book-student`) is the book without solutions, built from the
student notebooks (scripts/student_edition.py writes them, with empty stubs for the
implement-it exercises) and with every remaining solution node removed
(``student_edition``, see _ext/student_edition.py). It has no launch buttons (they would
open the book's notebooks, solutions included); each page's download is its student
notebook. It executes nothing: the student notebooks carry the outputs of the book's
execution cache.

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
    """The student edition's configuration, from the book's (which is left unchanged).

    Its sources are the student notebooks that scripts/student_edition.py writes, with the
    book's outputs already in them: the build executes nothing, and each page's download is
    its student notebook. Paths to the repository's files are made absolute, because the
    sources live in another folder.
    """
    config = copy.deepcopy(config)
    config["title"] = f"{config['title']} (student edition)"
    sphinx = config.setdefault("sphinx", {})
    settings = sphinx.setdefault("config", {})
    settings.update(student_edition=True, html_copy_source=True)
    config["launch_buttons"] = {}
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    # The book's cache (where benchmarks/chapters.py and `make book` put the executed
    # chapters), from which the student notebooks take their outputs.
    config["execute"]["cache"] = str(root / "_build" / ".jupyter_cache")
    extensions = sphinx.get("local_extensions") or {}
    sphinx["local_extensions"] = {name: str(root / path) for name, path in extensions.items()}
    config["bibtex_bibfiles"] = [str(root / p) for p in config.get("bibtex_bibfiles", [])]
    for key in ("html_static_path", "latex_additional_files"):
        if key in settings:
            settings[key] = [str(root / p) for p in settings[key]]
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
