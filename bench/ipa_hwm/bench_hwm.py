"""An extra IPA hardware manager for the deploy benchmark (on PYTHONPATH
only inside bench/sandbox/run.sh): the deploy step `test_sleep`, as our
agent's test manager offers it (IRONIC_AGENT_ENABLE_TEST_MANAGER=1), so both
agents run a user deploy step of the same length."""
import time

from ironic_python_agent import hardware


class BenchHardwareManager(hardware.HardwareManager):
    HARDWARE_MANAGER_NAME = "BenchHardwareManager"
    HARDWARE_MANAGER_VERSION = "1"

    def evaluate_hardware_support(self):
        return hardware.HardwareSupport.SERVICE_PROVIDER

    def get_deploy_steps(self, node, ports):
        return [{"step": "test_sleep", "priority": 0, "interface": "deploy",
                 "reboot_requested": False,
                 "argsinfo": {"seconds": {"description": "seconds to sleep (default 1)",
                                          "required": False}}}]

    def test_sleep(self, node, ports, seconds=1):
        time.sleep(float(seconds))
        return f"slept {seconds} seconds"
