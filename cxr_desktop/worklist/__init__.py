"""The worklist as plain Python: rows, reading order, durable review decisions and CSV export. No Qt."""
