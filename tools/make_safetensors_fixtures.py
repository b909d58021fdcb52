#!/usr/bin/env python3
"""Fixtures for duo's Formats tests, made with the reference `safetensors` package.

Setup (once, from the repository root; tools/.venv is gitignored):

    python3 -m venv tools/.venv
    tools/.venv/bin/pip install -r tools/requirements.txt

Write the fixtures into Tests/FormatsTests/Fixtures (deterministic; commit the result):

    tools/.venv/bin/python tools/make_safetensors_fixtures.py

    tensors.safetensors   F32, F16 and BF16 tensors (a scalar, zero-size tensors, subnormals,
                          infinities, NaN) with metadata, written by safetensors.serialize_file
    malformed/*.safetensors
                          broken files crafted byte by byte (truncated data, header length
                          past the end, offsets out of range, overlapping offsets, unknown
                          dtype, shape/size mismatch, invalid JSON, ...); each one is also
                          confirmed to be rejected by the reference reader
    png/*.png             PNGs encoded here with zlib + struct (gray 1/8-bit, gray+alpha, RGB,
                          RGBA, 16-bit RGB, palette, palette+tRNS) and corrupt ones
    expected.json         what Swift must decode: each tensor's values as float32 bit patterns
                          (F16/BF16 widened by bit math here, cross-checked against numpy),
                          each malformed file's error kind and tensor, each PNG's 8-bit
                          pixels, float32 -> float16 rounding cases from numpy, and the
                          tensors the Swift writer must produce for --check

Check files written by duo's SafeTensorsWriter against the reference reader and numpy:

    swift build --build-tests
    DUO_SAFETENSORS_CHECK_DIR=/tmp/duo-check swift test --skip-build \\
        --filter FormatsTests.SafeTensorsWriterTests/testWritesFileForPythonCheck
    tools/.venv/bin/python tools/make_safetensors_fixtures.py --check /tmp/duo-check

The check opens DIR/writer_check.safetensors with safetensors.safe_open, compares names,
dtypes, shapes and metadata, requires F32 values to be bit-exact and F16 values to equal
numpy's float32 -> float16 rounding, checks the header padding and the data alignment,
compares the file with the same tensors saved by safetensors itself (same header length and
content, byte-identical data region), and exits non-zero on any mismatch.
"""

import argparse
import json
import math
import random
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy
from safetensors import TensorSpec, safe_open, serialize_file

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "Tests" / "FormatsTests" / "Fixtures"


# ---------------------------------------------------------------------------
# Bit math: the float32 values Swift must produce, computed without numpy so numpy can
# serve as an independent cross-check.

def f32_bits(value):
    """The IEEE float32 bit pattern of a Python float (rounded to float32)."""
    return struct.unpack("<I", struct.pack("<f", value))[0]


def f32_from_bits(bits):
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def half_to_f32_bits(half):
    """binary16 bits -> float32 bits, exact (subnormals, infinities, NaN payloads kept)."""
    sign = (half & 0x8000) << 16
    exponent = (half >> 10) & 0x1F
    mantissa = half & 0x3FF
    if exponent == 0:
        return sign | f32_bits(mantissa * 2.0 ** -24)
    if exponent == 0x1F:
        return sign | 0x7F800000 | (mantissa << 13)
    return sign | ((exponent + 112) << 23) | (mantissa << 13)


def bf16_to_f32_bits(bits):
    """bfloat16 is the top half of a float32."""
    return bits << 16


# ---------------------------------------------------------------------------
# tensors.safetensors

