pub mod broker;
pub mod disk;
pub mod http;
pub mod process;
