"""Queue adapters: ``sqlite`` (the embedded durable local queue) and ``sqs`` (Amazon SQS)."""
