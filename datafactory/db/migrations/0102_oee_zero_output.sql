-- OEE, NEE and TEEP of the line and plant roll-ups as the ideal time of the good units over PBT, PBT − ADET and
-- calendar time (= A × P × Q where all three are defined). A period with planned busy time and nothing good now has
-- OEE 0 instead of NULL (quality stays NULL where nothing was produced), per ISO 22400-2 and analytics/oee.py.
CREATE OR REPLACE VIEW oee_line AS
WITH s AS (
    SELECT o.plant_id, c.area, c.line, o.period, o.time, max(o.time_end) AS time_end, max(o.shift_name) AS shift_name,
           count(*) AS machines, sum(o.calendar_s) AS calendar_s, sum(o.planned_down_s) AS planned_down_s,
           sum(o.pbt_s) AS pbt_s, sum(o.apt_s) AS apt_s, sum(o.adet_s) AS adet_s, sum(o.asut_s) AS asut_s,
           sum(o.adot_s) AS adot_s, sum(o.microstop_s) AS microstop_s, sum(o.microstop_count) AS microstop_count,
           sum(o.stop_count) AS stop_count, sum(o.total_count) AS total_count, sum(o.good_count) AS good_count,
           sum(o.reject_count) AS reject_count, sum(o.ideal_production_s) AS ideal_production_s
    FROM oee o JOIN cells c ON c.id = o.cell_id
    WHERE o.ideal_cycle_time_s IS NOT NULL
    GROUP BY o.plant_id, c.area, c.line, o.period, o.time
), g AS (
    SELECT s.*, CASE WHEN s.good_count > 0 THEN s.ideal_production_s * s.good_count / s.total_count ELSE 0 END
           AS good_ideal_s
    FROM s
)
SELECT g.plant_id, g.area, g.line, g.period, g.time, g.time_end, g.shift_name, g.machines, g.calendar_s,
       g.planned_down_s, g.pbt_s, g.apt_s, g.adet_s, g.asut_s, g.adot_s, g.microstop_s, g.microstop_count,
       g.stop_count, g.total_count, g.good_count, g.reject_count, g.ideal_production_s,
       g.apt_s / nullif(g.pbt_s, 0) AS availability,
       g.ideal_production_s / nullif(g.apt_s, 0) AS performance,
       g.good_count / nullif(g.total_count, 0) AS quality,
       g.good_ideal_s / nullif(g.pbt_s, 0) AS oee,
       g.good_ideal_s / nullif(g.pbt_s - g.adet_s, 0) AS nee,
       g.good_ideal_s / nullif(g.calendar_s, 0) AS teep
FROM g;

CREATE OR REPLACE VIEW oee_plant AS
WITH s AS (
    SELECT o.plant_id, o.period, o.time, max(o.time_end) AS time_end, max(o.shift_name) AS shift_name,
           count(*) AS machines, sum(o.calendar_s) AS calendar_s, sum(o.planned_down_s) AS planned_down_s,
           sum(o.pbt_s) AS pbt_s, sum(o.apt_s) AS apt_s, sum(o.adet_s) AS adet_s, sum(o.asut_s) AS asut_s,
           sum(o.adot_s) AS adot_s, sum(o.microstop_s) AS microstop_s, sum(o.microstop_count) AS microstop_count,
           sum(o.stop_count) AS stop_count, sum(o.total_count) AS total_count, sum(o.good_count) AS good_count,
           sum(o.reject_count) AS reject_count, sum(o.ideal_production_s) AS ideal_production_s
    FROM oee o
    WHERE o.ideal_cycle_time_s IS NOT NULL
    GROUP BY o.plant_id, o.period, o.time
), g AS (
    SELECT s.*, CASE WHEN s.good_count > 0 THEN s.ideal_production_s * s.good_count / s.total_count ELSE 0 END
           AS good_ideal_s
    FROM s
)
SELECT g.plant_id, g.period, g.time, g.time_end, g.shift_name, g.machines, g.calendar_s, g.planned_down_s,
       g.pbt_s, g.apt_s, g.adet_s, g.asut_s, g.adot_s, g.microstop_s, g.microstop_count, g.stop_count,
       g.total_count, g.good_count, g.reject_count, g.ideal_production_s,
       g.apt_s / nullif(g.pbt_s, 0) AS availability,
       g.ideal_production_s / nullif(g.apt_s, 0) AS performance,
       g.good_count / nullif(g.total_count, 0) AS quality,
       g.good_ideal_s / nullif(g.pbt_s, 0) AS oee,
       g.good_ideal_s / nullif(g.pbt_s - g.adet_s, 0) AS nee,
       g.good_ideal_s / nullif(g.calendar_s, 0) AS teep
FROM g;
