"""Images through a registry, and what the registry stores for them.

`--registry HOST[:PORT]` names a registry the engine can already reach; `--registry local` runs
Debian's reference registry (`docker-registry`, distribution 2.8) on 127.0.0.1. Pushes and pulls
go through the engine, as a user's would, so they are timed with the engine's compression,
uploads and layer extraction; the stored size is read from the registry itself (the manifest),
never estimated from the local image.

One module per job: `address` (what `--registry` names, references in it), `manifests` (the
registry's HTTP API: is it one, what it stores), `transfer` (tag, push and pull through the
engine), `local` (the reference registry run for the length of a run).
"""
