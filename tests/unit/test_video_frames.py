"""The video demo's frame clock and accounting (demos.video.frames): when each camera's
frames are due, which images each camera streams, and what counts as answered, dropped,
late and sustained."""

from __future__ import annotations

import numpy as np
import pytest

from demos.video.frames import Clock, outcome, rate, streams
from hosts.edge_agent import RequestResult

START = 1_000.0


def result(index: int, *, sent: float, ended: float | None, status: str = "ok") -> RequestResult:
    ok = status == "ok"
    return RequestResult(index, index + 1, 3 if ok else -1, [0] * 10 if ok else [],
                         (ended - sent) if ended else 0.0, 1, 2, 3, status,
                         sent_at=START + sent, ended_at=START + (ended if ended else sent + 1))


def test_cameras_run_at_one_rate_with_their_phases_spread_over_a_frame_interval():
    clock = Clock(fps=8, cameras=4)
    assert [clock.phase(k) for k in range(4)] == [0.0, 0.03125, 0.0625, 0.09375]
    assert clock.due(2, 0) == clock.phase(2)
    assert clock.due(2, 5) - clock.due(2, 4) == pytest.approx(1 / 8)
    assert clock.offered_fps() == 32
    every = sorted(clock.due(k, i) for k in range(4) for i in range(10))
    assert np.allclose(np.diff(every), 1 / 32)  # together: evenly spaced at the total rate


def test_a_clock_needs_a_rate_and_a_camera():
    with pytest.raises(ValueError):
        Clock(fps=0, cameras=2)
    with pytest.raises(ValueError):
        Clock(fps=8, cameras=0)


def test_each_camera_streams_its_own_order_of_distinct_images_repeatably():
    s = streams(360, 4, 60, seed=14)
    assert [len(x) for x in s] == [60] * 4
    assert all(len(set(x.tolist())) == 60 and x.min() >= 0 and x.max() < 360 for x in s)
    assert len({tuple(x.tolist()) for x in s}) == 4
    assert all((a == b).all() for a, b in zip(s, streams(360, 4, 60, seed=14)))
    assert not all((a == b).all() for a, b in zip(s, streams(360, 4, 60, seed=15)))
    with pytest.raises(ValueError):
        streams(360, 4, 361, seed=14)


def test_a_frame_answered_after_the_next_frame_was_due_is_late_one_unanswered_dropped():
    clock = Clock(fps=10, cameras=2)  # camera 1: frames due at 0.05, 0.15, 0.25, 0.35
    results = [
        result(0, sent=0.05, ended=0.07),      # in time
        result(1, sent=0.15, ended=0.2499),    # just before frame 2 was due: in time
        result(2, sent=0.25, ended=0.36),      # after frame 3 was due (0.35): late
        result(3, sent=0.35, ended=None, status="timeout"),  # dropped
    ]
    o = outcome(results, START, clock, camera=1)
    assert (o.frames, o.answered, o.dropped, o.late, o.sent_late) == (4, 3, 1, 1, 0)
    assert o.start_lag_s == pytest.approx(0.0)
    assert o.sustained_fps == pytest.approx(2 / 0.29)


def test_a_camera_that_started_late_is_timed_from_its_own_clock():
    clock = Clock(fps=10, cameras=1)  # planned at 0.0, 0.1, 0.2; it started 0.3 s late
    o = outcome([result(0, sent=0.3, ended=0.32), result(1, sent=0.4, ended=0.45),
                 result(2, sent=0.5, ended=0.61)], START, clock, camera=0)
    assert (o.late, o.sent_late) == (1, 0)
    assert o.start_lag_s == pytest.approx(0.3)


def test_a_frame_sent_a_whole_interval_after_its_time_counts_as_sent_late():
    clock = Clock(fps=10, cameras=1)
    o = outcome([result(0, sent=0.0, ended=0.01), result(1, sent=0.21, ended=0.22)],
                START, clock, camera=0)
    assert (o.late, o.sent_late) == (1, 1)


def test_the_sustained_rate_is_answers_per_second_between_the_first_and_the_last():
    assert rate([5.0, 5.25, 5.5, 5.75, 6.0]) == 4.0
    assert rate([5.0]) is None and rate([]) is None and rate([5.0, 5.0]) is None
