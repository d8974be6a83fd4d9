-- Ground truth written by the simulator (simulator/truth_db.py) and read by analytics and end-to-end tests.
-- cell_path is 'area/line/cell'. See docs/simulator.md.

-- True state intervals of every simulated machine.
CREATE TABLE IF NOT EXISTS sim_truth_states (
    cell_path  text NOT NULL,
    time       timestamptz NOT NULL,
    time_end   timestamptz NOT NULL,
    state_code integer NOT NULL,
    PRIMARY KEY (cell_path, time)
);

-- ISO 22400-2 time elements, counts and energy per machine and worked shift, accumulated by the simulation
-- itself (independent of analytics). planned_busy_s = apt_s + delay_s + setup_s + down_s.
CREATE TABLE IF NOT EXISTS sim_truth_shift (
    cell_path       text NOT NULL,
    shift_start     timestamptz NOT NULL,
    shift_end       timestamptz NOT NULL,
    shift_name      text NOT NULL,
    planned_busy_s  double precision NOT NULL,
    apt_s           double precision NOT NULL,
    delay_s         double precision NOT NULL,
    setup_s         double precision NOT NULL,
    down_s          double precision NOT NULL,
    microstop_s     double precision NOT NULL,
    microstop_count integer NOT NULL,
    total_count     bigint NOT NULL,
    good_count      bigint NOT NULL,
    reject_count    bigint NOT NULL,
    energy_kwh      double precision NOT NULL,
    PRIMARY KEY (cell_path, shift_start)
);

-- Planted events: energy_saving, bearing_degradation_onset, bearing_failure_threshold, bearing_failure,
-- energy_meter_reset.
CREATE TABLE IF NOT EXISTS sim_truth_events (
    id        bigserial PRIMARY KEY,
    kind      text NOT NULL,
    cell_path text NOT NULL DEFAULT '',
    time      timestamptz NOT NULL,
    details   jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS sim_truth_events_kind ON sim_truth_events (kind, time);

-- Every value the live simulator emitted (OPC-UA writes, meter publishes), for end-to-end comparisons.
CREATE TABLE IF NOT EXISTS sim_truth_emitted (
    cell_path text NOT NULL,
    signal    text NOT NULL,
    time      timestamptz NOT NULL,
    value     double precision NOT NULL,
    PRIMARY KEY (cell_path, signal, time)
);
