-- City industry bureau: enterprise registry with history, monthly reports with revisions, platform-metered
-- electricity, and the disclosure-controlled published tables. Money is in 10,000 yuan (万元), energy in tonnes of
-- coal equivalent (tce), electricity in kWh. Months are the first day of the month (date).
-- Raw tables are never granted to the `bureau` role (migration 0201); it reads only the bureau_v_* views.

CREATE TABLE IF NOT EXISTS bureau_enterprises (
    id           serial PRIMARY KEY,
    credit_code  text NOT NULL UNIQUE,                    -- GB 32100-2015, check character validated on entry
    key          text UNIQUE,                             -- platform enterprise id (e.g. 'demo-precision'), if any
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per validity interval of an enterprise's attributes: [valid_from, valid_to), valid_to NULL = open.
CREATE TABLE IF NOT EXISTS bureau_enterprise_versions (
    enterprise_id  integer NOT NULL REFERENCES bureau_enterprises(id) ON DELETE CASCADE,
    valid_from     date NOT NULL,
    valid_to       date,
    name           text NOT NULL,
    industry_code  text NOT NULL,                         -- GB/T 4754-2017 class, bare digits, e.g. '3484'
    division       text NOT NULL,                         -- first 2 digits
    industry_group text NOT NULL,                         -- first 3 digits
    town           text NOT NULL,
    park           text NOT NULL DEFAULT '',              -- '' = not in an industrial park
    ownership      text NOT NULL,
    employees      integer NOT NULL CHECK (employees >= 0),
    annual_revenue double precision NOT NULL CHECK (annual_revenue >= 0),  -- 万元, basis of the size class
    size_class     text NOT NULL CHECK (size_class IN ('large', 'medium', 'small', 'micro')),
    above_designated boolean NOT NULL,                    -- 规模以上: main business revenue ≥ 2000 万元
    plant_id       integer REFERENCES plants(id),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enterprise_id, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX IF NOT EXISTS bureau_versions_open ON bureau_enterprise_versions (enterprise_id) WHERE valid_to IS NULL;

-- The figures in force per enterprise and month (the newest revision).
CREATE TABLE IF NOT EXISTS bureau_reports (
    enterprise_id   integer NOT NULL REFERENCES bureau_enterprises(id) ON DELETE CASCADE,
    month           date NOT NULL CHECK (extract(day FROM month) = 1),
    revision        integer NOT NULL DEFAULT 1,
    output_value    double precision NOT NULL CHECK (output_value >= 0),     -- 工业总产值, 万元
    sales_value     double precision NOT NULL CHECK (sales_value >= 0),      -- 工业销售产值, 万元
    revenue         double precision NOT NULL CHECK (revenue >= 0),          -- 主营业务收入, 万元
    employment      integer NOT NULL CHECK (employment >= 0),                -- 从业人员
    energy_tce      double precision NOT NULL CHECK (energy_tce >= 0),       -- 综合能源消费量, tce
    electricity_kwh double precision NOT NULL CHECK (electricity_kwh >= 0),  -- 用电量, kWh
    source          text NOT NULL DEFAULT '',
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enterprise_id, month)
);
CREATE INDEX IF NOT EXISTS bureau_reports_month ON bureau_reports (month);

-- Every revision ever received, including the one in force; a revision replaces the figures in bureau_reports.
CREATE TABLE IF NOT EXISTS bureau_report_revisions (
    enterprise_id   integer NOT NULL REFERENCES bureau_enterprises(id) ON DELETE CASCADE,
    month           date NOT NULL,
    revision        integer NOT NULL,
    output_value    double precision NOT NULL,
    sales_value     double precision NOT NULL,
    revenue         double precision NOT NULL,
    employment      integer NOT NULL,
    energy_tce      double precision NOT NULL,
    electricity_kwh double precision NOT NULL,
    source          text NOT NULL DEFAULT '',
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enterprise_id, month, revision)
);

-- Electricity measured by the platform for connected enterprises; it takes precedence over the reported figure.
CREATE TABLE IF NOT EXISTS bureau_platform_energy (
    enterprise_id   integer NOT NULL REFERENCES bureau_enterprises(id) ON DELETE CASCADE,
    month           date NOT NULL,
    electricity_kwh double precision NOT NULL CHECK (electricity_kwh >= 0),
    operating       boolean NOT NULL,                      -- metered consumption above the idle threshold
    source          text NOT NULL,                         -- 'energy' (analytics results) or 'samples'
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enterprise_id, month)
);

