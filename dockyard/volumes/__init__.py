"""Named volumes (local driver), bind and tmpfs mounts: data that outlives a container."""
