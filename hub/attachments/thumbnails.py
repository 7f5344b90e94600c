"""Thumbnails of uploaded images, drawn once at upload by Pillow in a worker thread.

The image's size is read from its header before anything is decoded: an image of more pixels
than the bound (a decompression bomb: a few kilobytes that decode to gigabytes) is refused
undecoded. JPEGs are decoded at a reduced scale (`draft`), so even a large photo costs little.
The thumbnail is a new image made from the pixels alone, turned upright by the EXIF
orientation first: none of the original's metadata (EXIF, GPS position, XMP, comments) is
copied into it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

from hub.errors import UnsupportedMediaType

# The thumbnail's longest side, in pixels (a phone's chat bubble at 2x is about this).
THUMBNAIL_SIDE = 480
# The largest image decoded for a thumbnail. JPEGs decode at an eighth of their size or less.
MAX_PIXELS = 50_000_000
MAX_JPEG_PIXELS = 150_000_000
_ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_EXIF_ORIENTATION = 0x0112


class ImageRefused(UnsupportedMediaType):
    """An image too large to decode safely, or one that does not decode at all."""


@dataclass(frozen=True, slots=True)
class Thumbnail:
    width: int  # of the original, as shown (upright)
    height: int
    data: bytes
    content_type: str


def make_thumbnail(source: IO[bytes], content_type: str) -> Thumbnail:
    """Blocking: call in a worker thread. ImageRefused for a bomb or an unreadable image."""
    try:
        with Image.open(source) as image:
            width, height = image.size
            limit = MAX_JPEG_PIXELS if image.format == "JPEG" else MAX_PIXELS
            if width * height > limit:
                raise ImageRefused(
                    f"the image is {width}x{height} pixels, more than the {limit:,} the hub"
                    " decodes",
                    details=[{"width": width, "height": height, "max_pixels": limit}],
                )
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            if orientation in _ROTATED:
                width, height = height, width
            image.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            return _encode(upright, width, height)
    except Image.DecompressionBombError as exc:
        raise ImageRefused(f"the image is too large to decode: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRefused(
            f"the file's contents say {content_type} but it does not decode as an image"
        ) from exc


def _encode(image: Image.Image, width: int, height: int) -> Thumbnail:
    """Pixels only: a fresh image, so no `info` (EXIF, ICC, XMP, comments) can travel along."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    mode = "RGBA" if has_alpha else "RGB"
    pixels = image.convert(mode)
    clean = Image.new(mode, pixels.size)
    clean.paste(pixels)
    out = io.BytesIO()
    if has_alpha:
        clean.save(out, "PNG", optimize=True)
        return Thumbnail(width, height, out.getvalue(), "image/png")
    clean.save(out, "JPEG", quality=82)
    return Thumbnail(width, height, out.getvalue(), "image/jpeg")
