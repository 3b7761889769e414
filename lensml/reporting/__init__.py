"""The report: ``python -m lensml.report`` renders ``reports/<name>/README.md`` and its figures from committed
study summaries.

Layout: ``core`` (the ``Report`` accumulator, loading summaries, the ``Section`` record), ``tables`` (shared
Markdown tables and interval verdicts), one module per family of study sections (``signal``, ``headline``,
``control``, ``robustness``, ``near_real``, ``hard_negatives``, ``forecast``, plus ``overview``, ``findings``,
``limitations``, ``reproduce``), and ``registry`` (the ordered sections ``build_report`` walks).
A new study adds its section module and one line in ``registry.SECTIONS``.
"""
