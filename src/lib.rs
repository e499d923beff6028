#![forbid(unsafe_code)]
pub mod sim;
pub fn placeholder() {}
