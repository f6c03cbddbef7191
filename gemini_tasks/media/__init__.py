"""Media shared by producers and workers: the seed's media fields, staged references, stores.

May import only the bottom layer (errors, keyspace). The producer stages media
(`gemini_tasks.producer.staging`); the worker sends it (`gemini_tasks.worker.uploads`).
"""
