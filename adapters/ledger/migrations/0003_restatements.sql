-- 0003: corrections are the site ledgers' restatements (SQLite schema version 3).
--
-- A site books a restatement per corrected interval (`hashspark ledger restate`, one batch a
-- call): the restated price and hashprice, the reason, the source, when, the config version
-- whose terms settled it, and per money component the integer difference in micro-dollars
-- (shipped here as exact NUMERIC dollars), with per-instrument differences beside it. A
-- correction's `correction_id` is the site's batch id; its energy columns are 0 (a
-- restatement re-settles the booked energy on new prices, it never changes the energy).
--
-- Added: the config version that settled the correction and the site's restatement id (its
-- booking order; both NULL on a row shipped before this migration, of which there are none:
-- no site ledger had restatements before version 3), and `correction_flows`, the
-- per-instrument differences, append-only like every table.

ALTER TABLE corrections ADD COLUMN config_version text;
ALTER TABLE corrections ADD COLUMN restatement_id bigint;
COMMENT ON COLUMN corrections.restatement_id IS
    'the row''s id in the site ledger''s restatements: the order the site booked them';
COMMENT ON COLUMN corrections.correction_id IS
    'the site''s batch id: one `hashspark ledger restate` call';
COMMENT ON COLUMN corrections.config_version IS
    'the site config version whose terms settled the correction';
CREATE INDEX corrections_by_batch ON corrections (site_id, correction_id);

CREATE TABLE correction_flows (
    site_id text NOT NULL,
    start_utc timestamptz NOT NULL,
    correction_id text NOT NULL,
    instrument_id text NOT NULL,
    component text NOT NULL,
    usd numeric NOT NULL,
    PRIMARY KEY (site_id, start_utc, correction_id, instrument_id, component),
    FOREIGN KEY (site_id, start_utc, correction_id)
        REFERENCES corrections (site_id, start_utc, correction_id)
);
COMMENT ON TABLE correction_flows IS
    'per-instrument differences of a correction: instrument_flows + these = corrected';

CREATE TRIGGER correction_flows_append_only BEFORE UPDATE OR DELETE ON correction_flows
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER correction_flows_no_truncate BEFORE TRUNCATE ON correction_flows
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
