"""dockyard: a daemonless container engine in Python.

``__version__`` is the one place the version is written: the package's metadata
(pyproject reads it), ``dockyard compose version``, the Engine API's ``/version`` and
the ``com.docker.compose.version`` label take it from here.
"""

__version__ = "0.1.0"