def tensor_specs():
    """name -> (safetensors dtype, shape, raw element bits or float values)."""
    rng = random.Random(7)
    f16_specials = [
        0x0000, 0x8000,  # +0, -0
        0x3C00, 0xC000,  # 1, -2
        0x7BFF,  # 65504, the largest half
        0x0001, 0x03FF,  # smallest and largest subnormal
        0x0400,  # smallest normal
        0x7C00, 0xFC00,  # +inf, -inf
        0x7E00,  # NaN
        0x2E66,  # 0.1 rounded to half
    ]
    bf16_values = [0x3F80, 0xBFC0, 0x0001, 0x7F80, 0x7FC0, 0x4049]  # 1, -1.5, tiny, inf, NaN, pi
    return {
        "text_encoder.f32_matrix": ("F32", [2, 3], [1.5, -0.0, 3.0e38, -7.25, 1.0e-45, 0.1]),
        "text_encoder.f32_scalar": ("F32", [], [3.25]),
        "text_encoder.f32_empty": ("F32", [0, 4], []),
        "unet.f16_specials": ("F16", [12], f16_specials),
        "unet.f16_cube": ("F16", [2, 2, 2], [rng.randrange(0, 0x7C00) for _ in range(8)]),
        "unet.f16_scalar": ("F16", [], [0xB555]),
        "vae.bf16_values": ("BF16", [2, 3], bf16_values),
        "vae.bf16_empty": ("BF16", [3, 0], []),
    }


TENSOR_METADATA = {"format": "pt", "duo.fixture": "tensors v1", "note": "na\u00efve \u2713"}


def write_tensor_fixture(directory):
    arrays = {}
    expected = {}
    for name, (dtype, shape, values) in tensor_specs().items():
        if dtype == "F32":
            array = np.array(values, dtype=np.float32).reshape(shape)
            bits = [f32_bits(v) for v in values]
            spec_dtype = "float32"
        else:
            array = np.array(values, dtype=np.uint16).reshape(shape)
            widen = half_to_f32_bits if dtype == "F16" else bf16_to_f32_bits
            bits = [widen(v) for v in values]
            spec_dtype = "float16" if dtype == "F16" else "bfloat16"
        arrays[name] = (spec_dtype, shape, array)
        expected[name] = {"dtype": dtype, "shape": shape, "float32_bits": bits}
    # Keep the arrays alive while serialize_file reads them through raw pointers.
    specs = {
        name: TensorSpec(dtype=d, shape=s, data_ptr=a.ctypes.data, data_len=a.nbytes)
        for name, (d, s, a) in arrays.items()
    }
    path = directory / "tensors.safetensors"
    serialize_file(specs, str(path), metadata=TENSOR_METADATA)
    path.chmod(0o644)  # the Rust writer creates files 0600
    cross_check_with_numpy(path, expected)
    return {"file": path.name, "metadata": TENSOR_METADATA, "tensors": expected}


def cross_check_with_numpy(path, expected):
    """numpy's own float16 widening must agree with the bit math above."""
    with safe_open(str(path), "np") as f:
        assert f.metadata() == TENSOR_METADATA
        for name, spec in expected.items():
            if spec["dtype"] == "BF16":
                continue  # numpy has no bfloat16; the bit math is the definition there
            values = f.get_tensor(name).astype(np.float32).reshape(-1)
            assert list(values.view(np.uint32)) == spec["float32_bits"], name


def write_other_dtypes_fixture(directory):
    """Integer, boolean and F64 tensors: listed by inspect, refused by floats()."""
    arrays = {
        "double.f64": np.array([0.5, -1.0], dtype=np.float64),
        "ints.i64": np.arange(3, dtype=np.int64),
        "ints.i32": np.arange(4, dtype=np.int32).reshape(2, 2),
        "ints.i16": np.array([-1], dtype=np.int16),
        "ints.i8": np.array([1, 2, 3], dtype=np.int8),
        "bytes.u8": np.arange(4, dtype=np.uint8),
        "mask.bool": np.array([[True, False], [False, True]]),
    }
    path = directory / "other_dtypes.safetensors"
    safetensors.numpy.save_file(arrays, str(path))
    path.chmod(0o644)
    names = {"float64": "F64", "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
             "uint8": "U8", "bool": "BOOL"}
    tensors = {k: {"dtype": names[a.dtype.name], "shape": list(a.shape)} for k, a in arrays.items()}
    return {"file": path.name, "tensors": tensors}


