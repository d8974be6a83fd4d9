-- The energy baseline's production driver: ideal production time in hours (Σ ideal cycle time × units made, the
-- OEE rows' ideal_production_s / 3600), a plant's production in standard hours. A sum of good units weights a unit
-- of a 22 s machine like one of an 8.5 h batch machine, though each machine draws its power per hour of running,
-- not per unit; `production` (good units) stays for display and the specific-energy alert.
ALTER TABLE energy_baseline_daily ADD COLUMN IF NOT EXISTS ideal_production_h double precision;
