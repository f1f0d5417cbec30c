"""The Channels edge: the only part of streaming/ that imports Django, Channels or daphne."""
