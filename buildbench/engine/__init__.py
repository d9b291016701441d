"""The seam to container engines: the Engine protocol, the Docker SDK engine, the builders."""