-- Import runs, with every problem found (row, column, message).
CREATE TABLE IF NOT EXISTS bureau_imports (
    id          serial PRIMARY KEY,
    file        text NOT NULL,
    kind        text NOT NULL,                             -- 'reports' or 'registry'
    rows_total  integer NOT NULL,
    rows_loaded integer NOT NULL,
    errors      jsonb NOT NULL DEFAULT '[]'::jsonb,
    imported_at timestamptz NOT NULL DEFAULT now()
);

-- Published, disclosure-controlled cells. One row per table and cell; '*' in a dimension column means "all".
-- Suppressed cells have NULL magnitudes and suppression = 'primary' or 'secondary' (never a zero).
CREATE TABLE IF NOT EXISTS bureau_published_cells (
    month            date NOT NULL,
    table_name       text NOT NULL,
    division         text NOT NULL DEFAULT '*',
    industry_group   text NOT NULL DEFAULT '*',
    town             text NOT NULL DEFAULT '*',
    park             text NOT NULL DEFAULT '*',
    size_class       text NOT NULL DEFAULT '*',
    ownership        text NOT NULL DEFAULT '*',
    above_designated text NOT NULL DEFAULT '*',
    enterprises      integer NOT NULL,
    output_value     double precision,
    output_ytd       double precision,
    sales_value      double precision,
    revenue          double precision,
    employment       double precision,
    energy_tce       double precision,
    electricity_kwh  double precision,
    yoy_growth       double precision,     -- same-scope growth of output, fraction (0.05 = +5 %)
    ytd_growth       double precision,
    electricity_index double precision,    -- same-scope electricity vs the same month a year earlier, = 100
    energy_intensity double precision,     -- tce per 10,000 yuan of output
    connected        integer NOT NULL DEFAULT 0,
    operating_rate   double precision,     -- operating share of connected enterprises (counts only)
    suppression      text CHECK (suppression IN ('primary', 'secondary')),
    PRIMARY KEY (month, table_name, division, industry_group, town, park, size_class, ownership, above_designated)
);

CREATE TABLE IF NOT EXISTS bureau_publish_runs (
    month        date PRIMARY KEY,
    cells        integer NOT NULL,
    primary_suppressed   integer NOT NULL,
    secondary_suppressed integer NOT NULL,
    parameters   jsonb NOT NULL,
    seconds      double precision NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now()
);

-- Macro analysis results (computed from the same cells that are published; suppressed series are skipped).
CREATE TABLE IF NOT EXISTS bureau_early_warnings (
    month        date NOT NULL,
    scope_kind   text NOT NULL,            -- 'division' or 'town'
    scope        text NOT NULL,
    measure      text NOT NULL,            -- 'output_value' or 'electricity_kwh'
    actual       double precision NOT NULL,
    expected     double precision NOT NULL,
    lower_bound  double precision NOT NULL,
    shortfall    double precision NOT NULL, -- actual / expected − 1
    yoy_growth   double precision,
    PRIMARY KEY (month, scope_kind, scope, measure)
);

CREATE TABLE IF NOT EXISTS bureau_forecasts (
    made_for     date NOT NULL,            -- last month of data used
    scope_kind   text NOT NULL,
    scope        text NOT NULL,
    month        date NOT NULL,
    forecast     double precision NOT NULL,
    lower_95     double precision NOT NULL,
    upper_95     double precision NOT NULL,
    PRIMARY KEY (made_for, scope_kind, scope, month)
);

CREATE TABLE IF NOT EXISTS bureau_nowcasts (
    month        date NOT NULL,
    scope_kind   text NOT NULL,
    scope        text NOT NULL,
    nowcast      double precision NOT NULL,
    lower_95     double precision NOT NULL,
    upper_95     double precision NOT NULL,
    electricity_growth double precision NOT NULL,
    PRIMARY KEY (month, scope_kind, scope)
);

CREATE TABLE IF NOT EXISTS bureau_seasonal (
    month        date NOT NULL,
    scope_kind   text NOT NULL,
    scope        text NOT NULL,
    output_value double precision NOT NULL,
    seasonally_adjusted double precision NOT NULL,
    spring_festival_effect double precision NOT NULL,   -- multiplicative factor, 1 = none
    PRIMARY KEY (month, scope_kind, scope)
);

-- Ground truth of the synthetic city's planted events (read by tests).
CREATE TABLE IF NOT EXISTS bureau_sim_truth (
    kind     text NOT NULL,              -- 'division_decline', 'park_growth'
    scope    text NOT NULL,
    month    date NOT NULL,
    details  jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (kind, scope)
);
