"""One figure of a benchmark, written as PNG: the set-up every benchmark's plot shares.

    with figure(Path("results/x.png"), "Title") as ax:
        ax.barh(["a", "b"], [1, 2])
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def figure(path: Path, title: str, size: tuple[float, float] = (7, 3)) -> Iterator:
    """Axes to draw on; on leaving, the title is set and the figure saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    try:
        yield ax
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