# ---------------------------------------------------------------------------
# malformed/*.safetensors

def raw_safetensors(header, data=b"", declared_length=None, pad=True):
    """Bytes of a safetensors file with an arbitrary header (dict or raw bytes)."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    length = len(text) if declared_length is None else declared_length
    return struct.pack("<Q", length) + text + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def malformed_cases():
    """file name -> (bytes, expected FormatError kind, tensor named in the error or None)."""
    w24 = entry("F32", [2, 3], 0, 24)
    data24 = bytes(range(24))
    return {
        "empty.safetensors": (b"", "truncated", None),
        "short.safetensors": (b"\x05\x00\x00", "truncated", None),
        "header_too_long.safetensors": (
            raw_safetensors({"w": w24}, data24, declared_length=1000), "invalidHeader", None),
        "header_over_limit.safetensors": (
            raw_safetensors({"w": w24}, data24, declared_length=200_000_000),
            "invalidHeader", None),
        "invalid_json.safetensors": (
            raw_safetensors(b'{"w": {"dtype": "F32", "shape": [2, 3],', data24),
            "invalidHeader", None),
        "not_utf8.safetensors": (
            raw_safetensors(b'{"w\xff": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}',
                            data24[:4]),
            "invalidHeader", None),
        "not_object.safetensors": (raw_safetensors(b"[1, 2]", data24), "invalidHeader", None),
        "duplicate_name.safetensors": (
            raw_safetensors(b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},'
                            b' "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',
                            data24[:8]),
            "invalidHeader", None),
        "metadata_not_strings.safetensors": (
            raw_safetensors({"__metadata__": {"steps": 1000}, "w": w24}, data24),
            "invalidHeader", None),
        "entry_not_object.safetensors": (raw_safetensors({"w": [1, 2]}, data24),
                                         "invalidEntry", "w"),
        "missing_offsets.safetensors": (
            raw_safetensors({"w": {"dtype": "F32", "shape": [2, 3]}}, data24),
            "invalidEntry", "w"),
        "shape_not_array.safetensors": (
            raw_safetensors({"w": {"dtype": "F32", "shape": "2x3", "data_offsets": [0, 24]}},
                            data24),
            "invalidEntry", "w"),
        "negative_dim.safetensors": (
            raw_safetensors({"w": entry("F32", [-2, -3], 0, 24)}, data24), "invalidEntry", "w"),
        "fractional_dim.safetensors": (
            raw_safetensors({"w": entry("F32", [1.5, 4], 0, 24)}, data24), "invalidEntry", "w"),
        "reversed_offsets.safetensors": (
            raw_safetensors({"w": entry("F32", [0], 24, 0)}, data24), "invalidEntry", "w"),
        "unknown_dtype.safetensors": (
            raw_safetensors({"w": entry("F7", [2, 3], 0, 24)}, data24), "unknownDType", "w"),
        "shape_mismatch.safetensors": (
            raw_safetensors({"w": entry("F32", [2, 3], 0, 20)}, data24[:20]),
            "sizeMismatch", "w"),
        "truncated_data.safetensors": (
            raw_safetensors({"a": entry("F32", [2], 0, 8), "b": w24 | {"data_offsets": [8, 32]}},
                            bytes(20)),
            "truncated", "b"),
        "offsets_out_of_range.safetensors": (
            raw_safetensors({"a": entry("F32", [4], 0, 16), "far": entry("F32", [2], 64, 72)},
                            bytes(16)),
            "truncated", "far"),
        "overlapping_offsets.safetensors": (
            raw_safetensors({"a": entry("F32", [4], 0, 16), "b": entry("F32", [4], 8, 24)},
                            bytes(24)),
            "overlap", "b"),
    }


def write_malformed(directory):
    directory.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, (data, kind, tensor) in malformed_cases().items():
        path = directory / name
        path.write_bytes(data)
        cases.append({
            "file": f"malformed/{name}", "kind": kind, "tensor": tensor,
            "reference_error": reference_error(path),
        })
    return cases


def reference_error(path):
    """The reference reader's complaint about a file; every malformed fixture must have one."""
    try:
        with safe_open(str(path), "np") as f:
            for key in f.keys():
                f.get_tensor(key)
    except Exception as error:  # the reference raises several exception types
        return f"{type(error).__name__}: {error}".splitlines()[0]
    raise SystemExit(f"{path.name}: the reference safetensors reader accepts it; not malformed")


