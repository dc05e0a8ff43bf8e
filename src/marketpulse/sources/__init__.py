"""Where ticks come from: synthetic, Finnhub, or a replay file, behind one interface."""
