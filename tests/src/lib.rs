pub mod broker;
pub mod http;
pub mod process;