# ---------------------------------------------------------------------------
# png/*.png, encoded by hand: signature, IHDR, optional PLTE/tRNS, one IDAT, IEND.

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TYPES = {"gray": 0, "RGB": 2, "palette": 3, "gray+alpha": 4, "RGBA": 6}
CHANNELS = {"gray": 1, "RGB": 3, "palette": 1, "gray+alpha": 2, "RGBA": 4}


def png_chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def pack_row(samples, bit_depth):
    """One scanline's samples as bytes: MSB-first bit packing below 8 bits, big-endian at 16."""
    if bit_depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if bit_depth == 8:
        return bytes(samples)
    per_byte = 8 // bit_depth
    out = bytearray()
    for start in range(0, len(samples), per_byte):
        byte = 0
        group = samples[start:start + per_byte]
        for i, sample in enumerate(group):
            byte |= sample << (8 - bit_depth * (i + 1))
        out.append(byte)
    return bytes(out)


def filter_row(kind, row, previous, bpp):
    """PNG filter types 0 (None), 1 (Sub) and 2 (Up), applied to one packed scanline."""
    if kind == 0:
        return row
    if kind == 1:
        return bytes((row[i] - (row[i - bpp] if i >= bpp else 0)) & 0xFF for i in range(len(row)))
    return bytes((row[i] - previous[i]) & 0xFF for i in range(len(row)))


