pub mod bench;
pub mod broker;
pub mod disk;
pub mod http;
pub mod object_store;
pub mod process;
pub mod record;
