"""Runs IPA 13.0.0's pci-devices and numa-topology collectors on this machine."""
import json

from oslo_config import cfg

from ironic_python_agent import config as _config  # noqa: F401
from ironic_python_agent import inspector, numa_inspector, utils

cfg.CONF([], project='ironic-python-agent')
data = {}
failures = utils.AccumulatedFailures()
inspector.collect_pci_devices_info(data, failures)
numa_inspector.collect_numa_topology_info(data, failures)
data['error'] = failures.get_error()
print(json.dumps(data))
