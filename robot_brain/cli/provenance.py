"""``robot-brain provenance MODEL.onnx [--data-root DIR] [--json]``: may this model still exist?

Follows the model's provenance (metadata ``robot_brain.provenance``, written by ``robot-brain
train``): model → datasets (content hashes) → episodes → operator pseudonyms → the consent
each had at training time, and checks every operator against the data root's consent
registry **now**. Exit status:

* 0: every operator's consent still covers ``train`` (or none was needed);
* 1: at least one operator revoked ``train``, expired, was forgotten or purged, or cannot be
  confirmed (unknown pseudonym, no registry): a loud warning names them and says what to do;
* 2: bad input: not an ONNX file, or a model without training provenance.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from robot_brain.learning.model_provenance import check_model_provenance, read_model_provenance
from robot_brain.storage.paths import add_data_root_argument

EXIT_OK, EXIT_FLAGGED = 0, 1


def register(subparsers: Any) -> None:
    """Add ``provenance``."""
    parser = subparsers.add_parser(
        "provenance",
        help="trace a trained model to its datasets, episodes and operators; flag consent revoked since",
        description=(
            "Show a trained model's provenance and check every operator's consent against the current registry: "
            "exit 1 when training on their data is no longer covered."
        ),
    )
    parser.add_argument("model", metavar="MODEL.onnx", help="model written by robot-brain train")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_data_root_argument(parser)
    parser.set_defaults(func=_provenance)


def _provenance(args: argparse.Namespace) -> int:
    record = read_model_provenance(args.model)
    report = check_model_provenance(record, args.data_root)
    document = report.to_dict()
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        _print_report(document, record.provenance)
    if not report.ok:
        flagged = ", ".join(document["flagged"]) or "see problems"
        print(
            f"robot-brain provenance: WARNING: {args.model} was trained on data whose consent no longer covers "
            f"training ({flagged}); stop deploying it and retrain without those episodes",
            file=sys.stderr,
        )
        return EXIT_FLAGGED
    return EXIT_OK


def _print_report(document: dict[str, Any], provenance: dict[str, Any]) -> None:
    result = provenance.get("result") or {}
    software = provenance.get("software") or {}
    print(f"model      {document['model']}  ({document['name']}, sha256 {document['sha256'][:16]}…)")
    commit = software.get("git_commit")
    print(
        f"trained    {document['trained']} with robot_brain {software.get('version')}"
        f"{' @ ' + commit[:12] if commit else ''}, torch {software.get('torch')}; "
        f"{result.get('steps')} steps, final loss {result.get('final_loss')}"
    )
    for dataset in document["datasets"]:
        used = dataset.get("episodes_used", [])
        print(
            f"dataset    {dataset.get('name')}  content hash {dataset.get('content_hash')}  "
            f"episodes used: {', '.join(map(str, used)) or 'none'}"
        )
    print(
        f"episodes   {document['episodes']} used ({document['frames']} frames), "
        f"{document['excluded_at_training']} excluded at training; consent checked then at "
        f"{document['consent_checked_at_training']}"
    )
    print(f"checked    against {document['data_root']} at {document['checked_at']}")
    print()
    print(f"{'operator':<22} {'kind':<9} {'episodes':>8} {'consent at training':<20} {'scopes now':<22} status")
    for operator in document["operators"]:
        consents = ",".join(operator["consent_ids_at_training"]) or "-"
        scopes = ",".join(operator["scopes_now"]) if operator["kind"] == "human" else "n/a"
        mark = "FLAGGED: " if operator["flagged"] else ""
        print(
            f"{operator['operator']:<22} {operator['kind']:<9} {operator['episodes']:>8} {consents:<20} "
            f"{scopes or '-':<22} {mark}{operator['status']}"
        )
        for problem in operator["problems"]:
            print(f"{'':<22} - {problem}")
        if operator["flagged"]:
            for ref in operator["episode_refs"]:
                print(f"{'':<22}   trained on {ref['dataset']} episode {ref['episode_index']} ({ref['episode_id']})")
        for consent in operator["consents"]:
            revoked = ", ".join(f"{s} {t}" for s, t in (consent.get("revoked_at") or {}).items()) or "none"
            print(
                f"{'':<22}   {consent['consent_id']}: granted {consent['granted_at']}, expires "
                f"{consent.get('expires_at') or 'never'}, revoked {revoked}, now {consent['status_now']}"
            )
    for problem in document["problems"]:
        print(f"problem: {problem}")
    print()
    if document["ok"]:
        print("all clear: every operator's consent still covers training")
    else:
        print("!" * 78)
        print(f"!! CONSENT NO LONGER COVERS THIS MODEL: {', '.join(document['flagged']) or 'see problems above'}")
        print("!" * 78)
