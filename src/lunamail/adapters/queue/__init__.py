"""Queue adapters: ``sqlite`` (the embedded durable local queue)."""
