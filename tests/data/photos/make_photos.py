"""Make the test photos from scikit-image's wheel: ``python make_photos.py WHEEL [OUTDIR]``.

Each photo is read from ``skimage/data/`` inside the wheel (a zip; scikit-image is not
installed or imported), scaled to a longest side of 320 pixels (Pillow's Lanczos filter) and
saved as a JPEG of quality 90 beside this script. Only photos whose licence allows
redistribution are taken (see README.md).
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

from PIL import Image

#: output name -> file in the wheel (CC0 or public domain, per scikit-image's docstrings)
PHOTOS = {
    "cat.jpg": "skimage/data/chelsea.png",
    "coffee.jpg": "skimage/data/coffee.png",
    "astronaut.jpg": "skimage/data/astronaut.png",
    "rocket.jpg": "skimage/data/rocket.jpg",
}
LONGEST = 320
QUALITY = 90


def main(wheel: Path, outdir: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        for name, member in PHOTOS.items():
            with Image.open(io.BytesIO(zf.read(member))) as im:
                rgb = im.convert("RGB")
            scale = LONGEST / max(rgb.size)
            size = (round(rgb.width * scale), round(rgb.height * scale))
            small = rgb.resize(size, Image.Resampling.LANCZOS)
            path = outdir / name
            small.save(path, "JPEG", quality=QUALITY)
            print(f"{path}: {size[0]}x{size[1]}, {path.stat().st_size} bytes")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python make_photos.py SCIKIT_IMAGE_WHEEL [OUTDIR]")
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) == 3 else Path(__file__).parent)
