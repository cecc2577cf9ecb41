"""Perceptual hash: the DCT, the 8 rotation / mirror variants from one DCT, distances, pixel hashes."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image
from support.library import skimage_photos

from photoindex.media import phash as P

T = Image.Transpose
# the transforms of phash.TRANSFORMS, on Pillow images and on numpy arrays (rows, columns)
PIL_OPS = [
    lambda im: im,
    lambda im: im.transpose(T.ROTATE_90),
    lambda im: im.transpose(T.ROTATE_180),
    lambda im: im.transpose(T.ROTATE_270),
    lambda im: im.transpose(T.FLIP_LEFT_RIGHT),
    lambda im: im.transpose(T.FLIP_LEFT_RIGHT).transpose(T.ROTATE_90),
    lambda im: im.transpose(T.FLIP_LEFT_RIGHT).transpose(T.ROTATE_180),
    lambda im: im.transpose(T.FLIP_LEFT_RIGHT).transpose(T.ROTATE_270),
]
NP_OPS = [
    lambda a: a,
    lambda a: np.rot90(a, 1),
    lambda a: np.rot90(a, 2),
    lambda a: np.rot90(a, 3),
    np.fliplr,
    lambda a: np.rot90(np.fliplr(a), 1),
    lambda a: np.rot90(np.fliplr(a), 2),
    lambda a: np.rot90(np.fliplr(a), 3),
]


@pytest.fixture(scope="module")
def real() -> dict[str, Image.Image]:
    return skimage_photos()


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_dct_is_the_orthonormal_dct_ii() -> None:
    d = P.dct_matrix(32)
    assert np.allclose(d @ d.T, np.eye(32), atol=1e-12)
    x = np.random.default_rng(0).random((32, 32)) * 255
    n = np.arange(32)
    # the textbook definition, term by term: C(v, u) = a(v) a(u) sum_y sum_x X[y, x] cos(.) cos(.)
    a = np.where(np.arange(8) == 0, np.sqrt(1 / 32), np.sqrt(2 / 32))
    cos_y = np.cos(np.pi * (2 * n[None, :] + 1) * np.arange(8)[:, None] / 64)
    expected = a[:, None] * a[None, :] * np.einsum("vy,ux,yx->vu", cos_y, cos_y, x)
    assert np.allclose(P.low_dct(x), expected, atol=1e-9)


def test_variants_from_one_dct_equal_hashes_of_transformed_inputs() -> None:
    """The sign / transpose rules give exactly the coefficients of the transformed grey square."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        x = rng.random((32, 32)).astype(np.float32) * 255
        coeffs = P.variant_coefficients(P.low_dct(x))
        variants = P.variants_gray(x)
        for t, op in enumerate(NP_OPS):
            moved = np.ascontiguousarray(op(x))
            assert np.allclose(coeffs[t], P.low_dct(moved), atol=1e-9), P.TRANSFORMS[t]
            assert int(variants[t]) == int(P.phash_gray(moved)), P.TRANSFORMS[t]


def test_rotated_and_mirrored_photos_match_a_variant(real: dict[str, Image.Image]) -> None:
    for name, im in real.items():
        variants = P.phash_variants(im)
        assert int(variants[0]) == P.phash(im)
        for t, op in enumerate(PIL_OPS):
            turned = _jpeg(op(im), 85)  # saved as a new file would be
            dist, best = P.min_distance(variants, P.phash(turned))
            assert int(P.hamming(variants[t], P.phash(turned))) <= 4, (name, P.TRANSFORMS[t])
            assert int(dist) <= 4
            if int(dist) == 0:
                # every transform that gives distance 0 is an equally good answer; the named one is among them
                assert int(P.hamming(variants[best], P.phash(turned))) == 0


def test_re_encoded_and_resized_copies_are_close(real: dict[str, Image.Image]) -> None:
    for name, im in real.items():
        h = P.phash(im)
        for copy in (_jpeg(im, 50), _jpeg(im, 85), im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
                     im.resize((im.width // 4, im.height // 4), Image.Resampling.BILINEAR)):
            assert int(P.hamming(h, P.phash(copy))) <= 4, name


def test_distinct_photos_are_far_apart_under_every_transform(real: dict[str, Image.Image]) -> None:
    from skimage import data

    photos = dict(real)
    for extra in ("camera", "coins", "moon", "immunohistochemistry", "hubble_deep_field", "page"):
        photos[extra] = Image.fromarray(getattr(data, extra)())
    variants = {n: P.phash_variants(im) for n, im in photos.items()}
    distances = []
    for a, b in itertools.combinations(photos, 2):
        dist, _ = P.min_distance(variants[a], variants[b][0])
        distances.append(int(dist))
    assert min(distances) >= 14, sorted(distances)[:5]
    assert np.median(distances) >= 22


def test_hashes_are_balanced_and_variants_differ(real: dict[str, Image.Image]) -> None:
    for im in real.values():
        variants = P.phash_variants(im)
        ones = P.popcount(variants)
        assert np.all((ones >= 24) & (ones <= 40))  # median threshold: about half the bits set
        assert len({int(v) for v in variants}) == 8  # a photo is not symmetric


def test_hamming_and_popcount_are_vectorised_and_exact() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 2**63, size=1000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 1000, dtype=np.uint64)
    b = rng.integers(0, 2**63, size=1000, dtype=np.uint64) * np.uint64(2)
    expected = [(int(x) ^ int(y)).bit_count() for x, y in zip(a, b, strict=True)]
    assert P.hamming(a, b).tolist() == expected
    assert P.hamming(a[:, None], b[None, :5]).shape == (1000, 5)
    table = P._POPCOUNT8[np.ascontiguousarray(a).view(np.uint8).reshape(-1, 8)].sum(axis=1)
    assert table.tolist() == P.popcount(a).tolist()
    assert int(P.hamming(0, 2**64 - 1)) == 64


def test_min_distance_prefers_no_transform_on_ties() -> None:
    variants = np.array([5, 5, 7, 9, 5, 5, 5, 5], dtype=np.uint64)
    dist, best = P.min_distance(variants, 5)
    assert int(dist) == 0 and int(best) == 0
    assert P.INVERSE[1] == 3 and P.INVERSE[3] == 1 and all(P.INVERSE[t] == t for t in (0, 2, 4, 5, 6, 7))


def test_signed_storage_round_trip() -> None:
    values = np.array([0, 1, 2**63, 2**64 - 1, 0x8000_0000_0000_0001], dtype=np.uint64)
    signed = P.to_signed(values)
    assert signed.dtype == np.int64 and int(signed[3]) == -1
    assert P.to_unsigned(signed).tolist() == values.tolist()
    blob = P.variants_to_bytes(values[:5])
    assert len(blob) == 40 and P.variants_from_bytes(blob).tolist() == values.tolist()


def test_pixel_hash_sees_pixels_not_metadata(real: dict[str, Image.Image]) -> None:
    import piexif

    im = real["coffee"]
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    edited = io.BytesIO()
    piexif.insert(piexif.dump({"0th": {piexif.ImageIFD.Artist: b"someone"}}), data, edited)
    assert edited.getvalue() != data
    assert P.pixel_hash(Image.open(io.BytesIO(data))) == P.pixel_hash(Image.open(io.BytesIO(edited.getvalue())))
    arr = np.asarray(im).copy()
    arr[10, 10, 0] ^= 1
    assert P.pixel_hash(Image.fromarray(arr)) != P.pixel_hash(im)
    assert P.pixel_hash(im.convert("L")) != P.pixel_hash(im)  # mode is part of the picture
    assert P.pixel_hash(im) == P.pixel_hash(im.copy())
