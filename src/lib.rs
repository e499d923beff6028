#![forbid(unsafe_code)]
pub fn placeholder() {}
