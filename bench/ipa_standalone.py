"""Runs ironic-python-agent 13.0.0 in standalone mode (no lookup, no heartbeat),
or, with --bench-lookup first, looking up and heartbeating to --api_url.

IPA's CLI has no --standalone switch: like IPA's own functional tests, build
the agent object with standalone=True. Takes IPA's usual oslo.config options.
Only ever started inside bench/sandbox/run.sh (bench/ipa-standalone.sh, or
bench/common.py for the deploy through a conductor).
"""
import sys

from oslo_config import cfg
from oslo_log import log

from ironic_python_agent import agent

CONF = cfg.CONF


def main():
    # As ironic_python_agent.cmd.agent.run(), minus copy_config_from_vmedia()
    # (it probes and mounts virtual-media devices).
    args = sys.argv[1:]
    standalone = not (args and args[0] == "--bench-lookup")
    if not standalone:
        args = args[1:]
    log.register_options(CONF)
    CONF(args=args, project="ironic-python-agent", default_config_files=[])
    log.setup(CONF, "ironic-python-agent")
    agent.IronicPythonAgent(
        CONF.api_url,
        agent.Host(hostname=CONF.advertise_host, port=CONF.advertise_port),
        agent.Host(hostname=CONF.listen_host, port=CONF.listen_port),
        CONF.ip_lookup_attempts,
        CONF.ip_lookup_sleep,
        CONF.network_interface,
        CONF.lookup_timeout,
        CONF.lookup_interval,
        standalone,
        CONF.agent_token,
        CONF.hardware_initialization_delay,
        CONF.advertise_protocol,
    ).run()


if __name__ == "__main__":
    main()
