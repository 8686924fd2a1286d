"""What the drivers share (no activities here: ``mlchaos discover`` lists none).

``selection`` (one mode, one seeded pick), ``checks`` (argument checks), ``errors`` (foreign
errors become driver errors), ``http`` (a JSON API's GET), ``undo`` (rollback paths and
watchdogs), ``concurrency`` (act on many targets at once), ``polling`` (wait up to ``within``
seconds for a probe's condition) and ``alerts`` (which alerts a probe is about).
"""
