"""The plausible ranges of config values, in one place: what no real site needs beyond.

Every number a config file can hold has a lower and an upper bound (``tests/test_config_bounds.py``
walks every model and fails on a number without both). A value outside is refused with its key
path, so a typo in the units (``price_max_age_s = 900000``, milliseconds meant) or a hostile
value (``cycle_timeout_s = 1e300``, which disables the watchdog; ``count = 10**9``, which
allocates 20 GB) stops at ``check-config`` instead of reaching the arithmetic. The bounds are
generous: ten times the largest real figure, where one is known.

Kept below ``controller.config`` so that the adapters' config models use the same figures.
"""

from __future__ import annotations

#: A config file larger than this is refused before it is parsed (a 30,000-miner site's
#: config is a few kB; a group listing 65,536 addresses one by one is about 1 MB).
MAX_CONFIG_BYTES = 4 * 1024 * 1024
#: Tables and arrays nested deeper than this are refused (a real config nests 6 deep).
MAX_TOML_DEPTH = 32

#: Prices, strikes and premiums, USD/MWh (ERCOT's offer cap is 5,000, its floor -251).
MAX_PRICE_USD_PER_MWH = 10_000.0
#: Adders and hysteresis, USD/MWh (real charges on consumption are tens of USD/MWh).
MAX_ADDERS_USD_PER_MWH = 1_000.0
#: A feed's ``min_value`` / ``max_value`` (the recorded feed's own limit on a value).
MAX_READING_ABS = 1e6
#: Hashprice, USD per PH/s per day (it has been below 1,000 since 2013).
MAX_HASHPRICE_USD_PER_PH_DAY = 10_000.0

#: Megawatts: contract quantities, site caps, ramps, grid caps (the largest sites are ~1 GW).
MAX_SITE_MW = 10_000.0
#: PH/s of a hedge (the whole network is below 1,000,000 PH/s).
MAX_SITE_PH = 1e6
#: One miner's wall power, W (hydro-cooled miners draw ~10 kW).
MAX_MINER_POWER_W = 100_000.0
#: One miner's hashrate, TH/s (the fastest draw ~1,000).
MAX_MINER_HASHRATE_TH = 10_000.0
#: Points of one curve.
MAX_CURVE_POINTS = 64

#: Miners of one group (as many as one group's addresses may name).
MAX_GROUP_MINERS = 65_536
#: Miners of one site, all groups (the largest sites run ~200,000).
MAX_SITE_MINERS = 1_000_000
#: Groups of one site, hedges of one site, sites of one file.
MAX_GROUPS = 1_024
MAX_HEDGES = 256
#: A lump-sum option premium (USD): a billion bounds any site's contract.
MAX_LUMP_USD = 1e9
MAX_SITES = 64
#: A scenario's grid events and named windows, ``compare``'s strategies.
MAX_EVENTS = 10_000
MAX_WINDOWS = 1_024
MAX_STRATEGIES = 64

#: Delays, dwell times and command holds on the decision path, s.
MAX_DELAY_S = 86_400.0
#: How old a price may be and still decide (a day: hourly and day-ahead publishers included).
MAX_PRICE_AGE_S = 86_400.0
#: How old a hashprice may be (a week: the indexes publish daily).
MAX_HASHPRICE_AGE_S = 7 * 86_400.0
#: A cycle's period, s (below the minimum the loop would spin).
MIN_CYCLE_S = 0.1
MAX_CYCLE_S = 3_600.0
#: How long a cycle may run before the watchdog calls it stuck, s.
MAX_CYCLE_TIMEOUT_S = 3_600.0
#: Retry backoff, s.
MAX_BACKOFF_S = 3_600.0
#: Periodic work that is not on the decision path (refits, firmware re-reads), s.
MAX_REFRESH_S = 30 * 86_400.0
#: Samples a curve fit may ask for.
MAX_SAMPLES = 1_000_000
#: Outlier rejection, scaled MADs.
MAX_OUTLIER_MADS = 100.0
