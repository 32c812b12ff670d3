"""What a photo says about itself: capture time, GPS position and camera, from its EXIF header.

Read from the bytes already in hand (no second read of the file) and from the header only:
``Image.open`` parses the markers up to the first scan and ``getexif`` the APP1 segment, so no
pixel is decoded (about 0.1 ms a 12 MP JPEG, docs/batch-inference.md). Cameras write EXIF badly
often enough that nothing here may fail a photo: a field that is absent, malformed or out of
range is None, and any exception while reading leaves every field it touched None. The row is
still scored; only the "where" is unknown.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import ExifTags, Image

from corrosion.imaging import images  # noqa: F401  (sets Image.MAX_IMAGE_PIXELS = None: a header read is no bomb)
from corrosion.inference import results

MAKE, MODEL = 0x010F, 0x0110
DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL, SUBSEC_TIME_ORIGINAL = 0x9003, 0x9011, 0x9291
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON, GPS_ALT_REF, GPS_ALT = 1, 2, 3, 4, 5, 6
MAX_CAMERA_CHARS = 100
MAX_ALTITUDE_M = 100_000.0  # |altitude| above this is garbage, not a survey (the stratosphere ends at 50 km)
_EXIF_TIME = re.compile(r"(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class PhotoFacts:
    """The EXIF columns of a result row; each None where the photo does not say it (or says nonsense)."""

    capture_time: str | None = None  # results.format_timestamp text (UTC)
    gps_latitude: float | None = None  # degrees, north positive
    gps_longitude: float | None = None  # degrees, east positive
    gps_altitude: float | None = None  # metres, below sea level negative
    camera_model: str | None = None  # "Make Model"

    @property
    def location(self) -> str | None:
        """The position as WKT ``POINT(lon lat)``, what BigQuery's GEOGRAPHY takes (longitude first)."""
        return point_wkt(self.gps_latitude, self.gps_longitude)


NOTHING = PhotoFacts()


def point_wkt(latitude: float | None, longitude: float | None) -> str | None:
    if latitude is None or longitude is None:
        return None
    return f"POINT({longitude!r} {latitude!r})"


def read_exif(data: bytes) -> PhotoFacts:
    """The photo's EXIF facts from its bytes; never raises (garbage gives None fields)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF; a None field says it
            with Image.open(io.BytesIO(data)) as img:
                exif = img.getexif()
                main = dict(exif)
                sub = _ifd(exif, ExifTags.IFD.Exif)
                gps = _ifd(exif, ExifTags.IFD.GPSInfo)
    except Exception:  # not an image, a broken header: the decode step makes its error row, not us
        return NOTHING
    latitude = _guard(_coordinate, gps.get(GPS_LAT), gps.get(GPS_LAT_REF), "NS", 90.0)
    longitude = _guard(_coordinate, gps.get(GPS_LON), gps.get(GPS_LON_REF), "EW", 180.0)
    return PhotoFacts(
        capture_time=_guard(
            capture_time, sub.get(DATETIME_ORIGINAL), sub.get(OFFSET_TIME_ORIGINAL), sub.get(SUBSEC_TIME_ORIGINAL)
        ),
        gps_latitude=latitude,
        gps_longitude=longitude,
        gps_altitude=_guard(_altitude, gps.get(GPS_ALT), gps.get(GPS_ALT_REF)),
        camera_model=_guard(camera_model, main.get(MAKE), main.get(MODEL)),
    )


def _ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:  # a sub-IFD offset pointing anywhere
        return {}


def _guard(fn, *args):
    """``fn(*args)``, or None when it raises: one bad field never costs the others."""
    try:
        return fn(*args)
    except Exception:
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = _CONTROL.sub(" ", value.replace("\x00", " ")).strip()
    return cleaned or None


def capture_time(original: Any, offset: Any = None, subsec: Any = None) -> str | None:
    """DateTimeOriginal as a UTC timestamp. EXIF stores local time without a zone: with
    OffsetTimeOriginal (``+02:00``, EXIF 2.31) it is converted to UTC; without one the clock is
    taken to be UTC (drone and survey cameras are mostly set so, and no better guess exists). An
    offset that is present but unreadable makes the time None rather than hours wrong."""
    text = _text(original)
    match = _EXIF_TIME.fullmatch(text or "")
    if not match:
        return None
    year, month, day, hour, minute, second = map(int, match.groups())
    micro = 0
    sub = _text(subsec)
    if sub and sub.isdigit():
        micro = int(sub[:6].ljust(6, "0"))
    zone = dt.UTC
    offset_text = _text(offset)
    if offset_text is not None:
        off = _OFFSET.fullmatch(offset_text)
        if not off or int(off[2]) > 14 or int(off[3]) > 59:
            return None
        delta = dt.timedelta(hours=int(off[2]), minutes=int(off[3]))
        zone = dt.timezone(delta if off[1] == "+" else -delta)
    when = dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
    if not 1900 <= when.year <= 2999:
        return None
    return results.format_timestamp(when)


def _number(value: Any) -> float:
    out = float(value)  # IFDRational with a zero denominator is nan
    if not math.isfinite(out):
        raise ValueError(f"{value!r} is not finite")
    return out


def _coordinate(value: Any, ref: Any, refs: str, limit: float) -> float | None:
    """Degrees from EXIF's (degrees, minutes, seconds) rationals, signed by the reference letter;
    None without a reference (the hemisphere is unknown), with negative parts or out of range."""
    if value is None:
        return None
    letter = (_text(ref) or "").upper()
    if len(letter) != 1 or letter not in refs:
        return None
    parts = [_number(v) for v in value] if isinstance(value, (tuple, list)) else [_number(value)]
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts) or any(p >= 60 for p in parts[1:]):
        return None
    degrees = sum(p / 60**i for i, p in enumerate(parts))
    if degrees > limit:
        return None
    return round(-degrees if letter == refs[1] else degrees, 7)


def _altitude(value: Any, ref: Any) -> float | None:
    """Metres; AltitudeRef 1 is below sea level (absent: above, as EXIF defaults)."""
    if value is None:
        return None
    metres = _number(value)
    if metres < 0 or metres > MAX_ALTITUDE_M:
        return None
    if isinstance(ref, bytes):
        ref = ref[0] if ref else 0
    below = int(ref or 0)
    if below not in (0, 1):
        return None
    return round(-metres if below else metres, 3)


def camera_model(make: Any, model: Any) -> str | None:
    """ "Make Model" (Model alone where it already names the make), control characters gone, capped."""
    make_text, model_text = _text(make), _text(model)
    if model_text and make_text and model_text.lower().startswith(make_text.lower()):
        make_text = None
    joined = " ".join(t for t in (make_text, model_text) if t)
    return joined[:MAX_CAMERA_CHARS].strip() or None
