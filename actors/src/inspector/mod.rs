//! Hardware inspector: builds IPA's inventory from sysfs, procfs and tools.

mod actor;
pub mod inventory;

pub use actor::{CollectInventory, HardwareInspector};
pub use inventory::Inventory;
