"""Prints IPA 13.0.0's inventory of this machine as JSON (read-only: lsblk, lshw, ...)."""
import json

from oslo_config import cfg

from ironic_python_agent import config as _config  # noqa: F401  (registers options)
from ironic_python_agent import encoding, hardware

cfg.CONF([], project='ironic-python-agent')
hardware.get_managers()
print(json.dumps(hardware.list_hardware_info(use_cache=False),
                 cls=encoding.RESTJSONEncoder))
