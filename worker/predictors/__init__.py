"""Predictors: plain, typed, batched `prepare` + `predict`, with no Celery import."""