def encode_png(width, height, color, bit_depth, samples, palette=None, trns=None, filters=None):
    """samples: row-major list of per-pixel tuples (palette indices for palette images)."""
    bpp = max(1, CHANNELS[color] * bit_depth // 8)
    raw = b""
    previous = bytes(len(pack_row([0] * width * CHANNELS[color], bit_depth)))
    for y in range(height):
        flat = [v for pixel in samples[y * width:(y + 1) * width] for v in pixel]
        row = pack_row(flat, bit_depth)
        kind = (filters or [0])[y % len(filters or [0])]
        raw += bytes([kind]) + filter_row(kind, row, previous, bpp)
        previous = row
    header = struct.pack(">IIBBBBB", width, height, bit_depth, COLOR_TYPES[color], 0, 0, 0)
    chunks = png_chunk(b"IHDR", header)
    if palette:
        chunks += png_chunk(b"PLTE", b"".join(bytes(c) for c in palette))
    if trns:
        chunks += png_chunk(b"tRNS", bytes(trns))
    chunks += png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")
    return PNG_SIGNATURE + chunks


def decoded_8bit(color, bit_depth, samples, palette=None, trns=None):
    """The 8-bit interleaved pixels a decoder must return (palette -> RGB, or RGBA with tRNS)."""
    out = []
    for pixel in samples:
        if color == "palette":
            index = pixel[0]
            out += list(palette[index])
            if trns:
                out.append(trns[index] if index < len(trns) else 255)
        elif bit_depth == 16:
            out += [(v * 255 + 32767) // 65535 for v in pixel]  # round(v / 257)
        else:
            out += [v * 255 // (2 ** bit_depth - 1) for v in pixel]
    return out


def png_cases():
    """name -> (width, height, color, bit depth, samples, palette, tRNS, filters)."""
    rng = random.Random(11)

    def pixels(count, channels, limit):
        return [tuple(rng.randrange(limit) for _ in range(channels)) for _ in range(count)]

    palette = [(255, 0, 0), (0, 128, 0), (0, 0, 255), (250, 240, 230), (17, 34, 51)]
    rgb16 = [(0, 65535, 128), (129, 32767, 32768), (25828, 25829, 60000),
             (257, 514, 1000), (65534, 1, 40000), (12345, 54321, 33024)]
    # Partial and zero alpha too: alpha must stay straight, not be premultiplied.
    rgba16 = [(65535, 32768, 129, 65535), (1000, 2000, 3000, 32768), (40000, 50000, 60000, 0),
              (25828, 25829, 0, 129)]
    gray_alpha16 = [(65535, 0), (32768, 32768), (129, 65535)]
    return {
        "gray8.png": (5, 3, "gray", 8, pixels(15, 1, 256), None, None, [0]),
        "gray1.png": (10, 2, "gray", 1, pixels(20, 1, 2), None, None, [0]),
        "gray_alpha8.png": (4, 3, "gray+alpha", 8, pixels(12, 2, 256), None, None, [0, 2]),
        "rgb8.png": (5, 3, "RGB", 8, pixels(15, 3, 256), None, None, [1, 2, 0]),
        "rgba8.png": (4, 3, "RGBA", 8, pixels(12, 4, 256), None, None, [2, 1]),
        "rgb16.png": (3, 2, "RGB", 16, rgb16, None, None, [0, 1]),
        "rgba16.png": (2, 2, "RGBA", 16, rgba16, None, None, [0]),
        "gray_alpha16.png": (3, 1, "gray+alpha", 16, gray_alpha16, None, None, [0]),
        "palette8.png": (5, 3, "palette", 8, pixels(15, 1, 5), palette, None, [0]),
        "palette4_trns.png": (5, 3, "palette", 4, pixels(15, 1, 5), palette, [0, 128, 255], [0]),
    }


def corrupt_pngs(good):
    """Broken variants of a good PNG; each must make a decoder fail cleanly."""
    idat = good.index(b"IDAT") - 4
    idat_length = struct.unpack(">I", good[idat:idat + 4])[0]
    crc_at = idat + 8 + idat_length
    bad_crc = good[:crc_at] + bytes(b ^ 0xFF for b in good[crc_at:crc_at + 4]) + good[crc_at + 4:]
    garbage = b"\x78\x9c" + bytes(range(200, 240))
    bad_zlib = good[:idat] + png_chunk(b"IDAT", garbage) + png_chunk(b"IEND", b"")
    return {
        "truncated.png": good[:idat + 8 + idat_length // 2],
        "bad_crc.png": bad_crc,
        "bad_zlib.png": bad_zlib,
        "not_a_png.png": b"this is a text file, not a PNG\n",
        "empty.png": b"",
    }


def write_pngs(directory):
    directory.mkdir(parents=True, exist_ok=True)
    images = {}
    for name, (w, h, color, depth, samples, palette, trns, filters) in png_cases().items():
        data = encode_png(w, h, color, depth, samples, palette, trns, filters)
        (directory / name).write_bytes(data)
        pixels = decoded_8bit(color, depth, samples, palette, trns)
        images[f"png/{name}"] = {
            "width": w, "height": h, "channels": len(pixels) // (w * h),
            "bit_depth": depth, "color_type": color, "pixels": pixels,
        }
    good = (directory / "rgb8.png").read_bytes()
    corrupt = []
    for name, data in corrupt_pngs(good).items():
        (directory / name).write_bytes(data)
        corrupt.append(f"png/{name}")
    return images, corrupt


# ---------------------------------------------------------------------------
# float32 -> float16 rounding cases and the tensors the Swift writer must produce

def rounding_inputs():
    """Float32 values that pin float16 rounding: ties, overflow, subnormals, specials."""
    tiny = 2.0 ** -24  # the smallest half subnormal
    named = [
        0.0, -0.0, 1.0, -2.5, 0.1, 1 / 3, 65504.0, 65519.0, 65520.0, 1.0e6, -1.0e6,
        tiny, tiny / 2, tiny / 2 * 1.0000001, 1.5 * tiny, 2.5 * tiny, 2.0 ** -14,
        2.0 ** -14 - 2.0 ** -25, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 1.0e-45, -3.0e38,
        math.inf, -math.inf, math.nan, 6.1e-5, 1024.5, 2049.0, 2051.0,
    ]
    rng = random.Random(3)
    spread = [rng.uniform(-1, 1) * 10.0 ** rng.randrange(-9, 6) for _ in range(40)]
    return [f32_bits(v) for v in named + spread]


def rounding_expectations(inputs):
    values = np.array(inputs, dtype=np.uint32).view(np.float32)
    with np.errstate(over="ignore"):  # overflow to infinity is one of the cases
        return [int(b) for b in values.astype(np.float16).view(np.uint16)]


def writer_check_spec(inputs):
    """What the Swift test writes to DIR/writer_check.safetensors for --check."""
    return {
        "file": "writer_check.safetensors",
        "metadata": {"format": "pt", "producer": "duo FormatsTests",
                     'quote"back\\slash': "line\nbreak \u2713"},
        "tensors": [
            {"name": "check.rounding_f32", "storage": "F32", "shape": [len(inputs)],
             "float32_bits": inputs},
            {"name": "check.rounding_f16", "storage": "F16", "shape": [len(inputs)],
             "float32_bits": inputs},
            {"name": "check.matrix", "storage": "F32", "shape": [2, 3],
             "float32_bits": [f32_bits(v) for v in [1, 2, 3, 4, 5, 6]]},
            {"name": "check.scalar", "storage": "F16", "shape": [],
             "float32_bits": [f32_bits(0.5)]},
            {"name": "check.empty", "storage": "F16", "shape": [0, 3], "float32_bits": []},
        ],
    }


# ---------------------------------------------------------------------------
# --check

def check_written(directory, expected):
    spec = expected["writer_check"]
    path = Path(directory) / spec["file"]
    data = path.read_bytes()
    failures = check_layout(data, spec)
    with safe_open(str(path), "np") as f:
        if f.metadata() != spec["metadata"]:
            failures.append(f"metadata {f.metadata()} != {spec['metadata']}")
        names = sorted(t["name"] for t in spec["tensors"])
        if sorted(f.keys()) != names:
            failures.append(f"tensor names {sorted(f.keys())} != {names}")
        for tensor in spec["tensors"]:
            failures += check_tensor(f.get_tensor(tensor["name"]), tensor)
    failures += compare_with_reference_writer(data, spec)
    for failure in failures:
        print(f"FAIL {path}: {failure}")
    versions = f"safetensors {safetensors.__version__}, numpy {np.__version__}"
    if failures:
        print(f"FAILED: {path}: {len(failures)} problem(s) ({versions})")
    else:
        print(f"OK: {path}: {len(spec['tensors'])} tensors; values, layout and bytes match "
              f"the reference ({versions})")
    return not failures


def check_layout(data, spec):
    """Header padded with spaces to 8 bytes; every tensor aligned to its element size."""
    failures = []
    length = struct.unpack("<Q", data[:8])[0]
    header = data[8:8 + length]
    if length % 8 != 0:
        failures.append(f"header length {length} is not a multiple of 8")
    if header.rstrip(b" ") != header.rstrip() or not header.rstrip(b" ").endswith(b"}"):
        failures.append("header is not a JSON object padded with spaces")
    sizes = {"F32": 4, "F16": 2}
    for name, info in json.loads(header).items():
        if name == "__metadata__":
            continue
        if (8 + length + info["data_offsets"][0]) % sizes[info["dtype"]] != 0:
            failures.append(f"{name}: data at an offset not aligned to {info['dtype']}")
        want = next(t["storage"] for t in spec["tensors"] if t["name"] == name)
        if info["dtype"] != want:
            failures.append(f"{name}: dtype {info['dtype']} != {want}")
    return failures


def compare_with_reference_writer(data, spec):
    """The same tensors saved by safetensors itself must give the same file, up to the order
    of the metadata keys (a hash map on the Rust side, so its order varies run to run)."""
    arrays = {}
    for tensor in spec["tensors"]:
        values = np.array(tensor["float32_bits"], dtype=np.uint32).view(np.float32)
        with np.errstate(over="ignore"):
            dtype = np.float16 if tensor["storage"] == "F16" else np.float32
            arrays[tensor["name"]] = values.astype(dtype).reshape(tensor["shape"])
    reference = safetensors.numpy.save(arrays, metadata=spec["metadata"])
    failures = []
    ours_length = struct.unpack("<Q", data[:8])[0]
    reference_length = struct.unpack("<Q", reference[:8])[0]
    if ours_length != reference_length:
        failures.append(f"header length {ours_length} != reference {reference_length}")
    if json.loads(data[8:8 + ours_length]) != json.loads(reference[8:8 + reference_length]):
        failures.append("header differs from the reference writer's")
    if data[8 + ours_length:] != reference[8 + reference_length:]:
        failures.append("data region differs from the reference writer's")
    return failures


def check_tensor(array, tensor):
    name, shape = tensor["name"], tuple(tensor["shape"])
    if array.shape != shape:
        return [f"{name}: shape {array.shape} != {shape}"]
    inputs = np.array(tensor["float32_bits"], dtype=np.uint32).view(np.float32)
    if tensor["storage"] == "F32":
        want, got = inputs.view(np.uint32), array.reshape(-1).view(np.uint32)
        bad = np.flatnonzero(want != got)
    else:
        with np.errstate(over="ignore"):
            want = inputs.astype(np.float16)
        got = array.reshape(-1)
        nan = np.isnan(want) & np.isnan(got)
        bad = np.flatnonzero((want.view(np.uint16) != got.view(np.uint16)) & ~nan)
    return [f"{name}[{i}]: {got[i]!r} != {want[i]!r} (input {inputs[i]!r})" for i in bad[:10]]


# ---------------------------------------------------------------------------

def generate(directory):
    directory.mkdir(parents=True, exist_ok=True)
    tensors = write_tensor_fixture(directory)
    other_dtypes = write_other_dtypes_fixture(directory)
    malformed = write_malformed(directory / "malformed")
    images, corrupt = write_pngs(directory / "png")
    inputs = rounding_inputs()
    expected = {
        "generated_by": "tools/make_safetensors_fixtures.py",
        "safetensors_version": safetensors.__version__,
        "numpy_version": np.__version__,
        "tensors": tensors,
        "other_dtypes": other_dtypes,
        "malformed": malformed,
        "png": images,
        "corrupt_png": corrupt,
        "f16_rounding": {"float32_bits": inputs, "float16_bits": rounding_expectations(inputs)},
        "writer_check": writer_check_spec(inputs),
    }
    text = compact_json(expected) + "\n"
    (directory / "expected.json").write_text(text, encoding="utf-8")
    total = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    print(f"wrote fixtures to {directory} ({total} bytes)")


def compact_json(value, indent=0):
    """Indented JSON with lists of numbers kept on one line: small, yet diffable."""
    pad = " " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {compact_json(v, indent + 1)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [pad + compact_json(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    return json.dumps(value, ensure_ascii=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help="fixture directory")
    parser.add_argument("--check", metavar="DIR", type=Path,
                        help="check DIR/writer_check.safetensors written by duo's Swift writer")
    args = parser.parse_args()
    if args.check:
        expected = json.loads((args.out / "expected.json").read_text(encoding="utf-8"))
        sys.exit(0 if check_written(args.check, expected) else 1)
    generate(args.out)


if __name__ == "__main__":
    main()
