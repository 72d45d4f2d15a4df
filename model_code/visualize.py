"""The tutorial's figure (input, true mask, predicted mask, overlay) as a PNG, without matplotlib.

Class ids are coloured with one fixed palette everywhere: pet orange, background dark blue,
border yellow.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

PALETTE = np.array([(255, 140, 0), (30, 40, 110), (250, 230, 60)], np.uint8)
PANEL_HEIGHT = 256


def colorize(class_ids: np.ndarray) -> np.ndarray:
    """[H, W] class ids -> [H, W, 3] uint8 colours; ids outside the palette become black."""
    ids = np.asarray(class_ids)
    out = np.zeros(ids.shape + (3,), np.uint8)
    valid = (ids >= 0) & (ids < len(PALETTE))
    out[valid] = PALETTE[ids[valid]]
    return out


def _panel(array: np.ndarray, title: str, resample) -> Image.Image:
    image = Image.fromarray(array)
    width = max(1, round(image.width * PANEL_HEIGHT / max(1, image.height)))
    image = image.resize((width, PANEL_HEIGHT), resample)
    canvas = Image.new("RGB", (width, PANEL_HEIGHT + 22), "white")
    canvas.paste(image, (0, 22))
    ImageDraw.Draw(canvas).text((4, 5), title, fill="black")
    return canvas


def four_panels(image: np.ndarray, predicted: np.ndarray,
                true_mask: Optional[np.ndarray] = None) -> Image.Image:
    """Input | true mask (when given) | predicted mask | overlay, side by side.

    `image` is [H, W, 3] uint8; the masks are class-id maps of any size (shown stretched to the
    image's frame, which is what they cover).
    """
    h, w = image.shape[:2]

    def to_frame(mask):
        return np.asarray(Image.fromarray(colorize(mask)).resize((w, h), Image.NEAREST))

    predicted_rgb = to_frame(predicted)
    overlay = (0.5 * image.astype(np.float32) + 0.5 * predicted_rgb).astype(np.uint8)
    panels = [_panel(image, "Input image", Image.BILINEAR)]
    if true_mask is not None:
        panels.append(_panel(to_frame(true_mask), "True mask", Image.NEAREST))
    panels += [_panel(predicted_rgb, "Predicted mask", Image.NEAREST),
               _panel(overlay, "Overlay", Image.BILINEAR)]
    gap = 8
    figure = Image.new("RGB", (sum(p.width for p in panels) + gap * (len(panels) - 1),
                               PANEL_HEIGHT + 22), "white")
    x = 0
    for panel in panels:
        figure.paste(panel, (x, 0))
        x += panel.width + gap
    return figure
