"""The image library: uploads checked by Pillow (the real format, not the file name), stripped
of metadata, scaled to 1200 px wide (2x a 600 px e-mail), stored in the database by the hash
of the result, so every machine serves the same `BASE_URL/media/<hash>.<ext>`."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import sqlalchemy as sa
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import Engine

from mailer.compose.blocks import Media
from mailer.models import MediaImage, utcnow
from mailer.settings import get_settings

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_WIDTH = 1200
MAX_PIXELS = 40_000_000  # a larger image is refused before it is decoded
# Pillow format -> (extension, MIME type, save options).
FORMATS: dict[str, tuple[str, str, dict[str, object]]] = {
    "PNG": ("png", "image/png", {"optimize": True}),
    "JPEG": ("jpg", "image/jpeg", {"quality": 85, "optimize": True, "progressive": True}),
    "GIF": ("gif", "image/gif", {}),
    "WEBP": ("webp", "image/webp", {"quality": 85}),
}
images = MediaImage.__table__  # type: ignore[attr-defined]


class ImageRejected(ValueError):
    """An upload that is not a usable image; the message is for staff."""


@dataclass(frozen=True)
class StoredImage:
    content_hash: str
    extension: str
    mime_type: str
    width: int
    height: int
    size: int
    alt: str
    original_name: str

    @property
    def filename(self) -> str:
        return f"{self.content_hash}.{self.extension}"

    def media(self) -> Media:
        base = get_settings().base_url.rstrip("/")
        return Media(f"{base}/media/{self.filename}", self.width, self.height)


def prepare(data: bytes) -> tuple[bytes, str, int, int]:
    """The image as it will be served: (bytes, Pillow format, width, height)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageRejected(
            f"Obrázek je příliš velký ({len(data) / 1024 / 1024:.1f} MB); "
            f"nejvýš {MAX_UPLOAD_BYTES // 1024 // 1024} MB."
        )
    if not data:
        raise ImageRejected("Soubor je prázdný.")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind = probe.format
            if kind not in FORMATS:
                raise ImageRejected(
                    "Tento druh obrázku nelze použít; nahrajte PNG, JPEG, GIF nebo WebP."
                )
            if probe.width * probe.height > MAX_PIXELS:
                raise ImageRejected("Obrázek má příliš mnoho pixelů; zmenšete ho prosím.")
            probe.verify()  # a damaged or disguised file fails here, before decoding
        opened = Image.open(io.BytesIO(data))
        opened.load()
    except ImageRejected:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(
            "Soubor není obrázek (PNG, JPEG, GIF ani WebP), i když tak může být pojmenovaný."
        ) from exc
    if getattr(opened, "is_animated", False):
        # Animated GIF/WebP frames are kept as they are: no resize, metadata still dropped.
        out = io.BytesIO()
        opened.save(out, format=kind, save_all=True)
        return out.getvalue(), kind, opened.width, opened.height
    # Turned as the camera meant, before the EXIF that says so is dropped.
    image: Image.Image = ImageOps.exif_transpose(opened)
    if image.width > MAX_WIDTH:
        height = max(1, round(image.height * MAX_WIDTH / image.width))
        image = image.resize((MAX_WIDTH, height), Image.Resampling.LANCZOS)
    if kind == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    # A fresh image carries pixels only: no EXIF, GPS, comments or colour-profile chunks.
    clean = Image.frombytes(image.mode, image.size, image.tobytes())
    if image.mode == "P":
        palette = image.getpalette()
        if palette is not None:
            clean.putpalette(palette)
        if "transparency" in image.info:
            clean.info["transparency"] = image.info["transparency"]
    out = io.BytesIO()
    _, _, options = FORMATS[kind]
    save_options = dict(options)
    if "transparency" in clean.info:
        save_options["transparency"] = clean.info["transparency"]
    clean.save(out, format=kind, **save_options)
    return out.getvalue(), kind, clean.width, clean.height


def store_image(
    engine: Engine, data: bytes, *, alt: str, original_name: str, uploaded_by: str
) -> StoredImage:
    """Check, clean and store an upload (the same image twice is stored once)."""
    alt = " ".join(alt.split())
    if not alt:
        raise ImageRejected(
            "Doplňte popis obrázku (alternativní text): čtou ho čtečky a programy, "
            "které obrázky nezobrazují."
        )
    prepared, kind, width, height = prepare(data)
    extension, mime, _ = FORMATS[kind]
    digest = hashlib.sha256(prepared).hexdigest()
    with engine.begin() as conn:
        exists = conn.execute(
            sa.select(images.c.content_hash).where(images.c.content_hash == digest)
        ).first()
        if exists is None:
            conn.execute(
                sa.insert(images).values(
                    content_hash=digest,
                    extension=extension,
                    mime_type=mime,
                    width=width,
                    height=height,
                    size=len(prepared),
                    data=prepared,
                    alt=alt[:300],
                    original_name=original_name[:300],
                    uploaded_by=uploaded_by[:320],
                    created_at=utcnow(),
                )
            )
    return StoredImage(digest, extension, mime, width, height, len(prepared), alt, original_name)


_COLUMNS = (
    images.c.content_hash,
    images.c.extension,
    images.c.mime_type,
    images.c.width,
    images.c.height,
    images.c.size,
    images.c.alt,
    images.c.original_name,
)


def library(engine: Engine) -> list[StoredImage]:
    """Every stored image, newest first (without the bytes)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*_COLUMNS).order_by(images.c.created_at.desc())).all()
    return [StoredImage(*row) for row in rows]


def media_map(engine: Engine) -> dict[str, Media]:
    """Image reference (hash.ext) -> what the image block needs."""
    return {image.filename: image.media() for image in library(engine)}


def image_bytes(engine: Engine, content_hash: str, extension: str) -> tuple[bytes, str] | None:
    """(bytes, MIME type) of a stored image, or None."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(images.c.data, images.c.mime_type).where(
                images.c.content_hash == content_hash, images.c.extension == extension
            )
        ).first()
    return (bytes(row.data), row.mime_type) if row else None
