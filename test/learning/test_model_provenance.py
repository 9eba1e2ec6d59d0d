"""``robot-brain provenance``: a model traced to its operators, checked against the consent registry *now*."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import rclpy
from helpers.domains import next_domain
from helpers.training_support import ADA, ReachData, cli, copy_data_root, make_reach_data, write_reach_dataset
from rclpy.context import Context
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from robot_brain.consent.audit import read_audit
from robot_brain.consent.events import append_audit
from robot_brain.consent.registry import ConsentRegistry
from robot_brain.embodiment.catalog import bundled_arm_path
from robot_brain.inference.reach_policy import write_reach_policy
from robot_brain.learning.model_provenance import (
    check_model_for_deployment,
    check_model_provenance,
    read_model_provenance,
)
from robot_brain.learning.training import TrainConfig, train
from robot_brain.nodes.policy import PolicyNode
from robot_brain.storage.times import utc_now


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReachData, Path]:
    """A data root whose Ada consents until an expiry a day away, and a tiny model trained on it."""
    data = make_reach_data(tmp_path_factory.mktemp("reach") / "data", camera=False, length=12)
    expiry = utc_now() + timedelta(days=1)
    ConsentRegistry(data.root).enroll(ADA, "record,train,export", expires_at=expiry)  # supersedes her first consent
    model = tmp_path_factory.mktemp("model") / "reach.onnx"
    result = train(data.datasets, model, TrainConfig(steps=20), data_root=data.root, log=lambda _line: None)
    assert result is not None
    return data, model


@pytest.fixture
def site(trained: tuple[ReachData, Path], tmp_path: Path) -> tuple[ReachData, Path]:
    """A private copy of the data root: each test revokes, forgets or purges in its own registry."""
    data, model = trained
    return copy_data_root(data, tmp_path / "root"), model


def test_all_clear_exits_0_and_traces_every_operator(site: tuple[ReachData, Path]) -> None:
    data, model = site
    status, out, err = cli("provenance", str(model), "--data-root", str(data.root), "--json")
    report = json.loads(out)
    assert status == 0 and err == "" and report["ok"] is True and report["flagged"] == []
    assert report["episodes"] == 11 and report["excluded_at_training"] == 1
    assert [d["name"] for d in report["datasets"]] == ["reach-panda", "reach-ur5"]
    operators = {o["operator"]: o for o in report["operators"]}
    assert set(operators) == {data.ada, "scripted"} and data.bob not in out  # Bob's episode was never used
    ada = operators[data.ada]
    assert ada["status"] == "ok" and ada["episodes"] == 4 and ada["scopes_now"] == ["record", "train", "export"]
    assert ada["consent_ids_at_training"] == [ada["current_consent"]] != [data.ada_consent]  # the re-enrolment's
    assert ada["consents"][0]["expires_at"] is not None and ada["consents"][0]["status_now"] == "active"
    assert operators["scripted"]["status"] == "not needed" and not operators["scripted"]["flagged"]
    status, text, _ = cli("provenance", str(model), "--data-root", str(data.root))
    assert status == 0 and "all clear" in text and "reach-panda" in text


def test_revoked_after_training_is_flagged_loudly(site: tuple[ReachData, Path]) -> None:
    data, model = site
    ConsentRegistry(data.root).revoke(ADA, "train")
    status, out, err = cli("provenance", str(model), "--data-root", str(data.root))
    assert status == 1
    assert "trained on reach-ur5 episode 3" in out and "episodes used: 0, 2, 3, 4, 5" in out
    assert f"{data.ada}" in out and "FLAGGED: revoked" in out and "CONSENT NO LONGER COVERS THIS MODEL" in out
    assert "WARNING" in err and data.ada in err and "retrain without those episodes" in err
    status, out, _ = cli("provenance", str(model), "--data-root", str(data.root), "--json")
    report = json.loads(out)
    assert status == 1 and report["flagged"] == [data.ada]
    ada = next(o for o in report["operators"] if o["operator"] == data.ada)
    assert ada["status"] == "revoked" and "train" in ada["consents"][0]["revoked_at"]
    assert [(r["dataset"], r["episode_index"]) for r in ada["episode_refs"]] == [
        ("reach-panda", 0),
        ("reach-panda", 2),
        ("reach-panda", 4),
        ("reach-ur5", 3),
    ]
    assert [d["episodes_used"] for d in report["datasets"]] == [[0, 1, 2, 3, 4, 5], [0, 2, 3, 4, 5]]
    assert ADA not in out and "Lovelace" not in out  # the pseudonym only, never the name


def test_expired_forgotten_and_purged_are_flagged(site: tuple[ReachData, Path]) -> None:
    data, model = site
    record = read_model_provenance(model)
    later = check_model_provenance(record, data.root, at=utc_now() + timedelta(days=2))
    assert [(o.operator, o.status) for o in later.flagged] == [(data.ada, "expired")]

    append_audit(data.root, "data.purged", {"operator": data.ada, "episodes": ["x"], "datasets": []})
    purged = check_model_provenance(record, data.root)
    assert [(o.operator, o.status) for o in purged.flagged] == [(data.ada, "purged")]
    assert any("data.purged at" in p for p in purged.flagged[0].problems)

    ConsentRegistry(data.root).forget(data.ada)
    forgotten = check_model_provenance(record, data.root)
    assert forgotten.flagged[0].status == "forgotten" and not forgotten.ok


def test_no_registry_cannot_confirm_consent(site: tuple[ReachData, Path]) -> None:
    data, model = site
    shutil.rmtree(data.root / "consent")
    status, out, _ = cli("provenance", str(model), "--data-root", str(data.root), "--json")
    report = json.loads(out)
    assert status == 1 and report["flagged"] == [data.ada]
    assert next(o for o in report["operators"] if o["operator"] == data.ada)["status"] == "unverifiable"


def test_scripted_only_model_needs_no_registry(tmp_path: Path) -> None:
    root = tmp_path / "root"
    dataset = root / "datasets" / "scripted"
    write_reach_dataset(dataset, "ur5", [("scripted", None, ())] * 3, length=12)
    model = tmp_path / "scripted.onnx"
    train([dataset], model, TrainConfig(steps=5), data_root=root, log=lambda _line: None)
    # No registry was needed or created (the consent folder holds the seal key and the audit log).
    assert not (root / "consent" / "registry.json").exists()
    status, out, _ = cli("provenance", str(model), "--data-root", str(root))
    assert status == 0 and "all clear" in out


def test_training_is_logged_in_the_audit_log(trained: tuple[ReachData, Path]) -> None:
    data, model = trained
    (entry,) = [e for e in read_audit(data.root) if e.kind == "model.trained"]
    assert entry.details["model_sha256"] == read_model_provenance(model).sha256
    assert entry.details["operators"] == sorted([data.ada, "scripted"]) and entry.details["episodes"] == 11


def test_bad_input_exits_2(tmp_path: Path) -> None:
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    status, out, err = cli("provenance", str(text))
    assert status == 2 and out == "" and "expected an ONNX model, found a file that is not one" in err
    hand_written = write_reach_policy(tmp_path / "reach.onnx")
    status, _, err = cli("provenance", str(hand_written))
    assert status == 2 and "expected training provenance in metadata 'robot_brain.provenance', found none" in err
    status, _, err = cli("provenance", str(tmp_path / "missing.onnx"))
    assert status == 2 and err.count("\n") == 1


def _configure_policy(model: Path, data_root: Path, **params: object) -> tuple[bool, str, PolicyNode, Context]:
    """A real policy node (its own rclpy context) configured with ``model``: (succeeded, error, node, context)."""
    context = Context()
    rclpy.init(context=context, domain_id=next_domain())
    values = {"model_path": str(model), "consent_data_root": str(data_root), "providers": ["cpu"],
              "urdf_path": str(bundled_arm_path("panda")), **params}
    node = PolicyNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    succeeded = node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    return succeeded, node.startup_error, node, context


def _close(node: PolicyNode, context: Context) -> None:
    node.destroy_node()
    context.try_shutdown()


@pytest.mark.dds
def test_the_policy_node_refuses_a_model_whose_peoples_consent_was_withdrawn(site: tuple[ReachData, Path]) -> None:
    """Erasure reaches deployment: revoked train consent stops the model driving an arm, unless allowed, loudly."""
    data, model = site
    succeeded, error, node, context = _configure_policy(model, data.root)
    _close(node, context)
    assert succeeded, error
    ConsentRegistry(data.root).revoke(ADA, "train")
    succeeded, error, node, context = _configure_policy(model, data.root)
    _close(node, context)
    assert not succeeded and "refused" in error and f"{data.ada} (revoked)" in error and "Lovelace" not in error
    succeeded, error, node, context = _configure_policy(model, data.root, allow_withdrawn_consent=True)
    try:
        assert succeeded, error
        level, message, _values, _hardware = node.diagnostics()
        assert level == b"\x01" and "against its people's consent" in message
    finally:
        _close(node, context)


def test_a_model_without_provenance_or_a_registry_to_check_it_runs_with_a_warning(
        site: tuple[ReachData, Path], tmp_path: Path) -> None:
    data, model = site
    hand_written = write_reach_policy(tmp_path / "hand.onnx")
    check = check_model_for_deployment(hand_written, data.root)
    assert check.refusal == "" and "no training provenance" in check.warning
    elsewhere = check_model_for_deployment(model, tmp_path / "a-cell-computer")
    assert elsewhere.refusal == "" and "not verifiable here" in elsewhere.warning
    forged = tmp_path / "forged.onnx"
    forged.write_bytes(b"\x00not an onnx model")
    assert "cannot be read" in check_model_for_deployment(forged, data.root).refusal
