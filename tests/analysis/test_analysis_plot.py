"""`report --plot`: a log-log roofline image is written, in PNG or SVG."""
import pytest

from analysis import plot, report
from analysis.errors import AnalysisError
from test_analysis_roofline import GiB, case, env, h200, rec


def records():
    big = 8 * GiB
    return (h200(env(0)) + h200(env(1), hbm=4.0e12)
            + [case("decode", "decode-attention", big, big, 2e12),
               case("decode", "decode-attention", big, big, 9e12, params={"batch": 1})])  # flagged: above the roof


def test_png_is_written(tmp_path):
    path = tmp_path / "plots" / "roofline.png"
    text = report.render(records(), plot=str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert f"Written to {path}" in text


def test_svg_is_written(tmp_path):
    path = tmp_path / "roofline.svg"
    plot.roofline_plot(records(), path, spec="H100-SXM")
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "HBM spec 3.35 TB/s" in text


def test_bad_plot_requests(tmp_path):
    with pytest.raises(AnalysisError, match="must end in .png or .svg"):
        plot.roofline_plot(records(), tmp_path / "roofline.jpg")
    collective_only = [rec("nccl-all-reduce", "collective", "torch.distributed", vendor=True, nbytes=1 << 20,
                           params={"op": "all-reduce", "message_bytes": 1 << 20, "world_size": 2})]
    with pytest.raises(AnalysisError, match="nothing to plot"):
        plot.roofline_plot(collective_only, tmp_path / "roofline.png")
