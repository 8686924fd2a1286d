"""Game days: suites of experiments run one after another, now or on a schedule (``mlchaos gameday``).

``suite`` reads and checks a game-day file, ``schedule`` holds cron, windows and exclusions,
``runner`` runs a suite, ``scheduler`` keeps running it, ``progress`` shows where it stands,
``lock`` keeps two runs of one game day apart. Nothing heavy is imported here.
"""
