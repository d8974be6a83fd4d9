"""The city industry bureau: enterprise registry, monthly reports, statistics, disclosure control, macro analysis.

Modules: ``sizing`` (national size-class rules), ``registry`` (enterprises with validity intervals),
``reports_import`` (CSV/XLSX import with row/column errors), ``platform_energy`` (electricity from the platform),
``facts`` and ``stats`` (aggregates, same-scope growth), ``sdc`` (statistical disclosure control), ``publish``
(suppressed tables the ``bureau`` role reads), ``calendar`` and ``macro`` (Spring Festival aware seasonal
adjustment, forecasts, early warning, nowcast), ``city`` (synthetic city), ``cli``.
"""
