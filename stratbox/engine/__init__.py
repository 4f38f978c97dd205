"""The engine: reconciler, scheduler, tick execution; the only runtime caller of the sandbox."""
