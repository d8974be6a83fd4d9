-- KPI idle_share: the share of a cell's energy used while it was not producing (idle_kwh / kwh), NULL without
-- energy. Written by analytics (analytics/tables.py, a derived column: recomputed from the summed kWh of shift,
-- day and month rows); the line roll-up view gains it from its own sums.
ALTER TABLE energy ADD COLUMN IF NOT EXISTS idle_share double precision;

-- security_invoker as `datafactory db roles` sets it: replacing the view must not turn it back into a definer view.
CREATE OR REPLACE VIEW energy_line WITH (security_invoker = true) AS
SELECT e.plant_id, c.area, c.line, e.period, e.time, max(e.time_end) AS time_end, max(e.shift_name) AS shift_name,
       sum(e.kwh) AS kwh, sum(e.idle_kwh) AS idle_kwh, sum(e.kwh_critical) AS kwh_critical,
       sum(e.kwh_peak) AS kwh_peak, sum(e.kwh_flat) AS kwh_flat, sum(e.kwh_valley) AS kwh_valley,
       sum(e.cost) AS cost, sum(e.cost_critical) AS cost_critical, sum(e.cost_peak) AS cost_peak,
       sum(e.cost_flat) AS cost_flat, sum(e.cost_valley) AS cost_valley, sum(e.tce) AS tce,
       sum(e.good_count) AS good_count, sum(e.kwh) / nullif(sum(e.good_count), 0) AS sec_kwh_per_unit,
       sum(e.idle_kwh) / nullif(sum(e.kwh), 0) AS idle_share
FROM energy e JOIN cells c ON c.id = e.cell_id
GROUP BY e.plant_id, c.area, c.line, e.period, e.time;
