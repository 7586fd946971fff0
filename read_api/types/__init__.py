"""GraphQL types, one module per read model; ``common`` holds what they share."""
