"""Who may be recorded, trained on and exported: the consent registry and the site's audit log.

- ``operators``: operator ids (pseudonyms ``op-…``, ``policy:…``, ``scripted…``), name
  normalisation, scopes and expiry dates (pure).
- ``legal``: legal bases (consent, collective agreement, legitimate interest), retention periods
  and what an objection means (pure).
- ``audit``: the hash-chained audit log: writing entries under the registry's lock, reading and
  verifying the chain, the clear-name guard.
- ``registry``: the registry (``registry.json``, ``site.key``): enrolment, pseudonym derivation,
  checks, revocation, ``forget``, ``verify_consent``. The only module that sees a person's name.
- ``events``: :func:`~robot_brain.consent.events.append_audit`, for other packages' events.

Imports :mod:`robot_brain.storage` and :mod:`robot_brain.errors` only. Erasure of what was
recorded (episodes, datasets) needs those packages, so it lives above them, in
:mod:`robot_brain.erasure`.
"""
