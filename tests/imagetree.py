"""Small image trees for the data-pipeline tests: ImageNet-style folders of real image files, and
the bad files prepare must skip."""
from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image


def random_image(rng, h, w):
    """Smooth random colours (so that JPEG keeps them), uint8 (h, w, 3)."""
    small = rng.integers(0, 256, (max(2, h // 4), max(2, w // 4), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


def write_tree(root, rng, classes=("n001", "n002", "n003"), per_class=5, sizes=((20, 30), (31, 17), (24, 24)),
               ext="png"):
    """root/<class>/<i>.<ext> random images of varied sizes; returns {relative path: pixels}."""
    written = {}
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(per_class):
            h, w = sizes[(i + len(written)) % len(sizes)]
            a = random_image(rng, h, w)
            rel = f"{c}/{i:03d}.{ext}"
            Image.fromarray(a).save(os.path.join(root, rel))
            written[rel] = a
    return written


def jpeg_bytes(a, **kw):
    b = io.BytesIO()
    Image.fromarray(a).save(b, format="JPEG", **kw)
    return b.getvalue()


def png_bytes(im):
    b = io.BytesIO()
    im.save(b, format="PNG")
    return b.getvalue()


def bad_files(rng):
    """{file name: (bytes, reason category)} for every kind of file prepare must skip."""
    good_jpeg = jpeg_bytes(random_image(rng, 40, 50))
    good_png = png_bytes(Image.fromarray(random_image(rng, 40, 50)))
    corrupt_png = bytearray(good_png)
    corrupt_png[120:180] = b"\x01" * 60  # inside the compressed data: a broken stream
    return {
        "truncated.jpg": (good_jpeg[:len(good_jpeg) // 2], "truncated"),
        "truncated.png": (good_png[:len(good_png) // 2], "truncated"),
        "corrupt.png": (bytes(corrupt_png), "corrupt"),
        "empty.jpg": (b"", "empty file"),
        "notes.txt": (b"these are not the pixels you are looking for\n", "not an image"),
        "random.jpg": (bytes(rng.integers(0, 256, 3000, dtype=np.uint8)), "not an image"),
    }
