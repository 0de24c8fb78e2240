"""The cost-quality curve of bench/routing_quality.py on RouterBench: the points it measured
(written as JSON beside a PNG of the figure) and the plotly figure the console's Costs page and
the PNG share."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import plotly.graph_objects as go

RESULTS = Path(__file__).resolve().parent / "curves"
CURVE_FILE = RESULTS / "routerbench_curve.json"


@dataclass(frozen=True)
class Point:
    """One router on RouterBench's test files: quality kept and cost saved, as shares of GPT-4's."""

    label: str
    group: str  # "seed policy", "tolerance rule", "difficulty threshold", "reference"
    quality: float
    saved: float


def write(points: Sequence[Point], command: str, path: Path = CURVE_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"command": command, "points": [asdict(p) for p in points]}, indent=1) + "\n",
                    encoding="utf-8")


def read(path: Path = CURVE_FILE) -> tuple[str, list[Point]] | None:
    """The measured points, or None when the bench has not written them."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return str(raw["command"]), [Point(**p) for p in raw["points"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def figure(points: Sequence[Point]) -> go.Figure:
    fig = go.Figure()
    for group, mode in (("tolerance rule", "lines+markers"), ("difficulty threshold", "lines+markers"),
                        ("reference", "markers"), ("seed policy", "markers")):
        chosen = [p for p in points if p.group == group]
        if not chosen:
            continue
        ordered = sorted(chosen, key=lambda p: p.saved) if mode.startswith("lines") else chosen
        fig.add_trace(go.Scatter(
            x=[p.saved for p in ordered], y=[p.quality for p in ordered], mode=mode, name=group,
            text=[p.label for p in ordered], hovertemplate="%{text}<br>cost saved %{x:.1%}<br>quality %{y:.3f}",
            marker={"size": 14 if group == "seed policy" else 8,
                    "symbol": "star" if group == "seed policy" else "circle"}))
    fig.add_hline(y=0.95, line_dash="dot", annotation_text="0.95 of GPT-4's quality")
    fig.add_vline(x=0.5, line_dash="dot", annotation_text="50% saved")
    fig.update_layout(title="Quality kept vs cost saved on RouterBench's test files (shares of always-GPT-4)",
                      xaxis_title="cost saved", yaxis_title="quality kept", xaxis_tickformat=".0%")
    return fig


def write_png(points: Sequence[Point], path: Path) -> str:
    """The figure as a PNG through kaleido and Debian's chromium; what happened, in words."""
    os.environ.setdefault("BROWSER_PATH", "/usr/bin/chromium")
    try:
        figure(points).write_image(str(path), width=1000, height=620)
    except Exception as exc:  # kaleido raises its own errors when no browser can be driven
        return f"no PNG ({exc.__class__.__name__}: {exc}); the JSON has the points"
    return f"wrote {path}"
