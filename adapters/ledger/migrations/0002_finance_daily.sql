-- 0002: finance_daily, the view Grafana's finance panel and the month's reconciliation read.
--
-- One row per site and UTC day: intervals and hours booked, each component as corrected
-- (original + every correction of that day's intervals), and net_usd's original and
-- correction parts beside it, so a restated day shows what changed.

CREATE VIEW finance_daily AS
WITH original AS (
    SELECT
        site_id,
        (start_utc AT TIME ZONE 'UTC')::date AS day,
        min(currency) AS currency,
        count(*) AS intervals,
        sum(extract(epoch FROM end_utc - start_utc)) / 3600 AS hours,
        count(*) FILTER (WHERE kind = 'down') AS down_intervals,
        sum(mined_mwh) AS mined_mwh,
        sum(curtailed_mwh) AS curtailed_mwh,
        sum(mining_revenue_usd) AS mining_revenue_usd,
        sum(power_cost_usd) AS power_cost_usd,
        sum(resale_revenue_usd) AS resale_revenue_usd,
        sum(call_premium_usd) AS call_premium_usd,
        sum(call_payout_usd) AS call_payout_usd,
        sum(forward_settlement_usd) AS forward_settlement_usd,
        sum(net_usd) AS net_usd
    FROM intervals
    GROUP BY 1, 2
), corrected AS (
    SELECT
        site_id,
        (start_utc AT TIME ZONE 'UTC')::date AS day,
        count(*) AS corrections,
        sum(mined_mwh) AS mined_mwh,
        sum(curtailed_mwh) AS curtailed_mwh,
        sum(mining_revenue_usd) AS mining_revenue_usd,
        sum(power_cost_usd) AS power_cost_usd,
        sum(resale_revenue_usd) AS resale_revenue_usd,
        sum(call_premium_usd) AS call_premium_usd,
        sum(call_payout_usd) AS call_payout_usd,
        sum(forward_settlement_usd) AS forward_settlement_usd,
        sum(net_usd) AS net_usd
    FROM corrections
    GROUP BY 1, 2
)
SELECT
    o.site_id,
    o.day,
    o.currency,
    o.intervals,
    o.hours,
    o.down_intervals,
    coalesce(c.corrections, 0) AS corrections,
    o.mined_mwh + coalesce(c.mined_mwh, 0) AS mined_mwh,
    o.curtailed_mwh + coalesce(c.curtailed_mwh, 0) AS curtailed_mwh,
    o.mining_revenue_usd + coalesce(c.mining_revenue_usd, 0) AS mining_revenue_usd,
    o.power_cost_usd + coalesce(c.power_cost_usd, 0) AS power_cost_usd,
    o.resale_revenue_usd + coalesce(c.resale_revenue_usd, 0) AS resale_revenue_usd,
    o.call_premium_usd + coalesce(c.call_premium_usd, 0) AS call_premium_usd,
    o.call_payout_usd + coalesce(c.call_payout_usd, 0) AS call_payout_usd,
    o.forward_settlement_usd + coalesce(c.forward_settlement_usd, 0) AS forward_settlement_usd,
    o.net_usd + coalesce(c.net_usd, 0) AS net_usd,
    o.net_usd AS original_net_usd,
    coalesce(c.net_usd, 0) AS correction_net_usd
FROM original o
LEFT JOIN corrected c USING (site_id, day);
COMMENT ON VIEW finance_daily IS
    'per site and UTC day: components as corrected, net_usd original and correction parts';
