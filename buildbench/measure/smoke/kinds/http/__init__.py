"""The http kind: an image that serves over HTTP, measured as a service under load
(`[image.smoke.http]`)."""

from buildbench.measure.smoke.kinds.http import config
from buildbench.measure.smoke.runner import Kind

KIND = Kind(name="http", keys=("http",), read=config.read, tip=config.TIP)
