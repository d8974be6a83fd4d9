-- Plant-level energy: the utility meters (cells without a machine_state signal), which measure the whole plant;
-- summing the machines' own meters as well would count their energy twice. Peak demand is that of the meters
-- (exact with one main meter; with several it is the sum of their peaks, an upper bound).
CREATE OR REPLACE VIEW energy_plant AS
SELECT e.plant_id, e.period, e.time, max(e.time_end) AS time_end, max(e.shift_name) AS shift_name,
       count(*) AS meters, sum(e.kwh) AS kwh, sum(e.kwh_critical) AS kwh_critical, sum(e.kwh_peak) AS kwh_peak,
       sum(e.kwh_flat) AS kwh_flat, sum(e.kwh_valley) AS kwh_valley, sum(e.cost) AS cost,
       sum(e.cost_critical) AS cost_critical, sum(e.cost_peak) AS cost_peak, sum(e.cost_flat) AS cost_flat,
       sum(e.cost_valley) AS cost_valley, sum(e.peak_kw_15min) AS peak_kw_15min, sum(e.tce) AS tce,
       (SELECT sum(o.good_count) FROM oee o WHERE o.plant_id = e.plant_id AND o.period = e.period
          AND o.time = e.time) AS good_count,
       sum(e.kwh) / nullif((SELECT sum(o.good_count) FROM oee o WHERE o.plant_id = e.plant_id
          AND o.period = e.period AND o.time = e.time), 0) AS sec_kwh_per_unit
FROM energy e
WHERE NOT EXISTS (SELECT 1 FROM signals s WHERE s.cell_id = e.cell_id AND s.meaning = 'machine_state')
GROUP BY e.plant_id, e.period, e.time;
