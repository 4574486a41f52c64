"""A PNG of latency distributions (matplotlib, from the dev extras)."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib.metadata import version


def latency_png(path: str, series: dict[str, list[float]], title: str) -> None:
    """Histogram and cumulative distribution of each series (seconds) in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 4.5))
    # The histogram stops at 1.5x the highest p99, so the tail does not squash the body;
    # the cumulative plot (log scale) shows everything.
    top = 1.5 * max(sorted(v)[int(0.99 * (len(v) - 1))] for v in series.values()) * 1000
    bins = [i * top / 80 for i in range(81)]
    for label, values in series.items():
        millis = sorted(v * 1000 for v in values)
        beyond = sum(m > top for m in millis)
        hist.hist(
            millis,
            bins=bins,
            histtype="step",
            linewidth=1.5,
            label=f"{label} ({beyond} beyond {top:.0f} ms)",
        )
        cdf.plot(millis, [(i + 1) / len(millis) for i in range(len(millis))], label=label)
    hist.set_xlabel("ms")
    hist.set_ylabel("count")
    hist.legend(fontsize=8)
    cdf.set_xlabel("ms")
    cdf.set_ylabel("fraction at or below")
    cdf.set_xscale("log")
    cdf.grid(True, which="both", alpha=0.3)
    cdf.legend(fontsize=8)
    stamp = (
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()} Linux, "
        f"Python {platform.python_version()}, fastmcp {version('fastmcp')}, mcp {version('mcp')}"
    )
    fig.suptitle(f"{title}\n{stamp}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
