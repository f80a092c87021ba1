"""The Virtual Observatory services of the web application: TAP (sync, async/UWS), VOSI, DALI
examples, and the VOTable writer they share (:mod:`hcdc.web.vo.votable`).

Every service asks ``archive/access.py`` what the caller may see; see docs/vo.md.
"""
