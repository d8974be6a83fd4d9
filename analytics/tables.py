"""Column lists of the result tables (migration ``0100_analytics.sql``), in one place for every writer."""

from __future__ import annotations

from analytics.oee import RATIO_COLUMNS, SUM_COLUMNS
from analytics.states import INTERVAL_COLUMNS
from analytics.tariff import BANDS

STATE_INTERVALS = ["plant_id", "cell_id", *INTERVAL_COLUMNS]
OEE = ["plant_id", "cell_id", "period", "time", "time_end", "shift_name", *SUM_COLUMNS, "ideal_cycle_time_s",
       *RATIO_COLUMNS]
DOWNTIME = ["plant_id", "cell_id", "period", "time", "time_end", "state_code", "category", "reason", "time_element",
            "stops", "duration_s", "microstops", "microstop_s"]
ENERGY = ["plant_id", "cell_id", "period", "time", "time_end", "shift_name", "kwh", "idle_kwh",
          *(f"kwh_{b}" for b in BANDS), "cost", *(f"cost_{b}" for b in BANDS), "peak_kw_15min", "avg_kw",
          "load_factor", "tce", "good_count", "sec_kwh_per_unit", "source"]
PDM_HEALTH = ["plant_id", "cell_id", "signal_id", "time", "time_end", "value", "baseline_mean", "baseline_sd", "ewma",
              "ewma_ucl", "ewma_lcl", "cusum_pos", "cusum_neg", "cusum_h", "we_rule", "drift", "zone",
              "failure_threshold", "rul_p10_h", "rul_p50_h", "rul_p90_h"]
BASELINE_DAILY = ["plant_id", "time", "time_end", "phase", "actual_kwh", "production", "hdd", "cdd", "expected_kwh",
                  "pi_low_kwh", "pi_high_kwh", "savings_kwh", "cusum_kwh"]
BASELINE = ["plant_id", "time", "time_end", "reporting_end", "formula", "params", "pvalues", "n_days", "r2", "cv_rmse",
            "nmbe", "meets_ashrae14", "saving_fraction", "saving_kwh"]
