"""The one place that talks to Docker: images, hosts, agents, sidecars, teardown by label."""
