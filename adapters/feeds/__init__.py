"""Price and hashprice feeds. Each module below registers its config model and builder.

Adding a feed type: write its module (config model with ``type: Literal[...]``, the feed,
and ``FEEDS.register(...)`` at the bottom) and import it here.
"""

# Registration order is the order in which error messages list the known types.
# isort: off
from adapters.feeds import recorded
from adapters.feeds import mqtt
from adapters.feeds import ercot
from adapters.feeds import chain
from adapters.feeds import hashprice_index
# isort: on

__all__ = ["chain", "ercot", "hashprice_index", "mqtt", "recorded"]
