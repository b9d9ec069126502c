"""`dockyard compose`: load, validate, lower to ContainerSpec, converge through Engine."""
