"""Replicas: several tines engines behind one HTTP endpoint, on Ray Serve.

One Ray Serve application: an `Ingress` deployment (FastAPI, light) takes every HTTP request,
reads the prompt out of its JSON body and hands the raw request to an `EngineServer` replica
through a deployment handle. Each `EngineServer` owns one `Engine` and the same FastAPI app
`tines serve` runs (so every route, error and stream is byte-for-byte the single-process one).
Which replica gets a request is the `PrefixAwareRouter`'s choice (Ray Serve's pluggable
request-router API): the replica whose radix cache most likely holds the longest prefix of the
prompt, unless queues diverge, then the least loaded. Its view of each replica's cache is an
approximate `PrefixIndex` over text blocks, kept from the requests it routed.

Ray is an optional extra (`pip install tines[ray]`); nothing here is imported by the engine.
"""
