"""`image_contents`: attribution and waste findings, from synthetic `docker save` archives."""

from __future__ import annotations

import json
import posixpath
from typing import Any

from buildbench.measure.archive import ArchiveAnalysis
from buildbench.measure.contents import image_contents
from buildbench.measure.contents.dpkg import installed_packages
from buildbench.record import (
    Attribution,
    DistributionShare,
    FindingKind,
    ImageContents,
    PackageShare,
    from_json,
    to_json,
)
from tests.unit.test_archive import (
    Entry,
    analyse,
    directory,
    file,
    hardlink,
    layer,
    nop,
    opaque,
    run,
    save,
    symlink,
    whiteout,
)

SITE = "usr/local/lib/python3.11/site-packages"
BASE_STATUS = (
    b"Package: libc6\nStatus: install ok installed\nPriority: required\nVersion: 2.36\n\n"
    b"Package: bash\nStatus: install ok installed\nEssential: yes\nDepends: libc6\n"
)
BASE = layer(
    symlink("lib", "usr/lib"),
    symlink("bin", "usr/bin"),
    directory("usr/lib/x86_64-linux-gnu"),
    file("usr/lib/x86_64-linux-gnu/libc.so.6", 2000),
    file("usr/bin/bash", 1200),
    file("var/lib/dpkg/status", BASE_STATUS),
    file("var/lib/dpkg/info/libc6:amd64.list", b"/.\n/lib\n/lib/x86_64-linux-gnu/libc.so.6\n"),
    file("var/lib/dpkg/info/bash.list", b"/bin/bash\n"),
)


def image(
    *layers: bytes, history: list[dict[str, Any]] | None = None, env: list[str] | None = None
) -> ArchiveAnalysis:
    """The base layer and `layers` above it, analysed as `docker save` would stream them."""
    steps = history or [run(f"step {i}") for i in range(len(layers))]
    return analyse(save([BASE, *layers], history=[run("base"), *steps], env=env), base_layers=1)


def over_base(analysis: ArchiveAnalysis) -> int:
    """What the engine reports as image Size - base Size: the layers above the base."""
    return sum(lay.size_bytes for lay in analysis.layers if not lay.base)


def contents(analysis: ArchiveAnalysis) -> ImageContents:
    return image_contents(analysis, bytes_over_base=over_base(analysis))


def kinds(result: ImageContents) -> dict[FindingKind, int]:
    return {f.kind: f.bytes for f in result.findings}


def distribution(
    name: str, version: str, files: dict[str, int], *, root: str = SITE
) -> list[Entry]:
    """A wheel's files, its METADATA and a RECORD listing them all (paths relative to root)."""
    dist_info = f"{root}/{name}-{version}.dist-info"
    rows = [f"{path},sha256=x,{size}" for path, size in files.items()]
    rows += [f"{name}-{version}.dist-info/METADATA,,", f"{name}-{version}.dist-info/RECORD,,"]
    entries = [file(f"{dist_info}/METADATA", f"Name: {name}\nVersion: {version}\n".encode())]
    entries += [file(f"{dist_info}/RECORD", "\n".join(rows).encode() + b"\n")]
    entries += [
        file(posixpath.normpath(posixpath.join(root, path)), size) for path, size in files.items()
    ]
    return entries


def size_of(entries: list[Entry]) -> int:
    return sum(info.size for info, _ in entries)


def status(base: bytes, *paragraphs: str) -> Entry:
    """dpkg's status: the base's packages and these."""
    return file("var/lib/dpkg/status", base + b"\n" + "\n".join(paragraphs).encode())


