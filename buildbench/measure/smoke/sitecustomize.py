"""What a Python process in a smoke container touches: put on PYTHONPATH by buildbench's tracer
(measure/trace.py), it runs before the program, needs nothing but the standard library and no
privilege, and prints one line at exit:

    BUILDBENCH_TRACE {"paths": [...], "directories": [...], "execs": [...], "loader": ...}

A service's log is read only by its tail, which its own lines (a request log) fill: with
BUILDBENCH_TRACE_FILE set (a path prefix in a volume), each process writes that JSON instead to
PREFIX + its pid + ".json", replaced whole each time, and prints it only if it cannot.

Paths come from an audit hook (files opened, directories listed, libraries loaded with ctypes,
programs started), from os.stat/lstat/access (existence checks), from `/proc/self/maps` (every
shared object mapped: extension modules and their libraries too) and from the modules imported
before this file ran. A file a native
library reads with its own I/O is not seen: that is why the slim candidate is proven by running
the smoke test again, not trusted.
"""

import atexit
import contextlib
import functools
import json
import os
import signal
import struct
import sys
import threading

PREFIX = "BUILDBENCH_TRACE "
_EVERY = "BUILDBENCH_TRACE_EVERY"  # seconds: a service's trace, written while it runs
_FILE = "BUILDBENCH_TRACE_FILE"  # where to write it instead of stderr: a path prefix
_HERE = os.path.dirname(os.path.abspath(__file__))
_TO = os.environ.get(_FILE)  # read before the program may change its environment
_paths: set = set()
_execs: set = set()
_lock = threading.Lock()


def _note(path):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if isinstance(path, str):  # not a file descriptor
        _paths.add(os.path.abspath(path))


def _watched(name):
    """os.stat, os.lstat, os.access recording their path: a check that a file exists
    (os.path.exists, pathlib) is not audited, yet a program may need the file to be there.
    The import system calls posix's own stat, so imports do not pay for this."""
    original = getattr(os, name)

    def watched(path, *args, **kwargs):
        with contextlib.suppress(Exception):
            _note(os.fspath(path) if hasattr(path, "__fspath__") else path)
        return original(path, *args, **kwargs)

    return functools.wraps(original)(watched)


def _hook(event, args):
    # Called for every audited event in the process: stay cheap and never raise.
    try:
        if event in ("open", "os.listdir", "os.scandir", "ctypes.dlopen"):
            _note(args[0])  # a dlopen by bare name: /proc/self/maps has its file
        elif event in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn"):
            program = args[0] if event != "os.spawn" else args[1]
            if isinstance(program, bytes):
                program = os.fsdecode(program)
            if isinstance(program, str):
                _execs.add(program)
    except Exception:
        pass


def _interpreter_loader(executable):
    """The ELF interpreter (the dynamic loader) the executable names: PT_INTERP."""
    try:
        with open(executable, "rb") as handle:
            head = handle.read(64)
            if head[:4] != b"\x7fELF":
                return None
            wide = head[4] == 2
            order = "<" if head[5] == 1 else ">"
            if wide:
                (phoff,) = struct.unpack_from(order + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
            else:
                (phoff,) = struct.unpack_from(order + "I", head, 28)
                phentsize, phnum = struct.unpack_from(order + "HH", head, 42)
            for index in range(phnum):
                handle.seek(phoff + index * phentsize)
                entry = handle.read(phentsize)
                (kind,) = struct.unpack_from(order + "I", entry, 0)
                if kind != 3:  # PT_INTERP
                    continue
                if wide:
                    (offset,) = struct.unpack_from(order + "Q", entry, 8)
                    (size,) = struct.unpack_from(order + "Q", entry, 32)
                else:
                    (offset,) = struct.unpack_from(order + "I", entry, 4)
                    (size,) = struct.unpack_from(order + "I", entry, 16)
                handle.seek(offset)
                return handle.read(size).rstrip(b"\0").decode()
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    return None


def _collect():
    found = set(_paths)
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    name = parts[5].rstrip("\n")
                    found.add(name[: -len(" (deleted)")] if name.endswith(" (deleted)") else name)
    except OSError:
        pass
    for module in list(sys.modules.values()):
        for name in ("__file__", "__cached__"):
            value = getattr(module, name, None)
            if isinstance(value, str):
                found.add(os.path.abspath(value))
    # The interpreter as started (a symlink, maybe) and as it is, and what it starts with.
    started = getattr(sys, "orig_argv", [""])[:1]  # Python 3.10 and later
    for name in (sys.executable, getattr(sys, "_base_executable", ""), *started):
        if name and "/" in name:
            found.add(os.path.abspath(name))
    # Read at start-up, before any hook: a virtual environment's pyvenv.cfg (beside the
    # interpreter as started, or one folder up) makes its site-packages part of sys.path.
    for folder in (os.path.dirname(sys.executable), os.path.dirname(sys.prefix + "/")):
        found.add(os.path.join(folder, "pyvenv.cfg"))
    found.add(os.path.join(os.path.dirname(os.path.dirname(sys.executable)), "pyvenv.cfg"))
    real = os.path.realpath("/proc/self/exe")
    found.add(real)
    loader = _interpreter_loader(real)
    directories = set()
    for entry in sys.path:
        if entry and os.path.isdir(entry):
            directories.add(os.path.abspath(entry))
            # .pth files: site reads them before this file runs.
            with contextlib.suppress(OSError):
                found.update(
                    os.path.join(entry, n) for n in os.listdir(entry) if n.endswith(".pth")
                )
    found.update(directories)
    found = {p for p in found if not p.startswith(_HERE + "/") and p != _HERE}
    return {
        "pid": os.getpid(),
        "executable": real,
        "loader": loader,
        "paths": sorted(found),
        "directories": sorted(directories),
        "execs": sorted(_execs),
    }


def _written(text, prefix):
    """Whether `text` went to this process's file (a whole one: written aside, then renamed)."""
    path = f"{prefix}{os.getpid()}.json"
    try:
        with open(path + ".part", "w") as handle:
            handle.write(text)
        os.replace(path + ".part", path)
    except OSError:
        return False
    return True


def _report():
    with _lock:
        text = json.dumps(_collect(), separators=(",", ":"))
        if _TO and _written(text, _TO):
            return
        try:
            sys.stderr.write(PREFIX + text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def _on_term(signum, frame):
    _report()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _every(seconds):
    event = threading.Event()
    while not event.wait(seconds):
        _report()


def _chain():
    """Run the image's own sitecustomize, if it has one: this file only shadowed it."""
    this = sys.modules.pop("sitecustomize")
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    try:
        import sitecustomize  # type: ignore[import-not-found]  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "sitecustomize":
            raise
    finally:
        sys.path[:] = saved
        sys.modules["sitecustomize"] = this  # the import that runs this file looks it up


def _install():
    sys.addaudithook(_hook)
    for name in ("stat", "lstat", "access"):
        setattr(os, name, _watched(name))
    atexit.register(_report)
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_term)
    every = os.environ.get(_EVERY)
    if every:
        thread = threading.Thread(target=_every, args=(float(every),), daemon=True)
        thread.start()
    _chain()


_install()
