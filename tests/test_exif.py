"""EXIF facts of a photo: exact values from generated JPEGs, and garbage (fuzzed) never an exception."""

from __future__ import annotations

import io
import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image

from corrosion.inference import exif, results


def jpeg(tags: dict | None = None, gps: dict | None = None, sub: dict | None = None, size=(64, 48)) -> bytes:
    """A generated JPEG carrying the given IFD0, GPS IFD and Exif IFD tags (Pillow writes them)."""
    e = Image.Exif()
    for k, v in (tags or {}).items():
        e[k] = v
    if gps:
        e[ExifTags.IFD.GPSInfo] = gps
    if sub:
        e[ExifTags.IFD.Exif] = sub
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 100, 110)).save(buf, "JPEG", exif=e.tobytes())
    return buf.getvalue()


DRONE_GPS = {1: "N", 2: (59.0, 26.0, 31.5), 3: "W", 4: (10.0, 45.0, 0.0), 5: b"\x01", 6: 12.5}


def test_exact_values_from_a_drone_photo():
    data = jpeg(
        {exif.MAKE: "DJI", exif.MODEL: "FC3411"},
        DRONE_GPS,
        {
            exif.DATETIME_ORIGINAL: "2026:06:11 14:03:22",
            exif.OFFSET_TIME_ORIGINAL: "+02:00",
            exif.SUBSEC_TIME_ORIGINAL: "25",
        },
    )
    facts = exif.read_exif(data)
    assert facts == exif.PhotoFacts(
        capture_time="2026-06-11 12:03:22.250000 UTC",
        gps_latitude=round(59 + 26 / 60 + 31.5 / 3600, 7),
        gps_longitude=-10.75,
        gps_altitude=-12.5,
        camera_model="DJI FC3411",
    )
    assert facts.location == f"POINT(-10.75 {round(59 + 26 / 60 + 31.5 / 3600, 7)!r})"
    assert results.parse_point(facts.location) == (-10.75, facts.gps_latitude)


def test_no_offset_is_read_as_utc_and_southern_eastern_signs_and_model_naming_its_make():
    data = jpeg(
        {exif.MAKE: "Canon\x00", exif.MODEL: " Canon EOS R5 \x00\x00"},
        {1: "S", 2: (33.0, 51.0, 36.0), 3: "E", 4: (151.0, 12.0, 36.0), 6: 40.25},
        {exif.DATETIME_ORIGINAL: "2025:12:31 23:59:59"},
    )
    assert exif.read_exif(data) == exif.PhotoFacts(
        "2025-12-31 23:59:59.000000 UTC", -33.86, 151.21, 40.25, "Canon EOS R5"
    )


@pytest.mark.parametrize(
    ("gps", "sub", "tags", "expected"),
    [
        ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)}, {}, {}, {"gps_longitude": 10.0}),  # lat > 90
        ({1: "N", 2: (10.0, 0.0, 0.0), 3: "E", 4: (181.0, 0.0, 0.0)}, {}, {}, {"gps_latitude": 10.0}),  # lon > 180
        ({2: (10.0, 0.0, 0.0), 3: "E", 4: (20.0, 0.0, 0.0)}, {}, {}, {"gps_longitude": 20.0}),  # no hemisphere
        ({1: "Q", 2: (10.0, 0.0, 0.0), 3: "E", 4: (20.0, 61.0, 0.0)}, {}, {}, {}),  # bad ref, minutes >= 60
        (
            {1: "N", 2: (10.0, 0.0, 0.0), 3: "E", 4: (20.0, 0.0, 0.0), 6: 1e9},
            {},
            {},
            {"gps_latitude": 10.0, "gps_longitude": 20.0},
        ),
        ({}, {exif.DATETIME_ORIGINAL: "0000:00:00 00:00:00"}, {}, {}),
        ({}, {exif.DATETIME_ORIGINAL: "    :  :     :  :  "}, {}, {}),
        ({}, {exif.DATETIME_ORIGINAL: "2026:02:30 10:00:00"}, {}, {}),  # no 30 February
        ({}, {exif.DATETIME_ORIGINAL: "2026:06:11 14:03:22", exif.OFFSET_TIME_ORIGINAL: "+25:00"}, {}, {}),
        ({}, {}, {exif.MAKE: "\x00\x00", exif.MODEL: "\x01\x02"}, {}),
        ({}, {}, {exif.MODEL: "X" * 500}, {"camera_model": "X" * exif.MAX_CAMERA_CHARS}),
    ],
)
def test_bad_fields_are_none_and_leave_the_good_ones(gps, sub, tags, expected):
    facts = exif.read_exif(jpeg(tags, gps, sub))
    assert facts == exif.PhotoFacts(**expected)


