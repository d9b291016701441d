"""The command kind: a config's own command, run in the image, must exit 0 and print what is
expected (`smoke = { command = [...], expect = "text" }`)."""

from buildbench.measure.smoke.kinds.command import config
from buildbench.measure.smoke.runner import Kind

KIND = Kind(
    name="command",
    keys=("command", "expect"),
    read=config.read,
    tip='e.g. smoke = { command = ["python", "-c", "import mylib"], expect = "text" }',
)
