"""The worklist as plain Python: the triage session (scan -> header -> decode once -> score -> apply and order),
its rows, reading order, image cache and events, durable review decisions and CSV export. No Qt."""
