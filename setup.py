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


# RecBole 1.2.1 pins ray<=2.6.3. Ray 2.6.3 needs pkg_resources (setuptools<81) and numpy<2 (its tune
# logger uses np.bool8); its storage layer needs pyarrow, whose releases >=18 need numpy 2; pandas 3
# needs numpy 2. Without Ray (e.g. recbole installed --no-deps on Python 3.12) the core runs on
# numpy 2 and pandas 3 too: tests/test_numpy2_no_ray.py checks it.
INSTALL_REQUIRES = [
    "recbole==1.2.1",
    "ray[tune]==2.6.3",
    "torch>=2.6",
    "torch-geometric>=2.5",
    "transformers>=4.40",
    "timm>=1.0",
    "pandas>=2.0,<3",
    "numpy>=1.24,<2",
    "scipy>=1.10",
    "pyarrow<18",
    "setuptools<81",
    "pyyaml>=6",
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
    # faiss: RecBole's NCL clusters with it (the test suite trains every RecBole general model)
    extras_require={"test": ["pytest>=7", "faiss-cpu>=1.7"]},
    entry_points={
        "console_scripts": [
            "run_recbole = recbole_mm.cli:run_recbole_main",
            "recbole-mm = recbole_mm.cli:main",
        ],
        "recbole_mm.plugins": ["cobrar = recbole_mm.plugins.cobrar"],
    },
    classifiers=[
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