def package(name: str, depends: str = "", **fields: str) -> str:
    lines = [f"Package: {name}", "Status: install ok installed", "Version: 1.0"]
    lines += [f"Depends: {depends}"] if depends else []
    lines += [f"{key.replace('_', '-')}: {value}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Attribution


def test_attribution_splits_the_bytes_over_base_exactly():
    wheel = distribution("foo", "1.0", {"foo/__init__.py": 100, "foo/core.so": 4000})
    analysis = image(
        layer(
            status(BASE_STATUS, package("gcc-12", "libc6")),
            file("var/lib/dpkg/info/gcc-12.list", b"/usr\n/usr/bin\n/bin/gcc-12\n"),
            file("usr/bin/gcc-12", 5000),
            file("big", 700),
        ),
        layer(*wheel, file("tmp/unowned", 30)),
        layer(whiteout("big")),
    )
    result = contents(analysis)
    attribution = result.attribution
    # Each with the layer that installed it (wrote its RECORD, or its dpkg file list).
    assert attribution.distributions == [DistributionShare("foo", "1.0", size_of(wheel), 2)]
    [gcc] = attribution.packages
    assert (gcc.name, gcc.version, gcc.bytes, gcc.new, gcc.layer) == (
        "gcc-12",
        "1.0",
        5000,
        True,
        1,
    )
    assert attribution.deleted_or_overwritten_bytes == 700
    status_and_lists = sum(
        entry.size
        for lay in analysis.layers[1:]
        for entry in lay.files
        if entry.path.startswith("var/lib/dpkg/")
    )
    assert attribution.unowned_bytes == 30 + status_and_lists
    total = attribution.distributions_bytes + attribution.packages_bytes + attribution.other_bytes
    assert total == attribution.bytes_over_base == over_base(analysis)
    assert attribution.layers_bytes == over_base(analysis)


def test_a_gap_between_the_engine_and_the_layers_goes_to_unowned():
    analysis = image(layer(*distribution("foo", "1.0", {"foo/a.py": 10})))
    exact = contents(analysis).attribution
    attribution = image_contents(analysis, bytes_over_base=over_base(analysis) + 7).attribution
    assert attribution.unowned_bytes == exact.unowned_bytes + 7
    total = attribution.distributions_bytes + attribution.packages_bytes + attribution.other_bytes
    assert total == attribution.bytes_over_base


def test_record_paths_may_climb_out_of_site_packages():
    wheel = distribution("tool", "2.0", {"tool.py": 100, "../../../bin/tool": 50})
    analysis = image(layer(*wheel))
    [share] = contents(analysis).attribution.distributions
    assert share.bytes == size_of(wheel) == 100 + 50 + size_of(wheel[:2])
    paths = {entry.path for entry in analysis.layers[1].files}
    assert "usr/local/bin/tool" in paths


def test_files_a_later_layer_replaces_belong_to_no_distribution():
    analysis = image(
        layer(*distribution("foo", "1.0", {"foo/a.py": 100, "foo/b.py": 50})),
        layer(file(f"{SITE}/foo/a.py", 10)),
    )
    attribution = contents(analysis).attribution
    [share] = attribution.distributions
    metadata = sum(e.size for e in analysis.layers[1].files if ".dist-info/" in e.path)
    # a.py's surviving copy is the later layer's, which RECORD still names: it counts.
    assert share.bytes == 10 + 50 + metadata
    assert attribution.deleted_or_overwritten_bytes == 100


def test_packages_over_the_base_only_count_their_files_above_it():
    analysis = image(
        layer(
            status(BASE_STATUS.replace(b"2.36", b"2.37"), package("zlib1g")),
            file("var/lib/dpkg/info/zlib1g:amd64.list", b"/lib/x86_64-linux-gnu/libz.so.1\n"),
            file("usr/lib/x86_64-linux-gnu/libz.so.1", 120),
            # The upgraded libc6 rewrites its library: those bytes are over the base too.
            file("usr/lib/x86_64-linux-gnu/libc.so.6", 2100),
        )
    )
    packages = contents(analysis).attribution.packages
    assert packages == [
        # libc6's file list is still the base's (this layer did not write it).
        PackageShare("libc6", "2.37", 2100, new=False, layer=0),
        PackageShare("zlib1g", "1.0", 120, new=True, layer=1),
    ]


def test_nvidia_distributions_are_the_cuda_libraries():
    analysis = image(
        layer(
            *distribution("nvidia_cublas_cu12", "12.1", {"nvidia/cublas/lib/libcublas.so.12": 900}),
            *distribution("nvidia-cudnn-cu12", "9.1", {"nvidia/cudnn/lib/libcudnn.so.9": 800}),
            *distribution("torch", "2.3", {"torch/lib/libtorch.so": 700}),
        )
    )
    result = contents(analysis)
    cuda = {d.name for d in result.attribution.distributions if d.cuda}
    assert cuda == {"nvidia_cublas_cu12", "nvidia-cudnn-cu12"}
    assert 1700 < result.cuda_libraries_bytes < 1700 + 1000  # plus their METADATA and RECORD
    assert [d.name for d in result.top_distributions(1)] == ["nvidia_cublas_cu12"]


# ---------------------------------------------------------------------------------------------
# Layers stacked: whiteouts, opaque directories, hard links


def test_a_file_written_then_deleted_is_waste_of_the_layer_that_wrote_it():
    analysis = image(
        layer(file("big", 5000)),
        layer(whiteout("big")),
        history=[run("head -c 5000 /dev/urandom > /big"), run("rm /big")],
    )
    result = contents(analysis)
    [finding] = result.findings
    assert finding.kind is FindingKind.DELETED_LATER
    assert (finding.bytes, finding.paths) == (5000, ["/big"])
    assert finding.instruction == "RUN head -c 5000 /dev/urandom > /big"
    assert result.wasted_bytes == 5000
    written = sum(lay.size_bytes for lay in analysis.layers)
    assert result.efficiency == (written - 5000) / written


def test_a_file_written_twice_wastes_its_first_copy():
    analysis = image(
        layer(file("app/model.bin", 3000)),
        layer(file("app/model.bin", 1000)),
        history=[nop("COPY model.bin /app/", empty=False), run("python shrink.py")],
    )
    result = contents(analysis)
    [finding] = result.findings
    assert finding.kind is FindingKind.OVERWRITTEN_LATER
    assert (finding.bytes, finding.instruction) == (3000, "COPY model.bin /app/")
    # dive's score: the path's smallest copy (1000) over both (4000); other paths count whole.
    written = sum(lay.size_bytes for lay in analysis.layers)
    assert result.efficiency == (written - 4000 + 1000) / written


def test_whiteout_directories_and_opaque_directories_hide_what_is_below():
    analysis = image(
        layer(file("d/a", 100), file("d/sub/b", 200), file("e/x", 50), file("e/keep/y", 5)),
        layer(whiteout("d"), opaque("e"), file("e/z", 7), directory("e/keep")),
    )
    result = contents(analysis)
    [finding] = result.findings
    assert (finding.kind, finding.bytes) == (FindingKind.DELETED_LATER, 355)
    assert finding.paths == ["/d/sub/b", "/d/a", "/e/x", "/e/keep/y"]
    assert result.attribution.deleted_or_overwritten_bytes == 355
    assert result.attribution.unowned_bytes == 7  # e/z, from the same layer as the marker


def test_deleting_a_base_file_is_waste_in_the_base_layer():
    result = contents(image(layer(whiteout("usr/bin/bash"))))
    [finding] = result.findings
    assert (finding.bytes, finding.instruction) == (1200, "RUN base")
    assert "base" in finding.fix
    assert result.attribution.deleted_or_overwritten_bytes == 0  # not over the base


def test_a_hard_link_keeps_the_data_of_a_deleted_file():
    analysis = image(
        layer(file("opt/a", 400), hardlink("opt/b", "opt/a")), layer(whiteout("opt/a"))
    )
    result = contents(analysis)
    assert result.wasted_bytes == 0
    assert result.attribution.unowned_bytes == 400


# ---------------------------------------------------------------------------------------------
# Findings by path


def test_caches_and_apt_lists_left_in_the_image():
    analysis = image(
        layer(
            file("var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_Packages.lz4", 900),
            file("var/cache/apt/archives/gcc_12.deb", 800),
            file("var/cache/apt/archives/partial/x.deb", 5),
            file("var/cache/apt/pkgcache.bin", 300),
            file("var/cache/apt/archives/lock", 0),
        ),
        layer(file("root/.cache/pip/http/a/b", 600), file("home/app/.cache/pip/wheels/w", 60)),
        history=[run("apt-get update && apt-get install -y gcc"), run("pip install foo")],
    )
    result = contents(analysis)
    assert kinds(result) == {
        FindingKind.APT_LISTS: 900,
        FindingKind.APT_CACHE: 1105,
        FindingKind.PIP_CACHE: 660,
    }
    pip = next(f for f in result.findings if f.kind is FindingKind.PIP_CACHE)
    assert pip.instruction == "RUN pip install foo"
    assert pip.paths == ["/root/.cache/pip/http/a/b", "/home/app/.cache/pip/wheels/w"]
    assert [f.bytes for f in result.findings] == [1105, 900, 660]


def test_bytecode_is_a_finding_only_when_the_image_says_not_to_write_it():
    wheel = layer(
        file(f"{SITE}/foo/__pycache__/x.cpython-311.pyc", 80), file(f"{SITE}/foo/x.py", 9)
    )
    assert kinds(contents(image(wheel))) == {}
    result = contents(image(wheel, env=["PYTHONDONTWRITEBYTECODE=1"]))
    assert kinds(result) == {FindingKind.BYTECODE: 80}


def test_tests_docs_and_examples_inside_site_packages():
    analysis = image(
        layer(
            file(f"{SITE}/foo/tests/test_a.py", 300),
            file(f"{SITE}/foo/tests/data/b.bin", 200),
            file(f"{SITE}/foo/docs/index.md", 50),
            file("usr/lib/python3/dist-packages/bar/sub/examples/e.py", 10),
            file(f"{SITE}/foo/testing/helpers.py", 1000),
            file(f"{SITE}/foo-1.0.dist-info/licenses/docs/LICENSE", 1000),
            file("usr/share/doc/foo/README", 1000),
        )
    )
    [finding] = contents(analysis).findings
    assert (finding.kind, finding.bytes) == (FindingKind.TESTS_AND_DOCS, 560)
    assert finding.paths == [
        f"/{SITE}/foo/tests",
        f"/{SITE}/foo/docs",
        "/usr/lib/python3/dist-packages/bar/sub/examples",
    ]


def test_the_same_shared_library_twice_wastes_all_copies_but_the_largest():
    analysis = image(
        layer(file("usr/local/cuda/lib64/libcudart.so.12", 1000)),
        layer(
            file(f"{SITE}/nvidia/cuda_runtime/lib/libcudart.so.12", 900),
            symlink(f"{SITE}/nvidia/cuda_runtime/lib/libcudart.so", "libcudart.so.12"),
            file(f"{SITE}/torch/_C.cpython-311-x86_64-linux-gnu.so", 40),
            file(f"{SITE}/functorch/_C.cpython-311-x86_64-linux-gnu.so", 30),
        ),
        history=[nop("COPY cuda /usr/local/cuda", empty=False), run("pip install torch")],
    )
    [finding] = contents(analysis).findings
    assert finding.kind is FindingKind.DUPLICATE_LIBRARIES
    assert finding.bytes == 900
    assert finding.paths == [f"/{SITE}/nvidia/cuda_runtime/lib/libcudart.so.12"]
    assert finding.instruction == "RUN pip install torch"


# ---------------------------------------------------------------------------------------------
# The toolchain


TOOLCHAIN_STATUS = (
    package("gcc", "gcc-12 (>= 12.2), cpp (= 4:12.2.0-3)"),
    package(
        "gcc-12", "cpp-12 (= 12.2.0-14), gcc-12-base, libisl23 (>= 0.15), libc6-dev | libc-dev"
    ),
    package("gcc-12-base"),
    package("libgcc-s1", "gcc-12-base, libc6", Priority="required"),
    package("cpp", "cpp-12"),
    package("cpp-12", "libisl23, libgmp10, libc6 (>= 2.36)"),
    package("libisl23", "libgmp10"),
    package("libgmp10", "libc6"),
    package("python3-gmpy2", "libgmp10"),  # not a toolchain package: libgmp10 stays
    package("libc6-dev", "libc-dev-bin, linux-libc-dev", Provides="libc-dev"),
    package("libc-dev-bin"),
    package("linux-libc-dev"),
    package("make"),
    package("dpkg-dev", "perl:any, make"),
    package("perl", "perl-base, libperl5.36"),
    package("libperl5.36"),
    package("perl-base", Essential="yes"),
    "Package: gcc-11\nStatus: deinstall ok config-files\nVersion: 11\n",
)


def test_toolchain_packages_and_the_dependencies_only_they_need():
    lists = {
        "gcc-12": ["/usr/bin/gcc-12", "/usr/libexec/gcc/cc1"],
        "gcc": ["/usr/bin/gcc"],
        "libisl23": ["/lib/x86_64-linux-gnu/libisl.so.23"],  # through the /lib symlink
        "libgmp10": ["/usr/lib/x86_64-linux-gnu/libgmp.so.10"],
        "perl": ["/usr/bin/perl"],
    }
    analysis = image(
        layer(
            status(BASE_STATUS, *TOOLCHAIN_STATUS),
            *(
                file(f"var/lib/dpkg/info/{name}.list", "\n".join(paths).encode())
                for name, paths in lists.items()
            ),
            file("usr/bin/gcc-12", 900),
            symlink("usr/bin/gcc", "gcc-12"),
            file("usr/libexec/gcc/cc1", 30000),
            file("usr/lib/x86_64-linux-gnu/libisl.so.23", 2000),
            file("usr/lib/x86_64-linux-gnu/libgmp.so.10", 500),
            file("usr/bin/perl", 3000),
        ),
        history=[run("apt-get install -y build-essential")],
    )
    [finding] = [f for f in contents(analysis).findings if f.kind is FindingKind.TOOLCHAIN]
    assert sorted(finding.packages) == [
        "cpp",
        "cpp-12",
        "dpkg-dev",
        "gcc",
        "gcc-12",
        "libc-dev-bin",
        "libc6-dev",
        "libisl23",
        "libperl5.36",
        "linux-libc-dev",
        "make",
        "perl",
    ]
    assert finding.packages[:3] == ["gcc-12", "perl", "libisl23"]  # biggest first
    assert finding.bytes == 900 + len("gcc-12") + 30000 + 2000 + 3000
    assert finding.paths[0] == "/usr/libexec/gcc/cc1"
    assert finding.instruction == "RUN apt-get install -y build-essential"


def test_no_toolchain_no_finding():
    runtime = [package("curl", "libc6, libgcc-s1"), package("libgcc-s1", "gcc-12-base")]
    result = contents(image(layer(status(BASE_STATUS, *runtime, package("gcc-12-base")))))
    assert FindingKind.TOOLCHAIN not in kinds(result)


# ---------------------------------------------------------------------------------------------
# The result


def test_contents_round_trip_through_json():
    analysis = image(
        layer(*distribution("foo", "1.0", {"foo/a.py": 10}), file("big", 50), file("x.pyc", 3)),
        layer(whiteout("big"), status(BASE_STATUS, package("make"))),
        env=["PYTHONDONTWRITEBYTECODE=1"],
    )
    result = contents(analysis)
    assert len(result.findings) >= 2
    text = json.dumps(to_json(result))
    again = from_json(ImageContents, json.loads(text))
    assert again == result
    assert isinstance(again.findings[0].kind, FindingKind)
    assert isinstance(again.attribution, Attribution)


def test_top_lists_are_sorted_and_cut():
    analysis = image(
        layer(file("a", 10)),
        layer(file("b", 30)),
        layer(file("c", 20)),
    )
    result = contents(analysis)
    assert [lay.size_bytes for lay in result.biggest_layers(2)] == [30, 20]
    assert [lay.index for lay in result.attribution.layers] == [1, 2, 3]
    assert result.top_packages() == []


def test_dpkg_status_is_read_as_deb822() -> None:
    """Field names in any case, a blank-looking separator line, continuation lines that look
    like fields: as python-debian (and dpkg) read them."""
    text = (
        b"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n \n"
        b"package: zlib1g\nstatus: install ok installed\nDepends: libc6 (>= 2.14)\n"
        b"Description: compression library\n Depends: not-a-field\n\n"
        b"Package: gcc-12\nStatus: deinstall ok config-files\n"
    )
    packages = installed_packages({"var/lib/dpkg/status": text})
    assert sorted(packages) == ["libc6", "zlib1g"]
    assert packages["zlib1g"].depends == [["libc6"]]
    assert packages["libc6"].version == "2.36-9"
