"""A rebuilt image's compressed size: buildbench builds with no cache, so each run's layers are
new, but the big files in them are the same bytes and their blocks' sizes are known
(measure/sizecache.py). Two runs of one image, through the installed console script."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildbench.engine.dockersdk import DockerEngine
from tests.integration.conftest import buildbench, remove_runs

pytestmark = pytest.mark.integration

# Two big files (one compressible, one not) that every build writes alike, and a stamp that
# differs. As a project would write it: a continuation line, a multi-stage build.
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS data
RUN python3 -c "open('/big.txt', 'w').write(' '.join(map(str, range(700000))))" && \\
    python3 -c "import random; random.seed(7); \\
                open('/big.bin', 'wb').write(random.randbytes(3 << 20))"
FROM ${BASE_IMAGE}
COPY --from=data /big.txt /big.bin /opt/data/
RUN date +%s%N > /opt/data/stamp
"""


def test_a_rebuilt_image_is_sized_from_its_known_blocks(
    tmp_path: Path, base_image: str, engine: DockerEngine
) -> None:
    (tmp_path / "app.dockerfile").write_text(DOCKERFILE)
    (tmp_path / "buildbench.toml").write_text(
        '[[image]]\nname = "app"\ndockerfile = "app.dockerfile"\n'
        f'build_args = {{ BASE_IMAGE = "{base_image}" }}\n'
    )
    cache = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    images, sizes, kept = [], [], []
    try:
        for _ in range(2):
            ran = buildbench("run", "-q", "--no-smoke", "--cuda", "cpu", cwd=tmp_path, env=env)
            assert ran.process.returncode == 0, ran.process.stderr
            (cell,) = ran.data(-1)["results"]
            images.append(cell["image_id"])
            sizes.append(cell["image"]["compressed_size_bytes"])
            (blocks,) = cache.rglob("blocks.txt")
            kept.append(blocks.read_text().splitlines())
        assert images[0] != images[1]  # built anew: new layers
        # The first run deflated the big files' blocks (and the base's: nothing was known);
        # the second knew every one of them: it kept no new block.
        assert len(kept[0]) >= 2 and kept[1] == kept[0]
        # The same figure, but for the stamp and the layers' headers.
        assert abs(sizes[1] - sizes[0]) < 2048, sizes
    finally:
        remove_runs(engine, tmp_path / "results")
