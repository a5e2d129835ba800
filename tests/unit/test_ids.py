"""Ids and login secrets: Meteor's length and alphabet, drawn without bias."""

from __future__ import annotations

from collections import Counter

from jobcollection.core.ids import ALPHABET, SECRET_ALPHABET, random_id, random_secret


def test_ids_have_meteor_shape_and_do_not_repeat() -> None:
    ids = [random_id() for _ in range(5000)]
    assert all(len(i) == 17 and set(i) <= set(ALPHABET) for i in ids)
    assert len(set(ids)) == len(ids)


def test_secrets_have_meteor_shape() -> None:
    secrets = [random_secret() for _ in range(200)]
    assert all(len(s) == 43 and set(s) <= set(SECRET_ALPHABET) for s in secrets)
    assert len(random_secret(10)) == 10


def test_every_character_is_about_equally_likely() -> None:
    counts = Counter("".join(random_id() for _ in range(20000)))
    expected = 20000 * 17 / len(ALPHABET)
    chi_square = sum((counts[c] - expected) ** 2 / expected for c in ALPHABET)
    assert set(counts) == set(ALPHABET)
    # 54 degrees of freedom: 130 is far beyond the 99.999th percentile of the uniform case,
    # while a modulo bias (bytes 220-255 folded onto the first 36 characters) scores ~1,000.
    assert chi_square < 130
