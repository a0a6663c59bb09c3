"""Wait policies: parsing, each policy's delay, and AA's seeded simulated tool delays."""

from __future__ import annotations

import random
import statistics

import pytest

from replay.errors import ConfigError
from replay.waits import AA_MAX_S, AA_MIN_S, Wait, parse


@pytest.mark.parametrize(
    ("spec", "recorded", "expected"),
    [
        ("recorded", 3.5, 3.5),
        ("scale:0.5", 3.0, 1.5),
        ("scale:2", 3.0, 6.0),
        ("cap:2", 3.0, 2.0),
        ("cap:2", 1.0, 1.0),
        ("fixed:0.25", 9.0, 0.25),
        ("fixed:1s", 9.0, 1.0),
        ("none", 9.0, 0.0),
        ("recorded", -1.0, 0.0),
    ],
)
def test_policies_turn_recorded_waits_into_delays(
    spec: str, recorded: float, expected: float
) -> None:
    assert parse(spec).delay(recorded, random.Random(0)) == pytest.approx(expected)


@pytest.mark.parametrize("spec", ["bogus", "scale", "scale:x", "cap:-1", "none:3", "fixed:nan"])
def test_bad_policies_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse(spec)


def test_aa_delays_are_seeded_bounded_and_centered_near_one_second() -> None:
    w = parse("aa")
    draws = [w.delay(30.0, random.Random(7)) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    rng = random.Random(1)
    many = [w.delay(30.0, rng) for _ in range(5000)]
    assert min(many) >= AA_MIN_S
    assert max(many) <= AA_MAX_S
    assert 0.85 <= statistics.median(many) <= 1.15


def test_policies_print_as_they_parse() -> None:
    assert str(parse("scale:2")) == "scale:2"
    assert str(Wait("recorded")) == "recorded"


def test_limit_clips_every_policy_and_zero_wait_stays_zero() -> None:
    rng = random.Random(0)
    assert parse("recorded", limit=300).delay(72_000.0, rng) == 300.0
    assert parse("recorded", limit=300).delay(12.5, rng) == 12.5
    assert parse("scale:2", limit=10).delay(8.0, rng) == 10.0
    assert parse("fixed:30", limit=5).delay(0.0, rng) == 5.0
    assert parse("none", limit=5).delay(100.0, rng) == 0.0
    assert parse("recorded").delay(72_000.0, rng) == 72_000.0


def test_negative_limit_is_rejected() -> None:
    with pytest.raises(ConfigError, match="maximum wait"):
        parse("recorded", limit=-1)
