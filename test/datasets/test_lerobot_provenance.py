"""Provenance of an exported dataset: content hash (checked with coreutils too), tamper detection, card, pseudonyms."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.lerobot_support import episode_provenance, write_dataset

from robot_brain.datasets import dataset_provenance as prov
from robot_brain.datasets import lerobot


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("provenance") / "demo"
    write_dataset(root, (6, 5), cameras=("scene",))
    return root


def _copy(root: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(root, target)
    return target


def test_provenance_json_records_episodes_hash_and_files(exported: Path):
    document = json.loads((exported / "meta/provenance.json").read_text())
    assert document["format"] == prov.PROVENANCE_FORMAT
    assert document["content_hash"]["value"] == prov.dataset_content_hash(exported)
    assert document["content_hash"]["format"] == prov.HASH_FORMAT
    assert document["dataset"]["total_episodes"] == 2 and document["dataset"]["fps"] == 30
    assert [e["episode_index"] for e in document["episodes"]] == [0, 1]
    assert document["episodes"][1]["source"] == episode_provenance(1)
    assert document["episodes"][0]["task"] == "pick the red cube" and document["episodes"][0]["length"] == 6
    assert document["export"]["excluded"] == [{"episode_id": "x", "reason": "no train consent"}]
    assert "meta/info.json" in document["files"] and "data/chunk-000/file-000.parquet" in document["files"]
    assert "README.md" not in document["files"] and "meta/provenance.json" not in document["files"]
    assert prov.verify_provenance(exported).ok


def test_content_hash_is_reproducible_with_coreutils(exported: Path):
    command = (
        "find . -type f ! -path ./README.md ! -path ./meta/provenance.json ! -path ./meta/provenance.seal "
        "! -path '*/.*' -printf '%P\\n' "
        "| LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum"
    )
    result = subprocess.run(["bash", "-c", command], cwd=exported, capture_output=True, text=True, check=True)
    assert result.stdout.split()[0] == prov.dataset_content_hash(exported)


def test_changed_missing_and_added_files_are_detected(exported: Path, tmp_path: Path):
    root = _copy(exported, tmp_path)
    data_file = root / "data/chunk-000/file-000.parquet"
    content = bytearray(data_file.read_bytes())
    content[100] ^= 0xFF
    data_file.write_bytes(bytes(content))
    check = prov.verify_provenance(root)
    assert not check.ok and check.changed == ["data/chunk-000/file-000.parquet"]
    assert "changed: data/chunk-000/file-000.parquet" in check.message()

    (root / "videos/observation.images.scene/chunk-000/file-000.mp4").unlink()
    (root / "data/chunk-000/file-001.parquet").write_bytes(b"extra")
    check = prov.verify_provenance(root)
    assert check.missing == ["videos/observation.images.scene/chunk-000/file-000.mp4"]
    assert check.added == ["data/chunk-000/file-001.parquet"]
    assert check.recorded_hash != check.actual_hash


def test_dataset_card_has_the_hub_header_and_pseudonyms_only(exported: Path):
    card = (exported / "README.md").read_text()
    header, body = card.split("---\n", 2)[1:]
    assert header.splitlines() == [
        'license: "apache-2.0"',
        "task_categories:",
        "- robotics",
        "tags:",
        "- LeRobot",
        "- robot_brain",
        "configs:",
        "- config_name: default",
        "  data_files: data/*/*.parquet",
    ]
    assert "| `op-7f3a9c` | 2 | 11 | consent-op-7f3a9c | export, record, train |" in body
    assert "Excluded at export: 1 episodes (no train consent: 1)." in body
    assert prov.dataset_content_hash(exported) in body
    assert "Labels: failure 1, success 1." in body


def test_identity_keys_and_clear_names_are_refused():
    with pytest.raises(prov.ProvenanceError, match="operator_name"):
        prov.check_no_personal_data({"consent": {"operator_name": "Jane Doe"}})
    with pytest.raises(prov.ProvenanceError, match="pseudonym"):
        prov.check_no_personal_data([{"operator": "Jane Doe"}])
    prov.check_no_personal_data({"operator": "policy:3fa9c2", "robot": {"name": "panda"}})


def test_export_context_with_a_name_is_refused_and_the_folder_stays_unfinished(tmp_path: Path):
    from helpers.lerobot_support import FPS, episode_inputs, features

    root = tmp_path / "named"
    writer = lerobot.create(root, FPS, features(("scene",)))
    columns, images = episode_inputs(4, seed=1, cameras=("scene",))
    writer.add_episode("pick", columns, images=images, provenance=episode_provenance(0))
    with pytest.raises(prov.ProvenanceError, match="email"):
        writer.finalize(export={"contact": {"email": "someone@example.org"}})
    assert (root / "INCOMPLETE.json").exists() and not (root / "meta/info.json").exists()
    summary = writer.finalize(export={"data_root": "/data"})
    assert prov.verify_provenance(root).ok and summary.content_hash == prov.dataset_content_hash(root)
