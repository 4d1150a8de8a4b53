"""The installed layout: everything under recbole_mm, YAML defaults included, entry points declared."""

import subprocess
import sys
import zipfile

from conftest import REPO


def test_wheel_has_only_namespaced_packages_and_ships_the_yaml(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(REPO)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("recbole_mm-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = {name.split("/")[0] for name in names}
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        entry_points = archive.read(entry_points).decode()
    assert "recbole_mm" in top_level
    assert all(t == "recbole_mm" or t.endswith(".dist-info") for t in top_level), top_level
    assert "recbole_mm/properties/overall.yaml" in names
    assert "recbole_mm/plugins/__init__.py" in names and "recbole_mm/dataset_tools/__init__.py" in names
    for script in ("run_recbole = recbole_mm.cli:run_recbole_main", "recbole-mm = recbole_mm.cli:main"):
        assert script in entry_points
    assert "[recbole_mm.plugins]" in entry_points
