-- 0001: the central ledger. Every site's runs, settled intervals, per-instrument flows and
-- corrections, shipped by `hashspark ledger ship` from each site's SQLite ledger.
--
-- Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE on every ledger table, so a
-- row, once acknowledged to a site, stays as it was shipped; a change to an interval is a
-- correction row beside it, never an overwrite.
--
-- Money and energy are NUMERIC with no scale imposed: each amount is stored exactly as the
-- site's ledger holds it, and SUM() over NUMERIC is exact, so a report and a SQL query agree
-- to the unit. Keys: an interval is (site_id, start_utc); a resend of the same interval is
-- recognised by its digest (a hash of every shipped value) and changes nothing.

CREATE TABLE ledger_identity (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_utc timestamptz NOT NULL DEFAULT now(),
    singleton boolean NOT NULL DEFAULT true UNIQUE CHECK (singleton)
);
COMMENT ON TABLE ledger_identity IS
    'one row: which central ledger this is (a shipper that finds another id starts over)';
INSERT INTO ledger_identity DEFAULT VALUES;

CREATE TABLE runs (
    run_id text PRIMARY KEY,
    started_utc timestamptz NOT NULL,
    config_version text NOT NULL,
    shipped_utc timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE intervals (
    site_id text NOT NULL,
    start_utc timestamptz NOT NULL,
    end_utc timestamptz NOT NULL CHECK (end_utc > start_utc),
    kind text NOT NULL CHECK (kind IN ('settled', 'down')),
    run_id text NOT NULL REFERENCES runs (run_id),
    config_version text NOT NULL,
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    price_usd_per_mwh numeric NOT NULL,
    price_source text NOT NULL,
    hashprice_usd_per_ph_day numeric NOT NULL,
    hashprice_source text NOT NULL,
    opportunity_cost_usd_per_mwh numeric,
    running_mw numeric NOT NULL,
    running_ph numeric NOT NULL,
    nominal_mw numeric NOT NULL,
    miners_running integer NOT NULL,
    miners_curtailed integer NOT NULL,
    failsafe text,
    mined_mwh numeric NOT NULL,
    curtailed_mwh numeric NOT NULL,
    mining_revenue_usd numeric NOT NULL,
    power_cost_usd numeric NOT NULL,
    resale_revenue_usd numeric NOT NULL,
    call_premium_usd numeric NOT NULL,
    call_payout_usd numeric NOT NULL,
    forward_settlement_usd numeric NOT NULL,
    net_usd numeric NOT NULL,
    digest text NOT NULL,
    shipped_utc timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, start_utc)
);
CREATE INDEX intervals_by_time ON intervals (start_utc);

CREATE TABLE instrument_flows (
    site_id text NOT NULL,
    start_utc timestamptz NOT NULL,
    instrument_id text NOT NULL,
    component text NOT NULL,
    usd numeric NOT NULL,
    PRIMARY KEY (site_id, start_utc, instrument_id, component),
    FOREIGN KEY (site_id, start_utc) REFERENCES intervals (site_id, start_utc)
);

-- A restatement of one interval (a re-published price, a pool true-up, a revised hedge
-- settlement): the reason, its source, when it was booked, the restated inputs, and what it
-- adds to each of the interval's components (the difference, so original + corrections =
-- corrected, and a second correction of the same interval adds to the first).
CREATE TABLE corrections (
    site_id text NOT NULL,
    start_utc timestamptz NOT NULL,
    correction_id text NOT NULL,
    booked_utc timestamptz NOT NULL,
    reason text NOT NULL,
    source text NOT NULL,
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    inputs jsonb NOT NULL DEFAULT '{}',
    mined_mwh numeric NOT NULL,
    curtailed_mwh numeric NOT NULL,
    mining_revenue_usd numeric NOT NULL,
    power_cost_usd numeric NOT NULL,
    resale_revenue_usd numeric NOT NULL,
    call_premium_usd numeric NOT NULL,
    call_payout_usd numeric NOT NULL,
    forward_settlement_usd numeric NOT NULL,
    net_usd numeric NOT NULL,
    digest text NOT NULL,
    shipped_utc timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, start_utc, correction_id),
    FOREIGN KEY (site_id, start_utc) REFERENCES intervals (site_id, start_utc)
);
COMMENT ON TABLE corrections IS
    'restatements: each component column is the difference the correction adds';

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the central ledger is append-only: % on % refused (book a correction)',
        TG_OP, TG_TABLE_NAME;
END
$$;

CREATE TRIGGER runs_append_only BEFORE UPDATE OR DELETE ON runs
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER intervals_append_only BEFORE UPDATE OR DELETE ON intervals
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER instrument_flows_append_only BEFORE UPDATE OR DELETE ON instrument_flows
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER corrections_append_only BEFORE UPDATE OR DELETE ON corrections
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER runs_no_truncate BEFORE TRUNCATE ON runs
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER intervals_no_truncate BEFORE TRUNCATE ON intervals
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER instrument_flows_no_truncate BEFORE TRUNCATE ON instrument_flows
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER corrections_no_truncate BEFORE TRUNCATE ON corrections
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
