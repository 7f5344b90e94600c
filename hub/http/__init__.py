"""REST on Quart-Trio, served by Hypercorn inside the hub's own Trio run."""
