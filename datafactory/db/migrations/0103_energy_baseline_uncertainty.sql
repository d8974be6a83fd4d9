-- The saving of the energy baseline with its ASHRAE Guideline 14 uncertainty (analytics/baseline.py).
ALTER TABLE energy_baseline
    ADD COLUMN IF NOT EXISTS saving_half_width  double precision,  -- ± fraction of expected energy
    ADD COLUMN IF NOT EXISTS saving_fsu         double precision,  -- fractional savings uncertainty
    ADD COLUMN IF NOT EXISTS saving_significant boolean,           -- saving ± half-width excludes 0
    ADD COLUMN IF NOT EXISTS confidence         double precision;  -- of the half-width, e.g. 0.95
