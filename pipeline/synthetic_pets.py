"""Synthetic Oxford-IIIT Pet archives, for machines that cannot download the real dataset.

Writes `images.tar.gz` and `annotations.tar.gz` laid out like the official archives (JPEG images,
PNG trimaps with 1 = pet, 2 = background, 3 = border, head-box XMLs, `trainval.txt` / `test.txt`).
`pipeline.dataset` then turns them into TFRecords with TFDS's own `oxford_iiit_pet` builder, so
everything downstream reads exactly the format TFDS writes for the real data.

What makes the pets learnable the way real ones are: fur has its own colours and fine texture that
differ from the smoother background, the pet's outline is irregular (body, head, ears, tail), and
the border class is a thin band around the outline, a few pixels wide, as in the real trimaps. Like
the real data, a few images are grayscale, one carries an alpha channel and one is a PNG stored
under a .jpg name. Nothing here exists in TFDS or TFX, hence hand-written.
"""
from __future__ import annotations

import io
import os
import tarfile
import tempfile
from typing import List, Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from model_code.labels import BREEDS

FUR_COLOURS = np.array([
    (92, 64, 40), (150, 100, 60), (200, 150, 90), (230, 200, 150), (40, 35, 30), (120, 120, 125),
    (210, 120, 50), (245, 240, 230), (170, 140, 110), (70, 50, 45),
], dtype=np.float32)
SCENE_COLOURS = np.array([
    (60, 110, 60), (90, 150, 200), (180, 180, 170), (140, 90, 150), (200, 200, 120),
    (100, 130, 140), (230, 220, 200), (60, 70, 110), (160, 60, 60), (120, 160, 90),
], dtype=np.float32)


def _smooth_noise(rng, h, w, cells, amplitude):
    coarse = rng.normal(0, amplitude, size=(cells, cells, 1)).astype(np.float32)
    img = Image.fromarray(coarse[..., 0]).resize((w, h), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32)[..., None]


def _background(rng, h, w):
    a, b = SCENE_COLOURS[rng.choice(len(SCENE_COLOURS), 2, replace=False)]
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = a * (1 - t) + b * t + rng.normal(0, 12, 3).astype(np.float32)
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(1, 4)):  # furniture-like flat shapes
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(w // 6, w // 2), y0 + rng.integers(h // 6, h // 2)
        colour = tuple(int(c) for c in SCENE_COLOURS[rng.integers(len(SCENE_COLOURS))])
        draw.rectangle([x0, y0, x1, y1], fill=colour)
    img = np.asarray(canvas, dtype=np.float32) + _smooth_noise(rng, h, w, 6, 10)
    return img + rng.normal(0, 3, size=(h, w, 1)).astype(np.float32)


def _pet_shape(rng, h, w, is_cat):
    """Binary silhouette (PIL 'L', 255 = pet) and the head box (xmin, ymin, xmax, ymax)."""
    shape = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(shape)
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.4, 0.65)
    bw, bh = w * rng.uniform(0.18, 0.32), h * rng.uniform(0.14, 0.26)
    draw.ellipse([cx - bw, cy - bh, cx + bw, cy + bh], fill=255)
    side = rng.choice([-1, 1])
    hx, hy = cx + side * bw * rng.uniform(0.5, 0.9), cy - bh * rng.uniform(0.6, 1.2)
    hr = min(w, h) * rng.uniform(0.09, 0.15)
    draw.ellipse([hx - hr, hy - hr, hx + hr, hy + hr], fill=255)
    for ear in (-1, 1):
        ex = hx + ear * hr * 0.6
        if is_cat:  # pointed ears
            draw.polygon([(ex - hr * 0.35, hy - hr * 0.6), (ex + hr * 0.35, hy - hr * 0.6),
                          (ex + ear * hr * 0.1, hy - hr * 1.5)], fill=255)
        else:  # floppy ears
            draw.ellipse([ex - hr * 0.3, hy - hr * 0.4, ex + hr * 0.3, hy + hr * 0.6], fill=255)
    for leg in range(4):
        lx = cx - bw * 0.8 + leg * bw * 0.53
        draw.rectangle([lx, cy, lx + bw * 0.18, cy + bh * rng.uniform(1.3, 1.8)], fill=255)
    tail_x = cx - side * bw
    draw.line([(tail_x, cy), (tail_x - side * bw * 0.6, cy - bh * rng.uniform(0.2, 1.2))],
              fill=255, width=max(2, int(hr * 0.25)))
    head_box = (max(0, hx - hr), max(0, hy - hr * 1.5), min(w - 1, hx + hr), min(h - 1, hy + hr))
    return shape, head_box


def _fur(rng, h, w):
    base = FUR_COLOURS[rng.integers(len(FUR_COLOURS))]
    second = FUR_COLOURS[rng.integers(len(FUR_COLOURS))]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 14)
    stripes = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    pattern = stripes if rng.random() < 0.5 else (_smooth_noise(rng, h, w, 12, 1)[..., 0] > 0.4)
    mix = (rng.uniform(0, 0.6) * pattern)[..., None]
    img = base * (1 - mix) + second * mix
    return img + rng.normal(0, 18, size=(h, w, 1)).astype(np.float32)  # fine fur grain