def test_zero_denominator_rational_is_none(tmp_path):
    from PIL.TiffImagePlugin import IFDRational

    gps = {1: "N", 2: (IFDRational(10, 0), 0.0, 0.0), 3: "E", 4: (20.0, 0.0, 0.0)}
    assert exif.read_exif(jpeg(gps=gps)) == exif.PhotoFacts(gps_longitude=20.0)


def test_photos_without_exif_and_non_images_give_nothing():
    plain = io.BytesIO()
    Image.new("RGB", (8, 8)).save(plain, "PNG")
    for data in (plain.getvalue(), b"", b"not an image", b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00MM\x00*garbage"):
        assert exif.read_exif(data) == exif.NOTHING


def _app1(payload: bytes) -> bytes:
    """A tiny valid JPEG whose APP1 Exif segment is ``payload`` (after the Exif header)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    body = b"Exif\x00\x00" + payload
    segment = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    data = buf.getvalue()
    return data[:2] + segment + data[2:]


def _valid(facts: exif.PhotoFacts) -> bool:
    ok = facts.capture_time is None or results.parse_timestamp(facts.capture_time) is not None
    lat, lon, alt = facts.gps_latitude, facts.gps_longitude, facts.gps_altitude
    ok &= lat is None or (math.isfinite(lat) and -90 <= lat <= 90)
    ok &= lon is None or (math.isfinite(lon) and -180 <= lon <= 180)
    ok &= alt is None or (math.isfinite(alt) and abs(alt) <= exif.MAX_ALTITUDE_M)
    cam = facts.camera_model
    return ok and (cam is None or (0 < len(cam) <= exif.MAX_CAMERA_CHARS and "\x00" not in cam))


TIFF_HEADERS = st.sampled_from([b"MM\x00*\x00\x00\x00\x08", b"II*\x00\x08\x00\x00\x00"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=TIFF_HEADERS, body=st.binary(max_size=400))
def test_fuzzed_exif_bytes_never_raise_and_give_only_valid_values(header, body):
    assert _valid(exif.read_exif(_app1(header + body)))


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    lat=st.tuples(*[st.floats(allow_nan=True, allow_infinity=True, width=32)] * 3),
    ref=st.sampled_from(["N", "S", "E", "", "n", "x"]),
    when=st.text(max_size=25),
)
def test_fuzzed_tag_values_written_by_pillow_never_raise(data, lat, ref, when):
    try:
        photo = jpeg(
            {exif.MODEL: data.draw(st.text(max_size=200))},
            {1: ref, 2: lat, 3: ref, 4: lat, 6: data.draw(st.floats(width=32))},
            {exif.DATETIME_ORIGINAL: when},
        )
    except Exception:  # Pillow refusing to write the value is not the reader's case
        return
    assert _valid(exif.read_exif(photo))


def test_reading_is_header_only_and_fast_on_a_12_mp_jpeg():
    """A 12 MP photo's EXIF is read without decoding its pixels (well under a millisecond here)."""
    import time

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8)
    e = Image.Exif()
    e[ExifTags.IFD.GPSInfo] = DRONE_GPS
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=85, exif=e.tobytes())
    data = buf.getvalue()
    exif.read_exif(data)
    started = time.perf_counter()
    for _ in range(50):
        facts = exif.read_exif(data)
    per_photo = (time.perf_counter() - started) / 50
    assert facts.gps_longitude == -10.75 and per_photo < 0.01  # a decode would take ~100 ms
