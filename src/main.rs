//! `ironic-agent`: an IPA-compatible provisioning agent for Ironic on CoreOS.

use std::process::ExitCode;

use clap::Parser;
use ironic_agent::cli::{Cli, Command};
use ironic_agent::{chroot_applet, config, logging, wiring};

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    if chroot_applet::invoked_as_chroot(args.next().as_deref()) {
        return ExitCode::from(chroot_applet::run(args.collect()));
    }
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // The logger may not be up yet: print the whole chain plainly.
            eprintln!("ironic-agent: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<u8> {
    let cli = Cli::parse();
    if cli.version {
        println!("ironic-agent {}", ironic_agent_actors::AGENT_VERSION);
        return Ok(0);
    }
    let loaded = config::load(&cli)?;
    if cli.dump_config {
        for warning in &loaded.warnings {
            eprintln!("ironic-agent: warning: {warning}");
        }
        println!("{}", config::dump_config_json(&loaded.config));
        return Ok(0);
    }
    logging::init(loaded.config.debug);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    match &cli.command {
        Some(Command::Inventory { root_device_hints }) => {
            let json = ironic_agent_actors::inspector::inventory_command_blocking(
                &loaded.config,
                root_device_hints.as_deref(),
            )?;
            println!("{json}");
            Ok(0)
        }
        Some(Command::Ignition(args)) => {
            let params = ironic_agent::ignition::params_from_cli(&cli, args)?;
            if args.print_unit {
                print!("{}", ironic_agent::ignition::render_unit(&params));
            } else {
                let config = ironic_agent::ignition::render(&params)?;
                println!("{}", serde_json::to_string_pretty(&config)?);
            }
            Ok(0)
        }
        None => {
            let code = wiring::run_agent(loaded.config)?;
            Ok(u8::try_from(code).unwrap_or(1))
        }
    }
}
