"""EventPublisher backends: ``eventbridge`` (imported from its module: it loads boto3)."""
