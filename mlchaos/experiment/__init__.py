"""The experiment: load a file (limits, exact places), validate it, build the typed model, and run one activity or
check one tolerance the way Chaos Toolkit means it. Nothing here knows how a whole run goes (see
:mod:`mlchaos.engine`).
"""