def make_pet(rng: np.random.Generator, is_cat: bool):
    """One synthetic photo: (RGB uint8 array, trimap uint8 array with 1/2/3, head box)."""
    h, w = int(rng.integers(150, 330)), int(rng.integers(150, 330))
    silhouette, head_box = _pet_shape(rng, h, w, is_cat)
    band = max(1, round(0.018 * min(h, w)))  # border ~3.5% of the short side, as in real trimaps
    grown = silhouette.filter(ImageFilter.MaxFilter(2 * band + 1))
    shrunk = silhouette.filter(ImageFilter.MinFilter(2 * band + 1))
    pet = np.asarray(silhouette) > 127
    soft = np.asarray(silhouette.filter(ImageFilter.GaussianBlur(1.0)), np.float32)[..., None] / 255
    img = _background(rng, h, w) * (1 - soft) + _fur(rng, h, w) * soft
    img = img * rng.uniform(0.7, 1.2) + rng.uniform(-20, 20)  # exposure varies between photos
    trimap = np.full((h, w), 2, np.uint8)
    trimap[pet] = 1
    trimap[(np.asarray(grown) > 127) & ~(np.asarray(shrunk) > 127)] = 3
    return np.clip(img, 0, 255).astype(np.uint8), trimap, head_box


def _xml(name, w, h, box):
    xmin, ymin, xmax, ymax = (int(v) for v in box)
    return (f"<annotation><filename>{name}.jpg</filename><size><width>{w}</width>"
            f"<height>{h}</height><depth>3</depth></size><object><name>pet</name><bndbox>"
            f"<xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax>"
            f"</bndbox></object></annotation>")


def _encode(rgb: np.ndarray, index: int) -> bytes:
    """JPEG bytes, except for the odd formats real Oxford-Pets files come in."""
    out = io.BytesIO()
    if index % 50 == 7:  # grayscale JPEG
        Image.fromarray(rgb).convert("L").save(out, "JPEG", quality=90)
    elif index % 97 == 11:  # PNG bytes under a .jpg name
        Image.fromarray(rgb).save(out, "PNG")
    else:
        Image.fromarray(rgb).save(out, "JPEG", quality=90)
    return out.getvalue()


CAT_BREED_IDS = tuple(i + 1 for i, breed in enumerate(BREEDS) if breed[0].isupper())  # 12
DOG_BREED_IDS = tuple(i + 1 for i, breed in enumerate(BREEDS) if not breed[0].isupper())  # 25


def write_archives(out_dir: str, num_examples: int, seed: int = 0,
                   cat_share: Optional[float] = None, name_offset: int = 0) -> List[str]:
    """Writes images.tar.gz and annotations.tar.gz for `num_examples` pets; returns their paths.

    About half the pets go to `trainval.txt` (with head-box XMLs), the rest to `test.txt`, as in
    the official release.

    By default every pet's breed is drawn uniformly from the 37 breeds, so about 12/37 (32 %) are
    cats. With `cat_share`, exactly round(cat_share * num_examples) pets are cats (at random
    positions) and each breed is drawn uniformly within its species; the default draws, and hence
    every image, mask and list line written for a seed, stay exactly as they were.

    `name_offset` shifts the number in each file name (`{breed}_{name_offset + i}`), so archives
    written for different spans never share a `file_name`. With an offset or a `cat_share`, the
    one RGBA image is not written: its quirk relies on the name `Abyssinian_5`, which TFDS knows
    as corrupt and re-encodes (that name would repeat in every span), and it forces a cat.
    """
    if num_examples < 2:
        raise ValueError("need at least 2 synthetic examples (one per official split)")
    if cat_share is not None and not 0 <= cat_share <= 1:
        raise ValueError(f"cat_share must lie in [0, 1], not {cat_share}")
    rng = np.random.default_rng(seed)
    cat_mask = None
    if cat_share is not None:
        cat_mask = np.zeros(num_examples, bool)
        cat_mask[rng.permutation(num_examples)[:round(cat_share * num_examples)]] = True
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        images_dir = os.path.join(tmp, "images")
        ann_dir = os.path.join(tmp, "annotations")
        for sub in (images_dir, os.path.join(ann_dir, "trimaps"), os.path.join(ann_dir, "xmls")):
            os.makedirs(sub)
        lists = {"trainval.txt": [], "test.txt": []}
        for index in range(num_examples):
            if cat_mask is None:
                class_id = int(rng.integers(1, len(BREEDS) + 1))
            else:
                ids = CAT_BREED_IDS if cat_mask[index] else DOG_BREED_IDS
                class_id = ids[int(rng.integers(len(ids)))]
            breed = BREEDS[class_id - 1]
            is_cat = breed[0].isupper()
            name = f"{breed}_{name_offset + index + 1}"
            rgb, trimap, head_box = make_pet(rng, is_cat)
            if index == 4 and name_offset == 0 and cat_mask is None:
                # an RGBA image under a name TFDS knows as corrupt; TFDS re-encodes it
                name = "Abyssinian_5"
                class_id, is_cat = 1, True
                rgba = Image.fromarray(rgb).convert("RGBA")
                buffer = io.BytesIO()
                rgba.save(buffer, "PNG")
                data = buffer.getvalue()
            else:
                data = _encode(rgb, index)
            with open(os.path.join(images_dir, name + ".jpg"), "wb") as f:
                f.write(data)
            Image.fromarray(trimap).save(os.path.join(ann_dir, "trimaps", name + ".png"))
            split = "trainval.txt" if index % 2 == 0 else "test.txt"
            if split == "trainval.txt":
                h, w = trimap.shape
                with open(os.path.join(ann_dir, "xmls", name + ".xml"), "w") as f:
                    f.write(_xml(name, w, h, head_box))
            species = 1 if is_cat else 2
            lists[split].append(f"{name} {class_id} {species} {class_id}")
        for list_name, lines in lists.items():
            with open(os.path.join(ann_dir, list_name), "w") as f:
                f.write("\n".join(lines) + "\n")
        paths = []
        for folder in ("images", "annotations"):
            path = os.path.join(out_dir, f"{folder}.tar.gz")
            with tarfile.open(path, "w:gz") as tar:
                tar.add(os.path.join(tmp, folder), arcname=folder)
            paths.append(path)
    return paths
