"""Why a level failed, from its figures: KV full and queueing, queueing with KV to spare,
prefill-bound, compute-bound decoding, errors, or no server figures at all."""

from __future__ import annotations

import pytest

from replay.bottleneck import explain
from replay.results import Level, Load, TierVerdict

FAIL_TTFT = TierVerdict(floor=20, ttft=10, passed=False, reason="P95 TTFT 12.00 s > 10 s")
FAIL_SPEED = TierVerdict(floor=20, ttft=10, passed=False, reason="P25 speed 12.0 < 20 tok/s")


def level(verdict: TierVerdict, load: Load | None, **kw: object) -> Level:
    return Level(agents=8, index=2, started=0, window_start=0, window_end=10, warmup_s=0,
                 stable=True, verdicts=[verdict], server=load, p95_ttft=12.0, p25_speed=12.0,
                 **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("verdict", "load", "expected"),
    [
        (FAIL_TTFT, Load(source="m", waiting_mean=4.0, kv_usage_max=0.97), "KV cache full"),
        (FAIL_TTFT, Load(source="m", waiting_mean=2.0, kv_usage_max=0.3),
         "queueing (mean 2.0 waiting) with KV cache to spare"),
        (FAIL_TTFT, Load(source="m", waiting_mean=0.0, prompt_tps=900.0), "prefill-bound"),
        (FAIL_SPEED, Load(source="m", waiting_mean=0.1, running_mean=7.5, generation_tps=90.0),
         "compute-bound decoding: no queue, 7.5 requests running"),
        (FAIL_SPEED, None, "publishes no load figures"),
    ],
)
def test_the_failing_level_says_why(verdict: TierVerdict, load: Load | None,
                                    expected: str) -> None:
    line = explain(level(verdict, load))
    assert line.startswith("fails 20 tok/s · 10 s: ")
    assert expected in line


def test_errors_are_the_reason_when_the_error_rate_failed_the_tier() -> None:
    v = TierVerdict(floor=20, ttft=10, passed=False, reason="error rate 9.0% > 5.0%")
    line = explain(level(v, Load(source="m"), errors_by_kind={"http_429": 9}))
    assert "http_429 ×9" in line


def test_a_level_that_passed_has_no_bottleneck_line() -> None:
    ok = TierVerdict(floor=20, ttft=10, passed=True)
    assert explain(level(ok, Load(source="m", waiting_mean=5))) == ""
