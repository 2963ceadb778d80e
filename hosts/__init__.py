"""The end hosts of a DCIA path: the edge agent (first stages) and the cloud server (last)."""
