"""Delivery: claims each recipient once, sends batches paced over reused connections,
records every outcome exactly once, and says when a campaign is fully delivered."""
