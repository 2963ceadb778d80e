"""The cameras' frame clock and what became of each frame: pure, no testbed.

Camera ``k`` of ``n`` streams at ``fps`` frames per second; its frame ``i`` is due at
``start + k / (n * fps) + i / fps``: the cameras run at one rate with their phases spread
evenly over a frame interval, as free-running cameras are, not all at one instant. A
frame is *late* when its answer came after the camera's next frame was due, *dropped*
when it got no answer. Due times are taken from the camera's own clock as its sends show
it (an agent that started after its start time paces from when it started: its frames
are not late for that, and ``start_lag_s`` says by how much it started late).

    >>> Clock(fps=10, cameras=4).due(camera=1, frame=2)
    0.225
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hosts.edge_agent import RequestResult


@dataclass(frozen=True)
class Clock:
    """The frame times of ``cameras`` cameras at ``fps``, in seconds from the first frame
    (add the wall-clock start for ``time.time()`` values)."""

    fps: float
    cameras: int

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.cameras < 1:
            raise ValueError(f"a frame clock needs fps > 0 and one camera or more, not "
                             f"fps {self.fps} and {self.cameras} cameras")

    @property
    def interval(self) -> float:
        return 1.0 / self.fps

    def phase(self, camera: int) -> float:
        """When camera ``camera``'s first frame is due."""
        return camera * self.interval / self.cameras

    def due(self, camera: int, frame: int) -> float:
        return self.phase(camera) + frame * self.interval

    def offered_fps(self) -> float:
        """Frames per second of all the cameras together."""
        return self.fps * self.cameras


def streams(n_images: int, cameras: int, frames: int, seed: int) -> list[np.ndarray]:
    """Which images each camera streams: camera ``k`` its own seeded order of the
    ``n_images`` images, its first ``frames`` (at most ``n_images``): every camera a
    different sequence of real images.

    >>> [s.tolist() for s in streams(5, 2, 3, seed=1)]
    [[4, 0, 1], [1, 4, 0]]
    """
    if not 1 <= frames <= n_images:
        raise ValueError(f"frames per camera must be in 1..{n_images}, not {frames}")
    return [np.random.default_rng([seed, k]).permutation(n_images)[:frames]
            for k in range(cameras)]


@dataclass(frozen=True)
class CameraOutcome:
    """What became of one camera's frames."""

    frames: int
    answered: int
    dropped: int
    """Frames without an answer (timed out, abandoned, an error)."""
    late: int
    """Frames answered after the camera's next frame was due."""
    sent_late: int
    """Frames the agent could only send after their own due time had passed by a frame
    interval or more (it had too many in flight)."""
    sustained_fps: float | None
    """Answers per second between the camera's first and last answer (None: fewer than two)."""
    start_lag_s: float
    """How much later than planned the camera's clock started."""


def outcome(results: Sequence[RequestResult], start: float, clock: Clock,
            camera: int) -> CameraOutcome:
    """Account for camera ``camera``'s results (one per frame, ``index`` = frame), its
    first frame planned at wall-clock ``start + clock.phase(camera)``. The camera's clock
    is the earliest its sends show (a send is never before its frame's time, only after
    it when the agent had too many frames in flight)."""
    planned = start + clock.phase(camera)
    origins = [r.sent_at - r.index * clock.interval for r in results if r.sent_at]
    origin = min(origins) if origins else planned
    ok = [r for r in results if r.ok]
    late = sum(r.ended_at > origin + (r.index + 1) * clock.interval for r in ok)
    sent_late = sum(r.sent_at > origin + (r.index + 1) * clock.interval for r in results
                    if r.sent_at)
    return CameraOutcome(len(results), len(ok), len(results) - len(ok), late, sent_late,
                         rate([r.ended_at for r in ok]), origin - planned)


def rate(times: Sequence[float]) -> float | None:
    """Events per second between the first and the last of ``times`` (None: fewer than
    two, or all at one instant).

    >>> rate([10.0, 10.5, 11.0])
    2.0
    """
    if len(times) < 2 or max(times) == min(times):
        return None
    return (len(times) - 1) / (max(times) - min(times))
