"""Real-network side of jamsim: the asyncio JAMNP-S node and its plug-ins."""
