"""Reports: projections of campaign events, kept by event consumers, read as a few items."""
