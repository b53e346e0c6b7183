"""medq workers: the Celery app, thin tasks, the job service and the predictors."""
