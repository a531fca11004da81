"""A user project that names its graphs in every form langgraph.json allows."""
