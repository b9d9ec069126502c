"""Host-side access to trees someone else wrote: container roots, layers, contexts.

A leaf package (it imports only ``errors``), so every layer of dockyard — the
snapshotter, the builder, the engine's ``cp``, volumes — reaches an untrusted tree
through the same two modules:

- :mod:`dockyard.fs.inroot`: a path inside a root is resolved by the kernel in one
  step (``openat2`` with ``RESOLVE_IN_ROOT``), and everything afterwards works on
  the descriptor it returned.  A symlink, a ``..`` or a directory swapped for a
  symlink by a running container can never lead outside the root.
- :mod:`dockyard.fs.tree`: walks, removals and copies with an explicit stack and a
  descriptor per level, never recursion and never a path string re-resolved, so a
  tree thousands of levels deep is walked like a flat one.
"""
