"""Runs IPA 13.0.0's root-device-hint matching over devices and hint sets from stdin.

Input: {"devices": [IPA device dicts], "hints": [hint dicts]}.
Output: a JSON list with, per hint set, the first matching device name, null for
no match, or "ERROR" when IPA rejects the hints.
"""
import json
import sys

from oslo_config import cfg

from ironic_python_agent import config as _config  # noqa: F401
from ironic_python_agent import device_hints

cfg.CONF([], project='ironic-python-agent')
data = json.load(sys.stdin)
out = []
for hints in data['hints']:
    try:
        dev = device_hints.match_root_device_hints(data['devices'], hints)
        out.append(dev['name'] if dev else None)
    except ValueError:
        out.append('ERROR')
print(json.dumps(out))
