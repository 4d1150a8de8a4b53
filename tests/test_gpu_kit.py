"""benchmarks/gpu_kit.py: every step of every part is a command its script accepts, on data the kit
converts, and a call never asks for more reports than the device tool sends back."""

import importlib
from pathlib import Path

import pytest
from conftest import REPO

from recbole_mm.dataset_tools.convert import FORMATS


@pytest.fixture
def gpu_kit(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    return importlib.import_module("gpu_kit")


@pytest.mark.parametrize("part", ["tests", "fast_path", "lfmmlgcn", "cobrar", "extract"])
@pytest.mark.parametrize("smoke", [False, True])
def test_every_step_is_a_command_its_script_accepts(gpu_kit, part, smoke, tmp_path):
    steps = gpu_kit.steps(part, "cuda", smoke)
    assert steps
    for step in steps:
        argv = step.command(tmp_path)
        if argv[1:4] == ["-P", "-m", "pytest"]:
            for test in (a for a in argv if a.startswith("tests/")):
                file, _, function = test.partition("::")
                source = (REPO / file).read_text()
                assert not function or f"def {function.split('[')[0]}(" in source, test
            continue
        script = Path(argv[1])
        assert script.parent.name == "benchmarks" and (REPO / script).is_file()
        args = importlib.import_module(script.stem).parse_args(argv[2:])
        assert args.device == "cuda"
        assert (getattr(args, "output", None) == str(tmp_path / step.output)) == step.flag
        if smoke and hasattr(args, "epochs"):
            assert args.epochs == 1
        if "--data-path" in argv:  # data in the kit's folder: converted before the step runs
            assert args.dataset in step.datasets and args.data_path == str(gpu_kit.DATA)


def test_conversions_use_known_formats_on_packed_sources(gpu_kit):
    for name, (fmt, source, *_) in gpu_kit.CONVERSIONS.items():
        assert fmt in FORMATS and source in gpu_kit.SOURCES, name
    assert set(gpu_kit.PARTS) == {"tests", "fast_path", "lfmmlgcn", "cobrar", "extract"}


def test_reports_of_one_call_fit_what_the_device_tool_sends_back(gpu_kit, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="sends back 8 files"):
        gpu_kit.main(["--kit", str(tmp_path / "kit"), "run", *gpu_kit.PARTS, "--out", str(out)])
    assert not out.exists()  # refused before installing or writing anything
    # the README's call fits
    assert len(gpu_kit.plan(["fast_path", "lfmmlgcn", "extract"], "cuda", False)) <= gpu_kit.OUT_FILES_LIMIT


def test_every_part_measures_its_headline_before_any_other_step_runs(gpu_kit):
    parts = ["fast_path", "lfmmlgcn", "extract"]
    order = [step.output for step in gpu_kit.plan(parts, "cuda", False)]
    assert order == [
        "fast_path_gpu_ml-1m.txt", "lfmmlgcn_speed_gpu_lastfm-2k.txt", "text_extraction_gpu.txt",
        "image_extraction_gpu.txt", "fast_path_gpu_lastfm-2k.txt", "fast_path_gpu_amazon-baby.txt",
        "lfmmlgcn_speed_gpu_ml-100k.txt",
    ]
    assert sorted(order) == sorted(s.output for p in parts for s in gpu_kit.steps(p, "cuda", False))
