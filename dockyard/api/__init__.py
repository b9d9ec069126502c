"""The Docker Engine API over the one ``Engine``: ``dockyard serve``.

One file per resource (``system``, ``containers``, ``images``, ``networks``,
``volumes``) registers its routes; ``server`` builds the aiohttp application,
negotiates versions and listens; ``errors`` is the one place where dockyard's error
kinds become HTTP statuses; ``create`` lowers a create body into a ``ContainerSpec``;
``streams`` carries blocking engine work (iterators, file-like transfers, hijacked
attach sockets) onto the event loop without blocking it.
"""
