"""Code used by both the API and the workers: settings, database, schemas, queue names, errors."""
