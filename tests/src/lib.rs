pub mod broker;
pub mod http;
