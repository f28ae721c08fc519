//! A liveness probe every actor answers, used by start-up checks and tests.

use actix::Message;

/// Request: answer with the actor's name (proves the mailbox is served).
#[derive(Debug, Clone, Copy, Default)]
pub struct Probe;

impl Message for Probe {
    type Result = String;
}

/// Implements `Handler<Probe>` for an actor, answering with `$name`.
#[macro_export]
macro_rules! answer_probe {
    ($actor:ty, $name:expr) => {
        impl actix::Handler<$crate::probe::Probe> for $actor {
            type Result = String;
            fn handle(&mut self, _msg: $crate::probe::Probe, _ctx: &mut Self::Context) -> String {
                $name.to_string()
            }
        }
    };
}
