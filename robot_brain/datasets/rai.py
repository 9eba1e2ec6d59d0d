"""Responsible-AI metadata of an exported dataset: the Croissant RAI data-collection fields.

Written by the export beside the other meta files as ``meta/croissant_rai.json`` (JSON-LD,
``dct:conformsTo`` ``http://mlcommons.org/croissant/RAI/1.0``; covered by the dataset content
hash like every meta file but the provenance and its seal) and summarised in the dataset card.
Property names are those of the Croissant RAI 1.0 vocabulary (``rai:dataCollection``,
``rai:dataCollectionType``, ``rai:dataCollectionRawData``, ``rai:dataCollectionTimeframe`` as
an ISO 8601 interval, ``rai:dataCollectionMissingData``, ``rai:dataPreprocessingProtocol``,
``rai:personalSensitiveInformation``, ``rai:dataUseCases``, ``rai:dataSocialImpact``,
``rai:dataLimitations``, ``rai:dataReleaseMaintenancePlan``); the legal bases and retention
periods of the episodes it holds, which RAI has no term for, are ``robot_brain:legalBases``
and ``robot_brain:retention``.

Everything is derived from known provenance fields (operator kinds, pseudonyms *counted*,
recording times, the consent decision at export), never from free text and never from a name:
the document holds no pseudonym either, only how many operators each basis covers. It holds
no time of its own (no "created"), so re-exporting the same episodes writes the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from robot_brain.consent.legal import LEGAL_BASIS_ARTICLES

RAI_PATH = "meta/croissant_rai.json"
RAI_CONFORMS_TO = "http://mlcommons.org/croissant/RAI/1.0"
CONTEXT = {
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    "robot_brain": "urn:robot-brain:",
}
UNKNOWN_BASIS = "unknown"
"""A person's episode whose provenance lacks the consent decision at export (not written by the exporter)."""


def _source(episode: Mapping[str, Any]) -> Mapping[str, Any]:
    source = episode.get("source")
    return source if isinstance(source, Mapping) else {}


def _is_person(source: Mapping[str, Any]) -> bool:
    operator = source.get("operator")
    kind = source.get("operator_kind")
    return kind == "human" or (isinstance(operator, str) and operator.startswith("op-"))


