"""``robot-brain consent``: who may be recorded, trained on and exported at this site.

* ``enroll OPERATOR --scope record,train,export --legal-basis BASIS [--agreement REF]
  [--retention-days N] [--expires DATE]``: record that a person may be recorded, and on which
  legal basis (``consent``, ``collective_agreement`` with the agreement's reference,
  ``legitimate_interest``; required: between employer and employee consent is presumed not
  freely given) and for how long their episodes are kept (default 365 days from each
  recording); prints the pseudonym that episodes and datasets will carry instead of the name.
* ``revoke OPERATOR [--scope ...]``: revoke scopes (all when omitted) from now on.
* ``object OPERATOR``: the person objects (legitimate interest, GDPR Art. 21) or opts out:
  honoured exactly like ``revoke`` of every scope, logged as an objection.
* ``list [--json]``, ``show OPERATOR [--json]``: the registry, for the local site user (names shown).
* ``verify [--json]``: the audit log's hash chain and the registry against it; exit 1 when
  anything was edited, deleted or reordered, naming the first bad entry.

Every subcommand takes ``--data-root DIR`` (default ``$ROBOT_BRAIN_DATA_ROOT``, else
``~/.local/share/robot_brain``). User errors (unknown operator, bad scope, bad date, a corrupt
registry) exit 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from robot_brain.consent.legal import (
    DEFAULT_RETENTION_DAYS,
    LEGAL_BASIS_ARTICLES,
    MAX_RETENTION_DAYS,
    OBJECTION_MEANING,
)
from robot_brain.consent.operators import SCOPES, non_human_kind, parse_expiry
from robot_brain.consent.registry import ConsentRecord, ConsentRegistry, EnrolledOperator, verify_consent
from robot_brain.storage.paths import DATA_ROOT_HELP, DataLayout, add_data_root_argument
from robot_brain.storage.times import format_time, utc_now

EXIT_OK, EXIT_TAMPERED = 0, 1
_SCOPE_LIST = ",".join(SCOPES)


def register(subparsers: Any) -> None:
    """Add ``consent`` and its actions."""
    parser = subparsers.add_parser(
        "consent",
        help="enrol operators, revoke and inspect their consent, verify the audit log",
        description=(
            "The consent registry: operators are pseudonymous (an HMAC of the name under a per-site key); "
            "names stay in the registry, only pseudonyms reach episodes and datasets. "
            "Every change is appended to a hash-chained audit log."
        ),
    )
    parser.add_argument("--data-root", dest="data_root_group", metavar="DIR", default=None, help=DATA_ROOT_HELP)
    actions = parser.add_subparsers(dest="consent_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    add_data_root_argument(common)

    enroll = actions.add_parser(
        "enroll", parents=[common], help="record a person's enrolment: scopes, legal basis, retention",
        description="Record that a person may be recorded, trained on or exported, on which legal basis, for how long."
    )
    enroll.add_argument("operator", metavar="OPERATOR", help="the person's name (it never leaves the registry)")
    enroll.add_argument(
        "--scope",
        action="append",
        required=True,
        metavar="SCOPES",
        help=f"comma-separated, repeatable: {_SCOPE_LIST} (record: may be recorded; train: episodes may train "
        "models; export: may leave the site in a dataset)",
    )
    enroll.add_argument(
        "--legal-basis",
        required=True,
        metavar="BASIS",
        help="consent (GDPR Art. 6(1)(a); between employer and employee it is presumed not freely given), "
        "collective_agreement (Art. 88, a collective or works agreement: give --agreement) or "
        "legitimate_interest (Art. 6(1)(f); the person may object: `consent object`)",
    )
    enroll.add_argument(
        "--agreement", metavar="REF", help="the collective agreement's reference (with collective_agreement only)"
    )
    enroll.add_argument(
        "--retention-days",
        metavar="N",
        help=f"episodes expire N days after they were recorded (1 to {MAX_RETENTION_DAYS}; default "
        f"{DEFAULT_RETENTION_DAYS}); `robot-brain data purge --expired` erases them",
    )
    enroll.add_argument(
        "--expires",
        metavar="DATE",
        help="YYYY-MM-DD (valid through that local day) or an ISO 8601 time; default: no expiry",
    )
    enroll.set_defaults(func=_enroll)

    revoke = actions.add_parser(
        "revoke", parents=[common], help="revoke scopes from now on", description="Revoke consent from now on."
    )
    revoke.add_argument("operator", metavar="OPERATOR", help="name or pseudonym (op-...)")
    revoke.add_argument(
        "--scope", action="append", metavar="SCOPES", help=f"comma-separated, repeatable: {_SCOPE_LIST} (default: all)"
    )
    revoke.set_defaults(func=_revoke)

    objection = actions.add_parser(
        "object",
        parents=[common],
        help="the person objects or opts out: every scope revoked from now on, logged as an objection",
        description=(
            "Record an objection (GDPR Art. 21, for legitimate interest) or an opt-out (any legal basis): every "
            "scope in force is revoked from now on, exactly as `revoke` does, and the audit log records it as an "
            "objection. Erase what was recorded with `robot-brain data purge --operator`."
        ),
    )
    objection.add_argument("operator", metavar="OPERATOR", help="name or pseudonym (op-...)")
    objection.set_defaults(func=_object)

    listing = actions.add_parser("list", parents=[common], help="every enrolled operator and what is in force now")
    listing.add_argument("--json", action="store_true", help="print one JSON object (names included: local use)")
    listing.set_defaults(func=_list)

    show = actions.add_parser("show", parents=[common], help="one operator's consent history")
    show.add_argument("operator", metavar="OPERATOR", help="name, pseudonym (op-...) or non-human id")
    show.add_argument("--json", action="store_true", help="print one JSON object (name included: local use)")
    show.set_defaults(func=_show)

    verify = actions.add_parser(
        "verify",
        parents=[common],
        help="check the audit log's hash chain and the registry against it (exit 1 when tampered)",
    )
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(func=_verify)


def _registry(args: argparse.Namespace) -> ConsentRegistry:
    return ConsentRegistry(DataLayout.resolve(args.data_root or args.data_root_group))


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment is not None else "-"


def _print_warnings(registry: ConsentRegistry) -> None:
    for warning in registry.warnings:
        print(f"robot-brain consent: warning: {warning}", file=sys.stderr)


def _enroll(args: argparse.Namespace) -> int:
    registry = _registry(args)
    expires = parse_expiry(args.expires) if args.expires else None
    enrollment = registry.enroll(  # granted "now", under the lock
        args.operator,
        args.scope,
        expires_at=expires,
        legal_basis=args.legal_basis,
        agreement=args.agreement,
        retention_days=args.retention_days,
    )
    _print_warnings(registry)
    consent = enrollment.consent
    status = "enrolled" if enrollment.new_operator else "renewed the consent of"
    replaced = f", replacing {enrollment.superseded}" if enrollment.superseded else ""
    print(
        f"{status} {enrollment.operator.pseudonym}: consent {consent.consent_id}{replaced}, "
        f"scopes {','.join(consent.scopes)}, expires {_when(consent.expires_at)}, "
        f"legal basis {_basis(consent)}, episodes kept {consent.retention_days} days"
    )
    return EXIT_OK


def _basis(record: ConsentRecord) -> str:
    return record.legal_basis + (f" ({record.agreement})" if record.agreement else "")


def _retention(record: ConsentRecord) -> str:
    return f"{record.retention_days}d" if record.retention_days is not None else "none"


def _object(args: argparse.Namespace) -> int:
    registry = _registry(args)
    objection = registry.object(args.operator)
    _print_warnings(registry)
    who = objection.operator.pseudonym
    if objection.consent_id is None or not objection.revoked:
        print(f"nothing to object to: {who} has no consent in force (nothing is recorded, exported or trained on)")
        return EXIT_OK
    record = registry.consent(objection.consent_id)
    print(
        f"objection recorded for {who} ({OBJECTION_MEANING[record.legal_basis]}, legal basis {_basis(record)}): "
        f"revoked {','.join(objection.revoked)} of consent {objection.consent_id}; erase what was recorded with "
        f"`robot-brain data purge --operator {who}`"
    )
    return EXIT_OK


def _revoke(args: argparse.Namespace) -> int:
    registry = _registry(args)
    revocation = registry.revoke(args.operator, args.scope)
    _print_warnings(registry)
    who = revocation.operator.pseudonym
    if revocation.revoked:
        print(f"revoked {','.join(revocation.revoked)} of consent {revocation.consent_id} for {who}")
    if revocation.consent_id is None:
        print(f"nothing to revoke: {who} has no consent in force")
    elif revocation.not_in_force:
        print(f"not in force for {who} (nothing to revoke): {','.join(revocation.not_in_force)}")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    now = utc_now()
    operators = registry.operators()
    if args.json:
        document = {
            "registry": str(registry.layout.registry_path),
            "at": format_time(now),
            "operators": [operator.to_local_dict(now) for operator in operators],
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not operators:
        print(f"no operators enrolled in {registry.layout.registry_path}")
        return EXIT_OK
    rows = [_row(operator, now) for operator in operators]
    headers = ("PSEUDONYM", "NAME", "SCOPES NOW", "EXPIRES", "CONSENT", "STATUS", "LEGAL BASIS", "RETENTION")
    widths = [max(len(header), *(len(row[index]) for row in rows)) for index, header in enumerate(headers)]
    for row in (headers, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _row(operator: EnrolledOperator, now: datetime) -> tuple[str, ...]:
    current = operator.consent_at(now)
    latest = operator.consents[-1]
    shown = current or latest
    scopes = ",".join(current.scopes_at(now)) if current else ""
    return (
        operator.pseudonym,
        operator.name if operator.name is not None else "(forgotten)",
        scopes or "-",
        _when(shown.expires_at),
        shown.consent_id,
        shown.status(now),
        _basis(shown),
        _retention(shown),
    )


def _show(args: argparse.Namespace) -> int:
    registry = _registry(args)
    kind = non_human_kind(args.operator)
    if kind is not None:
        if args.json:
            print(json.dumps({"pseudonym": args.operator, "kind": kind, "needs_consent": False}))
        else:
            print(f"{args.operator} is a non-human operator ({kind}): it needs no consent")
        return EXIT_OK
    operator = registry.operator(args.operator)
    now = utc_now()
    if args.json:
        print(json.dumps(operator.to_local_dict(now), indent=2, ensure_ascii=False))
        return EXIT_OK
    current = operator.consent_at(now)
    print(f"operator   {operator.pseudonym}")
    name = operator.name if operator.name is not None else f"(forgotten {_when(operator.forgotten_at)})"
    print(f"name       {name}   (local only: never leaves this registry)")
    print(f"enrolled   {_when(operator.enrolled_at)}   key {operator.key_id}")
    in_force = ",".join(current.scopes_at(now)) if current else ""
    print(f"now        {in_force or 'nothing granted'}" + (f" (consent {current.consent_id})" if current else ""))
    if current is not None:
        print(f"basis      {_basis(current)}: {LEGAL_BASIS_ARTICLES[current.legal_basis]}")
        kept = f"{current.retention_days} days from each recording" if current.retention_days else (
            "no retention period recorded (enrolled before they were): re-enrol with --retention-days"
        )
        print(f"retention  {kept}")
    print("consents (oldest first):")
    for record in operator.consents:
        revoked = ", ".join(f"{scope} {_when(moment)}" for scope, moment in sorted(record.revoked_at.items()))
        print(
            f"  {record.consent_id}  {record.status(now):<10}  scopes {','.join(record.scopes):<19}  "
            f"granted {_when(record.granted_at)}  expires {_when(record.expires_at)}"
            + (f"  revoked {revoked}" if revoked else "")
            + (f"  superseded {_when(record.superseded_at)} by {record.superseded_by}" if record.superseded_at else "")
            + f"  basis {_basis(record)}  retention {_retention(record)}"
            + (f"  objected {_when(record.objected_at)}" if record.objected_at else "")
        )
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    layout = DataLayout.resolve(args.data_root or args.data_root_group)
    result = verify_consent(layout)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return EXIT_OK if result.ok else EXIT_TAMPERED
    for warning in result.warnings:
        print(f"robot-brain consent verify: warning: {warning}", file=sys.stderr)
    if not result.ok:
        print(f"robot-brain consent verify: TAMPERED OR DAMAGED: {result.problems[0]}", file=sys.stderr)
        for problem in result.problems[1:]:
            print(f"  also: {problem}", file=sys.stderr)
        return EXIT_TAMPERED
    for note in result.audit.notes:
        print(f"note: {note}")
    print(
        f"OK: {result.audit.lines} audit entries chained, head sha256 {result.audit.head_sha256 or '-'}; "
        f"registry: {result.operators} operators, {result.consents} consents match the log"
    )
    return EXIT_OK
