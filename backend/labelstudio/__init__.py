"""Label Studio: labeling-config parsing, the ML-backend protocol's JSON shapes, the API client.

Nothing here imports torch or Flask. Import the submodules directly
(``backend.labelstudio.config``, ``.protocol``, ``.client``).
"""
