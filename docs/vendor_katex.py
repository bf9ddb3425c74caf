"""Copy KaTeX (math rendering in the browser) from its npm package into docs/javascripts/katex/.

The site renders its equations with this local copy, so no page needs a CDN and the docs read the same offline.
Run from the repository root after changing ``VERSION`` (needs ``npm``; the copy is committed):

    python docs/vendor_katex.py

Only what the pages load is kept: ``katex.min.js``, ``katex.min.css`` (its ``@font-face`` rules reduced to the
WOFF2 fonts, which every browser that runs KaTeX reads), ``fonts/*.woff2`` and KaTeX's MIT licence.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

VERSION = "0.19.1"
TARGET = Path(__file__).resolve().parent / "javascripts" / "katex"
_NON_WOFF2 = re.compile(r',url\(fonts/[^)]+\.(?:woff|ttf)\) format\("(?:woff|truetype)"\)')


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"katex@{VERSION}", "--silent"], cwd=tmp, check=True)
        with tarfile.open(Path(tmp) / f"katex-{VERSION}.tgz") as archive:
            archive.extractall(tmp, filter="data")
        dist = Path(tmp) / "package" / "dist"
        shutil.rmtree(TARGET, ignore_errors=True)
        (TARGET / "fonts").mkdir(parents=True)
        shutil.copy(dist / "katex.min.js", TARGET)
        css = (dist / "katex.min.css").read_text(encoding="utf-8")
        (TARGET / "katex.min.css").write_text(_NON_WOFF2.sub("", css), encoding="utf-8")
        for font in sorted((dist / "fonts").glob("*.woff2")):
            shutil.copy(font, TARGET / "fonts")
        shutil.copy(Path(tmp) / "package" / "LICENSE", TARGET / "LICENSE")
    print(f"KaTeX {VERSION} -> {TARGET}")


if __name__ == "__main__":
    main()
