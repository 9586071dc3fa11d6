pub mod http;
pub mod server;
pub mod webdriver;