def collection_summary(episodes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts by legal basis and by retention period (operators = distinct pseudonyms), the timeframe, the kinds.

    ``episodes`` are ``meta/provenance.json`` entries (``source``: the manifest plus
    ``consent_at_export``). A recorded episode split into several dataset episodes counts once.
    """
    bases: dict[str, dict[str, Any]] = {}
    retention: dict[int | None, dict[str, Any]] = {}
    machine: set[str] = set()
    people: set[str] = set()
    starts: list[str] = []
    ends: list[str] = []
    for position, episode in enumerate(episodes):
        source = _source(episode)
        recorded = str(source.get("episode_id") or f"#{position}")
        for key, bucket in (("start_time", starts), ("end_time", ends)):
            if isinstance(source.get(key), str):
                bucket.append(source[key])
        if not _is_person(source):
            machine.add(recorded)
            continue
        operator = str(source.get("operator"))
        people.add(operator)
        decision = source.get("consent_at_export") if isinstance(source.get("consent_at_export"), Mapping) else {}
        basis = decision.get("consent_legal_basis") or UNKNOWN_BASIS
        entry = bases.setdefault(str(basis), {"operators": set(), "episodes": set(), "agreements": set()})
        entry["operators"].add(operator)
        entry["episodes"].add(recorded)
        if isinstance(decision.get("consent_agreement"), str):
            entry["agreements"].add(decision["consent_agreement"])
        days = decision.get("consent_retention_days")
        days = days if isinstance(days, int) and not isinstance(days, bool) else None
        kept = retention.setdefault(days, {"operators": set(), "episodes": set(), "ends": []})
        kept["operators"].add(operator)
        kept["episodes"].add(recorded)
        if isinstance(decision.get("retention_ends_at"), str):
            kept["ends"].append(decision["retention_ends_at"])
    timeframe = f"{min(starts)}/{max(ends or starts)}" if starts else None
    return {
        "people": len(people),
        "machine_episodes": len(machine),
        "timeframe": timeframe,
        "legal_bases": [
            {
                "legal_basis": basis,
                "article": LEGAL_BASIS_ARTICLES.get(basis, "not recorded in this dataset's provenance"),
                "operators": len(entry["operators"]),
                "episodes": len(entry["episodes"]),
                "agreements": sorted(entry["agreements"]),
            }
            for basis, entry in sorted(bases.items())
        ],
        "retention": [
            {
                "retention_days": days,
                "operators": len(entry["operators"]),
                "episodes": len(entry["episodes"]),
                "first_expiry": min(entry["ends"]) if entry["ends"] else None,
            }
            for days, entry in sorted(retention.items(), key=lambda item: (item[0] is None, item[0] or 0))
        ],
    }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _has_camera(info: Mapping[str, Any]) -> bool:
    return any(spec.get("dtype") == "video" for spec in (info.get("features") or {}).values())


def rai_document(
    info: Mapping[str, Any],
    episodes: Sequence[Mapping[str, Any]],
    export: Mapping[str, Any] | None = None,
    *,
    title: str | None = None,
) -> dict[str, Any]:
    """The ``meta/croissant_rai.json`` document (see the module docstring)."""
    summary = collection_summary(episodes)
    export = export or {}
    camera = _has_camera(info)
    types = []
    if summary["people"]:
        types.append("Direct measurement")
    if summary["machine_episodes"]:
        types.append("Software Collection")
    bases = ", ".join(
        f"{item['legal_basis']} ({_count(item['operators'], 'operator')})" for item in summary["legal_bases"]
    ) or "none (no person's data)"
    periods = [item["retention_days"] for item in summary["retention"] if item["retention_days"]]
    first_expiry = min((item["first_expiry"] for item in summary["retention"] if item["first_expiry"]), default=None)
    document: dict[str, Any] = {
        "@context": dict(CONTEXT),
        "@type": "sc:Dataset",
        "dct:conformsTo": RAI_CONFORMS_TO,
        "name": title or "robot_brain demonstrations",
        "rai:dataCollection": (
            f"Robot demonstrations recorded in a work cell by robot_brain's recorder: "
            f"{_count(summary['people'], 'human operator')} teleoperating the arm and "
            f"{_count(summary['machine_episodes'], 'episode')} driven by scripted experts or policies. "
            "A person is recorded only when the site's consent registry holds an "
            "enrolment for them with a legal basis and the 'record' scope; every episode was checked again at "
            "export time (scopes, legal basis, retention period)."
        ),
        "rai:dataCollectionType": types,
        "rai:dataCollectionRawData": (
            "ROS 2 bags (MCAP) of joint states, arm and gripper commands, the perceived target"
            + (" and camera images" if camera else "")
            + ", with a manifest per episode (operator pseudonym, consent id and scopes, robot and URDF SHA-256)."
        ),
        "rai:dataCollectionTimeframe": summary["timeframe"],
        "rai:dataCollectionMissingData": (
            "Frames missing an input (joint state, command, target, image) are dropped and counted by reason per "
            "episode; an episode is cut into segments at gaps. Counts are in meta/provenance.json."
        ),
        "rai:dataPreprocessingProtocol": (
            f"Every stream resampled onto a {info.get('fps')} Hz grid by receive time; tool poses computed by "
            "forward kinematics of the recorded robot description."
        ),
        "rai:personalSensitiveInformation": (
            f"{_count(summary['people'], 'operator')} appear by pseudonym only (op- plus an HMAC of the name under "
            "a key that stays on the recording site); no name is part of the dataset. Their demonstrations are "
            "behavioural data of people at work (how they move the arm)"
            + (", and camera video of the cell may show them or bystanders" if camera else "")
            + f". Legal bases: {bases}."
        ),
        "rai:dataUseCases": (
            "Training and evaluating robot manipulation policies (imitation learning), as far as the operators' "
            "scopes allow: every human episode had 'train' consent at export"
            + (" and 'export' consent to leave the site" if export.get("leaves_data_root") else
               "; the dataset stayed on the site (leaving it needs 'export' consent, checked at export)")
            + ". Not for assessing, ranking or monitoring individual operators."
        ),
        "rai:dataSocialImpact": (
            "Recorded at a workplace, where consent is presumed not to be freely given between employer and "
            "employee: each enrolment records its legal basis (consent, collective agreement, or legitimate "
            "interest with the right to object), and an objection or revocation removes a person's episodes "
            "from every later export and training run. Use of the data to evaluate workers' performance would "
            "be workplace monitoring the bases above do not cover."
        ),
        "rai:dataLimitations": (
            "Demonstrations of one robot in one cell by few operators; a policy trained on it reflects their "
            "habits and that cell's layout and lighting."
        ),
        "rai:dataReleaseMaintenancePlan": (
            "Episodes expire after their enrolment's retention period"
            + (f" ({', '.join(str(days) for days in sorted(set(periods)))} days from recording)" if periods else "")
            + (f"; the first expires {first_expiry}" if first_expiry else "")
            + ". Expired, revoked or objected episodes are excluded from training; `robot-brain data purge "
            "--expired` (or --operator) marks this dataset stale or rebuilds it without them."
        ),
        "robot_brain:legalBases": summary["legal_bases"],
        "robot_brain:retention": summary["retention"],
    }
    return document


def rai_bytes(document: Mapping[str, Any]) -> bytes:
    """The file's bytes: indented, keys in order, a final newline (deterministic)."""
    return (json.dumps(document, indent=4, ensure_ascii=False) + "\n").encode("utf-8")


def card_lines(info: Mapping[str, Any], provenance: Mapping[str, Any]) -> list[str]:
    """The card's ``Responsible AI`` section: the RAI fields, the legal bases and retention by operator count."""
    episodes = list(provenance.get("episodes") or [])
    document = rai_document(info, episodes, provenance.get("export") or {})
    lines = ["", "## Responsible AI (Croissant RAI)", "",
             f"Machine-readable in `{RAI_PATH}` ({RAI_CONFORMS_TO}).", ""]
    for key, value in document.items():
        if key.startswith("rai:") and value:
            shown = ", ".join(value) if isinstance(value, list) else str(value)
            lines.append(f"- **{key}**: {shown.replace('|', '/')}")
    lines += ["", "### Legal bases and retention", ""]
    bases = document["robot_brain:legalBases"]
    if not bases:
        lines.append("No episode of a person: no legal basis or retention period applies.")
        return lines
    lines += ["| legal basis | operators (pseudonyms) | recorded episodes | agreement |", "| --- | --- | --- | --- |"]
    for item in bases:
        agreements = ", ".join(item["agreements"]) or "-"
        lines.append(f"| {item['legal_basis']}: {item['article']} | {item['operators']} | {item['episodes']} | "
                     f"{agreements.replace('|', '/')} |")
    lines += ["", "| retention | operators (pseudonyms) | recorded episodes | first expiry |",
              "| --- | --- | --- | --- |"]
    for item in document["robot_brain:retention"]:
        days = f"{item['retention_days']} days" if item["retention_days"] else "none recorded"
        lines.append(f"| {days} | {item['operators']} | {item['episodes']} | {item['first_expiry'] or '-'} |")
    return lines


__all__ = ["RAI_CONFORMS_TO", "RAI_PATH", "card_lines", "collection_summary", "rai_bytes", "rai_document"]
