"""The benchmark: the gateway against a raw aiohttp handler and PostGraphile (see bench/run)."""
